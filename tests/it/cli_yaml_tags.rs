//! Issue 13 item 2: YAML tags lie outside the MAC. A pull request author (no key) who writes
//! `password: !<tag:yaml.org,2002:null> ENC[...]` kept a verified value but changed what it
//! means downstream (PyYAML reads null). enseal now refuses a tag beside an `ENC[...]` unless
//! it is `!!str` on a `str` value, and seals the tags of values it encrypts in their layout.
//!
//! sops 3.13.3, checked by hand: it refuses `!!null`, `!!int`, `!!binary` (go-yaml cannot
//! decode the `ENC[...]` text so) with exit 1, and ignores `!!str`, `!!map` and custom tags.
//! go-yaml decodes a plaintext `!!binary` into the bytes, which sops encrypts as `type:str`.

use enseal_tests::cli::Sandbox;
use enseal_tests::peers::{self, SopsRelease};

const SECRET: &str = "hunter2-db-password";

fn sandbox() -> Sandbox {
    let mut sb = Sandbox::new();
    sb.use_identities(&["a"]);
    sb
}

/// `app.yaml` encrypted by enseal: a `str` password and an `int` port.
fn encrypted(sb: &Sandbox) -> String {
    sb.write("app.yaml", format!("password: {SECRET}\nport: 5432\n"));
    sb.enseal(["encrypt", "-i", "--age", &peers::recipient("a"), "app.yaml"])
        .assert_success("encrypt");
    String::from_utf8(sb.read("app.yaml")).unwrap()
}

#[test]
fn a_tag_beside_an_encrypted_value_is_refused_naming_the_path() {
    let sb = sandbox();
    let text = encrypted(&sb);
    for (key, tag) in [
        ("password", "!<tag:yaml.org,2002:null>"),
        ("password", "!!null"),
        ("password", "!!binary"),
        ("password", "!!map"),
        ("password", "!foo"),
        // `!!str` on an int would make 5432 a string.
        ("port", "!!str"),
    ] {
        let edited = text.replacen(&format!("{key}: ENC["), &format!("{key}: {tag} ENC["), 1);
        assert_ne!(edited, text);
        sb.write("edited.yaml", &edited);
        let out = sb.enseal(["decrypt", "edited.yaml"]);
        out.assert_code(2, tag);
        let err = out.stderr_str();
        assert!(
            err.contains(&format!("the encrypted value at {key} carries a YAML tag")),
            "{tag}: {err}"
        );
        assert!(err.contains("line "), "{err}");
        assert!(!err.contains(SECRET) && out.stdout.is_empty(), "{err}");
    }
}

#[test]
fn str_on_a_str_value_still_decrypts() {
    let sb = sandbox();
    let text = encrypted(&sb);
    for tag in ["!!str", "!<tag:yaml.org,2002:str>"] {
        sb.write(
            "edited.yaml",
            text.replacen("password: ENC[", &format!("password: {tag} ENC["), 1),
        );
        let out = sb.enseal(["decrypt", "edited.yaml"]);
        out.assert_success(tag);
        assert!(out.stdout_str().contains(SECRET));
    }
}

#[test]
fn a_plaintext_binary_value_encrypts_so_that_sops_verifies_it() {
    let sb = sandbox();
    // `/w==` is the byte 0xFF, not UTF-8: sops decrypts it to a string it writes as !!binary.
    let plain = "cert: !!binary aGVsbG8=\nraw: !!binary /w==\nlist: [!!binary aGk=]\n";
    sb.write("bin.yaml", plain);
    sb.enseal(["encrypt", "-i", "--age", &peers::recipient("a"), "bin.yaml"])
        .assert_success("encrypt");
    let enc = String::from_utf8(sb.read("bin.yaml")).unwrap();
    assert!(!enc.contains("!!binary"), "a tag outside the MAC:\n{enc}");
    for release in SopsRelease::ALL {
        let out = sb.sops_of(release, ["decrypt", "bin.yaml"]);
        out.assert_success("sops verifies the MAC");
        let text = out.stdout_str();
        assert!(text.contains("cert: hello\n"), "{text}");
        assert!(text.contains("raw: !!binary /w==\n"), "{text}");
    }
    let out = sb.enseal(["decrypt", "bin.yaml"]);
    out.assert_success("decrypt");
    assert_eq!(out.stdout_str(), plain);
}

#[test]
fn a_binary_value_sops_encrypted_decrypts_to_its_bytes() {
    let sb = sandbox();
    sb.write("bin.yaml", "cert: !!binary aGVsbG8=\n");
    let out = sb.sops_of(
        SopsRelease::V3_13,
        ["encrypt", "--age", &peers::recipient("a"), "bin.yaml"],
    );
    out.assert_success("sops encrypt");
    sb.write("enc.yaml", &out.stdout);
    let out = sb.enseal(["decrypt", "enc.yaml"]);
    out.assert_success("decrypt");
    assert_eq!(out.stdout_str(), "cert: hello\n");
}

#[test]
fn custom_and_str_tags_are_sealed_with_their_values() {
    let sb = sandbox();
    let plain = "a: !foo bar\nb: !!str 4\nc: &x !Ref value\nd: *x\n";
    sb.write("tags.yaml", plain);
    sb.enseal([
        "encrypt",
        "-i",
        "--age",
        &peers::recipient("a"),
        "tags.yaml",
    ])
    .assert_success("encrypt");
    let enc = String::from_utf8(sb.read("tags.yaml")).unwrap();
    for tag in ["!foo", "!!str", "!Ref"] {
        assert!(!enc.contains(tag), "{tag} outside the MAC:\n{enc}");
    }
    let out = sb.enseal(["decrypt", "tags.yaml"]);
    out.assert_success("decrypt");
    assert_eq!(out.stdout_str(), plain);
    for release in SopsRelease::ALL {
        sb.sops_of(release, ["decrypt", "tags.yaml"])
            .assert_success("sops decrypts it");
    }
}

#[test]
fn an_invalid_binary_value_is_refused_as_go_yaml_refuses_it() {
    let sb = sandbox();
    sb.write("bin.yaml", "cert: !!binary not*base64\n");
    let out = sb.enseal(["encrypt", "--age", &peers::recipient("a"), "bin.yaml"]);
    out.assert_code(2, "invalid base64");
    assert!(out
        .stderr_str()
        .contains("!!binary value contains invalid base64 data"));
}
