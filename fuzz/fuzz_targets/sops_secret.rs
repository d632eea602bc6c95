//! SopsSecret objects as the controller gets them (JSON from the API server) and as `enseal
//! sops-secret`/kustomize read them (YAML or JSON files): decode the object, then decrypt
//! `spec.encrypted` in `spec.format` with test identity `a`, MAC verified, as the controller's
//! reconciler does.
#![no_main]

use enseal_sealing::manifest;
use enseal_sops_secret::SopsSecret;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The API server's JSON, straight into the type (what kube's watcher does).
    if let Ok(obj) = serde_json::from_slice::<SopsSecret>(data) {
        decrypt(&obj);
    }
    let Ok(docs) = manifest::parse_documents(data) else {
        return;
    };
    for (index, doc) in docs.into_iter().enumerate() {
        if let Ok(obj) = manifest::decode::<SopsSecret>(index, doc, "SopsSecret") {
            decrypt(&obj);
        }
    }
});

fn decrypt(obj: &SopsSecret) {
    let format = obj.spec.format.store_format();
    enseal_fuzz::decrypt_bytes(format, obj.spec.encrypted.as_bytes());
}
