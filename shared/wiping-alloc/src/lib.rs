//! The global allocator of enseal's binaries: the system allocator, except that every block is
//! wiped before it is freed.
//!
//! Decrypted text passes through many short-lived buffers: the stores' writers build strings
//! piece by piece, serde and the HTTP stacks copy what they are given, a `Vec` that grows frees
//! its old buffer as it is. Wiping each of those at its source would be a rule every line of
//! every dependency has to keep; wiping in the allocator keeps it for all of them, so that no
//! freed memory still holds a value (a later allocation's uninitialised bytes, a core dump).
//! Live buffers that hold secrets are still wiped where they drop (`Zeroizing`); this covers
//! the copies nobody sees.
//!
//! Cost: one `explicit_bzero` per free, as many bytes as were allocated. Measured on the
//! 20,000-key file of bench/compare.sh it is within the run-to-run noise (README, Speed).
//!
//! `realloc` is left to [`GlobalAlloc`]'s default (allocate, copy, free the old block), so the
//! old block of a growing buffer is wiped too; the system `realloc` could move it without.

use std::alloc::{GlobalAlloc, Layout};

extern "C" {
    /// glibc 2.25+ and musl 1.1.20+: a memset the compiler is told it must not remove, although
    /// the memory is freed right after (a plain one is a dead store it may delete).
    fn explicit_bzero(s: *mut core::ffi::c_void, n: usize);
}

/// `A` with every block wiped before `A` frees it. Register it in a binary with
/// `#[global_allocator] static ALLOCATOR: Wiping<System> = Wiping(System);`.
pub struct Wiping<A>(pub A);

// SAFETY: every call is passed to `A` unchanged; `dealloc` only writes zeros into the block it
// is given, which the caller still owns until `A::dealloc` returns.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Wiping<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.0.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        explicit_bzero(ptr.cast(), layout.size());
        self.0.dealloc(ptr, layout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The system allocator, counting the blocks that reach `dealloc` with a non-zero byte.
    #[derive(Default)]
    struct Inspecting {
        dirty: AtomicUsize,
        freed: AtomicUsize,
    }

    unsafe impl GlobalAlloc for Inspecting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            System.alloc(layout)
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            let block = std::slice::from_raw_parts(ptr, layout.size());
            if block.iter().any(|b| *b != 0) {
                self.dirty.fetch_add(1, Ordering::Relaxed);
            }
            self.freed.fetch_add(1, Ordering::Relaxed);
            System.dealloc(ptr, layout)
        }
    }

    #[test]
    fn freed_and_outgrown_blocks_reach_the_inner_allocator_wiped() {
        let wiping = Wiping(Inspecting::default());
        let layout = Layout::from_size_align(64, 8).unwrap();
        // SAFETY: each block is used within its layout and freed once, with that layout.
        unsafe {
            let ptr = wiping.alloc(layout);
            assert!(!ptr.is_null());
            ptr.write_bytes(0xA5, layout.size());
            // Grown: the default realloc copies into a new block and frees the old one.
            let grown = wiping.realloc(ptr, layout, 4096);
            assert!(!grown.is_null());
            assert_eq!(*grown.add(63), 0xA5);
            grown.write_bytes(0x5A, 4096);
            wiping.dealloc(grown, Layout::from_size_align(4096, 8).unwrap());
        }
        assert_eq!(wiping.0.freed.load(Ordering::Relaxed), 2);
        assert_eq!(wiping.0.dirty.load(Ordering::Relaxed), 0);
    }
}
