//! dotenv files, read the way sops 3.11 reads them.
//!
//! sops splits on `\n` and, per non-empty line: `#` in the first column makes a comment (the text
//! after `#`, leading space included); otherwise the key is everything before the first `=` and
//! the value everything after it, quotes and `export ` included (`export A=1` has key
//! `export A`, `B="q x"` has value `"q x"`). A literal `\n` in a value is a newline in the
//! value (and is written back as `\n`), which is how multi-line values and the armored age
//! keys of the metadata fit on one line. Keys starting with `sops_` are the flattened metadata.

use super::flat;
use super::{Format, Layout, Parsed, Store, StoreError, WriteOptions};
use crate::format::tree::{Item, Node, Tree};

pub struct DotenvStore;

const PREFIX: &str = "sops_";
const FORMAT: &str = "dotenv";

enum Line {
    /// An empty line, kept for the lossless write (sops drops them).
    Blank,
    /// The n-th comment or pair of the tree.
    Entry(usize),
    /// A `sops_*` line: dropped on write, the metadata is written anew.
    Metadata,
}

pub(crate) struct Source {
    lines: Vec<Line>,
    /// Per entry: `Some(key)` for a pair, `None` for a comment.
    entries: Vec<Option<String>>,
    trailing_newline: bool,
}

fn syntax(line: usize, message: impl Into<String>) -> StoreError {
    StoreError::Syntax {
        format: FORMAT,
        line: Some(line),
        column: None,
        message: message.into(),
    }
}

fn unrepresentable(message: impl Into<String>) -> StoreError {
    StoreError::Unrepresentable {
        format: FORMAT,
        message: message.into(),
    }
}

fn decode_value(raw: &str) -> String {
    raw.replace("\\n", "\n")
}

fn encode_value(value: &str) -> String {
    value.replace('\n', "\\n")
}

impl Store for DotenvStore {
    fn format(&self) -> Format {
        Format::Dotenv
    }

    fn parse(&self, bytes: &[u8]) -> Result<Parsed, StoreError> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            syntax(line, "not valid UTF-8")
        })?;
        let (body, trailing_newline) = match text.strip_suffix('\n') {
            Some(body) => (body, true),
            None => (text, false),
        };
        let mut items = Vec::new();
        let mut source = Source {
            lines: Vec::new(),
            entries: Vec::new(),
            trailing_newline,
        };
        let mut meta_pairs = Vec::new();
        if !body.is_empty() || trailing_newline {
            for (n, line) in body.split('\n').enumerate() {
                if line.is_empty() {
                    source.lines.push(Line::Blank);
                } else if let Some(comment) = line.strip_prefix('#') {
                    source.lines.push(Line::Entry(source.entries.len()));
                    source.entries.push(None);
                    items.push(Item::Comment(comment.to_string()));
                } else {
                    let Some((key, raw)) = line.split_once('=') else {
                        return Err(syntax(n + 1, "line has no '=' (expected KEY=VALUE)"));
                    };
                    if let Some(field) = key.strip_prefix(PREFIX) {
                        source.lines.push(Line::Metadata);
                        meta_pairs.push((field.to_string(), decode_value(raw)));
                    } else {
                        source.lines.push(Line::Entry(source.entries.len()));
                        source.entries.push(Some(key.to_string()));
                        items.push(Item::Pair(key.to_string(), Node::str(decode_value(raw))));
                    }
                }
            }
        }
        let metadata = if meta_pairs.is_empty() {
            None
        } else {
            Some(flat::unflatten(meta_pairs).map_err(|e| StoreError::Syntax {
                format: FORMAT,
                line: None,
                column: None,
                message: format!("sops metadata: {e}"),
            })?)
        };
        Ok(Parsed {
            tree: Tree {
                documents: vec![Node::Map(items)],
            },
            metadata,
            source: Layout::dotenv(source),
        })
    }

    fn write(
        &self,
        tree: &Tree,
        metadata: Option<&Node>,
        original: Option<&Parsed>,
        _options: &WriteOptions,
    ) -> Result<Vec<u8>, StoreError> {
        let source = Layout::of_dotenv(original)?;
        let items = top_items(tree)?;
        let rendered: Vec<String> = items.iter().map(render).collect::<Result<_, _>>()?;
        let (mut lines, trailing_newline) = match source {
            Some(source) => (
                lossless_lines(source, items, &rendered),
                source.trailing_newline,
            ),
            None => (rendered, true),
        };
        if let Some(md) = metadata {
            for (key, value) in flat::flatten(md) {
                lines.push(format!("{PREFIX}{key}={}", encode_value(&value)));
            }
        }
        let mut out = lines.join("\n");
        let wants_newline = trailing_newline || source.is_some_and(|s| s.lines.is_empty());
        if wants_newline && !lines.is_empty() {
            out.push('\n');
        }
        Ok(out.into_bytes())
    }
}

fn top_items(tree: &Tree) -> Result<&[Item], StoreError> {
    match tree.documents.as_slice() {
        [] => Ok(&[]),
        [Node::Map(items)] => Ok(items),
        [_] => Err(unrepresentable("the document is not a mapping")),
        _ => Err(unrepresentable("a dotenv file holds exactly one document")),
    }
}

fn render(item: &Item) -> Result<String, StoreError> {
    match item {
        Item::Comment(text) => {
            if text.contains('\n') {
                return Err(unrepresentable("a comment spans several lines"));
            }
            Ok(format!("#{text}"))
        }
        Item::Pair(key, value) => {
            if key.contains(['=', '\n']) || key.starts_with('#') || key.starts_with(PREFIX) {
                return Err(unrepresentable(format!(
                    "key {key:?} cannot be written as a dotenv key"
                )));
            }
            let Node::Scalar(scalar) = value else {
                return Err(unrepresentable(format!(
                    "key {key:?} holds a nested value (dotenv values are flat)"
                )));
            };
            let text = crate::format::scalar_text::flat_text(scalar);
            Ok(format!("{key}={}", encode_value(&text)))
        }
    }
}

/// The original lines with each entry replaced by the tree item it became: pairs matched by
/// key, comments by their rank among comments. Removed entries lose their line; added items go
/// after the last kept entry.
fn lossless_lines(source: &Source, items: &[Item], rendered: &[String]) -> Vec<String> {
    let mut claimed = vec![false; items.len()];
    let mut entry_item: Vec<Option<usize>> = vec![None; source.entries.len()];
    let mut comment_rank = 0;
    let comment_items: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, i)| matches!(i, Item::Comment(_)))
        .map(|(n, _)| n)
        .collect();
    for (e, entry) in source.entries.iter().enumerate() {
        let found = match entry {
            Some(key) => items
                .iter()
                .enumerate()
                .position(|(n, item)| !claimed[n] && matches!(item, Item::Pair(k, _) if k == key)),
            None => {
                comment_rank += 1;
                comment_items.get(comment_rank - 1).copied()
            }
        };
        if let Some(n) = found {
            claimed[n] = true;
            entry_item[e] = Some(n);
        }
    }
    let mut out = Vec::new();
    let mut insert_at = None;
    for line in &source.lines {
        match line {
            Line::Blank => out.push(String::new()),
            Line::Metadata => {}
            Line::Entry(e) => {
                if let Some(n) = entry_item[*e] {
                    out.push(rendered[n].clone());
                    insert_at = Some(out.len());
                }
            }
        }
    }
    let added: Vec<String> = (0..items.len())
        .filter(|n| !claimed[*n])
        .map(|n| rendered[n].clone())
        .collect();
    let at = insert_at.unwrap_or(out.len());
    out.splice(at..at, added);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tree::Kind;
    use crate::format::tree::Scalar;

    fn parse(text: &str) -> Parsed {
        DotenvStore.parse(text.as_bytes()).unwrap()
    }

    fn items(p: &Parsed) -> &Vec<Item> {
        match &p.tree.documents[0] {
            Node::Map(items) => items,
            other => panic!("{other:?}"),
        }
    }

    fn write(tree: &Tree, md: Option<&Node>, orig: Option<&Parsed>) -> String {
        let bytes = DotenvStore
            .write(tree, md, orig, &WriteOptions::default())
            .unwrap();
        String::from_utf8(bytes).unwrap()
    }

    /// Replaces every value and comment with a fake ciphertext, remembering the originals.
    fn seal(tree: &Tree) -> (Tree, Vec<Item>) {
        let originals = match &tree.documents[0] {
            Node::Map(items) => items.clone(),
            _ => unreachable!(),
        };
        let sealed = originals
            .iter()
            .enumerate()
            .map(|(n, item)| match item {
                Item::Pair(k, _) => Item::Pair(k.clone(), Node::str(format!("ENC[fake,{n}]"))),
                Item::Comment(_) => Item::Comment(format!("ENC[fake,{n}]")),
            })
            .collect();
        (
            Tree {
                documents: vec![Node::Map(sealed)],
            },
            originals,
        )
    }

    fn sample_metadata() -> Node {
        let p = crate::format::tree::Item::Pair;
        Node::Map(vec![
            p(
                "age".into(),
                Node::Seq(vec![Node::Map(vec![
                    // Sorted like the flat keys, so that unflatten gives the same order back.
                    p("enc".into(), Node::str("-----BEGIN\nabc\n-----END\n")),
                    p("recipient".into(), Node::str("age1xyz")),
                ])]),
            ),
            p("lastmodified".into(), Node::str("2026-11-28T22:49:31Z")),
            p("version".into(), Node::str("3.11.0")),
        ])
    }

    /// What sops 3.11 read from the same lines (checked with `sops decrypt --output-type yaml`).
    #[test]
    fn values_keep_quotes_export_and_decode_backslash_n() {
        let p = parse("# top comment\nA=1\n\nB=\"q x\"\nexport C=3\nD=line1\\nline2\n#nospace\n");
        assert_eq!(
            items(&p),
            &vec![
                Item::Comment(" top comment".into()),
                Item::Pair("A".into(), Node::str("1")),
                Item::Pair("B".into(), Node::str("\"q x\"")),
                Item::Pair("export C".into(), Node::str("3")),
                Item::Pair("D".into(), Node::str("line1\nline2")),
                Item::Comment("nospace".into()),
            ]
        );
        assert!(p.metadata.is_none());
    }

    #[test]
    fn round_trip_through_fake_encryption_is_byte_exact() {
        for text in [
            "# top comment\nA=1\n\nB=\"q x\"\nexport C=3\nD=line1\\nline2\n#nospace\n",
            "A=1\n\n\nB=2",
            "",
            "\n\nA=x=y\n\n",
            "#only a comment\n",
        ] {
            let plain = parse(text);
            let (sealed, originals) = seal(&plain.tree);
            let md = sample_metadata();
            let encrypted = write(&sealed, Some(&md), Some(&plain));
            let enc_parsed = parse(&encrypted);
            assert_eq!(enc_parsed.metadata.as_ref(), Some(&md), "{encrypted}");
            assert_eq!(enc_parsed.tree, sealed);
            let restored = Tree {
                documents: vec![Node::Map(originals)],
            };
            assert_eq!(write(&restored, None, Some(&enc_parsed)), text);
        }
    }

    #[test]
    fn metadata_lines_are_sorted_and_escape_newlines_like_sops() {
        let tree = parse("A=1\n").tree;
        let out = write(&tree, Some(&sample_metadata()), None);
        assert_eq!(
            out,
            "A=1\n\
             sops_age__list_0__map_enc=-----BEGIN\\nabc\\n-----END\\n\n\
             sops_age__list_0__map_recipient=age1xyz\n\
             sops_lastmodified=2026-11-28T22:49:31Z\n\
             sops_version=3.11.0\n"
        );
    }

    #[test]
    fn added_keys_go_after_the_last_entry_and_removed_keys_vanish() {
        let p = parse("A=1\nB=2\n\n");
        let tree = Tree {
            documents: vec![Node::Map(vec![
                Item::Pair("A".into(), Node::str("1")),
                Item::Pair("C".into(), Node::str("3")),
            ])],
        };
        assert_eq!(write(&tree, None, Some(&p)), "A=1\nC=3\n\n");
    }

    #[test]
    fn canonical_write_drops_blank_lines_like_sops() {
        let p = parse("#c\nA=1\n\nB=2\n");
        assert_eq!(write(&p.tree, None, None), "#c\nA=1\nB=2\n");
    }

    #[test]
    fn a_line_without_equals_is_an_error_with_its_line_number() {
        let err = DotenvStore.parse(b"A=1\nsecretvalue\n").err().unwrap();
        match &err {
            StoreError::Syntax { line, .. } => assert_eq!(*line, Some(2)),
            other => panic!("{other:?}"),
        }
        assert!(!err.to_string().contains("secretvalue"));
    }

    #[test]
    fn nested_values_are_unrepresentable_with_their_key() {
        let tree = Tree {
            documents: vec![Node::Map(vec![Item::Pair(
                "db".into(),
                Node::Map(vec![Item::Pair("pw".into(), Node::str("x"))]),
            )])],
        };
        let err = DotenvStore
            .write(&tree, None, None, &WriteOptions::default())
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::Unrepresentable { .. }));
        assert!(err.to_string().contains("db"));
    }

    #[test]
    fn non_string_scalars_are_written_as_their_text() {
        let tree = Tree {
            documents: vec![Node::Map(vec![
                Item::Pair("N".into(), Node::Scalar(Scalar::new(Kind::Int, "42"))),
                Item::Pair("B".into(), Node::Scalar(Scalar::new(Kind::Bool, "true"))),
            ])],
        };
        assert_eq!(write(&tree, None, None), "N=42\nB=true\n");
    }

    /// Files sops 3.11 encrypted: the metadata unflattens (Shamir key groups included) and a
    /// canonical write of the parsed tree gives back sops' bytes exactly.
    #[test]
    fn sops_made_files_parse_and_are_reproduced_exactly() {
        for (bytes, groups) in [
            (
                &include_bytes!("../../tests/fixtures/stores/sops.env")[..],
                0,
            ),
            (
                &include_bytes!("../../tests/fixtures/stores/shamir.env")[..],
                2,
            ),
        ] {
            let p = DotenvStore.parse(bytes).unwrap();
            let md = p.metadata.as_ref().unwrap();
            assert_eq!(md.get("version"), Some(&Node::str("3.11.0")));
            match groups {
                0 => {
                    let Some(Node::Seq(age)) = md.get("age") else {
                        panic!("no age")
                    };
                    let enc = age[0].get("enc").and_then(Node::as_scalar).unwrap();
                    assert!(enc
                        .text()
                        .unwrap()
                        .starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"));
                }
                n => {
                    let Some(Node::Seq(kg)) = md.get("key_groups") else {
                        panic!("no key_groups")
                    };
                    assert_eq!(kg.len(), n);
                    assert_eq!(
                        md.get("shamir_threshold"),
                        Some(&Node::Scalar(Scalar::new(Kind::Int, "2")))
                    );
                }
            }
            assert!(matches!(items(&p)[0], Item::Comment(_)));
            let out = DotenvStore
                .write(&p.tree, Some(md), None, &WriteOptions::default())
                .unwrap();
            assert_eq!(out, bytes);
            let lossless = DotenvStore
                .write(&p.tree, Some(md), Some(&p), &WriteOptions::default())
                .unwrap();
            assert_eq!(lossless, bytes);
        }
    }
}
