//! `blur`: box blur inside regions (privacy masking of windows, screens, neighbours' yards).
//! Only the rows the regions touch (plus the radius) cross the boundary; pixels outside the
//! regions are never changed.
//!
//! Configuration (keys in any letter case, numbers as numbers or strings):
//! - `regions` (required): a list of `{"box": {"l", "t", "w", "h"}}` and/or
//!   `{"polygon": [[x, y], ...]}` (ratios 0–1 of the frame; the polygon may also be a JSON
//!   string as in AVA's zones, and points may be `{"x", "y"}` objects);
//! - `radius`: the blur radius in luma pixels, 1..=128, default 8 (chroma uses half).

use openva_algos::blur::{MAX_RADIUS, Region, blur_regions_in_rows, rows_needed};
use openva_algos::geometry::{Point, RatioBox};
use openva_plugin_sdk::serde_json::Value;
use openva_plugin_sdk::{Access, Config, Frame, Info, Output, Plugin};

const DEFAULT_RADIUS: u32 = 8;
const MAX_REGIONS: usize = 64;
const MAX_POINTS: usize = 256;

#[derive(Debug)]
struct Blur {
    regions: Vec<Region>,
    radius: u32,
}

/// A value that may be given inline or as a JSON string holding it (AVA's habit).
fn unstring(v: &Value, what: &str) -> Result<Value, String> {
    match v {
        Value::String(s) => {
            openva_plugin_sdk::serde_json::from_str(s).map_err(|e| format!("{what}: not valid JSON in a string: {e}"))
        }
        other => Ok(other.clone()),
    }
}

fn parse_box(v: &Value, what: &str) -> Result<Region, String> {
    let c = Config::from_value(unstring(v, what)?).map_err(|e| format!("{what}: {e}"))?;
    let get = |k: &str| c.f32(k).map_err(|e| format!("{what}.{e}"))?.ok_or_else(|| format!("{what}.{k} is required"));
    let b = RatioBox::new(get("l")?, get("t")?, get("w")?, get("h")?).map_err(|e| format!("{what}: {e}"))?;
    Ok(Region::Box(b))
}

fn parse_polygon(v: &Value, what: &str) -> Result<Region, String> {
    let Value::Array(items) = unstring(v, what)? else {
        return Err(format!("{what}: expected a list of [x, y] points"));
    };
    if !(3..=MAX_POINTS).contains(&items.len()) {
        return Err(format!("{what}: needs 3..={MAX_POINTS} points, got {}", items.len()));
    }
    let num = |v: &Value, at: &str| -> Result<f32, String> {
        let c = Config::from_value(Value::Object([("v".to_string(), v.clone())].into_iter().collect()))?;
        c.f32("v").map_err(|_| format!("{at}: expected a number"))?.ok_or_else(|| format!("{at}: missing"))
    };
    let mut points = Vec::with_capacity(items.len());
    for (i, p) in items.iter().enumerate() {
        let at = format!("{what}[{i}]");
        let (x, y) = match p {
            Value::Array(xy) if xy.len() == 2 => (num(&xy[0], &at)?, num(&xy[1], &at)?),
            Value::Object(_) => {
                let c = Config::from_value(p.clone())?;
                let get =
                    |k: &str| c.f32(k).map_err(|e| format!("{at}.{e}"))?.ok_or_else(|| format!("{at}.{k} is required"));
                (get("x")?, get("y")?)
            }
            _ => return Err(format!("{at}: expected [x, y]")),
        };
        points.push(Point::new(x, y).map_err(|e| format!("{at}: {e}"))?);
    }
    Ok(Region::Polygon(points))
}

impl Blur {
    fn from_config(config: &Config) -> Result<Self, String> {
        let radius = config.u32_in("radius", 1..=MAX_RADIUS)?.unwrap_or(DEFAULT_RADIUS);
        let list = config.get("regions").ok_or("regions is required (a list of {\"box\"} or {\"polygon\"})")?;
        let Value::Array(list) = unstring(list, "regions")? else {
            return Err("regions: expected a list".into());
        };
        if !(1..=MAX_REGIONS).contains(&list.len()) {
            return Err(format!("regions: needs 1..={MAX_REGIONS} regions, got {}", list.len()));
        }
        let mut regions = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let what = format!("regions[{i}]");
            let c = Config::from_value(item.clone()).map_err(|e| format!("{what}: {e}"))?;
            regions.push(match (c.get("box"), c.get("polygon")) {
                (Some(b), None) => parse_box(b, &format!("{what}.box"))?,
                (None, Some(p)) => parse_polygon(p, &format!("{what}.polygon"))?,
                _ => return Err(format!("{what}: needs exactly one of \"box\" or \"polygon\"")),
            });
        }
        Ok(Blur { regions, radius })
    }
}

impl Plugin for Blur {
    fn info() -> Info {
        Info::new("blur", env!("CARGO_PKG_VERSION"), "Box blur inside boxes or polygons (privacy masking)")
            .access(Access::Full)
    }

    fn configure(config: &Config) -> Result<Self, String> {
        Blur::from_config(config)
    }

    fn process(&mut self, frame: &mut Frame<'_>) -> Result<Output, String> {
        for plane in 0..3u32 {
            let (w, h) = frame.plane_size(plane)?;
            let radius = if plane == 0 { self.radius } else { self.radius.div_ceil(2) };
            let Some(rows) = rows_needed(&self.regions, w as usize, h as usize, radius) else {
                continue;
            };
            let mut strip = frame.rows(plane, rows.start as u32, rows.len() as u32)?;
            let first = rows.start as u32;
            blur_regions_in_rows(&mut strip, w as usize, h as usize, rows, w as usize, &self.regions, radius)?;
            frame.set_rows(plane, first, &strip)?;
        }
        Ok(Output::none())
    }
}

openva_plugin_sdk::export_plugin!(Blur);

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> Result<Blur, String> {
        Blur::from_config(&Config::parse(json).unwrap())
    }

    #[test]
    fn boxes_and_polygons_in_every_spelling() {
        let b = cfg(r#"{"Radius": "4", "regions": [
            {"box": {"l": "0.1", "t": 0.2, "w": 0.3, "h": "0.4"}},
            {"polygon": "[[0.1,0.1],[0.5,0.1],[0.3,0.4]]"},
            {"Polygon": [{"x": 0, "y": 0}, {"x": "1", "y": 0}, {"x": 1, "y": 1}]}
        ]}"#)
        .unwrap();
        assert_eq!(b.radius, 4);
        assert_eq!(b.regions.len(), 3);
        assert_eq!(b.regions[0], Region::Box(RatioBox { l: 0.1, t: 0.2, w: 0.3, h: 0.4 }));
        let d = cfg(r#"{"regions": "[{\"box\": {\"l\":0,\"t\":0,\"w\":1,\"h\":1}}]"}"#).unwrap();
        assert_eq!(d.radius, DEFAULT_RADIUS);
    }

    #[test]
    fn errors_name_the_field() {
        let e = |j| cfg(j).unwrap_err();
        assert!(e("{}").starts_with("regions is required"));
        assert!(e(r#"{"regions": []}"#).starts_with("regions: needs 1..=64"));
        assert!(e(r#"{"regions": [{"box": {"l": 0, "t": 0, "w": 1}}]}"#).starts_with("regions[0].box.h is required"));
        assert!(e(r#"{"regions": [{"box": {"l": 2, "t": 0, "w": 1, "h": 1}}]}"#).starts_with("regions[0].box: box l"));
        assert!(e(r#"{"regions": [{"polygon": [[0, 0], [1, 1]]}]}"#).starts_with("regions[0].polygon: needs 3"));
        assert!(e(r#"{"regions": [{"polygon": [[0, 0], [1, "a"], [1, 0]]}]}"#).starts_with("regions[0].polygon[1]"));
        assert!(e(r#"{"regions": [{"polygon": "[[0,0"}]}"#).contains("not valid JSON"));
        assert!(e(r#"{"regions": [{"circle": 1}]}"#).contains("exactly one"));
        assert!(e(r#"{"regions": [{"box": {"l":0,"t":0,"w":1,"h":1}}], "radius": 0}"#).starts_with("radius"));
    }
}
