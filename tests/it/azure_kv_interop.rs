//! The Azure Key Vault key source (`azure_kv`) against the fake Key Vault and token service of
//! tests/src/fake_azure_kv.rs, with the real sops proving the fake honest: sops (the Go SDK)
//! encrypts and decrypts through it on its own, and sops and enseal open each other's files
//! through it, both ways, including a Shamir group mixing azure_kv and age. Also the four
//! credentials (client secret, certificate, workload identity, an App Service managed
//! identity), `.sops.yaml`,
//! `SOPS_AZURE_KEYVAULT_URLS`, rotate and updatekeys, and what sops does with a wrong secret, a
//! key that refuses the client and a service that is down.

use std::sync::OnceLock;

use enseal_tests::cli::{Output, Sandbox};
use enseal_tests::fake_azure_kv::{FakeAzure, SYSTEM_ASSIGNED, TENANT};
use enseal_tests::peers::{self, SopsRelease};

const PLAIN: &str = "db_password: hunter2\nport: 5432\nnested:\n    token: abc\n";
const CLIENT: &str = "enseal-test-client";
const SECRET: &str = "s3cret~value with spaces&=";
/// The managed identity host's `IDENTITY_HEADER`.
const IDENTITY_HEADER: &str = "identity-header-5e1f0c";
/// A user-assigned identity of the managed identity host.
const USER_ASSIGNED: &str = "user-assigned-client";

/// One fake for this module's tests (each test uses its own vault names or keys).
fn fake() -> &'static FakeAzure {
    static FAKE: OnceLock<FakeAzure> = OnceLock::new();
    FAKE.get_or_init(|| {
        let fake = FakeAzure::start();
        fake.add_secret_client(CLIENT, SECRET);
        fake
    })
}

/// A sandbox reaching `fake` through its proxy, trusting its CA, as the client-secret client.
fn sandbox(fake: &FakeAzure) -> Sandbox {
    let mut sb = Sandbox::new();
    for (k, v) in fake.env() {
        sb.env(k, v);
    }
    sb.env("AZURE_TENANT_ID", TENANT);
    sb.env("AZURE_CLIENT_ID", CLIENT);
    sb.env("AZURE_CLIENT_SECRET", SECRET);
    sb
}

fn decrypted(out: &Output, what: &str) -> String {
    out.assert_success(what);
    out.stdout_str()
}

fn entries(file: &str) -> usize {
    file.matches("vault_url:").count()
}

/// The fake is honest if the real sops, on its own, encrypts and decrypts through it: a key
/// URL with its version, and one without (sops looks the current version up first). The data
/// key never goes out before the challenge: the first request to the vault has no body.
#[test]
fn sops_encrypts_and_decrypts_through_the_fake_on_its_own() {
    let fake = fake();
    let url = fake.create_key("sops-alone", "k");
    let unversioned = url.rsplit_once('/').unwrap().0.to_string();
    let sb = sandbox(fake);
    sb.write("plain.yaml", PLAIN);
    for release in SopsRelease::ALL {
        for key in [&url, &unversioned] {
            let out = sb.sops_of(release, ["encrypt", "--azure-kv", key, "plain.yaml"]);
            let enc = decrypted(&out, &format!("sops {} encrypt", release.name()));
            assert!(enc.contains("azure_kv:"), "{enc}");
            // The version is always written down.
            let version = url.rsplit('/').next().unwrap();
            assert!(enc.contains(&format!("version: {version}")), "{enc}");
            sb.write("enc.yaml", &enc);
            let out = sb.sops_of(release, ["decrypt", "enc.yaml"]);
            assert_eq!(decrypted(&out, "sops decrypt"), PLAIN, "{}", release.name());
        }
    }
    let log = fake.log();
    let first = log
        .iter()
        .find(|l| l.contains("sops-alone.vault.azure.test"))
        .unwrap();
    assert!(!first.contains("bytes)"), "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with("POST login.azure.test /") && l.contains("/oauth2/v2.0/token")),
        "{log:?}"
    );
}

#[test]
fn files_enseal_encrypts_for_azure_kv_open_in_both_sops_releases() {
    let fake = fake();
    let url = fake.create_key("enseal-to-sops", "k");
    let sb = sandbox(fake);
    sb.write("plain.yaml", PLAIN);
    let out = sb.enseal(["encrypt", "--azure-kv", &url, "plain.yaml"]);
    let enc = decrypted(&out, "enseal encrypt for Azure Key Vault");
    // The entry as sops 3.11 writes it: vault_url, name, version, created_at, enc.
    let version = url.rsplit('/').next().unwrap();
    let entry = format!(
        "    azure_kv:\n        - vault_url: {}\n          name: k\n          version: {version}\n          created_at: \"",
        FakeAzure::vault_url("enseal-to-sops")
    );
    assert!(enc.contains(&entry), "unexpected metadata:\n{enc}");
    // base64url without padding, as sops writes it.
    let enc_line = enc.lines().find(|l| l.contains("  enc: ")).unwrap();
    let value = enc_line.trim().trim_start_matches("enc: ");
    assert!(
        value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{value}"
    );
    sb.write("enc.yaml", &enc);
    for release in SopsRelease::ALL {
        let out = sb.sops_of(release, ["decrypt", "enc.yaml"]);
        assert_eq!(
            decrypted(&out, &format!("sops {} decrypt", release.name())),
            PLAIN,
            "sops {}",
            release.name()
        );
    }
}

#[test]
fn files_both_sops_releases_encrypt_for_azure_kv_open_in_enseal() {
    let fake = fake();
    let url = fake.create_key("sops-to-enseal", "k");
    let sb = sandbox(fake);
    sb.write("plain.yaml", PLAIN);
    sb.write("plain.json", "{\"a\": \"b\", \"n\": [1, 2]}");
    for release in SopsRelease::ALL {
        for name in ["plain.yaml", "plain.json"] {
            let out = sb.sops_of(release, ["encrypt", "--azure-kv", &url, name]);
            let enc = decrypted(&out, &format!("sops {} encrypt", release.name()));
            let ext = name.rsplit('.').next().unwrap();
            let file = format!("by-sops-{}.{ext}", release.name());
            sb.write(&file, &enc);
            let text = decrypted(
                &sb.enseal(["decrypt", &file]),
                &format!("enseal decrypt of sops {}", release.name()),
            );
            if ext == "yaml" {
                assert_eq!(text, PLAIN, "sops {}", release.name());
            } else {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v, serde_json::json!({"a": "b", "n": [1, 2]}));
            }
        }
    }
}

/// Two groups under Shamir, threshold 2: age in one, Azure Key Vault in the other (the
/// `key_groups` form `{vaultUrl, key}` without a version). Every file needs both.
#[test]
fn a_key_group_of_age_and_one_of_azure_kv_need_each_other_in_both_directions() {
    let fake = fake();
    let url = fake.create_key("mixed-groups", "k");
    let mut sb = sandbox(fake);
    sb.use_identities(&["a"]);
    sb.write(
        ".sops.yaml",
        format!(
            "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - age:\n          - {}\n      - azure_keyvault:\n          - vaultUrl: {}\n            key: k\n",
            peers::recipient("a"),
            FakeAzure::vault_url("mixed-groups")
        ),
    );
    sb.write("plain.yaml", PLAIN);
    let enc = decrypted(&sb.enseal(["encrypt", "plain.yaml"]), "enseal encrypt");
    assert!(
        enc.contains("key_groups:") && enc.contains("shamir_threshold: 2"),
        "{enc}"
    );
    assert!(
        enc.contains(&format!("version: {}", url.rsplit('/').next().unwrap())),
        "{enc}"
    );
    sb.write("by-enseal.yaml", &enc);
    for release in SopsRelease::ALL {
        let out = sb.sops_of(release, ["decrypt", "by-enseal.yaml"]);
        assert_eq!(decrypted(&out, release.name()), PLAIN);
        let enc = decrypted(
            &sb.sops_of(release, ["encrypt", "plain.yaml"]),
            &format!("sops {} encrypt", release.name()),
        );
        let file = format!("by-sops-{}.yaml", release.name());
        sb.write(&file, &enc);
        assert_eq!(
            decrypted(&sb.enseal(["decrypt", &file]), "enseal decrypt"),
            PLAIN
        );
    }
    // Without the Azure share the age share alone is not enough: exit 128 as sops.
    sb.env_remove("AZURE_CLIENT_SECRET");
    let sops = sb.sops_of(SopsRelease::V3_13, ["decrypt", "by-enseal.yaml"]);
    sops.assert_code(128, "sops without Azure credentials");
    let out = sb.enseal(["decrypt", "by-enseal.yaml"]);
    out.assert_code(128, "enseal without Azure credentials");
}

#[test]
fn a_wrong_client_secret_fails_like_sops_and_names_the_key_and_the_refusal() {
    let fake = fake();
    let url = fake.create_key("wrong-secret", "k");
    let mut sb = sandbox(fake);
    sb.write("plain.yaml", PLAIN);
    let enc = decrypted(
        &sb.enseal(["encrypt", "--azure-kv", &url, "plain.yaml"]),
        "encrypt",
    );
    sb.write("enc.yaml", &enc);
    sb.env("AZURE_CLIENT_SECRET", "not-the-secret");
    // Decrypting: sops' CouldNotRetrieveKey (128).
    let sops = sb.sops_of(SopsRelease::V3_13, ["decrypt", "enc.yaml"]);
    sops.assert_code(128, "sops 3.13 decrypt with a wrong secret");
    assert!(
        sops.stderr_str().contains("AADSTS7000215"),
        "{}",
        sops.stderr_str()
    );
    let out = sb.enseal(["decrypt", "enc.yaml"]);
    out.assert_code(128, "enseal decrypt with a wrong secret");
    let err = out.stderr_str();
    assert!(
        err.contains(&url) && err.contains("AADSTS7000215") && err.contains("invalid_client"),
        "{err}"
    );
    assert!(!err.contains("not-the-secret"), "{err}");
    // Encrypting: sops exits 1 ("Could not generate data key").
    let sops = sb.sops_of(
        SopsRelease::V3_13,
        ["encrypt", "--azure-kv", &url, "plain.yaml"],
    );
    sops.assert_code(1, "sops 3.13 encrypt with a wrong secret");
    let out = sb.enseal(["encrypt", "--azure-kv", &url, "plain.yaml"]);
    out.assert_code(1, "enseal encrypt with a wrong secret");
    assert!(
        out.stderr_str().contains("AADSTS7000215"),
        "{}",
        out.stderr_str()
    );
}

#[test]
fn a_key_that_refuses_the_client_fails_like_sops() {
    let fake = fake();
    let url = fake.create_key("refusing", "k");
    let sb = sandbox(fake);
    sb.write("plain.yaml", PLAIN);
    let enc = decrypted(
        &sb.enseal(["encrypt", "--azure-kv", &url, "plain.yaml"]),
        "encrypt",
    );
    sb.write("enc.yaml", &enc);
    fake.refuse("refusing", "k", CLIENT);
    let sops = sb.sops_of(SopsRelease::V3_13, ["decrypt", "enc.yaml"]);
    sops.assert_code(128, "sops 3.13 decrypt with the key refusing");
    let out = sb.enseal(["decrypt", "enc.yaml"]);
    out.assert_code(128, "enseal decrypt with the key refusing");
    let err = out.stderr_str();
    assert!(
        err.contains(&url) && err.contains("403") && err.contains("Forbidden"),
        "{err}"
    );
    let out = sb.enseal(["encrypt", "--azure-kv", &url, "plain.yaml"]);
    out.assert_code(1, "enseal encrypt with the key refusing");
    let sops = sb.sops_of(
        SopsRelease::V3_13,
        ["encrypt", "--azure-kv", &url, "plain.yaml"],
    );
    sops.assert_code(1, "sops 3.13 encrypt with the key refusing");
}

#[test]
fn a_service_that_is_down_fails_like_sops_and_gives_up() {
    // Its own fake, stopped halfway.
    let own = FakeAzure::start();
    own.add_secret_client(CLIENT, SECRET);
    let url = own.create_key("down", "k");
    let sb = sandbox(&own);
    sb.write("plain.yaml", PLAIN);
    let enc = decrypted(
        &sb.enseal(["encrypt", "--azure-kv", &url, "plain.yaml"]),
        "encrypt",
    );
    sb.write("enc.yaml", &enc);
    own.stop();
    let sops = sb.sops_of(SopsRelease::V3_13, ["decrypt", "enc.yaml"]);
    sops.assert_code(128, "sops 3.13 decrypt with the service down");
    // No clock here: the command ending at all (the sandbox kills it after 120 s, which is
    // no exit code) shows it gives up on a refused connection rather than retrying on.
    let out = sb.enseal(["decrypt", "enc.yaml"]);
    out.assert_code(128, "enseal decrypt with the service down");
    let err = out.stderr_str();
    assert!(err.contains("cannot reach") && err.contains(&url), "{err}");
    let out = sb.enseal(["encrypt", "--azure-kv", &url, "plain.yaml"]);
    out.assert_code(1, "enseal encrypt with the service down");
}

/// `SOPS_AZURE_KEYVAULT_URLS`, `azure_keyvault` at the top of a creation rule, rotate
/// `--add-azure-kv`/`--rm-azure-kv` and updatekeys, as sops takes them.
#[test]
fn azure_kv_keys_come_from_the_environment_sops_yaml_rotate_and_updatekeys() {
    let fake = fake();
    let one = fake.create_key("keys-from", "one");
    let two = fake.create_key("keys-from", "two");
    let mut sb = sandbox(fake);
    sb.write("plain.yaml", PLAIN);
    sb.env("SOPS_AZURE_KEYVAULT_URLS", format!("{one},{two}"));
    let enc = decrypted(
        &sb.enseal(["encrypt", "plain.yaml"]),
        "SOPS_AZURE_KEYVAULT_URLS",
    );
    assert_eq!(entries(&enc), 2, "{enc}");
    sb.env_remove("SOPS_AZURE_KEYVAULT_URLS");
    sb.write(
        ".sops.yaml",
        format!("creation_rules:\n  - azure_keyvault: {two}\n"),
    );
    let enc = decrypted(&sb.enseal(["encrypt", "plain.yaml"]), ".sops.yaml rule");
    assert_eq!(entries(&enc), 1, "{enc}");
    assert!(enc.contains("name: two"), "{enc}");
    sb.write("f.yaml", &enc);
    let out = sb.enseal(["rotate", "-i", "--add-azure-kv", &one, "f.yaml"]);
    out.assert_success("rotate --add-azure-kv");
    let text = String::from_utf8(sb.read("f.yaml")).unwrap();
    assert_eq!(entries(&text), 2, "{text}");
    let out = sb.enseal(["rotate", "-i", "--rm-azure-kv", &two, "f.yaml"]);
    out.assert_success("rotate --rm-azure-kv");
    let text = String::from_utf8(sb.read("f.yaml")).unwrap();
    assert_eq!(entries(&text), 1, "{text}");
    assert!(text.contains("name: one"), "{text}");
    for release in SopsRelease::ALL {
        assert_eq!(
            decrypted(&sb.sops_of(release, ["decrypt", "f.yaml"]), "sops"),
            PLAIN
        );
    }
    // updatekeys: the rule names key two only.
    let out = sb.enseal(["updatekeys", "-y", "f.yaml"]);
    out.assert_success("updatekeys");
    let text = String::from_utf8(sb.read("f.yaml")).unwrap();
    assert_eq!(entries(&text), 1, "{text}");
    assert!(text.contains("name: two"), "{text}");
    assert_eq!(
        decrypted(
            &sb.sops_of(SopsRelease::V3_13, ["decrypt", "f.yaml"]),
            "sops"
        ),
        PLAIN
    );
}

/// DefaultAzureCredential's other sources: a client certificate (PEM, PS256 assertion) and
/// workload identity (a federated token file); sops and enseal each authenticate with them
/// and open each other's files.
#[test]
fn client_certificates_and_workload_identity_authenticate_like_sops() {
    let fake = fake();
    let url = fake.create_key("other-credentials", "k");
    let pem = fake.add_certificate_client("cert-client");
    fake.add_federated_client("federated-client", "federated-jwt-from-kubernetes");
    let base = sandbox(fake);
    base.write("plain.yaml", PLAIN);
    // As Kubernetes projects it: no line break (azidentity sends the file as it is).
    let token_file = base.write("token", "federated-jwt-from-kubernetes");
    let mut cert = sandbox(fake);
    cert.env_remove("AZURE_CLIENT_SECRET");
    cert.env("AZURE_CLIENT_ID", "cert-client");
    cert.env("AZURE_CLIENT_CERTIFICATE_PATH", &pem);
    let mut federated = sandbox(fake);
    federated.env_remove("AZURE_CLIENT_SECRET");
    federated.env("AZURE_CLIENT_ID", "federated-client");
    federated.env("AZURE_FEDERATED_TOKEN_FILE", &token_file);
    for (what, sb) in [("certificate", &cert), ("workload identity", &federated)] {
        sb.write("plain.yaml", PLAIN);
        let enc = decrypted(
            &sb.enseal(["encrypt", "--azure-kv", &url, "plain.yaml"]),
            &format!("enseal encrypt with a {what}"),
        );
        sb.write("by-enseal.yaml", &enc);
        let out = sb.sops_of(SopsRelease::V3_13, ["decrypt", "by-enseal.yaml"]);
        assert_eq!(decrypted(&out, &format!("sops with a {what}")), PLAIN);
        let enc = decrypted(
            &sb.sops_of(
                SopsRelease::V3_13,
                ["encrypt", "--azure-kv", &url, "plain.yaml"],
            ),
            &format!("sops encrypt with a {what}"),
        );
        sb.write("by-sops.yaml", &enc);
        let out = sb.enseal(["decrypt", "by-sops.yaml"]);
        assert_eq!(decrypted(&out, &format!("enseal with a {what}")), PLAIN);
    }
    // A federated token the service does not know is refused by both.
    federated.write("token", "another-token");
    let token_file = federated.file("token");
    federated.env("AZURE_FEDERATED_TOKEN_FILE", &token_file);
    let out = federated.enseal(["decrypt", "by-sops.yaml"]);
    out.assert_code(128, "enseal with an unknown federated token");
    let sops = federated.sops_of(SopsRelease::V3_13, ["decrypt", "by-sops.yaml"]);
    sops.assert_code(128, "sops with an unknown federated token");
}

/// A sandbox on an App Service-like host: the managed identity endpoint and header of `fake`,
/// its proxy and CA, and no other Azure credential.
fn managed_identity_sandbox(fake: &FakeAzure) -> Sandbox {
    let endpoint = fake.serve_managed_identity(IDENTITY_HEADER, &[USER_ASSIGNED]);
    let mut sb = Sandbox::new();
    for (k, v) in fake.env() {
        sb.env(k, v);
    }
    sb.env("IDENTITY_ENDPOINT", endpoint);
    sb.env("IDENTITY_HEADER", IDENTITY_HEADER);
    sb
}

/// DefaultAzureCredential's last source: with `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` set
/// and no other credential, sops 3.13 and enseal get tokens from the host's managed identity
/// endpoint and open each other's files; `AZURE_CLIENT_ID` selects a user-assigned identity
/// (the key refuses the system-assigned one, so both tools must send it).
#[test]
fn a_managed_identity_authenticates_like_sops_in_both_directions() {
    let fake = fake();
    let url = fake.create_key("managed-identity", "k");
    let user_only = fake.create_key("managed-identity", "user-only");
    fake.refuse("managed-identity", "user-only", SYSTEM_ASSIGNED);
    let mut sb = managed_identity_sandbox(fake);
    sb.write("plain.yaml", PLAIN);
    for (who, key) in [("system-assigned", &url), ("user-assigned", &user_only)] {
        if who == "user-assigned" {
            sb.env("AZURE_CLIENT_ID", USER_ASSIGNED);
        }
        let enc = decrypted(
            &sb.enseal(["encrypt", "--azure-kv", key, "plain.yaml"]),
            &format!("enseal encrypt with the {who} identity"),
        );
        sb.write("by-enseal.yaml", &enc);
        let out = sb.sops_of(SopsRelease::V3_13, ["decrypt", "by-enseal.yaml"]);
        assert_eq!(
            decrypted(&out, &format!("sops with the {who} identity")),
            PLAIN
        );
        let enc = decrypted(
            &sb.sops_of(
                SopsRelease::V3_13,
                ["encrypt", "--azure-kv", key, "plain.yaml"],
            ),
            &format!("sops encrypt with the {who} identity"),
        );
        sb.write("by-sops.yaml", &enc);
        let out = sb.enseal(["decrypt", "by-sops.yaml"]);
        assert_eq!(
            decrypted(&out, &format!("enseal with the {who} identity")),
            PLAIN
        );
    }
    // Without AZURE_CLIENT_ID the system-assigned identity is used, which this key refuses.
    sb.env_remove("AZURE_CLIENT_ID");
    let sops = sb.sops_of(SopsRelease::V3_13, ["decrypt", "by-sops.yaml"]);
    sops.assert_code(
        128,
        "sops with the system-assigned identity on a key refusing it",
    );
    let out = sb.enseal(["decrypt", "by-sops.yaml"]);
    out.assert_code(
        128,
        "enseal with the system-assigned identity on a key refusing it",
    );
    let err = out.stderr_str();
    assert!(
        err.contains("403") && err.contains(SYSTEM_ASSIGNED),
        "{err}"
    );
    let log = fake.log();
    assert!(
        log.iter().any(|l| l == "GET 127.0.0.1 /msi/token"),
        "{log:?}"
    );
}

/// A wrong `IDENTITY_HEADER`: the endpoint refuses, and both tools fail with sops' exit codes
/// (128 decrypting, 1 encrypting); enseal's message names the endpoint and its answer, never
/// the header value (neither the wrong one nor the right one) or a token.
#[test]
fn a_wrong_identity_header_fails_like_sops_without_showing_it() {
    let fake = fake();
    let url = fake.create_key("managed-identity-wrong", "k");
    let mut sb = managed_identity_sandbox(fake);
    sb.write("plain.yaml", PLAIN);
    let enc = decrypted(
        &sb.enseal(["encrypt", "--azure-kv", &url, "plain.yaml"]),
        "encrypt with the managed identity",
    );
    sb.write("enc.yaml", &enc);
    let wrong = "not-the-identity-header";
    sb.env("IDENTITY_HEADER", wrong);
    let endpoint = fake.serve_managed_identity(IDENTITY_HEADER, &[USER_ASSIGNED]);
    let sops = sb.sops_of(SopsRelease::V3_13, ["decrypt", "enc.yaml"]);
    sops.assert_code(128, "sops 3.13 decrypt with a wrong identity header");
    assert!(
        sops.stderr_str().contains(&endpoint) && sops.stderr_str().contains("401"),
        "{}",
        sops.stderr_str()
    );
    let out = sb.enseal(["decrypt", "enc.yaml"]);
    out.assert_code(128, "enseal decrypt with a wrong identity header");
    let err = out.stderr_str();
    assert!(
        err.contains(&url)
            && err.contains(&endpoint)
            && err.contains("401")
            && err.contains("unauthorized_client"),
        "{err}"
    );
    for hidden in [wrong, IDENTITY_HEADER, "access_token"] {
        assert!(!err.contains(hidden), "{hidden} shown: {err}");
    }
    let sops = sb.sops_of(
        SopsRelease::V3_13,
        ["encrypt", "--azure-kv", &url, "plain.yaml"],
    );
    sops.assert_code(1, "sops 3.13 encrypt with a wrong identity header");
    let out = sb.enseal(["encrypt", "--azure-kv", &url, "plain.yaml"]);
    out.assert_code(1, "enseal encrypt with a wrong identity header");
    let err = out.stderr_str();
    assert!(err.contains(&endpoint) && !err.contains(wrong), "{err}");
}
