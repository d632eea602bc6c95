//! The runtime that network key services (AWS KMS, Vault transit, ...) run their async clients
//! on, for callers that are synchronous: the CLI, and the controller's reconcilers, which are
//! themselves inside a tokio runtime.

use std::future::Future;

/// A current-thread tokio runtime owned by one key service.
pub(crate) struct BlockingRuntime(tokio::runtime::Runtime);

impl BlockingRuntime {
    pub(crate) fn new() -> std::io::Result<BlockingRuntime> {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map(BlockingRuntime)
    }

    /// Runs `future` to completion. Called from inside another tokio runtime, it runs on a
    /// helper thread: `block_on` there would panic, and a plain thread has no runtime context,
    /// so the caller's worker is never blocked by a nested `block_on`.
    pub(crate) fn run<F>(&self, future: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| {
                s.spawn(|| self.0.block_on(future))
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
        } else {
            self.0.block_on(future)
        }
    }
}
