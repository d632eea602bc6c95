//! AWS KMS key source against a real moto server (KMS + STS), and interop with sops 3.11.
//!
//! The library tests drive `AwsKms` in this process, which reads the AWS environment set up once
//! by [`aws`]: moto's endpoint in `AWS_ENDPOINT_URL`, dummy credentials, and an isolated AWS
//! config file holding an extra profile. The CLI tests run the built `enseal` with the
//! `--kms`, `--encryption-context` and `--aws-profile` flags sops has.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use enseal_sops::crypto::data_key::DataKey;
use enseal_sops::file;
use enseal_sops::format::crypt_rule::CryptRule;
use enseal_sops::format::metadata::{KmsStanza, Metadata};
use enseal_sops::keys::age::{AgeIdentities, AgeRecipient};
use enseal_sops::keys::aws_kms::{self, AwsKms, KmsError, KmsFailure};
use enseal_sops::keys::groups::{self, GroupRecipients, KeyGroupError, Keyring};
use enseal_sops::stores::{self, Format, WriteOptions};
use enseal_tests::cli::Sandbox;
use enseal_tests::moto::{self, Moto, REGION};
use enseal_tests::peers;

const ROLE: &str = "arn:aws:iam::123456789012:role/x";
const PLAIN: &str = r#"{
	"db_password": "hunter2",
	"port": 5432,
	"nested": {
		"token": "abc"
	}
}"#;

/// The moto server, with this process's AWS environment pointed at it (done once, before any
/// test reads the environment, so no test races a `set_var`).
///
/// Credentials come from an isolated AWS config file rather than `AWS_ACCESS_KEY_ID`, because
/// environment credentials win over any profile and would hide whether `aws_profile` is used.
fn aws() -> &'static Moto {
    static SETUP: OnceLock<()> = OnceLock::new();
    let moto = moto::moto();
    SETUP.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("enseal-kms-aws-")
            .tempdir()
            .expect("create AWS config directory")
            .keep();
        let config = dir.join("config");
        std::fs::write(&config, PROFILES).expect("write AWS config");
        let credentials = dir.join("credentials");
        std::fs::write(&credentials, "").expect("write AWS credentials");
        for var in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_ENDPOINT_URL_KMS",
            "AWS_ENDPOINT_URL_STS",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
        ] {
            std::env::remove_var(var);
        }
        for (k, v) in moto.aws_env() {
            if !matches!(k, "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY") {
                std::env::set_var(k, v);
            }
        }
        std::env::set_var("AWS_CONFIG_FILE", &config);
        std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &credentials);
    });
    moto
}

/// Test-only AWS profiles (moto accepts any credentials).
const PROFILES: &str = "[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n\n\
                        [profile other]\naws_access_key_id = other\naws_secret_access_key = other\n";

fn aws_kms() -> AwsKms {
    aws();
    AwsKms::from_env().expect("AwsKms::from_env")
}

fn stanza(arn: &str, context: &[(&str, &str)]) -> KmsStanza {
    KmsStanza {
        arn: arn.to_string(),
        context: context
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..KmsStanza::default()
    }
}

fn no_age() -> AgeIdentities {
    AgeIdentities::default()
}

fn age_ids(names: &[&str]) -> AgeIdentities {
    AgeIdentities::parse("test keys", &peers::identities(names)).expect("parse test identities")
}

fn age_recipient(name: &str) -> AgeRecipient {
    peers::recipient(name).parse().expect("test recipient")
}

/// A sandbox for sops/enseal runs with the AWS environment pointing at moto.
fn aws_sandbox() -> Sandbox {
    let moto = aws();
    let mut sb = Sandbox::new();
    for (k, v) in moto.aws_env() {
        sb.env(k, v);
    }
    sb
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", String::from_utf8_lossy(bytes)))
}

/// Encrypts PLAIN as JSON with the enseal library for `groups`.
fn encrypt_with_library(groups: &[GroupRecipients], threshold: Option<usize>) -> Vec<u8> {
    let kms = aws_kms();
    let store = stores::store_for(Format::Json);
    let plain = store.parse(PLAIN.as_bytes()).expect("parse plaintext");
    let key = DataKey::generate();
    let (wrapped, threshold) =
        groups::wrap(&key, groups, threshold, Some(&kms)).expect("wrap the data key");
    let mut metadata = Metadata::new(wrapped, CryptRule::default());
    metadata.shamir_threshold = threshold;
    let options = file::EncryptOptions {
        layout: file::Layout::Canonical,
        unchanged: None,
        write: &WriteOptions::default(),
    };
    file::encrypt(store.as_ref(), plain, &key, &mut metadata, &options).expect("encrypt")
}

/// Opens a JSON file with the library and the given keyring; returns the plaintext as JSON.
fn open_with_library(bytes: &[u8], keyring: &Keyring) -> Result<serde_json::Value, String> {
    let options = file::DecryptOptions::default();
    let out =
        file::decrypt_bytes(bytes, Format::Json, keyring, &options).map_err(|e| e.to_string())?;
    Ok(json(&out))
}

fn kms_keyring(age: AgeIdentities) -> Keyring<'static> {
    Keyring::new(age).with_kms(Box::new(aws_kms()))
}

// ---------------------------------------------------------------------------------------------
// The AwsKms library against moto.

#[test]
fn data_key_round_trips_through_kms_without_context() {
    let moto = aws();
    let arn = moto.create_key(REGION);
    let kms = aws_kms();
    let data_key = [7u8; 32];
    let wrapped = kms.encrypt_key(&stanza(&arn, &[]), &data_key).unwrap();
    assert_eq!(wrapped.arn, arn);
    assert!(wrapped.context.is_empty());
    let blob = base64_decode(&wrapped.enc);
    assert!(blob.len() > 32, "enc should be a KMS CiphertextBlob");
    assert!(
        is_rfc3339_utc(&wrapped.created_at),
        "created_at {:?} should be RFC 3339 UTC like sops writes",
        wrapped.created_at
    );
    assert_eq!(kms.decrypt_key(&wrapped).unwrap().as_slice(), &data_key);
}

#[test]
fn data_key_round_trips_with_encryption_context_and_other_context_is_refused() {
    let moto = aws();
    let arn = moto.create_key(REGION);
    let kms = aws_kms();
    let data_key = [42u8; 32];
    let wrapped = kms
        .encrypt_key(&stanza(&arn, &[("app", "web"), ("env", "prod")]), &data_key)
        .unwrap();
    assert_eq!(kms.decrypt_key(&wrapped).unwrap().as_slice(), &data_key);

    for (what, context) in [
        ("another value", vec![("app", "web"), ("env", "dev")]),
        ("no context", vec![]),
    ] {
        let tampered = KmsStanza {
            context: stanza(&arn, &context).context,
            ..wrapped.clone()
        };
        let err = kms.decrypt_key(&tampered).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                KmsError::Key {
                    failure: KmsFailure::InvalidCiphertext(_),
                    ..
                }
            ),
            "{what}: expected InvalidCiphertextException, got {text}"
        );
        assert!(
            text.contains(&arn),
            "{what}: error should name the key: {text}"
        );
        assert!(text.contains("encryption context"), "{what}: {text}");
    }
}

#[test]
fn alias_arn_wraps_and_unwraps() {
    let moto = aws();
    let key = moto.create_key(REGION);
    let alias = moto.create_alias(&key, "enseal-alias-test", REGION);
    let kms = aws_kms();
    let wrapped = kms.encrypt_key(&stanza(&alias, &[]), &[1u8; 32]).unwrap();
    assert_eq!(wrapped.arn, alias);
    assert_eq!(kms.decrypt_key(&wrapped).unwrap().as_slice(), &[1u8; 32]);
}

#[test]
fn key_in_another_region_is_reached_in_the_region_of_its_arn() {
    let moto = aws();
    let arn = moto.create_key("eu-west-2");
    assert!(arn.starts_with("arn:aws:kms:eu-west-2:"), "{arn}");
    let kms = aws_kms();
    let wrapped = kms.encrypt_key(&stanza(&arn, &[]), &[3u8; 32]).unwrap();
    assert_eq!(kms.decrypt_key(&wrapped).unwrap().as_slice(), &[3u8; 32]);
}

#[test]
fn role_is_assumed_through_sts() {
    let moto = aws();
    let arn = moto.create_key(REGION);
    let kms = aws_kms();
    let key = KmsStanza {
        role: Some(ROLE.to_string()),
        ..stanza(&arn, &[("app", "web")])
    };
    let wrapped = kms.encrypt_key(&key, &[9u8; 32]).unwrap();
    assert_eq!(wrapped.role.as_deref(), Some(ROLE));
    assert_eq!(kms.decrypt_key(&wrapped).unwrap().as_slice(), &[9u8; 32]);

    let assumed = moto.assumed_roles();
    assert!(
        assumed
            .iter()
            .any(|(role, session)| role == ROLE && session.starts_with("sops@")),
        "moto's STS should have seen AssumeRole for {ROLE} as sops@<host>: {assumed:?}"
    );

    // STS unreachable: reported as a role failure, naming the key and the role.
    let down = AwsKms::from_env()
        .unwrap()
        .with_endpoint_url(format!("http://127.0.0.1:{}", moto::closed_port()));
    let err = down.decrypt_key(&wrapped).unwrap_err();
    assert!(
        matches!(
            err,
            KmsError::Key {
                failure: KmsFailure::AssumeRole { .. },
                ..
            }
        ),
        "expected an AssumeRole failure, got {err}"
    );
    let text = err.to_string();
    assert!(text.contains(&arn) && text.contains(ROLE), "{text}");
}

#[test]
fn named_aws_profile_is_used() {
    let moto = aws();
    let arn = moto.create_key(REGION);
    let kms = aws_kms();
    let key = KmsStanza {
        aws_profile: "other".into(),
        ..stanza(&arn, &[])
    };
    let wrapped = kms.encrypt_key(&key, &[5u8; 32]).unwrap();
    assert_eq!(wrapped.aws_profile, "other");
    assert_eq!(kms.decrypt_key(&wrapped).unwrap().as_slice(), &[5u8; 32]);

    let missing = KmsStanza {
        aws_profile: "no-such-profile".into(),
        ..wrapped
    };
    let err = kms.decrypt_key(&missing).unwrap_err().to_string();
    assert!(
        err.contains("no-such-profile"),
        "a profile that does not exist should be named: {err}"
    );
}

/// Wraps a data key with a fresh moto key, then asks `endpoint` to unwrap it: the key's ARN and
/// the error, printed with how long it took.
fn decrypt_through(endpoint: &str, what: &str) -> (String, KmsError) {
    let arn = aws().create_key(REGION);
    let wrapped = aws_kms()
        .encrypt_key(&stanza(&arn, &[]), &[8u8; 32])
        .unwrap();
    let down = AwsKms::from_env()
        .unwrap()
        .with_endpoint_url(endpoint.to_string());
    let started = Instant::now();
    let err = down.decrypt_key(&wrapped).unwrap_err();
    eprintln!("{what}: error after {:.2?}: {err}", started.elapsed());
    (arn, err)
}

#[test]
fn kms_down_is_a_clear_error_within_seconds() {
    let endpoint = format!("http://127.0.0.1:{}", moto::closed_port());
    let (arn, err) = decrypt_through(&endpoint, "KMS down (connection refused)");
    let text = err.to_string();
    assert!(
        matches!(
            err,
            KmsError::Key {
                failure: KmsFailure::Unreachable { .. } | KmsFailure::TimedOut { .. },
                ..
            }
        ),
        "expected an unreachable-KMS error, got {text}"
    );
    assert!(text.contains(&arn), "the error should name the key: {text}");
    assert!(
        text.contains(&endpoint),
        "the error should name the endpoint: {text}"
    );
}

#[test]
fn kms_that_never_answers_is_a_clear_error_within_seconds() {
    // Accepts connections and never answers: the attempt and operation timeouts must end it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let (arn, err) = decrypt_through(&endpoint, "KMS silent (no answer)");
    assert!(
        matches!(
            err,
            KmsError::Key {
                failure: KmsFailure::TimedOut { .. } | KmsFailure::Unreachable { .. },
                ..
            }
        ),
        "expected a timeout, got {err}"
    );
    assert!(err.to_string().contains(&arn), "{err}");
    drop(silent);
}

#[test]
fn failures_reach_key_groups_without_key_material() {
    let moto = aws();
    let arn = moto.create_key(REGION);
    let kms = aws_kms();
    let secret = [0x5au8; 32];
    let wrapped = kms
        .encrypt_key(&stanza(&arn, &[("app", "web")]), &secret)
        .unwrap();
    let mut meta = Metadata::new(
        vec![enseal_sops::format::metadata::KeyGroup {
            kms: vec![KmsStanza {
                context: vec![("app".into(), "api".into())],
                ..wrapped
            }],
            ..Default::default()
        }],
        CryptRule::default(),
    );
    meta.mac = "ENC[...]".into();
    let err = groups::unwrap(&meta, &kms_keyring(no_age())).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, KeyGroupError::Unavailable { .. }), "{text}");
    assert!(text.contains(&format!("kms {arn}")), "{text}");
    assert!(text.contains("InvalidCiphertextException"), "{text}");
    assert!(!text.contains("5a5a5a5a"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// sops 3.11 <-> the enseal library.

/// sops encrypts PLAIN (JSON) with `args`; returns the encrypted bytes.
fn sops_encrypt(sb: &Sandbox, args: &[&str]) -> Vec<u8> {
    sb.write("plain.json", PLAIN);
    let mut all = vec!["encrypt"];
    all.extend_from_slice(args);
    all.push("plain.json");
    let out = sb.sops(&all);
    out.assert_success("sops encrypt");
    out.stdout
}

/// sops decrypts `bytes` (JSON) in `sb`; returns its plaintext as JSON.
fn sops_decrypt(sb: &Sandbox, bytes: &[u8]) -> serde_json::Value {
    sb.write("enc.json", bytes);
    let out = sb.sops(["decrypt", "enc.json"]);
    out.assert_success("sops decrypt");
    json(&out.stdout)
}

#[test]
fn sops_kms_file_opens_with_enseal() {
    let moto = aws();
    let arn = moto.create_key(REGION);
    let sb = aws_sandbox();
    let bytes = sops_encrypt(&sb, &["--kms", &arn]);

    let store = stores::store_for(Format::Json);
    let parsed = store.parse(&bytes).unwrap();
    let meta = file::read_metadata(&parsed).unwrap();
    assert_eq!(meta.key_groups.len(), 1);
    let k = &meta.key_groups[0].kms[0];
    assert_eq!((k.arn.as_str(), k.role.as_ref()), (arn.as_str(), None));
    assert!(k.context.is_empty());
    assert!(is_rfc3339_utc(&k.created_at), "{}", k.created_at);

    let keyring = kms_keyring(no_age());
    let key = groups::unwrap(&meta, &keyring).expect("unwrap sops' KMS data key");
    assert_eq!(key.as_bytes().len(), 32);
    assert_eq!(
        open_with_library(&bytes, &keyring).unwrap(),
        json(PLAIN.as_bytes())
    );
}

#[test]
fn sops_kms_file_with_encryption_context_and_role_opens_with_enseal() {
    let moto = aws();
    let arn = moto.create_key(REGION);
    let sb = aws_sandbox();
    let with_role = format!("{arn}+{ROLE}");
    let bytes = sops_encrypt(
        &sb,
        &[
            "--kms",
            &with_role,
            "--encryption-context",
            "env:prod,app:web",
        ],
    );
    let store = stores::store_for(Format::Json);
    let meta = file::read_metadata(&store.parse(&bytes).unwrap()).unwrap();
    let k = &meta.key_groups[0].kms[0];
    assert_eq!(k.arn, arn);
    assert_eq!(k.role.as_deref(), Some(ROLE));
    assert_eq!(
        k.context,
        aws_kms::parse_encryption_context("env:prod,app:web").unwrap(),
        "sops writes the context sorted by key, as parse_encryption_context returns it"
    );
    assert_eq!(
        open_with_library(&bytes, &kms_keyring(no_age())).unwrap(),
        json(PLAIN.as_bytes())
    );
}

#[test]
fn enseal_kms_file_opens_with_sops() {
    let moto = aws();
    let arn = moto.create_key(REGION);
    let second = moto.create_key("eu-west-1");
    let context = aws_kms::parse_encryption_context("app:web,team:core").unwrap();
    for (what, list, context) in [
        ("no context", arn.clone(), vec![]),
        ("encryption context", arn.clone(), context.clone()),
        ("role", format!("{arn}+{ROLE}"), context.clone()),
        ("two keys, two regions", format!("{arn},{second}"), vec![]),
    ] {
        let keys = aws_kms::parse_kms_list(&list, &context, None).unwrap();
        let bytes = encrypt_with_library(
            &[GroupRecipients {
                age: vec![],
                kms: keys,
                pgp: vec![],
                ..Default::default()
            }],
            None,
        );
        let sb = aws_sandbox();
        assert_eq!(
            sops_decrypt(&sb, &bytes),
            json(PLAIN.as_bytes()),
            "{what}: sops should decrypt enseal's file:\n{}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

#[test]
fn enseal_kms_metadata_is_written_as_sops_writes_it() {
    let moto = aws();
    let arn = moto.create_key(REGION);
    let context = aws_kms::parse_encryption_context("app:web").unwrap();
    let keys = aws_kms::parse_kms_list(&format!("{arn}+{ROLE}"), &context, Some("other")).unwrap();
    let bytes = encrypt_with_library(
        &[GroupRecipients {
            age: vec![],
            kms: keys,
            pgp: vec![],
            ..Default::default()
        }],
        None,
    );
    let doc = json(&bytes);
    let entry = &doc["sops"]["kms"][0];
    let fields: Vec<&str> = entry
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        ["arn", "role", "context", "created_at", "enc", "aws_profile"],
        "{entry}"
    );
    assert_eq!(entry["context"], serde_json::json!({"app": "web"}));
    assert_eq!(entry["aws_profile"], "other");
}

// ---------------------------------------------------------------------------------------------
// Key groups mixing age and KMS.

#[test]
fn one_group_with_age_and_kms_opens_with_either() {
    let moto = aws();
    let arn = moto.create_key(REGION);
    let group = GroupRecipients {
        age: vec![age_recipient("a")],
        kms: aws_kms::parse_kms_list(&arn, &[], None).unwrap(),
        pgp: vec![],
        ..Default::default()
    };
    let bytes = encrypt_with_library(&[group], None);
    let plain = json(PLAIN.as_bytes());
    assert_eq!(
        open_with_library(&bytes, &kms_keyring(no_age())).unwrap(),
        plain
    );
    let age_only = Keyring::new(age_ids(&["a"]));
    assert_eq!(open_with_library(&bytes, &age_only).unwrap(), plain);

    // age is tried first: with a matching identity the KMS endpoint is never asked. It is a
    // listener that answers nothing, so any request would show as a connection waiting on it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    silent.set_nonblocking(true).unwrap();
    let unused = Keyring::new(age_ids(&["a"])).with_kms(Box::new(
        AwsKms::from_env().unwrap().with_endpoint_url(format!(
            "http://127.0.0.1:{}",
            silent.local_addr().unwrap().port()
        )),
    ));
    assert_eq!(open_with_library(&bytes, &unused).unwrap(), plain);
    assert_eq!(
        silent.accept().map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock),
        "KMS was asked before age"
    );

    let neither = Keyring::new(age_ids(&["b"]));
    let err = open_with_library(&bytes, &neither).unwrap_err();
    assert!(err.contains(&format!("kms {arn}")), "{err}");
    assert!(
        err.contains(&format!("age {}", peers::recipient("a"))),
        "{err}"
    );

    let sb = aws_sandbox();
    assert_eq!(sops_decrypt(&sb, &bytes), plain, "sops through KMS");
}

#[test]
fn shamir_across_age_and_kms_groups_opens_with_any_two() {
    let moto = aws();
    let arn = moto.create_key(REGION);
    let groups = [
        GroupRecipients {
            age: vec![age_recipient("a")],
            ..Default::default()
        },
        GroupRecipients {
            age: vec![],
            kms: aws_kms::parse_kms_list(&arn, &[("app".into(), "web".into())], None).unwrap(),
            pgp: vec![],
            ..Default::default()
        },
        GroupRecipients {
            age: vec![age_recipient("b")],
            ..Default::default()
        },
    ];
    let bytes = encrypt_with_library(&groups, Some(2));
    let plain = json(PLAIN.as_bytes());
    assert_eq!(
        open_with_library(&bytes, &kms_keyring(age_ids(&["a"]))).unwrap(),
        plain
    );
    assert_eq!(
        open_with_library(&bytes, &kms_keyring(age_ids(&["b"]))).unwrap(),
        plain
    );
    let ab = Keyring::new(age_ids(&["a", "b"]));
    assert_eq!(open_with_library(&bytes, &ab).unwrap(), plain);
    let err = open_with_library(&bytes, &kms_keyring(no_age())).unwrap_err();
    assert!(err.contains("needed 2 key groups, could open 1"), "{err}");

    // sops opens it with one age key and KMS.
    let mut sb = aws_sandbox();
    sb.use_identities(&["b"]);
    assert_eq!(sops_decrypt(&sb, &bytes), plain);
}

#[test]
fn sops_shamir_file_mixing_age_and_kms_opens_with_enseal() {
    let moto = aws();
    let arn = moto.create_key(REGION);
    let mut sb = aws_sandbox();
    sb.write(
        ".sops.yaml",
        format!(
            "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - age:\n          - {a}\n      - kms:\n          - arn: {arn}\n            context:\n              app: web\n      - age:\n          - {b}\n",
            a = peers::recipient("a"),
            b = peers::recipient("b"),
        ),
    );
    let bytes = sops_encrypt(&sb, &[]);
    let store = stores::store_for(Format::Json);
    let meta = file::read_metadata(&store.parse(&bytes).unwrap()).unwrap();
    assert_eq!((meta.key_groups.len(), meta.shamir_threshold), (3, Some(2)));
    assert_eq!(meta.key_groups[1].kms[0].arn, arn);
    let plain = json(PLAIN.as_bytes());
    assert_eq!(
        open_with_library(&bytes, &kms_keyring(age_ids(&["a"]))).unwrap(),
        plain
    );
    assert_eq!(
        open_with_library(&bytes, &kms_keyring(age_ids(&["b"]))).unwrap(),
        plain
    );
    let a_only = Keyring::new(age_ids(&["a"]));
    assert!(open_with_library(&bytes, &a_only).is_err());
    sb.use_identities(&["a"]);
    assert_eq!(sops_decrypt(&sb, &bytes), plain);
}

// ---------------------------------------------------------------------------------------------
// The enseal CLI's --kms, --encryption-context and --aws-profile.

#[test]
fn cli_encrypts_for_kms_and_sops_decrypts() {
    let moto = aws();
    let arn = moto.create_key(REGION);
    let sb = aws_sandbox();
    sb.write("plain.json", PLAIN);
    for (what, args) in [
        ("--kms", vec!["--kms", arn.as_str()]),
        (
            "--kms with --encryption-context",
            vec![
                "--kms",
                arn.as_str(),
                "--encryption-context",
                "app:web,env:prod",
            ],
        ),
    ] {
        let mut all = vec!["encrypt"];
        all.extend(args.iter().copied());
        all.push("plain.json");
        let out = sb.enseal(&all);
        out.assert_success(what);
        let meta = json(&out.stdout);
        assert_eq!(meta["sops"]["kms"][0]["arn"], arn.as_str(), "{what}");
        assert_eq!(
            sops_decrypt(&sb, &out.stdout),
            json(PLAIN.as_bytes()),
            "{what}"
        );
    }
}

#[test]
fn cli_takes_kms_keys_from_sops_kms_arn_with_role_and_profile() {
    let moto = aws();
    let arn = moto.create_key(REGION);
    let mut sb = aws_sandbox();
    sb.env("SOPS_KMS_ARN", format!("{arn}+{ROLE}"));
    // Only the profile holds credentials for enseal; sops (decrypting below) reads the
    // profile name from the file's metadata.
    sb.env("AWS_CONFIG_FILE", write_profile_config(&sb));
    sb.env_remove("AWS_ACCESS_KEY_ID");
    sb.env_remove("AWS_SECRET_ACCESS_KEY");
    sb.write("plain.json", PLAIN);
    let out = sb.enseal(["encrypt", "--aws-profile", "other", "plain.json"]);
    out.assert_success("enseal encrypt with SOPS_KMS_ARN and --aws-profile");
    let doc = json(&out.stdout);
    let entry = &doc["sops"]["kms"][0];
    assert_eq!(entry["arn"], arn.as_str());
    assert_eq!(entry["role"], ROLE);
    assert_eq!(entry["aws_profile"], "other");
    assert_eq!(sops_decrypt(&sb, &out.stdout), json(PLAIN.as_bytes()));
}

#[test]
fn cli_decrypts_sops_kms_files() {
    let moto = aws();
    let arn = moto.create_key(REGION);
    let sb = aws_sandbox();
    for args in [
        vec!["--kms", arn.as_str()],
        vec!["--kms", arn.as_str(), "--encryption-context", "app:web"],
    ] {
        let bytes = sops_encrypt(&sb, &args);
        sb.write("enc.json", &bytes);
        let out = sb.enseal(["decrypt", "enc.json"]);
        out.assert_success("enseal decrypt of a sops KMS file");
        assert_eq!(json(&out.stdout), json(PLAIN.as_bytes()), "{args:?}");
    }
}

#[test]
fn cli_reports_kms_down_with_exit_128_and_the_key() {
    let moto = aws();
    let arn = moto.create_key(REGION);
    let mut sb = aws_sandbox();
    let bytes = sops_encrypt(&sb, &["--kms", &arn]);
    sb.write("enc.json", &bytes);
    sb.env(
        "AWS_ENDPOINT_URL",
        format!("http://127.0.0.1:{}", moto::closed_port()),
    );
    let started = Instant::now();
    let out = sb.enseal(["decrypt", "enc.json"]);
    eprintln!(
        "enseal decrypt with KMS down took {:.2?}",
        started.elapsed()
    );
    out.assert_code(128, "enseal decrypt with KMS down");
    let stderr = out.stderr_str();
    assert!(
        stderr.contains(&arn),
        "stderr should name the key: {stderr}"
    );
    assert!(
        stdout_is_empty(&out.stdout),
        "nothing decrypted may be printed"
    );
}

fn stdout_is_empty(stdout: &[u8]) -> bool {
    stdout.iter().all(u8::is_ascii_whitespace)
}

/// An AWS config whose only credentials are in profile `other`.
fn write_profile_config(sb: &Sandbox) -> PathBuf {
    sb.write(
        "aws-config",
        "[profile other]\naws_access_key_id = other\naws_secret_access_key = other\n",
    )
}

// ---------------------------------------------------------------------------------------------

fn base64_decode(s: &str) -> Vec<u8> {
    use std::process::Command;
    // The tests crate has no base64 crate; coreutils' base64 is the independent check.
    let out = Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(s.as_bytes())?;
            child.wait_with_output()
        })
        .expect("run base64 -d");
    assert!(out.status.success(), "enc {s:?} is not standard base64");
    out.stdout
}

fn is_rfc3339_utc(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b[19] == b'Z'
        && b[10] == b'T'
        && [4, 7].iter().all(|&i| b[i] == b'-')
        && [13, 16].iter().all(|&i| b[i] == b':')
        && b.iter()
            .enumerate()
            .filter(|(i, _)| ![4, 7, 10, 13, 16, 19].contains(i))
            .all(|(_, c)| c.is_ascii_digit())
}
