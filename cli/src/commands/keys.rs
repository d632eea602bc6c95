//! `enseal rotate` (new data key) and `enseal updatekeys` (same data key, new recipients).

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use enseal_sops::crypto::data_key::DataKey;
use enseal_sops::file;
use enseal_sops::format::metadata::{
    AzureKvStanza, KeyGroup, KmsStanza, Metadata, UnsupportedKey, VaultStanza,
};
use enseal_sops::keys::gcp_kms;
use enseal_sops::keys::groups::{self, GroupRecipients};
use enseal_sops::stores::WriteOptions;

use crate::args::{GlobalOptions, GroupsAction, RotateArgs, UpdateKeysArgs};
use crate::context;
use crate::exit::{self, Failure, Result};
use crate::file_io::{read_input, write_atomic, Destination};
use crate::plan;

/// The master keys a file is wrapped for now, as recipients to wrap for again. A key enseal
/// cannot wrap for (hckms) is refused rather than left out: a new data key or new Shamir
/// shares would leave its entry wrapping what no longer opens the file, and dropping it would
/// lock its holder out. sops fails too, exit 1, when it cannot wrap for a key.
fn recipients_of(groups: &[KeyGroup]) -> Result<Vec<GroupRecipients>> {
    if let Some(key) = groups.iter().flat_map(KeyGroup::unsupported_keys).next() {
        return Err(cannot_wrap_for(&key));
    }
    groups
        .iter()
        .map(|g| {
            let age = g
                .age
                .iter()
                .map(|a| plan::parse_recipients(&a.recipient))
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .flatten()
                .collect();
            let kms = g
                .kms
                .iter()
                .map(|k| KmsStanza {
                    enc: String::new(),
                    created_at: String::new(),
                    ..k.clone()
                })
                .collect();
            // A fingerprint read from the file is checked to be hex before it reaches gpg.
            let pgp = g
                .pgp
                .iter()
                .map(|k| plan::parse_fingerprints(&k.fp))
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .flatten()
                .collect();
            let hc_vault = g
                .hc_vault
                .iter()
                .map(|k| VaultStanza {
                    enc: String::new(),
                    created_at: String::new(),
                    ..k.clone()
                })
                .collect();
            let gcp_kms = g
                .gcp_kms
                .iter()
                .map(|k| gcp_kms::key(&k.resource_id))
                .collect();
            let azure_kv = g
                .azure_kv
                .iter()
                .map(|k| AzureKvStanza {
                    enc: String::new(),
                    created_at: String::new(),
                    ..k.clone()
                })
                .collect();
            Ok(GroupRecipients {
                age,
                kms,
                pgp,
                hc_vault,
                gcp_kms,
                azure_kv,
            })
        })
        .collect()
}

fn cannot_wrap_for(key: &UnsupportedKey) -> Failure {
    Failure::new(
        exit::GENERIC,
        format!(
            "cannot wrap the data key for {}: {}",
            key.describe(),
            key.reason()
        ),
    )
}

pub fn rotate(g: &GlobalOptions, a: &RotateArgs) -> Result<()> {
    let input = read_input(a.file.as_deref(), g.filename_override.as_deref())?;
    let format = g.input_format(&input.name);
    let dest = Destination::choose(&input, g.in_place, g.output.as_deref())?;
    let k = &a.keys;
    let opened = context::open(&input, format, context::mac(g))?;
    // --rm-hckms drops those entries first: the new data key is not wrapped for them.
    let mut now = opened.metadata.key_groups.clone();
    let gone = UnsupportedKey::hckms_list(k.rm_hckms.as_deref());
    for group in &mut now {
        group.remove_unsupported(&gone);
    }
    let mut groups = recipients_of(&now)?;
    change_keys(
        &mut groups,
        &k.add_age,
        &k.rm_age,
        plan::parse_recipients,
        |g| &mut g.age,
        |r| r.to_string(),
    )?;
    change_keys(
        &mut groups,
        &k.add_pgp,
        &k.rm_pgp,
        plan::parse_fingerprints,
        |g| &mut g.pgp,
        |f| f.to_string(),
    )?;
    let parse_gcp_kms = |list: &str| Ok(gcp_kms::parse_resource_ids(list));
    change_keys(
        &mut groups,
        &k.add_gcp_kms,
        &k.rm_gcp_kms,
        parse_gcp_kms,
        |g| &mut g.gcp_kms,
        |k| k.resource_id.clone(),
    )?;
    // An Azure URL without a version names the key's current version once wrapped.
    change_keys(
        &mut groups,
        &k.add_azure_kv,
        &k.rm_azure_kv,
        plan::parse_azure_kv_urls,
        |g| &mut g.azure_kv,
        AzureKvStanza::uri,
    )?;
    change_keys(
        &mut groups,
        &k.add_hc_vault_transit,
        &k.rm_hc_vault_transit,
        plan::parse_vault_uris,
        |g| &mut g.hc_vault,
        VaultStanza::uri,
    )?;
    let key = DataKey::generate();
    let Decrypted {
        parsed,
        mut metadata,
        ..
    } = opened;
    let (wrapped, threshold) =
        plan::wrap_for(&key, &groups, metadata.shamir_threshold, &input.name)?;
    metadata.key_groups = wrapped;
    metadata.shamir_threshold = threshold;
    let store = context::store(format);
    let options = EncryptOptions {
        layout: Layout::Keep,
        unchanged: None,
        write: &WriteOptions::default(),
    };
    let bytes = file::encrypt(store.as_ref(), parsed, &key, &mut metadata, &options)
        .map_err(|e| context::file_error(&input.name, e))?;
    dest.write(&bytes)
}

/// One kind of key's `--add-*` and `--rm-*`, as sops' rotate does them: added keys go to the
/// first group unless it has them already, removed ones leave every group; keys are the same
/// when `id` (sops' `ToString`: recipient, fingerprint, resource ID, URL or URI) is.
fn change_keys<K>(
    groups: &mut [GroupRecipients],
    add: &Option<String>,
    rm: &Option<String>,
    parse: impl Fn(&str) -> Result<Vec<K>>,
    keys: fn(&mut GroupRecipients) -> &mut Vec<K>,
    id: impl Fn(&K) -> String,
) -> Result<()> {
    if let Some(add) = add {
        let first = keys(
            groups
                .first_mut()
                .ok_or_else(|| Failure::new(exit::GENERIC, "no key group"))?,
        );
        for k in parse(add)? {
            if !first.iter().any(|x| id(x) == id(&k)) {
                first.push(k);
            }
        }
    }
    if let Some(rm) = rm {
        let gone: BTreeSet<String> = parse(rm)?.iter().map(&id).collect();
        for group in groups {
            keys(group).retain(|k| !gone.contains(&id(k)));
        }
    }
    Ok(())
}

use enseal_sops::file::{Decrypted, EncryptOptions, Layout};

fn describe(groups: &[KeyGroup]) -> BTreeSet<String> {
    groups
        .iter()
        .enumerate()
        .flat_map(|(i, g)| {
            g.age
                .iter()
                .map(move |a| format!("group {}: age {}", i + 1, a.recipient))
                .chain(
                    g.kms
                        .iter()
                        .map(move |k| format!("group {}: kms {}", i + 1, k.arn)),
                )
                .chain(
                    g.pgp
                        .iter()
                        .map(move |k| format!("group {}: pgp {}", i + 1, k.fp)),
                )
                .chain(
                    g.hc_vault
                        .iter()
                        .map(move |k| format!("group {}: hc_vault {}", i + 1, k.uri())),
                )
                .chain(
                    g.gcp_kms
                        .iter()
                        .map(move |k| format!("group {}: gcp_kms {}", i + 1, k.resource_id)),
                )
                .chain(
                    g.azure_kv
                        .iter()
                        .map(move |k| format!("group {}: azure_kv {}", i + 1, k.uri())),
                )
                .chain(
                    g.unsupported_keys()
                        .into_iter()
                        .map(move |k| format!("group {}: {}", i + 1, k.describe())),
                )
        })
        .collect()
}

fn describe_plan(groups: &[GroupRecipients], kept: &[Vec<UnsupportedKey>]) -> BTreeSet<String> {
    let kept = kept.iter().enumerate().flat_map(|(i, keys)| {
        keys.iter()
            .map(move |k| format!("group {}: {}", i + 1, k.describe()))
    });
    groups
        .iter()
        .enumerate()
        .flat_map(|(i, g)| {
            g.age
                .iter()
                .map(move |a| format!("group {}: age {a}", i + 1))
                .chain(
                    g.kms
                        .iter()
                        .map(move |k| format!("group {}: kms {}", i + 1, k.arn)),
                )
                .chain(
                    g.pgp
                        .iter()
                        .map(move |k| format!("group {}: pgp {k}", i + 1)),
                )
                .chain(
                    g.hc_vault
                        .iter()
                        .map(move |k| format!("group {}: hc_vault {}", i + 1, k.uri())),
                )
                .chain(
                    g.gcp_kms
                        .iter()
                        .map(move |k| format!("group {}: gcp_kms {}", i + 1, k.resource_id)),
                )
                .chain(
                    g.azure_kv
                        .iter()
                        .map(move |k| format!("group {}: azure_kv {}", i + 1, k.uri())),
                )
        })
        .chain(kept)
        .collect()
}

pub fn updatekeys(g: &GlobalOptions, a: &UpdateKeysArgs) -> Result<()> {
    let files = expand(g, &a.files)?;
    let mut progress = Progress::new(files.len(), a.files.iter().any(|p| p.is_dir()));
    let mut failures = Vec::new();
    let mut updated = 0usize;
    for (i, file) in files.iter().enumerate() {
        progress.draw(i, file);
        match update_one(g, file, a.yes, &mut progress) {
            Ok(true) => updated += 1,
            Ok(false) => {}
            Err(f) => {
                progress.line(&format!("enseal: {}", f.message));
                failures.push(f.code);
            }
        }
    }
    progress.finish();
    if progress.summary {
        eprintln!(
            "{} encrypted files: {updated} updated, {} failed",
            files.len(),
            failures.len()
        );
    }
    match failures.first() {
        None => Ok(()),
        Some(code) => Err(Failure::new(
            *code,
            format!(
                "{} of {} files could not be updated",
                failures.len(),
                files.len()
            ),
        )),
    }
}

/// Directories named on the command line become the encrypted files under them; named files
/// stay as they are (a file that is not encrypted then fails as before).
fn expand(g: &GlobalOptions, args: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for arg in args {
        if arg.is_dir() {
            walk(g, arg, &mut files)?;
        } else {
            files.push(arg.clone());
        }
    }
    Ok(files)
}

/// Depth first in name order. Hidden directories (.git, .venv...) and build output that holds
/// copies rather than sources (target, node_modules) are skipped; so are symlinks, which could
/// loop or lead out of the tree.
fn walk(g: &GlobalOptions, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let unreadable = |e: std::io::Error| {
        Failure::new(
            exit::CANNOT_READ_INPUT,
            format!("{}: cannot list: {e}", dir.display()),
        )
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(unreadable)?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(unreadable)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if kind.is_dir() {
            if !(name.starts_with('.') || name == "target" || name == "node_modules") {
                walk(g, &path, out)?;
            }
        } else if kind.is_file() && has_sops_metadata(g, &path) {
            out.push(path);
        }
    }
    Ok(())
}

fn has_sops_metadata(g: &GlobalOptions, path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    // Every format spells its metadata key `sops`: skip the parse for the files that cannot
    // be encrypted (most of a repository).
    if !bytes.windows(4).any(|w| w == b"sops") {
        return false;
    }
    let format = g.input_format(path);
    context::store(format)
        .parse(&bytes)
        .map(|p| p.metadata.is_some())
        .unwrap_or(false)
}

/// Where updatekeys reports: a bar redrawn in place on a terminal (messages scroll above it),
/// plain lines otherwise.
struct Progress {
    total: usize,
    bar: bool,
    drawn: bool,
    /// A directory was walked: end with a count, since the files were not named one by one.
    summary: bool,
}

impl Progress {
    fn new(total: usize, summary: bool) -> Progress {
        Progress {
            total,
            bar: std::io::stderr().is_terminal() && total > 1,
            drawn: false,
            summary,
        }
    }

    fn draw(&mut self, done: usize, current: &Path) {
        if !self.bar {
            return;
        }
        const WIDTH: usize = 30;
        let filled = WIDTH * done / self.total.max(1);
        eprint!(
            "\r\x1b[K[{}{}] {done}/{} {}",
            "=".repeat(filled),
            " ".repeat(WIDTH - filled),
            self.total,
            current.display()
        );
        std::io::stderr().flush().ok();
        self.drawn = true;
    }

    fn clear(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[K");
            self.drawn = false;
        }
    }

    fn line(&mut self, message: &str) {
        self.clear();
        eprintln!("{message}");
    }

    fn finish(&mut self) {
        self.clear();
    }
}

/// `Ok(true)` when the file was rewritten.
fn update_one(g: &GlobalOptions, file: &Path, yes: bool, progress: &mut Progress) -> Result<bool> {
    let input = read_input(Some(file), None)?;
    let format = g.input_format(&input.name);
    let store = context::store(format);
    let (parsed, mut metadata) = parsed_with_metadata(store.as_ref(), &input)?;
    let plan = plan::for_updatekeys(g, &input.name, format)?;
    let now = describe(&metadata.key_groups);
    let wanted = describe_plan(&plan.groups, &plan.kept);
    if now == wanted && metadata.shamir_threshold == plan.threshold.or(metadata.shamir_threshold) {
        progress.line(&format!("{}: already up to date", input.name.display()));
        return Ok(false);
    }
    progress.line(&format!("{}: key changes:", input.name.display()));
    for k in wanted.difference(&now) {
        progress.line(&format!("  + {k}"));
    }
    for k in now.difference(&wanted) {
        progress.line(&format!("  - {k}"));
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::new(
                exit::GENERIC,
                "not a terminal: pass -y to confirm the key changes",
            )
            .in_file(&input.name));
        }
        progress.clear();
        eprint!("Is this okay? (y/n): ");
        std::io::stderr().flush().ok();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).ok();
        if !answer.trim().eq_ignore_ascii_case("y") {
            progress.line(&format!("{}: not changed", input.name.display()));
            return Ok(false);
        }
    }
    // Keys enseal cannot wrap for (hckms) stay only as the entries the file has for them, and
    // those wrap its data key whole only in a one-group file; several groups get new Shamir
    // shares, which those entries do not hold.
    let kept: Vec<&UnsupportedKey> = plan.kept.iter().flatten().collect();
    let keepable = plan.groups.len() == 1 && metadata.key_groups.len() == 1;
    if let (false, Some(key)) = (keepable, kept.first()) {
        return Err(cannot_wrap_for(key).in_file(&input.name));
    }
    // Checked before any key service is asked to wrap: a key the file has no entry for is
    // one enseal would have to wrap for.
    let mut carried = KeyGroup::default();
    if let (Some(old), Some(keys)) = (metadata.key_groups.first(), plan.kept.first()) {
        carried
            .keep_unsupported(old, keys)
            .map_err(|key| cannot_wrap_for(&key).in_file(&input.name))?;
    }
    let key = groups::unwrap(&metadata, &context::keyring())
        .map_err(|e| context::key_group_error(&input.name, e))?;
    let (mut wrapped, threshold) = plan.wrap(&key, &input.name)?;
    if let Some(new) = wrapped.first_mut() {
        new.other = carried.other;
    }
    metadata.key_groups = wrapped;
    metadata.shamir_threshold = threshold;
    let bytes = rewrapped(store.as_ref(), &parsed, &metadata, &plan.write, &input.name)?;
    write_atomic(file, &bytes)?;
    progress.line(&format!("{}: keys updated", input.name.display()));
    Ok(true)
}

/// The encrypted file parsed, and its metadata: what updatekeys and groups change, without
/// decrypting a value.
fn parsed_with_metadata(
    store: &dyn enseal_sops::stores::Store,
    input: &crate::file_io::Input,
) -> Result<(enseal_sops::stores::Parsed, Metadata)> {
    let parsed = store
        .parse(&input.bytes)
        .map_err(|e| exit::store_error(&input.name, e))?;
    let metadata = file::read_metadata(&parsed).map_err(|e| context::file_error(&input.name, e))?;
    Ok((parsed, metadata))
}

/// The file again with new key groups in `metadata`. Values, MAC and lastmodified stay as they
/// are: only who can open the data key changed (as in sops' updatekeys and groups).
fn rewrapped(
    store: &dyn enseal_sops::stores::Store,
    parsed: &enseal_sops::stores::Parsed,
    metadata: &Metadata,
    write: &WriteOptions,
    name: &Path,
) -> Result<Vec<u8>> {
    store
        .write(&parsed.tree, Some(&metadata.to_node()), Some(parsed), write)
        .map_err(|e| exit::store_error(name, e))
}

/// `groups add` / `groups delete`: the file's key groups with one added (the keys of --age and
/// --kms) or one removed, the data key wrapped again for them. Written to standard output, or
/// back to the file with -i, as sops does.
pub fn groups(g: &GlobalOptions, action: &GroupsAction) -> Result<()> {
    let file = match action {
        GroupsAction::Add { file } | GroupsAction::Delete { file, .. } => file,
    };
    let input = read_input(Some(file), None)?;
    let format = g.input_format(&input.name);
    let dest = Destination::choose(&input, g.in_place, g.output.as_deref())?;
    let store = context::store(format);
    let (parsed, mut metadata) = parsed_with_metadata(store.as_ref(), &input)?;
    let mut groups = recipients_of(&metadata.key_groups)?;
    let refuse = |message: String| Failure::new(exit::GENERIC, message).in_file(&input.name);
    match action {
        GroupsAction::Add { .. } => {
            let group = plan::cli_group(g)?;
            if group.is_empty() {
                return Err(Failure::new(
                    exit::GENERIC,
                    "groups add: name the new group's keys with --age, --pgp, --kms, --gcp-kms, --azure-kv or --hc-vault-transit",
                ));
            }
            groups.push(group);
        }
        GroupsAction::Delete { index, .. } => {
            if *index >= groups.len() {
                return Err(refuse(format!(
                    "groups delete: there is no key group {index} (the file has {}, numbered from 0)",
                    groups.len()
                )));
            }
            groups.remove(*index);
        }
    }
    let threshold = g
        .shamir_secret_sharing_threshold
        .or(metadata.shamir_threshold);
    if let Some(t) = threshold.filter(|t| *t > groups.len()) {
        return Err(refuse(format!(
            "the Shamir threshold is {t}, but the file would have only {} key groups",
            groups.len()
        )));
    }
    let key = groups::unwrap(&metadata, &context::keyring())
        .map_err(|e| context::key_group_error(&input.name, e))?;
    let (wrapped, threshold) = plan::wrap_for(&key, &groups, threshold, &input.name)?;
    metadata.key_groups = wrapped;
    metadata.shamir_threshold = threshold;
    let bytes = rewrapped(
        store.as_ref(),
        &parsed,
        &metadata,
        &WriteOptions::default(),
        &input.name,
    )?;
    dest.write(&bytes)
}
