//! Native OpenPGP: PGP data keys opened in-process with armored secret keys, for the places
//! that have no gpg (the controller image is FROM scratch). Flux keeps such keys as `*.asc`
//! entries of its decryption Secret, next to `*.agekey` ones, and the SopsSecret controller
//! reads them the same way.
//!
//! A pgp stanza's `enc` is what `gpg --encrypt -a` printed (keys/pgp.rs): an armored message of
//! a public-key-encrypted session key (PKESK) per recipient and an encrypted, integrity-protected
//! body (SEIPD) holding a literal packet, usually compressed (gpg uses ZLIB for its own keys,
//! whose preferences list ZLIB, BZIP2, ZIP). rpgp (the `pgp` crate) reads all of it; its secret
//! key material is zeroized on drop (`PlainSecretParams` is `ZeroizeOnDrop`), and the data key
//! comes back in a zeroizing buffer.
//!
//! Passphrase-protected keys are refused with a message naming the key: the controller has no
//! prompt, and Flux does not take a passphrase either. They are remembered (their fingerprints
//! only) so that a file encrypted for one says why it cannot be opened, rather than "no key".
//!
//! Messages name fingerprints, key IDs and where a key came from, never key or message text.

use std::fmt;
use std::io::Read;
use std::sync::Arc;

use pgp::composed::{Deserializable, Esk, Message, SignedSecretKey};
use pgp::packet::PublicKeyEncryptedSessionKey;
use pgp::types::{KeyDetails, Password};
use zeroize::Zeroizing;

/// The most bytes a message may give: a data key is 32 bytes, a Shamir share 33. More is not a
/// sops data key (a compressed message could unpack to gigabytes), and reading stops there.
const MAX_DATA_KEY_LEN: usize = 1024;

/// The deepest nesting of compressed packets read; gpg writes one level.
const MAX_COMPRESSION_DEPTH: usize = 4;

/// Armored secret keys held in memory, to open PGP stanzas without gpg. Cheap to clone (the
/// keys are shared, not copied).
#[derive(Clone, Default)]
pub struct PgpSecretKeys {
    usable: Vec<Arc<HeldKey>>,
    /// Keys whose secret parts are all protected by a passphrase, with where they came from.
    protected: Vec<Arc<ProtectedKey>>,
}

struct HeldKey {
    key: SignedSecretKey,
    fingerprint: String,
}

struct ProtectedKey {
    source: String,
    fingerprint: String,
    key: SignedSecretKey,
}

/// Why armored keys could not be read, or a PGP stanza not opened with them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenPgpError {
    #[error("{source_name} is not an armored OpenPGP secret key: {reason}")]
    InvalidKey { source_name: String, reason: String },
    #[error("{source_name} holds no OpenPGP secret key (only public keys, or no key block)")]
    NoSecretKey { source_name: String },
    #[error("could not decrypt the data key with PGP key {fingerprint}: the secret key {key} (from {source_name}) is protected by a passphrase, and there is no prompt here; export it without one (gpg --passwd, then gpg --armor --export-secret-keys)")]
    PassphraseProtected {
        fingerprint: String,
        key: String,
        source_name: String,
    },
    #[error("could not decrypt the data key with PGP key {fingerprint}: none of the {held} PGP secret keys held is a recipient of the message (it is encrypted for key IDs {recipients})")]
    NoMatchingKey {
        fingerprint: String,
        held: usize,
        recipients: String,
    },
    #[error("could not decrypt the data key with PGP key {fingerprint}: {reason}")]
    Decrypt { fingerprint: String, reason: String },
    #[error("could not decrypt the data key with PGP key {fingerprint}: the message holds more than {MAX_DATA_KEY_LEN} bytes, which is no data key")]
    TooLong { fingerprint: String },
}

impl PgpSecretKeys {
    /// The secret keys of the armored `text` (one or more `PGP PRIVATE KEY BLOCK`s; public key
    /// blocks beside them, as in sops' functional-tests key file, are skipped). `source_name`
    /// names the text in messages (a file, a Secret entry).
    pub fn parse(source_name: &str, text: &[u8]) -> Result<PgpSecretKeys, OpenPgpError> {
        let mut keys = PgpSecretKeys::default();
        keys.add(source_name, text)?;
        Ok(keys)
    }

    /// Adds the secret keys of `text` (see [`PgpSecretKeys::parse`]); returns how many were
    /// added, passphrase-protected ones included. On an error nothing is added.
    pub fn add(&mut self, source_name: &str, text: &[u8]) -> Result<usize, OpenPgpError> {
        let invalid = |reason: String| OpenPgpError::InvalidKey {
            source_name: source_name.to_string(),
            reason,
        };
        let mut usable = Vec::new();
        let mut protected = Vec::new();
        for block in private_key_blocks(text) {
            let (parsed, _) = SignedSecretKey::from_armor_many(block)
                .map_err(|e| invalid(format!("unreadable armor ({e})")))?;
            for key in parsed {
                let key = key.map_err(|e| invalid(format!("unreadable key ({e})")))?;
                let fingerprint = format!("{:X}", key.primary_key.fingerprint());
                if is_usable(&key) {
                    usable.push(Arc::new(HeldKey { key, fingerprint }));
                } else {
                    protected.push(Arc::new(ProtectedKey {
                        source: source_name.to_string(),
                        fingerprint,
                        key,
                    }));
                }
            }
        }
        let added = usable.len() + protected.len();
        if added == 0 {
            return Err(OpenPgpError::NoSecretKey {
                source_name: source_name.to_string(),
            });
        }
        self.usable.extend(usable);
        self.protected.extend(protected);
        Ok(added)
    }

    /// The number of keys held, passphrase-protected ones included.
    pub fn len(&self) -> usize {
        self.usable.len() + self.protected.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The primary fingerprints of the keys held (for logs: never key material).
    pub fn fingerprints(&self) -> Vec<String> {
        let usable = self.usable.iter().map(|k| k.fingerprint.clone());
        usable
            .chain(self.protected.iter().map(|k| k.fingerprint.clone()))
            .collect()
    }

    /// Opens the armored message `enc` of a pgp stanza (`fingerprint` names it in messages)
    /// with the first key held that is one of its recipients.
    pub fn unwrap(&self, enc: &str, fingerprint: &str) -> Result<Zeroizing<Vec<u8>>, OpenPgpError> {
        let fp = || fingerprint.to_string();
        let failed = |reason: String| OpenPgpError::Decrypt {
            fingerprint: fp(),
            reason,
        };
        let (message, _) = Message::from_armor(enc.as_bytes())
            .map_err(|e| failed(format!("the message is not armored OpenPGP ({e})")))?;
        let Message::Encrypted { esk, .. } = &message else {
            return Err(failed("the message is not encrypted".into()));
        };
        let pkesks: Vec<&PublicKeyEncryptedSessionKey> = esk
            .iter()
            .filter_map(|e| match e {
                Esk::PublicKeyEncryptedSessionKey(p) => Some(p),
                Esk::SymKeyEncryptedSessionKey(_) => None,
            })
            .collect();
        let matching: Vec<&SignedSecretKey> = self
            .usable
            .iter()
            .map(|k| &k.key)
            .filter(|k| pkesks.iter().any(|p| is_recipient(p, k)))
            .collect();
        if matching.is_empty() {
            // A protected key named by the message (not by a wildcard, which names every key)
            // is the reason; otherwise no key held is for this message.
            if let Some(k) = self.protected.iter().find(|k| {
                pkesks
                    .iter()
                    .any(|p| !is_wildcard(p) && is_recipient(p, &k.key))
            }) {
                return Err(OpenPgpError::PassphraseProtected {
                    fingerprint: fp(),
                    key: k.fingerprint.clone(),
                    source_name: k.source.clone(),
                });
            }
            return Err(OpenPgpError::NoMatchingKey {
                fingerprint: fp(),
                held: self.len(),
                recipients: recipient_ids(&pkesks),
            });
        }
        let no_password = Password::empty();
        let mut plain = message
            .decrypt_with_keys(vec![&no_password; matching.len()], matching)
            .map_err(|e| {
                failed(format!(
                    "the message does not open with the matching key ({e})"
                ))
            })?;
        for _ in 0..MAX_COMPRESSION_DEPTH {
            if !plain.is_compressed() {
                break;
            }
            plain = plain
                .decompress()
                .map_err(|e| failed(format!("the compressed data is corrupt ({e})")))?;
        }
        if plain.is_compressed() {
            return Err(failed("the message nests compressed data too deep".into()));
        }
        let mut out = Zeroizing::new(Vec::with_capacity(64));
        (&mut plain)
            .take(MAX_DATA_KEY_LEN as u64 + 1)
            .read_to_end(&mut out)
            // The integrity check (MDC) runs as the last bytes are read: a changed message
            // fails here.
            .map_err(|e| failed(format!("the message is corrupt ({e})")))?;
        if out.len() > MAX_DATA_KEY_LEN {
            return Err(OpenPgpError::TooLong { fingerprint: fp() });
        }
        if out.is_empty() {
            return Err(failed("the message holds no data".into()));
        }
        Ok(out)
    }
}

impl fmt::Debug for PgpSecretKeys {
    /// Fingerprints only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgpSecretKeys")
            .field("fingerprints", &self.fingerprints())
            .finish()
    }
}

/// Whether every secret component of `key` can be used without a passphrase. gpg exports a key
/// whose primary key is kept offline (`sec#`) with a "GNU dummy" primary, which reads as
/// protected; its encryption subkeys still decrypt, so only subkeys count when there are any.
fn is_usable(key: &SignedSecretKey) -> bool {
    if key.secret_subkeys.is_empty() {
        !key.primary_key.secret_params().is_encrypted()
    } else {
        key.secret_subkeys
            .iter()
            .any(|s| !s.key.secret_params().is_encrypted())
    }
}

fn is_recipient(pkesk: &PublicKeyEncryptedSessionKey, key: &SignedSecretKey) -> bool {
    pkesk.match_identity(key.primary_key.public_key())
        || key
            .secret_subkeys
            .iter()
            .any(|s| pkesk.match_identity(s.key.public_key()))
}

fn is_wildcard(pkesk: &PublicKeyEncryptedSessionKey) -> bool {
    match (pkesk.id(), pkesk.fingerprint()) {
        (Ok(id), _) => id.is_wildcard(),
        (_, Ok(fp)) => fp.is_none(),
        _ => false,
    }
}

/// The key IDs (or v6 fingerprints) a message is encrypted for, as gpg prints them.
fn recipient_ids(pkesks: &[&PublicKeyEncryptedSessionKey]) -> String {
    let ids: Vec<String> = pkesks
        .iter()
        .map(|p| match (p.id(), p.fingerprint()) {
            (Ok(id), _) if id.is_wildcard() => "(anonymous)".to_string(),
            (Ok(id), _) => hex::encode_upper(id.as_ref()),
            (_, Ok(Some(fp))) => format!("{fp:X}"),
            _ => "(anonymous)".to_string(),
        })
        .collect();
    if ids.is_empty() {
        "none".into()
    } else {
        ids.join(", ")
    }
}

/// The `PGP PRIVATE KEY BLOCK` armors of `text`, each with its BEGIN and END lines. rpgp reads
/// one armor at a time, and files hold several (sops' test key file: two secret, three public).
fn private_key_blocks(text: &[u8]) -> Vec<&[u8]> {
    const BEGIN: &[u8] = b"-----BEGIN PGP PRIVATE KEY BLOCK-----";
    const END: &[u8] = b"-----END PGP PRIVATE KEY BLOCK-----";
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = find(rest, BEGIN) {
        let from = &rest[start..];
        let Some(end) = find(from, END) else {
            // An unterminated block is handed over as is: rpgp says what is wrong with it.
            blocks.push(from);
            break;
        };
        blocks.push(&from[..end + END.len()]);
        rest = &from[end + END.len()..];
    }
    blocks
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sops' functional-tests key file holds secret and public blocks one after the other; only
    /// the secret ones are read, each whole.
    #[test]
    fn only_private_key_blocks_are_taken_each_with_its_armor_lines() {
        let text = b"junk\n-----BEGIN PGP PRIVATE KEY BLOCK-----\nA\n-----END PGP PRIVATE KEY BLOCK-----\n\
-----BEGIN PGP PUBLIC KEY BLOCK-----\nB\n-----END PGP PUBLIC KEY BLOCK-----\n\
-----BEGIN PGP PRIVATE KEY BLOCK-----\nC\n-----END PGP PRIVATE KEY BLOCK-----";
        let blocks: Vec<String> = private_key_blocks(text)
            .into_iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        assert_eq!(
            blocks,
            [
                "-----BEGIN PGP PRIVATE KEY BLOCK-----\nA\n-----END PGP PRIVATE KEY BLOCK-----",
                "-----BEGIN PGP PRIVATE KEY BLOCK-----\nC\n-----END PGP PRIVATE KEY BLOCK-----",
            ]
        );
        assert!(private_key_blocks(b"-----BEGIN PGP PUBLIC KEY BLOCK-----").is_empty());
    }

    /// With no key at all, a stanza is "no matching key", naming its fingerprint, and an
    /// `enc` that is not a message says so: nothing panics on a tenant's text.
    #[test]
    fn no_keys_and_no_message_fail_naming_the_stanza_key() {
        let keys = PgpSecretKeys::default();
        assert!(keys.is_empty());
        let err = keys.unwrap("not a message", "FBC7B9E2").unwrap_err();
        assert!(matches!(err, OpenPgpError::Decrypt { .. }), "{err:?}");
        assert!(err.to_string().contains("FBC7B9E2"), "{err}");
        let err = keys
            .unwrap(
                "-----BEGIN PGP MESSAGE-----\n\n-----END PGP MESSAGE-----\n",
                "FBC7B9E2",
            )
            .unwrap_err();
        assert!(err.to_string().contains("FBC7B9E2"), "{err}");
    }
}
