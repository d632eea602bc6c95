//! SealedSecret manifests as `kubeseal`-style commands (`enseal seal --merge-into`, `--re-encrypt`,
//! `--recovery-unseal`, `validate`) read them from files, YAML or JSON, and as the controller
//! unseals them: parse the stream, decode each SealedSecret, then open its values with the test
//! sealing key and render the Secret (templates included), and write the objects back.
#![no_main]

use enseal_sealing::{manifest, ManifestFormat, SealedSecret};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let docs = match manifest::parse_documents(data) {
        Ok(docs) => docs,
        Err(e) => return drop(e.to_string()),
    };
    let keys = enseal_fuzz::sealing_keys();
    let mut sealed = Vec::new();
    for (index, doc) in docs.into_iter().enumerate() {
        let ss: SealedSecret = match manifest::decode(index, doc, "SealedSecret") {
            Ok(ss) => ss,
            Err(e) => {
                drop(e.to_string());
                continue;
            }
        };
        let _ = ss.scope();
        let _ = ss.verify(keys).map_err(|e| e.to_string());
        if let Ok(secret) = ss.unseal(keys) {
            let _ = manifest::write_documents(&[secret], ManifestFormat::Yaml);
        }
        let _ = ss.unseal_without_template(keys).map_err(|e| e.to_string());
        sealed.push(ss);
    }
    // What `--merge-into` and `--re-encrypt` write must read back as the same objects: a
    // SealedSecret that changed on the way through a file would no longer open.
    for format in [ManifestFormat::Yaml, ManifestFormat::Json] {
        let written = manifest::write_documents(&sealed, format).expect("a SealedSecret encodes");
        let docs = manifest::parse_documents(written.as_bytes()).expect("written objects parse");
        let back: Vec<SealedSecret> =
            manifest::decode_all(docs, "SealedSecret").expect("written objects decode");
        assert_eq!(
            back, sealed,
            "{format:?} write and read changed the objects"
        );
    }
});
