//! The SopsSecret reconciler: decrypt `spec.encrypted` with the controller's keys, server-side
//! apply the Secret(s) it describes (owned by the SopsSecret), prune Secrets it no longer
//! describes, and report through the `Synced` condition and Events.
//!
//! Every failure is reported on the object and retried later; none stops the controller.
//! Messages name keys, documents and master keys, never values.

use std::sync::Arc;
use std::time::{Duration, Instant};

use enseal_sops_secret::{Condition, SopsSecret, SopsSecretStatus, API_VERSION, KIND};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ObjectMeta, PartialObjectMeta, Preconditions};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::keys::SopsKeys;
use super::render::{self, DesiredSecret, SopsError};
use crate::status::{
    self, api_message, controlled_by, Cluster, Failure, PreviousCondition, ReconcileError, Synced,
};

pub const EVENT_DECRYPTED: &str = "Decrypted";
const ACTION: &str = "Decrypt";

pub struct Context {
    pub cluster: Cluster,
    pub keys: Arc<SopsKeys>,
}

fn decrypt_failed(e: SopsError) -> Failure {
    let reason = e.reason();
    Failure {
        // The Event says what went wrong, like the condition.
        event_reason: reason,
        reason,
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

fn api_failure(reason: &'static str, message: String) -> Failure {
    status::api_failure(reason, reason, message)
}

pub async fn reconcile(obj: Arc<SopsSecret>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let (Some(namespace), Some(name)) = (obj.namespace(), obj.metadata.name.clone()) else {
        return Err(ReconcileError::NoName { kind: KIND });
    };
    if obj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let outcome = sync(&obj, &ctx, &namespace, &name)
        .await
        .map(|(changed, names)| {
            let note = format!("decrypted into Secret(s) {}", names.join(", "));
            (names, changed.then_some((EVENT_DECRYPTED, note)))
        });
    let action = status::report(&ctx.cluster, &*obj, ACTION, &outcome).await;
    let written = match &outcome {
        Ok((names, _)) => Ok(names.clone()),
        Err(f) => Err((f.reason, f.message.as_str())),
    };
    let result = write_status(&ctx, &obj, &namespace, &name, written)
        .await
        .map(|()| action);
    ctx.cluster.metrics.reconciled(started.elapsed());
    result
}

impl AsRef<Cluster> for Context {
    fn as_ref(&self) -> &Cluster {
        &self.cluster
    }
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
        render::decrypt(&spec, &own_name, keys.age(), || keys.kms())
    })
    .await
    .map_err(|e| api_failure("Internal", format!("decryption task failed: {e}")))?
    .map_err(decrypt_failed)?;

    let secrets: Api<Secret> = Api::namespaced(ctx.cluster.client.clone(), namespace);
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
            &ctx.cluster.field_manager,
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
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(d.name),
            namespace: Some(namespace.to_owned()),
            labels: (!d.labels.is_empty()).then_some(d.labels),
            annotations: (!d.annotations.is_empty()).then_some(d.annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: API_VERSION.to_owned(),
                kind: KIND.to_owned(),
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
    // The Secret holds exactly the file's keys.
    let after = status::apply_secret(secrets, &secret, field_manager, true, "UpdateFailed").await?;
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

async fn write_status(
    ctx: &Context,
    obj: &SopsSecret,
    namespace: &str,
    name: &str,
    outcome: Result<Vec<String>, (&str, &str)>,
) -> Result<(), ReconcileError> {
    let previous_status = obj.status.clone().unwrap_or_default();
    let (synced, secrets) = match &outcome {
        Ok(names) => (
            Synced {
                ok: true,
                reason: "Decrypted",
                message: "",
            },
            names.clone(),
        ),
        // The Secrets of the last good sync are left in place (as Sealed Secrets does).
        Err((reason, message)) => (
            Synced {
                ok: false,
                reason,
                message,
            },
            previous_status.secrets.clone(),
        ),
    };
    let previous = previous_status
        .conditions
        .iter()
        .find(|c| c.type_ == "Synced")
        .map(|c| PreviousCondition {
            status: &c.status,
            reason: c.reason.as_deref(),
            message: c.message.as_deref(),
            last_transition_time: c.last_transition_time.as_deref(),
        });
    if synced.is_unchanged(previous.as_ref())
        && previous_status.observed_generation == obj.metadata.generation
        && previous_status.secrets == secrets
    {
        return Ok(());
    }
    let status = SopsSecretStatus {
        conditions: vec![Condition {
            type_: "Synced".to_owned(),
            status: synced.status().to_owned(),
            reason: Some(synced.reason.to_owned()),
            message: synced.message(),
            last_transition_time: Some(synced.transition_time(previous.as_ref(), &status::now())),
        }],
        observed_generation: obj.metadata.generation,
        secrets,
    };
    let api: Api<SopsSecret> = Api::namespaced(ctx.cluster.client.clone(), namespace);
    status::patch_status(&api, name, &status, &["conditions", "secrets"]).await
}
