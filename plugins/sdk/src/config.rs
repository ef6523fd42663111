//! The node configuration handed to [`crate::Plugin::configure`], with getters that accept
//! AVA's conventions: numbers and booleans written as strings, keys in any letter case.

use serde_json::{Map, Value};
use std::time::Duration;

/// A node's configuration: a JSON object. Getters look keys up exactly first, then ignoring
/// letter case (`outputMotionRegion` finds `outputmotionregion`); a JSON `null` counts as
/// missing. Every getter returns `Ok(None)` for a missing key and an error naming the key for a
/// value of the wrong shape, ready to be returned from `configure`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    map: Map<String, Value>,
}

fn describe(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 { format!("{}…", s.chars().take(60).collect::<String>()) } else { s }
}

impl Config {
    /// Parses the string the host passes to `configure`. An empty string or `null` is an empty
    /// configuration; anything but an object is an error.
    pub fn parse(json: &str) -> Result<Self, String> {
        if json.trim().is_empty() {
            return Ok(Config::default());
        }
        let value: Value = serde_json::from_str(json).map_err(|e| format!("configuration is not JSON: {e}"))?;
        Config::from_value(value)
    }

    /// Wraps an already parsed configuration (`null` is empty; non-objects are errors).
    pub fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Object(map) => Ok(Config { map }),
            Value::Null => Ok(Config::default()),
            other => Err(format!("configuration must be a JSON object, got {}", describe(&other))),
        }
    }

    /// The raw JSON object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.map
    }

    /// The raw value of `key` (exact match first, then case-insensitive); `None` if missing or null.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let v =
            self.map.get(key).or_else(|| self.map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v));
        v.filter(|v| !v.is_null())
    }

    /// A string value; numbers and booleans are accepted and rendered as text.
    pub fn string(&self, key: &str) -> Result<Option<String>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
            Some(v) => Err(format!("{key}: expected a string, got {}", describe(v))),
        }
    }

    /// A whole number ≥ 0, as a JSON number or a decimal string (`"1280"`).
    pub fn u32(&self, key: &str) -> Result<Option<u32>, String> {
        let bad = |v: &Value| format!("{key}: expected a whole number, got {}", describe(v));
        match self.get(key) {
            None => Ok(None),
            Some(v @ Value::Number(n)) => {
                let n = n.as_u64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64));
                n.and_then(|n| u32::try_from(n).ok()).map(Some).ok_or_else(|| bad(v))
            }
            Some(v @ Value::String(s)) => s.trim().parse::<u32>().map(Some).map_err(|_| bad(v)),
            Some(v) => Err(bad(v)),
        }
    }

    /// A whole number that must lie in `range`; the error names the key and the range.
    pub fn u32_in(&self, key: &str, range: std::ops::RangeInclusive<u32>) -> Result<Option<u32>, String> {
        match self.u32(key)? {
            Some(n) if !range.contains(&n) => {
                Err(format!("{key}: must be {}..={}, got {n}", range.start(), range.end()))
            }
            n => Ok(n),
        }
    }

    /// A finite number, as a JSON number or a decimal string (`"0.5"`).
    pub fn f32(&self, key: &str) -> Result<Option<f32>, String> {
        let bad = |v: &Value| format!("{key}: expected a number, got {}", describe(v));
        let n = match self.get(key) {
            None => return Ok(None),
            Some(v @ Value::Number(n)) => n.as_f64().ok_or_else(|| bad(v))? as f32,
            Some(v @ Value::String(s)) => s.trim().parse::<f32>().map_err(|_| bad(v))?,
            Some(v) => return Err(bad(v)),
        };
        if !n.is_finite() {
            return Err(format!("{key}: expected a finite number, got {n}"));
        }
        Ok(Some(n))
    }

    /// A boolean: `true`/`false` as JSON or as a string in any case.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(format!("{key}: expected true or false, got {}", describe(v))),
        }
    }

    /// An ISO 8601 duration string such as `"PT1S"`, `"PT0.5S"` or `"PT1M30S"` (AVA's time spans).
    pub fn duration(&self, key: &str) -> Result<Option<Duration>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => parse_iso8601_duration(s).map(Some).map_err(|e| format!("{key}: {e}")),
            Some(v) => Err(format!("{key}: expected an ISO 8601 duration such as \"PT1S\", got {}", describe(v))),
        }
    }
}

/// Parses an ISO 8601 duration: `P[nW][nD][T[nH][nM][nS]]`, fractions allowed (`PT0.5S`),
/// letters in any case. Years and months are refused (their length varies).
pub fn parse_iso8601_duration(s: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("{why} in ISO 8601 duration {s:?} (expected e.g. \"PT1S\")");
    let t = s.trim().to_ascii_uppercase();
    let rest = t.strip_prefix('P').ok_or_else(|| bad("missing leading P"))?;
    let (mut total, mut in_time, mut any, mut num) = (Duration::ZERO, false, false, String::new());
    for c in rest.chars() {
        match c {
            '0'..='9' | '.' | ',' => num.push(if c == ',' { '.' } else { c }),
            'T' if !in_time && num.is_empty() => in_time = true,
            _ => {
                let unit_secs: u64 = match (c, in_time) {
                    ('W', false) => 7 * 86_400,
                    ('D', false) => 86_400,
                    ('H', true) => 3_600,
                    ('M', true) => 60,
                    ('S', true) => 1,
                    ('Y' | 'M', false) => return Err(bad("years and months are not supported")),
                    _ => return Err(bad(&format!("unexpected {c:?}"))),
                };
                if num.is_empty() {
                    return Err(bad(&format!("no number before {c:?}")));
                }
                let value: f64 = num.parse().map_err(|_| bad(&format!("bad number {num:?}")))?;
                let part = Duration::try_from_secs_f64(value * unit_secs as f64).map_err(|_| bad("out of range"))?;
                total = total.checked_add(part).ok_or_else(|| bad("out of range"))?;
                num.clear();
                any = true;
            }
        }
    }
    if !num.is_empty() {
        return Err(bad("number without a unit"));
    }
    if !any {
        return Err(bad("no value"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> Config {
        Config::parse(json).unwrap()
    }

    #[test]
    fn parse_shapes() {
        assert_eq!(cfg(""), Config::default());
        assert_eq!(cfg("null"), Config::default());
        assert!(Config::parse("[1]").unwrap_err().contains("object"));
        assert!(Config::parse("{").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn keys_ignore_case_and_null_is_missing() {
        let c = cfg(r#"{"Width": "1280", "height": null, "outputMotionRegion": "TRUE"}"#);
        assert_eq!(c.u32("width").unwrap(), Some(1280));
        assert_eq!(c.u32("height").unwrap(), None);
        assert_eq!(c.bool("outputmotionregion").unwrap(), Some(true));
        let exact = cfg(r#"{"mode": "a", "MODE": "b"}"#);
        assert_eq!(exact.string("MODE").unwrap().as_deref(), Some("b"));
    }

    #[test]
    fn numbers_as_strings_or_numbers() {
        let c = cfg(r#"{"a": 12, "b": " 34 ", "c": 5.0, "d": -1, "e": "x", "f": 1.5, "g": "0.25", "h": [1]}"#);
        assert_eq!(c.u32("a").unwrap(), Some(12));
        assert_eq!(c.u32("b").unwrap(), Some(34));
        assert_eq!(c.u32("c").unwrap(), Some(5));
        assert!(c.u32("d").unwrap_err().starts_with("d: expected a whole number"));
        assert!(c.u32("e").is_err());
        assert!(c.u32("f").is_err());
        assert!(c.u32("h").is_err());
        assert_eq!(c.f32("g").unwrap(), Some(0.25));
        assert_eq!(c.f32("f").unwrap(), Some(1.5));
        assert!(c.f32("e").is_err());
        assert_eq!(c.string("a").unwrap().as_deref(), Some("12"));
        assert!(c.u32_in("a", 1..=10).unwrap_err().contains("1..=10"));
        assert!(c.bool("a").is_err());
    }

    #[test]
    fn durations() {
        let d = |s: &str| parse_iso8601_duration(s);
        assert_eq!(d("PT1S").unwrap(), Duration::from_secs(1));
        assert_eq!(d("PT0S").unwrap(), Duration::ZERO);
        assert_eq!(d("pt0.5s").unwrap(), Duration::from_millis(500));
        assert_eq!(d("PT1M30S").unwrap(), Duration::from_secs(90));
        assert_eq!(d("P1DT1H").unwrap(), Duration::from_secs(90_000));
        assert_eq!(d("PT0,25S").unwrap(), Duration::from_millis(250));
        for bad in ["", "1S", "P", "PT", "P1M", "PT1", "PTS", "PT1X", "P1Y", "PT1.2.3S", "PT-1S"] {
            assert!(d(bad).is_err(), "{bad}");
        }
        let c = cfg(r#"{"w": "PT2S", "n": 2}"#);
        assert_eq!(c.duration("W").unwrap(), Some(Duration::from_secs(2)));
        assert!(c.duration("n").unwrap_err().starts_with("n: expected an ISO 8601"));
    }
}
