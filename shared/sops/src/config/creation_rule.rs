//! One `creation_rules` entry of `.sops.yaml`: which keys a new file is encrypted to, in which
//! key groups, and which values are encrypted.
//!
//! Keys stay strings here (recipients, ARNs, fingerprints); the key sources parse them, so a
//! bad recipient fails only for the files that use it, as in sops.

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;

use super::decode::{is_null, is_string_valued, kind_name, location, scalar, Decoder, Node};
use super::error::{ConfigError, Location, Problem};
use crate::format::crypt_rule::CryptRuleKind;
use crate::format::metadata::UnsupportedKey;

/// The keys of one key group. With several groups the data key is split with Shamir, one
/// share per group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyGroupSpec {
    /// age recipients, trimmed, in file order (merged groups first), duplicates removed
    /// within `key_groups` entries only, as sops does.
    pub age: Vec<String>,
    pub kms: Vec<KmsKeySpec>,
    /// PGP fingerprints (kept; enseal does not encrypt to PGP).
    pub pgp: Vec<String>,
    /// Vault transit key URIs (`https://host:8200/v1/transit/keys/NAME`), as written; the key
    /// source splits them.
    pub hc_vault: Vec<String>,
    /// Azure Key Vault keys (`azure_keyvault`), as written; the key source parses them.
    pub azure_kv: Vec<AzureKvKeySpec>,
    /// GCP KMS key resource IDs, spaces removed as sops removes them.
    pub gcp_kms: Vec<String>,
    /// Keys of sources enseal cannot use (`hckms`, HuaweiCloud KMS), kept so that the caller
    /// refuses to encrypt without them (sops would wrap the data key for them), and updatekeys
    /// can keep the file's entries for them.
    pub unsupported: Vec<UnsupportedKey>,
}

impl KeyGroupSpec {
    pub fn is_empty(&self) -> bool {
        self.age.is_empty()
            && self.kms.is_empty()
            && self.pgp.is_empty()
            && self.hc_vault.is_empty()
            && self.azure_kv.is_empty()
            && self.gcp_kms.is_empty()
            && self.unsupported.is_empty()
    }
}

/// An Azure Key Vault key as `.sops.yaml` gives it: a key URL at the top of a creation rule
/// (`https://VAULT/keys/NAME[/VERSION]`), its parts in a `key_groups` entry (sops config.go
/// `azureKVKey`: `vaultUrl`, `key`, `version`, the version optional).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AzureKvKeySpec {
    Url(String),
    Key {
        vault_url: String,
        key: String,
        version: String,
    },
}

/// An AWS KMS key as `.sops.yaml` gives it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KmsKeySpec {
    pub arn: String,
    /// IAM role to assume (`arn+arn:aws:iam::...:role/x` in a key list, `role:` in a group).
    pub role: Option<String>,
    /// Encryption context (only settable inside `key_groups`).
    pub context: BTreeMap<String, String>,
    pub aws_profile: Option<String>,
}

/// Which values are encrypted: the one crypt rule a creation rule may set, as written (its
/// regex is compiled, and may fail, only when the rule is used: [`CryptRule::new`]).
///
/// [`CryptRule::new`]: crate::format::crypt_rule::CryptRule::new
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CryptRuleSpec {
    pub kind: CryptRuleKind,
    pub value: String,
}

impl CryptRuleSpec {
    /// The `.sops.yaml` / metadata field name.
    pub fn field(&self) -> &'static str {
        self.kind.field()
    }

    pub fn value(&self) -> &str {
        &self.value
    }
}

/// A creation rule, with its keys gathered into key groups: a rule's top-level `age`/`kms`/
/// `pgp` lists make one group; `key_groups`, when non-empty, replaces them.
#[derive(Clone, Debug)]
pub struct CreationRule {
    pub path_regex: Option<String>,
    /// May hold an empty group; sops refuses to encrypt with one ("empty key group provided").
    pub key_groups: Vec<KeyGroupSpec>,
    /// `None` when unset or 0: sops then uses the number of key groups.
    pub shamir_threshold: Option<usize>,
    pub crypt_rule: Option<CryptRuleSpec>,
    pub mac_only_encrypted: bool,
    pub aws_profile: Option<String>,
    /// Where the rule starts in the config file.
    pub at: Location,
    /// `None`: no (or an empty) `path_regex`, matches every file.
    regex: Option<Result<Regex, String>>,
    regex_at: Location,
    /// Problems sops reports only when a file picks this rule.
    deferred: Vec<Deferred>,
}

#[derive(Clone, Debug)]
enum Deferred {
    Conflict(Vec<&'static str>),
    Keys(Problem),
}

impl CreationRule {
    pub(crate) fn matches(&self, path: &str) -> Result<bool, (Location, String, String)> {
        match &self.regex {
            None => Ok(true),
            Some(Ok(re)) => Ok(re.is_match(path)),
            Some(Err(message)) => Err((
                self.regex_at,
                self.path_regex.clone().unwrap_or_default(),
                message.clone(),
            )),
        }
    }

    /// The errors sops raises when turning the chosen rule into a config.
    pub(crate) fn check(&self, config_path: &Path) -> Result<(), ConfigError> {
        match self.deferred.first() {
            None => Ok(()),
            Some(Deferred::Conflict(fields)) => Err(ConfigError::ConflictingCryptRules {
                path: config_path.to_owned(),
                at: self.at,
                fields: fields.clone(),
            }),
            Some(Deferred::Keys(problem)) => Err(ConfigError::InvalidKeys {
                path: config_path.to_owned(),
                problem: problem.clone(),
            }),
        }
    }

    pub(crate) fn decode(d: &mut Decoder, node: &Node) -> CreationRule {
        let mut rule = CreationRule {
            path_regex: None,
            key_groups: Vec::new(),
            shamir_threshold: None,
            crypt_rule: None,
            mac_only_encrypted: false,
            aws_profile: None,
            at: location(node),
            regex: None,
            regex_at: location(node),
            deferred: Vec::new(),
        };
        let mut top = TopLevelKeys::default();
        let mut groups = Vec::new();
        let mut crypt: Vec<CryptRuleSpec> = Vec::new();

        for (key, value) in d.fields(node, "creation rule") {
            match key {
                "path_regex" => {
                    rule.path_regex = d.string(value);
                    rule.regex_at = location(value);
                }
                "aws_profile" => rule.aws_profile = d.string(value),
                "age" => top.age = key_field(value, key),
                "kms" => top.kms = key_field(value, key),
                "pgp" => top.pgp = key_field(value, key),
                "hc_vault_transit_uri" => {
                    // sops names it "vault" in its messages (config.go getKeysWithValidation).
                    top.hc_vault = key_field(value, "vault")
                }
                "azure_keyvault" => top.azure_kv = key_field(value, key),
                // sops names it "gcpkms" in its messages (config.go getKeysWithValidation).
                "gcp_kms" => top.gcp_kms = key_field(value, "gcpkms"),
                "hckms" => top.hckms = key_field(value, key),
                "key_groups" => {
                    groups = d
                        .seq(value, "keyGroup")
                        .iter()
                        .map(|g| decode_group(d, g, &mut rule.deferred))
                        .collect();
                }
                "shamir_threshold" => {
                    if let Some(t) = d.int(value) {
                        if t < 0 {
                            rule.deferred.push(Deferred::Keys(Problem {
                                at: location(value),
                                message: "shamir_threshold must not be negative".to_owned(),
                            }));
                        } else if t > 0 {
                            rule.shamir_threshold = Some(t as usize);
                        }
                    }
                }
                "mac_only_encrypted" => rule.mac_only_encrypted = d.bool(value),
                _ => match CryptRuleKind::from_field(key) {
                    Some(kind) => {
                        // An empty string means unset, as in sops.
                        if let Some(v) = d.string(value).filter(|v| !v.is_empty()) {
                            crypt.push(CryptRuleSpec { kind, value: v });
                        }
                    }
                    None => d.unknown(key, value),
                },
            }
        }

        if let Some(re) = rule.path_regex.as_deref().filter(|r| !r.is_empty()) {
            rule.regex = Some(Regex::new(re).map_err(|e| e.to_string()));
        }
        // sops checks the crypt rules before the keys.
        match crypt.len() {
            0 => {}
            1 => rule.crypt_rule = crypt.pop(),
            _ => {
                let mut kinds: Vec<CryptRuleKind> = crypt.iter().map(|c| c.kind).collect();
                kinds.sort_by_key(|k| CRYPT_FIELD_ORDER.iter().position(|o| o == k));
                let fields = kinds.into_iter().map(CryptRuleKind::field).collect();
                rule.deferred.insert(0, Deferred::Conflict(fields));
            }
        }
        rule.key_groups = if groups.is_empty() {
            match top.into_group(rule.aws_profile.as_deref()) {
                Ok(group) => vec![group],
                Err(problem) => {
                    rule.deferred.push(Deferred::Keys(problem));
                    vec![KeyGroupSpec::default()]
                }
            }
        } else {
            groups
        };
        rule
    }
}

/// The order sops names them in its error message.
const CRYPT_FIELD_ORDER: [CryptRuleKind; 6] = [
    CryptRuleKind::EncryptedSuffix,
    CryptRuleKind::UnencryptedSuffix,
    CryptRuleKind::EncryptedRegex,
    CryptRuleKind::UnencryptedRegex,
    CryptRuleKind::EncryptedCommentRegex,
    CryptRuleKind::UnencryptedCommentRegex,
];

type KeyList = Result<Vec<String>, Problem>;

#[derive(Default)]
struct TopLevelKeys {
    age: Option<KeyList>,
    kms: Option<KeyList>,
    pgp: Option<KeyList>,
    hc_vault: Option<KeyList>,
    azure_kv: Option<KeyList>,
    gcp_kms: Option<KeyList>,
    /// `hckms`: sops 3.12+ config.go `HCKms []string`.
    hckms: Option<KeyList>,
}

impl TopLevelKeys {
    /// sops' getKeyGroupsFromCreationRule: each list is joined with commas and split again by
    /// the key type's own parser. No de-duplication at this level.
    fn into_group(self, aws_profile: Option<&str>) -> Result<KeyGroupSpec, Problem> {
        let take = |list: Option<KeyList>| list.unwrap_or(Ok(Vec::new()));
        let age = take(self.age)?;
        let pgp = take(self.pgp)?;
        let kms = take(self.kms)?;
        let hc_vault = take(self.hc_vault)?;
        let azure_kv = take(self.azure_kv)?;
        let gcp_kms = take(self.gcp_kms)?;
        let mut group = KeyGroupSpec::default();

        let joined = age.join(",");
        if !joined.is_empty() {
            group.age = joined.split(',').map(|r| r.trim().to_owned()).collect();
        }
        let joined = pgp.join(",");
        if !joined.is_empty() {
            group.pgp = joined.split(',').map(|f| f.replace(' ', "")).collect();
        }
        let joined = kms.join(",");
        if !joined.is_empty() {
            group.kms = joined
                .split(',')
                .map(|arn| kms_from_arn(arn, aws_profile))
                .collect();
        }
        // sops joins the list and splits it again (hcvault.NewMasterKeysFromURIs), skipping
        // empty entries.
        let joined = hc_vault.join(",");
        group.hc_vault = joined
            .split(',')
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        // sops joins the list and splits it again (azkv.MasterKeysFromURLs); an empty entry
        // is an error there, left to the key source's URL parser here.
        let joined = azure_kv.join(",");
        if !joined.is_empty() {
            group.azure_kv = joined
                .split(',')
                .map(|u| AzureKvKeySpec::Url(u.to_owned()))
                .collect();
        }
        // sops joins the list and splits it again (gcpkms.MasterKeysFromResourceIDString).
        let joined = gcp_kms.join(",");
        if !joined.is_empty() {
            group.gcp_kms = joined.split(',').map(|id| id.replace(' ', "")).collect();
        }
        // sops joins the list and splits it again (hckms.NewMasterKeyFromKeyIDString): trimmed,
        // empty entries skipped.
        group.unsupported =
            UnsupportedKey::hckms_list(take(self.hckms)?.iter().map(String::as_str));
        Ok(group)
    }
}

/// `arn` or `arn+arn:aws:iam::...:role/name`, spaces removed, as sops' NewMasterKeyFromArn.
fn kms_from_arn(arn: &str, aws_profile: Option<&str>) -> KmsKeySpec {
    let arn = arn.replace(' ', "");
    let (arn, role) = match arn.find("+arn:aws:iam::") {
        Some(i) if i > 0 => (arn[..i].to_owned(), Some(arn[i + 1..].to_owned())),
        _ => (arn, None),
    };
    KmsKeySpec {
        arn,
        role,
        context: BTreeMap::new(),
        aws_profile: aws_profile.filter(|p| !p.is_empty()).map(str::to_owned),
    }
}

/// A top-level key field, which sops reads as "string or list of strings": a string is split
/// on commas (trimmed, empty parts dropped); list items are taken as they are. Anything else
/// is an error once the rule is used.
fn key_field(node: &Node, field: &str) -> Option<KeyList> {
    let bad = |got: &str, in_list: bool| Problem {
        at: location(node),
        message: if in_list {
            format!("invalid {field} key configuration: expected string in list, got {got}")
        } else {
            format!(
                "invalid {field} key configuration: expected string, []string, or nil, got {got}"
            )
        },
    };
    if is_null(node) {
        return None;
    }
    if let Some((text, _)) = scalar(node) {
        if !is_string_valued(node) {
            return Some(Err(bad(go_type(node), false)));
        }
        return Some(Ok(text
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect()));
    }
    match &node.data {
        saphyr::YamlDataOwned::Sequence(items) => Some(
            items
                .iter()
                .map(|item| match scalar(item) {
                    Some((text, _)) if is_string_valued(item) => Ok(text.to_owned()),
                    _ => Err(bad(go_type(item), true)),
                })
                .collect(),
        ),
        _ => Some(Err(bad("map[string]interface {}", false))),
    }
}

/// How Go names what yaml.v3 decoded into an `interface{}`, for sops' error messages.
fn go_type(node: &Node) -> &'static str {
    match kind_name(node) {
        "!!null" => "<nil>",
        "!!int" => "int",
        "!!float" => "float64",
        "!!bool" => "bool",
        "!!seq" => "[]interface {}",
        "!!map" => "map[string]interface {}",
        _ => "string",
    }
}

/// One `key_groups` entry (with nested `merge` groups folded in first).
fn decode_group(d: &mut Decoder, node: &Node, deferred: &mut Vec<Deferred>) -> KeyGroupSpec {
    let mut group = KeyGroupSpec::default();
    let mut own = KeyGroupSpec::default();
    for (key, value) in d.fields(node, "config.keyGroup") {
        match key {
            "merge" => {
                for sub in d.seq(value, "config.keyGroup") {
                    let sub = decode_group(d, sub, deferred);
                    group.age.extend(sub.age);
                    group.kms.extend(sub.kms);
                    group.pgp.extend(sub.pgp);
                    group.hc_vault.extend(sub.hc_vault);
                    group.azure_kv.extend(sub.azure_kv);
                    group.gcp_kms.extend(sub.gcp_kms);
                    group.unsupported.extend(sub.unsupported);
                }
            }
            "age" => {
                for item in d.strings(value) {
                    // Each entry may itself be a comma-separated list (MasterKeysFromRecipients).
                    if !item.is_empty() {
                        own.age.extend(item.split(',').map(|r| r.trim().to_owned()));
                    }
                }
            }
            "pgp" => own
                .pgp
                .extend(d.strings(value).iter().map(|f| f.replace(' ', ""))),
            "kms" => {
                for item in d.seq(value, "config.kmsKey") {
                    own.kms.push(decode_kms(d, item, deferred));
                }
            }
            "azure_keyvault" => {
                for item in d.seq(value, "config.azureKVKey") {
                    own.azure_kv.push(decode_azure_kv(d, item));
                }
            }
            // A list of `{resource_id: ...}` (sops config.go `gcpKmsKey`).
            "gcp_kms" => {
                for item in d.seq(value, "config.gcpKmsKey") {
                    let mut id = String::new();
                    for (field, v) in d.fields(item, "config.gcpKmsKey") {
                        match field {
                            "resource_id" => id = d.string(v).unwrap_or_default(),
                            _ => d.unknown(field, v),
                        }
                    }
                    own.gcp_kms.push(id.replace(' ', ""));
                }
            }
            // One URI per entry (sops config.go: hcvault.NewMasterKeyFromURI per item).
            "hc_vault" => own.hc_vault.extend(d.strings(value)),
            // A list of `{key_id: ...}` (sops 3.12+ config.go `hckmsKey`).
            "hckms" => {
                for item in d.seq(value, "config.hckmsKey") {
                    let mut id = String::new();
                    for (field, v) in d.fields(item, "config.hckmsKey") {
                        match field {
                            "key_id" => id = d.string(v).unwrap_or_default(),
                            _ => d.unknown(field, v),
                        }
                    }
                    own.unsupported
                        .extend(UnsupportedKey::hckms_list([id.as_str()]));
                }
            }
            _ => d.unknown(key, value),
        }
    }
    group.age.extend(own.age);
    group.kms.extend(own.kms);
    group.pgp.extend(own.pgp);
    group.hc_vault.extend(own.hc_vault);
    group.azure_kv.extend(own.azure_kv);
    group.gcp_kms.extend(own.gcp_kms);
    group.unsupported.extend(own.unsupported);
    dedup(&mut group.age);
    dedup(&mut group.kms);
    dedup(&mut group.pgp);
    dedup(&mut group.hc_vault);
    dedup(&mut group.azure_kv);
    dedup(&mut group.gcp_kms);
    dedup(&mut group.unsupported);
    group
}

fn decode_kms(d: &mut Decoder, node: &Node, deferred: &mut Vec<Deferred>) -> KmsKeySpec {
    let mut key = KmsKeySpec::default();
    for (field, value) in d.fields(node, "config.kmsKey") {
        match field {
            "arn" => key.arn = d.string(value).unwrap_or_default(),
            "role" => key.role = d.string(value).filter(|r| !r.is_empty()),
            "aws_profile" => key.aws_profile = d.string(value).filter(|p| !p.is_empty()),
            "context" => {
                for (k, v) in d.fields(value, "map[string]*string") {
                    if is_null(v) {
                        // sops crashes on this; refuse it when the rule is used.
                        deferred.push(Deferred::Keys(Problem {
                            at: location(v),
                            message: format!("KMS encryption context value for {k:?} is null"),
                        }));
                    } else if let Some(v) = d.string(v) {
                        key.context.insert(k.to_owned(), v);
                    }
                }
            }
            _ => d.unknown(field, value),
        }
    }
    key
}

/// A `key_groups` entry's `azure_keyvault` item, sops' `azureKVKey` (yaml names `vaultUrl`,
/// `key`, `version`).
fn decode_azure_kv(d: &mut Decoder, node: &Node) -> AzureKvKeySpec {
    let (mut vault_url, mut key, mut version) = (String::new(), String::new(), String::new());
    for (field, value) in d.fields(node, "config.azureKVKey") {
        match field {
            "vaultUrl" => vault_url = d.string(value).unwrap_or_default(),
            "key" => key = d.string(value).unwrap_or_default(),
            "version" => version = d.string(value).unwrap_or_default(),
            _ => d.unknown(field, value),
        }
    }
    AzureKvKeySpec::Key {
        vault_url,
        key,
        version,
    }
}

fn dedup<T: PartialEq>(items: &mut Vec<T>) {
    let mut i = 0;
    while i < items.len() {
        if items[..i].contains(&items[i]) {
            items.remove(i);
        } else {
            i += 1;
        }
    }
}
