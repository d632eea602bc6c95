//! The SopsSecret reconciler: decrypt `spec.encrypted` with the keys the SopsSecret may use
//! (its namespace's key Secret, or the controller's keys for a file bound to the namespace, see
//! [`super::tenancy`]), server-side apply the Secret(s) it describes (owned by the SopsSecret),
//! prune Secrets it no longer describes, and report through the `Synced` condition and Events.
//!
//! Every failure is reported on the object and retried later; none stops the controller.
//! Messages name keys, documents and master keys, never values.

use std::sync::Arc;
use std::time::{Duration, Instant};

use enseal_sops_secret::{Condition, SopsSecret, SopsSecretStatus, API_VERSION, KIND};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ObjectMeta, PartialObjectMeta, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::keys::{NamespaceKeys, SopsKeys};
use super::render::{self, DesiredSecret, Keys, SopsError};
use super::tenancy::TrustedNamespaces;
use crate::status::{
    self, api_message, controlled_by, Cluster, Failure, PreviousCondition, ReconcileError, Synced,
};

pub const EVENT_DECRYPTED: &str = "Decrypted";
const ACTION: &str = "Decrypt";

pub struct Context {
    pub cluster: Cluster,
    /// The controller's own keys: used only for SopsSecrets without a key Secret.
    pub keys: Arc<SopsKeys>,
    /// Where the controller's keys decrypt files that do not name the namespace.
    pub trusted: TrustedNamespaces,
    /// Whether namespace key Secrets may carry key service credentials
    /// (--sops-namespace-key-services).
    pub namespace_key_services: bool,
    pub decrypts: Decrypts,
}

/// The largest `spec.encrypted` decrypted, in bytes: 1 MiB, the size limit of the Secret it
/// becomes (values grow by a third in base64 and by the sops envelope, so a file that
/// could fit in a Secret is well under it). Anything larger is refused before it is parsed:
/// the parse and the decryption run before any key or MAC check, so a tenant's object must
/// not be able to make them arbitrarily expensive.
pub const MAX_ENCRYPTED_BYTES: usize = 1024 * 1024;

/// Stack of the threads that parse and decrypt a file. The stores' parsers keep their own
/// stacks on the heap, but walking, rendering and dropping a tree recurse once per nesting
/// level; 64 MiB (reserved address space, only touched pages are resident) is 32 times the
/// 2 MiB of tokio's blocking threads, so nesting the parsers accept cannot overflow it.
const DECRYPT_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Files parsed and decrypted at once. What a file costs is bounded by the size limit and by
/// the parsers' budgets, but per file; bounding how many run together bounds the sum under
/// the pod's memory limit. Age unwrapping is milliseconds, so two keep up with many objects;
/// a slow KMS call holds a slot for its timeout.
const CONCURRENT_DECRYPTS: usize = 2;

/// Runs parse+decrypt jobs on dedicated threads with a known stack, a few at a time, and turns
/// a panic into an error: one bad object must never take the process (and, reconciled again at
/// start, every replica) down.
#[derive(Clone)]
pub struct Decrypts {
    slots: Arc<tokio::sync::Semaphore>,
}

/// A decrypt job panicked (its message is dropped: it could quote the input).
#[derive(Debug)]
pub struct Crashed;

impl Default for Decrypts {
    fn default() -> Self {
        Decrypts {
            slots: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_DECRYPTS)),
        }
    }
}

impl Decrypts {
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Crashed> {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Crashed)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Age and KMS unwrapping is blocking work (KMS is a blocking HTTP call through its own
        // runtime), so it runs off the reactor, on a thread of its own with a stack we chose.
        let spawned = std::thread::Builder::new()
            .name("sops-decrypt".into())
            .stack_size(DECRYPT_STACK_BYTES)
            .spawn(move || {
                let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                drop(permit);
                let _ = tx.send(out.map_err(|_| Crashed));
            });
        if spawned.is_err() {
            return Err(Crashed);
        }
        rx.await.map_err(|_| Crashed)?
    }
}

pub(super) fn too_large(size: usize) -> Failure {
    Failure {
        event_reason: "TooLarge",
        reason: "TooLarge",
        message: format!(
            "spec.encrypted is {size} bytes, more than the {MAX_ENCRYPTED_BYTES} bytes the controller decrypts: split the file into several SopsSecrets"
        ),
        // Only an edit of the object can change this, and an edit triggers a reconcile.
        retry: Duration::from_secs(3600),
    }
}

pub(super) fn crashed() -> Failure {
    Failure {
        event_reason: "InvalidFile",
        reason: "InvalidFile",
        message: "spec.encrypted could not be read: the decryption failed unexpectedly on this file (the controller keeps running; please report it)".into(),
        retry: Duration::from_secs(3600),
    }
}

pub(super) fn decrypt_failed(e: SopsError) -> Failure {
    let reason = e.reason();
    Failure {
        // The Event says what went wrong, like the condition.
        event_reason: reason,
        reason,
        message: e.to_string(),
        // A new key in the controller's key Secret triggers a pass over every SopsSecret
        // anyway; the retry covers KMS outages and credentials that appear later, and a
        // namespace's key Secret, which is read (GET) at each reconcile rather than watched: a
        // key Secret created or fixed later is used within this minute.
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
    let size = obj.spec.encrypted.len();
    if size > MAX_ENCRYPTED_BYTES {
        return Err(too_large(size));
    }
    let key_secret = match obj.spec.key_secret() {
        Some(secret) => Some(read_key_secret(ctx, namespace, secret).await?),
        None => None,
    };
    // Read once per content of the Secret (parsed off the async workers), with the key
    // service clients made from it.
    let key_secret = match key_secret {
        Some(Some(secret)) => Some(Some(
            ctx.keys
                .namespace_keys(namespace, secret)
                .await
                .ok_or_else(crashed)?,
        )),
        Some(None) => Some(None),
        None => None,
    };
    let keys = keys_for(
        &obj.spec,
        namespace,
        &ctx.keys,
        &ctx.trusted,
        key_secret.as_ref(),
        ctx.namespace_key_services,
    )
    .map_err(decrypt_failed)?;
    let spec = obj.spec.clone();
    let own_name = name.to_owned();
    let own_namespace = namespace.to_owned();
    let desired = ctx
        .decrypts
        .run(move || render::decrypt(&spec, &own_name, &own_namespace, keys))
        .await
        .map_err(|Crashed| crashed())?
        .map_err(decrypt_failed)?;

    let previous = obj
        .status
        .as_ref()
        .map(|s| s.secrets.clone())
        .unwrap_or_default();
    let owner = Owner {
        reference: OwnerReference {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            name: name.to_owned(),
            uid,
            controller: Some(true),
            block_owner_deletion: Some(true),
        },
        previous: &previous,
        // Only a Secret this SopsSecret controls is written; one with no owner (made by
        // hand, or by a SealedSecret with skip-set-owner-references) or another owner is
        // someone else's.
        may_take: &|_| false,
    };
    write_secrets(ctx, namespace, &owner, desired).await
}

/// Who the Secrets of one object belong to.
pub(super) struct Owner<'a> {
    /// The controller reference every Secret gets.
    pub reference: OwnerReference,
    /// The Secrets the last successful sync made (from the object's status), to prune.
    pub previous: &'a [String],
    /// Whether an existing Secret the object does not control may be taken over.
    pub may_take: &'a (dyn Fn(&ObjectMeta) -> bool + Sync),
}

/// Server-side applies the `desired` Secrets in `namespace`, owned by `owner`, and prunes those
/// of the last sync that are no longer desired; `Ok((changed, secret names))`. Every target is
/// checked first, so that one foreign Secret leaves all of them untouched.
pub(super) async fn write_secrets(
    ctx: &Context,
    namespace: &str,
    owner: &Owner<'_>,
    desired: Vec<DesiredSecret>,
) -> Result<(bool, Vec<String>), Failure> {
    let uid = owner.reference.uid.as_str();
    let secrets: Api<Secret> = Api::namespaced(ctx.cluster.client.clone(), namespace);
    let mut existing = Vec::new();
    for d in &desired {
        let meta = secrets
            .get_metadata_opt(&d.name)
            .await
            .map_err(|e| api_failure("ApiError", format!("reading Secret {:?}: {e}", d.name)))?;
        if let Some(m) = &meta {
            if !controlled_by(&m.metadata, uid) && !(owner.may_take)(&m.metadata) {
                return Err(api_failure(
                    "SecretNotOwned",
                    format!(
                        "Secret {:?} already exists and is not managed by this {}",
                        d.name, owner.reference.kind
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
        let mut checked = before
            .as_ref()
            .and_then(|b| b.metadata.resource_version.clone());
        if let Some(b) = before.as_ref().filter(|b| !controlled_by(&b.metadata, uid)) {
            // Taken over: its owner references become this object's alone (another
            // controller reference would make the API server refuse ours), in one write
            // conditional on the Secret checked.
            checked = take_over(&secrets, &secret_name, b, &owner.reference).await?;
            changed = true;
        }
        changed |= apply(
            &secrets,
            namespace,
            &owner.reference,
            d,
            checked,
            &ctx.cluster.field_manager,
        )
        .await?;
        names.push(secret_name);
    }
    changed |= prune(&secrets, uid, owner.previous, &names).await;
    Ok((changed, names))
}

/// Replaces the owner references of a Secret being taken over with `reference`, if it is still
/// the Secret checked; its resourceVersion afterwards.
async fn take_over(
    secrets: &Api<Secret>,
    name: &str,
    before: &PartialObjectMeta<Secret>,
    reference: &OwnerReference,
) -> Result<Option<String>, Failure> {
    let patch = serde_json::json!({
        "metadata": {
            "resourceVersion": before.metadata.resource_version,
            "ownerReferences": [reference],
        }
    });
    let patched = secrets
        .patch_metadata(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| match &e {
            kube::Error::Api(s) if s.code == 409 => Failure {
                event_reason: "UpdateFailed",
                reason: "Conflict",
                message: format!(
                    "Secret {name:?} was changed while it was being taken over: checking again"
                ),
                retry: Duration::from_secs(2),
            },
            _ => api_failure("UpdateFailed", api_message(name, &e)),
        })?;
    Ok(patched.metadata.resource_version)
}

/// The namespace key Secret `secret` (spec.decryption.secretRef), read from the SopsSecret's
/// own namespace: `None` when it does not exist.
async fn read_key_secret(
    ctx: &Context,
    namespace: &str,
    secret: &str,
) -> Result<Option<Secret>, Failure> {
    if secret.is_empty() {
        return Ok(None);
    }
    let api: Api<Secret> = Api::namespaced(ctx.cluster.client.clone(), namespace);
    api.get_opt(secret).await.map_err(|e| {
        api_failure(
            "ApiError",
            format!(
                "reading the key Secret {secret:?}: {}",
                api_message(secret, &e)
            ),
        )
    })
}

/// The keys this SopsSecret's file is opened with. With spec.decryption.secretRef, the age
/// identities, PGP secret keys and key service credentials of that Secret (`key_secret`, as
/// read) and nothing of the controller's: a file's metadata names its own master keys, KMS
/// ones included, and anyone may copy a file. Without it, the controller's keys, which then
/// decrypt only files bound to the namespace unless it is trusted.
fn keys_for(
    spec: &enseal_sops_secret::SopsSecretSpec,
    namespace: &str,
    cluster: &Arc<SopsKeys>,
    trusted: &TrustedNamespaces,
    key_secret: Option<&Option<Arc<NamespaceKeys>>>,
    key_services: bool,
) -> Result<Keys, SopsError> {
    let Some(name) = spec.key_secret() else {
        return Ok(cluster_keys(cluster, trusted, namespace));
    };
    let missing = || SopsError::KeySecretMissing {
        secret: name.to_owned(),
    };
    let read = key_secret.and_then(Option::as_ref).ok_or_else(missing)?;
    let age = read.age(name);
    let pgp = read.pgp();
    if age.is_empty() && pgp.is_empty() {
        if read.cloud().is_empty() {
            return Err(SopsError::NoNamespaceKeys {
                secret: name.to_owned(),
            });
        }
        if !key_services {
            return Err(SopsError::NamespaceKeyServicesOff {
                secret: name.to_owned(),
            });
        }
    }
    Ok(Keys::Namespace {
        secret: name.to_owned(),
        age,
        pgp,
        cloud: if key_services {
            read.access()
        } else {
            Default::default()
        },
    })
}

/// The controller's own keys, for an object in `namespace`.
pub(super) fn cluster_keys(
    cluster: &Arc<SopsKeys>,
    trusted: &TrustedNamespaces,
    namespace: &str,
) -> Keys {
    Keys::Cluster {
        age: cluster.age(),
        pgp: cluster.pgp(),
        cloud: SopsKeys::cluster_access(cluster),
        trusted: trusted.trusts(namespace),
    }
}

async fn apply(
    secrets: &Api<Secret>,
    namespace: &str,
    owner: &OwnerReference,
    d: DesiredSecret,
    checked: Option<String>,
    field_manager: &str,
) -> Result<bool, Failure> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(d.name),
            namespace: Some(namespace.to_owned()),
            labels: (!d.labels.is_empty()).then_some(d.labels),
            annotations: (!d.annotations.is_empty()).then_some(d.annotations),
            owner_references: Some(vec![owner.clone()]),
            ..ObjectMeta::default()
        },
        type_: d.type_,
        data: Some(d.data),
        ..Secret::default()
    };
    // The Secret holds exactly the file's keys; written only if it is still the one checked.
    let after = status::apply_secret(
        secrets,
        &secret,
        checked.as_deref(),
        field_manager,
        true,
        "UpdateFailed",
    )
    .await?;
    Ok(checked != after)
}

/// Deletes Secrets the last sync made that the file no longer describes (only while they are
/// still controlled by this SopsSecret).
async fn prune(secrets: &Api<Secret>, uid: &str, previous: &[String], current: &[String]) -> bool {
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
    let previous = obj.status.clone().unwrap_or_default();
    let Some(status) = next_status(&previous, obj.metadata.generation, outcome) else {
        return Ok(());
    };
    let api: Api<SopsSecret> = Api::namespaced(ctx.cluster.client.clone(), namespace);
    status::patch_status(&api, name, &status, &["conditions", "secrets"]).await
}

/// The status after a sync (`Ok`: the Secrets written; `Err`: the condition's reason and
/// message), or `None` when it is what `previous` already says.
pub(super) fn next_status(
    previous_status: &SopsSecretStatus,
    generation: Option<i64>,
    outcome: Result<Vec<String>, (&str, &str)>,
) -> Option<SopsSecretStatus> {
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
        && previous_status.observed_generation == generation
        && previous_status.secrets == secrets
    {
        return None;
    }
    Some(SopsSecretStatus {
        conditions: vec![Condition {
            type_: "Synced".to_owned(),
            status: synced.status().to_owned(),
            reason: Some(synced.reason.to_owned()),
            message: synced.message(),
            last_transition_time: Some(synced.transition_time(previous.as_ref(), &status::now())),
        }],
        observed_generation: generation,
        secrets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sops_secret::render::tests::encrypted_for;
    use enseal_sops_secret::{Decryption, LocalSecretRef};
    use k8s_openapi::ByteString;
    use zeroize::Zeroizing;

    fn key_secret(entries: &[(&str, &str)]) -> Option<Arc<NamespaceKeys>> {
        Some(Arc::new(NamespaceKeys::of(&Secret {
            data: Some(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        })))
    }

    /// Issue #13 item 8: a SopsSecret naming a key Secret is opened with that Secret's keys
    /// only, even when the controller's own key (or KMS) would open the file and the namespace
    /// is trusted.
    #[test]
    fn a_key_secret_replaces_the_controllers_keys() {
        let (cluster_identity, cluster_recipient) = enseal_sops::keys::age::generate();
        let (tenant_identity, tenant_recipient) = enseal_sops::keys::age::generate();
        let cluster = Arc::new(SopsKeys::default());
        cluster.set_age_text(Zeroizing::new(cluster_identity.to_string()));
        let trusted = TrustedNamespaces::All;
        let plain = "password: S3CRET\n";

        let mut for_cluster = encrypted_for(plain, &cluster_recipient);
        let keys = keys_for(&for_cluster, "team-b", &cluster, &trusted, None, true).unwrap();
        assert!(render::decrypt(&for_cluster, "own", "team-b", keys).is_ok());

        for_cluster.decryption = Some(Decryption {
            secret_ref: Some(LocalSecretRef {
                name: "team-b-keys".into(),
            }),
        });
        let tenant_keys = key_secret(&[("tenant.agekey", &tenant_identity)]);
        let keys = keys_for(
            &for_cluster,
            "team-b",
            &cluster,
            &trusted,
            Some(&tenant_keys),
            true,
        )
        .unwrap();
        assert!(matches!(keys, Keys::Namespace { .. }));
        let e = render::decrypt(&for_cluster, "own", "team-b", keys).unwrap_err();
        assert_eq!(e.reason(), "NoKeys", "{e}");

        // The tenant's own file opens with the tenant's key, in an untrusted namespace.
        let mut for_tenant = encrypted_for(plain, &tenant_recipient);
        for_tenant.decryption = for_cluster.decryption.clone();
        let untrusted = TrustedNamespaces::default();
        let keys = keys_for(
            &for_tenant,
            "team-b",
            &cluster,
            &untrusted,
            Some(&tenant_keys),
            false,
        )
        .unwrap();
        assert!(render::decrypt(&for_tenant, "own", "team-b", keys).is_ok());

        // Key service credentials alone, in a namespace key Secret: refused unless the
        // controller is told to use them (the file's metadata would choose the address).
        let token_only = key_secret(&[("sops.vault-token", "hvs.tenant-token")]);
        let off = keys_for(
            &for_tenant,
            "team-b",
            &cluster,
            &untrusted,
            Some(&token_only),
            false,
        );
        let Err(e) = off else {
            panic!("credentials alone were used with --sops-namespace-key-services off")
        };
        assert!(
            matches!(e, SopsError::NamespaceKeyServicesOff { .. }),
            "{e}"
        );
        assert_eq!(e.reason(), "NoKeys");
        assert!(!e.to_string().contains("hvs.tenant-token"), "{e}");
        let on = keys_for(
            &for_tenant,
            "team-b",
            &cluster,
            &untrusted,
            Some(&token_only),
            true,
        );
        assert!(matches!(on, Ok(Keys::Namespace { .. })));

        // No key Secret, or one without an identity: said so, never a fallback.
        let missing = keys_for(&for_tenant, "team-b", &cluster, &trusted, Some(&None), true);
        assert_eq!(missing.err().map(|e| e.reason()), Some("KeySecretMissing"));
        let useless = key_secret(&[("tenant.agekey", "garbage"), ("x.txt", &tenant_identity)]);
        let empty = keys_for(
            &for_tenant,
            "team-b",
            &cluster,
            &trusted,
            Some(&useless),
            true,
        );
        assert_eq!(empty.err().map(|e| e.reason()), Some("NoKeys"));
    }

    #[tokio::test]
    async fn a_panicking_decrypt_is_an_error_and_the_next_one_still_runs() {
        let d = Decrypts::default();
        for _ in 0..=CONCURRENT_DECRYPTS {
            // More panics than slots: a panic must give its slot back.
            assert!(d.run(|| panic!("bad input")).await.is_err());
        }
        assert_eq!(d.run(|| 7).await.ok(), Some(7));
    }

    #[tokio::test]
    async fn deep_recursion_fits_on_the_decrypt_stack() {
        // ~8 MiB of stack: four times what a tokio blocking thread has.
        fn nest(n: usize) -> usize {
            let pad = std::hint::black_box([0u8; 1024]);
            if n == 0 {
                pad[0] as usize
            } else {
                nest(n - 1) + pad[n % 1024] as usize
            }
        }
        assert_eq!(
            Decrypts::default().run(|| nest(8 * 1024)).await.ok(),
            Some(0)
        );
    }
}
