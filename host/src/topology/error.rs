//! The one error type of the topology module, shaped after AVA's error details.
//!
//! AVA answers every rejected topology or live pipeline with an OData error whose detail code
//! says *which* validator refused it (`PipelineValidationError` for graph-level problems,
//! `ModuleValidationError` for a node's or parameter's value). Keeping that split here lets the
//! API layer map an error to AVA's reply without reading the message.

/// Which class of AVA error a rejected topology or parameter set belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The text is not JSON at all (the API replies `InvalidJson`, a 400).
    Syntax,
    /// The graph as a whole is wrong: missing or unknown nodes, cycles, placement rules, limits,
    /// undeclared parameter references (AVA's `PipelineValidationError`).
    PipelineValidation,
    /// One value is wrong: a name, a node property, a parameter value
    /// (AVA's `ModuleValidationError`).
    ModuleValidation,
}

impl ErrorKind {
    /// The OData detail code AVA puts in `error.details[].code` for this kind of error, so the
    /// API can reply with the exact strings AVA clients match on.
    pub fn detail_code(self) -> &'static str {
        match self {
            ErrorKind::Syntax => "InvalidJson",
            ErrorKind::PipelineValidation => "PipelineValidationError",
            ErrorKind::ModuleValidation => "ModuleValidationError",
        }
    }
}

/// Why a topology, a name or a set of parameter values was refused.
///
/// The message is meant for the user as is (it names the node, property or parameter at
/// fault) and never contains secrets: parameter values of secret parameters and URL passwords
/// are not echoed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TopologyError {
    /// The AVA error class.
    pub kind: ErrorKind,
    /// Human-readable explanation.
    pub message: String,
}

impl TopologyError {
    /// A JSON syntax error.
    pub(crate) fn syntax(message: impl Into<String>) -> Self {
        TopologyError { kind: ErrorKind::Syntax, message: message.into() }
    }

    /// A graph-level error.
    pub(crate) fn pipeline(message: impl Into<String>) -> Self {
        TopologyError { kind: ErrorKind::PipelineValidation, message: message.into() }
    }

    /// A value-level error.
    pub(crate) fn module(message: impl Into<String>) -> Self {
        TopologyError { kind: ErrorKind::ModuleValidation, message: message.into() }
    }
}

/// Shows user-supplied text inside an error message: at most 64 characters, control
/// characters replaced, so a hostile name cannot bloat or garble logs and replies.
pub fn shown(s: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = s.chars().take(MAX).map(|c| if c.is_control() { '?' } else { c }).collect();
    if s.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}
