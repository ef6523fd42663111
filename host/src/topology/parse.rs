//! From JSON to a validated [`Topology`].

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::catalogue::{self, NodeKind};
use super::config::{self, Stage};
use super::error::{TopologyError, shown};
use super::graph::{self, MAX_NODES};
use super::json::{self, MAX_STRING_LEN};
use super::model::{
    Node, NodeInput, NodeRole, OutputSelector, ParameterDeclaration, SelectorOperator, Topology, TopologyKind,
};
use super::names::validate_name;
use super::params;

/// Parses topology JSON text. A syntax error gives kind `Syntax` with `line:column`; then
/// everything [`parse`] checks.
pub fn parse_str(s: &str) -> Result<Topology, TopologyError> {
    let v: Value = serde_json::from_str(s).map_err(|e| {
        let full = e.to_string();
        // serde_json appends " at line L column C"; say it once, up front.
        let what = full.rsplit_once(" at line ").map_or(full.as_str(), |(w, _)| w);
        TopologyError::syntax(format!("invalid JSON at {}:{}: {what}", e.line(), e.column()))
    })?;
    parse(&v)
}

/// Parses and validates a topology given as the edge envelope
/// `{"@apiVersion"?, "name", "properties": {…}}` (keys case-insensitive, so the cloud
/// `{"Name", "Kind", "Properties"}` form is read too; other envelope keys are ignored).
pub fn parse(v: &Value) -> Result<Topology, TopologyError> {
    let Some(obj) = v.as_object() else {
        return Err(TopologyError::module("a pipeline topology must be a JSON object"));
    };
    if !json::depth_within(v, json::MAX_DOCUMENT_DEPTH) {
        return Err(TopologyError::module(format!(
            "the topology is nested more than {} levels deep",
            json::MAX_DOCUMENT_DEPTH
        )));
    }
    let name = match json::get(obj, "name") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(TopologyError::module("the topology name must be a string")),
        None => return Err(TopologyError::module("the topology has no name")),
    };
    validate_name("topology", &name)?;
    let kind = match json::get(obj, "kind") {
        None | Some(Value::Null) => TopologyKind::Live,
        Some(Value::String(k)) => TopologyKind::parse(k).ok_or_else(|| {
            TopologyError::module(format!("topology '{name}': kind must be Live or Batch, got '{}'", shown(k)))
        })?,
        Some(_) => return Err(TopologyError::module(format!("topology '{name}': kind must be a string"))),
    };
    let props = match json::get(obj, "properties") {
        Some(Value::Object(p)) => p,
        Some(_) => return Err(TopologyError::module(format!("topology '{name}': properties must be an object"))),
        None => return Err(TopologyError::module(format!("topology '{name}' has no properties"))),
    };
    let description = json::opt_scalar(props, "description", || "properties.description".to_owned())?;
    if description.as_ref().is_some_and(|d| d.len() > MAX_STRING_LEN) {
        return Err(TopologyError::module("properties.description is longer than 64 KiB"));
    }
    let parameters = params::parse_declarations(props)?;
    let nodes = parse_nodes(props, &parameters)?;
    graph::check(&nodes, kind)?;
    for n in &nodes {
        config::build(n, &n.body, Stage::Topology)?;
    }
    Ok(Topology {
        name,
        kind,
        description: description.map(|d| d.into_owned()),
        parameters,
        nodes,
        properties: Value::Object(props.clone()),
    })
}

/// Parses `sources`, `processors` and `sinks`, in that order.
fn parse_nodes(props: &Map<String, Value>, parameters: &[ParameterDeclaration]) -> Result<Vec<Node>, TopologyError> {
    let sections = [("sources", NodeRole::Source), ("processors", NodeRole::Processor), ("sinks", NodeRole::Sink)];
    let mut lists = Vec::with_capacity(3);
    for (key, role) in sections {
        lists.push((key, role, json::opt_array(props, key, || format!("properties.{key}"))?));
    }
    let total: usize = lists.iter().map(|(_, _, l)| l.len()).sum();
    if total > MAX_NODES {
        return Err(TopologyError::pipeline(format!(
            "the topology has {total} nodes; at most {MAX_NODES} are allowed"
        )));
    }
    let declared: HashSet<&str> = parameters.iter().map(|p| p.name.as_str()).collect();
    let mut nodes = Vec::with_capacity(total);
    for (key, role, list) in lists {
        for (i, item) in list.iter().enumerate() {
            nodes.push(parse_node(item, role, &format!("properties.{key}[{i}]"), &declared)?);
        }
    }
    Ok(nodes)
}

/// Parses one node and checks what can be checked without the rest of the graph.
fn parse_node(v: &Value, role: NodeRole, at: &str, declared: &HashSet<&str>) -> Result<Node, TopologyError> {
    let Some(obj) = v.as_object() else {
        return Err(TopologyError::module(format!("{at} must be an object")));
    };
    let name = match json::get(obj, "name") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(TopologyError::module(format!("{at}: name must be a string"))),
        None => return Err(TopologyError::module(format!("{at} has no name"))),
    };
    validate_name("node", &name)?;
    let type_raw = match json::get(obj, "@type") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(TopologyError::module(format!("node '{name}': @type must be a string"))),
        None => return Err(TopologyError::module(format!("node '{name}' has no @type"))),
    };
    let bare = catalogue::strip_type_prefix(type_raw)
        .filter(|b| b.len() <= 128 && b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_'))
        .ok_or_else(|| {
            TopologyError::module(format!(
                "node '{name}' has @type '{}'; expected '#Microsoft.VideoAnalyzer.<NodeType>'",
                shown(type_raw)
            ))
        })?;
    let kind = catalogue::lookup(bare);
    let type_name = kind.map_or_else(|| bare.to_owned(), |k| k.canonical.to_owned());
    if let Some(k) = kind
        && k.role != role
    {
        return Err(TopologyError::pipeline(format!(
            "node '{name}' is a {type_name}, which belongs in {}, not in {}",
            section(k.role),
            section(role)
        )));
    }
    let raw_inputs = json::opt_array(obj, "inputs", || format!("node '{name}': inputs"))?;
    match role {
        NodeRole::Source if !raw_inputs.is_empty() => {
            return Err(TopologyError::pipeline(format!("source node '{name}' cannot have inputs")));
        }
        NodeRole::Processor | NodeRole::Sink if raw_inputs.is_empty() => {
            return Err(TopologyError::pipeline(format!(
                "node '{name}' has no inputs; processors and sinks need at least one"
            )));
        }
        _ => {}
    }
    let mut inputs: Vec<NodeInput> = Vec::with_capacity(raw_inputs.len());
    for (j, raw) in raw_inputs.iter().enumerate() {
        let input = parse_input(&name, j, raw)?;
        if inputs.iter().any(|i| i.node_name == input.node_name) {
            return Err(TopologyError::pipeline(format!(
                "node '{name}' lists input '{}' more than once",
                shown(&input.node_name)
            )));
        }
        inputs.push(input);
    }
    if let Some(k) = kind {
        check_required(&name, &k, obj)?;
    }
    check_strings(&name, v, declared)?;
    Ok(Node { name, role, type_name, known: kind.is_some(), inputs, body: v.clone() })
}

/// The JSON list a role is declared in, for messages.
fn section(role: NodeRole) -> &'static str {
    match role {
        NodeRole::Source => "sources",
        NodeRole::Processor => "processors",
        NodeRole::Sink => "sinks",
    }
}

/// Parses one entry of a node's `inputs`.
fn parse_input(node: &str, j: usize, v: &Value) -> Result<NodeInput, TopologyError> {
    let Some(obj) = v.as_object() else {
        return Err(TopologyError::module(format!("node '{node}': inputs[{j}] must be an object")));
    };
    let node_name = match json::get(obj, "nodeName") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(TopologyError::module(format!("node '{node}': inputs[{j}].nodeName must be a string"))),
        None => return Err(TopologyError::module(format!("node '{node}': inputs[{j}] has no nodeName"))),
    };
    let at = || format!("node '{node}': input '{}'", shown(&node_name));
    let raw = json::opt_array(obj, "outputSelectors", || format!("{}: outputSelectors", at()))?;
    let mut output_selectors = Vec::with_capacity(raw.len());
    for (k, s) in raw.iter().enumerate() {
        let Some(sel) = s.as_object() else {
            return Err(TopologyError::module(format!("{}: outputSelectors[{k}] must be an object", at())));
        };
        let field = |key: &str| -> Result<String, TopologyError> {
            match json::opt_scalar(sel, key, || format!("{}: outputSelectors[{k}].{key}", at()))? {
                Some(v) => Ok(v.into_owned()),
                None => Err(TopologyError::module(format!("{}: outputSelectors[{k}] has no {key}", at()))),
            }
        };
        let property = field("property")?;
        if !property.eq_ignore_ascii_case("mediaType") {
            return Err(TopologyError::module(format!(
                "{}: output selector property '{}' is not supported (only mediaType)",
                at(),
                shown(&property)
            )));
        }
        let op = field("operator")?;
        let operator = if op.eq_ignore_ascii_case("is") {
            SelectorOperator::Is
        } else if op.eq_ignore_ascii_case("isNot") {
            SelectorOperator::IsNot
        } else {
            return Err(TopologyError::module(format!(
                "{}: output selector operator '{}' must be 'is' or 'isNot'",
                at(),
                shown(&op)
            )));
        };
        let value = field("value")?.to_ascii_lowercase();
        if !matches!(value.as_str(), "video" | "audio" | "application") {
            return Err(TopologyError::module(format!(
                "{}: output selector value '{}' must be video, audio or application",
                at(),
                shown(&value)
            )));
        }
        output_selectors.push(OutputSelector { property: "mediaType".to_owned(), operator, value });
    }
    Ok(NodeInput { node_name, output_selectors })
}

/// Checks that a catalogue node has the properties AVA requires.
fn check_required(name: &str, kind: &NodeKind, obj: &Map<String, Value>) -> Result<(), TopologyError> {
    for req in kind.required {
        if !req.split('|').any(|path| json::get_path(obj, path).is_some()) {
            let shown_path = req.split('|').next().unwrap_or(req);
            return Err(TopologyError::module(format!(
                "node '{name}' ({}): required property '{shown_path}' is missing",
                kind.canonical
            )));
        }
    }
    Ok(())
}

/// Walks every string of a node: length limit, nesting limit, and every `${…}` must name a
/// declared parameter or a system variable.
fn check_strings(name: &str, body: &Value, declared: &HashSet<&str>) -> Result<(), TopologyError> {
    let too_deep =
        || TopologyError::module(format!("node '{name}' is nested more than {} levels deep", json::MAX_DEPTH));
    json::walk_strings(body, 0, &too_deep, &mut |s| {
        if s.len() > MAX_STRING_LEN {
            return Err(TopologyError::module(format!("node '{name}' has a string value longer than 64 KiB")));
        }
        for r in params::references(s) {
            if !declared.contains(r) && params::system_variable(r).is_none() {
                return Err(TopologyError::pipeline(format!(
                    "node '{name}' references '${{{}}}', which is neither a declared parameter nor a system variable",
                    shown(r)
                )));
            }
        }
        Ok(())
    })
}
