//! enseal-controller: decrypts sealed resources (SealedSecret, SOPS-encrypted resources) into
//! native Secrets. Reconciliation lands with the controller issue; until then the binary only
//! reports its version so that packaging and deployment can be wired up early.

fn main() {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        Some("--version") | Some("-V") | None => {
            println!("enseal-controller {}", env!("CARGO_PKG_VERSION"));
        }
        Some(other) => {
            eprintln!(
                "enseal-controller: unknown argument {other:?}; only --version is supported yet"
            );
            std::process::exit(2);
        }
    }
}
