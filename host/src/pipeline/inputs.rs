//! Hub messages in: AVA's module inputs, which `IotHubMessageSource` nodes name. A message to
//! input `X` (over MQTT `openva/inputs/X` or `POST /api/inputs/X`) reaches every active live
//! pipeline whose source names `X`, as a trigger of the signal gate it feeds.
//!
//! The payload is free; when it is a JSON envelope (`{"body", "applicationProperties"}`, as
//! openva's events and AVA's messages are), its `eventTime` is the trigger's time and its
//! `messageId` the trigger's id (the `correlationId` of the recording events it causes).

use serde_json::Value;

use super::live::Runtime;
use super::nodes::signal_gate::Trigger;
use crate::time::Time90k;

/// Largest message taken: a trigger, not a payload store.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Why a message was refused.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The input name cannot name an input.
    #[error("'{0}' is not an input name (1 to 128 letters, digits, '-', '_' or '.')")]
    BadName(String),
    /// No payload.
    #[error("the message is empty; a trigger carries application data (any JSON, such as {{\"count\": 1}})")]
    Empty,
    /// Too large.
    #[error("the message is {0} bytes; at most {MAX_MESSAGE} are taken")]
    TooLarge(usize),
    /// A property has a value that cannot be used.
    #[error("{0}")]
    BadProperty(String),
}

/// A message as the gate takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubMessage {
    /// Its id (given, or a new GUID).
    pub id: String,
    /// When the event it reports happened (`eventTime`), if it says.
    pub event_time: Option<Time90k>,
}

impl HubMessage {
    /// Reads a message: `payload` (any bytes; a JSON envelope's properties are used) and
    /// `event_time`, an MQTT v5 user property, which wins over the envelope's.
    pub fn read(payload: &[u8], event_time: Option<&str>) -> Result<HubMessage, InputError> {
        if payload.iter().all(u8::is_ascii_whitespace) {
            return Err(InputError::Empty);
        }
        if payload.len() > MAX_MESSAGE {
            return Err(InputError::TooLarge(payload.len()));
        }
        let json: Option<Value> = serde_json::from_slice(payload).ok();
        let property = |key: &str| -> Option<String> {
            let v = json.as_ref()?;
            ["applicationProperties", "properties", "systemProperties"]
                .iter()
                .find_map(|p| crate::topology::json::member(v, p).and_then(|o| crate::topology::json::member(o, key)))
                .and_then(|v| v.as_str().map(str::to_owned))
        };
        let time = match event_time.map(str::to_owned).or_else(|| property("eventTime")) {
            None => None,
            Some(t) => Some(Time90k::parse_iso(&t).map_err(|_| {
                InputError::BadProperty(format!(
                    "eventTime '{}' is not an ISO 8601 date and time (e.g. 2021-05-11T05:37:26.000Z)",
                    crate::topology::shown(&t)
                ))
            })?),
        };
        let id = property("messageId")
            .or_else(|| property("message-id"))
            .filter(|s| !s.is_empty() && s.len() <= 128)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        Ok(HubMessage { id, event_time: time })
    }
}

/// What became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    /// Active pipelines whose gate took it.
    pub pipelines: usize,
    /// Pipelines whose gate's queue was full (dropped there).
    pub dropped: usize,
}

impl Runtime {
    /// Delivers a message sent to input `input` to every active pipeline listening on it.
    pub fn hub_message(&self, input: &str, m: &HubMessage) -> Result<Delivery, InputError> {
        if !crate::topology::valid_input_name(input) {
            return Err(InputError::BadName(crate::topology::shown(input)));
        }
        let now = Time90k::now();
        // A message dated in the future is about now: media from the future cannot be cut.
        let media = m.event_time.map_or(now, |t| t.min(now));
        let mut d = Delivery { pipelines: 0, dropped: 0 };
        for p in self.inner().pipelines.values() {
            let Some(r) = p.running.as_ref() else { continue };
            let Some(tx) = r.triggers.as_ref().filter(|_| r.inputs.iter().any(|i| i == input)) else { continue };
            if tx.send(Trigger { media, arrival: now, id: m.id.clone() }) {
                d.pipelines += 1;
            } else {
                d.dropped += 1;
            }
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_properties_are_read() {
        let m = HubMessage::read(
            br#"{"body": {"count": 2}, "applicationProperties": {"eventTime": "2021-05-11T05:37:26.500Z", "messageId": "abc"}}"#,
            None,
        )
        .unwrap();
        assert_eq!(m.id, "abc");
        assert_eq!(m.event_time, Some(Time90k::parse_iso("2021-05-11T05:37:26.500Z").unwrap()));
        // The MQTT user property wins; any payload is a message.
        let m = HubMessage::read(b"door opened", Some("2021-05-11T05:37:27Z")).unwrap();
        assert_eq!(m.event_time, Some(Time90k::parse_iso("2021-05-11T05:37:27Z").unwrap()));
        assert_eq!(m.id.len(), 36, "a GUID");
    }

    #[test]
    fn bad_messages_are_refused() {
        assert!(matches!(HubMessage::read(b"  ", None), Err(InputError::Empty)));
        assert!(matches!(HubMessage::read(&vec![b'x'; MAX_MESSAGE + 1], None), Err(InputError::TooLarge(_))));
        let e = HubMessage::read(br#"{"applicationProperties": {"eventTime": "yesterday"}}"#, None).unwrap_err();
        assert!(e.to_string().contains("eventTime 'yesterday'"), "{e}");
    }
}
