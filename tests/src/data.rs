//! Decrypted files read into comparable data: what "the same data" means when two tools decrypt
//! the same file. Numbers compare numerically (sops reads JSON numbers as float64 and prints
//! `1.0` as `1`), maps in document order (both tools keep the order of keys); layout, quoting
//! and comments do not count.
//!
//! YAML is read twice: as YAML 1.2 (saphyr, what go-yaml v3 and sops do) and as YAML 1.1
//! ([`yaml11`], PyYAML, what kubectl's and Python's readers do), because a value that is a
//! string in one reading and a boolean in the other (`no`, `off`, `0:0`) is a real bug when a
//! tool drops its quotes.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use saphyr::{LoadableYamlNode, ScalarOwned, YamlOwned};

use crate::peers;

#[derive(Debug, Clone)]
pub enum Data {
    Null,
    Bool(bool),
    /// Numbers compare numerically: sops reads JSON numbers as float64 and prints `1.0` as `1`.
    Num(f64),
    Str(String),
    List(Vec<Data>),
    /// In document order: both tools keep the order of keys.
    Map(Vec<(String, Data)>),
    Bytes(Vec<u8>),
}

/// Equal as data: NaN equals NaN (both tools write `.nan` for the same value).
impl PartialEq for Data {
    fn eq(&self, other: &Data) -> bool {
        match (self, other) {
            (Data::Null, Data::Null) => true,
            (Data::Bool(a), Data::Bool(b)) => a == b,
            (Data::Num(a), Data::Num(b)) => a == b || (a.is_nan() && b.is_nan()),
            (Data::Str(a), Data::Str(b)) => a == b,
            (Data::List(a), Data::List(b)) => a == b,
            (Data::Map(a), Data::Map(b)) => a == b,
            (Data::Bytes(a), Data::Bytes(b)) => a == b,
            _ => false,
        }
    }
}

pub fn parse(format: &str, bytes: &[u8], what: &str) -> Data {
    let text = || {
        std::str::from_utf8(bytes).unwrap_or_else(|e| panic!("{what}: output is not UTF-8: {e}"))
    };
    match format {
        "yaml" => {
            // go-yaml (so sops) writes a flow collection's closing bracket at its key's column
            // (`a: {` ... `}`), which saphyr's strict reading refuses; such lines are indented
            // for it (only blanks change, not the data).
            let docs = YamlOwned::load_from_str(text())
                .or_else(|_| YamlOwned::load_from_str(&closing_brackets_indented(text())))
                .unwrap_or_else(|e| panic!("{what}: not YAML: {e}\n{}", text()));
            Data::List(docs.iter().map(from_yaml).collect())
        }
        "json" => {
            let value: serde_json::Value = serde_json::from_slice(bytes)
                .unwrap_or_else(|e| panic!("{what}: not JSON: {e}\n{}", text()));
            from_json(&value)
        }
        "dotenv" => Data::Map(
            text()
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                .map(|l| match l.split_once('=') {
                    Some((k, v)) => (k.to_string(), Data::Str(v.to_string())),
                    None => panic!("{what}: dotenv line without '=': {l:?}"),
                })
                .collect(),
        ),
        "ini" => {
            let mut sections: Vec<(String, Data)> = Vec::new();
            for line in text().lines().map(str::trim) {
                if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
                    continue;
                }
                if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                    sections.push((name.to_string(), Data::Map(Vec::new())));
                    continue;
                }
                let (k, v) = line
                    .split_once('=')
                    .unwrap_or_else(|| panic!("{what}: ini line without '=': {line:?}"));
                if sections.is_empty() {
                    sections.push(("DEFAULT".into(), Data::Map(Vec::new())));
                }
                if let Some((_, Data::Map(entries))) = sections.last_mut() {
                    entries.push((k.trim().to_string(), Data::Str(v.trim().to_string())));
                }
            }
            Data::Map(sections)
        }
        "binary" => Data::Bytes(bytes.to_vec()),
        other => panic!("unknown format {other}"),
    }
}

fn closing_brackets_indented(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with([']', '}']) {
            // At the column of the line before (inside the flow collection): deep enough.
            out.push_str(&" ".repeat(previous));
            out.push_str(trimmed);
        } else {
            if !trimmed.trim().is_empty() {
                previous = line.len() - trimmed.len();
            }
            out.push_str(line);
        }
    }
    out
}

pub fn from_yaml(y: &YamlOwned) -> Data {
    match y {
        YamlOwned::Value(s) => match s {
            ScalarOwned::Null => Data::Null,
            ScalarOwned::Boolean(b) => Data::Bool(*b),
            ScalarOwned::Integer(i) => Data::Num(*i as f64),
            ScalarOwned::FloatingPoint(f) => Data::Num(f.into_inner()),
            ScalarOwned::String(s) => Data::Str(s.clone()),
        },
        YamlOwned::Representation(s, _, _) => Data::Str(s.clone()),
        YamlOwned::Sequence(items) => Data::List(items.iter().map(from_yaml).collect()),
        YamlOwned::Mapping(map) => Data::Map(
            map.iter()
                .map(|(k, v)| (key_text(&from_yaml(k)), from_yaml(v)))
                .collect(),
        ),
        YamlOwned::Tagged(_, inner) => from_yaml(inner),
        other => panic!("unexpected YAML node {other:?}"),
    }
}

pub fn key_text(key: &Data) -> String {
    match key {
        Data::Str(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

pub fn from_json(v: &serde_json::Value) -> Data {
    match v {
        serde_json::Value::Null => Data::Null,
        serde_json::Value::Bool(b) => Data::Bool(*b),
        serde_json::Value::Number(n) => Data::Num(
            n.to_string()
                .parse::<f64>()
                .unwrap_or_else(|e| panic!("JSON number {n}: {e}")),
        ),
        serde_json::Value::String(s) => Data::Str(s.clone()),
        serde_json::Value::Array(items) => Data::List(items.iter().map(from_json).collect()),
        serde_json::Value::Object(map) => {
            Data::Map(map.iter().map(|(k, v)| (k.clone(), from_json(v))).collect())
        }
    }
}

/// Every string leaf of `data` that is long enough not to occur in an error message by chance.
pub fn secret_strings(data: &Data, out: &mut Vec<String>) {
    match data {
        Data::Str(s) if s.len() >= 8 => out.push(s.clone()),
        Data::List(items) => items.iter().for_each(|d| secret_strings(d, out)),
        Data::Map(entries) => entries.iter().for_each(|(_, d)| secret_strings(d, out)),
        _ => {}
    }
}

/// The YAML 1.1 readings (PyYAML's safe loader) of each YAML stream, as [`Data`]: one per
/// stream, a list of its documents. Runs one Python process for all of them.
pub fn yaml11(streams: &[&Path]) -> Vec<Data> {
    let script = peers::repo_root().join("tests/tools/yaml11.py");
    let out = Command::new(peers::python())
        .arg(&script)
        .args(streams)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&[u8]> = out
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        streams.len(),
        "yaml11.py printed one line per stream"
    );
    lines
        .iter()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_slice(line).expect("yaml11.py prints JSON");
            from_json(&v)
        })
        .collect()
}

/// Counts of `ENC[...]` values per `type:` in an encrypted file.
pub fn enc_type_counts(encrypted: &[u8]) -> BTreeMap<String, usize> {
    let text = String::from_utf8_lossy(encrypted);
    let mut counts = BTreeMap::new();
    for piece in text.split("ENC[AES256_GCM,").skip(1) {
        let ty = piece
            .split_once("type:")
            .map(|(_, rest)| rest.split(']').next().unwrap_or("").to_string())
            .unwrap_or_else(|| "<no type>".into());
        *counts.entry(ty).or_insert(0) += 1;
    }
    counts
}

/// [`enc_type_counts`] as comparable with what sops `release` writes in `format`: sops 3.11
/// types every JSON number float, where enseal (as 3.13) types integers int.
pub fn enc_type_counts_as(
    encrypted: &[u8],
    format: &str,
    release: peers::SopsRelease,
) -> BTreeMap<String, usize> {
    let mut counts = enc_type_counts(encrypted);
    if format == "json" && release == peers::SopsRelease::V3_11 {
        let ints = counts.remove("int").unwrap_or(0);
        *counts.entry("float".into()).or_insert(0) += ints;
    }
    counts
}
