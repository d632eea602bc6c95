//! `--decryption-order` / `SOPS_DECRYPTION_ORDER` (sops 3.8+): which type of key a group is
//! opened with first, against sops 3.11 and 3.13.3. The file has an age and a PGP key, both
//! usable; gpg is reached through a logging stand-in (SOPS_GPG_EXEC), so the log shows whether
//! the PGP key was tried: not by default (age first), once when PGP comes first.

use std::path::PathBuf;

use enseal_tests::cli::{Output, Sandbox};
use enseal_tests::gnupg::{gpg_bin, GnupgHome};
use enseal_tests::peers::{self, SopsRelease};

const PLAIN_YAML: &str = "db:\n    user: admin\n    password: hunter2\nport: 5432\n";
const DUPLICATE_DECRYPTION_KEY_TYPE: i32 = 112;

struct Setup {
    sandbox: Sandbox,
    log: PathBuf,
    _gnupg: GnupgHome,
}

/// A sandbox with test age key `a`, a GnuPG home holding a secret key, gpg behind a logger,
/// and `enc.yaml` encrypted for both keys.
fn setup() -> Setup {
    let mut sandbox = Sandbox::new();
    let root = sandbox.path().parent().expect("sandbox root").to_path_buf();
    let gnupg = GnupgHome::new(&root.join("g"));
    let fp = gnupg.generate("order");
    let log = root.join("gpg.log");
    let logger = sandbox.write(
        "gpg-logger",
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec {} \"$@\"\n",
            log.display(),
            gpg_bin().display()
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&logger, std::fs::Permissions::from_mode(0o755)).unwrap();
    sandbox
        .env("GNUPGHOME", gnupg.path())
        .env("SOPS_GPG_EXEC", &logger)
        .use_identities(&["a"]);
    sandbox.write("plain.yaml", PLAIN_YAML);
    let enc = sandbox.enseal([
        "encrypt",
        "--age",
        &peers::recipient("a"),
        "--pgp",
        &fp,
        "plain.yaml",
    ]);
    enc.assert_success("enseal encrypt for an age and a PGP key");
    sandbox.write("enc.yaml", &enc.stdout);
    Setup {
        sandbox,
        log,
        _gnupg: gnupg,
    }
}

impl Setup {
    /// Runs `tool` (`enseal` or a sops release) with `args` and returns its output and how
    /// many times it had gpg decrypt.
    fn run(&self, tool: Option<SopsRelease>, args: &[&str]) -> (Output, usize) {
        let _ = std::fs::remove_file(&self.log);
        let out = match tool {
            Some(release) => self.sandbox.sops_of(release, args),
            None => self.sandbox.enseal(args),
        };
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        (out, log.lines().filter(|l| *l == "-d").count())
    }
}

fn tools() -> [(Option<SopsRelease>, &'static str); 3] {
    [
        (Some(SopsRelease::V3_11), "sops 3.11"),
        (Some(SopsRelease::V3_13), "sops 3.13"),
        (None, "enseal"),
    ]
}

#[test]
fn age_is_tried_before_pgp_by_default_and_the_order_flag_or_variable_changes_it() {
    let mut s = setup();
    for (tool, name) in tools() {
        let (out, gpg) = s.run(tool, &["decrypt", "enc.yaml"]);
        out.assert_success(&format!("{name} decrypt"));
        assert!(out.stdout_str().contains("password: hunter2"), "{name}");
        assert_eq!(gpg, 0, "{name}: the age key opens the file; gpg is not run");

        let (out, gpg) = s.run(
            tool,
            &["decrypt", "--decryption-order", "pgp,age", "enc.yaml"],
        );
        out.assert_success(&format!("{name} decrypt --decryption-order pgp,age"));
        assert_eq!(gpg, 1, "{name}: the PGP key is tried first");
    }
    // Only the listed type moves first; and the variable is read as the flag.
    s.sandbox.env("SOPS_DECRYPTION_ORDER", "pgp");
    for (tool, name) in tools() {
        let (out, gpg) = s.run(tool, &["decrypt", "enc.yaml"]);
        out.assert_success(&format!("{name} decrypt with SOPS_DECRYPTION_ORDER=pgp"));
        assert_eq!(gpg, 1, "{name}: SOPS_DECRYPTION_ORDER=pgp");
    }
    // A PGP key that fails is followed by the age key, in that order.
    s.sandbox.env("GNUPGHOME", s.sandbox.path());
    for (tool, name) in tools() {
        let (out, gpg) = s.run(tool, &["decrypt", "enc.yaml"]);
        out.assert_success(&format!("{name}: PGP first fails, age opens"));
        assert_eq!(gpg, 1, "{name}");
    }
}

#[test]
fn a_type_named_twice_is_sops_error_and_exit_code() {
    let mut s = setup();
    s.sandbox.env("SOPS_DECRYPTION_ORDER", "age,pgp,age");
    for (tool, name) in tools() {
        let (out, gpg) = s.run(tool, &["decrypt", "enc.yaml"]);
        out.assert_code(DUPLICATE_DECRYPTION_KEY_TYPE, &format!("{name}: age twice"));
        assert!(
            out.stderr_str()
                .contains("Duplicate decryption key type: age"),
            "{name}: {}",
            out.stderr_str()
        );
        assert!(out.stdout.is_empty());
        assert_eq!(gpg, 0);
    }
}
