//! Ratchet benchmarks: hush against vodozemac's Olm and against a floor built from the same
//! primitives hush uses. docs/BENCHMARKS.md records the figures and the command.
//!
//! Groups (each reports plaintext bytes as throughput):
//! - `in_chain`: one full envelope (1724-byte payload, a session envelope's capacity next to
//!   its 2272-byte post-quantum block) encrypted by one party and decrypted by the other,
//!   always in the same direction, so no ratchet step happens; Olm the same at 1724 and
//!   3996 bytes; `floor` the cryptographic work such a message cannot avoid, with the same
//!   primitives (ring's ChaCha20-Poly1305 for the body).
//! - `dh_round_trip`: A sends, B decrypts, B replies, A decrypts: two ratchet steps, each
//!   with its ML-KEM-768 key generation, encapsulation and decapsulation in hush.
//! - `pq_step`: the ML-KEM-768 work of one hush ratchet step alone (decapsulate with the
//!   stored seed, generate the next key pair, encapsulate to the peer's key).
//! - `handshake`: from nothing to a session on both sides with the first message read.
//!
//! Setup stays outside the timed closures; every message is decrypted right after it is
//! encrypted, so no receiving chain ever skips keys (MAX_SKIP is never approached).
//!
//! Clock: the benchmark thread's CPU time (CLOCK_THREAD_CPUTIME_ID), because the machine is
//! shared and wall-clock time then mostly measures the other processes. `HUSH_BENCH_WALL=1`
//! measures wall-clock time instead (criterion's default).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benches: a failed unwrap is a failed run

use std::hint::black_box;
use std::time::Duration;

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkGroup, Criterion, Throughput};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use hush_crypto::handshake::InitOutcome;
use hush_crypto::{Invite, InviteKind, InviterSecrets, RelayAddress, Session};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use ring::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use sha2::Sha256;
use vodozemac::olm::{Account, OlmMessage, Session as OlmSession, SessionConfig};

/// Payload capacity of a session envelope (4096 - 81 header region - 16 tag - 3 body
/// overhead - 2272 post-quantum block).
const PAYLOAD_LEN: usize = 1724;
/// What a session envelope carried before the post-quantum block (version 1's capacity).
const V1_PAYLOAD_LEN: usize = 3996;
/// Body length of a session envelope's ratchet message.
const BODY_LEN: usize = 3999;
/// Plaintext header: version (1) || ratchet key (32) || PN (4) || N (4).
const HEADER_LEN: usize = 41;
/// Payload of the handshake benchmarks: a short first message.
const FIRST_LEN: usize = 64;

/// Modest settings: the machine has 2 cores shared with other builds.
fn configure<M: Measurement>(group: &mut BenchmarkGroup<'_, M>) {
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

// ---------------------------------------------------------------------------------------
// hush

fn relay() -> RelayAddress {
    // Pin: 32 bytes of 9, in base64url.
    "hush://CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk@relay.example:4433"
        .parse()
        .unwrap()
}

/// Both sides after the handshake and one round trip: post-quantum mixed, full capacity.
/// The last message went invitee -> inviter, so that direction is in-chain.
fn hush_established(seed: u64) -> (Session, Session, ChaCha20Rng) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut secrets = InviterSecrets::generate(InviteKind::OneTime, relay(), &mut rng).unwrap();
    let invite = secrets.invite().unwrap();
    let mut invitee = invite.accept(&mut rng).unwrap();
    let env = invitee.encrypt(b"hello", &mut rng).unwrap();
    let InitOutcome::New {
        session: mut inviter,
        ..
    } = secrets.handle_init(&env, &mut rng).unwrap()
    else {
        panic!("expected a new relationship");
    };
    let env = inviter.encrypt(b"welcome", &mut rng).unwrap();
    invitee.decrypt(&env, &mut rng).unwrap();
    let env = invitee.encrypt(b"thanks", &mut rng).unwrap();
    inviter.decrypt(&env, &mut rng).unwrap();
    assert!(invitee.post_quantum() && inviter.post_quantum());
    assert_eq!(invitee.payload_capacity(), PAYLOAD_LEN);
    assert_eq!(inviter.payload_capacity(), PAYLOAD_LEN);
    (invitee, *inviter, rng)
}

fn hush_handshake(first: &[u8], rng: &mut ChaCha20Rng) -> (Session, Session) {
    let mut secrets = InviterSecrets::generate(InviteKind::OneTime, relay(), rng).unwrap();
    let invite: Invite = secrets.invite().unwrap();
    let mut invitee = invite.accept(rng).unwrap();
    let env = invitee.encrypt(first, rng).unwrap();
    match secrets.handle_init(&env, rng).unwrap() {
        InitOutcome::New { session, payload } => {
            assert_eq!(payload.len(), first.len());
            (invitee, *session)
        }
        InitOutcome::Existing(_) => panic!("expected a new relationship"),
    }
}

// ---------------------------------------------------------------------------------------
// vodozemac (Olm)

/// Alice's outbound and Bob's inbound session after one pre-key message A -> B and one
/// normal reply B -> A: both have received, so A -> B is an in-chain normal message.
fn olm_established() -> (OlmSession, OlmSession) {
    let (alice, mut bob, mut a) = olm_outbound();
    let OlmMessage::PreKey(pre) = a.encrypt(b"hello").unwrap() else {
        panic!("first message must be a pre-key message");
    };
    let mut b = bob
        .create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), &pre)
        .unwrap()
        .session;
    let reply = b.encrypt(b"welcome").unwrap();
    a.decrypt(&reply).unwrap();
    let msg = a.encrypt(b"thanks").unwrap();
    assert!(matches!(msg, OlmMessage::Normal(_)));
    b.decrypt(&msg).unwrap();
    (a, b)
}

/// Two fresh accounts, Bob's one-time key, and Alice's outbound session to Bob.
fn olm_outbound() -> (Account, Account, OlmSession) {
    let alice = Account::new();
    let mut bob = Account::new();
    bob.generate_one_time_keys(1);
    let otk = *bob.one_time_keys().values().next().unwrap();
    bob.mark_keys_as_published();
    let session = alice
        .create_outbound_session(SessionConfig::version_1(), bob.curve25519_key(), otk)
        .unwrap();
    (alice, bob, session)
}

fn olm_handshake(first: &[u8]) -> (OlmSession, OlmSession) {
    let (alice, mut bob, mut a) = olm_outbound();
    let OlmMessage::PreKey(pre) = a.encrypt(first).unwrap() else {
        panic!("first message must be a pre-key message");
    };
    let created = bob
        .create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), &pre)
        .unwrap();
    assert_eq!(created.plaintext.len(), first.len());
    (a, created.session)
}

// ---------------------------------------------------------------------------------------
// floor: the AEAD passes and key derivations of one in-chain message, nothing else

/// The same chain of a sender and a receiver (both start from one chain key).
struct FloorChain {
    ck: [u8; 32],
}

fn hmac_sha256(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().into()
}

impl FloorChain {
    /// KDF_CK (two HMAC-SHA256) then the message key's HKDF (salted with the header nonce)
    /// to key (32) || nonce (12), as ring's ChaCha20-Poly1305 key and nonce.
    fn next_body_key(&mut self, salt: &[u8; 24]) -> (LessSafeKey, Nonce) {
        let mk = hmac_sha256(&self.ck, &[0x01]);
        self.ck = hmac_sha256(&self.ck, &[0x02]);
        let mut km = [0u8; 44];
        Hkdf::<Sha256>::new(Some(salt), &mk)
            .expand(b"hush/v2/message", &mut km)
            .unwrap();
        let key = UnboundKey::new(&CHACHA20_POLY1305, &km[..32]).unwrap();
        let nonce: [u8; 12] = km[32..].try_into().unwrap();
        (LessSafeKey::new(key), Nonce::assume_unique_for_key(nonce))
    }
}

/// XChaCha20-Poly1305 as hush builds it: HChaCha20 subkey, then ring's ChaCha20-Poly1305
/// with nonce `0x00000000 || nonce[16..24]`.
fn xchacha_by_parts(key: &[u8; 32], nonce: &[u8; 24]) -> (LessSafeKey, Nonce) {
    let prefix: [u8; 16] = nonce[..16].try_into().unwrap();
    let subkey = chacha20::hchacha::<chacha20::R20>(&(*key).into(), &prefix.into());
    let mut short = [0u8; 12];
    short[4..].copy_from_slice(&nonce[16..]);
    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &subkey).unwrap());
    (key, Nonce::assume_unique_for_key(short))
}

/// One message: the sender derives, seals header and body; the receiver derives, opens
/// header and body. Both ends derive, as they must in a real exchange.
struct Floor {
    send: FloorChain,
    recv: FloorChain,
    header_key: [u8; 32],
    nonce: [u8; 24],
    header: [u8; HEADER_LEN],
    body: Vec<u8>,
}

impl Floor {
    fn new() -> Self {
        let mut body = vec![0u8; BODY_LEN];
        body[3..3 + PAYLOAD_LEN].copy_from_slice(&payload(PAYLOAD_LEN));
        Self {
            send: FloorChain { ck: [7u8; 32] },
            recv: FloorChain { ck: [7u8; 32] },
            header_key: [5u8; 32],
            nonce: [3u8; 24],
            header: [1u8; HEADER_LEN],
            body,
        }
    }

    fn message(&mut self) {
        let salt = self.nonce;
        let (cipher, nonce) = self.send.next_body_key(&salt);
        let (hk, hn) = xchacha_by_parts(&self.header_key, &self.nonce);
        let header_tag = hk
            .seal_in_place_separate_tag(hn, Aad::empty(), &mut self.header)
            .unwrap();
        // The body authenticates the encrypted header region, as in hush.
        let mut region = [0u8; 24 + HEADER_LEN + 16];
        region[..24].copy_from_slice(&self.nonce);
        region[24..24 + HEADER_LEN].copy_from_slice(&self.header);
        region[24 + HEADER_LEN..].copy_from_slice(header_tag.as_ref());
        let body_tag = cipher
            .seal_in_place_separate_tag(nonce, Aad::from(&region), &mut self.body)
            .unwrap();

        let (hk, hn) = xchacha_by_parts(&self.header_key, &self.nonce);
        hk.open_in_place_separate_tag(hn, Aad::empty(), header_tag, &mut self.header, 0..)
            .unwrap();
        let (cipher, nonce) = self.recv.next_body_key(&salt);
        cipher
            .open_in_place_separate_tag(nonce, Aad::from(&region), body_tag, &mut self.body, 0..)
            .unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// groups

fn in_chain<M: Measurement>(c: &mut Criterion<M>) {
    let mut group = c.benchmark_group("in_chain");
    configure(&mut group);
    group.throughput(Throughput::Bytes(PAYLOAD_LEN as u64));

    let data = payload(PAYLOAD_LEN);
    let (mut sender, mut receiver, mut rng) = hush_established(1);
    group.bench_function("hush/1724", |b| {
        b.iter(|| {
            let env = sender.encrypt(black_box(&data), &mut rng).unwrap();
            receiver.decrypt(&env, &mut rng).unwrap()
        })
    });

    let (mut a, mut b_session) = olm_established();
    group.bench_function("vodozemac/1724", |b| {
        b.iter(|| {
            let msg = a.encrypt(black_box(&data)).unwrap();
            b_session.decrypt(&msg).unwrap()
        })
    });

    let mut floor = Floor::new();
    group.bench_function("floor/1724", |b| b.iter(|| floor.message()));

    let data = payload(V1_PAYLOAD_LEN);
    group.throughput(Throughput::Bytes(V1_PAYLOAD_LEN as u64));
    let (mut a, mut b_session) = olm_established();
    group.bench_function("vodozemac/3996", |b| {
        b.iter(|| {
            let msg = a.encrypt(black_box(&data)).unwrap();
            b_session.decrypt(&msg).unwrap()
        })
    });
    group.finish();
}

fn dh_round_trip<M: Measurement>(c: &mut Criterion<M>) {
    let mut group = c.benchmark_group("dh_round_trip");
    configure(&mut group);
    group.throughput(Throughput::Bytes(2 * PAYLOAD_LEN as u64));
    let data = payload(PAYLOAD_LEN);

    // The last message went invitee -> inviter, so the inviter's send turns the ratchet.
    let (mut invitee, mut inviter, mut rng) = hush_established(2);
    group.bench_function("hush/1724", |b| {
        b.iter(|| {
            let env = inviter.encrypt(black_box(&data), &mut rng).unwrap();
            invitee.decrypt(&env, &mut rng).unwrap();
            let env = invitee.encrypt(black_box(&data), &mut rng).unwrap();
            inviter.decrypt(&env, &mut rng).unwrap()
        })
    });

    // The last message went A -> B, so B's reply turns the ratchet.
    let (mut a, mut b_session) = olm_established();
    group.bench_function("vodozemac/1724", |b| {
        b.iter(|| {
            let msg = b_session.encrypt(black_box(&data)).unwrap();
            a.decrypt(&msg).unwrap();
            let msg = a.encrypt(black_box(&data)).unwrap();
            b_session.decrypt(&msg).unwrap()
        })
    });
    group.finish();
}

/// The ML-KEM-768 work of one hush ratchet step, with ml-kem 0.3.4 (portable Rust, which
/// hush used before) and with libcrux-ml-kem (which it uses now): the receiver
/// decapsulates the peer's ciphertext with its stored 64-byte seed (which expands the key
/// first), makes its next key pair from a fresh seed and exports the encapsulation key,
/// and encapsulates to the peer's encapsulation key (checked first).
fn pq_step<M: Measurement>(c: &mut Criterion<M>) {
    use ml_kem::kem::{Decapsulate, KeyExport};
    let mut group = c.benchmark_group("pq_step");
    configure(&mut group);
    let seed = |b: u8| ml_kem::Seed::from([b; 64]);
    let peer = ml_kem::DecapsulationKey768::from_seed(seed(1));
    let peer_ek = peer.encapsulation_key().to_bytes().to_vec();
    let own = seed(2);
    let own_ek = ml_kem::DecapsulationKey768::from_seed(own)
        .encapsulation_key()
        .clone();
    let (ct, _) = own_ek.encapsulate_deterministic(&ml_kem::B32::from([3u8; 32]));
    let mut next = 4u8;
    group.bench_function("ml_kem_768/decaps+keygen+encaps", |b| {
        b.iter(|| {
            let ss = ml_kem::DecapsulationKey768::from_seed(own).decapsulate(black_box(&ct));
            next = next.wrapping_add(1);
            let new_ek = ml_kem::DecapsulationKey768::from_seed(seed(next))
                .encapsulation_key()
                .to_bytes();
            let key = ml_kem::kem::Key::<ml_kem::EncapsulationKey768>::try_from(black_box(
                peer_ek.as_slice(),
            ))
            .unwrap();
            let ek = ml_kem::EncapsulationKey768::new(&key).unwrap();
            let out = ek.encapsulate_deterministic(&ml_kem::B32::from([next; 32]));
            (ss, new_ek, out)
        })
    });
    group.bench_function("ml_kem_768/keygen_from_seed+export", |b| {
        b.iter(|| {
            ml_kem::DecapsulationKey768::from_seed(black_box(own))
                .encapsulation_key()
                .to_bytes()
        })
    });
    group.bench_function("ml_kem_768/check+encaps", |b| {
        b.iter(|| {
            let key = ml_kem::kem::Key::<ml_kem::EncapsulationKey768>::try_from(black_box(
                peer_ek.as_slice(),
            ))
            .unwrap();
            let ek = ml_kem::EncapsulationKey768::new(&key).unwrap();
            ek.encapsulate_deterministic(&ml_kem::B32::from([9u8; 32]))
        })
    });
    group.bench_function("ml_kem_768/decaps_from_seed", |b| {
        b.iter(|| ml_kem::DecapsulationKey768::from_seed(black_box(own)).decapsulate(&ct))
    });
    // The same step with the implementation hush uses since this change (libcrux-ml-kem,
    // AVX2 or NEON chosen at run time), for the ratio against the portable one above.
    {
        use libcrux_ml_kem::mlkem768 as lx;
        let peer_ek = lx::generate_key_pair([1u8; 64]).public_key().clone();
        let own = [2u8; 64];
        let (ct, _) = lx::encapsulate(lx::generate_key_pair(own).public_key(), [3u8; 32]);
        let mut next = 4u8;
        group.bench_function("libcrux/decaps+keygen+encaps", |b| {
            b.iter(|| {
                let (sk, _) = lx::generate_key_pair(black_box(own)).into_parts();
                let ss = lx::decapsulate(&sk, black_box(&ct));
                next = next.wrapping_add(1);
                let new_ek = lx::generate_key_pair([next; 64]).public_key().clone();
                assert!(lx::validate_public_key(black_box(&peer_ek)));
                let out = lx::encapsulate(&peer_ek, [next; 32]);
                (ss, new_ek, out)
            })
        });
        group.bench_function("libcrux/keygen_from_seed+export", |b| {
            b.iter(|| lx::generate_key_pair(black_box(own)).public_key().clone())
        });
        group.bench_function("libcrux/check+encaps", |b| {
            b.iter(|| {
                assert!(lx::validate_public_key(black_box(&peer_ek)));
                lx::encapsulate(&peer_ek, [9u8; 32])
            })
        });
        group.bench_function("libcrux/decaps_from_seed", |b| {
            b.iter(|| {
                let (sk, _) = lx::generate_key_pair(black_box(own)).into_parts();
                lx::decapsulate(&sk, &ct)
            })
        });
    }
    group.bench_function("x25519/keygen+dh", |b| {
        b.iter(|| {
            let secret = x25519_dalek::StaticSecret::from(black_box([7u8; 32]));
            let public = x25519_dalek::PublicKey::from(&secret);
            secret.diffie_hellman(black_box(&public))
        })
    });
    group.finish();
}

fn handshake<M: Measurement>(c: &mut Criterion<M>) {
    let mut group = c.benchmark_group("handshake");
    configure(&mut group);
    group.throughput(Throughput::Bytes(FIRST_LEN as u64));
    let first = payload(FIRST_LEN);

    let mut rng = ChaCha20Rng::seed_from_u64(3);
    group.bench_function("hush", |b| {
        b.iter(|| hush_handshake(black_box(&first), &mut rng))
    });
    group.bench_function("vodozemac", |b| b.iter(|| olm_handshake(black_box(&first))));
    group.finish();
}

// ---------------------------------------------------------------------------------------
// clock

/// CPU time consumed by the calling thread; criterion runs every routine on this thread.
struct ThreadCpuTime {
    /// Only lends its formatter: values are nanoseconds either way.
    wall: WallTime,
}

fn thread_cpu_now() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_now()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now().saturating_sub(start)
    }
    fn add(&self, v1: &Duration, v2: &Duration) -> Duration {
        *v1 + *v2
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}

/// Where the floor's time goes: seal and open, in place, of one 3999-byte body with ring's
/// ChaCha20-Poly1305 (what hush uses) and ring's AES-256-GCM (for comparison), and the
/// per-message KDFs of both sides (two chain HMACs and the salted message-key HKDF each).
fn parts<M: Measurement>(c: &mut Criterion<M>) {
    let mut group = c.benchmark_group("parts");
    configure(&mut group);
    group.throughput(Throughput::Bytes(BODY_LEN as u64));
    for (name, alg) in [
        ("ring_chacha20_poly1305", &CHACHA20_POLY1305),
        ("ring_aes_256_gcm", &AES_256_GCM),
    ] {
        let key = LessSafeKey::new(UnboundKey::new(alg, &[5u8; 32]).unwrap());
        let mut body = payload(BODY_LEN);
        let ad = [1u8; 81];
        group.bench_function(format!("{name}/seal+open"), |b| {
            b.iter(|| {
                let nonce = || Nonce::assume_unique_for_key([7u8; 12]);
                let tag = key
                    .seal_in_place_separate_tag(nonce(), Aad::from(&ad), black_box(&mut body))
                    .unwrap();
                key.open_in_place_separate_tag(nonce(), Aad::from(&ad), tag, &mut body, 0..)
                    .unwrap()
                    .len()
            })
        });
    }
    let mut header = [1u8; HEADER_LEN];
    group.bench_function("xchacha_header/rustcrypto/seal+open", |b| {
        let cipher = XChaCha20Poly1305::new(&[5u8; 32].into());
        let nonce = chacha20poly1305::XNonce::from([3u8; 24]);
        b.iter(|| {
            let tag = cipher
                .encrypt_inout_detached(&nonce, &[], black_box(&mut header[..]).into())
                .unwrap();
            cipher
                .decrypt_inout_detached(&nonce, &[], (&mut header[..]).into(), &tag)
                .unwrap()
        })
    });
    group.bench_function("xchacha_header/hchacha20+ring/seal+open", |b| {
        b.iter(|| {
            let (k, n) = xchacha_by_parts(&[5u8; 32], black_box(&[3u8; 24]));
            let tag = k
                .seal_in_place_separate_tag(n, Aad::empty(), black_box(&mut header))
                .unwrap();
            let (k, n) = xchacha_by_parts(&[5u8; 32], &[3u8; 24]);
            k.open_in_place_separate_tag(n, Aad::empty(), tag, &mut header, 0..)
                .unwrap()
                .len()
        })
    });
    group.bench_function("kdfs_of_both_sides", |b| {
        b.iter(|| {
            for side in 0u8..2 {
                let mut chain = FloorChain { ck: [side; 32] };
                black_box(chain.next_body_key(black_box(&[side; 24])));
            }
        })
    });
    group.finish();
}

fn run<M: Measurement>(mut c: Criterion<M>) {
    parts(&mut c);
    in_chain(&mut c);
    dh_round_trip(&mut c);
    pq_step(&mut c);
    handshake(&mut c);
}

fn main() {
    if std::env::var_os("HUSH_BENCH_WALL").is_some() {
        run(Criterion::default().configure_from_args());
    } else {
        run(Criterion::default()
            .with_measurement(ThreadCpuTime { wall: WallTime })
            .configure_from_args());
    }
    Criterion::default().configure_from_args().final_summary();
}
