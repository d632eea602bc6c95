//! What both reconcilers (SealedSecret, SopsSecret) share: the context they run with, the
//! failure that becomes a `Synced=False` condition, an Event and a retry, the one reconcile
//! error, the rules for rewriting the `Synced` condition, Events, and applying a Secret so that
//! it holds exactly the keys asked for.
//!
//! Messages name keys, documents and master keys, never values.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::metrics::Metrics;

/// The cluster side of a reconciler's context: the same for every resource kind.
pub struct Cluster {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// This kind's field manager: `--field-manager` and the kind, e.g.
    /// `enseal-controller-sealedsecret`.
    pub field_manager: String,
    /// `--field-manager` alone, which both kinds used before they had one each: still
    /// recognised on Secrets without any ownerReference that older versions applied.
    pub legacy_field_manager: String,
    /// How soon a failed object is tried again.
    pub retries: Retries,
}

/// Retry timing for failed objects (`--max-unseal-retries`): the first retries back off from
/// [`Retries::FIRST`], doubling, up to the failure's own interval; after that many, every
/// retry waits the failure's own interval. Never given up: Sealed Secrets forgets an object
/// after its last retry and then leaves its Secret unwritten until the object changes
/// (sealed-secrets #1599).
pub struct Retries {
    quick: u32,
    /// Failures in a row per object, and when the last one was.
    failed: std::sync::Mutex<std::collections::HashMap<ObjectKey, (u32, Instant)>>,
}

/// An object by (kind, namespace, name).
pub type ObjectKey = (String, String, String);

impl Retries {
    pub const FIRST: Duration = Duration::from_secs(1);
    /// A failing object is retried at least this often (the longest Failure::retry), so an
    /// entry older than this belongs to an object that is gone.
    const FORGET_AFTER: Duration = Duration::from_secs(3 * 3600);

    pub fn new(quick: u32) -> Retries {
        Retries {
            quick,
            failed: Default::default(),
        }
    }

    /// The object synced: the next failure starts the quick retries again.
    pub fn succeeded(&self, key: &ObjectKey) {
        if let Ok(mut f) = self.failed.lock() {
            f.remove(key);
        }
    }

    /// The wait before retrying an object that failed again; `slowest` is the failure's own.
    pub fn after_failure(&self, key: ObjectKey, slowest: Duration) -> Duration {
        let now = Instant::now();
        let Ok(mut failed) = self.failed.lock() else {
            return slowest;
        };
        if failed.len() > 1024 {
            failed.retain(|_, (_, at)| now.duration_since(*at) < Self::FORGET_AFTER);
        }
        let entry = failed.entry(key).or_insert((0, now));
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        self.wait(entry.0, slowest)
    }

    /// The wait after the `n`th failure in a row.
    fn wait(&self, n: u32, slowest: Duration) -> Duration {
        if n > self.quick {
            return slowest;
        }
        Self::FIRST
            .saturating_mul(1u32 << (n - 1).min(20))
            .min(slowest)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("{kind} has no name or namespace")]
    NoName { kind: &'static str },
    #[error("writing the status of {name}: {source}")]
    Status {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Why a sync did not produce the Secret(s); becomes the condition, an Event and a retry.
pub struct Failure {
    /// The Event's reason (Sealed Secrets uses its own, e.g. `ErrUnsealFailed`).
    pub event_reason: &'static str,
    /// The condition's reason and the metrics label.
    pub reason: &'static str,
    pub message: String,
    pub retry: Duration,
}

/// A failure talking to the API server (reading or writing a Secret): retried soon.
pub fn api_failure(event_reason: &'static str, reason: &'static str, message: String) -> Failure {
    Failure {
        event_reason,
        reason,
        message,
        retry: Duration::from_secs(30),
    }
}

/// The `Synced` condition to write after a sync.
pub struct Synced<'a> {
    pub ok: bool,
    pub reason: &'a str,
    pub message: &'a str,
}

/// The fields of the previous `Synced` condition this module compares (both resource kinds
/// keep them under the same names).
pub struct PreviousCondition<'a> {
    pub status: &'a str,
    pub reason: Option<&'a str>,
    pub message: Option<&'a str>,
    pub last_transition_time: Option<&'a str>,
}

impl Synced<'_> {
    pub fn status(&self) -> &'static str {
        if self.ok {
            "True"
        } else {
            "False"
        }
    }

    /// Same status, reason and message as before: nothing to write (writing would trigger
    /// another reconcile of the object for nothing).
    pub fn is_unchanged(&self, previous: Option<&PreviousCondition<'_>>) -> bool {
        previous.is_some_and(|p| {
            p.status == self.status()
                && p.reason == Some(self.reason)
                && p.message.unwrap_or_default() == self.message
        })
    }

    /// When the status last changed: kept while it stays the same, else now.
    pub fn transition_time(&self, previous: Option<&PreviousCondition<'_>>, now: &str) -> String {
        match previous {
            Some(p) if p.status == self.status() => p.last_transition_time.unwrap_or(now),
            _ => now,
        }
        .to_owned()
    }

    pub fn message(&self) -> Option<String> {
        (!self.message.is_empty()).then(|| self.message.to_owned())
    }
}

/// Now, as the API writes times (RFC 3339, whole seconds).
pub fn now() -> String {
    serde_json::to_value(Time(Timestamp::now()))
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| Timestamp::now().to_string())
}

/// Replaces the object's status through the status subresource. `empty_lists` are written as
/// `[]` when absent: a merge patch would otherwise keep list entries that are gone.
pub async fn patch_status<K>(
    api: &Api<K>,
    name: &str,
    status: &impl serde::Serialize,
    empty_lists: &[&str],
) -> Result<(), ReconcileError>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut body = serde_json::to_value(status).unwrap_or_default();
    if let Some(map) = body.as_object_mut() {
        for key in empty_lists {
            map.entry(*key).or_insert(json!([]));
        }
    }
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": body })),
    )
    .await
    .map_err(|source| ReconcileError::Status {
        name: name.to_owned(),
        source,
    })?;
    Ok(())
}

/// kube's error policy for both kinds: a failed API call (the status write) is retried soon.
pub fn error_policy<K, C>(
    obj: Arc<K>,
    err: &ReconcileError,
    ctx: Arc<C>,
) -> kube::runtime::controller::Action
where
    K: Resource<DynamicType = ()>,
    C: AsRef<Cluster>,
{
    let cluster: &Cluster = (*ctx).as_ref();
    cluster.metrics.error("ApiError");
    let kind = K::kind(&());
    let namespace = obj.namespace().unwrap_or_default();
    cluster
        .metrics
        .object_failed(&kind, &namespace, &obj.name_any(), "ApiError");
    tracing::warn!(%kind, name = %obj.name_any(), error = %err, "reconcile failed; retrying");
    kube::runtime::controller::Action::requeue(Duration::from_secs(5))
}

/// What a sync did, for [`report`]: a Normal Event `(reason, note)` when it changed something.
pub type Outcome<T> = Result<(T, Option<(&'static str, String)>), Failure>;

/// Reports a sync's outcome the same way for every kind: on success the Event (when something
/// changed); on failure the metric, a warning log line and a Warning Event. Returns what to
/// requeue after; the caller then writes its status condition.
pub async fn report<K, T>(
    cluster: &Cluster,
    obj: &K,
    action: &str,
    outcome: &Outcome<T>,
) -> kube::runtime::controller::Action
where
    K: Resource<DynamicType = ()>,
{
    use kube::runtime::controller::Action;
    let (namespace, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    let kind = K::kind(&());
    let retry_key = (kind.to_string(), namespace.clone(), name.clone());
    match outcome {
        Ok((_, changed)) => {
            cluster.retries.succeeded(&retry_key);
            cluster.metrics.object_synced(&kind, &namespace, &name);
            if let Some((reason, note)) = changed {
                publish(
                    &cluster.recorder,
                    obj,
                    action,
                    EventType::Normal,
                    reason,
                    note,
                )
                .await;
                tracing::info!(%kind, namespace = %namespace, name = %name, %note, "synced");
            }
            Action::await_change()
        }
        Err(f) => {
            cluster.metrics.error(f.reason);
            cluster
                .metrics
                .object_failed(&kind, &namespace, &name, f.reason);
            tracing::warn!(%kind, namespace = %namespace, name = %name, reason = f.reason, message = %f.message, "not synced");
            let (reason, note) = (f.event_reason, &f.message);
            publish(
                &cluster.recorder,
                obj,
                action,
                EventType::Warning,
                reason,
                note,
            )
            .await;
            Action::requeue(cluster.retries.after_failure(retry_key, f.retry))
        }
    }
}

/// Publishes an Event on `obj`; a failure to publish is logged, never fatal.
pub async fn publish<K>(
    recorder: &Recorder,
    obj: &K,
    action: &str,
    type_: EventType,
    reason: &str,
    note: &str,
) where
    K: Resource<DynamicType = ()>,
{
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note.chars().take(1000).collect()),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(name = %obj.name_any(), error = %e, "could not publish an Event");
    }
}

/// Whether `meta` has a controller ownerReference to the object with `uid`.
pub fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

/// A message for a failed Secret write. The API server's own message names fields, not values.
pub fn api_message(name: &str, e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.message.contains("immutable") => format!(
            "Secret {name:?} is immutable and its data differs: delete it to let it be recreated"
        ),
        kube::Error::Api(s) => format!("updating Secret {name:?}: {} ({})", s.message, s.reason),
        other => format!("updating Secret {name:?}: {other}"),
    }
}

/// Whether `meta` has a controller ownerReference to an object other than the one with `uid`:
/// such a Secret belongs to someone else whatever its annotations or field managers say.
pub fn controlled_by_other(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid != uid)
}

/// Writes `secret` only if it is still what the caller checked: `checked` is the
/// resourceVersion of the Secret the ownership decision was made on, `None` when there was
/// none. The write is always a server-side apply under `field_manager` with that
/// resourceVersion as a precondition (failing with a conflict if the Secret changed
/// meanwhile), so deciding and writing are one step; an absent Secret is created by the same
/// apply (failing if someone created it meanwhile, see [`ABSENT`]). With `exact_keys`, data
/// keys it does not hold are then removed (apply never removes fields other managers own, so
/// keys added by hand would survive), under the same kind of precondition. Returns the
/// Secret's resourceVersion afterwards.
///
/// Creating through apply rather than a POST is what makes a later apply of the same content
/// a no-op: a POST records its fields under an `Update` entry, and the first apply (the next
/// process after a restart or failover, which does not remember what it wrote) then adds an
/// `Apply` entry, which changes the Secret and its resourceVersion although its content stays
/// the same. That was 11 to 18 of 40 Secrets written again per restart in the fault tests,
/// and would be every Secret of a large cluster (issue 16). Labels and annotations dropped
/// from a template also leave the Secret only when the apply entry alone owns them.
/// The resourceVersion an apply that may only create carries: no stored object ever has it
/// (etcd revisions are signed 64-bit), so against an existing Secret the precondition fails
/// with 409 Conflict, as a POST would with AlreadyExists; when the Secret is absent the API
/// server creates it and ignores the resourceVersion, as it does for every create. Pinned
/// against the real API server by the controller tests (a Secret created between the check
/// and the write is not taken over; every Secret is created at all).
const ABSENT: &str = "18446744073709551615";

pub async fn apply_secret(
    secrets: &Api<Secret>,
    secret: &Secret,
    checked: Option<&str>,
    field_manager: &str,
    exact_keys: bool,
    event_reason: &'static str,
) -> Result<Option<String>, Failure> {
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    let failed = |e: kube::Error| match &e {
        // Someone else wrote the Secret between our check and our write: decide again soon.
        kube::Error::Api(s) if s.code == 409 => Failure {
            event_reason,
            reason: "Conflict",
            message: format!(
                "Secret {name:?} was created or changed while it was being written: checking again"
            ),
            retry: Duration::from_secs(2),
        },
        _ => api_failure(event_reason, "UpdateFailed", api_message(name, &e)),
    };
    let mut conditional = secret.clone();
    conditional.metadata.resource_version = Some(checked.unwrap_or(ABSENT).to_owned());
    let applied = secrets
        .patch(
            name,
            // Forced: fields another manager set (a Secret handed over with `managed`, or
            // written under the legacy shared manager or by an older version's create)
            // become ours.
            &PatchParams::apply(field_manager).force(),
            &Patch::Apply(&conditional),
        )
        .await
        .map_err(failed)?;
    let mut after = applied.metadata.resource_version.clone();
    log_written(secret, checked, after.as_deref());
    if exact_keys {
        let wanted = secret.data.as_ref();
        let extra: BTreeMap<&String, serde_json::Value> = applied
            .data
            .iter()
            .flatten()
            .map(|(k, _)| k)
            .chain(applied.string_data.iter().flatten().map(|(k, _)| k))
            .filter(|k| !wanted.is_some_and(|w| w.contains_key(*k)))
            .map(|k| (k, serde_json::Value::Null))
            .collect();
        if !extra.is_empty() {
            let patched = secrets
                .patch(
                    name,
                    &PatchParams {
                        field_manager: Some(field_manager.to_owned()),
                        ..PatchParams::default()
                    },
                    &Patch::Merge(json!({
                        "metadata": { "resourceVersion": after },
                        "data": extra,
                    })),
                )
                .await
                .map_err(failed)?;
            log_written(
                secret,
                after.as_deref(),
                patched.metadata.resource_version.as_deref(),
            );
            after = patched.metadata.resource_version;
        }
    }
    Ok(after)
}

/// One line per write that changed a Secret, with the version it made: which replica wrote
/// which version of a Secret can then be told (the replica tests hold these lines against a
/// watch of every write). An apply that changed nothing leaves the version as it was.
fn log_written(secret: &Secret, before: Option<&str>, after: Option<&str>) {
    if after.is_some() && after != before {
        tracing::info!(
            namespace = %secret.metadata.namespace.as_deref().unwrap_or_default(),
            name = %secret.metadata.name.as_deref().unwrap_or_default(),
            resource_version = %after.unwrap_or_default(),
            "Secret written"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prev<'a>(status: &'a str, reason: &'a str, t: &'a str) -> PreviousCondition<'a> {
        PreviousCondition {
            status,
            reason: Some(reason),
            message: None,
            last_transition_time: Some(t),
        }
    }

    #[test]
    fn the_transition_time_moves_only_when_the_status_changes() {
        let ok = Synced {
            ok: true,
            reason: "Unsealed",
            message: "",
        };
        let before = prev("True", "Unsealed", "t0");
        assert!(ok.is_unchanged(Some(&before)));
        assert_eq!(ok.transition_time(Some(&before), "t1"), "t0");
        let failed = Synced {
            ok: false,
            reason: "DecryptFailed",
            message: "m",
        };
        assert!(!failed.is_unchanged(Some(&before)));
        assert_eq!(failed.transition_time(Some(&before), "t1"), "t1");
        assert_eq!(failed.transition_time(None, "t1"), "t1");
    }

    #[test]
    fn the_first_retries_back_off_quickly_then_keep_the_failures_interval_forever() {
        let r = Retries::new(3);
        let key = || ("SealedSecret".to_owned(), "n".to_owned(), "s".to_owned());
        let slow = Duration::from_secs(300);
        let waits: Vec<u64> = (0..6)
            .map(|_| r.after_failure(key(), slow).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 300, 300, 300]);
        // A quick retry never waits longer than the failure's own interval.
        assert_eq!(r.wait(3, Duration::from_secs(2)), Duration::from_secs(2));
        r.succeeded(&key());
        assert_eq!(r.after_failure(key(), slow), Duration::from_secs(1));
        // --max-unseal-retries 0: every retry at the failure's interval, still never given up.
        let none = Retries::new(0);
        assert_eq!(none.after_failure(key(), slow), slow);
        assert_eq!(none.after_failure(key(), slow), slow);
    }

    #[test]
    fn now_is_whole_seconds_utc() {
        let t = now();
        assert!(t.ends_with('Z') && !t.contains('.'), "{t}");
    }
}
