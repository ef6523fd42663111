//! `motion`: AVA's `#Microsoft.VideoAnalyzer.MotionDetectionProcessor` as a plugin. Reads a
//! host-downscaled luma copy (about 1/8 of the width), runs `openva_algos::MotionDetector` and
//! emits `motion` inferences.
//!
//! Configuration (keys and values in any letter case; booleans also as strings):
//! - `sensitivity`: `low`, `medium` (default) or `high`;
//! - `outputMotionRegion`: `true` (default) gives one inference per moving region with its
//!   box; `false` gives one inference without a box per emission;
//! - `eventAggregationWindow`: ISO 8601 duration, default `PT1S`. The first frame with motion
//!   opens a window and its boxes are emitted at once; further motion inside the window is
//!   dropped; the first motion after the window opens the next one. `PT0S` emits on every
//!   frame with motion. Time is the frames' `pts`, so it follows the video, not the host clock.

use openva_algos::motion::{MotionDetector, Sensitivity, analysis_size};
use openva_plugin_sdk::{Access, Config, Frame, Inference, Info, Output, Plugin, Rect};
use std::time::Duration;

/// 90 kHz ticks per second (the unit of `pts`).
const TICKS_PER_SECOND: u128 = 90_000;
const DEFAULT_WINDOW: Duration = Duration::from_secs(1);
/// Longest aggregation window accepted.
const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug)]
struct Motion {
    detector: MotionDetector,
    output_region: bool,
    /// Aggregation window in 90 kHz ticks; 0 = none.
    window: i64,
    /// `pts` of the first emission of the current window.
    window_start: Option<i64>,
}

impl Motion {
    fn from_config(config: &Config) -> Result<Self, String> {
        let sensitivity = match config.string("sensitivity")? {
            Some(s) => Sensitivity::parse(&s)?,
            None => Sensitivity::Medium,
        };
        let output_region = config.bool("outputMotionRegion")?.unwrap_or(true);
        let window = config.duration("eventAggregationWindow")?.unwrap_or(DEFAULT_WINDOW);
        if window > MAX_WINDOW {
            return Err(format!("eventAggregationWindow: at most PT24H, got {window:?}"));
        }
        Ok(Motion {
            detector: MotionDetector::new(sensitivity),
            output_region,
            window: (window.as_nanos() * TICKS_PER_SECOND / 1_000_000_000) as i64,
            window_start: None,
        })
    }

    /// Whether motion at `pts` is emitted, opening a new window if so. A `pts` before the
    /// window's start (the clock went back) opens a new window too.
    fn admit(&mut self, pts: i64) -> bool {
        if self.window > 0
            && let Some(start) = self.window_start
            && pts >= start
            && pts - start < self.window
        {
            return false;
        }
        self.window_start = Some(pts);
        true
    }

    /// One frame's luma (analysis size) and time → the inferences to emit.
    fn analyse(&mut self, luma: &[u8], w: u32, h: u32, pts: i64) -> Result<Vec<Inference>, String> {
        let boxes = self.detector.detect(luma, w as usize, h as usize)?;
        if boxes.is_empty() || !self.admit(pts) {
            return Ok(Vec::new());
        }
        if !self.output_region {
            return Ok(vec![Inference::motion(None)]);
        }
        Ok(boxes.iter().map(|b| Inference::motion(Some(Rect::new(b.l, b.t, b.w, b.h)))).collect())
    }
}

impl Plugin for Motion {
    fn info() -> Info {
        Info::new("motion", env!("CARGO_PKG_VERSION"), "Motion detection (AVA MotionDetectionProcessor)")
            .access(Access::Luma)
    }

    fn configure(config: &Config) -> Result<Self, String> {
        Motion::from_config(config)
    }

    fn process(&mut self, frame: &mut Frame<'_>) -> Result<Output, String> {
        let (w, h) = analysis_size(frame.width(), frame.height());
        let luma = frame.scaled_luma(w, h)?;
        Ok(Output::with_inferences(self.analyse(&luma, w, h, frame.pts())?))
    }
}

openva_plugin_sdk::export_plugin!(Motion);

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> Result<Motion, String> {
        Motion::from_config(&Config::parse(json).unwrap())
    }

    /// 64×36 gray with a bright 8×8 square at column `x`.
    fn frame(x: usize) -> Vec<u8> {
        let mut v = vec![80u8; 64 * 36];
        (10..18).for_each(|y| v[y * 64 + x..y * 64 + x + 8].fill(220));
        v
    }

    #[test]
    fn configuration() {
        let m = cfg("{}").unwrap();
        assert_eq!((m.detector.sensitivity(), m.output_region, m.window), (Sensitivity::Medium, true, 90_000));
        let m = cfg(r#"{"Sensitivity": "HIGH", "outputMotionRegion": "false", "eventAggregationWindow": "PT0.5S"}"#)
            .unwrap();
        assert_eq!((m.detector.sensitivity(), m.output_region, m.window), (Sensitivity::High, false, 45_000));
        assert!(cfg(r#"{"sensitivity": "extreme"}"#).unwrap_err().starts_with("sensitivity"));
        assert!(cfg(r#"{"outputMotionRegion": "yes"}"#).unwrap_err().starts_with("outputMotionRegion"));
        assert!(cfg(r#"{"eventAggregationWindow": "1s"}"#).unwrap_err().starts_with("eventAggregationWindow"));
        assert!(cfg(r#"{"eventAggregationWindow": "P2D"}"#).unwrap_err().starts_with("eventAggregationWindow"));
    }

    /// Runs 25 fps frames of a moving square; returns the frame numbers that emitted.
    fn emissions(m: &mut Motion, frames: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for f in 0..frames {
            let inf = m.analyse(&frame(2 + f % 50), 64, 36, 1_000_000 + f as i64 * 3600).unwrap();
            if !inf.is_empty() {
                out.push((f, inf.len()));
            }
        }
        out
    }

    #[test]
    fn aggregation_window_limits_emissions() {
        let mut m = cfg(r#"{"eventAggregationWindow": "PT1S"}"#).unwrap();
        let e = emissions(&mut m, 60);
        assert_eq!(e.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 26, 51], "one per second of motion");
        let mut m = cfg(r#"{"eventAggregationWindow": "PT0S"}"#).unwrap();
        assert_eq!(emissions(&mut m, 10).len(), 9, "every frame with motion");
    }

    #[test]
    fn regions_or_not() {
        let mut m = cfg(r#"{"eventAggregationWindow": "PT0S"}"#).unwrap();
        m.analyse(&frame(2), 64, 36, 0).unwrap();
        let inf = m.analyse(&frame(5), 64, 36, 3600).unwrap();
        assert!(inf.iter().all(|i| i.kind == "motion" && i.region.is_some()));
        // Right after the first frame the uniform square shows as its two moving edges
        // (the inside matches the background); together they span it.
        let rs: Vec<Rect> = inf.iter().map(|i| i.region.unwrap()).collect();
        let left = rs.iter().map(|r| r.l).fold(1.0, f32::min);
        let right = rs.iter().map(|r| r.l + r.w).fold(0.0, f32::max);
        assert!(left <= 5.0 / 64.0 && right >= 13.0 / 64.0 && rs.iter().all(|r| r.t <= 10.0 / 36.0), "{rs:?}");
        let mut m = cfg(r#"{"eventAggregationWindow": "PT0S", "outputMotionRegion": false}"#).unwrap();
        m.analyse(&frame(2), 64, 36, 0).unwrap();
        let inf = m.analyse(&frame(5), 64, 36, 3600).unwrap();
        assert_eq!(inf.len(), 1);
        assert!(inf[0].region.is_none());
    }

    #[test]
    fn clock_going_back_opens_a_window() {
        let mut m = cfg("{}").unwrap();
        assert!(m.admit(1000));
        assert!(!m.admit(1000 + 89_999));
        assert!(m.admit(500));
        assert!(m.admit(500 + 90_000));
    }
}
