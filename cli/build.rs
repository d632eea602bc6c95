//! Links the `enseal` binary as a position-dependent executable (`-no-pie`) on Linux with glibc.
//!
//! As a PIE, the 20 MB binary carries ~44,000 relative relocations (vtables, `&str` tables of
//! the AWS SDK, kube, clap, ...) that the dynamic loader applies at every start, writing into
//! ~700 KB of `.data.rel.ro`: 444 page faults for `enseal --version` against 247 without PIE,
//! and 2.2-3.3 ms of CPU against 1.4-1.7 ms (perf stat, 200-300 runs, same objects linked both
//! ways, on the loaded 2-core build machine). enseal is a short-lived command run once per
//! file, so start-up is most of its time on a small file. The cost is that the executable's own code is not at a random address (libraries,
//! stack and heap still are). Only this binary: the libraries, tests and the controller (a
//! long-running server) keep the default.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    // The musl build (the container image) is static and is left as rustc links it.
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
