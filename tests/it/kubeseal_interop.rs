//! enseal's sealing against the real `kubeseal` v0.40.0 (built from source by
//! `tests/cluster/build.sh`), offline: kubeseal seals with `--cert FILE` and opens with
//! `--recovery-unseal --recovery-private-key FILE`, so both directions are checked without a
//! cluster. A missing kubeseal panics (it is a broken set-up, never a skip).
//!
//! Keys: `keys-example/sealing.{key,crt}` (RSA 4096, the demo pair) and
//! `tests/fixtures/sealing/rsa2048.{key,crt}`; `keys-backup.yaml` is a List of both as key
//! Secrets. All are test-only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use enseal_sealing::manifest;
use enseal_sealing::{self as sealing, Scope, SealedSecret, Secret};
use enseal_tests::cli::{Output, Sandbox};
use enseal_tests::cluster::kubeseal_bin;
use enseal_tests::peers;
use serde_json::Value;

const SCOPES: [Scope; 3] = [Scope::Strict, Scope::NamespaceWide, Scope::ClusterWide];

fn demo_key() -> PathBuf {
    peers::repo_root().join("keys-example/sealing.key")
}

fn demo_cert() -> PathBuf {
    peers::repo_root().join("keys-example/sealing.crt")
}

fn fixture(name: &str) -> PathBuf {
    peers::repo_root().join("tests/fixtures/sealing").join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A Secret with binary `data` (bytes that are not UTF-8) and `stringData` (non-ASCII, a
/// multi-line value), labels, annotations and a type.
fn db_secret(scope_annotation: Option<Scope>) -> String {
    let scope = match scope_annotation {
        Some(Scope::NamespaceWide) => "\n    sealedsecrets.bitnami.com/namespace-wide: \"true\"",
        Some(Scope::ClusterWide) => "\n    sealedsecrets.bitnami.com/cluster-wide: \"true\"",
        _ => "",
    };
    format!(
        "apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
  labels:
    app: db
  annotations:
    team: core{scope}
type: kubernetes.io/basic-auth
data:
  binary: AP8QgA==
stringData:
  password: \"hunter2 ünïcode\"
  config.yaml: |
    a: 1
    b: [x, y]
"
    )
}

fn expected_db_data() -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([
        ("binary".to_string(), vec![0x00, 0xff, 0x10, 0x80]),
        (
            "password".to_string(),
            "hunter2 ünïcode".as_bytes().to_vec(),
        ),
        ("config.yaml".to_string(), b"a: 1\nb: [x, y]\n".to_vec()),
    ])
}

/// Every document of a YAML or JSON output.
fn docs(bytes: &[u8]) -> Vec<Value> {
    manifest::parse_documents(bytes).expect("output parses as YAML/JSON")
}

fn one_secret(out: &Output) -> Secret {
    let mut d = docs(&out.stdout);
    assert_eq!(d.len(), 1, "one Secret expected:\n{}", out.stdout_str());
    manifest::decode(0, d.remove(0), "Secret").expect("a Secret")
}

fn one_sealed(bytes: &[u8]) -> SealedSecret {
    let mut d = docs(bytes);
    assert_eq!(d.len(), 1, "one SealedSecret expected");
    manifest::decode(0, d.remove(0), "SealedSecret").expect("a SealedSecret")
}

fn data_of(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    secret
        .data
        .iter()
        .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
        .collect()
}

#[track_caller]
fn assert_db_secret(secret: &Secret, scope: Scope, who: &str) {
    assert_eq!(data_of(secret), expected_db_data(), "{who}: data");
    assert_eq!(secret.metadata.name.as_deref(), Some("db"), "{who}: name");
    assert_eq!(
        secret.metadata.namespace.as_deref(),
        Some("prod"),
        "{who}: ns"
    );
    assert_eq!(
        secret.type_.as_deref(),
        Some("kubernetes.io/basic-auth"),
        "{who}: type"
    );
    assert_eq!(
        secret.metadata.labels.get("app").map(String::as_str),
        Some("db"),
        "{who}: labels"
    );
    assert_eq!(
        secret.metadata.annotations.get("team").map(String::as_str),
        Some("core"),
        "{who}: annotations"
    );
    assert_eq!(
        Scope::from_annotations(&secret.metadata.annotations),
        scope,
        "{who}: scope annotations carried into the Secret"
    );
}

fn kubeseal_recover(sb: &Sandbox, sealed: &[u8], key: &Path) -> Output {
    sb.run_with_stdin(
        kubeseal_bin(),
        [
            "--recovery-unseal",
            "--recovery-private-key",
            s(key),
            "-o",
            "json",
        ],
        sealed,
    )
}

fn read_keys(path: &Path) -> Vec<sealing::PrivateKey> {
    sealing::keys::read_private_keys(&std::fs::read(path).unwrap()).unwrap()
}

/// A SealedSecret holding `value` (one raw value) under `scope`'s annotations.
fn sealed_secret_with(name: &str, namespace: &str, scope: Scope, value: &str) -> String {
    let mut annotations = BTreeMap::new();
    scope.write_annotations(&mut annotations);
    serde_json::json!({
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {
            "template": {"metadata": {"name": name, "namespace": namespace}},
            "encryptedData": {"value": value}
        }
    })
    .to_string()
}

#[test]
fn kubeseal_raw_values_open_with_enseal_for_every_scope() {
    let sb = Sandbox::new();
    sb.write("value.bin", [0x00u8, 0xff, b'x', b'\n']);
    let keys = read_keys(&demo_key());
    for scope in SCOPES {
        let out = sb.kubeseal([
            "--raw",
            "--cert",
            s(&demo_cert()),
            "--scope",
            scope.name(),
            "--namespace",
            "prod",
            "--name",
            "db",
            "--from-file",
            "value.bin",
        ]);
        out.assert_success("kubeseal --raw");
        let value = out.stdout_str();
        // The library, with the label of the scope.
        let opened = sealing::open_base64(&keys, &scope.label("prod", "db"), &value).unwrap();
        assert_eq!(opened.as_slice(), [0x00, 0xff, b'x', b'\n'], "{scope}");
        // The CLI, on a SealedSecret carrying the value.
        sb.write("ss.json", sealed_secret_with("db", "prod", scope, &value));
        let out = sb.enseal(["unseal", "--private-key", s(&demo_key()), "ss.json"]);
        out.assert_success("enseal unseal");
        let secret = one_secret(&out);
        assert_eq!(
            secret.data["value"].as_bytes(),
            [0x00, 0xff, b'x', b'\n'],
            "{scope}"
        );
    }
}

#[test]
fn values_sealed_for_another_label_are_refused() {
    let sb = Sandbox::new();
    sb.write("value.txt", "top secret");
    let keys = read_keys(&demo_key());
    let raw = |scope: Scope| {
        let out = sb.kubeseal([
            "--raw",
            "--cert",
            s(&demo_cert()),
            "--scope",
            scope.name(),
            "--namespace",
            "prod",
            "--name",
            "db",
            "--from-file",
            "value.txt",
        ]);
        out.assert_success("kubeseal --raw");
        out.stdout_str()
    };
    let strict = raw(Scope::Strict);
    let ns_wide = raw(Scope::NamespaceWide);
    // (value's scope, SealedSecret's name, namespace and scope): each must not open.
    let cases = [
        (&strict, "db", "staging", Scope::Strict),
        (&strict, "other", "prod", Scope::Strict),
        (&strict, "db", "prod", Scope::NamespaceWide),
        (&strict, "db", "prod", Scope::ClusterWide),
        (&ns_wide, "db", "staging", Scope::NamespaceWide),
        (&ns_wide, "db", "prod", Scope::Strict),
    ];
    for (value, name, namespace, scope) in cases {
        let label = scope.label(namespace, name);
        assert_eq!(
            sealing::open_base64(&keys, &label, value).unwrap_err(),
            sealing::SealError::NoKeyOpens,
            "{name}/{namespace} {scope}"
        );
        sb.write("ss.json", sealed_secret_with(name, namespace, scope, value));
        let out = sb.enseal(["unseal", "--private-key", s(&demo_key()), "ss.json"]);
        assert!(!out.success(), "{name}/{namespace} {scope} must not open");
        assert!(
            out.stderr_str().contains("no sealing key could decrypt"),
            "{}",
            out.stderr_str()
        );
        assert!(!out.stdout_str().contains("top secret"));
        assert!(!out.stderr_str().contains("top secret"));
    }
}

#[test]
fn enseal_sealed_secrets_open_with_kubeseal_for_every_scope() {
    let sb = Sandbox::new();
    for scope in SCOPES {
        for format in ["json", "yaml"] {
            // The scope by flag, as with kubeseal.
            let out = sb.run_with_stdin(
                peers_enseal(),
                [
                    "seal",
                    "--cert",
                    s(&demo_cert()),
                    "--scope",
                    scope.name(),
                    "-o",
                    format,
                ],
                db_secret(None).as_bytes(),
            );
            out.assert_success("enseal seal");
            let sealed = one_sealed(&out.stdout);
            assert_eq!(sealed.scope(), scope);
            let recovered = kubeseal_recover(&sb, &out.stdout, &demo_key());
            recovered.assert_success(&format!("kubeseal --recovery-unseal ({scope}, {format})"));
            assert_db_secret(
                &one_secret(&recovered),
                scope,
                &format!("kubeseal on enseal {scope} {format}"),
            );
        }
        // The scope by annotation on the Secret.
        let out = sb.run_with_stdin(
            peers_enseal(),
            ["seal", "--cert", s(&demo_cert())],
            db_secret(Some(scope)).as_bytes(),
        );
        out.assert_success("enseal seal (scope annotation)");
        assert_eq!(one_sealed(&out.stdout).scope(), scope);
        let recovered = kubeseal_recover(&sb, &out.stdout, &demo_key());
        recovered.assert_success("kubeseal --recovery-unseal (scope annotation)");
        assert_db_secret(&one_secret(&recovered), scope, "annotation scope");
    }
}

fn peers_enseal() -> PathBuf {
    enseal_tests::cli::enseal_bin()
}

#[test]
fn enseal_unseal_opens_kubeseal_sealed_secrets() {
    let sb = Sandbox::new();
    sb.write("db.yaml", db_secret(None));
    for scope in SCOPES {
        for format in ["yaml", "json"] {
            let out = sb.kubeseal([
                "--cert",
                s(&demo_cert()),
                "--scope",
                scope.name(),
                "-o",
                format,
                "-f",
                "db.yaml",
                "-w",
                "sealed.out",
            ]);
            out.assert_success("kubeseal");
            let out = sb.enseal([
                "unseal",
                "--private-key",
                s(&demo_key()),
                "-o",
                format,
                "sealed.out",
            ]);
            out.assert_success(&format!("enseal unseal ({scope}, {format})"));
            assert_db_secret(
                &one_secret(&out),
                scope,
                &format!("enseal on kubeseal {scope} {format}"),
            );
        }
    }
}

#[test]
fn raw_values_from_enseal_open_with_kubeseal() {
    let sb = Sandbox::new();
    sb.write("value.txt", "from enseal --raw");
    for scope in SCOPES {
        let out = sb.enseal([
            "seal",
            "--raw",
            "--cert",
            s(&demo_cert()),
            "--scope",
            scope.name(),
            "--namespace",
            "prod",
            "--name",
            "db",
            "--from-file",
            "value=value.txt",
        ]);
        out.assert_success("enseal seal --raw");
        let doc = sealed_secret_with("db", "prod", scope, &out.stdout_str());
        let recovered = kubeseal_recover(&sb, doc.as_bytes(), &demo_key());
        recovered.assert_success(&format!("kubeseal opens enseal --raw ({scope})"));
        assert_eq!(
            one_secret(&recovered).data["value"].as_bytes(),
            b"from enseal --raw"
        );
    }
}

#[test]
fn merge_into_keeps_existing_keys_and_the_file_scope() {
    let sb = Sandbox::new();
    for scope in [Scope::Strict, Scope::ClusterWide] {
        sb.write(
            "first.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: app, namespace: prod}\n\
             stringData: {keep: kept, replace: old}\n",
        );
        sb.kubeseal([
            "--cert",
            s(&demo_cert()),
            "--scope",
            scope.name(),
            "-o",
            "yaml",
            "-f",
            "first.yaml",
            "-w",
            "sealed.yaml",
        ])
        .assert_success("kubeseal");
        let before = one_sealed(&sb.read("sealed.yaml"));
        // No --scope and no name/namespace: the file's own name, namespace and scope apply.
        let out = sb.run_with_stdin(
            peers_enseal(),
            [
                "seal",
                "--cert",
                s(&demo_cert()),
                "--merge-into",
                "sealed.yaml",
            ],
            b"apiVersion: v1\nkind: Secret\nmetadata: {name: ignored, labels: {tier: web}}\n\
              stringData: {replace: new, added: plus}\ndata: {bin: AAE=}\n",
        );
        out.assert_success("enseal seal --merge-into");
        assert!(out.stdout.is_empty(), "merge-into writes the file only");
        let text = sb.read("sealed.yaml");
        assert!(
            !text.starts_with(b"{"),
            "a YAML file stays YAML:\n{}",
            String::from_utf8_lossy(&text)
        );
        let after = one_sealed(&text);
        assert_eq!(after.scope(), scope);
        assert_eq!(
            after.spec.encrypted_data["keep"], before.spec.encrypted_data["keep"],
            "an untouched key keeps its ciphertext"
        );
        assert_ne!(
            after.spec.encrypted_data["replace"],
            before.spec.encrypted_data["replace"]
        );
        let recovered = kubeseal_recover(&sb, &text, &demo_key());
        recovered.assert_success(&format!("kubeseal opens the merged file ({scope})"));
        let secret = one_secret(&recovered);
        assert_eq!(
            data_of(&secret),
            BTreeMap::from([
                ("added".to_string(), b"plus".to_vec()),
                ("bin".to_string(), vec![0, 1]),
                ("keep".to_string(), b"kept".to_vec()),
                ("replace".to_string(), b"new".to_vec()),
            ]),
            "{scope}"
        );
        assert_eq!(secret.metadata.name.as_deref(), Some("app"));
        assert_eq!(
            secret.metadata.labels.get("tier").map(String::as_str),
            Some("web")
        );
    }
}

/// db.yaml sealed by the real kubeseal for the demo certificate, into sealed.json.
fn kubeseal_db_secret(sb: &Sandbox) {
    sb.write("db.yaml", db_secret(None));
    sb.kubeseal([
        "--cert",
        s(&demo_cert()),
        "-f",
        "db.yaml",
        "-w",
        "sealed.json",
    ])
    .assert_success("kubeseal");
}

#[test]
fn merge_into_refuses_a_different_scope() {
    let sb = Sandbox::new();
    kubeseal_db_secret(&sb);
    let before = sb.read("sealed.json");
    let out = sb.run_with_stdin(
        peers_enseal(),
        [
            "seal",
            "--cert",
            s(&demo_cert()),
            "--scope",
            "cluster-wide",
            "--merge-into",
            "sealed.json",
        ],
        db_secret(None).as_bytes(),
    );
    assert!(!out.success());
    assert_eq!(sb.read("sealed.json"), before, "the file is left alone");
}

#[test]
fn tampered_values_are_refused_by_both() {
    let sb = Sandbox::new();
    kubeseal_db_secret(&sb);
    let mut sealed = one_sealed(&sb.read("sealed.json"));
    // Flip one character of the AES part (near the end, before any padding).
    let value = sealed.spec.encrypted_data.get_mut("password").unwrap();
    let i = value.trim_end_matches('=').len() - 3;
    let c = value.as_bytes()[i];
    let flipped = if c == b'A' { 'B' } else { 'A' };
    value.replace_range(i..i + 1, &flipped.to_string());
    sb.write("tampered.json", serde_json::to_vec(&sealed).unwrap());
    let out = sb.enseal(["unseal", "--private-key", s(&demo_key()), "tampered.json"]);
    assert!(!out.success(), "enseal must refuse a tampered value");
    assert!(
        out.stderr_str().contains("modified or truncated"),
        "{}",
        out.stderr_str()
    );
    assert!(
        !out.stdout_str().contains("hunter2"),
        "no plaintext on failure"
    );
    let out = sb.kubeseal([
        "--recovery-unseal",
        "--recovery-private-key",
        s(&demo_key()),
        "-f",
        "tampered.json",
    ]);
    assert!(!out.success(), "kubeseal refuses it too (the reference)");
    // --validate says the same.
    let out = sb.enseal([
        "seal",
        "--validate",
        "--private-key",
        s(&demo_key()),
        "-f",
        "tampered.json",
    ]);
    assert!(!out.success());
    sb.enseal([
        "seal",
        "--validate",
        "--private-key",
        s(&demo_key()),
        "-f",
        "sealed.json",
    ])
    .assert_success("validate an intact SealedSecret");
}

#[test]
fn both_key_sizes_work_both_ways_and_key_backups_are_read() {
    let sb = Sandbox::new();
    sb.write("db.yaml", db_secret(None));
    let pairs = [
        (demo_cert(), demo_key(), 4096usize),
        (fixture("rsa2048.crt"), fixture("rsa2048.key"), 2048),
    ];
    for (cert, key, bits) in &pairs {
        // kubeseal seals, enseal opens (with the PEM key, and with the backup of both keys).
        sb.kubeseal(["--cert", s(cert), "-f", "db.yaml", "-w", "ks.json"])
            .assert_success("kubeseal");
        let sealed = one_sealed(&sb.read("ks.json"));
        let blob = base64_decode(&sealed.spec.encrypted_data["password"]);
        assert_eq!(
            u16::from_be_bytes([blob[0], blob[1]]) as usize,
            bits / 8,
            "length prefix is the RSA ciphertext size"
        );
        for private in [key.clone(), fixture("keys-backup.yaml")] {
            let out = sb.enseal(["unseal", "--private-key", s(&private), "ks.json"]);
            out.assert_success(&format!(
                "enseal unseal {bits}-bit with {}",
                private.display()
            ));
            assert_db_secret(&one_secret(&out), Scope::Strict, "enseal on kubeseal");
        }
        // enseal seals, kubeseal opens (with the PEM key, and with the backup).
        let out = sb.enseal(["seal", "--cert", s(cert), "-f", "db.yaml"]);
        out.assert_success("enseal seal");
        for private in [key.clone(), fixture("keys-backup.yaml")] {
            let recovered = kubeseal_recover(&sb, &out.stdout, &private);
            recovered.assert_success(&format!("kubeseal {bits}-bit with {}", private.display()));
            assert_db_secret(&one_secret(&recovered), Scope::Strict, "kubeseal on enseal");
        }
        // The other key alone cannot open it.
        let other = if *bits == 4096 {
            fixture("rsa2048.key")
        } else {
            demo_key()
        };
        let out = sb.enseal(["unseal", "--private-key", s(&other), "ks.json"]);
        assert!(
            !out.success(),
            "a {bits}-bit value opened with the wrong key"
        );
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    // Through the Secret type's decoder, which is what enseal uses.
    let doc = serde_json::json!({"kind": "Secret", "data": {"v": text}});
    let secret: Secret = manifest::decode(0, doc, "Secret").unwrap();
    secret.data["v"].as_bytes().to_vec()
}

#[test]
fn re_encrypt_moves_values_to_the_new_certificate() {
    let sb = Sandbox::new();
    sb.write("db.yaml", db_secret(Some(Scope::NamespaceWide)));
    sb.kubeseal([
        "--cert",
        s(&fixture("rsa2048.crt")),
        "-f",
        "db.yaml",
        "-w",
        "old.json",
    ])
    .assert_success("kubeseal");
    let out = sb.enseal([
        "seal",
        "--re-encrypt",
        "--private-key",
        s(&fixture("rsa2048.key")),
        "--cert",
        s(&demo_cert()),
        "-f",
        "old.json",
    ]);
    out.assert_success("enseal seal --re-encrypt");
    let recovered = kubeseal_recover(&sb, &out.stdout, &demo_key());
    recovered.assert_success("kubeseal opens the re-encrypted SealedSecret with the new key");
    assert_db_secret(
        &one_secret(&recovered),
        Scope::NamespaceWide,
        "re-encrypted",
    );
    let old_key_only = kubeseal_recover(&sb, &out.stdout, &fixture("rsa2048.key"));
    assert!(!old_key_only.success(), "the old key no longer opens it");
}

/// Sealed Secrets 0.36's rotation rule, offline too: a template whose name or scope
/// annotations claim more than the object's own metadata (a pull request can edit the
/// template; the values stay sealed for the object's scope) comes back from
/// `seal --re-encrypt` agreeing with the object, its other labels and annotations kept.
#[test]
fn re_encrypt_makes_the_template_claim_only_the_objects_scope() {
    let sb = Sandbox::new();
    sb.write("db.yaml", db_secret(None));
    let sealed = sb.enseal([
        "seal",
        "--cert",
        s(&fixture("rsa2048.crt")),
        "-o",
        "json",
        "-f",
        "db.yaml",
    ]);
    sealed.assert_success("enseal seal");
    let mut ss: serde_json::Value = serde_json::from_slice(&sealed.stdout).unwrap();
    let template = &mut ss["spec"]["template"]["metadata"];
    template["name"] = "someone-elses".into();
    template["annotations"]["sealedsecrets.bitnami.com/cluster-wide"] = "true".into();
    let kept = template["annotations"].clone();
    sb.write("edited.json", ss.to_string());
    let out = sb.enseal([
        "seal",
        "--re-encrypt",
        "--private-key",
        s(&fixture("rsa2048.key")),
        "--cert",
        s(&demo_cert()),
        "-o",
        "json",
        "-f",
        "edited.json",
    ]);
    out.assert_success("enseal seal --re-encrypt");
    let rotated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let template = &rotated["spec"]["template"]["metadata"];
    assert_eq!(template["name"], ss["metadata"]["name"], "{rotated}");
    let annotations = template["annotations"].as_object().unwrap();
    assert!(
        !annotations.contains_key("sealedsecrets.bitnami.com/cluster-wide"),
        "{rotated}"
    );
    for (k, v) in kept.as_object().unwrap() {
        if k != "sealedsecrets.bitnami.com/cluster-wide" {
            assert_eq!(annotations.get(k), Some(v), "{k} kept: {rotated}");
        }
    }
    let recovered = kubeseal_recover(&sb, &out.stdout, &demo_key());
    recovered.assert_success("kubeseal opens the re-encrypted SealedSecret");
    assert_db_secret(&one_secret(&recovered), Scope::Strict, "re-encrypted");
}

#[test]
fn several_documents_and_lists_are_sealed_in_one_go() {
    let sb = Sandbox::new();
    let input = format!(
        "{}---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  \
         metadata: {{name: second}}\n  stringData: {{k: v2}}\n",
        db_secret(None)
    );
    let out = sb.run_with_stdin(
        peers_enseal(),
        [
            "seal",
            "--cert",
            s(&demo_cert()),
            "--namespace",
            "prod",
            "-o",
            "yaml",
        ],
        input.as_bytes(),
    );
    out.assert_success("enseal seal of a stream");
    let sealed = docs(&out.stdout);
    assert_eq!(sealed.len(), 2);
    // kubeseal reads one object at a time.
    let mut names = Vec::new();
    for doc in sealed {
        let recovered = kubeseal_recover(&sb, doc.to_string().as_bytes(), &demo_key());
        recovered.assert_success("kubeseal opens each sealed document");
        let secret = one_secret(&recovered);
        assert_eq!(secret.metadata.namespace.as_deref(), Some("prod"));
        names.push(secret.metadata.name.clone().unwrap());
    }
    assert_eq!(names, ["db", "second"]);
}

#[test]
fn an_enseal_encrypted_secret_is_sealed_from_memory() {
    let mut sb = Sandbox::new();
    sb.write("db.yaml", db_secret(None));
    let out = sb.enseal(["encrypt", "--age", &peers::recipient("a"), "db.yaml"]);
    out.assert_success("enseal encrypt");
    sb.write("db.enc.yaml", &out.stdout);
    assert!(!out.stdout_str().contains("hunter2"));
    sb.use_identities(&["a"]);
    let out = sb.enseal([
        "seal",
        "--cert",
        s(&demo_cert()),
        "-f",
        "db.enc.yaml",
        "-o",
        "yaml",
    ]);
    out.assert_success("enseal seal of an encrypted Secret");
    assert!(!out.stdout_str().contains("hunter2"));
    let recovered = kubeseal_recover(&sb, &out.stdout, &demo_key());
    recovered.assert_success("kubeseal opens it");
    assert_db_secret(
        &one_secret(&recovered),
        Scope::Strict,
        "from an encrypted file",
    );
}

#[test]
fn generated_key_pairs_are_accepted_by_kubeseal() {
    let sb = Sandbox::new();
    sb.enseal([
        "cert",
        "--generate",
        "--key-size",
        "2048",
        "--key-out",
        "new.key",
        "--cert-out",
        "new.crt",
    ])
    .assert_success("enseal cert --generate");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(sb.file("new.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the private key is created 0600");
    }
    let printed = sb.enseal(["cert", "--cert", "new.crt"]);
    printed.assert_success("enseal cert --cert");
    assert_eq!(printed.stdout, sb.read("new.crt"));
    sb.write("db.yaml", db_secret(None));
    sb.kubeseal(["--cert", "new.crt", "-f", "db.yaml", "-w", "sealed.json"])
        .assert_success("kubeseal seals with an enseal-made certificate");
    let recovered = sb.kubeseal([
        "--recovery-unseal",
        "--recovery-private-key",
        "new.key",
        "-f",
        "sealed.json",
    ]);
    recovered.assert_success("kubeseal reads an enseal-made private key");
    assert_db_secret(&one_secret(&recovered), Scope::Strict, "generated pair");
}

#[test]
fn fetching_the_certificate_without_a_cluster_configuration_says_so() {
    // The sandbox has no kubeconfig and is not in a cluster.
    let sb = Sandbox::new();
    for args in [vec!["seal", "--fetch-cert"], vec!["cert"]] {
        let out = sb.enseal(&args);
        assert!(!out.success(), "{args:?}");
        assert!(
            out.stderr_str().contains("no Kubernetes configuration"),
            "{args:?}: {}",
            out.stderr_str()
        );
    }
}

/// Without --private-key, --validate and --re-encrypt ask the controller (its /v1/verify and
/// /v1/rotate through the API server, as kubeseal does): without a cluster configuration that
/// is what the message says. The answers of a real controller are checked in
/// controller_operations.rs.
#[test]
fn validate_and_re_encrypt_without_private_keys_ask_the_controller() {
    let sb = Sandbox::new();
    sb.write("db.yaml", db_secret(None));
    let sealed = sb.enseal(["seal", "--cert", s(&demo_cert()), "-f", "db.yaml"]);
    sealed.assert_success("enseal seal");
    sb.write("ss.json", sealed.stdout_str());
    for args in [
        ["seal", "--validate", "-f", "ss.json"],
        ["seal", "--re-encrypt", "-f", "ss.json"],
    ] {
        let out = sb.enseal(args);
        assert!(!out.success(), "{args:?}");
        assert!(
            out.stderr_str().contains("no Kubernetes configuration"),
            "{args:?}: {}",
            out.stderr_str()
        );
    }
}
