//! The `enseal-check` hook of `.pre-commit-hooks.yaml`, run the way pre-commit runs it: the
//! real `pre-commit` (from the repository's .venv, installed by scripts/test.sh) in a scratch
//! git repository. Fails, never skips, when pre-commit is missing.

use std::path::PathBuf;

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
    use saphyr::{LoadableYamlNode, Yaml};
    let path = peers::repo_root().join(".pre-commit-hooks.yaml");
    let text = std::fs::read_to_string(&path).expect("reading .pre-commit-hooks.yaml");
    let docs = Yaml::load_from_str(&text).expect(".pre-commit-hooks.yaml parses");
    let hooks = docs[0].as_sequence().expect("a list of hooks");
    let hook = hooks
        .iter()
        .find(|h| h.as_mapping_get("id").and_then(Yaml::as_str) == Some("enseal-check"))
        .expect("a hook with id enseal-check");
    let field = |k: &str| hook.as_mapping_get(k);
    Hook {
        id: "enseal-check".into(),
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

#[test]
fn a_plain_file_under_a_creation_rule_fails_until_encrypted() {
    let sb = sandbox_repo();
    git(&sb, &["add", "."]);
    let files = [
        "secrets/db.yaml",
        "README.md",
        "config/app.yaml",
        ".sops.yaml",
    ];
    let run = |sb: &Sandbox| {
        let mut args = vec!["run", "--files"];
        args.extend(files);
        sb.run(pre_commit(), &args)
    };

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
