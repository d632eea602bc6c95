//! `.sops.yaml` as `encrypt`, `updatekeys` and `enseal check` read it from a repository (whose
//! author may not be the user): decode, pick the creation rule for a few file names (which
//! compiles the rule's `path_regex`), then build what the CLI builds from the chosen rule
//! (crypt rule regex, age recipients).
#![no_main]

use std::path::Path;
use std::str::FromStr;

use enseal_sops::config::Config;
use enseal_sops::format::crypt_rule::CryptRule;
use enseal_sops::keys::age::AgeRecipient;
use libfuzzer_sys::fuzz_target;

/// Names a rule may be asked about: in the config's directory, below it, and elsewhere.
const FILES: [&str; 4] = [
    "/repo/secret.enc.yaml",
    "/repo/dev/app/values.json",
    "/repo/.env",
    "/elsewhere/x.ini",
];

fuzz_target!(|data: &[u8]| {
    // The CLI reads the file with read_to_string: only UTF-8 reaches the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Errors are printed to the user: their messages are built here too.
    let config = match Config::parse(Path::new(".sops.yaml"), text, Path::new("/repo")) {
        Ok(config) => config,
        Err(e) => return drop(e.to_string()),
    };
    // Unknown keys are reported to the user by name: their text must be printable.
    for (key, at) in &config.unknown_keys {
        let _ = format!("{key} {at:?}");
    }
    for file in FILES {
        let rule = match config.rule_for(Path::new(file)) {
            Ok(rule) => rule,
            Err(e) => {
                drop(e.to_string());
                continue;
            }
        };

        if let Some(spec) = &rule.crypt_rule {
            let _ = CryptRule::new(spec.kind, &spec.value);
        }
        for group in &rule.key_groups {
            for recipients in &group.age {
                // plan.rs splits a rule's age entry on commas, as sops does.
                for r in recipients.split(',') {
                    let _ = AgeRecipient::from_str(r.trim());
                }
            }
        }
    }
});
