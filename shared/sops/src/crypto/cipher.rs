//! The value cipher: one AES-256-GCM encryption per value, in sops' `ENC[...]` notation.
//!
//! sops uses a 32-byte IV (GCM then derives its counter block through GHASH), random per value,
//! and the value's path as additional data, so a ciphertext moved to another key fails to open.

use aes_gcm::aead::{Aead, AeadInPlace, Payload};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;

use crate::crypto::data_key::DataKey;

const TAG_LEN: usize = 16;
const IV_LEN: usize = 32;

/// The `type:` of an encrypted value, including the comment type that is not a scalar kind.
pub const COMMENT_TYPE: &str = "comment";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CipherError {
    #[error("value is not in sops' ENC[AES256_GCM,...] format")]
    NotEncrypted,
    #[error("malformed encrypted value: {0}")]
    Malformed(&'static str),
    /// Wrong data key, tampered ciphertext, or a value moved to another path.
    #[error("could not decrypt value: authentication failed (wrong key, tampered or moved value)")]
    Authentication,
}

/// An `ENC[...]` value taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedValue<'a> {
    pub data: Vec<u8>,
    pub iv: Vec<u8>,
    pub tag: Vec<u8>,
    pub type_name: &'a str,
}

/// True when `s` starts like an encrypted value (the same test sops applies: its pattern is not
/// anchored at the end, so a trailing newline from a block scalar is accepted).
/// How every value sops encrypts begins.
pub const ENC_PREFIX: &str = "ENC[AES256_GCM,data:";

pub fn is_encrypted(s: &str) -> bool {
    s.starts_with(ENC_PREFIX)
}

/// The base64 fields of an `ENC[...]` value, not yet decoded.
struct Fields<'a> {
    data: &'a str,
    iv: &'a str,
    tag: &'a str,
    type_name: &'a str,
}

fn fields(s: &str) -> Result<Fields<'_>, CipherError> {
    let body = s
        .strip_prefix(ENC_PREFIX)
        .ok_or(CipherError::NotEncrypted)?;
    // sops' pattern allows anything after the closing bracket; only a trailing newline (block
    // scalar form) is expected in practice.
    let end = body.rfind(']').ok_or(CipherError::Malformed("missing ]"))?;
    let body = &body[..end];
    let (data, rest) = split_field(body, ",iv:").ok_or(CipherError::Malformed("missing iv"))?;
    let (iv, rest) = split_field(rest, ",tag:").ok_or(CipherError::Malformed("missing tag"))?;
    let (tag, type_name) =
        split_field(rest, ",type:").ok_or(CipherError::Malformed("missing type"))?;
    Ok(Fields {
        data,
        iv,
        tag,
        type_name,
    })
}

/// `s.split_once(sep)` for a `sep` starting with `,`: looking for the comma alone is much faster
/// than setting up a substring search for every value of a large file.
fn split_field<'a>(s: &'a str, sep: &str) -> Option<(&'a str, &'a str)> {
    let mut from = 0;
    while let Some(p) = memchr::memchr(b',', &s.as_bytes()[from..]) {
        let at = from + p;
        if s.as_bytes()[at..].starts_with(sep.as_bytes()) {
            return Some((&s[..at], &s[at + sep.len()..]));
        }
        from = at + 1;
    }
    None
}

fn decode(part: &str, what: &'static str) -> Result<Vec<u8>, CipherError> {
    B64.decode(part.trim())
        .map_err(|_| CipherError::Malformed(what))
}

pub fn parse(s: &str) -> Result<EncryptedValue<'_>, CipherError> {
    let f = fields(s)?;
    Ok(EncryptedValue {
        data: decode(f.data, "data is not base64")?,
        iv: decode(f.iv, "iv is not base64")?,
        tag: decode(f.tag, "tag is not base64")?,
        type_name: f.type_name,
    })
}

/// Encrypts `plaintext` under `key` with `aad` (the value's path, `a:b:`) and a fresh IV.
pub fn encrypt(plaintext: &[u8], type_name: &str, key: &DataKey, aad: &[u8]) -> String {
    let mut iv = [0u8; IV_LEN];
    rand::thread_rng().fill_bytes(&mut iv);
    encrypt_with_iv(plaintext, type_name, key, aad, &iv)
}

fn encrypt_with_iv(
    plaintext: &[u8],
    type_name: &str,
    key: &DataKey,
    aad: &[u8],
    iv: &[u8; IV_LEN],
) -> String {
    let cipher = key.cipher();
    let ciphertext = cipher
        .encrypt(
            iv.into(),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    let (data, tag) = ciphertext.split_at(ciphertext.len() - TAG_LEN);
    format!(
        "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{}]",
        B64.encode(data),
        B64.encode(iv),
        B64.encode(tag),
        type_name
    )
}

/// Encrypts `plaintext` to one base64 token (IV || ciphertext || tag) with no `]` or `,` in it,
/// for data that rides after an `ENC[...]` value (sops ignores what follows the `]`).
pub fn encrypt_token(plaintext: &[u8], key: &DataKey, aad: &[u8]) -> String {
    let mut iv = [0u8; IV_LEN];
    rand::thread_rng().fill_bytes(&mut iv);
    let cipher = key.cipher();
    let ciphertext = cipher
        .encrypt(
            (&iv).into(),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    let mut out = iv.to_vec();
    out.extend_from_slice(&ciphertext);
    B64.encode(out)
}

/// Opens an [`encrypt_token`] token.
pub fn open_token(
    token: &str,
    key: &DataKey,
    aad: &[u8],
) -> Result<zeroize::Zeroizing<Vec<u8>>, CipherError> {
    let raw = B64
        .decode(token.trim())
        .map_err(|_| CipherError::Malformed("token is not base64"))?;
    if raw.len() < IV_LEN + TAG_LEN {
        return Err(CipherError::Malformed("token is too short"));
    }
    let (iv, ciphertext) = raw.split_at(IV_LEN);
    let cipher = key.cipher();
    cipher
        .decrypt(
            iv.into(),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map(zeroize::Zeroizing::new)
        .map_err(|_| CipherError::Authentication)
}

/// Decrypts an `ENC[...]` value; returns the plaintext and its `type:` name.
pub fn decrypt<'a>(
    s: &'a str,
    key: &DataKey,
    aad: &[u8],
) -> Result<(zeroize::Zeroizing<Vec<u8>>, &'a str), CipherError> {
    let f = fields(s)?;
    let mut data = decode(f.data, "data is not base64")?;
    // The IV and tag decoded on the stack, checked in the order `parse` would report.
    let mut iv = [0u8; 48];
    let mut tag = [0u8; 32];
    let iv_len = B64.decode_slice(f.iv.trim(), &mut iv);
    let tag_len = B64.decode_slice(f.tag.trim(), &mut tag);
    let (iv_len, tag_len) = match (iv_len, tag_len) {
        (Ok(i), Ok(t)) => (i, t),
        (Err(base64::DecodeSliceError::DecodeError(_)), _) => {
            return Err(CipherError::Malformed("iv is not base64"))
        }
        (Ok(_), Err(base64::DecodeSliceError::DecodeError(_))) => {
            return Err(CipherError::Malformed("tag is not base64"))
        }
        // Far too long to be right; `parse` says what is wrong with it first.
        _ => {
            let value = parse(s)?;
            (value.iv.len(), value.tag.len())
        }
    };
    if tag_len != TAG_LEN {
        return Err(CipherError::Malformed("tag is not 16 bytes"));
    }
    // sops accepts any IV length on decrypt (it builds GCM with the IV's size); files written by
    // sops and enseal always use 32 bytes, and anything else is treated as tampering.
    if iv_len != IV_LEN {
        return Err(CipherError::Malformed("iv is not 32 bytes"));
    }
    let cipher = key.cipher();
    cipher
        .decrypt_in_place_detached(iv[..IV_LEN].into(), aad, &mut data, tag[..TAG_LEN].into())
        .map_err(|_| CipherError::Authentication)?;
    Ok((zeroize::Zeroizing::new(data), f.type_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_type_and_binds_the_path() {
        let key = DataKey::generate();
        let enc = encrypt(b"s3cret", "str", &key, b"db:password:");
        assert!(is_encrypted(&enc));
        let (plain, ty) = decrypt(&enc, &key, b"db:password:").unwrap();
        assert_eq!(&plain[..], b"s3cret");
        assert_eq!(ty, "str");
        assert_eq!(
            decrypt(&enc, &key, b"db:user:").unwrap_err(),
            CipherError::Authentication
        );
    }

    #[test]
    fn opens_values_written_by_sops() {
        // Test vector from a file written by sops 3.11.0 with a throwaway age key; the data key
        // was recovered from its age stanza with the age CLI.
        let key = DataKey::from_slice(
            &hex::decode("96848c79ec277288f5333e67f1fff9061729ee397e8766a7c77719edf24b2ed0")
                .unwrap(),
        )
        .unwrap();
        let password = "ENC[AES256_GCM,data:pfxyHEoU,iv:xefXNbdNCp/gwDLA0TReHCicXJg5ig6QXx+Uiaojs9A=,tag:M+X2AyzY+FHI6U5aN0PPVg==,type:str]";
        let (plain, ty) = decrypt(password, &key, b"db:password:").unwrap();
        assert_eq!((&plain[..], ty), (&b"s3cret"[..], "str"));
        let port = "ENC[AES256_GCM,data:u2EJug==,iv:DKEAvDBxuf3nJ2GTrMvnhmPVP3tCvDw3Oafzztly/Q8=,tag:NlD9sEWmMNJWj0IwgGWEfA==,type:int]";
        let (plain, ty) = decrypt(port, &key, b"db:port:").unwrap();
        assert_eq!((&plain[..], ty), (&b"5432"[..], "int"));
    }

    #[test]
    fn writes_the_sops_layout() {
        let key = DataKey::generate();
        let enc = encrypt_with_iv(b"admin", "str", &key, b"db:user:", &[7u8; 32]);
        let parsed = parse(&enc).unwrap();
        assert_eq!(parsed.iv, vec![7u8; 32]);
        assert_eq!((parsed.data.len(), parsed.tag.len()), (5, 16));
        assert!(enc.ends_with(",type:str]"));
    }

    #[test]
    fn accepts_the_block_scalar_trailing_newline_like_sops() {
        let key = DataKey::generate();
        let enc = encrypt(b"x", "str", &key, b"k:") + "\n";
        assert_eq!(&decrypt(&enc, &key, b"k:").unwrap().0[..], b"x");
    }

    /// The IV and tag are decoded into fixed buffers; odd sizes must still get the errors that
    /// taking the value apart with [`parse`] gives, in the same order.
    #[test]
    fn malformed_fields_are_reported_in_order_whatever_their_size() {
        let key = DataKey::generate();
        let b = |n: usize| B64.encode(vec![1u8; n]);
        let value =
            |iv: &str, tag: &str| format!("ENC[AES256_GCM,data:AAAA,iv:{iv},tag:{tag},type:str]");
        let malformed = |s: &str| decrypt(s, &key, b"k:").unwrap_err();
        for (iv, tag, err) in [
            (b(31), b(16), "iv is not 32 bytes"),
            (b(64), b(16), "iv is not 32 bytes"),
            (b(64), b(40), "tag is not 16 bytes"),
            (b(64), "!!".to_string(), "tag is not base64"),
            ("!!".to_string(), b(40), "iv is not base64"),
            (b(32), b(15), "tag is not 16 bytes"),
            (b(32), b(17), "tag is not 16 bytes"),
        ] {
            assert_eq!(
                malformed(&value(&iv, &tag)),
                CipherError::Malformed(err),
                "{iv} {tag}"
            );
        }
        assert_eq!(
            malformed("ENC[AES256_GCM,data:!,iv:x,tag:y,type:str]"),
            CipherError::Malformed("data is not base64")
        );
        assert_eq!(
            malformed("ENC[AES256_GCM,data:AAAA,iv,:x,tag:y,type:str]"),
            CipherError::Malformed("missing iv")
        );
    }

    #[test]
    fn tampered_values_are_refused() {
        let key = DataKey::generate();
        let enc = encrypt(b"value", "str", &key, b"k:");
        let tampered = enc.replacen("data:", "data:A", 1);
        assert!(decrypt(&tampered, &key, b"k:").is_err());
        assert_eq!(
            decrypt("plain", &key, b"k:").unwrap_err(),
            CipherError::NotEncrypted
        );
    }
}
