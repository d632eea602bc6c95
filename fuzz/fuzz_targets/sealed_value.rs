//! One sealed value (`encryptedData` entry, or the legacy `spec.data` blob) as the controller,
//! `/v1/verify` and `kubeseal --recovery-unseal` open it: length prefix, RSA-OAEP unwrap with
//! the test sealing key, AES-GCM. The first byte picks the scope label so that the label
//! handling is exercised too; the rest is the base64 text (open_base64) and, decoded, the raw
//! blob (open).
#![no_main]

use libfuzzer_sys::fuzz_target;

const LABELS: [&[u8]; 3] = [b"", b"default", b"default/mysecret"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let label = LABELS[usize::from(pick) % LABELS.len()];
    let keys = enseal_fuzz::sealing_keys();
    let _ = enseal_sealing::open(keys, label, rest);
    if let Ok(text) = std::str::from_utf8(rest) {
        let _ = enseal_sealing::open_base64(keys, label, text);
    }
});
