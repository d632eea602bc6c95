//! The SopsSecret reconciler: decrypt `spec.encrypted` with the controller's keys, server-side
//! apply the Secret(s) it describes (owned by the SopsSecret), prune Secrets it no longer
//! describes, and report through the `Synced` condition and Events.
//!
//! Every failure is reported on the object and retried later; none stops the controller.
//! Messages name keys, documents and master keys, never values.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ObjectMeta, PartialObjectMeta, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::metrics::Metrics;
use crate::sops_crd::{self, Condition, SopsSecret, SopsSecretStatus};
use crate::sops_keys::SopsKeys;
use crate::sops_render::{self, DesiredSecret, SopsError};

pub const EVENT_DECRYPTED: &str = "Decrypted";

pub struct Context {
    pub client: Client,
    pub keys: Arc<SopsKeys>,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub field_manager: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("SopsSecret has no name or namespace")]
    NoName,
    #[error("writing the status of {0}: {1}")]
    Status(String, #[source] kube::Error),
}

struct Failure {
    reason: &'static str,
    message: String,
    retry: Duration,
}

impl From<SopsError> for Failure {
    fn from(e: SopsError) -> Self {
        Failure {
            reason: e.reason(),
            message: e.to_string(),
            // A new key triggers a pass over every SopsSecret anyway; the retry covers KMS
            // outages and credentials that appear later.
            retry: if e.is_key_failure() {
                Duration::from_secs(60)
            } else {
                Duration::from_secs(300)
            },
        }
    }
}

fn api_failure(reason: &'static str, message: String) -> Failure {
    Failure {
        reason,
        message,
        retry: Duration::from_secs(30),
    }
}

pub async fn reconcile(obj: Arc<SopsSecret>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let (Some(namespace), Some(name)) = (obj.namespace(), obj.metadata.name.clone()) else {
        return Err(ReconcileError::NoName);
    };
    if obj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let result = match sync(&obj, &ctx, &namespace, &name).await {
        Ok((changed, names)) => {
            if changed {
                let note = format!("decrypted into Secret(s) {}", names.join(", "));
                publish(&ctx, &obj, EventType::Normal, EVENT_DECRYPTED, &note).await;
                tracing::info!(namespace = %namespace, name = %name, secrets = ?names, "SopsSecret decrypted");
            }
            write_status(&ctx, &obj, &namespace, &name, Ok(names)).await?;
            Ok(Action::await_change())
        }
        Err(f) => {
            ctx.metrics.error(f.reason);
            tracing::warn!(namespace = %namespace, name = %name, reason = f.reason, message = %f.message, "SopsSecret not synced");
            publish(&ctx, &obj, EventType::Warning, f.reason, &f.message).await;
            write_status(&ctx, &obj, &namespace, &name, Err((f.reason, &f.message))).await?;
            Ok(Action::requeue(f.retry))
        }
    };
    ctx.metrics.reconciled(started.elapsed());
    result
}

pub fn error_policy(obj: Arc<SopsSecret>, err: &ReconcileError, ctx: Arc<Context>) -> Action {
    ctx.metrics.error("ApiError");
    tracing::warn!(name = %obj.name_any(), error = %err, "SopsSecret reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

/// Decrypts and applies; `Ok((changed, secret names))`.
async fn sync(
    obj: &SopsSecret,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<(bool, Vec<String>), Failure> {
    let uid = obj.metadata.uid.clone().unwrap_or_default();
    let spec = obj.spec.clone();
    let keys = ctx.keys.clone();
    let own_name = name.to_owned();
    // Age and KMS unwrapping is blocking work (KMS is a blocking HTTP call through its own runtime).
    let desired = tokio::task::spawn_blocking(move || {
        sops_render::decrypt(&spec, &own_name, keys.age(), || keys.kms())
    })
    .await
    .map_err(|e| api_failure("Internal", format!("decryption task failed: {e}")))??;

    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    // Check every target first, so that one foreign Secret leaves all of them untouched.
    let mut existing = Vec::new();
    for d in &desired {
        let meta = secrets
            .get_metadata_opt(&d.name)
            .await
            .map_err(|e| api_failure("ApiError", format!("reading Secret {:?}: {e}", d.name)))?;
        if let Some(m) = &meta {
            if !controlled_by(&m.metadata, &uid) {
                return Err(api_failure(
                    "SecretNotOwned",
                    format!(
                        "Secret {:?} already exists and is not managed by this SopsSecret",
                        d.name
                    ),
                ));
            }
        }
        existing.push(meta);
    }
    let mut changed = false;
    let mut names = Vec::new();
    for (d, before) in desired.into_iter().zip(existing) {
        let secret_name = d.name.clone();
        changed |= apply(
            &secrets,
            obj,
            namespace,
            name,
            d,
            before.as_ref(),
            &ctx.field_manager,
        )
        .await?;
        names.push(secret_name);
    }
    changed |= prune(&secrets, obj, &uid, &names).await;
    Ok((changed, names))
}

async fn apply(
    secrets: &Api<Secret>,
    obj: &SopsSecret,
    namespace: &str,
    owner_name: &str,
    d: DesiredSecret,
    before: Option<&PartialObjectMeta<Secret>>,
    field_manager: &str,
) -> Result<bool, Failure> {
    let name = d.name.clone();
    let keys: Vec<String> = d.data.keys().cloned().collect();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(d.name),
            namespace: Some(namespace.to_owned()),
            labels: (!d.labels.is_empty()).then_some(d.labels),
            annotations: (!d.annotations.is_empty()).then_some(d.annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: sops_crd::API_VERSION.to_owned(),
                kind: sops_crd::KIND.to_owned(),
                name: owner_name.to_owned(),
                uid: obj.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        type_: d.type_,
        data: Some(d.data),
        ..Secret::default()
    };
    let applied = secrets
        .patch(
            &name,
            &PatchParams::apply(field_manager).force(),
            &Patch::Apply(&secret),
        )
        .await
        .map_err(|e| api_failure("UpdateFailed", api_message(&name, &e)))?;
    let mut after = applied.metadata.resource_version.clone();
    // Apply never removes fields other managers own: keys added by hand are dropped here, so
    // the Secret holds exactly the file's keys.
    let extra: BTreeMap<&String, serde_json::Value> = applied
        .data
        .iter()
        .flatten()
        .map(|(k, _)| k)
        .filter(|k| !keys.contains(k))
        .map(|k| (k, serde_json::Value::Null))
        .collect();
    if !extra.is_empty() {
        let patched = secrets
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "data": extra })),
            )
            .await
            .map_err(|e| api_failure("UpdateFailed", api_message(&name, &e)))?;
        after = patched.metadata.resource_version;
    }
    Ok(before.and_then(|b| b.metadata.resource_version.clone()) != after)
}

/// Deletes Secrets the last sync made that the file no longer describes (only while they are
/// still controlled by this SopsSecret).
async fn prune(secrets: &Api<Secret>, obj: &SopsSecret, uid: &str, current: &[String]) -> bool {
    let previous = obj
        .status
        .as_ref()
        .map(|s| s.secrets.clone())
        .unwrap_or_default();
    let mut changed = false;
    for old in previous.iter().filter(|n| !current.contains(n)) {
        let Ok(Some(meta)) = secrets.get_metadata_opt(old).await else {
            continue;
        };
        if !controlled_by(&meta.metadata, uid) {
            continue;
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: meta.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        // Pruning is best effort: without `delete` on Secrets (the least-privilege RBAC) the
        // Secret stays, still owned, and goes with the SopsSecret.
        match secrets.delete(old, &params).await {
            Ok(_) => changed = true,
            Err(e) => {
                tracing::warn!(secret = %old, error = %api_message(old, &e), "could not prune a Secret the file no longer describes")
            }
        }
    }
    changed
}

fn api_message(name: &str, e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.message.contains("immutable") => format!(
            "Secret {name:?} is immutable and its data differs: delete it to let it be recreated"
        ),
        // The API server's own message names fields, not values.
        kube::Error::Api(s) => format!("updating Secret {name:?}: {} ({})", s.message, s.reason),
        other => format!("updating Secret {name:?}: {other}"),
    }
}

async fn publish(ctx: &Context, obj: &SopsSecret, type_: EventType, reason: &str, note: &str) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note.chars().take(1000).collect()),
        action: "Decrypt".to_owned(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(name = %obj.name_any(), error = %e, "could not publish an Event");
    }
}

async fn write_status(
    ctx: &Context,
    obj: &SopsSecret,
    namespace: &str,
    name: &str,
    outcome: Result<Vec<String>, (&str, &str)>,
) -> Result<(), ReconcileError> {
    let previous_status = obj.status.clone().unwrap_or_default();
    let (status_str, reason, message, secrets) = match &outcome {
        Ok(names) => ("True", "Decrypted", "", names.clone()),
        // The Secrets of the last good sync are left in place (as Sealed Secrets does).
        Err((reason, message)) => ("False", *reason, *message, previous_status.secrets.clone()),
    };
    let previous = previous_status
        .conditions
        .iter()
        .find(|c| c.type_ == "Synced");
    let unchanged = previous.is_some_and(|p| {
        p.status == status_str
            && p.reason.as_deref() == Some(reason)
            && p.message.as_deref().unwrap_or_default() == message
    }) && previous_status.observed_generation == obj.metadata.generation
        && previous_status.secrets == secrets;
    if unchanged {
        return Ok(());
    }
    let transition = match previous {
        Some(p) if p.status == status_str => p.last_transition_time.clone(),
        _ => None,
    }
    .unwrap_or_else(|| Timestamp::now().to_string());
    let status = SopsSecretStatus {
        conditions: vec![Condition {
            type_: "Synced".to_owned(),
            status: status_str.to_owned(),
            reason: Some(reason.to_owned()),
            message: (!message.is_empty()).then(|| message.to_owned()),
            last_transition_time: Some(transition),
        }],
        observed_generation: obj.metadata.generation,
        secrets,
    };
    let api: Api<SopsSecret> = Api::namespaced(ctx.client.clone(), namespace);
    // A merge patch would keep list entries that are gone; the whole status is replaced.
    let mut body = serde_json::to_value(&status).unwrap_or_default();
    if let Some(map) = body.as_object_mut() {
        for key in ["conditions", "secrets"] {
            map.entry(key).or_insert(json!([]));
        }
    }
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": body })),
    )
    .await
    .map_err(|e| ReconcileError::Status(name.to_owned(), e))?;
    Ok(())
}
