//! Who a new file is encrypted for and how: from the command line, else from the creation rule
//! of `.sops.yaml` that matches the file (first match wins, as in sops).

use std::path::{Path, PathBuf};

use enseal_sops::config::creation_rule::AzureKvKeySpec;
use enseal_sops::config::{self, Config, ConfigError};
use enseal_sops::format::crypt_rule::{CryptRule, CryptRuleKind};
use enseal_sops::format::metadata::{
    AzureKvStanza, GcpKmsStanza, KmsStanza, UnsupportedKey, VaultStanza,
};
use enseal_sops::keys::age::AgeRecipient;
use enseal_sops::keys::aws_kms;
use enseal_sops::keys::azure_kv;
use enseal_sops::keys::gcp_kms;
use enseal_sops::keys::groups::GroupRecipients;
use enseal_sops::keys::hc_vault;
use enseal_sops::keys::pgp::{GnuPg, PgpFingerprint};
use enseal_sops::stores::{Format, WriteOptions};

use crate::args::GlobalOptions;
use crate::exit::{self, Failure, Result};
use crate::voice;

pub struct Plan {
    pub groups: Vec<GroupRecipients>,
    pub threshold: Option<usize>,
    pub crypt_rule: CryptRule,
    pub mac_only_encrypted: bool,
    pub write: WriteOptions,
    /// Per group, the keys of sources enseal cannot wrap for (hckms) that the creation rule
    /// names: always empty but for [`for_updatekeys`], which keeps the file's entries for them.
    pub kept: Vec<Vec<UnsupportedKey>>,
}

pub fn parse_recipients(list: &str) -> Result<Vec<AgeRecipient>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|r| {
            r.parse::<AgeRecipient>()
                .map_err(|e| Failure::new(exit::GENERIC, e.to_string()))
        })
        .collect()
}

/// A comma-separated list of PGP fingerprints (`--pgp`, `SOPS_PGP_FP`, a creation rule's
/// `pgp`, `--add-pgp`): each checked to be hex before it can reach gpg.
pub fn parse_fingerprints(list: &str) -> Result<Vec<PgpFingerprint>> {
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|f| {
            f.parse::<PgpFingerprint>()
                .map_err(|e| Failure::new(exit::GENERIC, e.to_string()))
        })
        .collect()
}

fn cli_pgp_keys(global: &GlobalOptions) -> Result<Vec<PgpFingerprint>> {
    match &global.pgp {
        Some(list) => parse_fingerprints(list),
        None => Ok(Vec::new()),
    }
}

fn cli_kms_keys(global: &GlobalOptions) -> Result<Vec<KmsStanza>> {
    let bad = |e: aws_kms::KmsError| Failure::new(exit::GENERIC, e.to_string());
    let context = match &global.encryption_context {
        Some(c) => aws_kms::parse_encryption_context(c).map_err(bad)?,
        None => Vec::new(),
    };
    match &global.kms {
        Some(list) => {
            aws_kms::parse_kms_list(list, &context, global.aws_profile.as_deref()).map_err(bad)
        }
        None => Ok(Vec::new()),
    }
}

/// A comma-separated list of Vault transit key URIs (`--hc-vault-transit`, `SOPS_VAULT_URIS`,
/// a creation rule's `hc_vault_transit_uri`, `--add-hc-vault-transit`).
pub fn parse_vault_uris(list: &str) -> Result<Vec<VaultStanza>> {
    hc_vault::parse_uri_list(list).map_err(|e| Failure::new(exit::GENERIC, e.to_string()))
}

/// A comma-separated list of Azure Key Vault key URLs (`--azure-kv`,
/// `SOPS_AZURE_KEYVAULT_URLS`, a creation rule's `azure_keyvault`, `--add-azure-kv`).
pub fn parse_azure_kv_urls(list: &str) -> Result<Vec<AzureKvStanza>> {
    azure_kv::parse_url_list(list).map_err(|e| Failure::new(exit::GENERIC, e.to_string()))
}

fn cli_azure_kv_keys(global: &GlobalOptions) -> Result<Vec<AzureKvStanza>> {
    match &global.azure_kv {
        Some(list) => parse_azure_kv_urls(list),
        None => Ok(Vec::new()),
    }
}

/// The GCP KMS keys of `--gcp-kms` / `SOPS_GCP_KMS_IDS`.
fn cli_gcp_kms_keys(global: &GlobalOptions) -> Vec<GcpKmsStanza> {
    global
        .gcp_kms
        .as_deref()
        .map(gcp_kms::parse_resource_ids)
        .unwrap_or_default()
}

fn cli_vault_keys(global: &GlobalOptions) -> Result<Vec<VaultStanza>> {
    match &global.hc_vault_transit {
        Some(list) => parse_vault_uris(list),
        None => Ok(Vec::new()),
    }
}

/// The key group the command line names (`--age`, `--pgp`, `--kms`): what `groups add` adds.
pub fn cli_group(global: &GlobalOptions) -> Result<GroupRecipients> {
    Ok(GroupRecipients {
        age: match &global.age {
            Some(list) => parse_recipients(list)?,
            None => Vec::new(),
        },
        kms: cli_kms_keys(global)?,
        pgp: cli_pgp_keys(global)?,
        hc_vault: cli_vault_keys(global)?,
        gcp_kms: cli_gcp_kms_keys(global),
        azure_kv: cli_azure_kv_keys(global)?,
    })
}

fn cli_crypt_rule(global: &GlobalOptions) -> Result<Option<CryptRule>> {
    use CryptRuleKind::*;
    CryptRule::from_fields([
        (UnencryptedSuffix, global.unencrypted_suffix.as_deref()),
        (EncryptedSuffix, global.encrypted_suffix.as_deref()),
        (UnencryptedRegex, global.unencrypted_regex.as_deref()),
        (EncryptedRegex, global.encrypted_regex.as_deref()),
        (
            UnencryptedCommentRegex,
            global.unencrypted_comment_regex.as_deref(),
        ),
        (
            EncryptedCommentRegex,
            global.encrypted_comment_regex.as_deref(),
        ),
    ])
    .map_err(|e| Failure::new(exit::CONFLICTING_PARAMETERS, e.to_string()))
}

/// The config file in force: `--config`/`SOPS_CONFIG`, else the nearest `.sops.yaml` above the
/// working directory.
pub fn config_path(global: &GlobalOptions) -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    config::find_config(&cwd, global.config.clone())
}

pub fn load_config(path: &Path) -> Result<Config> {
    config::load(path).map_err(|e| Failure::new(exit::GENERIC, e.to_string()))
}

/// The plan for encrypting `name` (a new file). A creation rule naming keys enseal cannot wrap
/// for (hckms) is refused, as sops fails (exit 1) when it cannot wrap the data key for one:
/// encrypting without them would leave their holders out without a word.
pub fn for_file(global: &GlobalOptions, name: &Path, format: Format) -> Result<Plan> {
    for_file_keeping(global, name, format, false)
}

/// The plan for `updatekeys` of `name`: as [`for_file`], but the keys enseal cannot wrap for
/// are put in [`Plan::kept`], for the file's entries for them to be kept (the data key does
/// not change there, so they still open it).
pub fn for_updatekeys(global: &GlobalOptions, name: &Path, format: Format) -> Result<Plan> {
    for_file_keeping(global, name, format, true)
}

fn for_file_keeping(
    global: &GlobalOptions,
    name: &Path,
    format: Format,
    keep_unsupported: bool,
) -> Result<Plan> {
    if let Some(key) = UnsupportedKey::hckms_list(global.hckms.as_deref()).first() {
        return Err(Failure::new(
            exit::GENERIC,
            format!(
                "--hckms (or SOPS_HUAWEICLOUD_KMS_IDS) names {}, and {}",
                key.describe(),
                key.reason()
            ),
        ));
    }
    let cli_age = match &global.age {
        Some(list) => parse_recipients(list)?,
        None => Vec::new(),
    };
    let cli_kms = cli_kms_keys(global)?;
    let cli_pgp = cli_pgp_keys(global)?;
    let cli_vault = cli_vault_keys(global)?;
    let cli_gcp_kms = cli_gcp_kms_keys(global);
    let cli_azure_kv = cli_azure_kv_keys(global)?;
    let cli_rule = cli_crypt_rule(global)?;
    let config = match config_path(global) {
        Some(p) => {
            let cfg = load_config(&p)?;
            for (key, at) in &cfg.unknown_keys {
                voice::warning(&format!(
                    "{}: {at}: unknown key {key:?} ignored",
                    p.display()
                ));
            }
            Some(cfg)
        }
        None => {
            if let Ok(cwd) = std::env::current_dir() {
                if let Some(w) = config::lookup_config(&cwd).warning() {
                    voice::warning(&w.to_string());
                }
            }
            None
        }
    };
    let mut write = WriteOptions::default();
    if let Some(cfg) = &config {
        let indent = match format {
            Format::Yaml => cfg.stores.yaml_indent,
            Format::Json => cfg.stores.json_indent,
            Format::Binary => cfg.stores.json_binary_indent,
            _ => None,
        };
        write.indent = indent.and_then(|i| usize::try_from(i).ok());
    }
    if !cli_age.is_empty()
        || !cli_kms.is_empty()
        || !cli_pgp.is_empty()
        || !cli_vault.is_empty()
        || !cli_gcp_kms.is_empty()
        || !cli_azure_kv.is_empty()
    {
        return Ok(Plan {
            groups: vec![GroupRecipients {
                age: cli_age,
                kms: cli_kms,
                pgp: cli_pgp,
                hc_vault: cli_vault,
                gcp_kms: cli_gcp_kms,
                azure_kv: cli_azure_kv,
            }],
            threshold: global.shamir_secret_sharing_threshold,
            crypt_rule: cli_rule.unwrap_or_default(),
            mac_only_encrypted: global.mac_only_encrypted,
            write,
            kept: Vec::new(),
        });
    }
    // sops 3.11 and 3.13 exit 1 here (not their ConfigFileNotFound code, 61).
    let no_config = || {
        Failure::new(
            exit::GENERIC,
            "config file not found, or has no creation rules, and no keys provided through \
             command line options (--age or SOPS_AGE_RECIPIENTS, --pgp or SOPS_PGP_FP)",
        )
    };
    let Some(config) = config else {
        return Err(no_config());
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let rule = match config.rule_for(&config::absolute_path(&cwd, name)) {
        Ok(rule) => rule,
        // sops treats a config without `creation_rules` as no config at all.
        Err(ConfigError::NoCreationRules { .. }) => return Err(no_config()),
        Err(e) => return Err(Failure::new(exit::GENERIC, e.to_string())),
    };
    let mut groups = Vec::new();
    let mut kept = Vec::new();
    for spec in &rule.key_groups {
        // Refused rather than dropped: encrypting without a key the rule names would lock its
        // holder out without a word.
        if let (false, Some(key)) = (keep_unsupported, spec.unsupported.first()) {
            return Err(Failure::new(
                exit::GENERIC,
                format!(
                    "{}: the creation rule names {}, and {}",
                    config.path.display(),
                    key.describe(),
                    key.reason()
                ),
            ));
        }
        kept.push(spec.unsupported.clone());
        let mut group = GroupRecipients::default();
        for r in &spec.age {
            group.age.extend(parse_recipients(r)?);
        }
        for f in &spec.pgp {
            group.pgp.extend(parse_fingerprints(f)?);
        }
        for uri in &spec.hc_vault {
            group.hc_vault.extend(parse_vault_uris(uri)?);
        }
        group
            .gcp_kms
            .extend(spec.gcp_kms.iter().map(|id| gcp_kms::key(id)));
        for k in &spec.azure_kv {
            match k {
                AzureKvKeySpec::Url(url) => group.azure_kv.extend(parse_azure_kv_urls(url)?),
                AzureKvKeySpec::Key {
                    vault_url,
                    key,
                    version,
                } => group.azure_kv.push(AzureKvStanza {
                    vault_url: vault_url.clone(),
                    name: key.clone(),
                    version: version.clone(),
                    ..Default::default()
                }),
            }
        }
        for k in &spec.kms {
            group.kms.push(KmsStanza {
                arn: k.arn.clone(),
                role: k.role.clone(),
                context: k.context.clone().into_iter().collect(),
                aws_profile: k.aws_profile.clone().unwrap_or_default(),
                ..Default::default()
            });
        }
        groups.push(group);
    }
    let crypt_rule = match cli_rule {
        Some(r) => r,
        None => match &rule.crypt_rule {
            Some(spec) => CryptRule::new(spec.kind, &spec.value)
                .map_err(|e| Failure::new(exit::GENERIC, e.to_string()))?,
            None => CryptRule::default(),
        },
    };
    Ok(Plan {
        groups,
        threshold: global
            .shamir_secret_sharing_threshold
            .or(rule.shamir_threshold),
        crypt_rule,
        mac_only_encrypted: global.mac_only_encrypted || rule.mac_only_encrypted,
        write,
        kept,
    })
}

impl Plan {
    /// Wraps a data key for the plan's groups, reaching KMS only when a group names KMS keys.
    pub fn wrap(
        &self,
        key: &enseal_sops::crypto::data_key::DataKey,
        file: &Path,
    ) -> Result<(Vec<enseal_sops::format::metadata::KeyGroup>, Option<usize>)> {
        wrap_for(key, &self.groups, self.threshold, file)
    }
}

/// Wraps `key` for `groups`, with AWS KMS access when a group needs it and PGP keys through
/// `SOPS_GPG_EXEC` (else `gpg`).
pub fn wrap_for(
    key: &enseal_sops::crypto::data_key::DataKey,
    groups: &[GroupRecipients],
    threshold: Option<usize>,
    file: &Path,
) -> Result<(Vec<enseal_sops::format::metadata::KeyGroup>, Option<usize>)> {
    let service = if groups.iter().any(|g| !g.kms.is_empty()) {
        Some(crate::context::kms_service()?)
    } else {
        None
    };
    let vault = if groups.iter().any(|g| !g.hc_vault.is_empty()) {
        Some(crate::context::vault_service()?)
    } else {
        None
    };
    let gcp = if groups.iter().any(|g| !g.gcp_kms.is_empty()) {
        Some(crate::context::gcp_kms_service()?)
    } else {
        None
    };
    let azure = if groups.iter().any(|g| !g.azure_kv.is_empty()) {
        Some(crate::context::azure_kv_service()?)
    } else {
        None
    };
    let gpg = GnuPg::from_env();
    let no_identities = enseal_sops::keys::age::AgeIdentities::default();
    let services = enseal_sops::keys::KeyAccess {
        age: &no_identities,
        kms: service
            .as_ref()
            .map(|s| s as &dyn enseal_sops::keys::KmsService),
        gpg: Some(&gpg),
        pgp_keys: None,
        vault: vault.as_ref(),
        gcp_kms: gcp.as_ref(),
        azure_kv: azure.as_ref(),
    };
    enseal_sops::keys::groups::wrap_for(key, groups, threshold, &services)
        .map_err(|e| exit::key_group_error(file, e))
}
