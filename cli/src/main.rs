//! `enseal`: the command-line half of enseal (the code is the `enseal_cli` library, src/lib.rs).

/// Every freed block is wiped first: decrypted text passes through buffers nobody else wipes
/// (enseal_wiping_alloc explains why here and not at each buffer).
#[global_allocator]
static ALLOCATOR: enseal_wiping_alloc::Wiping<std::alloc::System> =
    enseal_wiping_alloc::Wiping(std::alloc::System);

fn main() {
    std::process::exit(enseal_cli::main(std::env::args_os()));
}
