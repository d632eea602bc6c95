//! The sops file format, as sops 3.11 reads and writes it: no command-line or cluster I/O.
//!
//! Data flows one way: a [`stores`] store parses bytes into a [`format::tree`] that remembers
//! the source layout; [`crypto`] encrypts or decrypts its values and computes the MAC under a
//! data key that the master keys of [`keys`] wrap; the store writes the tree back to bytes.
//! [`config`] reads `.sops.yaml` (which keys and which values, per file); [`file`] puts the
//! steps together for whole files.

pub mod config;
pub mod crypto;
pub mod file;
pub mod format;
pub mod keys;
pub mod stores;

pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
