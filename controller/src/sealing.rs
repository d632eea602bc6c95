//! The controller's view of the sealing crypto in `enseal_sealing`:
//! the few calls it makes, with errors sorted into what the status condition
//! reports. No crypto of its own lives here.

use std::time::Duration;

use enseal_sealing::{self as shared, keys, SealError};
use zeroize::Zeroizing;

pub use shared::{PrivateKey, PublicKey};

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct SealingError(#[from] keys::KeyError);

#[derive(Debug, thiserror::Error)]
pub enum OpenFailure {
    #[error("{0}")]
    Malformed(String),
    #[error("no sealing key could decrypt it")]
    NoKeyOpens,
}

/// A new key pair in the form a key Secret stores it.
pub struct GeneratedKey {
    pub private_key_pem: Zeroizing<String>,
    pub cert_pem: String,
}

/// The first RSA private key in `pem` (PKCS#1 as Sealed Secrets writes it, or PKCS#8).
pub fn parse_private_key_pem(pem: &[u8]) -> Result<PrivateKey, SealingError> {
    let mut keys = keys::parse_private_keys_pem(pem)?;
    // parse_private_keys_pem never returns an empty list.
    Ok(keys.swap_remove(0))
}

/// Opens one `encryptedData` value with whichever key fits.
pub fn open_value(
    keys: &[&PrivateKey],
    label: &[u8],
    value: &str,
) -> Result<Zeroizing<Vec<u8>>, OpenFailure> {
    shared::open_base64(keys.iter().copied(), label, value).map_err(|e| match e {
        SealError::NoKeyOpens => OpenFailure::NoKeyOpens,
        other => OpenFailure::Malformed(other.to_string()),
    })
}

pub fn seal_value(
    public_key: &PublicKey,
    label: &[u8],
    plain: &[u8],
) -> Result<String, OpenFailure> {
    shared::seal_base64(public_key, label, plain).map_err(|e| OpenFailure::Malformed(e.to_string()))
}

pub fn generate_key(
    bits: usize,
    common_name: &str,
    validity: Duration,
) -> Result<GeneratedKey, SealingError> {
    let cn = if common_name.is_empty() {
        keys::DEFAULT_COMMON_NAME
    } else {
        common_name
    };
    let pair = shared::KeyPair::generate(bits, cn, validity)?;
    Ok(GeneratedKey {
        private_key_pem: pair.private_key_pem()?,
        cert_pem: pair.certificate_pem,
    })
}
