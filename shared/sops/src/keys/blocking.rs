//! The runtime that network key services (AWS KMS, Vault transit, ...) run their async clients
//! on, for callers that are synchronous: the CLI, and the controller's reconcilers, which are
//! themselves inside a tokio runtime.

use std::future::Future;

/// A current-thread tokio runtime owned by one key service. Dropping it never blocks, so a
/// client holding one may be dropped anywhere, on an async worker too (a plain tokio runtime
/// panics when dropped there, as it waits for its blocking threads, such as DNS lookups): the
/// controller keeps clients between decryptions and drops them when a key Secret changes.
pub(crate) struct BlockingRuntime(Option<tokio::runtime::Runtime>);

impl BlockingRuntime {
    pub(crate) fn new() -> std::io::Result<BlockingRuntime> {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map(|r| BlockingRuntime(Some(r)))
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("the runtime is there until drop")
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
                s.spawn(|| self.runtime().block_on(future))
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
        } else {
            self.runtime().block_on(future)
        }
    }
}

impl Drop for BlockingRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runtime that has run a DNS lookup (a thread in its blocking pool) is dropped on an
    /// async worker without a panic: the controller drops kept key service clients there.
    #[test]
    fn a_blocking_runtime_may_be_dropped_on_an_async_worker() {
        let blocking = BlockingRuntime::new().unwrap();
        blocking.run(async {
            tokio::net::lookup_host("localhost:80").await.ok();
        });
        let outer = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        outer.block_on(async move { drop(blocking) });
    }
}
