//! Every flag of the `enseal` command line, in two layers as ripgrep has them: clap's structs
//! (`Cli`, `Command` and the `*Args` of each command group: what the user typed, shaped like
//! sops 3.11's and kubeseal's command lines so that theirs keep working), and the validated
//! [`Invocation`] that [`parse`] makes of them once. Commands take the validated form and never
//! parse or check a flag themselves.
//!
//! One file per command group; this module has the top-level command and the global options.

mod kustomize;
mod seal;
mod sops_file;
mod sops_secret;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use enseal_sops::keys::order::{DecryptionOrder, DuplicateKeyType};
use enseal_sops::stores::Format;

use crate::exit::{self, Failure, Result};

pub use kustomize::KustomizeArgs;
pub use seal::{CertArgs, ControllerArgs, SealArgs, UnsealArgs};
pub use sops_file::{
    CheckArgs, DecryptArgs, ExecEnvArgs, ExecFileArgs, FileArg, GroupsAction, GroupsArgs,
    KeyChanges, KeygenArgs, PublishArgs, RotateArgs, SetArgs, SetOptions, UnsetArgs, UnsetOptions,
    UpdateKeysArgs, ValueSource,
};
pub use sops_secret::SopsSecretArgs;

#[derive(Parser, Debug)]
#[command(
    name = "enseal",
    version,
    about = "Keep secrets in Git, encrypted: sops-compatible files with age keys",
    long_about = "enseal encrypts the values of YAML, JSON, dotenv, INI and binary files with age \
                  keys, in the sops 3.11 file format (sops reads what enseal writes and the other \
                  way round). Files keep their layout: comments, quoting and key order survive \
                  encryption, and decrypting gives the original bytes back.",
    propagate_version = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub legacy: LegacyArgs,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// sops' top-level forms, which scripts, CI and tools still type (helm-secrets runs
/// `sops --decrypt --input-type yaml --output-type yaml FILE`): `-d`, `-e`, `-r`, `--set`,
/// `--extract`, and a bare `FILE` to edit. Each means the same as the subcommand.
#[derive(Args, Debug, Default)]
pub struct LegacyArgs {
    /// Decrypt FILE (as `enseal decrypt`).
    #[arg(short = 'd', long)]
    pub decrypt: bool,
    /// Encrypt FILE (as `enseal encrypt`).
    #[arg(short = 'e', long)]
    pub encrypt: bool,
    /// Encrypt FILE again with a new data key (as `enseal rotate`).
    #[arg(short = 'r', long)]
    pub rotate: bool,
    /// Set a value: 'PATH VALUE', e.g. '["db"]["password"] "secret"' (as `enseal set`).
    #[arg(long, value_name = "PATH VALUE")]
    pub set: Option<String>,
    /// With --decrypt: print only the value at this path.
    #[arg(long, value_name = "PATH")]
    pub extract: Option<String>,
    // With --rotate: the keys to add and remove (`--add-age`, `--rm-pgp`, ...).
    #[command(flatten)]
    pub key_changes: KeyChanges,
    /// The file: decrypted, encrypted, rotated or set as the flags say, else opened in the
    /// editor (as `enseal edit`).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// Options accepted before or after the subcommand, as sops accepts them.
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// Comma-separated age recipients to encrypt for.
    // Repeatable (the lists are joined), as sops' `groups add --age` is.
    #[arg(
        short = 'a',
        long,
        global = true,
        env = "SOPS_AGE_RECIPIENTS",
        value_name = "RECIPIENTS",
        action = clap::ArgAction::Append
    )]
    pub age: Vec<String>,
    /// Comma-separated AWS KMS key ARNs to encrypt for; `ARN+ROLE_ARN` assumes that role.
    #[arg(
        short = 'k',
        long,
        global = true,
        env = "SOPS_KMS_ARN",
        value_name = "ARNS",
        action = clap::ArgAction::Append
    )]
    pub kms: Vec<String>,
    /// Comma-separated PGP fingerprints to encrypt for (public keys of the GnuPG keyring).
    #[arg(
        short = 'p',
        long,
        global = true,
        env = "SOPS_PGP_FP",
        value_name = "FINGERPRINTS",
        action = clap::ArgAction::Append
    )]
    pub pgp: Vec<String>,
    /// Comma-separated Vault / OpenBao transit keys to encrypt for, as URIs
    /// (`https://vault.example.com:8200/v1/transit/keys/NAME`).
    #[arg(
        long,
        global = true,
        env = "SOPS_VAULT_URIS",
        value_name = "URIS",
        action = clap::ArgAction::Append
    )]
    pub hc_vault_transit: Vec<String>,
    /// Comma-separated GCP Cloud KMS keys to encrypt for, as resource IDs
    /// (`projects/P/locations/L/keyRings/R/cryptoKeys/K`).
    #[arg(
        long,
        global = true,
        env = "SOPS_GCP_KMS_IDS",
        value_name = "RESOURCE_IDS",
        action = clap::ArgAction::Append
    )]
    pub gcp_kms: Vec<String>,
    /// Refused: HuaweiCloud KMS is not supported by enseal. Read (with sops' variable) so
    /// that keys named for a new file are refused rather than left out without a word.
    #[arg(
        long,
        global = true,
        env = "SOPS_HUAWEICLOUD_KMS_IDS",
        value_name = "KEY_IDS",
        action = clap::ArgAction::Append
    )]
    pub hckms: Vec<String>,
    /// Comma-separated Azure Key Vault keys to encrypt for, as key URLs
    /// (`https://VAULT.vault.azure.net/keys/NAME[/VERSION]`).
    #[arg(
        long,
        global = true,
        env = "SOPS_AZURE_KEYVAULT_URLS",
        value_name = "URLS",
        action = clap::ArgAction::Append
    )]
    pub azure_kv: Vec<String>,
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
    /// Comma-separated key types in the order a file's keys are tried (default `age,pgp`; the
    /// other types after them): `age`, `pgp`, `kms`, `gcp_kms`, `azure_kv`, `hc_vault`.
    #[arg(
        long,
        global = true,
        env = "SOPS_DECRYPTION_ORDER",
        value_name = "TYPES"
    )]
    pub decryption_order: Option<String>,
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
    /// Add or delete a key group of a file (as sops groups); values are untouched.
    Groups(GroupsArgs),
    /// Publish a file to the destination its `destination_rules` entry names (Vault KV only:
    /// the decrypted values are written as one secret, as sops publish does).
    Publish(PublishArgs),
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
    Seal(SealArgs),
    /// Open SealedSecrets with the controller's private keys (disaster recovery).
    Unseal(UnsealArgs),
    /// Print the cluster's sealing certificate, or generate a new sealing key pair.
    Cert(CertArgs),
    /// Print the SopsSecret manifest (enseal.dev/v1alpha1) for an encrypted file, for
    /// enseal-controller to decrypt in the cluster.
    SopsSecret(SopsSecretArgs),
    /// Decrypt enseal/sops files for `kustomize build`: a KRM exec function (ResourceList on
    /// standard input) or a legacy exec plugin (CONFIG file), accepting ksops' config. Also
    /// run when the binary is started as `ksops` or `enseal-kustomize`.
    Kustomize(KustomizeArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion { shell: clap_complete::Shell },
    /// Print the man page (roff).
    Man,
}

/// The global options as the sops file commands take them: formats parsed, the flags kept only
/// for sops compatibility (`--disable-version-check`, `--verbose`) dropped.
#[derive(Debug, Clone, Default)]
pub struct GlobalOptions {
    pub age: Option<String>,
    pub kms: Option<String>,
    pub pgp: Option<String>,
    pub hc_vault_transit: Option<String>,
    pub gcp_kms: Option<String>,
    pub azure_kv: Option<String>,
    /// HuaweiCloud KMS key IDs, only to be refused.
    pub hckms: Option<String>,
    pub aws_profile: Option<String>,
    pub encryption_context: Option<String>,
    pub input_type: Option<Format>,
    pub output_type: Option<Format>,
    pub encrypted_regex: Option<String>,
    pub unencrypted_regex: Option<String>,
    pub encrypted_suffix: Option<String>,
    pub unencrypted_suffix: Option<String>,
    pub encrypted_comment_regex: Option<String>,
    pub unencrypted_comment_regex: Option<String>,
    pub mac_only_encrypted: bool,
    pub shamir_secret_sharing_threshold: Option<usize>,
    pub ignore_mac: bool,
    pub decryption_order: DecryptionOrder,
    pub config: Option<PathBuf>,
    pub filename_override: Option<PathBuf>,
    pub output: Option<PathBuf>,
    pub in_place: bool,
}

impl GlobalOptions {
    /// The format `name` is read in: `--input-type`, else the file extension's.
    pub fn input_format(&self, name: &Path) -> Format {
        self.input_type.unwrap_or_else(|| Format::from_path(name))
    }

    /// The format written: `--output-type`, else the input format (as in sops: not the output
    /// file's extension).
    pub fn output_format(&self, input: Format) -> Format {
        self.output_type.unwrap_or(input)
    }
}

impl GlobalArgs {
    pub fn validate(self) -> Result<GlobalOptions> {
        Ok(GlobalOptions {
            input_type: parse_format("--input-type", self.input_type)?,
            output_type: parse_format("--output-type", self.output_type)?,
            age: joined(self.age),
            kms: joined(self.kms),
            pgp: joined(self.pgp),
            hc_vault_transit: joined(self.hc_vault_transit),
            gcp_kms: joined(self.gcp_kms),
            azure_kv: joined(self.azure_kv),
            hckms: joined(self.hckms),
            aws_profile: self.aws_profile,
            encryption_context: self.encryption_context,
            encrypted_regex: self.encrypted_regex,
            unencrypted_regex: self.unencrypted_regex,
            encrypted_suffix: self.encrypted_suffix,
            unencrypted_suffix: self.unencrypted_suffix,
            encrypted_comment_regex: self.encrypted_comment_regex,
            unencrypted_comment_regex: self.unencrypted_comment_regex,
            mac_only_encrypted: self.mac_only_encrypted,
            shamir_secret_sharing_threshold: self.shamir_secret_sharing_threshold,
            ignore_mac: self.ignore_mac,
            decryption_order: parse_decryption_order(self.decryption_order)?,
            config: self.config,
            filename_override: self.filename_override,
            output: self.output,
            in_place: self.in_place,
        })
    }
}

/// The values of a repeatable list flag as one comma-separated list (`None` when not given).
fn joined(values: Vec<String>) -> Option<String> {
    (!values.is_empty()).then(|| values.join(","))
}

/// `--decryption-order` / `SOPS_DECRYPTION_ORDER` as sops reads it (unknown types accepted,
/// ranked last); a type named twice is sops' error and exit code.
fn parse_decryption_order(value: Option<String>) -> Result<DecryptionOrder> {
    value
        .as_deref()
        .unwrap_or("")
        .parse()
        .map_err(|e: DuplicateKeyType| {
            Failure::new(exit::DUPLICATE_DECRYPTION_KEY_TYPE, e.to_string())
        })
}

/// A format flag's value. Checked here rather than by a clap value parser so that a wrong one
/// keeps enseal's message and exit code 1 (clap would print usage and exit 2).
fn parse_format(flag: &str, value: Option<String>) -> Result<Option<Format>> {
    value
        .map(|value| {
            Format::from_name(&value).ok_or_else(|| {
                Failure::new(
                    exit::GENERIC,
                    format!("{flag} {value:?} is not one of yaml, json, dotenv, ini, binary"),
                )
            })
        })
        .transpose()
}

/// What to run, with every flag checked: the only form of the command line the commands see.
/// The sops file commands get the validated [`GlobalOptions`]; the others ignore the global
/// options (except `sops-secret`, which writes to `--output`), so a global flag given to them
/// is not checked, as before.
#[derive(Debug)]
pub enum Invocation {
    Encrypt(GlobalOptions, Option<PathBuf>),
    Decrypt(GlobalOptions, DecryptArgs),
    Edit(GlobalOptions, PathBuf),
    Set(GlobalOptions, SetOptions),
    Unset(GlobalOptions, UnsetOptions),
    Rotate(GlobalOptions, RotateArgs),
    Updatekeys(GlobalOptions, UpdateKeysArgs),
    Groups(GlobalOptions, GroupsAction),
    Publish(GlobalOptions, PublishArgs),
    Filestatus(GlobalOptions, Option<PathBuf>),
    Check(GlobalOptions, CheckArgs),
    ExecEnv(GlobalOptions, ExecEnvArgs),
    ExecFile(GlobalOptions, ExecFileArgs),
    Keygen(KeygenArgs),
    Seal(SealArgs),
    Unseal(UnsealArgs),
    Cert(CertArgs),
    SopsSecret(SopsSecretArgs, Option<PathBuf>),
    Kustomize(KustomizeArgs),
    Completion(clap_complete::Shell),
    Man,
}

/// Parses `argv` (the program name first) once. Bad arguments print clap's usage message and
/// exit the process, as clap does; flags clap cannot check are refused here with sops' exit
/// codes.
pub fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Invocation> {
    // `Cli::parse_from`, step by step, except that the clap command tree is never freed: it is
    // over 1,100 heap blocks (every global option is copied into every subcommand), and freeing
    // them was a fifth of the instructions of `enseal --version` (callgrind: 254k of 1.36M).
    // The tree holds no values (those are in `matches`, dropped as usual), and the process
    // ends soon after.
    // Started as `ksops` or `enseal-kustomize` (kustomize exec functions get no arguments).
    let argv: Vec<OsString> = kustomize::plugin_argv(argv).into_iter().collect();
    let mut matches = match slim_command(&argv).map(|c| c.try_get_matches_from_mut(&argv)) {
        Some(Ok(matches)) => matches,
        // Help, version, a usage error, or no subcommand found: the whole tree says it, as
        // clap would have.
        _ => {
            let mut command = Cli::command();
            let matches = command
                .try_get_matches_from_mut(&argv)
                .unwrap_or_else(|e| e.exit());
            std::mem::forget(command);
            matches
        }
    };
    let cli = Cli::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| {
        // As `parse_from`: such an error is a bug in the argument structs, not in the input.
        e.format(&mut Cli::command()).exit()
    });
    cli.validate()
}

/// The command tree with the global options given to the one subcommand `argv` names, and to
/// no other: clap copies every global option into every subcommand before it parses (21 options
/// into 20 subcommands, ~250 KB of `Arg`s and the growing vectors that hold them), which was a
/// fifth of the page faults of a small `decrypt` (perf: 95 of 523) for subcommands that are
/// not run. The options stay on the top-level command (non-global there, so they are not
/// copied); the subcommand's copies are global, so clap still hands their values up to the
/// top-level matches, where `GlobalOptions` reads them.
///
/// Only a successful parse is used: a wrong guess can only make an option after the real
/// subcommand unknown, which is an error, and every error (help and version too) is parsed
/// again with the whole tree, so messages and results are clap's own. The tree is leaked as in
/// `parse`.
fn slim_command(argv: &[OsString]) -> Option<&'static mut clap::Command> {
    let command = Cli::command();
    let name = subcommand_named(&command, argv)?;
    let globals: Vec<clap::Arg> = command
        .get_arguments()
        .filter(|a| a.is_global_set())
        .cloned()
        .collect();
    let command = command
        .mut_args(|a| {
            if a.is_global_set() {
                a.global(false)
            } else {
                a
            }
        })
        .mut_subcommand(name, |sub| {
            // As clap's own copying: an option the subcommand defines itself stays its own.
            let copies: Vec<clap::Arg> = globals
                .into_iter()
                .filter(|g| sub.get_arguments().all(|a| a.get_id() != g.get_id()))
                .collect();
            sub.args(copies)
        });
    Some(Box::leak(Box::new(command)))
}

/// The name of the subcommand `argv` runs, found as clap finds it: the first argument that is
/// neither an option of the top-level command nor the value of one. `None` when an option is
/// not the top-level command's (help, version, a typo) or nothing names a subcommand.
fn subcommand_named(command: &clap::Command, argv: &[OsString]) -> Option<String> {
    let takes_value = |a: &clap::Arg| a.get_action().takes_values();
    let mut args = argv.iter().skip(1);
    while let Some(arg) = args.next() {
        let arg = arg.to_str()?;
        if arg == "--" {
            return None;
        } else if let Some(long) = arg.strip_prefix("--") {
            if long.contains('=') {
                continue;
            }
            let option = command.get_arguments().find(|a| {
                a.get_long() == Some(long)
                    || a.get_all_aliases().is_some_and(|all| all.contains(&long))
            })?;
            if takes_value(option) {
                args.next();
            }
        } else if let Some(shorts) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            // A cluster (`-di`): the first option that takes a value takes the rest of the
            // cluster, or the next argument when it ends the cluster.
            for (at, short) in shorts.char_indices() {
                let option = command.get_arguments().find(|a| {
                    a.get_short() == Some(short)
                        || a.get_all_short_aliases()
                            .is_some_and(|all| all.contains(&short))
                })?;
                if takes_value(option) {
                    if at + short.len_utf8() == shorts.len() {
                        args.next();
                    }
                    break;
                }
            }
        } else {
            return command
                .find_subcommand(arg)
                .map(|sub| sub.get_name().to_owned());
        }
    }
    None
}

impl Cli {
    /// A command's own flags are checked before the global options, in the order the commands
    /// checked them before they were checked here.
    pub fn validate(self) -> Result<Invocation> {
        let g = self.global;
        let Some(command) = self.command else {
            return self.legacy.validate(g);
        };
        Ok(match command {
            Command::Encrypt(a) => Invocation::Encrypt(g.validate()?, a.file),
            Command::Decrypt(a) => Invocation::Decrypt(g.validate()?, a),
            Command::Edit(a) => {
                let file = a
                    .file
                    .ok_or_else(|| Failure::new(exit::NO_FILE, "edit needs a file"))?;
                Invocation::Edit(g.validate()?, file)
            }
            Command::Set(a) => {
                let a = a.validate()?;
                Invocation::Set(g.validate()?, a)
            }
            Command::Unset(a) => {
                let a = a.validate()?;
                Invocation::Unset(g.validate()?, a)
            }
            Command::Rotate(a) => Invocation::Rotate(g.validate()?, a),
            Command::Updatekeys(a) => Invocation::Updatekeys(g.validate()?, a),
            Command::Groups(a) => Invocation::Groups(g.validate()?, a.action),
            Command::Publish(a) => Invocation::Publish(g.validate()?, a),
            Command::Filestatus(a) => Invocation::Filestatus(g.validate()?, a.file),
            Command::Check(a) => Invocation::Check(g.validate()?, a),
            Command::ExecEnv(a) => Invocation::ExecEnv(g.validate()?, a),
            Command::ExecFile(a) => Invocation::ExecFile(g.validate()?, a),
            Command::Keygen(a) => Invocation::Keygen(a),
            Command::Seal(a) => Invocation::Seal(a),
            Command::Unseal(a) => Invocation::Unseal(a),
            Command::Cert(a) => Invocation::Cert(a),
            Command::SopsSecret(a) => Invocation::SopsSecret(a, g.output),
            Command::Kustomize(a) => Invocation::Kustomize(a),
            Command::Completion { shell } => Invocation::Completion(shell),
            Command::Man => Invocation::Man,
        })
    }
}

impl LegacyArgs {
    /// The subcommand the top-level flags stand for. sops takes one action per run: two of
    /// them are conflicting parameters (exit 8), as are flags of another action.
    fn validate(self, g: GlobalArgs) -> Result<Invocation> {
        let actions = [self.decrypt, self.encrypt, self.rotate, self.set.is_some()];
        if actions.iter().filter(|a| **a).count() > 1 {
            return Err(Failure::new(
                exit::CONFLICTING_PARAMETERS,
                "give one of --decrypt, --encrypt, --rotate and --set",
            ));
        }
        if self.extract.is_some() && !self.decrypt {
            return Err(Failure::new(
                exit::CONFLICTING_PARAMETERS,
                "--extract goes with --decrypt",
            ));
        }
        if self.key_changes.any() && !self.rotate {
            return Err(Failure::new(
                exit::CONFLICTING_PARAMETERS,
                "--add-age, --rm-age, --add-pgp, --rm-pgp, --add-gcp-kms, --rm-gcp-kms, \
                 --add-azure-kv, --rm-azure-kv, --add-hc-vault-transit and \
                 --rm-hc-vault-transit go with --rotate",
            ));
        }
        let file = self.file;
        if self.decrypt {
            return Ok(Invocation::Decrypt(
                g.validate()?,
                DecryptArgs {
                    file,
                    extract: self.extract,
                },
            ));
        }
        if self.encrypt {
            return Ok(Invocation::Encrypt(g.validate()?, file));
        }
        if self.rotate {
            return Ok(Invocation::Rotate(
                g.validate()?,
                RotateArgs {
                    file,
                    keys: self.key_changes,
                },
            ));
        }
        let file = file.ok_or_else(|| Failure::new(exit::NO_FILE, "no file given"))?;
        if let Some(set) = self.set {
            let (path, value) = split_set(&set)?;
            let a = SetArgs {
                file,
                path,
                value: Some(value),
                value_stdin: false,
                value_file: false,
                idempotent: false,
            }
            .validate()?;
            return Ok(Invocation::Set(g.validate()?, a));
        }
        Ok(Invocation::Edit(g.validate()?, file))
    }
}

/// sops' `--set 'PATH VALUE'`: the path ends at the first `] ` (as sops' extractSetArguments
/// splits it); the rest is the JSON value.
fn split_set(set: &str) -> Result<(String, String)> {
    let pos = set.find("] ").ok_or_else(|| {
        Failure::new(
            exit::INVALID_SET_FORMAT,
            "invalid --set: give the path, a space and the JSON value, e.g. '[\"a\"] \"v\"'",
        )
    })?;
    Ok((
        set[..=pos].trim_end().to_string(),
        set[pos + 2..].to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree_path::Step;

    fn parse_args(argv: &[&str]) -> Result<Invocation> {
        parse(argv.iter().map(OsString::from))
    }

    fn failure(argv: &[&str]) -> Failure {
        parse_args(argv).expect_err("the command line is refused")
    }

    #[test]
    fn global_options_are_accepted_before_and_after_the_subcommand() {
        for argv in [
            ["enseal", "--input-type", "json", "decrypt", "f"],
            ["enseal", "decrypt", "f", "--input-type", "json"],
        ] {
            match parse_args(&argv).unwrap() {
                Invocation::Decrypt(g, a) => {
                    assert_eq!(g.input_type, Some(Format::Json));
                    assert_eq!(a.file.as_deref(), Some(Path::new("f")));
                }
                other => panic!("parsed as {other:?}"),
            }
        }
    }

    #[test]
    fn the_subcommand_is_found_past_top_level_options_and_their_values() {
        let command = Cli::command();
        let named = |argv: &[&str]| {
            let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
            subcommand_named(&command, &argv)
        };
        // A value that is also a subcommand's name is a value.
        assert_eq!(
            named(&["enseal", "--input-type", "encrypt", "decrypt", "f"]).as_deref(),
            Some("decrypt")
        );
        assert_eq!(
            named(&["enseal", "--input-type=json", "-i", "encrypt", "f"]).as_deref(),
            Some("encrypt")
        );
        assert_eq!(
            named(&["enseal", "-a", "decrypt", "encrypt", "f"]).as_deref(),
            Some("encrypt")
        );
        // Help, a typo, `--` and the legacy top-level forms leave it to the whole tree.
        assert_eq!(named(&["enseal", "--help", "decrypt"]), None);
        assert_eq!(named(&["enseal", "--nope", "decrypt"]), None);
        assert_eq!(named(&["enseal", "--", "decrypt"]), None);
        assert_eq!(named(&["enseal", "-d", "f.yaml"]), None);
    }

    #[test]
    fn global_options_reach_nested_subcommands() {
        let argv = [
            "enseal",
            "groups",
            "add",
            "--file",
            "f",
            "--input-type",
            "json",
        ];
        match parse_args(&argv).unwrap() {
            Invocation::Groups(g, _) => assert_eq!(g.input_type, Some(Format::Json)),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn sops_top_level_forms_mean_the_subcommands() {
        match parse_args(&["enseal", "-d", "--extract", r#"["a"]"#, "f.yaml"]).unwrap() {
            Invocation::Decrypt(_, a) => {
                assert_eq!(a.file.as_deref(), Some(Path::new("f.yaml")));
                assert_eq!(a.extract.as_deref(), Some(r#"["a"]"#));
            }
            other => panic!("parsed as {other:?}"),
        }
        // helm-secrets' form.
        match parse_args(&[
            "enseal",
            "--decrypt",
            "--input-type",
            "yaml",
            "--output-type",
            "yaml",
            "f",
        ])
        .unwrap()
        {
            Invocation::Decrypt(g, a) => {
                assert_eq!(g.input_type, Some(Format::Yaml));
                assert_eq!(a.file.as_deref(), Some(Path::new("f")));
            }
            other => panic!("parsed as {other:?}"),
        }
        match parse_args(&["enseal", "-e", "-i", "f.yaml"]).unwrap() {
            Invocation::Encrypt(g, f) => {
                assert!(g.in_place);
                assert_eq!(f.as_deref(), Some(Path::new("f.yaml")));
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(matches!(
            parse_args(&["enseal", "-r", "--add-age", "age1x", "f.yaml"]).unwrap(),
            Invocation::Rotate(
                _,
                RotateArgs {
                    keys: KeyChanges {
                        add_age: Some(_),
                        ..
                    },
                    ..
                }
            )
        ));
        assert!(matches!(
            parse_args(&["enseal", "f.yaml"]).unwrap(),
            Invocation::Edit(_, _)
        ));
        match parse_args(&["enseal", "--set", r#"["a"]["b c"] "v w""#, "f.yaml"]).unwrap() {
            Invocation::Set(_, a) => {
                assert_eq!(a.path, [Step::Key("a".into()), Step::Key("b c".into())]);
                assert!(
                    matches!(a.value, ValueSource::Argument(ref v) if v.as_str() == r#""v w""#)
                );
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn sops_top_level_forms_refuse_two_actions_and_a_set_without_a_value() {
        assert_eq!(
            failure(&["enseal", "-d", "-e", "f"]).code,
            exit::CONFLICTING_PARAMETERS
        );
        assert_eq!(
            failure(&["enseal", "--extract", r#"["a"]"#, "f"]).code,
            exit::CONFLICTING_PARAMETERS
        );
        assert_eq!(
            failure(&["enseal", "--set", r#"["a"]"#, "f"]).code,
            exit::INVALID_SET_FORMAT
        );
    }

    #[test]
    fn an_unknown_format_is_refused_with_exit_1_naming_the_flag() {
        let f = failure(&["enseal", "encrypt", "f", "--output-type", "toml"]);
        assert_eq!(f.code, exit::GENERIC);
        assert_eq!(
            f.message,
            "--output-type \"toml\" is not one of yaml, json, dotenv, ini, binary"
        );
    }

    #[test]
    fn the_output_format_follows_the_input_format_not_the_output_file() {
        let Invocation::Encrypt(g, _) =
            parse_args(&["enseal", "encrypt", "a.env", "--output", "b.json"]).unwrap()
        else {
            panic!("not encrypt")
        };
        let input = g.input_format(Path::new("a.env"));
        assert_eq!(input, Format::Dotenv);
        assert_eq!(g.output_format(input), Format::Dotenv);
    }

    #[test]
    fn commands_that_ignore_the_global_options_do_not_check_them() {
        // As before the flags were parsed in one place: `keygen --input-type x` ran.
        assert!(matches!(
            parse_args(&["enseal", "keygen", "--input-type", "toml"]),
            Ok(Invocation::Keygen(_))
        ));
    }

    #[test]
    fn edit_without_a_file_exits_100() {
        assert_eq!(failure(&["enseal", "edit"]).code, exit::NO_FILE);
    }

    #[test]
    fn set_takes_its_value_exactly_once_and_checks_the_path_first() {
        let both = ["enseal", "set", "f.yaml", r#"["a"]"#, "1", "--value-stdin"];
        assert_eq!(failure(&both).code, exit::CONFLICTING_PARAMETERS);
        let none = ["enseal", "set", "f.yaml", r#"["a"]"#];
        assert_eq!(failure(&none).code, exit::CONFLICTING_PARAMETERS);
        let bad_path = ["enseal", "set", "f.yaml", "a", "1", "--value-stdin"];
        assert_eq!(failure(&bad_path).code, exit::INVALID_TREE_PATH);
        match parse_args(&[
            "enseal",
            "set",
            "f.yaml",
            "--value-file",
            r#"["a"][0]"#,
            "v",
        ])
        .unwrap()
        {
            Invocation::Set(_, a) => {
                assert_eq!(a.path, [Step::Key("a".into()), Step::Index(0)]);
                assert!(matches!(a.value, ValueSource::File(ref p) if p == Path::new("v")));
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn a_value_given_as_an_argument_is_not_shown_by_debug() {
        let Invocation::Set(_, a) =
            parse_args(&["enseal", "set", "f.yaml", r#"["a"]"#, r#""hunter2""#]).unwrap()
        else {
            panic!("not set")
        };
        assert!(!format!("{a:?}").contains("hunter2"));
    }

    #[test]
    fn unset_keeps_the_path_as_typed_for_messages() {
        match parse_args(&["enseal", "unset", "f.yaml", r#"["a"]["b"]"#]).unwrap() {
            Invocation::Unset(_, a) => {
                assert_eq!(a.path_text, r#"["a"]["b"]"#);
                assert_eq!(a.path.len(), 2);
            }
            other => panic!("parsed as {other:?}"),
        }
    }
}
