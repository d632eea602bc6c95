//! Helpers shared by the cross-crate tests (locating peers, running the built binaries).
