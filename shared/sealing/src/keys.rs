//! The controller's key pairs: RSA keys with a self-signed certificate, as Sealed Secrets makes
//! them, their PEM forms, and reading them back from PEM files or from a backup of the
//! controller's key Secrets.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, LineEnding};
use rsa::sha2::Sha256;
use rsa::PublicKey;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::{Certificate, TbsCertificate};
use x509_cert::der::{Decode, EncodePem};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use x509_cert::time::Validity;
use zeroize::Zeroizing;

use crate::manifest;
use crate::PrivateKey;

/// Sealed Secrets' defaults: `--key-size 4096`, `--key-ttl` 10 years, `--my-cn sealed-secret`.
pub const DEFAULT_KEY_BITS: usize = 4096;
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
pub const DEFAULT_COMMON_NAME: &str = "sealed-secret";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("RSA key generation failed: {0}")]
    Generate(String),
    #[error("cannot build the certificate: {0}")]
    BuildCertificate(String),
    #[error("{0:?} is not a valid certificate subject common name")]
    CommonName(String),
    #[error("not PEM: no -----BEGIN block found")]
    NotPem,
    #[error("invalid PEM: {0}")]
    Pem(String),
    #[error("PEM block {index} ({tag}): {reason}")]
    Block {
        index: usize,
        tag: String,
        reason: String,
    },
    #[error("no RSA private key found (expected an RSA PRIVATE KEY or PRIVATE KEY block)")]
    NoPrivateKey,
    #[error("no certificate or RSA public key found")]
    NoCertificate,
    #[error("the certificate expired on {0}: the controller has a newer one")]
    Expired(String),
    #[error("key backup: {0}")]
    Backup(String),
}

/// A freshly generated controller key pair.
pub struct KeyPair {
    pub private_key: PrivateKey,
    pub certificate_pem: String,
}

impl KeyPair {
    /// An RSA key of `bits` and a self-signed certificate for it, shaped as Sealed Secrets'
    /// `SignKey` makes it (subject `CN=<common_name>`, CA, key usage encipher-only, a random
    /// positive 128-bit serial), valid from now for `validity`.
    pub fn generate(
        bits: usize,
        common_name: &str,
        validity: Duration,
    ) -> Result<KeyPair, KeyError> {
        let private_key = rsa::PrivateKey::new(&mut getrandom::SysRng, bits)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        let certificate_pem = self_signed_certificate(&private_key, common_name, validity)?;
        Ok(KeyPair {
            private_key: PrivateKey::new(private_key),
            certificate_pem,
        })
    }

    /// The private key as Sealed Secrets stores `tls.key`: PKCS#1 `RSA PRIVATE KEY` PEM.
    pub fn private_key_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        private_key_to_pem(&self.private_key)
    }
}

pub fn private_key_to_pem(key: &PrivateKey) -> Result<Zeroizing<String>, KeyError> {
    key.rsa()
        .to_pkcs1_pem(LineEnding::LF)
        .map_err(|e| KeyError::Pem(e.to_string()))
}

struct SealingProfile {
    subject: Name,
}

impl BuilderProfile for SealingProfile {
    fn get_issuer(&self, subject: &Name) -> Name {
        subject.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let mut extensions = Vec::new();
        extensions.push(
            KeyUsage(KeyUsages::EncipherOnly.into()).to_extension(tbs.subject(), &extensions)?,
        );
        extensions.push(
            BasicConstraints {
                ca: true,
                path_len_constraint: None,
            }
            .to_extension(tbs.subject(), &extensions)?,
        );
        // Go adds a subject key identifier to every CA certificate it creates.
        let ski = SubjectKeyIdentifier::try_from(spk)?;
        extensions.push(ski.to_extension(tbs.subject(), &extensions)?);
        Ok(extensions)
    }
}

fn self_signed_certificate(
    key: &rsa::PrivateKey,
    common_name: &str,
    validity: Duration,
) -> Result<String, KeyError> {
    let build = |e: &dyn std::fmt::Display| KeyError::BuildCertificate(e.to_string());
    if common_name.is_empty() || common_name.contains([',', '+', '=', '\\', '"']) {
        return Err(KeyError::CommonName(common_name.to_string()));
    }
    let subject = Name::from_str(&format!("CN={common_name}"))
        .map_err(|_| KeyError::CommonName(common_name.to_string()))?;
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| build(&e))?;
    // Positive and non-zero, as Go's rand.Int(2^128) gives (Go refuses negative serials).
    serial[0] = (serial[0] & 0x7f) | 0x01;
    let serial = SerialNumber::new(&serial).map_err(|e| build(&e))?;
    let validity = Validity::from_now(validity).map_err(|e| build(&e))?;
    let spki = SubjectPublicKeyInfoOwned::from_key(key.as_public_key()).map_err(|e| build(&e))?;
    let signer = SigningKey::<Sha256>::new(key.clone());
    let builder = CertificateBuilder::new(SealingProfile { subject }, serial, validity, spki)
        .map_err(|e| build(&e))?;
    let cert = builder
        .build::<_, rsa::pkcs1v15::Signature>(&signer)
        .map_err(|e| build(&e))?;
    cert.to_pem(LineEnding::LF).map_err(|e| build(&e))
}

fn pem_blocks(bytes: &[u8]) -> Result<Vec<pem::Pem>, KeyError> {
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(KeyError::NotPem);
    }
    pem::parse_many(bytes).map_err(|e| KeyError::Pem(e.to_string()))
}

/// Every RSA private key in a PEM file: PKCS#1 (`RSA PRIVATE KEY`, what Sealed Secrets writes)
/// and PKCS#8 (`PRIVATE KEY`). Other blocks (certificates) are skipped.
pub fn parse_private_keys_pem(bytes: &[u8]) -> Result<Vec<PrivateKey>, KeyError> {
    let mut keys = Vec::new();
    for (index, block) in pem_blocks(bytes)?.iter().enumerate() {
        let contents = Zeroizing::new(block.contents().to_vec());
        let parsed = match block.tag() {
            "RSA PRIVATE KEY" => {
                rsa::PrivateKey::from_pkcs1_der(&contents).map_err(|e| e.to_string())
            }
            "PRIVATE KEY" => rsa::PrivateKey::from_pkcs8_der(&contents).map_err(|e| e.to_string()),
            _ => continue,
        };
        // Parsed for unsealing here, once per key (see PrivateKey).
        keys.push(
            parsed
                .map(PrivateKey::new)
                .map_err(|reason| KeyError::Block {
                    index,
                    tag: block.tag().to_string(),
                    reason,
                })?,
        );
    }
    if keys.is_empty() {
        return Err(KeyError::NoPrivateKey);
    }
    Ok(keys)
}

/// What sealing needs from the controller's certificate.
#[derive(Debug, Clone)]
pub struct SealingCertificate {
    pub public_key: PublicKey,
    /// `None` for a bare public key (no certificate, no expiry).
    pub not_after: Option<SystemTime>,
    /// When the certificate became valid: what Sealed Secrets orders its keys by by default
    /// (`--key-order-priority CertNotBefore`). `None` for a bare public key.
    pub not_before: Option<SystemTime>,
}

impl SealingCertificate {
    /// kubeseal refuses to seal with an expired certificate; so do we.
    pub fn check_not_expired(&self, now: SystemTime) -> Result<(), KeyError> {
        match self.not_after {
            Some(t) if now > t => Err(KeyError::Expired(format_time(t))),
            _ => Ok(()),
        }
    }
}

fn format_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match x509_cert::der::DateTime::from_unix_duration(Duration::from_secs(secs)) {
        Ok(dt) => dt.to_string(),
        Err(_) => format!("{secs} seconds after the epoch"),
    }
}

/// The public key to seal with from the first `CERTIFICATE` in `bytes` (what `--cert` and
/// `/v1/cert.pem` give), or from a `PUBLIC KEY` / `RSA PUBLIC KEY` block.
pub fn parse_certificate_pem(bytes: &[u8]) -> Result<SealingCertificate, KeyError> {
    for (index, block) in pem_blocks(bytes)?.iter().enumerate() {
        let fail = |reason: String| KeyError::Block {
            index,
            tag: block.tag().to_string(),
            reason,
        };
        match block.tag() {
            "CERTIFICATE" => {
                let cert =
                    Certificate::from_der(block.contents()).map_err(|e| fail(e.to_string()))?;
                let tbs = cert.tbs_certificate();
                let spki_der = x509_cert::der::Encode::to_der(tbs.subject_public_key_info())
                    .map_err(|e| fail(e.to_string()))?;
                let public_key = PublicKey::from_public_key_der(&spki_der)
                    .map_err(|e| fail(format!("not an RSA public key: {e}")))?;
                return Ok(SealingCertificate {
                    public_key,
                    not_after: Some(tbs.validity().not_after.to_system_time()),
                    not_before: Some(tbs.validity().not_before.to_system_time()),
                });
            }
            "PUBLIC KEY" => {
                let public_key = PublicKey::from_public_key_der(block.contents())
                    .map_err(|e| fail(format!("not an RSA public key: {e}")))?;
                return Ok(SealingCertificate {
                    public_key,
                    not_after: None,
                    not_before: None,
                });
            }
            "RSA PUBLIC KEY" => {
                let public_key =
                    PublicKey::from_pkcs1_der(block.contents()).map_err(|e| fail(e.to_string()))?;
                return Ok(SealingCertificate {
                    public_key,
                    not_after: None,
                    not_before: None,
                });
            }
            _ => {}
        }
    }
    Err(KeyError::NoCertificate)
}

/// Private keys from a file as kubeseal's `--recovery-private-key` takes it: PEM, or a backup
/// of the controller's key Secrets (`kubectl get secret -l
/// sealedsecrets.bitnami.com/sealed-secrets-key -o yaml`: a `List`, one Secret, or a stream of
/// them, YAML or JSON) whose `tls.key` holds the PEM.
pub fn read_private_keys(bytes: &[u8]) -> Result<Vec<PrivateKey>, KeyError> {
    match parse_private_keys_pem(bytes) {
        Ok(keys) => return Ok(keys),
        Err(KeyError::NotPem) => {}
        Err(e) => {
            // A manifest may quote PEM inside stringData; only a file that parses as a
            // manifest is taken as one.
            if manifest::parse_documents(bytes).is_err() {
                return Err(e);
            }
        }
    }
    let docs = manifest::parse_documents(bytes).map_err(|e| KeyError::Backup(e.to_string()))?;
    if docs.is_empty() {
        return Err(KeyError::Backup("no Secret found".into()));
    }
    let mut keys = Vec::new();
    for (index, doc) in docs.into_iter().enumerate() {
        let secret: crate::resource::Secret =
            manifest::decode(index, doc, "Secret").map_err(|e| KeyError::Backup(e.to_string()))?;
        let pem = match (
            secret.data.get("tls.key"),
            secret.string_data.get("tls.key"),
        ) {
            (Some(v), _) => v.as_bytes().to_vec(),
            (None, Some(v)) => v.0.as_bytes().to_vec(),
            (None, None) => {
                return Err(KeyError::Backup(format!(
                    "Secret {:?} has no tls.key",
                    secret.metadata.name()
                )))
            }
        };
        let pem = Zeroizing::new(pem);
        let found = parse_private_keys_pem(&pem).map_err(|e| {
            KeyError::Backup(format!("Secret {:?}: tls.key: {e}", secret.metadata.name()))
        })?;
        keys.extend(found);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealed_value;
    use crate::test_keys;
    use base64::Engine;

    #[test]
    fn generated_pair_seals_and_opens_through_its_pem_forms() {
        let pair = KeyPair::generate(1024, DEFAULT_COMMON_NAME, DEFAULT_VALIDITY).unwrap();
        let cert = parse_certificate_pem(pair.certificate_pem.as_bytes()).unwrap();
        cert.check_not_expired(SystemTime::now()).unwrap();
        let ttl = cert
            .not_after
            .unwrap()
            .duration_since(SystemTime::now())
            .unwrap();
        assert!(
            ttl > DEFAULT_VALIDITY - Duration::from_secs(3600),
            "{ttl:?}"
        );
        let key_pem = pair.private_key_pem().unwrap();
        assert!(key_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        let keys = parse_private_keys_pem(key_pem.as_bytes()).unwrap();
        let blob = sealed_value::seal(&cert.public_key, b"l", b"v").unwrap();
        assert_eq!(
            sealed_value::open(&keys, b"l", &blob).unwrap().as_slice(),
            b"v"
        );
    }

    #[test]
    fn certificate_is_a_ca_with_the_common_name() {
        let pair = KeyPair::generate(1024, "sealed-secret", DEFAULT_VALIDITY).unwrap();
        let block = pem::parse(&pair.certificate_pem).unwrap();
        let cert = Certificate::from_der(block.contents()).unwrap();
        assert_eq!(
            cert.tbs_certificate().subject().to_string(),
            "CN=sealed-secret"
        );
        assert_eq!(
            cert.tbs_certificate().issuer(),
            cert.tbs_certificate().subject()
        );
        let (_, bc) = cert
            .tbs_certificate()
            .get_extension::<BasicConstraints>()
            .unwrap()
            .unwrap();
        assert!(bc.ca);
    }

    #[test]
    fn expired_certificates_are_refused() {
        let pair = KeyPair::generate(1024, "x", Duration::from_secs(60)).unwrap();
        let cert = parse_certificate_pem(pair.certificate_pem.as_bytes()).unwrap();
        let later = SystemTime::now() + Duration::from_secs(3600);
        assert!(matches!(
            cert.check_not_expired(later),
            Err(KeyError::Expired(_))
        ));
    }

    #[test]
    fn pkcs8_keys_are_accepted() {
        use rsa::pkcs8::EncodePrivateKey;
        let pem = test_keys::rsa_1024()
            .rsa()
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap();
        let keys = parse_private_keys_pem(pem.as_bytes()).unwrap();
        assert_eq!(&keys[0], test_keys::rsa_1024());
    }

    #[test]
    fn several_keys_in_one_pem_file() {
        let both = format!(
            "{}{}",
            test_keys::RSA_1024_PEM,
            test_keys::RSA_1024_OTHER_PEM
        );
        assert_eq!(parse_private_keys_pem(both.as_bytes()).unwrap().len(), 2);
    }

    #[test]
    fn reads_a_backup_of_key_secrets() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let backup = format!(
            "apiVersion: v1\nkind: List\nitems:\n\
             - apiVersion: v1\n  kind: Secret\n  type: kubernetes.io/tls\n  metadata: {{name: sealed-secrets-keyabc}}\n  data:\n    tls.crt: \"\"\n    tls.key: {}\n\
             - apiVersion: v1\n  kind: Secret\n  type: kubernetes.io/tls\n  metadata: {{name: sealed-secrets-keydef}}\n  data:\n    tls.key: {}\n",
            b64(test_keys::RSA_1024_PEM),
            b64(test_keys::RSA_1024_OTHER_PEM)
        );
        let keys = read_private_keys(backup.as_bytes()).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(&keys[1], test_keys::rsa_1024_other());
        // And the plain PEM path.
        assert_eq!(
            read_private_keys(test_keys::RSA_1024_PEM.as_bytes())
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn a_secret_without_tls_key_is_an_error() {
        let err =
            read_private_keys(b"kind: Secret\nmetadata: {name: x}\ndata: {a: AAAA}\n").unwrap_err();
        assert!(err.to_string().contains("no tls.key"), "{err}");
        assert!(matches!(
            parse_certificate_pem(test_keys::RSA_1024_PEM.as_bytes()),
            Err(KeyError::NoCertificate)
        ));
    }
}
