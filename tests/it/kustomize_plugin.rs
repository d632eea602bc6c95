//! `enseal kustomize` as ksops' replacement, driven by the real front ends: the real kustomize
//! v5.5.0 CLI running it as a KRM exec function (`--enable-alpha-plugins --enable-exec`), and
//! kubectl's built-in kustomize running it as a legacy exec plugin (kubectl has no
//! `--enable-exec`). Secrets are encrypted by enseal and by the real sops 3.11.

use std::path::{Path, PathBuf};

use enseal_tests::cli::{enseal_bin, Output, Sandbox};
use enseal_tests::kustomize::{kubectl, kustomize};
use enseal_tests::manifest::yaml_docs;
use enseal_tests::peers;
use serde_json::Value;

/// Values that exist only in plaintexts: none may ever appear in an error or in the output of
/// a failed build.
const PLAINTEXTS: [&str; 5] = [
    "enseal-pw-7Qx",
    "ZW5zZWFsLXRva2VuLTlaaw==", // base64 of enseal-token-9Zk
    "sops-pw-4Rt",
    "json-value-8Lm",
    "env-pw-3Hj",
];

const ENSEAL_SECRETS: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: db-credentials
type: Opaque
stringData:
  password: enseal-pw-7Qx
---
apiVersion: v1
kind: Secret
metadata:
  name: api-token
data:
  token: ZW5zZWFsLXRva2VuLTlaaw==
";

const SOPS_SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: from-sops
stringData:
  url: postgres://app:sops-pw-4Rt@db/app
";

const JSON_SECRET: &str = r#"{
  "apiVersion": "v1",
  "kind": "Secret",
  "metadata": {"name": "from-json"},
  "stringData": {"key": "json-value-8Lm"}
}
"#;

const CONFIGMAP: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: production
";

/// The ksops generator (KRM exec function): `path: ksops` is found on PATH, where the sandbox
/// has a `ksops` symlink to the enseal binary, exactly as a ksops user installs ksops.
const KSOPS_GENERATOR: &str = "\
apiVersion: viaduct.ai/v1
kind: ksops
metadata:
  name: secret-generator
  annotations:
    config.kubernetes.io/function: |
      exec:
        path: ksops
files:
  - secrets/enseal.enc.yaml
  - ./secrets/sops.enc.yaml
  - secrets/json.enc.json
";

/// A sandbox whose test key `a` is the only identity, with `ksops` and `enseal-kustomize`
/// links to the enseal binary on PATH and a legacy plugin home holding the same links.
fn sandbox() -> Sandbox {
    let mut sb = Sandbox::new();
    sb.use_identities(&["a"]);
    let bin = sb.file("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for name in ["ksops", "enseal-kustomize"] {
        std::os::unix::fs::symlink(enseal_bin(), bin.join(name)).unwrap();
    }
    for (dir, name) in [
        ("viaduct.ai/v1/ksops", "ksops"),
        ("enseal.dev/v1alpha1/decrypt", "Decrypt"),
    ] {
        let dir = sb.file("plugins").join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(enseal_bin(), dir.join(name)).unwrap();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin];
    dirs.extend(std::env::split_paths(&path));
    sb.env("PATH", std::env::join_paths(dirs).unwrap());
    sb.env("KUSTOMIZE_PLUGIN_HOME", sb.file("plugins"));
    sb
}

/// `app/`: a kustomization with a plain ConfigMap and the encrypted secrets: a two-document
/// YAML stream and a JSON file encrypted by enseal, one YAML file encrypted by the real sops.
fn app(sb: &Sandbox, generator: &str) -> PathBuf {
    let recipient = peers::recipient("a");
    let regex = "^(data|stringData)$";
    for (plain, encrypted, by_sops) in [
        ("enseal.yaml", "enseal.enc.yaml", false),
        ("sops.yaml", "sops.enc.yaml", true),
        ("json.json", "json.enc.json", false),
    ] {
        let text = match plain {
            "enseal.yaml" => ENSEAL_SECRETS,
            "sops.yaml" => SOPS_SECRET,
            _ => JSON_SECRET,
        };
        sb.write(&format!("plain/{plain}"), text);
        let args = [
            "encrypt",
            "--age",
            &recipient,
            "--encrypted-regex",
            regex,
            &format!("plain/{plain}"),
        ];
        let out = if by_sops {
            sb.sops(args)
        } else {
            sb.enseal(args)
        };
        out.assert_success(&format!("encrypt {plain}"));
        sb.write(&format!("app/secrets/{encrypted}"), &out.stdout);
    }
    sb.write("app/configmap.yaml", CONFIGMAP);
    sb.write("app/secret-generator.yaml", generator);
    sb.write(
        "app/kustomization.yaml",
        "resources:\n  - configmap.yaml\ngenerators:\n  - secret-generator.yaml\n",
    );
    sb.file("app")
}

/// `kustomize build --enable-alpha-plugins --enable-exec DIR` with the real kustomize CLI.
fn krm_build(sb: &Sandbox, dir: &str) -> Output {
    sb.run(
        kustomize(),
        ["build", "--enable-alpha-plugins", "--enable-exec", dir],
    )
}

/// `kubectl kustomize --enable-alpha-plugins DIR`: legacy exec plugins from
/// KUSTOMIZE_PLUGIN_HOME.
fn kubectl_build(sb: &Sandbox, dir: &str) -> Output {
    sb.run(kubectl(), ["kustomize", "--enable-alpha-plugins", dir])
}

fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {docs:#?}"))
}

/// The rendered objects must be the decrypted Secrets (with their exact values) and the
/// ConfigMap, with nothing of the encryption left.
fn assert_decrypted_app(out: &Output, what: &str) {
    out.assert_success(what);
    let text = out.stdout_str();
    assert!(
        !text.contains("ENC["),
        "{what}: ciphertext in output:\n{text}"
    );
    assert!(
        !text.contains("sops:") && !text.contains("lastmodified"),
        "{what}: metadata in output:\n{text}"
    );
    let docs = yaml_docs(&text);
    assert_eq!(docs.len(), 5, "{what}: {docs:#?}");
    assert_eq!(
        named(&docs, "ConfigMap", "settings")["data"]["mode"],
        "production"
    );
    let db = named(&docs, "Secret", "db-credentials");
    assert_eq!(db["stringData"]["password"], "enseal-pw-7Qx", "{what}");
    assert_eq!(db["type"], "Opaque", "{what}");
    assert_eq!(
        named(&docs, "Secret", "api-token")["data"]["token"],
        "ZW5zZWFsLXRva2VuLTlaaw==",
        "{what}"
    );
    assert_eq!(
        named(&docs, "Secret", "from-sops")["stringData"]["url"],
        "postgres://app:sops-pw-4Rt@db/app",
        "{what}"
    );
    assert_eq!(
        named(&docs, "Secret", "from-json")["stringData"]["key"],
        "json-value-8Lm",
        "{what}"
    );
}

#[track_caller]
fn assert_no_plaintext(out: &Output, what: &str) {
    out.assert_shows_none(&PLAINTEXTS, what);
}

#[test]
fn ksops_config_as_krm_exec_function_decrypts_enseal_and_sops_secrets() {
    let sb = sandbox();
    app(&sb, KSOPS_GENERATOR);
    assert_decrypted_app(&krm_build(&sb, "app"), "kustomize build (ksops config)");
}

#[test]
fn legacy_exec_plugin_under_kubectl_kustomize_decrypts_the_same_secrets() {
    let sb = sandbox();
    // kubectl's kustomize cannot run exec functions: it refuses --enable-exec, and without it
    // an exec function is skipped silently. This is why the legacy plugin mode exists.
    let refused = sb.run(
        kubectl(),
        ["kustomize", "--enable-alpha-plugins", "--enable-exec", "."],
    );
    assert!(
        !refused.success(),
        "kubectl kustomize accepted --enable-exec"
    );
    assert!(
        refused.stderr_str().contains("unknown flag: --enable-exec"),
        "{}",
        refused.stderr_str()
    );

    // The same ksops config without the function annotation: kustomize looks the plugin up
    // as $KUSTOMIZE_PLUGIN_HOME/viaduct.ai/v1/ksops/ksops.
    let legacy = KSOPS_GENERATOR.replace(
        "  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: ksops\n",
        "",
    );
    assert!(!legacy.contains("function"));
    app(&sb, &legacy);
    assert_decrypted_app(&kubectl_build(&sb, "app"), "kubectl kustomize (ksops)");

    // enseal's own kind: $KUSTOMIZE_PLUGIN_HOME/enseal.dev/v1alpha1/decrypt/Decrypt.
    let native = legacy
        .replace(
            "apiVersion: viaduct.ai/v1",
            "apiVersion: enseal.dev/v1alpha1",
        )
        .replace("kind: ksops", "kind: Decrypt");
    sb.write("app/secret-generator.yaml", &native);
    assert_decrypted_app(&kubectl_build(&sb, "app"), "kubectl kustomize (Decrypt)");
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn decrypt_kind_with_secret_from_files_binary_files_and_envs() {
    let sb = sandbox();
    let recipient = peers::recipient("a");
    let conf = "listen = 8443\npassword = conf-pw-5Gs\n";
    let key_bytes: Vec<u8> = vec![0xff, 0x00, 0x10, 0x80, 0xfe, b'k', b'e', b'y'];
    sb.write("plain/app.conf", conf);
    sb.write("plain/tls.bin", &key_bytes);
    sb.write("plain/app.env", "DB_USER=admin\nDB_PASS=env-pw-3Hj\n");
    for (plain, enc, by_sops) in [
        ("app.conf", "app.enc.conf", false),
        ("tls.bin", "tls.enc.bin", true),
        ("app.env", "app.enc.env", true),
    ] {
        let args = ["encrypt", "--age", &recipient, &format!("plain/{plain}")];
        let out = if by_sops {
            sb.sops(args)
        } else {
            sb.enseal(args)
        };
        out.assert_success(&format!("encrypt {plain}"));
        sb.write(&format!("app/secrets/{enc}"), &out.stdout);
    }
    // enseal's own kind, run by a relative exec path (kustomize resolves it from the
    // kustomization directory) under the name `enseal-kustomize`.
    std::os::unix::fs::symlink(enseal_bin(), sb.file("app/enseal-kustomize")).unwrap();
    sb.write(
        "app/secret-generator.yaml",
        "\
apiVersion: enseal.dev/v1alpha1
kind: Decrypt
metadata:
  name: generated
  annotations:
    config.kubernetes.io/function: |
      exec:
        path: ./enseal-kustomize
secretFrom:
  - metadata:
      name: app-secrets
      labels:
        app: shop
      annotations:
        kustomize.config.k8s.io/needs-hash: \"true\"
    type: Opaque
    files:
      - secrets/app.enc.conf
      - settings.conf=secrets/app.enc.conf
    binaryFiles:
      - tls.key=secrets/tls.enc.bin
    envs:
      - secrets/app.enc.env
",
    );
    sb.write(
        "app/kustomization.yaml",
        "generators:\n  - secret-generator.yaml\n",
    );
    let out = krm_build(&sb, "app");
    out.assert_success("kustomize build (secretFrom)");
    let docs = yaml_docs(&out.stdout_str());
    assert_eq!(docs.len(), 1, "{docs:#?}");
    let s = &docs[0];
    assert_eq!(s["kind"], "Secret");
    assert_eq!(s["type"], "Opaque");
    assert_eq!(s["metadata"]["labels"]["app"], "shop");
    // needs-hash is a kustomize generator option: kustomize, not the plugin, adds the suffix.
    let name = s["metadata"]["name"].as_str().unwrap();
    assert!(
        name.starts_with("app-secrets-") && name.len() > "app-secrets-".len(),
        "{name}"
    );
    assert_eq!(s["stringData"]["app.enc.conf"], conf);
    assert_eq!(s["stringData"]["settings.conf"], conf);
    assert_eq!(s["stringData"]["DB_USER"], "admin");
    assert_eq!(s["stringData"]["DB_PASS"], "env-pw-3Hj");
    assert_eq!(s["data"]["tls.key"], base64(&key_bytes).as_str());
}

/// Changes one clear field (the MAC no longer matches) or one ciphertext (AES-GCM fails).
/// A way to change an encrypted file's text.
type Tamper = fn(&str) -> String;

fn tamperings() -> [(&'static str, Tamper); 2] {
    [
        ("a clear field changed", |t| {
            t.replace("name: from-sops", "name: from-sopz")
        }),
        ("a ciphertext changed", |t| {
            let at = t.find("url: ENC[AES256_GCM,data:").unwrap() + 26;
            let mut bytes = t.as_bytes().to_vec();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            String::from_utf8(bytes).unwrap()
        }),
    ]
}

#[test]
fn a_tampered_file_fails_the_build_naming_the_file_without_plaintext() {
    let sb = sandbox();
    app(&sb, KSOPS_GENERATOR);
    let good = String::from_utf8(sb.read("app/secrets/sops.enc.yaml")).unwrap();
    for (what, tamper) in tamperings() {
        sb.write("app/secrets/sops.enc.yaml", tamper(&good));
        let out = krm_build(&sb, "app");
        assert!(
            !out.success(),
            "{what}: the build succeeded:\n{}",
            out.stdout_str()
        );
        let err = out.stderr_str();
        assert!(
            err.contains("secrets/sops.enc.yaml") && err.contains("secret-generator"),
            "{what}: the file is not named:\n{err}"
        );
        assert!(
            out.stdout.is_empty(),
            "{what}: output on a failed build:\n{}",
            out.stdout_str()
        );
        assert_no_plaintext(&out, what);
    }
    // The legacy plugin under kubectl fails the same way.
    let legacy = KSOPS_GENERATOR.replace(
        "  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: ksops\n",
        "",
    );
    sb.write("app/secret-generator.yaml", legacy);
    let out = kubectl_build(&sb, "app");
    assert!(!out.success(), "kubectl: the build succeeded");
    assert!(
        out.stderr_str().contains("secrets/sops.enc.yaml"),
        "{}",
        out.stderr_str()
    );
    assert_no_plaintext(&out, "kubectl, tampered");
}

#[test]
fn a_wrong_key_fails_the_build_naming_the_file() {
    let mut sb = sandbox();
    app(&sb, KSOPS_GENERATOR);
    sb.use_identities(&["b"]);
    let out = krm_build(&sb, "app");
    assert!(!out.success(), "the build succeeded with the wrong key");
    let err = out.stderr_str();
    assert!(
        err.contains("secrets/enseal.enc.yaml") && err.contains(&peers::recipient("a")),
        "{err}"
    );
    assert_no_plaintext(&out, "wrong key");
}

/// A ResourceList as kustomize sends it to a generator: the config as the one item (marked
/// local-config) and as functionConfig.
fn resource_list(config: &str, json: bool) -> String {
    let indent = |t: &str, n: usize| {
        t.lines()
            .map(|l| format!("{}{l}\n", " ".repeat(n)))
            .collect::<String>()
    };
    let yaml = format!(
        "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n- apiVersion: v1\n  \
         kind: ConfigMap\n  metadata:\n    name: already-there\nfunctionConfig:\n{}",
        indent(config, 2)
    );
    if json {
        serde_json::to_string(&yaml_docs(&yaml)[0]).unwrap()
    } else {
        yaml
    }
}

/// `enseal kustomize` run alone, in `dir`, with `stdin`.
fn run_alone(sb: &Sandbox, dir: &Path, stdin: &str) -> Output {
    let mut cmd = sb.command(enseal_bin());
    cmd.arg("kustomize").current_dir(dir);
    sb.output(cmd, Some(stdin.as_bytes()))
}

#[test]
fn enseal_kustomize_alone_appends_the_decrypted_resources_to_the_resource_list() {
    let sb = sandbox();
    let dir = app(&sb, KSOPS_GENERATOR);
    for json in [false, true] {
        let out = run_alone(&sb, &dir, &resource_list(KSOPS_GENERATOR, json));
        out.assert_success(&format!("enseal kustomize (json input: {json})"));
        let docs = yaml_docs(&out.stdout_str());
        assert_eq!(docs.len(), 1);
        let list = &docs[0];
        assert_eq!(list["kind"], "ResourceList");
        assert_eq!(list["apiVersion"], "config.kubernetes.io/v1");
        let items = list["items"].as_array().unwrap();
        let names: Vec<&str> = items
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "already-there",
                "db-credentials",
                "api-token",
                "from-sops",
                "from-json"
            ]
        );
        assert_eq!(items[1]["stringData"]["password"], "enseal-pw-7Qx");
        assert_eq!(
            items[3]["stringData"]["url"],
            "postgres://app:sops-pw-4Rt@db/app"
        );
    }
}

#[test]
fn plain_missing_outside_and_non_manifest_files_are_refused_by_name() {
    let mut sb = sandbox();
    let dir = app(&sb, KSOPS_GENERATOR);
    sb.write("app/secrets/plain.yaml", SOPS_SECRET);
    sb.write("outside.enc.yaml", sb.read("app/secrets/sops.enc.yaml"));
    std::os::unix::fs::symlink(
        sb.file("outside.enc.yaml"),
        sb.file("app/secrets/link.enc.yaml"),
    )
    .unwrap();
    sb.write("plain/app.env", "DB_PASS=env-pw-3Hj\n");
    let env = sb.enseal(["encrypt", "--age", &peers::recipient("a"), "plain/app.env"]);
    env.assert_success("encrypt app.env");
    sb.write("app/secrets/app.enc.env", &env.stdout);

    let config = |file: &str| {
        format!(
            "apiVersion: viaduct.ai/v1\nkind: ksops\nmetadata:\n  name: gen\nfiles:\n  - {file}\n"
        )
    };
    for (file, message) in [
        ("secrets/plain.yaml", "not encrypted"),
        ("secrets/missing.enc.yaml", "no such file"),
        ("../outside.enc.yaml", "outside the kustomization directory"),
        (
            "secrets/link.enc.yaml",
            "outside the kustomization directory",
        ),
        ("secrets/app.enc.env", "use secretFrom"),
    ] {
        let out = run_alone(&sb, &dir, &resource_list(&config(file), false));
        assert!(!out.success(), "{file}: accepted:\n{}", out.stdout_str());
        let err = out.stderr_str();
        assert!(
            err.contains(file) && err.contains(message) && err.contains("ksops \"gen\""),
            "{file}: wanted {message:?}, got:\n{err}"
        );
        assert!(out.stdout.is_empty(), "{file}: {}", out.stdout_str());
        assert_no_plaintext(&out, file);
    }
    // The operator, not the repository, lifts the restriction (kustomize's
    // --load-restrictor LoadRestrictionsNone has no way to reach a plugin).
    sb.env("ENSEAL_KUSTOMIZE_LOAD_RESTRICTOR", "LoadRestrictionsNone");
    for file in ["../outside.enc.yaml", "secrets/link.enc.yaml"] {
        let out = run_alone(&sb, &dir, &resource_list(&config(file), false));
        out.assert_success(file);
        assert!(out.stdout_str().contains("sops-pw-4Rt"));
    }
}

/// deploy/examples/kustomize builds as its comments say, with the demo key.
#[test]
fn the_example_in_deploy_examples_builds_with_the_demo_key() {
    let mut sb = sandbox();
    sb.env(
        "SOPS_AGE_KEY_FILE",
        peers::repo_root().join("keys-example/age.key"),
    );
    let dir = peers::repo_root().join("deploy/examples/kustomize");
    let out = krm_build(&sb, dir.to_str().unwrap());
    out.assert_success("kustomize build deploy/examples/kustomize");
    let docs = yaml_docs(&out.stdout_str());
    assert_eq!(docs.len(), 3, "{docs:#?}");
    let db = named(&docs, "Secret", "shop-db");
    assert_eq!(db["metadata"]["namespace"], "shop");
    assert_eq!(db["stringData"]["password"], "demo-only-password");
    let env = docs
        .iter()
        .find(|d| {
            d["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("shop-env-"))
        })
        .expect("the secretFrom Secret, with a hash suffix");
    assert_eq!(env["stringData"]["PAYMENT_API_KEY"], "demo-only-api-key");
    assert_eq!(
        env["stringData"]["SESSION_SECRET"],
        "demo-only-session-secret"
    );
}

/// Files that decrypt and verify but are no Kubernetes objects a build can use, each holding a
/// known plaintext: every way the build fails, the plaintext is on neither output. The first
/// is the PR author's tag trick (issue 13, item 3): a tag put before `ENC[...]` made the
/// decrypted text fail the manifest parser, whose message quoted the value.
#[test]
fn no_failed_build_prints_a_decrypted_value() {
    let sb = sandbox();
    let dir = app(&sb, KSOPS_GENERATOR);
    let encrypt = |name: &str, plain: &str| {
        sb.write(&format!("plain/{name}"), plain);
        let out = sb.enseal([
            "encrypt",
            "--age",
            &peers::recipient("a"),
            &format!("plain/{name}"),
        ]);
        String::from_utf8(out.assert_success(name).stdout.clone()).unwrap()
    };
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: enseal-pw-7Qx\n";
    let tagged = encrypt("tagged.yaml", secret).replacen(
        "password: ENC[",
        "password: !<tag:yaml.org,2002:null> ENC[",
        1,
    );
    let cases = [
        ("tagged.enc.yaml", tagged),
        (
            "not-an-object.enc.yaml",
            encrypt("n.yaml", "apiVersion: v1\nnotkind: enseal-pw-7Qx\n"),
        ),
        (
            "nan.enc.yaml",
            encrypt(
                "nan.yaml",
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: enseal-pw-7Qx\nratio: .nan\n",
            ),
        ),
        (
            "bad-list.enc.yaml",
            encrypt("l.yaml", "apiVersion: v1\nkind: List\nitems: enseal-pw-7Qx\n"),
        ),
    ];
    for (name, text) in cases {
        sb.write(&format!("app/secrets/{name}"), text);
        let config = format!(
            "apiVersion: viaduct.ai/v1\nkind: ksops\nmetadata:\n  name: gen\nfiles:\n  - secrets/{name}\n"
        );
        let out = run_alone(&sb, &dir, &resource_list(&config, false));
        if out.success() {
            // A build that succeeds may of course hold the value; only its errors may not.
            assert!(!out.stderr_str().contains("enseal-pw-7Qx"), "{name}");
        } else {
            assert!(
                out.stderr_str().contains(name),
                "{name}: {}",
                out.stderr_str()
            );
            assert_no_plaintext(&out, name);
        }
    }
}
