//! age plugins (`age1<name>1...` recipients, `AGE-PLUGIN-<NAME>-1...` identities) through the
//! age plugin protocol, against the real peers: Go age v1.3.2 and sops 3.13.3, each starting
//! the same plugin binary from PATH as enseal does. The plugin is `age-plugin-ensealtest`
//! (tests/bin/), built from the `age-plugin` crate like real plugins are.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use enseal_tests::age_go;
use enseal_tests::cli::Sandbox;
use enseal_tests::peers::{self, SopsRelease};

const PLAIN_YAML: &str = "db:\n    user: admin\n    password: hunter2\nport: 5432\n";
const COULD_NOT_RETRIEVE_KEY: i32 = 128;

/// A sandbox whose PATH starts with a directory holding only the test plugin, as a user who
/// installed it would have.
fn sandbox_with_plugin() -> Sandbox {
    let mut sb = Sandbox::new();
    let dir = sb.path().parent().expect("sandbox root").join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_age-plugin-ensealtest"),
        dir.join("age-plugin-ensealtest"),
    )
    .unwrap();
    sb.env("PATH", path_with(&dir));
    sb
}

fn path_with(dir: &Path) -> OsString {
    let rest = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(std::env::split_paths(&rest));
    std::env::join_paths(dirs).unwrap()
}

/// A new plugin identity file in the sandbox: (file, recipient).
fn plugin_key(sb: &Sandbox, name: &str) -> (PathBuf, String) {
    let out = sb.run("age-plugin-ensealtest", ["--generate"]);
    out.assert_success("age-plugin-ensealtest --generate");
    let text = out.stdout_str();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# recipient: "))
        .expect("recipient line")
        .to_owned();
    assert!(recipient.starts_with("age1ensealtest1"), "{recipient}");
    assert!(text.contains("AGE-PLUGIN-ENSEALTEST-1"), "{text}");
    (sb.write(name, &text), recipient)
}

/// The armored `enc` of the (single) age stanza of a sops YAML file, and the indentation of its
/// lines.
fn enc_block(yaml: &str) -> (String, String) {
    let begin = yaml
        .lines()
        .find(|l| l.trim() == "-----BEGIN AGE ENCRYPTED FILE-----")
        .expect("an age stanza");
    let indent = begin[..begin.len() - begin.trim_start().len()].to_owned();
    let mut out = String::new();
    let mut inside = false;
    for line in yaml.lines() {
        let t = line.trim();
        inside |= t == "-----BEGIN AGE ENCRYPTED FILE-----";
        if inside {
            out.push_str(t);
            out.push('\n');
        }
        if t == "-----END AGE ENCRYPTED FILE-----" {
            break;
        }
    }
    (out, indent)
}

/// `yaml` with its age stanza's `enc` replaced by `armored`.
fn with_enc_block(yaml: &str, armored: &str) -> String {
    let (old, indent) = enc_block(yaml);
    let indented =
        |block: &str| -> String { block.lines().map(|l| format!("{indent}{l}\n")).collect() };
    let replaced = yaml.replacen(&indented(&old), &indented(armored), 1);
    assert_ne!(replaced, yaml, "the enc block was not found to replace");
    replaced
}

/// Go age, through the plugin, opens the data key enseal wrapped; and the data key wrapped
/// again by Go age through the plugin, put in place of enseal's, opens in enseal.
#[test]
fn enseal_and_go_age_open_what_the_other_wraps_through_a_plugin() {
    let mut sb = sandbox_with_plugin();
    let (key, recipient) = plugin_key(&sb, "plugin.txt");
    sb.env("SOPS_AGE_KEY_FILE", &key);
    sb.write("plain.yaml", PLAIN_YAML);
    let enc = sb.enseal(["encrypt", "--age", &recipient, "plain.yaml"]);
    enc.assert_success("enseal encrypt to a plugin recipient");
    let yaml = enc.stdout_str();
    let (armored, _) = enc_block(&yaml);

    let out = sb.run_with_stdin(
        age_go::age(),
        ["-d".as_ref(), "-i".as_ref(), key.as_os_str()],
        armored.as_bytes(),
    );
    out.assert_success("Go age -d through the plugin, of enseal's wrap");
    let data_key = out.stdout;
    assert_eq!(data_key.len(), 32);

    let out = sb.run_with_stdin(age_go::age(), ["-e", "-a", "-r", &recipient], &data_key);
    out.assert_success("Go age -e through the plugin");
    assert!(out.stdout_str().contains("BEGIN AGE ENCRYPTED FILE"));
    sb.write("go-wrapped.yaml", with_enc_block(&yaml, &out.stdout_str()));
    let dec = sb.enseal(["decrypt", "go-wrapped.yaml"]);
    dec.assert_success("enseal decrypt of a data key Go age wrapped through the plugin");
    assert_eq!(dec.stdout_str(), PLAIN_YAML);
}

#[test]
fn sops_3_13_decrypts_what_enseal_encrypts_to_a_plugin_recipient_and_back() {
    let mut sb = sandbox_with_plugin();
    let (key, recipient) = plugin_key(&sb, "plugin.txt");
    sb.env("SOPS_AGE_KEY_FILE", &key);
    sb.write("plain.yaml", PLAIN_YAML);

    // enseal -> sops 3.13, through .sops.yaml.
    sb.write(
        ".sops.yaml",
        format!("creation_rules:\n  - age: {recipient}\n"),
    );
    let enc = sb.enseal(["encrypt", "plain.yaml"]);
    enc.assert_success("enseal encrypt to a plugin recipient");
    assert!(enc.stdout_str().contains(&recipient));
    sb.write("by-enseal.yaml", &enc.stdout);
    std::fs::remove_file(sb.file(".sops.yaml")).unwrap();
    let dec = sb.sops_of(SopsRelease::V3_13, ["decrypt", "by-enseal.yaml"]);
    dec.assert_success("sops 3.13 decrypt through the plugin");
    assert_eq!(dec.stdout_str(), PLAIN_YAML);
    let dec = sb.enseal(["decrypt", "by-enseal.yaml"]);
    dec.assert_success("enseal decrypt through the plugin");
    assert_eq!(dec.stdout_str(), PLAIN_YAML);
    assert!(
        dec.stderr_str()
            .contains("ensealtest: unwrapped a file key"),
        "the plugin's message is shown: {}",
        dec.stderr_str()
    );

    // sops 3.13 -> enseal, with --age.
    let enc = sb.sops_of(
        SopsRelease::V3_13,
        ["encrypt", "--age", &recipient, "plain.yaml"],
    );
    enc.assert_success("sops 3.13 encrypt to a plugin recipient");
    sb.write("by-sops.yaml", &enc.stdout);
    let dec = sb.enseal(["decrypt", "by-sops.yaml"]);
    dec.assert_success("enseal decrypt of sops 3.13's plugin file");
    assert_eq!(dec.stdout_str(), PLAIN_YAML);
}

/// Classic and plugin identities in one SOPS_AGE_KEY: the classic key opens a file without
/// starting the plugin; a missing plugin is named when nothing else opens the file.
#[test]
fn a_missing_plugin_is_named_and_classic_keys_still_work_beside_plugin_ones() {
    let mut sb = sandbox_with_plugin();
    let (key, recipient) = plugin_key(&sb, "plugin.txt");
    sb.write("plain.yaml", PLAIN_YAML);
    let enc = sb.enseal(["encrypt", "--age", &recipient, "plain.yaml"]);
    enc.assert_success("enseal encrypt to a plugin recipient");
    sb.write("plugin.enc.yaml", &enc.stdout);
    let enc = sb.enseal(["encrypt", "--age", &peers::recipient("a"), "plain.yaml"]);
    enc.assert_success("enseal encrypt to a classic recipient");
    sb.write("classic.enc.yaml", &enc.stdout);

    let secret = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("AGE-"))
            .unwrap()
            .to_owned()
    };
    let both = format!(
        "{} {}",
        secret(&std::fs::read_to_string(&key).unwrap()),
        secret(&peers::identities(&["a"]))
    );
    sb.env("SOPS_AGE_KEY", &both);
    // Without the plugin on PATH.
    sb.env("PATH", std::env::var_os("PATH").unwrap_or_default());
    let dec = sb.enseal(["decrypt", "classic.enc.yaml"]);
    dec.assert_success("enseal decrypt with the classic key, plugin missing");
    assert_eq!(dec.stdout_str(), PLAIN_YAML);
    let dec = sb.enseal(["decrypt", "plugin.enc.yaml"]);
    dec.assert_code(COULD_NOT_RETRIEVE_KEY, "enseal decrypt, plugin missing");
    assert!(
        dec.stderr_str().contains("age-plugin-ensealtest"),
        "{}",
        dec.stderr_str()
    );
    let enc = sb.enseal(["encrypt", "--age", &recipient, "plain.yaml"]);
    assert!(!enc.success(), "encrypting needs the plugin");
    assert!(
        enc.stderr_str()
            .contains("age-plugin-ensealtest is not on PATH"),
        "{}",
        enc.stderr_str()
    );
}
