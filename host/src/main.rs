//! The `openva` command line. Errors are reported in one line on stderr with a non-zero exit.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

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
    Sim(cli::sim::SimArgs),
    /// Record a camera into the archive until --duration ends or SIGINT/SIGTERM.
    /// Repeat --video and --url (pairwise) to record several cameras in one process.
    Record(cli::record::RecordArgs),
    /// Print AVA's availableMedia for a video: {"timeRanges":[…]}.
    Ranges(cli::ranges::RangesArgs),
    /// Export a wall-clock range of a video as one MP4 (no re-encoding).
    Export(cli::export::ExportArgs),
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
        /// Where file sinks write: a topology's baseDirectoryPath (such as /var/media) is placed
        /// under it, as AVA's container saw it through a volume mount; nothing is ever written
        /// outside it. Default: DATA/files.
        #[arg(long, env = "OPENVA_FILE_SINK_ROOT", value_name = "DIR")]
        file_sink_root: Option<PathBuf>,
        /// An MQTT broker, mqtt://[user:password@]host[:port] or mqtts://…: events out (the SSE
        /// envelope) and hub messages in (docs/mqtt.md). The host starts and keeps retrying when
        /// the broker is away.
        #[arg(long, env = "OPENVA_MQTT", value_name = "URL")]
        mqtt: Option<String>,
        /// An address extension nodes may call although the host refuses it by default
        /// (link-local and cloud metadata addresses, this host's own API: docs/extensions.md).
        /// Repeat for several.
        #[arg(long, value_name = "IP")]
        extension_allow: Vec<std::net::IpAddr>,
        /// Seconds an extension's server has to answer one request.
        #[arg(long, default_value_t = 10.0, value_parser = parse_timeout)]
        extension_timeout: f64,
        /// The MQTT client id (one per host on a broker).
        #[arg(long, env = "OPENVA_MQTT_CLIENT_ID", default_value = "openva")]
        mqtt_client_id: String,
        /// The MQTT topic prefix.
        #[arg(long, env = "OPENVA_MQTT_PREFIX", default_value = "openva")]
        mqtt_prefix: String,
        /// CA certificates (PEM) trusted for mqtts:// besides the system's.
        #[arg(long, value_name = "FILE")]
        mqtt_ca: Option<PathBuf>,
        /// A name the host is reached by (besides its IP addresses, localhost and this
        /// machine's name); requests naming any other host are refused, which stops DNS
        /// rebinding. Repeat for several.
        #[arg(long = "allowed-host", value_name = "NAME")]
        allowed_hosts: Vec<String>,
        /// Memory (MiB) the downloads of archive ranges in progress may hold in all; beyond
        /// it a download is answered 503 ServerBusy.
        #[arg(long, value_name = "MIB", default_value_t = 512)]
        download_memory: u32,
        /// Segments transcoded for playback at once (`?codec=h264&height=…`), each on one
        /// core; a request beyond them is answered 503 with Retry-After, so playback never
        /// takes the CPU recording needs.
        #[arg(long, value_name = "N", default_value_t = 1)]
        transcode_slots: usize,
        /// Disk (MiB) for transcoded segments, under DATA/cache/variants (emptied at start);
        /// the least recently used go first.
        #[arg(long, value_name = "MIB", default_value_t = 1024)]
        transcode_cache: u64,
        /// A remote tier every closed segment is copied to: `s3://BUCKET/PREFIX` or
        /// `azure://CONTAINER/PREFIX` (docs/remote.md). Credentials come from the environment
        /// (AWS_*, AZURE_*) or --remote-credentials, never from this URL.
        #[arg(long, env = "OPENVA_REMOTE", value_name = "URL")]
        remote: Option<String>,
        /// A file of the remote store's settings, `key=value` per line (object_store's keys,
        /// e.g. aws_access_key_id, azure_storage_account_key).
        #[arg(long, env = "OPENVA_REMOTE_CREDENTIALS", value_name = "FILE")]
        remote_credentials: Option<PathBuf>,
        /// Segments uploaded to the remote tier at once.
        #[arg(long, value_name = "N", default_value_t = 2)]
        remote_uploads: usize,
        /// MiB of remote segments' chunks kept on local disk for reading (segments whose local
        /// copy was evicted are read from the remote tier through it).
        #[arg(long, value_name = "MIB", default_value_t = 1024)]
        remote_read_cache: u64,
        /// KiB per ranged GET of a remote segment (and per cached chunk): fewer requests
        /// against fetching bytes nobody reads.
        #[arg(long, value_name = "KIB", default_value_t = 1024)]
        remote_read_chunk: u64,
        /// A read-only playback gateway: record and upload nothing, and serve every video the
        /// recorders under --remote (its prefix, or one level below) keep there.
        #[arg(long, requires = "remote")]
        read_only: bool,
        /// Which videos go to the remote tier: `all` (but those set `--remote-tier off`), or
        /// `chosen` (only those set `--remote-tier on`; `archival.remoteTier` in the API).
        #[arg(long, requires = "remote", value_enum, default_value_t = RemoteVideos::All)]
        remote_videos: RemoteVideos,
        /// Seconds between a gateway's passes over the bucket (new segments show within this
        /// plus the recorders' 10 s manifest interval).
        #[arg(long, value_name = "SECONDS", default_value_t = 15.0)]
        remote_sync: f64,
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
    Check(cli::check::CheckArgs),
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

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Sim(args) => cli::sim::run(args),
        Cmd::Record(args) => cli::record::run(args),
        Cmd::Ranges(args) => cli::ranges::run(args),
        Cmd::Export(args) => cli::export::run(args),
        Cmd::Serve {
            data,
            listen,
            token_file,
            plugins,
            job_concurrency,
            job_queue,
            topologies,
            file_sink_root,
            mqtt,
            extension_allow,
            extension_timeout,
            mqtt_client_id,
            mqtt_prefix,
            mqtt_ca,
            allowed_hosts,
            download_memory,
            transcode_slots,
            transcode_cache,
            remote,
            remote_credentials,
            remote_uploads,
            remote_read_cache,
            remote_read_chunk,
            read_only,
            remote_sync,
            remote_videos,
        } => {
            let mqtt = match mqtt {
                None => None,
                Some(url) => {
                    let mut c = openva::mqtt::MqttConfig::parse(&url, &mqtt_client_id, &mqtt_prefix)?;
                    c.ca_file = mqtt_ca;
                    Some(c)
                }
            };
            let web = cli::host::WebOptions {
                allowed_hosts,
                download_memory_mib: download_memory,
                mqtt,
                transcode_slots: transcode_slots.max(1),
                transcode_cache_mib: transcode_cache,
                remote: remote
                    .map(|url| openva::remote::RemoteConfig::parse(&url, remote_credentials.as_deref()))
                    .transpose()?,
                remote_uploads: remote_uploads.max(1),
                remote_read_cache_mib: remote_read_cache.max(1),
                remote_read_chunk_kib: remote_read_chunk.max(4),
                read_only,
                remote_sync: std::time::Duration::from_secs_f64(remote_sync.clamp(1.0, 3600.0)),
                remote_videos_all: remote_videos == RemoteVideos::All,
            };
            let options = openva::pipeline::live::RuntimeOptions {
                jobs: openva::pipeline::jobs::JobOptions { concurrency: job_concurrency.max(1), max_queued: job_queue },
                folder: topologies,
                file_sink_root,
                extensions: openva::pipeline::live::ExtensionOptions {
                    policy: openva::extension::guard::AddressPolicy {
                        own: std::net::ToSocketAddrs::to_socket_addrs(&listen).ok().and_then(|mut a| a.next()),
                        allowed: extension_allow,
                    },
                    timeout: std::time::Duration::from_secs_f64(extension_timeout),
                },
                read_only,
            };
            cli::host::serve(data, listen, token_file, plugins.or_else(cli::host::default_plugins_dir), options, &web)
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
                VideoCmd::Set {
                    video,
                    data,
                    host,
                    token_file,
                    retention,
                    max_bytes,
                    segment_length,
                    title,
                    description,
                    remote_tier,
                },
        } => {
            let given =
                cli::video::Given::parse(segment_length.as_deref(), retention.as_deref(), max_bytes.as_deref(), true)?;
            let text = |t: Option<String>| t.map(|t| Some(t).filter(|t| !t.is_empty()));
            let update = openva::archive::VideoUpdate {
                title: text(title),
                description: text(description),
                segment_length: given.segment_length,
                retention: given.retention,
                max_bytes: given.max_bytes,
                remote_tier: remote_tier.map(|t| match t {
                    RemoteTier::On => Some(true),
                    RemoteTier::Off => Some(false),
                    RemoteTier::Host => None,
                }),
            };
            if update == openva::archive::VideoUpdate::default() {
                bail!(
                    "nothing to change: give --retention, --max-bytes, --segment-length, --remote-tier, --title or \
                     --description"
                );
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
        Cmd::Check(args) => cli::check::run(args),
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
        /// Whether its closed segments are copied to the host's remote tier: `on`, `off`, or
        /// `host` (follow the host's --remote-videos).
        #[arg(long, value_enum)]
        remote_tier: Option<RemoteTier>,
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

/// `serve --remote-videos`: which videos the host copies to its remote tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum RemoteVideos {
    /// Every video but those set off.
    All,
    /// Only the videos set on.
    Chosen,
}

/// `video set --remote-tier`: a video's own choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum RemoteTier {
    /// Copied to the host's remote tier.
    On,
    /// Kept on local disk only.
    Off,
    /// As the host's --remote-videos says.
    Host,
}

fn read_token(file: Option<&std::path::Path>) -> Result<Option<String>> {
    file.map(|f| {
        std::fs::read_to_string(f).map(|t| t.trim().to_owned()).with_context(|| format!("reading {}", f.display()))
    })
    .transpose()
}

/// `--extension-timeout`: seconds, from 0.1 to 300.
fn parse_timeout(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.1..=300.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a number of seconds from 0.1 to 300")),
    }
}
