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
    assert_eq!(bin[0], 2, "version");
    assert_eq!(bin[1], 1, "kind one-time");
    // The drop: its id D and the stamp difficulty; the relay address follows.
    let drop_id = &bin[66..98];
    assert!(bin[98] <= 40, "stamp bits");
    assert_eq!(&bin[99..131], hex::decode(&c.relay_pin).unwrap().as_slice());
    assert_eq!(u16::from_be_bytes([bin[131], bin[132]]), c.relay_port);
    let host_len = usize::from(bin[133]);
    assert_eq!(&bin[134..134 + host_len], c.relay_host.as_bytes());
    let body_len = 134 + host_len;
    let sum = sha256(&[b"hush/v2/invite-checksum", &bin[..body_len]]);
    assert_eq!(&bin[body_len..], &sum[..4]);
    let link_body = &bin[..body_len];

    // The invitee's first envelope goes to the drop D named in the link.
    assert_eq!(
        c.steps[2].mailbox_id.as_deref(),
        Some(hex::encode(drop_id).as_str())
    );

    // Init envelope: XChaCha20-Poly1305 under HKDF(D || IK_B || SPK_B, "hush/v2/invite-seal"),
    // nonce = first 24 bytes, tag = last 16; inner starts with version 2, the link hash
    // LH = SHA-256("hush/v2/link" || B), IK_A, EK_A, ek_A.
    let env = hex::decode(c.steps[2].envelope.as_ref().unwrap()).unwrap();
    let seal_ikm = [drop_id, &bin[2..34], &bin[34..66]].concat();
    let inner = open_init(&seal_ikm, &env);
    assert_eq!(inner.len(), 4056);
    assert_eq!(inner[0], 2);
    assert_eq!(&inner[1..33], &sha256(&[b"hush/v2/link", link_body]));
    let hid = sha256(&[b"hush/v2/handshake-id", &inner[33..65], &inner[65..97]]);
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
    let key = hkdf32(seal_ikm, &[b"hush/v2/invite-seal"]);
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
        inner[0] = 1;
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
                "Step 2's init envelope resealed with prefix version byte 1 (a version 1 handshake).",
                0,
                "inviter",
                "handle_init",
                Some(wrong_version),
                None,
                "UnsupportedVersion(1)",
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
    cases.extend(version_and_link_cases(&c, &base));
    cases.extend(pq_cases(&c, &base));
    cases
}

/// Offsets in stored session state (docs/PROTOCOL.md section 11) of the ratchet's KEM key
/// tag and of its post-quantum block tag.
fn pq_offsets(state: &[u8]) -> (usize, usize) {
    let opt = |at: usize| if state[at] == 1 { at + 33 } else { at + 1 };
    let mut at = 130 + 32; // role, transcript, ids, identity keys; the ratchet key
    at = opt(at); // DHr
    at += 32; // RK
    for _ in 0..4 {
        at = opt(at); // CKs, CKr, HKs, HKr
    }
    at += 64 + 12; // NHKs, NHKr, Ns, Nr, PN
    let kem = at;
    let block = if state[kem] == 1 { kem + 65 } else { kem + 1 };
    (kem, block)
}

/// A sender that breaks the post-quantum ratchet, made by editing its stored state: the
/// invitee after step 13 (its next message opens a new chain at the inviter) without its
/// block, or with an encapsulation key that fails the FIPS 203 check.
fn pq_cases(c: &Conversation, base: &str) -> Vec<(String, FailCase)> {
    let case = |desc: &str, op: &str, err: &str| FailCase {
        description: desc.into(),
        base: base.into(),
        after_step: 13,
        actor: "inviter".into(),
        op: op.into(),
        envelope: None,
        link: None,
        state: None,
        payload: None,
        error: err.into(),
    };
    let player = replay(c, Some(13));
    let state = player.invitee.session.as_ref().unwrap().to_bytes().to_vec();
    let (kem, block) = pq_offsets(&state);
    assert_eq!((state[kem], state[block]), (1, 1));
    let encrypt_from = |edited: Vec<u8>, seed: u64| {
        let mut s = Session::from_bytes(&edited).unwrap();
        let env = s
            .encrypt("后量子".as_bytes(), &mut ChaCha20Rng::seed_from_u64(seed))
            .unwrap();
        hex::encode(env.as_bytes())
    };
    let without = [&state[..block], &[0u8][..], &state[block + 1 + 2272..]].concat();
    let mut bad_key = state.clone();
    bad_key[block + 1..block + 1 + 1184].fill(0xff);
    let mut bad_tag = state.clone();
    bad_tag[kem] = 7;

    let mut missing = case(
        "The invitee's message after step 13 (a new chain for the inviter) without the \
         post-quantum block: its stored state's block removed (tag 0), then encrypted.",
        "decrypt",
        "MissingKemCiphertext",
    );
    missing.envelope = Some(encrypt_from(without, 720));
    let mut invalid = case(
        "The invitee's message after step 13 whose post-quantum block carries an \
         encapsulation key of 1184 bytes 0xff (fails the FIPS 203 modulus check).",
        "decrypt",
        "InvalidPeerKey",
    );
    invalid.envelope = Some(encrypt_from(bad_key, 721));
    let mut tag = case(
        "The invitee's stored state after step 13 with the ratchet's KEM key tag 7.",
        "session_state",
        "InvalidState(\"bad option tag\")",
    );
    tag.state = Some(hex::encode(bad_tag));
    vec![
        ("fail_pq_missing_block.json".into(), missing),
        ("fail_pq_invalid_encapsulation_key.json".into(), invalid),
        ("fail_state_pq_tag.json".into(), tag),
    ]
}

/// A link body `B` (no checksum) made into a link with the checksum of `domain`.
fn relink(body: &[u8], domain: &[u8]) -> String {
    let sum = sha256(&[domain, body]);
    format!(
        "hush:{}",
        URL_SAFE_NO_PAD.encode([body, &sum[..4]].concat())
    )
}

/// Version 1 links and handshakes, edited links (the inviter names them), and a message
/// encrypted twice from a restored sending state.
fn version_and_link_cases(c: &Conversation, base: &str) -> Vec<(String, FailCase)> {
    let case = |desc: String, after: usize, actor: &str, op: &str, err: &str| FailCase {
        description: desc,
        base: base.into(),
        after_step: after,
        actor: actor.into(),
        op: op.into(),
        envelope: None,
        link: None,
        state: None,
        payload: None,
        error: err.into(),
    };
    let link = c.steps[0].link.clone().unwrap();
    let bin = URL_SAFE_NO_PAD
        .decode(link.strip_prefix("hush:").unwrap())
        .unwrap();
    let body = &bin[..bin.len() - 4];
    let mut out = Vec::new();

    let mut v1 = body.to_vec();
    v1[0] = 1;
    let mut f = case(
        "The invite link as version 1 wrote it: version byte 1, checksum under \
         \"hush/v1/invite-checksum\"."
            .into(),
        0,
        "invitee",
        "parse_invite",
        "UnsupportedVersion(1)",
    );
    f.link = Some(relink(&v1, b"hush/v1/invite-checksum"));
    out.push(("fail_invite_version_1.json".to_string(), f));
    let mut v3 = body.to_vec();
    v3[0] = 3;
    let mut f = case(
        "The invite link with version byte 3 and a correct version 2 checksum.".into(),
        0,
        "invitee",
        "parse_invite",
        "UnsupportedVersion(3)",
    );
    f.link = Some(relink(&v3, b"hush/v2/invite-checksum"));
    out.push(("fail_invite_version_3.json".to_string(), f));

    // Edited links: the checksum is recomputed (it is unkeyed), the invitee accepts the link
    // and writes; the inviter refuses the handshake. Offsets in B: kind 1, IK_B 2..34,
    // drop bits 98, relay pin 99..131, port 131..133, host 134...
    let host_at = 134;
    let edits: Vec<(&str, &str, Vec<u8>)> = vec![
        ("kind", "its kind changed to contact address (0x02)", {
            let mut b = body.to_vec();
            b[1] = 2;
            b
        }),
        ("identity", "one bit of IK_B flipped (byte 10)", {
            let mut b = body.to_vec();
            b[10] ^= 0x01;
            b
        }),
        (
            "drop_bits",
            "the drop's stamp difficulty lowered by one (byte 98)",
            {
                let mut b = body.to_vec();
                b[98] -= 1;
                b
            },
        ),
        ("relay_pin", "another relay pin (all bytes 0x66)", {
            let mut b = body.to_vec();
            b[99..131].fill(0x66);
            b
        }),
        ("relay_port", "the relay port changed to 443", {
            let mut b = body.to_vec();
            b[131..133].copy_from_slice(&443u16.to_be_bytes());
            b
        }),
        (
            "relay_host",
            "the relay host changed to relay.example.net",
            {
                let mut b = body[..host_at - 1].to_vec();
                let host = b"relay.example.net";
                b.push(u8::try_from(host.len()).unwrap());
                b.extend_from_slice(host);
                b
            },
        ),
    ];
    for (i, (name, what, edited)) in edits.into_iter().enumerate() {
        let edited_link = relink(&edited, b"hush/v2/invite-checksum");
        let mut rng = ChaCha20Rng::seed_from_u64(700 + i as u64);
        let mut session = Invite::parse(&edited_link)
            .unwrap()
            .accept(&mut rng)
            .unwrap();
        let env = session
            .encrypt(b"sent through an edited link", &mut rng)
            .unwrap();
        let mut f = case(
            format!(
                "An init envelope from an invitee that accepted the invite link with {what} \
                 (checksum recomputed; the link is {edited_link}). The inviter refuses it: \
                 an edited key fails the seal, any other edit the link hash."
            ),
            0,
            "inviter",
            "handle_init",
            // IK_B and SPK_B key the seal (with D): an envelope made with edited keys does
            // not even open. Every other edit opens and is named by the link hash.
            if name == "identity" {
                "HandshakeUndecryptable"
            } else {
                "LinkMismatch"
            },
        );
        f.envelope = Some(hex::encode(env.as_bytes()));
        out.push((format!("fail_link_edited_{name}.json"), f));
    }

    // A sending state restored from a snapshot: the inviter's state before step 10 encrypts
    // step 10's plaintext again with other random bytes. Its header nonce differs, so its
    // body key and nonce differ too; the receiver, which read step 10, calls it a replay.
    let mut player = replay(c, Some(9));
    let restored = player.inviter.session.as_mut().unwrap();
    let pt = hex::decode(c.steps[10].plaintext.as_ref().unwrap()).unwrap();
    let again = restored
        .encrypt(&pt, &mut ChaCha20Rng::seed_from_u64(710))
        .unwrap();
    assert_ne!(
        hex::encode(again.as_bytes()),
        c.steps[10].envelope.clone().unwrap()
    );
    let mut f = case(
        "Step 10's plaintext encrypted again from the inviter's state after step 9 (a \
         restored snapshot) with other random bytes, delivered after step 13 read step 10."
            .into(),
        13,
        "invitee",
        "decrypt",
        "MessageReplayed",
    );
    f.envelope = Some(hex::encode(again.as_bytes()));
    out.push(("fail_rollback_second_encryption.json".to_string(), f));
    out
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
        let sum = sha256(&[b"hush/v2/invite-checksum", &body]);
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
                    Ok(env) => {
                        let secrets = party.secrets.as_mut().unwrap();
                        let before = secrets.to_bytes();
                        let e = secrets.handle_init(&env, &mut rng).unwrap_err();
                        assert_eq!(
                            secrets.to_bytes().as_slice(),
                            before.as_slice(),
                            "{name}: inviter state changed"
                        );
                        e
                    }
                }
            }
            other => panic!("unknown op {other}"),
        };
        assert_eq!(format!("{err:?}"), case.error, "{name}");
    }
    assert!(count >= 10, "fail vectors missing: found {count}");
}

// --- the ratchet re-derived from the spec -------------------------------------------------

/// A spec-only re-implementation of the steps the one-time conversation starts with, from
/// the random bytes the vector lists and the primitives alone (x25519-dalek, ml-kem,
/// RustCrypto's ChaCha20-Poly1305 rather than the ring code hush seals bodies with):
/// PROTOCOL.md sections 4.2 to 6.2. It rebuilds byte for byte the invitee's first init
/// envelope (step 2), the inviter's first reply with its post-quantum block (step 6, after
/// the inviter's first ratchet step at step 4) and the invitee's first post-quantum message
/// (step 8, after its step 7 decapsulated and mixed).
#[test]
fn the_ratchet_and_its_pq_steps_follow_the_spec() {
    use ml_kem::kem::{Decapsulate, KeyExport};
    let c: Conversation = load(&conversation_file("one-time"));
    let rnd = |i: usize| hex::decode(&c.steps[i].random).unwrap();
    let env = |i: usize| hex::decode(c.steps[i].envelope.as_ref().unwrap()).unwrap();
    let pt = |i: usize| hex::decode(c.steps[i].plaintext.as_ref().unwrap()).unwrap();
    let k32 = |b: &[u8]| -> [u8; 32] { b.try_into().unwrap() };
    let pubkey = |k: [u8; 32]| x25519_dalek::x25519(k, x25519_dalek::X25519_BASEPOINT_BYTES);
    let dh = |k: [u8; 32], p: [u8; 32]| x25519_dalek::x25519(k, p);
    let hkdf_n = |salt: Option<&[u8]>, ikm: &[u8], info: &[&[u8]], n: usize| {
        let mut out = vec![0u8; n];
        hkdf::Hkdf::<sha2::Sha256>::new(salt, ikm)
            .expand_multi_info(info, &mut out)
            .unwrap();
        out
    };
    let kdf_rk = |rk: &[u8], dh: &[u8]| {
        let o = hkdf_n(Some(rk), dh, &[b"hush/v2/ratchet"], 96);
        (k32(&o[..32]), k32(&o[32..64]), k32(&o[64..]))
    };
    let kdf_pq = |rk: &[u8], ss: &[u8]| k32(&hkdf_n(Some(rk), ss, &[b"hush/v2/pq-mix"], 32));
    let hmac = |k: &[u8], d: u8| -> [u8; 32] {
        use hmac::Mac;
        let mut m = <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(k).unwrap();
        m.update(&[d]);
        m.finalize().into_bytes().into()
    };
    let kem_keygen = |seed: &[u8]| {
        let seed: [u8; 64] = seed.try_into().unwrap();
        ml_kem::DecapsulationKey768::from_seed(ml_kem::Seed::from(seed))
    };
    let encaps = |ek: &[u8], m: &[u8]| {
        let key = ml_kem::kem::Key::<ml_kem::EncapsulationKey768>::try_from(ek).unwrap();
        let ek = ml_kem::EncapsulationKey768::new(&key).unwrap();
        let m: [u8; 32] = m.try_into().unwrap();
        let (ct, ss) = ek.encapsulate_deterministic(&ml_kem::B32::from(m));
        (ct.to_vec(), ss.to_vec())
    };
    // One ratchet message: header under `hk`, body of `body_len` bytes under the message key
    // of chain key `ck`, with the optional post-quantum block.
    let message = |hk: [u8; 32],
                   ck: [u8; 32],
                   header: (&[u8; 32], u32, u32),
                   hn: &[u8],
                   block: Option<&[u8]>,
                   payload: &[u8],
                   body_len: usize,
                   th: &[u8; 32]| {
        let mk = hmac(&ck, 0x01);
        let mut plain = vec![2u8];
        plain.extend(header.0);
        plain.extend(header.1.to_be_bytes());
        plain.extend(header.2.to_be_bytes());
        let nonce = chacha20poly1305::XNonce::try_from(hn).unwrap();
        let tag = chacha20poly1305::XChaCha20Poly1305::new(&hk.into())
            .encrypt_inout_detached(&nonce, &[], plain.as_mut_slice().into())
            .unwrap();
        let region = [hn, &plain, tag.as_slice()].concat();
        let mut body = vec![0u8; body_len];
        let mut at = 1;
        if let Some(b) = block {
            body[0] = 0x01;
            body[1..1 + b.len()].copy_from_slice(b);
            at += b.len();
        }
        body[at..at + 2].copy_from_slice(&(payload.len() as u16).to_be_bytes());
        body[at + 2..at + 2 + payload.len()].copy_from_slice(payload);
        let km = hkdf_n(Some(hn), &mk, &[b"hush/v2/message"], 44);
        let cipher = chacha20poly1305::ChaCha20Poly1305::new_from_slice(&km[..32]).unwrap();
        let n = chacha20poly1305::Nonce::try_from(&km[32..]).unwrap();
        let ad = [&th[..], &region].concat();
        let tag = cipher
            .encrypt_inout_detached(&n, &ad, body.as_mut_slice().into())
            .unwrap();
        [region, body, tag.to_vec()].concat()
    };

    // Step 0 and 1: the inviter's and the invitee's keys.
    let (r0, r1) = (rnd(0), rnd(1));
    let (ik_b, spk_b) = (k32(&r0[..32]), k32(&r0[32..64]));
    let (ik_a, ek_a, seed_a, a0) = (
        k32(&r1[..32]),
        k32(&r1[32..64]),
        &r1[64..128],
        k32(&r1[128..160]),
    );
    let link = c.steps[0].link.as_ref().unwrap();
    let bin = URL_SAFE_NO_PAD
        .decode(link.strip_prefix("hush:").unwrap())
        .unwrap();
    let b = &bin[..bin.len() - 4];
    // The drop secret F: the third 32 bytes drawn, its first byte replaced by the
    // difficulty; the link carries D = SHA-256(F) and that byte.
    let mut f = r0[64..96].to_vec();
    f[0] = b[98];
    let d = sha256(&[&f]);
    assert_eq!(&b[66..98], &d, "the link's drop id");
    let ek_a_pub = kem_keygen(seed_a).encapsulation_key().to_bytes().to_vec();
    let th = sha256(&[
        b"hush/v2/transcript",
        b,
        &pubkey(ik_a),
        &pubkey(ek_a),
        &ek_a_pub,
    ]);
    let ikm = [
        &[0xff; 32][..],
        &dh(ik_a, pubkey(spk_b)),
        &dh(ek_a, pubkey(ik_b)),
        &dh(ek_a, pubkey(spk_b)),
    ]
    .concat();
    let okm = hkdf_n(None, &ikm, &[b"hush/v2/x3dh", &th], 128);
    let (sk, hka, nhkb) = (k32(&okm[..32]), k32(&okm[32..64]), k32(&okm[64..96]));

    // Step 2: the invitee's first message, chain 0 (no block), in an init envelope.
    let (rk_a, cks_a0, nhks_a) = kdf_rk(&sk, &dh(a0, pubkey(spk_b)));
    let r2 = rnd(2);
    let msg = message(
        hka,
        cks_a0,
        (&pubkey(a0), 0, 0),
        &r2[..24],
        None,
        &pt(2),
        2678,
        &th,
    );
    let prefix = [
        &[2u8][..],
        &sha256(&[b"hush/v2/link", b]),
        &pubkey(ik_a),
        &pubkey(ek_a),
        &ek_a_pub,
    ]
    .concat();
    let mut inner = [prefix, msg].concat();
    assert_eq!(inner.len(), 4056);
    let seal_ikm = [&d[..], &pubkey(ik_b), &pubkey(spk_b)].concat();
    let sealed = reseal_init(&seal_ikm, &r2[24..48], &mut inner);
    assert_eq!(
        hex::encode(sealed),
        hex::encode(env(2)),
        "step 2 (init envelope)"
    );

    // Step 4: the inviter's first ratchet step (on step 3's message): receive half without
    // KEM, send half encapsulating to ek_A.
    let r4 = rnd(4);
    let (rk1, _ckr, _nhkr) = kdf_rk(&sk, &dh(spk_b, pubkey(a0)));
    let (b1, kem_b1, m_b) = (k32(&r4[..32]), &r4[32..96], &r4[96..128]);
    let ek_b1 = kem_keygen(kem_b1).encapsulation_key().to_bytes().to_vec();
    let (ct_b1, ss_b1) = encaps(&ek_a_pub, m_b);
    let (rk2, cks_b1, _nhks_b) = kdf_rk(&rk1, &dh(b1, pubkey(a0)));
    let rk_b = kdf_pq(&rk2, &ss_b1);

    // Step 6: the inviter's first message, chain 1, under HKs = NHKb, with its block.
    let block_b1 = [ek_b1.clone(), ct_b1.clone()].concat();
    let msg = message(
        nhkb,
        cks_b1,
        (&pubkey(b1), 0, 0),
        &rnd(6)[..24],
        Some(&block_b1),
        &pt(6),
        3999,
        &th,
    );
    assert_eq!(
        hex::encode(msg),
        hex::encode(env(6)),
        "step 6 (first reply)"
    );

    // Step 7: the invitee's step: receive half decapsulates ct_B1 and mixes; send half
    // encapsulates to ek_B1. Its chain 0 had 2 messages, so PN = 2.
    let r7 = rnd(7);
    let (rk1, _ckr, _nhkr) = kdf_rk(&rk_a, &dh(a0, pubkey(b1)));
    let ct = ml_kem::ml_kem_768::Ciphertext::try_from(ct_b1.as_slice()).unwrap();
    let ss = kem_keygen(seed_a).decapsulate(&ct);
    assert_eq!(ss.as_slice(), ss_b1.as_slice(), "decapsulation");
    let rk1 = kdf_pq(&rk1, &ss);
    let (a1, kem_a1, m_a) = (k32(&r7[..32]), &r7[32..96], &r7[96..128]);
    let ek_a1 = kem_keygen(kem_a1).encapsulation_key().to_bytes().to_vec();
    let (ct_a1, ss_a1) = encaps(&ek_b1, m_a);
    let (rk2, cks_a1, _nhks) = kdf_rk(&rk1, &dh(a1, pubkey(b1)));
    let _rk_a = kdf_pq(&rk2, &ss_a1);

    // Step 8: the invitee's first post-quantum message, chain 2, under HKs = NHKs of its
    // initialisation, in a session envelope.
    let block_a1 = [ek_a1, ct_a1].concat();
    let msg = message(
        nhks_a,
        cks_a1,
        (&pubkey(a1), 2, 0),
        &rnd(8)[..24],
        Some(&block_a1),
        &pt(8),
        3999,
        &th,
    );
    assert_eq!(
        hex::encode(msg),
        hex::encode(env(8)),
        "step 8 (first PQ chain)"
    );
    let _ = rk_b;
}
