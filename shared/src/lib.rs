//! The core of enseal: the sops-compatible file format (stores, value cipher, MAC, data keys,
//! key sources, creation rules) and the Sealed Secrets-compatible sealing crypto. It does no
//! command-line or cluster I/O of its own.

pub mod cipher;
pub mod config;
pub mod creation_rule;
pub mod crypt_rule;
pub mod data_key;
pub mod encryption;
pub mod key_groups;
pub mod keys;
pub mod metadata;
pub mod scalar_text;
pub mod sealing;
pub mod shamir;
pub mod sops_file;
pub mod stores;
pub mod tree;
pub mod walk;

pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
