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
//! document down, line by line, to the smallest one that still fails the same way, to be
//! pinned as a named regression test once fixed. A run by hand takes minutes: in a target
//! directory others build in, point `ENSEAL_BIN` at a copy of the enseal binary, or a rebuild
//! under the run fails every seed after it (and misleads the minimiser).

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
/// A comma-separated list of feature names (`foot_comments,collection_aliases`) adds those to
/// the agreed ones, to find which feature a disagreement needs.
fn features() -> Features {
    match std::env::var("ENSEAL_GENERATED_FEATURES").as_deref() {
        Ok("all") => Features::ALL,
        Ok("agreed") | Err(_) => Features::AGREED,
        Ok(list) => {
            let mut f = Features::AGREED;
            for name in list.split(',') {
                match name.trim() {
                    "foot_comments" => f.foot_comments = true,
                    "odd_comment_indent" => f.odd_comment_indent = true,
                    "collection_aliases" => f.collection_aliases = true,
                    "aliases_in_clear" => f.aliases_in_clear = true,
                    "block_at_end_without_break" => f.block_at_end_without_break = true,
                    other => panic!(
                        "ENSEAL_GENERATED_FEATURES: {other:?} is no feature (all, agreed, or \
                         names of Features' fields, comma-separated)"
                    ),
                }
            }
            f
        }
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
            let small = minimised(&sb, &doc, release, &problems);
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

/// Drops lines of `doc` while it still is YAML and still fails a check the way it failed
/// (`problems`, its problems): a candidate failing only some other way (another disagreement,
/// or a broken set-up such as the enseal binary being rebuilt under the run) would lead the
/// cut-down away from the case.
fn minimised(
    sb: &enseal_tests::cli::Sandbox,
    doc: &[u8],
    release: SopsRelease,
    problems: &[String],
) -> Vec<u8> {
    let text = String::from_utf8_lossy(doc).into_owned();
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    let wanted: Vec<&str> = problems.iter().map(|p| problem_kind(p)).collect();
    let fails = |lines: &[String]| {
        let candidate = lines.concat();
        let parses = saphyr_ok(&candidate);
        parses
            && differential::check(
                sb,
                "minimise",
                "yaml",
                candidate.as_bytes(),
                &[],
                &[release],
            )
            .problems
            .iter()
            .any(|p| wanted.contains(&problem_kind(p)))
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

/// What a problem of [`differential::check`] is about, without the case's name and the details:
/// `seed 7: enseal and sops 3.13 encrypt different values: {...}` is `enseal and sops 3.13
/// encrypt different values`.
fn problem_kind(problem: &str) -> &str {
    let what = problem.split_once(": ").map_or(problem, |(_, what)| what);
    let end = what.find([':', '(']).unwrap_or(what.len());
    what[..end].trim_end()
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

/// Minimised failing seeds, pinned once fixed: each through every check against both sops
/// releases.
mod regressions {
    use super::*;

    fn agrees(doc: &str) {
        let sb = differential::sandbox();
        let report = differential::check(
            &sb,
            "regression",
            "yaml",
            doc.as_bytes(),
            &[],
            &[SopsRelease::V3_11, SopsRelease::V3_13],
        );
        assert!(
            report.problems.is_empty(),
            "{}\n--- document ---\n{doc}",
            report.problems.join("\n")
        );
    }

    /// Seed 214 (and 148): a foot go-yaml gives an anchored mapping's nested sequence after the
    /// sequence ends is in sops' copy of the mapping under the merge key; enseal's copy lacked
    /// it, so it encrypted one comment fewer than sops.
    #[test]
    fn a_merged_copy_holds_the_foot_its_anchored_mapping_got_after_its_end() {
        agrees("a: &x\n  p:\n    -\n      - y\n     # end\nk: 1\nm:\n  <<: *x\n");
    }

    /// Seed 148: the comments of `url6: &a6 # token` and `url9: # token` both head the anchored
    /// mapping in sops' tree, and so both are in its copy under `<<`.
    #[test]
    fn a_merged_copy_holds_the_comments_on_its_anchors_lines() {
        agrees("spec5:\n  url6: &a6 # token\n    url9: # token\nname21:\n  -\n    <<: *a6\n");
    }

    /// Seed 100030: an encrypted `>+` block scalar lost the blank line its value ends with, and
    /// with it go-yaml's count of line breaks before the next comment, which then was a foot
    /// of the sequence in the encrypted file (a CRLF file: enseal could not decrypt its own
    /// comment, nor could sops).
    #[test]
    fn an_encrypted_keep_block_scalar_keeps_the_blank_lines_before_a_comment() {
        agrees("a:\r\n- >+\r\n  x\r\n\r\n# c\r\nb: 1\r\n");
        agrees("a:\n- >+\n  x\n\n# c\n\nb: 1\n");
    }

    /// Seed 100311: `# two` below a flow sequence is its foot when the key `s` already has
    /// one (`# one`, a foot run below the `-` in a CRLF file); sops lists it in the sequence.
    #[test]
    fn a_foot_below_a_flow_collection_whose_key_has_a_foot_stays_in_the_collection() {
        agrees("l:\r\n  -\r\n    # one\r\n    s: [1]\r\n    # two\r\n    r: 1\r\n");
        agrees("l:\n  -\n    # one\n\n    s: {a: 1}\n    # two\n\n    r: 1\n");
    }

    /// #12 (and seed 290): `- # c` above an empty item heads the next key, `b`, in sops' tree;
    /// enseal encrypted it for the sequence, so sops could not decrypt it.
    #[test]
    fn a_head_comment_of_an_empty_item_goes_with_the_next_key() {
        agrees("a:\n  - # c\n    -\nb: 1\n");
    }

    /// The same at the end of the file: go-yaml drops the comment, so sops' tree has none;
    /// enseal keeps it, encrypted where sops reads it in enseal's file (before `sops:`), so
    /// both read each other's files and enseal's round trip is exact.
    #[test]
    fn a_head_comment_of_an_empty_item_at_the_end_is_kept_and_read_by_both() {
        agrees("a:\n  - # c\n    -\n");
    }
}
