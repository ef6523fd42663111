//! Parameters: declarations, value checks, `${…}` references and their substitution.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::error::{TopologyError, shown};
use super::json::{self, MAX_STRING_LEN};
use super::model::{ParameterDeclaration, ParameterDefinition, ParameterType, Topology};

/// Most parameters a topology may declare (and a live pipeline may set): a DoS guard.
pub const MAX_PARAMETERS: usize = 1000;

/// `${System.TopologyName}`: the topology's name.
pub const SYS_TOPOLOGY_NAME: &str = "System.TopologyName";
/// `${System.PipelineName}`: the live pipeline's name.
pub const SYS_PIPELINE_NAME: &str = "System.PipelineName";
/// `${System.Runtime.DateTime}`: UTC, `yyyyMMddTHHmmssZ`.
pub const SYS_DATE_TIME: &str = "System.Runtime.DateTime";
/// `${System.Runtime.PreciseDateTime}`: UTC, `yyyyMMddTHHmmss.fffZ`.
pub const SYS_PRECISE_DATE_TIME: &str = "System.Runtime.PreciseDateTime";
/// `${System.DateTime}`: LVA's name for `System.Runtime.DateTime`, still used by a 1.0 draft
/// in the corpus (`evr-motion-assets-files@62a4ea9.json`).
pub const SYS_LEGACY_DATE_TIME: &str = "System.DateTime";

/// The system variables a topology may reference, matched case-insensitively.
const SYSTEM_VARIABLES: [&str; 5] =
    [SYS_TOPOLOGY_NAME, SYS_PIPELINE_NAME, SYS_DATE_TIME, SYS_PRECISE_DATE_TIME, SYS_LEGACY_DATE_TIME];

/// The canonical spelling of a system variable, if `name` is one.
pub fn system_variable(name: &str) -> Option<&'static str> {
    SYSTEM_VARIABLES.into_iter().find(|v| v.eq_ignore_ascii_case(name))
}

/// Whether `name` is one of the per-run date variables, which must not name a video.
pub fn is_date_time_variable(name: &str) -> bool {
    matches!(system_variable(name), Some(SYS_DATE_TIME | SYS_PRECISE_DATE_TIME | SYS_LEGACY_DATE_TIME))
}

/// The names inside every `${…}` of `s`, in order. An unterminated `${` is literal text.
pub fn references(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) => {
                out.push(&after[..j]);
                rest = &after[j + 1..];
            }
            None => break,
        }
    }
    out
}

/// Replaces every `${name}` in `s` for which `lookup` has a value; others stay as written.
/// Substituted text is not scanned again, so a value containing `${…}` stays literal. The
/// result may not grow past [`MAX_STRING_LEN`] (`None` then): many references to a long
/// value would otherwise multiply memory.
pub fn substitute<'v>(s: &str, lookup: &impl Fn(&str) -> Option<&'v str>) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        let Some(j) = after.find('}') else { break };
        out.push_str(&rest[..i]);
        let name = &after[..j];
        match lookup(name) {
            Some(v) => out.push_str(v),
            None => {
                out.push_str("${");
                out.push_str(name);
                out.push('}');
            }
        }
        if out.len() > MAX_STRING_LEN {
            return None;
        }
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    (out.len() <= MAX_STRING_LEN).then_some(out)
}

/// Parses `properties.parameters`.
pub fn parse_declarations(props: &serde_json::Map<String, Value>) -> Result<Vec<ParameterDeclaration>, TopologyError> {
    let list = json::opt_array(props, "parameters", || "properties.parameters".to_owned())?;
    if list.len() > MAX_PARAMETERS {
        return Err(TopologyError::pipeline(format!(
            "the topology declares {} parameters; at most {MAX_PARAMETERS} are allowed",
            list.len()
        )));
    }
    let mut out: Vec<ParameterDeclaration> = Vec::with_capacity(list.len());
    let mut seen = HashSet::new();
    for (i, item) in list.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            return Err(TopologyError::module(format!("properties.parameters[{i}] must be an object")));
        };
        let at = || format!("properties.parameters[{i}]");
        let name = match json::get(obj, "name") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(TopologyError::module(format!("{}.name must be a string", at()))),
            None => return Err(TopologyError::module(format!("{} has no name", at()))),
        };
        check_parameter_name(&name)?;
        if !seen.insert(name.clone()) {
            return Err(TopologyError::module(format!("parameter '{name}' is declared more than once")));
        }
        let what = || format!("parameter '{name}'");
        let kind = match json::opt_scalar(obj, "type", || format!("{}: type", what()))? {
            None => return Err(TopologyError::module(format!("{} has no type", what()))),
            Some(t) => ParameterType::parse(&t).ok_or_else(|| {
                TopologyError::module(format!(
                    "{} has type '{}'; expected String, SecretString, Int, Double or Bool",
                    what(),
                    shown(&t)
                ))
            })?,
        };
        let description = json::opt_scalar(obj, "description", || format!("{}: description", what()))?;
        let default = json::opt_scalar(obj, "default", || format!("{}: default", what()))?;
        for s in [&description, &default].into_iter().flatten() {
            if s.len() > MAX_STRING_LEN {
                return Err(TopologyError::module(format!("{} has a value longer than 64 KiB", what())));
            }
        }
        let decl = ParameterDeclaration {
            name: name.clone(),
            kind,
            description: description.map(|s| s.into_owned()),
            default: default.map(|s| s.into_owned()),
        };
        if let Some(d) = &decl.default {
            check_value(&decl, d, "default")?;
        }
        out.push(decl);
    }
    Ok(out)
}

/// A parameter name must be referencable as `${name}` and must not shadow a system variable.
fn check_parameter_name(name: &str) -> Result<(), TopologyError> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !name.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("System."));
    if ok {
        Ok(())
    } else {
        Err(TopologyError::module(format!(
            "invalid parameter name '{}': use 1-256 letters, digits, '_', '-' or '.', not starting with 'System.'",
            shown(name)
        )))
    }
}

/// Checks one value against its declaration's type. Values of secret parameters are never
/// shown in the message (they are strings and cannot fail the type check anyway).
fn check_value(decl: &ParameterDeclaration, value: &str, what: &str) -> Result<(), TopologyError> {
    if value.len() > MAX_STRING_LEN {
        return Err(TopologyError::module(format!("{what} of parameter '{}' is longer than 64 KiB", decl.name)));
    }
    let (ok, expected) = match decl.kind {
        ParameterType::String | ParameterType::SecretString => (true, ""),
        ParameterType::Int => (value.parse::<i32>().is_ok(), "a 32-bit integer"),
        ParameterType::Double => (value.parse::<f64>().is_ok_and(f64::is_finite), "a finite number"),
        ParameterType::Bool => {
            (value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false"), "'true' or 'false'")
        }
    };
    if ok {
        Ok(())
    } else {
        Err(TopologyError::module(format!(
            "{what} '{}' of parameter '{}' ({}) is not {expected}",
            shown(value),
            decl.name,
            decl.kind
        )))
    }
}

impl Topology {
    /// Checks a live pipeline's parameter values against this topology's declarations: every
    /// value names a declared parameter, at most once; every parameter without default has a
    /// value; values parse as their declared type. Errors are `ModuleValidation` and name the
    /// parameter.
    pub fn check_parameters(&self, values: &[ParameterDefinition]) -> Result<(), TopologyError> {
        if values.len() > MAX_PARAMETERS {
            return Err(TopologyError::module(format!(
                "{} parameter values given; at most {MAX_PARAMETERS} are allowed",
                values.len()
            )));
        }
        let mut seen = HashSet::new();
        for v in values {
            let Some(decl) = self.parameter(&v.name) else {
                return Err(TopologyError::module(format!(
                    "parameter '{}' is not declared by topology '{}'",
                    shown(&v.name),
                    self.name
                )));
            };
            if !seen.insert(v.name.as_str()) {
                return Err(TopologyError::module(format!("parameter '{}' is given more than once", v.name)));
            }
            check_value(decl, &v.value, "value")?;
        }
        if let Some(missing) = self.parameters.iter().find(|p| p.default.is_none() && !seen.contains(p.name.as_str())) {
            return Err(TopologyError::module(format!(
                "parameter '{}' is required by topology '{}' but no value was given",
                missing.name, self.name
            )));
        }
        Ok(())
    }

    /// Whether parameter `param` is declared `SecretString` (names are case-sensitive), so
    /// callers know which values never to echo.
    pub fn is_secret(&self, param: &str) -> bool {
        self.parameter(param).is_some_and(|p| p.kind == ParameterType::SecretString)
    }

    /// The effective value of every declared parameter: the given value, else the default.
    /// Call after [`Topology::check_parameters`].
    pub(super) fn effective_values<'a>(&'a self, values: &'a [ParameterDefinition]) -> HashMap<&'a str, &'a str> {
        let mut map: HashMap<&str, &str> =
            self.parameters.iter().filter_map(|p| Some((p.name.as_str(), p.default.as_deref()?))).collect();
        for v in values {
            map.insert(v.name.as_str(), v.value.as_str());
        }
        map
    }
}
