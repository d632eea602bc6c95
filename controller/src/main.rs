//! enseal-controller: unseals Sealed Secrets' `SealedSecret` objects into
//! native Secrets, with the keys, HTTP paths and behaviour of the Sealed
//! Secrets controller, plus leader election for several replicas.

mod crd;
mod http;
mod keystore;
mod leader;
mod metrics;
mod reconcile;
mod sealing;
mod sops_crd;
mod sops_keys;
mod sops_reconcile;
mod sops_render;
mod unseal;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::PartialObjectMeta;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::{Api, Client, Config};
use tokio::sync::watch;

use crate::keystore::{KeyPolicy, KeyStore};
use crate::metrics::Metrics;

const POD_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

#[derive(Parser, Debug)]
#[command(name = "enseal-controller", version, about)]
struct Flags {
    /// Kubeconfig file; without it, KUBECONFIG or the in-cluster service account.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The controller's own namespace (key Secrets, the leader Lease). Default:
    /// POD_NAMESPACE, the pod's service-account namespace, else kube-system.
    #[arg(long, env = "POD_NAMESPACE")]
    namespace: Option<String>,
    /// Only reconcile SealedSecrets in this namespace (default: all namespaces).
    #[arg(long)]
    watch_namespace: Option<String>,
    /// generateName of new key Secrets.
    #[arg(long, default_value = "sealed-secrets-key")]
    key_prefix: String,
    /// Make a new key when the newest is older than this (`0` disables), e.g. 720h, 30m, 10s.
    #[arg(long, default_value = "720h", value_parser = parse_duration)]
    key_renew_period: Duration,
    /// RSA size of new keys.
    #[arg(long, default_value_t = 4096)]
    key_size: usize,
    /// Validity of new keys' certificates.
    #[arg(long, default_value = "87600h", value_parser = parse_duration)]
    key_ttl: Duration,
    /// Common name of new keys' certificates.
    #[arg(long, default_value = "")]
    my_cn: String,
    /// Public HTTP address (/healthz, /readyz, /v1/cert.pem, /v1/verify, /v1/rotate).
    #[arg(long, default_value = "0.0.0.0:8080", value_parser = parse_addr)]
    listen_addr: SocketAddr,
    /// Metrics address (/metrics).
    #[arg(long, alias = "listen-metrics-addr", default_value = "0.0.0.0:8081", value_parser = parse_addr)]
    metrics_addr: SocketAddr,
    /// Elect one leader among replicas through a Lease; only it reconciles and makes keys.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Name of the leader election Lease (in --namespace).
    #[arg(long, default_value = "enseal-controller")]
    lease_name: String,
    /// Lease duration in seconds; renewals every third of it.
    #[arg(long, default_value_t = 15)]
    lease_duration: u64,
    /// This replica's identity in the Lease (default: POD_NAME or hostname, plus pid).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// SealedSecrets reconciled at once (0: no limit).
    #[arg(long, default_value_t = 16)]
    max_concurrent_reconciles: u16,
    /// Field manager name for server-side apply.
    #[arg(long, default_value = "enseal-controller")]
    field_manager: String,
    /// Secret in --namespace whose `*.agekey` entries are the age identities SopsSecrets are
    /// decrypted with (watched: keys added later are used without a restart). Implies
    /// --sops-secrets.
    #[arg(long)]
    sops_age_key_secret: Option<String>,
    /// Reconcile SopsSecrets (enseal.dev/v1alpha1). Off unless asked for: it needs their CRD
    /// and RBAC on sopssecrets.enseal.dev, which a SealedSecrets-only install does not grant.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    sops_secrets: bool,
    /// Log format: text or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

/// Go-style durations as Sealed Secrets takes them: `720h`, `1h30m`, `10s`, `0`.
fn parse_duration(s: &str) -> Result<Duration, String> {
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
fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_owned()
    };
    full.parse().map_err(|e| format!("{s:?}: {e}"))
}

fn own_namespace(flag: Option<String>) -> String {
    flag.filter(|n| !n.is_empty())
        .or_else(|| {
            std::fs::read_to_string(POD_NAMESPACE_FILE)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "kube-system".to_owned())
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn kube_config(flags: &Flags) -> Result<Config, String> {
    match &flags.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| format!("{}: {e}", path.display()))
        }
        None => Config::infer().await.map_err(|e| e.to_string()),
    }
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    init_logging(&flags.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(flags)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "enseal-controller stopped");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn run(flags: Flags) -> Result<(), String> {
    let config = kube_config(&flags).await?;
    // kube-rs applies no client-side rate limit (client-go's QPS 5 / burst 10
    // is what makes Sealed Secrets slow with many objects), so nothing to raise.
    let client = Client::try_from(config).map_err(|e| e.to_string())?;
    let namespace = own_namespace(flags.namespace.clone());
    let identity = flags.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "enseal-controller".to_owned());
        format!("{host}-{}", std::process::id())
    });
    tracing::info!(namespace = %namespace, identity = %identity, "starting");

    let (stop_tx, stop_rx) = watch::channel(false);
    let (leader_tx, leader_rx) = watch::channel(!flags.leader_elect);
    let (keys, keys_changed) = KeyStore::new();
    let metrics = Arc::new(Metrics::default());

    let key_api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    tokio::spawn(keystore::watch_keys(keys.clone(), key_api.clone()));

    let shared = http::Shared {
        keys: keys.clone(),
        metrics: metrics.clone(),
        leader: leader_rx.clone(),
    };
    let public = tokio::spawn(http::serve(
        flags.listen_addr,
        http::public_router(shared.clone()),
        stop_rx.clone(),
    ));
    let metrics_srv = tokio::spawn(http::serve(
        flags.metrics_addr,
        http::metrics_router(shared),
        stop_rx.clone(),
    ));

    let elector = flags.leader_elect.then(|| {
        let timing = leader::Timing {
            lease_duration: Duration::from_secs(flags.lease_duration.max(3)),
            renew_deadline: Duration::from_secs((flags.lease_duration * 2 / 3).max(2)),
            renew_every: Duration::from_secs((flags.lease_duration / 3).max(1)),
            retry_every: Duration::from_secs((flags.lease_duration * 2 / 15).max(1)),
        };
        let e = leader::Elector::new(
            Api::namespaced(client.clone(), &namespace),
            flags.lease_name.clone(),
            identity.clone(),
            timing,
        );
        tokio::spawn(e.run(leader_tx.clone(), stop_rx.clone()))
    });

    let policy = KeyPolicy {
        prefix: flags.key_prefix.clone(),
        bits: flags.key_size,
        renew_period: (!flags.key_renew_period.is_zero()).then_some(flags.key_renew_period),
        cert_validity: flags.key_ttl,
        common_name: flags.my_cn.clone(),
    };
    tokio::spawn(renew_keys(keys.clone(), key_api, policy, leader_rx.clone()));

    let ctx = Arc::new(reconcile::Context {
        client: client.clone(),
        keys: keys.clone(),
        metrics,
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "enseal-controller".to_owned(),
                instance: Some(identity.clone()),
            },
        ),
        field_manager: flags.field_manager.clone(),
        synced: Default::default(),
    });
    let sops_enabled = flags.sops_secrets || flags.sops_age_key_secret.is_some();
    let sops_controller = sops_enabled.then(|| {
        let keys = Arc::new(sops_keys::SopsKeys::default());
        let (changed_tx, changed_rx) = watch::channel(0u64);
        if let Some(secret) = flags.sops_age_key_secret.clone() {
            tokio::spawn(sops_keys::watch_key_secret(
                keys.clone(),
                Api::namespaced(client.clone(), &namespace),
                secret,
                changed_tx,
            ));
        }
        let sops_ctx = Arc::new(sops_reconcile::Context {
            client: client.clone(),
            keys,
            metrics: ctx.metrics.clone(),
            recorder: ctx.recorder.clone(),
            field_manager: flags.field_manager.clone(),
        });
        tokio::spawn(reconcile_while_leader(
            "SopsSecret",
            client.clone(),
            flags.watch_namespace.clone(),
            flags.max_concurrent_reconciles,
            sops_ctx,
            leader_rx.clone(),
            changed_rx,
            sops_reconcile::reconcile,
            sops_reconcile::error_policy,
        ))
    });
    let controllers = tokio::spawn(reconcile_while_leader(
        "SealedSecret",
        client,
        flags.watch_namespace.clone(),
        flags.max_concurrent_reconciles,
        ctx,
        leader_rx,
        keys_changed,
        reconcile::reconcile,
        reconcile::error_policy,
    ));

    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutting down"),
        r = public => return Err(format!("HTTP server stopped: {}", join_msg(r))),
        r = metrics_srv => return Err(format!("metrics server stopped: {}", join_msg(r))),
    }
    let _ = stop_tx.send(true);
    controllers.abort();
    if let Some(c) = sops_controller {
        c.abort();
    }
    if let Some(e) = elector {
        let _ = tokio::time::timeout(Duration::from_secs(5), e).await;
    }
    Ok(())
}

fn join_msg(r: Result<std::io::Result<()>, tokio::task::JoinError>) -> String {
    match r {
        Ok(Ok(())) => "exited".to_owned(),
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    }
}

/// Runs a controller for `K` whenever this replica leads, and stops it (letting in-flight
/// reconciles finish) when leadership is lost. Both kinds (SealedSecret, SopsSecret) run this
/// way under one election; a change of keys reconciles every object of the kind again.
#[allow(clippy::too_many_arguments)]
async fn reconcile_while_leader<K, Ctx, Fut, E>(
    kind: &'static str,
    client: Client,
    watch_namespace: Option<String>,
    concurrency: u16,
    ctx: Arc<Ctx>,
    mut leader: watch::Receiver<bool>,
    keys_changed: watch::Receiver<u64>,
    reconcile: fn(Arc<K>, Arc<Ctx>) -> Fut,
    error_policy: fn(Arc<K>, &E, Arc<Ctx>) -> kube::runtime::controller::Action,
) where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    Ctx: Send + Sync + 'static,
    Fut:
        std::future::Future<Output = Result<kube::runtime::controller::Action, E>> + Send + 'static,
    E: std::error::Error + Send + 'static,
{
    loop {
        if leader.wait_for(|l| *l).await.is_err() {
            return;
        }
        tracing::info!("reconciling {kind}s");
        let (api, secret_api): (Api<K>, Api<PartialObjectMeta<Secret>>) = match &watch_namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
        // Metadata only: owner references are all a trigger needs, and the
        // controller never holds other Secrets' values in memory.
        let secrets = watcher(secret_api, watcher::Config::default())
            .default_backoff()
            .touched_objects();
        let mut lost = leader.clone();
        let key_changes = futures::stream::unfold(keys_changed.clone(), |mut rx| async move {
            rx.changed().await.ok()?;
            Some(((), rx))
        });
        Controller::new(api, watcher::Config::default().any_semantic())
            .owns_stream(secrets)
            .reconcile_all_on(key_changes)
            .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
            .graceful_shutdown_on(async move {
                let _ = lost.wait_for(|l| !*l).await;
            })
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|_| std::future::ready(()))
            .await;
        tracing::info!("stopped reconciling {kind}s (no longer leader)");
    }
}

/// The leader makes a key when there is none and renews on schedule.
async fn renew_keys(
    keys: Arc<KeyStore>,
    api: Api<Secret>,
    policy: KeyPolicy,
    mut leader: watch::Receiver<bool>,
) {
    loop {
        if leader.wait_for(|l| *l).await.is_err() {
            return;
        }
        let wait = if !keys.is_loaded() {
            Duration::from_millis(200)
        } else {
            match policy.due(keys.newest().as_deref(), Timestamp::now()) {
                Ok(()) => match keystore::create_key(&api, &policy).await {
                    Ok(key) => {
                        keys.insert(key);
                        Duration::from_millis(100)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "could not create a sealing key");
                        Duration::from_secs(5)
                    }
                },
                Err(until) => until.min(Duration::from_secs(10)),
            }
        };
        tokio::time::sleep(wait).await;
    }
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
    fn go_style_addresses_parse() {
        assert_eq!(parse_addr(":8080").unwrap().port(), 8080);
        assert_eq!(parse_addr("127.0.0.1:0").unwrap().port(), 0);
    }
}
