//! Logging through the host (the plugin's only output; the host rate-limits it per plugin).
//!
//! Functions take a `&str`; the macros format like `format!`:
//!
//! ```ignore
//! openva_plugin_sdk::log::info!("configured: {} regions", regions.len());
//! openva_plugin_sdk::log::warn("odd frame size");
//! ```
//!
//! Outside WebAssembly (native unit tests) lines go to stderr.

pub use crate::bindings::LogLevel as Level;
pub use crate::{debug, error, info, warn};

/// Writes one line at `level`.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// Writes an error line.
pub fn error(message: &str) {
    log(Level::Error, message)
}

/// Writes a warning line.
pub fn warn(message: &str) {
    log(Level::Warn, message)
}

/// Writes an informational line.
pub fn info(message: &str) {
    log(Level::Info, message)
}

/// Writes a debug line.
pub fn debug(message: &str) {
    log(Level::Debug, message)
}

/// Logs a formatted error line through the host.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log::error(&::std::format!($($arg)+)) };
}

/// Logs a formatted warning line through the host.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log::warn(&::std::format!($($arg)+)) };
}

/// Logs a formatted informational line through the host.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log::info(&::std::format!($($arg)+)) };
}

/// Logs a formatted debug line through the host.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log::debug(&::std::format!($($arg)+)) };
}
