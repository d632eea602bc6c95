//! enseal-controller: unseals Sealed Secrets' `SealedSecret` objects into native Secrets, with
//! the keys, HTTP paths and behaviour of the Sealed Secrets controller, plus leader election
//! for several replicas (or replicas that share the objects, [`shard`]), and decrypts enseal's
//! `SopsSecret` objects.
//!
//! One module folder per resource kind ([`sealed_secret`], [`sops_secret`]); what both report
//! (conditions, Events, failures) is [`status`]. `main.rs` only parses flags and starts [`run`].

pub mod flags;
pub mod http;
pub mod keystore;
pub mod label_selector;
pub mod leader;
pub mod metrics;
pub mod sealed_secret;
pub mod shard;
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
use kube::runtime::reflector::Store;
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::{Api, Client, Config};
use tokio::sync::watch;

pub use crate::flags::Flags;
use crate::flags::Namespaces;
use crate::keystore::{KeyPolicy, KeyStore};
use crate::metrics::Metrics;
use crate::sealed_secret::reconcile as sealed_reconcile;
use crate::sops_secret::{
    isindir as sops_isindir, keys as sops_keys, reconcile as sops_reconcile,
    tenancy as sops_tenancy, vault_auth as sops_vault_auth,
};
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
    if flags.shard_replicas && !flags.leader_elect {
        return Err(
            "--shard-replicas needs --leader-elect: the elected leader makes and renews the keys"
                .to_owned(),
        );
    }
    let config = kube_config(&flags).await?;
    // kube-rs applies no client-side rate limit (client-go's QPS 5 / burst 10
    // is what makes Sealed Secrets slow with many objects), so --kubeclient-qps and
    // --kubeclient-burst have nothing to raise.
    // The readiness probe's own client, without kube's default retries: those repeat a 503
    // or 429 answer for up to 15 times with a backoff growing to minutes, so a probe of an
    // API server answering 503 never came back within its timeout, and /readyz said not ready
    // only after two probes timed out (12 to 14 s in the fault tests) instead of at the first
    // answer.
    let mut probe_config = config.clone();
    probe_config.default_retry = false;
    let probe_client = Client::try_from(probe_config).map_err(|e| e.to_string())?;
    let client = Client::try_from(config).map_err(|e| e.to_string())?;
    let namespace = own_namespace(flags.namespace.clone());
    let identity = flags.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "enseal-controller".to_owned());
        format!("{host}-{}", std::process::id())
    });
    tracing::info!(namespace = %namespace, identity = %identity, "starting");

    // Shutting down goes in order (see the end of this function): `stopping` (readiness off,
    // no new reconciles), then `stop` (lease released, servers closed).
    let (stopping_tx, stopping_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    // Optimistic until the first probes say otherwise: keys cannot load without the API anyway.
    let (api_ready_tx, api_ready_rx) = watch::channel(true);
    tokio::spawn(http::probe_api(probe_client, api_ready_tx, stop_rx.clone()));
    let (leader_tx, leader_rx) = watch::channel(!flags.leader_elect);
    let (keys, keys_changed) = KeyStore::new(flags.key_order_priority);
    let metrics = Arc::new(Metrics::default());
    // sealed_secrets_controller_condition_info is read from the SealedSecrets the running
    // controllers hold, so an object gone from the cluster leaves the metric with it.
    let sealed_stores: Arc<Stores<SealedSecret>> = Arc::default();
    if !flags.metrics_omit_secret_labels {
        let stores = sealed_stores.clone();
        metrics.set_condition_source(Box::new(move || {
            sealed_reconcile::condition_rows(&stores.all())
        }));
    }

    let key_api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    tokio::spawn(keystore::watch_keys(keys.clone(), key_api.clone()));

    let shared = http::Shared {
        keys: keys.clone(),
        metrics: metrics.clone(),
        leader: leader_rx.clone(),
        limits: Arc::new(http::Limits::new(flags.rate_limit, flags.rate_limit_burst)),
        api_ready: api_ready_rx,
        stopping: stopping_rx.clone(),
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

    let timing = leader::Timing {
        lease_duration: Duration::from_secs(flags.lease_duration.max(3)),
        renew_deadline: Duration::from_secs((flags.lease_duration * 2 / 3).max(2)),
        renew_every: Duration::from_secs((flags.lease_duration / 3).max(1)),
        retry_every: Duration::from_secs((flags.lease_duration * 2 / 15).max(1)),
    };
    // A leader steps down once it has failed to renew for the renew deadline; another replica
    // may take over one lease duration after the last renewal. Reconciles still running when
    // leadership is lost get the time in between to finish, and are cut off after it.
    let handover_grace = timing.lease_duration.saturating_sub(timing.renew_deadline);
    // With --shard-replicas every replica reconciles (its share, as `shard` admits), so the
    // controllers run whether or not this replica leads; the leader only makes keys.
    let shard = flags
        .shard_replicas
        .then(|| shard::Shard::new(identity.clone(), handover_grace, metrics.clone()));
    let (_always_tx, always_rx) = watch::channel(true);
    let work_rx = if shard.is_some() {
        always_rx
    } else {
        leader_rx.clone()
    };
    let membership = shard.clone().map(|shard| {
        let m = shard::Membership::new(
            Api::namespaced(client.clone(), &namespace),
            flags.lease_name.clone(),
            timing.clone(),
            shard,
        );
        tokio::spawn(m.run(stop_rx.clone()))
    });
    let elector = flags.leader_elect.then(|| {
        let timing = timing.clone();
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
        cutoff: flags.key_cutoff_time,
        labels: flags.privatekey_labels.clone(),
        annotations: flags.privatekey_annotations.clone(),
        order: flags.key_order_priority,
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
        retries: status::Retries::new(flags.max_unseal_retries),
    };
    let ctx = Arc::new(sealed_reconcile::Context {
        cluster: cluster("sealedsecret"),
        keys: keys.clone(),
        synced: Default::default(),
        update_status: flags.update_status,
    });
    let namespaces = flags.namespaces(&namespace);
    tracing::info!(?namespaces, label_selector = %flags.label_selector, "watching");
    let watch = |kind: &'static str| Watch {
        kind,
        namespaces: namespaces.clone(),
        label_selector: (!flags.label_selector.is_empty()).then(|| flags.label_selector.clone()),
        secrets: !flags.skip_recreate,
        concurrency: flags.max_concurrent_reconciles,
        stopping: stopping_rx.clone(),
        handover_grace,
        shard: shard.clone(),
    };
    let enseal_sops = flags.sops_secrets || flags.sops_age_key_secret.is_some();
    let sops_enabled = enseal_sops || flags.isindir_sops_secrets;
    let mut sops_controller = sops_enabled.then(|| {
        let mut keys = sops_keys::SopsKeys::default();
        if let Some(role) = flags.vault_kubernetes_role.clone() {
            keys = keys.with_vault_auth(sops_vault_auth::KubernetesAuth::new(
                sops_vault_auth::KubernetesAuthConfig {
                    role,
                    mount: flags.vault_kubernetes_mount.clone(),
                    audience: flags.vault_kubernetes_audience.clone(),
                    service_account: flags.vault_kubernetes_service_account.clone(),
                },
                Api::namespaced(client.clone(), &namespace),
                tokio::runtime::Handle::current(),
            ));
        }
        let keys = Arc::new(keys);
        let (changed_tx, changed_rx) = watch::channel(0u64);
        if let Some(secret) = flags.sops_age_key_secret.clone() {
            tokio::spawn(sops_keys::watch_key_secret(
                keys.clone(),
                Api::namespaced(client.clone(), &namespace),
                secret,
                changed_tx,
            ));
        }
        // Both SopsSecret kinds share the keys and the bound on decryptions running at once.
        let sops_context =
            |kind: &str, decrypts: &sops_reconcile::Decrypts| sops_reconcile::Context {
                cluster: cluster(kind),
                keys: keys.clone(),
                trusted: sops_tenancy::TrustedNamespaces::from_flag(&flags.sops_trusted_namespaces),
                namespace_key_services: flags.sops_namespace_key_services,
                decrypts: decrypts.clone(),
            };
        let decrypts = sops_reconcile::Decrypts::default();
        let enseal_kind = enseal_sops.then(|| {
            reconcile_namespaces(
                watch("SopsSecret"),
                client.clone(),
                Arc::new(sops_context("sopssecret", &decrypts)),
                work_rx.clone(),
                changed_rx.clone(),
                sops_reconcile::reconcile,
                status::error_policy,
                Arc::default(),
            )
        });
        let isindir_kind = flags.isindir_sops_secrets.then(|| {
            let ctx = Arc::new(sops_isindir::Context {
                sops: sops_context("isindir-sopssecret", &decrypts),
                unverified_allowed: sops_tenancy::TrustedNamespaces::from_flag(
                    &flags.isindir_unverified_mac_namespaces,
                ),
                default_enforce_ownership: flags.isindir_default_enforce_ownership,
                refused: Arc::default(),
            });
            reconcile_namespaces(
                watch("isindir SopsSecret"),
                client.clone(),
                ctx,
                work_rx.clone(),
                changed_rx.clone(),
                sops_isindir::reconcile,
                status::error_policy,
                Arc::default(),
            )
        });
        // One task for both, so that stopping it stops both.
        tokio::spawn(async move {
            futures::join!(
                async {
                    if let Some(run) = enseal_kind {
                        run.await
                    }
                },
                async {
                    if let Some(run) = isindir_kind {
                        run.await
                    }
                },
            );
        })
    });
    let mut controllers = tokio::spawn(reconcile_namespaces(
        watch("SealedSecret"),
        client,
        ctx,
        work_rx,
        keys_changed,
        sealed_reconcile::reconcile,
        status::error_policy,
        sealed_stores,
    ));

    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutting down"),
        r = public => return Err(format!("HTTP server stopped: {}", join_msg(r))),
        r = metrics_srv => return Err(format!("metrics server stopped: {}", join_msg(r))),
    }
    // Drain, then hand over: reconciles already running finish (a Secret written and its
    // status not would be half the work), and only then is the Lease released, so the next
    // leader never works on an object this replica is still writing.
    let _ = stopping_tx.send(true);
    let started = std::time::Instant::now();
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        let _ = (&mut controllers).await;
        if let Some(c) = sops_controller.as_mut() {
            let _ = c.await;
        }
    })
    .await;
    match drained {
        Ok(()) => tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            "in-flight reconciles finished"
        ),
        Err(_) => {
            tracing::warn!(
                "in-flight reconciles did not finish in {DRAIN_TIMEOUT:?}; stopping them"
            );
            controllers.abort();
            if let Some(c) = sops_controller {
                c.abort();
            }
        }
    }
    let _ = stop_tx.send(true);
    if let Some(e) = elector {
        let _ = tokio::time::timeout(Duration::from_secs(5), e).await;
    }
    if let Some(m) = membership {
        let _ = tokio::time::timeout(Duration::from_secs(5), m).await;
    }
    Ok(())
}

/// How long SIGTERM waits for running reconciles: within Kubernetes' default grace period
/// (30 s before SIGKILL), with time left to release the Lease.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

fn join_msg(r: Result<std::io::Result<()>, tokio::task::JoinError>) -> String {
    match r {
        Ok(Ok(())) => "exited".to_owned(),
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    }
}

type SealedSecret = enseal_sealing::SealedSecretObject;

/// What one kind's controllers watch.
#[derive(Clone)]
struct Watch {
    kind: &'static str,
    namespaces: Namespaces,
    /// `--label-selector`: only objects it matches.
    label_selector: Option<String>,
    /// Watch Secrets (metadata only) to rewrite a deleted or edited one; off with
    /// `--skip-recreate`.
    secrets: bool,
    concurrency: u16,
    /// Turns true on SIGTERM: stop taking work, finish what is running.
    stopping: watch::Receiver<bool>,
    /// How long reconciles may run on once leadership is lost.
    handover_grace: Duration,
    /// With --shard-replicas: which objects this replica may reconcile now.
    shard: Option<Arc<shard::Shard>>,
}

/// The reflector stores of one kind's running controllers (one per watched namespace), for
/// what reads every object (the condition metric).
pub struct Stores<K: kube::Resource<DynamicType = ()> + 'static>(
    std::sync::Mutex<Vec<(Option<String>, Store<K>)>>,
);

impl<K: kube::Resource<DynamicType = ()> + 'static> Default for Stores<K> {
    fn default() -> Self {
        Stores(std::sync::Mutex::default())
    }
}

impl<K: kube::Resource<DynamicType = ()> + Clone + 'static> Stores<K> {
    fn set(&self, namespace: &Option<String>, store: Option<Store<K>>) {
        if let Ok(mut stores) = self.0.lock() {
            stores.retain(|(ns, _)| ns != namespace);
            if let Some(store) = store {
                stores.push((namespace.clone(), store));
            }
        }
    }

    /// Every object the running controllers hold.
    pub fn all(&self) -> Vec<Arc<K>> {
        self.0
            .lock()
            .map(|stores| stores.iter().flat_map(|(_, s)| s.state()).collect())
            .unwrap_or_default()
    }
}

/// One controller per watched namespace (or one for all), as Sealed Secrets runs one informer
/// per namespace: all started at once, so a long --additional-namespaces list starts in about
/// the time of one namespace.
#[allow(clippy::too_many_arguments)]
async fn reconcile_namespaces<K, Ctx, Fut, E>(
    watch: Watch,
    client: Client,
    ctx: Arc<Ctx>,
    leader: watch::Receiver<bool>,
    keys_changed: watch::Receiver<u64>,
    reconcile: fn(Arc<K>, Arc<Ctx>) -> Fut,
    error_policy: fn(Arc<K>, &E, Arc<Ctx>) -> kube::runtime::controller::Action,
    stores: Arc<Stores<K>>,
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
    let namespaces: Vec<Option<String>> = match &watch.namespaces {
        Namespaces::All => vec![None],
        Namespaces::Only(list) => list.iter().cloned().map(Some).collect(),
    };
    let runs = namespaces.into_iter().map(|namespace| {
        reconcile_while_leader(
            watch.clone(),
            namespace,
            client.clone(),
            ctx.clone(),
            leader.clone(),
            keys_changed.clone(),
            reconcile,
            error_policy,
            stores.clone(),
        )
    });
    futures::future::join_all(runs).await;
}

/// Runs a controller for `K` in `namespace` (all when `None`) whenever this replica leads, and
/// stops it (letting in-flight reconciles finish) when leadership is lost. Both kinds
/// (SealedSecret, SopsSecret) run this way under one election; a change of keys reconciles
/// every object of the kind again. With --shard-replicas `leader` stays true (every replica
/// runs its controllers) and the shard decides, object by object, what this replica writes.
#[allow(clippy::too_many_arguments)]
async fn reconcile_while_leader<K, Ctx, Fut, E>(
    watch: Watch,
    namespace: Option<String>,
    client: Client,
    ctx: Arc<Ctx>,
    mut leader: watch::Receiver<bool>,
    keys_changed: watch::Receiver<u64>,
    reconcile: fn(Arc<K>, Arc<Ctx>) -> Fut,
    error_policy: fn(Arc<K>, &E, Arc<Ctx>) -> kube::runtime::controller::Action,
    stores: Arc<Stores<K>>,
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
    let kind = watch.kind;
    let shown = namespace.as_deref().unwrap_or("all namespaces").to_owned();
    let mut stopping = watch.stopping.clone();
    loop {
        tokio::select! {
            led = leader.wait_for(|l| *l) => if led.is_err() { return },
            _ = stopping.wait_for(|s| *s) => return,
        }
        tracing::info!(namespace = %shown, "reconciling {kind}s");
        let (api, secret_api): (Api<K>, Api<PartialObjectMeta<Secret>>) = match &namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
        let mut config = watcher::Config::default().any_semantic();
        if let Some(selector) = &watch.label_selector {
            config = config.labels(selector);
        }
        let mut lost = leader.clone();
        let mut stop = stopping.clone();
        let key_changes = futures::stream::unfold(keys_changed.clone(), |mut rx| async move {
            rx.changed().await.ok()?;
            Some(((), rx))
        });
        // A share that opens (objects that moved here, or all of them after a pause) is found
        // by reconciling every object again; the others' are skipped before decryption.
        let shard_opened =
            futures::stream::unfold(watch.shard.as_ref().map(|s| s.opened()), |rx| async move {
                let mut rx = rx?;
                rx.changed().await.ok()?;
                Some(((), Some(rx)))
            });
        let shard = watch.shard.clone();
        let reconciler = move |obj: Arc<K>, ctx: Arc<Ctx>| {
            let shard = shard.clone();
            async move {
                match shard {
                    Some(shard) => shard::reconcile_owned(&shard, obj, ctx, reconcile).await,
                    None => reconcile(obj, ctx).await,
                }
            }
        };
        let mut controller = Controller::new(api, config);
        if watch.secrets {
            // Metadata only: owner references are all a trigger needs, and the
            // controller never holds other Secrets' values in memory.
            let secrets = watcher(secret_api, watcher::Config::default())
                .default_backoff()
                .touched_objects();
            controller = controller.owns_stream(secrets);
        }
        stores.set(&namespace, Some(controller.store()));
        let mut cut_off = leader.clone();
        let grace = watch.handover_grace;
        let run = controller
            .reconcile_all_on(futures::stream::select(key_changes, shard_opened))
            .with_config(
                kube::runtime::controller::Config::default().concurrency(watch.concurrency),
            )
            .graceful_shutdown_on(async move {
                tokio::select! {
                    _ = lost.wait_for(|l| !*l) => {}
                    _ = stop.wait_for(|s| *s) => {}
                }
            })
            .run(reconciler, error_policy, ctx.clone())
            .for_each(|r| {
                // Reconcile failures are reported by the reconcilers; what is left is the
                // watches of the objects and their Secrets failing.
                if let Err(kube::runtime::controller::Error::QueueError(e)) = &r {
                    log_watch_error(kind, &shown, e);
                }
                std::future::ready(())
            });
        // Dropping the controller's stream drops the reconciles it runs: a replica that lost
        // its lease (its renewals hang on an API server without etcd, say) must not write on
        // once another may lead.
        tokio::select! {
            () = run => {}
            () = async {
                let _ = cut_off.wait_for(|l| !*l).await;
                tokio::time::sleep(grace).await;
            } => tracing::warn!(
                namespace = %shown,
                "reconciles still running {grace:?} after leadership was lost: stopped"
            ),
        }
        stores.set(&namespace, None);
        if *stopping.borrow() {
            tracing::info!(namespace = %shown, "stopped reconciling {kind}s (shutting down)");
            return;
        }
        tracing::info!(namespace = %shown, "stopped reconciling {kind}s (no longer leader)");
    }
}

/// Logs a failed list or watch of `kind`'s objects or of their Secrets. kube's watcher recovers
/// by itself (it watches again after a backoff; a 410 Gone, the resourceVersion it watched from
/// compacted away or older than the API server's watch cache, makes it list everything again)
/// but logs only at debug level: without this line a watch failing for minutes, or every
/// object being listed again, left no trace at the default level.
fn log_watch_error(kind: &str, namespace: &str, e: &watcher::Error) {
    let status = match e {
        watcher::Error::WatchError(s) => Some(&**s),
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => Some(&**s),
        _ => None,
    };
    match status {
        Some(s) if s.code == 410 => tracing::info!(
            %namespace,
            message = %s.message,
            "{kind} watch expired (410 Gone): listing again"
        ),
        _ => tracing::warn!(%namespace, error = %e, "{kind} watch failed: retrying"),
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
            match policy.due(keys.newest().map(|k| k.created), Timestamp::now()) {
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
