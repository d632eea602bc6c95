//! One sealed value, byte-compatible with Sealed Secrets' `HybridEncrypt`/`HybridDecrypt`:
//! a fresh AES-256 session key wrapped with RSA-OAEP (SHA-256, MGF1-SHA-256, the scope label),
//! the plaintext under AES-256-GCM with an all-zero nonce (safe because every session key is
//! used once), and `u16 BE len(rsa_ct) || rsa_ct || aes_ct+tag` as the blob.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rsa::sha2::Sha256;
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, PublicKey};
use zeroize::Zeroizing;

use crate::PrivateKey;

const SESSION_KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the system random number generator failed")]
    Random,
    #[error("RSA encryption of the session key failed: {0}")]
    Rsa(String),
    #[error("the sealed value is not valid base64")]
    Base64,
    #[error("the sealed value is malformed: {0}")]
    Malformed(&'static str),
    #[error(
        "no sealing key could decrypt the value (wrong key, or sealed for another scope, \
         name or namespace)"
    )]
    NoKeyOpens,
    #[error("the sealed value failed authentication: it was modified or truncated")]
    Tampered,
}

/// Seals `plaintext` for `public_key` under the OAEP `label` (see [`crate::Scope::label`]).
/// Returns the raw blob; [`seal_base64`] gives the text form stored in `encryptedData`.
pub fn seal(public_key: &PublicKey, label: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let mut session_key = Zeroizing::new([0u8; SESSION_KEY_LEN]);
    getrandom::fill(session_key.as_mut()).map_err(|_| SealError::Random)?;
    let rsa_ct = public_key
        .encrypt(
            &mut getrandom::SysRng,
            Oaep::<Sha256>::new_with_label(label),
            session_key.as_ref(),
        )
        .map_err(|e| SealError::Rsa(e.to_string()))?;
    let rsa_len = u16::try_from(rsa_ct.len())
        .map_err(|_| SealError::Rsa(format!("{}-bit key is too large", public_key.size() * 8)))?;
    let cipher = Aes256Gcm::new_from_slice(session_key.as_ref()).map_err(|_| SealError::Random)?;
    let aes_ct = cipher
        .encrypt(Nonce::from_slice(&[0u8; 12]), plaintext)
        .map_err(|_| SealError::Rsa("AES-GCM encryption failed".into()))?;
    let mut blob = Vec::with_capacity(2 + rsa_ct.len() + aes_ct.len());
    blob.extend_from_slice(&rsa_len.to_be_bytes());
    blob.extend_from_slice(&rsa_ct);
    blob.extend_from_slice(&aes_ct);
    Ok(blob)
}

/// [`seal`], as the standard padded base64 text Sealed Secrets stores.
pub fn seal_base64(
    public_key: &PublicKey,
    label: &[u8],
    plaintext: &[u8],
) -> Result<String, SealError> {
    Ok(base64::engine::general_purpose::STANDARD.encode(seal(public_key, label, plaintext)?))
}

/// Opens a blob with whichever of `private_keys` wrapped its session key (the blob names no
/// key). A key that unwraps the session key but whose AES-GCM tag fails means tampering.
pub fn open<'a>(
    private_keys: impl IntoIterator<Item = &'a PrivateKey>,
    label: &[u8],
    blob: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    open_indexed(private_keys, label, blob).map(|(_, plain)| plain)
}

/// [`open`], also telling which key (its position in `private_keys`) opened the blob: the
/// values of one object are normally sealed with the same key, so callers try it first next.
pub fn open_indexed<'a>(
    private_keys: impl IntoIterator<Item = &'a PrivateKey>,
    label: &[u8],
    blob: &[u8],
) -> Result<(usize, Zeroizing<Vec<u8>>), SealError> {
    let (len_bytes, rest) = blob
        .split_first_chunk::<2>()
        .ok_or(SealError::Malformed("shorter than its length prefix"))?;
    let rsa_len = usize::from(u16::from_be_bytes(*len_bytes));
    if rest.len() < rsa_len {
        return Err(SealError::Malformed(
            "length prefix beyond the end of the value",
        ));
    }
    let (rsa_ct, aes_ct) = rest.split_at(rsa_len);
    for (index, key) in private_keys.into_iter().enumerate() {
        // A ciphertext of another length cannot be for this key; skip the RSA work.
        if key.size() != rsa_len {
            continue;
        }
        let Some(session_key) = key.decrypt_oaep_sha256(label, rsa_ct) else {
            continue;
        };
        let cipher = Aes256Gcm::new_from_slice(&session_key).map_err(|_| SealError::Tampered)?;
        return cipher
            .decrypt(Nonce::from_slice(&[0u8; 12]), aes_ct)
            .map(|plain| (index, Zeroizing::new(plain)))
            .map_err(|_| SealError::Tampered);
    }
    Err(SealError::NoKeyOpens)
}

/// [`open`] for the base64 text of `encryptedData` values.
pub fn open_base64<'a>(
    private_keys: impl IntoIterator<Item = &'a PrivateKey>,
    label: &[u8],
    value: &str,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let blob = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| SealError::Base64)?;
    open(private_keys, label, &blob)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_keys;

    #[test]
    fn round_trip_with_label() {
        let key = test_keys::rsa_1024();
        let blob = seal(key.as_public_key(), b"ns/name", b"hunter2").unwrap();
        let opened = open([key], b"ns/name", &blob).unwrap();
        assert_eq!(opened.as_slice(), b"hunter2");
    }

    #[test]
    fn layout_is_length_prefix_rsa_then_gcm() {
        let key = test_keys::rsa_1024();
        let blob = seal(key.as_public_key(), b"", b"abc").unwrap();
        assert_eq!(
            &blob[..2],
            &128u16.to_be_bytes(),
            "u16 BE length of a 1024-bit RSA ct"
        );
        assert_eq!(
            blob.len(),
            2 + 128 + 3 + 16,
            "AES-GCM adds only the 16-byte tag"
        );
    }

    #[test]
    fn each_seal_uses_a_fresh_session_key() {
        let key = test_keys::rsa_1024();
        let a = seal(key.as_public_key(), b"", b"same").unwrap();
        let b = seal(key.as_public_key(), b"", b"same").unwrap();
        assert_ne!(
            a[130..],
            b[130..],
            "same plaintext must not give the same AES ciphertext"
        );
    }

    #[test]
    fn wrong_label_is_refused() {
        let key = test_keys::rsa_1024();
        let blob = seal(key.as_public_key(), b"ns/a", b"x").unwrap();
        assert_eq!(
            open([key], b"ns/b", &blob).unwrap_err(),
            SealError::NoKeyOpens
        );
        assert_eq!(open([key], b"", &blob).unwrap_err(), SealError::NoKeyOpens);
    }

    #[test]
    fn tries_every_key() {
        let right = test_keys::rsa_1024();
        let other = test_keys::rsa_1024_other();
        let blob = seal(right.as_public_key(), b"l", b"v").unwrap();
        assert_eq!(open([other, right], b"l", &blob).unwrap().as_slice(), b"v");
        assert_eq!(
            open([other], b"l", &blob).unwrap_err(),
            SealError::NoKeyOpens
        );
    }

    #[test]
    fn tampered_aes_part_is_refused() {
        let key = test_keys::rsa_1024();
        let mut blob = seal(key.as_public_key(), b"l", b"value").unwrap();
        let last = blob.len() - 1;
        blob[last] ^= 1;
        assert_eq!(open([key], b"l", &blob).unwrap_err(), SealError::Tampered);
    }

    #[test]
    fn truncated_or_garbage_is_an_error_not_a_panic() {
        let key = test_keys::rsa_1024();
        assert!(matches!(
            open([key], b"", &[]),
            Err(SealError::Malformed(_))
        ));
        assert!(matches!(
            open([key], b"", &[0x01]),
            Err(SealError::Malformed(_))
        ));
        assert!(matches!(
            open([key], b"", &[0xff, 0xff, 0]),
            Err(SealError::Malformed(_))
        ));
        assert_eq!(
            open([key], b"", &[0, 0]).unwrap_err(),
            SealError::NoKeyOpens
        );
        assert_eq!(
            open_base64([key], b"", "!!").unwrap_err(),
            SealError::Base64
        );
    }

    #[test]
    fn values_sealed_by_kubeseal_open_with_aws_lc() {
        let key = test_keys::rsa_2048();
        assert!(
            key.decrypts_with_aws_lc(),
            "2048-bit keys decrypt with AWS-LC"
        );
        let strict = open_base64([key], b"prod/db", test_keys::KUBESEAL_2048_STRICT).unwrap();
        assert_eq!(strict.as_slice(), b"hunter2");
        let cluster_wide = open_base64([key], b"", test_keys::KUBESEAL_2048_CLUSTER_WIDE).unwrap();
        assert_eq!(cluster_wide.as_slice(), b"hunter2");
    }

    #[test]
    fn aws_lc_refuses_a_kubeseal_value_under_another_label() {
        let key = test_keys::rsa_2048();
        for (value, label) in [
            (test_keys::KUBESEAL_2048_STRICT, &b"prod/other"[..]),
            (test_keys::KUBESEAL_2048_STRICT, b"other/db"),
            (test_keys::KUBESEAL_2048_STRICT, b""),
            (test_keys::KUBESEAL_2048_CLUSTER_WIDE, b"prod/db"),
        ] {
            assert_eq!(
                open_base64([key], label, value).unwrap_err(),
                SealError::NoKeyOpens,
                "label {:?}",
                String::from_utf8_lossy(label)
            );
        }
    }

    #[test]
    fn aws_lc_and_rsa_unwrap_the_same_session_key() {
        let key = test_keys::rsa_2048();
        let blob = base64_blob();
        let rsa_ct = &blob[2..2 + key.size()];
        let by_aws_lc = key.decrypt_oaep_sha256(b"prod/db", rsa_ct).unwrap();
        let by_rsa = key
            .rsa()
            .decrypt(Oaep::<Sha256>::new_with_label(&b"prod/db"[..]), rsa_ct)
            .unwrap();
        assert_eq!(by_aws_lc.as_slice(), by_rsa.as_slice());
        assert_eq!(by_aws_lc.len(), SESSION_KEY_LEN);
    }

    #[test]
    fn aws_lc_round_trip_and_tampering() {
        let key = test_keys::rsa_2048();
        let mut blob = seal(key.as_public_key(), b"ns/name", b"v").unwrap();
        assert_eq!(open([key], b"ns/name", &blob).unwrap().as_slice(), b"v");
        let last = blob.len() - 1;
        blob[last] ^= 1;
        assert_eq!(
            open([key], b"ns/name", &blob).unwrap_err(),
            SealError::Tampered
        );
    }

    #[test]
    fn keys_aws_lc_refuses_still_open_with_rsa() {
        // Sealed Secrets allows `--key-size 1024`; AWS-LC takes 2048 to 8192 bits.
        let key = test_keys::rsa_1024();
        assert!(!key.decrypts_with_aws_lc());
        let blob = seal(key.as_public_key(), b"l", b"v").unwrap();
        assert_eq!(open([key], b"l", &blob).unwrap().as_slice(), b"v");
    }

    #[test]
    fn a_value_opens_with_the_key_of_its_size_among_others() {
        // The 1024-bit key is skipped by length, without an RSA operation.
        let both = [test_keys::rsa_1024(), test_keys::rsa_2048()];
        let opened = open_indexed(both, b"prod/db", &base64_blob()).unwrap();
        assert_eq!(opened.0, 1);
        assert_eq!(opened.1.as_slice(), b"hunter2");
    }

    fn base64_blob() -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(test_keys::KUBESEAL_2048_STRICT)
            .unwrap()
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let key = test_keys::rsa_1024();
        let text = seal_base64(key.as_public_key(), b"", b"").unwrap();
        assert!(open_base64([key], b"", &text).unwrap().is_empty());
    }
}
