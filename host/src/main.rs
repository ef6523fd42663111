//! The `openva` command line. Errors are reported in one line on stderr with a non-zero exit.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use openva::archive::{Archive, check, ranges::Precision};
use openva::ingest::rtsp::SourceOptions;
use openva::ingest::sim::{encoder, server};
use openva::time::Time90k;
use std::path::PathBuf;
use std::sync::Arc;

mod cli;

#[derive(Parser)]
#[command(name = "openva", version, about = "Record RTSP cameras into a segmented archive and play back any range")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve a live synthetic H.264 camera over RTSP (frames carry a machine-readable time stamp).
    Sim {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8554")]
        listen: String,
        /// Picture size, WIDTHxHEIGHT (width ≥ 640).
        #[arg(long, default_value = "1280x720")]
        size: String,
        /// Frames per second.
        #[arg(long, default_value_t = 25)]
        fps: u32,
        /// Keyframe interval in frames.
        #[arg(long, default_value_t = 50)]
        gop: u32,
        /// Target bit rate in bits per second.
        #[arg(long, default_value_t = 2_000_000)]
        bitrate: u32,
        /// Require this user (Basic or Digest).
        #[arg(long, requires = "password")]
        user: Option<String>,
        /// Password for --user.
        #[arg(long, requires = "user")]
        password: Option<String>,
    },
    /// Record a camera into the archive until --duration ends or SIGINT/SIGTERM.
    /// Repeat --video and --url (pairwise) to record several cameras in one process.
    Record {
        /// Data directory (created if missing).
        #[arg(long)]
        data: PathBuf,
        /// Video name in the archive (repeatable, one per --url).
        #[arg(long, required = true)]
        video: Vec<String>,
        /// Camera URL, rtsp://… (repeatable).
        #[arg(long, required = true)]
        url: Vec<String>,
        /// Camera user name.
        #[arg(long)]
        user: Option<String>,
        /// Camera password.
        #[arg(long, env = "OPENVA_CAMERA_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// RTP transport.
        #[arg(long, default_value = "tcp", value_parser = ["tcp", "udp"])]
        transport: String,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
        /// Segment file length of a new video, ISO 8601 (AVA: PT30S to PT5M; default PT30S).
        /// This and the next two apply when `record` creates the video; an existing video
        /// with other settings is refused (change them with `openva video set`).
        #[arg(long)]
        segment_length: Option<String>,
        /// Delete a new video's segments older than this ISO 8601 duration (e.g. P7D).
        #[arg(long)]
        retention: Option<String>,
        /// Delete a new video's oldest segments while it holds more than this many bytes.
        #[arg(long)]
        max_bytes: Option<String>,
        /// Record video only, even if the camera sends audio.
        #[arg(long)]
        no_audio: bool,
    },
    /// Print AVA's availableMedia for a video: {"timeRanges":[…]}.
    Ranges {
        /// Data directory.
        #[arg(long)]
        data: PathBuf,
        /// Video name.
        #[arg(long)]
        video: String,
        /// year, month, day or full.
        #[arg(long, default_value = "full")]
        precision: String,
        /// Start (ISO 8601 UTC).
        #[arg(long)]
        start: Option<String>,
        /// End (ISO 8601 UTC).
        #[arg(long)]
        end: Option<String>,
    },
    /// Export a wall-clock range of a video as one MP4 (no re-encoding).
    Export {
        /// Data directory.
        #[arg(long)]
        data: PathBuf,
        /// Video name.
        #[arg(long)]
        video: String,
        /// Start (ISO 8601 UTC).
        #[arg(long)]
        start: String,
        /// End (ISO 8601 UTC).
        #[arg(long)]
        end: String,
        /// Output file.
        #[arg(short = 'o', long)]
        output: PathBuf,
        /// fsync the file before reporting success (it then survives a power loss at once;
        /// waits for the disk).
        #[arg(long)]
        sync: bool,
        /// Re-encode with a system preset (e.g. SingleLayer_720p_H264_AAC) instead of copying.
        #[arg(long)]
        preset: Option<String>,
        /// Re-encode to this width (with --height and --mode; one of them keeps the aspect).
        #[arg(long)]
        width: Option<u32>,
        /// Re-encode to this height.
        #[arg(long)]
        height: Option<u32>,
        /// How the picture fits --width x --height: pad (default), preserveAspectRatio, stretch.
        #[arg(long)]
        mode: Option<String>,
        /// Re-encode at this video bit rate (kbit/s).
        #[arg(long)]
        bitrate: Option<u32>,
        /// Re-encode at this frame rate (fewer frames; at most the input's).
        #[arg(long)]
        frame_rate: Option<f64>,
        /// Plugins directory (the `scale` plugin scales).
        #[arg(long, env = "OPENVA_PLUGINS", default_value = "plugins/dist")]
        plugins: PathBuf,
    },
    /// Run the host: live pipelines from AVA topologies, the HTTP API (direct methods, REST,
    /// videos, events), until SIGINT/SIGTERM. Active pipelines resume after a restart.
    Serve {
        /// Data directory (archive and control store; created if missing).
        #[arg(long, default_value = "openva-data")]
        data: PathBuf,
        /// Address of the HTTP API. Beyond loopback every /api route needs a bearer token.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// File holding the API token (default beyond loopback: DATA/api-token, generated).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Processor plugins (*.wasm components) for processor nodes (default: plugins/dist if
        /// it exists).
        #[arg(long, env = "OPENVA_PLUGINS")]
        plugins: Option<PathBuf>,
        /// Pipeline jobs run at once (each uses up to two cores when it re-encodes).
        #[arg(long, env = "OPENVA_JOB_CONCURRENCY", default_value_t = 1)]
        job_concurrency: usize,
        /// Pipeline jobs that may wait beyond those running; more are refused (503).
        #[arg(long, env = "OPENVA_JOB_QUEUE", default_value_t = 16)]
        job_queue: usize,
        /// A folder of topology and live-pipeline files (*.json), applied at start and
        /// watched: adding, changing or removing a file applies it within a second; SIGHUP
        /// re-reads it. See docs/hot-reload.md.
        #[arg(long, env = "OPENVA_TOPOLOGIES")]
        topologies: Option<PathBuf>,
        /// A name the host is reached by (besides its IP addresses, localhost and this
        /// machine's name); requests naming any other host are refused, which stops DNS
        /// rebinding. Repeat for several.
        #[arg(long = "allowed-host", value_name = "NAME")]
        allowed_hosts: Vec<String>,
        /// Memory (MiB) the downloads of archive ranges in progress may hold in all; beyond
        /// it a download is answered 503 ServerBusy.
        #[arg(long, value_name = "MIB", default_value_t = 512)]
        download_memory: u32,
    },
    /// The demo: the host with the built-in simulated camera, recording through the tutorial's
    /// topology (topologies/cvr-video.json). Runs until Ctrl-C or --seconds.
    Demo {
        /// Data directory.
        #[arg(long, default_value = "demo-data")]
        data: PathBuf,
        /// Address of the HTTP API.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Stop after this many seconds and export the last 10 s to --output.
        #[arg(long)]
        seconds: Option<u64>,
        /// Where --seconds writes the MP4 of the last 10 seconds.
        #[arg(short = 'o', long, default_value = "demo.mp4")]
        output: PathBuf,
    },
    /// Processor plugins: list what a plugins directory holds, or run one on a file.
    Plugin {
        #[command(subcommand)]
        cmd: PluginCmd,
    },
    /// AVA's pipeline jobs on a running host: export recorded ranges into file videos.
    Job {
        #[command(subcommand)]
        cmd: JobCmd,
        /// The host's base URL.
        #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
        host: String,
        /// File holding the API token.
        #[arg(long, global = true, env = "OPENVA_TOKEN_FILE")]
        token_file: Option<PathBuf>,
    },
    /// Invoke a direct method on a running host and print its status and reply.
    Call {
        /// Method name, e.g. livePipelineList.
        method: String,
        /// Payload file, or - for standard input (default: {}); @apiVersion is added if missing.
        payload: Option<String>,
        /// The host's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        host: String,
        /// File holding the API token.
        #[arg(long, env = "OPENVA_TOKEN_FILE")]
        token_file: Option<PathBuf>,
    },
    /// Run one of AVA's console-app operations scripts (operations.json) against a host.
    Operations {
        /// The operations file.
        file: PathBuf,
        /// The host's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        host: String,
        /// Do not wait at WaitForInput steps.
        #[arg(long)]
        yes: bool,
        /// File holding the API token.
        #[arg(long, env = "OPENVA_TOKEN_FILE")]
        token_file: Option<PathBuf>,
    },
    /// Change a video's settings: the explicit act that changes retention, size cap or
    /// segment length (a pipeline or `record` naming an existing video never does).
    Video {
        #[command(subcommand)]
        cmd: VideoCmd,
    },
    /// Verify every segment against the index; --repair rebuilds the index from the files.
    Check {
        /// Data directory.
        #[arg(long)]
        data: PathBuf,
        /// Rebuild the index from the segment files alone.
        #[arg(long)]
        repair: bool,
    },
}

fn main() {
    openva::codec::tune_allocator_for_frames();
    openva::api::server::raise_open_file_limit();
    let cli = Cli::parse();
    let default_level = match cli.cmd {
        Cmd::Sim { .. } | Cmd::Record { .. } | Cmd::Serve { .. } | Cmd::Demo { .. } | Cmd::Video { .. } => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .init();
    if let Err(e) = run(cli) {
        // One line, whatever the cause chain holds.
        let msg = format!("{e:#}");
        eprintln!("error: {}", msg.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; "));
        std::process::exit(1);
    }
}

/// The recorder's runtime: one thread. Recording is light I/O; a single thread avoids the
/// cross-thread wake-ups that dominated a multi-threaded runtime's CPU in `bench/ ingest`.
fn recorder_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")
}

/// A watch channel that turns true on SIGINT or SIGTERM (or after `limit`).
fn stop_signal(limit: Option<std::time::Duration>) -> Result<tokio::sync::watch::Receiver<bool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    tokio::spawn(async move {
        let sleep = async {
            match limit {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = sleep => {}
        }
        let _ = tx.send(true);
    });
    Ok(rx)
}

fn parse_time(what: &str, s: &str) -> Result<Time90k> {
    Time90k::parse_iso(s).with_context(|| format!("--{what}"))
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Sim { listen, size, fps, gop, bitrate, user, password } => {
            let (w, h) = size
                .split_once(['x', 'X'])
                .and_then(|(w, h)| Some((w.parse::<usize>().ok()?, h.parse::<usize>().ok()?)))
                .with_context(|| format!("--size '{size}' is not WIDTHxHEIGHT"))?;
            let camera = encoder::Camera::start(encoder::EncoderSettings { width: w, height: h, fps, gop, bitrate })?;
            let auth = user.zip(password).map(|(user, password)| server::Auth { user, password });
            cli::runtime()?.block_on(async move {
                let listener =
                    tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("listening on {listen}"))?;
                let addr = listener.local_addr()?;
                println!("READY rtsp://{addr}/");
                use std::io::Write;
                std::io::stdout().flush()?;
                let mut stop = stop_signal(None)?;
                tokio::select! {
                    _ = server::serve(listener, camera, auth) => {}
                    _ = stop.changed() => {}
                }
                Ok(())
            })
        }
        Cmd::Record {
            data,
            video,
            url,
            user,
            password,
            transport,
            duration,
            segment_length,
            retention,
            max_bytes,
            no_audio,
        } => {
            let given =
                cli::video::Given::parse(segment_length.as_deref(), retention.as_deref(), max_bytes.as_deref(), false)?;
            if let Some(d) = duration
                && !(d > 0.0 && d.is_finite())
            {
                bail!("--duration must be a positive number of seconds");
            }
            if video.len() != url.len() {
                bail!("give one --video per --url ({} videos, {} URLs)", video.len(), url.len());
            }
            for v in &video {
                openva::archive::validate_video_name(v)?;
            }
            let archive = Arc::new(Archive::open_or_create(&data)?);
            cli::video::check_record_settings(&archive, &data, &video, &given)?;
            let config = given.for_creation();
            let udp = transport == "udp";
            let streams: Vec<(String, SourceOptions)> = video
                .into_iter()
                .zip(url)
                .map(|(v, url)| {
                    let (user, password) = (user.clone(), password.clone());
                    (v, SourceOptions { url, user, password, udp, audio: !no_audio })
                })
                .collect();
            let results = recorder_runtime()?.block_on(async move {
                let stop = stop_signal(duration.map(std::time::Duration::from_secs_f64))?;
                Ok::<_, anyhow::Error>(openva::pipeline::record::record_many(archive, streams, config, stop).await?)
            })?;
            let mut total = openva::pipeline::record::RecordSummary::default();
            for (_, s) in &results {
                total.merge(s);
            }
            let mut out = serde_json::to_value(&total)?;
            if results.len() > 1 {
                out["videos"] = results.iter().map(|(v, s)| (v.clone(), serde_json::json!(s))).collect();
            }
            println!("{out}");
            Ok(())
        }
        Cmd::Ranges { data, video, precision, start, end } => {
            let precision: Precision = precision.parse()?;
            let start = start.map(|s| parse_time("start", &s)).transpose()?;
            let end = end.map(|s| parse_time("end", &s)).transpose()?;
            let archive = Archive::open_existing(&data)?;
            let media = archive.available_media(&video, precision, start, end)?;
            println!("{}", serde_json::to_string(&media)?);
            Ok(())
        }
        Cmd::Export {
            data,
            video,
            start,
            end,
            output,
            sync,
            preset,
            width,
            height,
            mode,
            bitrate,
            frame_rate,
            plugins,
        } => {
            let (start, end) = (parse_time("start", &start)?, parse_time("end", &end)?);
            let archive = Archive::open_existing(&data)?;
            let range =
                |(a, b): (Time90k, Time90k)| serde_json::json!({"start": a.to_iso_millis(), "end": b.to_iso_millis()});
            let encode =
                preset.is_some() || width.is_some() || height.is_some() || bitrate.is_some() || frame_rate.is_some();
            if encode {
                let spec =
                    cli::export::encode_spec(preset.as_deref(), width, height, mode.as_deref(), bitrate, frame_rate)?;
                let host = if spec.scale.is_some() { Some(cli::plugin::load(&plugins)?) } else { None };
                let out = cli::export::transcode(&archive, &video, (start, end), &spec, host.as_ref(), &output)?;
                println!(
                    "{}",
                    serde_json::json!({
                        "video": video,
                        "file": output,
                        "requested": range((start, end)),
                        "actual": out.actual.iter().map(|r| range(*r)).collect::<Vec<_>>(),
                        "gaps": out.gaps.iter().map(|g| range(*g)).collect::<Vec<_>>(),
                        "frames": out.frames,
                        "width": out.width,
                        "height": out.height,
                        "bytes": out.bytes,
                    })
                );
                return Ok(());
            }
            let plan = archive.plan_export(&video, start, end)?;
            let bar = indicatif::ProgressBar::new(plan.layout.total_len);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            plan.write_to(&output, sync, |n| bar.set_position(n))?;
            bar.finish_and_clear();
            let out = serde_json::json!({
                "video": video,
                "file": output,
                "requested": range(plan.requested),
                "actual": range(plan.actual),
                "gaps": plan.gaps.iter().map(|g| range(*g)).collect::<Vec<_>>(),
                "frames": plan.frames,
                "bytes": plan.layout.total_len,
            });
            println!("{}", serde_json::to_string(&out)?);
            Ok(())
        }
        Cmd::Serve {
            data,
            listen,
            token_file,
            plugins,
            job_concurrency,
            job_queue,
            topologies,
            allowed_hosts,
            download_memory,
        } => {
            let web = cli::host::WebOptions { allowed_hosts, download_memory_mib: download_memory };
            cli::host::serve(
                data,
                listen,
                token_file,
                plugins.or_else(cli::host::default_plugins_dir),
                openva::pipeline::jobs::JobOptions { concurrency: job_concurrency.max(1), max_queued: job_queue },
                topologies,
                &web,
            )
        }
        Cmd::Demo { data, listen, seconds, output } => cli::host::demo(data, listen, seconds, output),
        Cmd::Plugin { cmd: PluginCmd::List { plugins } } => cli::plugin::list(&plugins),
        Cmd::Plugin { cmd: PluginCmd::Run { name, config, input, output, plugins } } => {
            cli::plugin::run(&plugins, &name, config.as_deref(), &input, &output)
        }
        Cmd::Job { cmd, host, token_file } => {
            let client = cli::client::Client::new(&host, read_token(token_file.as_deref())?);
            match cmd {
                JobCmd::Create { name, topology, params, description, wait } => {
                    cli::job::create(&client, &name, &topology, &params, description.as_deref(), wait)
                }
                JobCmd::Get { name } => cli::job::simple(&client, "get", Some(&name)),
                JobCmd::List => cli::job::simple(&client, "list", None),
                JobCmd::Wait { name } => cli::job::wait_for(&client, &name),
                JobCmd::Cancel { name } => cli::job::simple(&client, "cancel", Some(&name)),
                JobCmd::Delete { name } => cli::job::simple(&client, "delete", Some(&name)),
            }
        }
        Cmd::Call { method, payload, host, token_file } => {
            let client = cli::client::Client::new(&host, read_token(token_file.as_deref())?);
            let payload = cli::client::read_payload(payload.as_deref())?;
            let (status, reply) = client.call(&method, &payload)?;
            println!("{}", serde_json::json!({"status": status, "payload": reply}));
            if status >= 400 {
                bail!("{method} failed with status {status}");
            }
            Ok(())
        }
        Cmd::Operations { file, host, yes, token_file } => {
            let client = cli::client::Client::new(&host, read_token(token_file.as_deref())?);
            let failed = cli::client::run_operations(&client, &file, yes)?;
            if failed > 0 {
                bail!("{failed} operation(s) failed");
            }
            Ok(())
        }
        Cmd::Video {
            cmd:
                VideoCmd::Set { video, data, host, token_file, retention, max_bytes, segment_length, title, description },
        } => {
            let given =
                cli::video::Given::parse(segment_length.as_deref(), retention.as_deref(), max_bytes.as_deref(), true)?;
            let text = |t: Option<String>| t.map(|t| Some(t).filter(|t| !t.is_empty()));
            let update = openva::archive::VideoUpdate {
                title: text(title),
                description: text(description),
                segment_length_90k: given.segment_length_90k,
                retention_90k: given.retention_90k,
                max_bytes: given.max_bytes,
            };
            if update == openva::archive::VideoUpdate::default() {
                bail!("nothing to change: give --retention, --max-bytes, --segment-length, --title or --description");
            }
            let out = match (host, data) {
                (Some(host), _) => {
                    let client = cli::client::Client::new(&host, read_token(token_file.as_deref())?);
                    cli::video::set_on_host(&client, &video, &update)?
                }
                (None, Some(data)) => cli::video::set_in_archive(&data, &video, &update)?,
                (None, None) => bail!("give --data DIR or --host URL"),
            };
            println!("{out}");
            Ok(())
        }
        Cmd::Check { data, repair } => {
            let report = if repair { check::repair(&data)? } else { check::check(&data)? };
            println!("{}", serde_json::to_string(&report)?);
            if !report.problems.is_empty() && !repair {
                bail!(
                    "{} problem(s) found; `openva check --repair` rebuilds the index from the segment files",
                    report.problems.len()
                );
            }
            Ok(())
        }
    }
}

#[derive(Subcommand)]
enum JobCmd {
    /// Create a job from a batch topology (PUT /api/pipelineJobs/NAME).
    Create {
        /// Job name.
        name: String,
        /// The batch topology.
        #[arg(long)]
        topology: String,
        /// A parameter value, NAME=VALUE (repeatable).
        #[arg(long = "param")]
        params: Vec<String>,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        /// Wait for the job to finish, with a progress bar; fails unless it completes.
        #[arg(long)]
        wait: bool,
    },
    /// Show one job.
    Get {
        /// Job name.
        name: String,
    },
    /// List the jobs.
    List,
    /// Wait for a job to finish (progress bar).
    Wait {
        /// Job name.
        name: String,
    },
    /// Cancel a processing job.
    Cancel {
        /// Job name.
        name: String,
    },
    /// Delete a finished job (its video stays).
    Delete {
        /// Job name.
        name: String,
    },
}

#[derive(Subcommand)]
enum VideoCmd {
    /// Change a video's title, description, retention, size cap or segment length (what is
    /// not given stays); a recording video applies them from its next segment.
    Set {
        /// Video name.
        #[arg(long)]
        video: String,
        /// Data directory of an archive no host is using.
        #[arg(long, required_unless_present = "host", conflicts_with = "host")]
        data: Option<PathBuf>,
        /// A running host's base URL (the change goes through its API and is published as an
        /// event).
        #[arg(long)]
        host: Option<String>,
        /// File holding the host's API token.
        #[arg(long, env = "OPENVA_TOKEN_FILE", requires = "host")]
        token_file: Option<PathBuf>,
        /// Retention period, ISO 8601 (e.g. P7D), or `none` to keep everything.
        #[arg(long)]
        retention: Option<String>,
        /// Size cap in bytes, or `none`.
        #[arg(long)]
        max_bytes: Option<String>,
        /// Segment length, ISO 8601 (PT30S to PT5M in steps of 30 s).
        #[arg(long)]
        segment_length: Option<String>,
        /// Title (empty: none).
        #[arg(long)]
        title: Option<String>,
        /// Description (empty: none).
        #[arg(long)]
        description: Option<String>,
    },
}

#[derive(Subcommand)]
enum PluginCmd {
    /// List the plugins in the directory (name, version, mode), one JSON line each.
    List {
        /// Plugins directory (*.wasm components).
        #[arg(long, env = "OPENVA_PLUGINS", default_value = "plugins/dist")]
        plugins: PathBuf,
    },
    /// Decode IN.mp4, run the plugin on every frame, encode OUT.mp4; inferences go to stdout.
    Run {
        /// Plugin name (as its describe says).
        name: String,
        /// The node configuration, a JSON object.
        #[arg(long)]
        config: Option<String>,
        /// Input MP4 (H.264).
        #[arg(long)]
        input: PathBuf,
        /// Output MP4.
        #[arg(short = 'o', long)]
        output: PathBuf,
        /// Plugins directory.
        #[arg(long, env = "OPENVA_PLUGINS", default_value = "plugins/dist")]
        plugins: PathBuf,
    },
}

fn read_token(file: Option<&std::path::Path>) -> Result<Option<String>> {
    file.map(|f| {
        std::fs::read_to_string(f).map(|t| t.trim().to_owned()).with_context(|| format!("reading {}", f.display()))
    })
    .transpose()
}
