//! `openva serve` and `openva demo`: the host (runtime + HTTP API) in the foreground.

use anyhow::{Context, Result, bail};
use openva::api::{self, ApiState};
use openva::events::Bus;
use openva::ingest::sim::{encoder, server};
use openva::pipeline::live::Runtime;
use openva::pipeline::live::RuntimeOptions;
use openva::time::Time90k;
use openva::topology::{ParameterDefinition, PipelineSpec};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The tutorial's topology, built in so the demo works from any directory.
const CVR_TOPOLOGY: &str = include_str!("../../../topologies/cvr-video.json");

/// The API token: from `--token-file`; else, when listening beyond loopback, the one in the
/// data directory, generated (and printed once) at first start. Loopback without a file: none.
fn resolve_token(listen: SocketAddr, data: &Path, token_file: Option<&Path>) -> Result<Option<String>> {
    if let Some(f) = token_file {
        let t = std::fs::read_to_string(f).with_context(|| format!("reading --token-file {}", f.display()))?;
        let t = t.trim().to_owned();
        if t.len() < 16 {
            bail!("the token in {} is shorter than 16 characters", f.display());
        }
        return Ok(Some(t));
    }
    if listen.ip().is_loopback() {
        return Ok(None);
    }
    let path = data.join("api-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_owned();
        if t.len() >= 16 {
            return Ok(Some(t));
        }
        // Empty or cut short (a crash or full disk while writing it): never run open; make
        // a new one.
        tracing::warn!("{} holds no usable token; generating a new one", path.display());
    }
    use rand::Rng;
    let token: String =
        rand::thread_rng().sample_iter(&rand::distributions::Alphanumeric).take(40).map(char::from).collect();
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        // Written whole under a temporary name, then renamed: the token file is never partial.
        let tmp = data.join(".api-token.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        writeln!(f, "{token}").and_then(|()| f.sync_all()).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    }
    // Where it is, not what it is: terminals are logged and shared.
    eprintln!("API token generated: read it from {} (only its owner can)", path.display());
    Ok(Some(token))
}

/// The built plugins next to the sources (`plugins/dist`), when they exist.
pub fn default_plugins_dir() -> Option<PathBuf> {
    let d = PathBuf::from("plugins/dist");
    d.is_dir().then_some(d)
}

/// A future that resolves on SIGINT or SIGTERM.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// What the host's outward sides answer to and may hold (`serve`'s flags): HTTP, and the
/// MQTT link.
pub struct WebOptions {
    /// `--allowed-host` names.
    pub allowed_hosts: Vec<String>,
    /// `--download-memory`.
    pub download_memory_mib: u32,
    /// `--mqtt` and its settings: the MQTT link.
    pub mqtt: Option<openva::mqtt::MqttConfig>,
    /// `--transcode-slots`: segments transcoded for playback at once.
    pub transcode_slots: usize,
    /// `--transcode-cache`: MiB of transcoded segments kept on disk.
    pub transcode_cache_mib: u64,
    /// `--remote`: the remote tier closed segments are copied to.
    pub remote: Option<openva::remote::RemoteConfig>,
    /// `--remote-uploads`: segments uploaded at once.
    pub remote_uploads: usize,
    /// `--remote-read-cache`: MiB of remote chunks kept for reading.
    pub remote_read_cache_mib: u64,
    /// `--remote-read-chunk`: KiB per ranged GET.
    pub remote_read_chunk_kib: u64,
    /// `--read-only`: a playback gateway of the `--remote` bucket.
    pub read_only: bool,
    /// `--remote-sync`: time between a gateway's passes over the bucket.
    pub remote_sync: std::time::Duration,
    /// `--remote-videos all` (`true`) or `chosen`.
    pub remote_videos_all: bool,
}

impl Default for WebOptions {
    fn default() -> Self {
        WebOptions {
            allowed_hosts: Vec::new(),
            download_memory_mib: 512,
            mqtt: None,
            transcode_slots: 1,
            transcode_cache_mib: 1024,
            remote: None,
            remote_uploads: 2,
            remote_read_cache_mib: 1024,
            remote_read_chunk_kib: 1024,
            read_only: false,
            remote_sync: std::time::Duration::from_secs(15),
            remote_videos_all: true,
        }
    }
}

struct Host {
    runtime: Arc<Runtime>,
    /// Watchers of the topologies and plugins folders (kept alive while the host runs).
    _watchers: Vec<notify::RecommendedWatcher>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    stop: tokio::sync::oneshot::Sender<()>,
    mqtt: Option<openva::mqtt::Link>,
    remote: Option<openva::remote::upload::Uploader>,
    gateway: Option<openva::remote::gateway::Gateway>,
}

/// The plugin host with every plugin of `dir` loaded (a bad file is skipped with a warning),
/// or none when there is no directory.
fn load_plugins(dir: Option<&Path>) -> Result<Option<Arc<openva::plugins::PluginHost>>> {
    let Some(dir) = dir else { return Ok(None) };
    let cache = data_cache_dir();
    let host = openva::plugins::PluginHost::new(openva::plugins::Limits::default(), cache)?;
    let loaded = host.load_dir(dir)?;
    let ok = loaded.iter().filter(|(_, r)| r.is_ok()).count();
    tracing::info!("{ok} plugin(s) loaded from {}", dir.display());
    Ok(Some(host))
}

fn data_cache_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/openva/plugins"))
}

async fn start_host(
    data: &Path,
    listen: &str,
    token_file: Option<&Path>,
    plugins: Option<&Path>,
    options: RuntimeOptions,
    web: &WebOptions,
) -> Result<Host> {
    let topologies = options.folder.clone();
    let topologies = topologies.as_deref();
    let listen_addr: SocketAddr = listen.parse().with_context(|| format!("--listen '{listen}' is not IP:PORT"))?;
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let token = resolve_token(listen_addr, data, token_file)?;
    let host_name = std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_owned()).unwrap_or_default();
    let events =
        Arc::new(Bus::new(format!("/openva/hosts/{}", if host_name.is_empty() { "local" } else { &host_name })));
    let plugin_dir = plugins.map(Path::to_owned);
    let plugins = load_plugins(plugins)?;
    if let Some(dir) = topologies {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let runtime = Runtime::open_with(data, events.clone(), plugins, options).await?;
    // Segments whose local copy was evicted are read from the remote tier, by ranges, through
    // a chunk cache on local disk.
    let remote_reads = match &web.remote {
        Some(c) => {
            let dir = data.join("cache/remote");
            let reader = openva::remote::read::ChunkReader::new(
                c.build()?,
                tokio::runtime::Handle::current(),
                dir.clone(),
                web.remote_read_cache_mib.saturating_mul(1 << 20),
            )
            .with_context(|| format!("preparing {}", dir.display()))?
            .with_chunk(web.remote_read_chunk_kib.saturating_mul(1024))
            .with_events(events.clone(), c.target());
            let stats = reader.stats.clone();
            runtime.archive().set_remote_reader(Arc::new(reader));
            Some(stats)
        }
        None => None,
    };
    let (remote, gateway) = match &web.remote {
        Some(c) if web.read_only => {
            tracing::info!(target = c.target(), "read-only gateway of a remote tier");
            let g = openva::remote::gateway::Gateway::start(runtime.archive().clone(), c, events, web.remote_sync)?;
            (None, Some(g))
        }
        Some(c) => {
            // A gateway's index lists other hosts' objects: an uploader would take them for
            // its own (and delete them with retention).
            if runtime.archive().is_gateway()? {
                bail!(
                    "{} holds a read-only gateway's index: record with another data directory, or serve it with \
                     --read-only",
                    data.display()
                );
            }
            runtime.archive().set_remote_videos_all(web.remote_videos_all)?;
            tracing::info!(target = c.target(), all_videos = web.remote_videos_all, "remote tier");
            let u = openva::remote::upload::Uploader::start(runtime.archive().clone(), c, events, web.remote_uploads)?;
            (Some(u), None)
        }
        None => (None, None),
    };
    let mqtt = match &web.mqtt {
        Some(c) => {
            tracing::info!(broker = c.target(), prefix = c.prefix, "MQTT link");
            Some(openva::mqtt::Link::start(c.clone(), runtime.clone())?)
        }
        None => None,
    };
    let mut watchers = Vec::new();
    if let Some(dir) = topologies {
        let w = openva::pipeline::folder::watch(runtime.clone(), dir.to_owned())
            .with_context(|| format!("watching {}", dir.display()))?;
        watchers.push(w);
    }
    if let Some(dir) = plugin_dir {
        let w = openva::pipeline::folder::watch_plugins(runtime.clone(), dir.clone())
            .with_context(|| format!("watching {}", dir.display()))?;
        watchers.extend(w);
    }
    let listener =
        tokio::net::TcpListener::bind(listen_addr).await.with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let variants_dir = data.join("cache/variants");
    let variants = openva::pipeline::variant::cache::VariantCache::new(
        variants_dir.clone(),
        web.transcode_cache_mib.saturating_mul(1 << 20),
        web.transcode_slots,
    )
    .with_context(|| format!("preparing {}", variants_dir.display()))?;
    let state = ApiState {
        runtime: runtime.clone(),
        auth: token.as_deref().map(api::auth::Auth::new),
        allowed_hosts: api::guard::AllowedHosts::new(&web.allowed_hosts),
        downloads: api::Downloads::new(web.download_memory_mib),
        variants: Arc::new(variants),
        remote: remote.as_ref().map(|u| u.status.clone()),
        remote_reads,
        gateway: gateway.as_ref().map(|g| g.status.clone()),
        mqtt: mqtt.as_ref().map(|m| m.stats.clone()),
    };
    let server = tokio::spawn(api::serve(listener, state, api::server::ConnLimits::default(), async move {
        let _ = stopped.await;
    }));
    Ok(Host { runtime, _watchers: watchers, addr, server, stop, mqtt, remote, gateway })
}

impl Host {
    async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        // Open SSE streams would keep a graceful shutdown waiting; give it a moment.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.server).await;
        self.runtime.shutdown().await;
        // After the pipelines: their last events go out, then `stopped`.
        if let Some(m) = self.mqtt {
            m.stop().await;
        }
        if let Some(r) = self.remote {
            r.stop().await;
        }
        if let Some(g) = self.gateway {
            g.stop().await;
        }
        Ok(())
    }
}

/// `openva serve`.
pub fn serve(
    data: PathBuf,
    listen: String,
    token_file: Option<PathBuf>,
    plugins: Option<PathBuf>,
    options: RuntimeOptions,
    web: &WebOptions,
) -> Result<()> {
    super::runtime()?.block_on(async move {
        let shutdown = shutdown_signal()?;
        let mut host = start_host(&data, &listen, token_file.as_deref(), plugins.as_deref(), options, web).await?;
        println!("READY http://{}/", host.addr);
        use std::io::Write;
        std::io::stdout().flush()?;
        let failed = tokio::select! {
            _ = shutdown => None,
            r = &mut host.server => Some(r),
        };
        match failed {
            None => host.stop().await,
            Some(r) => {
                host.runtime.shutdown().await;
                r.context("the API server failed")?.context("the API server failed")
            }
        }
    })
}

/// `openva demo`: the host with the built-in simulated camera recording through the
/// tutorial's topology. Runs until Ctrl-C, or for `seconds` and then exports the last 10 s.
pub fn demo(data: PathBuf, listen: String, seconds: Option<u64>, output: PathBuf) -> Result<()> {
    if seconds.is_some_and(|s| s < 4) {
        bail!("--seconds must be at least 4");
    }
    let camera = encoder::Camera::start(encoder::EncoderSettings {
        width: 1280,
        height: 720,
        fps: 25,
        gop: 50,
        bitrate: 2_000_000,
        motion: None,
    })?;
    super::runtime()?.block_on(async move {
        let shutdown = shutdown_signal()?;
        let cam = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("listening on loopback")?;
        let rtsp_url = format!("rtsp://{}/demo", cam.local_addr()?);
        tokio::spawn(server::serve(cam, camera, None));
        let plugins = default_plugins_dir();
        let host =
            start_host(&data, &listen, None, plugins.as_deref(), RuntimeOptions::default(), &WebOptions::default())
                .await?;
        let rt = host.runtime.clone();
        // A pipeline left active by an earlier demo points at that run's camera: stop it first.
        if rt.pipeline_get("demo").is_ok() {
            rt.deactivate("demo").await.context("demo: stopping the previous demo pipeline")?;
        }
        let topology = openva::topology::parse_str(CVR_TOPOLOGY).context("built-in topology")?;
        let spec = PipelineSpec {
            description: Some("openva demo: the built-in simulated camera".into()),
            topology_name: topology.name.clone(),
            parameters: [("rtspUrl", rtsp_url.as_str()), ("videoName", "demo")]
                .into_iter()
                .map(|(name, value)| ParameterDefinition { name: name.into(), value: value.into() })
                .collect(),
        };
        rt.topology_set(topology).await.context("demo: setting the topology")?;
        rt.pipeline_set("demo", spec).await.context("demo: setting the live pipeline")?;
        rt.activate("demo").await.context("demo: activating the pipeline")?;
        let base = format!("http://{}", host.addr);
        let now = Time90k::now();
        eprintln!(
            "openva demo: simulated camera {rtsp_url} → live pipeline 'demo' → video 'demo' in {}",
            data.display()
        );
        eprintln!("  events:          curl -N {base}/api/events");
        eprintln!("  pipeline:        curl {base}/api/livePipelines/demo");
        eprintln!("  video:           curl {base}/api/videos/demo");
        eprintln!("  recorded ranges: curl '{base}/api/videos/demo/availableMedia?precision=full'");
        eprintln!(
            "  a clip:          curl -o clip.mp4 '{base}/api/videos/demo/content.mp4?startTime={}&endTime={}'",
            now.to_iso_millis(),
            Time90k(now.0 + 10 * openva::time::TICKS_PER_SEC).to_iso_millis()
        );
        eprintln!("  metrics:         curl {base}/metrics");
        match seconds {
            None => {
                eprintln!("Ctrl-C stops.");
                shutdown.await;
            }
            Some(s) => {
                tokio::select! {
                    _ = shutdown => {}
                    _ = tokio::time::sleep(std::time::Duration::from_secs(s)) => {}
                }
            }
        }
        rt.deactivate("demo").await.context("demo: deactivating")?;
        let archive = rt.archive().clone();
        let summary = tokio::task::spawn_blocking(move || -> Result<Value> {
            let ranges =
                archive.available_media("demo", openva::archive::ranges::Precision::Full, None, None, false)?;
            let (_, end) =
                archive.recorded_ranges("demo", None, None)?.last().copied().context("nothing was recorded")?;
            let start = Time90k(end.0 - 10 * openva::time::TICKS_PER_SEC);
            let plan = archive.plan_export("demo", start, end)?;
            plan.write_to(&archive, &output, false, |_| {})?;
            Ok(json!({
                "availableMedia": ranges,
                "exported": {"file": output, "start": plan.actual.0.to_iso_millis(),
                             "end": plan.actual.1.to_iso_millis(), "bytes": plan.layout.total_len()},
            }))
        })
        .await??;
        println!("{summary}");
        host.stop().await
    })
}
