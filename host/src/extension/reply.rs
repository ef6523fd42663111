//! What an inference server's answer means (research/extensions.md §1.4): AVA's statuses,
//! its inference JSON with boxes mapped back from a padded image, and the tolerant paths AVA
//! documented (a non-JSON reply becomes an `other` inference in base64; JSON outside the
//! schema is forwarded as it is).

use super::image::Content;
use base64::Engine;
use serde_json::{Map, Value, json};
use std::time::Duration;

/// What one request came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Results for the frame: the body to publish (without `timestamp`) and its inferences
    /// (boxes in the frame's coordinates), which ride on the frame to downstream nodes.
    Results {
        /// The reply object, inferences un-padded.
        body: Map<String, Value>,
        /// Its `inferences`, when it has that array.
        inferences: Vec<Value>,
    },
    /// 204, or an empty answer: nothing found.
    NoResult,
    /// 503: the server asks for a pause (`Retry-After`, when it said how long).
    Busy(Option<Duration>),
    /// The request failed.
    Failed(Failure),
}

/// A failed request, as the Diagnostics event tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Which Diagnostics event.
    pub kind: FailureKind,
    /// A short code: the HTTP status, or `timeout`, `connection`, `reply`, `address`.
    pub code: String,
    /// What happened, for people.
    pub message: String,
}

/// The family of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The server could not be reached, or did not answer in time.
    Network,
    /// It answered something other than AVA's contract.
    Protocol,
    /// 401.
    Authentication,
    /// 403.
    Authorization,
    /// The endpoint's address is refused by this host's policy.
    Refused,
}

impl Failure {
    /// A failure of `kind`.
    pub fn new(kind: FailureKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        Failure { kind, code: code.into(), message: message.into() }
    }
}

/// Reads an answer: `status`, its `Content-Type` and `Retry-After` headers and body. `content`
/// is where the frame lay in the image sent.
pub fn interpret(
    status: u16,
    content_type: Option<&str>,
    retry_after: Option<&str>,
    body: &[u8],
    content: &Content,
) -> Outcome {
    match status {
        200..=299 if status == 204 || body.iter().all(u8::is_ascii_whitespace) => Outcome::NoResult,
        200..=299 => {
            let ct = content_type.unwrap_or("application/octet-stream");
            let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            if essence != "application/json" && !essence.ends_with("+json") {
                return results(json!({"inferences": [other(ct, body)]}), content);
            }
            match serde_json::from_slice::<Value>(body) {
                Ok(v) => results(v, content),
                Err(e) => Outcome::Failed(Failure::new(
                    FailureKind::Protocol,
                    "reply",
                    format!("the reply says it is JSON but is not: {e}"),
                )),
            }
        }
        503 => Outcome::Busy(retry_after.and_then(parse_retry_after)),
        401 => Outcome::Failed(Failure::new(FailureKind::Authentication, "401", "the server refused the credentials")),
        403 => Outcome::Failed(Failure::new(FailureKind::Authorization, "403", "the server forbids this client")),
        s => Outcome::Failed(Failure::new(
            FailureKind::Protocol,
            s.to_string(),
            format!("the server answered {s}{}", excerpt(body)),
        )),
    }
}

/// The start of an error body, for the message (servers often say why there).
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let text = text.trim();
    if text.is_empty() { String::new() } else { format!(": {text}") }
}

/// AVA's wrapper for a reply that is not JSON.
fn other(content_type: &str, body: &[u8]) -> Value {
    json!({"type": "other", "other": {
        "contentType": content_type,
        "contentBytes": base64::engine::general_purpose::STANDARD.encode(body),
    }})
}

/// A JSON reply: an object is published as it is (AVA forwards JSON outside its schema), its
/// `inferences` un-padded; anything else is wrapped as an `other` inference.
fn results(v: Value, content: &Content) -> Outcome {
    let mut body = match v {
        Value::Object(o) => o,
        v => {
            let bytes = serde_json::to_vec(&v).unwrap_or_default();
            let mut o = Map::new();
            o.insert("inferences".into(), json!([other("application/json", &bytes)]));
            o
        }
    };
    // A reply's own `timestamp` would be taken for the frame's: the frame's wins.
    body.remove("timestamp");
    let inferences = match body.get_mut("inferences") {
        Some(Value::Array(list)) => {
            if list.is_empty() {
                // AVA's schema: an empty list must not be sent (204 instead). Same meaning.
                return Outcome::NoResult;
            }
            if *content != Content::FULL {
                list.iter_mut().for_each(|i| unpad_inference(i, content));
            }
            list.clone()
        }
        _ => Vec::new(),
    };
    Outcome::Results { body, inferences }
}

/// A gRPC server's answer to a sample: its inferences as AVA's JSON, boxes un-padded; none
/// means nothing found (as HTTP's 204).
pub fn grpc_results(inferences: &[super::proto::pb::Inference], content: &Content) -> Outcome {
    if inferences.is_empty() {
        return Outcome::NoResult;
    }
    let mut list: Vec<Value> = inferences.iter().map(super::proto::to_json).collect();
    if *content != Content::FULL {
        list.iter_mut().for_each(|i| unpad_inference(i, content));
    }
    let mut body = Map::new();
    body.insert("inferences".into(), Value::Array(list.clone()));
    Outcome::Results { body, inferences: list }
}

/// Maps the box of an inference (`entity`, `motion`, `event`: whichever it carries) from the
/// padded image to the frame. A box that is not four numbers is left as it came.
fn unpad_inference(i: &mut Value, content: &Content) {
    let Some(o) = i.as_object_mut() else { return };
    for kind in ["entity", "motion", "event"] {
        let Some(b) = o.get_mut(kind).and_then(|d| d.get_mut("box")).and_then(Value::as_object_mut) else {
            continue;
        };
        let n = |k: &str| b.get(k).and_then(Value::as_f64);
        if let (Some(l), Some(t), Some(w), Some(h)) = (n("l"), n("t"), n("w"), n("h")) {
            let (l, t, w, h) = content.unpad(l, t, w, h);
            for (k, v) in [("l", l), ("t", t), ("w", w), ("h", h)] {
                b.insert(k.into(), json!(v));
            }
        }
    }
}

/// `Retry-After`: seconds, or an HTTP date (then the time until it, at least 0).
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let left = at.as_millisecond() - jiff::Timestamp::now().as_millisecond();
    Some(Duration::from_millis(left.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PADDED: Content = Content { x: 0.0, y: 0.25, w: 1.0, h: 0.5 };

    #[test]
    fn a_detection_in_a_padded_image_lands_in_the_frame() {
        let reply = br#"{"inferences":[{"type":"entity","entity":{"tag":{"value":"car","confidence":0.9},
            "box":{"l":0.5,"t":0.25,"w":0.25,"h":0.25}}},{"type":"classification","classification":{"tag":{"value":"day"}}}]}"#;
        let Outcome::Results { body, inferences } = interpret(200, Some("application/json"), None, reply, &PADDED)
        else {
            panic!("no results")
        };
        assert_eq!(inferences.len(), 2);
        assert_eq!(inferences[0]["entity"]["box"], json!({"l": 0.5, "t": 0.0, "w": 0.25, "h": 0.5}));
        assert_eq!(body["inferences"][1], json!({"type":"classification","classification":{"tag":{"value":"day"}}}));
    }

    #[test]
    fn statuses_and_shapes() {
        let full = Content::FULL;
        assert_eq!(interpret(204, None, None, b"", &full), Outcome::NoResult);
        assert_eq!(interpret(200, Some("application/json"), None, b"  ", &full), Outcome::NoResult);
        assert_eq!(interpret(200, Some("application/json"), None, br#"{"inferences":[]}"#, &full), Outcome::NoResult);
        assert_eq!(interpret(503, None, Some("3"), b"", &full), Outcome::Busy(Some(Duration::from_secs(3))));
        assert_eq!(
            interpret(503, None, Some("Wed, 21 Oct 2015 07:28:00 GMT"), b"", &full),
            Outcome::Busy(Some(Duration::ZERO))
        );
        assert_eq!(interpret(503, None, Some("soon"), b"", &full), Outcome::Busy(None));
        let Outcome::Failed(f) = interpret(500, Some("text/plain"), None, b"model crashed\n", &full) else { panic!() };
        assert_eq!(
            (f.kind, f.code.as_str(), f.message.as_str()),
            (FailureKind::Protocol, "500", "the server answered 500: model crashed")
        );
        let Outcome::Failed(f) = interpret(401, None, None, b"", &full) else { panic!() };
        assert_eq!(f.kind, FailureKind::Authentication);
        let Outcome::Failed(f) = interpret(200, Some("application/json; charset=utf-8"), None, b"{not json", &full)
        else {
            panic!()
        };
        assert_eq!((f.kind, f.code.as_str()), (FailureKind::Protocol, "reply"));
        // Not JSON: AVA's base64 payload.
        let Outcome::Results { inferences, .. } = interpret(200, Some("text/plain"), None, b"cat", &full) else {
            panic!()
        };
        assert_eq!(
            inferences,
            vec![json!({"type":"other","other":{"contentType":"text/plain","contentBytes":"Y2F0"}})]
        );
        // JSON outside the schema: forwarded as is, the frame's timestamp wins.
        let Outcome::Results { body, inferences } =
            interpret(200, Some("application/json"), None, br#"{"label":"dark","timestamp":1}"#, &full)
        else {
            panic!()
        };
        assert!(inferences.is_empty());
        assert_eq!(Value::Object(body), json!({"label": "dark"}));
        let Outcome::Results { inferences, .. } = interpret(200, Some("application/json"), None, b"[1,2]", &full)
        else {
            panic!()
        };
        assert_eq!(inferences[0]["other"]["contentBytes"], "WzEsMl0=");
    }
}
