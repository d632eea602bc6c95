//! `enseal`: the command-line half of enseal (the code is the `enseal_cli` library, src/lib.rs).

fn main() {
    std::process::exit(enseal_cli::main(std::env::args_os()));
}
