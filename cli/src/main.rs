//! `enseal`: the command-line half of enseal. Argument parsing, files, editor and exit codes live
//! here; the file format lives in the `enseal-shared` crate.

mod args;
mod commands;
mod context;
mod exit;
mod file_io;
mod plan;
mod seal_args;
mod tree_path;

use clap::Parser;

fn main() {
    // Started as `ksops` or `enseal-kustomize` (kustomize exec functions get no arguments).
    let cli = args::Cli::parse_from(commands::kustomize::plugin_argv(std::env::args_os()));
    match commands::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(failure) => {
            eprintln!("enseal: {}", failure.message);
            std::process::exit(failure.code);
        }
    }
}
