//! One module per subcommand; `run` dispatches and returns the process exit code.

mod check;
mod decrypt;
mod edit;
mod encrypt;
mod exec;
mod keygen;
mod keys;
mod kustomize;
mod modify;
mod publish;
mod seal;
mod sops_secret;

use clap::CommandFactory;

use crate::args::{Cli, Invocation};
use crate::context;
use crate::exit::{self, Failure, Result};
use enseal_sops::keys::order::DecryptionOrder;

/// Installs the run's `--decryption-order` for every keyring. updatekeys and groups take the
/// group's own order, as sops passes them no order (its flag is not theirs either).
fn use_decryption_order(invocation: &Invocation) {
    let order = match invocation {
        Invocation::Updatekeys(..) | Invocation::Groups(..) => DecryptionOrder::file_order(),
        Invocation::Encrypt(g, _)
        | Invocation::Decrypt(g, _)
        | Invocation::Edit(g, _)
        | Invocation::Set(g, _)
        | Invocation::Unset(g, _)
        | Invocation::Rotate(g, _)
        | Invocation::Publish(g, _)
        | Invocation::Check(g, _)
        | Invocation::Filestatus(g, _)
        | Invocation::ExecEnv(g, _)
        | Invocation::ExecFile(g, _) => g.decryption_order.clone(),
        _ => return,
    };
    context::set_decryption_order(order);
}

pub fn run(invocation: Invocation) -> Result<i32> {
    use_decryption_order(&invocation);
    match invocation {
        Invocation::Encrypt(g, file) => encrypt::run(&g, file.as_deref()).map(|_| 0),
        Invocation::Decrypt(g, a) => {
            decrypt::run(&g, a.file.as_deref(), a.extract.as_deref()).map(|_| 0)
        }
        Invocation::Edit(g, file) => edit::run(&g, &file).map(|_| 0),
        Invocation::Set(g, a) => modify::set(&g, &a).map(|_| 0),
        Invocation::Unset(g, a) => modify::unset(&g, &a).map(|_| 0),
        Invocation::Rotate(g, a) => keys::rotate(&g, &a).map(|_| 0),
        Invocation::Updatekeys(g, a) => keys::updatekeys(&g, &a).map(|_| 0),
        Invocation::Groups(g, a) => keys::groups(&g, &a).map(|_| 0),
        Invocation::Publish(g, a) => publish::run(&g, &a).map(|_| 0),
        Invocation::Check(g, a) => check::run(&g, &a),
        Invocation::Filestatus(g, file) => decrypt::filestatus(&g, file.as_deref()).map(|_| 0),
        Invocation::ExecEnv(g, a) => exec::exec_env(&g, &a),
        Invocation::ExecFile(g, a) => exec::exec_file(&g, &a),
        Invocation::Keygen(a) => keygen::run(&a).map(|_| 0),
        Invocation::Seal(a) => seal::seal(&a).map(|_| 0),
        Invocation::Unseal(a) => seal::unseal(&a).map(|_| 0),
        Invocation::Cert(a) => seal::cert(&a).map(|_| 0),
        Invocation::Kustomize(a) => kustomize::run(&a).map(|_| 0),
        Invocation::SopsSecret(a, output) => sops_secret::run(&a, output.as_deref()).map(|_| 0),
        Invocation::Completion(shell) => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "enseal", &mut std::io::stdout());
            Ok(0)
        }
        Invocation::Man => {
            let man = clap_mangen::Man::new(Cli::command());
            man.render(&mut std::io::stdout())
                .map_err(|e| Failure::new(exit::CANNOT_WRITE_OUTPUT, e.to_string()))?;
            Ok(0)
        }
    }
}
