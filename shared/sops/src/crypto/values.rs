//! Encrypting and decrypting the values of a tree, and the MAC that binds them together.

use std::collections::HashMap;

use sha2::{Digest, Sha256, Sha512};

use crate::crypto::cipher::{self, CipherError, COMMENT_TYPE};
use crate::crypto::data_key::DataKey;
use crate::format::metadata::Metadata;
use crate::format::scalar_text::{self, ScalarError};
use crate::format::tree::{Kind, Scalar, Tree};
use crate::format::walk::{walk_leaves, Leaf, Place};

/// sops' `MACOnlyEncryptedInitialization`: absorbed first when only encrypted values are hashed,
/// so that the two MAC modes never agree.
pub(crate) const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    /// A value that the crypt rule says is encrypted did not open (tampered, moved, wrong key).
    #[error("could not decrypt the value at {path}: {source}")]
    Value { path: String, source: CipherError },
    #[error("the value at {path} should be encrypted but is not")]
    NotEncrypted { path: String },
    #[error("the value at {path}: {source}")]
    Scalar { path: String, source: ScalarError },
    #[error("the value at {path} has unknown type {type_name:?}")]
    UnknownType { path: String, type_name: String },
    #[error("an encrypted comment under {path} matches unencrypted_comment_regex; choose a regex that cannot match ENC[...] text")]
    CommentMatchesUnencryptedRegex { path: String },
    #[error("MAC mismatch: the file was modified outside enseal/sops, or values were moved, dropped or tampered with")]
    MacMismatch,
    #[error("cannot decrypt the MAC: {0}")]
    MacUndecryptable(CipherError),
    #[error("MAC mismatch: the file has no MAC (decrypt with --ignore-mac to recover its values)")]
    MacMissing,
    #[error("invalid lastmodified {0:?}")]
    LastModified(String),
}

/// Ciphertexts of the values as they were decrypted, so that writing the file back re-uses the
/// ciphertext of every value that did not change (clean git diffs after edit/set/unset).
/// Keyed by a digest of (path, type, plaintext), never the plaintext itself.
#[derive(Default)]
pub struct CiphertextMemory {
    seen: HashMap<[u8; 32], String>,
}

impl CiphertextMemory {
    fn key(aad: &str, type_name: &str, plaintext: &[u8], layout: Option<&str>) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [aad.as_bytes(), type_name.as_bytes(), plaintext] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        if let Some(l) = layout {
            h.update(l.as_bytes());
        }
        h.finalize().into()
    }
}

/// Marks the encrypted layout of a value, right after its `ENC[...]` (see [`Scalar::layout`]).
/// sops' pattern for encrypted values is not anchored at the end, so sops reads such a value and
/// ignores the token; enseal uses it to give back the exact source text.
const LAYOUT_MARK: &str = "~";

/// The layout is bound to the value's path and plaintext, so it cannot be moved to another
/// value (a list's items share a path) to make it display something else.
fn layout_aad(aad: &str, plaintext: &[u8]) -> Vec<u8> {
    let mut out = aad.as_bytes().to_vec();
    out.extend_from_slice(b"\0layout\0");
    out.extend_from_slice(&Sha256::digest(plaintext));
    out
}

/// `ENC[...]` and the layout token after it, if any.
fn split_layout(enc: &str) -> (&str, Option<&str>) {
    let enc = enc.trim_end();
    // The token is base64, so the value's own `]` is the last one in the text.
    match enc.rfind(']') {
        Some(i) if enc[i + 1..].starts_with(LAYOUT_MARK) => {
            (&enc[..=i], Some(&enc[i + 1 + LAYOUT_MARK.len()..]))
        }
        _ => (enc, None),
    }
}

/// Encrypts the values of `tree` that the metadata's crypt rule selects, computes the MAC and
/// stores it (encrypted) in `metadata.mac`. `memory`, from a previous decrypt with the same data
/// key, lets unchanged values keep their ciphertext.
pub fn encrypt_tree(
    tree: &mut Tree,
    key: &DataKey,
    metadata: &mut Metadata,
    memory: Option<&CiphertextMemory>,
) -> Result<(), EncryptionError> {
    let mut hash = Sha512::new();
    if metadata.mac_only_encrypted {
        hash.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    let rule = metadata.crypt_rule.clone();
    let mac_only = metadata.mac_only_encrypted;
    let reuse = |aad: &str, ty: &str, plain: &[u8], layout: Option<&str>| {
        memory.and_then(|m| {
            m.seen
                .get(&CiphertextMemory::key(aad, ty, plain, layout))
                .cloned()
        })
    };
    walk_leaves(tree, &mut |leaf, place: &Place<'_>| {
        let is_comment = matches!(leaf, Leaf::Comment(_));
        let encrypted = rule.should_encrypt(place.path, place.comments, is_comment);
        match leaf {
            Leaf::Scalar(scalar) => {
                if scalar.kind == Kind::Null {
                    return Ok(());
                }
                let path = || place.display();
                if !mac_only || encrypted {
                    let bytes = scalar_text::mac_bytes(scalar).map_err(|source| {
                        EncryptionError::Scalar {
                            path: path(),
                            source,
                        }
                    })?;
                    if let Some(bytes) = bytes {
                        hash.update(&bytes);
                    }
                }
                if encrypted && !scalar.value.is_empty() {
                    let plain = scalar_text::plaintext(scalar).map_err(|source| {
                        EncryptionError::Scalar {
                            path: path(),
                            source,
                        }
                    })?;
                    // sops has no bytes type on encryption: raw bytes are written as `str`.
                    let ty = match scalar.kind {
                        Kind::Bytes => "str",
                        k => k.sops_name(),
                    };
                    let aad = place.aad();
                    let layout = scalar.layout.as_deref();
                    let enc = reuse(&aad, ty, &plain, layout).unwrap_or_else(|| {
                        let mut enc = cipher::encrypt(&plain, ty, key, aad.as_bytes());
                        if let Some(l) = layout {
                            enc.push_str(LAYOUT_MARK);
                            enc.push_str(&cipher::encrypt_token(
                                l.as_bytes(),
                                key,
                                &layout_aad(&aad, &plain),
                            ));
                        }
                        enc
                    });
                    drop(plain);
                    *scalar = Scalar::str(enc);
                }
            }
            Leaf::Comment(text) => {
                if encrypted && !text.is_empty() {
                    let aad = place.aad();
                    let enc =
                        reuse(&aad, COMMENT_TYPE, text.as_bytes(), None).unwrap_or_else(|| {
                            cipher::encrypt(text.as_bytes(), COMMENT_TYPE, key, aad.as_bytes())
                        });
                    if let Some(r) = rule.unencrypted_comment_regex() {
                        if r.is_match(&enc) {
                            return Err(EncryptionError::CommentMatchesUnencryptedRegex {
                                path: place.display(),
                            });
                        }
                    }
                    *text = enc;
                }
            }
        }
        Ok(())
    })?;
    let mac = hex::encode_upper(hash.finalize());
    let aad = mac_aad(&metadata.last_modified)?;
    metadata.mac = cipher::encrypt(mac.as_bytes(), "str", key, aad.as_bytes());
    Ok(())
}

/// How to open a file's values.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenOptions {
    /// Also keep a [`CiphertextMemory`] for a later [`encrypt_tree`] of an edited tree, so that
    /// unchanged values keep their ciphertext. It costs a digest per value, so a plain decrypt
    /// does without.
    pub remember_ciphertext: bool,
}

/// Decrypts the values of `tree` and returns the MAC check still to be made (see
/// [`MacCheck`]), with the memory of ciphertexts when `options` asks for it. Crate-private: a
/// library user decrypts through [`crate::file::open`], whose types hold the tree back until the
/// MAC is verified.
pub(crate) fn decrypt_tree(
    tree: &mut Tree,
    key: &DataKey,
    metadata: &Metadata,
    options: &OpenOptions,
) -> Result<(CiphertextMemory, MacCheck), EncryptionError> {
    decrypt_values(tree, key, metadata, options.remember_ciphertext)
}

/// The MAC of a decrypted file, still to be checked: what sops hashes, in order, and the
/// (encrypted) MAC the file carries. Nothing decrypted may leave the process before
/// [`MacCheck::verify`] says yes; keeping the check apart lets a caller prepare its output (in
/// memory) meanwhile. The stored MAC is decrypted only by `verify`, so that a caller who ignores
/// the MAC (sops' `--ignore-mac`) opens a file whose MAC is missing or undecryptable, as sops does.
#[must_use = "a decrypted tree may only be used once its MAC is verified"]
pub(crate) struct MacCheck {
    /// The bytes hashed into the MAC (plaintext values among them).
    hashed: zeroize::Zeroizing<Vec<u8>>,
    /// The `mac` field of the metadata, `ENC[...]` under the data key.
    stored: String,
    /// The MAC's additional data (`lastmodified`), or why it is invalid.
    aad: Result<String, EncryptionError>,
    key: DataKey,
}

impl MacCheck {
    /// Whether the check is worth another thread (hashing takes ~1 ms per 600 KB here).
    pub(crate) fn is_large(&self) -> bool {
        self.hashed.len() > 256 * 1024
    }

    pub(crate) fn verify(self) -> Result<(), EncryptionError> {
        if self.stored.is_empty() {
            return Err(EncryptionError::MacMissing);
        }
        let aad = self.aad?;
        let (stored, _) = cipher::decrypt(&self.stored, &self.key, aad.as_bytes())
            .map_err(EncryptionError::MacUndecryptable)?;
        let computed = hex::encode_upper(Sha512::digest(&self.hashed[..]));
        // In constant time: how much of a forged MAC matches must not show in the timing.
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            stored.as_slice(),
            computed.as_bytes(),
        )) {
            return Err(EncryptionError::MacMismatch);
        }
        Ok(())
    }
}

/// Appends to a buffer that holds plaintext, growing it by hand: a `Vec` that grows by itself
/// frees its old buffer without wiping it.
fn append_wiping(buf: &mut zeroize::Zeroizing<Vec<u8>>, bytes: &[u8]) {
    if buf.len() + bytes.len() > buf.capacity() {
        let mut bigger = Vec::with_capacity((buf.len() + bytes.len()).max(4096) * 2);
        bigger.extend_from_slice(buf);
        // The old buffer is wiped when its `Zeroizing` wrapper drops here.
        *buf = zeroize::Zeroizing::new(bigger);
    }
    buf.extend_from_slice(bytes);
}

fn decrypt_values(
    tree: &mut Tree,
    key: &DataKey,
    metadata: &Metadata,
    remember: bool,
) -> Result<(CiphertextMemory, MacCheck), EncryptionError> {
    // The hashed bytes are gathered rather than hashed as they come, so that the hashing can
    // run beside other work; SHA-512 of the concatenation is what sops computes update by
    // update.
    let mut hash = zeroize::Zeroizing::new(Vec::new());
    if metadata.mac_only_encrypted {
        hash.extend_from_slice(&MAC_ONLY_ENCRYPTED_INIT);
    }
    let rule = &metadata.crypt_rule;
    let mac_only = metadata.mac_only_encrypted;
    let mut memory = CiphertextMemory::default();
    let mut opened = open_values(tree, key, rule).peekable();
    let mut leaf_index = 0usize;
    walk_leaves(tree, &mut |leaf, place: &Place<'_>| {
        let this_leaf = leaf_index;
        leaf_index += 1;
        let is_comment = matches!(leaf, Leaf::Comment(_));
        let encrypted = rule.should_encrypt(place.path, place.comments, is_comment);
        let path = || place.display();
        match leaf {
            Leaf::Scalar(scalar) => {
                if scalar.kind == Kind::Null {
                    return Ok(());
                }
                let job = match opened.peek() {
                    Some((taken, _)) if encrypted && taken.leaf == this_leaf => opened.next(),
                    _ => None,
                };
                if let Some((taken, result)) = job {
                    let Taken { enc, aad, .. } = taken;
                    let (mut plain, kind) = result.map_err(|source| EncryptionError::Value {
                        path: path(),
                        source,
                    })?;
                    let kind = kind.map_err(|type_name| EncryptionError::UnknownType {
                        path: path(),
                        type_name,
                    })?;
                    let layout = match split_layout(&enc).1 {
                        Some(token) => {
                            let text = cipher::open_token(token, key, &layout_aad(&aad, &plain))
                                .map_err(|source| EncryptionError::Value {
                                    path: path(),
                                    source,
                                })?;
                            Some(String::from_utf8(text.to_vec()).map_err(|_| {
                                EncryptionError::Value {
                                    path: path(),
                                    source: CipherError::Malformed("layout is not UTF-8"),
                                }
                            })?)
                        }
                        None => None,
                    };
                    if remember {
                        let mut enc = enc;
                        enc.truncate(enc.trim_end().len());
                        memory.seen.insert(
                            CiphertextMemory::key(
                                &aad,
                                kind.sops_name(),
                                &plain,
                                layout.as_deref(),
                            ),
                            enc,
                        );
                    }
                    // The plaintext moves into the tree; the buffer left behind is empty.
                    let value = std::mem::take(&mut *plain);
                    *scalar = scalar_text::from_plaintext(kind, value).map_err(|source| {
                        EncryptionError::Scalar {
                            path: path(),
                            source,
                        }
                    })?;
                    scalar.layout = layout;
                } else if encrypted && !scalar.value.is_empty() {
                    // Every encrypted value the rule covers was taken out by `open_values`;
                    // what is left here is clear text where ciphertext should be.
                    return Err(EncryptionError::NotEncrypted { path: path() });
                }
                if !mac_only || encrypted {
                    let bytes = scalar_text::mac_bytes(scalar).map_err(|source| {
                        EncryptionError::Scalar {
                            path: path(),
                            source,
                        }
                    })?;
                    if let Some(bytes) = bytes {
                        append_wiping(&mut hash, &bytes);
                    }
                }
            }
            Leaf::Comment(text) => {
                if encrypted && cipher::is_encrypted(text) {
                    let aad = place.aad();
                    if let Ok((plain, COMMENT_TYPE)) = cipher::decrypt(text, key, aad.as_bytes()) {
                        if let Ok(plain_text) = String::from_utf8(plain.to_vec()) {
                            if remember {
                                memory.seen.insert(
                                    CiphertextMemory::key(
                                        &aad,
                                        COMMENT_TYPE,
                                        plain_text.as_bytes(),
                                        None,
                                    ),
                                    text.clone(),
                                );
                            }
                            *text = plain_text;
                        }
                    }
                }
            }
        }
        Ok(())
    })?;
    debug_assert!(opened.next().is_none(), "every opened value went back");
    Ok((
        memory,
        MacCheck {
            hashed: hash,
            stored: metadata.mac.clone(),
            aad: mac_aad(&metadata.last_modified),
            key: key.clone(),
        },
    ))
}

/// An encrypted value taken out of the tree to be opened: the index of its leaf in walk order,
/// its `ENC[...]` text (with any layout token) and its AAD.
struct Taken {
    leaf: usize,
    enc: String,
    aad: String,
}

/// A value opened: its plaintext and kind, or the unknown `type:` name it carried.
type Opened = Result<(zeroize::Zeroizing<Vec<u8>>, Result<Kind, String>), CipherError>;

/// Takes every encrypted value the rule covers out of the tree and opens them all, on every
/// core for a large file. The values are moved, not copied: a large file's ciphertext would
/// otherwise be held twice more, and that memory costs page faults. [`decrypt_values`] then
/// puts the plaintexts back in walk order.
fn open_values(
    tree: &mut Tree,
    key: &DataKey,
    rule: &crate::format::crypt_rule::CryptRule,
) -> impl Iterator<Item = (Taken, Opened)> {
    let mut jobs: Vec<Taken> = Vec::new();
    let mut leaf_index = 0usize;
    let _ = walk_leaves::<()>(tree, &mut |leaf, place: &Place<'_>| {
        let this_leaf = leaf_index;
        leaf_index += 1;
        let Leaf::Scalar(scalar) = leaf else {
            return Ok(());
        };
        let candidate = scalar.kind == Kind::Str
            && scalar.value.starts_with(cipher::ENC_PREFIX.as_bytes())
            && rule.should_encrypt(place.path, place.comments, false);
        if candidate {
            match String::from_utf8(std::mem::take(&mut scalar.value)) {
                Ok(enc) => jobs.push(Taken {
                    leaf: this_leaf,
                    enc,
                    aad: place.aad(),
                }),
                // Not text, so not a value sops wrote: left for `decrypt_values` to refuse.
                Err(e) => scalar.value = e.into_bytes(),
            }
        }
        Ok(())
    });
    let open = |job: &Taken| -> Opened {
        cipher::decrypt(split_layout(&job.enc).0, key, job.aad.as_bytes())
            .map(|(p, t)| (p, Kind::from_sops_name(t).ok_or_else(|| t.to_string())))
    };
    // Asked only for a large file: on Linux the answer costs about 20 system calls (it reads
    // /proc/self/cgroup and the CPU quota files), which a small file, never opened on threads,
    // should not pay at every start.
    let threads = match jobs.len() {
        0..512 => 1,
        _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let opened: Vec<Opened> = if threads < 2 {
        jobs.iter().map(open).collect()
    } else {
        let chunk = jobs.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = jobs
                .chunks(chunk)
                .map(|part| scope.spawn(move || part.iter().map(open).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("opening values does not panic"))
                .collect()
        })
    };
    jobs.into_iter().zip(opened)
}

/// The MAC's additional data: `lastmodified` as Go's `time.Format(time.RFC3339)` prints it.
pub(crate) fn mac_aad(last_modified: &str) -> Result<String, EncryptionError> {
    let canonical = scalar_text::canonical_time(last_modified)
        .map_err(|_| EncryptionError::LastModified(last_modified.to_string()))?;
    // RFC3339 (not Nano) drops the fraction.
    Ok(match canonical.find('.') {
        Some(dot) => {
            let zone_at = canonical[dot..]
                .find(['Z', '+', '-'])
                .map(|i| dot + i)
                .unwrap_or(canonical.len());
            format!("{}{}", &canonical[..dot], &canonical[zone_at..])
        }
        None => canonical,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::crypt_rule::CryptRule;
    use crate::format::metadata::KeyGroup;
    use crate::format::tree::{Item, Node};

    fn sample() -> Tree {
        Tree {
            documents: vec![Node::Map(vec![
                Item::Comment(" top".into()),
                Item::Pair(
                    "db".into(),
                    Node::Map(vec![
                        Item::Pair("password".into(), Node::str("s3cret")),
                        Item::Pair("port".into(), Node::Scalar(Scalar::new(Kind::Int, "5432"))),
                        Item::Pair(
                            "ratio".into(),
                            Node::Scalar(Scalar::new(Kind::Float, "1.0")),
                        ),
                        Item::Pair("none".into(), Node::Scalar(Scalar::null())),
                        Item::Pair("empty".into(), Node::str("")),
                    ]),
                ),
                Item::Pair("name_unencrypted".into(), Node::str("public")),
            ])],
        }
    }

    fn metadata() -> Metadata {
        Metadata::new(vec![KeyGroup::default()], CryptRule::default())
    }

    /// Decrypts and verifies the MAC, as opening a file does.
    fn decrypt_checked(
        tree: &mut Tree,
        key: &DataKey,
        m: &Metadata,
        remember_ciphertext: bool,
    ) -> Result<CiphertextMemory, EncryptionError> {
        let options = OpenOptions {
            remember_ciphertext,
        };
        let (memory, mac) = decrypt_tree(tree, key, m, &options)?;
        mac.verify()?;
        Ok(memory)
    }

    #[test]
    fn round_trip_gives_back_the_values_as_written() {
        let key = DataKey::generate();
        let mut m = metadata();
        let mut tree = sample();
        encrypt_tree(&mut tree, &key, &mut m, None).unwrap();
        let db = tree.documents[0].get("db").unwrap();
        let password = db.get("password").unwrap().as_scalar().unwrap();
        assert!(cipher::is_encrypted(password.text().unwrap()));
        assert_eq!(
            db.get("empty").unwrap().as_scalar().unwrap().text(),
            Some("")
        );
        assert_eq!(
            tree.documents[0]
                .get("name_unencrypted")
                .unwrap()
                .as_scalar()
                .unwrap()
                .text(),
            Some("public")
        );
        decrypt_checked(&mut tree, &key, &m, false).unwrap();
        assert_eq!(tree, sample());
    }

    #[test]
    fn a_dropped_value_is_a_mac_mismatch() {
        let key = DataKey::generate();
        let mut m = metadata();
        let mut tree = sample();
        encrypt_tree(&mut tree, &key, &mut m, None).unwrap();
        tree.documents[0].get_mut("db").unwrap().remove("port");
        assert!(matches!(
            decrypt_checked(&mut tree, &key, &m, false),
            Err(EncryptionError::MacMismatch)
        ));
    }

    #[test]
    fn a_value_moved_to_another_key_does_not_open() {
        let key = DataKey::generate();
        let mut m = metadata();
        let mut tree = sample();
        encrypt_tree(&mut tree, &key, &mut m, None).unwrap();
        let db = tree.documents[0].get_mut("db").unwrap();
        let pw = db.get("password").unwrap().clone();
        *db.get_mut("port").unwrap() = pw;
        assert!(matches!(
            decrypt_checked(&mut tree, &key, &m, false),
            Err(EncryptionError::Value { .. })
        ));
    }

    #[test]
    fn unchanged_values_keep_their_ciphertext() {
        let key = DataKey::generate();
        let mut m = metadata();
        let mut tree = sample();
        encrypt_tree(&mut tree, &key, &mut m, None).unwrap();
        let before = tree.clone();
        let memory = decrypt_checked(&mut tree, &key, &m, true).unwrap();
        *tree.documents[0]
            .get_mut("db")
            .unwrap()
            .get_mut("port")
            .unwrap() = Node::Scalar(Scalar::new(Kind::Int, "6543"));
        encrypt_tree(&mut tree, &key, &mut m, Some(&memory)).unwrap();
        let db_before = before.documents[0].get("db").unwrap();
        let db_after = tree.documents[0].get("db").unwrap();
        assert_eq!(db_before.get("password"), db_after.get("password"));
        assert_ne!(db_before.get("port"), db_after.get("port"));
    }

    #[test]
    fn an_encrypted_layout_comes_back_and_cannot_be_moved() {
        let key = DataKey::generate();
        let mut m = metadata();
        let folded = |text: &str, layout: &str| {
            let mut s = Scalar::str(text);
            s.layout = Some(layout.into());
            Node::Scalar(s)
        };
        let original = Tree {
            documents: vec![Node::Map(vec![Item::Pair(
                "l".into(),
                Node::Seq(vec![
                    folded("a b\n", ">\n  a\n  b\n"),
                    folded("c d\n", ">\n  c\n  d\n"),
                ]),
            )])],
        };
        let mut tree = original.clone();
        encrypt_tree(&mut tree, &key, &mut m, None).unwrap();
        let Node::Seq(items) = tree.documents[0].get("l").unwrap() else {
            panic!("not a list")
        };
        let first = items[0].as_scalar().unwrap().text().unwrap().to_string();
        assert!(first.contains("]~"), "{first}");
        let mut back = tree.clone();
        decrypt_checked(&mut back, &key, &m, false).unwrap();
        assert_eq!(back, original);
        // Swapping the layout tokens of two items of the same list is refused.
        let second = items[1].as_scalar().unwrap().text().unwrap().to_string();
        let (v1, t1) = first.split_once("]~").unwrap();
        let (v2, t2) = second.split_once("]~").unwrap();
        let mut swapped = tree.clone();
        let Node::Seq(items) = swapped.documents[0].get_mut("l").unwrap() else {
            panic!("not a list")
        };
        items[0] = Node::str(format!("{v1}]~{t2}"));
        items[1] = Node::str(format!("{v2}]~{t1}"));
        assert!(matches!(
            decrypt_checked(&mut swapped, &key, &m, false),
            Err(EncryptionError::Value { .. })
        ));
    }

    #[test]
    fn mac_additional_data_is_lastmodified_in_rfc3339() {
        assert_eq!(
            mac_aad("2026-11-28T22:45:52Z").unwrap(),
            "2026-11-28T22:45:52Z"
        );
        assert_eq!(
            mac_aad("2026-11-28T22:45:52.25+01:00").unwrap(),
            "2026-11-28T22:45:52+01:00"
        );
    }
}
