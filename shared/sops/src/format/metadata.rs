//! The `sops` metadata block: who can open the data key, when the file was last written, the
//! encrypted MAC, the crypt rule, and the format version.
//!
//! Stores hand it over as a generic [`Node`]; this module gives it meaning and writes it back in
//! the field order sops uses, so enseal's files diff cleanly against sops' own.

use crate::format::crypt_rule::{CryptRule, CryptRuleError, CryptRuleKind};
use crate::format::tree::{Item, Kind, Node, Scalar};

/// The version written into files. sops requires strict `X.Y.Z` and refuses files whose
/// version it cannot parse, so enseal writes the sops release whose format it implements.
pub const FORMAT_VERSION: &str = "3.11.0";

#[derive(Clone, Debug, PartialEq)]
pub struct Metadata {
    pub key_groups: Vec<KeyGroup>,
    pub shamir_threshold: Option<usize>,
    pub last_modified: String,
    /// The encrypted MAC (`ENC[...]`), empty before the first encryption completes.
    pub mac: String,
    pub crypt_rule: CryptRule,
    pub mac_only_encrypted: bool,
    pub version: String,
}

/// One key group: every master key in it can open the same data key (or Shamir share).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct KeyGroup {
    pub age: Vec<AgeStanza>,
    pub kms: Vec<KmsStanza>,
    pub pgp: Vec<PgpStanza>,
    pub hc_vault: Vec<VaultStanza>,
    pub gcp_kms: Vec<GcpKmsStanza>,
    pub azure_kv: Vec<AzureKvStanza>,
    /// Master keys enseal cannot open, by field name: sops 3.12's `hckms` (HuaweiCloud KMS),
    /// and the key lists of sources a later sops may add. Kept, not dropped as sops drops
    /// fields it does not know: each entry wraps this same data key, so while the data key
    /// stays (edit, set, updatekeys) it still opens the file for whoever holds that key, and
    /// dropping it would lock them out without a word. Written back between gcp_kms and
    /// azure_kv, where sops 3.12+ writes hckms (stores.go `metadata`).
    pub other: Vec<(String, Node)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AgeStanza {
    pub recipient: String,
    /// The data key (or share) age-encrypted to `recipient`, ASCII-armored.
    pub enc: String,
}

/// A PGP master key (sops' `pgpkey`: fields written in the order `created_at`, `enc`, `fp`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PgpStanza {
    /// The key's fingerprint as it was given (sops writes it back unchanged).
    pub fp: String,
    pub created_at: String,
    /// The data key (or share) as an ASCII-armored OpenPGP message, white space trimmed.
    pub enc: String,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct KmsStanza {
    pub arn: String,
    pub role: Option<String>,
    pub context: Vec<(String, String)>,
    pub created_at: String,
    /// Base64 of the KMS CiphertextBlob.
    pub enc: String,
    pub aws_profile: String,
}

/// A Vault / OpenBao transit master key (sops' `hc_vault` entry).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct VaultStanza {
    /// Scheme and host of the server (`https://vault.example.com:8200`).
    pub vault_address: String,
    /// The transit engine's mount path (`transit`).
    pub engine_path: String,
    pub key_name: String,
    pub created_at: String,
    /// The transit ciphertext of the data key (`vault:v1:...`), as Vault returned it.
    pub enc: String,
}

/// A GCP Cloud KMS master key (sops' `gcp_kms` entry, stores.go `gcpkmskey`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct GcpKmsStanza {
    /// `projects/P/locations/L/keyRings/R/cryptoKeys/K`.
    pub resource_id: String,
    pub created_at: String,
    /// Standard base64 of the KMS ciphertext.
    pub enc: String,
}

/// An Azure Key Vault master key (sops' `azure_kv` entry, stores.go `azkvkey`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct AzureKvStanza {
    /// The vault (`https://myvault.vault.azure.net`), without a trailing slash.
    pub vault_url: String,
    pub name: String,
    /// The key version; empty only before the key is looked up (sops writes it resolved).
    pub version: String,
    pub created_at: String,
    /// The RSA-OAEP-256 ciphertext of the data key, base64url without padding.
    pub enc: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("sops metadata: missing field `{0}`")]
    Missing(&'static str),
    #[error("sops metadata: field `{field}` {problem}")]
    Invalid { field: String, problem: String },
    #[error("sops metadata: {0}")]
    CryptRule(#[from] CryptRuleError),
    #[error("sops metadata: version {0:?} is not a semantic version X.Y.Z")]
    Version(String),
}

const KEY_FIELDS: [&str; 7] = [
    "kms", "gcp_kms", "hckms", "azure_kv", "hc_vault", "age", "pgp",
];

/// The `sops` fields that are not key lists, which a kept unknown key list must not be named
/// (a one-group file writes its key lists at the top level, beside these).
const OTHER_FIELDS: [&str; 5] = [
    "key_groups",
    "shamir_threshold",
    "lastmodified",
    "mac",
    "version",
];

/// What messages call the source of a key field enseal cannot open.
pub fn key_source_name(field: &str) -> &str {
    match field {
        "hckms" => "HuaweiCloud KMS",
        other => other,
    }
}

/// A master key of a group that enseal keeps but cannot open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedKey {
    /// The metadata field it is listed under (`hckms`).
    pub field: String,
    /// The key as sops names it (an hckms `key_id`), or empty when the source is unknown.
    pub id: String,
}

impl UnsupportedKey {
    /// HuaweiCloud KMS key IDs (`region:key-uuid`) from a comma-separated list or a list's
    /// items, trimmed, empty ones skipped, as sops' hckms.NewMasterKeyFromKeyIDString.
    pub fn hckms_list<'a>(lists: impl IntoIterator<Item = &'a str>) -> Vec<UnsupportedKey> {
        lists
            .into_iter()
            .flat_map(|list| list.split(','))
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(|id| UnsupportedKey {
                field: "hckms".to_owned(),
                id: id.to_owned(),
            })
            .collect()
    }

    /// `hckms cn-north-4:0d04...`, as messages name master keys.
    pub fn describe(&self) -> String {
        if self.id.is_empty() {
            self.field.clone()
        } else {
            format!("{} {}", self.field, self.id)
        }
    }

    /// Why enseal cannot use it (`HuaweiCloud KMS is not supported by enseal`).
    pub fn reason(&self) -> String {
        format!(
            "{} is not supported by enseal",
            key_source_name(&self.field)
        )
    }
}

impl KeyGroup {
    /// The group's master keys that enseal keeps but cannot open, in file order.
    pub fn unsupported_keys(&self) -> Vec<UnsupportedKey> {
        self.unsupported_entries().map(|(key, _)| key).collect()
    }

    /// Puts `from`'s entries for `keys` in this group, which must wrap the same secret (the
    /// same data key: `updatekeys` of a one-group file), so that they still open the file.
    /// Gives back the first key `from` has no entry for: enseal cannot wrap for it.
    pub fn keep_unsupported(
        &mut self,
        from: &KeyGroup,
        keys: &[UnsupportedKey],
    ) -> Result<(), UnsupportedKey> {
        for key in keys {
            let Some((_, entry)) = from.unsupported_entries().find(|(k, _)| k == key) else {
                return Err(key.clone());
            };
            match self.other.iter_mut().find(|(field, _)| *field == key.field) {
                Some((_, Node::Seq(entries))) => entries.push(entry.clone()),
                _ => self
                    .other
                    .push((key.field.clone(), Node::Seq(vec![entry.clone()]))),
            }
        }
        Ok(())
    }

    /// Drops this group's entries for `keys` (rotate's `--rm-hckms`).
    pub fn remove_unsupported(&mut self, keys: &[UnsupportedKey]) {
        for (field, node) in &mut self.other {
            if let Node::Seq(entries) = node {
                entries.retain(|entry| {
                    let id = match field.as_str() {
                        "hckms" => entry
                            .get("key_id")
                            .and_then(|n| scalar_text(n, "key_id").ok()),
                        _ => None,
                    };
                    let key = UnsupportedKey {
                        field: field.clone(),
                        id: id.unwrap_or_default(),
                    };
                    matches!(entry, Node::Comment(_)) || !keys.contains(&key)
                });
            }
        }
        self.other
            .retain(|(_, node)| !matches!(node, Node::Seq(entries) if entries.iter().all(|e| matches!(e, Node::Comment(_)))));
    }

    fn unsupported_entries(&self) -> impl Iterator<Item = (UnsupportedKey, &Node)> {
        self.other.iter().flat_map(|(field, node)| {
            let entries = match node {
                Node::Seq(entries) => entries.as_slice(),
                _ => &[],
            };
            entries
                .iter()
                .filter(|n| !matches!(n, Node::Comment(_)))
                .map(move |entry| {
                    let id = match field.as_str() {
                        "hckms" => entry.get("key_id"),
                        _ => None,
                    };
                    let key = UnsupportedKey {
                        field: field.clone(),
                        id: id
                            .and_then(|n| scalar_text(n, "key_id").ok())
                            .unwrap_or_default(),
                    };
                    (key, entry)
                })
        })
    }
}

impl Metadata {
    pub fn new(key_groups: Vec<KeyGroup>, crypt_rule: CryptRule) -> Metadata {
        Metadata {
            key_groups,
            shamir_threshold: None,
            last_modified: now_rfc3339(),
            mac: String::new(),
            crypt_rule,
            mac_only_encrypted: false,
            version: FORMAT_VERSION.to_string(),
        }
    }

    pub fn from_node(node: &Node) -> Result<Metadata, MetadataError> {
        let Node::Map(items) = node else {
            return Err(invalid("sops", "is not a mapping"));
        };
        let mut top_group = KeyGroup::default();
        let mut key_groups = None;
        let mut shamir_threshold = None;
        let mut last_modified = None;
        let mut mac = None;
        let mut rules: Vec<(CryptRuleKind, String)> = Vec::new();
        let mut mac_only_encrypted = false;
        let mut version = None;
        for item in items {
            let Item::Pair(key, value) = item else {
                continue;
            };
            match key.as_str() {
                "key_groups" => {
                    let Node::Seq(groups) = value else {
                        return Err(invalid("key_groups", "is not a list"));
                    };
                    let mut parsed = Vec::new();
                    for group in groups {
                        let mut g = KeyGroup::default();
                        let Node::Map(fields) = group else {
                            return Err(invalid(
                                "key_groups",
                                "has an entry that is not a mapping",
                            ));
                        };
                        // The key types sops knows, and what looks like the key list of a
                        // source a later sops added (see `is_unknown_key_list`); any other
                        // field is ignored, as sops ignores it. The same test applies to the
                        // flat (one group) form, so what a one-group file writes at the top
                        // level is read back from there.
                        for field in fields {
                            if let Item::Pair(k, v) = field {
                                if KEY_FIELDS.contains(&k.as_str()) || is_unknown_key_list(k, v) {
                                    read_key_field(&mut g, k, v)?;
                                }
                            }
                        }
                        parsed.push(g);
                    }
                    key_groups = Some(parsed);
                }
                "shamir_threshold" => {
                    let text = scalar_text(value, "shamir_threshold")?;
                    shamir_threshold = Some(
                        text.parse::<usize>()
                            .map_err(|_| invalid("shamir_threshold", "is not a number"))?,
                    )
                    .filter(|t| *t > 0);
                }
                "lastmodified" => last_modified = Some(scalar_text(value, "lastmodified")?),
                "mac" => mac = Some(scalar_text(value, "mac")?),
                "mac_only_encrypted" => {
                    mac_only_encrypted = scalar_text(value, "mac_only_encrypted")? == "true"
                }
                "version" => version = Some(scalar_text(value, "version")?),
                k if KEY_FIELDS.contains(&k) => read_key_field(&mut top_group, k, value)?,
                k => {
                    if let Some(kind) = CryptRuleKind::from_field(k) {
                        rules.push((kind, scalar_text(value, kind.field())?));
                    } else if is_unknown_key_list(k, value) {
                        read_key_field(&mut top_group, k, value)?;
                    }
                }
            }
        }
        let key_groups = match key_groups {
            Some(groups) if !groups.is_empty() => groups,
            _ => vec![top_group],
        };
        let crypt_rule = CryptRule::from_fields(rules.iter().map(|(k, v)| (*k, Some(v.as_str()))))?
            .unwrap_or_default();
        let version = version.ok_or(MetadataError::Missing("version"))?;
        if !is_semver(&version) {
            return Err(MetadataError::Version(version));
        }
        Ok(Metadata {
            key_groups,
            shamir_threshold,
            last_modified: last_modified.ok_or(MetadataError::Missing("lastmodified"))?,
            // A file without `mac` is read (sops reads it as ""), and then fails MAC
            // verification with exit 51 unless the MAC is ignored, as in sops.
            mac: mac.unwrap_or_default(),
            crypt_rule,
            mac_only_encrypted,
            version,
        })
    }

    /// The metadata as a generic mapping, fields in sops' order.
    pub fn to_node(&self) -> Node {
        let mut items = Vec::new();
        let pair = |k: &str, v: Node| Item::Pair(k.to_string(), v);
        if let Some(t) = self.shamir_threshold {
            items.push(pair(
                "shamir_threshold",
                Node::Scalar(Scalar::new(Kind::Int, t.to_string())),
            ));
        }
        if self.key_groups.len() > 1 {
            let groups = self
                .key_groups
                .iter()
                .map(|g| {
                    let mut fields = Vec::new();
                    write_key_fields(g, &mut fields);
                    if !g.pgp.is_empty() {
                        fields.push(Item::Pair("pgp".into(), pgp_entries(&g.pgp)));
                    }
                    Node::Map(fields)
                })
                .collect();
            items.push(pair("key_groups", Node::Seq(groups)));
        } else if let Some(g) = self.key_groups.first() {
            write_key_fields(g, &mut items);
        }
        items.push(pair("lastmodified", Node::str(&self.last_modified)));
        items.push(pair("mac", Node::str(&self.mac)));
        // sops' YAML and JSON stores write the metadata fields sorted by name: pgp comes after
        // mac here and after age inside a key group (as sops 3.13.3 writes them).
        if let (1, Some(g)) = (self.key_groups.len(), self.key_groups.first()) {
            if !g.pgp.is_empty() {
                items.push(pair("pgp", pgp_entries(&g.pgp)));
            }
        }
        items.push(pair(
            self.crypt_rule.field(),
            Node::str(self.crypt_rule.value()),
        ));
        if self.mac_only_encrypted {
            items.push(pair(
                "mac_only_encrypted",
                Node::Scalar(Scalar::new(Kind::Bool, "true")),
            ));
        }
        items.push(pair("version", Node::str(&self.version)));
        Node::Map(items)
    }

    /// Marks the file as written now.
    pub fn touch(&mut self) {
        self.last_modified = now_rfc3339();
        self.version = FORMAT_VERSION.to_string();
    }
}

fn read_key_field(group: &mut KeyGroup, key: &str, value: &Node) -> Result<(), MetadataError> {
    match key {
        "age" => {
            for entry in list(value, "age")? {
                group.age.push(AgeStanza {
                    recipient: field(entry, "age", "recipient")?,
                    enc: field(entry, "age", "enc")?,
                });
            }
        }
        "kms" => {
            for entry in list(value, "kms")? {
                let context = match entry.get("context") {
                    Some(Node::Map(items)) => items
                        .iter()
                        .filter_map(|i| match i {
                            Item::Pair(k, v) => Some((k, v)),
                            Item::Comment(_) => None,
                        })
                        .map(|(k, v)| Ok((k.clone(), scalar_text(v, "kms.context")?)))
                        .collect::<Result<_, MetadataError>>()?,
                    _ => Vec::new(),
                };
                group.kms.push(KmsStanza {
                    arn: field(entry, "kms", "arn")?,
                    role: optional_field(entry, "role")?.filter(|r| !r.is_empty()),
                    context,
                    created_at: optional_field(entry, "created_at")?.unwrap_or_default(),
                    enc: field(entry, "kms", "enc")?,
                    aws_profile: optional_field(entry, "aws_profile")?.unwrap_or_default(),
                });
            }
        }
        "hc_vault" => {
            for entry in list(value, "hc_vault")? {
                group.hc_vault.push(VaultStanza {
                    vault_address: field(entry, "hc_vault", "vault_address")?,
                    engine_path: field(entry, "hc_vault", "engine_path")?,
                    key_name: field(entry, "hc_vault", "key_name")?,
                    created_at: optional_field(entry, "created_at")?.unwrap_or_default(),
                    enc: field(entry, "hc_vault", "enc")?,
                });
            }
        }
        "gcp_kms" => {
            for entry in list(value, "gcp_kms")? {
                group.gcp_kms.push(GcpKmsStanza {
                    resource_id: field(entry, "gcp_kms", "resource_id")?,
                    created_at: optional_field(entry, "created_at")?.unwrap_or_default(),
                    enc: field(entry, "gcp_kms", "enc")?,
                });
            }
        }
        "azure_kv" => {
            for entry in list(value, "azure_kv")? {
                group.azure_kv.push(AzureKvStanza {
                    vault_url: field(entry, "azure_kv", "vault_url")?,
                    name: field(entry, "azure_kv", "name")?,
                    version: optional_field(entry, "version")?.unwrap_or_default(),
                    created_at: optional_field(entry, "created_at")?.unwrap_or_default(),
                    enc: field(entry, "azure_kv", "enc")?,
                });
            }
        }
        "pgp" => {
            for entry in list(value, "pgp")? {
                group.pgp.push(PgpStanza {
                    fp: field(entry, "pgp", "fp")?,
                    created_at: optional_field(entry, "created_at")?.unwrap_or_default(),
                    enc: field(entry, "pgp", "enc")?,
                });
            }
        }
        "hckms" => {
            // sops 3.12+ `hckmskey`: key_id, created_at, enc, in that order; sops needs the
            // first two to read the file, so they are checked here as they are for the
            // sources enseal opens. Kept as a node: enseal only writes it back.
            let mut entries = Vec::new();
            for entry in list(value, "hckms")? {
                entries.push(Node::Map(vec![
                    Item::Pair("key_id".into(), Node::str(field(entry, "hckms", "key_id")?)),
                    Item::Pair(
                        "created_at".into(),
                        Node::str(optional_field(entry, "created_at")?.unwrap_or_default()),
                    ),
                    Item::Pair("enc".into(), Node::str(field(entry, "hckms", "enc")?)),
                ]));
            }
            if !entries.is_empty() {
                group.other.push(("hckms".into(), Node::Seq(entries)));
            }
        }
        other => {
            // A source enseal does not know: kept as it was written.
            if !matches!(value, Node::Seq(v) if v.is_empty())
                && !matches!(value, Node::Scalar(s) if s.kind == Kind::Null)
            {
                group.other.push((other.to_string(), value.clone()));
            }
        }
    }
    Ok(())
}

/// The key fields of `group` but pgp, which goes elsewhere at the top level (see `to_node`).
fn write_key_fields(group: &KeyGroup, items: &mut Vec<Item>) {
    if !group.kms.is_empty() {
        let entries = group
            .kms
            .iter()
            .map(|k| {
                let mut f = vec![Item::Pair("arn".into(), Node::str(&k.arn))];
                if let Some(role) = &k.role {
                    f.push(Item::Pair("role".into(), Node::str(role)));
                }
                if !k.context.is_empty() {
                    let ctx = k
                        .context
                        .iter()
                        .map(|(a, b)| Item::Pair(a.clone(), Node::str(b)))
                        .collect();
                    f.push(Item::Pair("context".into(), Node::Map(ctx)));
                }
                f.push(Item::Pair("created_at".into(), Node::str(&k.created_at)));
                f.push(Item::Pair("enc".into(), Node::str(&k.enc)));
                f.push(Item::Pair("aws_profile".into(), Node::str(&k.aws_profile)));
                Node::Map(f)
            })
            .collect();
        items.push(Item::Pair("kms".into(), Node::Seq(entries)));
    }
    // sops 3.11's place (stores.go: after kms, before azure_kv) and `gcpkmskey` order.
    push_stanzas(items, "gcp_kms", &group.gcp_kms, |k| {
        vec![
            ("resource_id", &k.resource_id),
            ("created_at", &k.created_at),
            ("enc", &k.enc),
        ]
    });
    for (name, node) in &group.other {
        items.push(Item::Pair(name.clone(), node.clone()));
    }
    // sops 3.11's place (stores.go: after gcp_kms, before hc_vault) and `azkvkey` order.
    push_stanzas(items, "azure_kv", &group.azure_kv, |k| {
        vec![
            ("vault_url", &k.vault_url),
            ("name", &k.name),
            ("version", &k.version),
            ("created_at", &k.created_at),
            ("enc", &k.enc),
        ]
    });
    // Where and in the order sops 3.11 writes them (the version enseal writes; its stores.go
    // `vaultkey` struct, after gcp_kms and azure_kv, before age). sops 3.13 sorts every
    // metadata key by name instead, kms and age included; both read either.
    push_stanzas(items, "hc_vault", &group.hc_vault, |k| {
        vec![
            ("vault_address", &k.vault_address),
            ("engine_path", &k.engine_path),
            ("key_name", &k.key_name),
            ("created_at", &k.created_at),
            ("enc", &k.enc),
        ]
    });
    push_stanzas(items, "age", &group.age, |a| {
        vec![("recipient", &a.recipient), ("enc", &a.enc)]
    });
}

/// `name:` and a list with one map per key, of `fields` in the order given; nothing when
/// there are no keys (sops leaves an empty source out).
fn push_stanzas<K>(
    items: &mut Vec<Item>,
    name: &str,
    keys: &[K],
    fields: impl Fn(&K) -> Vec<(&'static str, &String)>,
) {
    if !keys.is_empty() {
        items.push(Item::Pair(name.into(), stanzas(keys, fields)));
    }
}

fn stanzas<K>(keys: &[K], fields: impl Fn(&K) -> Vec<(&'static str, &String)>) -> Node {
    Node::Seq(
        keys.iter()
            .map(|k| {
                let pairs = fields(k).into_iter();
                Node::Map(
                    pairs
                        .map(|(f, v)| Item::Pair(f.into(), Node::str(v)))
                        .collect(),
                )
            })
            .collect(),
    )
}

fn pgp_entries(keys: &[PgpStanza]) -> Node {
    stanzas(keys, |k| {
        vec![
            ("created_at", &k.created_at),
            ("enc", &k.enc),
            ("fp", &k.fp),
        ]
    })
}

/// Whether `name: value` is the key list of a key source a later sops may add: a name like
/// sops' own (lower case, digits, `_`), none of the metadata's other fields, and a non-empty
/// list of entries that each carry an `enc` text, as every sops key type does. Such a list is
/// kept (see [`KeyGroup::other`]); anything else is ignored, as sops ignores it.
fn is_unknown_key_list(name: &str, value: &Node) -> bool {
    let named_like_sops = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !named_like_sops
        || OTHER_FIELDS.contains(&name)
        || KEY_FIELDS.contains(&name)
        || name == "mac_only_encrypted"
        || CryptRuleKind::from_field(name).is_some()
    {
        return false;
    }
    let Node::Seq(entries) = value else {
        return false;
    };
    let mut entries = entries
        .iter()
        .filter(|n| !matches!(n, Node::Comment(_)))
        .peekable();
    entries.peek().is_some()
        && entries.all(|e| matches!(e.get("enc"), Some(Node::Scalar(s)) if s.text().is_some()))
}

fn invalid(field: &str, problem: &str) -> MetadataError {
    MetadataError::Invalid {
        field: field.to_string(),
        problem: problem.to_string(),
    }
}

fn list<'a>(value: &'a Node, name: &str) -> Result<Vec<&'a Node>, MetadataError> {
    match value {
        Node::Seq(items) => Ok(items
            .iter()
            .filter(|n| !matches!(n, Node::Comment(_)))
            .collect()),
        Node::Scalar(s) if s.kind == Kind::Null => Ok(Vec::new()),
        _ => Err(invalid(name, "is not a list")),
    }
}

fn scalar_text(node: &Node, name: &str) -> Result<String, MetadataError> {
    match node {
        Node::Scalar(s) if s.kind != Kind::Null => s
            .text()
            .map(str::to_string)
            .ok_or_else(|| invalid(name, "is not text")),
        _ => Err(invalid(name, "is not a scalar")),
    }
}

fn field(entry: &Node, list_name: &str, name: &str) -> Result<String, MetadataError> {
    let value = entry
        .get(name)
        .ok_or_else(|| invalid(list_name, &format!("has an entry without `{name}`")))?;
    scalar_text(value, name)
}

fn optional_field(entry: &Node, name: &str) -> Result<Option<String>, MetadataError> {
    match entry.get(name) {
        None => Ok(None),
        Some(Node::Scalar(s)) if s.kind == Kind::Null => Ok(None),
        Some(v) => scalar_text(v, name).map(Some),
    }
}

fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// UTC now as RFC 3339 with seconds (`2026-11-28T22:45:52Z`), as sops writes `lastmodified`.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    format_unix_seconds(secs)
}

/// Seconds since the Unix epoch as UTC RFC 3339 (`2026-11-28T22:45:52Z`).
pub(crate) fn format_unix_seconds(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_unix_time_like_go() {
        assert_eq!(format_unix_seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_unix_seconds(1_709_251_199), "2024-02-29T23:59:59Z");
    }

    /// Found by the sops_binary fuzz target (fuzz/regressions/sops_binary): a one-group
    /// `key_groups` entry with a field that is no key type was kept in `other`, written flat at
    /// the top level, and lost on the next read, so a rewrite changed the metadata.
    #[test]
    fn unknown_fields_of_a_key_group_are_ignored_as_sops_ignores_them() {
        let stanza = Node::Seq(vec![Node::Map(vec![
            Item::Pair("recipient".into(), Node::str("age1a")),
            Item::Pair("enc".into(), Node::str("x")),
        ])]);
        let gcp = Node::Seq(vec![Node::Map(vec![
            Item::Pair(
                "resource_id".into(),
                Node::str("projects/p/locations/l/keyRings/r/cryptoKeys/k"),
            ),
            Item::Pair("enc".into(), Node::str("eA==")),
        ])]);
        let node = Node::Map(vec![
            Item::Pair(
                "key_groups".into(),
                Node::Seq(vec![Node::Map(vec![
                    Item::Pair("_ge".into(), stanza),
                    Item::Pair("gcp_kms".into(), gcp),
                ])]),
            ),
            Item::Pair("lastmodified".into(), Node::str("2024-01-01T00:00:00Z")),
            Item::Pair("mac".into(), Node::str("")),
            Item::Pair("version".into(), Node::str("3.11.0")),
        ]);
        let m = Metadata::from_node(&node).unwrap();
        assert!(m.key_groups[0].other.is_empty());
        assert!(m.key_groups[0].age.is_empty());
        assert_eq!(m.key_groups[0].gcp_kms.len(), 1);
        assert_eq!(Metadata::from_node(&m.to_node()).unwrap(), m);
    }

    #[test]
    fn round_trips_through_a_node_with_key_groups() {
        let mut m = Metadata::new(
            vec![
                KeyGroup {
                    age: vec![AgeStanza {
                        recipient: "age1a".into(),
                        enc: "x".into(),
                    }],
                    ..Default::default()
                },
                KeyGroup {
                    kms: vec![KmsStanza {
                        arn: "arn:aws:kms:us-east-1:1:key/k".into(),
                        context: vec![("app".into(), "web".into())],
                        enc: "e".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
            CryptRule::default(),
        );
        m.shamir_threshold = Some(2);
        m.mac = "ENC[...]".into();
        let back = Metadata::from_node(&m.to_node()).unwrap();
        assert_eq!(back, m);
    }

    /// sops writes its metadata fields sorted by name: with one group `pgp` comes after `mac`,
    /// inside `key_groups` after `age`, and each entry is `created_at`, `enc`, `fp`.
    #[test]
    fn pgp_keys_are_written_where_sops_writes_them() {
        let pgp = PgpStanza {
            fp: "FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4".into(),
            created_at: "2024-01-01T00:00:00Z".into(),
            enc: "-----BEGIN PGP MESSAGE-----\n\nx\n-----END PGP MESSAGE-----".into(),
        };
        let age = AgeStanza {
            recipient: "age1a".into(),
            enc: "x".into(),
        };
        let names = |node: &Node| -> Vec<String> {
            let Node::Map(items) = node else {
                panic!("not a map")
            };
            items
                .iter()
                .filter_map(|i| match i {
                    Item::Pair(k, _) => Some(k.clone()),
                    Item::Comment(_) => None,
                })
                .collect()
        };
        let one = Metadata::new(
            vec![KeyGroup {
                age: vec![age.clone()],
                pgp: vec![pgp.clone()],
                ..Default::default()
            }],
            CryptRule::default(),
        );
        let node = one.to_node();
        assert_eq!(
            names(&node),
            [
                "age",
                "lastmodified",
                "mac",
                "pgp",
                "unencrypted_suffix",
                "version"
            ]
        );
        let Some(Node::Seq(entries)) = node.get("pgp") else {
            panic!("no pgp list")
        };
        assert_eq!(names(&entries[0]), ["created_at", "enc", "fp"]);
        assert_eq!(Metadata::from_node(&node).unwrap(), one);

        let mut two = Metadata::new(
            vec![
                KeyGroup {
                    age: vec![age],
                    pgp: vec![pgp.clone()],
                    ..Default::default()
                },
                KeyGroup {
                    pgp: vec![pgp],
                    ..Default::default()
                },
            ],
            CryptRule::default(),
        );
        two.shamir_threshold = Some(2);
        let node = two.to_node();
        let Some(Node::Seq(groups)) = node.get("key_groups") else {
            panic!("no key_groups")
        };
        assert_eq!(names(&groups[0]), ["age", "pgp"]);
        assert_eq!(Metadata::from_node(&node).unwrap(), two);
    }

    /// sops 3.11 writes an `hc_vault` entry as vault_address, engine_path, key_name,
    /// created_at, enc, after kms (and gcp_kms, azure_kv) and before age.
    #[test]
    fn vault_keys_are_written_where_sops_3_11_writes_them() {
        let vault = VaultStanza {
            vault_address: "http://127.0.0.1:8200".into(),
            engine_path: "transit".into(),
            key_name: "k".into(),
            created_at: "2024-01-01T00:00:00Z".into(),
            enc: "vault:v1:abc".into(),
        };
        let m = Metadata::new(
            vec![KeyGroup {
                age: vec![AgeStanza {
                    recipient: "age1a".into(),
                    enc: "x".into(),
                }],
                kms: vec![KmsStanza {
                    arn: "arn:aws:kms:us-east-1:1:key/k".into(),
                    enc: "e".into(),
                    ..Default::default()
                }],
                hc_vault: vec![vault],
                ..Default::default()
            }],
            CryptRule::default(),
        );
        let node = m.to_node();
        let Node::Map(items) = &node else {
            panic!("not a map")
        };
        let keys: Vec<&str> = items
            .iter()
            .filter_map(|i| match i {
                Item::Pair(k, _) => Some(k.as_str()),
                Item::Comment(_) => None,
            })
            .collect();
        assert_eq!(&keys[..3], ["kms", "hc_vault", "age"]);
        let Some(Node::Seq(entries)) = node.get("hc_vault") else {
            panic!("no hc_vault list")
        };
        let Node::Map(fields) = &entries[0] else {
            panic!("entry is not a map")
        };
        let names: Vec<&str> = fields
            .iter()
            .filter_map(|i| match i {
                Item::Pair(k, _) => Some(k.as_str()),
                Item::Comment(_) => None,
            })
            .collect();
        assert_eq!(
            names,
            [
                "vault_address",
                "engine_path",
                "key_name",
                "created_at",
                "enc"
            ]
        );
        assert_eq!(Metadata::from_node(&node).unwrap(), m);
    }

    /// sops 3.11 writes a `gcp_kms` entry as resource_id, created_at, enc, right after kms and
    /// before the other key types (stores.go `gcpkmskey`, its place in `Metadata`).
    #[test]
    fn gcp_kms_keys_are_written_where_sops_3_11_writes_them() {
        let m = Metadata::new(
            vec![KeyGroup {
                age: vec![AgeStanza {
                    recipient: "age1a".into(),
                    enc: "x".into(),
                }],
                kms: vec![KmsStanza {
                    arn: "arn:aws:kms:us-east-1:1:key/k".into(),
                    enc: "e".into(),
                    ..Default::default()
                }],
                hc_vault: vec![VaultStanza {
                    vault_address: "http://127.0.0.1:8200".into(),
                    engine_path: "transit".into(),
                    key_name: "k".into(),
                    created_at: "2024-01-01T00:00:00Z".into(),
                    enc: "vault:v1:abc".into(),
                }],
                gcp_kms: vec![GcpKmsStanza {
                    resource_id: "projects/p/locations/global/keyRings/r/cryptoKeys/k".into(),
                    created_at: "2024-01-01T00:00:00Z".into(),
                    enc: "CiQAbc==".into(),
                }],
                ..Default::default()
            }],
            CryptRule::default(),
        );
        let node = m.to_node();
        let Node::Map(items) = &node else {
            panic!("not a map")
        };
        let names: Vec<&str> = items
            .iter()
            .filter_map(|i| match i {
                Item::Pair(k, _) => Some(k.as_str()),
                Item::Comment(_) => None,
            })
            .collect();
        assert_eq!(&names[..4], ["kms", "gcp_kms", "hc_vault", "age"]);
        let Some(Node::Seq(entries)) = node.get("gcp_kms") else {
            panic!("no gcp_kms list")
        };
        let Node::Map(fields) = &entries[0] else {
            panic!("not a map")
        };
        let fields: Vec<&str> = fields
            .iter()
            .filter_map(|i| match i {
                Item::Pair(k, _) => Some(k.as_str()),
                Item::Comment(_) => None,
            })
            .collect();
        assert_eq!(fields, ["resource_id", "created_at", "enc"]);
        assert_eq!(Metadata::from_node(&node).unwrap(), m);
    }

    /// sops 3.11 writes an `azure_kv` entry as vault_url, name, version, created_at, enc,
    /// after kms (and gcp_kms) and before hc_vault and age.
    #[test]
    fn azure_kv_keys_are_written_where_sops_3_11_writes_them() {
        let names = |node: &Node| -> Vec<String> {
            let Node::Map(items) = node else {
                panic!("not a map")
            };
            items
                .iter()
                .filter_map(|i| match i {
                    Item::Pair(k, _) => Some(k.clone()),
                    Item::Comment(_) => None,
                })
                .collect()
        };
        let m = Metadata::new(
            vec![KeyGroup {
                age: vec![AgeStanza {
                    recipient: "age1a".into(),
                    enc: "x".into(),
                }],
                kms: vec![KmsStanza {
                    arn: "arn:aws:kms:us-east-1:1:key/k".into(),
                    enc: "e".into(),
                    ..Default::default()
                }],
                hc_vault: vec![VaultStanza {
                    vault_address: "http://127.0.0.1:8200".into(),
                    engine_path: "transit".into(),
                    key_name: "k".into(),
                    created_at: "2024-01-01T00:00:00Z".into(),
                    enc: "vault:v1:abc".into(),
                }],
                azure_kv: vec![AzureKvStanza {
                    vault_url: "https://v.vault.azure.net".into(),
                    name: "k".into(),
                    version: "0123abcd".into(),
                    created_at: "2024-01-01T00:00:00Z".into(),
                    enc: "c2VjcmV0".into(),
                }],
                ..Default::default()
            }],
            CryptRule::default(),
        );
        let node = m.to_node();
        assert_eq!(&names(&node)[..4], ["kms", "azure_kv", "hc_vault", "age"]);
        let Some(Node::Seq(entries)) = node.get("azure_kv") else {
            panic!("no azure_kv list")
        };
        assert_eq!(
            names(&entries[0]),
            ["vault_url", "name", "version", "created_at", "enc"]
        );
        assert_eq!(Metadata::from_node(&node).unwrap(), m);
    }

    fn names(node: &Node) -> Vec<String> {
        let Node::Map(items) = node else {
            panic!("not a map")
        };
        items
            .iter()
            .filter_map(|i| match i {
                Item::Pair(k, _) => Some(k.clone()),
                Item::Comment(_) => None,
            })
            .collect()
    }

    fn entry(fields: &[(&str, &str)]) -> Node {
        Node::Map(
            fields
                .iter()
                .map(|(k, v)| Item::Pair((*k).into(), Node::str(*v)))
                .collect(),
        )
    }

    /// An `hckms` entry as sops 3.13.3 writes it (fields sorted by name), beside an age key.
    fn with_hckms(hckms_fields: &[(&str, &str)]) -> Node {
        Node::Map(vec![
            Item::Pair(
                "age".into(),
                Node::Seq(vec![entry(&[("enc", "x"), ("recipient", "age1a")])]),
            ),
            Item::Pair("hckms".into(), Node::Seq(vec![entry(hckms_fields)])),
            Item::Pair("lastmodified".into(), Node::str("2024-01-01T00:00:00Z")),
            Item::Pair("mac".into(), Node::str("")),
            Item::Pair("version".into(), Node::str("3.13.3")),
        ])
    }

    /// sops 3.12+ files may carry HuaweiCloud KMS keys: enseal cannot open them, but writes
    /// them back (in stores.go's place, between gcp_kms and azure_kv, and `hckmskey` order)
    /// rather than dropping the access of whoever holds them.
    #[test]
    fn hckms_keys_are_kept_and_written_where_sops_writes_them() {
        let node = with_hckms(&[
            ("created_at", "2026-01-02T03:04:05Z"),
            ("enc", "AAAAhuawei=="),
            ("key_id", "cn-north-4:0d0466b1-5b4e-4f5a-9f4e-1234567890ab"),
        ]);
        let mut m = Metadata::from_node(&node).unwrap();
        assert_eq!(
            m.key_groups[0].unsupported_keys(),
            [UnsupportedKey {
                field: "hckms".into(),
                id: "cn-north-4:0d0466b1-5b4e-4f5a-9f4e-1234567890ab".into(),
            }]
        );
        assert_eq!(
            m.key_groups[0].unsupported_keys()[0].reason(),
            "HuaweiCloud KMS is not supported by enseal"
        );
        m.key_groups[0].gcp_kms.push(GcpKmsStanza {
            resource_id: "projects/p/locations/l/keyRings/r/cryptoKeys/k".into(),
            created_at: "2024-01-01T00:00:00Z".into(),
            enc: "eA==".into(),
        });
        m.key_groups[0].azure_kv.push(AzureKvStanza {
            vault_url: "https://v.vault.azure.net".into(),
            name: "k".into(),
            version: "1".into(),
            created_at: "2024-01-01T00:00:00Z".into(),
            enc: "eA".into(),
        });
        let out = m.to_node();
        assert_eq!(&names(&out)[..4], ["gcp_kms", "hckms", "azure_kv", "age"]);
        let Some(Node::Seq(entries)) = out.get("hckms") else {
            panic!("no hckms list")
        };
        assert_eq!(names(&entries[0]), ["key_id", "created_at", "enc"]);
        assert_eq!(
            entries[0].get("enc").and_then(|n| match n {
                Node::Scalar(s) => s.text(),
                _ => None,
            }),
            Some("AAAAhuawei==")
        );
        assert_eq!(Metadata::from_node(&out).unwrap(), m);

        // Inside key groups too, each group keeping its own.
        let mut two = m.clone();
        two.key_groups.push(KeyGroup {
            age: vec![AgeStanza {
                recipient: "age1b".into(),
                enc: "y".into(),
            }],
            ..Default::default()
        });
        two.shamir_threshold = Some(1);
        let out = two.to_node();
        let Some(Node::Seq(groups)) = out.get("key_groups") else {
            panic!("no key_groups")
        };
        assert!(names(&groups[0]).contains(&"hckms".to_string()));
        assert!(!names(&groups[1]).contains(&"hckms".to_string()));
        assert_eq!(Metadata::from_node(&out).unwrap(), two);
    }

    /// sops cannot read an hckms entry without its key or its wrapped data key; neither can
    /// enseal pretend to keep one.
    #[test]
    fn an_hckms_entry_without_key_id_or_enc_is_refused() {
        for fields in [
            &[("enc", "AAAA")][..],
            &[("key_id", "cn-north-4:0d0466b1-5b4e-4f5a-9f4e-1234567890ab")][..],
        ] {
            assert!(matches!(
                Metadata::from_node(&with_hckms(fields)),
                Err(MetadataError::Invalid { field, .. }) if field == "hckms"
            ));
        }
    }

    /// A key list of a source a later sops may add (a lower-case name, entries with `enc`) is
    /// kept as written; other unknown fields are ignored as sops ignores them, and a key list
    /// may not take the name of another metadata field.
    #[test]
    fn unknown_key_lists_are_kept_and_other_unknown_fields_ignored() {
        let future = Node::Seq(vec![entry(&[("zz_key", "k1"), ("enc", "Zm9v")])]);
        let mut node = with_hckms(&[("key_id", "r:u"), ("enc", "AAAA")]);
        let Node::Map(items) = &mut node else {
            unreachable!()
        };
        items.push(Item::Pair("future_kms".into(), future.clone()));
        items.push(Item::Pair("note".into(), Node::str("not a key list")));
        items.push(Item::Pair(
            "no_enc".into(),
            Node::Seq(vec![entry(&[("id", "x")])]),
        ));
        items.push(Item::Pair(
            "Upper".into(),
            Node::Seq(vec![entry(&[("enc", "x")])]),
        ));
        let m = Metadata::from_node(&node).unwrap();
        let other: Vec<&str> = m.key_groups[0]
            .other
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(other, ["hckms", "future_kms"]);
        assert_eq!(m.key_groups[0].other[1].1, future);
        assert_eq!(
            m.key_groups[0].unsupported_keys()[1].reason(),
            "future_kms is not supported by enseal"
        );
        assert_eq!(Metadata::from_node(&m.to_node()).unwrap(), m);

        // In a one-group `key_groups`, a key list named like a metadata field would be written
        // flat beside that field: it is not kept.
        let group = Node::Map(vec![
            Item::Pair(
                "age".into(),
                Node::Seq(vec![entry(&[("recipient", "age1a"), ("enc", "x")])]),
            ),
            Item::Pair(
                "lastmodified".into(),
                Node::Seq(vec![entry(&[("enc", "x")])]),
            ),
            Item::Pair(
                "encrypted_regex".into(),
                Node::Seq(vec![entry(&[("enc", "x")])]),
            ),
        ]);
        let node = Node::Map(vec![
            Item::Pair("key_groups".into(), Node::Seq(vec![group])),
            Item::Pair("lastmodified".into(), Node::str("2024-01-01T00:00:00Z")),
            Item::Pair("mac".into(), Node::str("")),
            Item::Pair("version".into(), Node::str("3.11.0")),
        ]);
        let m = Metadata::from_node(&node).unwrap();
        assert!(m.key_groups[0].other.is_empty());
        assert_eq!(Metadata::from_node(&m.to_node()).unwrap(), m);
    }

    /// updatekeys of a one-group file puts the old group's entries for the keys its rule
    /// names in the new group, and says which one it has no entry for.
    #[test]
    fn unsupported_entries_are_carried_to_a_new_group_by_key() {
        let old = Metadata::from_node(&with_hckms(&[
            ("key_id", "r:one"),
            ("created_at", "2026-01-02T03:04:05Z"),
            ("enc", "AAAA"),
        ]))
        .unwrap();
        let key = |id: &str| UnsupportedKey {
            field: "hckms".into(),
            id: id.into(),
        };
        let mut new = KeyGroup::default();
        new.keep_unsupported(&old.key_groups[0], &[key("r:one")])
            .unwrap();
        assert_eq!(new.other, old.key_groups[0].other);
        assert_eq!(
            KeyGroup::default().keep_unsupported(&old.key_groups[0], &[key("r:one"), key("r:two")]),
            Err(key("r:two"))
        );
    }

    #[test]
    fn refuses_versions_sops_cannot_parse() {
        let mut m = Metadata::new(vec![KeyGroup::default()], CryptRule::default());
        m.version = "3.11".into();
        assert!(matches!(
            Metadata::from_node(&m.to_node()),
            Err(MetadataError::Version(_))
        ));
    }
}
