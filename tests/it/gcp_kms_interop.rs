//! The GCP Cloud KMS key source (`gcp_kms`) against the fake Cloud KMS and token service of
//! tests/src/fake_gcp_kms.rs, with the real sops 3.13.3 as the judge: sops encrypts and
//! decrypts through the fake with the same credentials, and files go both ways. sops 3.11 is
//! not used: it speaks gRPC only and has no endpoint setting (`SOPS_GCP_KMS_ENDPOINT` and
//! `SOPS_GCP_KMS_CLIENT_TYPE` came in 3.12), so it cannot reach a fake.

use std::sync::OnceLock;

use enseal_tests::cli::{Output, Sandbox};
use enseal_tests::fake_gcp_kms::{FakeGcpKms, METADATA_PRINCIPAL};
use enseal_tests::peers::{self, SopsRelease};

const PLAIN: &str = "db_password: hunter2\nport: 5432\nnested:\n    token: abc\n";
const SOPS: SopsRelease = SopsRelease::V3_13;

/// One fake for this module's tests (each test uses its own keys and accounts).
fn fake() -> &'static FakeGcpKms {
    static FAKE: OnceLock<FakeGcpKms> = OnceLock::new();
    FAKE.get_or_init(FakeGcpKms::start)
}

/// A sandbox whose commands reach `fake` over REST, with no credentials yet.
fn bare_sandbox(fake: &FakeGcpKms) -> Sandbox {
    let mut sb = Sandbox::new();
    for (k, v) in fake.env() {
        sb.env(k, v);
    }
    sb
}

/// A sandbox whose commands authenticate as the service account `account`
/// (`GOOGLE_APPLICATION_CREDENTIALS`).
fn sandbox(fake: &FakeGcpKms, account: &str) -> Sandbox {
    let mut sb = bare_sandbox(fake);
    sb.env(
        "GOOGLE_APPLICATION_CREDENTIALS",
        fake.service_account(account),
    );
    sb
}

fn decrypted(out: &Output, what: &str) -> String {
    out.assert_success(what);
    out.stdout_str()
}

fn gcp_entries(file: &str) -> usize {
    file.matches("resource_id:").count()
}

#[test]
fn files_enseal_encrypts_for_gcp_kms_open_in_sops() {
    let fake = fake();
    let id = fake.create_key("enseal-to-sops");
    let sb = sandbox(fake, "enseal-to-sops");
    sb.write("plain.yaml", PLAIN);
    let enc = decrypted(
        &sb.enseal(["encrypt", "--gcp-kms", &id, "plain.yaml"]),
        "enseal encrypt for GCP KMS",
    );
    // The entry as sops 3.11 writes it: resource_id, created_at, enc.
    let entry = format!("    gcp_kms:\n        - resource_id: {id}\n          created_at: \"20");
    assert!(enc.contains(&entry), "unexpected metadata:\n{enc}");
    assert!(enc.contains("          enc: "), "{enc}");
    sb.write("enc.yaml", &enc);
    let out = sb.sops_of(SOPS, ["decrypt", "enc.yaml"]);
    assert_eq!(decrypted(&out, "sops 3.13 decrypt"), PLAIN);
    assert_eq!(
        decrypted(&sb.enseal(["decrypt", "enc.yaml"]), "enseal decrypt"),
        PLAIN
    );
}

#[test]
fn files_sops_encrypts_for_gcp_kms_open_in_enseal() {
    let fake = fake();
    let id = fake.create_key("sops-to-enseal");
    let sb = sandbox(fake, "sops-to-enseal");
    sb.write("plain.yaml", PLAIN);
    sb.write("plain.json", "{\"a\": \"b\", \"n\": [1, 2]}");
    for name in ["plain.yaml", "plain.json"] {
        let out = sb.sops_of(SOPS, ["encrypt", "--gcp-kms", &id, name]);
        let enc = decrypted(&out, "sops 3.13 encrypt");
        let ext = name.rsplit('.').next().unwrap();
        let file = format!("by-sops.{ext}");
        sb.write(&file, &enc);
        let text = decrypted(&sb.enseal(["decrypt", &file]), "enseal decrypt of sops");
        if ext == "yaml" {
            assert_eq!(text, PLAIN);
        } else {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v, serde_json::json!({"a": "b", "n": [1, 2]}));
        }
    }
    // Both went through the service account's token exchange, not around it.
    let log = fake.log();
    assert!(log.iter().any(|l| l == "POST /token -> 200"), "{log:?}");
}

/// The fake's ciphertexts are real: one made under a key does not open under another, for
/// sops as for enseal (each key has its own secret, and its name is bound in).
#[test]
fn a_ciphertext_opens_only_with_the_key_that_made_it() {
    let fake = fake();
    let one = fake.create_key("honest-one");
    let two = fake.create_key("honest-two");
    let sb = sandbox(fake, "honest");
    sb.write("plain.yaml", PLAIN);
    let enc = decrypted(
        &sb.sops_of(SOPS, ["encrypt", "--gcp-kms", &one, "plain.yaml"]),
        "sops encrypt",
    );
    sb.write("moved.yaml", enc.replace(&one, &two));
    sb.sops_of(SOPS, ["decrypt", "moved.yaml"])
        .assert_code(128, "sops with the wrong key");
    let out = sb.enseal(["decrypt", "moved.yaml"]);
    out.assert_code(128, "enseal with the wrong key");
    assert!(
        out.stderr_str().contains("INVALID_ARGUMENT"),
        "{}",
        out.stderr_str()
    );
}

/// Two groups under Shamir, threshold 2: age in one, GCP KMS in the other, from `.sops.yaml`
/// key groups. Every file needs both.
#[test]
fn a_key_group_of_age_and_one_of_gcp_kms_need_each_other_in_both_directions() {
    let fake = fake();
    let id = fake.create_key("mixed-groups");
    let mut sb = sandbox(fake, "mixed-groups");
    sb.use_identities(&["a"]);
    sb.write(
        ".sops.yaml",
        format!(
            "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - age:\n          - {}\n      - gcp_kms:\n          - resource_id: {id}\n",
            peers::recipient("a")
        ),
    );
    sb.write("plain.yaml", PLAIN);
    let enc = decrypted(&sb.enseal(["encrypt", "plain.yaml"]), "enseal encrypt");
    assert!(
        enc.contains("key_groups:")
            && enc.contains("shamir_threshold: 2")
            && gcp_entries(&enc) == 1,
        "{enc}"
    );
    sb.write("by-enseal.yaml", &enc);
    assert_eq!(
        decrypted(&sb.sops_of(SOPS, ["decrypt", "by-enseal.yaml"]), "sops"),
        PLAIN
    );
    let enc = decrypted(&sb.sops_of(SOPS, ["encrypt", "plain.yaml"]), "sops encrypt");
    sb.write("by-sops.yaml", &enc);
    assert_eq!(
        decrypted(&sb.enseal(["decrypt", "by-sops.yaml"]), "enseal decrypt"),
        PLAIN
    );
    // Without GCP's share the age share alone is not enough: exit 128 as sops.
    sb.env("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.not-a-token");
    sb.env_remove("GOOGLE_APPLICATION_CREDENTIALS");
    for file in ["by-enseal.yaml", "by-sops.yaml"] {
        sb.sops_of(SOPS, ["decrypt", file])
            .assert_code(128, "sops without GCP access");
        sb.enseal(["decrypt", file])
            .assert_code(128, "enseal without GCP access");
    }
}

/// sops' order and places: `GOOGLE_CREDENTIALS` (a path, or the JSON itself),
/// `GOOGLE_OAUTH_ACCESS_TOKEN`, `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's ADC file, the
/// metadata server (`GCE_METADATA_HOST`). Each opens a file sops wrote, and sops opens
/// enseal's, with that source alone.
#[test]
fn every_credential_source_sops_reads_works_for_both() {
    let fake = fake();
    let id = fake.create_key("sources");
    let sb = sandbox(fake, "sources-writer");
    sb.write("plain.yaml", PLAIN);
    let by_sops = decrypted(
        &sb.sops_of(SOPS, ["encrypt", "--gcp-kms", &id, "plain.yaml"]),
        "sops encrypt",
    );
    let by_enseal = decrypted(
        &sb.enseal(["encrypt", "--gcp-kms", &id, "plain.yaml"]),
        "enseal encrypt",
    );
    let account = fake.service_account("sources-reader");
    let json = std::fs::read_to_string(&account).unwrap();
    let token = fake.issue_token("sources-token");
    let adc_user = fake.authorized_user("sources-adc");
    let sources: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "GOOGLE_CREDENTIALS as a path",
            vec![("GOOGLE_CREDENTIALS", account.display().to_string())],
        ),
        (
            "GOOGLE_CREDENTIALS as JSON",
            vec![("GOOGLE_CREDENTIALS", json.clone())],
        ),
        (
            "GOOGLE_OAUTH_ACCESS_TOKEN",
            vec![("GOOGLE_OAUTH_ACCESS_TOKEN", token.clone())],
        ),
        (
            "GOOGLE_APPLICATION_CREDENTIALS",
            vec![(
                "GOOGLE_APPLICATION_CREDENTIALS",
                account.display().to_string(),
            )],
        ),
        (
            "the metadata server",
            vec![("GCE_METADATA_HOST", fake.host())],
        ),
    ];
    for (what, env) in sources {
        let mut sb = bare_sandbox(fake);
        for (k, v) in &env {
            sb.env(k, v);
        }
        sb.write("by-sops.yaml", &by_sops);
        sb.write("by-enseal.yaml", &by_enseal);
        assert_eq!(
            decrypted(&sb.enseal(["decrypt", "by-sops.yaml"]), what),
            PLAIN,
            "{what}"
        );
        assert_eq!(
            decrypted(&sb.sops_of(SOPS, ["decrypt", "by-enseal.yaml"]), what),
            PLAIN,
            "{what}"
        );
    }
    // gcloud's ADC file in the home directory, as sops finds it there.
    let sb = bare_sandbox(fake);
    let gcloud = sb.path().parent().unwrap().join("home/.config/gcloud");
    std::fs::create_dir_all(&gcloud).unwrap();
    std::fs::copy(
        &account,
        gcloud.join("application_default_credentials.json"),
    )
    .unwrap();
    sb.write("by-sops.yaml", &by_sops);
    assert_eq!(
        decrypted(&sb.enseal(["decrypt", "by-sops.yaml"]), "ADC file"),
        PLAIN
    );
    // An authorized user's refresh token, at the file's token_uri. (sops' Go library always
    // refreshes at Google's own endpoint, so only enseal is pointed at the fake here.)
    let mut sb = bare_sandbox(fake);
    sb.env("GOOGLE_APPLICATION_CREDENTIALS", &adc_user);
    sb.write("by-sops.yaml", &by_sops);
    assert_eq!(
        decrypted(&sb.enseal(["decrypt", "by-sops.yaml"]), "authorized user"),
        PLAIN
    );
    // The metadata server was asked as Google documents it (the header is required).
    let log = fake.log();
    assert!(
        log.iter()
            .any(|l| l == "GET /computeMetadata/v1/instance/service-accounts/default/token -> 200"),
        "{log:?}"
    );
}

/// A service account whose key the token service does not know (the signature does not
/// verify), and an access token it never issued: decrypt exits 128 and encrypt exits 1, as
/// sops 3.13.3; enseal names the token endpoint and what it answered.
#[test]
fn bad_credentials_fail_like_sops() {
    let fake = fake();
    let id = fake.create_key("bad-credentials");
    let sb = sandbox(fake, "bad-credentials");
    sb.write("plain.yaml", PLAIN);
    let enc = decrypted(
        &sb.enseal(["encrypt", "--gcp-kms", &id, "plain.yaml"]),
        "encrypt",
    );
    // Another account's key under this account's name.
    let good = fake.service_account("bad-credentials-2");
    let other = fake.service_account("bad-credentials-3");
    let mut forged: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&good).unwrap()).unwrap();
    let other: serde_json::Value = serde_json::from_slice(&std::fs::read(&other).unwrap()).unwrap();
    forged["private_key"] = other["private_key"].clone();
    let mut bad = bare_sandbox(fake);
    let forged_path = bad.write("forged.json", forged.to_string());
    bad.env("GOOGLE_APPLICATION_CREDENTIALS", &forged_path);
    bad.write("enc.yaml", &enc);
    bad.write("plain.yaml", PLAIN);
    bad.sops_of(SOPS, ["decrypt", "enc.yaml"])
        .assert_code(128, "sops 3.13 decrypt with a forged key");
    let out = bad.enseal(["decrypt", "enc.yaml"]);
    out.assert_code(128, "enseal decrypt with a forged key");
    let err = out.stderr_str();
    assert!(
        err.contains(&id) && err.contains(&fake.token_uri()) && err.contains("invalid_grant"),
        "{err}"
    );
    assert!(!err.contains("BEGIN PRIVATE KEY"), "{err}");
    bad.sops_of(SOPS, ["encrypt", "--gcp-kms", &id, "plain.yaml"])
        .assert_code(1, "sops 3.13 encrypt with a forged key");
    bad.enseal(["encrypt", "--gcp-kms", &id, "plain.yaml"])
        .assert_code(1, "enseal encrypt with a forged key");

    // A token the service never issued: 401 UNAUTHENTICATED from KMS itself.
    bad.env_remove("GOOGLE_APPLICATION_CREDENTIALS");
    bad.env("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.never-issued");
    bad.sops_of(SOPS, ["decrypt", "enc.yaml"])
        .assert_code(128, "sops 3.13 decrypt with a wrong token");
    let out = bad.enseal(["decrypt", "enc.yaml"]);
    out.assert_code(128, "enseal decrypt with a wrong token");
    assert!(
        out.stderr_str().contains("401") && out.stderr_str().contains("UNAUTHENTICATED"),
        "{}",
        out.stderr_str()
    );
    assert!(
        !out.stderr_str().contains("never-issued"),
        "{}",
        out.stderr_str()
    );
    bad.enseal(["encrypt", "--gcp-kms", &id, "plain.yaml"])
        .assert_code(1, "enseal encrypt with a wrong token");

    // No credentials anywhere (and no metadata server): 128, naming where enseal looked.
    bad.env_remove("GOOGLE_OAUTH_ACCESS_TOKEN");
    bad.sops_of(SOPS, ["decrypt", "enc.yaml"])
        .assert_code(128, "sops 3.13 without credentials");
    let out = bad.enseal(["decrypt", "enc.yaml"]);
    out.assert_code(128, "enseal without credentials");
    assert!(
        out.stderr_str()
            .contains("could not find default credentials"),
        "{}",
        out.stderr_str()
    );
}

/// IAM refuses the caller the key: 403 PERMISSION_DENIED; decrypt exits 128, encrypt 1, as
/// sops 3.13.3 does, and the message carries Google's words.
#[test]
fn a_refused_key_fails_like_sops() {
    let fake = fake();
    let id = fake.create_key("refused");
    let sb = sandbox(fake, "refused-writer");
    sb.write("plain.yaml", PLAIN);
    let enc = decrypted(
        &sb.enseal(["encrypt", "--gcp-kms", &id, "plain.yaml"]),
        "encrypt",
    );
    let refused = sandbox(fake, "refused-reader");
    fake.refuse(&id, &FakeGcpKms::email("refused-reader"));
    refused.write("enc.yaml", &enc);
    refused.write("plain.yaml", PLAIN);
    refused
        .sops_of(SOPS, ["decrypt", "enc.yaml"])
        .assert_code(128, "sops 3.13 decrypt, refused");
    let out = refused.enseal(["decrypt", "enc.yaml"]);
    out.assert_code(128, "enseal decrypt, refused");
    let err = out.stderr_str();
    assert!(
        err.contains("403")
            && err.contains("PERMISSION_DENIED")
            && err.contains("cloudkms.cryptoKeyVersions.useToDecrypt"),
        "{err}"
    );
    refused
        .sops_of(SOPS, ["encrypt", "--gcp-kms", &id, "plain.yaml"])
        .assert_code(1, "sops 3.13 encrypt, refused");
    let out = refused.enseal(["encrypt", "--gcp-kms", &id, "plain.yaml"]);
    out.assert_code(1, "enseal encrypt, refused");
    assert!(
        out.stderr_str().contains("useToEncrypt"),
        "{}",
        out.stderr_str()
    );
    // Refused for one account, the metadata server's is still let in, until it is refused too.
    let mut meta = bare_sandbox(fake);
    meta.env("GCE_METADATA_HOST", fake.host());
    meta.write("enc.yaml", &enc);
    assert_eq!(
        decrypted(&meta.enseal(["decrypt", "enc.yaml"]), "metadata account"),
        PLAIN
    );
    fake.refuse(&id, METADATA_PRINCIPAL);
    meta.enseal(["decrypt", "enc.yaml"])
        .assert_code(128, "enseal through the refused metadata account");
}

#[test]
fn a_service_that_is_down_fails_like_sops_and_gives_up() {
    // Its own fake, stopped halfway.
    let own = FakeGcpKms::start();
    let id = own.create_key("down");
    let mut sb = bare_sandbox(&own);
    sb.env(
        "GOOGLE_APPLICATION_CREDENTIALS",
        own.service_account("down"),
    );
    sb.write("plain.yaml", PLAIN);
    let enc = decrypted(
        &sb.enseal(["encrypt", "--gcp-kms", &id, "plain.yaml"]),
        "encrypt",
    );
    sb.write("enc.yaml", &enc);
    own.stop();
    sb.sops_of(SOPS, ["decrypt", "enc.yaml"])
        .assert_code(128, "sops 3.13 decrypt with the service down");
    // No clock here: the command ending at all (the sandbox kills it after 120 s, which is
    // no exit code) shows it gives up on a refused connection rather than retrying on.
    let out = sb.enseal(["decrypt", "enc.yaml"]);
    out.assert_code(128, "enseal decrypt with the service down");
    let err = out.stderr_str();
    assert!(err.contains("cannot") && err.contains(&id), "{err}");
    sb.sops_of(SOPS, ["encrypt", "--gcp-kms", &id, "plain.yaml"])
        .assert_code(1, "sops 3.13 encrypt with the service down");
    sb.enseal(["encrypt", "--gcp-kms", &id, "plain.yaml"])
        .assert_code(1, "enseal encrypt with the service down");
    // Down behind a valid static token too: the KMS call itself is refused a connection.
    sb.env_remove("GOOGLE_APPLICATION_CREDENTIALS");
    sb.env("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.any");
    let out = sb.enseal(["decrypt", "enc.yaml"]);
    out.assert_code(128, "enseal decrypt, KMS down");
    assert!(
        out.stderr_str().contains("cannot reach GCP KMS at"),
        "{}",
        out.stderr_str()
    );
}

/// `SOPS_GCP_KMS_IDS`, `gcp_kms` in a creation rule (a comma-separated string), as sops takes
/// them.
#[test]
fn gcp_kms_keys_come_from_the_environment_and_sops_yaml() {
    let fake = fake();
    let one = fake.create_key("env-one");
    let two = fake.create_key("env-two");
    let mut sb = sandbox(fake, "env");
    sb.write("plain.yaml", PLAIN);
    sb.env("SOPS_GCP_KMS_IDS", format!("{one},{two}"));
    let enc = decrypted(&sb.enseal(["encrypt", "plain.yaml"]), "SOPS_GCP_KMS_IDS");
    assert_eq!(gcp_entries(&enc), 2, "{enc}");
    sb.write("env.yaml", &enc);
    assert_eq!(
        decrypted(&sb.sops_of(SOPS, ["decrypt", "env.yaml"]), "sops"),
        PLAIN
    );
    sb.env_remove("SOPS_GCP_KMS_IDS");
    sb.write(
        ".sops.yaml",
        format!("creation_rules:\n  - gcp_kms: '{one}, {two}'\n"),
    );
    let enc = decrypted(&sb.enseal(["encrypt", "plain.yaml"]), ".sops.yaml rule");
    assert_eq!(gcp_entries(&enc), 2, "{enc}");
    let by_sops = decrypted(&sb.sops_of(SOPS, ["encrypt", "plain.yaml"]), "sops");
    assert_eq!(gcp_entries(&by_sops), 2, "{by_sops}");
    sb.write("rule.yaml", &enc);
    assert_eq!(
        decrypted(&sb.sops_of(SOPS, ["decrypt", "rule.yaml"]), "sops"),
        PLAIN
    );
}

#[test]
fn rotate_adds_and_removes_gcp_kms_keys_and_updatekeys_follows_the_rule() {
    let fake = fake();
    let one = fake.create_key("rotate-one");
    let two = fake.create_key("rotate-two");
    let sb = sandbox(fake, "rotate");
    sb.write("plain.yaml", PLAIN);
    let enc = decrypted(
        &sb.enseal(["encrypt", "--gcp-kms", &one, "plain.yaml"]),
        "encrypt",
    );
    sb.write("f.yaml", &enc);
    sb.enseal(["rotate", "-i", "--add-gcp-kms", &two, "f.yaml"])
        .assert_success("rotate --add-gcp-kms");
    let text = String::from_utf8(sb.read("f.yaml")).unwrap();
    assert_eq!(gcp_entries(&text), 2, "{text}");
    // The legacy form, as sops' `-r --rm-gcp-kms`.
    sb.enseal(["-r", "-i", "--rm-gcp-kms", &one, "f.yaml"])
        .assert_success("-r --rm-gcp-kms");
    let text = String::from_utf8(sb.read("f.yaml")).unwrap();
    assert_eq!(gcp_entries(&text), 1, "{text}");
    assert!(text.contains("cryptoKeys/rotate-two"), "{text}");
    assert_eq!(
        decrypted(&sb.sops_of(SOPS, ["decrypt", "f.yaml"]), "sops"),
        PLAIN
    );
    // updatekeys: the rule now names key one only.
    sb.write(
        ".sops.yaml",
        format!("creation_rules:\n  - gcp_kms: {one}\n"),
    );
    sb.enseal(["updatekeys", "-y", "f.yaml"])
        .assert_success("updatekeys");
    let text = String::from_utf8(sb.read("f.yaml")).unwrap();
    assert_eq!(gcp_entries(&text), 1, "{text}");
    assert!(text.contains("cryptoKeys/rotate-one"), "{text}");
    assert_eq!(
        decrypted(&sb.sops_of(SOPS, ["decrypt", "f.yaml"]), "sops"),
        PLAIN
    );
}
