//! The runtime's test seam: a `Runtime` on a temporary data directory, fed by the simulated
//! camera served in-process on loopback, so the control plane is tested in a second, without
//! spawning the host (the idea of Moonfire's `db/testutil.rs`).

use super::*;
use crate::archive::test_dir::{Tmp, tmp};
use crate::ingest::sim::encoder::{Camera, EncoderSettings};
use crate::topology::ParameterDefinition;

/// A runtime and a camera to point its pipelines at.
pub(crate) struct TestHost {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) events: Arc<Bus>,
    /// `rtsp://127.0.0.1:PORT/cam`.
    pub(crate) camera_url: String,
    /// Kept until the host is dropped (the data directory).
    _dir: Tmp,
}

impl TestHost {
    /// A runtime on a fresh directory named after `test`, and a 640x360, 25 fps camera.
    pub(crate) async fn start(test: &str) -> TestHost {
        let dir = tmp("runtime", test);
        let events = Arc::new(Bus::new("test"));
        let runtime = Runtime::open(&dir.0, events.clone(), None).await.expect("runtime");
        let camera = Camera::start(EncoderSettings {
            width: 640,
            height: 360,
            fps: 25,
            gop: 25,
            bitrate: 500_000,
            motion: None,
        })
        .expect("camera");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(crate::ingest::sim::server::serve(listener, camera, None));
        TestHost { runtime, events, camera_url: format!("rtsp://127.0.0.1:{port}/cam"), _dir: dir }
    }

    /// Sets the tutorial's topology and a pipeline `name` recording the camera into `video`.
    pub(crate) async fn record(&self, name: &str, video: &str) {
        self.runtime.topology_set(cvr_topology()).await.expect("topology");
        let spec = spec("CVRToVideoSink", &[("rtspUrl", &self.camera_url), ("videoName", video)]);
        self.runtime.pipeline_set(name, spec).await.expect("pipeline");
        self.runtime.activate(name).await.expect("activate");
    }

    /// Waits (up to 20 s) until `video` holds recorded media.
    pub(crate) async fn wait_for_media(&self, video: &str) {
        for _ in 0..200 {
            if self.runtime.archive().recorded_ranges(video, None, None).is_ok_and(|r| !r.is_empty()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("video '{video}' got no media within 20 s");
    }
}

/// The tutorial's continuous-recording topology (`topologies/cvr-video.json`).
pub(crate) fn cvr_topology() -> Topology {
    topology::parse_str(include_str!("../../../../topologies/cvr-video.json")).expect("topology")
}

/// A pipeline spec on `topology` with these parameter values.
pub(crate) fn spec(topology: &str, values: &[(&str, &str)]) -> PipelineSpec {
    PipelineSpec {
        description: None,
        topology_name: topology.to_owned(),
        parameters: values
            .iter()
            .map(|(n, v)| ParameterDefinition { name: (*n).to_owned(), value: (*v).to_owned() })
            .collect(),
    }
}
