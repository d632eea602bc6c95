//! The Argo CD config management plugin in deploy/argocd/cmp/, run as argocd-cmp-server runs it:
//! its `discover.find` and `generate` commands exactly as plugin.yaml gives them (`command[0]`
//! started with `command[1..]` and `args`, in the Application's source directory), with the
//! sidecar's environment from repo-server-patch.yaml plus Argo CD's build environment, the real
//! kustomize v5.5.0 and enseal installed as the Containerfile installs it. Container paths
//! (`/usr/local/lib/kustomize-plugins`, the key file) are mapped under a sandbox directory that
//! stands for the image's root.

use std::path::{Path, PathBuf};
use std::process::Command;

use enseal_tests::cli::{enseal_bin, Output, Sandbox};
use enseal_tests::kustomize::kustomize;
use enseal_tests::manifest::{yaml_docs, yaml_to_json};
use enseal_tests::peers;
use serde_json::Value;

const PLAINTEXTS: [&str; 3] = ["cmp-db-pw-5Kd", "cmp-sops-pw-8Wq", "cmp-env-key-2Rn"];

fn cmp_dir() -> PathBuf {
    peers::repo_root().join("deploy/argocd/cmp")
}

fn read(name: &str) -> String {
    let path = cmp_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The ConfigMap in plugin.yaml and the ConfigManagementPlugin it carries.
fn plugin() -> (Value, Value) {
    let config_map = yaml_to_json(&read("plugin.yaml"));
    let plugin = yaml_to_json(
        config_map["data"]["plugin.yaml"]
            .as_str()
            .expect("the ConfigMap has plugin.yaml"),
    );
    (config_map, plugin)
}

/// The sidecar container of repo-server-patch.yaml and the patch's volumes.
fn sidecar() -> (Value, Vec<Value>) {
    let patch = yaml_to_json(&read("repo-server-patch.yaml"));
    let spec = &patch["spec"]["template"]["spec"];
    let containers = spec["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "the patch adds one sidecar");
    let volumes = spec["volumes"].as_array().expect("volumes").clone();
    (containers[0].clone(), volumes)
}

/// argocd-cmp-server's argv for a plugin command: `command` then `args`.
fn argv(command: &Value) -> Vec<String> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    let mut argv = strings(&command["command"]);
    argv.extend(strings(&command["args"]));
    assert!(!argv.is_empty(), "a plugin command: {command}");
    argv
}

/// The simulated sidecar: a sandbox whose `image/` stands for the image's root, with enseal
/// linked where the Containerfile links it and test key `a` as the mounted key Secret; the
/// container's env with its paths mapped under `image/`; kustomize on PATH (as in Argo CD's
/// image). Returns the sandbox and the environment argocd-cmp-server would pass (its own).
fn sidecar_sandbox() -> (Sandbox, Vec<(String, String)>) {
    let sb = Sandbox::new();
    let root = sb.file("image");
    let (container, _) = sidecar();
    let mut env: Vec<(String, String)> = Vec::new();
    for var in container["env"].as_array().expect("env") {
        let name = var["name"].as_str().unwrap().to_owned();
        let value = var["value"].as_str().expect("plain values").to_owned();
        assert!(value.starts_with('/'), "{name}: a container path: {value}");
        env.push((name, root.join(&value[1..]).display().to_string()));
    }
    let get = |name: &str| -> PathBuf {
        env.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| PathBuf::from(v))
            .unwrap_or_else(|| panic!("the sidecar sets {name}"))
    };
    let plugin_home = get("KUSTOMIZE_PLUGIN_HOME");
    for (dir, name) in [
        ("enseal.dev/v1alpha1/decrypt", "Decrypt"),
        ("viaduct.ai/v1/ksops", "ksops"),
    ] {
        std::fs::create_dir_all(plugin_home.join(dir)).unwrap();
        std::os::unix::fs::symlink(enseal_bin(), plugin_home.join(dir).join(name)).unwrap();
    }
    let key = get("SOPS_AGE_KEY_FILE");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    std::fs::write(&key, peers::identities(&["a"])).unwrap();
    let kustomize_dir = kustomize().parent().unwrap().to_owned();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![kustomize_dir];
    dirs.extend(std::env::split_paths(&path));
    env.push((
        "PATH".into(),
        std::env::join_paths(dirs).unwrap().into_string().unwrap(),
    ));
    env.push((
        "HOME".into(),
        sb.file("image/home/argocd").display().to_string(),
    ));
    env.push(("LANG".into(), "C.UTF-8".into()));
    (sb, env)
}

/// Runs a plugin command as argocd-cmp-server does: `exec.Command(argv[0], argv[1:]...)` in
/// `dir` with exactly `env`.
fn run(sb: &Sandbox, argv: &[String], dir: &Path, env: &[(String, String)]) -> Output {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir);
    sb.output(cmd, None)
}

/// Argo CD's build environment for an Application (docs: user-guide/build-environment), plus
/// one `plugin.env` entry, which Argo CD prefixes with ARGOCD_ENV_.
fn build_env(sidecar: &[(String, String)], path: &str) -> Vec<(String, String)> {
    let mut env = sidecar.to_vec();
    for (k, v) in [
        ("ARGOCD_APP_NAME", "shop"),
        ("ARGOCD_APP_NAMESPACE", "shop"),
        (
            "ARGOCD_APP_REVISION",
            "0123456789abcdef0123456789abcdef01234567",
        ),
        ("ARGOCD_APP_REVISION_SHORT", "0123456"),
        ("ARGOCD_APP_SOURCE_PATH", path),
        (
            "ARGOCD_APP_SOURCE_REPO_URL",
            "https://git.example.com/team/deploy.git",
        ),
        ("ARGOCD_APP_SOURCE_TARGET_REVISION", "HEAD"),
        ("KUBE_VERSION", "1.34.1"),
        ("KUBE_API_VERSIONS", "v1,apps/v1"),
        ("ARGOCD_ENV_FOO", "bar"),
    ] {
        env.push((k.into(), v.into()));
    }
    env
}

/// Encrypts `plain` for test key `a` with enseal, or with the real sops.
fn encrypt(name: &str, plain: &str, by_sops: bool) -> Vec<u8> {
    let mut sb_env = Sandbox::new();
    sb_env.use_identities(&["a"]);
    let file = sb_env.write(name, plain);
    let recipient = peers::recipient("a");
    let mut args = vec!["encrypt", "--age", &recipient];
    if name.ends_with(".yaml") {
        args.extend(["--encrypted-regex", "^(data|stringData)$"]);
    }
    let file = file.to_str().unwrap().to_owned();
    args.push(&file);
    let out = if by_sops {
        sb_env.sops(args)
    } else {
        sb_env.enseal(args)
    };
    out.assert_success(&format!("encrypt {name}"));
    out.stdout
}

const DECRYPT_GENERATOR: &str = "\
apiVersion: enseal.dev/v1alpha1
kind: Decrypt
metadata:
  name: shop-secrets
files:
  - secrets/db.enc.yaml
secretFrom:
  - metadata:
      name: shop-env
    type: Opaque
    envs:
      - secrets/app.enc.env
";

const KSOPS_GENERATOR: &str = "\
apiVersion: viaduct.ai/v1
kind: ksops
metadata:
  name: from-sops
files:
  - secrets/sops.enc.yaml
";

/// A repository checkout as argocd-cmp-server unpacks it: `apps/shop` with an enseal Decrypt
/// generator (an enseal-encrypted manifest and dotenv file) and a ksops generator (a file
/// encrypted by the real sops), and `apps/plain`, a kustomization without secrets.
fn repository(sb: &Sandbox, decrypt_generator: &str) -> PathBuf {
    let secret = |name: &str, key: &str, value: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: Opaque\n\
             stringData:\n  {key}: {value}\n"
        )
    };
    let files: [(&str, Vec<u8>); 3] = [
        (
            "secrets/db.enc.yaml",
            encrypt(
                "db.yaml",
                &secret("shop-db", "password", PLAINTEXTS[0]),
                false,
            ),
        ),
        (
            "secrets/sops.enc.yaml",
            encrypt(
                "sops.yaml",
                &secret("shop-sops", "url", PLAINTEXTS[1]),
                true,
            ),
        ),
        (
            "secrets/app.enc.env",
            encrypt("app.env", &format!("API_KEY={}\n", PLAINTEXTS[2]), false),
        ),
    ];
    for (name, bytes) in files {
        sb.write(&format!("repo/apps/shop/{name}"), bytes);
    }
    sb.write(
        "repo/apps/shop/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shop-settings\ndata:\n  mode: production\n",
    );
    sb.write("repo/apps/shop/decrypt.yaml", decrypt_generator);
    sb.write("repo/apps/shop/ksops.yaml", KSOPS_GENERATOR);
    sb.write(
        "repo/apps/shop/kustomization.yaml",
        "namespace: shop\nresources:\n  - configmap.yaml\ngenerators:\n  - decrypt.yaml\n  - ksops.yaml\n",
    );
    sb.write(
        "repo/apps/plain/kustomization.yaml",
        "resources:\n  - configmap.yaml\n",
    );
    sb.write(
        "repo/apps/plain/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\ndata:\n  a: b\n",
    );
    sb.file("repo")
}

#[track_caller]
fn assert_no_plaintext(out: &Output, what: &str) {
    out.assert_shows_none(&PLAINTEXTS, what);
}

/// The manifests install what the commands need, consistently: the plugin config mounted where
/// argocd-cmp-server reads it, the cmp server as the entrypoint, Argo CD's user, the key
/// Secret mounted read-only where SOPS_AGE_KEY_FILE points, and the plugin home the
/// Containerfile fills.
#[test]
fn the_sidecar_patch_mounts_the_plugin_and_key_where_the_commands_look() {
    let (config_map, plugin) = plugin();
    assert_eq!(plugin["kind"], "ConfigManagementPlugin");
    assert_eq!(plugin["metadata"]["name"], "enseal-kustomize");
    let (container, volumes) = sidecar();
    assert_eq!(
        container["command"][0], "/var/run/argocd/argocd-cmp-server",
        "Argo CD's lightweight CMP server is the entrypoint"
    );
    let security = &container["securityContext"];
    assert_eq!(security["runAsUser"], 999, "Argo CD requires user 999");
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    let mounts = container["volumeMounts"].as_array().unwrap();
    let mount = |path: &str| -> &Value {
        mounts
            .iter()
            .find(|m| m["mountPath"] == path)
            .unwrap_or_else(|| panic!("nothing mounted at {path}"))
    };
    let volume = |name: &Value| -> &Value {
        volumes
            .iter()
            .find(|v| &v["name"] == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    let config = mount("/home/argocd/cmp-server/config/plugin.yaml");
    assert_eq!(config["subPath"], "plugin.yaml");
    assert_eq!(
        volume(&config["name"])["configMap"]["name"],
        config_map["metadata"]["name"]
    );
    for shared in ["/var/run/argocd", "/home/argocd/cmp-server/plugins", "/tmp"] {
        mount(shared);
    }
    let env = |name: &str| -> String {
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
            .unwrap_or_else(|| panic!("the sidecar sets {name}"))
            .to_owned()
    };
    let key_file = PathBuf::from(env("SOPS_AGE_KEY_FILE"));
    let key_mount = mount(key_file.parent().unwrap().to_str().unwrap());
    assert_eq!(key_mount["readOnly"], true);
    assert!(
        volume(&key_mount["name"])["secret"]["secretName"].is_string(),
        "the key comes from a Secret"
    );
    let containerfile = read("Containerfile");
    let home = env("KUSTOMIZE_PLUGIN_HOME");
    assert!(
        containerfile.contains(&format!("home={home};")),
        "the Containerfile installs the plugins under {home}"
    );
    for link in [
        "$home/enseal.dev/v1alpha1/decrypt/Decrypt",
        "$home/viaduct.ai/v1/ksops/ksops",
    ] {
        assert!(containerfile.contains(link), "Containerfile links {link}");
    }
}

/// discover matches the application with enseal/ksops generators and not a plain one; generate
/// prints the kustomization with every Secret decrypted (enseal's and sops' files, a dotenv
/// secretFrom) and nothing encrypted left.
#[test]
fn generate_builds_the_application_with_its_secrets_decrypted() {
    let (sb, env) = sidecar_sandbox();
    let repo = repository(&sb, DECRYPT_GENERATOR);
    let (_, plugin) = plugin();
    let discover = argv(&plugin["spec"]["discover"]["find"]);
    let found = run(&sb, &discover, &repo.join("apps/shop"), &env);
    found.assert_success("discover in apps/shop");
    assert!(
        !found.stdout_str().trim().is_empty(),
        "discover prints a match for apps/shop"
    );
    let plain = run(&sb, &discover, &repo.join("apps/plain"), &env);
    plain.assert_success("discover in apps/plain");
    assert_eq!(
        plain.stdout_str().trim(),
        "",
        "apps/plain is not this plugin's"
    );

    assert!(plugin["spec"]["init"].is_null(), "no init command to run");
    let generate = argv(&plugin["spec"]["generate"]);
    let out = run(
        &sb,
        &generate,
        &repo.join("apps/shop"),
        &build_env(&env, "apps/shop"),
    );
    out.assert_success("generate in apps/shop");
    let text = out.stdout_str();
    assert!(!text.contains("ENC["), "nothing left encrypted:\n{text}");
    assert!(!text.contains("sops:"), "no sops metadata:\n{text}");
    let docs = yaml_docs(&text);
    let named = |kind: &str, prefix: &str| -> &Value {
        docs.iter()
            .find(|d| {
                d["kind"] == kind
                    && d["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(prefix))
            })
            .unwrap_or_else(|| panic!("no {kind} {prefix}* in:\n{text}"))
    };
    assert_eq!(docs.len(), 4, "{text}");
    assert_eq!(
        named("ConfigMap", "shop-settings")["metadata"]["namespace"],
        "shop"
    );
    assert_eq!(
        named("Secret", "shop-db")["stringData"]["password"],
        PLAINTEXTS[0]
    );
    assert_eq!(
        named("Secret", "shop-sops")["stringData"]["url"],
        PLAINTEXTS[1]
    );
    assert_eq!(
        named("Secret", "shop-env")["stringData"]["API_KEY"],
        PLAINTEXTS[2]
    );
    for doc in &docs {
        assert_eq!(
            doc["metadata"]["namespace"], "shop",
            "kustomize's namespace applies"
        );
    }
}

/// A repository cannot make the sidecar run a program: a generator declaring an exec KRM
/// function (here `/bin/sh`, which runs the ResourceList it is given as a script, whose last
/// line copies the key) fails generate with the file named, the program never runs, and no
/// value is printed. The control run shows the payload is real: kustomize with `--enable-exec`
/// does run it.
#[test]
fn generate_refuses_exec_functions_a_repository_declares() {
    let (sb, env) = sidecar_sandbox();
    let key_file = &env
        .iter()
        .find(|(k, _)| k == "SOPS_AGE_KEY_FILE")
        .unwrap()
        .1;
    let stolen = sb.file("stolen-key");
    let hostile = format!(
        "apiVersion: enseal.dev/v1alpha1\nkind: Decrypt\nmetadata:\n  name: shop-secrets\n  \
         annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: /bin/sh\n\
         files:\n  - secrets/db.enc.yaml\npayload: |\n  cp {key_file} {}\n",
        stolen.display()
    );
    let repo = repository(&sb, &hostile);
    let app = repo.join("apps/shop");
    let (_, plugin) = plugin();
    let out = run(
        &sb,
        &argv(&plugin["spec"]["generate"]),
        &app,
        &build_env(&env, "apps/shop"),
    );
    assert!(!out.success(), "generate must fail: {}", out.stdout_str());
    assert!(
        out.stderr_str().contains("decrypt.yaml"),
        "the message names the file: {}",
        out.stderr_str()
    );
    assert!(!stolen.exists(), "the repository's program ran");
    assert_no_plaintext(&out, "refused generate");

    // Without the plugin's check, kustomize as the plugin runs it (no --enable-exec) still
    // never starts the declared program...
    let kustomize_build = |extra: &[&str]| {
        let mut argv = vec![kustomize().display().to_string(), "build".into()];
        argv.extend(extra.iter().map(|s| s.to_string()));
        argv.push(".".into());
        run(&sb, &argv, &app, &build_env(&env, "apps/shop"))
    };
    kustomize_build(&["--enable-alpha-plugins"]);
    assert!(
        !stolen.exists(),
        "kustomize without --enable-exec ran the repository's program"
    );
    // ...which --enable-exec would: the reason the plugin never passes it.
    kustomize_build(&["--enable-alpha-plugins", "--enable-exec"]);
    assert!(
        stolen.exists(),
        "control: with --enable-exec the declared /bin/sh runs the payload"
    );
}
