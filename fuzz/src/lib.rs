//! What the fuzz targets share: the fixed test keys and the checks run on every input.
//!
//! Every target asserts the same first property, implicitly: no input panics, aborts or
//! overflows the stack (libFuzzer reports those), and none takes more than the `-rss_limit_mb`
//! the runs give it. The checks here add what the code promises beyond that.

use enseal_sops::file::{self, Layout, Mac, OpenOptions};
use enseal_sops::format::metadata::Metadata;
use enseal_sops::keys::age::AgeIdentities;
use enseal_sops::keys::groups::Keyring;
use enseal_sops::stores::{self, Format, WriteOptions};
use std::sync::OnceLock;

/// Test identity `a` (public on purpose, see tests/keys/README.md): every sops fixture under
/// tests/fixtures/sops is encrypted to it, so seeds made from them reach the value decryption
/// and the MAC check, not only the age stanza parsing.
const AGE_IDENTITY: &str = include_str!("../../tests/keys/a.txt");

/// The 2048-bit test sealing key of tests/fixtures/sealing (public on purpose): the sealed
/// seeds under fuzz/corpus are sealed to its certificate, so mutations of them reach AES-GCM
/// after a successful RSA-OAEP unwrap.
const RSA_KEY_PEM: &[u8] = include_bytes!("../../tests/fixtures/sealing/rsa2048.key");

pub fn age_identities() -> AgeIdentities {
    AgeIdentities::parse("tests/keys/a.txt", AGE_IDENTITY).expect("test identity a parses")
}

/// Parsed once: RSA key parsing costs more than most inputs do.
pub fn sealing_keys() -> &'static [enseal_sealing::PrivateKey] {
    static KEYS: OnceLock<Vec<enseal_sealing::PrivateKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        enseal_sealing::keys::parse_private_keys_pem(RSA_KEY_PEM).expect("test sealing key parses")
    })
}

/// One sops file of `format`, as the CLI and the controller take it from an attacker:
///
/// 1. parse it (any bytes; errors are fine);
/// 2. lossless write-back: for a file without `sops` metadata, writing the unchanged tree with
///    the parse's own layout gives the input back byte for byte. This is the promise the
///    stores' unit tests make ("Writing an unchanged tree over its own file changes nothing",
///    stores/yaml/tests.rs `every_prefix_of_the_samples_errors_or_round_trips`, and the
///    `round_trip_through_fake_encryption_is_byte_exact` tests of json, dotenv and ini).
///    Files *with* metadata are left out on purpose: a store drops the metadata lines and writes
///    the block anew in its own layout (dotenv.rs `Line::Metadata`), so an encrypted file only
///    comes back byte for byte after a real encrypt, which needs the data key;
/// 3. with metadata: decode it ([`file::read_metadata`]), check that writing the decoded
///    metadata and reading it back gives the same metadata, then open the file with test
///    identity `a` (age stanzas, data key, every `ENC[...]` value, the MAC) and, when the MAC
///    verifies, write the plaintext in the file's own layout and in every text format (what
///    `decrypt` and `decrypt --output-type` do).
pub fn sops_file(format: Format, data: &[u8]) {
    let store = stores::store_for(format);
    let Ok(parsed) = store.parse(data) else {
        return;
    };
    if parsed.metadata.is_none() {
        // An empty YAML stream has no document to hold the layout; the YAML tests skip it too.
        if !(format == Format::Yaml && parsed.tree.documents.is_empty()) {
            let written = store
                .write(&parsed.tree, None, Some(&parsed), &WriteOptions::default())
                .expect("an unchanged tree can be written over its own file");
            assert!(
                written == data,
                "{format:?}: unchanged write differs from the input\n input: {:?}\noutput: {:?}",
                String::from_utf8_lossy(data),
                String::from_utf8_lossy(&written),
            );
        }
        return;
    }
    let Ok(metadata) = file::read_metadata(&parsed) else {
        return;
    };
    metadata_round_trip(&metadata);
    open_and_write(format, parsed);
}

/// The metadata a file carries is written back (on every re-encryption) from its decoded form:
/// decoding that again must give the same metadata, or a file would change on its own.
fn metadata_round_trip(metadata: &Metadata) {
    let again = Metadata::from_node(&metadata.to_node()).expect("written metadata decodes");
    assert_eq!(&again, metadata, "metadata changed by a write and a read");
}

fn open_and_write(format: Format, parsed: stores::Parsed) {
    let keyring = Keyring::new(age_identities());
    let Ok(unverified) = file::open(parsed, &keyring, &OpenOptions::default()) else {
        return;
    };
    let Ok(decrypted) = unverified.verify() else {
        return;
    };
    // Writing may refuse a tree a format cannot hold (nested values in dotenv...), never panic.
    let _ = decrypted.plaintext(format, Layout::Keep);
    for output in [Format::Yaml, Format::Json, Format::Dotenv, Format::Ini] {
        let _ = decrypted.plaintext(output, Layout::Canonical);
    }
}

/// `bytes` decrypted as the controller decrypts a SopsSecret's `spec.encrypted` and as sops'
/// `decrypt.Data` does: one call from bytes to bytes, MAC verified.
pub fn decrypt_bytes(format: Format, bytes: &[u8]) {
    let keyring = Keyring::new(age_identities());
    let options = file::DecryptOptions {
        mac: Mac::Verify,
        output: None,
    };
    let _ = file::decrypt_bytes(bytes, format, &keyring, &options);
}

/// The fixed PGP secret key of the `pgp_native` target (ed25519 with a cv25519 encryption
/// subkey, gpg's `future-default`, no passphrase; public on purpose, made for fuzzing only):
/// the seeds under fuzz/corpus/pgp_native hold messages encrypted to it by sops 3.13.3 and gpg,
/// so mutations of them reach the session key, the SEIPD body and the decompression.
const PGP_KEY: &[u8] = include_bytes!("../keys/pgp_native.asc");

/// Parsed once: the key is the same for every input.
fn pgp_test_keys() -> &'static enseal_sops::keys::openpgp::PgpSecretKeys {
    static KEYS: OnceLock<enseal_sops::keys::openpgp::PgpSecretKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        enseal_sops::keys::openpgp::PgpSecretKeys::parse("keys/pgp_native.asc", PGP_KEY)
            .expect("the fixed PGP test key parses")
    })
}

/// What a tenant controls in the controller's native OpenPGP path: the `*.asc` entries of a
/// key Secret and the `enc` of a pgp stanza. The input is split at its first `-----BEGIN PGP
/// MESSAGE-----`: before it the key text, from it the message. The key text is read as
/// `pgp_keys_of` reads an entry; the message is opened with the fixed test key, plus the
/// input's keys when they parse. Properties: the data key is 1..=1024 bytes (the module's
/// bound; a decompression bomb stops there); every error names the stanza's fingerprint and
/// quotes no line of key or message text (the module's promise: fingerprints, key IDs and
/// sources only); Debug shows no key text.
pub fn pgp_native(data: &[u8]) {
    use enseal_sops::keys::openpgp::PgpSecretKeys;
    const MESSAGE: &[u8] = b"-----BEGIN PGP MESSAGE-----";
    const STANZA_FP: &str = "FUZZSTANZAFINGERPRINT";
    let split = memmem(data, MESSAGE).unwrap_or(data.len());
    let (key_text, message) = data.split_at(split);
    let mut keys = pgp_test_keys().clone();
    if !key_text.is_empty() {
        match PgpSecretKeys::parse("fuzz.asc", key_text) {
            Ok(parsed) => {
                assert_quotes_no_line("Debug of the keys", &format!("{parsed:?}"), key_text);
                let added = keys
                    .add("fuzz.asc", key_text)
                    .expect("key text that parses alone is added");
                assert_eq!(added, parsed.len(), "add and parse read the same keys");
            }
            Err(e) => assert_quotes_no_line("a key error", &e.to_string(), key_text),
        }
    }
    let message = String::from_utf8_lossy(message);
    match keys.unwrap(&message, STANZA_FP) {
        Ok(data_key) => assert!(
            (1..=1024).contains(&data_key.len()),
            "a data key of {} bytes",
            data_key.len()
        ),
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.contains(STANZA_FP),
                "the error names no stanza: {text}"
            );
            assert_quotes_no_line("a message error", &text, data);
            assert_quotes_no_line("a message error", &text, PGP_KEY);
        }
    }
}

/// Panics when `text` holds a line of `input` that looks like armored data: 32 or more
/// characters of the base64 alphabet (armor lines are 64). Shorter lines and words are left
/// out: errors legitimately hold key IDs (16 hex digits) and rpgp's packet names.
fn assert_quotes_no_line(what: &str, text: &str, input: &[u8]) {
    let armored = |line: &&[u8]| {
        line.len() >= 32
            && line
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    };
    for line in input
        .split(|b| *b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(armored)
    {
        let line = std::str::from_utf8(line).expect("ASCII");
        assert!(
            !text.contains(line),
            "{what} quotes input line {line:?}: {text}"
        );
    }
}

fn memmem(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// What a tenant writes into the Flux credential entries of their namespace key Secret,
/// read as the controller reads them (`CloudEntries::of`, and the GCP JSON as its first use
/// reads it): `sops.aws-kms`, `sops.azure-kv` and `sops.gcp-kms`, each fed the whole input.
/// Properties: an accepted entry has the fields the parser promises, and its Debug does not
/// depend on the secret; a refused one's message quotes none of the entry's values (the
/// parsers' promise, as the message is logged and put in the SopsSecret's status).
pub fn flux_entries(data: &[u8]) {
    use enseal_sops::keys::aws_kms::FluxAwsCredentials;
    use enseal_sops::keys::azure_kv::{AzureCredential, FluxAzureConfig};
    match FluxAwsCredentials::parse(data) {
        Ok(c) => {
            assert!(!c.access_key_id.is_empty() && !c.secret_access_key.is_empty());
            assert!(c.session_token.as_ref().is_none_or(|t| !t.is_empty()));
            let other = FluxAwsCredentials {
                access_key_id: c.access_key_id.clone(),
                secret_access_key: zeroize::Zeroizing::new("other".into()),
                session_token: None,
            };
            assert_eq!(
                format!("{c:?}"),
                format!("{other:?}"),
                "Debug shows a secret"
            );
        }
        Err(e) => assert_quotes_no_value("sops.aws-kms", &e.to_string(), data),
    }
    match FluxAzureConfig::parse(data) {
        Ok(c) => {
            if let AzureCredential::ClientSecret { secret, .. } = &c.credential {
                assert!(!secret.is_empty());
            }
            // The same entry with every credential field changed: Debug must not tell them
            // apart (it names the credential's kind only).
            let credential = match c.credential.clone() {
                AzureCredential::ClientSecret { .. } => AzureCredential::ClientSecret {
                    tenant_id: "t".into(),
                    client_id: "c".into(),
                    secret: zeroize::Zeroizing::new("s".into()),
                },
                AzureCredential::ClientCertificate { key, .. } => {
                    AzureCredential::ClientCertificate {
                        tenant_id: "t".into(),
                        client_id: "c".into(),
                        thumbprint: "x".into(),
                        key,
                    }
                }
                other => other,
            };
            let other = FluxAzureConfig {
                credential,
                authority_host: c.authority_host.clone(),
            };
            assert_eq!(
                format!("{c:?}"),
                format!("{other:?}"),
                "Debug shows a credential field"
            );
        }
        Err(e) => assert_quotes_no_value("sops.azure-kv", &e.to_string(), data),
    }
    if let Err(e) = enseal_sops::keys::gcp_kms::check_credentials_json(data) {
        let text = e.to_string();
        // The one value the GCP message names on purpose, as Google's library does: an
        // unsupported `type`, which is no secret.
        if !text.contains("credentials of type") {
            assert_quotes_no_value("sops.gcp-kms", &text, data);
        }
    }
}

/// Panics when `text` holds a value-like word of `input`: 12 or more characters between
/// white space and YAML/JSON punctuation, with a digit and a letter (keys, secrets and tokens
/// have both; field names and the messages' English words have no digit, so a field name
/// the message names is not taken for a quoted value).
fn assert_quotes_no_value(what: &str, text: &str, input: &[u8]) {
    let input = String::from_utf8_lossy(input);
    let words = input.split(|c: char| c.is_whitespace() || "\"'`:,{}[]#&*!|>".contains(c));
    for word in words.filter(|w| {
        w.len() >= 12
            && w.chars().any(|c| c.is_ascii_digit())
            && w.chars().any(|c| c.is_alphabetic())
    }) {
        assert!(
            !text.contains(word),
            "{what}: the message quotes {word:?}: {text}"
        );
    }
}
