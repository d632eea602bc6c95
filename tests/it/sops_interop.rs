//! enseal against the real sops 3.11 and age, on every fixture in tests/fixtures/sops/.
//!
//! Each fixture case (one line of `tests/fixtures/sops/cases.tsv`, a sops-made
//! `<name>.enc.<ext>` next to its plaintext `<name>.plain.<ext>`) gets one module of tests:
//!
//! * `enseal_decrypts_sops_file_to_same_data_as_sops`: sops wrote it, enseal reads it.
//! * `sops_decrypts_enseal_file_to_same_data_as_enseal`: enseal wrote it, sops reads it.
//! * `enseal_encrypts_same_values_as_sops`: same crypt rule, same number of `ENC[...]` per type.
//! * `age_cli_opens_every_data_key_stanza`: each age `enc` in enseal's file is a real age file
//!   holding the 32-byte data key (33 bytes: a Shamir share).
//! * `decrypt_of_encrypt_is_byte_identical`: enseal loses nothing, byte for byte.
//!
//! Plus Shamir key-subset tests and tamper tests (swapped ciphertexts, dropped value, edited MAC,
//! edited lastmodified) that expect enseal to fail exactly like sops, with no plaintext output.
//! Data is compared parsed (numbers numerically, maps in document order), because sops
//! re-formats what it writes (indent 4, `1.0` -> `1`, folded scalars -> literal).

use std::collections::BTreeMap;
use std::path::PathBuf;

use enseal_tests::cli::{Output, Sandbox};
use enseal_tests::data::{enc_type_counts_as, parse, secret_strings, Data};
use enseal_tests::peers;
use enseal_tests::peers::SopsRelease;

// ---------------------------------------------------------------------------------------------
// Fixture cases

#[derive(Debug, Clone)]
struct Case {
    name: String,
    format: String,
    /// Test key names the file is encrypted to; empty when key groups come from a config file.
    recipients: Vec<String>,
    flags: Vec<String>,
}

fn cases() -> Vec<Case> {
    let path = peers::sops_fixtures_dir().join("cases.tsv");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert!(fields.len() >= 4, "malformed line in cases.tsv: {line}");
            let recipients = if fields[3] == "groups" {
                Vec::new()
            } else {
                fields[3].split(',').map(str::to_string).collect()
            };
            Case {
                name: fields[0].to_string(),
                format: fields[1].to_string(),
                recipients,
                flags: fields[4..].iter().map(|s| s.to_string()).collect(),
            }
        })
        .collect()
}

fn case(name: &str) -> Case {
    cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name} in tests/fixtures/sops/cases.tsv"))
}

impl Case {
    fn ext(&self) -> &'static str {
        match self.format.as_str() {
            "yaml" => "yaml",
            "json" => "json",
            "dotenv" => "env",
            "ini" => "ini",
            "binary" => "bin",
            other => panic!("unknown format {other} in cases.tsv"),
        }
    }

    fn plain_path(&self) -> PathBuf {
        peers::sops_fixtures_dir().join(format!("{}.plain.{}", self.name, self.ext()))
    }

    fn enc_path(&self) -> PathBuf {
        peers::sops_fixtures_dir().join(format!("{}.enc.{}", self.name, self.ext()))
    }

    fn plaintext(&self) -> Vec<u8> {
        read(&self.plain_path())
    }

    fn is_shamir(&self) -> bool {
        self.recipients.is_empty()
    }

    /// Identities given to the decrypting side: deliberately not always the first recipient,
    /// so that finding the right stanza (or enough Shamir shares) is exercised.
    fn decrypt_identities(&self) -> Vec<&'static str> {
        if self.is_shamir() {
            vec!["a", "c"]
        } else if self.recipients.len() > 1 {
            vec!["b"]
        } else {
            vec!["a"]
        }
    }

    fn type_flags(&self) -> Vec<String> {
        vec![
            "--input-type".into(),
            self.format.clone(),
            "--output-type".into(),
            self.format.clone(),
        ]
    }

    /// `encrypt` arguments giving enseal the same recipients and rule sops was given.
    fn encrypt_args(&self, file: &str) -> Vec<String> {
        let mut args = vec!["encrypt".to_string()];
        args.extend(self.type_flags());
        if !self.recipients.is_empty() {
            let list: Vec<String> = self
                .recipients
                .iter()
                .map(|k| peers::recipient(k))
                .collect();
            args.push("--age".into());
            args.push(list.join(","));
        }
        for flag in &self.flags {
            let in_fixtures = peers::sops_fixtures_dir().join(flag);
            if !flag.starts_with('-') && in_fixtures.is_file() {
                args.push(in_fixtures.display().to_string());
            } else {
                args.push(flag.clone());
            }
        }
        args.push(file.to_string());
        args
    }

    fn decrypt_args(&self, file: &str) -> Vec<String> {
        let mut args = vec!["decrypt".to_string()];
        args.extend(self.type_flags());
        args.push(file.to_string());
        args
    }

    fn sandbox(&self) -> Sandbox {
        let mut sb = Sandbox::new();
        sb.use_identities(&self.decrypt_identities());
        sb
    }

    /// Encrypts the plaintext with enseal in `sb`; returns the encrypted file's name in `sb`.
    fn enseal_encrypt(&self, sb: &Sandbox) -> String {
        let input = format!("input.{}", self.ext());
        sb.write(&input, self.plaintext());
        let out = sb.enseal(self.encrypt_args(&input));
        out.assert_success(&format!("{}: enseal encrypt", self.name));
        let enc = format!("enseal.enc.{}", self.ext());
        sb.write(&enc, &out.stdout);
        enc
    }
}

fn read(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// The age stanzas of an encrypted file

/// (recipient, armored age file) for every age key entry of the `sops` metadata, in any store.
fn age_stanzas(format: &str, encrypted: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(encrypted);
    let mut stanzas = Vec::new();
    match format {
        "yaml" | "json" | "binary" => {
            let format = if format == "yaml" { "yaml" } else { "json" };
            let data = parse(format, encrypted, "encrypted file");
            let doc = match (&data, format) {
                (Data::List(docs), "yaml") => docs.first().cloned().unwrap_or(Data::Null),
                _ => data,
            };
            let Data::Map(top) = doc else {
                panic!("encrypted file is not a mapping")
            };
            let sops = top
                .iter()
                .find(|(k, _)| k == "sops")
                .map(|(_, v)| v.clone())
                .expect("encrypted file has no sops metadata");
            collect_stanzas(&sops, &mut stanzas);
        }
        "dotenv" | "ini" => {
            // Flattened metadata: sops_age__list_0__map_enc=..., or in [sops] age__list_0__map_enc = ...
            let mut flat: BTreeMap<String, String> = BTreeMap::new();
            let mut in_sops_section = false;
            for line in text.lines() {
                let line = line.trim();
                if format == "ini" && line.starts_with('[') {
                    in_sops_section = line == "[sops]";
                    continue;
                }
                let Some((k, v)) = line.split_once('=') else {
                    continue;
                };
                let key = k.trim();
                let key = match format {
                    "dotenv" => match key.strip_prefix("sops_") {
                        Some(k) => k,
                        None => continue,
                    },
                    _ if in_sops_section => key,
                    _ => continue,
                };
                flat.insert(key.to_string(), v.trim().replace("\\n", "\n"));
            }
            for (key, enc) in &flat {
                let Some(prefix) = key.strip_suffix("__map_enc") else {
                    continue;
                };
                // `age__list_0` at the top level, `key_groups__list_1__map_age__list_0` in groups.
                if !matches!(prefix.rsplit("__").nth(1), Some("age" | "map_age")) {
                    continue;
                }
                let recipient = flat
                    .get(&format!("{prefix}__map_recipient"))
                    .unwrap_or_else(|| panic!("{key} has no matching recipient"));
                stanzas.push((recipient.clone(), enc.clone()));
            }
        }
        other => panic!("unknown format {other}"),
    }
    stanzas
}

fn collect_stanzas(data: &Data, out: &mut Vec<(String, String)>) {
    match data {
        Data::Map(entries) => {
            let get = |name: &str| {
                entries.iter().find_map(|(k, v)| match v {
                    Data::Str(s) if k == name => Some(s.clone()),
                    _ => None,
                })
            };
            if let (Some(r), Some(enc)) = (get("recipient"), get("enc")) {
                if r.starts_with("age1") {
                    out.push((r, enc));
                    return;
                }
            }
            entries.iter().for_each(|(_, v)| collect_stanzas(v, out));
        }
        Data::List(items) => items.iter().for_each(|d| collect_stanzas(d, out)),
        _ => {}
    }
}

fn key_name_of(recipient: &str) -> &'static str {
    peers::TEST_KEYS
        .into_iter()
        .find(|k| peers::recipient(k) == recipient)
        .unwrap_or_else(|| panic!("recipient {recipient} is not one of the test keys"))
}

// ---------------------------------------------------------------------------------------------
// Per-case checks

/// The file the given sops release made of the case's plaintext: for 3.11 the committed fixture
/// (pins the format as 3.11 wrote it); for 3.13 sops 3.13.3 encrypts it now with the same flags.
fn sops_made_file(case: &Case, sb: &Sandbox, release: SopsRelease) -> PathBuf {
    match release {
        SopsRelease::V3_11 => case.enc_path(),
        SopsRelease::V3_13 => {
            let input = format!("input.{}", case.ext());
            sb.write(&input, case.plaintext());
            // sops' legacy top-level form, as scripts/make-sops-fixtures.sh makes the 3.11
            // fixtures: the `encrypt` subcommand of sops lacks some of the flags the cases use
            // (`--mac-only-encrypted`, the comment regexes, `--config`).
            let mut args = case.encrypt_args(&input);
            args[0] = "--encrypt".into();
            let out = sb.sops_of(release, args);
            out.assert_success(&format!("{}: sops {} encrypt", case.name, release.name()));
            sb.write(&format!("sops.enc.{}", case.ext()), &out.stdout)
        }
    }
}

fn enseal_decrypts_sops_file(name: &str, release: SopsRelease) {
    let case = case(name);
    let sb = case.sandbox();
    let enc = sops_made_file(&case, &sb, release).display().to_string();
    let by_sops = sb.sops_of(release, case.decrypt_args(&enc));
    by_sops.assert_success(&format!(
        "{name}: sops {} decrypt of its own file",
        release.name()
    ));
    let by_enseal = sb.enseal(case.decrypt_args(&enc));
    by_enseal.assert_success(&format!(
        "{name}: enseal decrypt of the sops {} file",
        release.name()
    ));
    assert_eq!(
        parse(&case.format, &by_enseal.stdout, "enseal decrypt"),
        parse(&case.format, &by_sops.stdout, "sops decrypt"),
        "{name}: enseal and sops {} decrypt the sops-made file to different data",
        release.name()
    );
}

fn sops_decrypts_enseal_file(name: &str, release: SopsRelease) {
    let case = case(name);
    let sb = case.sandbox();
    let enc = case.enseal_encrypt(&sb);
    let by_sops = sb.sops_of(release, case.decrypt_args(&enc));
    by_sops.assert_success(&format!(
        "{name}: sops {} decrypt of enseal's file",
        release.name()
    ));
    let by_enseal = sb.enseal(case.decrypt_args(&enc));
    by_enseal.assert_success(&format!("{name}: enseal decrypt of its own file"));
    let enseal_data = parse(&case.format, &by_enseal.stdout, "enseal decrypt");
    assert_eq!(
        parse(&case.format, &by_sops.stdout, "sops decrypt"),
        enseal_data,
        "{name}: sops {} and enseal decrypt enseal's file to different data",
        release.name()
    );
    assert_eq!(
        enseal_data,
        parse(&case.format, &case.plaintext(), "plaintext"),
        "{name}: enseal's decryption differs from the plaintext it encrypted"
    );
}

fn enseal_encrypts_same_values_as_sops(name: &str, release: SopsRelease) {
    let case = case(name);
    let sb = case.sandbox();
    let enc = case.enseal_encrypt(&sb);
    let by_sops = sops_made_file(&case, &sb, release);
    let counts = |bytes: &[u8]| enc_type_counts_as(bytes, &case.format, release);
    assert_eq!(
        counts(&sb.read(&enc)),
        counts(&read(&by_sops)),
        "{name}: with the same crypt rule, enseal and sops {} encrypt different values \
         (counts of ENC[...] per type)",
        release.name()
    );
}

fn age_cli_opens_every_data_key_stanza(name: &str) {
    let case = case(name);
    let sb = case.sandbox();
    let enc = case.enseal_encrypt(&sb);
    let stanzas = age_stanzas(&case.format, &sb.read(&enc));
    let expected_count = if case.is_shamir() {
        3
    } else {
        case.recipients.len()
    };
    assert_eq!(
        stanzas.len(),
        expected_count,
        "{name}: number of age stanzas in enseal's file"
    );
    // A Shamir share is the 32 y-bytes plus one x-byte.
    let expected_len = if case.is_shamir() { 33 } else { 32 };
    let mut keys = Vec::new();
    for (i, (recipient, armored)) in stanzas.iter().enumerate() {
        assert!(
            armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"),
            "{name}: stanza {i} is not an armored age file: {armored:?}"
        );
        let key = key_name_of(recipient);
        let file = sb.write(&format!("stanza-{i}.age"), armored);
        let identity = peers::identity_file(key);
        let args: [&std::ffi::OsStr; 4] = [
            "-d".as_ref(),
            "-i".as_ref(),
            identity.as_os_str(),
            file.as_os_str(),
        ];
        let out = sb.run(peers::age(), args);
        out.assert_success(&format!("{name}: age -d of stanza {i} for key {key}"));
        assert_eq!(
            out.stdout.len(),
            expected_len,
            "{name}: stanza {i} does not hold a data key of the right size"
        );
        keys.push(out.stdout);
    }
    if !case.is_shamir() {
        assert!(
            keys.windows(2).all(|w| w[0] == w[1]),
            "{name}: the stanzas of different recipients hold different data keys"
        );
    }
}

fn decrypt_of_encrypt_is_byte_identical(name: &str) {
    let case = case(name);
    let sb = case.sandbox();
    let enc = case.enseal_encrypt(&sb);
    let out = sb.enseal(case.decrypt_args(&enc));
    out.assert_success(&format!("{name}: enseal decrypt"));
    let plain = case.plaintext();
    assert!(
        out.stdout == plain,
        "{name}: enseal decrypt(enseal encrypt(f)) != f\n--- f ---\n{}\n--- got ---\n{}",
        String::from_utf8_lossy(&plain),
        out.stdout_str()
    );
}

/// The tests of one fixture case against one sops release.
macro_rules! release_tests {
    ($name:ident, $module:ident, $release:ident) => {
        mod $module {
            use super::SopsRelease::$release as R;
            #[test]
            fn enseal_decrypts_sops_file_to_same_data_as_sops() {
                super::super::enseal_decrypts_sops_file(stringify!($name), R);
            }
            #[test]
            fn sops_decrypts_enseal_file_to_same_data_as_enseal() {
                super::super::sops_decrypts_enseal_file(stringify!($name), R);
            }
            #[test]
            fn enseal_encrypts_same_values_as_sops() {
                super::super::enseal_encrypts_same_values_as_sops(stringify!($name), R);
            }
        }
    };
}

macro_rules! fixture_cases {
    ($($name:ident),* $(,)?) => {
        /// The cases that have tests below; checked against cases.tsv.
        const COVERED: &[&str] = &[$(stringify!($name)),*];
        $(
            mod $name {
                use enseal_tests::peers::SopsRelease;

                release_tests!($name, sops_3_11, V3_11);
                release_tests!($name, sops_3_13, V3_13);
                #[test]
                fn age_cli_opens_every_data_key_stanza() {
                    super::age_cli_opens_every_data_key_stanza(stringify!($name));
                }
                #[test]
                fn decrypt_of_encrypt_is_byte_identical() {
                    super::decrypt_of_encrypt_is_byte_identical(stringify!($name));
                }
            }
        )*
    };
}

fixture_cases!(
    yaml_types,
    yaml_multidoc,
    yaml_multi_recipient,
    yaml_unencrypted_suffix,
    yaml_encrypted_suffix,
    yaml_unencrypted_regex,
    yaml_encrypted_regex,
    yaml_unencrypted_comment_regex,
    yaml_encrypted_comment_regex,
    yaml_mac_only_encrypted,
    yaml_k8s_secret,
    yaml_shamir_2_of_3,
    json_types,
    json_multi_recipient,
    json_encrypted_suffix,
    json_unencrypted_regex,
    json_encrypted_regex,
    json_mac_only_encrypted,
    json_shamir_2_of_3,
    dotenv_basic,
    dotenv_multi_recipient,
    dotenv_encrypted_suffix,
    dotenv_unencrypted_regex,
    dotenv_encrypted_regex,
    dotenv_encrypted_comment_regex,
    dotenv_mac_only_encrypted,
    ini_basic,
    ini_multi_recipient,
    ini_encrypted_suffix,
    ini_unencrypted_regex,
    ini_encrypted_regex,
    ini_unencrypted_comment_regex,
    ini_mac_only_encrypted,
    binary_blob,
    binary_multi_recipient,
    binary_shamir_2_of_3,
);

#[test]
fn every_fixture_case_has_tests() {
    let listed: Vec<String> = cases().into_iter().map(|c| c.name).collect();
    let covered: Vec<String> = COVERED.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        listed, covered,
        "cases.tsv and the fixture_cases! list in sops_interop.rs differ"
    );
    for c in cases() {
        assert!(
            c.plain_path().is_file(),
            "missing {}",
            c.plain_path().display()
        );
        assert!(c.enc_path().is_file(), "missing {}", c.enc_path().display());
    }
}

#[test]
fn sops_fixtures_were_made_by_sops_3_11() {
    for c in cases() {
        let text = String::from_utf8_lossy(&read(&c.enc_path())).into_owned();
        assert!(
            text.contains("3.11.0"),
            "{} does not carry sops version 3.11.0: re-run scripts/make-sops-fixtures.sh",
            c.name
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Shamir: 2 of 3 key groups

const KEY_PAIRS: [[&str; 2]; 3] = [["a", "b"], ["a", "c"], ["b", "c"]];

#[test]
fn enseal_shamir_file_opens_with_sops_given_any_two_of_three_keys() {
    let case = case("yaml_shamir_2_of_3");
    let mut sb = case.sandbox();
    let enc = case.enseal_encrypt(&sb);
    for release in SopsRelease::ALL {
        let what = format!("sops {} decrypt of enseal's 2-of-3 file", release.name());
        decrypts_with_any_two_keys(&mut sb, &case, &enc, &what, |sb, args| {
            sb.sops_of(release, args)
        });
    }
}

/// Decrypts `file` of the Shamir case with each pair of the three keys, by `run`; each must
/// give the plaintext's data.
fn decrypts_with_any_two_keys(
    sb: &mut Sandbox,
    case: &Case,
    file: &str,
    what: &str,
    run: impl Fn(&Sandbox, Vec<String>) -> Output,
) {
    let plain = parse("yaml", &case.plaintext(), "plaintext");
    for pair in KEY_PAIRS {
        sb.use_identities(&pair);
        let out = run(sb, case.decrypt_args(file));
        out.assert_success(&format!("{what} with keys {pair:?}"));
        assert_eq!(
            parse("yaml", &out.stdout, what),
            plain,
            "{what}, keys {pair:?}"
        );
    }
}

#[test]
fn enseal_opens_sops_shamir_file_given_any_two_of_three_keys() {
    let case = case("yaml_shamir_2_of_3");
    let mut sb = case.sandbox();
    for release in SopsRelease::ALL {
        let enc = sops_made_file(&case, &sb, release).display().to_string();
        let what = format!("enseal decrypt of sops {}' 2-of-3 file", release.name());
        decrypts_with_any_two_keys(&mut sb, &case, &enc, &what, |sb, args| sb.enseal(args));
    }
}

#[test]
fn shamir_file_with_one_of_three_keys_fails_like_sops_with_no_output() {
    let case = case("yaml_shamir_2_of_3");
    let mut sb = case.sandbox();
    let enseal_made = case.enseal_encrypt(&sb);
    let sops_made = case.enc_path().display().to_string();
    sb.use_identities(&["b"]);
    for (release, file) in SopsRelease::ALL
        .into_iter()
        .flat_map(|r| [(r, &enseal_made), (r, &sops_made)])
    {
        let by_sops = sb.sops_of(release, case.decrypt_args(file));
        let by_enseal = sb.enseal(case.decrypt_args(file));
        assert_eq!(
            by_sops.code,
            Some(128),
            "sops with one share: {}",
            by_sops.stderr_str()
        );
        assert_eq!(
            by_enseal.code,
            by_sops.code,
            "enseal with one of three keys ({file}): {}",
            by_enseal.stderr_str()
        );
        assert!(
            by_enseal.stdout.is_empty(),
            "enseal printed output without enough shares"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tampering: enseal must refuse exactly like sops, and print nothing secret

#[derive(Debug, Clone, Copy)]
enum Tamper {
    /// Exchange the ciphertexts of two values (each stays a valid ciphertext, for another path).
    SwapCiphertexts,
    /// Delete one encrypted value.
    DropValue,
    /// Change one character of the encrypted MAC.
    EditMac,
    /// Change the year of `lastmodified` (the MAC's AAD).
    EditLastModified,
}

/// The key of a `key: ENC[`, `KEY=ENC[` or `key = ENC[` line, when it is a data value.
fn value_line_key(line: &str) -> Option<&str> {
    let pos = line.find("ENC[AES256_GCM")?;
    let key = line[..pos]
        .trim()
        .trim_end_matches([':', '='])
        .trim()
        .trim_matches('"');
    let is_metadata = key == "mac" || key == "sops_mac";
    let is_plain_key = key.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    (is_plain_key && !is_metadata).then_some(key)
}

fn tamper(text: &str, how: Tamper) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let value_lines: Vec<usize> = (0..lines.len())
        .filter(|&i| value_line_key(&lines[i]).is_some())
        .collect();
    match how {
        Tamper::SwapCiphertexts => {
            let (i, j) = (value_lines[0], value_lines[1]);
            let split = |l: &str| {
                let p = l.find("ENC[").expect("value line");
                (l[..p].to_string(), l[p..].to_string())
            };
            let (pi, ci) = split(&lines[i]);
            let (pj, cj) = split(&lines[j]);
            assert_ne!(ci, cj);
            lines[i] = format!("{pi}{cj}");
            lines[j] = format!("{pj}{ci}");
        }
        Tamper::DropValue => {
            lines.remove(value_lines[0]);
        }
        Tamper::EditMac => {
            let i = lines
                .iter()
                .position(|l| {
                    let t = l.trim_start();
                    (t.starts_with("mac") || t.starts_with("sops_mac")) && t.contains("ENC[")
                })
                .expect("file has a MAC line");
            let marker = "ENC[AES256_GCM,data:";
            let at = lines[i].find(marker).expect("MAC is encrypted") + marker.len();
            let old = lines[i].as_bytes()[at];
            let new = if old == b'A' { "B" } else { "A" };
            lines[i].replace_range(at..at + 1, new);
        }
        Tamper::EditLastModified => {
            let i = lines
                .iter()
                .position(|l| l.contains("lastmodified"))
                .expect("file has lastmodified");
            let after = lines[i].find("lastmodified").expect("found above");
            let year_start = lines[i][after..]
                .find(|c: char| c.is_ascii_digit())
                .map(|p| p + after)
                .expect("lastmodified has a date");
            // The last digit of the year, so the timestamp stays well-formed.
            let at = year_start + 3;
            let d = lines[i].as_bytes()[at] - b'0';
            lines[i].replace_range(at..at + 1, &((d + 1) % 10).to_string());
        }
    }
    let mut out = lines.join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Tampers with a sops-made and an enseal-made file of `case_name` and checks that enseal exits
/// like sops (and with `expected`), prints nothing on stdout and no plaintext on stderr.
fn tampered_file_is_refused_like_sops(case_name: &str, how: Tamper, expected: i32) {
    let case = case(case_name);
    let sb = case.sandbox();
    let enseal_made = String::from_utf8(sb.read(&case.enseal_encrypt(&sb))).expect("UTF-8");
    let mut secrets = Vec::new();
    secret_strings(
        &parse(&case.format, &case.plaintext(), "plaintext"),
        &mut secrets,
    );
    for release in SopsRelease::ALL {
        let sops_made =
            String::from_utf8(read(&sops_made_file(&case, &sb, release))).expect("UTF-8");
        for (producer, original) in [("enseal", &enseal_made), ("sops", &sops_made)] {
            tampered_is_refused_like(
                &case,
                &sb,
                release,
                (producer, original),
                how,
                expected,
                &secrets,
            );
        }
    }
}

/// One tampered file: sops `release` exits `expected`, enseal exits the same, without plaintext.
fn tampered_is_refused_like(
    case: &Case,
    sb: &Sandbox,
    release: SopsRelease,
    (producer, original): (&str, &str),
    how: Tamper,
    expected: i32,
    secrets: &[String],
) {
    let case_name = &case.name;
    let name = format!("tampered-by-{producer}.{}", case.ext());
    sb.write(&name, tamper(original, how));
    let by_sops = sb.sops_of(release, case.decrypt_args(&name));
    let by_enseal = sb.enseal(case.decrypt_args(&name));
    let what = format!(
        "{case_name}, {how:?}, {producer}-made file, sops {}",
        release.name()
    );
    assert_eq!(
        by_sops.code,
        Some(expected),
        "sops on {what}: {}",
        by_sops.stderr_str()
    );
    assert_eq!(
        by_enseal.code,
        by_sops.code,
        "enseal exits differently from sops on {what}: {}",
        by_enseal.stderr_str()
    );
    assert_no_plaintext(&by_enseal, secrets, &what);
}

fn assert_no_plaintext(out: &Output, secrets: &[String], what: &str) {
    assert!(
        out.stdout.is_empty(),
        "enseal printed to stdout on {what}:\n{}",
        out.stdout_str()
    );
    let stderr = out.stderr_str();
    for s in secrets {
        assert!(
            !stderr.contains(s.as_str()),
            "enseal's error on {what} shows plaintext {s:?}"
        );
    }
}

// sops 3.11 exits 25 (error decrypting tree) when a ciphertext does not open under its own path,
// and 51 (MAC mismatch) when the values open but the MAC is wrong or does not open.
const ERROR_DECRYPTING_TREE: i32 = 25;
const MAC_MISMATCH: i32 = 51;

#[test]
fn yaml_swapped_ciphertexts_are_refused_like_sops() {
    tampered_file_is_refused_like_sops(
        "yaml_types",
        Tamper::SwapCiphertexts,
        ERROR_DECRYPTING_TREE,
    );
}

#[test]
fn yaml_dropped_value_is_mac_mismatch() {
    tampered_file_is_refused_like_sops("yaml_types", Tamper::DropValue, MAC_MISMATCH);
}

#[test]
fn yaml_edited_mac_is_mac_mismatch() {
    tampered_file_is_refused_like_sops("yaml_types", Tamper::EditMac, MAC_MISMATCH);
}

#[test]
fn yaml_edited_lastmodified_is_mac_mismatch() {
    tampered_file_is_refused_like_sops("yaml_types", Tamper::EditLastModified, MAC_MISMATCH);
}

#[test]
fn dotenv_swapped_ciphertexts_are_refused_like_sops() {
    tampered_file_is_refused_like_sops(
        "dotenv_basic",
        Tamper::SwapCiphertexts,
        ERROR_DECRYPTING_TREE,
    );
}

#[test]
fn dotenv_dropped_value_is_mac_mismatch() {
    tampered_file_is_refused_like_sops("dotenv_basic", Tamper::DropValue, MAC_MISMATCH);
}

#[test]
fn dotenv_edited_mac_is_mac_mismatch() {
    tampered_file_is_refused_like_sops("dotenv_basic", Tamper::EditMac, MAC_MISMATCH);
}

#[test]
fn dotenv_edited_lastmodified_is_mac_mismatch() {
    tampered_file_is_refused_like_sops("dotenv_basic", Tamper::EditLastModified, MAC_MISMATCH);
}

#[test]
fn ini_swapped_ciphertexts_are_refused_like_sops() {
    tampered_file_is_refused_like_sops("ini_basic", Tamper::SwapCiphertexts, ERROR_DECRYPTING_TREE);
}

#[test]
fn ini_dropped_value_is_mac_mismatch() {
    tampered_file_is_refused_like_sops("ini_basic", Tamper::DropValue, MAC_MISMATCH);
}

#[test]
fn ini_edited_mac_is_mac_mismatch() {
    tampered_file_is_refused_like_sops("ini_basic", Tamper::EditMac, MAC_MISMATCH);
}

#[test]
fn ini_edited_lastmodified_is_mac_mismatch() {
    tampered_file_is_refused_like_sops("ini_basic", Tamper::EditLastModified, MAC_MISMATCH);
}

#[test]
fn mac_only_encrypted_file_still_detects_dropped_encrypted_value() {
    tampered_file_is_refused_like_sops("yaml_mac_only_encrypted", Tamper::DropValue, MAC_MISMATCH);
}

#[test]
fn ignore_mac_decrypts_a_file_whose_mac_was_edited_like_sops() {
    let case = case("yaml_types");
    let sb = case.sandbox();
    let tampered = tamper(
        &String::from_utf8(read(&case.enc_path())).expect("UTF-8"),
        Tamper::EditMac,
    );
    sb.write("tampered.yaml", tampered);
    let mut args = case.decrypt_args("tampered.yaml");
    args.insert(1, "--ignore-mac".into());
    let by_sops = sb.sops(&args);
    by_sops.assert_success("sops --ignore-mac");
    let by_enseal = sb.enseal(&args);
    by_enseal.assert_success("enseal --ignore-mac");
    assert_eq!(
        parse("yaml", &by_enseal.stdout, "enseal"),
        parse("yaml", &by_sops.stdout, "sops")
    );
}

// ---------------------------------------------------------------------------------------------
// #12 class 1: comments go-yaml keeps with the last value before them (a foot of that token,
// whatever their column), each cut down from a real values file of tests/corpus.

/// Runs the differential checks (sops decrypts enseal's file without leaving `ENC[...]`, and
/// the other way round) on a YAML text with both sops releases.
fn yaml_agrees_with_sops(name: &str, yaml: &str) {
    let sb = enseal_tests::differential::sandbox();
    let report = enseal_tests::differential::check(
        &sb,
        name,
        "yaml",
        yaml.as_bytes(),
        &[],
        &SopsRelease::ALL,
    );
    assert!(
        report.problems.is_empty(),
        "{name}:\n{}",
        report.problems.join("\n")
    );
}

/// From kube-prometheus-stack and opentelemetry-kube-stack values.yaml (`kubeDns.service`):
/// the comment is at `service`'s column, but the next key is less indented still, so go-yaml
/// gives it to `skydns`.
#[test]
fn comment_at_a_closed_mappings_column_before_a_further_dedent_stays_with_the_innermost() {
    yaml_agrees_with_sops(
        "kubeDns.service",
        "service:\n  dnsmasq:\n    port: 1\n  skydns:\n    port: 2\n  # selector:\nmon:\n  x: 1\n",
    );
}

/// From aws-load-balancer-controller values.yaml (`certManager.rootCert`): a comment run
/// between blank lines is ended by the dedent of the next key, not by the blank line.
#[test]
fn comment_run_between_blank_lines_before_a_dedent_stays_with_the_innermost() {
    yaml_agrees_with_sops(
        "certManager.rootCert",
        "certManager:\n  rootCert:\n    duration: \"43800h0m0s\"  # 5 years\n\n  \
         # Optional: custom issuer reference\n  # issuerRef:\n\nclusterName:\n",
    );
}

/// With CRLF line breaks go-yaml's scanner sees a line break after every comment line, which
/// ends a less indented comment right after the value as a blank line would: it goes by its
/// column (to `a`), not to the innermost mapping.
#[test]
fn crlf_comment_at_a_closed_mappings_column_before_a_dedent_goes_by_its_column() {
    yaml_agrees_with_sops("crlf dedent", "a:\r\n  b:\r\n    c: 1\r\n  # x\r\nd: 2\r\n");
}
