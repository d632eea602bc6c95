//! Sealed Secrets-compatible sealing: what `kubeseal` and the Sealed Secrets controller do to a
//! Secret, byte for byte, so that either side can open what the other sealed.
//!
//! - [`sealed_value`]: one value (RSA-OAEP-wrapped session key + AES-256-GCM).
//! - [`scope`]: strict / namespace-wide / cluster-wide and the OAEP label each implies.
//! - [`resource`]: the SealedSecret and Secret objects and the conversions between them.
//! - [`keys`]: the controller's RSA key pairs and certificates, PEM and key-Secret backups.
//! - [`manifest`]: reading and writing Kubernetes YAML/JSON streams.

pub mod keys;
pub mod manifest;
pub mod resource;
pub mod scope;
pub mod sealed_value;
pub mod template;

#[cfg(test)]
mod test_keys;

pub use keys::{KeyError, KeyPair, SealingCertificate};
pub use manifest::{ManifestError, ManifestFormat};
pub use resource::{ResourceError, SealedSecret, Secret};
pub use rsa::{PrivateKey, PublicKey};
pub use scope::Scope;
pub use sealed_value::{open, open_base64, open_indexed, seal, seal_base64, SealError};
