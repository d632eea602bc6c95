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
