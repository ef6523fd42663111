//! Processor plugins in the real host runtime (wasmtime), built from `plugins/` by
//! `plugins/build`: each shipped plugin on real frames against native references, and hostile
//! plugins stopped by their limits while the host and other plugin instances keep working.

use openva::codec::I420;
use openva::plugins::{FaultKind, Limits, PluginError, PluginHost};
use openva_e2e::*;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn host(limits: Limits) -> Arc<PluginHost> {
    let dist = repo_root().join("plugins/dist");
    let host = PluginHost::new(limits, Some(std::env::temp_dir().join("openva-test-plugin-cache"))).unwrap();
    let loaded = host.load_dir(&dist).unwrap();
    assert!(loaded.iter().all(|(_, r)| r.is_ok()), "every built plugin loads: {loaded:?}");
    host
}

/// A 640×360 frame with a gradient, a bright square at (x, y) and coloured chroma.
fn frame(x: usize, y: usize, pts: i64) -> I420 {
    let (w, h) = (640usize, 360usize);
    let mut f = I420::black(w as u32, h as u32, pts);
    for row in 0..h {
        for col in 0..w {
            f.data[row * w + col] = 40 + ((col + row) % 100) as u8;
        }
    }
    for row in y..y + 40 {
        f.data[row * w + x..row * w + x + 40].fill(235);
    }
    let c = I420::planes(640, 360);
    f.data[c[1].offset..c[2].offset].fill(90);
    f.data[c[2].offset..].fill(170);
    f
}

#[test]
fn shipped_plugins_are_listed() {
    let h = host(Limits::default());
    let names: Vec<String> = h.list().into_iter().map(|p| p.name).collect();
    for n in ["grayscale", "scale", "blur", "motion"] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
}

#[test]
fn grayscale_sets_chroma_and_keeps_luma() {
    let h = host(Limits::default());
    for name in ["grayscale", "test-gray-byvalue"] {
        let mut inst = h.instantiate(name, &json!({})).unwrap();
        let original = frame(100, 100, 0);
        let mut f = original.clone();
        let out = inst.process(&mut f).unwrap();
        assert!(!out.replaced || f.width == 640);
        let c = I420::planes(640, 360);
        assert_eq!(f.data[..c[1].offset], original.data[..c[1].offset], "{name}: luma untouched");
        assert!(f.data[c[1].offset..].iter().all(|&v| v == 128), "{name}: chroma 128");
    }
}

#[test]
fn scale_is_bit_identical_to_the_native_algorithm_in_every_mode() {
    let h = host(Limits::default());
    let src = frame(300, 200, 5);
    for (mode, w, hh) in
        [("stretch", Some(320), Some(240)), ("preserveAspectRatio", Some(320), None), ("pad", Some(320), Some(320))]
    {
        let mut cfg = json!({"mode": mode});
        if let Some(w) = w {
            cfg["width"] = json!(w.to_string());
        }
        if let Some(hh) = hh {
            cfg["height"] = json!(hh.to_string());
        }
        let mut inst = h.instantiate("scale", &cfg).unwrap();
        // Twice: the second call reuses the buffer of the frame the first one replaced.
        let mut f = src.clone();
        inst.process(&mut f).unwrap();
        let mut f = src.clone();
        let out = inst.process(&mut f).unwrap();
        assert!(out.replaced, "{mode}");
        let m = openva_algos::ScaleMode::parse(mode).unwrap();
        let g = openva_algos::output_geometry(m, 640, 360, w, hh).unwrap();
        let native =
            openva_algos::scale_i420(&openva_algos::I420Ref::packed(640, 360, &src.data).unwrap(), &g).unwrap();
        assert_eq!((f.width, f.height), (native.width, native.height), "{mode}");
        assert!(f.data == native.data, "{mode}: wasm output differs from native");
        assert_eq!(f.pts, 5);
        match mode {
            "stretch" => assert_eq!((f.width, f.height), (320, 240)),
            "preserveAspectRatio" => assert_eq!((f.width, f.height), (320, 180)),
            _ => {
                assert_eq!((f.width, f.height), (320, 320));
                assert!(f.data[..320 * 60].iter().all(|&v| v == 16), "pad: black bars top");
            }
        }
    }
    // Bad configuration is refused with a message naming the field.
    let e = h.instantiate("scale", &json!({"mode": "pad", "width": "0", "height": "10"})).err().unwrap();
    assert!(matches!(e, PluginError::Configure { .. }) && e.to_string().contains("width"), "{e}");
}

#[test]
fn blur_changes_only_the_region() {
    let h = host(Limits::default());
    let mut inst = h
        .instantiate("blur", &json!({"regions": [{"box": {"l": 0.25, "t": 0.25, "w": 0.5, "h": 0.5}}], "radius": "6"}))
        .unwrap();
    let src = frame(300, 160, 0);
    let mut f = src.clone();
    inst.process(&mut f).unwrap();
    let w = 640;
    let mut inside_changed = 0;
    for y in 0..360 {
        for x in 0..640 {
            let i = y * w + x;
            let inside = (160..480).contains(&x) && (90..270).contains(&y);
            if !inside {
                assert_eq!(f.data[i], src.data[i], "pixel ({x},{y}) outside the region changed");
            } else if f.data[i] != src.data[i] {
                inside_changed += 1;
            }
        }
    }
    assert!(inside_changed > 10_000, "only {inside_changed} pixels blurred inside");
}

#[test]
fn motion_boxes_where_the_square_moves_and_none_on_a_static_scene() {
    let h = host(Limits::default());
    let cfg = json!({"sensitivity": "medium", "eventAggregationWindow": "PT0S"});
    let mut still = h.instantiate("motion", &cfg).unwrap();
    let mut moving = h.instantiate("motion", &cfg).unwrap();
    let mut boxes = Vec::new();
    for n in 0..20i64 {
        let pts = n * 3600;
        let mut s = frame(100, 100, pts);
        assert!(still.process(&mut s).unwrap().inferences.is_empty(), "motion on a static scene at frame {n}");
        let x = 100 + 12 * n as usize;
        let mut m = frame(x, 150, pts);
        for i in moving.process(&mut m).unwrap().inferences {
            assert_eq!(i.kind, "motion");
            let r = i.region.expect("box");
            boxes.push((n, r.l, r.t, r.w, r.h));
        }
    }
    assert!(boxes.len() >= 5, "too few motion boxes: {boxes:?}");
    // Each box overlaps where the square was (x 100+12n … +40, y 150 … 190).
    for (n, l, t, w, hh) in &boxes {
        let sq = ((100 + 12 * *n as usize) as f32 / 640.0, 150.0 / 360.0);
        assert!(
            *l <= sq.0 + 40.0 / 640.0 + 0.05 && l + w >= sq.0 - 0.05,
            "frame {n}: box x {l}+{w} vs square {}",
            sq.0
        );
        assert!(*t <= sq.1 + 40.0 / 360.0 + 0.05 && t + hh >= sq.1 - 0.05, "frame {n}: box y {t}+{hh}");
    }
}

#[test]
fn hostile_plugins_are_stopped_and_the_host_keeps_working() {
    // The time limit leaves room for test-alloc to touch 64 MiB on a loaded machine (it took
    // over 100 ms in a CI run), so the memory limit, not the clock, is what stops it.
    let limits = Limits {
        call_time: Duration::from_millis(500),
        memory_bytes: 64 << 20,
        max_failures: 3,
        pause: Duration::from_secs(60),
        ..Limits::default()
    };
    let h = host(limits);
    let mut good = h.instantiate("grayscale", &json!({})).unwrap();
    for (name, kind) in [
        ("test-loop", FaultKind::Timeout),
        ("test-alloc", FaultKind::MemoryLimit),
        ("test-panic", FaultKind::Crash),
        ("test-wrong-size", FaultKind::WrongOutput),
        ("test-flood", FaultKind::Flood),
    ] {
        let mut bad = h.instantiate(name, &json!({})).unwrap();
        let t = Instant::now();
        let mut f = frame(0, 0, 0);
        match bad.process(&mut f) {
            Err(PluginError::Fault { kind: k, plugin, message }) => {
                assert_eq!(k, kind, "{name}: {message}");
                assert_eq!(plugin, name);
            }
            other => panic!("{name}: expected a {kind} fault, got {other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(5), "{name} took {:?} to stop", t.elapsed());
        // The input frame is still whole after the fault.
        assert!(f.is_consistent() && f.width == 640, "{name}: input frame lost");
        // Rebuilt on the next call, then paused after repeated faults (circuit breaker).
        let _ = bad.process(&mut frame(0, 0, 0));
        let _ = bad.process(&mut frame(0, 0, 0));
        match bad.process(&mut frame(0, 0, 0)) {
            Err(PluginError::Paused { .. }) => {}
            other => panic!("{name}: expected the node to be paused, got {other:?}"),
        }
        // Another plugin's instance is unaffected.
        let mut g = frame(0, 0, 0);
        good.process(&mut g).unwrap();
        assert!(g.data[I420::planes(640, 360)[1].offset..].iter().all(|&v| v == 128));
    }
    // Frames made in the host, 12 MB each, four a call and kept across calls: they count
    // against the plugin's memory limit (64 MiB here), so the host never holds more for it.
    let mut bad = h.instantiate("test-alloc", &json!({"hostFrames": true})).unwrap();
    let fault = (0..10).find_map(|_| bad.process(&mut frame(0, 0, 0)).err());
    match fault {
        Some(PluginError::Fault { kind: FaultKind::MemoryLimit, message, .. }) => {
            assert!(message.contains("frames it made in the host"), "{message}")
        }
        other => panic!("host frames kept across calls: expected a memory-limit fault, got {other:?}"),
    }
    // One inference of 1 MB of text: over the per-frame cap, named in the fault.
    let mut bad = h.instantiate("test-flood", &json!({"bigText": true})).unwrap();
    match bad.process(&mut frame(0, 0, 0)) {
        Err(PluginError::Fault { kind: FaultKind::Flood, message, .. }) => {
            assert!(message.contains("1024 KiB of inference text") && message.contains("limit 64 KiB"), "{message}")
        }
        other => panic!("1 MB of inference text: expected a flood fault, got {other:?}"),
    }
}
