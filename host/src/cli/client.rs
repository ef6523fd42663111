//! `openva call` and `openva operations`: a direct-method client for a running host, and a
//! runner for AVA's console-app operations scripts (`{"apiVersion", "operations": [{"opName",
//! "opParams"}]}`), unchanged.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::io::{BufRead, Read, Write};
use std::path::Path;

/// A connection to a host's API.
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// A client of the host at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str, token: Option<String>) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(60)))
            .build()
            .into();
        Client { base: base.trim_end_matches('/').to_owned(), token, agent }
    }

    /// Invokes a direct method; returns its status and payload (`Null` for an empty body).
    pub fn call(&self, method: &str, payload: &Value) -> Result<(u16, Value)> {
        self.rest("POST", &format!("/api/methods/{method}"), Some(payload))
    }

    /// A REST request to `path` (e.g. `/api/pipelineJobs/j1`) with an optional JSON body;
    /// returns the status and the JSON reply (`Null` for an empty body).
    pub fn rest(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let sent = match body {
            Some(b) => self.agent.run(req.header("Content-Type", "application/json").body(b.to_string())?),
            None => self.agent.run(req.body(())?),
        };
        let mut resp = sent.with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().with_context(|| format!("reading the reply of {url}"))?;
        let payload = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).with_context(|| format!("{url} answered {status} with non-JSON: {text}"))?
        };
        Ok((status, payload))
    }
}

/// Reads a method payload from a file or `-` (stdin); none means `{}`. Adds `@apiVersion`
/// when missing, as AVA's console apps did.
pub fn read_payload(arg: Option<&str>) -> Result<Value> {
    let text = match arg {
        None => "{}".to_owned(),
        Some("-") => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("reading the payload from standard input")?;
            s
        }
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("reading {p}"))?,
    };
    let mut v: Value = serde_json::from_str(&text).context("the payload is not valid JSON")?;
    let Some(o) = v.as_object_mut() else { bail!("the payload must be a JSON object") };
    if !o.keys().any(|k| k.eq_ignore_ascii_case("@apiVersion")) {
        o.insert("@apiVersion".into(), json!("1.1"));
    }
    Ok(v)
}

/// Fetches a topology for `pipelineTopologyUrl`: an `http(s)://` URL, a `file://` URL or a
/// local path (relative to the operations file).
fn fetch_topology(client: &Client, url: &str, base_dir: &Path) -> Result<String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        let mut resp = client.agent.get(url).call().with_context(|| format!("fetching {url}"))?;
        if resp.status().as_u16() != 200 {
            bail!("fetching {url}: HTTP {}", resp.status());
        }
        return resp.body_mut().read_to_string().with_context(|| format!("reading {url}"));
    }
    let path = match url::Url::parse(url) {
        Ok(u) if u.scheme() == "file" => {
            u.to_file_path().map_err(|()| anyhow::anyhow!("'{url}' is not a local file URL"))?
        }
        _ => base_dir.join(url),
    };
    std::fs::read_to_string(&path).with_context(|| format!("reading topology {}", path.display()))
}

/// Runs an operations script. Returns the number of failed operations.
pub fn run_operations(client: &Client, file: &Path, yes: bool) -> Result<usize> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let script: Value = serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", file.display()))?;
    let get = |v: &Value, k: &str| openva::topology::json::member(v, k).cloned();
    let version = get(&script, "apiVersion").and_then(|v| v.as_str().map(str::to_owned)).unwrap_or("1.1".into());
    let Some(Value::Array(ops)) = get(&script, "operations") else {
        bail!("{}: no \"operations\" array", file.display());
    };
    let base_dir = file.parent().unwrap_or(Path::new("."));
    let mut failed = 0;
    for (i, op) in ops.iter().enumerate() {
        let name = get(op, "opName").and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let params = get(op, "opParams").unwrap_or(json!({}));
        if name.eq_ignore_ascii_case("WaitForInput") {
            let msg = get(&params, "message").and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            println!("-------------------------------- {msg}");
            if !yes {
                std::io::stdout().flush()?;
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
            }
            continue;
        }
        if name.is_empty() {
            bail!("{}: operation {i} has no opName", file.display());
        }
        let payload = match get(&params, "pipelineTopologyUrl").and_then(|v| v.as_str().map(str::to_owned)) {
            Some(url) if name.eq_ignore_ascii_case("pipelineTopologySet") => {
                let body = fetch_topology(client, &url, base_dir)?;
                serde_json::from_str(&body).with_context(|| format!("the topology at {url} is not valid JSON"))?
            }
            _ => {
                let mut p = params.clone();
                if let Some(o) = p.as_object_mut() {
                    o.insert("@apiVersion".into(), json!(version));
                }
                p
            }
        };
        println!("-------------------------------- Executing operation {name}");
        let (status, reply) = client.call(&name, &payload)?;
        println!("status: {status}");
        println!("{}", serde_json::to_string_pretty(&reply)?);
        if status >= 400 {
            failed += 1;
        }
    }
    Ok(failed)
}
