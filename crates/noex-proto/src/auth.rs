//! Handshake proofs: HMAC-SHA256 of the shared secret over everything both sides said.
//!
//! Each side proves it knows the cookie without sending it: the dialer's proof (in `Proof`) and then the
//! acceptor's (in `Welcome`, sent only once the dialer's checked out) are MACs over the same transcript with a
//! different role label, so neither can be replayed as the other, and both nonces make every handshake's
//! transcript unique. The exact byte layout is in `docs/protocol.md`; [`transcript`] is its reference
//! implementation.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::NodeId;

/// Which side a proof comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The node that opened the connection.
    Dialer,
    /// The node that accepted it.
    Acceptor,
}

/// What both sides said during a handshake, in the order the proof covers it.
#[derive(Clone, Debug)]
pub struct Handshake<'a> {
    /// The protocol version agreed.
    pub version: u32,
    /// The dialer and its incarnation.
    pub dialer: (&'a NodeId, u32),
    /// The acceptor and its incarnation.
    pub acceptor: (&'a NodeId, u32),
    /// The dialer's nonce.
    pub dialer_nonce: &'a [u8],
    /// The acceptor's nonce.
    pub acceptor_nonce: &'a [u8],
}

/// The smallest nonce accepted, in bytes (128 bits).
pub const MIN_NONCE_LEN: usize = 16;

/// The nonce length this implementation sends.
pub const NONCE_LEN: usize = 32;

/// The length of a proof (an HMAC-SHA256 tag).
pub const PROOF_LEN: usize = 32;

/// The bytes a proof is computed over.
pub fn transcript(role: Role, handshake: &Handshake<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(b"noex-handshake-v1\0");
    out.extend_from_slice(match role {
        Role::Dialer => b"dialer\0",
        Role::Acceptor => b"acceptor\0",
    });
    out.extend_from_slice(&handshake.version.to_be_bytes());
    for (node, creation) in [handshake.dialer, handshake.acceptor] {
        field(&mut out, node.as_str().as_bytes());
        out.extend_from_slice(&creation.to_be_bytes());
    }
    field(&mut out, handshake.dialer_nonce);
    field(&mut out, handshake.acceptor_nonce);
    out
}

/// The proof `role` sends.
pub fn proof(cookie: &[u8], role: Role, handshake: &Handshake<'_>) -> [u8; PROOF_LEN] {
    mac(cookie, role, handshake).finalize().into_bytes().into()
}

/// Whether `received` is `role`'s proof for this handshake; compared in constant time.
pub fn verify(cookie: &[u8], role: Role, handshake: &Handshake<'_>, received: &[u8]) -> bool {
    mac(cookie, role, handshake).verify_slice(received).is_ok()
}

/// The MAC keyed with the cookie, fed with `role`'s transcript.
fn mac(cookie: &[u8], role: Role, handshake: &Handshake<'_>) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(cookie).expect("HMAC takes keys of any length");
    mac.update(&transcript(role, handshake));
    mac
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (NodeId, NodeId) {
        ("a@127.0.0.1:1".parse().unwrap(), "b@127.0.0.1:2".parse().unwrap())
    }

    #[test]
    fn proofs_verify_only_with_the_same_secret_role_and_transcript() {
        let (a, b) = ids();
        let handshake = Handshake {
            version: 1,
            dialer: (&a, 1),
            acceptor: (&b, 2),
            dialer_nonce: &[1; 32],
            acceptor_nonce: &[2; 32],
        };
        let acceptor_proof = proof(b"cookie", Role::Acceptor, &handshake);
        assert!(verify(b"cookie", Role::Acceptor, &handshake, &acceptor_proof));
        assert!(!verify(b"other", Role::Acceptor, &handshake, &acceptor_proof), "wrong secret");
        assert!(
            !verify(b"cookie", Role::Dialer, &handshake, &acceptor_proof),
            "a proof cannot be replayed as the other role"
        );
        let fresh = Handshake { acceptor_nonce: &[3; 32], ..handshake.clone() };
        assert!(!verify(b"cookie", Role::Acceptor, &fresh, &acceptor_proof), "nonces bind the proof to one handshake");
        assert!(!verify(b"cookie", Role::Acceptor, &handshake, &acceptor_proof[..31]), "truncated");
    }

    #[test]
    fn the_transcript_layout_is_stable() {
        let (a, b) = ids();
        let handshake = Handshake {
            version: 1,
            dialer: (&a, 7),
            acceptor: (&b, 9),
            dialer_nonce: &[0xaa],
            acceptor_nonce: &[0xbb],
        };
        let mut expected = b"noex-handshake-v1\0dialer\0".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 1]);
        expected.extend_from_slice(&[0, 0, 0, 13]);
        expected.extend_from_slice(b"a@127.0.0.1:1");
        expected.extend_from_slice(&[0, 0, 0, 7]);
        expected.extend_from_slice(&[0, 0, 0, 13]);
        expected.extend_from_slice(b"b@127.0.0.1:2");
        expected.extend_from_slice(&[0, 0, 0, 9]);
        expected.extend_from_slice(&[0, 0, 0, 1, 0xaa, 0, 0, 0, 1, 0xbb]);
        assert_eq!(transcript(Role::Dialer, &handshake), expected);
    }
}
