//! enseal-controller under faults on a real control plane (issue 16, shortened for CI): while
//! it works through a batch of SealedSecrets, kube-apiserver is stopped and started again,
//! etcd is restarted, the controller (or the leader of two) is killed with SIGKILL, or it is
//! sent SIGTERM. After each, every object converges to its Secret, no Secret is deleted or
//! overwritten wrongly (a witness polls every Secret throughout), the controller never exits
//! on its own, and /readyz says whether it can work.
//!
//! The apiserver and etcd faults run on a control plane of the test's own
//! ([`PrivateControlPlane`]): the shared one serves other tests at the same time. Each
//! SealedSecret holds [`VALUES`] values (one RSA decryption each) so a batch takes seconds of
//! CPU and the fault lands while objects are still in flight. Timings are printed (run with
//! `--nocapture`); the bounds asserted are loose, for a busy CI machine.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use enseal_tests::cluster::{self, Component, PrivateControlPlane};
use enseal_tests::controller::{
    http, install_crd, kubeseal, secret_json, ss_api, Controller, Options, TestKey,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::ByteString;
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};
use serde_json::Value;

/// SealedSecrets per batch.
const OBJECTS: usize = 40;
/// Values per SealedSecret: one RSA-4096 decryption each (~1.5 ms with AWS-LC), so a batch is
/// a few seconds of CPU and a fault lands with objects still in flight.
const VALUES: usize = 60;
/// Lease duration given to the controllers (seconds): short, so a SIGKILLed leader's lease
/// expires within the test's time, and long enough for renewals on a busy CI machine.
const LEASE_SECONDS: u64 = 6;
const CONVERGE: Duration = Duration::from_secs(90);
/// The SealedSecret whose Secret exists beforehand, owned by no one: never to be taken over.
const FOREIGN: &str = "foreign";

/// One test's batch: the sealed variants, the objects made from them, and what each Secret
/// must hold.
struct Batch {
    client: Client,
    ns: String,
    /// Sealed (cluster-wide, so one sealing serves every object name) with their plaintexts.
    variants: Vec<(Value, BTreeMap<String, Vec<u8>>)>,
}

fn object_name(i: usize) -> String {
    format!("s{i:03}")
}

impl Batch {
    /// Stores a key and the foreign Secret in `ns` and seals the variants (three, so a Secret
    /// holding another object's values would show).
    async fn prepare(client: Client, ns: &str) -> Batch {
        let key = TestKey::generate(4096);
        key.store(&client, ns, "sealed-secrets-keyfaults").await;
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        secrets
            .create(
                &PostParams::default(),
                &Secret {
                    metadata: ObjectMeta {
                        name: Some(FOREIGN.into()),
                        ..ObjectMeta::default()
                    },
                    data: Some([("mine".to_owned(), ByteString(b"not yours".to_vec()))].into()),
                    ..Secret::default()
                },
            )
            .await
            .expect("creating the foreign Secret");
        let variants = (0..3)
            .map(|v| {
                let values: Vec<(String, String)> = (0..VALUES)
                    .map(|k| (format!("k{k:03}"), format!("variant {v} value {k}")))
                    .collect();
                let refs: Vec<(&str, &str)> = values
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let sealed = kubeseal(
                    &key.cert_path(),
                    "cluster-wide",
                    &secret_json(ns, "template", &refs),
                );
                let plain = values
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect();
                (sealed, plain)
            })
            .collect();
        Batch {
            client,
            ns: ns.to_owned(),
            variants,
        }
    }

    fn expected(&self, name: &str) -> &BTreeMap<String, Vec<u8>> {
        let i: usize = name[1..].parse().unwrap_or(0);
        &self.variants[i % self.variants.len()].1
    }

    fn object(&self, name: &str, variant: usize) -> Value {
        let mut ss = self.variants[variant].0.clone();
        for meta in ["/metadata", "/spec/template/metadata"] {
            let m = ss.pointer_mut(meta).expect("metadata");
            m["name"] = name.into();
            m["namespace"] = self.ns.clone().into();
        }
        ss
    }

    /// Creates the foreign object and objects `s000`.. `s{OBJECTS-1}`.
    async fn create_all(&self) {
        let api = ss_api(&self.client, &self.ns);
        let foreign = self.object(FOREIGN, 0);
        let mut names = vec![(FOREIGN.to_owned(), foreign)];
        names.extend((0..OBJECTS).map(|i| {
            let name = object_name(i);
            let obj = self.object(&name, i % self.variants.len());
            (name, obj)
        }));
        for (name, obj) in names {
            let obj = serde_json::from_value(obj).expect("a SealedSecret");
            api.create(&PostParams::default(), &obj)
                .await
                .unwrap_or_else(|e| panic!("creating SealedSecret {name}: {e}"));
        }
    }

    /// How many of the batch's Secrets hold exactly their values now (`None` when the API
    /// does not answer).
    async fn converged(&self) -> Option<usize> {
        let list = Api::<Secret>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default())
            .await
            .ok()?;
        Some(
            list.items
                .iter()
                .filter(|s| {
                    let name = s.metadata.name.as_deref().unwrap_or_default();
                    is_batch(name) && data_of(s) == *self.expected(name)
                })
                .count(),
        )
    }

    /// Waits until at least `n` Secrets are right; the time it took.
    async fn wait_converged(&self, n: usize, ctl: &mut [&mut Controller]) -> Duration {
        let started = Instant::now();
        loop {
            for c in ctl.iter_mut() {
                assert!(!c.exited(), "the controller exited on its own");
            }
            if self.converged().await.unwrap_or(0) >= n {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < CONVERGE,
                "only {:?} of {n} Secrets right after {CONVERGE:?}",
                self.converged().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn is_batch(name: &str) -> bool {
    name.len() == 4 && name.starts_with('s') && name[1..].bytes().all(|b| b.is_ascii_digit())
}

fn data_of(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    s.data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

/// Polls every Secret of the namespace throughout a test and records what must never happen:
/// a batch Secret with other values than its own, one deleted (gone, or back with a new uid:
/// a poll cannot miss a delete that way), and any change to the foreign Secret.
struct Witness {
    violations: Arc<Mutex<Vec<String>>>,
    /// resourceVersions seen per batch Secret: the writes the controller made (at least).
    versions: Arc<Mutex<HashMap<String, Vec<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Witness {
    fn start(batch: &Batch) -> Witness {
        let violations: Arc<Mutex<Vec<String>>> = Arc::default();
        let versions: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
        let api: Api<Secret> = Api::namespaced(batch.client.clone(), &batch.ns);
        let expected: HashMap<String, BTreeMap<String, Vec<u8>>> = (0..OBJECTS)
            .map(|i| {
                let name = object_name(i);
                let e = batch.expected(&name).clone();
                (name, e)
            })
            .collect();
        let (v, vs) = (violations.clone(), versions.clone());
        let task = tokio::spawn(async move {
            let mut uids: HashMap<String, String> = HashMap::new();
            let mut foreign: Option<(String, BTreeMap<String, Vec<u8>>)> = None;
            loop {
                if let Ok(list) = api.list(&ListParams::default()).await {
                    let mut seen = Vec::new();
                    let mut found = Vec::new();
                    for s in &list.items {
                        let name = s.metadata.name.clone().unwrap_or_default();
                        let uid = s.metadata.uid.clone().unwrap_or_default();
                        let rv = s.metadata.resource_version.clone().unwrap_or_default();
                        if name == FOREIGN {
                            let now = (rv, data_of(s));
                            match &foreign {
                                None => foreign = Some(now),
                                Some(before) if *before != now => {
                                    found.push("the foreign Secret was changed".to_owned())
                                }
                                Some(_) => {}
                            }
                            continue;
                        }
                        let Some(want) = expected.get(&name) else {
                            continue;
                        };
                        seen.push(name.clone());
                        if data_of(s) != *want {
                            found.push(format!("Secret {name} held other values"));
                        }
                        if let Some(old) = uids.insert(name.clone(), uid.clone()) {
                            if old != uid {
                                found.push(format!("Secret {name} was deleted and made again"));
                            }
                        }
                        let mut vs = vs.lock().unwrap();
                        let list = vs.entry(name).or_default();
                        if list.last() != Some(&rv) {
                            list.push(rv);
                        }
                    }
                    for name in uids.keys() {
                        if !seen.contains(name) {
                            found.push(format!("Secret {name} was deleted"));
                        }
                    }
                    if foreign.is_some()
                        && !list
                            .items
                            .iter()
                            .any(|s| s.metadata.name.as_deref() == Some(FOREIGN))
                    {
                        found.push("the foreign Secret was deleted".to_owned());
                    }
                    v.lock().unwrap().extend(found);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Witness {
            violations,
            versions,
            task,
        }
    }

    /// Stops polling; panics with what it saw going wrong or when a Secret was written more
    /// than once. Once is all it takes, whatever the fault: the Secret is created by a
    /// server-side apply, so the next process after a restart or failover (which does not know
    /// it wrote it) and a retry of a write whose answer was lost apply the same content under
    /// the same field manager, which the API server does not write. Before creates went
    /// through apply, 11 to 18 of 40 Secrets were written a second time after a restart or
    /// failover (issue 16).
    fn finish(self) {
        self.task.abort();
        let mut unique = self.violations.lock().unwrap().clone();
        unique.sort();
        unique.dedup();
        assert!(unique.is_empty(), "seen during the test: {unique:?}");
        let versions = self.versions.lock().unwrap();
        let mut rewritten: Vec<(&String, &Vec<String>)> =
            versions.iter().filter(|(_, v)| v.len() > 1).collect();
        rewritten.sort();
        assert!(
            rewritten.is_empty(),
            "{} of {} Secrets written more than once (resourceVersions seen): {rewritten:?}",
            rewritten.len(),
            versions.len()
        );
    }
}

fn options<'a>(ns: &'a str, identity: &str, kubeconfig: Option<PathBuf>) -> Options<'a> {
    let mut o = Options::new(ns);
    o.lease_name = "faults";
    o.kubeconfig = kubeconfig;
    o.extra = vec![
        "--identity".into(),
        identity.into(),
        "--lease-duration".into(),
        LEASE_SECONDS.to_string(),
    ];
    o
}

fn readyz(c: &Controller) -> u16 {
    http("GET", c.http_port, "/readyz", b"").map_or(0, |(code, _)| code)
}

/// Waits until /readyz answers `code`; the time it took.
async fn wait_readyz(c: &Controller, code: u16, within: Duration) -> Duration {
    let started = Instant::now();
    let got = cluster::eventually(within, || async { (readyz(c) == code).then_some(()) }).await;
    assert!(
        got.is_some(),
        "/readyz never answered {code} within {within:?} (it says {})",
        readyz(c)
    );
    started.elapsed()
}

/// Waits until at least `done` but (most likely) not all of the batch is done: the fault then
/// lands mid-batch.
async fn wait_mid_batch(batch: &Batch, done: usize) -> usize {
    cluster::eventually(Duration::from_secs(60), || async {
        batch.converged().await.filter(|n| *n >= done)
    })
    .await
    .unwrap_or_else(|| panic!("the controller never wrote {done} Secrets"))
}

/// How many Secrets a killed controller must have written before it is killed: enough that
/// the next process finding them already written (and writing none again) is tested on many,
/// with most of the batch still to do. With one, a kill landing early tested it on one.
const DONE_BEFORE_KILL: usize = OBJECTS / 4;

async fn lease_holder(client: &Client, ns: &str) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(client.clone(), ns);
    api.get_opt("faults").await.ok()??.spec?.holder_identity
}

/// A private control plane with the CRD and a namespace; its admin client.
async fn private_plane() -> (PrivateControlPlane, Client, String) {
    let cp = PrivateControlPlane::start().await;
    let client = cp.client().await;
    install_crd(&client).await;
    let ns = "faults".to_owned();
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.clone()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await
        .expect("creating the namespace");
    (cp, client, ns)
}

/// Stops `component` mid-batch for `down`, starts it again, and checks the controller rides
/// it out: not ready while it cannot work, ready again after, every object converged.
async fn control_plane_fault(component: Component, grace: Duration, down: Duration) {
    let (cp, client, ns) = private_plane().await;
    let batch = Batch::prepare(client.clone(), &ns).await;
    let mut ctl = Controller::start(options(&ns, "replica-a", Some(cp.kubeconfig().into()))).await;
    let witness = Witness::start(&batch);
    batch.create_all().await;
    let done_before = wait_mid_batch(&batch, 1).await;

    let stopped_at = Instant::now();
    cp.stop_component(component, grace).await;
    let stop_took = stopped_at.elapsed();
    wait_readyz(&ctl, 503, Duration::from_secs(20)).await;
    let unready_after = stopped_at.elapsed();
    let remaining = down.saturating_sub(stopped_at.elapsed());
    tokio::time::sleep(remaining).await;
    assert!(
        !ctl.exited(),
        "the controller exited while {component:?} was down"
    );
    let restarted_at = Instant::now();
    cp.start_component(component).await;
    let ready_after = wait_readyz(&ctl, 200, Duration::from_secs(60)).await;
    let converged_after = batch.wait_converged(OBJECTS, &mut [&mut ctl]).await;
    // Before the last sync was kept through failed reads, every object touched during the
    // outage was written again (9 to 17); an apply in flight when the API went away (applied,
    // the answer lost) is repeated, but as an apply of the same content it writes nothing.
    witness.finish();
    let foreign = cluster::eventually(Duration::from_secs(10), || async {
        let obj = ss_api(&client, &ns).get(FOREIGN).await.ok()?;
        let c = obj.data.pointer("/status/conditions/0")?.clone();
        (c["status"] == "False").then_some(c)
    })
    .await;
    assert!(
        foreign.is_some(),
        "the foreign SealedSecret is not reported as failing"
    );
    eprintln!(
        "{component:?} fault: {done_before}/{OBJECTS} done when stopped (stop took \
         {stop_took:?}), /readyz 503 after {unready_after:?}, down {:?}, /readyz 200 again \
         {ready_after:?} after the restart, all converged {converged_after:?} after the \
         restart ({:?} after it came back ready); no Secret written twice",
        restarted_at.duration_since(stopped_at),
        converged_after.saturating_sub(ready_after),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_rides_out_an_apiserver_stopped_and_started_again() {
    control_plane_fault(Component::ApiServer, Duration::ZERO, Duration::from_secs(8)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_rides_out_an_etcd_restart() {
    control_plane_fault(
        Component::Etcd,
        Duration::from_secs(3),
        Duration::from_secs(8),
    )
    .await;
}

/// A namespace on the shared control plane with the CRD installed.
async fn shared_namespace(prefix: &str) -> (cluster::TestNamespace, Client) {
    let ns = cluster::namespace(prefix).await;
    let client = ns.client();
    install_crd(&client).await;
    (ns, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_mid_batch_finishes_the_batch_when_started_again() {
    let (ns, client) = shared_namespace("faults-sigkill").await;
    let n = ns.name();
    let batch = Batch::prepare(client.clone(), n).await;
    let mut ctl = Controller::start(options(n, "replica-a", None)).await;
    let witness = Witness::start(&batch);
    batch.create_all().await;
    let done_before = wait_mid_batch(&batch, DONE_BEFORE_KILL).await;
    ctl.kill();
    let killed_at = Instant::now();
    // Started again as a container restarts in its pod: the same identity (POD_NAME), so its
    // own unexpired lease is taken back at once.
    let mut again = Controller::start(options(n, "replica-a", None)).await;
    let ready_after = killed_at.elapsed();
    let converged_after = batch.wait_converged(OBJECTS, &mut [&mut again]).await;
    witness.finish();
    eprintln!(
        "SIGKILL: {done_before}/{OBJECTS} done when killed; started again and ready after \
         {ready_after:?}, all converged {converged_after:?} after that; no Secret \
         written twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_leader_is_killed_mid_batch_the_other_replica_finishes_it() {
    let (ns, client) = shared_namespace("faults-leader").await;
    let n = ns.name();
    let batch = Batch::prepare(client.clone(), n).await;
    let mut a = Controller::start(options(n, "replica-a", None)).await;
    let holder = cluster::eventually(Duration::from_secs(30), || lease_holder(&client, n))
        .await
        .expect("replica-a leads");
    assert_eq!(holder, "replica-a");
    let mut b = Controller::start(options(n, "replica-b", None)).await;
    let witness = Witness::start(&batch);
    batch.create_all().await;
    let done_before = wait_mid_batch(&batch, DONE_BEFORE_KILL).await;
    a.kill();
    let killed_at = Instant::now();
    let took_over = cluster::eventually(Duration::from_secs(30), || async {
        (lease_holder(&client, n).await.as_deref() == Some("replica-b")).then_some(())
    })
    .await;
    assert!(took_over.is_some(), "replica-b never took the lease");
    let failover = killed_at.elapsed();
    // The lease was not released: the survivor waits for it to expire, one lease duration
    // after the last renewal (renewals come every third of it, so at least two thirds of a
    // lease duration after the kill), and not much longer.
    assert!(
        failover >= Duration::from_secs(LEASE_SECONDS / 2)
            && failover < Duration::from_secs(LEASE_SECONDS * 3),
        "failover took {failover:?}"
    );
    let converged_after = batch.wait_converged(OBJECTS, &mut [&mut b]).await;
    assert_eq!(readyz(&b), 200);
    witness.finish();
    eprintln!(
        "leader SIGKILL: {done_before}/{OBJECTS} done when killed; replica-b led after \
         {failover:?}, all converged {converged_after:?} after that; no Secret \
         written twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_running_reconciles_and_releases_the_lease() {
    let (ns, client) = shared_namespace("faults-sigterm").await;
    let n = ns.name();
    let batch = Batch::prepare(client.clone(), n).await;
    let mut a = Controller::start(options(n, "replica-a", None)).await;
    let witness = Witness::start(&batch);
    batch.create_all().await;
    let done_before = wait_mid_batch(&batch, 1).await;
    let stopped_at = Instant::now();
    assert_eq!(a.terminate(), Some(0), "a clean exit on SIGTERM");
    let exit_took = stopped_at.elapsed();
    assert_eq!(
        lease_holder(&client, n).await,
        None,
        "the lease is released before the exit"
    );
    // Drained: every Secret it wrote has its SealedSecret's status written too (a reconcile
    // cut off between the two would leave a Secret whose object never says Synced).
    let secrets = Api::<Secret>::namespaced(client.clone(), n)
        .list(&ListParams::default())
        .await
        .unwrap();
    let written: Vec<String> = secrets
        .items
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .filter(|name| is_batch(name))
        .collect();
    let objects = ss_api(&client, n)
        .list(&ListParams::default())
        .await
        .unwrap();
    let half_done: Vec<&String> = written
        .iter()
        .filter(|name| {
            !objects.items.iter().any(|o| {
                o.metadata.name.as_deref() == Some(name.as_str())
                    && o.data["status"]["conditions"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Synced" && c["status"] == "True")
                    })
            })
        })
        .collect();
    assert!(
        half_done.is_empty(),
        "Secrets written without their status: {half_done:?}"
    );
    let log = a.log_text();
    assert!(log.contains("in-flight reconciles finished"), "{log}");

    // The next replica does not wait out the lease.
    let started = Instant::now();
    let mut b = Controller::start(options(n, "replica-b", None)).await;
    cluster::eventually(Duration::from_secs(30), || async {
        (lease_holder(&client, n).await.as_deref() == Some("replica-b")).then_some(())
    })
    .await
    .expect("replica-b leads");
    let handover = started.elapsed();
    assert!(
        handover < Duration::from_secs(LEASE_SECONDS),
        "replica-b waited {handover:?} for a released lease"
    );
    let converged_after = batch.wait_converged(OBJECTS, &mut [&mut b]).await;
    witness.finish();
    eprintln!(
        "SIGTERM: {done_before}/{OBJECTS} done when signalled ({} when it exited), exit after \
         {exit_took:?}, replica-b started and led after {handover:?}, all converged \
         {converged_after:?} after that; no Secret written twice",
        written.len()
    );
}
