//! `enseal kustomize`: decrypts enseal/sops-encrypted files for `kustomize build`, as ksops
//! (viaduct-ai/kustomize-sops) does, so that ksops users switch by changing the plugin binary.
//!
//! Two ways kustomize runs it, both with the kustomization directory as working directory:
//! - a KRM exec function (`kustomize build --enable-alpha-plugins --enable-exec`): a
//!   ResourceList on standard input, the generator's config in its `functionConfig`, and the
//!   same ResourceList with the decrypted resources appended to `items` on standard output.
//!   kustomize 5.5 gives an exec function a `path` and no arguments, so the binary recognises
//!   the names it is linked under (`ksops`, `enseal-kustomize`) and acts as `enseal kustomize`.
//! - a legacy exec plugin (`--enable-alpha-plugins` alone, which is all `kubectl kustomize`
//!   has: it has no `--enable-exec` and silently skips exec functions): kustomize runs
//!   `$KUSTOMIZE_PLUGIN_HOME/<apiVersion>/<lowercase kind>/<kind> CONFIG_FILE` and reads a YAML
//!   stream of resources from standard output.
//!
//! Files are opened exactly as `enseal decrypt` opens them (same keys: SOPS_AGE_KEY_FILE, ...,
//! AWS KMS) and the plaintext never touches the disk. Messages name the generator and the file,
//! never a value: kustomize shows our standard error to the user and in CI logs.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use enseal_sealing::manifest::{self, ManifestFormat};
use enseal_sops::file::{decrypt_bytes, decrypt_with, DecryptOptions, Layout, Mac};
use enseal_sops::format::scalar_text;
use enseal_sops::format::tree::{Item, Kind, Node, Scalar, Tree};
use enseal_sops::stores::{self, Format};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::args::KustomizeArgs;
use crate::context;
use crate::exit::{self, Failure, Result};
use crate::file_io::read_input;

/// The ksops config kind, accepted as is.
const KSOPS: (&str, &str) = ("viaduct.ai/v1", "ksops");
/// enseal's own kind: the same fields under enseal's API group.
const DECRYPT: (&str, &str) = ("enseal.dev/v1alpha1", "Decrypt");

/// Set to `LoadRestrictionsNone` to allow files outside the kustomization directory, as
/// `kustomize build --load-restrictor LoadRestrictionsNone` does for kustomize's own files. An
/// environment variable and not a config field: the repository being built must not be able to
/// lift the restriction and read (with the build machine's keys) files it does not contain.
pub const LOAD_RESTRICTOR_ENV: &str = "ENSEAL_KUSTOMIZE_LOAD_RESTRICTOR";

pub fn run(a: &KustomizeArgs) -> Result<()> {
    let root = Root::from_env()?;
    let output = match &a.config {
        Some(path) => {
            let input = read_input(Some(path), None)?;
            let config = single_document(&input.bytes, &path.display().to_string())?;
            let resources = generate(&config, &root)?;
            write_yaml(&resources)?
        }
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                return Err(Failure::new(
                    exit::CANNOT_READ_INPUT,
                    "kustomize expects a KRM ResourceList on standard input (it is run by \
                     `kustomize build --enable-alpha-plugins --enable-exec`), or a legacy plugin \
                     config file as its argument",
                ));
            }
            let mut bytes = Zeroizing::new(Vec::new());
            stdin.lock().read_to_end(&mut bytes).map_err(|e| {
                Failure::new(
                    exit::CANNOT_READ_INPUT,
                    format!("standard input: cannot read: {e}"),
                )
            })?;
            let list = resource_list(&bytes, &root)?;
            write_yaml(std::slice::from_ref(&list))?
        }
    };
    let mut out = std::io::stdout().lock();
    out.write_all(output.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Failure::new(exit::CANNOT_WRITE_OUTPUT, format!("standard output: {e}")))
}

/// The KRM function: the input ResourceList with the resources its `functionConfig` asks for
/// appended to `items` (the config itself comes in `items` too, marked local-config by
/// kustomize, which drops it from the build; it is passed on untouched like any other item).
fn resource_list(bytes: &[u8], root: &Root) -> Result<Value> {
    let mut list = single_document(bytes, "standard input")?;
    if manifest::kind_of(&list) != "ResourceList" {
        return Err(Failure::new(
            exit::CANNOT_READ_INPUT,
            "standard input: expected a KRM ResourceList (kind: ResourceList)",
        ));
    }
    let config = match list.get("functionConfig") {
        Some(c @ Value::Object(_)) => c.clone(),
        _ => {
            return Err(Failure::new(
                exit::CANNOT_READ_INPUT,
                "standard input: the ResourceList has no functionConfig (the ksops or Decrypt \
                 generator that names the files)",
            ))
        }
    };
    let generated = generate(&config, root)?;
    let Some(object) = list.as_object_mut() else {
        unreachable!("kind_of found a kind, so the document is a mapping")
    };
    match object.get_mut("items") {
        Some(Value::Array(items)) => items.extend(generated),
        Some(Value::Null) | None => {
            object.insert("items".into(), Value::Array(generated));
        }
        Some(_) => {
            return Err(Failure::new(
                exit::CANNOT_READ_INPUT,
                "standard input: the ResourceList's items is not a sequence",
            ))
        }
    }
    Ok(list)
}

fn single_document(bytes: &[u8], name: &str) -> Result<Value> {
    let mut docs = manifest::parse_documents(bytes)
        .map_err(|e| Failure::new(exit::CANNOT_READ_INPUT, format!("{name}: {e}")))?;
    match docs.len() {
        1 => Ok(docs.remove(0)),
        n => Err(Failure::new(
            exit::CANNOT_READ_INPUT,
            format!("{name}: expected one YAML document, found {n}"),
        )),
    }
}

fn write_yaml(objects: &[Value]) -> Result<Zeroizing<String>> {
    manifest::write_documents(objects, ManifestFormat::Yaml)
        .map_err(|e| Failure::new(exit::CANNOT_WRITE_OUTPUT, e.to_string()))
}

/// The kustomization directory (the working directory kustomize gives plugins) and whether
/// files must stay inside it.
struct Root {
    dir: PathBuf,
    restricted: bool,
}

impl Root {
    fn from_env() -> Result<Root> {
        let restricted = match std::env::var(LOAD_RESTRICTOR_ENV).as_deref() {
            Err(_) | Ok("") | Ok("LoadRestrictionsRootOnly") => true,
            Ok("LoadRestrictionsNone") => false,
            Ok(other) => {
                return Err(Failure::new(
                    exit::GENERIC,
                    format!(
                        "{LOAD_RESTRICTOR_ENV}={other:?} is not LoadRestrictionsRootOnly or \
                         LoadRestrictionsNone"
                    ),
                ))
            }
        };
        let dir = std::env::current_dir()
            .and_then(std::fs::canonicalize)
            .map_err(|e| {
                Failure::new(
                    exit::CANNOT_READ_INPUT,
                    format!("cannot resolve the working directory: {e}"),
                )
            })?;
        Ok(Root { dir, restricted })
    }

    /// The real path of `file` (relative to the kustomization directory), refused when it
    /// leaves that directory: `..`, an absolute path or a symlink pointing out, as kustomize's
    /// default load restrictor refuses them for its own files.
    fn resolve(&self, file: &str) -> Result<PathBuf> {
        let joined = self.dir.join(file);
        let real = std::fs::canonicalize(&joined).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Failure::new(exit::NO_FILE, format!("{file}: no such file"))
            } else {
                Failure::new(exit::CANNOT_READ_INPUT, format!("{file}: {e}"))
            }
        })?;
        if self.restricted && !real.starts_with(&self.dir) {
            return Err(Failure::new(
                exit::GENERIC,
                format!(
                    "{file}: is outside the kustomization directory {} (kustomize's default load \
                     restrictor); to allow it, as `--load-restrictor LoadRestrictionsNone` does, \
                     set {LOAD_RESTRICTOR_ENV}=LoadRestrictionsNone in kustomize's environment",
                    self.dir.display()
                ),
            ));
        }
        Ok(real)
    }
}

/// The plaintext of an encrypted file, as `enseal decrypt` gives it (the same library call).
fn decrypt(root: &Root, file: &str) -> Result<Zeroizing<Vec<u8>>> {
    let (name, format, bytes) = read_encrypted(root, file)?;
    let plaintext = decrypt_bytes(
        bytes,
        format,
        &context::keyring(),
        &DecryptOptions::default(),
    )
    .map_err(|e| context::file_error(&name, e))?;
    Ok(plaintext)
}

/// The file's name as the config wrote it (messages use it), its format and its bytes.
fn read_encrypted(root: &Root, file: &str) -> Result<(PathBuf, Format, Vec<u8>)> {
    let real = root.resolve(file)?;
    let mut input = read_input(Some(&real), Some(Path::new(file)))?;
    let bytes = std::mem::take(&mut *input.bytes);
    Ok((input.name, Format::from_path(Path::new(file)), bytes))
}

/// The resources a ksops/Decrypt config asks for: every resource of each of `files`, in order,
/// then one Secret per `secretFrom` entry (ksops' order).
fn generate(config: &Value, root: &Root) -> Result<Vec<Value>> {
    let api_version = config.get("apiVersion").and_then(Value::as_str);
    let kind = manifest::kind_of(config);
    let name = config
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let this = format!("{kind} {name:?}");
    let in_config = |f: Failure| Failure::new(f.code, format!("{this}: {}", f.message));
    if ![KSOPS, DECRYPT].contains(&(api_version.unwrap_or(""), kind)) {
        return Err(Failure::new(
            exit::GENERIC,
            format!(
                "{this}: expected a config of kind {} ({}) or {} ({})",
                KSOPS.1, KSOPS.0, DECRYPT.1, DECRYPT.0
            ),
        ));
    }
    let files = string_list(config.get("files"), "files").map_err(in_config)?;
    let secret_from = match config.get("secretFrom") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(in_config(config_error("secretFrom must be a sequence"))),
    };
    if config.get("files").is_none() && config.get("secretFrom").is_none() {
        return Err(in_config(config_error(
            "missing the required 'files' or 'secretFrom' key",
        )));
    }
    let mut out = Vec::new();
    for file in &files {
        out.extend(resources_of(root, file).map_err(in_config)?);
    }
    for (i, entry) in secret_from.iter().enumerate() {
        out.push(secret_from_entry(root, i, entry).map_err(in_config)?);
    }
    Ok(out)
}

fn config_error(message: impl Into<String>) -> Failure {
    Failure::new(exit::GENERIC, message)
}

fn string_list(value: Option<&Value>, field: &str) -> Result<Vec<String>> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v.as_str() {
                Some(s) if !s.is_empty() => Ok(s.to_owned()),
                _ => Err(config_error(format!("{field}[{i}] is not a file path"))),
            })
            .collect(),
        Some(_) => Err(config_error(format!(
            "{field} must be a sequence of file paths"
        ))),
    }
}

/// The Kubernetes objects in one encrypted YAML (one per document, `List`s spliced) or JSON file.
fn resources_of(root: &Root, file: &str) -> Result<Vec<Value>> {
    if !matches!(
        Format::from_path(Path::new(file)),
        Format::Yaml | Format::Json
    ) {
        return Err(config_error(format!(
            "{file}: files takes Kubernetes manifests (.yaml, .yml or .json); for a dotenv, \
             binary or other file use secretFrom (envs, files, binaryFiles)"
        )));
    }
    // Built from the verified tree, not by parsing the plaintext again: that parser's errors
    // quote the text they choke on (`invalid value: string "hunter2"`), and they would reach
    // the build log.
    let (name, format, bytes) = read_encrypted(root, file)?;
    let docs = decrypt_with(bytes, format, &context::keyring(), Mac::Verify, |d| {
        d.tree()
            .documents
            .iter()
            .enumerate()
            .map(|(i, doc)| json_of(doc, file, i + 1))
            .collect::<Result<Vec<Value>>>()
    })
    .map_err(|e| context::file_error(&name, e))??;
    let docs = manifest::objects(docs)
        .map_err(|e| Failure::new(exit::CANNOT_READ_INPUT, format!("{file}: {e}")))?;
    for (i, doc) in docs.iter().enumerate() {
        let has = |field: &str| {
            doc.get(field)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        };
        if !doc.is_object() || !has("apiVersion") || !has("kind") {
            return Err(Failure::new(
                exit::GENERIC,
                format!(
                    "{file}: document {} is not a Kubernetes object (a mapping with apiVersion \
                     and kind)",
                    i + 1
                ),
            ));
        }
    }
    Ok(docs)
}

/// A decrypted document as the JSON kustomize gets (comments dropped). A value JSON cannot
/// hold (a `.nan`) is an error naming the document and the value's type, never the value.
fn json_of(node: &Node, file: &str, doc: usize) -> Result<Value> {
    Ok(match node {
        Node::Map(items) => {
            let mut map = Map::new();
            for item in items {
                if let Item::Pair(k, v) = item {
                    map.insert(k.clone(), json_of(v, file, doc)?);
                }
            }
            Value::Object(map)
        }
        Node::Seq(items) => Value::Array(
            items
                .iter()
                .filter(|v| !matches!(v, Node::Comment(_)))
                .map(|v| json_of(v, file, doc))
                .collect::<Result<_>>()?,
        ),
        Node::Scalar(s) => scalar_json(s).ok_or_else(|| {
            Failure::new(
                exit::GENERIC,
                format!(
                    "{file}: document {doc}: a {} value that JSON cannot hold",
                    s.kind.sops_name()
                ),
            )
        })?,
        Node::Comment(_) => Value::Null,
    })
}

fn scalar_json(s: &Scalar) -> Option<Value> {
    match s.kind {
        Kind::Null => Some(Value::Null),
        Kind::Bool => {
            let canonical = scalar_text::mac_bytes(s).ok()??;
            Some(Value::Bool(&*canonical == b"True"))
        }
        Kind::Str | Kind::Time | Kind::Bytes => s.text().map(|t| Value::String(t.to_owned())),
        // The number as written when JSON can spell it that way (`1.0`, a big integer), else
        // sops' canonical form (`0x1F` -> 31); `.nan` and `.inf` have no JSON form.
        Kind::Int | Kind::Float => s
            .text()
            .and_then(|t| t.parse::<serde_json::Number>().ok())
            .or_else(|| {
                let canonical = scalar_text::mac_bytes(s).ok()??;
                std::str::from_utf8(&canonical).ok()?.parse().ok()
            })
            .map(Value::Number),
    }
}

/// One `secretFrom` entry as ksops builds it: `files` (`KEY=PATH` or `PATH`, key = file name)
/// as stringData holding the decrypted file, `binaryFiles` as base64 data, `envs` as one key per
/// top-level value of the decrypted file.
fn secret_from_entry(root: &Root, index: usize, entry: &Value) -> Result<Value> {
    let at = |message: String| config_error(format!("secretFrom[{index}]: {message}"));
    let Some(entry) = entry.as_object() else {
        return Err(at("is not a mapping".into()));
    };
    let metadata = match entry.get("metadata") {
        Some(m @ Value::Object(map))
            if map
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty()) =>
        {
            m.clone()
        }
        _ => return Err(at("metadata.name is required".into())),
    };
    let field = |name: &str| {
        string_list(entry.get(name), name)
            .map_err(|f| config_error(format!("secretFrom[{index}].{}", f.message)))
    };
    let mut keys = Keys::default();
    for spec in field("files")? {
        let (key, file) = key_and_path(&spec).map_err(&at)?;
        let plaintext = decrypt(root, file)?;
        // Text goes to stringData as ksops puts it; bytes that are not UTF-8 cannot be a YAML
        // string, so they go to data (base64), which means the same to the API server.
        match String::from_utf8(plaintext.to_vec()) {
            Ok(text) => keys.insert(key, Entry::Text(Zeroizing::new(text))),
            Err(e) => keys.insert(key, Entry::Bytes(Zeroizing::new(e.into_bytes()))),
        }
        .map_err(&at)?;
    }
    for spec in field("binaryFiles")? {
        let (key, file) = key_and_path(&spec).map_err(&at)?;
        let plaintext = decrypt(root, file)?;
        keys.insert(key, Entry::Bytes(plaintext)).map_err(&at)?;
    }
    for file in field("envs")? {
        for (key, value) in env_values(root, &file)? {
            keys.insert(key, Entry::Text(value)).map_err(&at)?;
        }
    }
    let mut secret = Map::new();
    secret.insert("apiVersion".into(), json!("v1"));
    secret.insert("kind".into(), json!("Secret"));
    secret.insert("metadata".into(), metadata);
    match entry.get("type") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) => {
            secret.insert("type".into(), json!(t));
        }
        Some(_) => return Err(at("type is not a string".into())),
    }
    let (string_data, data) = keys.into_maps();
    if !string_data.is_empty() {
        secret.insert("stringData".into(), Value::Object(string_data));
    }
    if !data.is_empty() {
        secret.insert("data".into(), Value::Object(data));
    }
    Ok(Value::Object(secret))
}

/// ksops' `KEY=PATH` or `PATH` (the key is then the file name); more than one `=` is refused.
fn key_and_path(spec: &str) -> std::result::Result<(String, &str), String> {
    let mut parts = spec.split('=');
    let (key, path) = match (parts.next(), parts.next(), parts.next()) {
        (Some(path), None, _) => {
            let key = Path::new(path)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or(path);
            (key.to_owned(), path)
        }
        (Some(key), Some(path), None) => (key.to_owned(), path),
        _ => return Err(format!("{spec:?} is not KEY=PATH or PATH")),
    };
    if key.is_empty() || path.is_empty() {
        return Err(format!("{spec:?} is not KEY=PATH or PATH"));
    }
    Ok((key, path))
}

/// The top-level values of an encrypted dotenv file (or a flat YAML/JSON/INI mapping), as text,
/// taken from the verified tree rather than from its plaintext parsed again. A binary file (an
/// unknown extension) is read as dotenv text, as ksops reads its envs.
fn env_values(root: &Root, file: &str) -> Result<Vec<(String, Zeroizing<String>)>> {
    let (name, format, bytes) = read_encrypted(root, file)?;
    decrypt_with(bytes, format, &context::keyring(), Mac::Verify, |d| {
        if format != Format::Binary {
            return top_level_values(d.tree(), file);
        }
        let plaintext = d
            .plaintext(Format::Binary, Layout::Keep)
            .map_err(|e| exit::store_error(Path::new(file), e))?;
        let tree = stores::store_for(Format::Dotenv)
            .parse(&plaintext)
            .map_err(|e| exit::store_error(Path::new(file), e))?
            .tree;
        top_level_values(&tree, file)
    })
    .map_err(|e| context::file_error(&name, e))?
}

fn top_level_values(tree: &Tree, file: &str) -> Result<Vec<(String, Zeroizing<String>)>> {
    let mut out = Vec::new();
    for doc in &tree.documents {
        let Node::Map(items) = doc else {
            return Err(config_error(format!(
                "{file}: envs takes a file of KEY=VALUE pairs (or a flat mapping)"
            )));
        };
        for item in items {
            let Item::Pair(key, value) = item else {
                continue;
            };
            let text = value.as_scalar().and_then(|s| s.text()).ok_or_else(|| {
                config_error(format!(
                    "{file}: the value of {key:?} is not a plain value (envs needs KEY=VALUE)"
                ))
            })?;
            out.push((key.clone(), Zeroizing::new(text.to_owned())));
        }
    }
    Ok(out)
}

enum Entry {
    Text(Zeroizing<String>),
    Bytes(Zeroizing<Vec<u8>>),
}

/// A Secret's keys, each given once (ksops lets a later one win silently; a key given twice
/// is almost always a mistake, and kustomize's own secretGenerator refuses it too).
#[derive(Default)]
struct Keys(BTreeMap<String, Entry>);

impl Keys {
    fn insert(&mut self, key: String, entry: Entry) -> std::result::Result<(), String> {
        if self.0.contains_key(&key) {
            return Err(format!("the key {key:?} is given twice"));
        }
        self.0.insert(key, entry);
        Ok(())
    }

    fn into_maps(self) -> (Map<String, Value>, Map<String, Value>) {
        let mut string_data = Map::new();
        let mut data = Map::new();
        for (key, entry) in self.0 {
            match entry {
                Entry::Text(t) => {
                    string_data.insert(key, Value::String(t.to_string()));
                }
                Entry::Bytes(b) => {
                    data.insert(
                        key,
                        Value::String(base64::engine::general_purpose::STANDARD.encode(&*b)),
                    );
                }
            }
        }
        (string_data, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_path_follow_ksops() {
        assert_eq!(
            key_and_path("./dir/a.enc.conf").unwrap(),
            ("a.enc.conf".to_owned(), "./dir/a.enc.conf")
        );
        assert_eq!(
            key_and_path("app.yaml=./a.enc.yaml").unwrap(),
            ("app.yaml".to_owned(), "./a.enc.yaml")
        );
        assert!(key_and_path("a=b=c").is_err());
        assert!(key_and_path("=b").is_err());
    }

    #[test]
    fn an_unknown_config_kind_is_refused_by_name() {
        let root = Root {
            dir: PathBuf::from("/nonexistent"),
            restricted: true,
        };
        let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
        let e = generate(&config, &root).unwrap_err();
        assert!(e.message.contains("ConfigMap \"x\""), "{}", e.message);
        assert!(e.message.contains("ksops (viaduct.ai/v1)"), "{}", e.message);
    }
}
