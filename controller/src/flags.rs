//! The controller's command line: Sealed Secrets' flag names where they exist.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

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
    #[arg(long, default_value = "sealed-secrets-key")]
    pub key_prefix: String,
    /// Make a new key when the newest is older than this (`0` disables), e.g. 720h, 30m, 10s.
    #[arg(long, default_value = "720h", value_parser = parse_duration)]
    pub key_renew_period: Duration,
    /// RSA size of new keys.
    #[arg(long, default_value_t = 4096)]
    pub key_size: usize,
    /// Validity of new keys' certificates.
    #[arg(long, default_value = "87600h", value_parser = parse_duration)]
    pub key_ttl: Duration,
    /// Common name of new keys' certificates.
    #[arg(long, default_value = "")]
    pub my_cn: String,
    /// Public HTTP address (/healthz, /readyz, /v1/cert.pem, /v1/verify, /v1/rotate).
    #[arg(long, default_value = "0.0.0.0:8080", value_parser = parse_addr)]
    pub listen_addr: SocketAddr,
    /// Metrics address (/metrics).
    #[arg(long, alias = "listen-metrics-addr", default_value = "0.0.0.0:8081", value_parser = parse_addr)]
    pub metrics_addr: SocketAddr,
    /// Requests per second each client address may send to /v1/verify and /v1/rotate (as
    /// Sealed Secrets' --rate-limit).
    #[arg(long, default_value_t = 2.0)]
    pub rate_limit: f64,
    /// Requests a client address may send to /v1/verify and /v1/rotate at once before the rate
    /// applies (as Sealed Secrets' --rate-limit-burst).
    #[arg(long, default_value_t = 2)]
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
    /// Reconcile SopsSecrets (enseal.dev/v1alpha1). Off unless asked for: it needs their CRD
    /// and RBAC on sopssecrets.enseal.dev, which a SealedSecrets-only install does not grant.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub sops_secrets: bool,
    /// Log format: text or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
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
    fn go_style_addresses_parse() {
        assert_eq!(parse_addr(":8080").unwrap().port(), 8080);
        assert_eq!(parse_addr("127.0.0.1:0").unwrap().port(), 0);
    }
}
