//! sops-secrets-operator's SopsSecret (`isindir.github.com`, v1alpha1/2/3), reconciled into the
//! Secrets that operator makes, with the same keys, tenancy rules, status condition, metrics and
//! Secret writing as enseal's SopsSecret ([`super::reconcile`]); what differs is how the object
//! is decrypted and how its Secrets are templated.
//!
//! The whole object is sops-encrypted (`sops -e --encrypted-suffix Templates`), its `sops`
//! block at the top level, and comes back from the API server changed: every mapping's keys
//! sorted, `apiVersion` the served version, and metadata the server and tools added (`uid`,
//! `managedFields`, a `namespace` from `kubectl apply -n`, Argo CD's and Flux's labels). The
//! operator therefore ignores the MAC, so that a changed, moved or dropped value goes through.
//! Here the MAC is checked against the values the author could have encrypted: the object less
//! what the server adds, each guess of what tools added, in every key order
//! ([`enseal_sops::crypto::key_order`]). Only the guess that verified is read.
//!
//! Tenancy: these objects are opened with the controller's keys only (they have no key Secret
//! of their own), so outside `--sops-trusted-namespaces` an object is decrypted only when it is
//! bound to its namespace: its `metadata.namespace` is under the MAC, with `metadata` written
//! in one of the two orders that pin which value is the namespace (`name`, `namespace`, then
//! labels and annotations, or all keys sorted). Keys being unordered, a looser check could
//! take a `metadata.name` equal to the tenant's namespace for the namespace.
//!
//! Where a MAC cannot verify (an object changed in the cluster on purpose), the cluster admin
//! may let the annotation `enseal.dev/unverified-mac: "true"` skip the check in the namespaces
//! named by `--isindir-unverified-mac-namespaces`: the operator's behaviour, at its cost (a
//! value can then be changed, moved between templates or dropped by whoever can edit the
//! object, and the object is never bound to a namespace, so it needs a trusted one).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use enseal_sops::crypto::key_order::KeyOrderError;
use enseal_sops::file::{self, FileError, OpenOptions};
use enseal_sops::format::tree::{Item, Kind, Node, Tree};
use enseal_sops::stores::{self, Format};
use enseal_sops_secret::SopsSecretStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::ByteString;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::reconcile::{
    self as sops, cluster_keys, crashed, decrypt_failed, too_large, write_secrets, Crashed, Owner,
    MAX_ENCRYPTED_BYTES,
};
use super::render::{self, DesiredSecret, Keys, SopsError};
use super::tenancy::{Opener, TrustedNamespaces};
use crate::status::{self, Cluster, Failure, ReconcileError};

pub const GROUP: &str = "isindir.github.com";
/// The version read and written (the operator's storage version; no conversion webhook).
pub const VERSION: &str = "v1alpha3";
pub const API_VERSION: &str = "isindir.github.com/v1alpha3";
pub const KIND: &str = "SopsSecret";
/// On an existing Secret: `"true"` lets a SopsSecret take it over (the operator's rule).
pub const MANAGED_ANNOTATION: &str = "sopssecret/managed";
/// On an isindir SopsSecret: `"true"` skips the MAC check, where the admin allows it.
pub const UNVERIFIED_ANNOTATION: &str = "enseal.dev/unverified-mac";

/// Orders of key placements tried per guess of what the author encrypted (at most 16 guesses
/// per object). A guess that does not verify costs all of them, so a changed object costs
/// up to 16 times this; the unit tests below count what real objects need.
pub const ORDER_BUDGET: u64 = 200_000;

const ACTION: &str = "Decrypt";
const EVENT_DECRYPTED: &str = "Decrypted";

/// sops-secrets-operator's SopsSecret as stored: metadata, and the rest (apiVersion, kind,
/// spec, sops, status) kept as the API server gave it, since the MAC is checked against it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IsindirSopsSecret {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl kube::Resource for IsindirSopsSecret {
    type DynamicType = ();
    type Scope = kube::core::NamespaceResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        KIND.into()
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        GROUP.into()
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        VERSION.into()
    }
    fn api_version(_: &()) -> std::borrow::Cow<'_, str> {
        API_VERSION.into()
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        "sopssecrets".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl IsindirSopsSecret {
    fn spec(&self) -> Option<&Value> {
        self.fields.get("spec")
    }

    /// `spec.suspend`, read from the object as stored (the operator's rule: nothing is
    /// decrypted for a suspended object).
    pub fn suspended(&self) -> bool {
        self.spec().and_then(|s| s.get("suspend")) == Some(&Value::Bool(true))
    }

    fn status(&self) -> SopsSecretStatus {
        self.fields
            .get("status")
            .and_then(|s| serde_json::from_value(s.clone()).ok())
            .unwrap_or_default()
    }

    fn status_message(&self) -> Option<&str> {
        self.fields.get("status")?.get("message")?.as_str()
    }
}

pub struct Context {
    /// The SopsSecret reconciler's context (keys, tenancy, decrypt threads), with this kind's
    /// own field manager.
    pub sops: sops::Context,
    /// `--isindir-unverified-mac-namespaces`: where [`UNVERIFIED_ANNOTATION`] is honoured.
    pub unverified_allowed: TrustedNamespaces,
    /// `--isindir-default-enforce-ownership`: for objects without `spec.enforceOwnership`.
    pub default_enforce_ownership: bool,
    /// Objects whose MAC search failed, not searched again until they change.
    pub refused: Arc<RefusedMacs>,
}

/// Objects whose MAC was searched for and not found, by uid and generation (a change to the
/// object's content, its `sops` block included, makes a new generation), and whether the search
/// had to bind the namespace (the guesses differ). The search is the costly part of a refusal,
/// up to 16 guesses of [`ORDER_BUDGET`] orders each; without this a tenant could make the
/// controller repeat it at every retry for every object they create. The answer cannot change
/// while the object does not: the MAC depends only on the object and its data key, which the
/// object carries. Bounded: the oldest entries are forgotten first.
#[derive(Default)]
pub struct RefusedMacs {
    seen: std::sync::Mutex<std::collections::VecDeque<(RefusalKey, Refusal)>>,
    hits: std::sync::atomic::AtomicU64,
}

type RefusalKey = (String, i64, bool);

#[derive(Clone)]
enum Refusal {
    Mismatch,
    Content(String),
}

impl RefusedMacs {
    const CAPACITY: usize = 4096;

    fn key(obj: &IsindirSopsSecret, bind: bool) -> Option<RefusalKey> {
        Some((obj.metadata.uid.clone()?, obj.metadata.generation?, bind))
    }

    fn get(&self, key: &RefusalKey) -> Option<SopsError> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let (_, refusal) = seen.iter().find(|(k, _)| k == key)?;
        self.hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(match refusal {
            Refusal::Mismatch => SopsError::MacMismatch,
            Refusal::Content(text) => SopsError::Content(text.clone()),
        })
    }

    fn remember(&self, key: RefusalKey, e: &SopsError) {
        let refusal = match e {
            SopsError::MacMismatch => Refusal::Mismatch,
            SopsError::Content(text) => Refusal::Content(text.clone()),
            _ => return,
        };
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|(k, _)| k.0 != key.0); // an older generation of the same object
        if seen.len() >= Self::CAPACITY {
            seen.pop_front();
        }
        seen.push_back((key, refusal));
    }

    /// How many refusals were answered from memory (for tests).
    pub fn hits(&self) -> u64 {
        self.hits.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl AsRef<Cluster> for Context {
    fn as_ref(&self) -> &Cluster {
        &self.sops.cluster
    }
}

/// Whether the MAC is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacPolicy {
    Verify,
    /// The admin allows the annotation here and the object carries it.
    Unverified,
}

/// What a decrypted object asks for.
#[derive(Debug)]
pub struct Decrypted {
    pub secrets: Vec<DesiredSecret>,
    /// `spec.enforceOwnership`, from the verified object.
    pub enforce_ownership: Option<bool>,
    /// Key orders hashed to verify the MAC (0 when it was not checked).
    pub orders_tried: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Version {
    V1Alpha1,
    V1Alpha2,
    V1Alpha3,
}

impl Version {
    fn api_version(self) -> &'static str {
        match self {
            Version::V1Alpha1 => "isindir.github.com/v1alpha1",
            Version::V1Alpha2 => "isindir.github.com/v1alpha2",
            Version::V1Alpha3 => "isindir.github.com/v1alpha3",
        }
    }
}

/// Metadata the API server writes; never in an author's file.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "finalizers",
    "ownerReferences",
];

/// Labels and annotations deployment tools add to what they apply (key prefixes): tried both
/// with and without, since an author may also have written them.
const TOOL_KEYS: &[&str] = &[
    "kubectl.kubernetes.io/",
    "argocd.argoproj.io/",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "kustomize.toolkit.fluxcd.io/",
    "helm.toolkit.fluxcd.io/",
    "meta.helm.sh/",
    UNVERIFIED_ANNOTATION,
];

fn is_tool_key(key: &str) -> bool {
    TOOL_KEYS.iter().any(|p| key.starts_with(p))
}

/// The object as its author could have encrypted it: without status and server metadata
/// (kubectl's last-applied-configuration, a copy of the object, is server-side bookkeeping
/// too). Tool labels and annotations stay; the guesses drop them.
fn authored(obj: &IsindirSopsSecret) -> Value {
    let mut out = Map::new();
    for (k, v) in &obj.fields {
        if k != "status" {
            out.insert(k.clone(), v.clone());
        }
    }
    let mut meta = serde_json::to_value(&obj.metadata).unwrap_or_else(|_| json!({}));
    if let Some(m) = meta.as_object_mut() {
        for k in SERVER_METADATA {
            m.remove(*k);
        }
        if let Some(Value::Object(a)) = m.get_mut("annotations") {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
        for k in ["labels", "annotations"] {
            if m.get(k)
                .and_then(Value::as_object)
                .is_some_and(Map::is_empty)
            {
                m.remove(k);
            }
        }
    }
    // apiVersion and kind first, as authors write them (the order is searched anyway).
    let mut ordered = Map::new();
    for k in ["apiVersion", "kind"] {
        if let Some(v) = out.remove(k) {
            ordered.insert(k.to_owned(), v);
        }
    }
    ordered.insert("metadata".into(), meta);
    ordered.extend(out);
    Value::Object(ordered)
}

/// The orders of `metadata`'s own keys that pin the namespace's position: the conventional one
/// and the sorted one.
const PINNED_ORDERS: [&[&str]; 2] = [
    &["name", "generateName", "namespace", "labels", "annotations"],
    &["annotations", "generateName", "labels", "name", "namespace"],
];

/// One guess at what the author encrypted.
#[derive(Clone, Copy, Debug)]
struct Guess {
    version: Version,
    keep_namespace: bool,
    keep_tool_keys: bool,
    /// `Some(i)`: metadata's keys in `PINNED_ORDERS[i]`; `None`: in any order.
    pinned: Option<usize>,
}

fn without_tool_keys(meta: &mut Node) {
    for k in ["labels", "annotations"] {
        if let Some(Node::Map(items)) = meta.get_mut(k) {
            items.retain(|i| !matches!(i, Item::Pair(key, _) if is_tool_key(key)));
        }
        if matches!(meta.get(k), Some(Node::Map(items)) if items.is_empty()) {
            meta.remove(k);
        }
    }
}

fn has_tool_keys(meta: &Node) -> bool {
    ["labels", "annotations"].iter().any(|k| {
        meta.get(k)
            .map(render::pairs)
            .into_iter()
            .flatten()
            .any(|(key, _)| is_tool_key(key))
    })
}

/// The guess's tree, from the decrypted object.
fn guessed(tree: &Tree, g: Guess) -> Option<Tree> {
    let mut doc = tree.documents.first()?.clone();
    if let Some(v) = doc.get_mut("apiVersion") {
        *v = Node::str(g.version.api_version());
    }
    let meta = doc.get_mut("metadata")?;
    if !g.keep_namespace {
        meta.remove("namespace");
    }
    if !g.keep_tool_keys {
        without_tool_keys(meta);
    }
    if let Some(order) = g.pinned.map(|i| PINNED_ORDERS[i]) {
        // A sequence keeps its order in the MAC search: the namespace is then the value at its
        // own place, not any value of metadata.
        let pinned: Vec<Node> = order.iter().filter_map(|k| meta.get(k).cloned()).collect();
        *meta = Node::Seq(pinned);
    }
    Some(Tree {
        documents: vec![doc],
    })
}

/// The versions the object was written through, from its managedFields (each entry records
/// the apiVersion its manager used; status writes excluded), first writer first.
fn written_versions(obj: &IsindirSopsSecret) -> Vec<Version> {
    let mut out = Vec::new();
    for entry in obj.metadata.managed_fields.iter().flatten() {
        if entry.subresource.as_deref().is_some_and(|s| !s.is_empty()) {
            continue;
        }
        let version = match entry.api_version.as_deref() {
            Some("isindir.github.com/v1alpha1") => Version::V1Alpha1,
            Some("isindir.github.com/v1alpha2") => Version::V1Alpha2,
            Some("isindir.github.com/v1alpha3") => Version::V1Alpha3,
            _ => continue,
        };
        if !out.contains(&version) {
            out.push(version);
        }
    }
    out
}

/// The guesses to try, most likely first: the versions the object was written through first
/// (`written`), each with its pinned guesses (when the namespace must be bound: `bind`), then
/// the others. A guess that does not verify costs every order of the object, so only guesses
/// whose success changes the outcome are made: with `bind`, a namespace kept but not pinned
/// would verify and still not bind, so it is not tried (the object is then a MAC mismatch).
fn guesses(tree: &Tree, bind: bool, written: &[Version]) -> Vec<Guess> {
    let Some(doc) = tree.documents.first() else {
        return Vec::new();
    };
    let v1 = doc
        .get("spec")
        .is_some_and(|s| s.get("secret_templates").is_some() && s.get("secretTemplates").is_none());
    let possible: &[Version] = if v1 {
        &[Version::V1Alpha1]
    } else {
        &[Version::V1Alpha3, Version::V1Alpha2]
    };
    let mut versions: Vec<Version> = written
        .iter()
        .filter(|v| possible.contains(v))
        .copied()
        .collect();
    for v in possible {
        if !versions.contains(v) {
            versions.push(*v);
        }
    }
    let meta = doc.get("metadata");
    let has_namespace = meta.is_some_and(|m| m.get("namespace").is_some());
    let tools: &[bool] = if meta.is_some_and(has_tool_keys) {
        &[false, true]
    } else {
        &[true]
    };
    let namespaces: &[bool] = match (has_namespace, bind) {
        (true, false) => &[true, false],
        (true, true) => &[false],
        (false, _) => &[true],
    };
    let mut out = Vec::new();
    for version in versions {
        if bind && has_namespace {
            for &keep_tool_keys in tools {
                for pinned in 0..PINNED_ORDERS.len() {
                    out.push(Guess {
                        version,
                        keep_namespace: true,
                        keep_tool_keys,
                        pinned: Some(pinned),
                    });
                }
            }
        }
        for &keep_namespace in namespaces {
            for &keep_tool_keys in tools {
                out.push(Guess {
                    version,
                    keep_namespace,
                    keep_tool_keys,
                    pinned: None,
                });
            }
        }
    }
    out
}

fn mac_failed(e: KeyOrderError) -> SopsError {
    match e {
        KeyOrderError::NoOrder { .. } => SopsError::MacMismatch,
        // Too many orders, a missing MAC: the error says which, without values.
        other => SopsError::Content(format!("MAC not verified: {other}")),
    }
}

/// Decrypts `obj` (in `namespace`) with `keys`, checks its MAC unless `mac` says not to and the
/// tenancy rules, and returns the Secrets it describes. Runs on a decrypt thread.
pub fn decrypt(
    obj: &IsindirSopsSecret,
    namespace: &str,
    keys: Keys,
    mac: MacPolicy,
) -> Result<Decrypted, SopsError> {
    decrypt_remembering(obj, namespace, keys, mac, &RefusedMacs::default())
}

/// [`decrypt`], answering a MAC search that failed before for the same object from `refused`.
pub fn decrypt_remembering(
    obj: &IsindirSopsSecret,
    namespace: &str,
    keys: Keys,
    mac: MacPolicy,
    refused: &RefusedMacs,
) -> Result<Decrypted, SopsError> {
    let written = written_versions(obj);
    let bytes = serde_json::to_vec(&authored(obj)).map_err(|e| SopsError::Invalid {
        format: "json".into(),
        message: e.to_string(),
    })?;
    let (keyring, opener, key_secret) = render::keyring(keys);
    let failed = |e: FileError| {
        render::open_failed(e, "json", key_secret.clone(), |no_age| {
            if !no_age {
                return None;
            }
            let parsed = stores::store_for(Format::Json).parse(&bytes).ok()?;
            render::needs_of(&file::read_metadata(&parsed).ok()?)
        })
    };
    let parsed = stores::store_for(Format::Json)
        .parse(&bytes)
        .map_err(|e| failed(e.into()))?;
    let unverified = file::open(parsed, &keyring, &OpenOptions::default()).map_err(failed)?;
    let bind = opener == (Opener::Cluster { trusted: false });
    let (decrypted, bound, orders_tried) = match mac {
        MacPolicy::Unverified => (unverified.ignore_mac(), false, 0),
        MacPolicy::Verify => {
            let memo = RefusedMacs::key(obj, bind);
            if let Some(e) = memo.as_ref().and_then(|k| refused.get(k)) {
                return Err(e);
            }
            let mut tried_guesses = Vec::new();
            let (d, index, tried) = unverified
                .verify_candidates_in_any_key_order(ORDER_BUDGET, |tree| {
                    tried_guesses = guesses(tree, bind, &written);
                    tried_guesses
                        .iter()
                        .filter_map(|g| guessed(tree, *g))
                        .collect()
                })
                .map_err(|e| {
                    let e = mac_failed(e);
                    if let Some(k) = memo {
                        refused.remember(k, &e);
                    }
                    e
                })?;
            let guess = tried_guesses.get(index).copied();
            // Under mac_only_encrypted, values in the clear (the namespace) are not hashed.
            let bound = guess.is_some_and(|g| g.pinned.is_some() && g.keep_namespace)
                && !d.metadata.mac_only_encrypted;
            (d, bound, tried)
        }
    };
    let doc = decrypted
        .tree()
        .documents
        .first()
        .ok_or_else(|| SopsError::Content("the object is empty".into()))?;
    if bind && !bound {
        return Err(SopsError::NamespaceNotBound {
            namespace: namespace.to_owned(),
            why: match mac {
                MacPolicy::Unverified => "its MAC is not checked (enseal.dev/unverified-mac), so nothing in it is vouched for".into(),
                MacPolicy::Verify => "its metadata.namespace is not under the MAC in a place that pins it (write metadata with name, then namespace, or with all keys sorted, and do not use --mac-only-encrypted)".into(),
            },
        });
    }
    let spec = doc
        .get("spec")
        .ok_or_else(|| SopsError::Content("the object has no spec".into()))?;
    let enforce_ownership = spec
        .get("enforceOwnership")
        .and_then(Node::as_scalar)
        .and_then(|s| s.text())
        .map(|t| t == "true");
    Ok(Decrypted {
        secrets: templates(spec)?,
        enforce_ownership,
        orders_tried,
    })
}

fn text_of(node: &Node) -> Option<String> {
    match node {
        Node::Scalar(s) if s.kind != Kind::Null => Some(String::from_utf8_lossy(&s.value).into()),
        _ => None,
    }
}

fn string_map(
    node: Option<&Node>,
    what: &str,
    secret: &str,
) -> Result<BTreeMap<String, String>, SopsError> {
    let mut out = BTreeMap::new();
    for (k, v) in node.map(render::pairs).into_iter().flatten() {
        let t = text_of(v).ok_or_else(|| {
            SopsError::Content(format!(
                "secret template {secret:?}: {what}.{k} is not a string"
            ))
        })?;
        out.insert(k.clone(), t);
    }
    Ok(out)
}

/// Go's base64.StdEncoding.DecodeString, which the operator uses: padded, line breaks ignored,
/// trailing bits not checked.
fn go_std_base64(text: &str) -> Option<Vec<u8>> {
    const GO_STD: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let clean: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    GO_STD.decode(clean).ok()
}

/// The Secrets of `spec`, as the operator builds them (createKubeSecretFromTemplate): name from
/// the template, type `Opaque` unless given, its labels and annotations, and as values its
/// stringData plus its base64-decoded data (data wins on the same key). v1alpha1's
/// `secret_templates` take `data` as text, as the operator's v1alpha1 did.
pub fn templates(spec: &Node) -> Result<Vec<DesiredSecret>, SopsError> {
    let (list, text_data) = match (spec.get("secretTemplates"), spec.get("secret_templates")) {
        (Some(l), _) => (l, false),
        (None, Some(l)) => (l, true),
        (None, None) => {
            return Err(SopsError::Content(
                "spec.secretTemplates is missing: there is no Secret to make".into(),
            ))
        }
    };
    let Node::Seq(items) = list else {
        return Err(SopsError::Content(
            "spec.secretTemplates is not a list".into(),
        ));
    };
    let mut out: Vec<DesiredSecret> = Vec::new();
    for (i, t) in items
        .iter()
        .filter(|n| !matches!(n, Node::Comment(_)))
        .enumerate()
    {
        let name = t
            .get("name")
            .and_then(text_of)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                SopsError::Content(format!(
                    "secret template {} has no name: each template names its Secret",
                    i + 1
                ))
            })?;
        let mut data: BTreeMap<String, ByteString> =
            string_map(t.get("stringData"), "stringData", &name)?
                .into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect();
        for (k, v) in t.get("data").map(render::pairs).into_iter().flatten() {
            let value = text_of(v).ok_or_else(|| {
                SopsError::Content(format!(
                    "secret template {name:?}: data.{k} is not a string"
                ))
            })?;
            let bytes = if text_data {
                value.into_bytes()
            } else {
                go_std_base64(&value).ok_or_else(|| {
                    SopsError::Content(format!(
                        "secret template {name:?}: data.{k} is not a valid base64 string"
                    ))
                })?
            };
            data.insert(k.clone(), ByteString(bytes));
        }
        let secret = DesiredSecret {
            type_: Some(
                t.get("type")
                    .and_then(text_of)
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| "Opaque".into()),
            ),
            labels: string_map(t.get("labels"), "labels", &name)?,
            annotations: string_map(t.get("annotations"), "annotations", &name)?,
            data,
            name,
        };
        // Two templates for one Secret: the operator writes both in turn, so the last stays.
        out.retain(|s| s.name != secret.name);
        out.push(secret);
    }
    Ok(out)
}

/// sops-secrets-operator's status message for an outcome (its printer column and what its
/// users' alerts match).
fn operator_message(outcome: &Result<Vec<String>, (&str, &str)>) -> &'static str {
    match outcome {
        Ok(_) => "Healthy",
        Err(("SecretNotOwned", _)) => "Child secret is not owned by controller error",
        Err(("InvalidContent", _)) => "New child secret creation error",
        Err(("UpdateFailed" | "Conflict", _)) => "Child secret update error",
        Err(("ApiError", _)) => "Unknown Error",
        Err(_) => "Decryption error",
    }
}

pub async fn reconcile(
    obj: Arc<IsindirSopsSecret>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let (Some(namespace), Some(name)) = (obj.namespace(), obj.metadata.name.clone()) else {
        return Err(ReconcileError::NoName { kind: KIND });
    };
    if obj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if obj.suspended() {
        // As the operator: nothing is decrypted or written, the Secrets stay.
        let result = if obj.status_message() == Some(SUSPENDED) {
            Ok(())
        } else {
            let api: Api<IsindirSopsSecret> =
                Api::namespaced(ctx.sops.cluster.client.clone(), &namespace);
            status::patch_status(&api, &name, &json!({ "message": SUSPENDED }), &[]).await
        };
        ctx.sops.cluster.metrics.reconciled(started.elapsed());
        return result.map(|()| Action::await_change());
    }
    let outcome = sync(&obj, &ctx, &namespace, &name)
        .await
        .map(|(changed, names)| {
            let note = format!("decrypted into Secret(s) {}", names.join(", "));
            (names, changed.then_some((EVENT_DECRYPTED, note)))
        });
    let action = status::report(&ctx.sops.cluster, &*obj, ACTION, &outcome).await;
    let written = match &outcome {
        Ok((names, _)) => Ok(names.clone()),
        Err(f) => Err((f.reason, f.message.as_str())),
    };
    let result = write_status(&ctx, &obj, &namespace, &name, written)
        .await
        .map(|()| action);
    ctx.sops.cluster.metrics.reconciled(started.elapsed());
    result
}

const SUSPENDED: &str = "Reconciliation is suspended";

async fn sync(
    obj: &IsindirSopsSecret,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<(bool, Vec<String>), Failure> {
    let size = serde_json::to_vec(&obj.fields)
        .map(|b| b.len())
        .unwrap_or(0);
    if size > MAX_ENCRYPTED_BYTES {
        return Err(too_large(size));
    }
    let keys = cluster_keys(&ctx.sops.keys, &ctx.sops.trusted, namespace);
    let unverified = obj
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(UNVERIFIED_ANNOTATION))
        .is_some_and(|v| v == "true");
    let mac = if unverified && ctx.unverified_allowed.trusts(namespace) {
        MacPolicy::Unverified
    } else {
        MacPolicy::Verify
    };
    let own = obj.clone();
    let own_namespace = namespace.to_owned();
    let memo = ctx.refused.clone();
    let decrypted = ctx
        .sops
        .decrypts
        .run(move || decrypt_remembering(&own, &own_namespace, keys, mac, &memo))
        .await
        .map_err(|Crashed| crashed())?
        .map_err(decrypt_failed)?;
    let enforce = decrypted
        .enforce_ownership
        .unwrap_or(ctx.default_enforce_ownership);
    let previous = obj.status().secrets;
    let take = move |meta: &ObjectMeta| {
        enforce
            || meta
                .annotations
                .as_ref()
                .and_then(|a| a.get(MANAGED_ANNOTATION))
                .is_some_and(|v| v == "true")
    };
    let owner = Owner {
        reference: OwnerReference {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            name: name.to_owned(),
            uid: obj.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        },
        previous: &previous,
        may_take: &take,
    };
    write_secrets(&ctx.sops, namespace, &owner, decrypted.secrets).await
}

async fn write_status(
    ctx: &Context,
    obj: &IsindirSopsSecret,
    namespace: &str,
    name: &str,
    outcome: Result<Vec<String>, (&str, &str)>,
) -> Result<(), ReconcileError> {
    let message = operator_message(&outcome);
    let previous = obj.status();
    let next = sops::next_status(&previous, obj.metadata.generation, outcome);
    if next.is_none() && obj.status_message() == Some(message) {
        return Ok(());
    }
    let mut body = serde_json::to_value(next.unwrap_or(previous)).unwrap_or_else(|_| json!({}));
    if let Some(m) = body.as_object_mut() {
        m.insert("message".into(), message.into());
    }
    let api: Api<IsindirSopsSecret> = Api::namespaced(ctx.sops.cluster.client.clone(), namespace);
    status::patch_status(&api, name, &body, &["conditions", "secrets"]).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use enseal_sops::keys::age::AgeIdentities;
    use enseal_sops::keys::openpgp::PgpSecretKeys;

    fn yaml(text: &str) -> Node {
        stores::store_for(Format::Yaml)
            .parse(text.as_bytes())
            .unwrap()
            .tree
            .documents
            .remove(0)
    }

    fn value(s: &DesiredSecret, k: &str) -> String {
        String::from_utf8(s.data[k].0.clone()).unwrap()
    }

    /// createKubeSecretFromTemplate: stringData and decoded data merged (data wins), type
    /// Opaque by default, labels and annotations copied; v1alpha1 data is text.
    #[test]
    fn templates_become_the_operators_secrets() {
        let spec = yaml(
            "secretTemplates:\n- name: one\n  labels: {a: b}\n  annotations: {c: d}\n  stringData: {x: plain, same: from-stringData}\n  data: {y: ZGF0YS12YWx1ZTE=, same: ZnJvbS1kYXRh}\n- name: two\n  type: kubernetes.io/dockerconfigjson\n  stringData: {.dockerconfigjson: '{}'}\n",
        );
        let out = templates(&spec).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].name, "one");
        assert_eq!(out[0].type_.as_deref(), Some("Opaque"));
        assert_eq!(out[0].labels["a"], "b");
        assert_eq!(out[0].annotations["c"], "d");
        assert_eq!(value(&out[0], "x"), "plain");
        assert_eq!(value(&out[0], "y"), "data-value1");
        assert_eq!(value(&out[0], "same"), "from-data");
        assert_eq!(
            out[1].type_.as_deref(),
            Some("kubernetes.io/dockerconfigjson")
        );
        let v1 = yaml("secret_templates:\n- name: old\n  data: {token: not-base64!}\n");
        assert_eq!(value(&templates(&v1).unwrap()[0], "token"), "not-base64!");
    }

    #[test]
    fn bad_templates_are_refused_without_quoting_values() {
        let e = templates(&yaml(
            "secretTemplates:\n- name: a\n  data: {k: 'SECRET!!'}\n",
        ))
        .unwrap_err();
        assert_eq!(e.reason(), "InvalidContent");
        assert!(!e.to_string().contains("SECRET"), "{e}");
        assert!(templates(&yaml("secretTemplates:\n- stringData: {k: v}\n")).is_err());
        assert!(templates(&yaml("suspend: false\n")).is_err());
        // Go's StdEncoding: line breaks ignored, trailing bits not checked.
        assert_eq!(go_std_base64("ZGF0\nYQ==").unwrap(), b"data");
        assert_eq!(go_std_base64("YR==").unwrap(), b"a");
    }

    /// An object as the API server gives it back: keys sorted, apiVersion the served one,
    /// server metadata and a tool label added.
    fn stored(encrypted: &Value, namespace: &str) -> IsindirSopsSecret {
        let mut v = encrypted.clone();
        v["apiVersion"] = json!(API_VERSION);
        let meta = v["metadata"].as_object_mut().unwrap();
        meta.insert("namespace".into(), json!(namespace));
        meta.insert("uid".into(), json!("1234"));
        meta.insert("resourceVersion".into(), json!("99"));
        meta.insert(
            "managedFields".into(),
            // The API server records the version each writer used; a status write is the
            // controller's.
            json!([
                {"manager": "kubectl", "operation": "Update", "apiVersion": encrypted["apiVersion"]},
                {"manager": "enseal", "operation": "Update", "apiVersion": API_VERSION, "subresource": "status"}
            ]),
        );
        // Flux's label beside the author's.
        meta.entry("labels")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .unwrap()
            .insert("kustomize.toolkit.fluxcd.io/name".into(), json!("apps"));
        v["status"] = json!({"message": "Healthy"});
        let sorted: Value = serde_json::from_str(&sorted_json(&v)).unwrap();
        serde_json::from_value(sorted).unwrap()
    }

    fn sorted_json(v: &Value) -> String {
        fn sort(v: &Value) -> Value {
            match v {
                Value::Object(m) => {
                    let mut keys: Vec<_> = m.keys().collect();
                    keys.sort();
                    Value::Object(keys.into_iter().map(|k| (k.clone(), sort(&m[k]))).collect())
                }
                Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
                other => other.clone(),
            }
        }
        sort(v).to_string()
    }

    /// `plain` (YAML) encrypted by enseal as `sops -e --encrypted-suffix Templates` would, for
    /// a new age key: the object as JSON and the identity.
    fn encrypted(plain: &str) -> (Value, String) {
        use enseal_sops::format::crypt_rule::{CryptRule, CryptRuleKind};

        let (identity, recipient) = enseal_sops::keys::age::generate();
        let rule = CryptRule::new(CryptRuleKind::EncryptedSuffix, "Templates").unwrap();
        let bytes = crate::sops_secret::render::tests::encrypted_yaml(plain, &recipient, rule);
        let value: Value = serde_norway::from_slice(&bytes).unwrap();
        (value, identity.to_string())
    }

    fn cluster(identity: &str, trusted: bool) -> Keys {
        Keys::Cluster {
            age: AgeIdentities::parse("test", identity).unwrap(),
            pgp: PgpSecretKeys::default(),
            cloud: Default::default(),
            trusted,
        }
    }

    const BOUND: &str = "apiVersion: isindir.github.com/v1alpha2\nkind: SopsSecret\nmetadata:\n  name: app\n  namespace: team-a\nspec:\n  suspend: false\n  secretTemplates:\n    - name: db\n      labels: {tier: db}\n      stringData:\n        user: admin\n        password: S3CRET\n      data:\n        token: dG9rZW4=\n";

    #[test]
    fn a_stored_object_verifies_whatever_the_server_did_to_its_order_and_metadata() {
        let (enc, age) = encrypted(BOUND);
        let obj = stored(&enc, "team-a");
        let out = decrypt(&obj, "team-a", cluster(&age, false), MacPolicy::Verify).unwrap();
        assert_eq!(out.secrets[0].name, "db");
        assert_eq!(value(&out.secrets[0], "password"), "S3CRET");
        assert_eq!(value(&out.secrets[0], "token"), "token");
        assert_eq!(out.enforce_ownership, None);
    }

    #[test]
    fn a_refused_object_is_not_searched_again_until_it_changes() {
        let (enc, age) = encrypted(BOUND);
        let mut changed = enc.clone();
        changed["spec"]["suspend"] = json!(true);
        let mut obj = stored(&changed, "team-a");
        obj.metadata.generation = Some(1);
        let refused = RefusedMacs::default();
        let run = |obj: &IsindirSopsSecret| {
            decrypt_remembering(
                obj,
                "team-a",
                cluster(&age, true),
                MacPolicy::Verify,
                &refused,
            )
        };
        assert_eq!(run(&obj).unwrap_err().reason(), "MacMismatch");
        assert_eq!(refused.hits(), 0, "the first refusal searches");
        assert_eq!(run(&obj).unwrap_err().reason(), "MacMismatch");
        assert_eq!(
            refused.hits(),
            1,
            "the same object again is answered from memory"
        );
        // Fixed by its author: a new generation is searched, and verifies.
        let mut fixed = stored(&enc, "team-a");
        fixed.metadata.generation = Some(2);
        assert_eq!(run(&fixed).unwrap().secrets[0].name, "db");
        assert_eq!(refused.hits(), 1);
        // Without a uid or generation nothing is remembered.
        obj.metadata.generation = None;
        run(&obj).unwrap_err();
        run(&obj).unwrap_err();
        assert_eq!(refused.hits(), 1);
    }

    #[test]
    fn a_changed_value_or_a_moved_file_is_refused() {
        let (enc, age) = encrypted(BOUND);
        // suspend flipped in the clear: the MAC covers it.
        let mut changed = enc.clone();
        changed["spec"]["suspend"] = json!(true);
        let e = decrypt(
            &stored(&changed, "team-a"),
            "team-a",
            cluster(&age, true),
            MacPolicy::Verify,
        )
        .unwrap_err();
        assert_eq!(e.reason(), "MacMismatch", "{e}");
        // An encrypted value dropped.
        let mut dropped = enc.clone();
        dropped["spec"]["secretTemplates"][0]["stringData"]
            .as_object_mut()
            .unwrap()
            .remove("user");
        let e = decrypt(
            &stored(&dropped, "team-a"),
            "team-a",
            cluster(&age, true),
            MacPolicy::Verify,
        )
        .unwrap_err();
        assert_eq!(e.reason(), "MacMismatch", "{e}");
        assert!(!e.to_string().contains("S3CRET"));
        // Team A's object in team-b: its namespace was hashed.
        let e = decrypt(
            &stored(&enc, "team-b"),
            "team-b",
            cluster(&age, true),
            MacPolicy::Verify,
        )
        .unwrap_err();
        assert_eq!(e.reason(), "MacMismatch", "{e}");
        // Where the admin allows it, the annotation skips the MAC, and binds nothing.
        let skipped = decrypt(
            &stored(&dropped, "team-a"),
            "team-a",
            cluster(&age, true),
            MacPolicy::Unverified,
        )
        .unwrap();
        assert_eq!(skipped.secrets.len(), 1);
        let e = decrypt(
            &stored(&dropped, "team-a"),
            "team-a",
            cluster(&age, false),
            MacPolicy::Unverified,
        )
        .unwrap_err();
        assert_eq!(e.reason(), "NamespaceNotBound", "{e}");
    }

    /// Outside the trusted namespaces the controller's keys need the namespace under the MAC,
    /// at a place that says it is the namespace: not a `metadata.name` equal to it.
    #[test]
    fn only_a_pinned_namespace_binds_an_object_to_it() {
        let unbound = BOUND.replace("  namespace: team-a\n", "");
        let (enc, age) = encrypted(&unbound);
        let e = decrypt(
            &stored(&enc, "team-b"),
            "team-b",
            cluster(&age, false),
            MacPolicy::Verify,
        )
        .unwrap_err();
        assert_eq!(e.reason(), "NamespaceNotBound", "{e}");
        assert!(decrypt(
            &stored(&enc, "team-b"),
            "team-b",
            cluster(&age, true),
            MacPolicy::Verify
        )
        .is_ok());
        // metadata {name: team-b, namespace: x} stored as {name: x, namespace: team-b}.
        let swapped = BOUND.replace(
            "name: app\n  namespace: team-a",
            "name: team-b\n  namespace: team-x",
        );
        let (enc, age) = encrypted(&swapped);
        let mut moved = enc.clone();
        moved["metadata"]["name"] = json!("team-x");
        let e = decrypt(
            &stored(&moved, "team-b"),
            "team-b",
            cluster(&age, false),
            MacPolicy::Verify,
        )
        .unwrap_err();
        assert_eq!(e.reason(), "MacMismatch", "{e}");
        // Its MAC does verify in some key order (the swap): only the pinning refuses it.
        assert!(decrypt(
            &stored(&moved, "team-b"),
            "team-b",
            cluster(&age, true),
            MacPolicy::Verify
        )
        .is_ok());
        // Authored in the sorted order: pinned too.
        let sorted = "apiVersion: isindir.github.com/v1alpha3\nkind: SopsSecret\nmetadata:\n  labels: {a: b}\n  name: app\n  namespace: team-a\nspec:\n  secretTemplates:\n    - name: db\n      stringData: {password: S3CRET}\n";
        let (enc, age) = encrypted(sorted);
        assert!(decrypt(
            &stored(&enc, "team-a"),
            "team-a",
            cluster(&age, false),
            MacPolicy::Verify
        )
        .is_ok());
    }

    /// The operator README's own example (four templates, written in its order, which sorting
    /// changes in every template) verifies within the budget, in both versions that use it;
    /// the orders hashed are what an object of that size costs.
    #[test]
    fn the_operators_readme_example_verifies_within_the_budget() {
        let spec = "  suspend: false\n  secretTemplates:\n    - name: my-secret-name-1\n      labels:\n        label1: value1\n      annotations:\n        key1: value1\n      stringData:\n        data-name0: data-value0\n      data:\n        data-name1: ZGF0YS12YWx1ZTE=\n    - name: jenkins-secret\n      labels:\n        \"jenkins.io/credentials-type\": \"usernamePassword\"\n      annotations:\n        \"jenkins.io/credentials-description\": \"credentials from Kubernetes\"\n      stringData:\n        username: myUsername\n        password: 'Pa$$word'\n    - name: some-token\n      stringData:\n        token: Wb4ziZdELkdUf6m6KtNd7iRjjQRvSeJno5meH4NAGHFmpqJyEsekZ2WjX232s4Gj\n    - name: docker-login\n      type: 'kubernetes.io/dockerconfigjson'\n      stringData:\n        .dockerconfigjson: '{\"auths\":{}}'\n";
        for version in ["v1alpha3", "v1alpha2"] {
            let text = format!("apiVersion: isindir.github.com/{version}\nkind: SopsSecret\nmetadata:\n  name: example-sopssecret\n  namespace: team-a\nspec:\n{spec}");
            let (enc, age) = encrypted(&text);
            let out = decrypt(
                &stored(&enc, "team-a"),
                "team-a",
                cluster(&age, false),
                MacPolicy::Verify,
            )
            .unwrap_or_else(|e| panic!("{version}: {e}"));
            assert_eq!(out.secrets.len(), 4);
            assert!(out.orders_tried > 1 && out.orders_tried < ORDER_BUDGET * 16);
            eprintln!("{version}: {} orders hashed", out.orders_tried);
        }
    }
}
