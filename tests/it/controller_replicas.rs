//! enseal-controller's active-active replicas (`--shard-replicas`, issue 16) on the real API
//! server: live replicas split the objects between them, a replica that joins takes a share
//! and one killed with SIGKILL gives its share up to the others, and no Secret is ever written
//! by two replicas at once.
//!
//! The last is judged from outside by a [`Recorder`]: a watch of every version of every
//! Secret, and of every member Lease (each holds the view, the member list, its replica acts
//! on). Each replica logs the resourceVersion of each write it makes, so every version the
//! watch saw is put down to one replica (and one that no replica claims would be a writer
//! that should not be there). Writers of one Secret may change only across a change of
//! membership that the fence orders between the two writes: the earlier writer wrote a new
//! view into its Lease after its write (it stops writing an object before handing it over),
//! or, when it was killed, the later writer wrote the view without it before its write. The
//! order is that of resourceVersions: on this API server, one etcd, they are etcd revisions
//! of one counter across all resources (Kubernetes tells clients in general not to compare
//! them; the test knows its server).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use enseal_tests::cluster;
use enseal_tests::controller::{
    data_of, sealed_variants, setup, ss_api, Controller, Options, TestKey,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams, PostParams, WatchParams};
use kube::{Api, Client};
use serde_json::{json, Value};

/// The group of the replicas' Leases (`--lease-name`).
const GROUP: &str = "replicas";
/// Lease duration (seconds): short, so a killed replica's share moves within the test's time.
const LEASE_SECONDS: u64 = 6;
/// SealedSecrets at first.
const OBJECTS: usize = 30;
/// SealedSecrets created after a replica was killed.
const LATE: usize = 15;
/// Generous: only a bound on a hang, never a measure.
const CONVERGE: Duration = Duration::from_secs(120);
/// Objects changed over and over while a replica joins.
const CHURNED: usize = 12;
/// Values per object (one RSA decryption each).
const VALUES: usize = 3;
/// The label and annotation the controller's member Leases carry (controller/src/shard.rs).
const GROUP_LABEL: &str = "enseal.dev/shard-group";
const VIEW_ANNOTATION: &str = "enseal.dev/shard-view";

fn object_name(i: usize) -> String {
    format!("s{i:03}")
}

/// Whether a Secret is one of the objects' (the key Secret is not).
fn is_object(name: &str) -> bool {
    name.len() == 4 && name.starts_with('s') && name[1..].bytes().all(|b| b.is_ascii_digit())
}

/// The test's objects: values sealed once per variant (cluster-wide, so one sealing serves
/// any name), and which variant each object holds now.
struct Objects {
    client: Client,
    ns: String,
    variants: Vec<(Value, BTreeMap<String, Vec<u8>>)>,
    holds: Mutex<BTreeMap<String, usize>>,
}

impl Objects {
    async fn prepare(client: Client, ns: &str) -> Objects {
        let key = TestKey::generate(2048);
        key.store(&client, ns, "sealed-secrets-keyreplicas").await;
        let variants = sealed_variants(&key, ns, 3, VALUES, 0);
        Objects {
            client,
            ns: ns.to_owned(),
            variants,
            holds: Mutex::default(),
        }
    }

    async fn create(&self, range: std::ops::Range<usize>) {
        let api = ss_api(&self.client, &self.ns);
        for i in range {
            let name = object_name(i);
            let variant = i % self.variants.len();
            let mut ss = self.variants[variant].0.clone();
            for meta in ["/metadata", "/spec/template/metadata"] {
                let m = ss.pointer_mut(meta).expect("metadata");
                m["name"] = name.clone().into();
                m["namespace"] = self.ns.clone().into();
            }
            let obj = serde_json::from_value(ss).expect("a SealedSecret");
            api.create(&PostParams::default(), &obj)
                .await
                .unwrap_or_else(|e| panic!("creating SealedSecret {name}: {e}"));
            self.holds.lock().unwrap().insert(name, variant);
        }
    }

    /// Gives every object the next variant's values: each Secret must be written again, by
    /// whichever replica owns its object now.
    async fn change_all(&self) {
        for name in self.names() {
            self.change(&name).await;
        }
    }

    fn names(&self) -> Vec<String> {
        self.holds.lock().unwrap().keys().cloned().collect()
    }

    /// Gives the object the next variant's values.
    async fn change(&self, name: &str) {
        let variant = self.holds.lock().unwrap()[name];
        let next = (variant + 1) % self.variants.len();
        let data = self.variants[next].0["spec"]["encryptedData"].clone();
        ss_api(&self.client, &self.ns)
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"encryptedData": data}})),
            )
            .await
            .unwrap_or_else(|e| panic!("changing SealedSecret {name}: {e}"));
        self.holds.lock().unwrap().insert(name.to_owned(), next);
    }

    /// Changes the first [`CHURNED`] objects one after another, round and round, as fast as
    /// the API takes it, until `stop`: each changes again while its last change may still be
    /// reconciled, so two replicas acting on one object at once would write different
    /// versions of its Secret one after the other (when they see the same version, the second
    /// apply changes nothing and leaves no trace). How many changes it made.
    async fn churn(self: Arc<Self>, stop: tokio::sync::watch::Receiver<bool>) -> usize {
        let names: Vec<String> = self.names().into_iter().take(CHURNED).collect();
        let mut made = 0;
        for name in names.iter().cycle() {
            if *stop.borrow() {
                break;
            }
            self.change(name).await;
            made += 1;
        }
        made
    }

    /// The objects whose Secret does not hold the values of its object now.
    async fn unconverged(&self) -> Option<Vec<String>> {
        let list = Api::<Secret>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default())
            .await
            .ok()?;
        let holds = self.holds.lock().unwrap().clone();
        Some(
            holds
                .iter()
                .filter(|(name, variant)| {
                    !list.items.iter().any(|s| {
                        s.metadata.name.as_deref() == Some(name.as_str())
                            && data_of(s) == self.variants[**variant].1
                    })
                })
                .map(|(name, _)| name.clone())
                .collect(),
        )
    }

    /// Waits until every Secret holds its object's values; the replicas must not exit.
    async fn wait_converged(&self, replicas: &mut [&mut Controller]) {
        let started = std::time::Instant::now();
        loop {
            for c in replicas.iter_mut() {
                assert!(!c.exited(), "a replica exited on its own");
            }
            let left = self.unconverged().await;
            if left.as_ref().is_some_and(|l| l.is_empty()) {
                return;
            }
            assert!(
                started.elapsed() < CONVERGE,
                "Secrets not converged after {CONVERGE:?}: {left:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn start(ns: &str, identity: &str) -> Controller {
    let mut o = Options::new(ns);
    o.lease_name = GROUP;
    o.extra = vec![
        "--identity".into(),
        identity.into(),
        "--lease-duration".into(),
        LEASE_SECONDS.to_string(),
        "--shard-replicas".into(),
    ];
    Controller::start(o).await
}

/// Waits until the member Leases of exactly `members` are held and each says it acts on
/// `members` (Leases of members gone may remain, without a holder or not renewed).
async fn wait_views(client: &Client, ns: &str, members: &[&str]) {
    let api: Api<Lease> = Api::namespaced(client.clone(), ns);
    let mut want: Vec<String> = members.iter().map(|m| m.to_string()).collect();
    want.sort();
    let agreed = cluster::eventually(CONVERGE, || async {
        let leases = api
            .list(&ListParams::default().labels(&format!("{GROUP_LABEL}={GROUP}")))
            .await
            .ok()?;
        let views: HashMap<String, Vec<String>> = leases
            .items
            .iter()
            .filter_map(|l| Some((holder(l)?, view(l)?)))
            .collect();
        want.iter()
            .all(|m| views.get(m) == Some(&want))
            .then_some(())
    })
    .await;
    assert!(
        agreed.is_some(),
        "the replicas never all acted on the view {want:?}"
    );
}

fn holder(l: &Lease) -> Option<String> {
    l.spec
        .as_ref()?
        .holder_identity
        .clone()
        .filter(|h| !h.is_empty())
}

fn view(l: &Lease) -> Option<Vec<String>> {
    let text = l.metadata.annotations.as_ref()?.get(VIEW_ANNOTATION)?;
    serde_json::from_str(text).ok()
}

/// The writes a replica's log claims: (Secret name, resourceVersion).
fn writes_logged(c: &Controller) -> Vec<(String, u64)> {
    c.log_text()
        .lines()
        .filter(|l| l.contains("Secret written"))
        .filter_map(|l| {
            let field = |key: &str| {
                l.split_whitespace()
                    .find_map(|t| t.strip_prefix(key))
                    .map(|v| v.trim_matches('"').to_owned())
            };
            Some((field("name=")?, field("resource_version=")?.parse().ok()?))
        })
        .collect()
}

/// What the watches saw.
#[derive(Default)]
struct Seen {
    /// Every version of every Secret: (name, resourceVersion).
    secret_versions: Vec<(String, u64)>,
    /// Every change of a member's view: (identity, resourceVersion, view).
    views: Vec<(String, u64, Vec<String>)>,
    /// What must not happen: a Secret deleted, a watch that could not go on from where it was
    /// (events may be missing then).
    problems: Vec<String>,
}

/// Watches every version of the namespace's Secrets and member Leases from now on, each watch
/// taken up again from the last resourceVersion it saw (so none is missed; a watch that cannot
/// be taken up again is a problem).
struct Recorder {
    seen: Arc<Mutex<Seen>>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Recorder {
    async fn start(client: &Client, ns: &str) -> Recorder {
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
        let secrets_from = secrets
            .list(&ListParams::default())
            .await
            .unwrap()
            .metadata
            .resource_version
            .unwrap();
        let lease_list = leases.list(&ListParams::default()).await.unwrap();
        let leases_from = lease_list.metadata.resource_version.clone().unwrap();
        // The views as they are now: a renewal seen first in the watch is no change of view.
        let views_now = lease_list
            .items
            .iter()
            .map(|l| (l.metadata.name.clone().unwrap_or_default(), view(l)))
            .collect();
        let selector = format!("{GROUP_LABEL}={GROUP}");
        let tasks = vec![
            tokio::spawn(watch_all(
                client.clone(),
                secrets.resource_url().to_owned(),
                None,
                secrets_from,
                seen.clone(),
                stop_rx.clone(),
                Kind::Secret,
                HashMap::new(),
            )),
            tokio::spawn(watch_all(
                client.clone(),
                leases.resource_url().to_owned(),
                Some(selector),
                leases_from,
                seen.clone(),
                stop_rx,
                Kind::Lease,
                views_now,
            )),
        ];
        Recorder { seen, stop, tasks }
    }

    /// Stops once the watches have caught up with now; what they saw.
    async fn finish(self) -> Seen {
        let _ = self.stop.send(true);
        for t in self.tasks {
            t.await.expect("a watch task panicked");
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Secret,
    Lease,
}

/// One resource's watch: rounds of a short watch request, each taken up from the last
/// resourceVersion seen. After `stop`, one more round catches up with the present. For
/// Leases, `last_view` holds each one's view when the watch starts.
#[allow(clippy::too_many_arguments)]
async fn watch_all(
    client: Client,
    url: String,
    selector: Option<String>,
    mut from: String,
    seen: Arc<Mutex<Seen>>,
    stop: tokio::sync::watch::Receiver<bool>,
    kind: Kind,
    mut last_view: HashMap<String, Option<Vec<String>>>,
) {
    let mut last_round = false;
    loop {
        if *stop.borrow() {
            last_round = true;
        }
        let mut params = WatchParams::default().timeout(1);
        if let Some(s) = &selector {
            params = params.labels(s);
        }
        let request = kube::core::Request::new(url.clone())
            .watch(&params, &from)
            .expect("a watch request");
        let text = match client.request_text(request).await {
            Ok(t) => t,
            Err(e) => {
                seen.lock()
                    .unwrap()
                    .problems
                    .push(format!("watch failed: {e}"));
                return;
            }
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let event: Value = serde_json::from_str(line).expect("a watch event is JSON");
            let type_ = event["type"].as_str().unwrap_or_default();
            let object = &event["object"];
            if type_ == "ERROR" {
                seen.lock().unwrap().problems.push(format!(
                    "a watch could not go on from resourceVersion {from}: {object}"
                ));
                return;
            }
            let rv = object["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let number: u64 = rv.parse().expect("a numeric resourceVersion");
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            from = rv;
            let mut seen = seen.lock().unwrap();
            match (kind, type_) {
                (Kind::Secret, "DELETED") => seen.problems.push(format!("Secret {name} deleted")),
                (Kind::Secret, "ADDED" | "MODIFIED") => seen.secret_versions.push((name, number)),
                (Kind::Lease, "ADDED" | "MODIFIED") => {
                    let lease: Lease =
                        serde_json::from_value(object.clone()).expect("a Lease in the watch");
                    let now = view(&lease);
                    if last_view.get(&name) != Some(&now) {
                        last_view.insert(name, now.clone());
                        if let (Some(identity), Some(v)) = (holder(&lease), now) {
                            seen.views.push((identity, number, v));
                        }
                    }
                }
                _ => {}
            }
        }
        if last_round {
            return;
        }
    }
}

/// Judges the record: every Secret version is one replica's write, each logged write was
/// seen, and a Secret's writer changes only across a change of membership ordered between
/// the two writes. `killed` are the replicas killed with SIGKILL. Returns how many times a
/// writer changed (0 would prove nothing).
fn judge(seen: &Seen, replicas: &[(&str, &Controller)], killed: &[&str]) -> usize {
    assert!(seen.problems.is_empty(), "{:?}", seen.problems);
    // Every write is conditional on the version its replica read: with the replicas the only
    // writers, a conflict means another replica wrote the Secret between one replica's read
    // and its write, that is two replicas acting on it at once, even when the writes left
    // the same content (the second apply then changes nothing, and no version shows it).
    for (identity, c) in replicas {
        let conflicts: Vec<String> = c
            .log_text()
            .lines()
            .filter(|l| l.contains("reason=\"Conflict\""))
            .map(str::to_owned)
            .collect();
        assert!(
            conflicts.is_empty(),
            "{identity} met another writer: {conflicts:#?}"
        );
    }
    let mut writer: HashMap<(String, u64), &str> = HashMap::new();
    for (identity, c) in replicas {
        for w in writes_logged(c) {
            if let Some(other) = writer.insert(w.clone(), identity) {
                panic!("{w:?} claimed by {other} and {identity}");
            }
        }
    }
    let versions: HashSet<&(String, u64)> = seen.secret_versions.iter().collect();
    let unclaimed: Vec<&&(String, u64)> = versions
        .iter()
        .filter(|v| !writer.contains_key(**v))
        .collect();
    assert!(
        unclaimed.is_empty(),
        "Secret versions no replica wrote: {unclaimed:?}"
    );
    let unseen: Vec<&(String, u64)> = writer.keys().filter(|w| !versions.contains(w)).collect();
    assert!(unseen.is_empty(), "writes the watch never saw: {unseen:?}");

    let view_changed = |identity: &str, after: u64, before: u64| {
        seen.views
            .iter()
            .any(|(m, rv, _)| m == identity && after < *rv && *rv < before)
    };
    let mut per_secret: BTreeMap<&str, Vec<(u64, &str)>> = BTreeMap::new();
    for ((name, rv), who) in &writer {
        per_secret.entry(name).or_default().push((*rv, who));
    }
    let mut changes = 0;
    for (name, mut writes) in per_secret {
        writes.sort();
        for pair in writes.windows(2) {
            let ((rv1, a), (rv2, b)) = (pair[0], pair[1]);
            if a == b {
                continue;
            }
            changes += 1;
            let fenced =
                view_changed(a, rv1, rv2) || (killed.contains(&a) && view_changed(b, rv1, rv2));
            assert!(
                fenced,
                "Secret {name}: written by {a} (at {rv1}) then by {b} (at {rv2}) with no \
                 change of {a}'s view between (views: {:?})",
                seen.views
            );
        }
    }
    changes
}

/// Waits until the replica's /metrics has `line`.
async fn wait_metric(c: &Controller, line: &str) {
    let found = cluster::eventually(CONVERGE, || async {
        c.metrics().lines().any(|l| l == line).then_some(())
    })
    .await;
    assert!(found.is_some(), "no {line:?} in:\n{}", c.metrics());
}

/// Waits until the version each Secret of the namespace has now is claimed by a replica's log.
async fn wait_claimed(client: &Client, ns: &str, replicas: &[&Controller]) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let claimed = cluster::eventually(CONVERGE, || async {
        let list = api.list(&ListParams::default()).await.ok()?;
        let logged: HashSet<(String, u64)> =
            replicas.iter().flat_map(|c| writes_logged(c)).collect();
        list.items
            .iter()
            .filter(|s| s.metadata.name.as_deref().is_some_and(is_object))
            .all(|s| {
                let name = s.metadata.name.clone().unwrap_or_default();
                let rv = s.metadata.resource_version.as_deref().unwrap_or_default();
                rv.parse().is_ok_and(|rv| logged.contains(&(name, rv)))
            })
            .then_some(())
    })
    .await;
    assert!(
        claimed.is_some(),
        "a Secret's version is in no replica's log"
    );
}

/// How many Secrets each replica wrote after resourceVersion `after`.
fn shares(replicas: &[(&str, &Controller)], after: u64) -> BTreeMap<String, usize> {
    replicas
        .iter()
        .map(|(identity, c)| {
            let names: HashSet<String> = writes_logged(c)
                .into_iter()
                .filter(|(_, rv)| *rv > after)
                .map(|(n, _)| n)
                .collect();
            (identity.to_string(), names.len())
        })
        .collect()
}

/// The newest resourceVersion of the namespace's Secrets now (a point in the order of writes).
async fn now_version(client: &Client, ns: &str) -> u64 {
    Api::<Secret>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap()
        .parse()
        .unwrap()
}

/// Two replicas split the objects (each writes some of the Secrets); a third that joins takes
/// a share: after the objects change, each of the three writes some. Objects keep changing
/// while it joins, and still no Secret is written by two replicas at once: a Secret's writer
/// changes only after the earlier writer wrote the new view (having stopped writing the
/// objects it gave up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_objects_and_a_joining_one_takes_a_share_without_two_writers() {
    let (ns, client) = setup("ctl-replicas-join").await;
    let n = ns.name();
    let objects = Arc::new(Objects::prepare(client.clone(), n).await);
    let mut a = start(n, "replica-a").await;
    let mut b = start(n, "replica-b").await;
    wait_views(&client, n, &["replica-a", "replica-b"]).await;
    for c in [&a, &b] {
        wait_metric(c, "enseal_controller_shard_members 2").await;
    }
    let recorder = Recorder::start(&client, n).await;

    objects.create(0..OBJECTS).await;
    objects.wait_converged(&mut [&mut a, &mut b]).await;
    wait_claimed(&client, n, &[&a, &b]).await;
    let two = shares(&[("replica-a", &a), ("replica-b", &b)], 0);
    assert!(
        two.values().all(|n| *n > 0),
        "each of two replicas writes a share: {two:?}"
    );

    // Objects keep changing while replica-c joins: Secrets are being written while their
    // objects move to it, which is when two writers could meet.
    let (stop_churn, churn_stopped) = tokio::sync::watch::channel(false);
    let churn = tokio::spawn(objects.clone().churn(churn_stopped));
    let mut c = start(n, "replica-c").await;
    wait_views(&client, n, &["replica-a", "replica-b", "replica-c"]).await;
    for c in [&a, &b, &c] {
        wait_metric(c, "enseal_controller_shard_members 3").await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_churn.send(true);
    let churned = churn.await.expect("the churn task");
    objects.wait_converged(&mut [&mut a, &mut b, &mut c]).await;
    let joined_at = now_version(&client, n).await;
    objects.change_all().await;
    objects.wait_converged(&mut [&mut a, &mut b, &mut c]).await;
    wait_claimed(&client, n, &[&a, &b, &c]).await;
    let all = [("replica-a", &a), ("replica-b", &b), ("replica-c", &c)];
    let three = shares(&all, joined_at);
    assert!(
        three.values().all(|n| *n > 0),
        "each of three replicas writes a share: {three:?}"
    );

    let seen = recorder.finish().await;
    let changes = judge(&seen, &all, &[]);
    assert!(
        changes > 0,
        "no Secret changed writer: the join moved nothing to replica-c"
    );
    eprintln!(
        "replicas: shares of {OBJECTS} with two {two:?}, with three {three:?}; {churned} \
         changes of objects while replica-c joined; {} Secret versions, {changes} changes of \
         writer, each after the earlier writer's new view",
        seen.secret_versions.len()
    );
}

/// Three replicas share the objects; one is killed with SIGKILL (its Lease is left behind,
/// renewed no more). Its share moves to the two others once its Lease expires: every object
/// converges, the ones changed after the kill and the ones created after it included. Then
/// one of the two is stopped with SIGTERM: it exits cleanly having released its member Lease
/// (no holder), and the last one takes every object. No Secret is written by two replicas at
/// once throughout (a replica's last writes come before the view without it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_or_stopped_replicas_share_moves_to_the_others_and_new_objects_converge() {
    let (ns, client) = setup("ctl-replicas-kill").await;
    let n = ns.name();
    let objects = Objects::prepare(client.clone(), n).await;
    let mut a = start(n, "replica-a").await;
    let mut b = start(n, "replica-b").await;
    let mut c = start(n, "replica-c").await;
    wait_views(&client, n, &["replica-a", "replica-b", "replica-c"]).await;
    let recorder = Recorder::start(&client, n).await;

    objects.create(0..OBJECTS).await;
    objects.wait_converged(&mut [&mut a, &mut b, &mut c]).await;
    // A replica logs a write once it has the answer: its last lines can come a moment after
    // the Secrets converged (and a replica killed then would take them with it).
    wait_claimed(&client, n, &[&a, &b, &c]).await;
    let before = shares(
        &[("replica-a", &a), ("replica-b", &b), ("replica-c", &c)],
        0,
    );
    assert!(
        before.values().all(|n| *n > 0),
        "each of three replicas writes a share: {before:?}"
    );

    b.kill();
    let killed_at = Instant::now();
    objects.change_all().await;
    objects.create(OBJECTS..OBJECTS + LATE).await;
    wait_views(&client, n, &["replica-a", "replica-c"]).await;
    let moved_after = killed_at.elapsed();
    objects.wait_converged(&mut [&mut a, &mut c]).await;
    let converged_after = killed_at.elapsed();

    assert_eq!(c.terminate(), Some(0), "a clean exit on SIGTERM");
    let leases: Api<Lease> = Api::namespaced(client.clone(), n);
    let released = leases
        .get(&format!("{GROUP}-member-replica-c"))
        .await
        .expect("replica-c's member Lease");
    assert_eq!(holder(&released), None, "SIGTERM releases the member Lease");
    objects.change_all().await;
    wait_views(&client, n, &["replica-a"]).await;
    objects.wait_converged(&mut [&mut a]).await;
    wait_claimed(&client, n, &[&a]).await;

    let all = [("replica-a", &a), ("replica-b", &b), ("replica-c", &c)];
    let seen = recorder.finish().await;
    let changes = judge(&seen, &all, &["replica-b", "replica-c"]);
    let last = shares(&[("replica-a", &a)], 0);
    assert_eq!(
        last["replica-a"],
        OBJECTS + LATE,
        "the last replica wrote every Secret"
    );
    assert!(
        changes > 0,
        "no Secret changed writer: the shares never moved"
    );
    eprintln!(
        "replicas: shares of {OBJECTS} with three {before:?}; after replica-b was killed the \
         others acted without it {moved_after:?} later and all {} converged {converged_after:?} \
         after the kill; after replica-c was stopped replica-a wrote them all; {changes} \
         changes of writer, each after a view without the earlier writer",
        OBJECTS + LATE
    );
}
