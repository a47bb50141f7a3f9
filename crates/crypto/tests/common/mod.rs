//! Shared helpers for hush-crypto's integration tests.
#![allow(dead_code)] // each test file uses a different subset

use hush_crypto::handshake::InitOutcome;
use hush_crypto::{Envelope, Invite, InviteKind, InviterSecrets, RelayAddress, Session};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub fn relay() -> RelayAddress {
    // Pin: 32 bytes of 9, in base64url.
    "hush://CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk@relay.example:4433"
        .parse()
        .unwrap()
}

/// A pair that has completed the handshake and one round trip (PQ mixed on both sides).
pub struct Pair {
    pub inviter: Session,
    pub invitee: Session,
    pub rng: ChaCha20Rng,
}

pub fn new_inviter(kind: InviteKind, rng: &mut ChaCha20Rng) -> (InviterSecrets, Invite) {
    let secrets = InviterSecrets::generate(kind, relay(), rng).unwrap();
    let link = secrets.invite().unwrap().to_link();
    let invite = Invite::parse(&link).unwrap();
    (secrets, invite)
}

pub fn expect_new(outcome: InitOutcome) -> (Session, Vec<u8>) {
    match outcome {
        InitOutcome::New { session, payload } => (*session, payload),
        InitOutcome::Existing(_) => panic!("expected a new relationship"),
    }
}

pub fn established(seed: u64) -> Pair {
    let mut rng = rng(seed);
    let (mut secrets, invite) = new_inviter(InviteKind::OneTime, &mut rng);
    let mut invitee = invite.accept(&mut rng).unwrap();
    let env = invitee.encrypt(b"hello", &mut rng).unwrap();
    let (mut inviter, first) = expect_new(secrets.handle_init(&env, &mut rng).unwrap());
    assert_eq!(first, b"hello");
    let env = inviter.encrypt(b"welcome", &mut rng).unwrap();
    assert_eq!(invitee.decrypt(&env, &mut rng).unwrap(), b"welcome");
    let env = invitee.encrypt(b"thanks", &mut rng).unwrap();
    assert_eq!(inviter.decrypt(&env, &mut rng).unwrap(), b"thanks");
    assert!(invitee.post_quantum() && inviter.post_quantum());
    Pair {
        inviter,
        invitee,
        rng,
    }
}

pub fn send(from: &mut Session, text: &[u8], rng: &mut ChaCha20Rng) -> Envelope {
    from.encrypt(text, rng).unwrap()
}

/// An invite just accepted: the invitee awaits the inviter's reply (its envelopes are init
/// envelopes) and the inviter has no session yet.
pub struct Accepted {
    pub secrets: InviterSecrets,
    pub invitee: Session,
    pub rng: ChaCha20Rng,
}

pub fn accepted(seed: u64) -> Accepted {
    let mut rng = rng(seed);
    let (secrets, invite) = new_inviter(InviteKind::OneTime, &mut rng);
    let invitee = invite.accept(&mut rng).unwrap();
    assert!(invitee.awaiting_reply());
    Accepted {
        secrets,
        invitee,
        rng,
    }
}

/// `n` envelopes whose payloads are the big-endian numbers `first..first + n`.
pub fn send_numbered(
    from: &mut Session,
    first: u32,
    n: u32,
    rng: &mut ChaCha20Rng,
) -> Vec<Envelope> {
    (first..first + n)
        .map(|i| send(from, &i.to_be_bytes(), rng))
        .collect()
}

/// Decrypting `env` must fail with `want` and leave `session` exactly as it was.
pub fn assert_rejected(
    session: &mut Session,
    env: &Envelope,
    want: hush_crypto::Error,
    rng: &mut ChaCha20Rng,
) {
    let before = session.to_bytes();
    assert_eq!(session.decrypt(env, rng), Err(want));
    assert_eq!(
        session.to_bytes().as_slice(),
        before.as_slice(),
        "a failed decryption changed the session"
    );
}

/// The link body `B` of `link`, edited by `edit`, made into a link with a correct checksum
/// (the checksum is unkeyed: anyone who handles the link can do this).
pub fn edited_link(link: &str, edit: impl FnOnce(&mut Vec<u8>)) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use sha2::Digest;
    let bin = URL_SAFE_NO_PAD
        .decode(link.strip_prefix("hush:").unwrap())
        .unwrap();
    let mut body = bin[..bin.len() - 4].to_vec();
    edit(&mut body);
    let sum = sha2::Sha256::new()
        .chain_update(b"hush/v2/invite-checksum")
        .chain_update(&body)
        .finalize();
    body.extend_from_slice(&sum[..4]);
    format!("hush:{}", URL_SAFE_NO_PAD.encode(body))
}
