//! Sealed Secrets-compatible sealing: what `kubeseal` and the Sealed Secrets controller do to a
//! Secret, byte for byte, so that either side can open what the other sealed.
//!
//! - [`sealed_value`]: one value (RSA-OAEP-wrapped session key + AES-256-GCM).
//! - [`scope`]: strict / namespace-wide / cluster-wide and the OAEP label each implies.
//! - [`sealed_secret`]: the SealedSecret and the one seal/unseal/verify/rotate (kube
//!   `Resource` impl behind the `kube` feature).
//! - [`resource`]: the Secret and the object metadata.
//! - [`template`]: `spec.template.data` rendering.
//! - [`keys`]: the controller's RSA key pairs and certificates, PEM and key-Secret backups.
//! - [`private_key`]: a private key parsed for unsealing (AWS-LC's RSA beside `rsa`'s).
//! - [`manifest`]: reading and writing Kubernetes YAML/JSON streams.

pub mod keys;
pub mod manifest;
pub mod private_key;
pub mod resource;
pub mod scope;
pub mod sealed_secret;
pub mod sealed_value;
pub mod template;

#[cfg(test)]
mod test_keys;

pub use keys::{KeyError, KeyPair, SealingCertificate};
pub use manifest::{ManifestError, ManifestFormat};
pub use private_key::PrivateKey;
pub use resource::{Metadata, ObjectMeta, Secret};
pub use rsa::PublicKey;
pub use scope::Scope;
#[cfg(feature = "kube")]
pub use sealed_secret::SealedSecretObject;
pub use sealed_secret::{ResourceError, SealedSecret};
pub use sealed_value::{open, open_base64, open_indexed, seal, seal_base64, SealError};
