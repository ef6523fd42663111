//! `ObjectTrackingProcessor` and `LineCrossingProcessor`: following an extension's detections
//! between its sampled frames, and counting tracked objects that cross lines
//! (research/extensions.md §3.3–§3.4). This module reads and checks their settings; the
//! algorithms are in `openva-algos` (`tracking`), the runtime in `pipeline::analysis`.

use serde_json::{Map, Value};

use super::super::config::Stage;
use super::super::error::{TopologyError, shown};
use super::super::json;

/// Lines one node may count at most.
pub const MAX_LINES: usize = 64;

/// `accuracy` of an `ObjectTrackingProcessor`: how hard it looks for each object between
/// detections ("higher accuracy leads to higher CPU consumption").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accuracy {
    /// Fastest.
    Low,
    /// The default (AVA documented none).
    Medium,
    /// Most thorough.
    High,
}

/// A point (x, y) in fractions of the frame.
pub type Point = (f64, f64);

/// One line of a `LineCrossingProcessor`, in fractions of the frame (origin top-left).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedLine {
    /// `name`, unique in the node; the event's name.
    pub name: String,
    /// Start point.
    pub start: Point,
    /// End point.
    pub end: Point,
}

pub(in crate::topology) fn build_tracker(
    node: &str,
    obj: &Map<String, Value>,
    stage: Stage,
) -> Result<Accuracy, TopologyError> {
    let what = || format!("node '{node}' (ObjectTrackingProcessor): accuracy");
    let Some(v) = stage.literal(json::opt_scalar(obj, "accuracy", what)?) else { return Ok(Accuracy::Medium) };
    match v.to_ascii_lowercase().as_str() {
        "low" => Ok(Accuracy::Low),
        "medium" => Ok(Accuracy::Medium),
        "high" => Ok(Accuracy::High),
        _ => Err(TopologyError::module(format!("{} '{}' must be low, medium or high", what(), shown(&v)))),
    }
}

pub(in crate::topology) fn build_lines(
    node: &str,
    obj: &Map<String, Value>,
    stage: Stage,
) -> Result<Vec<NamedLine>, TopologyError> {
    let what = |p: &str| format!("node '{node}' (LineCrossingProcessor): {p}");
    let bad = |p: &str, why: &str| TopologyError::module(format!("{} {why}", what(p)));
    let list = json::opt_array(obj, "lines", || what("lines"))?;
    if list.is_empty() || list.len() > MAX_LINES {
        return Err(bad("lines", &format!("must hold 1 to {MAX_LINES} lines")));
    }
    let mut lines = Vec::new();
    for (i, l) in list.iter().enumerate() {
        let at = format!("lines[{i}]");
        let o = l.as_object().ok_or_else(|| bad(&at, "must be an object"))?;
        let name = json::opt_scalar(o, "name", || what(&format!("{at}.name")))?
            .ok_or_else(|| bad(&format!("{at}.name"), "is missing"))?
            .into_owned();
        let raw = json::opt_scalar(o, "line", || what(&format!("{at}.line")))?
            .ok_or_else(|| bad(&format!("{at}.line"), "is missing"))?;
        let Some(text) = stage.literal(Some(raw)) else { continue };
        let (start, end) =
            parse_line(&text).map_err(|why| bad(&format!("{at}.line"), &format!("'{}' {why}", shown(&text))))?;
        let settled = stage == Stage::Pipeline || !name.contains("${");
        if settled && (name.trim().is_empty() || lines.iter().any(|n: &NamedLine| n.name == name)) {
            return Err(bad(&format!("{at}.name"), &format!("'{}' must be a unique, non-empty name", shown(&name))));
        }
        lines.push(NamedLine { name, start, end });
    }
    Ok(lines)
}

/// AVA's `"[[x1,y1],[x2,y2]]"` (a string holding JSON; spaces allowed), each value 0–1, two
/// distinct points.
fn parse_line(text: &str) -> Result<(Point, Point), String> {
    let v: Value = serde_json::from_str(text).map_err(|_| "must be [[x1,y1],[x2,y2]]".to_owned())?;
    let point = |p: &Value| -> Option<(f64, f64)> {
        let a = p.as_array().filter(|a| a.len() == 2)?;
        Some((a[0].as_f64()?, a[1].as_f64()?))
    };
    let pts: Vec<(f64, f64)> = v.as_array().filter(|a| a.len() == 2).into_iter().flatten().filter_map(point).collect();
    let [a, b] = pts[..] else { return Err("must be [[x1,y1],[x2,y2]]".into()) };
    if [a.0, a.1, b.0, b.1].iter().any(|c| !(0.0..=1.0).contains(c)) {
        return Err("must have coordinates from 0 to 1".into());
    }
    if a == b {
        return Err("must have two different points".into());
    }
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines(v: Value) -> Result<Vec<NamedLine>, TopologyError> {
        build_lines("lc", v.as_object().unwrap(), Stage::Pipeline)
    }

    #[test]
    fn lines_as_the_corpus_writes_them_and_bad_ones() {
        let ok = lines(json!({"lines": [{"@type": "#Microsoft.VideoAnalyzer.NamedLineString", "name": "LineCrossing1",
            "line": "[[0.5,0.1], [0.5,0.9]]"}]}))
        .unwrap();
        assert_eq!(ok, vec![NamedLine { name: "LineCrossing1".into(), start: (0.5, 0.1), end: (0.5, 0.9) }]);
        for (bad, word) in [
            (json!({"lines": []}), "1 to 64"),
            (json!({"lines": [{"name": "a", "line": "[[0.5,0.1],[1.5,0.9]]"}]}), "0 to 1"),
            (json!({"lines": [{"name": "a", "line": "[[0.5,0.1]]"}]}), "[[x1,y1],[x2,y2]]"),
            (json!({"lines": [{"name": "a", "line": "[[0.2,0.2],[0.2,0.2]]"}]}), "different"),
            (
                json!({"lines": [{"name": "a", "line": "[[0,0],[1,1]]"}, {"name": "a", "line": "[[0,1],[1,0]]"}]}),
                "unique",
            ),
            (json!({"lines": [{"line": "[[0,0],[1,1]]"}]}), "missing"),
        ] {
            let e = lines(bad).unwrap_err().to_string();
            assert!(e.contains(word) && e.contains("'lc'"), "{e}");
        }
        let acc = |v: Value| build_tracker("t", v.as_object().unwrap(), Stage::Pipeline);
        assert_eq!(acc(json!({})).unwrap(), Accuracy::Medium);
        assert_eq!(acc(json!({"accuracy": "High"})).unwrap(), Accuracy::High);
        assert!(acc(json!({"accuracy": "extreme"})).is_err());
    }
}
