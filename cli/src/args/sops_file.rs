//! Arguments of the commands on sops files (`encrypt`, `decrypt`, `edit`, `set`, `unset`,
//! `rotate`, `updatekeys`, `filestatus`, `check`, `exec-env`, `exec-file`) and of `keygen`,
//! spelled as sops 3.11 spells them.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use zeroize::Zeroizing;

use crate::exit::{self, Failure, Result};
use crate::tree_path::{self, Step};

#[derive(Args, Debug)]
pub struct FileArg {
    pub file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DecryptArgs {
    pub file: Option<PathBuf>,
    /// Print only the value at this path, e.g. '["database"]["password"]'.
    #[arg(long, value_name = "PATH")]
    pub extract: Option<String>,
}

#[derive(Args, Debug)]
pub struct SetArgs {
    pub file: PathBuf,
    pub path: String,
    /// The new value as JSON (a string needs quotes: '"secret"'); with --value-file, the file
    /// holding it; omitted with --value-stdin.
    pub value: Option<String>,
    /// Read the value from standard input.
    #[arg(long)]
    pub value_stdin: bool,
    /// VALUE is a file to read the value from (keeps it out of process listings). A switch, as
    /// in sops: `set --value-file FILE PATH VALUE_FILE`.
    #[arg(long)]
    pub value_file: bool,
    /// Do nothing (exit 0) when the value is already set to this.
    #[arg(long)]
    pub idempotent: bool,
}

#[derive(Args, Debug)]
pub struct UnsetArgs {
    pub file: PathBuf,
    pub path: String,
    /// Do nothing (exit 0) when the path is absent.
    #[arg(long)]
    pub idempotent: bool,
}

#[derive(Args, Debug)]
pub struct RotateArgs {
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub keys: KeyChanges,
}

/// The master keys a rotation adds and removes, sops' `--add-*`/`--rm-*` flags, the same for
/// `enseal rotate` and the top-level `-r`. Added keys go to the first key group, removed ones
/// leave every group.
#[derive(Args, Debug, Default)]
pub struct KeyChanges {
    /// Add these age recipients while rotating.
    #[arg(long, value_name = "RECIPIENTS")]
    pub add_age: Option<String>,
    /// Remove these age recipients while rotating.
    #[arg(long, value_name = "RECIPIENTS")]
    pub rm_age: Option<String>,
    /// Add these PGP fingerprints while rotating.
    #[arg(long, value_name = "FINGERPRINTS")]
    pub add_pgp: Option<String>,
    /// Remove these PGP fingerprints while rotating.
    #[arg(long, value_name = "FINGERPRINTS")]
    pub rm_pgp: Option<String>,
    /// Add these GCP KMS key resource IDs while rotating.
    #[arg(long, value_name = "RESOURCE_IDS")]
    pub add_gcp_kms: Option<String>,
    /// Remove these GCP KMS key resource IDs while rotating.
    #[arg(long, value_name = "RESOURCE_IDS")]
    pub rm_gcp_kms: Option<String>,
    /// Add these Azure Key Vault key URLs while rotating.
    #[arg(long, value_name = "URLS")]
    pub add_azure_kv: Option<String>,
    /// Remove these Azure Key Vault key URLs while rotating.
    #[arg(long, value_name = "URLS")]
    pub rm_azure_kv: Option<String>,
    /// Add these Vault transit key URIs while rotating.
    #[arg(long, value_name = "URIS")]
    pub add_hc_vault_transit: Option<String>,
    /// Remove these Vault transit key URIs while rotating.
    #[arg(long, value_name = "URIS")]
    pub rm_hc_vault_transit: Option<String>,
    /// Remove these HuaweiCloud KMS key IDs (`region:key-uuid`) while rotating: the only way
    /// to rotate a file that has them, as enseal cannot wrap the new data key for them.
    #[arg(long, value_name = "KEY_IDS")]
    pub rm_hckms: Option<String>,
}

impl KeyChanges {
    /// Whether any key is added or removed.
    pub fn any(&self) -> bool {
        [
            &self.add_age,
            &self.rm_age,
            &self.add_pgp,
            &self.rm_pgp,
            &self.add_gcp_kms,
            &self.rm_gcp_kms,
            &self.add_azure_kv,
            &self.rm_azure_kv,
            &self.add_hc_vault_transit,
            &self.rm_hc_vault_transit,
            &self.rm_hckms,
        ]
        .iter()
        .any(|k| k.is_some())
    }
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Files to check; files no creation rule covers are ignored.
    pub files: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct UpdateKeysArgs {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
}

/// sops' `publish` flags.
#[derive(Args, Debug)]
pub struct PublishArgs {
    pub file: PathBuf,
    /// Publish without asking.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Leave the file's extension out of the destination name.
    #[arg(long)]
    pub omit_extensions: bool,
    /// Publish every file under the directory FILE (not supported yet).
    #[arg(long)]
    pub recursive: bool,
}

#[derive(Args, Debug)]
pub struct GroupsArgs {
    #[command(subcommand)]
    pub action: GroupsAction,
}

/// sops' `groups add` and `groups delete`: the data key is wrapped again for the new list of
/// key groups; values, MAC and lastmodified stay as they are.
#[derive(Subcommand, Debug)]
pub enum GroupsAction {
    /// Add a key group made of the keys given with --age, --pgp, --kms and --hc-vault-transit (repeatable).
    Add {
        /// The encrypted file.
        #[arg(short = 'f', long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Delete the key group at INDEX (0 is the first, as in sops).
    Delete {
        /// The encrypted file.
        #[arg(short = 'f', long, value_name = "FILE")]
        file: PathBuf,
        index: usize,
    },
}

#[derive(Args, Debug)]
pub struct ExecEnvArgs {
    pub file: PathBuf,
    pub command: String,
    /// Start the command with only the file's values in its environment.
    #[arg(long)]
    pub pristine: bool,
}

#[derive(Args, Debug)]
pub struct ExecFileArgs {
    pub file: PathBuf,
    pub command: String,
    /// Name of the plaintext file inside the private directory.
    #[arg(long, value_name = "NAME")]
    pub filename: Option<String>,
    /// Write the plaintext to a private regular file instead of a FIFO (for a command that
    /// seeks in it or reads it twice).
    #[arg(long)]
    pub no_fifo: bool,
}

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Write the identity to this file (created with mode 0600; never overwritten).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Generate a post-quantum hybrid key pair (ML-KEM-768 + X25519, as `age-keygen -pq`):
    /// an `AGE-SECRET-KEY-PQ-1...` identity and an `age1pq1...` recipient, which sops 3.12+ and
    /// age v1.3+ read. Older sops and age cannot decrypt files encrypted to it.
    #[arg(long)]
    pub pq: bool,
}

/// Where `set` takes the new value from: exactly one of the three ways to give it.
pub enum ValueSource {
    Argument(Zeroizing<String>),
    Stdin,
    File(PathBuf),
}

/// Never shows the value given as an argument: it is a secret.
impl std::fmt::Debug for ValueSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueSource::Argument(_) => f.write_str("Argument(..)"),
            ValueSource::Stdin => f.write_str("Stdin"),
            ValueSource::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// `enseal set`, validated: the path parsed, the value given exactly once.
#[derive(Debug)]
pub struct SetOptions {
    pub file: PathBuf,
    pub path: Vec<Step>,
    pub value: ValueSource,
    pub idempotent: bool,
}

/// `enseal unset`, validated: the path parsed (and kept as typed, for messages).
#[derive(Debug)]
pub struct UnsetOptions {
    pub file: PathBuf,
    pub path: Vec<Step>,
    pub path_text: String,
    pub idempotent: bool,
}

impl SetArgs {
    /// The path is checked before the value (exit 91 before 8), as enseal always did.
    pub fn validate(self) -> Result<SetOptions> {
        let path = tree_path::parse(&self.path)?;
        let value =
            match (self.value, self.value_stdin, self.value_file) {
                (Some(v), false, false) => ValueSource::Argument(Zeroizing::new(v)),
                (None, true, false) => ValueSource::Stdin,
                (Some(f), false, true) => ValueSource::File(PathBuf::from(f)),
                _ => return Err(Failure::new(
                    exit::CONFLICTING_PARAMETERS,
                    "give the value exactly once: as an argument, --value-stdin or --value-file",
                )),
            };
        Ok(SetOptions {
            file: self.file,
            path,
            value,
            idempotent: self.idempotent,
        })
    }
}

impl UnsetArgs {
    pub fn validate(self) -> Result<UnsetOptions> {
        Ok(UnsetOptions {
            path: tree_path::parse(&self.path)?,
            file: self.file,
            path_text: self.path,
            idempotent: self.idempotent,
        })
    }
}
