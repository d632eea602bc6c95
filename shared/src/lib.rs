//! The core of enseal: the sops-compatible file format (stores, value cipher, MAC, data keys,
//! key sources, creation rules) and the Sealed Secrets-compatible sealing crypto. It does no
//! command-line or cluster I/O of its own.

pub mod config;
pub mod creation_rule;
pub mod keys;
pub mod shamir;
pub mod stores;
pub mod tree;

pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
