//! The enseal-controller binary: flags, logging and the async runtime; everything else is the
//! library's [`enseal_controller::run`].

use std::process::ExitCode;

use clap::Parser;
use enseal_controller::Flags;

/// Every freed block is wiped first: decrypted values pass through the renderer, serde and the
/// HTTP stack's buffers (enseal_wiping_alloc explains why here and not at each buffer).
#[global_allocator]
static ALLOCATOR: enseal_wiping_alloc::Wiping<std::alloc::System> =
    enseal_wiping_alloc::Wiping(std::alloc::System);

fn main() -> ExitCode {
    let flags = Flags::parse();
    init_logging(&flags.log_format, &flags.log_level);
    quiet_panics();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(enseal_controller::run(flags)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "enseal-controller stopped");
            ExitCode::FAILURE
        }
    }
}

/// `level` (--log-level) applies when RUST_LOG is not set.
fn init_logging(format: &str, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Colour only on a terminal: `kubectl logs` and collectors read the escape codes as text.
    // NO_COLOR (no-color.org) turns it off there too.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// A panic is logged with its location only: a panic while decrypting one object is caught and
/// reported on that object, and its message (a parser's, say) could quote decrypted text.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(thread = thread.name().unwrap_or("unnamed"), %location, "panicked");
    }));
}
