//! `enseal publish`: sops' `publish` for Vault KV destinations (cmd/sops/subcommand/publish and
//! publish/vault.go). The file's `destination_rules` entry is the first whose `path_regex`
//! matches the path as given (or that has none); its decrypted values are written to
//! `{mount}{vault_path}{file name}` (`{mount}data/...` for KV version 2) at `vault_address`,
//! else `VAULT_ADDR`, else the Go client's default `https://127.0.0.1:8200`.
//!
//! S3 and GCS destinations (which upload the encrypted file, re-encrypted for a recreation
//! rule) and `--recursive` are refused by name rather than half done.

use std::io::{BufRead, Write};
use std::path::Path;

use enseal_sops::file::Mac;
use enseal_sops::file::{self, DecryptOptions};
use enseal_sops::stores::Format;
use zeroize::Zeroizing;

use crate::args::{GlobalOptions, PublishArgs};
use crate::context;
use crate::exit::{self, Failure, Result};
use crate::file_io::read_input;
use crate::plan;

/// The Go Vault client's address when neither the rule nor `VAULT_ADDR` gives one.
const DEFAULT_VAULT_ADDRESS: &str = "https://127.0.0.1:8200";

pub fn run(g: &GlobalOptions, a: &PublishArgs) -> Result<()> {
    let generic = |m: String| Failure::new(exit::GENERIC, m);
    if a.recursive {
        return Err(generic(
            "publish --recursive is not supported by enseal yet".into(),
        ));
    }
    let config_path = plan::config_path(g).ok_or_else(|| {
        generic("config file not found: publish needs destination_rules in .sops.yaml".into())
    })?;
    let config = plan::load_config(&config_path)?;
    let given = a.file.to_string_lossy();
    let rule = config.destination_for(&given).ok_or_else(|| {
        generic("error loading config: no matching destination found in config".into())
    })?;
    let destinations = [&rule.s3_bucket, &rule.gcs_bucket, &rule.vault_path]
        .iter()
        .filter(|d| d.as_deref().is_some_and(|d| !d.is_empty()))
        .count();
    if destinations > 1 {
        return Err(generic(
            "error loading config: more than one destinations were found in a single \
             destination rule, you can only use one per rule"
                .into(),
        ));
    }
    let Some(vault_path) = rule.vault_path.as_deref().filter(|p| !p.is_empty()) else {
        return Err(if destinations == 0 {
            generic("no destination configured for this file".into())
        } else {
            generic(
                "enseal publishes to Vault only; S3 and GCS destinations are not supported".into(),
            )
        });
    };

    let path = std::path::absolute(&a.file).unwrap_or_else(|_| a.file.clone());
    let mut name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if a.omit_extensions || rule.omit_extensions {
        if let Some(ext) = Path::new(&name).extension() {
            name.truncate(name.len() - ext.len() - 1);
        }
    }
    let mount = with_slash(rule.vault_kv_mount_name.as_deref().unwrap_or("secret/"));
    let kv_version: u8 = if rule.vault_kv_version == Some(1) {
        1
    } else {
        2
    };
    let secrets_path = if kv_version == 1 {
        format!("{mount}{}{name}", with_slash(vault_path))
    } else {
        format!("{mount}data/{}{name}", with_slash(vault_path))
    };
    let address = rule
        .vault_address
        .clone()
        .filter(|a| !a.is_empty())
        .or_else(|| std::env::var("VAULT_ADDR").ok().filter(|a| !a.is_empty()))
        .unwrap_or_else(|| DEFAULT_VAULT_ADDRESS.to_string());

    // The values, decrypted with the MAC checked, as the JSON object sops' EmitAsMap makes.
    let mut input = read_input(Some(&a.file), None)?;
    let format = g.input_format(&input.name);
    let bytes = std::mem::take(&mut *input.bytes);
    let options = DecryptOptions {
        mac: Mac::Verify,
        output: Some(Format::Json),
    };
    let json: Zeroizing<Vec<u8>> =
        file::decrypt_bytes(bytes, format, &context::keyring(), &options)
            .map_err(|e| context::file_error(&input.name, e))?;
    let data: serde_json::Value = serde_json::from_slice(&json)
        .map_err(|e| generic(format!("cannot read the decrypted values as a map: {e}")))?;
    if !data.is_object() {
        return Err(generic(
            "only a file whose top level is a mapping can be published".into(),
        ));
    }

    if !a.yes {
        let target = format!("{}/v1/{secrets_path}", address.trim_end_matches('/'));
        if !confirm(&path.display().to_string(), &target)? {
            return Err(generic(format!(
                "Publication of {} canceled",
                path.display()
            )));
        }
    }
    context::vault_service()?
        .publish_kv(&address, &secrets_path, kv_version, &data)
        .map_err(|e| generic(e.to_string()))
}

fn with_slash(s: &str) -> String {
    if s.ends_with('/') {
        s.to_string()
    } else {
        format!("{s}/")
    }
}

/// sops' prompt, asked until the answer is y or n.
fn confirm(path: &str, target: &str) -> Result<bool> {
    let stdin = std::io::stdin();
    loop {
        print!("uploading {path} to {target} ? (y/n): ");
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        let read = stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::new(exit::GENERIC, e.to_string()))?;
        if read == 0 {
            return Err(Failure::new(exit::GENERIC, "unexpected newline"));
        }
        match line.trim() {
            "y" => return Ok(true),
            "n" => return Ok(false),
            _ => {}
        }
    }
}
