//! `age-plugin-ensealtest`: a tiny age plugin for the plugin tests (tests/it/age_plugin.rs),
//! built on the `age-plugin` crate so that it speaks the age plugin protocol exactly as real
//! plugins (YubiKey, TPM, Secure Enclave) do. TEST-ONLY and deliberately not secure: the
//! recipient holds the same 32 bytes as the identity, and a file key is masked with a hash of
//! them. What it checks is the protocol plumbing of the age client (enseal, Go age, sops).
//!
//!   age-plugin-ensealtest --generate      # prints "# recipient: age1ensealtest1..." and the
//!                                         # AGE-PLUGIN-ENSEALTEST-1... identity
//!   age-plugin-ensealtest --age-plugin=recipient-v1|identity-v1   (started by an age client)

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};

use age_core_plugin::format::{FileKey, Stanza, FILE_KEY_BYTES};
use age_core_plugin::secrecy::ExposeSecret;
use age_plugin::identity::{self, IdentityPluginV1};
use age_plugin::recipient::{self, RecipientPluginV1};
use age_plugin::{print_new_identity, run_state_machine, Callbacks, PluginHandler};
use base64::Engine as _;
use sha2::{Digest, Sha256};

const NAME: &str = "ensealtest";
const STANZA_TAG: &str = "ensealtest";

/// The stanza argument naming a key: 4 bytes of a hash of it, unpadded base64.
fn key_tag(key: &[u8; 32]) -> String {
    let digest = Sha256::new()
        .chain_update(b"tag")
        .chain_update(key)
        .finalize();
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(&digest[..4])
}

/// XOR mask of a file key under `key` (so wrapping and unwrapping are the same operation).
fn mask(key: &[u8; 32], file_key: &[u8]) -> Vec<u8> {
    let pad = Sha256::new()
        .chain_update(b"mask")
        .chain_update(key)
        .finalize();
    file_key
        .iter()
        .zip(pad.iter())
        .map(|(a, b)| a ^ b)
        .collect()
}

fn key_of(bytes: &[u8]) -> Option<[u8; 32]> {
    bytes.try_into().ok()
}

#[derive(Default)]
struct Recipients(Vec<[u8; 32]>);

impl RecipientPluginV1 for Recipients {
    fn add_recipient(
        &mut self,
        index: usize,
        _: &str,
        bytes: &[u8],
    ) -> Result<(), recipient::Error> {
        let key = key_of(bytes).ok_or_else(|| recipient::Error::Recipient {
            index,
            message: "not an ensealtest recipient".to_owned(),
        })?;
        self.0.push(key);
        Ok(())
    }

    fn add_identity(
        &mut self,
        index: usize,
        _: &str,
        bytes: &[u8],
    ) -> Result<(), recipient::Error> {
        let key = key_of(bytes).ok_or_else(|| recipient::Error::Identity {
            index,
            message: "not an ensealtest identity".to_owned(),
        })?;
        self.0.push(key);
        Ok(())
    }

    fn labels(&mut self) -> HashSet<String> {
        HashSet::new()
    }

    fn wrap_file_keys(
        &mut self,
        file_keys: Vec<FileKey>,
        _: impl Callbacks<recipient::Error>,
    ) -> io::Result<Result<Vec<Vec<Stanza>>, Vec<recipient::Error>>> {
        Ok(Ok(file_keys
            .iter()
            .map(|file_key| {
                self.0
                    .iter()
                    .map(|key| Stanza {
                        tag: STANZA_TAG.to_owned(),
                        args: vec![key_tag(key)],
                        body: mask(key, file_key.expose_secret()),
                    })
                    .collect()
            })
            .collect()))
    }
}

#[derive(Default)]
struct Identities(Vec<[u8; 32]>);

impl IdentityPluginV1 for Identities {
    fn add_identity(&mut self, index: usize, _: &str, bytes: &[u8]) -> Result<(), identity::Error> {
        let key = key_of(bytes).ok_or_else(|| identity::Error::Identity {
            index,
            message: "not an ensealtest identity".to_owned(),
        })?;
        self.0.push(key);
        Ok(())
    }

    fn unwrap_file_keys(
        &mut self,
        files: Vec<Vec<Stanza>>,
        mut callbacks: impl Callbacks<identity::Error>,
    ) -> io::Result<HashMap<usize, Result<FileKey, Vec<identity::Error>>>> {
        let mut out = HashMap::new();
        for (file, stanzas) in files.iter().enumerate() {
            // Other clients' stanzas must be ignored (age plugin spec); only ours are tried.
            let found = stanzas.iter().find_map(|s| {
                let key = self
                    .0
                    .iter()
                    .find(|k| s.tag == STANZA_TAG && s.args.first() == Some(&key_tag(k)))?;
                (s.body.len() == FILE_KEY_BYTES).then(|| mask(key, &s.body))
            });
            if let Some(plain) = found {
                // Shows that the client passes plugin messages on to the user.
                let _ = callbacks.message("ensealtest: unwrapped a file key")?;
                out.insert(
                    file,
                    Ok(FileKey::init_with_mut(|k| k.copy_from_slice(&plain))),
                );
            }
        }
        Ok(out)
    }
}

struct Handler;

impl PluginHandler for Handler {
    type RecipientV1 = Recipients;
    type IdentityV1 = Identities;

    fn recipient_v1(self) -> io::Result<Recipients> {
        Ok(Recipients::default())
    }

    fn identity_v1(self) -> io::Result<Identities> {
        Ok(Identities::default())
    }
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some(a) if a.starts_with("--age-plugin=") => {
            run_state_machine(&a["--age-plugin=".len()..], Handler)
        }
        Some("--generate") => {
            let mut key = [0u8; 32];
            std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
            print_new_identity(NAME, &key, &key);
            Ok(())
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "usage: age-plugin-ensealtest --generate | --age-plugin=STATE_MACHINE",
        )),
    }
}
