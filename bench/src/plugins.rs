//! `plugins`: the Wasm plugin host's costs (issue 4): per-call overhead of an empty plugin,
//! instantiation, `scale` 1080p→720p in Wasm vs the same algorithm native (goal ≤ 1.5×), and
//! `grayscale` through the frame resource vs by value. Wasm and native run interleaved so the
//! ratio holds on a noisy machine.

use anyhow::{Context, Result};
use openva::codec::I420;
use openva::plugins::{Limits, PluginHost};
use openva_e2e::repo_root;
use serde_json::json;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A 1080p frame with texture everywhere (a gradient and a checker).
fn frame_1080p() -> I420 {
    let (w, h) = (1920usize, 1080usize);
    let mut f = I420::black(w as u32, h as u32, 0);
    for y in 0..h {
        for x in 0..w {
            f.data[y * w + x] = ((x / 8 + y / 8) % 2 * 60 + (x + y) % 150) as u8;
        }
    }
    f
}

pub fn run() -> Result<()> {
    let dist = repo_root().join("plugins/dist");
    // Generous limits: this measures speed, not the sandbox.
    let limits = Limits { call_time: Duration::from_secs(10), ..Limits::default() };
    let host = PluginHost::new(limits, None)?;
    let loaded = host.load_dir(&dist).context("build the plugins first: plugins/build")?;
    anyhow::ensure!(loaded.iter().any(|(_, r)| r.is_ok()), "no plugins in {}", dist.display());

    // Per-call overhead: an empty plugin on a tiny frame.
    let mut empty = host.instantiate("test-empty", &json!({}))?;
    let mut tiny = I420::black(16, 16, 0);
    for _ in 0..200 {
        empty.process(&mut tiny)?;
    }
    let n = 5000;
    let t = Instant::now();
    for _ in 0..n {
        empty.process(&mut tiny)?;
    }
    let per_call = t.elapsed() / n;

    // Instantiation + configure (what a node pays at activation or after a fault).
    let inst: Vec<Duration> = (0..50)
        .map(|_| {
            let t = Instant::now();
            let _i = host.instantiate("test-empty", &json!({}));
            t.elapsed()
        })
        .collect();

    // scale 1080p → 720p: Wasm plugin vs the same openva-algos code compiled natively.
    let src = frame_1080p();
    let mut scale = host.instantiate("scale", &json!({"mode": "stretch", "width": "1280", "height": "720"}))?;
    let geometry = openva_algos::output_geometry(openva_algos::ScaleMode::Stretch, 1920, 1080, Some(1280), Some(720))
        .map_err(anyhow::Error::msg)?;
    let (mut wasm, mut native, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..105 {
        let mut f = src.clone();
        let t = Instant::now();
        scale.process(&mut f)?;
        let tw = t.elapsed();
        let t = Instant::now();
        let r = openva_algos::I420Ref::packed(1920, 1080, &src.data).map_err(anyhow::Error::msg)?;
        let out = openva_algos::scale_i420(&r, &geometry).map_err(anyhow::Error::msg)?;
        let tn = t.elapsed();
        std::hint::black_box(&out);
        if round >= 5 {
            wasm.push(tw);
            native.push(tn);
            // Each round's own ratio: the two run back to back, so a slow spell of a shared
            // machine slows both and cancels out.
            ratios.push(tw.as_secs_f64() / tn.as_secs_f64());
        }
        if round == 0 {
            anyhow::ensure!(out.data == f.data, "wasm and native scale outputs differ");
        }
    }
    ratios.sort_by(f64::total_cmp);
    let ratio = ratios[ratios.len() / 2];
    let (sw, sn) = (median(wasm), median(native));

    // grayscale: resource path (fills the chroma planes in host memory) vs by value (the
    // whole frame copied in and out).
    let mut res = host.instantiate("grayscale", &json!({}))?;
    let mut byval = host.instantiate("test-gray-byvalue", &json!({}))?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for round in 0..60 {
        let mut f = src.clone();
        let t = Instant::now();
        res.process(&mut f)?;
        let ta = t.elapsed();
        let mut g = src.clone();
        let t = Instant::now();
        byval.process(&mut g)?;
        let tb = t.elapsed();
        if round >= 5 {
            a.push(ta);
            b.push(tb);
        }
    }
    let (ga, gb) = (median(a), median(b));

    println!("plugins (1080p I420, medians)");
    println!("  per call, empty plugin:            {:>8.2} µs", per_call.as_secs_f64() * 1e6);
    println!("  instantiate + configure:           {:>8.1} µs", median(inst).as_secs_f64() * 1e6);
    println!(
        "  scale 1080p→720p: wasm {:.2} ms, native {:.2} ms → {:.2}× native (median of paired rounds; goal ≤ 1.5×)",
        sw.as_secs_f64() * 1e3,
        sn.as_secs_f64() * 1e3,
        ratio
    );
    println!(
        "  grayscale: resource {:.0} µs, by value {:.0} µs → resource path {:.1}× faster",
        ga.as_secs_f64() * 1e6,
        gb.as_secs_f64() * 1e6,
        gb.as_secs_f64() / ga.as_secs_f64()
    );
    Ok(())
}
