//! A controller's private key, parsed once for both libraries that use it: the `rsa` crate's
//! key (PEM, the public key, the certificate's signature) and AWS-LC's parsed twin, which does
//! the OAEP decryption of every sealed value.
//!
//! Why two: unsealing is RSA-4096 OAEP decryption, and the controller is bound by it
//! (issue 16). AWS-LC decrypts in 1.47 ms where rsa's `decrypt_blinded` takes 11.85 ms, both
//! blinded and constant-time. Building AWS-LC's key costs 1.33 ms (it parses and checks the
//! key), as much as a decryption, so the twin is built here, when a key is loaded, and shared
//! by every clone (an `Arc`) rather than rebuilt per value.

use std::sync::Arc;

use aws_lc_rs::rsa::{OaepPrivateDecryptingKey, PrivateDecryptingKey, OAEP_SHA256_MGF1SHA256};
use rsa::pkcs8::EncodePrivateKey;
use rsa::sha2::Sha256;
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, PublicKey};
use zeroize::Zeroizing;

/// An RSA private key ready to unseal with. Cloning shares the parsed key.
///
/// Key material is wiped when the last clone drops: `rsa`'s key zeroizes itself, and AWS-LC
/// cleanses every allocation it frees (`OPENSSL_free`), the key's big numbers included.
#[derive(Clone)]
pub struct PrivateKey(Arc<Parsed>);

struct Parsed {
    rsa: rsa::PrivateKey,
    /// `None` where AWS-LC refuses the key: it takes 2048 to 8192 bits, and Sealed Secrets'
    /// `--key-size` allows smaller keys (the tests' keys are 1024-bit). Those keys decrypt with
    /// `rsa`, as before, only slower.
    aws_lc: Option<OaepPrivateDecryptingKey>,
}

impl PrivateKey {
    /// Builds AWS-LC's twin of `rsa` from its PKCS#8 form (a `SecretDocument`, wiped on drop).
    pub fn new(rsa: rsa::PrivateKey) -> PrivateKey {
        let aws_lc = rsa.to_pkcs8_der().ok().and_then(|der| {
            PrivateDecryptingKey::from_pkcs8(der.as_bytes())
                .ok()
                .and_then(|key| OaepPrivateDecryptingKey::new(key).ok())
        });
        PrivateKey(Arc::new(Parsed { rsa, aws_lc }))
    }

    /// The `rsa` crate's key, for PEM encoding and signing.
    pub fn rsa(&self) -> &rsa::PrivateKey {
        &self.0.rsa
    }

    pub fn as_public_key(&self) -> &PublicKey {
        self.0.rsa.as_public_key()
    }

    pub fn to_public_key(&self) -> PublicKey {
        self.as_public_key().clone()
    }

    /// The modulus size in bytes: the length of every RSA ciphertext for this key.
    pub fn size(&self) -> usize {
        self.0.rsa.size()
    }

    /// Whether decryption goes through AWS-LC (false: the slower `rsa` fallback).
    pub fn decrypts_with_aws_lc(&self) -> bool {
        self.0.aws_lc.is_some()
    }

    /// RSA-OAEP (SHA-256, MGF1-SHA-256) decryption under `label`, as Sealed Secrets' Go
    /// `rsa.DecryptOAEP`. `None` for any failure: which step failed must not be told apart.
    pub(crate) fn decrypt_oaep_sha256(
        &self,
        label: &[u8],
        ciphertext: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        match &self.0.aws_lc {
            Some(key) => {
                let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
                let len = key
                    .decrypt(&OAEP_SHA256_MGF1SHA256, ciphertext, &mut out, Some(label))
                    .ok()?
                    .len();
                // Zeroizing<Vec> wipes the whole capacity, the truncated tail included.
                out.truncate(len);
                Some(out)
            }
            None => self
                .0
                .rsa
                .decrypt_blinded(
                    &mut getrandom::SysRng,
                    Oaep::<Sha256>::new_with_label(label),
                    ciphertext,
                )
                .ok()
                .map(Zeroizing::new),
        }
    }
}

impl From<rsa::PrivateKey> for PrivateKey {
    fn from(rsa: rsa::PrivateKey) -> PrivateKey {
        PrivateKey::new(rsa)
    }
}

/// The same key, whichever library decrypts with it.
impl PartialEq for PrivateKey {
    fn eq(&self, other: &PrivateKey) -> bool {
        self.0.rsa == other.0.rsa
    }
}

impl Eq for PrivateKey {}

/// Never prints key material.
impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("bits", &(self.size() * 8))
            .field("aws_lc", &self.decrypts_with_aws_lc())
            .finish_non_exhaustive()
    }
}
