//! `test-stamp`: one `event` inference per frame it is given, carrying the frame's `pts` and the
//! configured `label`, and nothing else (no pixel access). Tests use it to see exactly which
//! frames a node processed (sampling rates) and which version of a plugin ran them.

/// Which build this is (`test-stamp-v2` is the same plugin, version 2).
const VERSION: &str = "1";

include!("plugin.rs");
