//! Command-line arguments of `enseal seal`, `enseal unseal` and `enseal cert`, named as
//! kubeseal names them so that kubeseal command lines keep working.

use std::path::PathBuf;

use clap::Args;

/// Seal Kubernetes Secrets into SealedSecrets for a cluster, as kubeseal does.
#[derive(Args, Debug)]
pub struct SealArgs {
    /// Secret (input) file: YAML or JSON, several documents or a List; may be an
    /// enseal/sops-encrypted file (decrypted in memory only). Standard input when absent.
    #[arg(short = 'f', long = "secret-file", value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// SealedSecret (output) file, written atomically. Standard output when absent.
    #[arg(short = 'w', long = "sealed-secret-file", value_name = "FILE")]
    pub sealed_secret_file: Option<PathBuf>,
    /// Output format: json (kubeseal's default) or yaml.
    #[arg(short = 'o', long = "format", value_name = "FORMAT", value_parser = ["json", "yaml"])]
    pub format: Option<String>,
    /// The controller's certificate to seal for: a PEM file or an http(s) URL. Without it the
    /// certificate is fetched from the controller through the API server.
    #[arg(long, env = "SEALED_SECRETS_CERT", value_name = "FILE|URL")]
    pub cert: Option<String>,
    /// Print the controller's certificate (from --cert, or fetched through the API server).
    #[arg(long)]
    pub fetch_cert: bool,
    #[command(flatten)]
    pub controller: ControllerArgs,
    /// strict, namespace-wide or cluster-wide. Without it the Secret's
    /// sealedsecrets.bitnami.com/{cluster,namespace}-wide annotations choose (default strict).
    #[arg(long, value_name = "SCOPE")]
    pub scope: Option<String>,
    /// Name of the SealedSecret (for --raw, or for a Secret without one).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Namespace (for --raw, or for a Secret without one).
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Seal one value from --from-file and print it (for encryptedData), instead of a Secret.
    #[arg(long)]
    pub raw: bool,
    /// With --raw: the file holding the value ([KEY=]PATH, KEY is ignored).
    #[arg(long = "from-file", value_name = "[KEY=]PATH", value_delimiter = ',')]
    pub from_file: Vec<String>,
    /// Add (or replace) the Secret's keys in this existing SealedSecret file, in place.
    #[arg(long, value_name = "FILE")]
    pub merge_into: Option<PathBuf>,
    /// Seal the values of the input SealedSecrets again: for --cert with --private-key, else by
    /// the controller (its /v1/rotate, as kubeseal does).
    #[arg(long)]
    pub re_encrypt: bool,
    /// Check that every value of the input SealedSecrets opens: with --private-key, else by the
    /// controller (its /v1/verify, as kubeseal does).
    #[arg(long)]
    pub validate: bool,
    /// Private keys (PEM, or a backup of the controller's key Secrets) for --re-encrypt,
    /// --validate and --recovery-unseal.
    #[arg(
        long = "private-key",
        alias = "recovery-private-key",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub private_key: Vec<PathBuf>,
    /// kubeseal's spelling of `enseal unseal`.
    #[arg(long)]
    pub recovery_unseal: bool,
    /// Seal a Secret that has no data.
    #[arg(long)]
    pub allow_empty_data: bool,
}

/// Open SealedSecrets with the controller's private keys (disaster recovery) and print the
/// Secrets they stand for.
#[derive(Args, Debug)]
pub struct UnsealArgs {
    /// SealedSecret file (YAML or JSON, several documents or a List). Standard input when
    /// absent or `-`.
    #[arg(value_name = "FILE", conflicts_with = "sealed_secret_file")]
    pub file: Option<PathBuf>,
    #[arg(
        short = 'f',
        long = "sealed-secret-file",
        value_name = "FILE",
        hide = true
    )]
    pub sealed_secret_file: Option<PathBuf>,
    /// Private keys: PEM files, or backups of the controller's key Secrets. Repeat the flag or
    /// separate with commas; every key is tried.
    #[arg(
        long = "private-key",
        alias = "recovery-private-key",
        value_name = "FILE",
        value_delimiter = ',',
        required = true
    )]
    pub private_key: Vec<PathBuf>,
    /// Write the Secrets to this file (created 0600) instead of standard output.
    #[arg(short = 'w', long = "secret-file", value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Output format: json or yaml.
    #[arg(short = 'o', long = "format", value_name = "FORMAT", value_parser = ["json", "yaml"], default_value = "json")]
    pub format: String,
}

/// Print the sealing certificate, or generate a new key pair.
#[derive(Args, Debug)]
pub struct CertArgs {
    /// Certificate to check and print: a PEM file or an http(s) URL. Without it the
    /// certificate is fetched from the controller through the API server.
    #[arg(long, env = "SEALED_SECRETS_CERT", value_name = "FILE|URL")]
    pub cert: Option<String>,
    /// Fetch the certificate from the controller through the API server (the default
    /// without --cert; kept for kubeseal's command lines).
    #[arg(long)]
    pub fetch_cert: bool,
    #[command(flatten)]
    pub controller: ControllerArgs,
    /// Generate a new key pair (RSA key and self-signed certificate) like the controller does.
    #[arg(long, conflicts_with_all = ["cert", "fetch_cert"])]
    pub generate: bool,
    /// With --generate: write the private key (PKCS#1 PEM) here, created 0600. Required.
    #[arg(long, value_name = "FILE", requires = "generate")]
    pub key_out: Option<PathBuf>,
    /// With --generate: write the certificate here (default: standard output).
    #[arg(long, value_name = "FILE", requires = "generate")]
    pub cert_out: Option<PathBuf>,
    /// With --generate: RSA key size in bits.
    #[arg(
        long,
        value_name = "BITS",
        default_value_t = 4096,
        requires = "generate"
    )]
    pub key_size: usize,
    /// With --generate: certificate subject common name.
    #[arg(
        long,
        value_name = "CN",
        default_value = "sealed-secret",
        requires = "generate"
    )]
    pub common_name: String,
    /// With --generate: validity in days.
    #[arg(
        long,
        value_name = "DAYS",
        default_value_t = 3650,
        requires = "generate"
    )]
    pub validity_days: u64,
}

/// Where the sealing controller runs, for fetching its certificate through the API server's
/// service proxy as kubeseal does (same flags and defaults, so kubeseal scripts keep working).
#[derive(Args, Debug, Clone)]
pub struct ControllerArgs {
    /// Name of the sealing controller's Service.
    #[arg(
        long,
        env = "SEALED_SECRETS_CONTROLLER_NAME",
        default_value = "sealed-secrets-controller"
    )]
    pub controller_name: String,
    /// Namespace of the sealing controller.
    #[arg(
        long,
        env = "SEALED_SECRETS_CONTROLLER_NAMESPACE",
        default_value = "kube-system"
    )]
    pub controller_namespace: String,
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then the in-cluster account).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use instead of the current one.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}
