//! The controller's command line: Sealed Secrets' flag names where they exist, so that the
//! args of an existing sealed-secrets-controller Deployment (its Helm chart's, its
//! controller.yaml's) work unchanged. As there, each Sealed Secrets flag can also come from
//! `SEALED_SECRETS_<FLAG>` in the environment (pflagenv); a flag on the command line wins.
//!
//! Sealed Secrets' boolean flags are Go pflag booleans: `--update-status` alone means true,
//! `--update-status=false` false (never `--update-status false`, which pflag reads as a
//! positional argument).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};
use k8s_openapi::jiff::Timestamp;

#[derive(Parser, Debug)]
#[command(name = "enseal-controller", version, about)]
pub struct Flags {
    /// Kubeconfig file; without it, KUBECONFIG or the in-cluster service account.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The controller's own namespace (key Secrets, the leader Lease). Default:
    /// POD_NAMESPACE, the pod's service-account namespace, else kube-system.
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// Only reconcile SealedSecrets in this namespace (default: all namespaces).
    #[arg(long)]
    pub watch_namespace: Option<String>,
    /// generateName of new key Secrets.
    #[arg(
        long,
        env = "SEALED_SECRETS_KEY_PREFIX",
        default_value = "sealed-secrets-key"
    )]
    pub key_prefix: String,
    /// Make a new key when the newest is older than this (`0` disables), e.g. 720h, 30m, 10s.
    /// `--rotate-period` is Sealed Secrets' deprecated name for it.
    #[arg(long, alias = "rotate-period", env = "SEALED_SECRETS_KEY_RENEW_PERIOD", default_value = "720h", value_parser = parse_duration)]
    pub key_renew_period: Duration,
    /// RSA size of new keys.
    #[arg(long, env = "SEALED_SECRETS_KEY_SIZE", default_value_t = 4096)]
    pub key_size: usize,
    /// Validity of new keys' certificates.
    #[arg(long, env = "SEALED_SECRETS_KEY_TTL", default_value = "87600h", value_parser = parse_duration)]
    pub key_ttl: Duration,
    /// Common name of new keys' certificates.
    #[arg(long, env = "SEALED_SECRETS_MY_CN", default_value = "")]
    pub my_cn: String,
    /// Public HTTP address (/healthz, /readyz, /v1/cert.pem, /v1/verify, /v1/rotate).
    #[arg(long, env = "SEALED_SECRETS_LISTEN_ADDR", default_value = "0.0.0.0:8080", value_parser = parse_addr)]
    pub listen_addr: SocketAddr,
    /// Metrics address (/metrics).
    #[arg(long, alias = "listen-metrics-addr", env = "SEALED_SECRETS_LISTEN_METRICS_ADDR", default_value = "0.0.0.0:8081", value_parser = parse_addr)]
    pub metrics_addr: SocketAddr,
    /// Requests per second each client address may send to /v1/verify and /v1/rotate (as
    /// Sealed Secrets' --rate-limit).
    #[arg(long, env = "SEALED_SECRETS_RATE_LIMIT", default_value_t = 2.0)]
    pub rate_limit: f64,
    /// Requests a client address may send to /v1/verify and /v1/rotate at once before the rate
    /// applies (as Sealed Secrets' --rate-limit-burst).
    #[arg(long, env = "SEALED_SECRETS_RATE_LIMIT_BURST", default_value_t = 2)]
    pub rate_limit_burst: u32,
    /// Elect one leader among replicas through a Lease; only it reconciles and makes keys.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Name of the leader election Lease (in --namespace).
    #[arg(long, default_value = "enseal-controller")]
    pub lease_name: String,
    /// Lease duration in seconds; renewals every third of it.
    #[arg(long, default_value_t = 15)]
    pub lease_duration: u64,
    /// Active-active replicas: every live replica reconciles a share of the objects (chosen
    /// by a hash of namespace/name over the replicas whose member Leases, one each, are
    /// renewed) instead of the leader alone; a share moves within a few lease durations when
    /// a replica stops. Two replicas never write one object at once: a replica hands its
    /// objects over only after it has stopped writing them. The leader still makes and renews
    /// the keys, so --leader-elect must stay on. Needs list and delete on Leases besides the
    /// leader election's get, create and update.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub shard_replicas: bool,
    /// This replica's identity in the Lease (default: POD_NAME or hostname, plus pid).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// SealedSecrets reconciled at once (0: no limit).
    #[arg(long, default_value_t = 16)]
    pub max_concurrent_reconciles: u16,
    /// Field manager name for server-side apply.
    #[arg(long, default_value = "enseal-controller")]
    pub field_manager: String,
    /// Secret in --namespace whose `*.agekey` entries are the age identities SopsSecrets are
    /// decrypted with (watched: keys added later are used without a restart). Implies
    /// --sops-secrets.
    #[arg(long)]
    pub sops_age_key_secret: Option<String>,
    /// Namespaces (comma-separated) whose SopsSecrets the controller's own keys
    /// (--sops-age-key-secret, its KMS access) decrypt even when the file does not name the
    /// namespace; `*` for every namespace. Elsewhere those keys open only files bound to the
    /// SopsSecret's namespace (each Secret manifest in it names that namespace), so that a
    /// tenant cannot copy another team's file into their own namespace and read it. `*` suits
    /// single-tenant clusters only: anyone who may create a SopsSecret can then read any file
    /// these keys open. Default: none.
    #[arg(long, value_delimiter = ',', value_name = "NAMESPACES")]
    pub sops_trusted_namespaces: Vec<String>,
    /// Let a namespace key Secret (spec.decryption.secretRef) carry key service credentials
    /// (sops.aws-kms, sops.gcp-kms, sops.azure-kv, sops.vault-token), used for files of that
    /// namespace only. Off by default: with them, the file's metadata, which a tenant writes,
    /// chooses the address the controller sends requests to (a Vault server, a token or key
    /// service URL), from inside the cluster's network; turn it on where the controller's
    /// egress is limited (a NetworkPolicy) to the key services tenants may use.
    #[arg(long, default_value_t = false)]
    pub sops_namespace_key_services: bool,
    /// Vault/OpenBao role of the Kubernetes auth method: the controller then logs in to each
    /// Vault server its key Secret's files name (those SOPS_HC_VAULT_ALLOWLIST lists, and no
    /// other) with a token of its ServiceAccount, unless the key Secret has a
    /// `sops.vault-token` entry. Never used for a namespace key Secret.
    #[arg(long, value_name = "ROLE")]
    pub vault_kubernetes_role: Option<String>,
    /// Where the Kubernetes auth method is mounted (`auth/<mount>/login`).
    #[arg(long, value_name = "MOUNT", default_value = "kubernetes")]
    pub vault_kubernetes_mount: String,
    /// Audience of the ServiceAccount token sent to Vault (set the role's `audience` to the
    /// same). Default: the API server's own audience.
    #[arg(long, value_name = "AUDIENCE")]
    pub vault_kubernetes_audience: Option<String>,
    /// The controller's ServiceAccount (in --namespace), whose token is requested; it needs
    /// `create` on `serviceaccounts/token` for this name.
    #[arg(long, value_name = "NAME", default_value = "enseal-controller")]
    pub vault_kubernetes_service_account: String,
    /// Reconcile SopsSecrets (enseal.dev/v1alpha1). Off unless asked for: it needs their CRD
    /// and RBAC on sopssecrets.enseal.dev, which a SealedSecrets-only install does not grant.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub sops_secrets: bool,
    /// Reconcile sops-secrets-operator's SopsSecrets (isindir.github.com, v1alpha1/2/3) with
    /// the keys and tenancy rules of enseal's (--sops-age-key-secret, --sops-trusted-namespaces).
    /// Off unless asked for: it needs their CRD and RBAC, and sops-secrets-operator must not run
    /// beside it (both would write the same Secrets).
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub isindir_sops_secrets: bool,
    /// Namespaces (comma-separated; `*` for all) where an isindir SopsSecret annotated
    /// `enseal.dev/unverified-mac: "true"` is decrypted without checking its MAC, as
    /// sops-secrets-operator does for every object: for objects changed in the cluster on
    /// purpose. Whoever can edit such an object can then change, move or drop its values
    /// unnoticed, and it is never bound to its namespace (so it needs a trusted one). Default:
    /// none.
    #[arg(long, value_delimiter = ',', value_name = "NAMESPACES")]
    pub isindir_unverified_mac_namespaces: Vec<String>,
    /// For isindir SopsSecrets without spec.enforceOwnership: take over existing Secrets they
    /// name (sops-secrets-operator's --default-enforce-ownership).
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub isindir_default_enforce_ownership: bool,
    /// Log format: text or json.
    #[arg(long, env = "SEALED_SECRETS_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Least severe log level when RUST_LOG is not set: Sealed Secrets' INFO or ERROR (also
    /// DEBUG, WARN; any case).
    #[arg(long, env = "SEALED_SECRETS_LOG_LEVEL", default_value = "INFO", value_parser = parse_log_level)]
    pub log_level: String,

    // --- Sealed Secrets' controller flags (cmd/controller/main.go, v0.40.0) ---
    /// Reconcile SealedSecrets in every namespace (the default), or with `=false` only in the
    /// controller's own namespace (plus --additional-namespaces). --watch-namespace wins over
    /// both.
    #[arg(long, env = "SEALED_SECRETS_ALL_NAMESPACES", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub all_namespaces: bool,
    /// Namespaces (comma-separated) reconciled besides the controller's own. As in Sealed
    /// Secrets, naming any turns --all-namespaces off: the controller then watches exactly its
    /// own namespace and these, each with its own watch (started together, so a long list
    /// starts in about the time of one).
    #[arg(
        long,
        env = "SEALED_SECRETS_ADDITIONAL_NAMESPACES",
        value_delimiter = ',',
        value_name = "NAMESPACES"
    )]
    pub additional_namespaces: Vec<String>,
    /// Only reconcile SealedSecrets (and SopsSecrets) whose labels match this selector
    /// (`team=a`, `tier in (x,y)`, `!legacy`), e.g. to split objects between controllers.
    #[arg(
        long,
        env = "SEALED_SECRETS_LABEL_SELECTOR",
        default_value = "",
        value_parser = crate::label_selector::validate
    )]
    pub label_selector: String,
    /// Make a new key once this time has come if the newest key is older (RFC 1123 with a
    /// numeric zone, as Sealed Secrets takes it: `Mon, 14 Oct 2024 21:45:30 +0200`). For
    /// renewing early, e.g. after a key may have leaked.
    #[arg(long, env = "SEALED_SECRETS_KEY_CUTOFF_TIME", value_parser = parse_cutoff_time)]
    pub key_cutoff_time: Option<Timestamp>,
    /// Which key is the newest (seals new values, starts the renewal period): the one whose
    /// certificate's NotBefore is latest (CertNotBefore, Sealed Secrets' default) or the one
    /// whose Secret was created last (SecretCreationTimestamp).
    #[arg(
        long,
        env = "SEALED_SECRETS_KEY_ORDER_PRIORITY",
        value_enum,
        default_value = "CertNotBefore"
    )]
    pub key_order_priority: KeyOrder,
    /// Write each SealedSecret's status (the Synced condition Argo CD reads). `=false` leaves
    /// status alone.
    #[arg(long, env = "SEALED_SECRETS_UPDATE_STATUS", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub update_status: bool,
    /// Annotations (`k=v,k2=v2`) put on new key Secrets.
    #[arg(long, env = "SEALED_SECRETS_PRIVATEKEY_ANNOTATIONS", default_value = "", value_parser = parse_key_values)]
    pub privatekey_annotations: KeyValues,
    /// Labels (`k=v,k2=v2`) put on new key Secrets, besides the key label itself.
    #[arg(long, env = "SEALED_SECRETS_PRIVATEKEY_LABELS", default_value = "", value_parser = parse_key_values)]
    pub privatekey_labels: KeyValues,
    /// Retries of a failed SealedSecret that back off quickly (1 s, doubling). Sealed Secrets
    /// gives up on the object after this many, and its Secret is then never written until the
    /// object changes (sealed-secrets #1599); here a failure is never given up: later retries
    /// come at the failure's own slower interval (at most every few minutes).
    #[arg(long, env = "SEALED_SECRETS_MAX_UNSEAL_RETRIES", default_value_t = 5)]
    pub max_unseal_retries: u32,
    /// Accepted for Sealed Secrets' Deployments; no effect: client-go's limit (QPS 5) is what
    /// makes Sealed Secrets slow with many objects, and kube-rs sets no client-side limit (the
    /// API server's priority and fairness still applies).
    #[arg(
        long,
        env = "SEALED_SECRETS_KUBECLIENT_QPS",
        default_value_t = 5.0,
        allow_negative_numbers = true
    )]
    pub kubeclient_qps: f32,
    /// Accepted for Sealed Secrets' Deployments; no effect (see --kubeclient-qps).
    #[arg(long, env = "SEALED_SECRETS_KUBECLIENT_BURST", default_value_t = 10)]
    pub kubeclient_burst: i32,
    /// Do not watch Secrets: a deleted or edited Secret is then rewritten only when its
    /// SealedSecret changes or the keys do. For installs without list/watch on Secrets.
    #[arg(long, env = "SEALED_SECRETS_SKIP_RECREATE", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub skip_recreate: bool,
    /// Leave the per-object `sealed_secrets_controller_condition_info` series out of /metrics,
    /// so that whoever reaches the metrics port cannot list SealedSecret names.
    #[arg(long, env = "SEALED_SECRETS_METRICS_OMIT_SECRET_LABELS", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub metrics_omit_secret_labels: bool,
    /// Accepted for Sealed Secrets' Deployments; no effect: key Secrets are always watched,
    /// so keys created outside the controller are used without a restart.
    #[arg(long, env = "SEALED_SECRETS_WATCH_FOR_SECRETS", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub watch_for_secrets: bool,
    /// Accepted for Sealed Secrets' Deployments; no effect: every log line goes to stderr.
    #[arg(long, env = "SEALED_SECRETS_LOG_INFO_STDOUT", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub log_info_stdout: bool,
    /// Accepted for Sealed Secrets' Deployments; no effect: a SealedSecret with the deprecated
    /// `spec.data` is always unsealed.
    #[arg(long, env = "SEALED_SECRETS_ACCEPT_DEPRECATED_V1_DATA", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub accept_deprecated_v1_data: bool,
    /// Accepted for Sealed Secrets' Deployments; no effect: Secrets are removed by the garbage
    /// collector through their ownerReference.
    #[arg(long, env = "SEALED_SECRETS_OLD_GC_BEHAVIOR", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub old_gc_behavior: bool,
}

/// `--key-order-priority`: what makes a key the newest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KeyOrder {
    #[value(name = "CertNotBefore")]
    CertNotBefore,
    #[value(name = "SecretCreationTimestamp")]
    SecretCreationTimestamp,
}

/// Which namespaces' objects the controller reconciles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Namespaces {
    All,
    /// These, each watched on its own.
    Only(Vec<String>),
}

impl Flags {
    /// Sealed Secrets' rule (pkg/controller/main.go): all namespaces unless
    /// `--all-namespaces=false` or `--additional-namespaces` is given, then the controller's
    /// own namespace plus the additional ones. enseal's `--watch-namespace` names one
    /// namespace and wins over both.
    pub fn namespaces(&self, own: &str) -> Namespaces {
        if let Some(ns) = self.watch_namespace.as_ref().filter(|n| !n.is_empty()) {
            return Namespaces::Only(vec![ns.clone()]);
        }
        let additional: Vec<&str> = self
            .additional_namespaces
            .iter()
            .map(|n| n.trim())
            .filter(|n| !n.is_empty())
            .collect();
        if self.all_namespaces && additional.is_empty() {
            return Namespaces::All;
        }
        let mut list = vec![own.to_owned()];
        for ns in additional {
            if !list.iter().any(|n| n == ns) {
                list.push(ns.to_owned());
            }
        }
        Namespaces::Only(list)
    }
}

/// `k=v,k2=v2` as Sealed Secrets' --privatekey-labels and --privatekey-annotations take it.
pub type KeyValues = Vec<(String, String)>;

fn parse_key_values(s: &str) -> Result<KeyValues, String> {
    let mut out: KeyValues = Vec::new();
    for item in s.split(',').filter(|i| !i.is_empty()) {
        // Sealed Secrets indexes [1] after splitting on `=` and panics without one; a clear
        // error at start is kinder.
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not key=value"))?;
        if k.is_empty() {
            return Err(format!("{item:?} has an empty key"));
        }
        out.retain(|(old, _)| old != k);
        out.push((k.to_owned(), v.to_owned()));
    }
    Ok(out)
}

/// Go's time.RFC1123Z, `Mon, 02 Jan 2006 15:04:05 -0700` (RFC 2822's form of it).
fn parse_cutoff_time(s: &str) -> Result<Timestamp, String> {
    k8s_openapi::jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(s.trim())
        .map_err(|e| format!("{s:?}: not an RFC 1123 time with a numeric zone such as \"Mon, 14 Oct 2024 21:45:30 +0200\": {e}"))
}

fn parse_log_level(s: &str) -> Result<String, String> {
    let level = s.to_ascii_lowercase();
    match level.as_str() {
        "error" | "warn" | "info" | "debug" | "trace" => Ok(level),
        _ => Err(format!("{s:?}: one of INFO, ERROR, WARN, DEBUG")),
    }
}

/// Go-style durations as Sealed Secrets takes them: `720h`, `1h30m`, `10s`, `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{s:?}: missing unit (h, m, s, ms)"))?;
        let n: f64 = rest[..num_end]
            .parse()
            .map_err(|_| format!("{s:?}: bad number"))?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            u => return Err(format!("{s:?}: unknown unit {u:?}")),
        };
        total += n * factor;
        rest = &rest[unit_end..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// Accepts Go's `:8080` as well as `host:port`.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_owned()
    };
    full.parse().map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(
            parse_duration("720h").unwrap(),
            Duration::from_secs(720 * 3600)
        );
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn trusted_namespaces_are_a_comma_separated_list_empty_by_default() {
        let parse = |args: &[&str]| {
            Flags::try_parse_from(std::iter::once("enseal-controller").chain(args.iter().copied()))
                .unwrap()
                .sops_trusted_namespaces
        };
        assert!(parse(&[]).is_empty());
        assert_eq!(parse(&["--sops-trusted-namespaces", "a,b"]), ["a", "b"]);
        assert_eq!(parse(&["--sops-trusted-namespaces=*"]), ["*"]);
    }

    #[test]
    fn a_malformed_label_selector_stops_the_controller_at_start() {
        let err = Flags::try_parse_from(["enseal-controller", "--label-selector", "team in a"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a label selector"), "{err}");
        assert_eq!(
            flags(&["--label-selector", "team=a"]).label_selector,
            "team=a"
        );
        assert_eq!(flags(&[]).label_selector, "");
    }

    fn flags(args: &[&str]) -> Flags {
        Flags::try_parse_from(std::iter::once("enseal-controller").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// Every flag the Sealed Secrets v0.40.0 Helm chart's Deployment can pass
    /// (helm/sealed-secrets/templates/deployment.yaml with every value set), as it renders
    /// them: each takes the same meaning here.
    #[test]
    fn the_sealed_secrets_charts_args_parse_with_their_meaning() {
        let f = flags(&[
            "--update-status",
            "--skip-recreate",
            "--key-renew-period",
            "720h30m",
            "--key-ttl",
            "8760h00m00s",
            "--key-cutoff-time",
            "Mon, 14 Oct 2024 21:45:30 +0200",
            "--rate-limit",
            "5",
            "--rate-limit-burst",
            "3",
            "--key-prefix",
            "sealed-secrets-key",
            "--additional-namespaces",
            "team-a,team-b",
            "--privatekey-annotations",
            "owner=sec,backup=yes",
            "--privatekey-labels",
            "tier=keys",
            "--log-info-stdout",
            "--log-level",
            "ERROR",
            "--log-format",
            "json",
            "--listen-addr",
            ":8080",
            "--listen-metrics-addr",
            ":8081",
            "--max-unseal-retries",
            "7",
            "--watch-for-secrets",
            "--kubeclient-qps",
            "-1",
            "--kubeclient-burst",
            "20",
        ]);
        assert!(f.update_status && f.skip_recreate && f.watch_for_secrets);
        assert_eq!(f.key_renew_period, Duration::from_secs(720 * 3600 + 1800));
        assert_eq!(f.key_ttl, Duration::from_secs(8760 * 3600));
        assert_eq!(
            f.key_cutoff_time.unwrap().to_string(),
            "2024-10-14T19:45:30Z"
        );
        assert_eq!((f.rate_limit, f.rate_limit_burst), (5.0, 3));
        assert_eq!(
            f.privatekey_annotations,
            [
                ("owner".into(), "sec".into()),
                ("backup".into(), "yes".into())
            ]
        );
        assert_eq!(f.privatekey_labels, [("tier".into(), "keys".into())]);
        assert_eq!(f.log_level, "error");
        assert_eq!(f.metrics_addr.port(), 8081);
        assert_eq!(f.max_unseal_retries, 7);
        assert_eq!(
            f.namespaces("sealed-secrets"),
            Namespaces::Only(vec![
                "sealed-secrets".into(),
                "team-a".into(),
                "team-b".into()
            ])
        );
        assert_eq!(f.key_order_priority, KeyOrder::CertNotBefore);
    }

    #[test]
    fn pflag_booleans_take_no_separate_value() {
        assert!(flags(&[]).update_status);
        assert!(!flags(&["--update-status=false"]).update_status);
        assert!(flags(&["--update-status=true"]).update_status);
        // pflag would read `false` as a positional argument; so does clap, and refuses it.
        assert!(Flags::try_parse_from(["c", "--update-status", "false"]).is_err());
    }

    #[test]
    fn namespaces_follow_sealed_secrets_rules() {
        assert_eq!(flags(&[]).namespaces("own"), Namespaces::All);
        assert_eq!(
            flags(&["--all-namespaces=false"]).namespaces("own"),
            Namespaces::Only(vec!["own".into()])
        );
        // Additional namespaces turn all-namespaces off even when it is asked for; the own
        // namespace is not repeated.
        assert_eq!(
            flags(&["--all-namespaces", "--additional-namespaces", "a, own,,a"]).namespaces("own"),
            Namespaces::Only(vec!["own".into(), "a".into()])
        );
        assert_eq!(
            flags(&["--additional-namespaces=a", "--watch-namespace", "w"]).namespaces("own"),
            Namespaces::Only(vec!["w".into()])
        );
    }

    #[test]
    fn key_order_and_bad_values_are_refused_at_start() {
        assert_eq!(
            flags(&["--key-order-priority", "SecretCreationTimestamp"]).key_order_priority,
            KeyOrder::SecretCreationTimestamp
        );
        for bad in [
            &["--key-order-priority", "Newest"][..],
            &["--privatekey-labels", "novalue"],
            &["--key-cutoff-time", "2024-10-14"],
            &["--log-level", "LOUD"],
        ] {
            assert!(
                Flags::try_parse_from(std::iter::once("c").chain(bad.iter().copied())).is_err(),
                "{bad:?}"
            );
        }
        assert!(flags(&["--privatekey-labels", ""])
            .privatekey_labels
            .is_empty());
        assert_eq!(
            flags(&["--rotate-period", "1h"]).key_renew_period,
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn replicas_share_the_objects_only_when_asked() {
        assert!(!flags(&[]).shard_replicas);
        assert!(flags(&["--shard-replicas"]).shard_replicas);
        assert!(!flags(&["--shard-replicas=false"]).shard_replicas);
    }

    #[test]
    fn go_style_addresses_parse() {
        assert_eq!(parse_addr(":8080").unwrap().port(), 8080);
        assert_eq!(parse_addr("127.0.0.1:0").unwrap().port(), 0);
    }
}
