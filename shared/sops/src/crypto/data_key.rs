//! The data key: 32 random bytes per file that encrypt every value; only its wrapped forms
//! (one per master key) are stored in the file.

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::KeyInit;
use aes_gcm::aes::Aes256;
use aes_gcm::AesGcm;
use rand::RngCore;
use zeroize::Zeroizing;

/// AES-256-GCM with sops' 32-byte IV; one instance per data key, made once.
pub(crate) type Aes256Gcm32 = AesGcm<Aes256, U32>;

pub const DATA_KEY_LEN: usize = 32;

/// A file's data key. Zeroized when dropped (the `aes` crate's `zeroize` feature also clears the
/// expanded round keys); never printed (Debug is redacted).
#[derive(Clone)]
pub struct DataKey {
    key: Zeroizing<[u8; DATA_KEY_LEN]>,
    /// The AES-GCM instance for this key, built once: expanding the key schedule for each of a
    /// file's values cost a tenth of decrypting a large file.
    cipher: Aes256Gcm32,
}

impl DataKey {
    pub fn generate() -> DataKey {
        let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        rand::thread_rng().fill_bytes(key.as_mut());
        DataKey::from_array(key)
    }

    /// `None` when `bytes` is not 32 bytes long (a wrong or corrupt key stanza).
    pub fn from_slice(bytes: &[u8]) -> Option<DataKey> {
        let arr: [u8; DATA_KEY_LEN] = bytes.try_into().ok()?;
        Some(DataKey::from_array(Zeroizing::new(arr)))
    }

    fn from_array(key: Zeroizing<[u8; DATA_KEY_LEN]>) -> DataKey {
        let cipher = Aes256Gcm32::new(key.as_ref().into());
        DataKey { key, cipher }
    }

    pub fn as_bytes(&self) -> &[u8; DATA_KEY_LEN] {
        &self.key
    }

    pub(crate) fn cipher(&self) -> &Aes256Gcm32 {
        &self.cipher
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}
