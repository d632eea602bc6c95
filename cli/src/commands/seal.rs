//! `enseal seal`, `enseal unseal` and `enseal cert`: kubeseal's offline half (sealing with a
//! certificate file, recovery with private keys) on `enseal_shared::sealing`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use enseal_shared::sealing::keys::{self, KeyPair, SealingCertificate};
use enseal_shared::sealing::manifest::{self, ManifestFormat};
use enseal_shared::sealing::{PrivateKey, Scope, SealedSecret, Secret};
use enseal_shared::stores::{Format, WriteOptions};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::context;
use crate::exit::{self, Failure, Result};
use crate::file_io::{self, read_input, Input};
use crate::seal_args::{CertArgs, SealArgs, UnsealArgs};

const NEEDS_CONTROLLER: &str = "not available yet: needs the controller";

fn fail(message: impl Into<String>) -> Failure {
    Failure::new(exit::GENERIC, message)
}

fn conflict(message: impl Into<String>) -> Failure {
    Failure::new(exit::CONFLICTING_PARAMETERS, message)
}

pub fn seal(a: &SealArgs) -> Result<()> {
    if a.recovery_unseal {
        return unseal(&UnsealArgs {
            file: a.secret_file.clone(),
            sealed_secret_file: None,
            private_key: a.private_key.clone(),
            secret_file: a.sealed_secret_file.clone(),
            format: a.format.clone().unwrap_or_else(|| "json".into()),
        });
    }
    if a.fetch_cert {
        return Err(fail(format!(
            "--fetch-cert ({}/{}): {NEEDS_CONTROLLER}",
            a.controller_namespace, a.controller_name
        )));
    }
    let modes = [a.raw, a.merge_into.is_some(), a.re_encrypt, a.validate];
    if modes.iter().filter(|m| **m).count() > 1 {
        return Err(conflict(
            "--raw, --merge-into, --re-encrypt and --validate cannot be combined",
        ));
    }
    if !a.from_file.is_empty() && !a.raw {
        return Err(conflict("--from-file needs --raw"));
    }
    let scope = a
        .scope
        .as_deref()
        .map(|s| s.parse::<Scope>().map_err(|e| fail(e.to_string())))
        .transpose()?;
    let format = a
        .format
        .as_deref()
        .and_then(ManifestFormat::from_name)
        .unwrap_or_default();
    if a.validate {
        return validate(a);
    }
    let cert = load_cert(a.cert.as_deref(), a)?;
    if a.raw {
        return raw(a, scope, &cert);
    }
    if a.re_encrypt {
        return re_encrypt(a, format, &cert);
    }
    let secrets = read_secrets(a.secret_file.as_deref())?;
    if let Some(target) = &a.merge_into {
        return merge_into(a, target, scope, secrets, &cert);
    }
    let mut sealed = Vec::with_capacity(secrets.len());
    for (index, mut secret) in secrets.into_iter().enumerate() {
        fill_identity(&mut secret, a.name.as_deref(), a.namespace.as_deref());
        if secret.data.is_empty() && secret.string_data.is_empty() && !a.allow_empty_data {
            return Err(fail(format!(
                "document {index}: the Secret has no data; pass --allow-empty-data if that is \
                 intended"
            )));
        }
        sealed.push(
            SealedSecret::seal(&secret, &cert.public_key, scope)
                .map_err(|e| fail(format!("document {index}: {e}")))?,
        );
    }
    let text = manifest::write_documents(&sealed, format).map_err(|e| fail(e.to_string()))?;
    write_output(a.sealed_secret_file.as_deref(), text.as_bytes(), false)
}

/// kubeseal fills a missing name or namespace from its flags; it never renames a Secret.
fn fill_identity(secret: &mut Secret, name: Option<&str>, namespace: Option<&str>) {
    if secret.metadata.name.as_deref().unwrap_or("").is_empty() {
        secret.metadata.name = name.map(str::to_string);
    }
    if secret
        .metadata
        .namespace
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        secret.metadata.namespace = namespace.map(str::to_string);
    }
}

fn load_cert(cert: Option<&str>, a: &SealArgs) -> Result<SealingCertificate> {
    let Some(cert) = cert else {
        return Err(fail(format!(
            "no --cert given (or SEALED_SECRETS_CERT); fetching the certificate from the \
             controller {}/{} is {NEEDS_CONTROLLER}",
            a.controller_namespace, a.controller_name
        )));
    };
    read_cert(cert)
}

fn read_cert(cert: &str) -> Result<SealingCertificate> {
    if cert.starts_with("http://") || cert.starts_with("https://") {
        return Err(fail(format!(
            "--cert {cert}: fetching a certificate from a URL is not available yet; download \
             it and pass the file"
        )));
    }
    let input = read_input(Some(Path::new(cert)), None)?;
    let parsed =
        keys::parse_certificate_pem(&input.bytes).map_err(|e| fail(format!("{cert}: {e}")))?;
    parsed
        .check_not_expired(SystemTime::now())
        .map_err(|e| fail(format!("{cert}: {e}")))?;
    Ok(parsed)
}

fn read_private_keys(files: &[PathBuf]) -> Result<Vec<PrivateKey>> {
    let mut all = Vec::new();
    for file in files {
        let input = read_input(Some(file), None)?;
        let found = keys::read_private_keys(&input.bytes)
            .map_err(|e| fail(format!("{}: {e}", file.display())))?;
        all.extend(found);
    }
    Ok(all)
}

fn require_private_keys(a: &SealArgs, what: &str) -> Result<Vec<PrivateKey>> {
    if a.private_key.is_empty() {
        return Err(fail(format!(
            "{what} without --private-key asks the controller, which is {NEEDS_CONTROLLER}; \
             pass --private-key FILE to do it offline"
        )));
    }
    read_private_keys(&a.private_key)
}

/// Reads Secrets, decrypting an enseal/sops-encrypted file in memory first.
fn read_secrets(file: Option<&Path>) -> Result<Vec<Secret>> {
    let input = read_input(file, None)?;
    let docs = parse(&input)?;
    let docs = if docs
        .iter()
        .any(|d| d.get("sops").is_some_and(Value::is_object))
    {
        let plain = decrypt_sops(&input)?;
        parse(&Input {
            path: input.path.clone(),
            name: input.name.clone(),
            bytes: plain,
        })?
    } else {
        docs
    };
    if docs.is_empty() {
        return Err(fail(format!("{}: no Secret found", input.name.display())));
    }
    manifest::decode_all(docs, "Secret").map_err(read_error(&input.name))
}

fn parse(input: &Input) -> Result<Vec<Value>> {
    manifest::parse_documents(&input.bytes)
        .map_err(|e| Failure::new(exit::CANNOT_READ_INPUT, e.to_string()).in_file(&input.name))
}

fn read_error(name: &Path) -> impl Fn(manifest::ManifestError) -> Failure + '_ {
    move |e| Failure::new(exit::CANNOT_READ_INPUT, e.to_string()).in_file(name)
}

fn decrypt_sops(input: &Input) -> Result<Zeroizing<Vec<u8>>> {
    let first = input.bytes.iter().find(|b| !b.is_ascii_whitespace());
    let format = if first == Some(&b'{') {
        Format::Json
    } else {
        Format::Yaml
    };
    let opened = context::open(input, format, false)?;
    let plain = context::store(format)
        .write(
            &opened.parsed.tree,
            None,
            Some(&opened.parsed),
            &WriteOptions::default(),
        )
        .map_err(|e| exit::store_error(&input.name, e))?;
    Ok(Zeroizing::new(plain))
}

fn raw(a: &SealArgs, scope: Option<Scope>, cert: &SealingCertificate) -> Result<()> {
    let scope = scope.unwrap_or_default();
    let spec = match a.from_file.as_slice() {
        [] => return Err(fail("--raw needs --from-file")),
        [one] => one,
        _ => return Err(fail("--raw takes exactly one --from-file")),
    };
    let path = spec.split_once('=').map_or(spec.as_str(), |(_, p)| p);
    let namespace = a.namespace.as_deref().unwrap_or("");
    let name = a.name.as_deref().unwrap_or("");
    if namespace.is_empty() && scope != Scope::ClusterWide {
        return Err(fail(format!(
            "--raw with --scope {scope} needs --namespace"
        )));
    }
    if name.is_empty() && scope == Scope::Strict {
        return Err(fail("--raw with --scope strict needs --name"));
    }
    let input = read_input(Some(Path::new(path)), None)?;
    let sealed = enseal_shared::sealing::seal_base64(
        &cert.public_key,
        &scope.label(namespace, name),
        &input.bytes,
    )
    .map_err(|e| fail(e.to_string()))?;
    write_output(a.sealed_secret_file.as_deref(), sealed.as_bytes(), false)
}

fn read_sealed(file: Option<&Path>) -> Result<(Input, Vec<SealedSecret>)> {
    let input = read_input(file, None)?;
    let docs = parse(&input)?;
    if docs.is_empty() {
        return Err(fail(format!(
            "{}: no SealedSecret found",
            input.name.display()
        )));
    }
    let sealed = manifest::decode_all(docs, "SealedSecret").map_err(read_error(&input.name))?;
    Ok((input, sealed))
}

fn re_encrypt(a: &SealArgs, format: ManifestFormat, cert: &SealingCertificate) -> Result<()> {
    let keys = require_private_keys(a, "--re-encrypt")?;
    let (input, mut sealed) = read_sealed(a.secret_file.as_deref())?;
    for (index, s) in sealed.iter_mut().enumerate() {
        s.reseal(&keys, &cert.public_key).map_err(|e| {
            fail(format!("document {index} ({}): {e}", s.metadata.name())).in_file(&input.name)
        })?;
    }
    let text = manifest::write_documents(&sealed, format).map_err(|e| fail(e.to_string()))?;
    write_output(a.sealed_secret_file.as_deref(), text.as_bytes(), false)
}

fn validate(a: &SealArgs) -> Result<()> {
    let keys = require_private_keys(a, "--validate")?;
    let (input, sealed) = read_sealed(a.secret_file.as_deref())?;
    for (index, s) in sealed.iter().enumerate() {
        s.open_values(&keys).map_err(|e| {
            fail(format!(
                "unable to decrypt sealed secret: document {index} ({}): {e}",
                s.metadata.name()
            ))
            .in_file(&input.name)
        })?;
    }
    Ok(())
}

/// Adds the Secret's values to an existing SealedSecret file, under the SealedSecret's own
/// name, namespace and scope (values of one SealedSecret must share its label), keeping the
/// file's format unless -o says otherwise.
fn merge_into(
    a: &SealArgs,
    target: &Path,
    scope: Option<Scope>,
    secrets: Vec<Secret>,
    cert: &SealingCertificate,
) -> Result<()> {
    let [secret] = <[Secret; 1]>::try_from(secrets)
        .map_err(|_| fail("--merge-into takes exactly one input Secret"))?;
    let input = read_input(Some(target), None)?;
    let docs = parse(&input)?;
    let mut existing: Vec<SealedSecret> =
        manifest::decode_all(docs, "SealedSecret").map_err(read_error(&input.name))?;
    if existing.len() != 1 {
        return Err(
            fail("the --merge-into file must hold exactly one SealedSecret").in_file(target),
        );
    }
    let orig = &mut existing[0];
    if let Some(s) = scope {
        if s != orig.scope() {
            return Err(fail(format!(
                "--scope {s} differs from the SealedSecret's scope {}: its values could not \
                 all be opened",
                orig.scope()
            ))
            .in_file(target));
        }
    }
    let values = secret
        .data
        .iter()
        .map(|(k, v)| (k, v.as_bytes()))
        .chain(secret.string_data.iter().map(|(k, v)| (k, v.0.as_bytes())));
    for (key, plain) in values {
        orig.insert_value(&cert.public_key, key, plain)
            .map_err(|e| fail(e.to_string()))?;
    }
    let scope = orig.scope();
    let template = &mut orig.spec.template.metadata;
    for (k, v) in &secret.metadata.labels {
        template.labels.insert(k.clone(), v.clone());
    }
    for (k, v) in &secret.metadata.annotations {
        if !k.ends_with("/last-applied-configuration") {
            template.annotations.insert(k.clone(), v.clone());
        }
    }
    scope.write_annotations(&mut template.annotations);
    let format = match a.format.as_deref().and_then(ManifestFormat::from_name) {
        Some(f) => f,
        None if input.bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') => {
            ManifestFormat::Json
        }
        None => ManifestFormat::Yaml,
    };
    let text = manifest::write_documents(&existing, format).map_err(|e| fail(e.to_string()))?;
    file_io::write_atomic(target, text.as_bytes())
}

pub fn unseal(a: &UnsealArgs) -> Result<()> {
    let keys = read_private_keys(&a.private_key)?;
    let file = a.file.as_deref().or(a.sealed_secret_file.as_deref());
    let (input, sealed) = read_sealed(file)?;
    let mut secrets = Vec::with_capacity(sealed.len());
    for (index, s) in sealed.iter().enumerate() {
        secrets.push(s.unseal(&keys).map_err(|e| {
            Failure::new(
                exit::ERROR_DECRYPTING_TREE,
                format!("document {index} ({}): {e}", s.metadata.name()),
            )
            .in_file(&input.name)
        })?);
    }
    let format = ManifestFormat::from_name(&a.format).unwrap_or_default();
    let text = manifest::write_documents(&secrets, format).map_err(|e| fail(e.to_string()))?;
    write_output(a.secret_file.as_deref(), text.as_bytes(), true)
}

pub fn cert(a: &CertArgs) -> Result<()> {
    if a.generate {
        return generate(a);
    }
    if a.fetch_cert {
        return Err(fail(format!(
            "--fetch-cert ({}/{}): {NEEDS_CONTROLLER}",
            a.controller_namespace, a.controller_name
        )));
    }
    let Some(cert) = a.cert.as_deref() else {
        return Err(fail(format!(
            "no --cert given; fetching the certificate from the controller {}/{} is \
             {NEEDS_CONTROLLER}",
            a.controller_namespace, a.controller_name
        )));
    };
    read_cert(cert)?;
    let input = read_input(Some(Path::new(cert)), None)?;
    write_output(None, &input.bytes, false)
}

fn generate(a: &CertArgs) -> Result<()> {
    let key_out = a
        .key_out
        .as_deref()
        .ok_or_else(|| fail("--generate needs --key-out FILE for the private key"))?;
    let validity = Duration::from_secs(a.validity_days.saturating_mul(24 * 3600));
    let pair =
        KeyPair::generate(a.key_size, &a.common_name, validity).map_err(|e| fail(e.to_string()))?;
    let key_pem = pair.private_key_pem().map_err(|e| fail(e.to_string()))?;
    write_output(Some(key_out), key_pem.as_bytes(), true)?;
    write_output(
        a.cert_out.as_deref(),
        pair.certificate_pem.as_bytes(),
        false,
    )
}

/// Standard output, or `path` replaced atomically; `private` files are created 0600.
fn write_output(path: Option<&Path>, bytes: &[u8], private: bool) -> Result<()> {
    match path {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes).and_then(|_| out.flush()).map_err(|e| {
                Failure::new(exit::CANNOT_WRITE_OUTPUT, format!("standard output: {e}"))
            })
        }
        Some(p) if private => file_io::write_private(p, bytes),
        Some(p) => file_io::write_atomic(p, bytes),
    }
}
