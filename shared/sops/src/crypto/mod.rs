//! The cryptography of a sops file: the data key, the per-value cipher, and the walk that
//! encrypts or decrypts every value of a tree and computes the MAC over them.

pub mod cipher;
pub mod data_key;
pub mod key_order;
pub mod values;
