//! The command line, shaped like sops 3.11's so that the same command lines work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "enseal",
    version,
    about = "Keep secrets in Git, encrypted: sops-compatible files with age keys",
    long_about = "enseal encrypts the values of YAML, JSON, dotenv, INI and binary files with age \
                  keys, in the sops 3.11 file format (sops reads what enseal writes and the other \
                  way round). Files keep their layout: comments, quoting and key order survive \
                  encryption, and decrypting gives the original bytes back.",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: GlobalOptions,
}

/// Options accepted before or after the subcommand, as sops accepts them.
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalOptions {
    /// Comma-separated age recipients to encrypt for.
    #[arg(
        short = 'a',
        long,
        global = true,
        env = "SOPS_AGE_RECIPIENTS",
        value_name = "RECIPIENTS"
    )]
    pub age: Option<String>,
    /// Comma-separated AWS KMS key ARNs to encrypt for; `ARN+ROLE_ARN` assumes that role.
    #[arg(
        short = 'k',
        long,
        global = true,
        env = "SOPS_KMS_ARN",
        value_name = "ARNS"
    )]
    pub kms: Option<String>,
    /// AWS profile for the KMS keys given with --kms.
    #[arg(long, global = true, value_name = "PROFILE")]
    pub aws_profile: Option<String>,
    /// KMS encryption context for the keys given with --kms: `key:value,key2:value2`.
    #[arg(long, global = true, value_name = "CONTEXT")]
    pub encryption_context: Option<String>,
    /// Input format: yaml, json, dotenv, ini or binary (default: from the file extension).
    #[arg(long, global = true, value_name = "TYPE")]
    pub input_type: Option<String>,
    /// Output format: yaml, json, dotenv, ini or binary (default: the input format).
    #[arg(long, global = true, value_name = "TYPE")]
    pub output_type: Option<String>,
    /// Encrypt only the values whose key (or a parent key) matches this regex.
    #[arg(long, global = true, value_name = "REGEX")]
    pub encrypted_regex: Option<String>,
    /// Leave in the clear the values whose key (or a parent key) matches this regex.
    #[arg(long, global = true, value_name = "REGEX")]
    pub unencrypted_regex: Option<String>,
    /// Encrypt only the values whose key (or a parent key) ends with this suffix.
    #[arg(long, global = true, value_name = "SUFFIX")]
    pub encrypted_suffix: Option<String>,
    /// Leave in the clear the values whose key ends with this suffix (default `_unencrypted`).
    #[arg(long, global = true, value_name = "SUFFIX")]
    pub unencrypted_suffix: Option<String>,
    /// Encrypt only the values preceded by a comment matching this regex.
    #[arg(long, global = true, value_name = "REGEX")]
    pub encrypted_comment_regex: Option<String>,
    /// Leave in the clear the values preceded by a comment matching this regex.
    #[arg(long, global = true, value_name = "REGEX")]
    pub unencrypted_comment_regex: Option<String>,
    /// Compute the MAC over encrypted values only (clear values may then change freely).
    #[arg(long, global = true)]
    pub mac_only_encrypted: bool,
    /// Number of key groups needed to decrypt (Shamir secret sharing).
    #[arg(long, global = true, value_name = "N")]
    pub shamir_secret_sharing_threshold: Option<usize>,
    /// Decrypt even when the MAC does not match (recovery only).
    #[arg(long, global = true)]
    pub ignore_mac: bool,
    /// Path to the .sops.yaml to use instead of searching for one.
    #[arg(long, global = true, env = "SOPS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Name to use for creation rules and format detection when reading standard input.
    #[arg(long, global = true, value_name = "NAME")]
    pub filename_override: Option<PathBuf>,
    /// Write to this file instead of standard output.
    #[arg(long, global = true, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write the result back to the input file (atomically).
    #[arg(short = 'i', long, global = true)]
    pub in_place: bool,
    /// Accepted for sops compatibility; enseal does not check for updates.
    #[arg(long, global = true, hide = true)]
    pub disable_version_check: bool,
    /// Accepted for sops compatibility.
    #[arg(long, global = true, hide = true)]
    pub verbose: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Encrypt a file (standard input when FILE is absent or `-`).
    Encrypt(FileArg),
    /// Decrypt a file.
    Decrypt(DecryptArgs),
    /// Open a file decrypted in $SOPS_EDITOR or $EDITOR, and encrypt it again on save.
    Edit(FileArg),
    /// Set the value at a path (sops syntax: '["key"][0]'); VALUE is JSON.
    Set(SetArgs),
    /// Remove the value at a path.
    Unset(UnsetArgs),
    /// Encrypt a file again with a new data key.
    Rotate(RotateArgs),
    /// Wrap the data key for the keys the creation rules name now; values are untouched.
    Updatekeys(UpdateKeysArgs),
    /// Print whether a file is encrypted, as JSON: {"encrypted":true}.
    Filestatus(FileArg),
    /// Exit 1 listing the files a creation rule of .sops.yaml covers that are not encrypted
    /// (the pre-commit hook).
    Check(CheckArgs),
    /// Run a command with the file's top-level values in its environment.
    ExecEnv(ExecEnvArgs),
    /// Run a command with `{}` replaced by the path of a private file holding the plaintext.
    ExecFile(ExecFileArgs),
    /// Generate an age identity; prints the recipient on standard error.
    Keygen(KeygenArgs),
    /// Seal Kubernetes Secrets into SealedSecrets for a cluster's certificate (as kubeseal).
    Seal(crate::seal_args::SealArgs),
    /// Open SealedSecrets with the controller's private keys (disaster recovery).
    Unseal(crate::seal_args::UnsealArgs),
    /// Print the cluster's sealing certificate, or generate a new sealing key pair.
    Cert(crate::seal_args::CertArgs),
    /// Print the SopsSecret manifest (enseal.dev/v1alpha1) for an encrypted file, for
    /// enseal-controller to decrypt in the cluster.
    SopsSecret(crate::commands::sops_secret::SopsSecretArgs),
    /// Decrypt enseal/sops files for `kustomize build`: a KRM exec function (ResourceList on
    /// standard input) or a legacy exec plugin (CONFIG file), accepting ksops' config. Also
    /// run when the binary is started as `ksops` or `enseal-kustomize`.
    Kustomize(crate::commands::kustomize::KustomizeArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion { shell: clap_complete::Shell },
    /// Print the man page (roff).
    Man,
}

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
    /// The new value as JSON (a string needs quotes: '"secret"'). Read from standard input
    /// with --value-stdin, or from a file with --value-file.
    pub value: Option<String>,
    /// Read the value from standard input.
    #[arg(long)]
    pub value_stdin: bool,
    /// Read the value from this file.
    #[arg(long, value_name = "FILE")]
    pub value_file: Option<PathBuf>,
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
    /// Add these age recipients while rotating.
    #[arg(long, value_name = "RECIPIENTS")]
    pub add_age: Option<String>,
    /// Remove these age recipients while rotating.
    #[arg(long, value_name = "RECIPIENTS")]
    pub rm_age: Option<String>,
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
    /// Accepted for sops compatibility: enseal always uses a private regular file.
    #[arg(long)]
    pub no_fifo: bool,
}

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Write the identity to this file (created with mode 0600; never overwritten).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}
