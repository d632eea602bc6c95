//! The document model every store shares: the tree of a file, the order sops walks its values
//! in, how a typed scalar becomes the bytes sops encrypts and hashes, and the `sops` metadata.

pub mod crypt_rule;
pub mod metadata;
pub mod resolve;
pub mod scalar_text;
pub mod tree;
pub mod walk;
