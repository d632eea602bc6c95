//! What two attackers can do with the `enseal` command line (issue 13): someone who can edit an
//! encrypted file but holds no key (a pull request author), and another local user on the same
//! machine. Each test stages the attack for real against the built binary.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use enseal_tests::cli::{enseal_bin, Sandbox};
use enseal_tests::peers;

const SECRET: &str = "hunter2-db-password";

/// A sandbox holding key a and `app.yaml`, encrypted for it by enseal.
fn with_encrypted_file() -> Sandbox {
    let mut sb = Sandbox::new();
    sb.use_identities(&["a"]);
    sb.write(
        "app.yaml",
        format!("DB_PASSWORD: {SECRET}\nMODE: production\n"),
    );
    sb.enseal(["encrypt", "-i", "--age", &peers::recipient("a"), "app.yaml"])
        .assert_success("encrypt");
    sb
}

/// The pull request author's edit: a line added at the top of the encrypted file.
fn prepend(sb: &Sandbox, name: &str, line: &str) {
    let text = String::from_utf8(sb.read(name)).unwrap();
    sb.write(name, format!("{line}\n{text}"));
}

/// A script named `deploy` in the working directory (the attacker's checkout) that leaves a
/// mark and prints the environment's secret if it ever runs.
fn plant_deploy_script(sb: &Sandbox) {
    let script = sb.write(
        "deploy",
        "#!/bin/sh\ntouch PWNED\necho \"stolen: $DB_PASSWORD\"\n",
    );
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `"PATH=/evil:...": ""`: an empty value is neither encrypted nor in the MAC, so the file still
/// verifies; exported, the key would set PATH. Refused with sops' words, nothing runs.
#[test]
fn exec_env_refuses_a_key_holding_equals() {
    let sb = with_encrypted_file();
    plant_deploy_script(&sb);
    let workdir = sb.path().to_string_lossy().into_owned();
    prepend(
        &sb,
        "app.yaml",
        &format!("\"PATH={workdir}:/usr/bin:/bin\": \"\""),
    );
    sb.enseal(["decrypt", "app.yaml"])
        .assert_success("the attack's premise: the edited file still verifies");
    let out = sb.enseal(["exec-env", "app.yaml", "deploy"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr_str());
    assert!(
        out.stderr_str()
            .contains("cannot use keys with '=' in environment"),
        "{}",
        out.stderr_str()
    );
    assert!(!sb.file("PWNED").exists(), "the attacker's deploy ran");
    assert!(!out.stdout_str().contains(SECRET) && !out.stderr_str().contains(SECRET));
}

/// `PATH: ""` (outside the MAC too) would make `sh` look for `deploy` in the working directory:
/// values the MAC does not cover are not exported, with a warning; the covered ones are.
#[test]
fn exec_env_does_not_export_values_the_mac_does_not_cover() {
    let sb = with_encrypted_file();
    plant_deploy_script(&sb);
    prepend(&sb, "app.yaml", "PATH: \"\"\nLD_PRELOAD: null");
    let out = sb.enseal([
        "exec-env",
        "app.yaml",
        "deploy; printf '%s|%s' \"$DB_PASSWORD\" \"${LD_PRELOAD-unset}\"",
    ]);
    assert!(!sb.file("PWNED").exists(), "the attacker's deploy ran");
    assert!(
        out.stdout_str().ends_with(&format!("{SECRET}|unset")),
        "covered values are exported, the others not: {}",
        out.stdout_str()
    );
    let err = out.stderr_str();
    assert!(
        err.contains("not exporting \"PATH\"") && err.contains("not exporting \"LD_PRELOAD\""),
        "{err}"
    );
}

/// Under `mac_only_encrypted`, values left in the clear are outside the MAC: an edited one is
/// not exported either.
#[test]
fn exec_env_skips_clear_values_under_mac_only_encrypted() {
    let mut sb = Sandbox::new();
    sb.use_identities(&["a"]);
    sb.write(
        "app.yaml",
        format!("DB_PASSWORD: {SECRET}\nMODE: production\n"),
    );
    sb.enseal([
        "encrypt",
        "-i",
        "--mac-only-encrypted",
        "--encrypted-regex",
        "PASSWORD",
        "--age",
        &peers::recipient("a"),
        "app.yaml",
    ])
    .assert_success("encrypt");
    let text = String::from_utf8(sb.read("app.yaml")).unwrap();
    sb.write("app.yaml", text.replace("MODE: production", "MODE: evil"));
    let out = sb.enseal([
        "exec-env",
        "app.yaml",
        "printf '%s|%s' \"$DB_PASSWORD\" \"${MODE-unset}\"",
    ]);
    assert_eq!(
        out.assert_success("exec-env").stdout_str(),
        format!("{SECRET}|unset")
    );
}

/// A file named `x.$(touch PWNED)`: its extension went unquoted into `sh -c` through `{}`.
#[test]
fn exec_file_does_not_run_a_file_name() {
    let sb = with_encrypted_file();
    let hostile = "x.$(touch PWNED)";
    std::fs::copy(sb.file("app.yaml"), sb.file(hostile)).unwrap();
    let out = sb.enseal(["exec-file", "--input-type", "yaml", hostile, "cat {}"]);
    assert!(!sb.file("PWNED").exists(), "the file name ran as a command");
    assert!(out
        .assert_success("exec-file")
        .stdout_str()
        .contains(SECRET));
    for bad in ["../escaped.yaml", "/tmp/escaped.yaml", "..", "a b", "$(id)"] {
        let out = sb.enseal(["exec-file", "--filename", bad, "app.yaml", "cat {}"]);
        assert_eq!(
            out.code,
            Some(1),
            "--filename {bad:?}: {}",
            out.stderr_str()
        );
        assert!(!out.stdout_str().contains(SECRET));
    }
    assert!(!sb.path().parent().unwrap().join("escaped.yaml").exists());
    assert!(!Path::new("/tmp/escaped.yaml").exists());
}

/// The plaintext goes through a FIFO in a 0700 directory by default (as sops does), a 0600
/// file with --no-fifo; the directory is gone when the command ends.
#[test]
fn exec_file_uses_a_fifo_in_a_private_directory_and_removes_it() {
    let sb = with_encrypted_file();
    let probe = "stat -c %a \"$(dirname {})\" > seen; test -p {} && echo fifo >> seen; \
                 dirname {} >> seen; cat {}";
    let out = sb.enseal(["exec-file", "app.yaml", probe]);
    assert!(out
        .assert_success("exec-file")
        .stdout_str()
        .contains(SECRET));
    let seen = String::from_utf8(sb.read("seen")).unwrap();
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines[..2], ["700", "fifo"], "{seen}");
    assert!(!Path::new(lines[2]).exists(), "{} is left behind", lines[2]);

    let probe = "stat -c %a \"$(dirname {})\" {} > seen; cat {}";
    let out = sb.enseal(["exec-file", "--no-fifo", "app.yaml", probe]);
    assert!(out
        .assert_success("exec-file --no-fifo")
        .stdout_str()
        .contains(SECRET));
    assert_eq!(String::from_utf8(sb.read("seen")).unwrap(), "700\n600\n");
}

/// Waits (up to 20 s) until `path` exists.
fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM (or Ctrl-C, SIGHUP) while the command runs: passed on to it, the private directory
/// removed, exit 128 + 15.
#[test]
fn exec_file_and_edit_remove_the_plaintext_when_terminated() {
    let sb = with_encrypted_file();
    let before = sb.read("app.yaml");
    for (args, marker) in [
        (
            vec![
                "exec-file",
                "--no-fifo",
                "app.yaml",
                "dirname {} > where.tmp; mv where.tmp where; sleep 30",
            ],
            "where",
        ),
        (vec!["edit", "app.yaml"], "edit-where"),
    ] {
        let mut cmd = sb.command(enseal_bin());
        cmd.args(&args).env(
            "EDITOR",
            "sh -c 'dirname \"$1\" > edit-where.tmp; mv edit-where.tmp edit-where; sleep 30' sh",
        );
        let mut child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start enseal");
        let marker = sb.file(marker);
        wait_for(&marker);
        let dir = String::from_utf8(std::fs::read(&marker).unwrap()).unwrap();
        let dir = Path::new(dir.trim());
        assert!(
            dir.exists(),
            "{args:?}: the private directory exists while it runs"
        );
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(killed.success());
        let status = child.wait().expect("wait for enseal");
        assert_eq!(status.code(), Some(128 + 15), "{args:?}");
        assert!(!dir.exists(), "{args:?}: {} is left behind", dir.display());
    }
    assert_eq!(sb.read("app.yaml"), before, "edit left the file as it was");
}

/// An editor that saves by writing a new file and renaming it: the new file gets the umask's
/// mode, so the directory must keep other users out.
#[test]
fn edit_works_in_a_directory_only_the_user_can_enter() {
    let sb = with_encrypted_file();
    let mut cmd = sb.command(enseal_bin());
    cmd.args(["edit", "app.yaml"]).env(
        "EDITOR",
        "sh -c 'stat -c %a \"$(dirname \"$1\")\" > dirmode; sed s/production/staging/ \"$1\" > \"$1.new\"; mv \"$1.new\" \"$1\"' sh",
    );
    sb.output(cmd, None).assert_success("edit");
    assert_eq!(String::from_utf8(sb.read("dirmode")).unwrap(), "700\n");
    let out = sb.enseal(["decrypt", "app.yaml"]);
    assert!(out
        .assert_success("decrypt")
        .stdout_str()
        .contains("MODE: staging"));
}

/// `decrypt --output` creates the plaintext with the umask's mode, as sops does: 0600 under
/// umask 077 (enseal assumed 022 and made it 0644).
#[test]
fn decrypt_output_respects_the_umask() {
    let sb = with_encrypted_file();
    let mut cmd = sb.command("sh");
    cmd.arg("-c")
        .arg("umask 077; exec \"$0\" decrypt --output plain.yaml app.yaml")
        .arg(enseal_bin());
    sb.output(cmd, None).assert_success("decrypt --output");
    let mode = std::fs::metadata(sb.file("plain.yaml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// A preloaded `free` that looks into every block the process frees (before libc reuses it) and
/// counts those that still hold `FREE_MARKER`; it reports the count on stderr at exit.
const INSPECTING_FREE_C: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void (*real_free)(void *);
static const char *marker;
static size_t marker_len;
static unsigned long dirty;

__attribute__((constructor)) static void init(void) {
    real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    marker = getenv("FREE_MARKER");
    marker_len = marker ? strlen(marker) : 0;
}

void free(void *p) {
    if (p && marker_len && memmem(p, malloc_usable_size(p), marker, marker_len))
        dirty++;
    real_free(p);
}

__attribute__((destructor)) static void report(void) {
    fprintf(stderr, "\nfreed blocks holding the marker: %lu\n", dirty);
}
"#;

/// Freed memory is wiped: the stores' writers, serde and a growing buffer copy plaintext into
/// blocks that are freed as they are, where a later allocation (or a core dump, read by another
/// user with access to it) finds it. Every block the binary frees is inspected by a preloaded
/// `free` as it is freed; none may still hold a decrypted value, in any format or conversion.
#[test]
fn no_block_the_binary_frees_still_holds_a_decrypted_value() {
    let mut sb = Sandbox::new();
    sb.use_identities(&["a"]);
    let cc = which("cc").expect("a C compiler (cc) is needed to build the inspecting free");
    let source = sb.write("inspect_free.c", INSPECTING_FREE_C);
    let library = sb.file("inspect_free.so");
    let built = std::process::Command::new(cc)
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&library)
        .arg(&source)
        .arg("-ldl")
        .output()
        .expect("running cc");
    assert!(
        built.status.success(),
        "building the inspecting free: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let files = [
        (
            "f.yaml",
            format!("# {SECRET}\nDB_PASSWORD: {SECRET}\nlist:\n  - {SECRET}\nblock: |\n  {SECRET}\n  two\n"),
        ),
        (
            "f.json",
            format!("{{\n    \"DB_PASSWORD\": \"{SECRET}\",\n    \"list\": [\"{SECRET}\"]\n}}\n"),
        ),
        ("f.env", format!("# note\nDB_PASSWORD={SECRET}\n")),
        ("f.ini", format!("[db]\npassword = {SECRET}\n")),
    ];
    for (name, plain) in &files {
        sb.write(name, plain);
        sb.enseal(["encrypt", "-i", "--age", &peers::recipient("a"), name])
            .assert_success("encrypt");
    }
    sb.env("LD_PRELOAD", &library).env("FREE_MARKER", SECRET);
    for (name, plain) in &files {
        for args in [
            vec!["decrypt", name],
            vec!["decrypt", "--output-type", "json", name],
            vec!["decrypt", "--output-type", "yaml", name],
        ] {
            let out = sb.enseal(&args);
            out.assert_success("decrypt");
            if args.len() == 2 {
                assert_eq!(out.stdout_str(), *plain, "{args:?}");
            }
            let stderr = out.stderr_str();
            let dirty = stderr
                .lines()
                .find_map(|l| l.strip_prefix("freed blocks holding the marker: "))
                .unwrap_or_else(|| panic!("the inspecting free did not report: {stderr}"));
            assert_eq!(
                dirty, "0",
                "`enseal {args:?}` freed memory that still held the decrypted value"
            );
        }
    }
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}
