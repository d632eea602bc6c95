use super::*;
use crate::format::tree::{Kind, Scalar};

fn store() -> YamlStore {
    YamlStore
}

fn parse(text: &str) -> Parsed {
    match store().parse(text.as_bytes()) {
        Ok(p) => p,
        Err(e) => panic!("parse failed: {e}\n{text}"),
    }
}

fn write(tree: &Tree, meta: Option<&Node>, original: Option<&Parsed>) -> String {
    let out = store()
        .write(tree, meta, original, &WriteOptions::default())
        .expect("write");
    String::from_utf8(out).expect("utf-8")
}

const FAKE_PREFIX: &str = "ENC[AES256_GCM,data:";

/// A stand-in for sops encryption that can be undone without keys: the plaintext is hex-encoded
/// in the `data` field.
fn fake_enc(plain: &[u8], kind: &str) -> String {
    format!(
        "{FAKE_PREFIX}{},iv:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,tag:BBBBBBBBBBBBBBBBBBBBBB==,type:{kind}]",
        hex::encode(plain)
    )
}

fn fake_dec(text: &str) -> Option<(Vec<u8>, String)> {
    // Like sops, accept whatever follows the closing bracket (a block scalar's line break).
    let rest = text.strip_prefix(FAKE_PREFIX)?;
    let (data, rest) = rest.split_once(",iv:")?;
    let kind = rest.split_once(",type:")?.1;
    let kind = &kind[..kind.find(']')?];
    Some((hex::decode(data).ok()?, kind.to_string()))
}

fn encrypt_node(node: &mut Node) {
    match node {
        Node::Map(items) => {
            for item in items {
                match item {
                    Item::Pair(_, v) => encrypt_node(v),
                    Item::Comment(c) => *c = fake_enc(c.as_bytes(), "comment"),
                }
            }
        }
        Node::Seq(items) => items.iter_mut().for_each(encrypt_node),
        Node::Comment(c) => *c = fake_enc(c.as_bytes(), "comment"),
        Node::Scalar(s) => {
            if s.kind == Kind::Null || (s.kind == Kind::Str && s.value.is_empty()) {
                return;
            }
            let mut enc = fake_enc(&s.value, s.kind.sops_name());
            if let Some(layout) = &s.layout {
                // Like the core, the source text travels after the ENC[...] value.
                enc.push('~');
                enc.push_str(&hex::encode(layout));
            }
            *s = Scalar::str(enc);
        }
    }
}

fn decrypt_node(node: &mut Node) {
    match node {
        Node::Map(items) => {
            for item in items {
                match item {
                    Item::Pair(_, v) => decrypt_node(v),
                    Item::Comment(c) => {
                        let (plain, _) = fake_dec(c).expect("encrypted comment");
                        *c = String::from_utf8(plain).expect("utf-8");
                    }
                }
            }
        }
        Node::Seq(items) => items.iter_mut().for_each(decrypt_node),
        Node::Comment(c) => {
            let (plain, _) = fake_dec(c).expect("encrypted comment");
            *c = String::from_utf8(plain).expect("utf-8");
        }
        Node::Scalar(s) => {
            let Some((plain, kind)) = s.text().and_then(fake_dec) else {
                return;
            };
            let layout = s
                .text()
                .and_then(|t| t.trim_end().split_once("]~"))
                .map(|(_, l)| String::from_utf8(hex::decode(l).expect("hex")).expect("utf-8"));
            *node = if kind == "comment" {
                Node::Comment(String::from_utf8(plain).expect("utf-8"))
            } else {
                let mut scalar =
                    Scalar::from_bytes(Kind::from_sops_name(&kind).expect("kind"), plain);
                scalar.layout = layout;
                Node::Scalar(scalar)
            };
        }
    }
}

fn metadata() -> Node {
    Node::Map(vec![
        Item::Pair(
            "age".into(),
            Node::Seq(vec![Node::Map(vec![
                Item::Pair("recipient".into(), Node::str("age1qqqq")),
                Item::Pair(
                    "enc".into(),
                    Node::str("-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n"),
                ),
            ])]),
        ),
        Item::Pair("lastmodified".into(), Node::str("2026-11-28T22:45:52Z")),
        Item::Pair("mac".into(), Node::str(fake_enc(b"MAC", "str"))),
        Item::Pair("unencrypted_suffix".into(), Node::str("_unencrypted")),
        Item::Pair("version".into(), Node::str("3.11.0")),
    ])
}

/// Encrypts (fake) every value and comment over the original layout, then decrypts over the
/// encrypted file's: the encrypted and decrypted texts.
fn encrypt_then_decrypt(original: &str) -> (String, String) {
    let plain = parse(original);
    let mut tree = plain.tree.clone();
    tree.documents.iter_mut().for_each(encrypt_node);
    let encrypted = write(&tree, Some(&metadata()), Some(&plain));
    let enc = parse(&encrypted);
    let mut back = enc.tree.clone();
    back.documents.iter_mut().for_each(decrypt_node);
    let decrypted = write(&back, None, Some(&enc));
    (encrypted, decrypted)
}

/// Encrypts (fake) every value and comment, writes over the original, reads that back, decrypts
/// and writes over the encrypted file: the result must be the original bytes.
fn assert_round_trip(original: &str) -> String {
    let plain = parse(original);
    let mut tree = plain.tree.clone();
    tree.documents.iter_mut().for_each(encrypt_node);
    let meta = metadata();
    let encrypted = write(&tree, Some(&meta), Some(&plain));
    let enc = parse(&encrypted);
    assert_eq!(
        enc.metadata.as_ref(),
        Some(&meta),
        "metadata read back\n{encrypted}"
    );
    let mut back = enc.tree.clone();
    back.documents.iter_mut().for_each(decrypt_node);
    assert_eq!(
        back, plain.tree,
        "tree after encrypt + decrypt\n{encrypted}"
    );
    let decrypted = write(&back, None, Some(&enc));
    assert_eq!(
        decrypted, original,
        "byte-exact round trip; encrypted was:\n{encrypted}"
    );
    // Writing an unchanged tree over its own file changes nothing.
    assert_eq!(write(&plain.tree, None, Some(&plain)), original);
    encrypted
}

const RICH: &str = r#"# top comment

# before a
a: 1 # inline a
b: # inline after key
  # head c
  c: "double \"quoted\" é"
  d: 'single ''q'''
  # foot of b
# between
e:
    f: 1.0
    g: 0x1F
    h: true
    i: ~
    j:
    k: ""
    l: 2024-01-02T03:04:05Z
    m: 2024-01-02
    n: 1e3
list:
  - x # inline x
  # between items
  - y
  - k: v # inline kv
    k2: v2
    # foot kv
  # after item
  - - n1
    - n2
  - |
    block in list
block_lit: |
  line one
    indented
  line three

block_strip: |-
  stripped
block_keep: |+
  kept

block_folded: >
  folded on one line
flow_map: {a: 1, b: two} # flow comment
flow_seq: [1, 2, "three"]
unicode: "héllo wörld ✓"
empty_str: ''
spaces: trailing spaces here   
anchor: &anc
  inner: value
"quoted key": plain value
# final comment
"#;

#[test]
fn rich_sample_round_trips_byte_for_byte() {
    let enc = assert_round_trip(RICH);
    // The layout is kept: comments encrypted in place, inline ones still inline.
    assert!(enc.starts_with("#ENC[AES256_GCM,data:"), "{enc}");
    assert!(enc.contains("a: ENC[AES256_GCM,"), "{enc}");
    assert!(
        enc.contains(",type:int] #ENC[AES256_GCM,"),
        "inline comment stays inline:\n{enc}"
    );
    assert!(enc.contains("block_lit: |\n  ENC[AES256_GCM,"), "{enc}");
    assert!(enc.ends_with("version: 3.11.0\n"), "{enc}");
}

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/yaml/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The tree with values blanked and comments reduced to a marker, so that a plain file and its
/// sops-encrypted form can be compared item by item (sops writes comments inside lists as
/// `- ENC[...,type:comment]` items).
fn shape(node: &Node) -> Node {
    match node {
        Node::Map(items) => Node::Map(
            items
                .iter()
                .map(|i| match i {
                    Item::Pair(k, v) => Item::Pair(k.clone(), shape(v)),
                    Item::Comment(_) => Item::Comment(String::new()),
                })
                .collect(),
        ),
        Node::Seq(items) => Node::Seq(items.iter().map(shape).collect()),
        Node::Comment(_) => Node::Comment(String::new()),
        Node::Scalar(s) if s.text().is_some_and(|t| t.ends_with(",type:comment]")) => {
            Node::Comment(String::new())
        }
        Node::Scalar(_) => Node::str(""),
    }
}

/// Comments are attached where sops 3.11 attaches them (their AAD is their parent's path): the
/// fixtures were encrypted by the real sops, whose output puts every comment under its parent.
#[test]
fn comments_are_placed_where_sops_places_them() {
    for name in ["c1", "c2", "c3"] {
        let plain = parse(&fixture(&format!("{name}.yaml")));
        let enc = parse(&fixture(&format!("{name}.sops.yaml")));
        let a: Vec<Node> = plain.tree.documents.iter().map(shape).collect();
        let b: Vec<Node> = enc.tree.documents.iter().map(shape).collect();
        assert_eq!(a, b, "{name}: comment placement differs from sops");
        // And sops' own rendering of its tree is what the canonical writer produces.
        let canonical = write(&plain.tree, None, None);
        assert_eq!(
            canonical,
            fixture(&format!("{name}.sops-decrypted.yaml")),
            "{name}"
        );
    }
}

/// Kinds observed with `sops encrypt` (sops 3.11.0) on tests/fixtures/yaml/types.yaml: the
/// `type:` of each encrypted value, `null` for values sops leaves as null. `int_uint`
/// (18446744073709551615) is not in the fixture: sops 3.11 fails on it ("unknown type: uint64").
const SOPS_TYPES: &[(&str, &str)] = &[
    ("null_tilde", "null"),
    ("null_word", "null"),
    ("null_cap", "null"),
    ("null_upper", "null"),
    ("null_empty", "null"),
    ("null_nUll", "str"),
    ("bool_true", "bool"),
    ("bool_True", "bool"),
    ("bool_TRUE", "bool"),
    ("bool_false", "bool"),
    ("bool_yes", "str"),
    ("bool_on", "str"),
    ("bool_tRue", "str"),
    ("int_dec", "int"),
    ("int_neg", "int"),
    ("int_plus", "int"),
    ("int_hex", "int"),
    ("int_oct", "int"),
    ("int_oct_old", "int"),
    ("int_bin", "int"),
    ("int_under", "int"),
    ("int_big", "int"),
    ("int_huge", "float"),
    ("int_08", "float"),
    ("float_dec", "float"),
    ("float_one", "float"),
    ("float_exp", "float"),
    ("float_dot", "float"),
    ("float_negdot", "float"),
    ("float_trail", "float"),
    ("float_inf", "float"),
    ("float_ninf", "float"),
    ("float_nan", "float"),
    ("float_Inf", "float"),
    ("float_big", "str"),
    ("float_under", "float"),
    ("time_full", "time"),
    ("time_nano", "time"),
    ("time_date", "time"),
    ("time_space", "time"),
    ("time_short", "time"),
    ("str_plain", "str"),
    ("str_dq", "str"),
    ("str_sq", "str"),
    ("str_block", "str"),
    ("tag_str", "str"),
    ("tag_int", "int"),
    ("tag_float", "float"),
    ("tag_bool", "bool"),
    ("tag_ts", "time"),
    ("tag_custom", "str"),
    ("str_hexbad", "str"),
    ("str_dash", "str"),
    ("str_colon", "str"),
];

#[test]
fn scalars_are_typed_as_sops_types_them() {
    let plain = parse(&fixture("types.yaml"));
    let enc = parse(&fixture("types.sops.yaml"));
    let doc = &plain.tree.documents[0];
    let enc_doc = &enc.tree.documents[0];
    for (key, want) in SOPS_TYPES {
        let got = doc.get(key).and_then(Node::as_scalar).expect(key);
        assert_eq!(got.kind.sops_name(), *want, "{key}");
        // The fixture itself says the same.
        let sops = enc_doc.get(key).and_then(Node::as_scalar).expect(key);
        let sops_kind = match sops.kind {
            Kind::Null => "null".to_string(),
            _ => {
                let t = sops.text().expect("text");
                t[t.rfind("type:").expect("type") + 5..t.len() - 1].to_string()
            }
        };
        assert_eq!(sops_kind, *want, "{key} in the sops fixture");
    }
    let pairs = match doc {
        Node::Map(items) => items.len(),
        _ => 0,
    };
    assert_eq!(pairs, SOPS_TYPES.len(), "every fixture key is in the table");
    // Non-string values keep their source text.
    assert_eq!(
        doc.get("float_one")
            .and_then(Node::as_scalar)
            .and_then(Scalar::text),
        Some("1.0")
    );
    assert_eq!(
        doc.get("int_hex")
            .and_then(Node::as_scalar)
            .and_then(Scalar::text),
        Some("0x1F")
    );
}

#[test]
fn indent_four_multi_document_and_crlf_files_round_trip() {
    let four = "# config\nserver:\n    host: example.org\n    port: 8080\n    tls:\n        enabled: true\n        cert: |-\n            -----BEGIN-----\n            abc\n            -----END-----\n    users:\n        - alice\n        - bob # admin\n";
    let enc = assert_round_trip(four);
    assert!(enc.contains("\nsops:\n    age:\n        - recipient: age1qqqq\n          enc: |\n            -----BEGIN AGE"), "metadata in the file's indentation:\n{enc}");

    let multi = "a: 1\n---\n# second\nb: two\n...\n---\nc: [x, y]\n";
    let enc = assert_round_trip(multi);
    assert_eq!(
        enc.matches("\nsops:\n").count(),
        3,
        "one sops block per document:\n{enc}"
    );

    let crlf = "a: 1\r\nb:\r\n  c: 'x' # note\r\n  d: |\r\n    one\r\n    two\r\n";
    let enc = assert_round_trip(crlf);
    assert!(
        !enc.replace("\r\n", "").contains('\n'),
        "CRLF kept everywhere:\n{enc:?}"
    );
}

#[test]
fn files_without_final_newline_and_odd_layouts_round_trip() {
    assert_round_trip("a: 1");
    assert_round_trip("key:   value   # spaced\n\n\n\nother: 'x'   \n");
    assert_round_trip("list:\n- a\n- b\n# after indentless\nnext: 1\n");
    assert_round_trip("json_like: {\"a\": \"b\", \"c\": [1, 2.5, true, null]}\n");
    assert_round_trip("---\nonly: doc\n");
    assert_round_trip("a: \"escapes \\t\\n\"\n");
    // What a value alone cannot rebuild travels as its layout.
    assert_round_trip("a: \"escapes \\t\\u00e9\\n\"\nb: 'it''s\n  folded'\n");
    assert_round_trip(
        "folded: >\n  a long line\n  wrapped here\n\n  new paragraph\nplain: multi\n  line plain\n",
    );
    assert_round_trip("lit: |\n  one\n    \n  three\n");
    assert_round_trip("deep:\n  - - - x\n      - y\n  - k: |+\n      kept\n\n\n  - z\n");
    assert_round_trip("lead: |2\n    indented first line\n  second\n");
    assert_round_trip("yes_str: y\nnum_str: '1'\nnested: {a: {b: c}}\n");
}

#[test]
fn unchanged_aliases_are_kept_and_changed_ones_written_out() {
    let text = "base: &b\n  x: 1\ncopy: *b\nname: &n joe\nwho: *n\n";
    let p = parse(text);
    // The same data (the copy's first value also carries the alias, in its layout).
    let x = |key: &str| {
        p.tree.documents[0]
            .get(key)
            .and_then(|m| m.get("x"))
            .and_then(Node::as_scalar)
            .map(|s| s.value.clone())
    };
    assert_eq!(x("copy"), x("base"));
    assert_eq!(write(&p.tree, None, Some(&p)), text);
    let mut tree = p.tree.clone();
    if let Some(Node::Map(items)) = tree.documents[0].get_mut("copy") {
        items.push(Item::Pair("w".into(), Node::str("2")));
    }
    *tree.documents[0].get_mut("who").expect("who") = Node::str("ann");
    assert_eq!(
        write(&tree, None, Some(&p)),
        "base: &b\n  x: 1\ncopy:\n  x: 1\n  w: \"2\"\nname: &n joe\nwho: ann\n"
    );
}

#[test]
fn added_and_removed_entries_leave_the_rest_untouched() {
    let text = "# head\na: 1 # one\n\nb:\n  # about c\n  c: 2\n  d: 3\nlist:\n  - x\n  - y # why\n  - z\ne: last\n";
    let p = parse(text);
    let mut tree = p.tree.clone();
    let doc = &mut tree.documents[0];
    // Remove `c` with its comment, add `f` to `b`, remove the middle list item, add one.
    if let Some(Node::Map(items)) = doc.get_mut("b") {
        items.retain(|i| matches!(i, Item::Pair(k, _) if k != "c"));
        items.push(Item::Pair("f".into(), Node::str("new value")));
    }
    if let Some(Node::Seq(items)) = doc.get_mut("list") {
        items.remove(1); // the `# why` comment, which sops puts before `y`
        items.remove(1); // y
        items.push(Node::str("w"));
    }
    doc.remove("e");
    if let Node::Map(items) = doc {
        items.push(Item::Pair(
            "g".into(),
            Node::Map(vec![Item::Pair("h".into(), Node::str("i"))]),
        ));
    }
    let out = write(&tree, None, Some(&p));
    assert_eq!(
        out,
        "# head\na: 1 # one\n\nb:\n  d: 3\n  f: new value\nlist:\n  - x\n  - z\n  - w\ng:\n  h: i\n"
    );
    // Adding a key to a file without a final newline.
    let p = parse("a: 1");
    let mut tree = p.tree.clone();
    if let Node::Map(items) = &mut tree.documents[0] {
        items.push(Item::Pair("b".into(), Node::str("2")));
    }
    assert_eq!(write(&tree, None, Some(&p)), "a: 1\nb: \"2\"");
}

#[test]
fn metadata_is_appended_and_removed_without_touching_the_rest() {
    let text = "a: 1   \n# trailing comment\n";
    let p = parse(text);
    let with = write(&p.tree, Some(&metadata()), Some(&p));
    assert_eq!(
        with,
        "a: 1   \n# trailing comment\nsops:\n    age:\n        - recipient: age1qqqq\n          enc: |\n            -----BEGIN AGE ENCRYPTED FILE-----\n            YWdl\n            -----END AGE ENCRYPTED FILE-----\n    lastmodified: \"2026-11-28T22:45:52Z\"\n    mac: ENC[AES256_GCM,data:4d4143,iv:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,tag:BBBBBBBBBBBBBBBBBBBBBB==,type:str]\n    unencrypted_suffix: _unencrypted\n    version: 3.11.0\n"
    );
    let back = parse(&with);
    assert_eq!(back.metadata, Some(metadata()));
    assert_eq!(back.tree, p.tree);
    assert_eq!(write(&back.tree, None, Some(&back)), text);
    // Rewriting the metadata replaces the block.
    let mut meta = metadata();
    *meta.get_mut("lastmodified").expect("lastmodified") = Node::str("2027-01-01T00:00:00Z");
    let again = write(&back.tree, Some(&meta), Some(&back));
    assert_eq!(
        again,
        with.replace("2026-11-28T22:45:52Z", "2027-01-01T00:00:00Z")
    );
}

#[test]
fn canonical_output_follows_go_yaml() {
    let tree = Tree {
        documents: vec![Node::Map(vec![
            Item::Comment(" hello".into()),
            Item::Pair("plain".into(), Node::str("text")),
            Item::Pair("needs_quotes".into(), Node::str("a: b")),
            Item::Pair("looks_int".into(), Node::str("123")),
            Item::Pair("old_bool".into(), Node::str("yes")),
            Item::Pair("empty".into(), Node::str("")),
            Item::Pair("tab".into(), Node::str("a\tb")),
            Item::Pair("multi".into(), Node::str("l1\nl2\n")),
            Item::Pair("int".into(), Node::Scalar(Scalar::new(Kind::Int, "42"))),
            Item::Pair("nothing".into(), Node::Scalar(Scalar::null())),
            Item::Pair("emptymap".into(), Node::Map(vec![])),
            Item::Pair("emptyseq".into(), Node::Seq(vec![])),
            Item::Pair(
                "seq".into(),
                Node::Seq(vec![
                    Node::Comment(" c".into()),
                    Node::str("x"),
                    Node::Map(vec![
                        Item::Pair("k".into(), Node::str("v")),
                        Item::Pair("k2".into(), Node::str("v2")),
                    ]),
                ]),
            ),
        ])],
    };
    let out = write(&tree, None, None);
    assert_eq!(
        out,
        "# hello\nplain: text\nneeds_quotes: 'a: b'\nlooks_int: \"123\"\nold_bool: \"yes\"\nempty: \"\"\ntab: \"a\\tb\"\nmulti: |\n    l1\n    l2\nint: 42\nnothing: null\nemptymap: {}\nemptyseq: []\nseq:\n    # c\n    - x\n    - k: v\n      k2: v2\n"
    );
    assert_eq!(parse(&out).tree, tree);
}

#[test]
fn syntax_errors_carry_line_and_column() {
    for (text, line) in [
        ("a: 1\nb: [1, 2\n", 3),
        ("a: 1\n  b: 2\n", 2),
        ("a: \"unterminated\n", 1),
        ("a: 1\na: 2\n", 2),
        ("- a\n- b\n", 1),
        ("just a scalar\n", 1),
    ] {
        match store().parse(text.as_bytes()) {
            Err(StoreError::Syntax {
                line: Some(l),
                column: Some(c),
                ..
            }) => {
                assert_eq!(l, line, "{text:?}");
                assert!(c >= 1, "{text:?}");
            }
            other => panic!("{text:?}: {:?}", other.map(|_| ())),
        }
    }
    assert!(store().parse(b"a: \xff\n").is_err());
}

/// sops 3.11 decrypts a block scalar holding one `ENC[...]` line (fixture made by hand from a
/// sops-encrypted file and decrypted with `sops decrypt` to `block: |\n    line one\n    line
/// two\n`, `plain: secret`, `strip: x`); reading it gives the ENC text (plus the clipped line
/// break) and writing decrypted values back keeps the block's layout.
#[test]
fn enc_in_block_scalar_is_read_and_written_back_in_place() {
    let enc = parse(&fixture("enc-in-block.sops.yaml"));
    let doc = &enc.tree.documents[0];
    let block = doc
        .get("block")
        .and_then(Node::as_scalar)
        .and_then(Scalar::text)
        .expect("block");
    assert!(
        block.starts_with("ENC[AES256_GCM,") && block.ends_with("type:str]\n"),
        "{block}"
    );
    let strip = doc
        .get("strip")
        .and_then(Node::as_scalar)
        .and_then(Scalar::text)
        .expect("strip");
    assert!(strip.ends_with("type:str]"), "{strip}");
    let mut tree = enc.tree.clone();
    *tree.documents[0].get_mut("block").expect("block") = Node::str("line one\nline two\n");
    *tree.documents[0].get_mut("plain").expect("plain") = Node::str("secret");
    *tree.documents[0].get_mut("strip").expect("strip") = Node::str("x");
    assert_eq!(
        write(&tree, None, Some(&enc)),
        "block: |\n    line one\n    line two\nplain: |-\n    secret\nstrip: |-\n    x\n"
    );
}

/// 20,000 keys (about 1 MB): parse + write must stay well under 50 ms in release builds.
/// Run with `cargo test --release -p enseal-sops stores::yaml::tests::large -- --ignored --nocapture`.
#[test]
#[ignore = "timing; run in release"]
fn large_file_parses_and_writes_fast() {
    let mut text = String::from("# secrets\napiVersion: v1\nkind: Secret\ndata:\n");
    for i in 0..20_000 {
        if i % 100 == 0 {
            text.push_str(&format!("  # group {i}\n"));
        }
        text.push_str(&format!(
            "  key_{i:05}: value-{i:05}-abcdefghijklmnopqrstuvwxyz-0123\n"
        ));
    }
    let mut tree = parse(&text).tree;
    tree.documents.iter_mut().for_each(encrypt_node);
    let meta = metadata();
    let mut best = std::time::Duration::MAX;
    for _ in 0..5 {
        let start = std::time::Instant::now();
        let p = parse(&text);
        let parsed = start.elapsed();
        let out = write(&tree, Some(&meta), Some(&p));
        let total = start.elapsed();
        eprintln!(
            "{} bytes, 20000 keys: parse {parsed:?}, parse+write {total:?} ({} bytes out)",
            text.len(),
            out.len()
        );
        best = best.min(total);
    }
    assert!(best < std::time::Duration::from_millis(50), "{best:?}");
}

/// sops' comments inside lists are `- ENC[...,type:comment]` items; in the tree they are comments.
fn list_comments_as_comments(node: &mut Node) {
    match node {
        Node::Map(items) => items.iter_mut().for_each(|i| {
            if let Item::Pair(_, v) = i {
                list_comments_as_comments(v)
            }
        }),
        Node::Seq(items) => items.iter_mut().for_each(|n| {
            if let Node::Scalar(s) = n {
                if let Some(t) = s.text().filter(|t| t.ends_with(",type:comment]")) {
                    *n = Node::Comment(t.to_string());
                    return;
                }
            }
            list_comments_as_comments(n)
        }),
        _ => {}
    }
}

/// The values and comments sops encrypted, written into the plain file's own layout: the real
/// sops decrypts the results (checked with `sops decrypt` on the committed fixtures, which give
/// the same as cN.sops-decrypted.yaml), so every comment kept its sops AAD at its original place.
#[test]
fn sops_encrypted_values_written_in_the_original_layout_match_the_checked_fixtures() {
    for name in ["c1", "c2", "c3"] {
        let plain = parse(&fixture(&format!("{name}.yaml")));
        let enc = parse(&fixture(&format!("{name}.sops.yaml")));
        let mut tree = enc.tree.clone();
        tree.documents
            .iter_mut()
            .for_each(list_comments_as_comments);
        let out = write(&tree, enc.metadata.as_ref(), Some(&plain));
        let file = format!("{name}.enseal-layout.sops.yaml");
        if std::env::var_os("ENSEAL_WRITE_FIXTURES").is_some() {
            let path = format!("{}/tests/fixtures/yaml/{file}", env!("CARGO_MANIFEST_DIR"));
            std::fs::write(path, &out).expect("write fixture");
        }
        assert_eq!(out, fixture(&file), "{name}");
    }
}

/// Every prefix of the samples (cut anywhere, mostly invalid or odd YAML) either fails with an
/// error or round-trips byte for byte; nothing panics.
#[test]
fn every_prefix_of_the_samples_errors_or_round_trips() {
    let mut checked = 0;
    let samples = [
        RICH.to_string(),
        fixture("c1.yaml"),
        fixture("c2.yaml"),
        fixture("c3.yaml"),
        fixture("types.yaml"),
    ];
    for sample in &samples {
        for (cut, _) in sample.char_indices().chain([(sample.len(), ' ')]) {
            let text = &sample[..cut];
            let Ok(p) = store().parse(text.as_bytes()) else {
                continue;
            };
            if p.tree.documents.is_empty() {
                continue;
            }
            assert_eq!(
                write(&p.tree, None, Some(&p)),
                text,
                "unchanged write at {cut}"
            );
            let empty_doc = p.tree.documents.iter().any(|d| *d == Node::Map(vec![]));
            if empty_doc || text.contains("*anc") {
                // Alias sites are written out in full once encrypted, and a document that is just
                // `null` comes back empty: the same data, not the same bytes.
                let (_, decrypted) = encrypt_then_decrypt(text);
                let non_empty = |t: &Tree| -> Vec<Node> {
                    let empty = Node::Map(vec![]);
                    t.documents
                        .iter()
                        .filter(|d| **d != empty)
                        .cloned()
                        .collect()
                };
                assert_eq!(
                    non_empty(&parse(&decrypted).tree),
                    non_empty(&p.tree),
                    "{decrypted}"
                );
            } else {
                assert_round_trip(text);
            }
            checked += 1;
        }
    }
    assert!(checked > 1000, "{checked}");
}

/// `decrypt --extract` of a list or a number writes a lone value; the expected texts are what
/// `sops decrypt --extract '["k"]'` (sops 3.11) printed for these values.
#[test]
fn lone_values_are_written_as_go_yaml_marshals_them() {
    let doc = parse(concat!(
        "nested:\n  - - a\n    - b\n  - - c\n",
        "lmaps:\n  - name: x\n    v: 1\n  - name: y\n    sub:\n      k: v\n",
        "num: 42\n",
        "emptyl: []\n",
        "multi:\n  - |\n    line1\n    line2\n  - \"quoted: x\"\n  - 'true'\n",
        "seqc:\n  # a comment\n  - a\n  - b\n",
        "deep:\n  - - - x\n  - {a: b}\n  - []\n",
        "nul: null\n",
        "boo: true\n",
    ))
    .tree
    .documents
    .remove(0);
    for (key, sops) in [
        ("nested", "- - a\n  - b\n- - c\n"),
        (
            "lmaps",
            "- name: x\n  v: 1\n- name: \"y\"\n  sub:\n    k: v\n",
        ),
        ("num", "42\n"),
        ("emptyl", "[]\n"),
        (
            "multi",
            "- |\n  line1\n  line2\n- 'quoted: x'\n- \"true\"\n",
        ),
        ("seqc", "# a comment\n- a\n- b\n"),
        ("deep", "- - - x\n- a: b\n- []\n"),
        ("nul", "null\n"),
        ("boo", "true\n"),
    ] {
        let value = doc.get(key).expect(key).clone();
        let tree = Tree {
            documents: vec![value],
        };
        assert_eq!(write(&tree, None, None), sops, "{key}");
    }
    let text = Tree {
        documents: vec![Node::str("two\nlines")],
    };
    assert_eq!(write(&text, None, None), "|-\n    two\n    lines\n");
    // Where go-yaml writes `|4` two columns in (which no parser reads back), the indicator
    // says where the content really is.
    let lead = Node::Map(vec![Item::Pair(
        "l".into(),
        Node::Seq(vec![Node::str("  lead\nx\n"), Node::str("plain\nx")]),
    )]);
    let tree = Tree {
        documents: vec![lead],
    };
    let out = write(&tree, None, None);
    assert_eq!(
        out,
        "l:\n    - |2\n        lead\n      x\n    - |-\n      plain\n      x\n"
    );
    assert_eq!(parse(&out).tree, tree);
    // sops metadata only ever sits in a mapping, and reading still wants one.
    let list = Tree {
        documents: vec![Node::Seq(vec![Node::str("a")])],
    };
    assert!(store()
        .write(&list, Some(&metadata()), None, &WriteOptions::default())
        .is_err());
    assert!(store().parse(b"- a\n").is_err());
}

/// sops writes a comment inside a list as a `- ENC[...,type:comment]` item and its cipher gives a
/// comment back; reading such a file must give a comment, or decrypting it fails on the type.
#[test]
fn encrypted_comment_items_of_a_list_are_read_as_comments() {
    let enc = "ENC[AES256_GCM,data:AAAA,iv:BBBB,tag:CCCC,type:comment]";
    let doc = parse(&format!("l:\n    - {enc}\n    - a\n"))
        .tree
        .documents
        .remove(0);
    assert_eq!(
        doc.get("l"),
        Some(&Node::Seq(vec![Node::Comment(enc.into()), Node::str("a")]))
    );
}

/// Everything the writer relies on in a parsed document, as text to compare.
fn dump(docs: &[parse::DocSource], text: &str) -> String {
    use parse::{SBody, SItem, SNode};
    fn node(n: &SNode, text: &str, out: &mut String) {
        out.push_str(&format!("<{} {} {}", n.start, n.end, n.extent));
        match &n.body {
            SBody::Scalar(s) => out.push_str(&format!(
                " {:?} {} {:?} {:?} {:?}>",
                s.style,
                s.str_tag,
                n.scalar_value(text),
                s.block.as_ref().map(|b| (
                    b.header,
                    b.header_line_end,
                    b.content_indent,
                    b.parent_indent
                )),
                ()
            )),
            SBody::Alias(v, _) => out.push_str(&format!(" alias {v:?}>")),
            SBody::Map(c) | SBody::Seq(c) => {
                out.push_str(&format!(" {} {} [", c.flow, c.indent));
                for item in &c.items {
                    match item {
                        SItem::Pair {
                            key,
                            start,
                            colon,
                            value,
                        } => {
                            out.push_str(&format!("{key:?} {start} {colon} "));
                            node(value, text, out);
                        }
                        SItem::Entry {
                            start,
                            value,
                            enc_comment,
                        } => {
                            out.push_str(&format!("- {start} {enc_comment} "));
                            node(value, text, out);
                        }
                        SItem::Comment { hash, end, inline } => {
                            out.push_str(&format!("# {hash} {end} {inline}"))
                        }
                    }
                    out.push_str(", ");
                }
                out.push_str("]>");
            }
        }
    }
    let mut out = String::new();
    for d in docs {
        out.push_str(&format!("doc {:?} {:?} ", d.sops_item, d.indent));
        node(&d.root, text, &mut out);
        out.push('\n');
    }
    out
}

fn dump_result(r: &Result<Vec<parse::DocSource>, StoreError>, text: &str) -> String {
    match r {
        Ok(docs) => dump(docs, text),
        Err(e) => format!("error: {e}"),
    }
}

/// Reading `text` with its encrypted values masked must give what reading it as it is gives,
/// spans included, or else say that a masked value did not come back whole (the reading is then
/// redone unmasked); errors are always reported from the unmasked reading. Returns whether the
/// masked reading was used.
fn assert_masking_is_invisible(text: &str) -> bool {
    let (plain, masked) = parse::both_readings(text);
    let expected = dump_result(&plain, text);
    let used = match masked {
        Some(Ok((docs, true))) => {
            assert_eq!(dump(&docs, text), expected, "masked reading of:\n{text}");
            true
        }
        _ => false,
    };
    // The store's own reading is the same whatever path it took.
    let via_store = parse::parse(text.as_bytes().to_vec()).map(|s| s.docs);
    assert_eq!(dump_result(&via_store, text), expected, "{text}");
    used
}

#[test]
fn masked_encrypted_values_read_exactly_like_the_original_text() {
    let enc = |t: &str| fake_enc(t.as_bytes(), "str");
    let v = enc("secret");
    let c = fake_enc(b" note", "comment");
    // Typical encrypted files: the masked reading is used.
    for text in [
        assert_round_trip(RICH),
        format!("a: {v}\nb:\n    - {v}\n    - {v} # x\n    - {c}\n#{c}\nc:\n    d: {v}\n"),
        format!("a: {v}\r\nb:\r\n  - {v}\r\n"),
        format!("é: {v}\nü:\n  - {v} # ✓\n  - k: {v}\n    k2: ü\n---\nx: {v}\n"),
    ] {
        assert!(assert_masking_is_invisible(&text), "{text}");
    }
    // Things that look like masked values but are not plain values of their own: in quoted,
    // block and multi-line plain scalars, comments, flow collections; as keys; with tags.
    for text in [
        format!("a: \"x\n  b: {v}\n  y\"\n"),
        format!("a: 'x\n  b: {v}\n  y'\n"),
        format!("a: |\n  b: {v}\n"),
        format!("a: >-\n  - {v}\nb: 1\n"),
        format!("# b: {v}\na: 1\n"),
        format!("a: 1 # b: {v}\n"),
        format!("a: {v}\n  continued\n"),
        format!("a: {{\n  b: {v}\n  }}\n"),
        format!("a: [\n  - {v}\n  ]\n"),
        format!("a: [x,\n  b: {v}\n  ]\n"),
        format!("a: !!str\n  - {v}\n"),
        format!("- {v}\n"),
        format!("{v}\n"),
        format!("a:\n  - {v}\n  b: {v}\n"),
        format!("a: {v}\na: {v}\n"),
        format!("a: - {v}\n"),
        format!("a: b: {v}\n"),
        format!("a: {v}\n b: {v}\n"),
    ] {
        assert_masking_is_invisible(&text);
    }
    // Every prefix of an encrypted file (values cut anywhere) reads or fails the same way.
    let text = assert_round_trip(RICH);
    for cut in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
        assert_masking_is_invisible(&text[..cut]);
    }
}

/// saphyr-parser's events for `text`, with the indices of their spans.
fn saphyr_events(text: &str) -> Option<Vec<(String, usize, usize)>> {
    let mut out = Vec::new();
    for ev in saphyr_parser::Parser::new_from_str(text) {
        let (event, span) = ev.ok()?;
        out.push((format!("{event:?}"), span.start.index(), span.end.index()));
    }
    Some(out)
}

/// The fast reader's events for `text`, followed by saphyr-parser's for the rest of the text
/// (the way `Builder::run` joins them).
fn joined_events(text: &str) -> Option<Vec<(String, usize, usize)>> {
    let end = super::fast::prefix_end(text)?;
    let mut out: Vec<_> = super::fast::Events::new(text, end)
        .map(|(e, s)| (format!("{e:?}"), s.start.index(), s.end.index()))
        .collect();
    if end < text.len() {
        let rest = saphyr_events(&text[end..])?;
        out.extend(
            rest.into_iter()
                .skip(3)
                .map(|(e, s, t)| (e, s + end, t + end)),
        );
    }
    Some(out)
}

/// A small deterministic generator of YAML-ish documents mixing the lines the fast reader
/// reads with every kind of line it leaves to saphyr-parser (and some invalid ones).
struct Gen(u64);

impl Gen {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.next(from.len())]
    }

    fn mapping(&mut self, indent: usize, depth: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        let enc = fake_enc(b"x", "str");
        let entries = 1 + self.next(5);
        for i in 0..entries {
            match self.next(8) {
                0 => out.push('\n'),
                1 => out.push_str(&format!("{}# note {i}\n", " ".repeat(self.next(6)))),
                2 => out.push_str(&format!("{pad}   \n")),
                _ => {}
            }
            let key = format!(
                "{}{i}",
                self.pick(&["k", "SECRET_", ".docker", "a/b", "x-y", "_u", "1", "true"])
            );
            // Rarely something the fast reader does not read as a key.
            let key = match self.next(25) {
                0 => format!("'{key}'"),
                1 => format!("{key} "),
                2 => format!("? {key}\n{pad}"),
                _ => key,
            };
            let value = match self.next(14) {
                0..=4 => format!(" {enc}"),
                5 => format!(
                    " {}",
                    self.pick(&["v", "v w", "1.5", "0x1F", "null", "a=b+c/d", "u@h:1"])
                ),
                6 => format!(" {enc} # c"),
                7 => String::new(),
                8 => " # only a comment".to_string(),
                9 => format!(
                    " {}",
                    self.pick(&[
                        "'q'", "\"q\"", "[1, 2]", "{a: b}", "~", "-1", "&a x", "b: c", "x#y"
                    ])
                ),
                10 => format!(" |\n{pad}  line\n{pad}  {enc}"),
                11 => format!("\n{pad}  - {enc}\n{pad}  - w"),
                _ if depth < 3 => {
                    let mut nested = String::from("\n");
                    let step = [2, 4, 1][self.next(3)];
                    self.mapping(indent + step, depth + 1, &mut nested);
                    nested.pop();
                    nested
                }
                _ => format!(" {enc}"),
            };
            out.push_str(&format!("{pad}{key}:{value}\n"));
        }
        // A wrongly indented line, now and then.
        if self.next(40) == 0 {
            out.push_str(&format!("{pad} bad: {enc}\n"));
        }
    }

    fn document(&mut self) -> String {
        let mut out = String::new();
        if self.next(4) == 0 {
            out.push_str("# head\n\n");
        }
        self.mapping(0, 0, &mut out);
        match self.next(6) {
            0 => out.push_str("---\nb: 1\n"),
            1 => out.push_str("sops:\n    age:\n        - recipient: r\n          enc: |\n            x\n    version: 3.11.0\n"),
            2 => {
                out.pop();
            }
            _ => {}
        }
        out
    }
}

/// The fast reader and saphyr-parser agree on every generated document: the same events with
/// the same spans, and the same reading of the masked text as of the original.
#[test]
fn generated_documents_read_the_same_through_the_fast_reader() {
    let mut gen = Gen(0x9E37_79B9_7F4A_7C15);
    let (mut fast_whole, mut fast_part, mut masked_used) = (0, 0, 0);
    for _ in 0..3000 {
        let text = gen.document();
        let masked = super::mask::Masked::of(&text).map(|m| m.text);
        for t in std::iter::once(text.as_str()).chain(masked.as_deref()) {
            if let Some(joined) = joined_events(t) {
                match super::fast::prefix_end(t) {
                    Some(end) if end == t.len() => fast_whole += 1,
                    _ => fast_part += 1,
                }
                assert_eq!(Some(joined), saphyr_events(t), "events of:\n{t}");
            }
        }
        if assert_masking_is_invisible(&text) {
            masked_used += 1;
        }
    }
    // The generator exercises both the fast reader alone and its hand-over to saphyr-parser.
    assert!(fast_whole > 300, "{fast_whole}");
    assert!(fast_part > 300, "{fast_part}");
    assert!(masked_used > 1000, "{masked_used}");
}

/// Every comment of a tree with the AAD path sops encrypts it under (its parent mapping's or
/// list's path), in document order.
fn comment_paths(node: &Node, path: &str, out: &mut Vec<(String, String)>) {
    match node {
        Node::Map(items) => {
            for item in items {
                match item {
                    Item::Comment(c) => out.push((c.clone(), format!("{path}:"))),
                    Item::Pair(k, v) => {
                        let child = if path.is_empty() {
                            k.clone()
                        } else {
                            format!("{path}:{k}")
                        };
                        comment_paths(v, &child, out);
                    }
                }
            }
        }
        Node::Seq(items) => {
            for item in items {
                match item {
                    Node::Comment(c) => out.push((c.clone(), format!("{path}:"))),
                    other => comment_paths(other, path, out),
                }
            }
        }
        _ => {}
    }
}

/// Where sops 3.13.3 (and 3.11) puts comments that real files have, read off sops' own tree
/// (stores/yaml LoadPlainFile) for each of these documents: a comment's AAD is its parent's
/// path, so a comment placed elsewhere is one the other tool cannot decrypt.
#[test]
fn comments_next_to_flow_collections_sequences_and_document_starts_sit_where_sops_puts_them() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        // A comment line after an empty flow collection belongs to the mapping around it.
        ("a: {}\n# c\nb: 1\n", &[(" c", ":")]),
        ("n: [\n  \"a\"\n]\n# after\nm: 1\n", &[(" after", ":")]),
        // An inline comment after a flow collection is the collection's own first item.
        ("s:\n  a: []  # inline\n  b: 1\n", &[(" inline", "s:a:")]),
        // At the `-` column of a sequence indented under its key: the sequence's.
        ("a:\n  - 1\n  # c\nb: 1\n", &[(" c", "a:")]),
        (
            "h:\n  claims:\n    - name: data\n      size: 1\n    # - name: wal\n  x: 1\n",
            &[(" - name: wal", "h:claims:")],
        ),
        // At the `-` column of a sequence written at its key's column: the parent's, but the
        // sequence's in a file with CRLF line breaks.
        ("a:\n- 1\n# c\nb: 1\n", &[(" c", ":")]),
        (
            "x:\r\n  a:\r\n  - 1\r\n  # c\r\n  b: 1\r\n",
            &[(" c", "x:a:")],
        ),
        // Before the first `---`: the document's.
        ("# header\n---\na: 1\n", &[(" header", ":")]),
    ];
    assert_comments_at(cases);
}

/// go-yaml (so sops) reads a flow collection's lines at any indentation, a closing bracket at
/// its key's column included; saphyr-parser wants them deeper, so enseal indents them for it.
#[test]
fn flow_collections_with_lines_at_the_key_column_are_read_and_kept() {
    for text in [
        "n: [\n  \"a\"\n]\n",
        "b:\n  c: {\n  x: 1,\n  y: [1,\n2]\n  }\n",
        "h:\n  - [\n    1\n  ]\n  - []\n",
    ] {
        assert_round_trip(text);
    }
    let p = parse("n: [\n  \"a\"\n]\nm: 1\n");
    assert_eq!(
        p.tree.documents[0].get("n"),
        Some(&Node::Seq(vec![Node::str("a")]))
    );
    // Not a flow collection: still refused, at its own line and column.
    let Err(err) = store().parse(b"a:\n  b: 1\n c: 2\n") else {
        panic!("a mis-indented block mapping was read");
    };
    let err = err.to_string();
    assert!(err.contains("line 3"), "{err}");
}

/// A single-quoted value in a flow collection is encrypted double-quoted (its `ENC[...]`
/// needs quotes there), so its source text travels with it and it comes back single-quoted.
#[test]
fn single_quoted_values_in_flow_collections_come_back_single_quoted() {
    let text = "a: ['x', 'it''s', plain, \"dq\"]\nb:\n  - ['q']\n";
    let (encrypted, decrypted) = encrypt_then_decrypt(text);
    assert!(encrypted.contains("ENC["), "{encrypted}");
    assert_eq!(decrypted, text);
}

/// A block scalar that ends the file without a line break has no final line break to keep
/// (go-yaml, so sops, reads "line1\nline2"); it used to gain "\n" (and sops then saw `|-`).
#[test]
fn a_block_scalar_ending_the_file_without_a_line_break_has_none_in_its_value() {
    for (text, want) in [
        ("a: |\n  line1\n  line2", "line1\nline2"),
        ("a: |+\n  line1\n  line2", "line1\nline2"),
        ("a: >\n  line1\n  line2", "line1 line2"),
        ("a: |\n  line1\n  line2\n", "line1\nline2\n"),
    ] {
        let p = parse(text);
        let value = p.tree.documents[0].get("a").and_then(Node::as_scalar);
        assert_eq!(
            value.map(|s| &s.value[..]),
            Some(want.as_bytes()),
            "{text:?}"
        );
        assert_round_trip(text);
    }
}

/// `text` (sops-made, fake ciphertexts) decrypted and written back over itself.
fn write_decrypted(text: &str) -> String {
    let p = parse(text);
    let mut tree = p.tree.clone();
    for doc in &mut tree.documents {
        decrypt_node(doc);
    }
    write(&tree, None, Some(&p))
}

/// sops writes a comment in a list as an `- ENC[...,type:comment]` item; decrypted, it is a
/// comment line, also right after an item that ends with a flow collection (it came back as
/// `- # c`, a null item, after `- x: {}`).
#[test]
fn a_sops_comment_item_after_a_flow_collection_item_comes_back_as_a_comment_line() {
    let text = format!(
        "a:\n    - x: {{}}\n    - {}\n    - y: 2\n",
        fake_enc(b" c", "comment")
    );
    assert_eq!(
        write_decrypted(&text),
        "a:\n    - x: {}\n    # c\n    - y: 2\n"
    );
}

/// A sequence written at its key's column whose items are flow sequences (ansible's
/// changelogs/config.yaml): saphyr marks the block sequence's start on the first `[`, which was
/// taken for a flow sequence, and writing the `sops` entry after it panicked.
#[test]
fn an_indentless_sequence_of_flow_sequences_is_a_block_sequence() {
    let text = "a: 1\nsections:\n- ['x', 'y']\n- [z, w]\n";
    let p = parse(text);
    let Some(Node::Seq(items)) = p.tree.documents[0].get("sections") else {
        panic!("sections is not a sequence");
    };
    assert_eq!(items.len(), 2);
    assert!(matches!(&items[0], Node::Seq(inner) if inner.len() == 2));
    let (encrypted, decrypted) = encrypt_then_decrypt(text);
    assert!(encrypted.contains("sops:"), "{encrypted}");
    assert_eq!(decrypted, text);
}

/// sops writes `a: [] # c` as a list holding only an encrypted comment; decrypted, the list
/// must stay a list (`a: []` and the comment), not become null (`a:` and a comment line).
#[test]
fn a_sops_list_of_comments_only_decrypts_to_an_empty_list() {
    let text = format!(
        "s:\n    a:\n        - {}\n    b: 1\n",
        fake_enc(b" inline", "comment")
    );
    let out = write_decrypted(&text);
    assert_eq!(out, "s:\n    a: []\n        # inline\n    b: 1\n");
    // Read again (as sops reads that text), the comment line belongs to `s`; `a` is a list.
    let again = parse(&out);
    assert_eq!(
        again.tree.documents[0].get("s").and_then(|s| s.get("a")),
        Some(&Node::Seq(vec![]))
    );
}

/// The same after an item that ends in a nested mapping (GitHub workflow steps): the item's
/// extent stopped at its first key until the document ended, so the `-` of the comment item
/// was not found either.
#[test]
fn a_sops_comment_item_after_an_item_ending_in_a_nested_mapping_comes_back_as_a_comment_line() {
    let c = fake_enc(b" c", "comment");
    let text = format!(
        "steps:\n    - name: a\n      with:\n        x: 1\n    - {c}\n    - {c}\n    - name: b\n"
    );
    assert_eq!(
        write_decrypted(&text),
        "steps:\n    - name: a\n      with:\n        x: 1\n    # c\n    # c\n    - name: b\n"
    );
}

/// sops encrypts a typed value's canonical spelling (0o17 -> 15, 2024-01-01 ->
/// 2024-01-01T00:00:00Z, .nan -> NaN); enseal's own files give back the spelling written.
#[test]
fn typed_values_come_back_spelled_as_written() {
    let text = "a: 0o17\nb: 2024-01-01\nc: +1\nd: .nan\ne: -.inf\nf: 0x1F\ng: 1_000\nh: 017\n\
                i: 15\nj: 1.5\nk: 1e3\nl: [0o17, 2024-01-01]\nm: 2024-01-01T10:00:00Z\n";
    let (encrypted, decrypted) = encrypt_then_decrypt(text);
    assert_eq!(decrypted, text);
    // Canonical spellings need no layout: their ciphertext is a plain ENC[...].
    for line in encrypted.lines().filter(|l| l.starts_with(['i', 'j', 'm'])) {
        assert!(!line.contains('~'), "{line}");
    }
}

/// A float sops decrypts to NaN or ±Inf is written as YAML spells it (a plain `NaN` is a
/// string in YAML 1.2).
#[test]
fn nan_and_infinities_from_sops_are_written_as_yaml_spells_them() {
    for (plain, want) in [("NaN", ".nan"), ("+Inf", ".inf"), ("-Inf", "-.inf")] {
        assert_eq!(
            emit::inline_scalar(&Scalar::new(Kind::Float, plain), false),
            want
        );
    }
}

/// An alias to a scalar is encrypted as a copy of the value (what sops reads), and comes back
/// as the alias: `port: *containerPortName` in Helm values stayed expanded before.
#[test]
fn aliases_to_scalars_come_back_as_aliases() {
    let text = "a: &p http\nb: *p\nl:\n  - &q 'x y'\n  - *q\n";
    let (encrypted, decrypted) = encrypt_then_decrypt(text);
    assert!(!encrypted.contains("*p"), "{encrypted}");
    assert_eq!(decrypted, text);
}

/// A sequence at its key's column whose first item starts on the line after its `-` and a
/// comment (`-  # note` then a mapping): the sequence's column is the `-`'s, not the
/// mapping's, so a folded scalar item after it keeps its content lines (they were left behind
/// and the encrypted file did not parse).
#[test]
fn a_sequence_whose_first_item_follows_a_commented_dash_has_the_dash_column() {
    assert_round_trip("\"alpha 2\":\n-  # tag\n      url7: {}\n- >\n   gamma yes\nx: 1\n");
}

/// An alias in a region left in the clear (`_unencrypted`) to an anchor whose values are
/// encrypted cannot stay an alias: it would read back as the ciphertext (a MAC mismatch, and
/// sops would see ENC[...] text as the value).
#[test]
fn an_alias_in_a_clear_region_to_an_encrypted_anchor_is_written_out() {
    let text = "a: &a9\n  g: x\nb:\n  n_unencrypted:\n    <<: *a9\n";
    let (encrypted, decrypted) = encrypt_then_decrypt(text);
    assert!(!encrypted.contains("*a9"), "{encrypted}");
    let p = parse(&decrypted);
    assert_eq!(
        p.tree.documents[0]
            .get("b")
            .and_then(|b| b.get("n_unencrypted"))
            .and_then(|n| n.get("<<"))
            .and_then(|m| m.get("g"))
            .and_then(Node::as_scalar)
            .map(|s| &s.value[..]),
        Some(&b"x"[..])
    );
}

/// Found by the generated documents: enseal wrote encrypted files it could not read back.
/// A keep block scalar holding only a blank line, followed by the next item (the next item's
/// line set the scalar's indentation); a sequence at its key's column whose first item is a
/// nested sequence (its column was taken from the nested `-`), then a folded item.
#[test]
fn block_scalars_next_to_sequence_items_keep_their_content() {
    assert_round_trip("a:\n  - |+\n\n  - x\n");
    assert_round_trip("a:\n-\n  - e: 1\n- >-\n  key\n");
    assert_round_trip("a:\n- - x\n  - y\n- >\n  z\n");
}

/// A clear block scalar ending the file without a line break: the `sops` entry written after
/// it would give its value a final line break (the MAC then failed, exit 51, found by the
/// generated documents): its chomping becomes strip in the encrypted file.
#[test]
fn a_clear_block_scalar_ending_the_file_keeps_its_value_when_sops_follows() {
    let text = "replicas_unencrypted: >+\n  replicas y";
    let p = parse(text);
    let out = write(&p.tree, Some(&metadata()), Some(&p));
    let again = parse(&out);
    assert_eq!(
        again.tree.documents[0].get("replicas_unencrypted"),
        p.tree.documents[0]
            .get("replicas_unencrypted")
            .map(|n| match n {
                Node::Scalar(s) => Node::Scalar(Scalar::str(String::from_utf8_lossy(&s.value))),
                other => other.clone(),
            })
            .as_ref()
    );
    assert!(
        out.starts_with("replicas_unencrypted: >-\n  replicas y\n"),
        "{out}"
    );
}

/// Aliases to mappings and sequences and merge keys are encrypted as copies (what sops reads)
/// and come back as written; a copy changed since (`set`, `edit`) is written out instead.
#[test]
fn aliases_to_collections_and_merge_keys_come_back_as_written() {
    let text = "base: &b\n  x: 1\n  y: two\nsvc:\n  <<: *b\n  z: 3\nlist: &l\n  - a\n  - b\n\
                other: *l # note\nm: [*l, *b]\nn:\n  - *b\n";
    let (encrypted, decrypted) = encrypt_then_decrypt(text);
    assert!(
        !encrypted.contains("*b") && !encrypted.contains("*l"),
        "{encrypted}"
    );
    assert_eq!(decrypted, text);

    let p = parse("base: &b\n  x: 1\ncopy: *b\n");
    let mut tree = p.tree.clone();
    if let Some(Node::Map(items)) = tree.documents[0].get_mut("copy") {
        items.push(Item::Pair("w".into(), Node::str("2")));
    }
    let out = write(&tree, None, Some(&p));
    assert!(!out.contains("*b"), "{out}");
    assert!(out.contains("w: \"2\""), "{out}");
}

/// The copy an alias (or merge key) stands for holds the comments go-yaml gives the anchored
/// collection after its end, as sops' copy does: a foot placed when the next token comes (here
/// `# end` under the nested sequence, at a column of its own). Before, the copy was taken at
/// the collection's end, without them: enseal's encrypted file had fewer comments than sops'
/// (generated seeds 148 and 214, sops 3.11 and 3.13).
#[test]
fn an_aliased_collection_copy_keeps_the_comments_placed_after_its_end() {
    let text = "a: &x
  p:
    -
      - y
     # end
k: 1
m:
  <<: *x
";
    let p = parse(text);
    let comments = |node: Option<&Node>| {
        let mut n = 0;
        walk_comments(node.expect("present"), &mut n);
        n
    };
    fn walk_comments(node: &Node, n: &mut usize) {
        match node {
            Node::Comment(_) => *n += 1,
            Node::Map(items) => items.iter().for_each(|it| match it {
                Item::Pair(_, v) => walk_comments(v, n),
                Item::Comment(_) => *n += 1,
            }),
            Node::Seq(items) => items.iter().for_each(|v| walk_comments(v, n)),
            _ => {}
        }
    }
    let doc = &p.tree.documents[0];
    assert_eq!(comments(doc.get("a")), 1, "{doc:?}");
    assert_eq!(comments(doc.get("m")), 1, "the copy: {doc:?}");
    let (_, decrypted) = encrypt_then_decrypt(text);
    assert_eq!(decrypted, text);
}

/// A foot placed at the end of an anchored mapping (after its last entry) is not copied under
/// the merge key: the writer takes the comments after a copy's last entry for the file's when
/// it puts the alias back, so the copy's foot stayed behind, encrypted, in enseal's own
/// decryption (generated seed 47 with foot comments and merge keys). Such a foot is left out
/// of the copy as before (sops copies it; what is left of #12).
#[test]
fn a_foot_at_the_end_of_an_anchored_mapping_stays_out_of_its_copy() {
    let text = "a:\n  d: &x\n    k: 1\n    # end\n  b: 1\n  e:\n    <<: *x\n    c: 2\n";
    let (encrypted, decrypted) = encrypt_then_decrypt(text);
    assert_eq!(decrypted, text, "{encrypted}");
}

/// Lines of a flow collection at or left of their key's column are read by indenting them for
/// saphyr, one re-read of the whole text per line: a few are read (go-yaml accepts them), but a
/// file of thousands (20 KB here) took minutes. Beyond the bound the file is refused, quickly,
/// with an error that says what to change.
#[test]
fn flow_lines_at_their_keys_column_are_bounded() {
    let few = format!("top:\n  k: [\n{}  ]\nz: 1\n", "  a,\n".repeat(5));
    let p = parse(&few);
    assert_eq!(
        p.tree.documents[0].get("top").and_then(|t| t.get("k")),
        Some(&Node::Seq(vec![Node::str("a"); 5]))
    );
    let many = format!("top:\n  k: [\n{}  ]\nz: 1\n", "  a,\n".repeat(3000));
    match store().parse(many.as_bytes()) {
        Err(StoreError::Syntax { message, line, .. }) => {
            assert!(message.contains("lines of flow collections"), "{message}");
            assert!(line.is_some());
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

/// Own-line comments where block collections end go where go-yaml's parser hands them (see
/// `runs.rs`), each case cut down from a real file of tests/corpus and its paths read off
/// go-yaml v3.0.4's nodes as sops' stores/yaml turns them into its tree. Before, enseal placed
/// such comments by their column, and sops (3.11 and 3.13) left them as `#ENC[...]` when
/// decrypting enseal's files.
#[test]
fn comments_where_blocks_end_go_to_the_token_go_yaml_gives_them_to() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        // codeql.yml, elasticsearch values.yaml: a block ends before the first comment run at
        // its column (`yaml_parser_unroll_indent`); `# a` is the last value's foot (a blank
        // line ends it), `# b`, a foot ended by the dedent of what follows, waits past that
        // end for the next token.
        (
            "n:\n  http:\n    e: false\n    # a\n\n    # b\n\n  t:\n    e: false\n",
            &[(" a", "n:http:"), (" b", "n:")],
        ),
        (
            "steps:\n- name: x\n  with:\n    languages: 1\n    # A\n\n    # B\n\n# C\n- name: Run\n  if: y\n",
            &[(" A", "steps:with:"), (" B", "steps:"), (" C", "steps:")],
        ),
        // pihole compose.yaml: a run goes on over deeper lines; only a line less indented than
        // the block and not at the run's first column ends it (`yaml_parser_scan_comments`),
        // so the whole run heads `volumes`.
        (
            "s:\n  p:\n    env:\n      - X=1\n    #dns:\n      #- 1.1.1.1\n    volumes: v\n",
            &[("dns:", "s:p:"), ("- 1.1.1.1", "s:p:")],
        ),
        // promtail and kube-state-metrics values.yaml: both blocks end before `# c: 1`, the
        // first run at `a`'s column, so the second run (a foot ended by the dedent to `e`,
        // waiting for the token after the first run) goes with `e`, deeper lines and all.
        (
            "d:\n  a:\n    m: {}\n    # c: 1\n\n    # u:\n      # s\n\ne: 1\n",
            &[(" c: 1", "d:a:"), (" u:", ":"), (" s", ":")],
        ),
        // A block sequence's foot moves on to the key it is the value of (go-yaml's
        // `parser.mapping` in decode.go), which sops lists in the enclosing mapping.
        (
            "m:\n  - a: 1\n    b: 2\n    # foot in item\n  # foot list\nn: 1\n",
            &[(" foot in item", "m:"), (" foot list", ":")],
        ),
        // The end of the text is read as the `sops:` line that follows there in enseal's
        // encrypted file (go-yaml alone, at the end of the text, would give the run to the
        // document): the dedent makes the run a foot of `h`, where sops reads it in that file.
        ("g:\n  h: 5\n\n  # c\n", &[(" c", "g:")]),
        ("g:\n  h: 5\n\n  # c", &[(" c", "g:")]),
    ];
    for (text, want) in cases {
        let p = parse(text);
        let mut got = Vec::new();
        for doc in &p.tree.documents {
            comment_paths(doc, "", &mut got);
        }
        got.sort();
        let mut want: Vec<(String, String)> = want
            .iter()
            .map(|(c, p)| (c.to_string(), p.to_string()))
            .collect();
        want.sort();
        assert_eq!(got, want, "comments of {text:?}");
        assert_round_trip(text);
    }
}

/// `key: &anchor # note` with the collection on the lines below: go-yaml's parser holds the
/// line comment until the next event that takes comments (`yaml_parser_set_event_comments` in
/// parserc.go), which a block collection's start does not, so the first key or item scalar of
/// the collection gets it and sops lists it inside the collection (paths read off go-yaml
/// v3.0.4's nodes). Before, enseal gave it to the key's mapping, and sops 3.11 and 3.13 left it
/// as `#ENC[...]` when decrypting enseal's files (generated seeds 31, 43, 116, 170).
#[test]
fn a_comment_after_an_anchor_goes_into_the_collection_it_anchors() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "u:\n  url6: &a6 # token\n    key7: 1\n",
            &[(" token", "u:url6:")],
        ),
        ("v: &b # c2\n- x\n", &[(" c2", "v:")]),
        ("a: &x # c\n  b:\n    c: 1\n", &[(" c", "a:")]),
        ("w: !!map # c3\n  k: 2\n", &[(" c3", "w:")]),
        (
            "z: &c # c4\n\n  # c5\n  k: 3\n",
            &[(" c4", "z:"), (" c5", "z:")],
        ),
        // Without the anchor the comment is the key's line comment: the outer mapping's.
        ("u:\n  url6: # token\n    key7: 1\n", &[(" token", "u:")]),
        // An anchor on a scalar: the scalar's line comment, in the mapping around it.
        ("u:\n  k: &s v # c\n", &[(" c", "u:")]),
    ];
    for (text, want) in cases {
        let p = parse(text);
        let mut got = Vec::new();
        for doc in &p.tree.documents {
            comment_paths(doc, "", &mut got);
        }
        got.sort();
        let mut want: Vec<(String, String)> = want
            .iter()
            .map(|(c, p)| (c.to_string(), p.to_string()))
            .collect();
        want.sort();
        assert_eq!(got, want, "comments of {text:?}");
        assert_round_trip(text);
    }
}

/// Like [`encrypt_node`], but values under a key ending in `_unencrypted` stay in the clear
/// (sops' default `unencrypted_suffix`).
fn encrypt_node_but_clear(node: &mut Node) {
    match node {
        Node::Map(items) => {
            for item in items {
                match item {
                    Item::Pair(k, _) if k.ends_with("_unencrypted") => {}
                    Item::Pair(_, v) => encrypt_node_but_clear(v),
                    Item::Comment(c) => *c = fake_enc(c.as_bytes(), "comment"),
                }
            }
        }
        Node::Seq(items) => items.iter_mut().for_each(encrypt_node_but_clear),
        other => encrypt_node(other),
    }
}

/// sops has no aliases in its tree: enseal writes an alias to a collection out in the encrypted
/// file and carries its `*name` in the layout of the copy's values, so that decrypting writes
/// the alias back. Every valued scalar of the copy carries it, around its own layout: before,
/// only the first did, so an alias came back written out when that scalar had a layout of its
/// own (an escaped string, a block scalar, `off` which sops would quote) or was left in the
/// clear (generated seeds 155, 214, 228, 267).
#[test]
fn an_alias_comes_back_whichever_of_its_copys_values_carries_it() {
    for text in [
        "a: &a2\n  p: \"\\u00e9t\\u00e9\"\nb:\n  <<: *a2\n",
        "a: &a\n  e: |\n    x\n  f: 1\nb:\n  <<: *a\n",
        "a: &a\n  u:\n    - off\n  g: d\nb:\n  <<: *a\n",
        // An alias inside the anchored collection, and one to a part of it.
        "s: &s 'v'\na: &a\n  k: *s\n  m: &m\n    n: 1\nb:\n  <<: *a\nc: *m\n",
    ] {
        let (encrypted, decrypted) = encrypt_then_decrypt(text);
        assert!(!encrypted.contains("<<: *a"), "{encrypted}");
        assert_eq!(decrypted, text, "encrypted:\n{encrypted}");
    }
    let text = "a: &a\n  g_unencrypted: x\n  h: y\nb:\n  <<: *a\n";
    let plain = parse(text);
    let mut tree = plain.tree.clone();
    tree.documents.iter_mut().for_each(encrypt_node_but_clear);
    let encrypted = write(&tree, Some(&metadata()), Some(&plain));
    assert!(encrypted.contains("    g_unencrypted: x\n"), "{encrypted}");
    let enc = parse(&encrypted);
    let mut back = enc.tree.clone();
    back.documents.iter_mut().for_each(decrypt_node);
    assert_eq!(
        write(&back, None, Some(&enc)),
        text,
        "encrypted:\n{encrypted}"
    );
}

/// A comment that ends a document before a blank line: go-yaml gives it to another collection
/// when `sops:` follows it directly than when the blank line and the end of the document do
/// (a blank line ends a foot run, `yaml_parser_scan_comments`), so its AAD differed and
/// neither enseal nor sops 3.11/3.13 could decrypt it in enseal's file (generated seeds 150,
/// 298). The `sops` entry goes after the blank lines that end a document, and is removed with
/// its own lines only.
#[test]
fn the_sops_entry_goes_after_the_blank_lines_that_end_a_document() {
    for text in [
        "g:\n  a:\n    - x\n  # c\n\n",
        "g:\n  a:\n    - x\n  # c\n\n  \n",
        "g:\r\n  a:\r\n    - x\r\n  # c\r\n\r\n",
        "a: 1\n# c\n\n---\nb:\n  - 2\n  # d\n\n",
        // Mixed line breaks: each blank line keeps its own.
        "a: 1\r\n# c\r\n\n",
        // No blank line, or no line break after it: `sops` follows the last line as before.
        "g:\n  a:\n    - x\n  # c\n",
        "g:\n  a:\n    - x\n  # c\n\n  ",
    ] {
        let plain = parse(text);
        let mut tree = plain.tree.clone();
        tree.documents.iter_mut().for_each(encrypt_node);
        let encrypted = write(&tree, Some(&metadata()), Some(&plain));
        let paths = |p: &Parsed| {
            let mut out = Vec::new();
            for doc in &p.tree.documents {
                comment_paths(doc, "", &mut out);
            }
            out.into_iter().map(|(_, path)| path).collect::<Vec<_>>()
        };
        assert_eq!(
            paths(&parse(&encrypted)),
            paths(&plain),
            "encrypted:\n{encrypted}"
        );
        assert_round_trip(text);
    }
}

/// A stream ending in an empty document, `---` with or without a final line break (class 5
/// of #12, flink-kubernetes-operator's pre-install.yaml): the `sops` block added to the empty
/// document gave both the same encrypted file, so one of them did not come back byte for
/// byte. The encrypted file now ends with a line break exactly when the plaintext does, as it
/// does for a document with entries; sops 3.11 and 3.13 read both.
#[test]
fn an_empty_last_document_keeps_whether_the_stream_ends_with_a_line_break() {
    for text in [
        "a: |\n  x\n---",
        "a: |\n  x\n---\n",
        "a: 1\r\n---\r\n",
        "a: 1\r\n---",
    ] {
        let plain = parse(text);
        let mut tree = plain.tree.clone();
        tree.documents.iter_mut().for_each(encrypt_node);
        let encrypted = write(&tree, Some(&metadata()), Some(&plain));
        assert_eq!(
            encrypted.ends_with('\n'),
            text.ends_with('\n'),
            "encrypted:\n{encrypted}"
        );
        assert_round_trip(text);
    }
}

/// go-yaml's parser makes a block sequence's end event without taking the comments pending
/// (`yaml_parser_parse_block_sequence_entry`, unlike a mapping's end): a foot given to the end
/// of a sequence that is an item of another goes on to the next event that takes comments.
/// In a CRLF file the scanner ends a dedented run at the line break after it and marks it at
/// its own start, so the nested sequence's end gets it, then the outer sequence's, then the
/// next key, whose foot decode.go moves to the key before (`a`): sops lists it in the root
/// mapping (paths read off go-yaml v3.0.4's nodes; generated seed 79). With LF breaks the run
/// goes on to `h` and stays with the last token, in the sequence.
#[test]
fn a_foot_given_to_a_nested_sequences_end_goes_on_to_what_follows() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "a:\r\n  -\r\n    - 1\r\n    -\r\n      - \"@\"\r\n    # end\r\nh: 1\r\n",
            &[(" end", ":")],
        ),
        (
            "a:\n  -\n    - 1\n    -\n      - \"@\"\n    # end\nh: 1\n",
            &[(" end", "a:")],
        ),
        (
            "a:\r\n  -\r\n    - 1\r\n    - \"@\"\r\n    # end\r\nh: 1\r\n",
            &[(" end", "a:")],
        ),
    ];
    assert_comments_at(cases);
}

/// A text whose last line is a comment without a line break: in enseal's encrypted file a line
/// break and `sops:` follow it. With CRLF breaks go-yaml's scanner skips the `\r` unlooked and
/// sees the `\n` as a break, which ends the dedented run as a foot marked at its own start (so
/// it goes on to `p`, the root mapping's); with LF it goes on to `sops:` and stays with the last
/// token (paths read off go-yaml v3.0.4's nodes for the text followed by `sops: 1`; generated
/// seed 299, where neither enseal nor sops could decrypt the comment).
#[test]
fn a_last_comment_without_a_line_break_is_read_as_the_encrypted_file_has_it() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("p:\r\n  - n: {}\r\n    k: y\r\n  # end", &[(" end", ":")]),
        ("p:\n  - n: {}\n    k: y\n  # end", &[(" end", "p:")]),
    ];
    assert_comments_at(cases);
}

/// Reads each text, checks that its comments have the parents (paths) given, and that it
/// round-trips through a (fake) encryption.
fn assert_comments_at(cases: &[(&str, &[(&str, &str)])]) {
    for (text, want) in cases {
        let p = parse(text);
        let mut got = Vec::new();
        for doc in &p.tree.documents {
            comment_paths(doc, "", &mut got);
        }
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(c, p)| (c.to_string(), p.to_string()))
            .collect();
        assert_eq!(got, want, "comments of {text:?}");
        assert_round_trip(text);
    }
}

/// A foot run after a flow collection goes to the collection's end event; go-yaml moves it on
/// to the collection's key unless that key has a foot of its own (the first key of a mapping
/// that is a sequence item, after a foot run below the `-`), and then sops lists it in the flow
/// collection (sops 3.11 and 3.13; generated seed 100311, a CRLF file, where sops could not
/// decrypt enseal's comment). With LF the runs need a blank line to end as feet.
#[test]
fn a_foot_after_a_flow_collection_whose_key_has_a_foot_is_the_collections() {
    assert_comments_at(&[
        (
            "l:\r\n  -\r\n    # one\r\n    s: [1]\r\n    # two\r\n    r: 1\r\n",
            &[(" one", "l:"), (" two", "l:s:")],
        ),
        (
            "l:\r\n  -\r\n    # one\r\n    s: {a: 1}\r\n    # two\r\n    r: 1\r\n",
            &[(" one", "l:"), (" two", "l:s:")],
        ),
        (
            "l:\n  -\n    # one\n\n    s: [1]\n    # two\n\n    r: 1\n",
            &[(" one", "l:"), (" two", "l:s:")],
        ),
        // No foot on the key: the flow collection's foot goes on to the key, so the mapping's.
        (
            "l:\n  -\n    # one\n    s: [1]\n    # two\n\n    r: 1\n",
            &[(" one", "l:"), (" two", "l:")],
        ),
        ("a:\r\n  s: [1]\r\n  # two\r\n  r: 1\r\n", &[(" two", "a:")]),
    ]);
}

/// `- # c` then an empty item: go-yaml holds the head comment past the empty scalar and the
/// ends of block sequences until a key or value takes it, or a block collection that is the
/// next item of a sequence (its stem comment); sops lists it there (sops 3.11 and 3.13; #12,
/// and generated seed 290, where sops could not decrypt enseal's comment). At the end of the
/// document go-yaml drops it from the plaintext, but in the encrypted file `sops:` takes it.
#[test]
fn a_head_comment_of_an_empty_item_goes_to_the_next_token_that_takes_comments() {
    assert_comments_at(&[
        ("a:\n  - # c\n    -\nb: 1\n", &[(" c", ":")]),
        ("a:\n- # c\n  -\nb: 1\n", &[(" c", ":")]),
        ("m:\n  a:\n    - # c\n      -\n  b: 1\n", &[(" c", "m:")]),
        ("a:\n  - # c\n    -\n  - y\nb: 1\n", &[(" c", "a:")]),
        (
            "a:\n  - # c\n    -\n    - # d\n      -\nb: 1\n",
            &[(" c", "a:"), (" d", ":")],
        ),
        ("a:\n  - # c\n    -\n", &[(" c", ":")]),
        // Not empty: the item takes it.
        ("a:\n  - # c\n    - x\nb: 1\n", &[(" c", "a:")]),
    ]);
}

/// An encrypted keep (`+`) block scalar keeps the blank lines its value ends with: go-yaml
/// counts them before the comment that follows (a foot of the scalar's collection only when
/// at most one line break came before it), so without them sops (and enseal) would read that
/// comment elsewhere in the encrypted file than in the plaintext (generated seed 100030, a
/// CRLF file, which enseal could not decrypt itself).
#[test]
fn an_encrypted_keep_block_scalar_keeps_its_trailing_blank_lines() {
    for text in [
        "a:\r\n- >+\r\n  x\r\n\r\n# c\r\nb: 1\r\n",
        "a:\n- >+\n  x\n\n# c\n\nb: 1\n",
        "a: |+\n  x  \n  \n\n# c\nb: 1\n",
    ] {
        let (encrypted, _) = encrypt_then_decrypt(text);
        let blank_lines = |t: &str| {
            t.lines()
                .filter(|l| l.trim_matches([' ', '\r']).is_empty())
                .count()
        };
        assert_eq!(
            blank_lines(&encrypted),
            blank_lines(text),
            "blank lines of {text:?} in\n{encrypted}"
        );
        assert_comments_at(&[(text, &[(" c", ":")])]);
    }
}
