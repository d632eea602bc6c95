//! The `enseal-check` hook of `.pre-commit-hooks.yaml`, run the way pre-commit runs it: the
//! real `pre-commit` (from the repository's .venv, installed by scripts/test.sh) in a scratch
//! git repository. Fails, never skips, when pre-commit is missing.
//!
//! `enseal-check-build` (`language: rust`) is run the way a consumer runs it: `repo:` points at
//! a git copy of this working tree, and pre-commit itself runs `cargo install` of the root
//! package in release mode.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use enseal_tests::cli::{enseal_bin, Output, Sandbox};
use enseal_tests::peers;

const SECRET: &str = "hunter2-do-not-print";

fn pre_commit() -> PathBuf {
    let path = match std::env::var_os("ENSEAL_PRE_COMMIT_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => peers::repo_root().join(".venv/bin/pre-commit"),
    };
    assert!(
        path.is_file(),
        "pre-commit not found at {} (set ENSEAL_PRE_COMMIT_BIN, or run `bash scripts/test.sh`, \
         which installs it into .venv)",
        path.display()
    );
    path
}

/// The hook as this repository declares it.
struct Hook {
    id: String,
    entry: String,
    language: String,
    pass_filenames: bool,
    has_files_filter: bool,
}

fn declared_hook() -> Hook {
    hook_named("enseal-check")
}

fn hook_named(id: &str) -> Hook {
    use saphyr::{LoadableYamlNode, Yaml};
    let path = peers::repo_root().join(".pre-commit-hooks.yaml");
    let text = std::fs::read_to_string(&path).expect("reading .pre-commit-hooks.yaml");
    let docs = Yaml::load_from_str(&text).expect(".pre-commit-hooks.yaml parses");
    let hooks = docs[0].as_sequence().expect("a list of hooks");
    let hook = hooks
        .iter()
        .find(|h| h.as_mapping_get("id").and_then(Yaml::as_str) == Some(id))
        .unwrap_or_else(|| panic!("a hook with id {id}"));
    let field = |k: &str| hook.as_mapping_get(k);
    Hook {
        id: id.into(),
        entry: field("entry").and_then(Yaml::as_str).expect("entry").into(),
        language: field("language")
            .and_then(Yaml::as_str)
            .expect("language")
            .into(),
        pass_filenames: field("pass_filenames")
            .map(|v| v.as_bool().expect("pass_filenames is a boolean"))
            .unwrap_or(true),
        has_files_filter: field("files").is_some(),
    }
}

fn git(sb: &Sandbox, args: &[&str]) -> Output {
    let out = sb.run("git", args);
    out.assert_success(&format!("git {args:?}"));
    out
}

fn sandbox_repo() -> Sandbox {
    let mut sb = Sandbox::new();
    sb.use_identities(&["a"])
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid");
    git(&sb, &["init", "-q", "-b", "main"]);
    let hook = declared_hook();
    // `repo: local` with the declared entry, `enseal` pointed at the binary under test.
    let entry = hook
        .entry
        .strip_prefix("enseal ")
        .expect("the entry runs enseal");
    sb.write(
        ".pre-commit-config.yaml",
        format!(
            "repos:\n  - repo: local\n    hooks:\n      - id: {}\n        name: enseal check\n        \
             entry: {} {entry}\n        language: system\n        pass_filenames: {}\n",
            hook.id,
            enseal_bin().display(),
            hook.pass_filenames
        ),
    );
    sb.write(
        ".sops.yaml",
        format!(
            "creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n    age: {}\n",
            peers::recipient("a")
        ),
    );
    sb.write("secrets/db.yaml", format!("password: {SECRET}\n"));
    sb.write("README.md", "not a secret\n");
    sb.write("config/app.yaml", "replicas: 2\n");
    sb
}

#[test]
fn the_declared_hook_runs_enseal_check_on_every_file() {
    let hook = declared_hook();
    assert_eq!(hook.entry, "enseal check");
    assert!(hook.pass_filenames);
    assert!(!hook.has_files_filter, "the hook sees every file");
    assert!(
        ["system", "rust"].contains(&hook.language.as_str()),
        "{}",
        hook.language
    );
}

/// `pre-commit run --files` on the sandbox's files: a secret a creation rule covers, files no
/// rule covers, and the config itself.
fn run_on_staged_files(sb: &Sandbox) -> Output {
    let mut args = vec!["run", "--files"];
    args.extend([
        "secrets/db.yaml",
        "README.md",
        "config/app.yaml",
        ".sops.yaml",
    ]);
    sb.run(pre_commit(), &args)
}

#[test]
fn a_plain_file_under_a_creation_rule_fails_until_encrypted() {
    let sb = sandbox_repo();
    git(&sb, &["add", "."]);
    let run = run_on_staged_files;

    let out = run(&sb);
    out.assert_code(1, "pre-commit with a plain secret file");
    let text = out.stdout_str() + &out.stderr_str();
    assert!(
        text.contains("secrets/db.yaml: not encrypted (creation rule 1 of .sops.yaml)"),
        "{text}"
    );
    assert!(!text.contains("README.md:"), "{text}");
    assert!(!text.contains("config/app.yaml:"), "{text}");
    assert!(!text.contains(SECRET), "the secret value leaked: {text}");

    // The same through a real `git commit` with the hook installed.
    sb.run(pre_commit(), ["install"])
        .assert_success("pre-commit install");
    let commit = sb.run("git", ["commit", "-q", "-m", "add secrets"]);
    assert_ne!(commit.code, Some(0), "the commit must be refused");
    let text = commit.stdout_str() + &commit.stderr_str();
    assert!(text.contains("secrets/db.yaml: not encrypted"), "{text}");
    assert!(!text.contains(SECRET), "the secret value leaked: {text}");

    sb.enseal(["encrypt", "-i", "secrets/db.yaml"])
        .assert_success("enseal encrypt -i");
    git(&sb, &["add", "secrets/db.yaml"]);
    run(&sb).assert_success("pre-commit after encrypting");
    git(&sb, &["commit", "-q", "-m", "add encrypted secrets"]);
}

#[test]
fn without_sops_yaml_nothing_is_checked() {
    let sb = sandbox_repo();
    std::fs::remove_file(sb.file(".sops.yaml")).unwrap();
    git(&sb, &["add", "."]);
    let out = sb.run(pre_commit(), ["run", "--files", "secrets/db.yaml"]);
    out.assert_success("pre-commit without .sops.yaml");
}

#[test]
fn the_declared_build_hook_installs_enseal_check_with_cargo() {
    let hook = hook_named("enseal-check-build");
    assert_eq!(hook.language, "rust");
    // The root package's only binary (pre-commit/main.rs), `enseal check` under another name.
    assert_eq!(hook.entry, "enseal-check");
    assert!(hook.pass_filenames);
    assert!(!hook.has_files_filter, "the hook sees every file");
}

/// Runs `git ARGS` in `dir` outside any sandbox (the copy of this repository).
fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .unwrap_or_else(|e| panic!("cannot run git {args:?}: {e}"));
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("git output is UTF-8")
}

/// A git repository holding this working tree as it is now (tracked and new, not ignored,
/// files) in one commit, so the hook pre-commit builds is the code under test, not the last
/// commit. Returns the directory and the commit.
fn hook_repo_copy(into: &Path) -> (PathBuf, String) {
    let root = peers::repo_root();
    let listed = git_in(
        &root,
        &[
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ],
    );
    let copy = into.join("enseal");
    for name in listed.split('\0').filter(|n| !n.is_empty()) {
        let from = root.join(name);
        // Deleted in the working tree but still in the index.
        if !from.is_file() {
            continue;
        }
        let to = copy.join(name);
        std::fs::create_dir_all(to.parent().unwrap()).expect("create directory in the copy");
        std::fs::copy(&from, &to)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
    }
    git_in(&copy, &["init", "-q", "-b", "main"]);
    git_in(&copy, &["add", "-A"]);
    git_in(&copy, &["commit", "-q", "-m", "enseal working tree"]);
    let rev = git_in(&copy, &["rev-parse", "HEAD"]).trim().to_string();
    (copy, rev)
}

/// Where cargo builds the hook (CARGO_TARGET_DIR, which pre-commit passes on to
/// `cargo install`): `${ENSEAL_CACHE:-~/.cache/enseal}/pre-commit-hook-target`, kept across
/// runs like the cluster and tool caches. pre-commit clones the hook repository afresh for
/// every new PRE_COMMIT_HOME and `cargo install --path` builds in the clone's own target/, so
/// without it every run is a cold release build of the whole dependency tree; with it, only
/// enseal's own crates are rebuilt (incrementally, see `LIGHT_RELEASE_PROFILE`).
fn hook_target_dir() -> PathBuf {
    let cache = match std::env::var_os("ENSEAL_CACHE").filter(|p| !p.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/enseal"),
    };
    cache.join("pre-commit-hook-target")
}

/// A lighter release profile for the hook's `cargo install` (pre-commit passes the environment
/// on to cargo). With the repository's profile (thin LTO, 4 codegen units, opt-level 3) the
/// first run took 8.3 min on 2 shared cores and every later one about 4 min, rebuilding
/// enseal's crates from scratch and redoing LTO; with this one, about 4.8 min cold and 35 s
/// warm. The hook's behaviour does not depend on the optimisation level, and the shipped
/// profile is built by `cargo build --release` (bench/, scripts/demo.sh, the Dockerfile).
const LIGHT_RELEASE_PROFILE: [(&str, &str); 4] = [
    ("CARGO_PROFILE_RELEASE_LTO", "off"),
    ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "1"),
    ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16"),
    // The copy pre-commit builds has new paths and mtimes each run, but the same crates:
    // incremental compilation reuses most of the previous run's work for them.
    ("CARGO_PROFILE_RELEASE_INCREMENTAL", "true"),
];

#[test]
fn the_build_hook_from_a_consumer_repository_fails_until_encrypted() {
    let scratch = tempfile::Builder::new()
        .prefix("enseal-hook-repo-")
        .tempdir()
        .expect("create scratch directory");
    let (hook_repo, rev) = hook_repo_copy(scratch.path());

    let mut sb = sandbox_repo();
    // The sandbox's HOME is a scratch one: cargo and rustup must still find the toolchain and
    // the downloaded crates of the machine, and pre-commit its own fresh store.
    let home = PathBuf::from(std::env::var_os("HOME").expect("HOME is set"));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cargo"));
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".rustup"));
    let pre_commit_home = scratch.path().join("pre-commit-home");
    sb.env("CARGO_HOME", &cargo_home)
        .env("RUSTUP_HOME", &rustup_home)
        .env("CARGO_TARGET_DIR", hook_target_dir())
        .env("PRE_COMMIT_HOME", &pre_commit_home)
        // A cold build of the release binary and its dependencies takes minutes.
        .set_timeout(Duration::from_secs(60 * 60));
    for (key, value) in LIGHT_RELEASE_PROFILE {
        sb.env(key, value);
    }
    if let Some(toolchain) = std::env::var_os("RUSTUP_TOOLCHAIN").filter(|t| !t.is_empty()) {
        sb.env("RUSTUP_TOOLCHAIN", toolchain);
    }
    sb.write(
        ".pre-commit-config.yaml",
        format!(
            "repos:\n  - repo: {}\n    rev: {rev}\n    hooks:\n      - id: enseal-check-build\n",
            hook_repo.display()
        ),
    );
    git(&sb, &["add", "."]);
    let run = run_on_staged_files;

    let started = Instant::now();
    let out = run(&sb);
    eprintln!(
        "pre-commit installed and ran enseal-check-build in {:.1?} (CARGO_TARGET_DIR {})",
        started.elapsed(),
        hook_target_dir().display()
    );
    let text = out.stdout_str() + &out.stderr_str();
    assert!(
        text.contains("Installing environment for"),
        "pre-commit must build the hook: {text}"
    );
    out.assert_code(1, "pre-commit with a plain secret file");
    assert!(
        text.contains("secrets/db.yaml: not encrypted (creation rule 1 of .sops.yaml)"),
        "{text}"
    );
    assert!(
        text.contains("enseal: 1 of 1 files that"),
        "enseal check's summary: {text}"
    );
    assert!(!text.contains("README.md:"), "{text}");
    assert!(!text.contains("config/app.yaml:"), "{text}");
    assert!(!text.contains(SECRET), "the secret value leaked: {text}");
    // The binary pre-commit ran is the one cargo installed into the hook's environment.
    let installed: Vec<PathBuf> = std::fs::read_dir(&pre_commit_home)
        .expect("PRE_COMMIT_HOME exists")
        .filter_map(|e| e.ok())
        .flat_map(|e| {
            let envs = std::fs::read_dir(e.path()).into_iter().flatten();
            envs.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin/enseal-check"))
                .filter(|p| p.is_file())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        installed.len(),
        1,
        "one enseal-check installed: {installed:?}"
    );
    let bins: Vec<_> = std::fs::read_dir(installed[0].parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        bins,
        ["enseal-check"],
        "only the hook's binary is installed"
    );

    sb.enseal(["encrypt", "-i", "secrets/db.yaml"])
        .assert_success("enseal encrypt -i");
    git(&sb, &["add", "secrets/db.yaml"]);
    let out = run(&sb);
    out.assert_success("pre-commit after encrypting");
    let text = out.stdout_str() + &out.stderr_str();
    assert!(
        !text.contains("Installing environment for"),
        "the environment is reused: {text}"
    );
}
