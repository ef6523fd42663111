//! `test-stamp` version 2 (crate `test-stamp-v2`, the same plugin name): for hot-swap tests,
//! which replace version 1's file with this one and see `version` 2 in the inferences.
//!
//! Version 1's documentation: one `event` inference per frame it is given, carrying the frame's `pts` and the
//! configured `label`, and nothing else (no pixel access). Tests use it to see exactly which
//! frames a node processed (sampling rates) and which version of a plugin ran them.

/// This build's version (the code is `test-stamp`'s).
const VERSION: &str = "2";

include!("../../stamp/src/plugin.rs");
