//! Real files from public repositories (tests/corpus/, each listed with its repository, commit
//! and path in SOURCES.tsv) through enseal and both sops releases: the checks of
//! [`enseal_tests::differential`] on every file. Our own fixtures test what we thought of;
//! these test what teams actually keep in Git (Helm values with thousands of comments, CI
//! workflows with anchors, php.ini banners, php-fpm `key[...]` names).
//!
//! A YAML file that looks like a Kubernetes Secret is also checked with
//! `--encrypted-regex '^(data|stringData)$'`, the rule such files are usually kept under.
//!
//! What is not fixed yet is listed, file by file with the reason, in tests/corpus/KNOWN.tsv:
//! a disagreement listed there is reported but does not fail, and a listed one that no longer
//! happens fails the test (so the list only shrinks, and says exactly what is left).

use std::path::PathBuf;

use enseal_tests::differential::{self, Report};
use enseal_tests::peers::{self, SopsRelease};

fn corpus_dir() -> PathBuf {
    peers::repo_root().join("tests/corpus")
}

/// The files of one corpus folder (named for the format the checks read them as), sorted.
fn files(folder: &str) -> Vec<PathBuf> {
    let dir = corpus_dir().join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no files in {}", dir.display());
    files
}

fn check_folder(format: &str, release: SopsRelease) {
    let sb = differential::sandbox();
    let mut report = Report::default();
    let files = files(format);
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let plain = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        report.merge(differential::check(
            &sb,
            &name,
            format,
            &plain,
            &[],
            &[release],
        ));
        let text = String::from_utf8_lossy(&plain);
        if format == "yaml" && text.lines().any(|l| l.trim_end() == "kind: Secret") {
            let rule = ["--encrypted-regex", "^(data|stringData)$"];
            let name = format!("{name} (--encrypted-regex '^(data|stringData)$')");
            report.merge(differential::check(
                &sb,
                &name,
                format,
                &plain,
                &rule,
                &[release],
            ));
        }
    }
    // Files a sops release cannot handle itself are listed, not failed: visible with
    // `--nocapture`, and counted in the closing notes of the issue that tracks them.
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    let failing: std::collections::BTreeSet<&str> = report
        .problems
        .iter()
        .map(|p| p.split(": ").next().unwrap_or(""))
        .collect();
    eprintln!(
        "{format} corpus, sops {}: {} files, {} with disagreements, {} notes",
        release.name(),
        files.len(),
        failing.len(),
        report.notes.len()
    );
    let known = Known::load();
    let (unexpected, tolerated): (Vec<&String>, Vec<&String>) = report
        .problems
        .iter()
        .partition(|p| !known.covers(format, release, p));
    let stale = known.stale(format, release, &report.problems);
    eprintln!(
        "{format} corpus, sops {}: {} known disagreements (tests/corpus/KNOWN.tsv)",
        release.name(),
        tolerated.len()
    );
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "{} of {} {format} files disagree with sops {} ({} disagreements not in KNOWN.tsv):\n{}\n\
         KNOWN.tsv lines that no longer happen (remove them):\n{}",
        failing.len(),
        files.len(),
        release.name(),
        unexpected.len(),
        unexpected
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        stale.join("\n")
    );
}

/// tests/corpus/KNOWN.tsv: `file<TAB>release<TAB>start of the disagreement<TAB>why`, release
/// being `3.11`, `3.13` or `both`.
struct Known {
    entries: Vec<(String, String, String)>,
}

impl Known {
    fn load() -> Known {
        let path = corpus_dir().join("KNOWN.tsv");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let entries = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                assert!(
                    f.len() == 4 && !f[3].trim().is_empty(),
                    "KNOWN.tsv line needs file, release, disagreement and why: {l}"
                );
                (f[0].to_string(), f[1].to_string(), f[2].to_string())
            })
            .collect();
        Known { entries }
    }

    fn applies(entry: &(String, String, String), format: &str, release: SopsRelease) -> bool {
        entry.0.starts_with(&format!("{format}/"))
            && (entry.1 == "both" || entry.1 == release.name())
    }

    fn matches(entry: &(String, String, String), problem: &str) -> bool {
        let name = entry.0.split_once('/').map_or("", |(_, n)| n);
        problem
            .strip_prefix(name)
            .and_then(|rest| rest.split_once(": "))
            .is_some_and(|(_, text)| text.starts_with(entry.2.as_str()))
    }

    fn covers(&self, format: &str, release: SopsRelease, problem: &str) -> bool {
        self.entries
            .iter()
            .any(|e| Self::applies(e, format, release) && Self::matches(e, problem))
    }

    fn stale(&self, format: &str, release: SopsRelease, problems: &[String]) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| Self::applies(e, format, release))
            .filter(|e| !problems.iter().any(|p| Self::matches(e, p)))
            .map(|e| format!("{}\t{}\t{}", e.0, e.1, e.2))
            .collect()
    }
}

macro_rules! corpus_tests {
    ($($test:ident: $format:literal, $release:ident;)*) => {$(
        #[test]
        fn $test() {
            check_folder($format, SopsRelease::$release);
        }
    )*};
}

corpus_tests! {
    yaml_files_agree_with_sops_3_11: "yaml", V3_11;
    yaml_files_agree_with_sops_3_13: "yaml", V3_13;
    json_files_agree_with_sops_3_11: "json", V3_11;
    json_files_agree_with_sops_3_13: "json", V3_13;
    dotenv_files_agree_with_sops_3_11: "dotenv", V3_11;
    dotenv_files_agree_with_sops_3_13: "dotenv", V3_13;
    ini_files_agree_with_sops_3_11: "ini", V3_11;
    ini_files_agree_with_sops_3_13: "ini", V3_13;
}

#[test]
fn every_corpus_file_is_listed_with_its_source() {
    let sources = std::fs::read_to_string(corpus_dir().join("SOURCES.tsv"))
        .expect("tests/corpus/SOURCES.tsv");
    let mut listed: Vec<String> = sources
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let fields: Vec<&str> = l.split('\t').collect();
            assert!(
                fields.len() >= 4,
                "SOURCES.tsv line without repository, commit, path: {l}"
            );
            assert!(
                fields[2].len() == 40 && fields[2].chars().all(|c| c.is_ascii_hexdigit()),
                "SOURCES.tsv: commit of {} is not 40 hex digits",
                fields[0]
            );
            fields[0].to_string()
        })
        .collect();
    let mut present: Vec<String> = ["yaml", "json", "dotenv", "ini"]
        .iter()
        .flat_map(|f| {
            files(f)
                .into_iter()
                .map(move |p| format!("{f}/{}", p.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    listed.sort();
    present.sort();
    assert_eq!(
        listed, present,
        "SOURCES.tsv and the corpus folders list different files"
    );
    assert!(
        present.len() >= 200,
        "the corpus has {} files, fewer than 200",
        present.len()
    );
}
