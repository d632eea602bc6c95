//! `enseal updatekeys DIR`: every encrypted file under a directory gets the recipients its
//! creation rule names now; plain files, hidden directories and build output are left alone.
//! Progress is a bar on a terminal and plain lines otherwise.

use enseal_tests::cli::Sandbox;
use enseal_tests::peers;

fn rule(recipients: &[&str]) -> String {
    let list: Vec<String> = recipients.iter().map(|n| peers::recipient(n)).collect();
    format!("creation_rules:\n  - age: {}\n", list.join(","))
}

/// A tree with encrypted files for key a in ordinary and in skipped directories.
fn tree() -> Sandbox {
    let mut sb = Sandbox::new();
    sb.use_identities(&["a"]);
    sb.write(".sops.yaml", rule(&["a"]));
    for (name, text) in [
        ("app/secrets.yaml", "password: one\n"),
        ("app/deep/db.json", "{\"password\": \"two\"}\n"),
        ("prod.env", "TOKEN=three\n"),
        ("target/copy.yaml", "password: four\n"),
        ("node_modules/pkg/s.yaml", "password: five\n"),
        (".hidden/s.yaml", "password: six\n"),
    ] {
        let path = sb.write(name, text);
        sb.enseal(["encrypt", "-i", path.to_str().unwrap()])
            .assert_success(&format!("encrypting {name}"));
    }
    sb.write("app/plain.yaml", "replicas: 2\n");
    sb.write("app/notes.txt", "mentions sops but is not encrypted\n");
    sb.write(".sops.yaml", rule(&["a", "b"]));
    sb
}

fn opens_with_b_only(sb: &Sandbox, name: &str) -> bool {
    let mut only_b = Sandbox::new();
    only_b.use_identities(&["b"]);
    let copy = only_b.write(name, sb.read(name));
    only_b.enseal(["decrypt", copy.to_str().unwrap()]).success()
}

#[test]
fn a_directory_updates_the_encrypted_files_under_it_and_skips_build_and_hidden_dirs() {
    let sb = tree();
    let plain_before = sb.read("app/plain.yaml");
    let skipped_before: Vec<Vec<u8>> = ["target/copy.yaml", "node_modules/pkg/s.yaml"]
        .iter()
        .map(|n| sb.read(n))
        .collect();

    let out = sb.enseal(["updatekeys", "-y", "."]);
    out.assert_success("enseal updatekeys -y .");
    for name in ["app/secrets.yaml", "app/deep/db.json", "prod.env"] {
        assert!(opens_with_b_only(&sb, name), "{name} was not updated");
    }
    for name in [
        "target/copy.yaml",
        "node_modules/pkg/s.yaml",
        ".hidden/s.yaml",
    ] {
        assert!(!opens_with_b_only(&sb, name), "{name} should be skipped");
    }
    assert_eq!(sb.read("app/plain.yaml"), plain_before);
    assert_eq!(
        skipped_before,
        vec![
            sb.read("target/copy.yaml"),
            sb.read("node_modules/pkg/s.yaml")
        ]
    );

    // Not a terminal: plain lines, no carriage returns or escape sequences.
    let err = out.stderr_str();
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
    assert!(err.contains("app/secrets.yaml: keys updated"), "{err}");
    assert!(
        err.contains("3 encrypted files: 3 updated, 0 failed"),
        "{err}"
    );

    // A second run has nothing to do.
    let again = sb.enseal(["updatekeys", "-y", "."]);
    again.assert_success("second updatekeys");
    assert!(
        again
            .stderr_str()
            .contains("3 encrypted files: 0 updated, 0 failed"),
        "{}",
        again.stderr_str()
    );
}

#[test]
fn on_a_terminal_the_progress_is_a_bar() {
    let sb = tree();
    // `script` gives enseal a pseudo-terminal for stdin, stdout and stderr.
    let cmd = format!(
        "{} updatekeys -y .",
        enseal_tests::cli::enseal_bin().display()
    );
    let out = sb.run("script", ["-qec", &cmd, "/dev/null"]);
    out.assert_success("updatekeys on a pseudo-terminal");
    let text = out.stdout_str();
    assert!(text.contains("\r\x1b[K["), "no bar drawn: {text:?}");
    assert!(text.contains("] 0/3 "), "{text:?}");
    assert!(text.contains("] 2/3 "), "{text:?}");
    assert!(opens_with_b_only(&sb, "prod.env"));
}
