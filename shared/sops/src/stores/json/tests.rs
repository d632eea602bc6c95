use super::*;
use crate::format::tree::{Kind, Scalar};

fn parse(text: &str) -> Parsed {
    JsonStore.parse(text.as_bytes()).unwrap()
}

fn write(tree: &Tree, md: Option<&Node>, orig: Option<&Parsed>) -> String {
    let bytes = JsonStore
        .write(tree, md, orig, &WriteOptions::default())
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

fn syntax_error(text: &str) -> (Option<usize>, Option<usize>, String) {
    match JsonStore.parse(text.as_bytes()) {
        Err(StoreError::Syntax {
            line,
            column,
            message,
            ..
        }) => (line, column, message),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("parsed: {text}"),
    }
}

/// Replaces every string scalar with a fake ciphertext (numbers and booleans become strings,
/// as sops encrypts them); `restore` gives back the original tree.
fn seal(node: &Node, counter: &mut usize) -> Node {
    match node {
        Node::Map(items) => Node::Map(
            items
                .iter()
                .map(|i| match i {
                    Item::Pair(k, v) => Item::Pair(k.clone(), seal(v, counter)),
                    Item::Comment(c) => Item::Comment(c.clone()),
                })
                .collect(),
        ),
        Node::Seq(nodes) => Node::Seq(nodes.iter().map(|n| seal(n, counter)).collect()),
        Node::Scalar(s) if s.kind == Kind::Null || s.value.is_empty() => node.clone(),
        Node::Scalar(s) => {
            *counter += 1;
            Node::str(format!(
                "ENC[AES256_GCM,data:{counter},type:{}]",
                s.kind.sops_name()
            ))
        }
        Node::Comment(c) => Node::Comment(c.clone()),
    }
}

fn sample_metadata() -> Node {
    let p = Item::Pair;
    Node::Map(vec![
        p(
            "age".into(),
            Node::Seq(vec![Node::Map(vec![
                p("recipient".into(), Node::str("age1xyz")),
                p("enc".into(), Node::str("-----BEGIN\nabc\n")),
            ])]),
        ),
        p("lastmodified".into(), Node::str("2026-11-28T22:49:30Z")),
        p("version".into(), Node::str("3.11.0")),
    ])
}

const SAMPLES: &[&str] = &[
    "{\n  \"a\": \"x<y>&\u{e9}\\n\",\n  \"n\": 9007199254740993,\n  \"f\": 1.50,\n  \"b\": true,\n  \"z\": null,\n  \"e\": \"\",\n  \"arr\": [1, \"s\", {\"k\": \"v\"}],\n  \"o\": {}\n}\n",
    "{\"a\":1,\"b\":{\"c\":[true,false]}}",
    "{\n\t\"only\": \"one\"\n}",
    "{}",
    "{}\n",
    "  {\r\n    \"crlf\" : \"v\" ,\r\n    \"x\" : [ ]\r\n  }\r\n",
    "{\"a\": \"\u{1f600} \\u0001\\t \\\" caf\u{e9}\"}",
    NON_MINIMAL,
];

/// Strings whose escapes are not the writer's minimal ones: their spelling must travel as
/// the scalar's layout.
const NON_MINIMAL: &str = "{\n  \"e\": \"caf\\u00e9\",\n  \"slash\": \"a\\/b\",\n  \"A\": [\"\\u0041\", \"plain\"],\n  \"go\": \"x\\u003cy\\u003e\\u0026\",\n  \"upper\": \"\\u001B\",\n  \"pair\": \"\\ud83d\\ude00\",\n  \"lone\": \"\\ud800x\",\n  \"n\": 1.50\n}\n";

/// decrypt(encrypt(x)) == x byte for byte, across layouts, including strings spelled with
/// escapes the writer would not choose (their source text is the scalar's layout).
#[test]
fn round_trip_through_fake_encryption_is_byte_exact() {
    for text in SAMPLES {
        let plain = parse(text);
        let doc = &plain.tree.documents[0];
        let sealed = Tree {
            documents: vec![seal(doc, &mut 0)],
        };
        let md = sample_metadata();
        let encrypted = write(&sealed, Some(&md), Some(&plain));
        let enc_parsed = parse(&encrypted);
        assert_eq!(enc_parsed.tree, sealed, "{encrypted}");
        assert_eq!(enc_parsed.metadata.as_ref(), Some(&md), "{encrypted}");
        let back = write(&plain.tree, None, Some(&enc_parsed));
        assert_eq!(back, *text, "encrypted form was:\n{encrypted}");
    }
}

/// Only strings the writer would spell differently carry a layout (it costs ciphertext),
/// and the layout is the string token exactly as written, quotes included.
#[test]
fn only_non_minimal_strings_carry_their_source_text() {
    let p = parse(NON_MINIMAL);
    let doc = &p.tree.documents[0];
    let layout = |key: &str| match doc.get(key) {
        Some(Node::Scalar(s)) => s.layout.clone(),
        other => panic!("{key}: {other:?}"),
    };
    assert_eq!(layout("e").as_deref(), Some("\"caf\\u00e9\""));
    assert_eq!(layout("slash").as_deref(), Some("\"a\\/b\""));
    assert_eq!(layout("upper").as_deref(), Some("\"\\u001B\""));
    assert_eq!(layout("lone").as_deref(), Some("\"\\ud800x\""));
    assert_eq!(layout("n"), None);
    let Some(Node::Seq(a)) = doc.get("A") else {
        panic!("A")
    };
    assert_eq!(
        a[0].as_scalar().and_then(|s| s.layout.as_deref()),
        Some("\"\\u0041\"")
    );
    assert_eq!(a[1].as_scalar().map(|s| s.layout.is_none()), Some(true));
    for sample in &SAMPLES[..SAMPLES.len() - 1] {
        let plain = parse(sample);
        assert_eq!(count_layouts(&plain.tree.documents[0]), 0, "{sample}");
    }
}

fn count_layouts(node: &Node) -> usize {
    match node {
        Node::Map(items) => items
            .iter()
            .map(|i| match i {
                Item::Pair(_, v) => count_layouts(v),
                Item::Comment(_) => 0,
            })
            .sum(),
        Node::Seq(nodes) => nodes.iter().map(count_layouts).sum(),
        Node::Scalar(s) => usize::from(s.layout.is_some()),
        Node::Comment(_) => 0,
    }
}

/// A layout is written only where it still spells the value, and only in a lossless write:
/// an edited value, or a layout from another format (a YAML block scalar), falls back to
/// the writer's own escaping, and sops' canonical layout stays sops'.
#[test]
fn a_layout_is_written_only_when_it_spells_the_value() {
    let p = parse("{\"a\": \"x\", \"b\": \"y\", \"c\": \"z\", \"d\": \"w\"}");
    let with_layout = |value: &str, layout: &str| {
        let mut s = Scalar::str(value);
        s.layout = Some(layout.into());
        Node::Scalar(s)
    };
    let tree = Tree {
        documents: vec![Node::Map(vec![
            Item::Pair("a".into(), with_layout("é", "\"\\u00e9\"")),
            Item::Pair("b".into(), with_layout("edited", "\"\\u00e9\"")),
            Item::Pair(
                "c".into(),
                with_layout("folded text\n", ">\n  folded\n  text\n"),
            ),
            Item::Pair("d".into(), with_layout("é", "\"\\u00e9\" trailing")),
        ])],
    };
    assert_eq!(
        write(&tree, None, Some(&p)),
        "{\"a\": \"\\u00e9\", \"b\": \"edited\", \"c\": \"folded text\\n\", \"d\": \"é\"}"
    );
    assert_eq!(
        write(&tree, None, None),
        "{\n\t\"a\": \"é\",\n\t\"b\": \"edited\",\n\t\"c\": \"folded text\\n\",\n\t\"d\": \"é\"\n}\n"
    );
}

/// The same round trip through the real encryption: the layouts travel sealed after the
/// `ENC[...]` values and come back on decrypt, so the plaintext file is reproduced exactly.
#[test]
fn round_trip_through_real_encryption_is_byte_exact() {
    use crate::crypto::data_key::DataKey;
    use crate::file;
    use crate::format::crypt_rule::CryptRule;
    use crate::format::metadata::Metadata;
    use crate::keys::age::{self as agekeys, AgeIdentities};
    use crate::keys::groups::{self, GroupRecipients, Keyring};

    let (secret, recipient) = agekeys::generate();
    let key = DataKey::generate();
    let group = GroupRecipients {
        age: vec![recipient.parse().unwrap()],
        ..Default::default()
    };
    let (groups, _) = groups::wrap(&key, &[group], None, None).unwrap();
    let keyring = Keyring::new(AgeIdentities::parse("test", &secret).unwrap());
    for text in [NON_MINIMAL, SAMPLES[0]] {
        let mut metadata = Metadata::new(groups.clone(), CryptRule::default());
        let options = file::EncryptOptions {
            layout: file::Layout::Keep,
            unchanged: None,
            write: &WriteOptions::default(),
        };
        let encrypted =
            file::encrypt(&JsonStore, parse(text), &key, &mut metadata, &options).unwrap();
        let encrypted_text = String::from_utf8(encrypted.clone()).unwrap();
        let layouts = encrypted_text.matches("]~").count();
        let expected = if text == NON_MINIMAL { 7 } else { 0 };
        assert_eq!(layouts, expected, "{encrypted_text}");
        let parsed = JsonStore.parse(&encrypted).unwrap();
        let opened = file::open(parsed, &keyring, &file::OpenOptions::default())
            .unwrap()
            .verify()
            .unwrap();
        let back = write(&opened.parsed.tree, None, Some(&opened.parsed));
        assert_eq!(back, text, "encrypted form was:\n{encrypted_text}");
    }
}

#[test]
fn metadata_is_appended_in_the_document_style() {
    let plain = parse("{\n  \"a\": 1\n}\n");
    let md = Node::Map(vec![Item::Pair("version".into(), Node::str("3.11.0"))]);
    assert_eq!(
        write(&plain.tree, Some(&md), Some(&plain)),
        "{\n  \"a\": 1,\n  \"sops\": {\n    \"version\": \"3.11.0\"\n  }\n}\n"
    );
    let compact = parse("{\"a\":1}");
    assert_eq!(
        write(&compact.tree, Some(&md), Some(&compact)),
        "{\"a\":1,\"sops\":{\"version\":\"3.11.0\"}}"
    );
}

/// Typed as sops 3.13.2+ types them: integers within int64 are `int` (so 9007199254740993
/// stays exact for sops 3.13, which would otherwise read ...992), everything else `float`.
#[test]
fn numbers_keep_their_text_and_integers_within_int64_are_ints() {
    let p = parse(
        "{\"n\": 9007199254740993, \"f\": 1.50, \"e\": -2E+3, \"big\": 99999999999999999999}",
    );
    let doc = &p.tree.documents[0];
    assert_eq!(
        doc.get("n"),
        Some(&Node::Scalar(Scalar::new(Kind::Int, "9007199254740993")))
    );
    assert_eq!(
        doc.get("big"),
        Some(&Node::Scalar(Scalar::new(
            Kind::Float,
            "99999999999999999999"
        )))
    );
    assert_eq!(
        doc.get("f"),
        Some(&Node::Scalar(Scalar::new(Kind::Float, "1.50")))
    );
    assert_eq!(
        doc.get("e"),
        Some(&Node::Scalar(Scalar::new(Kind::Float, "-2E+3")))
    );
    // Unchanged in a canonical write too: the text is the value.
    assert!(write(&p.tree, None, None).contains("\"n\": 9007199254740993,"));
}

#[test]
fn changed_strings_are_escaped_minimally_and_added_keys_go_last() {
    let p = parse("{\n    \"a\": \"old\",\n    \"gone\": 1,\n    \"c\": 3\n}");
    let tree = Tree {
        documents: vec![Node::Map(vec![
            Item::Pair("a".into(), Node::str("new \"q\" <é>\n")),
            Item::Pair("c".into(), Node::Scalar(Scalar::new(Kind::Int, "3"))),
            Item::Pair(
                "d".into(),
                Node::Map(vec![Item::Pair("x".into(), Node::str("y"))]),
            ),
        ])],
    };
    assert_eq!(
        write(&tree, None, Some(&p)),
        "{\n    \"a\": \"new \\\"q\\\" <é>\\n\",\n    \"c\": 3,\n    \"d\": {\n        \"x\": \"y\"\n    }\n}"
    );
}

/// What `sops decrypt` printed for the same document (tabs, Go escapes, final newline).
#[test]
fn canonical_write_matches_sops_output() {
    let p = parse(
        "{\"a\": \"x<y>&\\u00e9\\n\", \"b\": true, \"z\": null, \"arr\": [1, \"s\", {\"k\": \"v\"}], \"o\": {}, \"e\": []}",
    );
    assert_eq!(
        write(&p.tree, None, None),
        "{\n\t\"a\": \"x\\u003cy\\u003e\\u0026é\\n\",\n\t\"b\": true,\n\t\"z\": null,\n\t\"arr\": [\n\t\t1,\n\t\t\"s\",\n\t\t{\n\t\t\t\"k\": \"v\"\n\t\t}\n\t],\n\t\"o\": {},\n\t\"e\": []\n}\n"
    );
    let escapes = parse("{\"a\": \"\\b\\f\\u001b\\u2028\\ud83d\\ude00\\ud800x\"}");
    assert_eq!(
        write(&escapes.tree, None, None),
        "{\n\t\"a\": \"\\b\\f\\u001b\\u2028😀\u{fffd}x\"\n}\n"
    );
    let opts = WriteOptions { indent: Some(2) };
    let out = JsonStore.write(&p.tree, None, None, &opts).unwrap();
    assert!(String::from_utf8(out).unwrap().starts_with("{\n  \"a\""));
}

#[test]
fn comments_from_yaml_are_dropped() {
    let tree = Tree {
        documents: vec![Node::Map(vec![
            Item::Comment(" note".into()),
            Item::Pair(
                "l".into(),
                Node::Seq(vec![Node::Comment(" c".into()), Node::str("v")]),
            ),
        ])],
    };
    assert_eq!(
        write(&tree, None, None),
        "{\n\t\"l\": [\n\t\t\"v\"\n\t]\n}\n"
    );
}

#[test]
fn yaml_numbers_get_a_json_spelling() {
    let tree = Tree {
        documents: vec![Node::Map(vec![
            Item::Pair("h".into(), Node::Scalar(Scalar::new(Kind::Int, "0x1F"))),
            Item::Pair("u".into(), Node::Scalar(Scalar::new(Kind::Int, "1_000"))),
            Item::Pair("f".into(), Node::Scalar(Scalar::new(Kind::Float, "1."))),
        ])],
    };
    assert_eq!(
        write(&tree, None, None),
        "{\n\t\"h\": 31,\n\t\"u\": 1000,\n\t\"f\": 1\n}\n"
    );
    let inf = Tree {
        documents: vec![Node::Map(vec![Item::Pair(
            "x".into(),
            Node::Scalar(Scalar::new(Kind::Float, ".inf")),
        )])],
    };
    let err = JsonStore.write(&inf, None, None, &WriteOptions::default());
    assert!(matches!(err, Err(StoreError::Unrepresentable { .. })));
}

#[test]
fn errors_carry_line_and_column() {
    assert_eq!(syntax_error("{\n  \"a\": tru\n}").0, Some(2));
    let (line, col, _) = syntax_error("{\n  \"a\": 1,\n  \"b\" 2\n}");
    assert_eq!((line, col), (Some(3), Some(7)));
    let (_, _, msg) = syntax_error("[1, 2]");
    assert!(msg.contains("array"), "{msg}");
    let (_, _, msg) = syntax_error("{\"a\": 1} x");
    assert!(msg.contains("after"), "{msg}");
    let (_, _, msg) = syntax_error("{\"a\": \"x\ny\"}");
    assert!(msg.contains("control"), "{msg}");
    let (_, _, msg) = syntax_error("{\"a\": 01}");
    assert!(msg.contains("','"), "{msg}");
    syntax_error("{\"a\": \"\\q\"}");
    syntax_error("{\"a\": 1,}");
    syntax_error("");
    syntax_error("{\"sops\": \"not an object\"}");
}

/// sops keeps a key given twice, both times, in order (its JSON store reads token by token);
/// so does enseal, and the file is written back as it was.
#[test]
fn duplicate_keys_are_kept_in_order() {
    let text = "{\n  \"a\": 1,\n  \"b\": \"x\",\n  \"a\": 2\n}\n";
    let p = parse(text);
    let Node::Map(items) = &p.tree.documents[0] else {
        panic!("not an object");
    };
    let keys: Vec<&str> = items
        .iter()
        .filter_map(|i| match i {
            Item::Pair(k, _) => Some(k.as_str()),
            Item::Comment(_) => None,
        })
        .collect();
    assert_eq!(keys, ["a", "b", "a"]);
    assert_eq!(write(&p.tree, None, Some(&p)), text);
}

#[test]
fn a_depth_bomb_is_refused_without_overflowing_the_stack() {
    let bomb = format!("{{\"a\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let (_, _, msg) = syntax_error(&bomb);
    assert!(msg.contains("nesting"), "{msg}");
    let ok = format!("{{\"a\": {}{}}}", "[".repeat(500), "]".repeat(500));
    assert!(JsonStore.parse(ok.as_bytes()).is_ok());
}

#[test]
fn metadata_numbers_and_nulls_keep_their_types() {
    let p = parse(
        "{\"a\": 1, \"sops\": {\"shamir_threshold\": 2, \"key_groups\": [{\"hc_vault\": null}], \"mac_only_encrypted\": true}}",
    );
    let md = p.metadata.unwrap();
    assert_eq!(
        md.get("shamir_threshold"),
        Some(&Node::Scalar(Scalar::new(Kind::Int, "2")))
    );
    assert_eq!(
        md.get("mac_only_encrypted"),
        Some(&Node::Scalar(Scalar::new(Kind::Bool, "true")))
    );
    assert_eq!(p.tree.documents[0].get("sops"), None);
}

fn age_recipient(md: &Node, group: Option<usize>) -> Option<&Node> {
    let holder = match group {
        Some(g) => match md.get("key_groups")? {
            Node::Seq(groups) => groups.get(g)?,
            _ => return None,
        },
        None => md,
    };
    match holder.get("age")? {
        Node::Seq(entries) => entries.first()?.get("recipient"),
        _ => None,
    }
}

/// A file sops 3.11 encrypted: its metadata reads back, and writing the parsed tree with
/// the metadata reproduces sops' bytes exactly, both canonically and losslessly.
#[test]
fn sops_made_file_parses_and_is_reproduced_exactly() {
    let bytes = include_bytes!("../../../tests/fixtures/stores/sops.json");
    let p = JsonStore.parse(bytes).unwrap();
    let md = p.metadata.as_ref().unwrap();
    assert_eq!(md.get("version"), Some(&Node::str("3.11.0")));
    assert!(md.get("lastmodified").is_some() && md.get("mac").is_some());
    assert_eq!(
        age_recipient(md, None),
        Some(&Node::str(
            "age1lgt2fnt68raqkys73elkjeen6jqzn9xvdlwknuye4crc0xmqu5xsv386en"
        ))
    );
    let doc = &p.tree.documents[0];
    let n = doc.get("n").and_then(Node::as_scalar).unwrap();
    assert!(n.text().unwrap().ends_with(",type:float]"));
    assert_eq!(doc.get("z"), Some(&Node::Scalar(Scalar::null())));
    assert_eq!(doc.get("e"), Some(&Node::str("")));
    let canonical = JsonStore
        .write(&p.tree, Some(md), None, &WriteOptions::default())
        .unwrap();
    assert_eq!(
        String::from_utf8(canonical).unwrap(),
        String::from_utf8_lossy(bytes)
    );
    let lossless = JsonStore
        .write(&p.tree, Some(md), Some(&p), &WriteOptions::default())
        .unwrap();
    assert_eq!(lossless, bytes);
}

#[test]
fn sops_made_shamir_file_has_key_groups_and_threshold() {
    let bytes = include_bytes!("../../../tests/fixtures/stores/shamir.json");
    let p = JsonStore.parse(bytes).unwrap();
    let md = p.metadata.as_ref().unwrap();
    assert_eq!(
        md.get("shamir_threshold"),
        Some(&Node::Scalar(Scalar::new(Kind::Int, "2")))
    );
    assert!(age_recipient(md, Some(0)).is_some());
    assert!(age_recipient(md, Some(1)).is_some());
    let Some(Node::Seq(groups)) = md.get("key_groups") else {
        panic!("no key_groups")
    };
    assert_eq!(
        groups[0].get("hc_vault"),
        Some(&Node::Scalar(Scalar::null()))
    );
    let canonical = JsonStore
        .write(&p.tree, Some(md), None, &WriteOptions::default())
        .unwrap();
    assert_eq!(canonical, bytes);
}

#[test]
fn parsing_owned_bytes_keeps_the_layout_as_parsing_borrowed_ones_does() {
    let text = "{\n  \"a\": \"\\u00e9\",  \"b\": 1.50,\n  \"c\": [1, 2]\n}\n";
    let owned = JsonStore.parse_owned(text.as_bytes().to_vec()).unwrap();
    let borrowed = parse(text);
    assert_eq!(owned.tree, borrowed.tree);
    assert_eq!(write(&owned.tree, None, Some(&owned)), text);
}
