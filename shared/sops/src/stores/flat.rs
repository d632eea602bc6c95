//! Flattening of the `sops` metadata for the formats that have no nesting (dotenv, INI).
//!
//! sops 3.11 writes nested metadata as one key per leaf, joining the path with `__map_<key>` for
//! a mapping step and `__list_<index>` for a sequence step:
//! `age: [{recipient: r}]` becomes `age__list_0__map_recipient = r`, and a Shamir file's
//! `key_groups__list_1__map_age__list_0__map_enc`. Values are the leaves' text; nulls (sops
//! writes `hc_vault: null` in key groups) are left out. The callers add their own prefix
//! (`sops_` in dotenv, the `[sops]` section in INI) and their own escaping of newlines.

use crate::format::tree::{Item, Kind, Node, Scalar};

const MAP_SEP: &str = "__map_";
const LIST_SEP: &str = "__list_";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlatError {
    #[error("metadata key {0:?} is both a value and a container")]
    TypeMismatch(String),
    #[error("metadata key {0:?} appears twice")]
    Duplicate(String),
    #[error("metadata list {0:?} has a missing or invalid index")]
    BadIndex(String),
}

/// The leaves of `metadata` as `(flat key, text)` pairs, sorted by key as sops writes them in
/// dotenv files (sops' INI output order is random: any order reads back the same).
pub fn flatten(metadata: &Node) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Node::Map(items) = metadata {
        for item in items {
            if let Item::Pair(k, v) = item {
                descend(v, k.clone(), &mut out);
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

fn descend(node: &Node, key: String, out: &mut Vec<(String, String)>) {
    match node {
        Node::Map(items) => {
            for item in items {
                if let Item::Pair(k, v) = item {
                    descend(v, format!("{key}{MAP_SEP}{k}"), out);
                }
            }
        }
        Node::Seq(nodes) => {
            let leaves = nodes.iter().filter(|n| !matches!(n, Node::Comment(_)));
            for (i, n) in leaves.enumerate() {
                descend(n, format!("{key}{LIST_SEP}{i}"), out);
            }
        }
        Node::Scalar(s) if s.kind == Kind::Null => {}
        Node::Scalar(s) => out.push((key, String::from_utf8_lossy(&s.value).into_owned())),
        Node::Comment(_) => {}
    }
}

enum Step {
    Key(String),
    Index(String),
}

/// sops' tokenizer: split at every `__map_` / `__list_` marker.
fn tokenize(path: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut current = Step::Key(String::new());
    let mut rest = path;
    loop {
        let next_map = rest.find(MAP_SEP);
        let next_list = rest.find(LIST_SEP);
        let (pos, sep_len, is_list) = match (next_map, next_list) {
            (Some(m), Some(l)) if l < m => (l, LIST_SEP.len(), true),
            (Some(m), _) => (m, MAP_SEP.len(), false),
            (None, Some(l)) => (l, LIST_SEP.len(), true),
            (None, None) => break,
        };
        push_text(&mut current, &rest[..pos]);
        steps.push(current);
        current = if is_list {
            Step::Index(String::new())
        } else {
            Step::Key(String::new())
        };
        rest = &rest[pos + sep_len..];
    }
    push_text(&mut current, rest);
    steps.push(current);
    steps
}

fn push_text(step: &mut Step, text: &str) {
    match step {
        Step::Key(s) | Step::Index(s) => s.push_str(text),
    }
}

/// A node under construction: maps keep first-seen key order, lists are indexed sparsely until
/// checked for completeness.
enum Building {
    Empty,
    Leaf(Node),
    Map(Vec<(String, Building)>),
    List(Vec<(usize, Building)>),
}

/// Rebuilds the metadata mapping from flat pairs (keys without the store's prefix, values with
/// the store's escaping already undone). `mac_only_encrypted` becomes a boolean and
/// `shamir_threshold` an integer, as sops decodes them; every other leaf is a string.
pub fn unflatten(pairs: Vec<(String, String)>) -> Result<Node, FlatError> {
    let mut root = Building::Map(Vec::new());
    for (key, value) in pairs {
        let leaf = typed_leaf(&key, value);
        let mut slot = &mut root;
        for step in tokenize(&key) {
            slot = child(slot, step, &key)?;
        }
        match slot {
            Building::Empty => *slot = Building::Leaf(leaf),
            Building::Leaf(_) => return Err(FlatError::Duplicate(key)),
            _ => return Err(FlatError::TypeMismatch(key)),
        }
    }
    finish(root, "")
}

fn typed_leaf(key: &str, value: String) -> Node {
    match key {
        "mac_only_encrypted" => {
            let text = if value == "true" { "true" } else { "false" };
            Node::Scalar(Scalar::new(Kind::Bool, text))
        }
        "shamir_threshold" if value.parse::<u64>().is_ok() => {
            Node::Scalar(Scalar::new(Kind::Int, value))
        }
        _ => Node::str(value),
    }
}

fn child<'a>(slot: &'a mut Building, step: Step, key: &str) -> Result<&'a mut Building, FlatError> {
    match step {
        Step::Key(name) => {
            if matches!(slot, Building::Empty) {
                *slot = Building::Map(Vec::new());
            }
            let Building::Map(entries) = slot else {
                return Err(FlatError::TypeMismatch(key.to_string()));
            };
            let pos = match entries.iter().position(|(k, _)| *k == name) {
                Some(p) => p,
                None => {
                    entries.push((name, Building::Empty));
                    entries.len() - 1
                }
            };
            Ok(&mut entries[pos].1)
        }
        Step::Index(text) => {
            let index: usize = text
                .parse()
                .map_err(|_| FlatError::BadIndex(key.to_string()))?;
            if matches!(slot, Building::Empty) {
                *slot = Building::List(Vec::new());
            }
            let Building::List(entries) = slot else {
                return Err(FlatError::TypeMismatch(key.to_string()));
            };
            let pos = match entries.iter().position(|(i, _)| *i == index) {
                Some(p) => p,
                None => {
                    entries.push((index, Building::Empty));
                    entries.len() - 1
                }
            };
            Ok(&mut entries[pos].1)
        }
    }
}

fn finish(node: Building, path: &str) -> Result<Node, FlatError> {
    Ok(match node {
        Building::Empty => Node::Map(Vec::new()),
        Building::Leaf(n) => n,
        Building::Map(entries) => Node::Map(
            entries
                .into_iter()
                .map(|(k, b)| {
                    let sub = format!("{path}{MAP_SEP}{k}");
                    Ok(Item::Pair(k, finish(b, &sub)?))
                })
                .collect::<Result<_, FlatError>>()?,
        ),
        Building::List(mut entries) => {
            entries.sort_by_key(|(i, _)| *i);
            if entries.iter().enumerate().any(|(pos, (i, _))| pos != *i) {
                return Err(FlatError::BadIndex(path.trim_start_matches(MAP_SEP).into()));
            }
            Node::Seq(
                entries
                    .into_iter()
                    .map(|(i, b)| finish(b, &format!("{path}{LIST_SEP}{i}")))
                    .collect::<Result<_, FlatError>>()?,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(items: Vec<(&str, Node)>) -> Node {
        Node::Map(
            items
                .into_iter()
                .map(|(k, v)| Item::Pair(k.to_string(), v))
                .collect(),
        )
    }

    fn shamir_metadata() -> Node {
        let group = |r: &str| {
            map(vec![
                ("hc_vault", Node::Scalar(Scalar::null())),
                (
                    "age",
                    Node::Seq(vec![map(vec![
                        ("recipient", Node::str(r)),
                        ("enc", Node::str("-----BEGIN\nx\n")),
                    ])]),
                ),
            ])
        };
        map(vec![
            (
                "shamir_threshold",
                Node::Scalar(Scalar::new(Kind::Int, "2")),
            ),
            ("key_groups", Node::Seq(vec![group("r1"), group("r2")])),
            ("lastmodified", Node::str("2026-11-28T22:50:37Z")),
            (
                "mac_only_encrypted",
                Node::Scalar(Scalar::new(Kind::Bool, "true")),
            ),
            ("version", Node::str("3.11.0")),
        ])
    }

    /// The key names and order sops 3.11 wrote for a two-group Shamir dotenv file.
    #[test]
    fn flatten_matches_sops_key_names_and_order() {
        let keys: Vec<String> = flatten(&shamir_metadata())
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            [
                "key_groups__list_0__map_age__list_0__map_enc",
                "key_groups__list_0__map_age__list_0__map_recipient",
                "key_groups__list_1__map_age__list_0__map_enc",
                "key_groups__list_1__map_age__list_0__map_recipient",
                "lastmodified",
                "mac_only_encrypted",
                "shamir_threshold",
                "version",
            ]
        );
    }

    #[test]
    fn unflatten_restores_nesting_and_types() {
        let flat = flatten(&shamir_metadata());
        let node = unflatten(flat).unwrap();
        let groups = match node.get("key_groups") {
            Some(Node::Seq(g)) => g,
            other => panic!("{other:?}"),
        };
        assert_eq!(groups.len(), 2);
        let age = match groups[1].get("age") {
            Some(Node::Seq(a)) => a,
            other => panic!("{other:?}"),
        };
        assert_eq!(age[0].get("recipient"), Some(&Node::str("r2")));
        assert_eq!(age[0].get("enc"), Some(&Node::str("-----BEGIN\nx\n")));
        assert_eq!(
            node.get("shamir_threshold"),
            Some(&Node::Scalar(Scalar::new(Kind::Int, "2")))
        );
        assert_eq!(
            node.get("mac_only_encrypted"),
            Some(&Node::Scalar(Scalar::new(Kind::Bool, "true")))
        );
    }

    #[test]
    fn unflatten_rejects_gaps_conflicts_and_duplicates() {
        let p = |k: &str| (k.to_string(), "v".to_string());
        assert!(matches!(
            unflatten(vec![p("age__list_1__map_enc")]),
            Err(FlatError::BadIndex(_))
        ));
        assert!(matches!(
            unflatten(vec![p("age"), p("age__list_0__map_enc")]),
            Err(FlatError::TypeMismatch(_))
        ));
        assert!(matches!(
            unflatten(vec![p("mac"), p("mac")]),
            Err(FlatError::Duplicate(_))
        ));
        assert!(matches!(
            unflatten(vec![p("age__list_x")]),
            Err(FlatError::BadIndex(_))
        ));
    }
}
