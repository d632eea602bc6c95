//! What every command needs: formats, stores, the keyring, and how to open an encrypted file.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use enseal_sops::file::{self, Decrypted, FileError, Mac, OpenOptions};
use enseal_sops::keys::age::AgeIdentities;
use enseal_sops::keys::aws_kms::AwsKms;
use enseal_sops::keys::azure_kv::AzureKeyVault;
use enseal_sops::keys::gcp_kms::GcpKms;
use enseal_sops::keys::groups::{KeyGroupError, Keyring};
use enseal_sops::keys::hc_vault::VaultTransit;
use enseal_sops::keys::order::DecryptionOrder;
use enseal_sops::keys::pgp::GnuPg;
use enseal_sops::keys::KmsService;
use enseal_sops::stores::{self, Format, Store};

use crate::args::GlobalOptions;
use crate::exit::{self, Failure, Result};
use crate::file_io::Input;
use crate::terminal::TerminalPrompt;

pub fn store(format: Format) -> Box<dyn Store> {
    stores::store_for(format)
}

/// AWS KMS access from the standard AWS environment (nothing is contacted until a key is used).
pub fn kms_service() -> Result<AwsKms> {
    AwsKms::from_env().map_err(|e| Failure::new(exit::GENERIC, e.to_string()))
}

/// Vault / OpenBao transit access with the token as sops finds it (nothing is contacted until
/// a key is used).
pub fn vault_service() -> Result<VaultTransit> {
    VaultTransit::from_env().map_err(|e| Failure::new(exit::GENERIC, e.to_string()))
}

/// Azure Key Vault access with the credentials DefaultAzureCredential would find (read and
/// used only when a key is).
pub fn azure_kv_service() -> Result<AzureKeyVault> {
    AzureKeyVault::from_env().map_err(|e| Failure::new(exit::GENERIC, e.to_string()))
}

/// GCP Cloud KMS access with credentials found as sops finds them (read and used only when a
/// key is).
pub fn gcp_kms_service() -> Result<GcpKms> {
    GcpKms::from_env().map_err(|e| Failure::new(exit::GENERIC, e.to_string()))
}

static DECRYPTION_ORDER: OnceLock<DecryptionOrder> = OnceLock::new();

/// The order every keyring of this run tries a file's keys in (`--decryption-order`); set
/// once, before a command runs.
pub fn set_decryption_order(order: DecryptionOrder) {
    let _ = DECRYPTION_ORDER.set(order);
}

/// The keys of the user running enseal: age identities (SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, ...),
/// read when a file is opened; the GnuPG keyring through `SOPS_GPG_EXEC` (else `gpg`), run only
/// for PGP keys; and AWS KMS access, set up only when the file has KMS keys (so that age-only
/// files never pay for it). Keys are tried in the run's decryption order.
pub fn keyring() -> Keyring<'static> {
    // A passphrase-protected identity file is asked for on the terminal, as sops asks.
    let age = || {
        AgeIdentities::from_env().map(|ids| ids.with_passphrase_prompt(Arc::new(TerminalPrompt)))
    };
    Keyring::loading_age(age)
        .with_decryption_order(DECRYPTION_ORDER.get().cloned().unwrap_or_default())
        .with_gpg(GnuPg::from_env())
        .with_kms_from(|| {
            kms_service()
                .map(|k| Box::new(k) as Box<dyn KmsService>)
                .map_err(|f| f.message)
        })
        .with_vault_from(|| vault_service().map_err(|f| f.message))
        .with_gcp_kms_from(|| gcp_kms_service().map_err(|f| f.message))
        .with_azure_kv_from(|| azure_kv_service().map_err(|f| f.message))
}

/// Whether the global options check the MAC (`--ignore-mac` does not).
pub fn mac(global: &GlobalOptions) -> Mac {
    if global.ignore_mac {
        Mac::Ignore
    } else {
        Mac::Verify
    }
}

pub fn file_error(name: &Path, e: FileError) -> Failure {
    match e {
        FileError::Store(e) => exit::store_error(name, e),
        FileError::NotEncrypted => Failure::new(exit::GENERIC, e.to_string()).in_file(name),
        FileError::Metadata(e) => Failure::new(exit::GENERIC, e.to_string()).in_file(name),
        FileError::KeyGroup(e) => key_group_error(name, e),
        FileError::Encryption(e) => exit::encryption_error(name, e),
    }
}

/// Like [`exit::key_group_error`], for the keyring's own failures too: they are about the
/// user's keys, not the file, so they do not name it.
pub fn key_group_error(name: &Path, e: KeyGroupError) -> Failure {
    match e {
        KeyGroupError::AgeIdentities(e) => {
            Failure::new(exit::COULD_NOT_RETRIEVE_KEY, e.to_string())
        }
        KeyGroupError::KmsAccess(reason) => Failure::new(exit::GENERIC, reason),
        e => exit::key_group_error(name, e),
    }
}

/// Parses, unwraps the data key, decrypts and checks the MAC (unless `mac` says to ignore
/// it); errors name the file.
pub fn open(input: &Input, format: Format, mac: Mac) -> Result<Decrypted> {
    open_with(input, format, mac, &OpenOptions::default())
}

/// Like [`open`], remembering every value's ciphertext so that writing the file back keeps the
/// ciphertext of the values that did not change.
pub fn open_for_edit(input: &Input, format: Format, mac: Mac) -> Result<Decrypted> {
    let options = OpenOptions {
        remember_ciphertext: true,
    };
    open_with(input, format, mac, &options)
}

fn open_with(input: &Input, format: Format, mac: Mac, options: &OpenOptions) -> Result<Decrypted> {
    let parsed = store(format)
        .parse(&input.bytes)
        .map_err(|e| exit::store_error(&input.name, e))?;
    let unverified =
        file::open(parsed, &keyring(), options).map_err(|e| file_error(&input.name, e))?;
    match mac {
        Mac::Verify => unverified.verify().map_err(|e| file_error(&input.name, e)),
        Mac::Ignore => Ok(unverified.ignore_mac()),
    }
}
