//! PGP master keys against the real peers: Debian's GnuPG (`gpg`, with a throwaway GNUPGHOME
//! and freshly generated keys per test) and the real sops 3.11 and 3.13.3. Files go both ways
//! (enseal writes, sops reads; sops writes, enseal reads) with several recipients, in key
//! groups mixing age and PGP under Shamir, through rotate and updatekeys; a missing key fails
//! with sops' exit codes and a message naming the fingerprint.
//!
//! gpg missing fails the tests (tests/src/gnupg.rs says how to install it); nothing is skipped.

use enseal_tests::cli::{Output, Sandbox};
use enseal_tests::data::parse;
use enseal_tests::gnupg::GnupgHome;
use enseal_tests::peers::{self, SopsRelease};

/// One test's keys: `n` generated PGP key pairs and homes that hold different parts of them.
struct Pgp {
    sandbox: Sandbox,
    fps: Vec<String>,
    /// `only[i]`: the secret key of key `i` and the public keys of all.
    only: Vec<GnupgHome>,
    /// The public keys of all, no secret key.
    public: GnupgHome,
    /// Nothing at all.
    empty: GnupgHome,
}

/// Which GnuPG home commands see as GNUPGHOME.
#[derive(Clone, Copy, Debug)]
enum Home {
    Only(usize),
    Public,
    Empty,
}

impl Pgp {
    fn new(n: usize) -> Pgp {
        let sandbox = Sandbox::new();
        let root = sandbox.path().parent().expect("sandbox root").to_path_buf();
        let maker = GnupgHome::new(&root.join("gk"));
        let fps: Vec<String> = (0..n).map(|i| maker.generate(&format!("key{i}"))).collect();
        let public: Vec<Vec<u8>> = fps.iter().map(|f| maker.export_public(f)).collect();
        let only = (0..n)
            .map(|i| {
                let home = GnupgHome::new(&root.join(format!("g{i}")));
                for p in &public {
                    home.import(p);
                }
                home.import(&maker.export_secret(&fps[i]));
                home
            })
            .collect();
        let public_home = GnupgHome::new(&root.join("gp"));
        for p in &public {
            public_home.import(p);
        }
        let mut pgp = Pgp {
            sandbox,
            fps,
            only,
            public: public_home,
            empty: GnupgHome::new(&root.join("ge")),
        };
        // No age identity unless a test gives one (sops and enseal also look in ~/.ssh and
        // ~/.config/sops/age, which the sandbox's HOME does not have).
        pgp.sandbox.env("SOPS_AGE_KEY_FILE", "/dev/null");
        pgp
    }

    fn home(&mut self, home: Home) -> &mut Pgp {
        let dir = match home {
            Home::Only(i) => self.only[i].path().to_path_buf(),
            Home::Public => self.public.path().to_path_buf(),
            Home::Empty => self.empty.path().to_path_buf(),
        };
        self.sandbox.env("GNUPGHOME", dir);
        self
    }

    fn ages(&mut self, names: &[&str]) -> &mut Pgp {
        if names.is_empty() {
            self.sandbox.env("SOPS_AGE_KEY_FILE", "/dev/null");
        } else {
            self.sandbox.use_identities(names);
        }
        self
    }

    fn fp_list(&self) -> String {
        self.fps.join(",")
    }
}

const FORMATS: [(&str, &str, &str); 3] = [
    (
        "yaml",
        "f.yaml",
        "db:\n  user: admin\n  password: hunter2\nport: 5432\n",
    ),
    (
        "json",
        "f.json",
        "{\n  \"db\": {\"user\": \"admin\", \"password\": \"hunter2\"},\n  \"port\": 5432\n}\n",
    ),
    ("dotenv", "f.env", "USER=admin\nPASSWORD=hunter2\n"),
];

fn sops(p: &Pgp, release: SopsRelease, args: &[&str]) -> Output {
    let mut all = vec!["--disable-version-check"];
    all.extend_from_slice(args);
    p.sandbox.sops_of(release, all)
}

fn assert_same_data(format: &str, got: &Output, plain: &str, what: &str) {
    got.assert_success(what);
    assert_eq!(
        parse(format, &got.stdout, what),
        parse(format, plain.as_bytes(), "plaintext"),
        "{what}: decrypted data differs"
    );
}

/// The metadata's pgp entries with what differs between two runs (base64 lines, dates,
/// fingerprints) masked and indentation dropped (enseal keeps the document's indent, sops
/// writes 4): the fields, their order and the block scalar style sops writes, line by line.
fn pgp_layout(encrypted: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(encrypted);
    text.lines()
        .map(str::trim)
        .skip_while(|l| *l != "pgp:")
        .take_while(|l| !l.starts_with("unencrypted_suffix"))
        .map(|l| {
            if l.starts_with("- created_at:") {
                "- created_at: <date>".to_string()
            } else if l.starts_with("fp: ") {
                "fp: <fp>".to_string()
            } else if !l.is_empty() && !l.contains(' ') && !l.starts_with("-----") {
                "<base64>".to_string()
            } else {
                l.to_string()
            }
        })
        .collect()
}

#[test]
fn sops_3_11_and_3_13_decrypt_what_enseal_encrypts_for_two_pgp_keys() {
    let mut p = Pgp::new(2);
    let list = p.fp_list();
    for (format, name, plain) in FORMATS {
        p.sandbox.write(name, plain);
        // Encrypting needs only the public keys.
        p.home(Home::Public);
        let out = p.sandbox.enseal(["encrypt", "--pgp", &list, name]);
        out.assert_success(&format!("enseal encrypt --pgp ({format})"));
        let enc = format!("enc-{name}");
        p.sandbox.write(&enc, &out.stdout);
        for release in SopsRelease::ALL {
            for i in 0..2 {
                p.home(Home::Only(i));
                let got = sops(&p, release, &["decrypt", &enc]);
                let what = format!(
                    "sops {} decrypts enseal's {format} with key {i}",
                    release.name()
                );
                assert_same_data(format, &got, plain, &what);
            }
        }
    }
    // enseal's `enc` entries are laid out as sops lays out its own: `|-` block scalars of
    // gpg's armour, white space trimmed, fields sorted, `pgp` after `mac`.
    p.home(Home::Public);
    let ours = p.sandbox.enseal(["encrypt", "--pgp", &list, "f.yaml"]);
    ours.assert_success("enseal encrypt");
    let theirs = sops(
        &p,
        SopsRelease::V3_13,
        &["encrypt", "--pgp", &list, "f.yaml"],
    );
    theirs.assert_success("sops 3.13 encrypt");
    let layout = pgp_layout(&ours.stdout);
    assert!(layout.len() > 8, "no pgp entries: {layout:?}");
    assert_eq!(layout, pgp_layout(&theirs.stdout));
}

#[test]
fn enseal_decrypts_what_sops_3_11_and_3_13_encrypt_for_two_pgp_keys() {
    let mut p = Pgp::new(2);
    let list = p.fp_list();
    for release in SopsRelease::ALL {
        for (format, name, plain) in FORMATS {
            p.sandbox.write(name, plain);
            p.home(Home::Public);
            let out = sops(&p, release, &["encrypt", "--pgp", &list, name]);
            out.assert_success(&format!("sops {} encrypt --pgp ({format})", release.name()));
            let enc = format!("enc-{}-{name}", release.name());
            p.sandbox.write(&enc, &out.stdout);
            for i in 0..2 {
                p.home(Home::Only(i));
                let got = p.sandbox.enseal(["decrypt", &enc]);
                let what = format!(
                    "enseal decrypts sops {}'s {format} with key {i}",
                    release.name()
                );
                assert_same_data(format, &got, plain, &what);
            }
        }
    }
}

/// Three key groups, any two of which open the file: PGP key 0; age key a; PGP key 1 or age
/// key b. Written by enseal and by both sops releases, read by all three with every keyring.
#[test]
fn a_shamir_key_group_mixing_age_and_pgp_opens_with_two_groups_in_enseal_and_sops() {
    let mut p = Pgp::new(2);
    let config = format!(
        "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - pgp:\n          - {}\n      - age:\n          - {}\n      - pgp:\n          - {}\n        age:\n          - {}\n",
        p.fps[0],
        peers::recipient("a"),
        p.fps[1],
        peers::recipient("b"),
    );
    p.sandbox.write(".sops.yaml", config);
    let plain = "db:\n  password: hunter2\n";
    p.sandbox.write("f.yaml", plain);
    type Writer = Option<SopsRelease>;
    let writers: [Writer; 3] = [None, Some(SopsRelease::V3_11), Some(SopsRelease::V3_13)];
    // (GnuPG home, age identities, whether two groups open)
    let keyrings: [(Home, &[&str], bool); 5] = [
        (Home::Only(0), &["a"], true),
        (Home::Only(1), &["a"], true),
        (Home::Only(0), &["b"], true),
        (Home::Empty, &["a", "b"], true),
        (Home::Only(0), &[], false),
    ];
    for writer in writers {
        let who = writer.map_or("enseal".to_string(), |r| format!("sops {}", r.name()));
        p.home(Home::Public).ages(&[]);
        let out = match writer {
            None => p.sandbox.enseal(["encrypt", "f.yaml"]),
            Some(r) => sops(&p, r, &["encrypt", "f.yaml"]),
        };
        out.assert_success(&format!("{who} encrypts for three key groups"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("shamir_threshold: 2") && text.matches("BEGIN PGP MESSAGE").count() == 2,
            "{who} wrote:\n{text}"
        );
        let enc = format!("groups-{}.yaml", who.replace(' ', "-"));
        p.sandbox.write(&enc, &out.stdout);
        for (home, ages, opens) in keyrings {
            p.home(home).ages(ages);
            let readers: [(String, Output); 3] = [
                ("enseal".into(), p.sandbox.enseal(["decrypt", &enc])),
                (
                    "sops 3.11".into(),
                    sops(&p, SopsRelease::V3_11, &["decrypt", &enc]),
                ),
                (
                    "sops 3.13".into(),
                    sops(&p, SopsRelease::V3_13, &["decrypt", &enc]),
                ),
            ];
            for (reader, got) in readers {
                let what = format!("{reader} reads {who}'s file with {home:?} and age {ages:?}");
                if opens {
                    assert_same_data("yaml", &got, plain, &what);
                } else {
                    got.assert_code(128, &what);
                    assert!(got.stdout.is_empty(), "{what}: printed something");
                }
            }
        }
    }
}

#[test]
fn a_missing_secret_key_exits_128_naming_the_fingerprint_as_sops_does() {
    let mut p = Pgp::new(1);
    let fp = p.fps[0].clone();
    p.sandbox.write("f.yaml", "password: hunter2\n");
    p.home(Home::Public);
    let out = p.sandbox.enseal(["encrypt", "--pgp", &fp, "f.yaml"]);
    out.assert_success("enseal encrypt");
    p.sandbox.write("enc.yaml", &out.stdout);
    for home in [Home::Public, Home::Empty] {
        p.home(home);
        let ours = p.sandbox.enseal(["decrypt", "enc.yaml"]);
        ours.assert_code(128, &format!("enseal decrypt with {home:?}"));
        let message = ours.stderr_str();
        assert!(
            message.contains(&fp),
            "the message names no fingerprint: {message}"
        );
        assert!(
            message.contains("No secret key"),
            "gpg's reason is missing: {message}"
        );
        assert!(ours.stdout.is_empty());
        for release in SopsRelease::ALL {
            sops(&p, release, &["decrypt", "enc.yaml"]).assert_code(
                128,
                &format!("sops {} decrypt with {home:?}", release.name()),
            );
        }
    }
}

#[test]
fn a_missing_public_key_fails_encryption_with_exit_1_naming_the_fingerprint_as_sops_does() {
    let mut p = Pgp::new(1);
    let fp = p.fps[0].clone();
    p.sandbox.write("f.yaml", "password: hunter2\n");
    p.home(Home::Empty);
    let ours = p.sandbox.enseal(["encrypt", "--pgp", &fp, "f.yaml"]);
    ours.assert_code(1, "enseal encrypt without the public key");
    let message = ours.stderr_str();
    assert!(
        message.contains(&fp),
        "the message names no fingerprint: {message}"
    );
    assert!(
        message.contains("No public key"),
        "gpg's reason is missing: {message}"
    );
    assert!(ours.stdout.is_empty());
    for release in SopsRelease::ALL {
        let theirs = sops(&p, release, &["encrypt", "--pgp", &fp, "f.yaml"]);
        theirs.assert_code(1, &format!("sops {} encrypt", release.name()));
        assert!(theirs.stderr_str().contains(&fp));
    }
}

#[test]
fn rotate_adds_and_removes_pgp_keys_as_sops_reads_them() {
    let mut p = Pgp::new(2);
    let (fp0, fp1) = (p.fps[0].clone(), p.fps[1].clone());
    p.sandbox.write("f.yaml", "password: hunter2\n");
    p.home(Home::Public).ages(&["a"]);
    let out = p
        .sandbox
        .enseal(["encrypt", "--age", &peers::recipient("a"), "f.yaml"]);
    out.assert_success("enseal encrypt --age");
    p.sandbox.write("enc.yaml", &out.stdout);
    p.sandbox
        .enseal([
            "rotate",
            "-i",
            "--add-pgp",
            &format!("{fp0},{fp1}"),
            "enc.yaml",
        ])
        .assert_success("enseal rotate --add-pgp");
    for i in 0..2 {
        p.home(Home::Only(i)).ages(&[]);
        for release in SopsRelease::ALL {
            let got = sops(&p, release, &["decrypt", "enc.yaml"]);
            assert_same_data(
                "yaml",
                &got,
                "password: hunter2\n",
                &format!("sops {} with key {i} after --add-pgp", release.name()),
            );
        }
    }
    // sops' top-level form, as scripts type it; key 0 is gone, key 1 and age a stay.
    p.home(Home::Only(1));
    p.sandbox
        .enseal(["-r", "-i", "--rm-pgp", &fp0, "enc.yaml"])
        .assert_success("enseal -r --rm-pgp");
    let text = String::from_utf8(p.sandbox.read("enc.yaml")).unwrap();
    assert!(!text.contains(&fp0) && text.contains(&fp1), "{text}");
    p.home(Home::Only(0));
    for release in SopsRelease::ALL {
        sops(&p, release, &["decrypt", "enc.yaml"]).assert_code(
            128,
            &format!("sops {} with the removed key", release.name()),
        );
    }
    p.home(Home::Only(1));
    sops(&p, SopsRelease::V3_13, &["decrypt", "enc.yaml"]).assert_success("sops with key 1");
}

#[test]
fn updatekeys_wraps_the_data_key_for_the_pgp_keys_of_the_creation_rule() {
    let mut p = Pgp::new(2);
    let a = peers::recipient("a");
    p.sandbox.write("f.yaml", "password: hunter2\n");
    p.home(Home::Public).ages(&["a"]);
    let out = p.sandbox.enseal(["encrypt", "--age", &a, "f.yaml"]);
    out.assert_success("enseal encrypt --age");
    // The comma-separated form, with the blank sops strips.
    let rule = format!(
        "creation_rules:\n  - pgp: '{}, {}'\n    age: {a}\n",
        p.fps[0], p.fps[1]
    );
    p.sandbox.write(".sops.yaml", rule);
    p.sandbox.write("enc.yaml", &out.stdout);
    let before = p.sandbox.read("enc.yaml");
    p.sandbox
        .enseal(["updatekeys", "-y", "enc.yaml"])
        .assert_success("enseal updatekeys");
    let after = String::from_utf8(p.sandbox.read("enc.yaml")).unwrap();
    assert_eq!(after.matches("BEGIN PGP MESSAGE").count(), 2, "{after}");
    // The values and the MAC stay as they were: only who can open the data key changed.
    let mac = |t: &str| {
        t.lines()
            .find(|l| l.contains("mac: ENC["))
            .map(str::to_string)
    };
    assert_eq!(mac(&after), mac(&String::from_utf8_lossy(&before)));
    for i in 0..2 {
        p.home(Home::Only(i)).ages(&[]);
        for release in SopsRelease::ALL {
            let got = sops(&p, release, &["decrypt", "enc.yaml"]);
            let what = format!("sops {} with key {i} after updatekeys", release.name());
            assert_same_data("yaml", &got, "password: hunter2\n", &what);
        }
    }
    // And sops agrees there is nothing left to update.
    let again = sops(&p, SopsRelease::V3_13, &["updatekeys", "-y", "enc.yaml"]);
    again.assert_success("sops updatekeys");
    assert!(
        again.stderr_str().contains("already up to date"),
        "{}",
        again.stderr_str()
    );
}

/// A logging stand-in for gpg: SOPS_GPG_EXEC names it, it records its arguments and runs gpg.
fn gpg_logger(p: &Pgp) -> std::path::PathBuf {
    let log = p.sandbox.file("gpg.log");
    let script = p.sandbox.write(
        "gpg-logger",
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec {} \"$@\"\n",
            log.display(),
            enseal_tests::gnupg::gpg_bin().display()
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn sops_gpg_exec_and_sops_pgp_fp_are_honoured() {
    let mut p = Pgp::new(1);
    let fp = p.fps[0].clone();
    let logger = gpg_logger(&p);
    p.sandbox
        .env("SOPS_GPG_EXEC", &logger)
        .env("SOPS_PGP_FP", &fp);
    p.sandbox.write("f.yaml", "password: hunter2\n");
    p.home(Home::Only(0));
    let out = p.sandbox.enseal(["encrypt", "f.yaml"]);
    out.assert_success("enseal encrypt with SOPS_PGP_FP");
    p.sandbox.write("enc.yaml", &out.stdout);
    let got = p.sandbox.enseal(["decrypt", "enc.yaml"]);
    assert_same_data("yaml", &got, "password: hunter2\n", "enseal decrypt");
    let log = String::from_utf8(p.sandbox.read("gpg.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    // sops' arguments exactly (pgp/keysource.go encryptWithGnuPG and decryptWithGnuPG).
    let key_id = &fp[fp.len() - 16..];
    assert_eq!(
        lines,
        [
            format!("--no-default-recipient --yes --encrypt -a -r {fp} --trusted-key {key_id} --no-encrypt-to"),
            "-d".to_string(),
        ]
    );
}

#[test]
fn a_fingerprint_in_a_file_that_is_not_hex_never_reaches_gpg() {
    let mut p = Pgp::new(1);
    let fp = p.fps[0].clone();
    p.sandbox.write("f.yaml", "password: hunter2\n");
    p.home(Home::Only(0));
    let out = p.sandbox.enseal(["encrypt", "--pgp", &fp, "f.yaml"]);
    out.assert_success("enseal encrypt");
    // Someone edits the fingerprint into an option; the fingerprint is not under the MAC.
    let edited = String::from_utf8(out.stdout)
        .unwrap()
        .replace(&format!("fp: {fp}"), "fp: --output=/tmp/enseal-pwned");
    p.sandbox.write("enc.yaml", edited);
    let logger = gpg_logger(&p);
    p.sandbox.env("SOPS_GPG_EXEC", &logger);
    let rotated = p.sandbox.enseal(["rotate", "enc.yaml"]);
    rotated.assert_code(1, "enseal rotate with a bad fingerprint in the file");
    assert!(
        rotated.stderr_str().contains("invalid PGP fingerprint"),
        "{}",
        rotated.stderr_str()
    );
    let log = String::from_utf8(p.sandbox.read("gpg.log")).unwrap();
    assert!(!log.contains("pwned"), "gpg was given: {log}");
}

/// sops' own example files (example.yaml, .json, .ini, .txt of the v3.13.3 module), encrypted by
/// sops to two keys of its functional-tests key file, which is imported as sops' README says.
#[test]
fn enseal_decrypts_sops_example_files_with_sops_test_key_as_sops_does() {
    let prepared = crate::sops_functional_tests::prepared();
    let key_file = prepared.join("sops_functional_tests_key.asc");
    let keys = std::fs::read(&key_file).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run tests/tools/sops-functional-tests.sh again)",
            key_file.display()
        )
    });
    let mut sandbox = Sandbox::new();
    let gnupg = GnupgHome::new(&sandbox.path().parent().unwrap().join("g"));
    gnupg.import(&keys);
    sandbox
        .env("GNUPGHOME", gnupg.path())
        .env("SOPS_AGE_KEY_FILE", "/dev/null");
    for (name, format) in [
        ("example.yaml", "yaml"),
        ("example.json", "json"),
        ("example.ini", "ini"),
        ("example.txt", "binary"),
    ] {
        let bytes = std::fs::read(prepared.join("examples").join(name)).unwrap_or_else(|e| {
            panic!("{name}: {e} (run tests/tools/sops-functional-tests.sh again)")
        });
        assert!(String::from_utf8_lossy(&bytes).contains("BEGIN PGP MESSAGE"));
        sandbox.write(name, &bytes);
        let ours = sandbox.enseal(["decrypt", name]);
        ours.assert_success(&format!("enseal decrypt {name}"));
        let theirs = sandbox.sops_of(
            SopsRelease::V3_13,
            ["--disable-version-check", "decrypt", name],
        );
        theirs.assert_success(&format!("sops decrypt {name}"));
        if format == "binary" {
            assert_eq!(ours.stdout, theirs.stdout, "{name}");
        } else {
            // sops re-formats what it prints; the data must be the same.
            assert_eq!(
                parse(format, &ours.stdout, "enseal"),
                parse(format, &theirs.stdout, "sops"),
                "{name}"
            );
        }
    }
}
