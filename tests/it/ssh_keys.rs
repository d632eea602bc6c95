//! SSH keys as age recipients and identities, against the real sops 3.11, age and ssh-keygen.
//!
//! sops 3.11 accepts `ssh-ed25519 ...` and `ssh-rsa ...` public keys wherever it takes an age
//! recipient (age's agessh), writes the trimmed public key line (comment included) as the
//! stanza's `recipient:`, and finds the private key in SOPS_AGE_SSH_PRIVATE_KEY_FILE, then
//! `~/.ssh/id_ed25519` and `~/.ssh/id_rsa`. enseal must do the same, both ways.

use std::path::{Path, PathBuf};
use std::process::Command;

use enseal_tests::cli::{Output, Sandbox};
use enseal_tests::peers;

const PLAIN_YAML: &str = "db:\n    user: admin\n    password: hunter2\nport: 5432\n";
const COULD_NOT_RETRIEVE_KEY: i32 = 128;
const KINDS: [&str; 2] = ["ed25519", "rsa"];

/// A fresh key pair from the real ssh-keygen, in `dir`: (private key path, public key line).
fn ssh_keygen(dir: &Path, name: &str, kind: &str, passphrase: &str) -> (PathBuf, String) {
    std::fs::create_dir_all(dir).expect("mkdir for the SSH key");
    let path = dir.join(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args([
        "-q",
        "-t",
        kind,
        "-N",
        passphrase,
        "-C",
        "tester@enseal",
        "-f",
    ])
    .arg(&path);
    if kind == "rsa" {
        // Keeps generation quick; agessh's minimum is 2048.
        cmd.args(["-b", "2048"]);
    }
    let status = cmd.status().unwrap_or_else(|e| {
        panic!("cannot run ssh-keygen ({e}): install it with `apt-get install -y openssh-client`")
    });
    assert!(status.success(), "ssh-keygen -t {kind} failed");
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("read .pub");
    (path, public.trim().to_owned())
}

/// The sandbox's HOME (`<sandbox>/home`).
fn home(sb: &Sandbox) -> PathBuf {
    sb.path().parent().expect("sandbox root").join("home")
}

/// A key outside HOME, so only SOPS_AGE_SSH_PRIVATE_KEY_FILE finds it.
fn key_dir(sb: &Sandbox) -> PathBuf {
    sb.path().parent().expect("sandbox root").join("sshkeys")
}

/// The `enc` block scalars of a sops YAML file, in file order, indentation stripped.
fn enc_blocks(yaml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in yaml.lines() {
        let t = line.trim();
        if let Some(buf) = current.as_mut() {
            buf.push_str(t);
            buf.push('\n');
            if t == "-----END AGE ENCRYPTED FILE-----" {
                out.push(current.take().expect("open block"));
            }
        } else if t == "enc: |" {
            current = Some(String::new());
        }
    }
    out
}

/// The `recipient:` values of a sops YAML file, in file order.
fn recipients(yaml: &str) -> Vec<String> {
    yaml.lines()
        .filter_map(|l| {
            l.trim()
                .trim_start_matches("- ")
                .strip_prefix("recipient: ")
        })
        .map(str::to_owned)
        .collect()
}

fn decrypted(out: &Output, what: &str) -> String {
    out.assert_success(what);
    out.stdout_str()
}

#[test]
fn enseal_decrypts_what_sops_encrypts_for_an_ssh_recipient() {
    for kind in KINDS {
        let mut sb = Sandbox::new();
        let (key, line) = ssh_keygen(&key_dir(&sb), &format!("id_{kind}"), kind, "");
        sb.write("plain.yaml", PLAIN_YAML);
        let enc = sb.sops(["encrypt", "--age", &line, "plain.yaml"]);
        enc.assert_success("sops encrypt for an SSH recipient");
        let text = String::from_utf8(enc.stdout.clone()).expect("utf-8");
        // What sops writes as the recipient: the public key line, comment included.
        assert_eq!(recipients(&text), vec![line.clone()], "{text}");
        sb.write("enc.yaml", &enc.stdout);

        sb.env("SOPS_AGE_SSH_PRIVATE_KEY_FILE", &key);
        let by_sops = decrypted(&sb.sops(["decrypt", "enc.yaml"]), "sops decrypt");
        let by_enseal = decrypted(
            &sb.enseal(["decrypt", "enc.yaml"]),
            "enseal decrypt with SOPS_AGE_SSH_PRIVATE_KEY_FILE",
        );
        assert_eq!(by_enseal, by_sops);

        // The default place, $HOME/.ssh/id_<kind>, with no variable set.
        sb.env_remove("SOPS_AGE_SSH_PRIVATE_KEY_FILE");
        let ssh_dir = home(&sb).join(".ssh");
        std::fs::create_dir_all(&ssh_dir).expect("mkdir ~/.ssh");
        std::fs::copy(&key, ssh_dir.join(format!("id_{kind}"))).expect("copy key to ~/.ssh");
        let by_enseal = decrypted(
            &sb.enseal(["decrypt", "enc.yaml"]),
            "enseal decrypt with ~/.ssh key",
        );
        assert_eq!(by_enseal, by_sops);
    }
}

#[test]
fn sops_decrypts_what_enseal_encrypts_for_ssh_recipients() {
    for kind in KINDS {
        let mut sb = Sandbox::new();
        let (key, line) = ssh_keygen(&key_dir(&sb), &format!("id_{kind}"), kind, "");
        sb.write("plain.yaml", PLAIN_YAML);
        let enc = sb.enseal(["encrypt", "--age", &line, "plain.yaml"]);
        enc.assert_success("enseal encrypt for an SSH recipient");
        let text = String::from_utf8(enc.stdout.clone()).expect("utf-8");
        assert_eq!(recipients(&text), vec![line.clone()], "{text}");
        sb.write("enc.yaml", &enc.stdout);
        sb.env("SOPS_AGE_SSH_PRIVATE_KEY_FILE", &key);
        let by_sops = decrypted(&sb.sops(["decrypt", "enc.yaml"]), "sops decrypt");
        assert_eq!(
            by_sops,
            decrypted(&sb.enseal(["decrypt", "enc.yaml"]), "enseal decrypt")
        );
        assert!(by_sops.contains("hunter2"));
    }
}

#[test]
fn ssh_recipients_from_sops_age_recipients_and_sops_yaml() {
    let mut sb = Sandbox::new();
    let (ed_key, ed) = ssh_keygen(&key_dir(&sb), "ed", "ed25519", "");
    let (rsa_key, rsa) = ssh_keygen(&key_dir(&sb), "rsa", "rsa", "");
    sb.write("plain.yaml", PLAIN_YAML);

    // A comma list: the keys hold spaces, sops splits on commas only and trims.
    sb.env("SOPS_AGE_RECIPIENTS", format!("{ed} , {rsa}"));
    let enc = sb.enseal(["encrypt", "plain.yaml"]);
    enc.assert_success("enseal encrypt with SOPS_AGE_RECIPIENTS");
    let by_env = String::from_utf8(enc.stdout.clone()).expect("utf-8");
    assert_eq!(recipients(&by_env), vec![ed.clone(), rsa.clone()]);
    let sops_enc = sb.sops(["encrypt", "plain.yaml"]);
    sops_enc.assert_success("sops encrypt with SOPS_AGE_RECIPIENTS");
    assert_eq!(
        recipients(&String::from_utf8_lossy(&sops_enc.stdout)),
        recipients(&by_env)
    );
    sb.env_remove("SOPS_AGE_RECIPIENTS");

    // .sops.yaml: a comma string and a list.
    for config in [
        format!("creation_rules:\n  - age: \"{ed},{rsa}\"\n"),
        format!("creation_rules:\n  - age:\n      - {ed}\n      - {rsa}\n"),
    ] {
        sb.write(".sops.yaml", &config);
        let enc = sb.enseal(["encrypt", "plain.yaml"]);
        enc.assert_success("enseal encrypt with .sops.yaml SSH recipients");
        let text = String::from_utf8(enc.stdout.clone()).expect("utf-8");
        assert_eq!(recipients(&text), vec![ed.clone(), rsa.clone()], "{config}");
        sb.write("enc.yaml", &enc.stdout);
        for key in [&ed_key, &rsa_key] {
            sb.env("SOPS_AGE_SSH_PRIVATE_KEY_FILE", key);
            sb.sops(["decrypt", "enc.yaml"])
                .assert_success("sops decrypt with either SSH key");
            sb.enseal(["decrypt", "enc.yaml"])
                .assert_success("enseal decrypt with either SSH key");
        }
        sb.env_remove("SOPS_AGE_SSH_PRIVATE_KEY_FILE");
    }
}

#[test]
fn age_cli_opens_enseals_ssh_stanza() {
    for kind in KINDS {
        let sb = Sandbox::new();
        let (key, line) = ssh_keygen(&key_dir(&sb), &format!("id_{kind}"), kind, "");
        sb.write("plain.yaml", PLAIN_YAML);
        let enc = sb.enseal(["encrypt", "--age", &line, "plain.yaml"]);
        enc.assert_success("enseal encrypt");
        let blocks = enc_blocks(&enc.stdout_str());
        assert_eq!(blocks.len(), 1);
        let key_arg = key.to_str().expect("utf-8 path");
        let out = sb.run_with_stdin(peers::age(), ["-d", "-i", key_arg], blocks[0].as_bytes());
        out.assert_success("age -d -i <ssh key>");
        assert_eq!(
            out.stdout.len(),
            32,
            "the stanza holds the 32-byte data key"
        );
    }
}

#[test]
fn mixed_x25519_and_ssh_file_opens_with_either() {
    let mut sb = Sandbox::new();
    let (ssh_key, ssh) = ssh_keygen(&key_dir(&sb), "ed", "ed25519", "");
    let list = format!("{},{ssh}", peers::recipient("a"));
    sb.write("plain.yaml", PLAIN_YAML);
    let by_enseal = sb.enseal(["encrypt", "--age", &list, "plain.yaml"]);
    by_enseal.assert_success("enseal encrypt, mixed");
    sb.write("enseal.yaml", &by_enseal.stdout);
    let by_sops = sb.sops(["encrypt", "--age", &list, "plain.yaml"]);
    by_sops.assert_success("sops encrypt, mixed");
    sb.write("sops.yaml", &by_sops.stdout);
    assert_eq!(
        recipients(&by_enseal.stdout_str()),
        recipients(&by_sops.stdout_str())
    );

    // Only the X25519 identity.
    sb.use_identities(&["a"]);
    for file in ["enseal.yaml", "sops.yaml"] {
        let s = decrypted(&sb.sops(["decrypt", file]), "sops decrypt with age key");
        let e = decrypted(&sb.enseal(["decrypt", file]), "enseal decrypt with age key");
        assert_eq!(s, e, "{file}");
    }
    // Only the SSH identity.
    sb.env_remove("SOPS_AGE_KEY_FILE");
    sb.env("SOPS_AGE_SSH_PRIVATE_KEY_FILE", &ssh_key);
    for file in ["enseal.yaml", "sops.yaml"] {
        let s = decrypted(&sb.sops(["decrypt", file]), "sops decrypt with SSH key");
        let e = decrypted(&sb.enseal(["decrypt", file]), "enseal decrypt with SSH key");
        assert_eq!(s, e, "{file}");
    }
}

#[test]
fn wrong_ssh_key_exits_128_like_sops() {
    for kind in KINDS {
        let mut sb = Sandbox::new();
        let (_, line) = ssh_keygen(&key_dir(&sb), "right", kind, "");
        let (wrong, _) = ssh_keygen(&key_dir(&sb), "wrong", kind, "");
        sb.write("plain.yaml", PLAIN_YAML);
        let enc = sb.sops(["encrypt", "--age", &line, "plain.yaml"]);
        enc.assert_success("sops encrypt");
        sb.write("enc.yaml", &enc.stdout);
        sb.env("SOPS_AGE_SSH_PRIVATE_KEY_FILE", &wrong);
        sb.sops(["decrypt", "enc.yaml"])
            .assert_code(COULD_NOT_RETRIEVE_KEY, "sops with the wrong SSH key");
        let out = sb.enseal(["decrypt", "enc.yaml"]);
        out.assert_code(COULD_NOT_RETRIEVE_KEY, "enseal with the wrong SSH key");
        assert!(out.stdout.is_empty());
    }
}

/// Without a terminal to ask on, a passphrase-protected key fails naming the file (on a
/// terminal it is asked for: age_key_sources.rs).
#[test]
fn passphrase_protected_ssh_key_without_a_terminal_is_named() {
    let mut sb = Sandbox::new();
    let (key, line) = ssh_keygen(&key_dir(&sb), "locked", "ed25519", "correct horse");
    sb.write("plain.yaml", PLAIN_YAML);
    let enc = sb.enseal(["encrypt", "--age", &line, "plain.yaml"]);
    enc.assert_success("encrypting needs only the public key");
    sb.write("enc.yaml", &enc.stdout);
    sb.env("SOPS_AGE_SSH_PRIVATE_KEY_FILE", &key);
    let out = enseal_tests::terminal::run_without_terminal(
        &sb,
        enseal_tests::cli::enseal_bin(),
        &["decrypt", "enc.yaml"],
    );
    out.assert_code(
        COULD_NOT_RETRIEVE_KEY,
        "enseal with a passphrase-protected key and no terminal",
    );
    assert!(out.stdout.is_empty());
    let err = out.stderr_str();
    assert!(err.contains(key.to_str().expect("utf-8")), "{err}");
    assert!(err.contains("passphrase-protected"), "{err}");
    assert!(err.contains("no terminal"), "{err}");
}
