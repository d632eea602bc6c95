//! PGP keys that cannot be used, against sops 3.11 and 3.13.3 with Debian's GnuPG: an expired
//! key to encrypt for, a passphrase-protected secret key with no pinentry that can ask (no
//! terminal, no display), a secret key that is not in the keyring. enseal fails with sops'
//! exit code in each case, and its message names the fingerprint and says which case it is.

use std::process::{Command, Stdio};

use enseal_tests::cli::{enseal_bin, Output, Sandbox};
use enseal_tests::gnupg::GnupgHome;
use enseal_tests::peers::SopsRelease;
use enseal_tests::terminal::run_without_terminal;

const PLAIN_YAML: &str = "password: hunter2\n";
const GENERIC: i32 = 1;
const COULD_NOT_RETRIEVE_KEY: i32 = 128;

/// A sandbox whose GNUPGHOME is a fresh home, and no age identity anywhere.
fn sandbox() -> (Sandbox, GnupgHome) {
    let mut sb = Sandbox::new();
    let home = GnupgHome::new(&sb.path().parent().expect("sandbox root").join("g"));
    sb.env("GNUPGHOME", home.path())
        .env("SOPS_AGE_KEY_FILE", "/dev/null");
    sb.write("plain.yaml", PLAIN_YAML);
    (sb, home)
}

/// Generates a key in `home` with gpg's own options (`extra` before the command).
fn gen_key(home: &GnupgHome, name: &str, extra: &[&str], expire: &str) -> String {
    let uid = format!("{name} <{name}@enseal.test>");
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(["--quick-gen-key", &uid, "future-default", "default", expire]);
    home.gpg(&args, b"");
    home.fingerprint(&uid)
}

/// Stops the home's gpg-agent, which forgets any passphrase it cached.
fn stop_agent(home: &GnupgHome) {
    let status = Command::new("gpgconf")
        .arg("--homedir")
        .arg(home.path())
        .args(["--kill", "gpg-agent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run gpgconf (GnuPG)");
    assert!(status.success(), "gpgconf --kill gpg-agent");
}

/// Runs sops of each release and enseal with `args`, without a terminal; the outputs in that
/// order.
fn each(sb: &Sandbox, args: &[&str]) -> [(String, Output); 3] {
    [
        (
            "sops 3.11".to_owned(),
            run_without_terminal(sb, SopsRelease::V3_11.bin(), args),
        ),
        (
            "sops 3.13".to_owned(),
            run_without_terminal(sb, SopsRelease::V3_13.bin(), args),
        ),
        (
            "enseal".to_owned(),
            run_without_terminal(sb, enseal_bin(), args),
        ),
    ]
}

#[test]
fn an_expired_key_cannot_be_encrypted_for_with_sops_exit_code() {
    let (sb, home) = sandbox();
    // Made a year long in 2020: expired since 2021.
    let fp = gen_key(
        &home,
        "expired",
        &["--passphrase", "", "--faked-system-time", "20200101T000000"],
        "1y",
    );
    let runs = each(&sb, &["encrypt", "--pgp", &fp, "plain.yaml"]);
    for (name, out) in &runs {
        out.assert_code(GENERIC, &format!("{name}: encrypt for an expired key"));
        assert!(out.stdout.is_empty(), "{name}");
        assert!(
            out.stderr_str().contains(&fp),
            "{name}: {}",
            out.stderr_str()
        );
    }
    let msg = runs[2].1.stderr_str();
    assert!(
        msg.contains("expired, revoked, or no encryption subkey"),
        "{msg}"
    );
}

#[test]
fn a_passphrase_protected_secret_key_without_pinentry_fails_naming_the_key() {
    let (sb, home) = sandbox();
    let fp = gen_key(
        &home,
        "locked",
        &["--pinentry-mode", "loopback", "--passphrase", "sekrit"],
        "never",
    );
    let enc = sb.enseal(["encrypt", "--pgp", &fp, "plain.yaml"]);
    enc.assert_success("enseal encrypt for the locked key");
    sb.write("enc.yaml", &enc.stdout);
    // The agent may hold the passphrase from the key's creation: a new one does not.
    stop_agent(&home);
    let runs = each(&sb, &["decrypt", "enc.yaml"]);
    for (name, out) in &runs {
        out.assert_code(
            COULD_NOT_RETRIEVE_KEY,
            &format!("{name}: decrypt with a locked key and no pinentry"),
        );
        assert!(out.stdout.is_empty(), "{name}");
        assert!(
            out.stderr_str().contains(&fp),
            "{name}: {}",
            out.stderr_str()
        );
    }
    let msg = runs[2].1.stderr_str();
    assert!(msg.contains("could not be unlocked"), "{msg}");
    assert!(!msg.contains("hunter2"));
}

#[test]
fn a_missing_secret_key_fails_naming_the_key_with_sops_exit_code() {
    let (mut sb, home) = sandbox();
    let fp = gen_key(&home, "someone", &["--passphrase", ""], "never");
    let enc = sb.enseal(["encrypt", "--pgp", &fp, "plain.yaml"]);
    enc.assert_success("enseal encrypt");
    sb.write("enc.yaml", &enc.stdout);
    // A keyring with the public key only.
    let public = GnupgHome::new(&sb.path().parent().unwrap().join("p"));
    public.import(&home.export_public(&fp));
    sb.env("GNUPGHOME", public.path());
    let runs = each(&sb, &["decrypt", "enc.yaml"]);
    for (name, out) in &runs {
        out.assert_code(
            COULD_NOT_RETRIEVE_KEY,
            &format!("{name}: decrypt without the secret key"),
        );
        assert!(out.stdout.is_empty(), "{name}");
        assert!(
            out.stderr_str().contains(&fp),
            "{name}: {}",
            out.stderr_str()
        );
    }
    let msg = runs[2].1.stderr_str();
    assert!(
        msg.contains("no secret key for it in the GnuPG keyring"),
        "{msg}"
    );
}
