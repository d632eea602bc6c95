//! Whole-file operations shared by the CLI and the controller.
//!
//! Opening is two steps that the types keep apart: [`open`] parses nothing itself but unwraps
//! the data key and decrypts every value into an [`Unverified`] file, whose tree cannot be read
//! or written out; its only ways out are [`Unverified::verify`] (or
//! [`Unverified::verify_while`], which checks the MAC on another core while the output is
//! prepared) and the explicit [`Unverified::ignore_mac`] (sops' `--ignore-mac`). Both give a
//! [`Decrypted`] file. [`decrypt_bytes`] does it all from bytes to bytes, as sops'
//! `decrypt.Data` does for Flux and ksops; [`encrypt`] writes a tree back encrypted.

use zeroize::Zeroizing;

use crate::crypto::data_key::DataKey;
use crate::crypto::values::{self, CiphertextMemory, EncryptionError, MacCheck};
use crate::format::metadata::{Metadata, MetadataError};
use crate::format::tree::Tree;
use crate::keys::groups::{self, KeyGroupError, Keyring};
use crate::stores::{self, Format, Parsed, Store, StoreError, WriteOptions};

pub use crate::crypto::values::OpenOptions;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("sops metadata not found: the file is not encrypted")]
    NotEncrypted,
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    KeyGroup(#[from] KeyGroupError),
    #[error(transparent)]
    Encryption(#[from] EncryptionError),
}

/// Returns the metadata of a parsed file; `NotEncrypted` when it has none.
pub fn read_metadata(parsed: &Parsed) -> Result<Metadata, FileError> {
    let node = parsed.metadata.as_ref().ok_or(FileError::NotEncrypted)?;
    Ok(Metadata::from_node(node)?)
}

/// An encrypted file whose values are decrypted but whose MAC is not checked yet. Its tree is
/// out of reach until the MAC is verified or explicitly ignored.
#[must_use = "an opened file is only usable once its MAC is verified (or ignored)"]
pub struct Unverified {
    decrypted: Decrypted,
    mac: MacCheck,
}

impl Unverified {
    /// The metadata (no plaintext in it), e.g. to name the master keys.
    pub fn metadata(&self) -> &Metadata {
        &self.decrypted.metadata
    }

    /// Checks the MAC; the file is given out only when it is right.
    pub fn verify(self) -> Result<Decrypted, FileError> {
        self.mac.verify()?;
        Ok(self.decrypted)
    }

    /// Gives the file out without checking its MAC (sops' `--ignore-mac`): values may have been
    /// changed, moved or dropped.
    pub fn ignore_mac(self) -> Decrypted {
        self.decrypted
    }

    /// Checks the MAC while `prepare` makes the output from the decrypted file in memory, and
    /// returns `prepare`'s result only when the MAC is right. For a large file the hashing runs
    /// on another core meanwhile (a few milliseconds: ~1 ms per 600 KB here), else first.
    /// `prepare` must not let anything out of the process (write, print, send): that happens
    /// with its result, once this returns it.
    pub fn verify_while<T, E>(
        self,
        prepare: impl FnOnce(&Decrypted) -> Result<T, E>,
    ) -> Result<Result<T, E>, FileError> {
        let Unverified { decrypted, mac } = self;
        if !mac.is_large() {
            mac.verify()?;
            return Ok(prepare(&decrypted));
        }
        std::thread::scope(|scope| {
            let check = scope.spawn(move || mac.verify());
            let prepared = prepare(&decrypted);
            check.join().expect("the MAC check does not panic")?;
            Ok(prepared)
        })
    }

    /// Checks the MAC against the values in any order of the mappings' keys (at most `budget`
    /// orders, the order as read first), for a file that was stored by something that keeps
    /// values and keys but not their order (an API server keeps a custom resource's keys
    /// sorted); see [`crate::crypto::key_order`]. Returns the file and the orders tried.
    pub fn verify_in_any_key_order(
        self,
        budget: u64,
    ) -> Result<(Decrypted, u64), crate::crypto::key_order::KeyOrderError> {
        let d = self.decrypted;
        let tried = crate::crypto::key_order::verify(&d.parsed.tree, &d.metadata, &d.key, budget)?;
        Ok((d, tried))
    }

    /// [`Unverified::verify_in_any_key_order`] against each tree `candidates` derives from the
    /// decrypted one, in turn, until one verifies, at most `budget` orders each (a candidate
    /// that does not verify costs all its orders, so a shared budget would let the first wrong
    /// candidate of a large object starve the right one). For an
    /// object whose store added or rewrote values the author never encrypted (an API server's
    /// `metadata.uid`, a served `apiVersion`): each candidate is a guess at what the author
    /// wrote, built only from the object's own values, and the file given out holds the
    /// candidate that verified, so nothing but verified values can be read from it. `candidates`
    /// sees plaintext before any check and must let nothing out. Returns the file, the index of
    /// the candidate and the orders tried in all.
    pub fn verify_candidates_in_any_key_order(
        self,
        budget: u64,
        candidates: impl FnOnce(&Tree) -> Vec<Tree>,
    ) -> Result<(Decrypted, usize, u64), crate::crypto::key_order::KeyOrderError> {
        use crate::crypto::key_order::{self, KeyOrderError};
        let mut d = self.decrypted;
        let mut tried = 0u64;
        let mut too_many = None;
        for (i, tree) in candidates(&d.parsed.tree).into_iter().enumerate() {
            match key_order::verify(&tree, &d.metadata, &d.key, budget) {
                Ok(n) => {
                    d.parsed.tree = tree;
                    return Ok((d, i, tried + n));
                }
                Err(KeyOrderError::NoOrder { tried: n }) => tried += n,
                Err(KeyOrderError::TooManyOrders { tried: n, orders }) => {
                    tried += n;
                    too_many = Some(orders);
                }
                Err(other) => return Err(other),
            }
        }
        Err(match too_many {
            Some(orders) => KeyOrderError::TooManyOrders { tried, orders },
            None => KeyOrderError::NoOrder { tried },
        })
    }

    /// [`Unverified::verify_while`], or `prepare` alone when `mac` says to ignore the MAC.
    pub fn verify_or_ignore<T, E>(
        self,
        mac: Mac,
        prepare: impl FnOnce(&Decrypted) -> Result<T, E>,
    ) -> Result<Result<T, E>, FileError> {
        match mac {
            Mac::Verify => self.verify_while(prepare),
            Mac::Ignore => Ok(prepare(&self.ignore_mac())),
        }
    }
}

/// An encrypted file, opened and verified (or its MAC explicitly ignored): `parsed.tree` holds
/// the plaintext, `parsed.source` still describes the encrypted bytes (so writing it back keeps
/// their layout).
pub struct Decrypted {
    pub parsed: Parsed,
    pub metadata: Metadata,
    pub key: DataKey,
    /// Empty unless the file was opened with [`OpenOptions::remember_ciphertext`].
    pub memory: CiphertextMemory,
}

impl Decrypted {
    pub fn tree(&self) -> &Tree {
        &self.parsed.tree
    }

    /// The plaintext file in `format`, with the layout of the encrypted file (comments, order,
    /// quoting; only for the format it was parsed as) or the format's canonical layout (a
    /// conversion).
    pub fn plaintext(
        &self,
        format: Format,
        layout: Layout,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let layout = match layout {
            Layout::Keep => Some(&self.parsed),
            Layout::Canonical => None,
        };
        stores::store_for(format)
            .write(&self.parsed.tree, None, layout, &WriteOptions::default())
            .map(Zeroizing::new)
    }
}

/// Unwraps the data key of `parsed` with what `keyring` holds and decrypts its values.
pub fn open(
    mut parsed: Parsed,
    keyring: &Keyring,
    options: &OpenOptions,
) -> Result<Unverified, FileError> {
    let metadata = read_metadata(&parsed)?;
    let key = groups::unwrap(&metadata, keyring)?;
    let (memory, mac) = values::decrypt_tree(&mut parsed.tree, &key, &metadata, options)?;
    Ok(Unverified {
        decrypted: Decrypted {
            parsed,
            metadata,
            key,
            memory,
        },
        mac,
    })
}

/// Whether to check a file's MAC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mac {
    #[default]
    Verify,
    /// sops' `--ignore-mac`.
    Ignore,
}

/// How [`decrypt_bytes`] decrypts.
#[derive(Clone, Copy, Debug, Default)]
pub struct DecryptOptions {
    pub mac: Mac,
    /// The format of the plaintext; `None` is the input's format (with its layout kept).
    pub output: Option<Format>,
}

/// Decrypts an encrypted file of `format` to its plaintext file, as sops' `decrypt.Data` does
/// for Flux and ksops. `bytes` is taken by value when given owned, so a large file is not held
/// twice.
pub fn decrypt_bytes(
    bytes: impl Into<Vec<u8>>,
    format: Format,
    keyring: &Keyring,
    options: &DecryptOptions,
) -> Result<Zeroizing<Vec<u8>>, FileError> {
    let (output, layout) = match options.output {
        Some(output) if output != format => (output, Layout::Canonical),
        _ => (format, Layout::Keep),
    };
    decrypt_with(bytes, format, keyring, options.mac, |d| {
        d.plaintext(output, layout)
    })?
    .map_err(FileError::Store)
}

/// [`decrypt_bytes`] with the output made by `render` from the decrypted file (a subtree for
/// `--extract`, Secrets for the controller); `render`'s result is returned only once the MAC
/// is right, and `render` must let nothing out of the process itself.
pub fn decrypt_with<T, E>(
    bytes: impl Into<Vec<u8>>,
    format: Format,
    keyring: &Keyring,
    mac: Mac,
    render: impl FnOnce(&Decrypted) -> Result<T, E>,
) -> Result<Result<T, E>, FileError> {
    let parsed = stores::store_for(format).parse_owned(bytes.into())?;
    open(parsed, keyring, &OpenOptions::default())?.verify_or_ignore(mac, render)
}

/// Which layout a file is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// The layout of the parse the tree came from (comments, order, quoting).
    Keep,
    /// The store's canonical layout (a format conversion).
    Canonical,
}

/// How [`encrypt`] writes.
#[derive(Clone, Copy)]
pub struct EncryptOptions<'a> {
    pub layout: Layout,
    /// The ciphertexts of a previous open with the same data key: unchanged values keep them.
    pub unchanged: Option<&'a CiphertextMemory>,
    pub write: &'a WriteOptions,
}

/// Encrypts `plain.tree` under `key`, records the MAC and `lastmodified` in `metadata`, and
/// writes the encrypted file with `store`.
pub fn encrypt(
    store: &dyn Store,
    mut plain: Parsed,
    key: &DataKey,
    metadata: &mut Metadata,
    options: &EncryptOptions<'_>,
) -> Result<Vec<u8>, FileError> {
    metadata.touch();
    // The tree is taken out of `plain` before it is encrypted, so that a store can only learn the
    // original layout from `plain.source`, never mistake the encrypted tree for the original
    // one, and so never skip writing a value because it "did not change".
    let mut tree = std::mem::take(&mut plain.tree);
    values::encrypt_tree(&mut tree, key, metadata, options.unchanged)?;
    let node = metadata.to_node();
    let layout = match options.layout {
        Layout::Keep => Some(&plain),
        Layout::Canonical => None,
    };
    Ok(store.write(&tree, Some(&node), layout, options.write)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::crypt_rule::CryptRule;
    use crate::keys::age::{self as agekeys, AgeIdentities};
    use crate::keys::groups::GroupRecipients;

    const PLAIN: &str = "# db\npassword: s3cret # keep me\nport: 5432\n";

    /// `PLAIN` encrypted as YAML, and a keyring that opens it.
    fn encrypted() -> (Vec<u8>, Keyring<'static>) {
        let (secret, recipient) = agekeys::generate();
        let key = DataKey::generate();
        let group = GroupRecipients {
            age: vec![recipient.parse().unwrap()],
            ..Default::default()
        };
        let (groups, _) = groups::wrap(&key, &[group], None, None).unwrap();
        let mut metadata = Metadata::new(groups, CryptRule::default());
        let store = stores::store_for(Format::Yaml);
        let options = EncryptOptions {
            layout: Layout::Keep,
            unchanged: None,
            write: &WriteOptions::default(),
        };
        let plain = store.parse(PLAIN.as_bytes()).unwrap();
        let bytes = encrypt(store.as_ref(), plain, &key, &mut metadata, &options).unwrap();
        let keyring = Keyring::new(AgeIdentities::parse("test", &secret).unwrap());
        (bytes, keyring)
    }

    #[test]
    fn decrypt_bytes_gives_back_the_plaintext_file_with_its_layout() {
        let (bytes, keyring) = encrypted();
        let out = decrypt_bytes(bytes, Format::Yaml, &keyring, &DecryptOptions::default()).unwrap();
        assert_eq!(std::str::from_utf8(&out).unwrap(), PLAIN);
    }

    #[test]
    fn a_dropped_value_gives_no_output_unless_the_mac_is_ignored() {
        let (bytes, keyring) = encrypted();
        let text = String::from_utf8(bytes).unwrap();
        let dropped: String = text
            .lines()
            .filter(|l| !l.starts_with("port:"))
            .map(|l| format!("{l}\n"))
            .collect();
        let err = decrypt_bytes(
            dropped.as_str(),
            Format::Yaml,
            &keyring,
            &DecryptOptions::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, FileError::Encryption(EncryptionError::MacMismatch)),
            "{err}"
        );
        let ignoring = DecryptOptions {
            mac: Mac::Ignore,
            output: None,
        };
        let out = decrypt_bytes(dropped, Format::Yaml, &keyring, &ignoring).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "# db\npassword: s3cret # keep me\n"
        );
    }

    #[test]
    fn ignoring_the_mac_opens_a_file_whose_mac_does_not_decrypt_as_sops_does() {
        let (bytes, keyring) = encrypted();
        let text = String::from_utf8(bytes).unwrap();
        let mac_line = text
            .lines()
            .find(|l| l.trim_start().starts_with("mac: ENC["))
            .unwrap();
        let broken = text.replace(
            mac_line,
            "    mac: ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAA,type:str]",
        );
        let parsed = stores::store_for(Format::Yaml)
            .parse(broken.as_bytes())
            .unwrap();
        let unverified = open(parsed, &keyring, &OpenOptions::default()).unwrap();
        assert_eq!(unverified.metadata().key_groups.len(), 1);
        let prepared = unverified.verify_while(|d| Ok::<_, ()>(d.tree().documents.len()));
        assert!(matches!(
            prepared,
            Err(FileError::Encryption(EncryptionError::MacUndecryptable(_)))
        ));
        let parsed = stores::store_for(Format::Yaml)
            .parse(broken.as_bytes())
            .unwrap();
        let decrypted = open(parsed, &keyring, &OpenOptions::default())
            .unwrap()
            .ignore_mac();
        let out = decrypted.plaintext(Format::Yaml, Layout::Keep).unwrap();
        assert_eq!(std::str::from_utf8(&out).unwrap(), PLAIN);
    }
}
