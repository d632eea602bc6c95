//! The data key: 32 random bytes per file that encrypt every value; only its wrapped forms
//! (one per master key) are stored in the file.

use rand::RngCore;
use zeroize::Zeroizing;

pub const DATA_KEY_LEN: usize = 32;

/// A file's data key. Zeroized when dropped; never printed (Debug is redacted).
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; DATA_KEY_LEN]>);

impl DataKey {
    pub fn generate() -> DataKey {
        let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        rand::thread_rng().fill_bytes(key.as_mut());
        DataKey(key)
    }

    /// `None` when `bytes` is not 32 bytes long (a wrong or corrupt key stanza).
    pub fn from_slice(bytes: &[u8]) -> Option<DataKey> {
        let arr: [u8; DATA_KEY_LEN] = bytes.try_into().ok()?;
        Some(DataKey(Zeroizing::new(arr)))
    }

    pub fn as_bytes(&self) -> &[u8; DATA_KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}
