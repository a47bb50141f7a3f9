//! Test vectors: a whole conversation recorded byte for byte, and `fail_*` cases that must
//! be rejected with a named error. The files in `tests/vectors/` are the spec's vectors
//! (docs/PROTOCOL.md, "Test vectors"); this test replays them.
//!
//! Every random byte each party draws is listed per step, so another implementation can
//! replay the steps with the same bytes and must produce identical envelopes.
//!
//! Regenerate (only when the protocol changes on purpose):
//! `HUSH_WRITE_VECTORS=1 cargo test -p hush-crypto --test vectors -- --test-threads=1`
//! (one thread: the fail cases are built from the freshly written conversations).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

use std::collections::VecDeque;
use std::convert::Infallible;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use hush_crypto::handshake::InitOutcome;
use hush_crypto::mailbox::epoch_of;
use hush_crypto::payload::Payload;
use hush_crypto::{Envelope, Error, Invite, InviteKind, InviterSecrets, RelayAddress, Session};
use rand_chacha::ChaCha20Rng;
use rand_core::{SeedableRng, TryCryptoRng, TryRng};
use serde::{Deserialize, Serialize};

/// Serves recorded bytes (replay) or draws from a seeded generator and records (generation).
struct TapeRng {
    source: Option<ChaCha20Rng>,
    tape: VecDeque<u8>,
    recorded: Vec<u8>,
}

impl TapeRng {
    fn recording(seed: u64) -> Self {
        Self {
            source: Some(ChaCha20Rng::seed_from_u64(seed)),
            tape: VecDeque::new(),
            recorded: Vec::new(),
        }
    }

    fn replaying(bytes: &[u8]) -> Self {
        Self {
            source: None,
            tape: bytes.iter().copied().collect(),
            recorded: Vec::new(),
        }
    }

    fn take_recorded(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.recorded)
    }
}

impl TryRng for TapeRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        match &mut self.source {
            Some(src) => {
                rand_core::Rng::fill_bytes(src, dst);
                self.recorded.extend_from_slice(dst);
            }
            None => {
                for b in dst.iter_mut() {
                    *b = self
                        .tape
                        .pop_front()
                        .expect("implementation drew more random bytes than the vector lists");
                }
            }
        }
        Ok(())
    }
}
impl TryCryptoRng for TapeRng {}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct Conversation {
    description: String,
    relay_pin: String,
    relay_host: String,
    relay_port: u16,
    kind: String,
    unix_seconds: u64,
    steps: Vec<Step>,
    handshake_id: String,
    safety_number_digits: String,
    safety_number_qr: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct Step {
    actor: String,
    /// generate | accept | encrypt | handle_init | decrypt
    op: String,
    /// Random bytes this step draws, in order.
    random: String,
    /// encrypt: plaintext in; handle_init/decrypt: plaintext out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plaintext: Option<String>,
    /// generate: the link out; accept: the link in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<String>,
    /// encrypt: the envelope out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    envelope: Option<String>,
    /// encrypt: the mailbox id to deposit to at `unix_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mailbox_id: Option<String>,
    /// handle_init/decrypt: index of the encrypt step whose envelope is delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deliver: Option<usize>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct FailCase {
    description: String,
    /// The conversation file whose steps are replayed first.
    base: String,
    /// Steps 0..=after_step of the base are replayed.
    after_step: usize,
    actor: String,
    /// decrypt | handle_init | parse_invite | session_state | decode_payload
    op: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    envelope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<String>,
    /// session_state: stored session state (hex) given to `Session::from_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    /// decode_payload: a decrypted payload (hex) given to `Payload::decode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload: Option<String>,
    /// Debug name of the expected hush_crypto::Error.
    error: String,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn writing() -> bool {
    std::env::var_os("HUSH_WRITE_VECTORS").is_some()
}

/// One party's state while a conversation plays.
#[derive(Default)]
struct Party {
    secrets: Option<InviterSecrets>,
    session: Option<Session>,
}

struct Player {
    inviter: Party,
    invitee: Party,
    envelopes: Vec<Option<Envelope>>,
    relay: RelayAddress,
    kind: InviteKind,
    unix_seconds: u64,
}

impl Player {
    fn new(c: &Conversation) -> Self {
        let pin = hex::decode(&c.relay_pin).unwrap();
        let address = format!(
            "hush://{}@{}:{}",
            URL_SAFE_NO_PAD.encode(pin),
            c.relay_host,
            c.relay_port
        );
        Self {
            inviter: Party::default(),
            invitee: Party::default(),
            envelopes: Vec::new(),
            relay: address.parse().unwrap(),
            kind: match c.kind.as_str() {
                "one-time" => InviteKind::OneTime,
                _ => InviteKind::ContactAddress,
            },
            unix_seconds: c.unix_seconds,
        }
    }

    fn party(&mut self, actor: &str) -> &mut Party {
        match actor {
            "inviter" => &mut self.inviter,
            "invitee" => &mut self.invitee,
            other => panic!("unknown actor {other}"),
        }
    }

    /// Plays one step; in recording mode fills in its outputs, otherwise checks them.
    fn play(&mut self, step: &mut Step, rng: &mut TapeRng, record: bool) {
        let check = |field: &mut Option<String>, got: String, what: &str| {
            if record {
                *field = Some(got);
            } else {
                assert_eq!(field.as_deref(), Some(got.as_str()), "{what} differs");
            }
        };
        let mut envelope_out = None;
        match step.op.as_str() {
            "generate" => {
                let (relay, kind) = (self.relay.clone(), self.kind);
                let secrets = InviterSecrets::generate(kind, relay, rng).unwrap();
                check(&mut step.link, secrets.invite().unwrap().to_link(), "link");
                self.party(&step.actor.clone()).secrets = Some(secrets);
            }
            "accept" => {
                let link = step.link.clone().expect("accept needs a link");
                let session = Invite::parse(&link).unwrap().accept(rng).unwrap();
                self.party(&step.actor.clone()).session = Some(session);
            }
            "encrypt" => {
                let pt = hex::decode(step.plaintext.as_ref().unwrap()).unwrap();
                let now = self.unix_seconds;
                let session = self.party(&step.actor.clone()).session.as_mut().unwrap();
                let env = session.encrypt(&pt, rng).unwrap();
                // A mailbox id, or for a drop its id D (the link's, stamped deposits name it).
                let mailbox = match session.deposit_target(now).1 {
                    hush_crypto::Target::Mailbox(id) => id,
                    hush_crypto::Target::Drop(drop) => drop.id,
                };
                check(&mut step.envelope, hex::encode(env.as_bytes()), "envelope");
                check(&mut step.mailbox_id, hex::encode(mailbox.0), "mailbox id");
                envelope_out = Some(env);
            }
            "handle_init" => {
                let env = self.envelopes[step.deliver.unwrap()].clone().unwrap();
                let party = self.party(&step.actor.clone());
                let secrets = party.secrets.as_mut().unwrap();
                let pt = match secrets.handle_init(&env, rng).unwrap() {
                    InitOutcome::New { session, payload } => {
                        party.session = Some(*session);
                        payload
                    }
                    InitOutcome::Existing(opened) => party
                        .session
                        .as_mut()
                        .unwrap()
                        .handle_init(&opened, rng)
                        .unwrap(),
                };
                check(&mut step.plaintext, hex::encode(pt), "plaintext");
            }
            "decrypt" => {
                let env = self.envelopes[step.deliver.unwrap()].clone().unwrap();
                let session = self.party(&step.actor.clone()).session.as_mut().unwrap();
                let pt = session.decrypt(&env, rng).unwrap();
                check(&mut step.plaintext, hex::encode(pt), "plaintext");
            }
            other => panic!("unknown op {other}"),
        }
        self.envelopes.push(envelope_out);
    }
}

/// The scripted conversation: (actor, op, plaintext for encrypt, delivered step).
fn script() -> Vec<Step> {
    let s = |actor: &str, op: &str, text: Option<&str>, deliver: Option<usize>| Step {
        actor: actor.into(),
        op: op.into(),
        random: String::new(),
        plaintext: text.map(|t| hex::encode(t.as_bytes())),
        link: None,
        envelope: None,
        mailbox_id: None,
        deliver,
    };
    vec![
        s("inviter", "generate", None, None), // 0
        s("invitee", "accept", None, None),   // 1
        s("invitee", "encrypt", Some("hello from the invitee"), None), // 2
        s("invitee", "encrypt", Some("a second early message"), None), // 3
        s("inviter", "handle_init", None, Some(3)), // 4 (out of order)
        s("inviter", "handle_init", None, Some(2)), // 5
        s(
            "inviter",
            "encrypt",
            Some("reply carrying the KEM ciphertext"),
            None,
        ), // 6
        s("invitee", "decrypt", None, Some(6)), // 7
        s(
            "invitee",
            "encrypt",
            Some("first post-quantum message"),
            None,
        ), // 8
        s("inviter", "decrypt", None, Some(8)), // 9
        s("inviter", "encrypt", Some("in-chain 1"), None), // 10
        s("inviter", "encrypt", Some("in-chain 2"), None), // 11
        s("invitee", "decrypt", None, Some(11)), // 12 (skips 10)
        s("invitee", "decrypt", None, Some(10)), // 13 (skipped key)
        s("invitee", "encrypt", Some(""), None), // 14 empty payload
        s("inviter", "decrypt", None, Some(14)), // 15
    ]
}

fn conversation_file(kind: &str) -> String {
    format!("conversation_{}.json", kind.replace('-', "_"))
}

fn generate_conversation(kind: &str, seed: u64) -> Conversation {
    let mut c = Conversation {
        description: format!(
            "A {kind} invite, two early messages delivered out of order, the reply with the \
             ML-KEM ciphertext, and in-chain messages with one skipped key."
        ),
        relay_pin: hex::encode([0x5au8; 32]),
        relay_host: "relay.example.org".into(),
        relay_port: 4433,
        kind: kind.into(),
        unix_seconds: 1_800_000_000,
        steps: script(),
        handshake_id: String::new(),
        safety_number_digits: String::new(),
        safety_number_qr: String::new(),
    };
    let mut player = Player::new(&c);
    let mut rngs = [TapeRng::recording(seed), TapeRng::recording(seed + 1)];
    let mut steps = std::mem::take(&mut c.steps);
    for i in 0..steps.len() {
        if steps[i].op == "accept" {
            steps[i].link = steps[0].link.clone();
        }
        let who = usize::from(steps[i].actor == "invitee");
        player.play(&mut steps[i], &mut rngs[who], true);
        steps[i].random = hex::encode(rngs[who].take_recorded());
    }
    c.steps = steps;
    let s = player.invitee.session.as_ref().unwrap();
    c.handshake_id = hex::encode(s.handshake_id().0);
    c.safety_number_digits = s.safety_number().digits();
    c.safety_number_qr = s.safety_number().qr_string();
    c
}

/// Replays the first `upto` steps (all if None) and checks every output.
fn replay(c: &Conversation, upto: Option<usize>) -> Player {
    let mut player = Player::new(c);
    let n = upto.map_or(c.steps.len(), |k| k + 1);
    for step in &c.steps[..n] {
        let mut step = step.clone();
        let random = hex::decode(&step.random).unwrap();
        let mut rng = TapeRng::replaying(&random);
        player.play(&mut step, &mut rng, false);
        assert!(
            rng.tape.is_empty(),
            "step {} ({}) drew fewer random bytes than listed",
            step.op,
            step.actor
        );
    }
    player
}

fn load<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let text = std::fs::read_to_string(dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn save<T: Serialize>(name: &str, value: &T) {
    std::fs::create_dir_all(dir()).unwrap();
    let text = serde_json::to_string_pretty(value).unwrap();
    std::fs::write(dir().join(name), text + "\n").unwrap();
}

#[test]
fn conversations_replay_bit_for_bit() {
    for (kind, seed) in [("one-time", 100), ("contact-address", 200)] {
        let file = conversation_file(kind);
        if writing() {
            save(&file, &generate_conversation(kind, seed));
        }
        let c: Conversation = load(&file);
        let player = replay(&c, None);
        let s = player.invitee.session.as_ref().unwrap();
        assert_eq!(hex::encode(s.handshake_id().0), c.handshake_id);
        assert_eq!(s.safety_number().digits(), c.safety_number_digits);
        assert_eq!(s.safety_number().qr_string(), c.safety_number_qr);
        let inviter = player.inviter.session.as_ref().unwrap();
        assert_eq!(inviter.safety_number().digits(), c.safety_number_digits);
    }
}

/// Values re-derived here from docs/PROTOCOL.md with the primitives alone, independently
/// of hush-crypto's code: the invite link layout, the seal key and mailbox derivation.
#[test]
fn spec_derivations_match_the_implementation() {
    let c: Conversation = load(&conversation_file("one-time"));
    let link = c.steps[0].link.as_ref().unwrap();
    let bin = URL_SAFE_NO_PAD
        .decode(link.strip_prefix("hush:").unwrap())
        .unwrap();
    assert_eq!(bin[0], 1, "version");
    assert_eq!(bin[1], 1, "kind one-time");
    // The drop: its id D and the stamp difficulty; the relay address follows.
    let drop_id = &bin[66..98];
    assert!(bin[98] <= 40, "stamp bits");
    assert_eq!(&bin[99..131], hex::decode(&c.relay_pin).unwrap().as_slice());
    assert_eq!(u16::from_be_bytes([bin[131], bin[132]]), c.relay_port);
    let host_len = usize::from(bin[133]);
    assert_eq!(&bin[134..134 + host_len], c.relay_host.as_bytes());
    let body_len = 134 + host_len;
    let sum = sha256(&[b"hush/v1/invite-checksum", &bin[..body_len]]);
    assert_eq!(&bin[body_len..], &sum[..4]);

    // The invitee's first envelope goes to the drop D named in the link.
    assert_eq!(
        c.steps[2].mailbox_id.as_deref(),
        Some(hex::encode(drop_id).as_str())
    );

    // Init envelope: XChaCha20-Poly1305 under HKDF(D || IK_B || SPK_B, "hush/v1/invite-seal"),
    // nonce = first 24 bytes, tag = last 16; inner starts with version 1, IK_A, EK_A, ek_A.
    let env = hex::decode(c.steps[2].envelope.as_ref().unwrap()).unwrap();
    let seal_ikm = [drop_id, &bin[2..34], &bin[34..66]].concat();
    let inner = open_init(&seal_ikm, &env);
    assert_eq!(inner.len(), 4056);
    assert_eq!(inner[0], 1);
    let hid = sha256(&[b"hush/v1/handshake-id", &inner[1..33], &inner[33..65]]);
    assert_eq!(hex::encode(hid), c.handshake_id);
    let _ = epoch_of(0);
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn hkdf32(ikm: &[u8], info: &[&[u8]]) -> [u8; 32] {
    let mut out = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(None, ikm)
        .expand_multi_info(info, &mut out)
        .unwrap();
    out
}

fn seal_cipher(seal_ikm: &[u8]) -> chacha20poly1305::XChaCha20Poly1305 {
    let key = hkdf32(seal_ikm, &[b"hush/v1/invite-seal"]);
    chacha20poly1305::XChaCha20Poly1305::new(&key.into())
}

fn open_init(seal_ikm: &[u8], env: &[u8]) -> Vec<u8> {
    let nonce = chacha20poly1305::XNonce::try_from(&env[..24]).unwrap();
    let tag = chacha20poly1305::Tag::try_from(&env[4080..]).unwrap();
    let mut inner = env[24..4080].to_vec();
    seal_cipher(seal_ikm)
        .decrypt_inout_detached(&nonce, &[], inner.as_mut_slice().into(), &tag)
        .unwrap();
    inner
}

fn reseal_init(seal_ikm: &[u8], nonce: &[u8], inner: &mut [u8]) -> Vec<u8> {
    let n = chacha20poly1305::XNonce::try_from(nonce).unwrap();
    let tag = seal_cipher(seal_ikm)
        .encrypt_inout_detached(&n, &[], inner.into())
        .unwrap();
    [nonce, &inner[..], tag.as_slice()].concat()
}

fn generate_fail_cases() -> Vec<(String, FailCase)> {
    let base = conversation_file("one-time");
    let c: Conversation = load(&base);
    let env_hex = |i: usize| c.steps[i].envelope.clone().unwrap();
    let flip = |i: usize, at: usize| {
        let mut e = hex::decode(env_hex(i)).unwrap();
        e[at] ^= 0x01;
        hex::encode(e)
    };
    let case = |desc: &str,
                after: usize,
                actor: &str,
                op: &str,
                env: Option<String>,
                link: Option<String>,
                err: &str| FailCase {
        description: desc.into(),
        base: base.clone(),
        after_step: after,
        actor: actor.into(),
        op: op.into(),
        envelope: env,
        link,
        state: None,
        payload: None,
        error: err.into(),
    };
    let link = c.steps[0].link.clone().unwrap();
    // The seal key's input: the drop id D, IK_B and SPK_B, all from the link.
    let seal_ikm = {
        let bin = URL_SAFE_NO_PAD
            .decode(link.strip_prefix("hush:").unwrap())
            .unwrap();
        [&bin[66..98], &bin[2..34], &bin[34..66]].concat()
    };
    let wrong_version = {
        let env = hex::decode(env_hex(2)).unwrap();
        let mut inner = open_init(&seal_ikm, &env);
        inner[0] = 2;
        hex::encode(reseal_init(&seal_ikm, &env[..24], &mut inner))
    };
    // A session envelope for another relationship: the contact-address conversation's reply.
    let other: Conversation = load(&conversation_file("contact-address"));
    let foreign = other.steps[10].envelope.clone().unwrap();
    let truncated = env_hex(10)[..2 * 4000].to_string();
    let mut cases = vec![
        (
            "fail_tampered_header.json".into(),
            case(
                "Step 10's envelope with one bit of the encrypted header flipped (byte 30).",
                9,
                "invitee",
                "decrypt",
                Some(flip(10, 30)),
                None,
                "HeaderUndecryptable",
            ),
        ),
        (
            "fail_tampered_header_tag.json".into(),
            case(
                "Step 10's envelope with one bit of the header tag flipped (byte 70).",
                9,
                "invitee",
                "decrypt",
                Some(flip(10, 70)),
                None,
                "HeaderUndecryptable",
            ),
        ),
        (
            "fail_tampered_body.json".into(),
            case(
                "Step 10's envelope with one bit of the body flipped (byte 2000).",
                9,
                "invitee",
                "decrypt",
                Some(flip(10, 2000)),
                None,
                "BodyAuthFailed",
            ),
        ),
        (
            "fail_tampered_body_tag.json".into(),
            case(
                "Step 10's envelope with its last byte (body tag) flipped.",
                9,
                "invitee",
                "decrypt",
                Some(flip(10, 4095)),
                None,
                "BodyAuthFailed",
            ),
        ),
        (
            "fail_replay.json".into(),
            case(
                "Step 11's envelope delivered again after it was decrypted at step 12.",
                12,
                "invitee",
                "decrypt",
                Some(env_hex(11)),
                None,
                "MessageReplayed",
            ),
        ),
        (
            "fail_replay_skipped.json".into(),
            case(
                "Step 10's envelope delivered again after its skipped key was used at step 13.",
                13,
                "invitee",
                "decrypt",
                Some(env_hex(10)),
                None,
                "MessageReplayed",
            ),
        ),
        (
            "fail_wrong_key.json".into(),
            case(
                "An envelope of another relationship (contact-address conversation, step 10).",
                9,
                "invitee",
                "decrypt",
                Some(foreign),
                None,
                "HeaderUndecryptable",
            ),
        ),
        (
            "fail_truncated.json".into(),
            case(
                "Step 10's envelope cut to 4000 bytes.",
                9,
                "invitee",
                "decrypt",
                Some(truncated),
                None,
                "EnvelopeLength(4000)",
            ),
        ),
        (
            "fail_wrong_version.json".into(),
            case(
                "Step 2's init envelope resealed with prefix version byte 2.",
                0,
                "inviter",
                "handle_init",
                Some(wrong_version),
                None,
                "UnsupportedVersion(2)",
            ),
        ),
        (
            "fail_init_tampered.json".into(),
            case(
                "Step 2's init envelope with one bit flipped (byte 100).",
                0,
                "inviter",
                "handle_init",
                Some(flip(2, 100)),
                None,
                "HandshakeUndecryptable",
            ),
        ),
        (
            "fail_invite_truncated.json".into(),
            case(
                "The invite link without its last 11 characters (the checksum is checked before the body is decoded: a short link is a checksum mismatch unless it is shorter than the layout's minimum).",
                0,
                "invitee",
                "parse_invite",
                None,
                Some(link[..link.len() - 11].to_string()),
                "InviteChecksum",
            ),
        ),
        (
            "fail_invite_truncated_below_minimum.json".into(),
            case(
                "The invite link cut to hush: and its first 96 base64url characters (72 bytes, shorter than the layout's minimum).",
                0,
                "invitee",
                "parse_invite",
                None,
                Some(link[..101].to_string()),
                "InvalidInvite(\"truncated\")",
            ),
        ),
        (
            "fail_invite_typo_in_relay.json".into(),
            case(
                "The invite link with one character of the relay host changed (a typo near the end).",
                0,
                "invitee",
                "parse_invite",
                None,
                Some(mutate_char(&link, link.len() - 12)),
                "InviteChecksum",
            ),
        ),
        (
            "fail_invite_relay_address.json".into(),
            case(
                "A relay address pasted where an invite link goes.",
                0,
                "invitee",
                "parse_invite",
                None,
                Some(format!("hush://{}@relay.example.org:4433", "A".repeat(43))),
                "InvalidInvite(\"this is a relay address (hush://...), not an invite\")",
            ),
        ),
        (
            "fail_invite_checksum.json".into(),
            case(
                "The invite link with one character of the identity key changed.",
                0,
                "invitee",
                "parse_invite",
                None,
                Some(mutate_char(&link, 12)),
                "InviteChecksum",
            ),
        ),
        (
            "fail_invite_prefix.json".into(),
            case(
                "The invite link with an https: scheme.",
                0,
                "invitee",
                "parse_invite",
                None,
                Some(link.replacen("hush:", "https:", 1)),
                "InvalidInvite(\"missing hush: prefix\")",
            ),
        ),
        (
            "fail_invite_base64.json".into(),
            case(
                "The invite link with a character outside base64url.",
                0,
                "invitee",
                "parse_invite",
                None,
                Some(format!("{}!", &link[..link.len() - 1])),
                "InvalidInvite(\"not base64url\")",
            ),
        ),
    ];
    cases.extend(unusable_relay_cases(&c, &base));
    cases
}

/// Relays a client cannot use (docs/PROTOCOL.md, "Binary relay address"): (file name part,
/// description, host bytes, port, the rule the error names).
fn unusable_relays() -> Vec<(&'static str, &'static str, Vec<u8>, u16, &'static str)> {
    const NAME: &str = "host is not a DNS name or IP literal";
    let long = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(62));
    vec![
        (
            "underscore",
            "host a_b (underscore)",
            b"a_b".to_vec(),
            4433,
            NAME,
        ),
        (
            "five_numbers",
            "host 1.2.3.4.5 (not IPv4, all numeric)",
            b"1.2.3.4.5".to_vec(),
            4433,
            NAME,
        ),
        (
            "colon",
            "host x:y (colon outside brackets)",
            b"x:y".to_vec(),
            4433,
            NAME,
        ),
        ("empty", "an empty host", Vec::new(), 4433, NAME),
        (
            "too_long",
            "a 254-byte host name",
            long.into_bytes(),
            4433,
            NAME,
        ),
        (
            "long_label",
            "a 64-byte label",
            "a".repeat(64).into_bytes(),
            4433,
            NAME,
        ),
        (
            "leading_hyphen",
            "host -relay.example",
            b"-relay.example".to_vec(),
            4433,
            NAME,
        ),
        (
            "trailing_hyphen",
            "host relay-.example",
            b"relay-.example".to_vec(),
            4433,
            NAME,
        ),
        (
            "bad_ipv6",
            "host [::g]",
            b"[::g]".to_vec(),
            4433,
            "invalid IPv6 literal",
        ),
        (
            "unterminated_ipv6",
            "host [::1 (no closing bracket)",
            b"[::1".to_vec(),
            4433,
            "unterminated IPv6 literal",
        ),
        (
            "port_zero",
            "port 0",
            b"relay.example.org".to_vec(),
            0,
            "port must be 1..=65535",
        ),
        (
            "uppercase",
            "host Relay.Example.org (not canonical: names are lower case)",
            b"Relay.Example.org".to_vec(),
            4433,
            "host is not in canonical form",
        ),
    ]
}

fn relay_binary(pin: &[u8], host: &[u8], port: u16) -> Vec<u8> {
    let len = u8::try_from(host.len()).unwrap();
    [pin, &port.to_be_bytes(), &[len], host].concat()
}

/// Every unusable relay in an invite link with a correct checksum; some of them in stored
/// session state and in a mailbox-move payload.
fn unusable_relay_cases(c: &Conversation, base: &str) -> Vec<(String, FailCase)> {
    let case = |desc: String, after: usize, actor: &str, op: &str, err: String| FailCase {
        description: desc,
        base: base.into(),
        after_step: after,
        actor: actor.into(),
        op: op.into(),
        envelope: None,
        link: None,
        state: None,
        payload: None,
        error: err,
    };
    let pin = hex::decode(&c.relay_pin).unwrap();
    let good = relay_binary(&pin, c.relay_host.as_bytes(), c.relay_port);
    let link = c.steps[0].link.clone().unwrap();
    let bin = URL_SAFE_NO_PAD
        .decode(link.strip_prefix("hush:").unwrap())
        .unwrap();
    assert_eq!(&bin[99..99 + good.len()], good.as_slice());
    let state = {
        let player = replay(c, None);
        player.invitee.session.as_ref().unwrap().to_bytes().to_vec()
    };
    let mut out = Vec::new();
    for (name, what, host, port, rule) in unusable_relays() {
        let bad = relay_binary(&pin, &host, port);
        let err = format!("UnusableRelay({rule:?})");

        let mut body = [&bin[..99], &bad].concat();
        let sum = sha256(&[b"hush/v1/invite-checksum", &body]);
        body.extend_from_slice(&sum[..4]);
        let mut f = case(
            format!(
                "The invite link with its relay replaced by one with {what}; checksum correct."
            ),
            0,
            "invitee",
            "parse_invite",
            err.clone(),
        );
        f.link = Some(format!("hush:{}", URL_SAFE_NO_PAD.encode(body)));
        out.push((format!("fail_invite_relay_{name}.json"), f));

        if matches!(name, "colon" | "port_zero" | "uppercase") {
            // kind 2 (mailbox move) || new root (32) || relay.
            let payload = [&[2u8][..], &[0x11; 32], &bad].concat();
            let mut f = case(
                format!("A mailbox-move payload whose relay has {what}."),
                0,
                "invitee",
                "decode_payload",
                err.clone(),
            );
            f.payload = Some(hex::encode(payload));
            out.push((format!("fail_payload_relay_{name}.json"), f));
        }
        if matches!(name, "underscore" | "five_numbers") {
            let at = state
                .windows(good.len())
                .position(|w| w == good.as_slice())
                .unwrap();
            let bad_state = [&state[..at], &bad, &state[at + good.len()..]].concat();
            let mut f = case(
                format!(
                    "The invitee's stored session state after the conversation, its send \
                     route's relay replaced by one with {what}."
                ),
                0,
                "invitee",
                "session_state",
                "InvalidState(\"bad relay\")".into(),
            );
            f.state = Some(hex::encode(bad_state));
            out.push((format!("fail_state_relay_{name}.json"), f));
        }
    }
    out
}

fn mutate_char(link: &str, at: usize) -> String {
    let mut chars: Vec<char> = link.chars().collect();
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[test]
fn fail_vectors_are_rejected_with_the_named_error() {
    if writing() {
        for (name, case) in generate_fail_cases() {
            save(&name, &case);
        }
    }
    let mut count = 0;
    for entry in std::fs::read_dir(dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.starts_with("fail_") {
            continue;
        }
        count += 1;
        let case: FailCase = load(&name);
        let base: Conversation = load(&case.base);
        let mut player = replay(&base, Some(case.after_step));
        let mut rng = ChaCha20Rng::seed_from_u64(0);
        let err: Error = match case.op.as_str() {
            "parse_invite" => Invite::parse(case.link.as_ref().unwrap()).unwrap_err(),
            "session_state" => {
                Session::from_bytes(&hex::decode(case.state.as_ref().unwrap()).unwrap())
                    .unwrap_err()
            }
            "decode_payload" => {
                Payload::decode(&hex::decode(case.payload.as_ref().unwrap()).unwrap()).unwrap_err()
            }
            "decrypt" | "handle_init" => {
                let bytes = hex::decode(case.envelope.as_ref().unwrap()).unwrap();
                let party = player.party(&case.actor);
                match hush_crypto::envelope::parse(&bytes) {
                    Err(e) => e,
                    Ok(env) if case.op == "decrypt" => {
                        let session = party.session.as_mut().unwrap();
                        let before = session.to_bytes();
                        let e = session.decrypt(&env, &mut rng).unwrap_err();
                        assert_eq!(
                            session.to_bytes().as_slice(),
                            before.as_slice(),
                            "{name}: state changed"
                        );
                        e
                    }
                    Ok(env) => party
                        .secrets
                        .as_mut()
                        .unwrap()
                        .handle_init(&env, &mut rng)
                        .unwrap_err(),
                }
            }
            other => panic!("unknown op {other}"),
        };
        assert_eq!(format!("{err:?}"), case.error, "{name}");
    }
    assert!(count >= 10, "fail vectors missing: found {count}");
}
