//! `openva job create|get|list|cancel|delete`: AVA's pipeline jobs on a running host (REST
//! `/api/pipelineJobs`), with a progress bar while waiting for a job to finish.

use super::client::Client;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::time::Duration;

/// `k=v` parameters as AVA's `[{"name", "value"}]`.
fn parameters(params: &[String]) -> Result<Vec<Value>> {
    params
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok(json!({"name": k, "value": v})),
            _ => bail!("--param '{p}' is not NAME=VALUE"),
        })
        .collect()
}

fn check(status: u16, reply: &Value, what: &str) -> Result<()> {
    if status >= 400 {
        let msg = reply["error"]["message"].as_str().unwrap_or("");
        bail!("{what} failed with status {status}: {msg}");
    }
    Ok(())
}

/// `openva job create NAME --topology T [--param k=v]… [--description D] [--wait]`.
pub fn create(
    client: &Client,
    name: &str,
    topology: &str,
    params: &[String],
    description: Option<&str>,
    wait: bool,
) -> Result<()> {
    let mut props = json!({"topologyName": topology, "parameters": parameters(params)?});
    if let Some(d) = description {
        props["description"] = json!(d);
    }
    let (status, reply) =
        client.rest("PUT", &format!("/api/pipelineJobs/{name}"), Some(&json!({"properties": props})))?;
    check(status, &reply, &format!("creating job '{name}'"))?;
    if !wait {
        println!("{}", serde_json::to_string(&reply)?);
        return Ok(());
    }
    wait_for(client, name)
}

/// Polls the job until it leaves `Processing`, showing its progress; fails unless it
/// completed.
pub fn wait_for(client: &Client, name: &str) -> Result<()> {
    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {percent:>3}% {elapsed} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    loop {
        let (status, job) = client.rest("GET", &format!("/api/pipelineJobs/{name}"), None)?;
        check(status, &job, &format!("reading job '{name}'"))?;
        let p = &job["properties"];
        let state = p["state"].as_str().unwrap_or("");
        bar.set_position((p["progressPercent"].as_f64().unwrap_or(0.0) * 10.0) as u64);
        bar.set_message(state.to_owned());
        if state != "Processing" {
            bar.finish_and_clear();
            println!("{}", serde_json::to_string(&job)?);
            return match state {
                "Completed" => Ok(()),
                _ => bail!("job '{name}' ended {state}: {}", p["error"]["message"].as_str().unwrap_or("canceled")),
            };
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `openva job get|cancel|delete NAME` and `openva job list`.
pub fn simple(client: &Client, action: &str, name: Option<&str>) -> Result<()> {
    let (method, path, what) = match (action, name) {
        ("list", _) => ("GET", "/api/pipelineJobs".to_owned(), "listing jobs".to_owned()),
        ("get", Some(n)) => ("GET", format!("/api/pipelineJobs/{n}"), format!("reading job '{n}'")),
        ("cancel", Some(n)) => ("POST", format!("/api/pipelineJobs/{n}/cancel"), format!("canceling job '{n}'")),
        ("delete", Some(n)) => ("DELETE", format!("/api/pipelineJobs/{n}"), format!("deleting job '{n}'")),
        _ => bail!("job {action} needs a job name"),
    };
    let (status, reply) = client.rest(method, &path, None).with_context(|| what.clone())?;
    check(status, &reply, &what)?;
    if action == "delete" && status == 204 {
        bail!("no job '{}'", name.unwrap_or(""));
    }
    println!("{}", serde_json::to_string(&reply)?);
    Ok(())
}
