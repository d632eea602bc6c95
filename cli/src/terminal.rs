//! Asking the user on the terminal: the passphrase of a passphrase-protected age identity file,
//! as sops asks for it (age/encrypted_keys.go, through age's terminal UI): on /dev/tty, so that
//! it works while standard input and output carry a file, and with echo off.

use enseal_sops::keys::age::{Locked, PassphrasePrompt};
use zeroize::Zeroizing;

/// Asks on /dev/tty. Without a terminal (CI, a pipe from another program, the pre-commit hook)
/// the question fails at once with why, and the error names the file.
pub struct TerminalPrompt;

impl PassphrasePrompt for TerminalPrompt {
    fn passphrase(&self, what: Locked<'_>) -> Result<Zeroizing<String>, String> {
        // sops' words (age/encrypted_keys.go, age/ssh_parse.go), so that scripts that drive
        // sops through a terminal drive enseal too.
        let prompt = match what {
            Locked::IdentityFile(location) => {
                format!("Enter passphrase for identity '{location}': ")
            }
            Locked::SshKey(path) => format!("Enter passphrase for {path:?}: "),
        };
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .map_err(|e| format!("no terminal to ask on (/dev/tty: {e})"))
    }
}
