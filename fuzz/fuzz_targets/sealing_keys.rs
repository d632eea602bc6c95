//! The sealing key material a user hands enseal: a certificate (`--cert` file or URL, or the
//! controller's `/v1/cert.pem` answer) and private keys (`--recovery-private-key`: PEM or a
//! backup of the controller's key Secrets, YAML or JSON).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = enseal_sealing::keys::parse_certificate_pem(data) {
        let _ = cert.check_not_expired(std::time::SystemTime::UNIX_EPOCH);
    }
    let _ = enseal_sealing::keys::read_private_keys(data).map_err(|e| e.to_string());
});
