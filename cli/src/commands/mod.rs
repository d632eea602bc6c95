//! One module per subcommand; `run` dispatches and returns the process exit code.

mod check;
mod decrypt;
mod edit;
mod encrypt;
mod exec;
mod keygen;
mod keys;
pub(crate) mod kustomize;
mod modify;
mod seal;
pub(crate) mod sops_secret;

use clap::CommandFactory;

use crate::args::{Cli, Command};
use crate::exit::{self, Failure, Result};

pub fn run(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    match cli.command {
        Command::Encrypt(a) => encrypt::run(g, a.file.as_deref()).map(|_| 0),
        Command::Decrypt(a) => decrypt::run(g, a.file.as_deref(), a.extract.as_deref()).map(|_| 0),
        Command::Edit(a) => {
            let file = a
                .file
                .ok_or_else(|| Failure::new(exit::NO_FILE, "edit needs a file"))?;
            edit::run(g, &file).map(|_| 0)
        }
        Command::Set(a) => modify::set(g, &a).map(|_| 0),
        Command::Unset(a) => modify::unset(g, &a).map(|_| 0),
        Command::Rotate(a) => keys::rotate(g, &a).map(|_| 0),
        Command::Updatekeys(a) => keys::updatekeys(g, &a).map(|_| 0),
        Command::Check(a) => check::run(g, &a),
        Command::Filestatus(a) => decrypt::filestatus(g, a.file.as_deref()).map(|_| 0),
        Command::ExecEnv(a) => exec::exec_env(g, &a),
        Command::ExecFile(a) => exec::exec_file(g, &a),
        Command::Keygen(a) => keygen::run(&a).map(|_| 0),
        Command::Seal(a) => seal::seal(&a).map(|_| 0),
        Command::Unseal(a) => seal::unseal(&a).map(|_| 0),
        Command::Cert(a) => seal::cert(&a).map(|_| 0),
        Command::Kustomize(a) => kustomize::run(&a).map(|_| 0),
        Command::SopsSecret(a) => sops_secret::run(&a, g.output.as_deref()).map(|_| 0),
        Command::Completion { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "enseal", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man => {
            let man = clap_mangen::Man::new(Cli::command());
            man.render(&mut std::io::stdout())
                .map_err(|e| Failure::new(exit::CANNOT_WRITE_OUTPUT, e.to_string()))?;
            Ok(0)
        }
    }
}
