//! Generated YAML streams (tests/src/generate.rs) through enseal and both sops releases, with
//! the checks of [`enseal_tests::differential`]. CI runs a bounded number of seeds
//! (`ENSEAL_GENERATED_CASES`, default 300 per release); a longer run by hand:
//!
//! ```sh
//! ENSEAL_GENERATED_CASES=5000 ENSEAL_GENERATED_FIRST_SEED=100000 \
//!     cargo test -p enseal-tests --test it generated_yaml -- --nocapture
//! ```
//!
//! A failing seed is printed with its document; `ENSEAL_GENERATED_MINIMISE=1` also cuts the
//! document down, line by line, to the smallest one that still fails, to be pinned as a named
//! regression test in `regressions` below.

use enseal_tests::differential;
use enseal_tests::generate::{yaml_stream, Features};
use enseal_tests::peers::SopsRelease;

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a number: {e}")),
        Err(_) => default,
    }
}

/// `ENSEAL_GENERATED_FEATURES=all` generates everything the generator knows (by hand: what is
/// left of #12); by default only what enseal agrees with sops on today (see [`Features`]).
fn features() -> Features {
    match std::env::var("ENSEAL_GENERATED_FEATURES").as_deref() {
        Ok("all") => Features::ALL,
        Ok("agreed") | Err(_) => Features::AGREED,
        Ok(other) => panic!("ENSEAL_GENERATED_FEATURES={other:?}: use all or agreed"),
    }
}

fn run(release: SopsRelease) {
    let cases = env_number("ENSEAL_GENERATED_CASES", 300);
    let features = features();
    let first = env_number("ENSEAL_GENERATED_FIRST_SEED", 0);
    let minimise = std::env::var_os("ENSEAL_GENERATED_MINIMISE").is_some();
    // Writes the documents out instead of checking them (to look at them, or feed other tools).
    if let Some(dir) = std::env::var_os("ENSEAL_GENERATED_DUMP") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("create dump dir");
        for seed in first..first + cases {
            std::fs::write(
                dir.join(format!("{seed}.yaml")),
                yaml_stream(seed, features),
            )
            .expect("dump");
        }
        return;
    }
    let sb = differential::sandbox();
    let mut failures = Vec::new();
    let mut notes = 0;
    for seed in first..first + cases {
        let doc = yaml_stream(seed, features);
        let report =
            differential::check(&sb, &format!("seed {seed}"), "yaml", &doc, &[], &[release]);
        notes += report.notes.len();
        let problems = report.problems;
        if problems.is_empty() {
            continue;
        }
        let mut report = format!(
            "{}\n--- seed {seed} ---\n{}",
            problems.join("\n"),
            String::from_utf8_lossy(&doc)
        );
        if minimise {
            let small = minimised(&sb, &doc, release);
            report.push_str(&format!(
                "\n--- seed {seed}, minimised ---\n{}",
                String::from_utf8_lossy(&small)
            ));
        }
        failures.push(report);
    }
    eprintln!(
        "generated YAML ({features:?}), sops {}: {cases} documents, {} disagree, {notes} notes",
        release.name(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {cases} generated documents disagree with sops {}:\n{}",
        failures.len(),
        release.name(),
        failures.join("\n\n")
    );
}

/// Drops lines of `doc` while it still is YAML and still fails a check.
fn minimised(sb: &enseal_tests::cli::Sandbox, doc: &[u8], release: SopsRelease) -> Vec<u8> {
    let text = String::from_utf8_lossy(doc).into_owned();
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    let fails = |lines: &[String]| {
        let candidate = lines.concat();
        let parses = saphyr_ok(&candidate);
        parses
            && !differential::check(
                sb,
                "minimise",
                "yaml",
                candidate.as_bytes(),
                &[],
                &[release],
            )
            .problems
            .is_empty()
    };
    let mut i = 0;
    while i < lines.len() {
        let mut shorter = lines.clone();
        shorter.remove(i);
        if !shorter.is_empty() && fails(&shorter) {
            lines = shorter;
        } else {
            i += 1;
        }
    }
    lines.concat().into_bytes()
}

fn saphyr_ok(text: &str) -> bool {
    use saphyr::LoadableYamlNode;
    matches!(saphyr::Yaml::load_from_str(text), Ok(docs) if !docs.is_empty() && docs.iter().all(|d| d.is_mapping()))
}

#[test]
fn generated_yaml_agrees_with_sops_3_11() {
    run(SopsRelease::V3_11);
}

#[test]
fn generated_yaml_agrees_with_sops_3_13() {
    run(SopsRelease::V3_13);
}
