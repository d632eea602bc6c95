//! Post-quantum hybrid age keys (`age1pq1...` recipients, `AGE-SECRET-KEY-PQ-1...` identities;
//! ML-KEM-768 + X25519) against the real peers that define and use them: Go age v1.3.2
//! (`age-keygen -pq`, `age -e`, `age -d`) and sops 3.13.3, both ways. sops 3.11 predates these
//! keys: it must still open a file that also has a classic recipient, with the classic key.

use std::path::PathBuf;

use enseal_sops::keys::age::{self as agekeys, AgeIdentities, AgeRecipient};
use enseal_tests::age_go;
use enseal_tests::cli::Sandbox;
use enseal_tests::peers::{self, SopsRelease};

const PLAIN_YAML: &str = "db:\n    user: admin\n    password: hunter2\nport: 5432\n";
const DATA_KEY: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

/// A fresh PQ key pair from the real Go `age-keygen -pq`, written to `<sandbox>/work/<name>`:
/// (key file, recipient from `age-keygen -y`).
fn go_pq_key(sb: &Sandbox, name: &str) -> (PathBuf, String) {
    let path = sb.file(name);
    sb.run(
        age_go::age_keygen(),
        ["-pq".as_ref(), "-o".as_ref(), path.as_os_str()],
    )
    .assert_success("age-keygen -pq");
    (path.clone(), go_recipient_of(sb, &path))
}

/// The recipient the real Go `age-keygen -y` derives from an identity file.
fn go_recipient_of(sb: &Sandbox, key_file: &std::path::Path) -> String {
    let out = sb.run(age_go::age_keygen(), ["-y".as_ref(), key_file.as_os_str()]);
    out.assert_success("age-keygen -y");
    out.stdout_str().trim().to_owned()
}

/// The real Go `age -e -a -r RECIPIENT` of `plain`, armored.
fn go_encrypt(sb: &Sandbox, recipient: &str, plain: &[u8]) -> String {
    let out = sb.run_with_stdin(age_go::age(), ["-e", "-a", "-r", recipient], plain);
    out.assert_success("age -e to a post-quantum recipient");
    out.stdout_str()
}

/// The real Go `age -d -i KEYS` of an armored file.
fn go_decrypt(sb: &Sandbox, key_file: &std::path::Path, armored: &str) -> Vec<u8> {
    let out = sb.run_with_stdin(
        age_go::age(),
        ["-d".as_ref(), "-i".as_ref(), key_file.as_os_str()],
        armored.as_bytes(),
    );
    out.assert_success("age -d with a post-quantum identity");
    out.stdout
}

fn read_ids(path: &std::path::Path) -> AgeIdentities {
    let text = std::fs::read_to_string(path).expect("key file");
    AgeIdentities::parse(&path.display().to_string(), &text).expect("identities parse")
}

#[test]
fn go_age_decrypts_what_enseal_wraps_for_a_go_made_pq_recipient() {
    let sb = Sandbox::new();
    let (key, recipient) = go_pq_key(&sb, "pq.txt");
    assert!(recipient.starts_with("age1pq1"), "{recipient}");
    let r: AgeRecipient = recipient
        .parse()
        .expect("enseal parses Go's age1pq1 recipient");
    assert!(r.is_post_quantum());
    let enc = agekeys::wrap(DATA_KEY, &r).expect("wrap");
    assert_eq!(go_decrypt(&sb, &key, &enc), DATA_KEY);
}

#[test]
fn enseal_opens_what_go_age_encrypts_to_an_enseal_made_pq_recipient() {
    let sb = Sandbox::new();
    let out = sb.enseal(["keygen", "--pq", "-o", "pq.txt"]);
    out.assert_success("enseal keygen --pq");
    let key = sb.file("pq.txt");
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("AGE-SECRET-KEY-PQ-1")),
        "{text}"
    );
    // Go age derives the same recipient as the one enseal printed and wrote in the comment.
    let recipient = go_recipient_of(&sb, &key);
    assert!(
        out.stderr_str()
            .contains(&format!("Public key: {recipient}")),
        "{}",
        out.stderr_str()
    );
    assert!(
        text.contains(&format!("# public key: {recipient}\n")),
        "{text}"
    );
    let armored = go_encrypt(&sb, &recipient, DATA_KEY);
    assert_eq!(
        &agekeys::unwrap(&armored, &read_ids(&key)).unwrap()[..],
        DATA_KEY
    );
}

/// One identity file with a classic and a PQ key, both from Go's age-keygen: Go age and enseal
/// each open what the other encrypted to either key.
#[test]
fn identity_files_mixing_classic_and_pq_keys_work_in_both() {
    let sb = Sandbox::new();
    let (pq_key, pq_r) = go_pq_key(&sb, "pq.txt");
    let classic_key = sb.file("classic.txt");
    sb.run(
        age_go::age_keygen(),
        ["-o".as_ref(), classic_key.as_os_str()],
    )
    .assert_success("age-keygen");
    let classic_r = go_recipient_of(&sb, &classic_key);
    let mixed = format!(
        "{}\n{}",
        std::fs::read_to_string(&classic_key).unwrap(),
        std::fs::read_to_string(&pq_key).unwrap()
    );
    let mixed_file = sb.write("mixed.txt", &mixed);
    let ids = read_ids(&mixed_file);
    assert_eq!(ids.len(), 2);
    for r in [&classic_r, &pq_r] {
        let from_go = go_encrypt(&sb, r, DATA_KEY);
        assert_eq!(
            &agekeys::unwrap(&from_go, &ids).unwrap()[..],
            DATA_KEY,
            "{r}"
        );
        let from_enseal = agekeys::wrap(DATA_KEY, &r.parse().unwrap()).unwrap();
        assert_eq!(go_decrypt(&sb, &mixed_file, &from_enseal), DATA_KEY, "{r}");
    }
}

#[test]
fn enseal_decrypts_a_file_sops_3_13_encrypted_to_a_pq_recipient() {
    let mut sb = Sandbox::new();
    let (key, recipient) = go_pq_key(&sb, "pq.txt");
    sb.write("plain.yaml", PLAIN_YAML);
    let enc = sb.sops_of(
        SopsRelease::V3_13,
        ["encrypt", "--age", &recipient, "plain.yaml"],
    );
    enc.assert_success("sops 3.13 encrypt --age age1pq1...");
    assert!(enc.stdout_str().contains(&recipient));
    sb.write("enc.yaml", &enc.stdout);
    sb.env("SOPS_AGE_KEY_FILE", &key);
    let dec = sb.enseal(["decrypt", "enc.yaml"]);
    dec.assert_success("enseal decrypt of sops 3.13's PQ file");
    assert_eq!(dec.stdout_str(), PLAIN_YAML);
}

/// Through `--age` and through a `.sops.yaml` creation rule; sops 3.13 opens both with the
/// PQ identity given in SOPS_AGE_KEY, beside a classic one on the same line (3.13 reads
/// several keys per line).
#[test]
fn sops_3_13_decrypts_what_enseal_encrypts_to_a_pq_recipient() {
    let mut sb = Sandbox::new();
    let (key, recipient) = go_pq_key(&sb, "pq.txt");
    sb.write("plain.yaml", PLAIN_YAML);
    let by_flag = sb.enseal(["encrypt", "--age", &recipient, "plain.yaml"]);
    by_flag.assert_success("enseal encrypt --age age1pq1...");
    sb.write("by-flag.yaml", &by_flag.stdout);
    sb.write(
        ".sops.yaml",
        format!("creation_rules:\n  - path_regex: \\.yaml$\n    age: >-\n      {recipient}\n"),
    );
    let by_rule = sb.enseal(["encrypt", "plain.yaml"]);
    by_rule.assert_success("enseal encrypt with a .sops.yaml PQ recipient");
    assert!(by_rule.stdout_str().contains(&recipient));
    sb.write("by-rule.yaml", &by_rule.stdout);
    std::fs::remove_file(sb.file(".sops.yaml")).unwrap();

    let secret = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .unwrap()
            .to_owned()
    };
    let classic = secret(&peers::identity_file("a"));
    sb.env("SOPS_AGE_KEY", format!("{classic} {}", secret(&key)));
    for file in ["by-flag.yaml", "by-rule.yaml"] {
        let dec = sb.sops_of(SopsRelease::V3_13, ["decrypt", file]);
        dec.assert_success(&format!("sops 3.13 decrypt of enseal's {file}"));
        assert_eq!(dec.stdout_str(), PLAIN_YAML, "{file}");
    }
}

/// A team moving to PQ keys keeps a classic recipient beside the PQ one for a while: sops
/// 3.11, which has no PQ keys, still opens the file with the classic key, and enseal and sops
/// 3.13 open it with the PQ key alone.
#[test]
fn a_file_with_classic_and_pq_recipients_opens_in_every_release() {
    let mut sb = Sandbox::new();
    let (key, recipient) = go_pq_key(&sb, "pq.txt");
    sb.write("plain.yaml", PLAIN_YAML);
    let both = format!("{},{recipient}", peers::recipient("a"));
    let enc = sb.enseal(["encrypt", "--age", &both, "plain.yaml"]);
    enc.assert_success("enseal encrypt to a classic and a PQ recipient");
    sb.write("enc.yaml", &enc.stdout);

    sb.use_identities(&["a"]);
    let dec = sb.sops_of(SopsRelease::V3_11, ["decrypt", "enc.yaml"]);
    dec.assert_success("sops 3.11 decrypt with the classic key");
    assert_eq!(dec.stdout_str(), PLAIN_YAML);

    sb.env("SOPS_AGE_KEY_FILE", &key);
    let dec = sb.sops_of(SopsRelease::V3_13, ["decrypt", "enc.yaml"]);
    dec.assert_success("sops 3.13 decrypt with the PQ key alone");
    assert_eq!(dec.stdout_str(), PLAIN_YAML);
    let dec = sb.enseal(["decrypt", "enc.yaml"]);
    dec.assert_success("enseal decrypt with the PQ key alone");
    assert_eq!(dec.stdout_str(), PLAIN_YAML);
}
