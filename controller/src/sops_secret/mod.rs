//! SopsSecret (enseal.dev/v1alpha1): an enseal/sops-encrypted file decrypted into Secrets. The
//! resource type is the enseal-sops-secret crate's (the CLI writes these objects too).
//! [`isindir`]: sops-secrets-operator's SopsSecret (isindir.github.com), through the same keys,
//! tenancy rules, status and Secret writing.

pub mod isindir;
pub mod keys;
pub mod reconcile;
pub mod render;
pub mod tenancy;
pub mod vault_auth;
