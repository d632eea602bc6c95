//! enseal-controller: unseals Sealed Secrets' `SealedSecret` objects into native Secrets, with
//! the keys, HTTP paths and behaviour of the Sealed Secrets controller, plus leader election
//! for several replicas, and decrypts enseal's `SopsSecret` objects.
//!
//! One module folder per resource kind ([`sealed_secret`], [`sops_secret`]); what both report
//! (conditions, Events, failures) is [`status`]. `main.rs` only parses flags and starts [`run`].

pub mod flags;
pub mod http;
pub mod keystore;
pub mod leader;
pub mod metrics;
pub mod sealed_secret;
pub mod sops_secret;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::PartialObjectMeta;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::{Api, Client, Config};
use tokio::sync::watch;

pub use crate::flags::Flags;
use crate::keystore::{KeyPolicy, KeyStore};
use crate::metrics::Metrics;
use crate::sealed_secret::reconcile as sealed_reconcile;
use crate::sops_secret::{keys as sops_keys, reconcile as sops_reconcile, tenancy as sops_tenancy};
use crate::status::Cluster;

const POD_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

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

/// Runs the controller until SIGTERM or Ctrl-C (`Ok`) or until one of its servers stops (`Err`).
pub async fn run(flags: Flags) -> Result<(), String> {
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
        limits: Arc::new(http::Limits::new(flags.rate_limit, flags.rate_limit_burst)),
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

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "enseal-controller".to_owned(),
            instance: Some(identity.clone()),
        },
    );
    // One field manager per kind: a manager entry on a Secret then says which kind wrote it,
    // so one kind's reconciler can never mistake the other's Secret for its own.
    let cluster = |kind: &str| Cluster {
        client: client.clone(),
        metrics: metrics.clone(),
        recorder: recorder.clone(),
        field_manager: format!("{}-{kind}", flags.field_manager),
        legacy_field_manager: flags.field_manager.clone(),
    };
    let ctx = Arc::new(sealed_reconcile::Context {
        cluster: cluster("sealedsecret"),
        keys: keys.clone(),
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
            cluster: cluster("sopssecret"),
            keys,
            trusted: sops_tenancy::TrustedNamespaces::from_flag(&flags.sops_trusted_namespaces),
            decrypts: Default::default(),
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
            status::error_policy,
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
        sealed_reconcile::reconcile,
        status::error_policy,
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
