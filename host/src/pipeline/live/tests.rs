//! The runtime through its seam (`testutil`): pipelines record, stop, and refuse what they
//! must, in process.

use super::testutil::{TestHost, cvr_topology, spec};
use super::*;

fn state(rt: &Runtime, name: &str) -> String {
    rt.pipeline_get(name).expect("pipeline").state.as_str().to_owned()
}

/// A pipeline records into its video while active; deactivated, it stops and the video keeps
/// what was recorded; the video is in use only meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_records_until_deactivated() {
    let h = TestHost::start("records").await;
    h.record("p", "cam").await;
    assert_eq!(state(&h.runtime, "p"), "active");
    assert!(h.runtime.video_in_use("cam"));
    h.wait_for_media("cam").await;
    h.runtime.deactivate("p").await.expect("deactivate");
    assert_eq!(state(&h.runtime, "p"), "inactive");
    assert!(!h.runtime.video_in_use("cam"));
    let ranges = h.runtime.archive().recorded_ranges("cam", None, None).expect("ranges");
    assert_eq!(ranges.len(), 1, "{ranges:?}");
    h.runtime.shutdown().await;
}

/// Two pipelines cannot record into one video: the second activation is refused and the first
/// keeps recording.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_video_has_one_recorder() {
    let h = TestHost::start("one-recorder").await;
    h.record("a", "shared").await;
    let b = spec("CVRToVideoSink", &[("rtspUrl", &h.camera_url), ("videoName", "shared")]);
    h.runtime.pipeline_set("b", b).await.expect("pipeline b");
    let refused = h.runtime.activate("b").await;
    assert!(refused.is_err(), "a second recorder of one video was activated");
    assert_eq!((state(&h.runtime, "a"), state(&h.runtime, "b")), ("active".into(), "inactive".into()));
    h.wait_for_media("shared").await;
    h.runtime.shutdown().await;
}

/// A pipeline on a topology that does not exist, or without its required parameter, is refused
/// when set, with nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pipelines_are_refused_when_set() {
    let h = TestHost::start("refused").await;
    assert!(h.runtime.pipeline_set("x", spec("Nope", &[])).await.is_err());
    h.runtime.topology_set(cvr_topology()).await.expect("topology");
    assert!(h.runtime.pipeline_set("y", spec("CVRToVideoSink", &[])).await.is_err(), "rtspUrl has no default");
    assert!(h.runtime.pipeline_list().is_empty());
    let _ = &h.events;
    h.runtime.shutdown().await;
}
