//! Exit codes (sops' numbers, so scripts written for sops keep working) and the error type the
//! commands return. Where sops declares a code but returns 1 (a bad or missing .sops.yaml: sops
//! 3.11 and 3.13 exit 1, not ErrorReadingConfig 5 or ConfigFileNotFound 61), enseal returns 1.

use std::fmt;
use std::path::Path;

use enseal_sops::crypto::values::EncryptionError;
use enseal_sops::keys::groups::KeyGroupError;
use enseal_sops::stores::StoreError;

pub const GENERIC: i32 = 1;
pub const CANNOT_READ_INPUT: i32 = 2;
pub const CANNOT_WRITE_OUTPUT: i32 = 3;
pub const INVALID_SET_FORMAT: i32 = 7;
pub const CONFLICTING_PARAMETERS: i32 = 8;
pub const ERROR_ENCRYPTING_TREE: i32 = 23;
pub const ERROR_DECRYPTING_TREE: i32 = 25;
pub const MAC_MISMATCH: i32 = 51;
pub const INVALID_TREE_PATH: i32 = 91;
pub const NEED_AT_LEAST_ONE_DOCUMENT: i32 = 92;
pub const NO_FILE: i32 = 100;
pub const DUPLICATE_DECRYPTION_KEY_TYPE: i32 = 112;
pub const COULD_NOT_RETRIEVE_KEY: i32 = 128;
pub const FILE_NOT_MODIFIED: i32 = 200;
pub const NO_EDITOR: i32 = 201;
pub const ALREADY_ENCRYPTED: i32 = 203;

/// A failure as the user sees it: a message (never containing secret values) and an exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
    /// What enseal adds to a message whose text is sops' own (which file, which rule); not
    /// printed when enseal speaks as sops.
    pub detail: Option<String>,
}

pub type Result<T> = std::result::Result<T, Failure>;

impl Failure {
    pub fn new(code: i32, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Failure {
        self.detail = Some(detail.into());
        self
    }

    /// Prefixes the message with the file it is about.
    pub fn in_file(mut self, file: &Path) -> Failure {
        self.message = format!("{}: {}", file.display(), self.message);
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub fn store_error(file: &Path, e: StoreError) -> Failure {
    let code = match e {
        StoreError::Syntax { .. } => CANNOT_READ_INPUT,
        StoreError::Unrepresentable { .. } | StoreError::ForeignLayout { .. } => GENERIC,
    };
    Failure::new(code, e.to_string()).in_file(file)
}

pub fn encryption_error(file: &Path, e: EncryptionError) -> Failure {
    let code = match e {
        EncryptionError::MacMismatch
        | EncryptionError::MacUndecryptable(_)
        | EncryptionError::MacMissing => MAC_MISMATCH,
        EncryptionError::LastModified(_) => MAC_MISMATCH,
        EncryptionError::CommentMatchesUnencryptedRegex { .. } => ERROR_ENCRYPTING_TREE,
        _ => ERROR_DECRYPTING_TREE,
    };
    Failure::new(code, e.to_string()).in_file(file)
}

pub fn key_group_error(file: &Path, e: KeyGroupError) -> Failure {
    let code = match e {
        KeyGroupError::Unavailable { .. } => COULD_NOT_RETRIEVE_KEY,
        // sops' words and exit code (1) for a creation rule that names no keys, or a key group
        // without keys: scripts and sops' functional tests match them.
        KeyGroupError::NoKeys | KeyGroupError::EmptyGroup { .. } => {
            return Failure::new(
                GENERIC,
                "Could not generate data key: [empty key group provided]",
            )
            .with_detail(format!("{}: {e}", file.display()));
        }
        _ => GENERIC,
    };
    Failure::new(code, e.to_string()).in_file(file)
}
