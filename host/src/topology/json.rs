//! Case-insensitive, string-tolerant access to AVA JSON.
//!
//! The real service matched property names and enum values case-insensitively (samples say
//! `"Properties"`, `"SharedMemorySizeMiB"`, `"transport": "Tcp"`) and wrote almost every
//! scalar as a JSON string so that `${param}` could stand anywhere. These helpers give the
//! rest of the module that same tolerance in one place.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::error::TopologyError;

/// Longest string value accepted anywhere in a topology or parameter value: a cheap guard
/// against requests that would make every later copy expensive.
pub const MAX_STRING_LEN: usize = 64 * 1024;

/// Most bytes of strings a topology's nodes may hold in all after parameter substitution: a
/// body of at most 256 KiB whose every value expands to 64 KiB would otherwise reach
/// gigabytes (issue 15, "substitution bomb").
pub const MAX_SUBSTITUTED_LEN: usize = 1024 * 1024;

/// Deepest JSON nesting walked inside a node; AVA's deepest real bodies are about 6 levels.
pub const MAX_DEPTH: usize = 64;

/// Deepest JSON nesting of a whole topology document: serde_json's own parser limit, so
/// anything read from text passes, while a hand-built deeper value is refused before any
/// recursive copy of it.
pub const MAX_DOCUMENT_DEPTH: usize = 128;

/// Whether `v` nests at most `limit` levels (stops descending as soon as it is exceeded).
pub fn depth_within(v: &Value, limit: usize) -> bool {
    match v {
        Value::Array(a) => limit > 0 && a.iter().all(|x| depth_within(x, limit - 1)),
        Value::Object(o) => limit > 0 && o.values().all(|x| depth_within(x, limit - 1)),
        _ => true,
    }
}

/// Looks up `key` in `obj`: the exact spelling first, then any case-insensitive match.
/// `null` counts as absent, as optional AVA properties are often sent as `null`.
pub fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    let v = match obj.get(key) {
        Some(v) => Some(v),
        None => obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v),
    };
    v.filter(|v| !v.is_null())
}

/// The spelling `obj` uses for `key` (exact first, then any case), to replace or remove that
/// member.
pub fn key_of<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a String> {
    match obj.get_key_value(key) {
        Some((k, _)) => Some(k),
        None => obj.keys().find(|k| k.eq_ignore_ascii_case(key)),
    }
}

/// Removes `key` from `obj` in every spelling.
pub fn remove_all(obj: &mut Map<String, Value>, key: &str) {
    obj.retain(|k, _| !k.eq_ignore_ascii_case(key));
}

/// [`get`] on a value that should be an object (`None` when it is not): the one
/// case-insensitive lookup of AVA bodies outside the topology, too (pipeline bodies, jobs, the
/// topologies folder).
pub fn member<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    get(v.as_object()?, key)
}

/// Follows a dotted path (`endpoint.url`) through nested objects, case-insensitively.
pub fn get_path<'a>(obj: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let first = parts.next()?;
    let mut cur = get(obj, first)?;
    for p in parts {
        cur = get(cur.as_object()?, p)?;
    }
    Some(cur)
}

/// A scalar as text: strings as they are, numbers and booleans as JSON writes them.
/// Objects, arrays and `null` are not scalars.
pub fn scalar(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

/// Reads an optional scalar property; present but not a scalar is a module error naming
/// `what` (e.g. `node 'videoSink' (VideoSink): videoName`).
pub fn opt_scalar<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    what: impl FnOnce() -> String,
) -> Result<Option<Cow<'a, str>>, TopologyError> {
    match get(obj, key) {
        None => Ok(None),
        Some(v) => match scalar(v) {
            Some(s) => Ok(Some(s)),
            None => Err(TopologyError::module(format!("{} must be a string", what()))),
        },
    }
}

/// Reads an optional object property; present but not an object is a module error.
pub fn opt_object<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    what: impl FnOnce() -> String,
) -> Result<Option<&'a Map<String, Value>>, TopologyError> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(TopologyError::module(format!("{} must be an object", what()))),
    }
}

/// Reads an optional array property; present but not an array is a module error.
pub fn opt_array<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    what: impl FnOnce() -> String,
) -> Result<&'a [Value], TopologyError> {
    match get(obj, key) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(TopologyError::module(format!("{} must be an array", what()))),
    }
}

/// Calls `f` on every string value (not keys) inside `v`, refusing nesting deeper than
/// [`MAX_DEPTH`] so a hostile body cannot exhaust the stack.
pub fn walk_strings<E>(
    v: &Value,
    depth: usize,
    too_deep: &impl Fn() -> E,
    f: &mut impl FnMut(&str) -> Result<(), E>,
) -> Result<(), E> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter().try_for_each(|x| walk_strings(x, depth + 1, too_deep, f)),
        Value::Object(o) => o.values().try_for_each(|x| walk_strings(x, depth + 1, too_deep, f)),
        _ => Ok(()),
    }
}

/// Rebuilds `v` with every string value passed through `f` (keys are kept). Depth is bounded
/// by the caller having walked the same value with [`walk_strings`] first.
pub fn map_strings<E>(v: &Value, f: &mut impl FnMut(&str) -> Result<String, E>) -> Result<Value, E> {
    Ok(match v {
        Value::String(s) => Value::String(f(s)?),
        Value::Array(a) => Value::Array(a.iter().map(|x| map_strings(x, f)).collect::<Result<_, _>>()?),
        Value::Object(o) => {
            let mut m = Map::with_capacity(o.len());
            for (k, x) in o {
                m.insert(k.clone(), map_strings(x, f)?);
            }
            Value::Object(m)
        }
        other => other.clone(),
    })
}

/// Whether any string inside `v` still holds a `${…}` reference (depth was bounded when the
/// topology was parsed).
pub fn has_placeholder(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("${"),
        Value::Array(a) => a.iter().any(has_placeholder),
        Value::Object(o) => o.values().any(has_placeholder),
        _ => false,
    }
}
