//! AVA's gRPC contract as Rust types (generated at build time from `host/proto/`, AVA's wire
//! contract re-typed), and the two mappings between its inferences and AVA's inference JSON
//! (research/extensions.md §2.2): proto3 field names in lowerCamelCase, enum names in lower
//! case, `AUTO` resolved from the value present, bytes in base64.

use super::image::Prepared;
use crate::topology::ImageFormat;
use base64::Engine;
use serde_json::{Map, Value, json};

/// The generated messages and client.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("microsoft.azure.media.live_video_analytics.extensibility.grpc.v1");
}

use pb::inference::{InferenceType, Value as Kind};
use pb::video_frame_sample_format::{Encoding, PixelFormat};

/// The descriptor's sample format for frames prepared as `p` in `format`.
pub fn sample_format(format: &ImageFormat, p: &Prepared) -> pb::VideoFrameSampleFormat {
    let (encoding, pixel_format) = match format {
        ImageFormat::Jpeg { .. } => (Encoding::Jpg, PixelFormat::None),
        ImageFormat::Png => (Encoding::Png, PixelFormat::None),
        ImageFormat::Bmp => (Encoding::Bmp, PixelFormat::None),
        ImageFormat::Raw { pixel_format } => (Encoding::Raw, pixel(pixel_format)),
    };
    pb::VideoFrameSampleFormat {
        encoding: encoding as i32,
        pixel_format: pixel_format as i32,
        dimensions: Some(pb::Dimensions { width: p.width, height: p.height }),
        stride_bytes: p.stride,
    }
}

fn pixel(name: &str) -> PixelFormat {
    match name.to_ascii_lowercase().as_str() {
        "yuv420p" => PixelFormat::Yuv420p,
        "rgb565be" => PixelFormat::Rgb565be,
        "rgb565le" => PixelFormat::Rgb565le,
        "rgb555be" => PixelFormat::Rgb555be,
        "rgb555le" => PixelFormat::Rgb555le,
        "rgb24" => PixelFormat::Rgb24,
        "bgr24" => PixelFormat::Bgr24,
        "argb" => PixelFormat::Argb,
        "rgba" => PixelFormat::Rgba,
        "abgr" => PixelFormat::Abgr,
        "bgra" => PixelFormat::Bgra,
        _ => PixelFormat::None,
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn rect(r: &pb::Rectangle) -> Value {
    json!({"l": r.l, "t": r.t, "w": r.w, "h": r.h})
}

fn tag(t: &pb::Tag) -> Value {
    json!({"value": t.value, "confidence": t.confidence})
}

fn attributes(a: &[pb::Attribute]) -> Value {
    a.iter().map(|a| json!({"name": a.name, "value": a.value, "confidence": a.confidence})).collect()
}

/// A server's inference as AVA's JSON.
pub fn to_json(i: &pb::Inference) -> Value {
    let mut o = Map::new();
    let (name, detail) = match &i.value {
        Some(Kind::Classification(c)) => {
            let mut d = json!({"attributes": attributes(&c.attributes)});
            if let Some(t) = &c.tag {
                d["tag"] = tag(t);
            }
            ("classification", d)
        }
        Some(Kind::Motion(m)) => ("motion", m.r#box.as_ref().map_or(json!({}), |b| json!({"box": rect(b)}))),
        Some(Kind::Entity(e)) => {
            let mut d = json!({"attributes": attributes(&e.attributes)});
            if let Some(t) = &e.tag {
                d["tag"] = tag(t);
            }
            if let Some(b) = &e.r#box {
                d["box"] = rect(b);
            }
            if !e.id.is_empty() {
                d["id"] = json!(e.id);
            }
            ("entity", d)
        }
        Some(Kind::Text(t)) => {
            let mut d = json!({"value": t.value, "startTimestamp": t.start_timestamp, "endTimestamp": t.end_timestamp});
            if !t.language.is_empty() {
                d["language"] = json!(t.language);
            }
            ("text", d)
        }
        Some(Kind::Event(e)) => ("event", json!({"name": e.name, "properties": e.properties})),
        Some(Kind::Other(x)) => {
            ("other", json!({"contentType": x.content_type, "contentBytes": b64(&x.content_bytes)}))
        }
        None => ("", Value::Null),
    };
    let declared = InferenceType::try_from(i.r#type).unwrap_or(InferenceType::Auto);
    let kind = match declared {
        InferenceType::Auto => name,
        t => t.as_str_name(),
    };
    o.insert("type".into(), json!(if kind.is_empty() { "other".to_owned() } else { kind.to_ascii_lowercase() }));
    if !i.subtype.is_empty() {
        o.insert("subtype".into(), json!(i.subtype));
    }
    if !i.inference_id.is_empty() {
        o.insert("inferenceId".into(), json!(i.inference_id));
    }
    if !i.related_inferences.is_empty() {
        o.insert("relatedInferences".into(), json!(i.related_inferences));
    }
    if !i.sequence_id.is_empty() {
        o.insert("sequenceId".into(), json!(i.sequence_id));
    }
    if !name.is_empty() {
        o.insert(name.into(), detail);
    }
    if !i.extensions.is_empty() {
        o.insert("extensions".into(), json!(i.extensions));
    }
    Value::Object(o)
}

fn f32_of(v: &Value) -> f32 {
    v.as_f64().unwrap_or(0.0) as f32
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn rect_of(v: &Value) -> Option<pb::Rectangle> {
    v.as_object().map(|_| pb::Rectangle {
        l: f32_of(&v["l"]),
        t: f32_of(&v["t"]),
        w: f32_of(&v["w"]),
        h: f32_of(&v["h"]),
    })
}

fn tag_of(v: &Value) -> Option<pb::Tag> {
    v.as_object().map(|_| pb::Tag { value: str_of(&v["value"]), confidence: f32_of(&v["confidence"]) })
}

fn attributes_of(v: &Value) -> Vec<pb::Attribute> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|a| pb::Attribute {
                    name: str_of(&a["name"]),
                    value: str_of(&a["value"]),
                    confidence: f32_of(&a["confidence"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn strings(v: &Value) -> std::collections::HashMap<String, String> {
    v.as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect())
        .unwrap_or_default()
}

/// An upstream inference (AVA JSON) for a `MediaSample`, when it has one of AVA's six types.
pub fn from_json(v: &Value) -> Option<pb::Inference> {
    let kind = v["type"].as_str()?.to_ascii_lowercase();
    let d = &v[kind.as_str()];
    let (t, value) = match kind.as_str() {
        "classification" => (
            InferenceType::Classification,
            Kind::Classification(pb::Classification {
                tag: tag_of(&d["tag"]),
                attributes: attributes_of(&d["attributes"]),
            }),
        ),
        "motion" => (InferenceType::Motion, Kind::Motion(pb::Motion { r#box: rect_of(&d["box"]) })),
        "entity" => (
            InferenceType::Entity,
            Kind::Entity(pb::Entity {
                tag: tag_of(&d["tag"]),
                attributes: attributes_of(&d["attributes"]),
                r#box: rect_of(&d["box"]),
                id: str_of(&d["id"]),
            }),
        ),
        "text" => (
            InferenceType::Text,
            Kind::Text(pb::Text {
                value: str_of(&d["value"]),
                language: str_of(&d["language"]),
                start_timestamp: d["startTimestamp"].as_u64().unwrap_or(0),
                end_timestamp: d["endTimestamp"].as_u64().unwrap_or(0),
            }),
        ),
        "event" => (
            InferenceType::Event,
            Kind::Event(pb::Event { name: str_of(&d["name"]), properties: strings(&d["properties"]) }),
        ),
        "other" => (
            InferenceType::Other,
            Kind::Other(pb::InferenceOther {
                content_type: str_of(&d["contentType"]),
                content_bytes: base64::engine::general_purpose::STANDARD
                    .decode(d["contentBytes"].as_str().unwrap_or_default())
                    .unwrap_or_default(),
            }),
        ),
        _ => return None,
    };
    Some(pb::Inference {
        r#type: t as i32,
        subtype: str_of(&v["subtype"]),
        inference_id: str_of(&v["inferenceId"]),
        related_inferences: v["relatedInferences"]
            .as_array()
            .map(|a| a.iter().map(str_of).collect())
            .unwrap_or_default(),
        sequence_id: str_of(&v["sequenceId"]),
        value: Some(value),
        extensions: strings(&v["extensions"]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inferences_round_trip_and_auto_takes_the_value_type() {
        let entity = json!({"type": "entity", "subtype": "objectDetection", "inferenceId": "a1", "sequenceId": "s1",
            "relatedInferences": ["r"], "entity": {"tag": {"value": "car", "confidence": 0.5}, "attributes": [],
            "box": {"l": 0.25, "t": 0.5, "w": 0.125, "h": 0.25}, "id": "7"}, "extensions": {"k": "v"}});
        let event = json!({"type": "event", "subtype": "lineCrossing",
            "event": {"name": "LineCrossing1", "properties": {"total": "1"}}});
        for v in [&entity, &event] {
            let p = from_json(v).unwrap();
            assert_eq!(&to_json(&p), v);
        }
        // A server that leaves the type AUTO (Microsoft's Python sample).
        let mut p = from_json(
            &json!({"type": "classification", "classification": {"tag": {"value": "dark", "confidence": 1.0}}}),
        )
        .unwrap();
        p.r#type = InferenceType::Auto as i32;
        assert_eq!(to_json(&p)["type"], "classification");
        let other = pb::Inference {
            value: Some(Kind::Other(pb::InferenceOther {
                content_type: "text/plain".into(),
                content_bytes: b"cat".to_vec(),
            })),
            ..Default::default()
        };
        assert_eq!(
            to_json(&other),
            json!({"type": "other", "other": {"contentType": "text/plain", "contentBytes": "Y2F0"}})
        );
        assert!(from_json(&json!({"type": "banana"})).is_none());
    }
}
