//! The `enseal` command line as users script against it: exit codes, messages, and what the
//! file-changing commands leave on disk. Where sops 3.11 has a behaviour, the test runs the real
//! sops on the same input and expects the same exit code (and pins the number sops gives).

use std::path::Path;

use enseal_tests::cli::{Output, Sandbox};
use enseal_tests::peers;

// sops 3.11 exit codes, as measured with the real binary.
const GENERIC_ERROR: i32 = 1;
const CANNOT_READ_INPUT: i32 = 2;
const CANNOT_WRITE_OUTPUT: i32 = 3;
const INVALID_SET_FORMAT: i32 = 7;
const CONFLICTING_PARAMETERS: i32 = 8;
const INVALID_TREE_PATH: i32 = 91;
const NO_FILE: i32 = 100;
const COULD_NOT_RETRIEVE_KEY: i32 = 128;
const FILE_NOT_MODIFIED: i32 = 200;
const NO_EDITOR: i32 = 201;
const ALREADY_ENCRYPTED: i32 = 203;

const PLAIN_YAML: &str = "\
# Credentials for the reporting job.
database:
  user: reporter
  password: correct-horse-battery
api_token: tok_live_0123456789
";

fn sandbox_with_key_a() -> Sandbox {
    let mut sb = Sandbox::new();
    sb.use_identities(&["a"]);
    sb
}

/// Copies a sops-made fixture into the sandbox under `name`.
fn copy_fixture(sb: &Sandbox, fixture: &str, name: &str) -> String {
    let bytes = std::fs::read(peers::sops_fixtures_dir().join(fixture)).expect("fixture");
    sb.write(name, bytes);
    name.to_string()
}

/// Runs the same arguments with sops and enseal; asserts both exit with `code`.
#[track_caller]
fn same_code_as_sops(sb: &Sandbox, args: &[&str], code: i32, what: &str) -> (Output, Output) {
    let by_sops = sb.sops(args);
    assert_eq!(
        by_sops.code,
        Some(code),
        "{what}: sops itself no longer exits {code}: {}",
        by_sops.stderr_str()
    );
    let by_enseal = sb.enseal(args);
    assert_eq!(
        by_enseal.code,
        Some(code),
        "{what}: enseal should exit {code} like sops\n--- stderr ---\n{}",
        by_enseal.stderr_str()
    );
    (by_sops, by_enseal)
}

fn encrypt_with_enseal(sb: &Sandbox, name: &str, plain: &str) -> String {
    let input = format!("plain-{name}");
    sb.write(&input, plain);
    let out = sb.enseal(["encrypt", "--age", &peers::recipient("a"), &input]);
    out.assert_success("enseal encrypt");
    sb.write(name, &out.stdout);
    name.to_string()
}

fn lines_of(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The key of a YAML line (`  password: ENC[...]` -> `password`).
fn yaml_key(line: &str) -> &str {
    line.trim_start().split(':').next().unwrap_or("")
}

fn sops_extract(sb: &Sandbox, file: &str, path: &str) -> String {
    let out = sb.sops(["decrypt", "--extract", path, file]);
    out.assert_success(&format!("sops decrypt --extract {path}"));
    out.stdout_str()
}

// ---------------------------------------------------------------------------------------------
// Exit codes

#[test]
fn missing_file_exits_100_like_sops() {
    let sb = sandbox_with_key_a();
    let a = peers::recipient("a");
    same_code_as_sops(&sb, &["decrypt", "nope.yaml"], NO_FILE, "decrypt");
    same_code_as_sops(
        &sb,
        &["encrypt", "--age", &a, "nope.yaml"],
        NO_FILE,
        "encrypt",
    );
}

#[test]
fn decrypting_a_plain_file_exits_1_saying_metadata_not_found() {
    let sb = sandbox_with_key_a();
    sb.write("plain.yaml", PLAIN_YAML);
    let (_, enseal) = same_code_as_sops(
        &sb,
        &["decrypt", "plain.yaml"],
        GENERIC_ERROR,
        "decrypt plain",
    );
    assert!(
        enseal.stdout.is_empty(),
        "printed the plain file as if decrypted"
    );
    assert!(
        enseal.stderr_str().to_lowercase().contains("metadata"),
        "the error should say the sops metadata is missing: {}",
        enseal.stderr_str()
    );
}

#[test]
fn encrypting_an_already_encrypted_file_exits_203() {
    let sb = sandbox_with_key_a();
    let file = copy_fixture(&sb, "yaml_types.enc.yaml", "enc.yaml");
    let a = peers::recipient("a");
    same_code_as_sops(
        &sb,
        &["encrypt", "--age", &a, &file],
        ALREADY_ENCRYPTED,
        "encrypt twice",
    );
}

#[test]
fn malformed_yaml_exits_2_naming_the_file_and_line() {
    let sb = sandbox_with_key_a();
    // Line 3 is indented under a scalar: a syntax error there and nowhere else.
    sb.write("broken.yaml", "a: 1\nb: 2\n  c: 3\n");
    let a = peers::recipient("a");
    let (_, enseal) = same_code_as_sops(
        &sb,
        &["encrypt", "--age", &a, "broken.yaml"],
        CANNOT_READ_INPUT,
        "malformed YAML",
    );
    let err = enseal.stderr_str();
    assert!(
        err.contains("broken.yaml"),
        "error does not name the file: {err}"
    );
    assert!(
        err.contains("line 3") || err.contains("broken.yaml:3"),
        "error does not give line 3: {err}"
    );
}

#[test]
fn wrong_key_exits_128_with_no_output() {
    let mut sb = Sandbox::new();
    let file = copy_fixture(&sb, "yaml_types.enc.yaml", "enc.yaml");
    sb.use_identities(&["b"]);
    let (_, enseal) = same_code_as_sops(
        &sb,
        &["decrypt", &file],
        COULD_NOT_RETRIEVE_KEY,
        "wrong key",
    );
    assert!(enseal.stdout.is_empty());
}

#[test]
fn no_identity_anywhere_exits_128() {
    // The sandbox has an empty HOME: no keys.txt, no SOPS_AGE_KEY*.
    let sb = Sandbox::new();
    let file = copy_fixture(&sb, "yaml_types.enc.yaml", "enc.yaml");
    same_code_as_sops(&sb, &["decrypt", &file], COULD_NOT_RETRIEVE_KEY, "no key");
}

#[test]
fn identity_in_default_keys_file_is_found() {
    let sb = Sandbox::new();
    let file = copy_fixture(&sb, "yaml_types.enc.yaml", "enc.yaml");
    // $XDG_CONFIG_HOME/sops/age/keys.txt, where sops looks when nothing else is set.
    let config = Path::new(&sb.path()).join("../home/.config/sops/age");
    std::fs::create_dir_all(&config).expect("mkdir");
    std::fs::write(config.join("keys.txt"), peers::identities(&["a"])).expect("write keys");
    sb.sops(["decrypt", &file])
        .assert_success("sops with keys.txt");
    sb.enseal(["decrypt", &file])
        .assert_success("enseal with keys.txt");
}

#[test]
fn two_crypt_rules_at_once_exit_8() {
    let sb = sandbox_with_key_a();
    sb.write("plain.yaml", PLAIN_YAML);
    let a = peers::recipient("a");
    same_code_as_sops(
        &sb,
        &[
            "encrypt",
            "--age",
            &a,
            "--encrypted-regex",
            "x",
            "--unencrypted-regex",
            "y",
            "plain.yaml",
        ],
        CONFLICTING_PARAMETERS,
        "conflicting crypt rules",
    );
}

#[test]
fn unwritable_output_exits_3() {
    let sb = sandbox_with_key_a();
    let file = copy_fixture(&sb, "yaml_types.enc.yaml", "enc.yaml");
    same_code_as_sops(
        &sb,
        &["decrypt", "--output", "/nonexistent/dir/out.yaml", &file],
        CANNOT_WRITE_OUTPUT,
        "--output into a missing directory",
    );
}

#[test]
fn output_flag_writes_the_file_and_nothing_to_stdout() {
    let sb = sandbox_with_key_a();
    let file = encrypt_with_enseal(&sb, "enc.yaml", PLAIN_YAML);
    let out = sb.enseal(["decrypt", "--output", "out.yaml", &file]);
    out.assert_success("decrypt --output");
    assert!(out.stdout.is_empty());
    assert_eq!(String::from_utf8_lossy(&sb.read("out.yaml")), PLAIN_YAML);
}

// ---------------------------------------------------------------------------------------------
// filestatus and --extract

#[test]
fn filestatus_prints_json_like_sops() {
    let sb = sandbox_with_key_a();
    let enc = copy_fixture(&sb, "yaml_types.enc.yaml", "enc.yaml");
    sb.write("plain.yaml", PLAIN_YAML);
    for (file, expected) in [
        (enc.as_str(), r#"{"encrypted":true}"#),
        ("plain.yaml", r#"{"encrypted":false}"#),
    ] {
        let by_sops = sb.sops(["filestatus", file]);
        by_sops.assert_success("sops filestatus");
        assert_eq!(by_sops.stdout_str().trim(), expected);
        let by_enseal = sb.enseal(["filestatus", file]);
        by_enseal.assert_success("enseal filestatus");
        assert_eq!(by_enseal.stdout_str().trim(), expected, "filestatus {file}");
    }
}

#[test]
fn extract_prints_a_scalar_raw_and_a_subtree_as_yaml_like_sops() {
    let sb = sandbox_with_key_a();
    let file = copy_fixture(&sb, "yaml_types.enc.yaml", "enc.yaml");
    for path in [
        r#"["database"]["password"]"#,
        r#"["database"]["port"]"#,
        r#"["database"]["replicas"]"#,
        r#"["database"]["replicas"][1]"#,
    ] {
        let expected = sops_extract(&sb, &file, path);
        let out = sb.enseal(["decrypt", "--extract", path, &file]);
        out.assert_success(&format!("enseal --extract {path}"));
        assert_eq!(out.stdout_str(), expected, "--extract {path}");
    }
}

#[test]
fn extract_of_a_missing_key_exits_1_and_a_bad_path_exits_91() {
    let sb = sandbox_with_key_a();
    let file = copy_fixture(&sb, "yaml_types.enc.yaml", "enc.yaml");
    same_code_as_sops(
        &sb,
        &["decrypt", "--extract", r#"["nope"]"#, &file],
        GENERIC_ERROR,
        "missing key",
    );
    same_code_as_sops(
        &sb,
        &["decrypt", "--extract", "garbage", &file],
        INVALID_TREE_PATH,
        "malformed path",
    );
}

// ---------------------------------------------------------------------------------------------
// set / unset / rotate / updatekeys: what changes on disk

/// Lines that differ between two versions of a file with the same number of lines.
fn changed_keys(before: &[String], after: &[String]) -> Vec<String> {
    assert_eq!(before.len(), after.len(), "line count changed");
    before
        .iter()
        .zip(after)
        .filter(|(b, a)| b != a)
        .map(|(b, _)| yaml_key(b).to_string())
        .collect()
}

#[test]
fn set_rewrites_only_that_value_lastmodified_and_mac() {
    let sb = sandbox_with_key_a();
    let file = copy_fixture(&sb, "yaml_types.enc.yaml", "enc.yaml");
    let before = lines_of(&sb.read(&file));
    let out = sb.enseal(["set", &file, r#"["database"]["password"]"#, r#""new-pass""#]);
    out.assert_success("enseal set");
    let after = lines_of(&sb.read(&file));
    assert_eq!(
        changed_keys(&before, &after),
        ["password", "lastmodified", "mac"],
        "set must keep the ciphertext of every untouched value"
    );
    assert_eq!(
        sops_extract(&sb, &file, r#"["database"]["password"]"#),
        "new-pass"
    );
    assert_eq!(
        sops_extract(&sb, &file, r#"["api_token"]"#),
        "tok_9f8e7d6c5b4a"
    );
}

#[test]
fn set_with_a_value_that_is_not_json_exits_7() {
    let sb = sandbox_with_key_a();
    let file = copy_fixture(&sb, "yaml_types.enc.yaml", "enc.yaml");
    let before = sb.read(&file);
    same_code_as_sops(
        &sb,
        &["set", &file, r#"["database"]["password"]"#, "not json"],
        INVALID_SET_FORMAT,
        "set with invalid JSON",
    );
    assert_eq!(sb.read(&file), before, "failed set modified the file");
}

#[test]
fn unset_removes_only_that_value_and_rewrites_lastmodified_and_mac() {
    let sb = sandbox_with_key_a();
    let file = copy_fixture(&sb, "yaml_types.enc.yaml", "enc.yaml");
    let mut before = lines_of(&sb.read(&file));
    sb.enseal(["unset", &file, r#"["api_token"]"#])
        .assert_success("enseal unset");
    let after = lines_of(&sb.read(&file));
    let removed = before
        .iter()
        .position(|l| yaml_key(l) == "api_token")
        .expect("fixture has api_token");
    before.remove(removed);
    assert_eq!(changed_keys(&before, &after), ["lastmodified", "mac"]);
    let out = sb.sops(["decrypt", &file]);
    out.assert_success("sops decrypt after unset");
    assert!(!out.stdout_str().contains("api_token"));
}

#[test]
fn unset_of_a_missing_key_exits_1_and_leaves_the_file() {
    let sb = sandbox_with_key_a();
    let file = copy_fixture(&sb, "yaml_types.enc.yaml", "enc.yaml");
    let before = sb.read(&file);
    same_code_as_sops(
        &sb,
        &["unset", &file, r#"["nope"]"#],
        GENERIC_ERROR,
        "unset missing",
    );
    assert_eq!(sb.read(&file), before);
}

#[test]
fn rotate_replaces_every_ciphertext_and_keeps_the_data() {
    let sb = sandbox_with_key_a();
    let file = copy_fixture(&sb, "yaml_types.enc.yaml", "enc.yaml");
    let before_plain = sb.sops(["decrypt", &file]);
    before_plain.assert_success("sops decrypt before rotate");
    let before = String::from_utf8_lossy(&sb.read(&file)).into_owned();
    sb.enseal(["rotate", "-i", &file])
        .assert_success("enseal rotate");
    let after = String::from_utf8_lossy(&sb.read(&file)).into_owned();
    let after_plain = sb.sops(["decrypt", &file]);
    after_plain.assert_success("sops decrypt after rotate");
    assert_eq!(
        after_plain.stdout, before_plain.stdout,
        "rotate changed the data"
    );
    for old in before.split("ENC[").skip(1) {
        let old = old.split(']').next().unwrap_or_default();
        assert!(
            !after.contains(old),
            "ciphertext survived a data key rotation: ENC[{old}]"
        );
    }
}

#[test]
fn updatekeys_adds_the_recipients_of_the_creation_rule() {
    let sb = sandbox_with_key_a();
    let file = encrypt_with_enseal(&sb, "enc.yaml", PLAIN_YAML);
    sb.write(
        ".sops.yaml",
        format!(
            "creation_rules:\n  - age: {},{}\n",
            peers::recipient("a"),
            peers::recipient("b")
        ),
    );
    sb.enseal(["updatekeys", "-y", &file])
        .assert_success("enseal updatekeys");
    let mut only_b = Sandbox::new();
    only_b.use_identities(&["b"]);
    let copy = only_b.write("enc.yaml", sb.read(&file));
    let out = only_b.sops(["decrypt", copy.to_str().expect("UTF-8 path")]);
    out.assert_success("sops decrypt with the added key b");
    assert_eq!(out.stdout_str(), sb.sops(["decrypt", &file]).stdout_str());
}

// ---------------------------------------------------------------------------------------------
// -i (in place)

#[test]
fn in_place_decrypt_with_the_wrong_key_leaves_the_file_untouched() {
    let mut sb = Sandbox::new();
    let file = copy_fixture(&sb, "yaml_types.enc.yaml", "enc.yaml");
    let before = sb.read(&file);
    sb.use_identities(&["b"]);
    let out = sb.enseal(["decrypt", "-i", &file]);
    assert_eq!(
        out.code,
        Some(COULD_NOT_RETRIEVE_KEY),
        "{}",
        out.stderr_str()
    );
    assert_eq!(sb.read(&file), before, "failed -i changed the file");
}

#[test]
fn in_place_encrypt_of_malformed_yaml_leaves_the_file_untouched() {
    let sb = sandbox_with_key_a();
    let broken = "a: 1\nb: 2\n  c: 3\n";
    sb.write("broken.yaml", broken);
    let out = sb.enseal([
        "encrypt",
        "-i",
        "--age",
        &peers::recipient("a"),
        "broken.yaml",
    ]);
    assert_eq!(out.code, Some(CANNOT_READ_INPUT), "{}", out.stderr_str());
    assert_eq!(sb.read("broken.yaml"), broken.as_bytes());
}

#[test]
fn in_place_encrypt_then_decrypt_restores_the_file_byte_for_byte() {
    let sb = sandbox_with_key_a();
    sb.write("secrets.yaml", PLAIN_YAML);
    sb.enseal([
        "encrypt",
        "-i",
        "--age",
        &peers::recipient("a"),
        "secrets.yaml",
    ])
    .assert_success("encrypt -i");
    let encrypted = String::from_utf8_lossy(&sb.read("secrets.yaml")).into_owned();
    assert!(
        encrypted.contains("ENC[AES256_GCM"),
        "file was not encrypted"
    );
    assert!(
        !encrypted.contains("correct-horse-battery"),
        "secret left in clear"
    );
    sb.enseal(["decrypt", "-i", "secrets.yaml"])
        .assert_success("decrypt -i");
    assert_eq!(
        String::from_utf8_lossy(&sb.read("secrets.yaml")),
        PLAIN_YAML
    );
}

// ---------------------------------------------------------------------------------------------
// edit

fn editor_script(sb: &Sandbox, name: &str, body: &str) -> String {
    let path = sb.write(name, format!("#!/bin/sh\n{body}\n"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    path.display().to_string()
}

#[test]
fn edit_with_an_editor_script_changes_only_the_edited_value() {
    let mut sb = sandbox_with_key_a();
    let file = copy_fixture(&sb, "yaml_types.enc.yaml", "enc.yaml");
    let before = lines_of(&sb.read(&file));
    let editor = editor_script(
        &sb,
        "editor.sh",
        r#"sed -i 's/s3cr3t-P@ssw0rd/edited-pass/' "$1""#,
    );
    sb.env("EDITOR", editor);
    sb.enseal(["edit", &file]).assert_success("enseal edit");
    let after = lines_of(&sb.read(&file));
    assert_eq!(
        sops_extract(&sb, &file, r#"["database"]["password"]"#),
        "edited-pass"
    );
    assert_eq!(
        changed_keys(&before, &after),
        ["password", "lastmodified", "mac"]
    );
}

#[test]
fn edit_without_changes_exits_200_and_leaves_the_file() {
    let mut sb = sandbox_with_key_a();
    let file = copy_fixture(&sb, "yaml_types.enc.yaml", "enc.yaml");
    let before = sb.read(&file);
    let editor = editor_script(&sb, "noop.sh", "true");
    sb.env("EDITOR", editor);
    same_code_as_sops(&sb, &["edit", &file], FILE_NOT_MODIFIED, "edit, no change");
    assert_eq!(sb.read(&file), before);
}

#[test]
fn edit_with_no_editor_available_exits_201() {
    let mut sb = sandbox_with_key_a();
    let file = copy_fixture(&sb, "yaml_types.enc.yaml", "enc.yaml");
    // No EDITOR and a PATH holding none of vim, nano, vi.
    let empty = sb.path().join("empty-bin");
    std::fs::create_dir_all(&empty).expect("mkdir");
    sb.env("PATH", &empty);
    sb.env_remove("EDITOR");
    same_code_as_sops(&sb, &["edit", &file], NO_EDITOR, "edit, no editor");
}

#[test]
fn edit_of_a_new_file_creates_it_encrypted() {
    let mut sb = sandbox_with_key_a();
    let editor = editor_script(
        &sb,
        "write.sh",
        r#"printf 'token: fresh-token-value\n' > "$1""#,
    );
    sb.env("EDITOR", editor);
    sb.enseal(["edit", "--age", &peers::recipient("a"), "new.yaml"])
        .assert_success("enseal edit of a new file");
    let text = String::from_utf8_lossy(&sb.read("new.yaml")).into_owned();
    assert!(
        !text.contains("fresh-token-value"),
        "new file saved in clear"
    );
    assert_eq!(
        sops_extract(&sb, "new.yaml", r#"["token"]"#),
        "fresh-token-value"
    );
}

// ---------------------------------------------------------------------------------------------
// exec-env / exec-file / keygen

#[test]
fn exec_env_gives_the_command_the_decrypted_values() {
    let sb = sandbox_with_key_a();
    let file = copy_fixture(&sb, "dotenv_basic.enc.env", "app.env");
    let out = sb.enseal(["exec-env", &file, r#"echo "token=$API_TOKEN""#]);
    out.assert_success("exec-env");
    assert_eq!(out.stdout_str(), "token=tok_9f8e7d6c5b4a\n");
}

#[test]
fn exec_env_exits_with_the_commands_exit_code_like_sops() {
    let sb = sandbox_with_key_a();
    let file = copy_fixture(&sb, "dotenv_basic.enc.env", "app.env");
    same_code_as_sops(&sb, &["exec-env", &file, "exit 7"], 7, "exec-env exit 7");
}

#[test]
fn exec_file_hands_the_command_a_decrypted_file() {
    let sb = sandbox_with_key_a();
    let file = copy_fixture(&sb, "dotenv_basic.enc.env", "app.env");
    let out = sb.enseal(["exec-file", &file, "cat {}"]);
    out.assert_success("exec-file");
    let decrypted = sb.enseal(["decrypt", &file]);
    decrypted.assert_success("decrypt");
    assert_eq!(out.stdout_str(), decrypted.stdout_str());
    assert!(out.stdout_str().contains("API_TOKEN=tok_9f8e7d6c5b4a"));
}

#[test]
fn keygen_prints_an_identity_that_age_and_enseal_accept() {
    let mut sb = Sandbox::new();
    let out = sb.enseal(["keygen"]);
    out.assert_success("enseal keygen");
    let text = out.stdout_str();
    assert!(
        text.lines().any(|l| l.starts_with("AGE-SECRET-KEY-1")),
        "keygen printed no age identity: {text}"
    );
    let key_file = sb.write("keys.txt", &out.stdout);
    let recipient = sb.run(peers::age_keygen(), ["-y".as_ref(), key_file.as_os_str()]);
    recipient.assert_success("age-keygen -y on enseal's identity");
    let recipient = recipient.stdout_str().trim().to_string();
    assert!(recipient.starts_with("age1"));
    if let Some(public) = text.lines().find_map(|l| l.strip_prefix("# public key: ")) {
        assert_eq!(public.trim(), recipient, "the public key comment is wrong");
    }
    sb.env("SOPS_AGE_KEY_FILE", &key_file);
    sb.write("plain.yaml", PLAIN_YAML);
    let enc = sb.enseal(["encrypt", "--age", &recipient, "plain.yaml"]);
    enc.assert_success("encrypt to the new recipient");
    sb.write("enc.yaml", &enc.stdout);
    let dec = sb.sops(["decrypt", "enc.yaml"]);
    dec.assert_success("sops decrypt with enseal's new identity");
}

#[test]
fn recipients_from_sops_age_recipients_env() {
    let mut sb = sandbox_with_key_a();
    sb.env("SOPS_AGE_RECIPIENTS", peers::recipient("a"));
    sb.write("plain.yaml", PLAIN_YAML);
    let out = sb.enseal(["encrypt", "plain.yaml"]);
    out.assert_success("encrypt with SOPS_AGE_RECIPIENTS");
    sb.write("enc.yaml", &out.stdout);
    sb.sops(["decrypt", "enc.yaml"])
        .assert_success("sops decrypt");
}

// ---------------------------------------------------------------------------------------------
// Large files: enseal checks the MAC of a large file beside preparing its output (on another
// core), and must still print nothing when it is wrong.

const MAC_MISMATCH: i32 = 51;

fn large_secret(keys: usize) -> String {
    let mut out =
        String::from("apiVersion: v1\nkind: Secret\nmetadata:\n  name: big\nstringData:\n");
    for i in 0..keys {
        out.push_str(&format!(
            "  SECRET_{i:05}: value-{i:05}-of-a-large-secret-file\n"
        ));
    }
    out
}

#[test]
fn a_large_file_with_a_dropped_value_exits_51_like_sops_and_prints_nothing() {
    let sb = sandbox_with_key_a();
    sb.write("big.yaml", large_secret(12_000));
    let out = sb.sops(["encrypt", "--age", &peers::recipient("a"), "big.yaml"]);
    out.assert_success("sops encrypt");
    sb.write("big.enc.yaml", &out.stdout);

    // Untouched, it opens to what sops gives.
    let by_sops = sb.sops(["decrypt", "big.enc.yaml"]);
    by_sops.assert_success("sops decrypt");
    let by_enseal = sb.enseal(["decrypt", "big.enc.yaml"]);
    by_enseal.assert_success("enseal decrypt");
    assert_eq!(by_enseal.stdout_str(), by_sops.stdout_str());

    // One value dropped from the middle: the MAC no longer matches.
    let text = String::from_utf8_lossy(&sb.read("big.enc.yaml")).into_owned();
    let tampered: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("SECRET_06000:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(tampered.lines().count() + 1, text.lines().count());
    sb.write("big.enc.yaml", &tampered);
    let (_, by_enseal) = same_code_as_sops(
        &sb,
        &["decrypt", "big.enc.yaml"],
        MAC_MISMATCH,
        "dropped value",
    );
    assert!(
        by_enseal.stdout.is_empty(),
        "plaintext printed before the MAC check"
    );
    let stderr = by_enseal.stderr_str();
    assert!(
        stderr.contains("big.enc.yaml") && stderr.contains("MAC"),
        "{stderr}"
    );
    assert!(!stderr.contains("of-a-large-secret-file"), "{stderr}");
    // Nor written in place.
    let out = sb.enseal(["decrypt", "-i", "big.enc.yaml"]);
    assert_eq!(out.code, Some(MAC_MISMATCH), "{}", out.stderr_str());
    assert_eq!(sb.read("big.enc.yaml"), tampered.as_bytes());
}

/// sops encrypts every bool as `True`/`False` and prints `true`/`false`; enseal prints a sops
/// file's bools the same way, and still gives back a bool written `True` in a file it encrypted.
#[test]
fn bools_read_from_a_sops_file_print_as_sops_prints_them() {
    let sb = sandbox_with_key_a();
    let plain = "a: true\nb: False\nc: TRUE\nd: [True, false]\n";
    sb.write("b.yaml", plain);
    let out = sb.sops(["encrypt", "--age", &peers::recipient("a"), "b.yaml"]);
    out.assert_success("sops encrypt");
    sb.write("b.sops.yaml", &out.stdout);
    let by_sops = sb.sops(["decrypt", "b.sops.yaml"]);
    by_sops.assert_success("sops decrypt");
    let by_enseal = sb.enseal(["decrypt", "b.sops.yaml"]);
    by_enseal.assert_success("enseal decrypt");
    assert_eq!(by_enseal.stdout_str(), by_sops.stdout_str());

    let enc = encrypt_with_enseal(&sb, "b.enseal.yaml", plain);
    let back = sb.enseal(["decrypt", &enc]);
    back.assert_success("enseal decrypt of its own file");
    assert_eq!(back.stdout_str(), plain);
    let by_sops = sb.sops(["decrypt", &enc]);
    by_sops.assert_success("sops decrypt of enseal's file");
    assert_eq!(
        by_sops.stdout_str(),
        "a: true\nb: false\nc: true\nd:\n    - true\n    - false\n"
    );
}

// ---------------------------------------------------------------------------------------------
// quoting of decrypted values

/// Strings that YAML 1.1 readers (kubectl, PyYAML) would take as booleans or numbers when bare
/// (`no`, `off`, `y`, `0:0`): sops prints them double-quoted, and so must enseal when it
/// decrypts a sops file, block and flow values alike. Compared byte for byte, not as data.
#[test]
fn decrypting_a_sops_file_quotes_yaml_1_1_booleans_and_base_60_numbers_as_sops_does() {
    let sb = sandbox_with_key_a();
    sb.write(
        "plain.yaml",
        "a: \"no\"\nb: \"off\"\nc: \"0:0\"\nd: \"yes\"\ne: plain\nl: [\"y\", \"N\", x]\n",
    );
    let enc = sb.sops(["encrypt", "--age", &peers::recipient("a"), "plain.yaml"]);
    enc.assert_success("sops encrypt");
    sb.write("enc.yaml", &enc.stdout);
    let by_sops = sb.sops(["decrypt", "enc.yaml"]);
    by_sops.assert_success("sops decrypt");
    let by_enseal = sb.enseal(["decrypt", "enc.yaml"]);
    by_enseal.assert_success("enseal decrypt");
    assert_eq!(by_enseal.stdout_str(), by_sops.stdout_str());
    assert!(by_enseal.stdout_str().contains("a: \"no\"\n"));
}

/// `set` writes a new value without source text; decrypted, it is quoted as sops quotes it,
/// while a value that was plain in the original file stays plain (enseal's lossless promise).
#[test]
fn a_value_set_to_a_yaml_1_1_boolean_string_decrypts_quoted_and_untouched_plain_text_stays() {
    let sb = sandbox_with_key_a();
    sb.write("plain.yaml", "a: yes\nb: 1\n");
    let enc = sb.enseal(["encrypt", "--age", &peers::recipient("a"), "plain.yaml"]);
    enc.assert_success("enseal encrypt");
    sb.write("enc.yaml", &enc.stdout);
    sb.enseal(["set", "enc.yaml", r#"["b"]"#, r#""off""#])
        .assert_success("enseal set");
    let by_enseal = sb.enseal(["decrypt", "enc.yaml"]);
    by_enseal.assert_success("enseal decrypt");
    assert_eq!(by_enseal.stdout_str(), "a: yes\nb: \"off\"\n");
    let by_sops = sb.sops(["decrypt", "enc.yaml"]);
    by_sops.assert_success("sops decrypt");
    assert_eq!(by_sops.stdout_str(), "a: \"yes\"\nb: \"off\"\n");
}

/// The command lines scripts and tools type (helm-secrets: `sops --decrypt --input-type yaml
/// --output-type yaml FILE`), run with enseal and both sops releases: same exit code, same
/// output (decrypt, extract), same file (set, then decrypted), same data after rotate.
#[test]
fn sops_top_level_forms_work_as_with_both_sops_releases() {
    let sb = sandbox_with_key_a();
    let enc = encrypt_with_enseal(&sb, "secrets.enc.yaml", PLAIN_YAML);
    let forms: [&[&str]; 4] = [
        &["-d", &enc],
        &[
            "--decrypt",
            "--input-type",
            "yaml",
            "--output-type",
            "yaml",
            &enc,
        ],
        &["-d", "--extract", r#"["database"]["password"]"#, &enc],
        &["--decrypt", "--extract", r#"["database"]"#, &enc],
    ];
    for release in peers::SopsRelease::ALL {
        for args in forms {
            let by_sops = sb.sops_of(release, args);
            by_sops.assert_success(&format!("sops {} {args:?}", release.name()));
            let by_enseal = sb.enseal(args);
            by_enseal.assert_success(&format!("enseal {args:?}"));
            assert_eq!(
                by_enseal.stdout_str(),
                by_sops.stdout_str().replace("    ", "  "),
                "{args:?}: enseal prints other text than sops {}",
                release.name()
            );
        }
    }
    // --set and -r -i change the file; both tools then decrypt it to the same text.
    for (tool, file) in [("enseal", "by-enseal.yaml"), ("sops", "by-sops.yaml")] {
        sb.write(file, sb.read(&enc));
        let set = ["--set", r#"["database"]["password"] "new pass""#, file];
        let rotate = ["-r", "-i", file];
        for args in [&set[..], &rotate[..]] {
            let out = if tool == "enseal" {
                sb.enseal(args)
            } else {
                sb.sops(args)
            };
            out.assert_success(&format!("{tool} {args:?}"));
        }
    }
    for file in ["by-enseal.yaml", "by-sops.yaml"] {
        let out = sb.sops(["-d", file]);
        out.assert_success(&format!("sops -d {file}"));
        assert!(
            out.stdout_str().contains("password: new pass"),
            "{file}: {}",
            out.stdout_str()
        );
    }
    // `-e -i`: encrypted in place, and sops opens it.
    sb.write("plain.yaml", PLAIN_YAML);
    let recipient = peers::recipient("a");
    sb.enseal(["-e", "-i", "--age", &recipient, "plain.yaml"])
        .assert_success("enseal -e -i");
    sb.sops(["-d", "plain.yaml"])
        .assert_success("sops -d of enseal -e -i");
}

#[test]
fn two_top_level_actions_and_a_set_without_a_value_exit_like_sops() {
    let sb = sandbox_with_key_a();
    let enc = encrypt_with_enseal(&sb, "s.enc.yaml", PLAIN_YAML);
    same_code_as_sops(
        &sb,
        &["--set", r#"["database"]"#, &enc],
        INVALID_SET_FORMAT,
        "--set without a value",
    );
    let by_enseal = sb.enseal(["-d", "-e", &enc]);
    assert_eq!(
        by_enseal.code,
        Some(CONFLICTING_PARAMETERS),
        "{}",
        by_enseal.stderr_str()
    );
}

/// A file whose `mac` entry was removed: sops (3.11 and 3.13) exits 51 ("File has no MAC"),
/// and `--ignore-mac` recovers the values.
#[test]
fn a_file_without_mac_exits_51_and_opens_with_ignore_mac_like_sops() {
    let sb = sandbox_with_key_a();
    let enc = encrypt_with_enseal(&sb, "s.enc.yaml", PLAIN_YAML);
    let text = String::from_utf8(sb.read(&enc)).expect("UTF-8");
    let without: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("mac:"))
        .map(|l| format!("{l}\n"))
        .collect();
    sb.write("nomac.yaml", without);
    for release in peers::SopsRelease::ALL {
        let by_sops = sb.sops_of(release, ["decrypt", "nomac.yaml"]);
        assert_eq!(by_sops.code, Some(51), "sops {}", release.name());
        let with_ignore = sb.sops_of(release, ["decrypt", "--ignore-mac", "nomac.yaml"]);
        with_ignore.assert_success("sops --ignore-mac");
    }
    let by_enseal = sb.enseal(["decrypt", "nomac.yaml"]);
    assert_eq!(by_enseal.code, Some(51), "{}", by_enseal.stderr_str());
    assert!(by_enseal.stdout.is_empty());
    assert!(by_enseal.stderr_str().contains("nomac.yaml"));
    let recovered = sb.enseal(["decrypt", "--ignore-mac", "nomac.yaml"]);
    recovered.assert_success("enseal --ignore-mac");
    assert_eq!(recovered.stdout_str(), PLAIN_YAML);
}

/// sops refuses an empty file (exit 92) and a YAML file of comments only (exit 2); enseal
/// used to write an empty encrypted file, losing the comments.
#[test]
fn empty_and_comment_only_files_are_refused_like_sops() {
    let sb = sandbox_with_key_a();
    let recipient = peers::recipient("a");
    sb.write("empty.yaml", "");
    sb.write("comments.yaml", "# only\n# comments\n");
    for (file, code) in [("empty.yaml", 92), ("comments.yaml", CANNOT_READ_INPUT)] {
        let args = ["encrypt", "--age", recipient.as_str(), file];
        let (_, by_enseal) = same_code_as_sops(&sb, &args, code, file);
        assert!(by_enseal.stdout.is_empty());
        assert!(
            by_enseal.stderr_str().contains(file),
            "{}",
            by_enseal.stderr_str()
        );
    }
}

/// Key sources are read lazily, as sops reads them: a malformed `SOPS_AGE_KEY`, a failing
/// `SOPS_AGE_KEY_CMD` or a missing `SOPS_AGE_KEY_FILE` is no error when another source opens
/// the file; with nothing else, decryption fails with 128 naming the broken source.
#[test]
fn a_broken_key_source_does_not_stop_another_like_sops() {
    let mut sb = sandbox_with_key_a();
    let enc = encrypt_with_enseal(&sb, "s.enc.yaml", PLAIN_YAML);
    sb.env("SOPS_AGE_KEY", "AGE-SECRET-KEY-1BROKEN");
    sb.env("SOPS_AGE_KEY_CMD", "false");
    for release in peers::SopsRelease::ALL {
        sb.sops_of(release, ["decrypt", &enc])
            .assert_success(&format!("sops {} with one broken source", release.name()));
    }
    let out = sb.enseal(["decrypt", &enc]);
    out.assert_success("enseal with a broken SOPS_AGE_KEY and SOPS_AGE_KEY_CMD");
    assert_eq!(out.stdout_str(), PLAIN_YAML);

    sb.env_remove("SOPS_AGE_KEY_FILE");
    let by_enseal = sb.enseal(["decrypt", &enc]);
    assert_eq!(
        by_enseal.code,
        Some(COULD_NOT_RETRIEVE_KEY),
        "{}",
        by_enseal.stderr_str()
    );
    assert!(by_enseal.stdout.is_empty());
    let err = by_enseal.stderr_str();
    assert!(err.contains("SOPS_AGE_KEY (unusable:"), "{err}");
    assert!(!err.contains("BROKEN"), "the key text is not shown: {err}");
    let by_sops = sb.sops(["decrypt", &enc]);
    assert_eq!(by_sops.code, Some(COULD_NOT_RETRIEVE_KEY));
}

/// sops 3.13 reads several keys from one `SOPS_AGE_KEY`, separated by blanks.
#[test]
fn sops_age_key_with_several_keys_opens_the_file_like_sops_3_13() {
    let mut sb = sandbox_with_key_a();
    let enc = encrypt_with_enseal(&sb, "s.enc.yaml", PLAIN_YAML);
    let key = |name: &str| {
        peers::identities(&[name])
            .lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
            .expect("key line")
            .to_string()
    };
    sb.env_remove("SOPS_AGE_KEY_FILE");
    sb.env("SOPS_AGE_KEY", format!("{} {}", key("b"), key("a")));
    sb.sops_of(peers::SopsRelease::V3_13, ["decrypt", &enc])
        .assert_success("sops 3.13 with two keys on one line");
    let out = sb.enseal(["decrypt", &enc]);
    out.assert_success("enseal with two keys on one SOPS_AGE_KEY line");
    assert_eq!(out.stdout_str(), PLAIN_YAML);
}

/// A YAML file decrypted to dotenv prints its typed values as sops does (`stores.ValToString`:
/// `true`, `1.2345678905E+09`, `3.0`, `<nil>`), with both releases.
#[test]
fn yaml_decrypted_to_dotenv_prints_values_as_sops_does() {
    let sb = sandbox_with_key_a();
    let plain = "a: true\nb: false\nc: null\nd: 1234567890.5\ne: 1.5\nf: 3\ng: 3.0\n\
                 h: 0.00001\ni: str\nj: 0x1F\n";
    let enc = encrypt_with_enseal(&sb, "t.enc.yaml", plain);
    let args = ["decrypt", "--output-type", "dotenv", enc.as_str()];
    let by_enseal = sb.enseal(args);
    by_enseal.assert_success("enseal decrypt to dotenv");
    for release in peers::SopsRelease::ALL {
        let by_sops = sb.sops_of(release, args);
        by_sops.assert_success(&format!("sops {} decrypt to dotenv", release.name()));
        assert_eq!(
            by_enseal.stdout_str(),
            by_sops.stdout_str(),
            "sops {}",
            release.name()
        );
    }
}

/// A JSON object with a key given twice: sops keeps both (3.11 and 3.13), so does enseal; each
/// reads the other's file, and enseal's round trip is exact.
#[test]
fn json_with_a_duplicate_key_goes_both_ways_like_sops() {
    let sb = sandbox_with_key_a();
    let plain = "{\n  \"a\": 1,\n  \"b\": \"x\",\n  \"a\": 2\n}\n";
    let enc = encrypt_with_enseal(&sb, "d.enc.json", plain);
    let back = sb.enseal(["decrypt", &enc]);
    back.assert_success("enseal decrypt");
    assert_eq!(back.stdout_str(), plain);
    sb.write("d.json", plain);
    let recipient = peers::recipient("a");
    for release in peers::SopsRelease::ALL {
        let by_sops = sb.sops_of(release, ["decrypt", enc.as_str()]);
        by_sops.assert_success(&format!("sops {} decrypt of enseal's file", release.name()));
        assert_eq!(
            by_sops.stdout_str(),
            plain.replace("  ", "\t"),
            "sops {}",
            release.name()
        );
        let sops_file = sb.sops_of(release, ["encrypt", "--age", &recipient, "d.json"]);
        sops_file.assert_success("sops encrypt");
        sb.write("s.enc.json", &sops_file.stdout);
        let by_enseal = sb.enseal(["decrypt", "s.enc.json"]);
        by_enseal.assert_success("enseal decrypt of sops' file");
        assert_eq!(by_enseal.stdout_str(), plain.replace("  ", "\t"));
    }
}

/// A creation rule that names no keys (no key groups, `key_groups: []`, or an empty group):
/// sops 3.11 and 3.13 exit 1 with "Could not generate data key: [empty key group provided]".
/// Under the name `sops` enseal prints exactly that line (sops' functional tests compare it);
/// as `enseal` it adds which file, and warns about the unknown `.sops.yaml` key sops ignores.
#[test]
fn a_creation_rule_without_keys_fails_with_sops_words_and_exit_code() {
    let sb = sandbox_with_key_a();
    sb.write(
        ".sops.yaml",
        "creation_rules:\n  - path_regex: none\\.yaml$\n  - path_regex: zero\\.yaml$\n    key_groups: []\n  \
         - path_regex: empty\\.yaml$\n    key_groups:\n      - {}\n\
         destination_rules:\n  - path_regex: x\n    reencryption_rule:\n      age: age1x\n",
    );
    let as_sops = sb.path().join("sops");
    std::os::unix::fs::symlink(enseal_tests::cli::enseal_bin(), &as_sops).expect("link sops");
    for name in ["none.yaml", "zero.yaml", "empty.yaml"] {
        sb.write(name, "a: secret\n");
        for release in peers::SopsRelease::ALL {
            let by_sops = sb.sops_of(release, ["encrypt", name]);
            assert_eq!(
                by_sops.code,
                Some(GENERIC_ERROR),
                "sops {}: {name}",
                release.name()
            );
            assert_eq!(
                by_sops.stderr_str(),
                "Could not generate data key: [empty key group provided]\n"
            );
        }
        let named_sops = sb.run(&as_sops, ["encrypt", name]);
        assert_eq!(named_sops.code, Some(GENERIC_ERROR), "{name}");
        assert_eq!(
            named_sops.stderr_str(),
            "Could not generate data key: [empty key group provided]\n",
            "{name}: enseal run as `sops` speaks as sops"
        );
        let named_enseal = sb.enseal(["encrypt", name]);
        assert_eq!(named_enseal.code, Some(GENERIC_ERROR), "{name}");
        let err = named_enseal.stderr_str();
        assert!(
            err.contains("unknown key \"reencryption_rule\" ignored")
                && err.contains(&format!(
                    "enseal: Could not generate data key: [empty key group provided] ({name}: "
                )),
            "{name}: enseal names the file and warns about the unknown key:\n{err}"
        );
        assert_eq!(sb.read(name), b"a: secret\n", "{name} is left as it was");
    }
}

/// No `.sops.yaml` and no keys on the command line: sops exits 1 (not 61).
#[test]
fn no_config_and_no_keys_exits_1_as_sops() {
    let sb = sandbox_with_key_a();
    sb.write("s.yaml", PLAIN_YAML);
    let (_, by_enseal) = same_code_as_sops(&sb, &["encrypt", "s.yaml"], GENERIC_ERROR, "no keys");
    assert!(by_enseal
        .stderr_str()
        .contains("config file not found, or has no creation rules"));
}

/// A sandbox with key a and `s.json` (`{"a": 2, "b": "ba"}`, sops' functional-test file)
/// encrypted for it in place.
fn with_encrypted_json() -> Sandbox {
    let sb = sandbox_with_key_a();
    sb.write("s.json", r#"{"a": 2, "b": "ba"}"#);
    sb.enseal(["encrypt", "-i", "--age", &peers::recipient("a"), "s.json"])
        .assert_success("encrypt");
    sb
}

/// `set --value-file` is a switch, as in sops: VALUE is then the file holding the JSON value.
#[test]
fn set_value_file_is_a_switch_naming_the_value_file() {
    let sb = with_encrypted_json();
    sb.write("value.json", r#"{"cc": "ccc"}"#);
    sb.enseal(["set", "--value-file", "s.json", r#"["c"]"#, "value.json"])
        .assert_success("set --value-file");
    let out = sb.enseal(["decrypt", "--extract", r#"["c"]["cc"]"#, "s.json"]);
    assert_eq!(out.assert_success("extract").stdout_str(), "ccc");
}

/// `set --output-type yaml f.json` rewrites f.json as YAML, as sops does, keeping the
/// ciphertext of the values that did not change.
#[test]
fn set_with_output_type_rewrites_the_file_in_that_format() {
    let sb = with_encrypted_json();
    let before = String::from_utf8(sb.read("s.json")).unwrap();
    sb.enseal([
        "set",
        "--output-type",
        "yaml",
        "s.json",
        r#"["b"]"#,
        r#""bb""#,
    ])
    .assert_success("set --output-type yaml");
    let after = String::from_utf8(sb.read("s.json")).unwrap();
    assert!(after.starts_with("a: ENC["), "written as YAML:\n{after}");
    let a_before = before.split('"').find(|s| s.starts_with("ENC[")).unwrap();
    assert!(
        after.contains(a_before),
        "the unchanged value keeps its ciphertext"
    );
    for release in peers::SopsRelease::ALL {
        let out = sb.sops_of(
            release,
            [
                "decrypt",
                "--input-type",
                "yaml",
                "--output-type",
                "yaml",
                "s.json",
            ],
        );
        assert_eq!(
            out.assert_success("sops decrypt").stdout_str(),
            "a: 2\nb: bb\n"
        );
    }
}

/// INI converted to JSON or YAML holds ini.v1's `DEFAULT` section first, empty when the file
/// has no keys before its first header: byte for byte what sops 3.11 and 3.13 print.
#[test]
fn ini_converts_to_json_and_yaml_with_the_default_section_as_sops() {
    let sb = sandbox_with_key_a();
    let recipient = peers::recipient("a");
    sb.write("no-default.ini", "[s]\nk = v\n");
    sb.write("with-default.ini", "top = 1\n[s]\nk = v\n");
    for name in ["no-default.ini", "with-default.ini"] {
        let enc = format!("enc-{name}");
        let out = sb.enseal(["encrypt", "--age", &recipient, name]);
        sb.write(&enc, out.assert_success("encrypt").stdout.clone());
        for output_type in ["json", "yaml"] {
            let args = ["decrypt", "--output-type", output_type, enc.as_str()];
            let by_enseal = sb.enseal(args);
            let by_enseal = by_enseal.assert_success("enseal decrypt").stdout_str();
            assert!(
                by_enseal.contains("DEFAULT"),
                "{name} as {output_type}:\n{by_enseal}"
            );
            for release in peers::SopsRelease::ALL {
                let by_sops = sb.sops_of(release, args);
                assert_eq!(
                    by_enseal,
                    by_sops.assert_success("sops decrypt").stdout_str(),
                    "{name} as {output_type}, sops {}",
                    release.name()
                );
            }
        }
    }
}

/// sops' `groups add` and `groups delete`: the data key is wrapped again for the new key groups
/// (two groups: Shamir, threshold 2, as sops records it); the values keep their ciphertext. The
/// real sops opens the result with exactly the keys the groups say.
#[test]
fn groups_add_and_delete_rewrap_the_data_key_as_sops_does() {
    let mut sb = Sandbox::new();
    let (a, b) = (peers::recipient("a"), peers::recipient("b"));
    sb.use_identities(&["a"]);
    sb.write("g.yaml", PLAIN_YAML);
    let out = sb.enseal(["encrypt", "--age", &a, "g.yaml"]);
    sb.write("g.yaml", out.assert_success("encrypt").stdout.clone());
    let values = |sb: &Sandbox| -> Vec<String> {
        String::from_utf8(sb.read("g.yaml"))
            .unwrap()
            .lines()
            .take_while(|l| !l.starts_with("sops:"))
            .map(str::to_string)
            .collect()
    };
    let before = values(&sb);

    sb.enseal(["groups", "add", "--file", "g.yaml", "-i", "--age", &b])
        .assert_success("groups add");
    let added = String::from_utf8(sb.read("g.yaml")).unwrap();
    assert!(
        added.contains("shamir_threshold: 2") && added.contains(&b),
        "{added}"
    );
    assert_eq!(
        values(&sb),
        before,
        "groups add leaves the values as they were"
    );
    for release in peers::SopsRelease::ALL {
        sb.use_identities(&["a", "b"]);
        let both = sb.sops_of(release, ["decrypt", "g.yaml"]);
        // sops re-indents (4 spaces); the values are what matters.
        let text = both.assert_success("sops, keys a and b").stdout_str();
        assert!(text.contains("password: correct-horse-battery"), "{text}");
        sb.use_identities(&["a"]);
        let one = sb.sops_of(release, ["decrypt", "g.yaml"]);
        assert!(
            !one.success(),
            "sops {}: one of two groups must not open it",
            release.name()
        );
    }

    sb.use_identities(&["a", "b"]);
    let refused = sb.enseal(["groups", "delete", "--file", "g.yaml", "-i", "0"]);
    assert_eq!(
        refused.code,
        Some(GENERIC_ERROR),
        "threshold 2 with one group left"
    );
    assert_eq!(
        String::from_utf8(sb.read("g.yaml")).unwrap(),
        added,
        "left untouched"
    );
    let out_of_range = sb.enseal(["groups", "delete", "--file", "g.yaml", "7"]);
    assert_eq!(out_of_range.code, Some(GENERIC_ERROR));
    sb.enseal([
        "groups",
        "delete",
        "--file",
        "g.yaml",
        "-i",
        "--shamir-secret-sharing-threshold",
        "1",
        "0",
    ])
    .assert_success("groups delete");
    assert_eq!(
        values(&sb),
        before,
        "groups delete leaves the values as they were"
    );
    let left = String::from_utf8(sb.read("g.yaml")).unwrap();
    assert!(!left.contains(&a) && left.contains(&b), "{left}");
    sb.use_identities(&["b"]);
    for release in peers::SopsRelease::ALL {
        let out = sb.sops_of(release, ["decrypt", "g.yaml"]);
        let text = out.assert_success("sops, key b").stdout_str();
        assert!(text.contains("password: correct-horse-battery"), "{text}");
    }
}

/// A broken `.sops.yaml` (bad YAML, a bad path_regex, a wrong type, two crypt rules in one
/// creation rule): sops 3.11 and 3.13 exit 1 when encrypting, and so does enseal, naming the
/// config file; the input is left alone.
#[test]
fn a_broken_config_fails_encryption_with_exit_1_as_sops() {
    let sb = sandbox_with_key_a();
    let a = peers::recipient("a");
    sb.write("s.yaml", PLAIN_YAML);
    for config in [
        "creation_rules: [\n".to_string(),
        format!("creation_rules:\n  - age: {a}\n    path_regex: '('\n"),
        format!("creation_rules:\n  - age: {a}\n    shamir_threshold: x\n"),
        format!(
            "creation_rules:\n  - age: {a}\n    encrypted_regex: a\n    unencrypted_regex: b\n"
        ),
    ] {
        sb.write(".sops.yaml", &config);
        for release in peers::SopsRelease::ALL {
            let by_sops = sb.sops_of(release, ["encrypt", "s.yaml"]);
            assert_eq!(
                by_sops.code,
                Some(GENERIC_ERROR),
                "sops {}: {config}",
                release.name()
            );
        }
        let by_enseal = sb.enseal(["encrypt", "-i", "s.yaml"]);
        assert_eq!(by_enseal.code, Some(GENERIC_ERROR), "{config}");
        assert!(
            by_enseal.stderr_str().contains(".sops.yaml"),
            "{}",
            by_enseal.stderr_str()
        );
        assert_eq!(sb.read("s.yaml"), PLAIN_YAML.as_bytes());
    }
}
