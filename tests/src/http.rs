//! HTTP helpers for tests of the host: start `openva serve`, call direct methods and REST
//! routes, and collect Server-Sent Events in the background.

use crate::{Proc, openva_bin, spawn_ready};
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Starts `openva serve --data DATA --listen 127.0.0.1:0 EXTRA…`; returns it and its base URL
/// (without the trailing slash).
pub fn start_host(data: &Path, extra: &[&str]) -> Result<(Proc, String)> {
    start_host_on(data, "127.0.0.1:0", extra)
}

/// [`start_host`] listening on `listen` (beyond loopback the API needs a token: pass
/// `--token-file`). The returned base URL uses 127.0.0.1.
pub fn start_host_on(data: &Path, listen: &str, extra: &[&str]) -> Result<(Proc, String)> {
    start_host_env(data, listen, extra, &[])
}

/// [`start_host_on`] with extra environment variables (e.g. a preloaded fault shim).
pub fn start_host_env(
    data: &Path,
    listen: &str,
    extra: &[&str],
    env: &[(&str, std::ffi::OsString)],
) -> Result<(Proc, String)> {
    let mut cmd = Command::new(openva_bin());
    cmd.args(["serve", "--data"]).arg(data).args(["--listen", listen]).args(extra);
    cmd.envs(env.iter().map(|(k, v)| (*k, v)));
    let (p, url) = spawn_ready("openva serve", cmd, Duration::from_secs(30))?;
    Ok((p, url.trim_end_matches('/').replace("//0.0.0.0:", "//127.0.0.1:")))
}

/// A reply: status, headers we look at, body.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (`Null` when empty).
    pub fn json(&self) -> Result<Value> {
        if self.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).with_context(|| {
            format!("status {} body is not JSON: {}", self.status, String::from_utf8_lossy(&self.body))
        })
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Any request; `body` is sent as is with `content-type: application/json`.
pub fn request(method: &str, url: &str, body: Option<&[u8]>, headers: &[(&str, &str)]) -> Result<Reply> {
    let mut b = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = match body {
        Some(bytes) => {
            let req = b.header("content-type", "application/json").body(bytes.to_vec())?;
            agent().run(req)
        }
        None => agent().run(b.body(())?),
    }
    .with_context(|| format!("{method} {url}"))?;
    let status = resp.status().as_u16();
    let headers =
        resp.headers().iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())).collect();
    let body = resp.into_body().with_config().limit(1 << 30).read_to_vec()?;
    Ok(Reply { status, headers, body })
}

/// Invokes a direct method; returns status and payload.
pub fn method(base: &str, name: &str, payload: &Value) -> Result<(u16, Value)> {
    let r = request("POST", &format!("{base}/api/methods/{name}"), Some(payload.to_string().as_bytes()), &[])?;
    Ok((r.status, r.json()?))
}

/// Events received by a background SSE reader.
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<Value>>>);

impl Events {
    /// Subscribes to `base/api/events` (with an optional `?pipeline=` filter).
    pub fn subscribe(base: &str, pipeline: Option<&str>) -> Result<Events> {
        Events::subscribe_with(base, pipeline, None)
    }

    /// [`Events::subscribe`], with what the host still holds of this boot replayed first (a
    /// `Last-Event-ID` of another boot replays everything).
    pub fn subscribe_from_start(base: &str, pipeline: Option<&str>) -> Result<Events> {
        Events::subscribe_with(base, pipeline, Some("0-0"))
    }

    fn subscribe_with(base: &str, pipeline: Option<&str>, last_id: Option<&str>) -> Result<Events> {
        let url = match pipeline {
            Some(p) => format!("{base}/api/events?pipeline={p}"),
            None => format!("{base}/api/events"),
        };
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut req = agent.get(&url);
        if let Some(id) = last_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = req.call().with_context(|| format!("GET {url}"))?;
        if resp.status() != 200 {
            bail!("GET {url}: {}", resp.status());
        }
        let ev = Events::default();
        let sink = ev.0.clone();
        let reader = BufReader::new(resp.into_body().into_reader());
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                if let Some(data) = line.strip_prefix("data:")
                    && let Ok(v) = serde_json::from_str::<Value>(data.trim())
                {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        Ok(ev)
    }

    /// Everything received so far.
    pub fn all(&self) -> Vec<Value> {
        self.0.lock().unwrap().clone()
    }

    /// Short event type names (after the last dot) received so far, in order.
    pub fn types(&self) -> Vec<String> {
        self.all()
            .iter()
            .map(|e| {
                let t = e["applicationProperties"]["eventType"].as_str().unwrap_or("");
                t.rsplit('.').next().unwrap_or(t).to_owned()
            })
            .collect()
    }

    /// Waits until an event of type `short` (e.g. `RecordingAvailable`) has arrived.
    pub fn wait_for(&self, short: &str, timeout: Duration) -> Result<Value> {
        self.wait_where(short, |_| true, timeout)
    }

    /// Waits until an event of type `short` for which `pred` holds has arrived.
    pub fn wait_where(&self, short: &str, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.all().into_iter().find(|e| {
                e["applicationProperties"]["eventType"].as_str().is_some_and(|t| t.ends_with(&format!(".{short}")))
                    && pred(e)
            }) {
                return Ok(e);
            }
            if Instant::now() > deadline {
                bail!("no such {short} event within {timeout:?}; got {:?}", self.types());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Sets live pipeline `name` on `topology` with `params` (AVA's parameter array) and activates
/// it; any other status than AVA's success is an error.
pub fn set_and_activate(base: &str, name: &str, topology: &str, params: Value) -> Result<()> {
    let p = serde_json::json!({"@apiVersion": "1.1", "name": name,
        "properties": {"topologyName": topology, "parameters": params}});
    let (st, body) = method(base, "livePipelineSet", &p)?;
    anyhow::ensure!(st == 201, "livePipelineSet {name}: {st} {body}");
    let (st, body) = method(base, "livePipelineActivate", &serde_json::json!({"@apiVersion": "1.1", "name": name}))?;
    anyhow::ensure!(st == 200, "activate {name}: {st} {body}");
    Ok(())
}

/// Sets AVA's continuous-recording tutorial topology (`topologies/cvr-video.json`) and an active
/// live pipeline `pipeline` recording `camera` into `video`.
pub fn record_tutorial(base: &str, pipeline: &str, camera: &str, video: &str) -> Result<()> {
    let topo = std::fs::read_to_string(crate::repo_root().join("topologies/cvr-video.json"))?;
    let r = request("POST", &format!("{base}/api/methods/pipelineTopologySet"), Some(topo.as_bytes()), &[])?;
    anyhow::ensure!(r.status == 201 || r.status == 200, "pipelineTopologySet: {}", r.status);
    let p = serde_json::json!({"@apiVersion": "1.1", "name": pipeline, "properties": {"topologyName": "CVRToVideoSink",
        "parameters": [{"name": "rtspUrl", "value": camera}, {"name": "videoName", "value": video}]}});
    let (st, body) = method(base, "livePipelineSet", &p)?;
    anyhow::ensure!(st == 201, "livePipelineSet {pipeline}: {st} {body}");
    let (st, body) =
        method(base, "livePipelineActivate", &serde_json::json!({"@apiVersion": "1.1", "name": pipeline}))?;
    anyhow::ensure!(st == 200, "livePipelineActivate {pipeline}: {st} {body}");
    Ok(())
}

/// The value of unlabelled metric `name` in `base/metrics`.
pub fn metric(base: &str, name: &str) -> Result<f64> {
    let text = String::from_utf8(request("GET", &format!("{base}/metrics"), None, &[])?.body)?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")).and_then(|v| v.trim().parse().ok()))
        .ok_or_else(|| anyhow::anyhow!("no {name} in /metrics"))
}
