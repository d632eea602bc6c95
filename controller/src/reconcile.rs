//! The SealedSecret reconciler: unseal, then server-side apply the Secret,
//! then report through the status condition `Synced` and Events.
//!
//! Every failure is reported on the object (condition + Event) and retried
//! later; none stops the controller or affects other objects. Messages name
//! keys and reasons, never values.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PartialObjectMeta, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::crd::{self, Condition, SealedSecret, SealedSecretStatus};
use crate::keystore::KeyStore;
use crate::metrics::Metrics;
use crate::unseal::{self, DesiredSecret, UnsealError};

pub const EVENT_UNSEALED: &str = "Unsealed";
pub const EVENT_UNSEAL_FAILED: &str = "ErrUnsealFailed";
pub const EVENT_UPDATE_FAILED: &str = "ErrUpdateFailed";

pub struct Context {
    pub client: Client,
    pub keys: Arc<KeyStore>,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub field_manager: String,
    /// Last successful sync per (namespace, name); see [`LastSync`].
    pub synced: std::sync::Mutex<std::collections::HashMap<(String, String), LastSync>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("SealedSecret has no name or namespace")]
    NoName,
    #[error("writing the status of {0}: {1}")]
    Status(String, #[source] kube::Error),
}

/// Why a sync did not produce the Secret; becomes the condition and Event.
struct Failure {
    event_reason: &'static str,
    reason: &'static str,
    message: String,
    retry: Duration,
}

impl From<UnsealError> for Failure {
    fn from(e: UnsealError) -> Self {
        Failure {
            event_reason: EVENT_UNSEAL_FAILED,
            reason: e.reason(),
            message: format!("Failed to unseal: {e}"),
            // Only a new key can change the outcome, and new keys trigger
            // a pass over every object anyway.
            retry: match e {
                UnsealError::NoKeys => Duration::from_secs(2),
                _ => Duration::from_secs(300),
            },
        }
    }
}

fn update_failed(reason: &'static str, message: String) -> Failure {
    Failure {
        event_reason: EVENT_UPDATE_FAILED,
        reason,
        message,
        retry: Duration::from_secs(30),
    }
}

pub async fn reconcile(ss: Arc<SealedSecret>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let (Some(namespace), Some(name)) = (ss.namespace(), ss.metadata.name.clone()) else {
        return Err(ReconcileError::NoName);
    };
    if ss.metadata.deletion_timestamp.is_some() {
        // The garbage collector removes the Secret through its ownerReference.
        return Ok(Action::await_change());
    }
    let outcome = sync(&ss, &ctx, &namespace, &name).await;
    let result = match outcome {
        Ok(changed) => {
            if changed {
                publish(
                    &ctx,
                    &ss,
                    EventType::Normal,
                    EVENT_UNSEALED,
                    "SealedSecret unsealed successfully",
                )
                .await;
                tracing::info!(namespace = %namespace, name = %name, "unsealed");
            }
            write_status(&ctx, &ss, &namespace, &name, true, "Unsealed", "").await?;
            Ok(Action::await_change())
        }
        Err(f) => {
            ctx.forget_sync(&(namespace.clone(), name.clone()));
            ctx.metrics.error(f.reason);
            tracing::warn!(namespace = %namespace, name = %name, reason = f.reason, message = %f.message, "not synced");
            publish(&ctx, &ss, EventType::Warning, f.event_reason, &f.message).await;
            write_status(&ctx, &ss, &namespace, &name, false, f.reason, &f.message).await?;
            Ok(Action::requeue(f.retry))
        }
    };
    ctx.metrics.reconciled(started.elapsed());
    result
}

pub fn error_policy(ss: Arc<SealedSecret>, err: &ReconcileError, ctx: Arc<Context>) -> Action {
    ctx.metrics.error("ApiError");
    tracing::warn!(name = %ss.name_any(), error = %err, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// How the Secret of this name relates to the SealedSecret.
#[derive(Debug, PartialEq, Eq)]
enum Ownership {
    /// Ours (or free, or handed over with `managed`): apply all of it.
    Own,
    /// `patch`: merge our keys, labels and annotations into it.
    Patch { set_owner: bool },
}

fn decide(
    existing: Option<&PartialObjectMeta<Secret>>,
    ss: &SealedSecret,
    field_manager: &str,
) -> Result<Ownership, Failure> {
    let Some(existing) = existing else {
        return Ok(Ownership::Own);
    };
    let uid = ss.metadata.uid.as_deref().unwrap_or_default();
    let controlled = existing
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid);
    let ann = |k: &str| {
        existing
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(k))
            .is_some_and(|v| v == "true")
    };
    // With skip-set-owner-references there is no ownerReference to recognise
    // our own Secret by; the field manager entry we left on it stands in.
    let applied_by_us_without_owner = ss.template_annotation_is_true(crd::ANN_SKIP_OWNER_REFS)
        && existing
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|m| m.manager.as_deref() == Some(field_manager));
    if ann(crd::ANN_PATCH) {
        return Ok(Ownership::Patch {
            set_owner: ann(crd::ANN_MANAGED),
        });
    }
    if controlled || applied_by_us_without_owner || ann(crd::ANN_MANAGED) {
        return Ok(Ownership::Own);
    }
    Err(update_failed(
        "SecretNotOwned",
        format!(
            "Resource {:?} already exists and is not managed by SealedSecret",
            existing.metadata.name.as_deref().unwrap_or_default()
        ),
    ))
}

/// Unseals and applies. `Ok(true)` when the Secret was created or changed.
async fn sync(
    ss: &SealedSecret,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<bool, Failure> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let existing = secrets
        .get_metadata_opt(name)
        .await
        .map_err(|e| update_failed("ApiError", format!("reading Secret {name:?}: {e}")))?;
    let cache_key = (namespace.to_owned(), name.to_owned());
    let fingerprint = LastSync::of(ss, existing.as_ref());
    if fingerprint.is_some() && ctx.last_sync(&cache_key) == fingerprint {
        // An echo of our own status or Secret write: nothing changed since.
        return Ok(false);
    }

    let keys = ctx.keys.keys();
    let owned_ss = ss.clone();
    // RSA private-key operations are CPU work; keep them off the reactor.
    let desired = tokio::task::spawn_blocking(move || unseal::unseal(&owned_ss, &keys))
        .await
        .map_err(|e| update_failed("Internal", format!("unseal task failed: {e}")))??;
    let ownership = decide(existing.as_ref(), ss, &ctx.field_manager)?;
    let before = existing
        .as_ref()
        .and_then(|m| m.metadata.resource_version.clone());

    let set_owner = match ownership {
        Ownership::Own => !ss.template_annotation_is_true(crd::ANN_SKIP_OWNER_REFS),
        Ownership::Patch { set_owner } => set_owner,
    };
    let desired_keys: Vec<String> = desired.data.keys().cloned().collect();
    let secret = build_secret(ss, desired, namespace, name, set_owner, &ownership);
    let params = PatchParams::apply(&ctx.field_manager).force();
    let applied = secrets
        .patch(name, &params, &Patch::Apply(&secret))
        .await
        .map_err(|e| update_failed("UpdateFailed", apply_error_message(name, &e)))?;

    let mut after = applied.metadata.resource_version.clone();
    if ownership == Ownership::Own {
        // Apply never removes fields other managers own, so keys added by
        // hand would survive; an owned Secret holds exactly the sealed keys.
        let extra: BTreeMap<&String, serde_json::Value> = applied
            .data
            .iter()
            .flatten()
            .map(|(k, _)| k)
            .chain(applied.string_data.iter().flatten().map(|(k, _)| k))
            .filter(|k| !desired_keys.contains(k))
            .map(|k| (k, serde_json::Value::Null))
            .collect();
        if !extra.is_empty() {
            let patched = secrets
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "data": extra })),
                )
                .await
                .map_err(|e| update_failed("UpdateFailed", apply_error_message(name, &e)))?;
            after = patched.metadata.resource_version;
        }
    }
    let mut applied_meta = PartialObjectMeta::<Secret>::default();
    applied_meta.metadata.resource_version = after.clone();
    ctx.remember_sync(cache_key, LastSync::of(ss, Some(&applied_meta)));
    Ok(before != after)
}

/// What a successful sync started from and produced. When a trigger finds
/// the same SealedSecret (generation, uid, annotations) and the Secret still
/// at the version we left it, the sync is skipped: that saves the RSA work
/// for the echoes of our own writes, while a hand edit or deletion of the
/// Secret (new resourceVersion) still gets a full sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastSync {
    uid: String,
    generation: Option<i64>,
    annotations: u64,
    secret_version: String,
}

impl LastSync {
    fn of(ss: &SealedSecret, secret: Option<&PartialObjectMeta<Secret>>) -> Option<LastSync> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        ss.metadata.annotations.hash(&mut h);
        Some(LastSync {
            uid: ss.metadata.uid.clone()?,
            generation: ss.metadata.generation,
            annotations: h.finish(),
            secret_version: secret?.metadata.resource_version.clone()?,
        })
    }
}

impl Context {
    fn last_sync(&self, key: &(String, String)) -> Option<LastSync> {
        self.synced.lock().ok()?.get(key).cloned()
    }

    fn remember_sync(&self, key: (String, String), sync: Option<LastSync>) {
        if let Ok(mut m) = self.synced.lock() {
            match sync {
                Some(s) => {
                    m.insert(key, s);
                }
                None => {
                    m.remove(&key);
                }
            }
        }
    }

    fn forget_sync(&self, key: &(String, String)) {
        if let Ok(mut m) = self.synced.lock() {
            m.remove(key);
        }
    }
}

fn apply_error_message(name: &str, e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.message.contains("immutable") => format!(
            "Secret {name:?} is immutable and its data differs: delete it to let it be recreated"
        ),
        // The API server's own message names fields, not values.
        kube::Error::Api(s) => format!("updating Secret {name:?}: {} ({})", s.message, s.reason),
        other => format!("updating Secret {name:?}: {other}"),
    }
}

fn build_secret(
    ss: &SealedSecret,
    desired: DesiredSecret,
    namespace: &str,
    name: &str,
    set_owner: bool,
    ownership: &Ownership,
) -> Secret {
    let owner = set_owner.then(|| {
        vec![OwnerReference {
            api_version: crd::API_VERSION.to_owned(),
            kind: crd::KIND.to_owned(),
            name: name.to_owned(),
            uid: ss.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]
    });
    let patching = matches!(ownership, Ownership::Patch { .. });
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: (!desired.labels.is_empty()).then_some(desired.labels),
            annotations: (!desired.annotations.is_empty()).then_some(desired.annotations),
            owner_references: owner,
            ..ObjectMeta::default()
        },
        // A Secret's type cannot change; when merging into someone else's
        // Secret only an explicit template type is asked for.
        type_: if patching {
            desired.type_
        } else {
            Some(desired.type_.unwrap_or_else(|| "Opaque".to_owned()))
        },
        immutable: desired.immutable,
        data: Some(desired.data),
        ..Secret::default()
    }
}

async fn publish(ctx: &Context, ss: &SealedSecret, type_: EventType, reason: &str, note: &str) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note.chars().take(1000).collect()),
        action: "Unseal".to_owned(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &ss.object_ref(&())).await {
        tracing::warn!(name = %ss.name_any(), error = %e, "could not publish an Event");
    }
}

async fn write_status(
    ctx: &Context,
    ss: &SealedSecret,
    namespace: &str,
    name: &str,
    synced: bool,
    reason: &str,
    message: &str,
) -> Result<(), ReconcileError> {
    let status_str = if synced { "True" } else { "False" };
    let generation = ss.metadata.generation;
    let previous = ss
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Synced"));
    let unchanged = previous.is_some_and(|p| {
        p.status == status_str
            && p.reason.as_deref() == Some(reason)
            && p.message.as_deref().unwrap_or_default() == message
    }) && ss.status.as_ref().and_then(|s| s.observed_generation) == generation;
    if unchanged {
        return Ok(());
    }
    let now = Time(Timestamp::now());
    let transition = match previous {
        Some(p) if p.status == status_str => p.last_transition_time.clone().unwrap_or(now.clone()),
        _ => now.clone(),
    };
    let status = SealedSecretStatus {
        conditions: Some(vec![Condition {
            type_: "Synced".to_owned(),
            status: status_str.to_owned(),
            reason: Some(reason.to_owned()),
            message: (!message.is_empty()).then(|| message.to_owned()),
            last_update_time: Some(now),
            last_transition_time: Some(transition),
        }]),
        observed_generation: generation,
    };
    let api: Api<SealedSecret> = Api::namespaced(ctx.client.clone(), namespace);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map_err(|e| ReconcileError::Status(name.to_owned(), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    fn ss_with_uid(uid: &str) -> SealedSecret {
        let mut ss = SealedSecret::default();
        ss.metadata.uid = Some(uid.to_owned());
        ss
    }

    fn secret_meta(
        annotations: &[(&str, &str)],
        owner_uid: Option<&str>,
    ) -> PartialObjectMeta<Secret> {
        let mut m = PartialObjectMeta::<Secret>::default();
        m.metadata.name = Some("s".into());
        m.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        m.metadata.owner_references = owner_uid.map(|uid| {
            vec![OwnerReference {
                uid: uid.into(),
                controller: Some(true),
                ..OwnerReference::default()
            }]
        });
        m
    }

    #[test]
    fn a_missing_or_owned_secret_is_ours() {
        let ss = ss_with_uid("u1");
        assert_eq!(decide(None, &ss, "fm").ok(), Some(Ownership::Own));
        let owned = secret_meta(&[], Some("u1"));
        assert_eq!(decide(Some(&owned), &ss, "fm").ok(), Some(Ownership::Own));
    }

    #[test]
    fn a_foreign_secret_is_refused_unless_annotated() {
        let ss = ss_with_uid("u1");
        let foreign = secret_meta(&[], Some("other"));
        let f = decide(Some(&foreign), &ss, "fm").unwrap_err();
        assert_eq!(f.event_reason, EVENT_UPDATE_FAILED);
        assert!(f.message.contains("not managed by SealedSecret"));
        let managed = secret_meta(&[(crd::ANN_MANAGED, "true")], None);
        assert_eq!(decide(Some(&managed), &ss, "fm").ok(), Some(Ownership::Own));
        let patch = secret_meta(&[(crd::ANN_PATCH, "true")], None);
        assert_eq!(
            decide(Some(&patch), &ss, "fm").ok(),
            Some(Ownership::Patch { set_owner: false })
        );
    }

    #[test]
    fn without_owner_references_our_field_manager_marks_the_secret_ours() {
        let mut ss = ss_with_uid("u1");
        ss.spec.template = Some(crd::SecretTemplate {
            metadata: Some(crd::TemplateMetadata {
                annotations: Some(
                    [(crd::ANN_SKIP_OWNER_REFS.to_owned(), "true".to_owned())].into(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        });
        let mut m = secret_meta(&[], None);
        assert!(decide(Some(&m), &ss, "fm").is_err());
        m.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some("fm".into()),
            ..Default::default()
        }]);
        assert_eq!(decide(Some(&m), &ss, "fm").ok(), Some(Ownership::Own));
    }
}
