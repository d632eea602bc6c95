//! What every command needs: formats, stores, the keyring, and how to open an encrypted file.

use std::path::Path;

use enseal_sops::crypto::values::MacCheck;
use enseal_sops::file::{self, FileError, Opened};
use enseal_sops::format::metadata::Metadata;
use enseal_sops::format::metadata::MetadataError;
use enseal_sops::keys::age::AgeIdentities;
use enseal_sops::keys::aws_kms::AwsKms;
use enseal_sops::keys::groups::Keyring;
use enseal_sops::keys::KmsService;
use enseal_sops::stores::{self, Format, Parsed, Store};

use crate::exit::{self, Failure, Result};
use crate::file_io::Input;

pub fn store(format: Format) -> Box<dyn Store> {
    stores::store_for(format)
}

/// AWS KMS access from the standard AWS environment (nothing is contacted until a key is used).
pub fn kms_service() -> Result<AwsKms> {
    AwsKms::from_env().map_err(|e| Failure::new(exit::GENERIC, e.to_string()))
}

/// The keys of the user running enseal: age identities (SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, ...),
/// and AWS KMS access when the file has KMS keys (so that age-only files never pay for it).
pub fn keyring_for(metadata: &Metadata) -> Result<Keyring> {
    let age = AgeIdentities::from_env()
        .map_err(|e| Failure::new(exit::COULD_NOT_RETRIEVE_KEY, e.to_string()))?;
    let kms: Option<Box<dyn KmsService>> = if metadata.key_groups.iter().any(|g| !g.kms.is_empty())
    {
        Some(Box::new(kms_service()?))
    } else {
        None
    };
    Ok(Keyring { age, kms })
}

pub fn file_error(name: &Path, e: FileError) -> Failure {
    match e {
        FileError::Store(e) => exit::store_error(name, e),
        FileError::NotEncrypted => Failure::new(exit::GENERIC, e.to_string()).in_file(name),
        FileError::Metadata(MetadataError::Missing("mac")) => {
            Failure::new(exit::MAC_NOT_FOUND, e.to_string()).in_file(name)
        }
        FileError::Metadata(e) => Failure::new(exit::GENERIC, e.to_string()).in_file(name),
        FileError::KeyGroup(e) => exit::key_group_error(name, e),
        FileError::Encryption(e) => exit::encryption_error(name, e),
    }
}

/// Parses, unwraps the data key and decrypts; errors name the file.
pub fn open(input: &Input, format: Format, ignore_mac: bool) -> Result<Opened> {
    open_with(input, format, ignore_mac, false)
}

/// Like [`open`], remembering every value's ciphertext so that writing the file back keeps the
/// ciphertext of the values that did not change.
pub fn open_for_edit(input: &Input, format: Format, ignore_mac: bool) -> Result<Opened> {
    open_with(input, format, ignore_mac, true)
}

/// Like [`open`], for a caller that no longer needs `input.bytes` (the store takes them
/// instead of copying them: a large file is then held once less) and that checks the MAC
/// itself, with [`check_mac`], before anything decrypted leaves the process.
pub fn open_taking(
    input: &mut Input,
    format: Format,
    ignore_mac: bool,
) -> Result<(Opened, MacCheck)> {
    let bytes = std::mem::take(&mut *input.bytes);
    let parsed = store(format)
        .parse_owned(bytes)
        .map_err(|e| exit::store_error(&input.name, e))?;
    let keyring = keyring_of(input, &parsed)?;
    file::open_deferring_mac(parsed, &keyring, ignore_mac).map_err(|e| file_error(&input.name, e))
}

/// Checks `mac` while `prepare` runs: on another core when the file is large (the hashing is
/// then a few milliseconds), else first. `prepare`'s result is returned only when the MAC is
/// right.
pub fn check_mac<T: Send>(
    name: &Path,
    mac: MacCheck,
    prepare: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    let mac_error = |e| file_error(name, FileError::Encryption(e));
    if !mac.is_large() {
        mac.verify().map_err(mac_error)?;
        return prepare();
    }
    std::thread::scope(|scope| {
        let check = scope.spawn(move || mac.verify());
        let prepared = prepare();
        check
            .join()
            .expect("the MAC check does not panic")
            .map_err(mac_error)?;
        prepared
    })
}

fn open_with(input: &Input, format: Format, ignore_mac: bool, edit: bool) -> Result<Opened> {
    let parsed = store(format)
        .parse(&input.bytes)
        .map_err(|e| exit::store_error(&input.name, e))?;
    open_parsed(input, parsed, ignore_mac, edit)
}

/// The keys that may open `parsed`, as its metadata names them.
fn keyring_of(input: &Input, parsed: &Parsed) -> Result<Keyring> {
    let metadata = file::read_metadata(parsed).map_err(|e| file_error(&input.name, e))?;
    keyring_for(&metadata)
}

fn open_parsed(input: &Input, parsed: Parsed, ignore_mac: bool, edit: bool) -> Result<Opened> {
    let keyring = keyring_of(input, &parsed)?;
    let opened = if edit {
        file::open_for_edit(parsed, &keyring, ignore_mac)
    } else {
        file::open_parsed(parsed, &keyring, ignore_mac)
    };
    opened.map_err(|e| file_error(&input.name, e))
}
