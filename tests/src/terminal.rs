//! Running a command on a terminal of its own, to test what enseal and sops ask there (the
//! passphrase of an identity file) the way a user answers it; and with no terminal at all.
//!
//! The terminal is a pseudo-terminal made by util-linux `script` (in every Debian, Essential:
//! bsdutils), which starts the command in a new session with the pty as its controlling
//! terminal, so `/dev/tty` is the pty, and copies our writes to its input. The command's own
//! standard output and error go to files, so the terminal shows only what was written to
//! `/dev/tty`: the prompts.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cli::{Output, Sandbox};

/// What a command run on a terminal left: its own streams and exit code, and what it wrote on
/// the terminal.
#[derive(Debug)]
pub struct TerminalOutput {
    pub output: Output,
    pub terminal: String,
}

/// Runs `program ARGS` in `sb` on a new terminal, answering each prompt of `dialogue` in
/// turn (the answer is typed once the prompt text has appeared, followed by Enter).
/// Panics (with what the terminal showed) when a prompt does not come or the command does not
/// finish within `timeout`.
pub fn run_on_terminal<S: AsRef<OsStr>>(
    sb: &Sandbox,
    program: impl AsRef<OsStr>,
    args: &[S],
    dialogue: &[(&str, &str)],
    timeout: Duration,
) -> TerminalOutput {
    let root = sb.path().parent().expect("sandbox root").to_path_buf();
    let (out_file, err_file) = (root.join("tty-stdout"), root.join("tty-stderr"));
    let mut line = format!("exec {}", quote(program.as_ref()));
    for a in args {
        line.push(' ');
        line.push_str(&quote(a.as_ref()));
    }
    line.push_str(&format!(
        " </dev/null >{} 2>{}",
        quote(out_file.as_os_str()),
        quote(err_file.as_os_str())
    ));
    let mut cmd = sb.command("script");
    // -q: no banner; -e: the command's exit code; -f: flush at once; the log goes nowhere.
    cmd.args(["-qefc", &line, "/dev/null"])
        .env("SHELL", "/bin/sh")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run util-linux script ({e}): install bsdutils"));
    let screen = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let screen = screen.clone();
        let mut pipe = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                screen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let shown = || String::from_utf8_lossy(&screen.lock().unwrap()).into_owned();
    let start = Instant::now();
    let mut keyboard = child.stdin.take().expect("piped stdin");
    let mut seen = 0;
    for (prompt, answer) in dialogue {
        loop {
            let text = shown();
            if let Some(at) = text[seen..].find(prompt) {
                seen += at + prompt.len();
                break;
            }
            if start.elapsed() > timeout || child.try_wait().expect("wait").is_some() {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the prompt {prompt:?} did not come; the terminal showed:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The prompt is written before echo is turned off: typing at once could show the
        // answer on the terminal (harmless, but not what a user sees).
        std::thread::sleep(Duration::from_millis(300));
        keyboard
            .write_all(format!("{answer}\n").as_bytes())
            .expect("type on the terminal");
    }
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "did not finish within {timeout:?}; the terminal showed:\n{}",
                shown()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(keyboard);
    reader.join().expect("terminal reader");
    let read = |p: &Path| std::fs::read(p).unwrap_or_default();
    TerminalOutput {
        output: Output {
            code: status.code(),
            stdout: read(&out_file),
            stderr: read(&err_file),
        },
        terminal: shown(),
    }
}

/// Runs `program ARGS` in `sb` in a new session, so that it has no controlling terminal
/// (`/dev/tty` cannot be opened) even when the tests run from one, and no standard input.
pub fn run_without_terminal<S: AsRef<OsStr>>(
    sb: &Sandbox,
    program: impl AsRef<OsStr>,
    args: &[S],
) -> Output {
    let mut all: Vec<&OsStr> = vec![OsStr::new("-w"), program.as_ref()];
    all.extend(args.iter().map(|a| a.as_ref()));
    // util-linux setsid; -w waits and passes the exit code on.
    sb.run("setsid", all)
}

/// `s` in single quotes for /bin/sh.
fn quote(s: &OsStr) -> String {
    format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"))
}
