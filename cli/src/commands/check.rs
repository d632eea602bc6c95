//! `enseal check FILES...`: the pre-commit guard. A file that a creation rule of `.sops.yaml`
//! covers must carry sops metadata; anything else is listed as an offender. File contents are
//! never printed: a plaintext secret must not end up in a CI log because the check caught it.

use std::path::Path;

use enseal_sops::config::{self, Config, ConfigError};
use enseal_sops::stores::{store_for, Format};

use crate::args::{CheckArgs, GlobalOptions};
use crate::exit::{self, Failure, Result};
use crate::plan;

/// Exit 1 with the offenders on standard output, 0 when every covered file is encrypted.
pub fn run(g: &GlobalOptions, a: &CheckArgs) -> Result<i32> {
    let Some(path) = plan::config_path(g) else {
        eprintln!("enseal: no .sops.yaml found: nothing to check");
        return Ok(0);
    };
    let cfg = plan::load_config(&path)?;
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::new(exit::GENERIC, format!("working directory: {e}")))?;
    let config_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".sops.yaml".into());
    let mut offenders = 0usize;
    let mut checked = 0usize;
    for file in &a.files {
        let Some(rule) = covering_rule(&cfg, &config::absolute_path(&cwd, file))? else {
            continue;
        };
        checked += 1;
        let format = g.input_format(file);
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                offenders += 1;
                println!("{}: cannot read: {}", file.display(), e.kind());
                continue;
            }
        };
        if !is_encrypted(format, &bytes) {
            offenders += 1;
            println!(
                "{}: not encrypted (creation rule {rule} of {config_name})",
                file.display()
            );
        }
    }
    if offenders > 0 {
        eprintln!(
            "enseal: {offenders} of {checked} files that {} covers are not encrypted \
             (encrypt them with `enseal encrypt -i FILE`)",
            path.display()
        );
        return Ok(exit::GENERIC);
    }
    Ok(0)
}

/// The 1-based number of the creation rule that covers `file`, `None` when no rule does (or
/// the config has no `creation_rules`, which sops treats as no config).
fn covering_rule(cfg: &Config, file: &Path) -> Result<Option<usize>> {
    match cfg.rule_for(file) {
        Ok(rule) => Ok(cfg
            .creation_rules
            .as_ref()
            .and_then(|rules| rules.iter().position(|r| std::ptr::eq(r, rule)))
            .map(|i| i + 1)),
        Err(ConfigError::NoMatchingRule { .. } | ConfigError::NoCreationRules { .. }) => Ok(None),
        Err(e) => Err(Failure::new(exit::GENERIC, e.to_string())),
    }
}

/// An unparsable file counts as not encrypted: enseal and sops could not open it either.
fn is_encrypted(format: Format, bytes: &[u8]) -> bool {
    store_for(format)
        .parse(bytes)
        .map(|p| p.metadata.is_some())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_unparsable_files_are_not_encrypted() {
        assert!(!is_encrypted(Format::Yaml, b"password: hunter2\n"));
        assert!(!is_encrypted(Format::Json, b"{\"password\": "));
        assert!(!is_encrypted(Format::Dotenv, b"PASSWORD=hunter2\n"));
    }

    #[test]
    fn a_file_with_sops_metadata_is_encrypted() {
        let yaml = b"password: ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAA,type:str]\nsops:\n    \
                     lastmodified: \"2024-01-01T00:00:00Z\"\n    mac: x\n    version: 3.11.0\n";
        assert!(is_encrypted(Format::Yaml, yaml));
    }

    #[test]
    fn the_rule_number_is_the_first_matching_rule_counted_from_one() {
        let dir = Path::new("/repo");
        let cfg = Config::parse(
            &dir.join(".sops.yaml"),
            "creation_rules:\n  - path_regex: \\.env$\n    age: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n  - path_regex: secrets/\n    age: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n",
            dir,
        )
        .expect("config parses");
        assert_eq!(
            covering_rule(&cfg, Path::new("/repo/secrets/a.yaml")).ok(),
            Some(Some(2))
        );
        assert_eq!(
            covering_rule(&cfg, Path::new("/repo/prod.env")).ok(),
            Some(Some(1))
        );
        assert_eq!(
            covering_rule(&cfg, Path::new("/repo/README.md")).ok(),
            Some(None)
        );
    }
}
