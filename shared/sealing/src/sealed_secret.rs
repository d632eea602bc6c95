//! The `bitnami.com/v1alpha1` SealedSecret and the one implementation of what is done with it:
//! seal a Secret (kubeseal), unseal it (the controller and `enseal unseal`), verify it
//! (`/v1/verify`, `seal --validate`) and rotate it onto a newer key (`/v1/rotate`,
//! `seal --re-encrypt`).
//!
//! The rules follow Sealed Secrets v0.40 (pkg/apis/sealedsecrets/v1alpha1/
//! sealedsecret_expansion.go `unseal` and `ValidateEncryptedData`, pkg/controller/controller.go
//! `Rotate`):
//! - the deprecated single-blob `spec.data` is read only when it is present, and then
//!   `encryptedData` must be empty (the two at once are refused); the blob holds a whole Secret
//!   in JSON and no template is applied to it;
//! - otherwise the Secret is the template's metadata, type and immutability plus every opened
//!   `encryptedData` value; `template.data` entries are rendered over the opened values (and
//!   over the other template entries' plain text, for keys not in `encryptedData`), a `null`
//!   entry removes the key, and a rendered entry never replaces a key from `encryptedData`;
//! - name and namespace are always the SealedSecret's own, and its own annotations choose the
//!   scope (the OAEP label);
//! - rotating opens the values without rendering any template (`/v1/rotate` is
//!   unauthenticated: a template that fails on a guessed value would be a decryption oracle).
//!
//! The type is generic over its metadata so that one definition serves files (this crate's
//! lossless [`ObjectMeta`]) and, with the `kube` feature, API objects (k8s-openapi's, which
//! kube's `Resource` requires).

use std::collections::BTreeMap;

use base64::Engine;
use rsa::PublicKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::resource::{null_default, Metadata, ObjectMeta, Secret, SecretBytes};
use crate::scope::{Scope, CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION};
use crate::sealed_value::{self, SealError};
use crate::template::{self, TemplateError};
use crate::PrivateKey;

/// The annotations that choose a SealedSecret's scope.
const SCOPE_ANNOTATIONS: [&str; 2] = [CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION];

pub const SEALED_SECRET_GROUP: &str = "bitnami.com";
pub const SEALED_SECRET_VERSION: &str = "v1alpha1";
pub const SEALED_SECRET_API_VERSION: &str = "bitnami.com/v1alpha1";
pub const SEALED_SECRET_KIND: &str = "SealedSecret";
pub const SEALED_SECRET_PLURAL: &str = "sealedsecrets";

/// On an existing Secret: the controller may take it over.
pub const MANAGED_ANNOTATION: &str = "sealedsecrets.bitnami.com/managed";
/// On an existing Secret: the controller merges its keys into it instead of owning it.
pub const PATCH_ANNOTATION: &str = "sealedsecrets.bitnami.com/patch";
/// On the template: the Secret gets no ownerReference back to the SealedSecret.
pub const SKIP_SET_OWNER_REFERENCES_ANNOTATION: &str =
    "sealedsecrets.bitnami.com/skip-set-owner-references";

/// Annotations tools put a full copy of an applied object in; sealing them would leak the
/// Secret in the clear (Sealed Secrets strips the same two).
const LAST_APPLIED_ANNOTATIONS: [&str; 2] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    "kubecfg.ksonnet.io/last-applied-configuration",
];

/// Server-set metadata that must not be copied into a template.
const SERVER_METADATA: [&str; 9] = [
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "ownerReferences",
];

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("the Secret has no metadata.name")]
    NoName,
    #[error("the Secret must declare a namespace (or be sealed cluster-wide)")]
    NoNamespace,
    #[error("the Secret has no data (pass --allow-empty-data if that is intended)")]
    EmptyData,
    #[error("sealing {key:?}: {source}")]
    Seal { key: String, source: SealError },
    /// Every value that did not open, by key.
    #[error("{}", describe_open_failures(*.scope, .errors))]
    Open {
        scope: Scope,
        errors: Vec<(String, SealError)>,
    },
    #[error("spec.data (deprecated single-blob form): {0}")]
    LegacyOpen(#[source] SealError),
    #[error("spec.data (deprecated single-blob form): the opened blob is not a Secret in JSON")]
    LegacyNotASecret,
    #[error("the deprecated field spec.data and encryptedData cannot be used at the same time")]
    LegacyWithEncryptedData,
    #[error("spec.template.data[{key}]: {source}")]
    Template { key: String, source: TemplateError },
}

impl ResourceError {
    /// True when the sealed text itself is malformed (not base64, truncated, tampered with),
    /// false when it is well formed but no key opens it (another controller's key, or another
    /// name, namespace or scope).
    pub fn is_malformed(&self) -> bool {
        let malformed = |e: &SealError| !matches!(e, SealError::NoKeyOpens);
        match self {
            ResourceError::Open { errors, .. } => errors.iter().any(|(_, e)| malformed(e)),
            ResourceError::LegacyOpen(e) => malformed(e),
            ResourceError::LegacyNotASecret | ResourceError::LegacyWithEncryptedData => true,
            _ => false,
        }
    }
}

fn describe_open_failures(scope: Scope, errors: &[(String, SealError)]) -> String {
    let parts: Vec<String> = errors
        .iter()
        .map(|(k, e)| format!("encryptedData[{k}]: {e}"))
        .collect();
    format!("{} (this object's scope is {scope})", parts.join("; "))
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
    /// Go templates over the decrypted values; `null` removes a key from the Secret.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub data: BTreeMap<String, Option<String>>,
}

impl SecretTemplate {
    /// An annotation of the template (where the Secret-side flags live) set to `"true"`.
    pub fn annotation_is_true(&self, key: &str) -> bool {
        self.metadata
            .annotations
            .get(key)
            .is_some_and(|v| v == "true")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretSpec {
    #[serde(default)]
    pub template: SecretTemplate,
    #[serde(default, deserialize_with = "null_default")]
    pub encrypted_data: BTreeMap<String, String>,
    /// Deprecated single-blob form: the whole Secret's JSON sealed as one value (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// A status condition as Sealed Secrets writes it (times are RFC 3339 text).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conditions: Vec<SealedSecretCondition>,
}

fn sealed_secret_kind() -> String {
    SEALED_SECRET_KIND.into()
}

fn sealed_secret_api_version() -> String {
    SEALED_SECRET_API_VERSION.into()
}

/// Field order as kubeseal prints it (kind first). `M` is the metadata type: this crate's
/// [`ObjectMeta`] for files, k8s-openapi's for API objects (feature `kube`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecret<M = ObjectMeta> {
    #[serde(default = "sealed_secret_kind")]
    pub kind: String,
    #[serde(default = "sealed_secret_api_version")]
    pub api_version: String,
    #[serde(default)]
    pub metadata: M,
    #[serde(default)]
    pub spec: SealedSecretSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SealedSecretStatus>,
}

impl<M: Metadata> Default for SealedSecret<M> {
    fn default() -> Self {
        SealedSecret {
            kind: sealed_secret_kind(),
            api_version: sealed_secret_api_version(),
            metadata: M::default(),
            spec: SealedSecretSpec::default(),
            status: None,
        }
    }
}

static NO_ANNOTATIONS: BTreeMap<String, String> = BTreeMap::new();

impl SealedSecret<ObjectMeta> {
    /// Seals a Secret as kubeseal does: `scope` (the `--scope` flag) overrides the scope
    /// annotations of the Secret, which otherwise choose it. Each `data` value is sealed as its
    /// decoded bytes, each `stringData` value as UTF-8 (winning over a `data` key of the same
    /// name); the template keeps the Secret's metadata (without server fields, owner references
    /// and last-applied copies), type and immutability.
    pub fn seal(
        secret: &Secret,
        public_key: &PublicKey,
        scope: Option<Scope>,
    ) -> Result<SealedSecret, ResourceError> {
        let mut meta = secret.metadata.clone();
        for key in SERVER_METADATA {
            meta.other.remove(key);
        }
        for key in LAST_APPLIED_ANNOTATIONS {
            meta.annotations.remove(key);
        }
        if let Some(scope) = scope {
            scope.write_annotations(&mut meta.annotations);
        }
        let scope = Scope::from_annotations(&meta.annotations);
        if meta.name().is_empty() {
            return Err(ResourceError::NoName);
        }
        if scope != Scope::ClusterWide && meta.namespace().is_empty() {
            return Err(ResourceError::NoNamespace);
        }
        let label = scope.label(meta.namespace(), meta.name());
        let mut encrypted_data = BTreeMap::new();
        for (key, plain) in secret.values() {
            encrypted_data.insert(key.clone(), seal_one(public_key, &label, key, plain)?);
        }
        let mut annotations = BTreeMap::new();
        scope.write_annotations(&mut annotations);
        Ok(SealedSecret {
            metadata: ObjectMeta {
                name: meta.name.clone(),
                namespace: meta.namespace.clone(),
                annotations,
                ..ObjectMeta::default()
            },
            spec: SealedSecretSpec {
                template: SecretTemplate {
                    metadata: meta,
                    type_: secret.type_.clone(),
                    immutable: secret.immutable,
                    data: BTreeMap::new(),
                },
                encrypted_data,
                data: None,
            },
            ..SealedSecret::default()
        })
    }

    /// Seals every value again for `public_key` (a newer certificate): what `/v1/rotate` does,
    /// and `seal --re-encrypt` with private keys. Values are opened without rendering the
    /// template (see the module comment); a legacy `spec.data` blob becomes `encryptedData`
    /// values, as Sealed Secrets' rotate makes a new object from the opened Secret.
    ///
    /// Where Sealed Secrets rebuilds the whole object from the opened Secret, this keeps
    /// everything that is not sealed (metadata, template metadata and `template.data`) as it
    /// was: Sealed Secrets' rebuild drops `template.data` and, when the object's metadata and
    /// the template's differ (any labelled Secret sealed by kubeseal), the template's labels
    /// and annotations; that loses the user's configuration for no security gain. What that
    /// rebuild is for is kept: the template's name, namespace and scope annotations are made
    /// the object's own (Sealed Secrets 0.36, [`Self::template_disagrees_with_object`]).
    pub fn rotate(
        &self,
        keys: &[PrivateKey],
        public_key: &PublicKey,
    ) -> Result<SealedSecret, ResourceError> {
        let mut rotated = self.clone();
        rotated.status = None;
        rotated.align_template_with_object();
        if self.spec.data.is_some() {
            let mut secret = self.unseal_without_template(keys)?;
            self.scope()
                .write_annotations(&mut secret.metadata.annotations);
            let fresh = SealedSecret::seal(&secret, public_key, None)?;
            rotated.spec.encrypted_data = fresh.spec.encrypted_data;
            rotated.spec.data = None;
            rotated.spec.template.metadata = fresh.spec.template.metadata;
            rotated.spec.template.type_ = fresh.spec.template.type_;
            rotated.spec.template.immutable = fresh.spec.template.immutable;
            return Ok(rotated);
        }
        let values = self.open_values(keys)?;
        let label = self.label();
        for (key, plain) in values.iter() {
            rotated
                .spec
                .encrypted_data
                .insert(key.clone(), seal_one(public_key, &label, key, plain)?);
        }
        Ok(rotated)
    }

    /// Whether `spec.template.metadata` names another Secret, or claims another scope, than the
    /// object's own metadata: what [`SealedSecret::rotate`] makes agree.
    pub fn template_disagrees_with_object(&self) -> bool {
        let (object, template) = (&self.metadata, &self.spec.template.metadata);
        template.name != object.name
            || template.namespace != object.namespace
            || SCOPE_ANNOTATIONS
                .iter()
                .any(|k| template.annotations.get(*k) != object.annotations.get(*k))
    }

    /// Sealed Secrets 0.36's rule for rotation (sealed-secrets #1885, #1886): the object's own
    /// metadata decides the scope, and a template whose name, namespace or scope annotations
    /// say otherwise is made to agree with it, so a rotation can never hand back an object
    /// whose template claims a wider scope than its values are sealed for. Sealed Secrets
    /// copies the whole metadata over the template; only what decides the scope and the
    /// Secret's identity is copied here, so the Secret's own labels and annotations stay.
    fn align_template_with_object(&mut self) {
        if !self.template_disagrees_with_object() {
            return;
        }
        let (object, template) = (&self.metadata, &mut self.spec.template.metadata);
        template.name.clone_from(&object.name);
        template.namespace.clone_from(&object.namespace);
        for key in SCOPE_ANNOTATIONS {
            match object.annotations.get(key) {
                Some(v) => template.annotations.insert(key.to_owned(), v.clone()),
                None => template.annotations.remove(key),
            };
        }
    }

    /// Seals `plain` under this SealedSecret's scope and adds it to `encryptedData` (replacing
    /// a value of the same key).
    pub fn insert_value(
        &mut self,
        public_key: &PublicKey,
        key: &str,
        plain: &[u8],
    ) -> Result<(), ResourceError> {
        let sealed = seal_one(public_key, &self.label(), key, plain)?;
        self.spec.encrypted_data.insert(key.to_string(), sealed);
        Ok(())
    }
}

fn seal_one(
    public_key: &PublicKey,
    label: &[u8],
    key: &str,
    plain: &[u8],
) -> Result<String, ResourceError> {
    sealed_value::seal_base64(public_key, label, plain).map_err(|source| ResourceError::Seal {
        key: key.to_string(),
        source,
    })
}

impl<M: Metadata> SealedSecret<M> {
    /// The scope the controller unseals with: from the SealedSecret's own annotations.
    pub fn scope(&self) -> Scope {
        Scope::from_annotations(
            self.metadata
                .object_annotations()
                .unwrap_or(&NO_ANNOTATIONS),
        )
    }

    /// The OAEP label every value of this SealedSecret is sealed under.
    pub fn label(&self) -> Vec<u8> {
        self.scope().label(
            self.metadata.object_namespace(),
            self.metadata.object_name(),
        )
    }

    /// Opens every `encryptedData` value; all failures are reported, by key.
    pub fn open_values(
        &self,
        keys: &[PrivateKey],
    ) -> Result<BTreeMap<String, Zeroizing<Vec<u8>>>, ResourceError> {
        let label = self.label();
        let mut values = BTreeMap::new();
        let mut errors = Vec::new();
        // Try the key that opened the previous value first: with several controller keys this
        // saves a failing RSA decryption per key per value.
        let mut order: Vec<&PrivateKey> = keys.iter().collect();
        for (key, sealed) in &self.spec.encrypted_data {
            let opened = base64::engine::general_purpose::STANDARD
                .decode(sealed.trim())
                .map_err(|_| SealError::Base64)
                .and_then(|blob| sealed_value::open_indexed(order.iter().copied(), &label, &blob));
            match opened {
                Ok((index, plain)) => {
                    order[..=index].rotate_right(1);
                    values.insert(key.clone(), plain);
                }
                Err(e) => errors.push((key.clone(), e)),
            }
        }
        if errors.is_empty() {
            Ok(values)
        } else {
            Err(ResourceError::Open {
                scope: self.scope(),
                errors,
            })
        }
    }

    /// Whether every sealed value opens with `keys` under this object's scope, without
    /// rendering templates: what `/v1/verify` answers (Sealed Secrets' `ValidateEncryptedData`).
    pub fn verify(&self, keys: &[PrivateKey]) -> Result<(), ResourceError> {
        match &self.spec.data {
            Some(blob) => self.open_legacy(keys, blob).map(drop),
            None => self.open_values(keys).map(drop),
        }
    }

    /// The Secret this SealedSecret stands for, as the controller creates it (without the
    /// owner reference, which the controller adds): see the module comment for the rules.
    pub fn unseal(&self, keys: &[PrivateKey]) -> Result<Secret, ResourceError> {
        self.unseal_with(keys, true)
    }

    /// [`Self::unseal`] without `template.data`: the values as sealed.
    pub fn unseal_without_template(&self, keys: &[PrivateKey]) -> Result<Secret, ResourceError> {
        self.unseal_with(keys, false)
    }

    fn unseal_with(&self, keys: &[PrivateKey], render: bool) -> Result<Secret, ResourceError> {
        let mut secret = match &self.spec.data {
            Some(blob) => self.unseal_legacy(keys, blob)?,
            None => self.unseal_values(keys, render)?,
        };
        let (name, namespace) = (
            self.metadata.object_name(),
            self.metadata.object_namespace(),
        );
        secret.metadata.name = Some(name.to_owned()).filter(|n| !n.is_empty());
        secret.metadata.namespace = Some(namespace.to_owned()).filter(|n| !n.is_empty());
        Ok(secret)
    }

    fn unseal_values(&self, keys: &[PrivateKey], render: bool) -> Result<Secret, ResourceError> {
        let values = self.open_values(keys)?;
        let mut data: BTreeMap<String, SecretBytes> = values
            .iter()
            .map(|(k, v)| (k.clone(), SecretBytes(v.clone())))
            .collect();
        let template = &self.spec.template;
        if render && !template.data.is_empty() {
            // Templates see the opened values and, for keys not in encryptedData, the other
            // template entries' plain text (Sealed Secrets #1607); sealed values win.
            let mut context = values.clone();
            for (key, text) in &template.data {
                if let Some(text) = text {
                    context
                        .entry(key.clone())
                        .or_insert_with(|| Zeroizing::new(text.as_bytes().to_vec()));
                }
            }
            for (key, text) in &template.data {
                let Some(text) = text else {
                    data.remove(key);
                    continue;
                };
                let rendered =
                    template::render(text, &context).map_err(|source| ResourceError::Template {
                        key: key.clone(),
                        source,
                    })?;
                // A template never replaces a value from encryptedData.
                if !self.spec.encrypted_data.contains_key(key) {
                    data.insert(key.clone(), SecretBytes(rendered));
                }
            }
        }
        Ok(Secret {
            metadata: template.metadata.clone(),
            type_: template.type_.clone(),
            immutable: template.immutable,
            data,
            ..Secret::default()
        })
    }

    fn open_legacy(
        &self,
        keys: &[PrivateKey],
        blob: &str,
    ) -> Result<Zeroizing<Vec<u8>>, ResourceError> {
        if !self.spec.encrypted_data.is_empty() {
            return Err(ResourceError::LegacyWithEncryptedData);
        }
        sealed_value::open_base64(keys, &self.label(), blob).map_err(ResourceError::LegacyOpen)
    }

    fn unseal_legacy(&self, keys: &[PrivateKey], blob: &str) -> Result<Secret, ResourceError> {
        let plain = self.open_legacy(keys, blob)?;
        serde_json::from_slice(&plain).map_err(|_| ResourceError::LegacyNotASecret)
    }
}

/// The SealedSecret as an API object, for kube's clients and controllers.
#[cfg(feature = "kube")]
pub type SealedSecretObject =
    SealedSecret<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>;

#[cfg(feature = "kube")]
impl kube::Resource for SealedSecretObject {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        SEALED_SECRET_KIND.into()
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        SEALED_SECRET_GROUP.into()
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        SEALED_SECRET_VERSION.into()
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        SEALED_SECRET_PLURAL.into()
    }
    fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &mut self.metadata
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::SecretText;
    use crate::scope::{CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION};
    use crate::test_keys;

    fn secret(yaml: &str) -> Secret {
        let doc = crate::manifest::parse_documents(yaml.as_bytes())
            .unwrap()
            .remove(0);
        crate::manifest::decode(0, doc, "Secret").unwrap()
    }

    fn keys() -> Vec<PrivateKey> {
        vec![test_keys::rsa_1024().clone()]
    }

    const SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
  uid: 1234
  resourceVersion: '9'
  labels: {app: db}
  annotations:
    team: core
    kubectl.kubernetes.io/last-applied-configuration: '{\"data\":{\"password\":\"leak\"}}'
  ownerReferences: [{kind: X}]
  finalizers: [keep]
type: kubernetes.io/basic-auth
immutable: true
data:
  binary: AP8B
  password: b2xk
stringData:
  password: new
  port: 5432
";

    #[test]
    fn seal_then_unseal_gives_the_secret_back() {
        let s = secret(SECRET);
        let pk = test_keys::rsa_1024().to_public_key();
        let sealed = SealedSecret::seal(&s, &pk, None).unwrap();
        assert_eq!(sealed.metadata.name.as_deref(), Some("db"));
        assert_eq!(sealed.metadata.namespace.as_deref(), Some("prod"));
        assert_eq!(sealed.scope(), Scope::Strict);
        assert_eq!(
            sealed.spec.encrypted_data.keys().collect::<Vec<_>>(),
            ["binary", "password", "port"]
        );
        let tm = &sealed.spec.template.metadata;
        assert_eq!(tm.labels.get("app").map(String::as_str), Some("db"));
        assert_eq!(
            tm.annotations.len(),
            1,
            "last-applied stripped: {:?}",
            tm.annotations
        );
        assert!(!tm.other.contains_key("uid") && !tm.other.contains_key("ownerReferences"));
        assert!(tm.other.contains_key("finalizers"));
        assert_eq!(
            sealed.spec.template.type_.as_deref(),
            Some("kubernetes.io/basic-auth")
        );
        assert_eq!(sealed.spec.template.immutable, Some(true));

        let back = sealed.unseal(&keys()).unwrap();
        assert_eq!(
            back.data["binary"].as_bytes(),
            [0x00, 0xff, 0x01],
            "raw bytes, not base64"
        );
        assert_eq!(back.data["password"].as_bytes(), b"new", "stringData wins");
        assert_eq!(back.data["port"].as_bytes(), b"5432");
        assert_eq!(back.type_.as_deref(), Some("kubernetes.io/basic-auth"));
        assert_eq!(back.metadata.name.as_deref(), Some("db"));
    }

    #[test]
    fn scope_flag_overrides_annotations_and_is_written_on_both_objects() {
        let mut s = secret(SECRET);
        s.metadata
            .annotations
            .insert(NAMESPACE_WIDE_ANNOTATION.into(), "true".into());
        let pk = test_keys::rsa_1024().to_public_key();
        let by_annotation = SealedSecret::seal(&s, &pk, None).unwrap();
        assert_eq!(by_annotation.scope(), Scope::NamespaceWide);
        let by_flag = SealedSecret::seal(&s, &pk, Some(Scope::ClusterWide)).unwrap();
        assert_eq!(by_flag.scope(), Scope::ClusterWide);
        let tm = &by_flag.spec.template.metadata.annotations;
        assert_eq!(
            tm.get(CLUSTER_WIDE_ANNOTATION).map(String::as_str),
            Some("true")
        );
        assert!(!tm.contains_key(NAMESPACE_WIDE_ANNOTATION));
    }

    #[test]
    fn unseal_tries_every_key_for_every_value() {
        let s = secret(SECRET);
        let pk = test_keys::rsa_1024().to_public_key();
        let sealed = SealedSecret::seal(&s, &pk, None).unwrap();
        let keys = [
            test_keys::rsa_1024_other().clone(),
            test_keys::rsa_1024().clone(),
        ];
        assert_eq!(sealed.unseal(&keys).unwrap().data.len(), 3);
        let wrong = [test_keys::rsa_1024_other().clone()];
        assert!(
            matches!(sealed.unseal(&wrong), Err(ResourceError::Open { errors, .. }) if errors.len() == 3)
        );
    }

    #[test]
    fn strict_value_does_not_open_under_another_name() {
        let s = secret(SECRET);
        let pk = test_keys::rsa_1024().to_public_key();
        let mut sealed = SealedSecret::seal(&s, &pk, None).unwrap();
        sealed.metadata.name = Some("other".into());
        let err = sealed.unseal(&keys()).unwrap_err();
        assert!(
            matches!(&err, ResourceError::Open { errors, .. } if errors.len() == 3),
            "{err}"
        );
        assert!(!err.to_string().contains("new"), "no plaintext in errors");
    }

    #[test]
    fn namespace_is_required_unless_cluster_wide() {
        let mut s = secret(SECRET);
        s.metadata.namespace = None;
        let pk = test_keys::rsa_1024().to_public_key();
        assert!(matches!(
            SealedSecret::seal(&s, &pk, None),
            Err(ResourceError::NoNamespace)
        ));
        let cw = SealedSecret::seal(&s, &pk, Some(Scope::ClusterWide)).unwrap();
        assert_eq!(cw.unseal(&keys()).unwrap().data.len(), 3);
    }

    #[test]
    fn template_data_renders_and_null_removes() {
        let s = secret(SECRET);
        let pk = test_keys::rsa_1024().to_public_key();
        let mut sealed = SealedSecret::seal(&s, &pk, None).unwrap();
        sealed.spec.template.data.insert(
            "dsn".into(),
            Some("pg://{{ .password }}@db:{{ .port }}".into()),
        );
        sealed.spec.template.data.insert("binary".into(), None);
        let back = sealed.unseal(&keys()).unwrap();
        assert_eq!(back.data["dsn"].as_bytes(), b"pg://new@db:5432");
        assert!(!back.data.contains_key("binary"));
    }

    #[test]
    fn reads_kubeseal_json_and_writes_kind_first() {
        let json = r#"{"kind":"SealedSecret","apiVersion":"bitnami.com/v1alpha1",
            "metadata":{"name":"a","namespace":"b","creationTimestamp":null},
            "spec":{"template":{"metadata":{"name":"a","namespace":"b","creationTimestamp":null}},
                    "encryptedData":{"k":"AAAA"}},
            "status":{"observedGeneration":3,"conditions":[{"type":"Synced","status":"True"}]}}"#;
        let ss: SealedSecret = serde_json::from_str(json).unwrap();
        assert_eq!(ss.status.as_ref().unwrap().observed_generation, Some(3));
        let out = serde_json::to_string(&ss).unwrap();
        assert!(out.starts_with(r#"{"kind":"SealedSecret","apiVersion":"bitnami.com/v1alpha1""#));
    }

    #[test]
    fn bad_data_is_reported_without_the_value() {
        let doc = serde_json::json!({"kind": "Secret", "data": {"k": "not base64 hunter2"}});
        let err = crate::manifest::decode::<Secret>(0, doc, "Secret").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let doc = serde_json::json!({"kind": "Secret", "data": {"k": 12345}});
        let err = crate::manifest::decode::<Secret>(0, doc, "Secret").unwrap_err();
        assert!(!err.to_string().contains("12345"), "{err}");
    }

    #[test]
    fn debug_output_redacts_values() {
        let s = secret(SECRET);
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("5432"),
            "stringData value in Debug: {debug}"
        );
        assert!(debug.contains("SecretText(<4 bytes>)"), "{debug}");
    }

    fn sealed() -> SealedSecret {
        let pk = test_keys::rsa_1024().to_public_key();
        SealedSecret::seal(&secret(SECRET), &pk, None).unwrap()
    }

    /// A legacy blob: the whole Secret in JSON, sealed as one value under the object's label.
    fn legacy_blob(ss: &SealedSecret, json: &str) -> String {
        let pk = test_keys::rsa_1024().to_public_key();
        sealed_value::seal_base64(&pk, &ss.label(), json.as_bytes()).unwrap()
    }

    const LEGACY_SECRET: &str = r#"{"apiVersion":"v1","kind":"Secret",
        "metadata":{"name":"ignored","namespace":"ignored","labels":{"from":"blob"}},
        "type":"Opaque","data":{"a":"YQ=="},"stringData":{"b":"b"}}"#;

    #[test]
    fn a_legacy_blob_alone_is_the_whole_secret_with_the_objects_name() {
        let mut ss = sealed();
        ss.spec.encrypted_data.clear();
        ss.spec.data = Some(legacy_blob(&ss, LEGACY_SECRET));
        // Templates do not apply to the blob.
        ss.spec.template.data.insert("t".into(), Some("x".into()));
        let s = ss.unseal(&keys()).unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("db"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("prod"));
        assert_eq!(s.metadata.labels["from"], "blob");
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        assert_eq!(s.data["a"].as_bytes(), b"a");
        assert_eq!(*s.string_data["b"].0, "b");
        assert!(!s.data.contains_key("t"));
        ss.verify(&keys()).unwrap();
    }

    #[test]
    fn a_legacy_blob_beside_encrypted_data_is_refused_by_unseal_verify_and_rotate() {
        let mut ss = sealed();
        ss.spec.data = Some(legacy_blob(&ss, LEGACY_SECRET));
        let pk = test_keys::rsa_1024().to_public_key();
        for err in [
            ss.unseal(&keys()).unwrap_err(),
            ss.verify(&keys()).unwrap_err(),
            ss.rotate(&keys(), &pk).unwrap_err(),
        ] {
            assert!(
                matches!(err, ResourceError::LegacyWithEncryptedData),
                "{err}"
            );
        }
    }

    #[test]
    fn a_legacy_blob_that_is_not_a_secret_is_malformed() {
        let mut ss = sealed();
        ss.spec.encrypted_data.clear();
        ss.spec.data = Some(legacy_blob(&ss, "not json hunter2"));
        let err = ss.unseal(&keys()).unwrap_err();
        assert!(matches!(err, ResourceError::LegacyNotASecret), "{err}");
        assert!(err.is_malformed());
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn rotate_turns_a_legacy_blob_into_encrypted_data() {
        let mut ss = sealed();
        ss.spec.encrypted_data.clear();
        ss.spec.data = Some(legacy_blob(&ss, LEGACY_SECRET));
        let new_key = test_keys::rsa_1024_other();
        let rotated = ss.rotate(&keys(), &new_key.to_public_key()).unwrap();
        assert_eq!(rotated.spec.data, None);
        assert_eq!(
            rotated.spec.encrypted_data.keys().collect::<Vec<_>>(),
            ["a", "b"]
        );
        let back = rotated.unseal(std::slice::from_ref(new_key)).unwrap();
        assert_eq!(back.data["a"].as_bytes(), b"a");
        assert_eq!(back.data["b"].as_bytes(), b"b");
        assert_eq!(back.metadata.labels["from"], "blob");
    }

    #[test]
    fn sealed_values_win_over_templates_and_templates_see_plain_siblings() {
        let mut ss = sealed();
        let t = &mut ss.spec.template.data;
        // A template for a sealed key does not replace it.
        t.insert("password".into(), Some("overridden".into()));
        // A plain entry is a value of its own and visible to the other templates.
        t.insert("user".into(), Some("admin".into()));
        t.insert("dsn".into(), Some("{{ .user }}:{{ .password }}".into()));
        let s = ss.unseal(&keys()).unwrap();
        assert_eq!(s.data["password"].as_bytes(), b"new");
        assert_eq!(s.data["user"].as_bytes(), b"admin");
        assert_eq!(s.data["dsn"].as_bytes(), b"admin:new");
        // Without templates: the values as sealed.
        let raw = ss.unseal_without_template(&keys()).unwrap();
        assert_eq!(
            raw.data.keys().collect::<Vec<_>>(),
            ["binary", "password", "port"]
        );
    }

    #[test]
    fn rotate_never_renders_templates_and_keeps_what_is_not_sealed() {
        let mut ss = sealed();
        // A template that cannot render must not make rotate fail (no decryption oracle).
        ss.spec
            .template
            .data
            .insert("probe".into(), Some("{{ fail \"x\" }}".into()));
        ss.status = Some(SealedSecretStatus::default());
        let new_key = test_keys::rsa_1024_other();
        let rotated = ss.rotate(&keys(), &new_key.to_public_key()).unwrap();
        assert_eq!(rotated.spec.template, ss.spec.template);
        assert_eq!(rotated.metadata, ss.metadata);
        assert_eq!(rotated.status, None);
        for (k, v) in &rotated.spec.encrypted_data {
            assert_ne!(v, &ss.spec.encrypted_data[k], "{k} re-sealed");
        }
        let back = rotated
            .unseal_without_template(std::slice::from_ref(new_key))
            .unwrap();
        assert_eq!(back.data["password"].as_bytes(), b"new");
        assert!(
            rotated.verify(&keys()).is_err(),
            "only the new key opens it"
        );
    }

    #[test]
    fn rotate_makes_the_template_agree_with_the_objects_scope() {
        // Sealed Secrets 0.36: a template naming another Secret or claiming a wider scope than
        // the object's own metadata must not survive a rotation (`/v1/rotate` and
        // `seal --re-encrypt` both come here).
        let mut ss = sealed();
        assert!(!ss.template_disagrees_with_object());
        let t = &mut ss.spec.template.metadata;
        t.name = Some("other".into());
        t.labels.insert("app".into(), "x".into());
        t.annotations
            .insert(CLUSTER_WIDE_ANNOTATION.into(), "true".into());
        t.annotations.insert("note".into(), "kept".into());
        assert!(ss.template_disagrees_with_object());
        let rotated = ss
            .rotate(&keys(), &test_keys::rsa_1024().to_public_key())
            .unwrap();
        assert!(!rotated.template_disagrees_with_object());
        let t = &rotated.spec.template.metadata;
        assert_eq!(t.name.as_deref(), ss.metadata.name.as_deref());
        assert_eq!(t.annotations.get(CLUSTER_WIDE_ANNOTATION), None, "{t:?}");
        assert_eq!(t.annotations["note"], "kept");
        assert_eq!(t.labels["app"], "x");
        assert_eq!(rotated.scope(), Scope::Strict);
        rotated.verify(&keys()).unwrap();
    }

    #[test]
    fn the_scope_comes_from_the_objects_annotations_for_every_operation() {
        let pk = test_keys::rsa_1024().to_public_key();
        let s = secret(SECRET);
        for scope in [Scope::Strict, Scope::NamespaceWide, Scope::ClusterWide] {
            let mut ss = SealedSecret::seal(&s, &pk, Some(scope)).unwrap();
            assert_eq!(ss.scope(), scope);
            ss.verify(&keys()).unwrap();
            // Renamed: only a strict value is bound to the name.
            ss.metadata.name = Some("renamed".into());
            assert_eq!(
                ss.verify(&keys()).is_ok(),
                scope != Scope::Strict,
                "{scope}"
            );
            // Moved to another namespace: only a cluster-wide value follows.
            ss.metadata.namespace = Some("elsewhere".into());
            assert_eq!(
                ss.unseal(&keys()).is_ok(),
                scope == Scope::ClusterWide,
                "{scope}"
            );
        }
    }

    #[test]
    fn a_failure_names_the_key_and_the_scope_and_tells_malformed_from_wrong_key() {
        let mut ss = sealed();
        ss.metadata.name = Some("renamed".into());
        let err = ss.verify(&keys()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("encryptedData[password]") && text.contains("strict"),
            "{text}"
        );
        assert!(!err.is_malformed());
        ss.spec.encrypted_data.insert("bad".into(), "%%%".into());
        assert!(ss.verify(&keys()).unwrap_err().is_malformed());
    }

    #[test]
    fn text_values_survive() {
        let t = SecretText(Zeroizing::new("x".into()));
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"x\"");
    }
}
