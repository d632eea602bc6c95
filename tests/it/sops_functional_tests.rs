//! sops' own functional-tests crate (sops v3.13.3, `functional-tests/`), run twice in the same
//! way: once with the real sops 3.13.3 as its `./sops`, once with enseal. Every test that passes
//! for sops must pass for enseal, except the ones in [`DELIBERATE`], where enseal differs on
//! purpose (and which must then still fail for enseal: a stale entry fails this test too).
//!
//! The crate is taken unchanged from the Go module proxy, with its own PGP keys: sops' test key
//! file (pgp/sops_functional_tests_key.asc of the same module) is imported into a throwaway
//! GNUPGHOME for each run, as sops' CI does. tests/tools/sops-functional-tests.sh fetches both
//! and builds the tests once (cached).

use enseal_tests::cli::{enseal_bin, Sandbox};
use enseal_tests::gnupg::GnupgHome;
use enseal_tests::openbao::OpenBao;
use enseal_tests::peers;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Functional tests that pin a sops behaviour enseal deliberately does not have, and why.
const DELIBERATE: &[(&str, &str)] = &[(
    "tests::test_yaml_time",
    "sops rewrites the date `a: 2024-01-01` as `a: 2024-01-01T00:00:00Z` when it decrypts; \
     enseal gives the file back as it was written (issue 12: a round trip is byte for byte)",
)];

/// What one run of the crate's libtest binary said about each test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Passed,
    Failed,
    Ignored,
}

/// The prepared crate directory: `ENSEAL_SOPS_FUNCTIONAL_TESTS`, else what the script makes.
pub(crate) fn prepared() -> PathBuf {
    if let Some(dir) = std::env::var_os("ENSEAL_SOPS_FUNCTIONAL_TESTS").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let script = peers::repo_root().join("tests/tools/sops-functional-tests.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed (it needs Go and cargo; or set ENSEAL_SOPS_FUNCTIONAL_TESTS):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()))
    {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}

/// Runs the whole crate with `sops_binary` as its `./sops`, in a fresh sandbox whose GnuPG home
/// holds sops' test keys: the secret keys FBC7B9E2... and D7229043..., and only the public key
/// of B611A2F9... (one test needs a key group nobody here can open). No age identity.
///
/// Each run has its own OpenBao dev server for the two `publish` tests, set up as sops' CI
/// sets up Vault for them (its .sops.yaml destination rules): KV version 2 at `secret/` (the
/// dev server's own) and version 1 at `kv/`, reached through `VAULT_ADDR` and `VAULT_TOKEN`.
fn run_with(prepared: &Path, sops_binary: &Path) -> Run {
    let key_file = prepared.join("sops_functional_tests_key.asc");
    let keys = std::fs::read(&key_file).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (a crate prepared by an older tests/tools/sops-functional-tests.sh, with \
             its PGP keys swapped for age keys? run the script again and point \
             ENSEAL_SOPS_FUNCTIONAL_TESTS at the directory it prints)",
            key_file.display()
        )
    });
    let bao = OpenBao::start();
    bao.bao(&["secrets", "enable", "-version=1", "kv"]);
    let mut sandbox = Sandbox::new();
    for (k, v) in bao.env() {
        sandbox.env(k, v);
    }
    let gnupg = GnupgHome::new(&sandbox.path().parent().expect("sandbox root").join("gnupg"));
    gnupg.import(&keys);
    sandbox
        .env("GNUPGHOME", gnupg.path())
        .set_timeout(Duration::from_secs(600));
    let crate_dir = sandbox.file("functional-tests");
    copy_tree(&prepared.join("crate"), &crate_dir);
    std::os::unix::fs::symlink(sops_binary, crate_dir.join("sops")).expect("link ./sops");
    let test_binary = std::fs::read_to_string(prepared.join("test-binary"))
        .expect("read test-binary")
        .trim()
        .to_string();

    let mut cmd = sandbox.command(&test_binary);
    cmd.current_dir(&crate_dir).args(["--test-threads", "2"]);
    let out = sandbox.output(cmd, None);
    let outcomes: BTreeMap<String, Outcome> = out
        .stdout_str()
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("test ")?;
            let (name, result) = rest.split_once(" ... ")?;
            let outcome = match result.trim() {
                "ok" => Outcome::Passed,
                "FAILED" => Outcome::Failed,
                r if r.starts_with("ignored") => Outcome::Ignored,
                _ => return None,
            };
            Some((name.to_string(), outcome))
        })
        .collect();
    assert!(
        !outcomes.is_empty(),
        "the functional tests printed no results with {}:\n{}\n{}",
        sops_binary.display(),
        out.stdout_str(),
        out.stderr_str()
    );
    Run {
        outcomes,
        stdout: out.stdout_str().to_string(),
    }
}

/// What one run of the crate gave: each test's outcome, and libtest's whole output.
struct Run {
    outcomes: BTreeMap<String, Outcome>,
    stdout: String,
}

impl Run {
    fn get(&self, name: &str) -> Option<&Outcome> {
        self.outcomes.get(name)
    }

    /// The output libtest printed for the failed test `name` (its `---- name stdout ----`
    /// section: the assertion and what the test printed), cut to a readable length.
    fn failure_text(&self, name: &str) -> String {
        let marker = format!("---- {name} stdout ----");
        let Some(at) = self.stdout.find(&marker) else {
            return String::from("(no output section)");
        };
        let section = &self.stdout[at + marker.len()..];
        let end = ["\n---- ", "\nfailures:\n"]
            .iter()
            .filter_map(|m| section.find(m))
            .min()
            .unwrap_or(section.len());
        section[..end].trim().chars().take(1500).collect()
    }
}

/// Writes `text` to this process's standard error directly. libtest captures only the print
/// macros, so this reaches the log at once, next to the test's name: a CI log that keeps only
/// the lines around a failure then still says why, not just that the test failed.
fn report_uncaptured(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(text.as_bytes());
}

#[test]
fn every_functional_test_that_passes_for_sops_passes_for_enseal() {
    let prepared = prepared();
    let sops = run_with(&prepared, &peers::sops_3_13());
    let enseal = run_with(&prepared, &enseal_bin());

    let passed_by_sops: Vec<&String> = sops
        .outcomes
        .iter()
        .filter(|(_, o)| **o == Outcome::Passed)
        .map(|(n, _)| n)
        .collect();
    let deliberate = |name: &str| DELIBERATE.iter().any(|(n, _)| *n == name);
    let failed_by_enseal: Vec<&&String> = passed_by_sops
        .iter()
        .filter(|n| enseal.get(n.as_str()) != Some(&Outcome::Passed) && !deliberate(n))
        .collect();
    let failed_by_sops: Vec<&String> = sops
        .outcomes
        .iter()
        .filter(|(_, o)| **o == Outcome::Failed)
        .map(|(n, _)| n)
        .collect();
    let stale: Vec<&str> = DELIBERATE
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| {
            sops.get(n) != Some(&Outcome::Passed) || enseal.get(n) != Some(&Outcome::Failed)
        })
        .collect();
    let table: String = sops
        .outcomes
        .iter()
        .map(|(name, o)| format!("  {name}: sops {o:?}, enseal {:?}\n", enseal.get(name)))
        .collect();
    if !failed_by_enseal.is_empty() || !failed_by_sops.is_empty() {
        let mut report = format!(
            "\nsops_functional_tests: {} pass for sops 3.13.3, {} fail for it; {} of those it \
             passes fail for enseal\n",
            passed_by_sops.len(),
            failed_by_sops.len(),
            failed_by_enseal.len()
        );
        for name in &failed_by_sops {
            report += &format!("  sops 3.13.3, {name}: {}\n", sops.failure_text(name));
        }
        for name in &failed_by_enseal {
            report += &format!("  enseal, {name}: {}\n", enseal.failure_text(name));
        }
        report_uncaptured(&report);
    }

    // The crate has 41 tests; with its PGP keys and an OpenBao, sops passes all but the ignored
    // ones (KMS, S3). Far fewer means the set-up broke, not sops.
    for publish in [
        "tests::publish_json_file_vault",
        "tests::publish_json_file_vault_version_1",
    ] {
        assert_eq!(
            sops.get(publish),
            Some(&Outcome::Passed),
            "sops 3.13.3 does not pass {publish}: the OpenBao set-up broke\n{table}"
        );
    }
    assert!(
        passed_by_sops.len() >= 37,
        "sops 3.13.3 itself passes only {} functional tests:\n{table}",
        passed_by_sops.len()
    );
    assert!(
        failed_by_enseal.is_empty(),
        "{} of the {} functional tests that pass for sops 3.13.3 fail for enseal: {failed_by_enseal:?}\n{table}",
        failed_by_enseal.len(),
        passed_by_sops.len()
    );
    assert!(
        stale.is_empty(),
        "listed as deliberate differences, but not (sops passes, enseal fails) any more: \
         {stale:?}: remove them from DELIBERATE\n{table}"
    );
    eprintln!(
        "sops functional tests: {} pass for sops 3.13.3; enseal passes all of them but the {} \
         deliberate differences\n{table}",
        passed_by_sops.len(),
        DELIBERATE.len()
    );
}
