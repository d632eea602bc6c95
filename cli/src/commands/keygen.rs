//! `enseal keygen`: a new age identity, written the way age-keygen writes it (`--pq`: a
//! post-quantum hybrid one, as `age-keygen -pq`).

use std::io::Write;

use enseal_sops::keys::age;

use crate::args::KeygenArgs;
use crate::exit::{self, Failure, Result};

pub fn run(a: &KeygenArgs) -> Result<()> {
    let (identity, recipient) = if a.pq {
        age::generate_pq()
    } else {
        age::generate()
    };
    match &a.output {
        Some(path) => {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(path).map_err(|e| {
                Failure::new(
                    exit::CANNOT_WRITE_OUTPUT,
                    format!(
                        "{}: {e} (enseal never overwrites an identity file)",
                        path.display()
                    ),
                )
            })?;
            f.write_all(identity.as_bytes()).map_err(|e| {
                Failure::new(
                    exit::CANNOT_WRITE_OUTPUT,
                    format!("{}: {e}", path.display()),
                )
            })?;
        }
        None => {
            std::io::stdout()
                .write_all(identity.as_bytes())
                .map_err(|e| Failure::new(exit::CANNOT_WRITE_OUTPUT, e.to_string()))?;
        }
    }
    eprintln!("Public key: {recipient}");
    Ok(())
}
