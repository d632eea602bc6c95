//! The SealedSecret reconciler: unseal, then server-side apply the Secret,
//! then report through the status condition `Synced` and Events.
//!
//! Every failure is reported on the object (condition + Event) and retried
//! later; none stops the controller or affects other objects. Messages name
//! keys and reasons, never values.

use std::sync::Arc;
use std::time::{Duration, Instant};

use enseal_sealing::sealed_secret::{
    MANAGED_ANNOTATION, PATCH_ANNOTATION, SEALED_SECRET_API_VERSION, SEALED_SECRET_KIND,
    SKIP_SET_OWNER_REFERENCES_ANNOTATION,
};
use enseal_sealing::{ResourceError, SealedSecretObject as SealedSecret};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::ByteString;
use kube::api::{ObjectMeta, PartialObjectMeta};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use crate::keystore::KeyStore;
use crate::metrics::{ConditionRow, UnsealError};
use crate::status::{
    self, api_failure, Cluster, Failure, PreviousCondition, ReconcileError, Synced,
};
use enseal_sealing::sealed_secret::{SealedSecretCondition, SealedSecretStatus};

pub const EVENT_UNSEALED: &str = "Unsealed";
pub const EVENT_UNSEAL_FAILED: &str = "ErrUnsealFailed";
pub const EVENT_UPDATE_FAILED: &str = "ErrUpdateFailed";
const ACTION: &str = "Unseal";

pub struct Context {
    pub cluster: Cluster,
    pub keys: Arc<KeyStore>,
    /// Last successful sync per (namespace, name); see [`LastSync`].
    pub synced: std::sync::Mutex<std::collections::HashMap<(String, String), LastSync>>,
    /// `--update-status`: write the `Synced` condition (off: status is left alone).
    pub update_status: bool,
}

/// Sealed Secrets' `unseal_errors_total` reason for a failure (its pkg/controller/controller.go
/// counts `unseal` for decryption and templates, `unmanaged` for someone else's Secret and
/// `update` for every failed read or write of the Secret).
fn sealed_secrets_reason(f: &Failure) -> UnsealError {
    match f.reason {
        "NoKeys" | "DecryptFailed" | "MalformedValue" | "TemplateFailed" => UnsealError::Unseal,
        "SecretNotOwned" => UnsealError::Unmanaged,
        _ => UnsealError::Update,
    }
}

/// `sealed_secrets_controller_condition_info`'s series for `objects`: one per condition in
/// each one's status, as Sealed Secrets' ObserveCondition sets them.
pub fn condition_rows(objects: &[Arc<SealedSecret>]) -> Vec<ConditionRow> {
    let mut rows: Vec<ConditionRow> = objects
        .iter()
        .flat_map(|ss| {
            let instance = ss
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app.kubernetes.io/instance"))
                .cloned()
                .unwrap_or_default();
            ss.status
                .iter()
                .flat_map(|st| &st.conditions)
                .map(move |c| ConditionRow {
                    namespace: ss.metadata.namespace.clone().unwrap_or_default(),
                    name: ss.metadata.name.clone().unwrap_or_default(),
                    condition: c.type_.clone(),
                    instance: instance.clone(),
                    status: c.status.clone(),
                })
        })
        .collect();
    rows.sort_by(|a, b| {
        (&a.namespace, &a.name, &a.condition).cmp(&(&b.namespace, &b.name, &b.condition))
    });
    rows
}

/// The status reason (and metrics label) of an unseal failure.
fn unseal_reason(e: &ResourceError) -> &'static str {
    match e {
        ResourceError::Template { .. } => "TemplateFailed",
        e if e.is_malformed() => "MalformedValue",
        _ => "DecryptFailed",
    }
}

fn unseal_failed(e: &ResourceError) -> Failure {
    Failure {
        event_reason: EVENT_UNSEAL_FAILED,
        reason: unseal_reason(e),
        message: format!("Failed to unseal: {e}"),
        // Only a new key can change the outcome, and new keys trigger a pass over every
        // object anyway.
        retry: Duration::from_secs(300),
    }
}

const NO_KEYS: &str = "NoKeys";

fn no_keys() -> Failure {
    Failure {
        event_reason: EVENT_UNSEAL_FAILED,
        reason: NO_KEYS,
        message: "Failed to unseal: no sealing keys are loaded yet".to_owned(),
        retry: Duration::from_secs(2),
    }
}

fn update_failed(reason: &'static str, message: String) -> Failure {
    api_failure(EVENT_UPDATE_FAILED, reason, message)
}

pub async fn reconcile(ss: Arc<SealedSecret>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let (Some(namespace), Some(name)) = (ss.namespace(), ss.metadata.name.clone()) else {
        return Err(ReconcileError::NoName {
            kind: SEALED_SECRET_KIND,
        });
    };
    if ss.metadata.deletion_timestamp.is_some() {
        // The garbage collector removes the Secret through its ownerReference.
        return Ok(Action::await_change());
    }
    ctx.cluster.metrics.unseal_requested();
    let outcome = sync(&ss, &ctx, &namespace, &name).await.map(|changed| {
        let event = changed.then(|| (EVENT_UNSEALED, "SealedSecret unsealed successfully".into()));
        ((), event)
    });
    let action = status::report(&ctx.cluster, &*ss, ACTION, &outcome).await;
    let synced = match &outcome {
        Ok(_) => Synced {
            ok: true,
            reason: "Unsealed",
            message: "",
        },
        // The last sync is kept: it only ever matches the object and Secret exactly as that
        // sync left them, and a failure either came before the comparison (reading the Secret
        // while the API server was down) or after a mismatch. Forgetting it made every object
        // touched during an API outage write its unchanged Secret again (issue 16).
        Err(f) => {
            ctx.cluster
                .metrics
                .unseal_failed(sealed_secrets_reason(f), &namespace);
            Synced {
                ok: false,
                reason: f.reason,
                message: &f.message,
            }
        }
    };
    // No key loaded yet (the controller is starting, or the leader is making the first key)
    // says nothing about the object: its status stays as it was, so Argo CD keeps showing a
    // new object Progressing instead of Degraded for the seconds this lasts.
    let waiting_for_keys = matches!(&outcome, Err(f) if f.reason == NO_KEYS);
    let result = if ctx.update_status && !waiting_for_keys {
        write_status(&ctx, &ss, &namespace, &name, synced).await
    } else {
        Ok(())
    };
    if result.is_err() {
        ctx.cluster
            .metrics
            .unseal_failed(UnsealError::Status, &namespace);
    }
    let result = result.map(|()| action);
    ctx.cluster.metrics.reconciled(started.elapsed());
    result
}

impl AsRef<Cluster> for Context {
    fn as_ref(&self) -> &Cluster {
        &self.cluster
    }
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
    managers: &Managers<'_>,
) -> Result<Ownership, Failure> {
    let Some(existing) = existing else {
        return Ok(Ownership::Own);
    };
    let uid = ss.metadata.uid.as_deref().unwrap_or_default();
    let not_ours = || {
        update_failed(
            "SecretNotOwned",
            format!(
                "Resource {:?} already exists and is not managed by SealedSecret",
                existing.metadata.name.as_deref().unwrap_or_default()
            ),
        )
    };
    // Controlled by another object (a SopsSecret, another SealedSecret, anything): never ours,
    // whatever annotations it carries.
    if status::controlled_by_other(&existing.metadata, uid) {
        return Err(not_ours());
    }
    let controlled = status::controlled_by(&existing.metadata, uid);
    let no_owner = existing
        .metadata
        .owner_references
        .as_ref()
        .is_none_or(|r| r.is_empty());
    let ann = |k: &str| {
        existing
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(k))
            .is_some_and(|v| v == "true")
    };
    // With skip-set-owner-references there is no ownerReference to recognise
    // our own Secret by; the field manager entry we left on it stands in. That entry is
    // this kind's own manager (SopsSecrets apply under another), or the manager both kinds
    // shared before on a Secret with no ownerReference (a SopsSecret's always has one).
    let applied_by_us_without_owner = ss
        .spec
        .template
        .annotation_is_true(SKIP_SET_OWNER_REFERENCES_ANNOTATION)
        && existing.metadata.managed_fields.iter().flatten().any(|m| {
            let m = m.manager.as_deref();
            m == Some(managers.own) || (no_owner && m == Some(managers.legacy))
        });
    if ann(PATCH_ANNOTATION) {
        return Ok(Ownership::Patch {
            set_owner: ann(MANAGED_ANNOTATION),
        });
    }
    if controlled || applied_by_us_without_owner || ann(MANAGED_ANNOTATION) {
        return Ok(Ownership::Own);
    }
    Err(not_ours())
}

/// The field managers [`decide`] recognises as this kind's.
struct Managers<'a> {
    own: &'a str,
    legacy: &'a str,
}

/// Unseals and applies. `Ok(true)` when the Secret was created or changed.
async fn sync(
    ss: &SealedSecret,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<bool, Failure> {
    let secrets: Api<Secret> = Api::namespaced(ctx.cluster.client.clone(), namespace);
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
    if keys.is_empty() {
        return Err(no_keys());
    }
    let owned_ss = ss.clone();
    // RSA private-key operations are CPU work; keep them off the reactor.
    let desired = tokio::task::spawn_blocking(move || {
        // Newest first, the key most objects are sealed with. A clone shares the parsed key
        // (no copy of key material, no re-parse into AWS-LC).
        let private: Vec<_> = keys.iter().map(|k| k.private.clone()).collect();
        owned_ss.unseal(&private)
    })
    .await
    .map_err(|e| update_failed("Internal", format!("unseal task failed: {e}")))?
    .map_err(|e| unseal_failed(&e))?;
    let managers = Managers {
        own: &ctx.cluster.field_manager,
        legacy: &ctx.cluster.legacy_field_manager,
    };
    let ownership = decide(existing.as_ref(), ss, &managers)?;
    let before = existing
        .as_ref()
        .and_then(|m| m.metadata.resource_version.clone());

    let set_owner = match ownership {
        Ownership::Own => !ss
            .spec
            .template
            .annotation_is_true(SKIP_SET_OWNER_REFERENCES_ANNOTATION),
        Ownership::Patch { set_owner } => set_owner,
    };
    let secret = build_secret(ss, desired, namespace, name, set_owner, &ownership);
    // An owned Secret holds exactly the sealed keys; a patched one keeps its own.
    // Conditional on the Secret `decide` looked at: a Secret created or changed since (by
    // the other kind's reconciler, by anyone) fails the write instead of being taken over.
    let after = status::apply_secret(
        &secrets,
        &secret,
        before.as_deref(),
        &ctx.cluster.field_manager,
        ownership == Ownership::Own,
        EVENT_UPDATE_FAILED,
    )
    .await?;
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
}

fn build_secret(
    ss: &SealedSecret,
    desired: enseal_sealing::Secret,
    namespace: &str,
    name: &str,
    set_owner: bool,
    ownership: &Ownership,
) -> Secret {
    let owner = set_owner.then(|| {
        vec![OwnerReference {
            api_version: SEALED_SECRET_API_VERSION.to_owned(),
            kind: SEALED_SECRET_KIND.to_owned(),
            name: name.to_owned(),
            uid: ss.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]
    });
    let patching = matches!(ownership, Ownership::Patch { .. });
    // stringData (only a legacy blob has it) wins over data, as the API server merges them.
    let data = desired
        .values()
        .map(|(k, v)| (k.clone(), ByteString(v.to_vec())))
        .collect();
    let meta = desired.metadata;
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: (!meta.labels.is_empty()).then_some(meta.labels),
            annotations: (!meta.annotations.is_empty()).then_some(meta.annotations),
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
        data: Some(data),
        ..Secret::default()
    }
}

async fn write_status(
    ctx: &Context,
    ss: &SealedSecret,
    namespace: &str,
    name: &str,
    synced: Synced<'_>,
) -> Result<(), ReconcileError> {
    let generation = ss.metadata.generation;
    let status = ss.status.clone().unwrap_or_default();
    let previous = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Synced")
        .map(|c| PreviousCondition {
            status: &c.status,
            reason: c.reason.as_deref(),
            message: c.message.as_deref(),
            last_transition_time: c.last_transition_time.as_deref(),
        });
    if synced.is_unchanged(previous.as_ref()) && status.observed_generation == generation {
        return Ok(());
    }
    let now = status::now();
    let status = SealedSecretStatus {
        conditions: vec![SealedSecretCondition {
            type_: "Synced".to_owned(),
            status: synced.status().to_owned(),
            reason: Some(synced.reason.to_owned()),
            message: synced.message(),
            last_transition_time: Some(synced.transition_time(previous.as_ref(), &now)),
            last_update_time: Some(now),
        }],
        observed_generation: generation,
    };
    let api: Api<SealedSecret> = Api::namespaced(ctx.cluster.client.clone(), namespace);
    status::patch_status(&api, name, &status, &[]).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    const FM: Managers<'static> = Managers {
        own: "fm-sealedsecret",
        legacy: "fm",
    };

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
        assert_eq!(decide(None, &ss, &FM).ok(), Some(Ownership::Own));
        let owned = secret_meta(&[], Some("u1"));
        assert_eq!(decide(Some(&owned), &ss, &FM).ok(), Some(Ownership::Own));
    }

    #[test]
    fn a_foreign_secret_is_refused_unless_annotated() {
        let ss = ss_with_uid("u1");
        let foreign = secret_meta(&[], Some("other"));
        let f = decide(Some(&foreign), &ss, &FM).unwrap_err();
        assert_eq!(f.event_reason, EVENT_UPDATE_FAILED);
        assert!(f.message.contains("not managed by SealedSecret"));
        let managed = secret_meta(&[(MANAGED_ANNOTATION, "true")], None);
        assert_eq!(decide(Some(&managed), &ss, &FM).ok(), Some(Ownership::Own));
        let patch = secret_meta(&[(PATCH_ANNOTATION, "true")], None);
        assert_eq!(
            decide(Some(&patch), &ss, &FM).ok(),
            Some(Ownership::Patch { set_owner: false })
        );
    }

    #[test]
    fn without_owner_references_our_field_manager_marks_the_secret_ours() {
        let mut ss = ss_with_uid("u1");
        ss.spec.template.metadata.annotations = [(
            SKIP_SET_OWNER_REFERENCES_ANNOTATION.to_owned(),
            "true".to_owned(),
        )]
        .into();
        let mut m = secret_meta(&[], None);
        assert!(decide(Some(&m), &ss, &FM).is_err());
        m.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some("fm-sealedsecret".into()),
            ..Default::default()
        }]);
        assert_eq!(decide(Some(&m), &ss, &FM).ok(), Some(Ownership::Own));
        // The manager both kinds shared before: ours only while no one owns the Secret.
        m.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some("fm".into()),
            ..Default::default()
        }]);
        assert_eq!(decide(Some(&m), &ss, &FM).ok(), Some(Ownership::Own));
        m.metadata.owner_references = Some(vec![OwnerReference {
            kind: "SopsSecret".into(),
            uid: "sops-uid".into(),
            controller: Some(true),
            ..OwnerReference::default()
        }]);
        assert!(decide(Some(&m), &ss, &FM).is_err());
    }

    #[test]
    fn a_secret_another_object_controls_is_refused_whatever_it_says() {
        let ss = ss_with_uid("u1");
        let mut m = secret_meta(&[(MANAGED_ANNOTATION, "true")], Some("sops-uid"));
        m.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some("fm-sealedsecret".into()),
            ..Default::default()
        }]);
        let f = decide(Some(&m), &ss, &FM).unwrap_err();
        assert_eq!(f.reason, "SecretNotOwned");
        let patch = secret_meta(&[(PATCH_ANNOTATION, "true")], Some("sops-uid"));
        assert!(decide(Some(&patch), &ss, &FM).is_err());
    }

    #[test]
    fn failures_count_under_sealed_secrets_reasons() {
        let reason = |r: &'static str| {
            sealed_secrets_reason(&Failure {
                event_reason: EVENT_UNSEAL_FAILED,
                reason: r,
                message: String::new(),
                retry: Duration::ZERO,
            })
        };
        assert_eq!(reason("NoKeys"), UnsealError::Unseal);
        assert_eq!(reason("DecryptFailed"), UnsealError::Unseal);
        assert_eq!(reason("TemplateFailed"), UnsealError::Unseal);
        assert_eq!(reason("SecretNotOwned"), UnsealError::Unmanaged);
        assert_eq!(reason("Conflict"), UnsealError::Update);
        assert_eq!(reason("UpdateFailed"), UnsealError::Update);
    }

    #[test]
    fn no_keys_is_its_own_failure_and_is_retried_soon() {
        let f = no_keys();
        assert_eq!(f.reason, "NoKeys");
        assert_eq!(f.event_reason, EVENT_UNSEAL_FAILED);
        assert!(f.retry < Duration::from_secs(5));
    }

    #[test]
    fn unseal_failures_are_sorted_into_malformed_wrong_key_and_template() {
        use enseal_sealing::{Scope, SealError};
        let open = |e: SealError| ResourceError::Open {
            scope: Scope::Strict,
            errors: vec![("k".into(), e)],
        };
        assert_eq!(unseal_reason(&open(SealError::NoKeyOpens)), "DecryptFailed");
        assert_eq!(unseal_reason(&open(SealError::Base64)), "MalformedValue");
        assert_eq!(
            unseal_reason(&ResourceError::LegacyWithEncryptedData),
            "MalformedValue"
        );
    }
}
