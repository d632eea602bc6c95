//! The Vault / OpenBao transit key source (`hc_vault`) against a real OpenBao dev server, in
//! both directions with sops 3.11 and 3.13.3: files one writes, the other opens; a key group
//! mixing age and Vault under Shamir; `.sops.yaml`, `SOPS_VAULT_URIS`, `~/.vault-token`,
//! rotate and updatekeys; and what sops does when the token is wrong or the server is down.

use std::sync::OnceLock;

use enseal_tests::cli::{Output, Sandbox};
use enseal_tests::openbao::{OpenBao, ROOT_TOKEN};
use enseal_tests::peers::{self, SopsRelease};

const PLAIN: &str = "db_password: hunter2\nport: 5432\nnested:\n    token: abc\n";

/// One server for this module's tests (each test uses its own transit keys).
fn bao() -> &'static OpenBao {
    static BAO: OnceLock<OpenBao> = OnceLock::new();
    BAO.get_or_init(OpenBao::start)
}

/// A sandbox whose commands reach the server with the root token.
fn sandbox(bao: &OpenBao) -> Sandbox {
    let mut sb = Sandbox::new();
    for (k, v) in bao.env() {
        sb.env(k, v);
    }
    sb
}

fn decrypted(out: &Output, what: &str) -> String {
    out.assert_success(what);
    out.stdout_str()
}

fn metadata_vault_entries(file: &str) -> usize {
    file.matches("vault_address:").count()
}

#[test]
fn files_enseal_encrypts_for_vault_open_in_both_sops_releases() {
    let bao = bao();
    let uri = bao.create_key("enseal-to-sops");
    let sb = sandbox(bao);
    sb.write("plain.yaml", PLAIN);
    let out = sb.enseal(["encrypt", "--hc-vault-transit", &uri, "plain.yaml"]);
    let enc = decrypted(&out, "enseal encrypt for Vault");
    // The entry as sops 3.11 writes it: address, engine, key name, created_at, enc.
    let entry = format!(
        "    hc_vault:\n        - vault_address: {}\n          engine_path: transit\n          key_name: enseal-to-sops\n          created_at: \"",
        bao.address
    );
    assert!(enc.contains(&entry), "unexpected metadata:\n{enc}");
    assert!(enc.contains("          enc: vault:v1:"), "{enc}");
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
fn files_both_sops_releases_encrypt_for_vault_open_in_enseal() {
    let bao = bao();
    let uri = bao.create_key("sops-to-enseal");
    let sb = sandbox(bao);
    sb.write("plain.yaml", PLAIN);
    sb.write("plain.json", "{\"a\": \"b\", \"n\": [1, 2]}");
    for release in SopsRelease::ALL {
        for (name, plain) in [("plain.yaml", PLAIN), ("plain.json", "")] {
            let out = sb.sops_of(release, ["encrypt", "--hc-vault-transit", &uri, name]);
            let enc = decrypted(&out, &format!("sops {} encrypt", release.name()));
            let ext = name.rsplit('.').next().unwrap();
            let file = format!("by-sops-{}.{ext}", release.name());
            sb.write(&file, &enc);
            let out = sb.enseal(["decrypt", &file]);
            let text = decrypted(&out, &format!("enseal decrypt of sops {}", release.name()));
            if !plain.is_empty() {
                assert_eq!(text, plain, "sops {}", release.name());
            } else {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v, serde_json::json!({"a": "b", "n": [1, 2]}));
            }
        }
    }
}

/// Two groups under Shamir (threshold 1 each way round would hide a broken share): age in one,
/// Vault in the other, threshold 2, from `.sops.yaml` key groups. Every file needs both.
#[test]
fn a_key_group_of_age_and_one_of_vault_need_each_other_in_both_directions() {
    let bao = bao();
    let uri = bao.create_key("mixed-groups");
    let mut sb = sandbox(bao);
    sb.use_identities(&["a"]);
    sb.write(
        ".sops.yaml",
        format!(
            "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - age:\n          - {}\n      - hc_vault:\n          - {uri}\n",
            peers::recipient("a")
        ),
    );
    sb.write("plain.yaml", PLAIN);
    let enc = decrypted(&sb.enseal(["encrypt", "plain.yaml"]), "enseal encrypt");
    assert!(
        enc.contains("key_groups:") && enc.contains("shamir_threshold: 2"),
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
    // Without Vault's share the age share alone is not enough: exit 128 as sops.
    let mut no_vault = sb_without_token(&sb, bao);
    no_vault.use_identities(&["a"]);
    let sops = no_vault.sops_of(SopsRelease::V3_13, ["decrypt", "by-enseal.yaml"]);
    sops.assert_code(128, "sops without a Vault token");
    let out = no_vault.enseal(["decrypt", "by-enseal.yaml"]);
    out.assert_code(128, "enseal without a Vault token");
}

/// A sandbox like `sb` (same files) whose token Vault refuses.
fn sb_without_token(sb: &Sandbox, bao: &OpenBao) -> Sandbox {
    let mut other = Sandbox::new();
    other.env("VAULT_ADDR", &bao.address);
    other.env("VAULT_TOKEN", "not-a-token");
    for entry in std::fs::read_dir(sb.path()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(
                entry.path(),
                other.file(&entry.file_name().to_string_lossy()),
            )
            .unwrap();
        }
    }
    other
}

#[test]
fn a_wrong_token_fails_like_sops_and_names_the_address_and_key() {
    let bao = bao();
    let uri = bao.create_key("wrong-token");
    let sb = sandbox(bao);
    sb.write("plain.yaml", PLAIN);
    let enc = decrypted(
        &sb.enseal(["encrypt", "--hc-vault-transit", &uri, "plain.yaml"]),
        "encrypt",
    );
    sb.write("enc.yaml", &enc);
    let bad = sb_without_token(&sb, bao);
    // Decrypting: sops' CouldNotRetrieveKey (128).
    let sops = bad.sops_of(SopsRelease::V3_13, ["decrypt", "enc.yaml"]);
    sops.assert_code(128, "sops 3.13 decrypt with a wrong token");
    let out = bad.enseal(["decrypt", "enc.yaml"]);
    out.assert_code(128, "enseal decrypt with a wrong token");
    let err = out.stderr_str();
    assert!(
        err.contains(&uri)
            && err.contains("/v1/transit/decrypt/wrong-token")
            && err.contains("403"),
        "{err}"
    );
    // Encrypting: sops exits 1 ("Could not generate data key").
    let sops = bad.sops_of(
        SopsRelease::V3_13,
        ["encrypt", "--hc-vault-transit", &uri, "plain.yaml"],
    );
    sops.assert_code(1, "sops 3.13 encrypt with a wrong token");
    let out = bad.enseal(["encrypt", "--hc-vault-transit", &uri, "plain.yaml"]);
    out.assert_code(1, "enseal encrypt with a wrong token");
    assert!(
        out.stderr_str().contains("permission denied"),
        "{}",
        out.stderr_str()
    );
    // The data key never reaches a message: only the address and key are named.
    assert!(
        !out.stderr_str().contains("plaintext"),
        "{}",
        out.stderr_str()
    );
}

#[test]
fn a_server_that_is_down_fails_like_sops_and_gives_up() {
    // Its own server, stopped halfway.
    let own = OpenBao::start();
    let uri = own.create_key("down");
    let sb = sandbox(&own);
    sb.write("plain.yaml", PLAIN);
    let enc = decrypted(
        &sb.enseal(["encrypt", "--hc-vault-transit", &uri, "plain.yaml"]),
        "encrypt",
    );
    sb.write("enc.yaml", &enc);
    drop(own);
    let sops = sb.sops_of(SopsRelease::V3_11, ["decrypt", "enc.yaml"]);
    sops.assert_code(128, "sops 3.11 decrypt with the server down");
    // No clock here: the command ending at all (the sandbox kills it after 120 s, which is
    // no exit code) shows it gives up on a refused connection rather than retrying on.
    let out = sb.enseal(["decrypt", "enc.yaml"]);
    out.assert_code(128, "enseal decrypt with the server down");
    let err = out.stderr_str();
    assert!(
        err.contains("cannot reach Vault at") && err.contains(&uri),
        "{err}"
    );
    let out = sb.enseal(["encrypt", "--hc-vault-transit", &uri, "plain.yaml"]);
    out.assert_code(1, "enseal encrypt with the server down");
}

/// `SOPS_VAULT_URIS`, `hc_vault_transit_uri` in a creation rule, and `~/.vault-token` when
/// `VAULT_TOKEN` is unset, as sops takes them.
#[test]
fn vault_keys_come_from_the_environment_and_sops_yaml_and_the_token_file() {
    let bao = bao();
    let one = bao.create_key("env-one");
    let two = bao.create_key("env-two");
    let mut sb = Sandbox::new();
    // No VAULT_TOKEN: the token is read from ~/.vault-token, trimmed.
    let home = sb.path().parent().unwrap().join("home");
    std::fs::write(home.join(".vault-token"), format!("{ROOT_TOKEN}\n")).unwrap();
    sb.write("plain.yaml", PLAIN);
    sb.env("SOPS_VAULT_URIS", format!("{one},{two}"));
    let enc = decrypted(&sb.enseal(["encrypt", "plain.yaml"]), "SOPS_VAULT_URIS");
    assert_eq!(metadata_vault_entries(&enc), 2, "{enc}");
    sb.write("env.yaml", &enc);
    for release in SopsRelease::ALL {
        assert_eq!(
            decrypted(&sb.sops_of(release, ["decrypt", "env.yaml"]), "sops"),
            PLAIN
        );
    }
    sb.env_remove("SOPS_VAULT_URIS");
    sb.write(
        ".sops.yaml",
        format!("creation_rules:\n  - hc_vault_transit_uri: {two}\n"),
    );
    let enc = decrypted(&sb.enseal(["encrypt", "plain.yaml"]), ".sops.yaml rule");
    assert_eq!(metadata_vault_entries(&enc), 1, "{enc}");
    assert!(enc.contains("key_name: env-two"), "{enc}");
    sb.write("rule.yaml", &enc);
    assert_eq!(
        decrypted(
            &sb.sops_of(SopsRelease::V3_13, ["decrypt", "rule.yaml"]),
            "sops"
        ),
        PLAIN
    );
    assert_eq!(
        decrypted(&sb.enseal(["decrypt", "rule.yaml"]), "enseal"),
        PLAIN
    );
}

#[test]
fn rotate_adds_and_removes_vault_keys_and_updatekeys_follows_the_rule() {
    let bao = bao();
    let one = bao.create_key("rotate-one");
    let two = bao.create_key("rotate-two");
    let sb = sandbox(bao);
    sb.write("plain.yaml", PLAIN);
    let enc = decrypted(
        &sb.enseal(["encrypt", "--hc-vault-transit", &one, "plain.yaml"]),
        "encrypt",
    );
    sb.write("f.yaml", &enc);
    let out = sb.enseal(["rotate", "-i", "--add-hc-vault-transit", &two, "f.yaml"]);
    out.assert_success("rotate --add-hc-vault-transit");
    let text = String::from_utf8(sb.read("f.yaml")).unwrap();
    assert_eq!(metadata_vault_entries(&text), 2, "{text}");
    let out = sb.enseal(["rotate", "-i", "--rm-hc-vault-transit", &one, "f.yaml"]);
    out.assert_success("rotate --rm-hc-vault-transit");
    let text = String::from_utf8(sb.read("f.yaml")).unwrap();
    assert_eq!(metadata_vault_entries(&text), 1, "{text}");
    assert!(text.contains("key_name: rotate-two"), "{text}");
    for release in SopsRelease::ALL {
        assert_eq!(
            decrypted(&sb.sops_of(release, ["decrypt", "f.yaml"]), "sops"),
            PLAIN
        );
    }
    // updatekeys: the rule now names key one only.
    sb.write(
        ".sops.yaml",
        format!("creation_rules:\n  - hc_vault_transit_uri: {one}\n"),
    );
    let out = sb.enseal(["updatekeys", "-y", "f.yaml"]);
    out.assert_success("updatekeys");
    let text = String::from_utf8(sb.read("f.yaml")).unwrap();
    assert_eq!(metadata_vault_entries(&text), 1, "{text}");
    assert!(text.contains("key_name: rotate-one"), "{text}");
    assert_eq!(
        decrypted(
            &sb.sops_of(SopsRelease::V3_13, ["decrypt", "f.yaml"]),
            "sops"
        ),
        PLAIN
    );
}

/// sops 3.13's `SOPS_HC_VAULT_ALLOWLIST`: an address outside it is refused before any call.
#[test]
fn the_allowlist_refuses_other_addresses_like_sops_3_13() {
    let bao = bao();
    let uri = bao.create_key("allowlist");
    let mut sb = sandbox(bao);
    sb.write("plain.yaml", PLAIN);
    let enc = decrypted(
        &sb.enseal(["encrypt", "--hc-vault-transit", &uri, "plain.yaml"]),
        "encrypt",
    );
    sb.write("enc.yaml", &enc);
    sb.env("SOPS_HC_VAULT_ALLOWLIST", "https://vault.example.com:8200");
    let sops = sb.sops_of(SopsRelease::V3_13, ["decrypt", "enc.yaml"]);
    sops.assert_code(128, "sops 3.13 outside the allowlist");
    let out = sb.enseal(["decrypt", "enc.yaml"]);
    out.assert_code(128, "enseal outside the allowlist");
    assert!(
        out.stderr_str()
            .contains("SOPS_HC_VAULT_ALLOWLIST does not allow"),
        "{}",
        out.stderr_str()
    );
    sb.env(
        "SOPS_HC_VAULT_ALLOWLIST",
        format!("{},https://other", bao.address),
    );
    assert_eq!(
        decrypted(
            &sb.sops_of(SopsRelease::V3_13, ["decrypt", "enc.yaml"]),
            "sops"
        ),
        PLAIN
    );
    assert_eq!(
        decrypted(&sb.enseal(["decrypt", "enc.yaml"]), "enseal"),
        PLAIN
    );
}

/// `publish` to Vault KV (sops' destination_rules with vault_path): enseal writes the same
/// secret sops writes, version 2 and version 1 mounts, and leaves an up-to-date secret alone
/// (no new version), as publish/vault.go does. The functional tests only check the exit code.
#[test]
fn publish_writes_the_same_kv_secrets_as_sops() {
    let own = OpenBao::start();
    own.bao(&["secrets", "enable", "-version=1", "kv"]);
    let uri = own.create_key("publish");
    let sb = sandbox(&own);
    sb.write(
        ".sops.yaml",
        format!(
            "creation_rules:\n  - hc_vault_transit_uri: {uri}\ndestination_rules:\n  - vault_path: v1-dir\n    vault_kv_mount_name: kv\n    vault_kv_version: 1\n    path_regex: \\.v1\\.\n  - vault_path: app/\n"
        ),
    );
    let plain = "{\"n\": 2, \"s\": \"x\", \"nested\": {\"b\": true, \"l\": [1, \"two\"]}}";
    for name in [
        "by-sops.json",
        "by-enseal.json",
        "by-sops.v1.json",
        "by-enseal.v1.json",
    ] {
        sb.write(name, plain);
        let tool = if name.starts_with("by-sops") {
            "sops"
        } else {
            "enseal"
        };
        let out = if tool == "sops" {
            sb.sops_of(SopsRelease::V3_13, ["encrypt", "-i", name])
        } else {
            sb.enseal(["encrypt", "-i", name])
        };
        out.assert_success(&format!("{tool} encrypt {name}"));
        let out = if tool == "sops" {
            sb.sops_of(SopsRelease::V3_13, ["publish", "--yes", name])
        } else {
            sb.enseal(["publish", "--yes", name])
        };
        out.assert_success(&format!("{tool} publish {name}"));
    }
    let read = |path: &str| -> serde_json::Value {
        let out = own.bao(&["read", "-format=json", path]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["data"].clone()
    };
    let v2 = |name: &str| read(&format!("secret/data/app/{name}"))["data"].clone();
    let expected: serde_json::Value = serde_json::from_str(plain).unwrap();
    assert_eq!(v2("by-sops.json"), expected);
    assert_eq!(v2("by-enseal.json"), v2("by-sops.json"));
    assert_eq!(
        read("kv/v1-dir/by-enseal.v1.json"),
        read("kv/v1-dir/by-sops.v1.json")
    );
    assert_eq!(read("kv/v1-dir/by-enseal.v1.json"), expected);
    // Published again unchanged: still version 1.
    sb.enseal(["publish", "-y", "by-enseal.json"])
        .assert_success("second publish");
    let meta = read("secret/metadata/app/by-enseal.json");
    assert_eq!(meta["current_version"], 1, "{meta}");
}

/// An https server whose CA is named by `VAULT_CACERT`, as the Go client (and so sops) reads
/// it: files go both ways; without the CA, or with a CA file that is not there, both refuse.
#[test]
fn https_with_vault_cacert_works_both_ways_and_other_cas_are_refused() {
    let own = OpenBao::start_tls();
    let uri = own.create_key("tls");
    assert!(uri.starts_with("https://"), "{uri}");
    let mut sb = sandbox(&own);
    sb.write("plain.yaml", PLAIN);
    let enc = decrypted(
        &sb.enseal(["encrypt", "--hc-vault-transit", &uri, "plain.yaml"]),
        "enseal encrypt over https",
    );
    sb.write("by-enseal.yaml", &enc);
    assert_eq!(
        decrypted(
            &sb.sops_of(SopsRelease::V3_13, ["decrypt", "by-enseal.yaml"]),
            "sops"
        ),
        PLAIN
    );
    let enc = decrypted(
        &sb.sops_of(
            SopsRelease::V3_11,
            ["encrypt", "--hc-vault-transit", &uri, "plain.yaml"],
        ),
        "sops 3.11 encrypt over https",
    );
    sb.write("by-sops.yaml", &enc);
    assert_eq!(
        decrypted(&sb.enseal(["decrypt", "by-sops.yaml"]), "enseal"),
        PLAIN
    );

    sb.env_remove("VAULT_CACERT");
    sb.sops_of(SopsRelease::V3_13, ["decrypt", "by-sops.yaml"])
        .assert_code(128, "sops without the CA");
    let out = sb.enseal(["decrypt", "by-sops.yaml"]);
    out.assert_code(128, "enseal without the CA");
    assert!(out.stderr_str().contains(&uri), "{}", out.stderr_str());

    sb.env("VAULT_CACERT", "/nonexistent/ca.pem");
    sb.sops_of(SopsRelease::V3_13, ["decrypt", "by-sops.yaml"])
        .assert_code(128, "sops with a missing CA file");
    let out = sb.enseal(["decrypt", "by-sops.yaml"]);
    out.assert_code(128, "enseal with a missing CA file");
    assert!(
        out.stderr_str().contains("VAULT_CACERT"),
        "{}",
        out.stderr_str()
    );
}
