//! Active-active replicas (`--shard-replicas`): every live replica reconciles a share of the
//! objects instead of the leader alone.
//!
//! Membership is a Lease per replica (`<lease-name>-member-<identity>` in the controller's
//! namespace, labelled [`GROUP_LABEL`]), renewed as the leader renews its Lease. A member is
//! live while its Lease keeps changing, measured on the observer's own clock as
//! [`crate::leader`] measures the leader's (clock skew between replicas does not matter). An
//! object (namespace/name) belongs to one member of the *view*, the sorted live identities, by
//! rendezvous hashing ([`owner`]): when a member leaves or joins, only the objects it had or
//! takes move.
//!
//! # The fence: never two writers of one object
//!
//! Each member writes into its own Lease the view it acts on ([`VIEW_ANNOTATION`]), and acts
//! on nothing while
//! - its own Lease is not renewed (no new work once the renew deadline has passed since the
//!   last renewal *started*; reconciles still running are cut off at the lease duration, when
//!   the others may count it gone), or
//! - its view differs from the live members it sees, or any of them has written another view
//!   into its Lease, as read (a consistent list) after its own view was written.
//!
//! It changes its view only after it has stopped acting on the old one: it stops taking work,
//! lets running reconciles finish (cut off after the hand-over grace) and only then writes the
//! new view. Why two members never act on one object at once: say R acts with view V and S
//! with view W != V at the same moment (one view gives both the same owner). R wrote V at
//! `wR`, then read every member of V saying V at `rR > wR`, and its Lease has said V from `wR`
//! until now; the same for S with W, `wS < rS`.
//! - If each is in the other's view: R read S's Lease saying V, so `rR < wS` (from `wS` on it
//!   says W), and likewise `rS < wR`; then `wS < rS < wR < rR < wS`, which cannot be.
//! - Otherwise one of them, say S, counted the other gone: R's Lease had not changed for a
//!   lease duration on S's clock, and R, which takes no new work once the renew deadline has
//!   passed since its last renewal started and cuts running reconciles off at the lease
//!   duration, no longer writes; a renewal answered after that makes R start afresh (no work
//!   until every member is read agreeing after it). This is the assumption leader election
//!   makes: no process paused for longer than the lease, clocks that run at the same rate.
//!   (Not having read R's Lease at all is no way out: R created it before `wR`, and S would
//!   have seen it, live, in its read at `rS` unless `rS` came before it; ordering the reads as
//!   above then gives the same contradiction.)
//!
//! A member that joins therefore acts only once all others have written a view with it, that
//! is after each of them stopped acting on the view without it.
//!
//! Behind the fence, every Secret write is conditional on the version of the Secret its
//! replica read before unsealing ([`crate::status::apply_secret`]): a replica that broke the
//! assumption (paused past its lease, writing as it resumes) gets a conflict if the new owner
//! wrote the Secret since, so it cannot put an older object's values over a newer one's.
//!
//! When the view opens, every object is reconciled again ([`Shard::opened`]): the objects a
//! member now owns get their sync, the others are skipped before any decryption. Key
//! generation and renewal stay with the elected leader.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use sha2::{Digest as _, Sha256};
use tokio::sync::{watch, Notify};

use crate::leader::Timing;
use crate::metrics::Metrics;

/// The label every member Lease carries, with `--lease-name` as its value: one list finds the
/// members of one controller installation.
pub const GROUP_LABEL: &str = "enseal.dev/shard-group";
/// The view (a JSON list of identities) a member acts on, or is about to act on.
pub const VIEW_ANNOTATION: &str = "enseal.dev/shard-view";

/// A member Lease that has not changed for this many lease durations is deleted by the
/// others (a replica killed with SIGKILL leaves its Lease behind, and each new pod has a new
/// identity).
const FORGET_AFTER_LEASES: u32 = 10;

/// The member that owns `namespace/name` among `members`: the one with the highest
/// SHA-256 of (identity, object), ties (never seen in practice) to the greater identity. A
/// specified hash, not std's, so that replicas of different builds agree.
pub fn owner<'a>(members: &'a [String], namespace: &str, name: &str) -> Option<&'a str> {
    members
        .iter()
        .map(|m| {
            let mut h = Sha256::new();
            h.update(m.as_bytes());
            h.update([0]);
            h.update(namespace.as_bytes());
            h.update([b'/']);
            h.update(name.as_bytes());
            let digest = h.finalize();
            let mut first = [0u8; 8];
            first.copy_from_slice(&digest[..8]);
            (u64::from_be_bytes(first), m)
        })
        .max()
        .map(|(_, m)| m.as_str())
}

/// What a replica may do right now: the view it acts on (none while changing or without a
/// renewed Lease) and how many reconciles run under it.
struct Gate {
    view: Option<Arc<Vec<String>>>,
    in_flight: usize,
}

/// How long this replica may write: set from each renewal of its Lease, and a counter bumped
/// to cut off every running reconcile.
#[derive(Clone, Copy)]
struct Fence {
    /// No new reconcile after this; running ones are cut off `grace` later.
    valid_until: Option<Instant>,
    cancelled: u64,
}

/// One replica's share of the work, shared by its membership task and its reconcilers.
pub struct Shard {
    identity: String,
    gate: Mutex<Gate>,
    drained: Notify,
    fence: watch::Sender<Fence>,
    /// How long running reconciles go on once the Lease is no longer renewed.
    grace: Duration,
    /// Bumped each time a view opens: every object is reconciled again.
    opened: watch::Sender<u64>,
    metrics: Arc<Metrics>,
}

/// Whether a reconcile of one object may run here.
pub enum Admission {
    /// This replica owns it under the view it acts on; holds the view open until dropped.
    Owned(Permit),
    /// Another member owns it.
    NotOwned,
    /// This replica acts on nothing now (its view is changing or its Lease is not renewed);
    /// every object is reconciled again when it acts again.
    Closed,
}

/// One running reconcile of an owned object.
pub struct Permit {
    shard: Arc<Shard>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut gate = self.shard.gate.lock().unwrap_or_else(|e| e.into_inner());
        gate.in_flight -= 1;
        if gate.in_flight == 0 {
            self.shard.drained.notify_waiters();
        }
    }
}

impl Shard {
    pub fn new(identity: String, grace: Duration, metrics: Arc<Metrics>) -> Arc<Shard> {
        metrics.shard_members(0);
        Arc::new(Shard {
            identity,
            gate: Mutex::new(Gate {
                view: None,
                in_flight: 0,
            }),
            drained: Notify::new(),
            fence: watch::Sender::new(Fence {
                valid_until: None,
                cancelled: 0,
            }),
            grace,
            opened: watch::Sender::new(0),
            metrics,
        })
    }

    /// Changes each time a view opens.
    pub fn opened(&self) -> watch::Receiver<u64> {
        self.opened.subscribe()
    }

    /// Decides whether `namespace/name` is reconciled here; cheap (a few hashes), so it runs
    /// before anything is decrypted.
    pub fn admit(self: &Arc<Self>, namespace: &str, name: &str) -> Admission {
        let valid = self
            .fence
            .borrow()
            .valid_until
            .is_some_and(|t| Instant::now() < t);
        let mut gate = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        let Some(view) = gate.view.as_ref().filter(|_| valid) else {
            return Admission::Closed;
        };
        if owner(view, namespace, name) != Some(self.identity.as_str()) {
            return Admission::NotOwned;
        }
        gate.in_flight += 1;
        Admission::Owned(Permit {
            shard: self.clone(),
        })
    }

    /// Resolves when running reconciles must stop: cut off by the membership task, or the
    /// Lease not renewed for the renew deadline plus the grace.
    async fn cut_off(&self, mut fence: watch::Receiver<Fence>) {
        let start = fence.borrow_and_update().cancelled;
        loop {
            let now = *fence.borrow_and_update();
            if now.cancelled != start {
                return;
            }
            let Some(until) = now.valid_until else { return };
            tokio::select! {
                _ = tokio::time::sleep_until((until + self.grace).into()) => return,
                changed = fence.changed() => if changed.is_err() { return },
            }
        }
    }

    /// Stops acting: no new reconciles; waits for running ones up to `within`, then cuts them
    /// off and waits for them to go.
    async fn close(&self, within: Duration) {
        let was_open = {
            let mut gate = self.gate.lock().unwrap_or_else(|e| e.into_inner());
            gate.view.take().is_some()
        };
        if was_open {
            self.metrics.shard_members(0);
            tracing::info!(identity = %self.identity, "stopped acting on a share: the members changed");
        }
        let deadline = tokio::time::Instant::now() + within;
        let mut cut = false;
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self
                .gate
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .in_flight
                == 0
            {
                return;
            }
            if cut {
                drained.await;
            } else if tokio::time::timeout_at(deadline, drained).await.is_err() {
                tracing::warn!(
                    "reconciles still running {within:?} after the members changed: stopped"
                );
                self.fence.send_modify(|f| f.cancelled += 1);
                cut = true;
            }
        }
    }

    fn open(&self, view: Vec<String>) {
        let members = view.len();
        self.gate.lock().unwrap_or_else(|e| e.into_inner()).view = Some(Arc::new(view));
        self.metrics.shard_members(members);
        tracing::info!(identity = %self.identity, members, "acting on a share of the objects");
        self.opened.send_modify(|n| *n += 1);
    }
}

/// Runs `reconcile` for `obj` when this replica owns it, and cuts it off when the replica must
/// stop writing; an object it does not own is left alone (its owner reconciles it).
pub async fn reconcile_owned<K, Ctx, Fut, E>(
    shard: &Arc<Shard>,
    obj: Arc<K>,
    ctx: Arc<Ctx>,
    reconcile: fn(Arc<K>, Arc<Ctx>) -> Fut,
) -> Result<Action, E>
where
    K: Resource<DynamicType = ()>,
    Fut: std::future::Future<Output = Result<Action, E>>,
{
    // Subscribed before admission: a cut-off that comes after it is seen.
    let fence = shard.fence.subscribe();
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let _permit = match shard.admit(&namespace, &name) {
        Admission::Owned(p) => p,
        Admission::NotOwned => {
            // Its owner reports it now: a failure this replica saw before the object moved
            // must not stay in its unsynced series (and alert) for hours.
            shard
                .metrics
                .object_synced(&K::kind(&()), &namespace, &name);
            return Ok(Action::await_change());
        }
        Admission::Closed => return Ok(Action::await_change()),
    };
    tokio::select! {
        r = reconcile(obj, ctx) => r,
        () = shard.cut_off(fence) => {
            tracing::warn!(%namespace, %name, "reconcile stopped: this replica may no longer write it");
            Ok(Action::await_change())
        }
    }
}

/// The membership task: renews this replica's member Lease, reads the others', and opens or
/// closes the [`Shard`]'s view as the module documentation says.
pub struct Membership {
    api: Api<Lease>,
    group: String,
    lease: String,
    timing: Timing,
    shard: Arc<Shard>,
    /// Per member Lease: its resourceVersion when last read, and since when (our clock).
    observed: HashMap<String, (String, Instant)>,
    /// The view our Lease says (as last written).
    published: Option<Vec<String>>,
}

/// A member Lease's name for `identity`: a DNS subdomain, with a digest of the identity when it
/// had to be changed to be one (two identities then never share a Lease).
fn member_lease_name(group: &str, identity: &str) -> String {
    let clean: String = identity
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let clean = clean.trim_matches(|c| c == '-' || c == '.');
    let base = format!("{group}-member-{clean}");
    if clean == identity && base.len() <= 200 {
        return base;
    }
    let digest = Sha256::digest(identity.as_bytes());
    let short: String = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
    let mut base: String = base.chars().take(180).collect();
    base = base.trim_end_matches(['-', '.']).to_owned();
    format!("{base}-{short}")
}

/// What one read of the member Leases says.
struct Members {
    /// Live identities, sorted (this replica included).
    live: Vec<String>,
    /// The view each live member's Lease says.
    views: HashMap<String, Option<Vec<String>>>,
    /// Our own Lease as read.
    own: Option<Lease>,
}

impl Membership {
    pub fn new(api: Api<Lease>, group: String, timing: Timing, shard: Arc<Shard>) -> Self {
        let lease = member_lease_name(&group, &shard.identity);
        Membership {
            api,
            group,
            lease,
            timing,
            shard,
            observed: HashMap::new(),
            published: None,
        }
    }

    /// Runs until `stop` turns true; then stops acting and releases the member Lease so the
    /// others take over at once.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        tracing::info!(lease = %self.lease, "sharding the objects among live replicas");
        loop {
            if *stop.borrow() {
                break;
            }
            let steady = self.step().await;
            self.timing.until_next_round(steady, &mut stop).await;
        }
        self.shard.close(Duration::ZERO).await;
        match self.release().await {
            Ok(()) => tracing::info!(lease = %self.lease, "released the member lease"),
            Err(e) => tracing::warn!(error = %e, "could not release the member lease"),
        }
    }

    /// One round: read the members, change or keep the view, renew our Lease. `true` when
    /// acting on an agreed view.
    async fn step(&mut self) -> bool {
        let started = Instant::now();
        let read = tokio::time::timeout(self.timing.attempt_timeout(), self.read()).await;
        let members = match read {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "sharding: reading the member leases failed");
                return false;
            }
            Err(_) => {
                tracing::warn!("sharding: reading the member leases timed out");
                return false;
            }
        };
        // Our own entry is the view our Lease said when the others were read: written in an
        // earlier round, so the others' agreement was read after it.
        let agreed = members
            .live
            .iter()
            .all(|m| members.views.get(m).and_then(|v| v.as_ref()) == Some(&members.live));
        let open = self.shard_view();
        let open_still_right = open.as_deref() == Some(&members.live) && agreed;
        if open.is_some() && !open_still_right {
            self.shard.close(self.shard.grace).await;
        }
        // A changed view is written only now, with nothing running under the old one.
        let renewed = tokio::time::timeout(
            self.timing.attempt_timeout(),
            self.renew(members.own, &members.live),
        )
        .await;
        match renewed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, lease = %self.lease, "sharding: member lease update failed");
                return false;
            }
            Err(_) => {
                tracing::warn!(lease = %self.lease, "sharding: member lease update timed out");
                return false;
            }
        }
        // The others may count us gone one lease duration after they first saw our previous
        // renewal, which they saw no earlier than that renewal started: that is when our
        // running reconciles were cut off (`valid_until` + grace). A renewal answered before
        // then landed before any of them could count us gone; one answered later may have
        // landed after they did and moved our objects on. Then this is a new start: nothing
        // runs until every member is read agreeing again after this renewal.
        let previous = self.shard.fence.borrow().valid_until;
        let continuous = previous.is_some_and(|t| Instant::now() < t + self.shard.grace);
        if !continuous && self.shard_view().is_some() {
            tracing::warn!(lease = %self.lease, "member lease was not renewed in time: stopped all work");
            self.shard.close(Duration::ZERO).await;
        }
        let until = started + self.timing.renew_deadline;
        self.shard
            .fence
            .send_modify(|f| f.valid_until = Some(until));
        // Renewed late but in time: objects that came up after the renew deadline were refused
        // (the fence takes no new work then) and are owed a reconcile.
        let refused_some = previous.is_some_and(|t| Instant::now() >= t);
        if !continuous {
            return false;
        }
        if open_still_right {
            if refused_some {
                self.shard.opened.send_modify(|n| *n += 1);
            }
            return true;
        }
        if agreed && self.shard_view().is_none() {
            self.shard.open(members.live);
            return true;
        }
        false
    }

    /// The view the shard acts on now.
    fn shard_view(&self) -> Option<Vec<String>> {
        let gate = self.shard.gate.lock().unwrap_or_else(|e| e.into_inner());
        gate.view.as_ref().map(|v| v.to_vec())
    }

    async fn read(&mut self) -> Result<Members, kube::Error> {
        let list = self
            .api
            .list(&ListParams::default().labels(&format!("{GROUP_LABEL}={}", self.group)))
            .await?;
        let now = Instant::now();
        let forget = self.timing.lease_duration * FORGET_AFTER_LEASES;
        let mut live = BTreeSet::new();
        let mut views = HashMap::new();
        let mut own = None;
        let mut seen = Vec::new();
        for lease in list.items {
            let name = lease.name_any();
            let version = lease.metadata.resource_version.clone().unwrap_or_default();
            let since = match self.observed.get(&name) {
                Some((v, at)) if *v == version => *at,
                _ => now,
            };
            self.observed.insert(name.clone(), (version.clone(), since));
            seen.push(name.clone());
            if name == self.lease {
                own = Some(lease);
                continue;
            }
            let spec = lease.spec.clone().unwrap_or_default();
            let duration = spec
                .lease_duration_seconds
                .map(|s| Duration::from_secs(s.max(1) as u64))
                .unwrap_or(self.timing.lease_duration);
            let holder = spec.holder_identity.filter(|h| !h.is_empty());
            let unchanged = now.duration_since(since);
            match holder {
                Some(holder) if unchanged < duration => {
                    let view = lease
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(VIEW_ANNOTATION))
                        .and_then(|v| serde_json::from_str::<Vec<String>>(v).ok());
                    views.insert(holder.clone(), view);
                    live.insert(holder);
                }
                _ if unchanged >= forget => self.forget(&name, &version).await,
                _ => {}
            }
        }
        self.observed.retain(|name, _| seen.contains(name));
        live.insert(self.shard.identity.clone());
        views.insert(self.shard.identity.clone(), self.published.clone());
        Ok(Members {
            live: live.into_iter().collect(),
            views,
            own,
        })
    }

    /// Deletes a member Lease gone for long (only if unchanged since read).
    async fn forget(&self, name: &str, version: &str) {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: Some(version.to_owned()),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        match self.api.delete(name, &params).await {
            Ok(_) => tracing::info!(lease = %name, "deleted the lease of a member gone for long"),
            Err(e) => {
                tracing::debug!(lease = %name, error = %e, "could not delete an old member lease")
            }
        }
    }

    /// Renews our Lease (creating it when missing) and writes `view` into it.
    async fn renew(&mut self, own: Option<Lease>, view: &[String]) -> Result<(), kube::Error> {
        let now = MicroTime(Timestamp::now());
        let view_text = serde_json::to_string(view).unwrap_or_default();
        let identity = self.shard.identity.clone();
        let spec = |acquired: Option<MicroTime>| LeaseSpec {
            holder_identity: Some(identity.clone()),
            lease_duration_seconds: Some(self.timing.lease_duration.as_secs() as i32),
            acquire_time: acquired.or(Some(now.clone())),
            renew_time: Some(now.clone()),
            ..LeaseSpec::default()
        };
        let ours = own.as_ref().is_some_and(|l| {
            l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(identity.as_str())
        });
        if own.is_some() && !ours {
            // Released (our SIGTERM'd predecessor of the same identity) or written by someone
            // else: anything we were doing is not covered by it.
            self.shard.close(Duration::ZERO).await;
        }
        let written = match own {
            Some(mut lease) => {
                let acquired = ours
                    .then(|| lease.spec.as_ref().and_then(|s| s.acquire_time.clone()))
                    .flatten();
                lease.spec = Some(spec(acquired));
                lease
                    .metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(VIEW_ANNOTATION.to_owned(), view_text);
                self.api
                    .replace(&self.lease, &PostParams::default(), &lease)
                    .await
            }
            None => {
                if self.published.is_some() {
                    // Deleted by another member that counted us gone: start again as new.
                    tracing::warn!(lease = %self.lease, "member lease was gone: stopped all work");
                    self.shard.close(Duration::ZERO).await;
                }
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.lease.clone()),
                        labels: Some([(GROUP_LABEL.to_owned(), self.group.clone())].into()),
                        annotations: Some([(VIEW_ANNOTATION.to_owned(), view_text)].into()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec(None)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
        };
        written?;
        self.published = Some(view.to_vec());
        Ok(())
    }

    /// Gives the member Lease up (no holder), so the others count this replica gone at once.
    async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.lease).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.shard.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api
            .replace(&self.lease, &PostParams::default(), &lease)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_member_leaving_moves_only_its_own_objects() {
        let three = members(&["a", "b", "c"]);
        let two = members(&["a", "c"]);
        let mut moved = 0;
        let mut shares = HashMap::new();
        for i in 0..1000 {
            let name = format!("s{i}");
            let before = owner(&three, "ns", &name).unwrap();
            let after = owner(&two, "ns", &name).unwrap();
            *shares.entry(before).or_insert(0) += 1;
            if before != "b" {
                assert_eq!(before, after, "{name} moved though its owner stayed");
            } else {
                moved += 1;
            }
        }
        assert_eq!(moved, shares["b"]);
        // Each of three gets about a third (binomial: 333 +- 3 sigma of 15).
        for (m, n) in &shares {
            assert!((280..=390).contains(n), "{m} owns {n} of 1000");
        }
    }

    #[test]
    fn ownership_is_the_same_whatever_the_order_and_build() {
        let a = members(&["x", "y"]);
        let b = members(&["y", "x"]);
        assert_eq!(owner(&a, "n", "o"), owner(&b, "n", "o"));
        assert_eq!(owner(&[], "n", "o"), None);
    }

    fn object(name: &str) -> Arc<k8s_openapi::api::core::v1::Secret> {
        let mut s = k8s_openapi::api::core::v1::Secret::default();
        s.metadata.namespace = Some("ns".into());
        s.metadata.name = Some(name.into());
        Arc::new(s)
    }

    /// A share of one member acting on `view`, its Lease renewed for `valid`.
    fn acting(me: &str, view: &[&str], valid: Duration, grace: Duration) -> Arc<Shard> {
        let shard = Shard::new(me.into(), grace, Arc::default());
        shard
            .fence
            .send_modify(|f| f.valid_until = Some(Instant::now() + valid));
        shard.open(members(view));
        shard
    }

    /// The name of an object `me` owns among `view` (and one it does not).
    fn owned_and_not(me: &str, view: &[&str]) -> (String, String) {
        let view = members(view);
        let mut names = (0..).map(|i| format!("o{i}"));
        let mine = names
            .clone()
            .find(|n| owner(&view, "ns", n) == Some(me))
            .unwrap();
        let other = names.find(|n| owner(&view, "ns", n) != Some(me)).unwrap();
        (mine, other)
    }

    async fn never_called(
        _: Arc<k8s_openapi::api::core::v1::Secret>,
        _: Arc<()>,
    ) -> Result<Action, std::convert::Infallible> {
        unreachable!("an object another member owns is not reconciled here")
    }

    async fn runs_forever(
        _: Arc<k8s_openapi::api::core::v1::Secret>,
        _: Arc<()>,
    ) -> Result<Action, std::convert::Infallible> {
        std::future::pending().await
    }

    #[tokio::test]
    async fn an_object_another_member_owns_is_skipped_before_its_reconcile_runs() {
        let shard = acting("a", &["a", "b"], Duration::from_secs(60), Duration::ZERO);
        let (_, other) = owned_and_not("a", &["a", "b"]);
        let done = reconcile_owned(&shard, object(&other), Arc::new(()), never_called).await;
        assert_eq!(done.unwrap(), Action::await_change());
    }

    #[tokio::test]
    async fn a_failure_seen_before_an_object_moved_leaves_the_unsynced_series() {
        let shard = acting("a", &["a", "b"], Duration::from_secs(60), Duration::ZERO);
        let (_, other) = owned_and_not("a", &["a", "b"]);
        shard
            .metrics
            .object_failed("Secret", "ns", &other, "DecryptFailed");
        let series = |s: &Shard| {
            s.metrics
                .render(None, 0, false)
                .contains("enseal_controller_object_unsynced_seconds{")
        };
        assert!(series(&shard));
        reconcile_owned(&shard, object(&other), Arc::new(()), never_called)
            .await
            .unwrap();
        assert!(
            !series(&shard),
            "the moved object still counts as unsynced here"
        );
    }

    #[tokio::test]
    async fn a_view_closes_only_once_running_reconciles_are_done_and_admits_nothing_meanwhile() {
        let shard = acting("a", &["a", "b"], Duration::from_secs(60), Duration::ZERO);
        let (mine, _) = owned_and_not("a", &["a", "b"]);
        let Admission::Owned(permit) = shard.admit("ns", &mine) else {
            panic!("{mine} is a's");
        };
        let closing = tokio::spawn({
            let shard = shard.clone();
            async move { shard.close(Duration::from_secs(3600)).await }
        });
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(!closing.is_finished(), "closed with a reconcile running");
        assert!(matches!(shard.admit("ns", &mine), Admission::Closed));
        drop(permit);
        closing.await.unwrap();
    }

    #[tokio::test]
    async fn a_reconcile_is_cut_off_when_the_lease_is_not_renewed() {
        // Renewed for 50 ms, then not again: the reconcile that runs on is dropped after the
        // grace, and nothing new is admitted.
        let grace = Duration::from_millis(50);
        let shard = acting("a", &["a"], Duration::from_millis(50), grace);
        let done = reconcile_owned(&shard, object("x"), Arc::new(()), runs_forever).await;
        assert_eq!(done.unwrap(), Action::await_change());
        assert!(matches!(shard.admit("ns", "x"), Admission::Closed));
        assert_eq!(shard.gate.lock().unwrap().in_flight, 0);
    }

    #[test]
    fn member_lease_names_are_dns_names_and_distinct() {
        assert_eq!(
            member_lease_name("enseal-controller", "pod-a-1"),
            "enseal-controller-member-pod-a-1"
        );
        let upper = member_lease_name("g", "Pod_A");
        let lower = member_lease_name("g", "pod-a");
        assert_ne!(upper, lower);
        assert!(upper
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'));
        assert!(member_lease_name("g", &"x".repeat(300)).len() <= 253);
    }
}
