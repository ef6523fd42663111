//! AVA's pipeline jobs: a batch topology instantiated once, exporting recorded ranges of a
//! video into a new file video, copied or re-encoded.
//!
//! Jobs wait in a bounded queue and run on a fixed number of worker threads (the work is
//! disk- and CPU-bound and must not starve the live pipelines); a full queue refuses new jobs
//! (503 with `Retry-After`). A job's state (`Processing` → `Completed | Failed | Canceled`) is
//! kept in `control.db`; a job that was processing when the host stopped is marked `Failed`
//! on the next start, and its staged output is removed. The output video appears only when the
//! file is complete: it is written under a staging name, fsynced, and registered by a rename
//! (see docs/archive.md); a canceled or failed job leaves nothing behind.

use super::live::{PipelineError, Runtime, module_error};
use super::nodes;
use super::store::Table;
use super::transcode::{self, TranscodeError};
use crate::archive::{ArchiveError, FileMeta};
use crate::codec::CodecError;
use crate::events::EventType;
use crate::time::{TICKS_PER_SEC, Time90k};
use crate::topology::{BatchSpec, PipelineSpec};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

/// How long a finished job stays listed (AVA's `expiration`).
const RETENTION_90K: i64 = 7 * 24 * 3600 * TICKS_PER_SEC;
/// Most jobs kept (finished ones included).
const MAX_JOBS: usize = 1000;

/// How jobs run.
#[derive(Clone, Copy, Debug)]
pub struct JobOptions {
    /// Jobs processed at once.
    pub concurrency: usize,
    /// Jobs waiting beyond those; more are refused with 503.
    pub max_queued: usize,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions { concurrency: 1, max_queued: 16 }
    }
}

/// AVA's pipeline job states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    /// Waiting or running.
    Processing,
    /// The output video exists.
    Completed,
    /// Stopped by an error (see `error`).
    Failed,
    /// Stopped by a cancel request.
    Canceled,
}

impl JobState {
    /// AVA's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Processing => "Processing",
            JobState::Completed => "Completed",
            JobState::Failed => "Failed",
            JobState::Canceled => "Canceled",
        }
    }
}

/// A job's error, as AVA reports it (`{"code", "message"}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFailure {
    /// A stable code (`NoRecordedMedia`, `EncodingFailed`, `HostRestarted`…).
    pub code: String,
    /// For a human.
    pub message: String,
}

/// Everything stored of a job.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    spec: PipelineSpec,
    state: JobState,
    #[serde(default)]
    error: Option<JobFailure>,
    expiration: i64,
    #[serde(default)]
    progress: f64,
    source_video: String,
    output_video: String,
    #[serde(default)]
    encoded: bool,
    #[serde(default)]
    started: Option<i64>,
    #[serde(default)]
    finished: Option<i64>,
    /// Per range with media: what was exported.
    #[serde(default)]
    exported: Vec<(i64, i64)>,
    #[serde(default)]
    gaps: Vec<(i64, i64)>,
    #[serde(default)]
    frames: u64,
    #[serde(default)]
    bytes: u64,
}

struct Entry {
    rec: Record,
    created: Time90k,
    modified: Time90k,
    cancel: Arc<AtomicBool>,
}

/// The jobs of one host and their queue.
pub struct Jobs {
    table: Mutex<BTreeMap<String, Entry>>,
    queue: Mutex<VecDeque<String>>,
    wake: Condvar,
    options: JobOptions,
    stopping: AtomicBool,
}

impl Jobs {
    /// The jobs stored in `control.db`; those that were processing when the host stopped are
    /// marked failed (their staged output is removed by the archive when it opens).
    pub(super) fn load(rows: Vec<super::store::Row>, options: JobOptions) -> (Jobs, Vec<(String, String)>) {
        let mut table = BTreeMap::new();
        let mut interrupted = Vec::new();
        for row in rows {
            match serde_json::from_str::<Record>(&row.json) {
                Ok(mut rec) => {
                    if rec.state == JobState::Processing {
                        rec.state = JobState::Failed;
                        rec.error = Some(JobFailure {
                            code: "HostRestarted".into(),
                            message: "the host stopped while the job was processing; create the job again".into(),
                        });
                        rec.finished = Some(Time90k::now().0);
                        if let Ok(j) = serde_json::to_string(&rec) {
                            interrupted.push((row.name.clone(), j));
                        }
                    }
                    table.insert(
                        row.name,
                        Entry { rec, created: row.created, modified: row.modified, cancel: Arc::default() },
                    );
                }
                Err(e) => tracing::error!(job = row.name, "stored pipeline job unreadable, skipped: {e}"),
            }
        }
        let jobs = Jobs {
            table: Mutex::new(table),
            queue: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            options,
            stopping: AtomicBool::new(false),
        };
        (jobs, interrupted)
    }

    fn table(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<String>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether any job (in any state) references topology `name`.
    pub(super) fn referencing(&self, topology: &str) -> Vec<String> {
        self.table().iter().filter(|(_, e)| e.rec.spec.topology_name == topology).map(|(n, _)| n.clone()).collect()
    }

    /// The processing jobs of topology `name`.
    pub(super) fn processing_with(&self, topology: &str) -> Vec<String> {
        self.table()
            .iter()
            .filter(|(_, e)| e.rec.spec.topology_name == topology && e.rec.state == JobState::Processing)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Whether a processing job writes video `name` (AVA's `isInUse` for the output).
    pub(super) fn writes_video(&self, name: &str) -> bool {
        self.table().values().any(|e| e.rec.state == JobState::Processing && e.rec.output_video == name)
    }

    /// Tells the workers to take no more jobs. A job running when the process exits stays
    /// `Processing` in the store and is marked failed (`HostRestarted`) at the next start,
    /// like after a crash; the archive removes its staged output when it opens.
    pub(super) fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.wake.notify_all();
    }
}

/// What the control API reads of a job (`api/entities.rs` shapes AVA's reply).
#[derive(Clone, Debug)]
pub struct JobView {
    /// Its name.
    pub name: String,
    /// What it runs, as set.
    pub spec: PipelineSpec,
    /// Its state.
    pub state: JobState,
    /// Why it failed.
    pub error: Option<JobFailure>,
    /// When it stops being listed.
    pub expiration: Time90k,
    /// Share done, 0 to 1.
    pub progress: f64,
    /// The recorded video read.
    pub source_video: String,
    /// The file video made.
    pub output_video: String,
    /// Re-encoded (or copied).
    pub encoded: bool,
    /// When a worker took it.
    pub started: Option<Time90k>,
    /// When it ended.
    pub finished: Option<Time90k>,
    /// Per range with media: what was exported.
    pub exported: Vec<(Time90k, Time90k)>,
    /// Gaps found in the ranges.
    pub gaps: Vec<(Time90k, Time90k)>,
    /// Frames written.
    pub frames: u64,
    /// Bytes written.
    pub bytes: u64,
    /// When it was set.
    pub created: Time90k,
    /// When it last changed.
    pub modified: Time90k,
}

fn entity(name: &str, e: &Entry) -> JobView {
    let r = &e.rec;
    let times = |v: &[(i64, i64)]| v.iter().map(|&(s, e)| (Time90k(s), Time90k(e))).collect();
    JobView {
        name: name.to_owned(),
        spec: r.spec.clone(),
        state: r.state,
        error: r.error.clone(),
        expiration: Time90k(r.expiration),
        progress: r.progress,
        source_video: r.source_video.clone(),
        output_video: r.output_video.clone(),
        encoded: r.encoded,
        started: r.started.map(Time90k),
        finished: r.finished.map(Time90k),
        exported: times(&r.exported),
        gaps: times(&r.gaps),
        frames: r.frames,
        bytes: r.bytes,
        created: e.created,
        modified: e.modified,
    }
}

/// Starts the worker threads; they hold the runtime weakly and end with it.
pub(super) fn start_workers(rt: &Arc<Runtime>) -> std::io::Result<()> {
    for i in 0..rt.jobs.options.concurrency.max(1) {
        let weak = Arc::downgrade(rt);
        std::thread::Builder::new().name(format!("job-{i}")).spawn(move || worker(weak))?;
    }
    Ok(())
}

fn worker(rt: Weak<Runtime>) {
    loop {
        let Some(strong) = rt.upgrade() else { return };
        let next = {
            let jobs = &strong.jobs;
            let mut q = jobs.queue();
            loop {
                if jobs.stopping.load(Ordering::Relaxed) {
                    return;
                }
                if let Some(n) = q.pop_front() {
                    break Some(n);
                }
                // Wake now and then to notice the runtime going away.
                let (guard, _) =
                    jobs.wake.wait_timeout(q, std::time::Duration::from_secs(1)).unwrap_or_else(|p| p.into_inner());
                q = guard;
                if Arc::strong_count(&strong) == 1 {
                    break None;
                }
            }
        };
        match next {
            Some(name) => run(&strong, &name),
            None => return,
        }
    }
}

/// Why a job failed, as its `error`.
fn failure(e: &TranscodeError) -> JobFailure {
    let code = match e {
        TranscodeError::Archive(ArchiveError::NoData { .. }) => "NoRecordedMedia",
        TranscodeError::Archive(ArchiveError::UnknownVideo(_)) => "SourceVideoNotFound",
        TranscodeError::Archive(ArchiveError::VideoExists(_)) => "OutputVideoExists",
        TranscodeError::Archive(a) if a.is_disk_full() => "DiskFull",
        TranscodeError::Archive(_) | TranscodeError::Io { .. } => "StorageError",
        TranscodeError::Codec(CodecError::Unsupported(_)) => "UnsupportedMediaFormat",
        TranscodeError::Codec(_) => "EncodingFailed",
        TranscodeError::Scale(_) => "ScalingFailed",
        TranscodeError::Canceled => "Canceled",
    };
    JobFailure { code: code.into(), message: e.to_string() }
}

impl Runtime {
    fn save_job(&self, name: &str, rec: &Record) {
        let Ok(j) = serde_json::to_string(rec) else { return };
        if let Err(e) = self.store().put(Table::Job, name, &j, Time90k::now()) {
            tracing::error!(job = name, "cannot store the job's state: {e}");
        }
    }

    fn job_subject(name: &str) -> String {
        format!("/pipelineJobs/{name}")
    }

    fn publish_state(&self, name: &str, rec: &Record) {
        let mut body = json!({"state": rec.state.as_str(), "outputVideoName": rec.output_video});
        if let Some(e) = &rec.error {
            body["error"] = json!({"code": e.code, "message": e.message});
        }
        self.events.publish(Self::job_subject(name), EventType::PipelineJobStateChanged, body);
    }

    /// Sets a job's outcome unless it was canceled meanwhile (cancel wins); returns the state
    /// it ends in.
    fn finish_job(&self, name: &str, update: impl FnOnce(&mut Record)) -> Option<JobState> {
        let rec = {
            let mut t = self.jobs.table();
            let e = t.get_mut(name)?;
            if e.rec.state != JobState::Processing {
                return Some(e.rec.state);
            }
            update(&mut e.rec);
            e.rec.finished = Some(Time90k::now().0);
            e.rec.progress = if e.rec.state == JobState::Completed { 1.0 } else { e.rec.progress };
            e.modified = Time90k::now();
            e.rec.clone()
        };
        self.save_job(name, &rec);
        self.publish_state(name, &rec);
        Some(rec.state)
    }

    /// Runs one queued job to its end.
    fn run_job(&self, name: &str) -> Result<(), TranscodeError> {
        let (spec, cancel) = {
            let mut t = self.jobs.table();
            let Some(e) = t.get_mut(name) else { return Ok(()) };
            if e.rec.state != JobState::Processing {
                return Ok(()); // canceled while queued
            }
            e.rec.started = Some(Time90k::now().0);
            (e.rec.spec.clone(), e.cancel.clone())
        };
        let plan = self.job_plan(name, &spec).map_err(|e| {
            TranscodeError::Archive(ArchiveError::Internal(format!("the job's topology no longer applies: {e}")))
        })?;
        let sink_subject = format!("{}/sinks/{}", Self::job_subject(name), plan.sink_node);
        self.events.publish(
            sink_subject.clone(),
            EventType::RecordingStarted,
            json!({"outputType": "videoName", "outputLocation": plan.output_video}),
        );
        let staged = self.archive.file_staging_path(&plan.output_video)?;
        let mut report = |share: f64| {
            if let Some(e) = self.jobs.table().get_mut(name) {
                e.rec.progress = share.clamp(0.0, 1.0);
            }
        };
        let result = match &plan.encoder {
            None => self.copy_job(&plan, &staged, &cancel, &mut report),
            Some((_, spec)) => transcode::transcode(
                transcode::Source { archive: &self.archive, video: &plan.source_video, ranges: &plan.ranges },
                spec,
                self.plugins.as_ref(),
                &staged,
                &cancel,
                &mut report,
            ),
        };
        let outcome = match result {
            Ok(o) => o,
            Err(e) => {
                let _ = std::fs::remove_file(&staged);
                self.events.publish(
                    sink_subject,
                    EventType::RecordingStopped,
                    json!({"outputType": "videoName", "outputLocation": plan.output_video}),
                );
                return Err(e);
            }
        };
        if cancel.load(Ordering::Relaxed) {
            let _ = std::fs::remove_file(&staged);
            return Err(TranscodeError::Canceled);
        }
        let meta = FileMeta {
            duration_90k: outcome.duration_90k,
            width: outcome.width,
            height: outcome.height,
            frames: outcome.frames,
        };
        if let Err(e) = self.archive.add_file_video(
            &plan.output_video,
            &staged,
            plan.title.as_deref(),
            plan.description.as_deref(),
            meta,
        ) {
            let _ = std::fs::remove_file(&staged);
            return Err(e.into());
        }
        self.events.publish(
            sink_subject,
            EventType::RecordingStopped,
            json!({"outputType": "videoName", "outputLocation": plan.output_video}),
        );
        let state = self.finish_job(name, |r| {
            r.state = JobState::Completed;
            r.exported = outcome.actual.iter().map(|(s, e)| (s.0, e.0)).collect();
            r.gaps = outcome.gaps.iter().map(|(s, e)| (s.0, e.0)).collect();
            r.frames = outcome.frames;
            r.bytes = outcome.bytes;
        });
        if state == Some(JobState::Canceled) {
            // Canceled in the instant between the check and registration: honour the cancel.
            let _ = self.archive.delete_video(&plan.output_video);
        }
        Ok(())
    }

    /// Copy mode: the recorded samples as they are, with an edit list per range.
    fn copy_job(
        &self,
        plan: &BatchSpec,
        staged: &std::path::Path,
        cancel: &AtomicBool,
        report: &mut (dyn FnMut(f64) + Send),
    ) -> Result<transcode::Outcome, TranscodeError> {
        let p = self.archive.plan_export_ranges(&plan.source_video, &plan.ranges)?;
        if cancel.load(Ordering::Relaxed) {
            return Err(TranscodeError::Canceled);
        }
        let total = p.layout.total_len().max(1);
        p.write_to(&self.archive, staged, true, |done| report(done as f64 / total as f64))?;
        // Each range's own actual extent (the plan spans them all).
        let mut actual = Vec::new();
        for &(s, e) in &plan.ranges {
            if let Ok(l) = self.archive.frames_for_range(&plan.source_video, s, e) {
                actual.push(l.actual);
            }
        }
        let shown: i64 = actual.iter().map(|(s, e)| e.0 - s.0).sum();
        let (w, h) = self.archive.video_size(&plan.source_video).ok().flatten().unwrap_or((0, 0));
        Ok(transcode::Outcome {
            actual,
            gaps: p.gaps.clone(),
            frames: p.frames,
            width: w,
            height: h,
            duration_90k: shown,
            bytes: p.layout.total_len(),
        })
    }

    /// The batch plan of a job: its topology (which must be a batch one) with its parameters.
    fn job_plan(&self, name: &str, spec: &PipelineSpec) -> Result<BatchSpec, PipelineError> {
        let topo = self.inner().topologies.get(&spec.topology_name).map(|t| t.topology.clone()).ok_or_else(|| {
            PipelineError::Resource(format!("pipeline topology '{}' does not exist", spec.topology_name))
        })?;
        nodes::plan_batch(&topo, name, spec)
    }

    /// Removes jobs past their expiration (never a processing one).
    fn sweep_jobs(&self) {
        let now = Time90k::now().0;
        let expired: Vec<String> = self
            .jobs
            .table()
            .iter()
            .filter(|(_, e)| e.rec.state != JobState::Processing && e.rec.expiration <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for n in expired {
            if self.store().delete(Table::Job, &n).is_ok() {
                self.jobs.table().remove(&n);
            }
        }
    }

    /// `PUT /api/pipelineJobs/{name}`: creates a job (queued at once, state `Processing`), or
    /// changes the description of an existing one (AVA allows nothing else).
    pub async fn job_set(&self, name: &str, spec: PipelineSpec) -> Result<(bool, JobView), PipelineError> {
        let _op = self.ops.lock().await;
        self.sweep_jobs();
        {
            let mut t = self.jobs.table();
            if let Some(e) = t.get_mut(name) {
                if e.rec.spec.topology_name != spec.topology_name || e.rec.spec.parameters != spec.parameters {
                    return Err(PipelineError::Resource(format!(
                        "pipeline job '{name}' exists; only its description can change (delete it and create a new job)"
                    )));
                }
                e.rec.spec.description = spec.description.clone();
                e.modified = Time90k::now();
                let (rec, reply) = (e.rec.clone(), entity(name, e));
                drop(t);
                self.save_job(name, &rec);
                return Ok((false, reply));
            }
            if t.len() >= MAX_JOBS {
                return Err(module_error(format!("at most {MAX_JOBS} pipeline jobs are kept; delete finished ones")));
            }
        }
        let plan = self.job_plan(name, &spec)?;
        nodes::check_job(&plan, &self.archive, self.plugins.as_deref())?;
        if self.archive.video(&plan.output_video).is_ok() || self.jobs.writes_video(&plan.output_video) {
            return Err(PipelineError::Resource(format!(
                "node '{}': video '{}' already exists (or another job is writing it); choose a new videoName",
                plan.sink_node, plan.output_video
            )));
        }
        // Room for it: a free worker, or a place in the queue.
        let queued = self.jobs.queue().len();
        let running = self
            .jobs
            .table()
            .values()
            .filter(|e| e.rec.state == JobState::Processing && e.rec.started.is_some())
            .count();
        if queued + running >= self.jobs.options.concurrency.max(1) + self.jobs.options.max_queued {
            return Err(PipelineError::Busy {
                message: format!("{running} pipeline job(s) running and {queued} waiting already; try again later"),
                retry_after_s: 30,
            });
        }
        let now = Time90k::now();
        let rec = Record {
            spec,
            state: JobState::Processing,
            error: None,
            expiration: now.0 + RETENTION_90K,
            progress: 0.0,
            source_video: plan.source_video.clone(),
            output_video: plan.output_video.clone(),
            encoded: plan.encoder.is_some(),
            started: None,
            finished: None,
            exported: Vec::new(),
            gaps: Vec::new(),
            frames: 0,
            bytes: 0,
        };
        let json = serde_json::to_string(&rec).map_err(|e| module_error(format!("invalid pipeline job: {e}")))?;
        let (_, at) = self.store().put(Table::Job, name, &json, now)?;
        let entry = Entry { rec: rec.clone(), created: at, modified: now, cancel: Arc::default() };
        let reply = entity(name, &entry);
        self.jobs.table().insert(name.to_owned(), entry);
        self.jobs.queue().push_back(name.to_owned());
        self.jobs.wake.notify_one();
        self.publish_state(name, &rec);
        Ok((true, reply))
    }

    /// `GET /api/pipelineJobs/{name}`.
    pub fn job_get(&self, name: &str) -> Result<JobView, PipelineError> {
        self.sweep_jobs();
        self.jobs
            .table()
            .get(name)
            .map(|e| entity(name, e))
            .ok_or_else(|| PipelineError::NotFound { kind: "pipeline job", name: name.to_owned() })
    }

    /// `GET /api/pipelineJobs`.
    pub fn job_list(&self) -> Vec<JobView> {
        self.sweep_jobs();
        self.jobs.table().iter().map(|(n, e)| entity(n, e)).collect()
    }

    /// `POST /api/pipelineJobs/{name}/cancel`: a processing job becomes `Canceled` at once
    /// (the worker stops between frames and removes its output); canceling a canceled job
    /// changes nothing; a completed or failed job cannot be canceled.
    pub async fn job_cancel(&self, name: &str) -> Result<JobView, PipelineError> {
        let _op = self.ops.lock().await;
        let rec = {
            let mut t = self.jobs.table();
            let e = t
                .get_mut(name)
                .ok_or_else(|| PipelineError::NotFound { kind: "pipeline job", name: name.to_owned() })?;
            match e.rec.state {
                JobState::Canceled => return Ok(entity(name, e)),
                JobState::Completed | JobState::Failed => {
                    return Err(PipelineError::JobNotAllowed {
                        name: name.to_owned(),
                        op: "canceled",
                        state: e.rec.state.as_str(),
                    });
                }
                JobState::Processing => {}
            }
            e.cancel.store(true, Ordering::Relaxed);
            e.rec.state = JobState::Canceled;
            e.rec.finished = Some(Time90k::now().0);
            e.modified = Time90k::now();
            e.rec.clone()
        };
        self.jobs.queue().retain(|n| n != name);
        self.save_job(name, &rec);
        self.publish_state(name, &rec);
        self.job_get(name)
    }

    /// `DELETE /api/pipelineJobs/{name}`: only when not processing. The output video stays
    /// (it is a resource of its own). Returns whether it existed.
    pub async fn job_delete(&self, name: &str) -> Result<bool, PipelineError> {
        let _op = self.ops.lock().await;
        {
            let t = self.jobs.table();
            match t.get(name) {
                None => return Ok(false),
                Some(e) if e.rec.state == JobState::Processing => {
                    return Err(PipelineError::JobNotAllowed {
                        name: name.to_owned(),
                        op: "deleted",
                        state: "Processing",
                    });
                }
                Some(_) => {}
            }
        }
        self.store().delete(Table::Job, name)?;
        self.jobs.table().remove(name);
        Ok(true)
    }
}

/// Runs job `name` and records how it ended.
fn run(rt: &Runtime, name: &str) {
    tracing::info!(job = name, "pipeline job started");
    match rt.run_job(name) {
        Ok(()) => tracing::info!(job = name, "pipeline job finished"),
        Err(TranscodeError::Canceled) => {
            tracing::info!(job = name, "pipeline job canceled");
            rt.finish_job(name, |r| r.state = JobState::Canceled);
        }
        Err(e) => {
            tracing::warn!(job = name, "pipeline job failed: {e}");
            let f = failure(&e);
            rt.finish_job(name, |r| {
                r.state = JobState::Failed;
                r.error = Some(f);
            });
        }
    }
}
