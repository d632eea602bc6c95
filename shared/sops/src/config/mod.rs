//! `.sops.yaml`: finding it, reading it, and picking the creation rule for a file, as sops 3.11
//! does (config/config.go and cmd/sops/main.go).
//!
//! Reading follows Go's `yaml.v3` unmarshal into sops' structs: unknown keys are ignored,
//! duplicate keys and type mismatches are errors, only the first YAML document counts, merge
//! keys (`<<`) and aliases work. Some checks sops makes only for the rule a file matches (key
//! lists, conflicting crypt rules, the regex itself); those wait for [`Config::rule_for`] here
//! too, so a broken rule that never matches does not break other files.

use std::path::{Component, Path, PathBuf};

pub mod creation_rule;
mod decode;
mod error;

use decode::{is_null, load_yaml, location, Decoder, Node};

pub use creation_rule::{CreationRule, CryptRuleSpec, KeyGroupSpec, KmsKeySpec};
pub use error::{ConfigError, Location, Problem};

/// sops looks at the start directory and 99 parents.
const MAX_DEPTH: usize = 100;
pub const CONFIG_FILE_NAME: &str = ".sops.yaml";
/// sops 3.11 does not read this name; it only warns when it sees one.
pub const ALTERNATE_CONFIG_NAME: &str = ".sops.yml";

/// What the upward search found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigLookup {
    pub path: Option<PathBuf>,
    /// The nearest `.sops.yml` seen below the `.sops.yaml` (or anywhere, if none was found):
    /// sops ignores it but warns, and so should the caller.
    pub ignored_alternate: Option<PathBuf>,
}

impl ConfigLookup {
    /// sops' warning text for an ignored `.sops.yml`.
    pub fn warning(&self) -> Option<String> {
        let alt = self.ignored_alternate.as_ref()?;
        Some(match &self.path {
            Some(p) => format!(
                "ignoring {:?} when searching for config file; the config file must be called \
                 {CONFIG_FILE_NAME:?}; using {:?} instead",
                alt.display().to_string(),
                p.display().to_string()
            ),
            None => format!(
                "ignoring {:?} when searching for config file; the config file must be called \
                 {CONFIG_FILE_NAME:?}",
                alt.display().to_string()
            ),
        })
    }
}

/// Walks up from `cwd` (which should be absolute and free of symlinks, as
/// `std::env::current_dir` gives it) looking for `.sops.yaml`, over at most 100 directories.
/// Anything by that name counts, as in sops, which only `stat`s it.
pub fn lookup_config(cwd: &Path) -> ConfigLookup {
    let mut found = ConfigLookup::default();
    for dir in cwd.ancestors().take(MAX_DEPTH) {
        let candidate = dir.join(CONFIG_FILE_NAME);
        if std::fs::metadata(&candidate).is_ok() {
            found.path = Some(candidate);
            return found;
        }
        if found.ignored_alternate.is_none() {
            let alt = dir.join(ALTERNATE_CONFIG_NAME);
            if std::fs::metadata(&alt).is_ok() {
                found.ignored_alternate = Some(alt);
            }
        }
    }
    found
}

/// The config file to use: `explicit` (`--config` or `SOPS_CONFIG`, relative to `cwd`) wins and
/// stops the search; otherwise the nearest `.sops.yaml` from `cwd` upwards.
pub fn find_config(cwd: &Path, explicit: Option<PathBuf>) -> Option<PathBuf> {
    match explicit {
        Some(p) => Some(cwd.join(p)),
        None => lookup_config(cwd).path,
    }
}

/// Go's `filepath.Abs`: joined to `cwd` when relative, then cleaned lexically (`.` and `..`
/// removed without looking at the file system). This is the form of the file path sops matches
/// against `path_regex`; the CLI should pass file paths (and `--filename-override`) through it.
pub fn absolute_path(cwd: &Path, path: &Path) -> PathBuf {
    let joined = cwd.join(path);
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                // At the root `..` stays at the root, as in Go's Clean.
                if !matches!(
                    out.components().next_back(),
                    Some(Component::RootDir) | None
                ) {
                    out.pop();
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Layout options from `stores:`. `None` means the file did not set it (sops' defaults apply:
/// YAML indent 4, JSON a tab).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoresConfig {
    pub yaml_indent: Option<i64>,
    pub json_indent: Option<i64>,
    pub json_binary_indent: Option<i64>,
}

/// A `destination_rules` entry (used by `sops publish`), kept so nothing in the file is lost.
#[derive(Clone, Debug, Default)]
pub struct DestinationRule {
    pub path_regex: Option<String>,
    pub s3_bucket: Option<String>,
    pub s3_prefix: Option<String>,
    pub gcs_bucket: Option<String>,
    pub gcs_prefix: Option<String>,
    pub vault_path: Option<String>,
    pub vault_address: Option<String>,
    pub vault_kv_mount_name: Option<String>,
    pub vault_kv_version: Option<i64>,
    pub recreation_rule: Option<CreationRule>,
    pub omit_extensions: bool,
    pub at: Location,
}

/// A loaded `.sops.yaml`.
#[derive(Debug)]
pub struct Config {
    pub path: PathBuf,
    /// `None` when the file has no `creation_rules` key (an empty list is `Some(vec![])`).
    pub creation_rules: Option<Vec<CreationRule>>,
    pub destination_rules: Vec<DestinationRule>,
    pub stores: StoresConfig,
    /// Keys sops does not know, which it ignores silently; a caller may warn about typos.
    pub unknown_keys: Vec<(String, Location)>,
    /// The config file's directory, absolute and cleaned: `path_regex` sees paths relative to it.
    dir: PathBuf,
}

/// Reads and parses a config file. A relative `path` is taken from the process's current
/// directory, as sops does.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let cwd = std::env::current_dir().map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    Config::parse(path, &text, &cwd)
}

impl Config {
    /// Parses config text; `path` names the file in errors and, made absolute against `cwd`,
    /// gives the directory `path_regex` is relative to.
    pub fn parse(path: &Path, text: &str, cwd: &Path) -> Result<Config, ConfigError> {
        let docs = load_yaml(text).map_err(|problem| ConfigError::Syntax {
            path: path.to_owned(),
            problem,
        })?;
        let abs = absolute_path(cwd, path);
        let dir = abs.parent().map(Path::to_owned).unwrap_or(abs.clone());
        let mut d = Decoder::default();
        let mut config = Config {
            path: path.to_owned(),
            creation_rules: None,
            destination_rules: Vec::new(),
            stores: StoresConfig::default(),
            unknown_keys: Vec::new(),
            dir,
        };
        if let Some(root) = docs.first() {
            config.decode_root(&mut d, root);
        }
        config.unknown_keys = d.unknown;
        if !d.problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems: d.problems,
            });
        }
        Ok(config)
    }

    fn decode_root(&mut self, d: &mut Decoder, root: &Node) {
        for (key, value) in d.fields(root, "config file") {
            match key {
                "creation_rules" => {
                    if !is_null(value) {
                        let rules = d
                            .seq(value, "creation_rules")
                            .iter()
                            .map(|r| CreationRule::decode(d, r))
                            .collect();
                        self.creation_rules = Some(rules);
                    }
                }
                "destination_rules" => {
                    self.destination_rules = d
                        .seq(value, "destination_rules")
                        .iter()
                        .map(|r| decode_destination(d, r))
                        .collect();
                }
                "stores" => self.stores = decode_stores(d, value),
                _ => d.unknown(key, value),
            }
        }
    }

    /// The `destination_rules` entry for `file` (`sops publish`), as sops'
    /// parseDestinationRuleForFile picks it: the first rule without `path_regex`, or whose regex
    /// matches the path as given on the command line (not made relative to the config).
    pub fn destination_for(&self, file: &str) -> Option<&DestinationRule> {
        self.destination_rules
            .iter()
            .find(|r| match r.path_regex.as_deref() {
                None | Some("") => true,
                Some(re) => regex::Regex::new(re).is_ok_and(|re| re.is_match(file)),
            })
    }

    /// The creation rule for `file`, an absolute, cleaned path (see [`absolute_path`]).
    ///
    /// As sops: the path is made relative to the config file's directory by removing that
    /// directory as a string prefix (a file elsewhere is matched by its absolute path), then
    /// the first rule whose `path_regex` (RE2 syntax, unanchored) matches, or that has none,
    /// wins.
    pub fn rule_for(&self, file: &Path) -> Result<&CreationRule, ConfigError> {
        let rules = self
            .creation_rules
            .as_ref()
            .ok_or_else(|| ConfigError::NoCreationRules {
                path: self.path.clone(),
            })?;
        let file_str = file.to_string_lossy();
        let prefix = format!(
            "{}{}",
            self.dir.to_string_lossy(),
            std::path::MAIN_SEPARATOR
        );
        let relative = file_str.strip_prefix(&prefix).unwrap_or(&file_str);

        for rule in rules {
            if rule.matches(relative).map_err(|(at, pattern, message)| {
                ConfigError::BadPathRegex {
                    path: self.path.clone(),
                    at,
                    pattern,
                    message,
                }
            })? {
                return rule.check(&self.path).map(|()| rule);
            }
        }
        Err(ConfigError::NoMatchingRule {
            path: self.path.clone(),
            file: file.to_owned(),
        })
    }
}

fn decode_stores(d: &mut Decoder, node: &Node) -> StoresConfig {
    let mut stores = StoresConfig::default();
    for (key, value) in d.fields(node, "stores") {
        let slot = match key {
            "yaml" => &mut stores.yaml_indent,
            "json" => &mut stores.json_indent,
            "json_binary" => &mut stores.json_binary_indent,
            "dotenv" | "ini" => {
                d.fields(value, key);
                continue;
            }
            _ => {
                d.unknown(key, value);
                continue;
            }
        };
        for (k, v) in d.fields(value, key) {
            if k == "indent" {
                *slot = d.int(v);
            } else {
                d.unknown(k, v);
            }
        }
    }
    stores
}

fn decode_destination(d: &mut Decoder, node: &Node) -> DestinationRule {
    let mut rule = DestinationRule {
        at: location(node),
        ..DestinationRule::default()
    };
    for (key, value) in d.fields(node, "destination rule") {
        match key {
            "path_regex" => rule.path_regex = d.string(value),
            "s3_bucket" => rule.s3_bucket = d.string(value),
            "s3_prefix" => rule.s3_prefix = d.string(value),
            "gcs_bucket" => rule.gcs_bucket = d.string(value),
            "gcs_prefix" => rule.gcs_prefix = d.string(value),
            "vault_path" => rule.vault_path = d.string(value),
            "vault_address" => rule.vault_address = d.string(value),
            "vault_kv_mount_name" => rule.vault_kv_mount_name = d.string(value),
            "vault_kv_version" => rule.vault_kv_version = d.int(value),
            "recreation_rule" => rule.recreation_rule = Some(CreationRule::decode(d, value)),
            "omit_extensions" => rule.omit_extensions = d.bool(value),
            _ => d.unknown(key, value),
        }
    }
    rule
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::crypt_rule::CryptRuleKind;

    const R1: &str = "age1q6tj20qmu36rmhnvwtenf6ezz2hrtt4aknnxsyu6k5wklw4aw4psu4ec22";
    const R2: &str = "age1edszjlr2fcmvtwp2ukmgat0rm06pdhv3yw3a457y4x4qnsj8wcjq68qlqh";
    const R3: &str = "age1vlkq8y3j3tmfn3ck48th5mevyje2kvvv8xc54cmh5zzcxu5epv6q9tyeqz";
    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/config");

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "enseal-config-{tag}-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Parses `text` as if it were `/proj/.sops.yaml`.
    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/proj/.sops.yaml"), text, Path::new("/"))
    }

    fn ages_for(config: &Config, file: &str) -> Vec<Vec<String>> {
        config
            .rule_for(Path::new(file))
            .unwrap()
            .key_groups
            .iter()
            .map(|g| g.age.clone())
            .collect()
    }

    /// The rules and paths were run through the real sops 3.11 (`sops encrypt` on files in a
    /// temporary tree, reading the recipient it used); the expectations are what it picked.
    #[test]
    fn rule_choice_matches_sops() {
        let text = std::fs::read_to_string(format!("{FIXTURES}/rules.sops.yaml")).unwrap();
        let config =
            Config::parse(Path::new("/tmp/t/proj/.sops.yaml"), &text, Path::new("/")).unwrap();
        let table = [
            // Relative to the config's directory, so ^ anchors there.
            ("/tmp/t/proj/sub/deep/x.yaml", R3),
            ("/tmp/t/proj/sub/x.prod.yaml", R2),
            ("/tmp/t/proj/x.yaml", R1),
            // Outside the config's directory the absolute path is matched.
            ("/tmp/t/other/y.yaml", R3),
            ("/tmp/t/other/y.prod.yaml", R2),
            // A sibling directory sharing the prefix is not inside it.
            ("/tmp/t/project/sub/deep/x.yaml", R1),
        ];
        for (file, want) in table {
            assert_eq!(
                ages_for(&config, file),
                vec![vec![want.to_owned()]],
                "{file}"
            );
        }
        // The typo'd key in the second rule is ignored by sops; we report it.
        assert_eq!(config.unknown_keys.len(), 1);
        assert_eq!(config.unknown_keys[0].0, "creation_rulez");
    }

    #[test]
    fn first_match_wins_and_no_regex_matches_all() {
        let config = parse(&format!(
            "creation_rules:\n  - path_regex: ''\n    age: {R1}\n  - path_regex: x\n    age: {R2}\n"
        ))
        .unwrap();
        assert_eq!(ages_for(&config, "/proj/x"), vec![vec![R1.to_owned()]]);
        let config = parse(&format!(
            "creation_rules:\n  - path_regex: \\.env$\n    age: {R1}\n  - age: {R2}\n"
        ))
        .unwrap();
        assert_eq!(ages_for(&config, "/proj/a.env"), vec![vec![R1.to_owned()]]);
        assert_eq!(
            ages_for(&config, "/proj/a.env.bak"),
            vec![vec![R2.to_owned()]]
        );
    }

    #[test]
    fn no_matching_rule_is_a_typed_error() {
        let config = parse(&format!(
            "creation_rules:\n  - path_regex: nomatch\n    age: {R1}\n"
        ))
        .unwrap();
        assert!(matches!(
            config.rule_for(Path::new("/proj/x.yaml")),
            Err(ConfigError::NoMatchingRule { .. })
        ));
        // An empty list is a list without a match, as in sops...
        let config = parse("creation_rules: []\n").unwrap();
        assert!(matches!(
            config.rule_for(Path::new("/proj/x.yaml")),
            Err(ConfigError::NoMatchingRule { .. })
        ));
        // ...while no creation_rules at all means "no config" to sops.
        for text in [
            "stores:\n  yaml:\n    indent: 2\n",
            "",
            "creation_rules:\n",
            "# only a comment\n",
        ] {
            let config = parse(text).unwrap();
            assert!(
                matches!(
                    config.rule_for(Path::new("/proj/x.yaml")),
                    Err(ConfigError::NoCreationRules { .. })
                ),
                "{text:?}"
            );
        }
    }

    #[test]
    fn key_lists_as_comma_strings_or_yaml_lists() {
        let config = parse(&format!(
            "creation_rules:\n\
             \x20 - path_regex: a\n    age: '{R1}, ,{R2},'\n\
             \x20 - path_regex: b\n    age: [{R1}, {R2}]\n\
             \x20 - path_regex: c\n    age:\n      - ' {R1} '\n      - '{R2},{R3}'\n\
             \x20 - path_regex: d\n    age: '{R1},{R1}'\n"
        ))
        .unwrap();
        let both = vec![vec![R1.to_owned(), R2.to_owned()]];
        assert_eq!(ages_for(&config, "/proj/a"), both);
        assert_eq!(ages_for(&config, "/proj/b"), both);
        assert_eq!(
            ages_for(&config, "/proj/c"),
            vec![vec![R1.to_owned(), R2.to_owned(), R3.to_owned()]]
        );
        // sops keeps duplicates in top-level lists (it de-duplicates inside key_groups only).
        assert_eq!(
            ages_for(&config, "/proj/d"),
            vec![vec![R1.to_owned(), R1.to_owned()]]
        );
    }

    #[test]
    fn empty_list_item_is_kept_for_the_recipient_parser_to_refuse() {
        // sops: `failed to parse input, unknown recipient type: ""`.
        let config = parse(&format!("creation_rules:\n  - age: ['{R1}', '']\n")).unwrap();
        assert_eq!(
            ages_for(&config, "/proj/x"),
            vec![vec![R1.to_owned(), String::new()]]
        );
    }

    #[test]
    fn non_string_keys_fail_only_for_the_rule_used() {
        let config = parse(&format!(
            "creation_rules:\n  - path_regex: a\n    age: 123\n  - path_regex: b\n    age: [{R1}, 5]\n  - age: {R2}\n"
        ))
        .unwrap();
        let err = config.rule_for(Path::new("/proj/a")).unwrap_err();
        assert!(matches!(err, ConfigError::InvalidKeys { .. }));
        assert!(err.to_string().contains("got int"), "{err}");
        assert!(err.to_string().contains("line 3, column 10"), "{err}");
        let err = config.rule_for(Path::new("/proj/b")).unwrap_err();
        assert!(
            err.to_string().contains("expected string in list, got int"),
            "{err}"
        );
        assert_eq!(ages_for(&config, "/proj/c"), vec![vec![R2.to_owned()]]);
    }

    #[test]
    fn key_groups_with_shamir_merge_and_dedup() {
        let text = std::fs::read_to_string(format!("{FIXTURES}/key_groups.sops.yaml")).unwrap();
        let config = parse(&text).unwrap();
        let rule = config.rule_for(Path::new("/proj/secrets.yaml")).unwrap();
        assert_eq!(rule.shamir_threshold, Some(2));
        assert_eq!(rule.key_groups.len(), 3);
        // Merged groups come first; duplicates inside a group go, comma lists split.
        assert_eq!(rule.key_groups[0].age, vec![R2, R3, R1]);
        assert_eq!(rule.key_groups[1].age, vec![R2, R3]);
        let kms = &rule.key_groups[2].kms;
        assert_eq!(kms.len(), 1);
        assert_eq!(kms[0].arn, "arn:aws:kms:eu-west-1:000000000000:key/abc");
        assert_eq!(
            kms[0].role.as_deref(),
            Some("arn:aws:iam::000000000000:role/sops")
        );
        assert_eq!(kms[0].aws_profile.as_deref(), Some("dev"));
        assert_eq!(kms[0].context.get("app").map(String::as_str), Some("web"));
        assert_eq!(
            rule.key_groups[2].pgp,
            vec!["FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4"]
        );
        assert_eq!(
            rule.key_groups[2].gcp_kms,
            vec!["projects/p/locations/global/keyRings/r/cryptoKeys/k"]
        );
        assert!(rule.key_groups[2].unsupported.is_empty());
        // Top-level keys are ignored when key_groups is set.
        assert!(rule
            .key_groups
            .iter()
            .all(|g| !g.age.contains(&"age1ignored".to_owned())));
    }

    #[test]
    fn top_level_kms_with_role_and_profile_make_one_group() {
        let config = parse(
            "creation_rules:\n  - kms: 'arn:aws:kms:us-east-1:1:key/a+arn:aws:iam::1:role/r, arn:aws:kms:us-east-1:1:key/b'\n    aws_profile: prod\n    pgp: 'AB CD,EF'\n    gcp_kms: projects/p/locations/l/keyRings/r/cryptoKeys/k\n",
        )
        .unwrap();
        let rule = config.rule_for(Path::new("/proj/x")).unwrap();
        assert_eq!(rule.key_groups.len(), 1);
        let g = &rule.key_groups[0];
        assert_eq!(
            g.kms,
            vec![
                KmsKeySpec {
                    arn: "arn:aws:kms:us-east-1:1:key/a".into(),
                    role: Some("arn:aws:iam::1:role/r".into()),
                    context: Default::default(),
                    aws_profile: Some("prod".into()),
                },
                KmsKeySpec {
                    arn: "arn:aws:kms:us-east-1:1:key/b".into(),
                    role: None,
                    context: Default::default(),
                    aws_profile: Some("prod".into()),
                },
            ]
        );
        assert_eq!(g.pgp, vec!["ABCD", "EF"]);
        assert_eq!(
            g.gcp_kms,
            vec!["projects/p/locations/l/keyRings/r/cryptoKeys/k"]
        );
        assert!(g.unsupported.is_empty());
        assert_eq!(rule.aws_profile.as_deref(), Some("prod"));
    }

    /// `hc_vault_transit_uri` is "string or list" (a string split on commas, as sops'
    /// parseKeyField, empty entries dropped); `hc_vault` in a key group is a list of URIs, one
    /// each, merged and de-duplicated like the other key types.
    #[test]
    fn vault_transit_uris_at_the_top_level_and_in_key_groups() {
        let u1 = "https://v.example:8200/v1/transit/keys/a";
        let u2 = "https://v.example:8200/v1/transit/keys/b";
        let config = parse(&format!(
            "creation_rules:\n  - path_regex: one\n    hc_vault_transit_uri: '{u1},{u2},'\n\
             \x20 - path_regex: list\n    hc_vault_transit_uri:\n      - {u1}\n\
             \x20 - path_regex: groups\n    key_groups:\n      - hc_vault: [{u2}, {u2}]\n        merge:\n          - hc_vault: [{u1}]\n"
        ))
        .unwrap();
        let vault = |file: &str| -> Vec<Vec<String>> {
            config
                .rule_for(Path::new(file))
                .unwrap()
                .key_groups
                .iter()
                .map(|g| g.hc_vault.clone())
                .collect()
        };
        assert_eq!(vault("/proj/one"), vec![vec![u1, u2]]);
        assert_eq!(vault("/proj/list"), vec![vec![u1]]);
        assert_eq!(vault("/proj/groups"), vec![vec![u1, u2]]);
        let rule = config.rule_for(Path::new("/proj/groups")).unwrap();
        assert!(rule.key_groups.iter().all(|g| g.unsupported.is_empty()));
    }

    /// `azure_keyvault` at the top of a rule is "string or list" of key URLs (joined and split
    /// on commas, as sops' MasterKeysFromURLs); in a key group it is a list of
    /// `{vaultUrl, key, version}` (sops' azureKVKey), the version optional.
    #[test]
    fn azure_keyvault_urls_at_the_top_level_and_keys_in_key_groups() {
        use crate::config::creation_rule::AzureKvKeySpec;
        let u1 = "https://a.vault.azure.net/keys/k/v1";
        let u2 = "https://b.vault.azure.net/keys/k";
        let config = parse(&format!(
            "creation_rules:\n  - path_regex: one\n    azure_keyvault: '{u1},{u2}'\n\
             \x20 - path_regex: list\n    azure_keyvault:\n      - {u1}\n\
             \x20 - path_regex: groups\n    key_groups:\n      - azure_keyvault:\n          - vaultUrl: https://a.vault.azure.net\n            key: k\n            version: v1\n        merge:\n          - azure_keyvault:\n              - vaultUrl: https://b.vault.azure.net\n                key: k\n"
        ))
        .unwrap();
        let azure = |file: &str| -> Vec<Vec<AzureKvKeySpec>> {
            config
                .rule_for(Path::new(file))
                .unwrap()
                .key_groups
                .iter()
                .map(|g| g.azure_kv.clone())
                .collect()
        };
        let url = |u: &str| AzureKvKeySpec::Url(u.to_owned());
        assert_eq!(azure("/proj/one"), vec![vec![url(u1), url(u2)]]);
        assert_eq!(azure("/proj/list"), vec![vec![url(u1)]]);
        let key = |v: &str, version: &str| AzureKvKeySpec::Key {
            vault_url: v.to_owned(),
            key: "k".to_owned(),
            version: version.to_owned(),
        };
        assert_eq!(
            azure("/proj/groups"),
            vec![vec![
                key("https://b.vault.azure.net", ""),
                key("https://a.vault.azure.net", "v1")
            ]]
        );
        let rule = config.rule_for(Path::new("/proj/groups")).unwrap();
        assert!(rule.key_groups.iter().all(|g| g.unsupported.is_empty()));
    }

    /// `hckms` (sops 3.12+, HuaweiCloud KMS) is a list of key IDs at the top of a rule and a
    /// list of `{key_id}` in a key group: read, not ignored, so that enseal refuses to encrypt
    /// without them instead of leaving their holders out.
    #[test]
    fn hckms_keys_at_the_top_level_and_in_key_groups() {
        use crate::format::metadata::UnsupportedKey;
        let k1 = "cn-north-4:0d0466b1-5b4e-4f5a-9f4e-1234567890ab";
        let k2 = "ap-southeast-1:7e2c1f00-0000-4000-8000-000000000002";
        let config = parse(&format!(
            "creation_rules:\n  - path_regex: list\n    age: {R1}\n    hckms: ['{k1}, {k2}', '']\n\
             \x20 - path_regex: groups\n    key_groups:\n      - age: [{R1}]\n        hckms:\n          - key_id: {k2}\n          - key_id: {k2}\n        merge:\n          - hckms:\n              - key_id: {k1}\n"
        ))
        .unwrap();
        let hckms = |file: &str| -> Vec<Vec<String>> {
            config
                .rule_for(Path::new(file))
                .unwrap()
                .key_groups
                .iter()
                .map(|g| g.unsupported.iter().map(UnsupportedKey::describe).collect())
                .collect()
        };
        let named = |k: &str| format!("hckms {k}");
        assert_eq!(hckms("/proj/list"), vec![vec![named(k1), named(k2)]]);
        assert_eq!(hckms("/proj/groups"), vec![vec![named(k1), named(k2)]]);
        assert!(config.unknown_keys.is_empty(), "{:?}", config.unknown_keys);
    }

    #[test]
    fn crypt_rules_and_flags() {
        let config = parse(&format!(
            "creation_rules:\n\
             \x20 - path_regex: a\n    age: {R1}\n    encrypted_regex: ^(data|stringData)$\n    mac_only_encrypted: yes\n\
             \x20 - path_regex: b\n    age: {R1}\n    unencrypted_suffix: ''\n    encrypted_suffix: _enc\n\
             \x20 - path_regex: c\n    age: {R1}\n    encrypted_regex: ^a\n    unencrypted_suffix: _u\n\
             \x20 - age: {R1}\n    shamir_threshold: 0\n"
        ))
        .unwrap();
        let a = config.rule_for(Path::new("/proj/a")).unwrap();
        assert_eq!(
            a.crypt_rule,
            Some(CryptRuleSpec {
                kind: CryptRuleKind::EncryptedRegex,
                value: "^(data|stringData)$".into()
            })
        );
        assert!(a.mac_only_encrypted);
        // An empty value does not count as set.
        let b = config.rule_for(Path::new("/proj/b")).unwrap();
        assert_eq!(
            b.crypt_rule,
            Some(CryptRuleSpec {
                kind: CryptRuleKind::EncryptedSuffix,
                value: "_enc".into()
            })
        );
        assert_eq!(b.crypt_rule.as_ref().unwrap().field(), "encrypted_suffix");
        // Two rules set: sops refuses, but only for files that pick this rule.
        let err = config.rule_for(Path::new("/proj/c")).unwrap_err();
        match &err {
            ConfigError::ConflictingCryptRules { fields, at, .. } => {
                assert_eq!(fields, &vec!["unencrypted_suffix", "encrypted_regex"]);
                assert_eq!(at.line, 10);
            }
            other => panic!("{other:?}"),
        }
        let d = config.rule_for(Path::new("/proj/d")).unwrap();
        assert_eq!(d.crypt_rule, None);
        assert_eq!(d.shamir_threshold, None);
        assert!(!d.mac_only_encrypted);
    }

    #[test]
    fn bad_yaml_reports_line_and_column() {
        let err = parse(&format!(
            "creation_rules:\n  - age: [{R1}\n    path_regex: x\n"
        ))
        .unwrap_err();
        match &err {
            ConfigError::Syntax { path, problem } => {
                assert_eq!(path, Path::new("/proj/.sops.yaml"));
                assert!(problem.at.line >= 2, "{err}");
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("/proj/.sops.yaml"), "{err}");
        let err = parse("creation_rules:\n  - path_regex: a\n\tage: x\n").unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
    }

    #[test]
    fn type_errors_are_listed_with_their_lines_like_yaml_v3() {
        let err = parse(&format!(
            "creation_rules:\n  - age: {R1}\n    shamir_threshold: abc\n    mac_only_encrypted: maybe\n    key_groups:\n      - age: {R1}\n"
        ))
        .unwrap_err();
        let ConfigError::Invalid { problems, .. } = &err else {
            panic!("{err:?}")
        };
        let lines: Vec<usize> = problems.iter().map(|p| p.at.line).collect();
        assert_eq!(lines, vec![3, 4, 6]);
        assert!(problems[0]
            .message
            .contains("cannot unmarshal !!str `abc` into int"));
        assert!(problems[1].message.contains("into bool"));
        assert!(problems[2].message.contains("into []string"));
        for text in [
            "creation_rules:\n  age: x\n",
            "creation_rules:\n  - foo\n",
            "- a\n",
        ] {
            assert!(
                matches!(parse(text), Err(ConfigError::Invalid { .. })),
                "{text:?}"
            );
        }
    }

    #[test]
    fn duplicate_keys_are_an_error_as_in_sops() {
        let err = parse(&format!("creation_rules:\n  - age: {R1}\n    age: {R2}\n")).unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn scalars_are_read_as_go_reads_them_into_typed_fields() {
        let config = parse(&format!(
            "creation_rules:\n\
             \x20 - path_regex: 1\n    age: {R1}\n    shamir_threshold: 0x2\n    mac_only_encrypted: True\n\
             \x20 - age: !!str {R2}\n    shamir_threshold: 3.0\n    mac_only_encrypted: 'off'\n"
        ))
        .unwrap();
        let one = config.rule_for(Path::new("/proj/a1")).unwrap();
        assert_eq!(one.path_regex.as_deref(), Some("1"));
        assert_eq!(one.shamir_threshold, Some(2));
        assert!(one.mac_only_encrypted);
        let two = config.rule_for(Path::new("/proj/b")).unwrap();
        assert_eq!(two.shamir_threshold, Some(3));
        assert!(!two.mac_only_encrypted);
        assert!(matches!(
            parse("creation_rules:\n  - shamir_threshold: '2'\n"),
            Err(ConfigError::Invalid { .. })
        ));
    }

    /// Each case checked against sops 3.11 (with nine key groups, so that a threshold up to 9
    /// shows in the metadata): one resolver with the YAML store, as go-yaml has one.
    #[test]
    fn numbers_in_typed_fields_resolve_as_in_files() {
        let threshold = |text: &str| {
            parse(&format!(
                "creation_rules:\n  - age: {R1}\n    shamir_threshold: {text}\n"
            ))
            .map(|c| c.rule_for(Path::new("/proj/a")).unwrap().shamir_threshold)
        };
        for (text, want) in [
            ("010", 8),
            ("011", 9),
            ("0X1F", 31),
            ("0o17", 15),
            ("0b11", 3),
            ("1_0", 10),
            ("08", 8),
            ("2.7", 2),
            ("!!int 3", 3),
            ("!!float 3", 3),
        ] {
            assert_eq!(threshold(text).unwrap(), Some(want), "{text}");
        }
        for (text, shown) in [
            ("1e400", "!!str `1e400`"),
            ("0x8000000000000000", "!!int `0x80000...`"),
            ("2001-01-01", "!!timestamp `2001-01-01`"),
            ("'3'", "!!str `3`"),
        ] {
            let err = threshold(text).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("cannot unmarshal {shown} into int")),
                "{text}: {err}"
            );
        }
    }

    /// Checked against sops 3.11, like the numbers above.
    #[test]
    fn booleans_in_typed_fields_resolve_as_in_files() {
        let mac_only = |text: &str| {
            parse(&format!(
                "creation_rules:\n  - age: {R1}\n    mac_only_encrypted: {text}\n"
            ))
            .map(|c| c.rule_for(Path::new("/proj/a")).unwrap().mac_only_encrypted)
        };
        for (text, want) in [
            ("yes", true),
            ("'on'", true),
            ("!!bool true", true),
            ("!!str yes", true),
            ("Off", false),
            ("~", false),
            ("!!null ~", false),
        ] {
            assert_eq!(mac_only(text).unwrap(), want, "{text}");
        }
        for (text, shown) in [("\"true\"", "!!str `true`"), ("1", "!!int `1`")] {
            let err = mac_only(text).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("cannot unmarshal {shown} into bool")),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn anchors_and_merge_keys_work() {
        let config = parse(&format!(
            "x: &base\n  age: {R2}\n  encrypted_suffix: _s\n\
             creation_rules:\n  - <<: *base\n    path_regex: a\n  - <<: *base\n    age: {R3}\n"
        ))
        .unwrap();
        let a = config.rule_for(Path::new("/proj/a")).unwrap();
        assert_eq!(a.key_groups[0].age, vec![R2]);
        assert_eq!(
            a.crypt_rule,
            Some(CryptRuleSpec {
                kind: CryptRuleKind::EncryptedSuffix,
                value: "_s".into()
            })
        );
        // An explicit key beats the merged one.
        assert_eq!(ages_for(&config, "/proj/b"), vec![vec![R3.to_owned()]]);
    }

    #[test]
    fn only_the_first_document_counts() {
        let config = parse(&format!(
            "creation_rules:\n  - age: {R1}\n---\ncreation_rules:\n  - age: {R2}\n"
        ))
        .unwrap();
        assert_eq!(ages_for(&config, "/proj/x"), vec![vec![R1.to_owned()]]);
    }

    #[test]
    fn bad_path_regex_fails_only_when_reached() {
        let config = parse(&format!(
            "creation_rules:\n  - path_regex: x\\.yaml\n    age: {R1}\n  - path_regex: '('\n    age: {R2}\n"
        ))
        .unwrap();
        assert_eq!(ages_for(&config, "/proj/x.yaml"), vec![vec![R1.to_owned()]]);
        let err = config.rule_for(Path::new("/proj/y.json")).unwrap_err();
        match err {
            ConfigError::BadPathRegex { pattern, at, .. } => {
                assert_eq!(pattern, "(");
                assert_eq!(at.line, 4);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stores_and_destination_rules_are_kept() {
        let config = parse(
            "stores:\n  yaml:\n    indent: 2\n  json:\n    indent: 4\n  json_binary:\n    indent: 0\n  dotenv: {}\n\
             destination_rules:\n  - path_regex: s3/.*\n    s3_bucket: b\n    s3_prefix: p/\n    omit_extensions: true\n    recreation_rule:\n      age: age1x\n",
        )
        .unwrap();
        assert_eq!(
            config.stores,
            StoresConfig {
                yaml_indent: Some(2),
                json_indent: Some(4),
                json_binary_indent: Some(0)
            }
        );
        assert_eq!(config.destination_rules.len(), 1);
        let d = &config.destination_rules[0];
        assert_eq!(d.s3_bucket.as_deref(), Some("b"));
        assert!(d.omit_extensions);
        assert_eq!(
            d.recreation_rule.as_ref().unwrap().key_groups[0].age,
            vec!["age1x"]
        );
        assert!(matches!(
            parse("stores:\n  yaml:\n    indent: x\n"),
            Err(ConfigError::Invalid { .. })
        ));
    }

    #[test]
    fn absolute_path_cleans_like_go() {
        let cwd = Path::new("/home/u/proj");
        assert_eq!(
            absolute_path(cwd, Path::new("a/./b/../c.yaml")),
            Path::new("/home/u/proj/a/c.yaml")
        );
        assert_eq!(
            absolute_path(cwd, Path::new("../x")),
            Path::new("/home/u/x")
        );
        assert_eq!(
            absolute_path(cwd, Path::new("/../../etc")),
            Path::new("/etc")
        );
        assert_eq!(absolute_path(cwd, Path::new("/abs/f")), Path::new("/abs/f"));
    }

    #[test]
    fn relative_config_path_is_resolved_against_cwd() {
        let config = Config::parse(
            Path::new("../.sops.yaml"),
            &format!("creation_rules:\n  - path_regex: ^sub/\n    age: {R1}\n  - age: {R2}\n"),
            Path::new("/proj/sub"),
        )
        .unwrap();
        assert_eq!(
            ages_for(&config, "/proj/sub/x.yaml"),
            vec![vec![R1.to_owned()]]
        );
    }

    #[test]
    fn lookup_walks_up_100_directories_and_ignores_sops_yml() {
        let root = temp_dir("lookup");
        std::fs::write(root.join(".sops.yaml"), "creation_rules: []\n").unwrap();
        let mut deep = root.clone();
        for i in 1..=100 {
            deep.push(format!("d{i}"));
        }
        std::fs::create_dir_all(&deep).unwrap();
        // Checked with sops 3.11: found from 99 levels below, not from 100.
        assert_eq!(
            find_config(deep.parent().unwrap(), None),
            Some(root.join(".sops.yaml"))
        );
        assert_eq!(find_config(&deep, None), None);

        let sub = root.join("d1");
        std::fs::write(sub.join(".sops.yml"), "creation_rules: []\n").unwrap();
        let found = lookup_config(&sub.join("d2"));
        assert_eq!(found.path, Some(root.join(".sops.yaml")));
        assert_eq!(found.ignored_alternate, Some(sub.join(".sops.yml")));
        assert!(found
            .warning()
            .unwrap()
            .contains("the config file must be called \".sops.yaml\""));

        // The nearest wins.
        std::fs::write(sub.join(".sops.yaml"), "").unwrap();
        assert_eq!(
            find_config(&sub.join("d2"), None),
            Some(sub.join(".sops.yaml"))
        );
        // --config / SOPS_CONFIG stop the search, relative to the working directory.
        assert_eq!(
            find_config(&sub, Some(PathBuf::from("elsewhere.yaml"))),
            Some(sub.join("elsewhere.yaml"))
        );
        let loaded = load(&root.join(".sops.yaml")).unwrap();
        assert_eq!(loaded.creation_rules.as_ref().map(Vec::len), Some(0));
        assert!(matches!(
            load(&root.join("missing.yaml")),
            Err(ConfigError::Read { .. })
        ));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn null_context_value_is_refused_instead_of_crashing_like_sops() {
        let config = parse(
            "creation_rules:\n  - key_groups:\n    - kms:\n      - arn: arn:aws:kms:us-east-1:1:key/a\n        context: {a: b, c: ~}\n",
        )
        .unwrap();
        assert!(matches!(
            config.rule_for(Path::new("/proj/x")),
            Err(ConfigError::InvalidKeys { .. })
        ));
    }
}
