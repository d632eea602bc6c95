//! The age key sources sops 3.12+ added, against the real sops 3.13.3 (and sops 3.11 where
//! it has them) and the real age CLI: `SOPS_AGE_SSH_PRIVATE_KEY_CMD`, the recipient that the
//! key commands get in `SOPS_AGE_RECIPIENT`, and passphrase-protected identity files (`age -p`),
//! asked for on the terminal, refused by name without one.
//!
//! sops looks for a gpg-agent before asking on the terminal for an identity file's passphrase
//! (github.com/getsops/gopgagent, at ~/.gnupg/S.gpg-agent of the passwd home, not $HOME), so
//! its runs here point GPG_AGENT_INFO at a socket that does not exist: the terminal it is.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use enseal_tests::cli::{enseal_bin, Output, Sandbox};
use enseal_tests::peers::{self, SopsRelease};
use enseal_tests::terminal::{run_on_terminal, run_without_terminal};

const PLAIN_YAML: &str = "db:\n    user: admin\n    password: hunter2\nport: 5432\n";
const COULD_NOT_RETRIEVE_KEY: i32 = 128;
const PASSPHRASE: &str = "correct horse battery staple";
/// What both sops and enseal ask (sops' words; enseal names the file after them).
const PROMPT: &str = "Enter passphrase for identity '";
const TERMINAL_TIMEOUT: Duration = Duration::from_secs(120);

/// A sandbox in which sops finds no gpg-agent (see the module comment).
fn sandbox() -> Sandbox {
    let mut sb = Sandbox::new();
    let nowhere = sb.path().parent().expect("sandbox root").join("no-agent");
    sb.env("GPG_AGENT_INFO", format!("{}:0:1", nowhere.display()));
    sb
}

/// A new age key from the real age-keygen, in the sandbox: (key file, recipient).
fn age_keygen(sb: &Sandbox, name: &str) -> (PathBuf, String) {
    let path = sb.file(name);
    let out = sb.run(peers::age_keygen(), ["-o", path.to_str().unwrap()]);
    out.assert_success("age-keygen");
    let text = std::fs::read_to_string(&path).expect("read the key");
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("public key line")
        .to_owned();
    (path, recipient)
}

/// `key` protected with PASSPHRASE by the real age CLI (`age -p`, `-a` too when `armored`),
/// typed on a terminal as age requires.
fn age_passphrase_file(sb: &Sandbox, key: &Path, armored: bool) -> PathBuf {
    let out_path = key.with_extension(if armored { "age.asc" } else { "age" });
    let mut args = vec!["-p"];
    if armored {
        args.push("-a");
    }
    args.extend(["-o", out_path.to_str().unwrap(), key.to_str().unwrap()]);
    let run = run_on_terminal(
        sb,
        peers::age(),
        &args,
        &[
            ("Enter passphrase", PASSPHRASE),
            ("Confirm passphrase", PASSPHRASE),
        ],
        TERMINAL_TIMEOUT,
    );
    run.output.assert_success("age -p");
    let head = std::fs::read(&out_path).expect("read the age -p output");
    let expected: &[u8] = if armored {
        b"-----BEGIN AGE ENCRYPTED FILE-----"
    } else {
        b"age-encryption.org/v1\n-> scrypt "
    };
    assert!(head.starts_with(expected), "age -p wrote something else");
    out_path
}

/// `plain.yaml` encrypted by sops 3.13.3 for `recipients` (comma list), as `enc.yaml`.
fn encrypted_by_sops(sb: &Sandbox, recipients: &str) {
    sb.write("plain.yaml", PLAIN_YAML);
    let enc = sb.sops_of(
        SopsRelease::V3_13,
        ["encrypt", "--age", recipients, "plain.yaml"],
    );
    enc.assert_success("sops 3.13 encrypt");
    sb.write("enc.yaml", &enc.stdout);
}

fn plaintext_of(out: &Output, what: &str) -> String {
    out.assert_success(what);
    out.stdout_str()
}

/// sops 3.13 runs SOPS_AGE_KEY_CMD for each age key it tries, in the file's order, with the
/// key's recipient in SOPS_AGE_RECIPIENT; enseal runs it for the same keys, with the same
/// recipients, in the same order.
#[test]
fn the_age_key_command_gets_the_recipient_of_each_key_tried_as_sops_passes_it() {
    let mut sb = sandbox();
    let (_, other) = age_keygen(&sb, "other.txt");
    let (mine_key, mine) = age_keygen(&sb, "mine.txt");
    encrypted_by_sops(&sb, &format!("{other},{mine}"));
    let root = sb.path().parent().expect("sandbox root").to_path_buf();
    let log_of = |who: &str| root.join(format!("{who}.log"));
    let mut outputs = Vec::new();
    for who in ["sops", "enseal"] {
        // Prints my key whatever is asked, and notes what was asked.
        let script = format!(
            "echo \"$SOPS_AGE_RECIPIENT\" >> '{}'; cat '{}'",
            log_of(who).display(),
            mine_key.display()
        );
        sb.env(
            "SOPS_AGE_KEY_CMD",
            format!("sh -c '{}'", script.replace('\'', r"'\''")),
        );
        let out = if who == "sops" {
            sb.sops_of(SopsRelease::V3_13, ["decrypt", "enc.yaml"])
        } else {
            sb.enseal(["decrypt", "enc.yaml"])
        };
        outputs.push(plaintext_of(
            &out,
            &format!("{who} decrypt with SOPS_AGE_KEY_CMD"),
        ));
    }
    assert_eq!(outputs[0], outputs[1]);
    assert!(outputs[1].contains("hunter2"));
    let sops_log = std::fs::read_to_string(log_of("sops")).expect("sops ran the command");
    assert_eq!(
        sops_log,
        format!("{other}\n{mine}\n"),
        "what sops 3.13 passes"
    );
    let enseal_log = std::fs::read_to_string(log_of("enseal")).expect("enseal ran the command");
    assert_eq!(enseal_log, sops_log);
}

/// SOPS_AGE_SSH_PRIVATE_KEY_CMD (sops 3.12+) prints an SSH private key: enseal and sops 3.13
/// open each other's files with it; a passphrase-protected key printed there is refused by
/// both, with sops' exit code.
#[test]
fn an_ssh_key_from_sops_age_ssh_private_key_cmd_opens_files_both_ways() {
    let mut sb = sandbox();
    let dir = sb.path().parent().unwrap().join("sshkeys");
    let (key, line) = ssh_keygen(&dir, "id_ed25519", "");
    encrypted_by_sops(&sb, &line);
    sb.env(
        "SOPS_AGE_SSH_PRIVATE_KEY_CMD",
        format!("cat {}", key.display()),
    );
    let by_sops = plaintext_of(
        &sb.sops_of(SopsRelease::V3_13, ["decrypt", "enc.yaml"]),
        "sops decrypt with SOPS_AGE_SSH_PRIVATE_KEY_CMD",
    );
    let by_enseal = plaintext_of(
        &sb.enseal(["decrypt", "enc.yaml"]),
        "enseal decrypt with SOPS_AGE_SSH_PRIVATE_KEY_CMD",
    );
    assert_eq!(by_enseal, by_sops);

    let enc = sb.enseal(["encrypt", "--age", &line, "plain.yaml"]);
    enc.assert_success("enseal encrypt for the SSH key");
    sb.write("by-enseal.yaml", &enc.stdout);
    assert_eq!(
        plaintext_of(
            &sb.sops_of(SopsRelease::V3_13, ["decrypt", "by-enseal.yaml"]),
            "sops decrypts enseal's file with the command's key",
        ),
        by_sops
    );

    let (locked, locked_line) = ssh_keygen(&dir, "id_locked", "secret");
    encrypted_by_sops(&sb, &locked_line);
    sb.env(
        "SOPS_AGE_SSH_PRIVATE_KEY_CMD",
        format!("cat {}", locked.display()),
    );
    let sops = run_without_terminal(&sb, peers::sops_3_13(), &["decrypt", "enc.yaml"]);
    sops.assert_code(
        COULD_NOT_RETRIEVE_KEY,
        "sops: locked SSH key from the command",
    );
    assert!(
        sops.stderr_str().contains("password protected"),
        "{}",
        sops.stderr_str()
    );
    let enseal = run_without_terminal(&sb, enseal_bin(), &["decrypt", "enc.yaml"]);
    enseal.assert_code(
        COULD_NOT_RETRIEVE_KEY,
        "enseal: locked SSH key from the command",
    );
    let msg = enseal.stderr_str();
    assert!(msg.contains("SOPS_AGE_SSH_PRIVATE_KEY_CMD"), "{msg}");
    assert!(msg.contains("passphrase-protected"), "{msg}");
}

/// Without a terminal, a passphrase-protected identity file cannot be opened: sops 3.13 and
/// enseal both fail with sops' exit code, and enseal's message names the file.
#[test]
fn a_passphrase_protected_identity_file_without_a_terminal_fails_naming_the_file() {
    let mut sb = sandbox();
    let (key, recipient) = age_keygen(&sb, "keys.txt");
    let locked = age_passphrase_file(&sb, &key, false);
    std::fs::remove_file(&key).unwrap();
    encrypted_by_sops(&sb, &recipient);
    sb.env("SOPS_AGE_KEY_FILE", &locked);
    let sops = run_without_terminal(&sb, peers::sops_3_13(), &["decrypt", "enc.yaml"]);
    sops.assert_code(COULD_NOT_RETRIEVE_KEY, "sops 3.13 without a terminal");
    assert!(
        sops.stderr_str()
            .contains("failed to decrypt identity file"),
        "{}",
        sops.stderr_str()
    );
    let enseal = run_without_terminal(&sb, enseal_bin(), &["decrypt", "enc.yaml"]);
    enseal.assert_code(COULD_NOT_RETRIEVE_KEY, "enseal without a terminal");
    let msg = enseal.stderr_str();
    assert!(
        msg.contains(&format!(
            "cannot open the passphrase-protected age identity file SOPS_AGE_KEY_FILE ({})",
            locked.display()
        )),
        "{msg}"
    );
    assert!(msg.contains("no terminal"), "{msg}");
    assert!(enseal.stdout.is_empty(), "nothing decrypted is printed");
}

/// On a terminal, sops 3.13 and enseal ask for the passphrase of an `age -p` identity file
/// (binary or armored, in SOPS_AGE_KEY_FILE or the default keys.txt) and open the file with
/// it; a wrong passphrase fails with sops' exit code.
#[test]
fn a_passphrase_protected_identity_file_opens_on_a_terminal() {
    let mut sb = sandbox();
    let (key, recipient) = age_keygen(&sb, "keys.txt");
    let binary = age_passphrase_file(&sb, &key, false);
    let armored = age_passphrase_file(&sb, &key, true);
    std::fs::remove_file(&key).unwrap();
    encrypted_by_sops(&sb, &recipient);
    let default_file = sb
        .path()
        .parent()
        .unwrap()
        .join("home/.config/sops/age/keys.txt");
    std::fs::create_dir_all(default_file.parent().unwrap()).unwrap();
    std::fs::copy(&binary, &default_file).unwrap();
    for (variable, file) in [
        (Some("SOPS_AGE_KEY_FILE"), &binary),
        (Some("SOPS_AGE_KEY_FILE"), &armored),
        (None, &default_file),
    ] {
        match variable {
            Some(v) => sb.env(v, file),
            None => sb.env_remove("SOPS_AGE_KEY_FILE"),
        };
        let mut plain = Vec::new();
        for program in [peers::sops_3_13(), enseal_bin()] {
            let run = run_on_terminal(
                &sb,
                &program,
                &["decrypt", "enc.yaml"],
                &[(PROMPT, PASSPHRASE)],
                TERMINAL_TIMEOUT,
            );
            let what = format!("{} with {}", program.display(), file.display());
            plain.push(plaintext_of(&run.output, &what));
            assert!(
                !run.terminal.contains(PASSPHRASE),
                "{what}: the passphrase was echoed"
            );
        }
        assert_eq!(plain[0], plain[1]);
        assert!(plain[1].contains("hunter2"));
    }

    sb.env("SOPS_AGE_KEY_FILE", &armored);
    for program in [peers::sops_3_13(), enseal_bin()] {
        let run = run_on_terminal(
            &sb,
            &program,
            &["decrypt", "enc.yaml"],
            &[(PROMPT, "not the passphrase")],
            TERMINAL_TIMEOUT,
        );
        run.output.assert_code(
            COULD_NOT_RETRIEVE_KEY,
            &format!("{} with a wrong passphrase", program.display()),
        );
        assert!(run.output.stdout.is_empty());
    }
    let run = run_on_terminal(
        &sb,
        enseal_bin(),
        &["decrypt", "enc.yaml"],
        &[(PROMPT, "not the passphrase")],
        TERMINAL_TIMEOUT,
    );
    let msg = run.output.stderr_str();
    assert!(msg.contains("incorrect passphrase"), "{msg}");
    assert!(
        run.terminal.contains(&format!(
            "{PROMPT}SOPS_AGE_KEY_FILE ({})'",
            armored.display()
        )),
        "the prompt names the file: {}",
        run.terminal
    );
}

/// A passphrase-protected SSH key (SOPS_AGE_SSH_PRIVATE_KEY_FILE) is asked for on the
/// terminal by sops 3.13 and enseal with the same prompt, and opens the file; without a
/// terminal both fail with sops' exit code, enseal naming the key.
#[test]
fn a_passphrase_protected_ssh_key_is_asked_for_on_the_terminal() {
    let mut sb = sandbox();
    let dir = sb.path().parent().unwrap().join("sshkeys");
    let (key, line) = ssh_keygen(&dir, "id_ed25519", PASSPHRASE);
    encrypted_by_sops(&sb, &line);
    sb.env("SOPS_AGE_SSH_PRIVATE_KEY_FILE", &key);
    let prompt = format!("Enter passphrase for \"{}\":", key.display());
    let mut plain = Vec::new();
    for program in [peers::sops_3_13(), enseal_bin()] {
        let run = run_on_terminal(
            &sb,
            &program,
            &["decrypt", "enc.yaml"],
            &[(prompt.as_str(), PASSPHRASE)],
            TERMINAL_TIMEOUT,
        );
        let what = format!("{} with a locked SSH key", program.display());
        plain.push(plaintext_of(&run.output, &what));
    }
    assert_eq!(plain[0], plain[1]);
    assert!(plain[1].contains("hunter2"));

    for program in [peers::sops_3_13(), enseal_bin()] {
        let out = run_without_terminal(&sb, &program, &["decrypt", "enc.yaml"]);
        out.assert_code(
            COULD_NOT_RETRIEVE_KEY,
            &format!("{}: a locked SSH key without a terminal", program.display()),
        );
    }
    let out = run_without_terminal(&sb, enseal_bin(), &["decrypt", "enc.yaml"]);
    let msg = out.stderr_str();
    assert!(
        msg.contains(&format!(
            "cannot open the passphrase-protected SSH key {}",
            key.display()
        )),
        "{msg}"
    );
}

/// A fresh ed25519 key pair from the real ssh-keygen: (private key path, public key line).
fn ssh_keygen(dir: &Path, name: &str, passphrase: &str) -> (PathBuf, String) {
    std::fs::create_dir_all(dir).expect("mkdir for the SSH key");
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            passphrase,
            "-C",
            "tester@enseal",
            "-f",
        ])
        .arg(&path)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run ssh-keygen ({e}): install it with `apt-get install -y openssh-client`"
            )
        });
    assert!(status.success(), "ssh-keygen failed");
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("read .pub");
    (path, public.trim().to_owned())
}
