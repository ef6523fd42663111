//! [`Output`] of `process`, and constructors for AVA-shaped inferences.

use crate::{Frame, Inference, Rect, Tag};

/// What `process` returns: optionally a replacement frame, and inferences.
#[derive(Debug, Default)]
pub struct Output {
    pub(crate) replaced: Option<Frame<'static>>,
    /// The inferences for this frame (AVA's inference metadata).
    pub inferences: Vec<Inference>,
}

impl Output {
    /// Nothing new: the input frame goes on (with any in-place changes), no inferences.
    pub fn none() -> Self {
        Output::default()
    }

    /// The frame goes on replaced by `frame` (from [`Frame::new_i420`] or [`Frame::from_i420`]),
    /// e.g. at another size.
    pub fn replace(frame: Frame<'static>) -> Self {
        Output { replaced: Some(frame), inferences: Vec::new() }
    }

    /// The input frame goes on, with these inferences.
    pub fn with_inferences(inferences: Vec<Inference>) -> Self {
        Output { replaced: None, inferences }
    }

    /// Adds one inference (builder style).
    pub fn inference(mut self, inference: Inference) -> Self {
        self.inferences.push(inference);
        self
    }

    /// The replacement frame, if any.
    pub fn replaced(&self) -> Option<&Frame<'static>> {
        self.replaced.as_ref()
    }
}

impl Rect {
    /// A rectangle from ratios of the frame (0.0–1.0, origin top-left): AVA's `box`.
    pub fn new(l: f32, t: f32, w: f32, h: f32) -> Self {
        Rect { l, t, w, h }
    }
}

impl Inference {
    /// An inference of `kind` ("motion", "entity", "event", "classification" or "other") with
    /// nothing else set.
    pub fn new(kind: impl Into<String>) -> Self {
        Inference {
            kind: kind.into(),
            subtype: None,
            region: None,
            tag: None,
            attributes: Vec::new(),
            extensions: Vec::new(),
        }
    }

    /// AVA's motion inference, with the moving region if known.
    pub fn motion(region: Option<Rect>) -> Self {
        Inference { region, ..Inference::new("motion") }
    }

    /// Sets the region (AVA's `box`).
    pub fn with_region(mut self, region: Rect) -> Self {
        self.region = Some(region);
        self
    }

    /// Sets the subtype (e.g. "objectCounting" for an event).
    pub fn with_subtype(mut self, subtype: impl Into<String>) -> Self {
        self.subtype = Some(subtype.into());
        self
    }

    /// Sets the label and its confidence (0.0–1.0).
    pub fn with_tag(mut self, value: impl Into<String>, confidence: f32) -> Self {
        self.tag = Some(Tag { value: value.into(), confidence });
        self
    }

    /// Adds an attribute (AVA `attributes`).
    pub fn with_attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.push((name.into(), value.into()));
        self
    }

    /// Adds an extension key/value (AVA `extensions`).
    pub fn with_extension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extensions.push((name.into(), value.into()));
        self
    }
}
