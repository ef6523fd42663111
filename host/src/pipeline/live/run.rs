//! Running a pipeline: its thread, with its own single-threaded runtime, started from an
//! activation with everything it needs opened beforehand.

use super::*;
use crate::pipeline::gated;
use crate::pipeline::record::MediaSink;

impl Runtime {
    /// Starts a pipeline's thread. Opening the writer and configuring the plugins here (not on
    /// the thread) reports a video already being recorded, an unwritable archive or a plugin
    /// that refuses its configuration as the activation's error.
    pub(super) fn start(
        &self,
        name: &str,
        spec: &PipelineSpec,
        topo: &Topology,
        host_driven: bool,
    ) -> Result<(Running, Option<String>), PipelineError> {
        let mut plan = nodes::plan_live(topo, name, spec, self.plugins.as_deref())?;
        let gated = plan.gated.clone();
        let metrics = self.metrics.pipeline(name, &plan.source_node);
        let (triggers, trigger_rx) = match &gated {
            Some(_) => {
                let (tx, rx) = gated::trigger_channel(metrics.clone());
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let file_out = match gated.as_ref().and_then(|g| g.file.as_ref()) {
            None => None,
            Some((node, c)) => Some(gated::FileOut {
                subject: format!("/livePipelines/{name}/sinks/{node}"),
                dir: nodes::file_sink::directory(&self.file_sink_root, &c.base_directory).map_err(|e| match e {
                    nodes::file_sink::FileSinkError::Escapes { .. } => {
                        module_error(format!("node '{node}' (FileSink): baseDirectoryPath: {e}"))
                    }
                    e => PipelineError::Resource(format!("node '{node}' (FileSink): baseDirectoryPath: {e}")),
                })?,
                config: c.clone(),
            }),
        };
        let writer = match &plan.video {
            None => None,
            Some(v) => match v.open(&self.archive) {
                Ok(w) => Some(Writer::Open(Box::new(w))),
                // A storage failure (not a wrong name): the thread keeps trying.
                Err(PipelineError::Archive(e)) if host_driven => {
                    tracing::error!(pipeline = name, video = v.video, "cannot open the video yet: {e}; retrying");
                    Some(Writer::Pending(v.clone(), e.to_string()))
                }
                Err(e) => return Err(e),
            },
        };
        let analysis = self.analysis_for(
            name,
            &plan.source_node,
            std::mem::take(&mut plan.processors),
            analysis::Outlets {
                hubs: std::mem::take(&mut plan.hubs),
                gate: match (&gated, &triggers) {
                    (Some(g), Some(tx)) if !g.gate.processors.is_empty() => {
                        Some(analysis::GateFeed { nodes: g.gate.processors.clone(), tx: tx.clone() })
                    }
                    _ => None,
                },
                record: self.record_feed(plan.video.as_ref()),
            },
            &metrics,
        )?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = oneshot::channel();
        let source_subject = format!("/livePipelines/{name}/sources/{}", plan.source_node);
        let video_subject = plan.video.as_ref().map(|v| format!("/livePipelines/{name}/sinks/{}", v.sink_node));
        // Behind a gate, the sinks tell of each clip themselves.
        let sink = match (&gated, &plan.video, &video_subject) {
            (None, Some(v), Some(s)) => Some((s.clone(), v.video.clone())),
            _ => None,
        };
        let video_name = plan.video.as_ref().map(|v| v.video.clone());
        // Values that must never appear in an event: the camera password and every value of
        // a SecretString parameter (it may have been substituted into the URL itself).
        let mut secrets: Vec<String> = spec
            .parameters
            .iter()
            .filter(|d| topo.is_secret(&d.name) && !d.value.is_empty())
            .map(|d| d.value.clone())
            .collect();
        secrets.extend(plan.source.password.clone().filter(|p| !p.is_empty()));
        let observer = Arc::new(EventObserver {
            events: self.events.clone(),
            metrics,
            source_subject,
            sink: sink.clone(),
            target: scrub(&secrets, &redact(&plan.source.url)),
            told_available: AtomicBool::new(false),
            secrets,
            analysis: Mutex::new(analysis),
            stream_entry: Mutex::new(None),
            pixels_unavailable: AtomicBool::new(false),
            told_audio_skipped: AtomicBool::new(false),
        });
        if let Some((subject, video)) = &sink {
            self.events.publish(
                subject.clone(),
                EventType::RecordingStarted,
                json!({"outputType": "videoName", "outputLocation": video}),
            );
        }
        let video = video_name;
        let key = plan.recording_key();
        let inputs = gated.as_ref().map(|g| g.gate.inputs.clone()).unwrap_or_default();
        let gated_parts = match (gated, trigger_rx) {
            (Some(g), Some(rx)) => Some(gated::GatedParts {
                node: g.gate.node,
                config: g.gate.config,
                triggers: rx,
                file: file_out,
                video_subject,
                events: self.events.clone(),
                metrics: observer.metrics.clone(),
            }),
            _ => None,
        };
        let source = plan.source;
        let pipeline = name.to_owned();
        let thread_observer = observer.clone();
        let archive = self.archive.clone();
        std::thread::Builder::new()
            .name(format!("pipeline-{name}"))
            .spawn(move || {
                let observer = thread_observer;
                pipeline_thread(&pipeline, &archive, writer, gated_parts, source, stop_rx, &observer);
                // Stop the analysis thread (it finishes the frame in hand).
                observer.analysis.lock().unwrap_or_else(|p| p.into_inner()).take();
                observer.metrics.set_connected(false);
                if let Some((subject, video)) = &observer.sink {
                    observer.events.publish(
                        subject.clone(),
                        EventType::RecordingStopped,
                        json!({"outputType": "videoName", "outputLocation": video}),
                    );
                }
                let _ = done_tx.send(());
            })
            .map_err(|e| module_error(format!("cannot start a thread for live pipeline '{name}': {e}")))?;
        Ok((Running { stop: stop_tx, done: done_rx, key, observer, inputs, triggers }, video))
    }
}

/// Tells a pipeline to stop and waits for its thread (it ends its run and closes files).
pub(super) async fn stop(r: Running) {
    let _ = r.stop.send(true);
    // An Err means the thread ended without saying so: it is stopped either way.
    let _ = r.done.await;
}

/// The body of a pipeline's thread: its own single-threaded runtime, recording until told to
/// stop. A panic (a bug) is contained here: it is logged and the pipeline starts over after a
/// pause, without taking the host or other pipelines down.
pub(super) fn pipeline_thread(
    name: &str,
    archive: &Arc<Archive>,
    writer: Option<Writer>,
    gated: Option<gated::GatedParts>,
    source: SourceOptions,
    mut stop: watch::Receiver<bool>,
    observer: &Arc<EventObserver>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(pipeline = name, "cannot start the pipeline's runtime: {e}");
            return;
        }
    };
    let writer = match writer {
        None => None,
        Some(Writer::Open(mut w)) => {
            observer.media_lost(&w.take_losses());
            Some(*w)
        }
        Some(Writer::Pending(v, first)) => {
            match rt.block_on(open_with_backoff(archive, &v, first, stop.clone(), observer)) {
                Some(w) => Some(w),
                None => return, // Stopped before the video could be opened.
            }
        }
    };
    let mut sink: Option<Box<dyn MediaSink>> = match gated {
        Some(g) => Some(Box::new(g.build(writer))),
        None => writer.map(|w| Box::new(w) as Box<dyn MediaSink>),
    };
    while !*stop.borrow() {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(run_pipeline(sink.as_deref_mut(), &source, stop.clone(), observer.as_ref()))
        }));
        if run.is_ok() {
            break;
        }
        tracing::error!(pipeline = name, "the pipeline failed unexpectedly; restarting it in 5 s");
        rt.block_on(async {
            tokio::select! {
                _ = tokio::time::sleep(STORAGE_RETRY) => {}
                _ = stop.changed() => {}
            }
        });
    }
    // Do not wait for blocking tasks (a hung DNS lookup of the camera's name) to finish.
    rt.shutdown_timeout(Duration::from_millis(500));
}

/// Opens the video of a pipeline the host activated when the archive could not: one
/// `StorageError` per failure (the first is `first`), retried after 1 s, doubling to a minute,
/// until it opens or the pipeline is stopped (`None`).
pub(super) async fn open_with_backoff(
    archive: &Arc<Archive>,
    v: &VideoPlan,
    first: String,
    mut stop: watch::Receiver<bool>,
    observer: &EventObserver,
) -> Option<VideoWriter> {
    let mut wait = Duration::from_secs(1);
    let mut error = first;
    loop {
        observer.storage_error(&format!("cannot open video '{}': {error}; retrying in {} s", v.video, wait.as_secs()));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return None;
        }
        wait = (wait * 2).min(Duration::from_secs(60));
        match v.open(archive) {
            Ok(mut w) => {
                tracing::info!(video = v.video, "the video opened; recording");
                observer.media_lost(&w.take_losses());
                return Some(w);
            }
            Err(e) => error = e.to_string(),
        }
    }
}

/// Records until stopped. An archive failure (a full disk) is reported and retried after a
/// pause, keeping the writer and so the video's lock: no other pipeline can take the video
/// meanwhile.
pub(super) async fn run_pipeline(
    mut writer: Option<&mut (dyn MediaSink + 'static)>,
    source: &SourceOptions,
    mut stop: watch::Receiver<bool>,
    observer: &EventObserver,
) {
    while !*stop.borrow() {
        let w = writer.as_deref_mut();
        match record::record_with(w, source.clone(), stop.clone(), Policy::RetryForever, observer).await {
            Ok(_) => break,
            Err(RecordError::Archive(e)) => observer.storage_error(&e.to_string()),
            Err(RecordError::Ingest(e)) => observer.connect_failed(&e),
        }
        tokio::select! {
            _ = tokio::time::sleep(STORAGE_RETRY) => {}
            _ = stop.changed() => {}
        }
    }
}
