//! `enseal sops-secret FILE`: wraps an enseal/sops-encrypted file into a SopsSecret manifest
//! (enseal.dev/v1alpha1) that enseal-controller decrypts in the cluster.
//!
//! The file goes into `spec.encrypted` verbatim, as one string: the API server stores and
//! returns a string unchanged, so the sops MAC still verifies what was encrypted.

use std::io::Write;
use std::path::Path;

use enseal_sealing::manifest::{self, ManifestFormat};
use enseal_sops::stores::{self, Format};
use enseal_sops_secret::{Decryption, LocalSecretRef, SopsSecret, SopsSecretSpec};

use crate::args::SopsSecretArgs;
use crate::exit::{self, Failure, Result};

pub fn run(a: &SopsSecretArgs, output: Option<&Path>) -> Result<()> {
    let bytes = std::fs::read(&a.file).map_err(|e| {
        Failure::new(
            exit::CANNOT_READ_INPUT,
            format!("{}: {e}", a.file.display()),
        )
    })?;
    let manifest = build(
        &a.file,
        &bytes,
        a.name.as_deref(),
        a.namespace.as_deref(),
        a.key_secret.as_deref(),
    )?;
    let format = ManifestFormat::from_name(&a.format).unwrap_or(ManifestFormat::Yaml);
    let text = manifest::write_documents(&[manifest], format)
        .map_err(|e| Failure::new(exit::GENERIC, e.to_string()))?;
    let written = match output {
        Some(path) => std::fs::write(path, text.as_bytes()),
        None => std::io::stdout().write_all(text.as_bytes()),
    };
    written.map_err(|e| Failure::new(exit::CANNOT_WRITE_OUTPUT, e.to_string()))
}

/// The SopsSecret manifest for the encrypted file `bytes` read from `path`; `key_secret` names
/// the Secret (in the same namespace) whose age identities open it.
pub fn build(
    path: &Path,
    bytes: &[u8],
    name: Option<&str>,
    namespace: Option<&str>,
    key_secret: Option<&str>,
) -> Result<SopsSecret> {
    let shown = path.display();
    let format = Format::from_path(path);
    let parsed = stores::store_for(format)
        .parse(bytes)
        .map_err(|e| Failure::new(exit::GENERIC, format!("{shown}: {e}")))?;
    if parsed.metadata.is_none() {
        return Err(Failure::new(
            exit::GENERIC,
            format!(
                "{shown} is not encrypted (no sops metadata): encrypt it first with `enseal encrypt`, \
                 a SopsSecret must never hold plaintext"
            ),
        ));
    }
    let encrypted = std::str::from_utf8(bytes).map_err(|_| {
        Failure::new(
            exit::GENERIC,
            format!("{shown}: the encrypted file is not UTF-8 text"),
        )
    })?;
    let name = match name {
        Some(n) => n.to_owned(),
        None => default_name(path).ok_or_else(|| {
            Failure::new(
                exit::GENERIC,
                format!("{shown}: cannot derive a resource name from the file name; pass --name"),
            )
        })?,
    };
    // For binary files the Secret key is the file's name (what `kubectl create secret
    // --from-file` would use).
    let key = (format == Format::Binary)
        .then(|| path.file_name().and_then(|f| f.to_str()).map(str::to_owned))
        .flatten();
    let mut object = SopsSecret::new(
        &name,
        SopsSecretSpec {
            format: format.into(),
            encrypted: encrypted.to_owned(),
            key,
            decryption: key_secret.map(|name| Decryption {
                secret_ref: Some(LocalSecretRef {
                    name: name.to_owned(),
                }),
            }),
        },
    );
    object.metadata.namespace = namespace.map(str::to_owned);
    Ok(object)
}

/// The file stem as a DNS-1123 name: lower case, other characters as `-`.
fn default_name(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    let mapped: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches('-');
    (!trimmed.is_empty()).then(|| trimmed.chars().take(253).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENCRYPTED: &str = "a: ENC[AES256_GCM,data:AAAA,iv:BBBB,tag:CCCC,type:str]\n  \nb: \" x\"\nsops:\n    age: []\n    lastmodified: \"2024-01-01T00:00:00Z\"\n    mac: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\n    version: 3.11.0\n";

    #[test]
    fn the_file_travels_verbatim_through_yaml_and_json_output() {
        let m = build(
            Path::new("dir/My_App.enc.yaml"),
            ENCRYPTED.as_bytes(),
            None,
            Some("ns"),
            None,
        )
        .unwrap();
        let m = serde_json::to_value(m).unwrap();
        assert!(m["spec"].get("decryption").is_none(), "{m}");
        assert_eq!(m["apiVersion"], "enseal.dev/v1alpha1");
        assert_eq!(m["kind"], "SopsSecret");
        assert!(m.get("status").is_none(), "{m}");
        assert_eq!(m["metadata"]["name"], "my-app-enc");
        assert_eq!(m["metadata"]["namespace"], "ns");
        assert_eq!(m["spec"]["format"], "yaml");
        for format in [ManifestFormat::Yaml, ManifestFormat::Json] {
            let text = manifest::write_documents(std::slice::from_ref(&m), format).unwrap();
            let back = manifest::parse_documents(text.as_bytes()).unwrap();
            assert_eq!(back[0]["spec"]["encrypted"], ENCRYPTED, "{format:?}");
        }
    }

    #[test]
    fn key_secret_names_the_namespace_key_secret() {
        let m = build(
            Path::new("app.enc.yaml"),
            ENCRYPTED.as_bytes(),
            None,
            Some("team-a"),
            Some("team-a-keys"),
        )
        .unwrap();
        let m = serde_json::to_value(m).unwrap();
        assert_eq!(
            m["spec"]["decryption"],
            serde_json::json!({"secretRef": {"name": "team-a-keys"}})
        );
    }

    #[test]
    fn a_plain_file_is_refused() {
        let e = build(
            Path::new("s.yaml"),
            b"password: hunter2\n",
            None,
            None,
            None,
        )
        .unwrap_err();
        assert!(e.message.contains("encrypt it first"), "{}", e.message);
        assert!(!e.message.contains("hunter2"));
    }
}
