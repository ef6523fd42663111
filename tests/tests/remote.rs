//! The remote tier (`docs/remote.md`) against real object stores on loopback: SeaweedFS, a
//! distributed S3 store (credentials from the environment), and Azurite, Microsoft's Azure Blob
//! emulator (AVA's own storage; credentials from a `--remote-credentials` file).
//! - Every closed segment arrives once, byte for byte, under a key naming its video and time.
//! - The store stopped: recording goes on, one `StorageError` says so, the backlog shows in
//!   `/metrics`; the store back: the backlog drains, `RemoteUploadResumed`, still once each.
//! - A host killed (-9) as a segment closes: after the restart, still every segment once.
//! - A deleted video's objects are deleted from the store.
//! - Wrong credentials: a `StorageError`, recording goes on, nothing uploaded.
//! - The secrets appear nowhere: not in the host's log, events, API replies or index files.
//! - With a local cache cap (`localMediaCacheMaximumSizeMiB`), uploaded segments leave the
//!   local disk and still play: raw, as an image from a few ranged GETs, as one MP4.

use anyhow::{Context, Result, ensure};
use object_store::ObjectStore;
use openva_e2e::http::*;
use openva_e2e::stores::{S3_SECRET, Seaweed};
use openva_e2e::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// Azurite's documented, public development account key (not a secret; the test still checks
/// it is never logged, as a real key would not be).
const AZ_ACCOUNT: &str = "devstoreaccount1";
const AZ_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A store under test: its server, how to start it again, and the host's settings for it.
struct TestStore {
    proc: Option<Proc>,
    start: Box<dyn Fn() -> Result<Proc>>,
    /// `--remote`.
    url: String,
    /// The host's environment and extra flags.
    env: Vec<(&'static str, std::ffi::OsString)>,
    flags: Vec<String>,
    /// A client of the same store, for looking at it.
    client: Arc<dyn ObjectStore>,
    /// The prefix the host writes under.
    prefix: &'static str,
    /// The secret that must appear nowhere.
    secret: &'static str,
    /// The store's endpoint, for a credentials file.
    endpoint: String,
}

fn wait_port(port: u16, what: &str) -> Result<()> {
    wait_until(what, Duration::from_secs(30), || {
        Ok(std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok())
    })?;
    Ok(())
}

fn seaweed(dir: &Path) -> Result<TestStore> {
    let server = Seaweed::new(dir)?;
    let proc = server.start()?;
    Ok(TestStore {
        endpoint: server.endpoint(),
        proc: Some(proc),
        url: "s3://openva/site-a".into(),
        env: server.env(),
        flags: vec![],
        client: server.client()?,
        start: Box::new(move || server.start()),
        prefix: "site-a",
        secret: S3_SECRET,
    })
}

fn azurite(dir: &Path) -> Result<TestStore> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bin = repo_root().join("tests/web/node_modules/.bin/azurite-blob");
    ensure!(bin.is_file(), "{} is missing: tests/run installs it (tests/web/package.json)", bin.display());
    let port = free_port();
    let dir = dir.to_owned();
    let start = move || -> Result<Proc> {
        std::fs::create_dir_all(&dir)?;
        let mut cmd = Command::new(&bin);
        cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--location"])
            .arg(&dir)
            .args(["--silent", "--skipApiVersionCheck", "--disableTelemetry"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .stdin(Stdio::null());
        let proc = Proc { child: cmd.spawn().context("starting azurite")?, name: "Azurite".into() };
        wait_port(port, "Azurite")?;
        create_container(port, "recordings")?;
        Ok(proc)
    };
    let proc = start()?;
    let endpoint = format!("http://127.0.0.1:{port}/{AZ_ACCOUNT}");
    Ok(TestStore {
        endpoint: endpoint.clone(),
        proc: Some(proc),
        start: Box::new(start),
        url: "azure://recordings/edge-7".into(),
        env: vec![],
        flags: vec![],
        client: Arc::new(
            object_store::azure::MicrosoftAzureBuilder::new()
                .with_account(AZ_ACCOUNT)
                .with_access_key(AZ_KEY)
                .with_endpoint(endpoint)
                .with_allow_http(true)
                .with_container_name("recordings")
                .build()?,
        ),
        prefix: "edge-7",
        secret: AZ_KEY,
    })
}

/// Creates an Azurite container: one Shared-Key-signed REST call (`object_store` creates none).
fn create_container(port: u16, container: &str) -> Result<()> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;
    use hmac::Mac;
    let date = jiff::Timestamp::now().strftime("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let version = "2021-08-06";
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZ_ACCOUNT}/{AZ_ACCOUNT}/{container}\nrestype:container"
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&B64.decode(AZ_KEY)?)?;
    mac.update(to_sign.as_bytes());
    let sig = B64.encode(mac.finalize().into_bytes());
    let r = request(
        "PUT",
        &format!("http://127.0.0.1:{port}/{AZ_ACCOUNT}/{container}?restype=container"),
        None,
        &[("x-ms-date", &date), ("x-ms-version", version), ("authorization", &format!("SharedKey {AZ_ACCOUNT}:{sig}"))],
    )?;
    ensure!(r.status == 201 || r.status == 409, "creating the container: {}", r.status);
    Ok(())
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
}

/// The segment objects under `prefix` (not the manifests beside them): key → bytes.
async fn list(store: &Arc<dyn ObjectStore>, prefix: &str) -> Result<BTreeMap<String, Vec<u8>>> {
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    let p = object_store::path::Path::from(prefix);
    let metas: Vec<_> = store.list(Some(&p)).try_collect().await?;
    let mut out = BTreeMap::new();
    for m in metas.into_iter().filter(|m| m.location.as_ref().contains("/seg/")) {
        let bytes = store.get(&m.location).await?.bytes().await?;
        out.insert(m.location.to_string(), bytes.to_vec());
    }
    Ok(out)
}

/// The host, its log going to `log`.
fn start_logged_host(data: &Path, store: &TestStore, log: &Path, extra_env: &[(&str, &str)]) -> Result<(Proc, String)> {
    let mut cmd = Command::new(openva_bin());
    cmd.args(["serve", "--data"]).arg(data).args(["--listen", "127.0.0.1:0", "--remote", &store.url]);
    cmd.args(&store.flags);
    cmd.envs(store.env.iter().map(|(k, v)| (*k, v)));
    cmd.envs(extra_env.iter().copied());
    cmd.env("RUST_LOG", "debug,hyper=info,h2=info,reqwest=info");
    cmd.stdout(Stdio::piped()).stderr(std::fs::File::create(log)?).stdin(Stdio::null());
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let proc = Proc { child, name: "openva serve".into() };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("READY ") {
                let _ = tx.send(rest.trim().trim_end_matches('/').to_owned());
            }
        }
    });
    let url = rx.recv_timeout(Duration::from_secs(30)).context("openva serve did not print READY")?;
    Ok((proc, url))
}

/// Records `secs` seconds as one run and closes its segment (a deactivation does).
fn record_once(base: &str, secs: u64) -> Result<()> {
    let (st, body) = method(base, "livePipelineActivate", &json!({"@apiVersion": "1.1", "name": "p"}))?;
    ensure!(st == 200, "activate: {st} {body}");
    std::thread::sleep(Duration::from_secs(secs));
    let (st, body) = method(base, "livePipelineDeactivate", &json!({"@apiVersion": "1.1", "name": "p"}))?;
    ensure!(st == 200, "deactivate: {st} {body}");
    Ok(())
}

/// Every file under `dir`.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    Ok(out)
}

/// The segment files of `video` (all closed by then): bytes of each.
fn local_segments(data: &Path, video: &str) -> Result<Vec<Vec<u8>>> {
    let dir = format!("/videos/{video}/");
    files_under(data)?
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(&dir) && p.extension().is_some_and(|x| x == "mp4"))
        .map(|p| Ok(std::fs::read(&p)?))
        .collect()
}

fn exercise(store: &mut TestStore, tmp: &Path) -> Result<()> {
    let data = tmp.join("data");
    let log = tmp.join("host.log");
    let (_sim, cam) = start_sim(free_port(), &["--size", "640x360", "--fps", "25", "--gop", "25"])?;
    let (mut host, base) = start_logged_host(&data, store, &log, &[])?;
    let events = Events::subscribe(&base, None)?;
    record_tutorial(&base, "p", &cam, "cam")?;
    std::thread::sleep(Duration::from_secs(4));
    let (st, _) = method(&base, "livePipelineDeactivate", &json!({"@apiVersion": "1.1", "name": "p"}))?;
    ensure!(st == 200);
    record_once(&base, 4)?;
    record_once(&base, 4)?;
    wait_until("three segments uploaded", Duration::from_secs(60), || {
        Ok(metric(&base, "openva_remote_uploads_total")? >= 3.0
            && metric(&base, "openva_remote_backlog_segments")? == 0.0)
    })?;
    // Each closed segment once, byte for byte, under the host's prefix and the video's name.
    let check_copies = |want: usize| -> Result<BTreeMap<String, Vec<u8>>> {
        let objects = block_on(list(&store.client, store.prefix)).map_err(|e| {
            let deletes = metric(&base, "openva_remote_deletes_total").unwrap_or(-1.0);
            anyhow::anyhow!("listing the store ({deletes} deletes so far): {e}")
        })?;
        let local = local_segments(&data, "cam")?;
        ensure!(
            objects.len() == want && local.len() == want,
            "{} objects, {} files, {want} expected",
            objects.len(),
            local.len()
        );
        for (key, bytes) in &objects {
            ensure!(key.starts_with(&format!("{}/v1/videos/cam/seg/", store.prefix)) && key.ends_with(".mp4"), "{key}");
            ensure!(local.iter().any(|l| l == bytes), "{key} is not a local segment's bytes");
        }
        Ok(objects)
    };
    check_copies(3)?;
    assert_eq!(metric(&base, "openva_remote_upload_failures_total")?, 0.0);

    // The store away for a minute, across one recording: it goes on without a gap, the
    // backlog grows, one StorageError.
    let mut server = store.proc.take().context("store")?;
    server.terminate(Duration::from_secs(10))?;
    let ranges_before = time_ranges(&base, "cam")?.as_array().map_or(0, Vec::len);
    record_once(&base, 62)?;
    let failed = events.wait_where(
        "StorageError",
        |e| e["body"]["errorCode"] == "RemoteUploadFailed",
        Duration::from_secs(90),
    )?;
    eprintln!("outage: {failed}");
    let recorded = local_segments(&data, "cam")?.len();
    ensure!(recorded >= 3 + 2, "{recorded} segments after a minute's recording");
    wait_until("the outage's segments waiting", Duration::from_secs(30), || {
        Ok(metric(&base, "openva_remote_backlog_segments")? == (recorded - 3) as f64)
    })?;
    ensure!(
        metric(&base, "openva_remote_backlog_bytes")? > 0.0 && metric(&base, "openva_remote_upload_lag_seconds")? > 0.0
    );
    // The outage's recording is one range, whole (recording never waited).
    let ranges = time_ranges(&base, "cam")?;
    let ranges = ranges.as_array().context("ranges")?;
    ensure!(ranges.len() == ranges_before + 1, "{ranges:?}");
    let last = &ranges[ranges_before];
    let secs = (iso_ms(last["end"].as_str().unwrap_or_default())? - iso_ms(last["start"].as_str().unwrap_or_default())?)
        as f64
        / 1000.0;
    ensure!(secs >= 60.0, "the recording across the outage holds {secs} s: {last}");
    let storage_errors = events
        .all()
        .iter()
        .filter(|e| e["applicationProperties"]["eventType"].as_str().is_some_and(|t| t.ends_with(".StorageError")))
        .count();
    ensure!(storage_errors == 1, "{storage_errors} StorageError events for one outage");
    // Back: the backlog drains, every segment still once.
    store.proc = Some((store.start)()?);
    events.wait_for("RemoteUploadResumed", Duration::from_secs(120))?;
    wait_until("the backlog drained", Duration::from_secs(120), || {
        Ok(metric(&base, "openva_remote_backlog_segments")? == 0.0)
    })?;
    check_copies(recorded)?;
    assert_eq!(metric(&base, "openva_remote_uploads_total")?, recorded as f64);

    // kill -9 just as a segment closes (its upload in flight, done but not recorded, or not
    // begun): after a restart every segment is in the store once.
    // Its segment may still be open in the index: recovery closes it when recording into the
    // video resumes, so record once more.
    let recorded_before_crash = recorded;
    record_once(&base, 3)?;
    host.kill9()?;
    let (mut host, base) = start_logged_host(&data, store, &tmp.join("host-restarted.log"), &[])?;
    record_once(&base, 3)?;
    wait_until("the backlog drained after the crash", Duration::from_secs(60), || {
        Ok(metric(&base, "openva_remote_backlog_segments")? == 0.0
            && metric(&base, "openva_remote_uploads_total")? >= 1.0)
    })?;
    let recorded = local_segments(&data, "cam")?.len();
    ensure!(recorded == recorded_before_crash + 2, "{recorded} segments after two more recordings");
    check_copies(recorded)?;

    // Secrets appear nowhere.
    let mut seen = String::new();
    for url in ["/metrics", "/api/videos", "/api/videos/cam", "/api/livePipelines/p", "/api/status"] {
        seen.push_str(&String::from_utf8_lossy(&request("GET", &format!("{base}{url}"), None, &[])?.body));
    }
    seen.push_str(&serde_json::to_string(&events.all())?);
    ensure!(!seen.contains(store.secret), "the secret is in an API reply or event");

    // A deleted video's objects go from the store too: its segments, manifests and
    // `video.json`; the host's claim on its prefix stays.
    let r = request("DELETE", &format!("{base}/api/videos/cam"), None, &[])?;
    ensure!(r.status == 200 || r.status == 204, "delete: {}", r.status);
    let writer = format!("{}/v1/writer.json", store.prefix);
    wait_until("the remote copies deleted", Duration::from_secs(60), || {
        use futures::TryStreamExt;
        let prefix = object_store::path::Path::from(store.prefix);
        let left: Vec<_> = block_on(store.client.list(Some(&prefix)).try_collect::<Vec<_>>())?;
        Ok(left.iter().all(|m| m.location.as_ref() == writer))
    })?;
    ensure!(metric(&base, "openva_remote_deletes_total")? == recorded as f64);
    host.terminate(Duration::from_secs(20))?;

    // Wrong credentials: recording goes on, a StorageError names the refusal, nothing arrives.
    let wrong = "wrong-s3cr3t-value";
    let wrong_key = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(wrong)
    };
    let (bad_env, bad_flags): (Vec<(&str, &str)>, Vec<String>) = if store.secret == S3_SECRET {
        (vec![("AWS_SECRET_ACCESS_KEY", wrong)], vec![])
    } else {
        let f = tmp.join("wrong-creds");
        std::fs::write(&f, azure_settings(&store.endpoint, &wrong_key))?;
        (vec![], vec!["--remote-credentials".into(), f.display().to_string()])
    };
    let saved = std::mem::replace(&mut store.flags, bad_flags.clone());
    let (mut host, base) = start_logged_host(&tmp.join("data2"), store, &tmp.join("host2.log"), &bad_env)?;
    store.flags = saved;
    // From the start: the host claims its prefix (and so is refused) before its API listens.
    let events = Events::subscribe_from_start(&base, None)?;
    record_tutorial(&base, "p", &cam, "other")?;
    // (The refusal may come at once: the host claims its prefix before its first upload.)
    std::thread::sleep(Duration::from_secs(3));
    let refused =
        events.wait_where("StorageError", |e| e["body"]["errorCode"] == "RemoteUploadFailed", Duration::from_secs(90));
    // The first segment closes only at deactivation.
    let (st, _) = method(&base, "livePipelineDeactivate", &json!({"@apiVersion": "1.1", "name": "p"}))?;
    ensure!(st == 200);
    let refused = match refused {
        Ok(e) => e,
        Err(_) => events.wait_where(
            "StorageError",
            |e| e["body"]["errorCode"] == "RemoteUploadFailed",
            Duration::from_secs(90),
        )?,
    };
    eprintln!("refused: {refused}");
    ensure!(!refused.to_string().contains(wrong), "the wrong secret is in the event");
    ensure!(metric(&base, "openva_remote_uploads_total")? == 0.0);
    let am = request("GET", &format!("{base}/api/videos/other/availableMedia"), None, &[])?.json()?;
    ensure!(am["timeRanges"].as_array().is_some_and(|r| !r.is_empty()), "nothing recorded: {am}");
    host.terminate(Duration::from_secs(20))?;

    // Nor in the logs (at debug level) or the index files.
    for f in [log, tmp.join("host-restarted.log"), tmp.join("host2.log")] {
        let text = std::fs::read_to_string(&f)?;
        ensure!(
            !text.contains(store.secret) && !text.contains(wrong) && !text.contains(&wrong_key),
            "a secret is in {}",
            f.display()
        );
    }
    for dir in [data, tmp.join("data2")] {
        for p in files_under(&dir)? {
            if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("index.db")) {
                let text = String::from_utf8_lossy(&std::fs::read(&p)?).into_owned();
                ensure!(!text.contains(store.secret) && !text.contains(wrong), "a secret is in {}", p.display());
            }
        }
    }
    Ok(())
}

#[test]
fn segments_reach_seaweedfs_once_through_an_outage() -> Result<()> {
    let tmp = TempDir::new("remote-s3");
    let mut store = seaweed(&tmp.path().join("seaweed"))?;
    exercise(&mut store, tmp.path())
}

#[test]
fn segments_reach_azurite_once_through_an_outage() -> Result<()> {
    let tmp = TempDir::new("remote-azure");
    let mut store = azurite_with_credentials_file(tmp.path())?;
    exercise(&mut store, tmp.path())
}

/// A store that answers 500 and one that hangs: recording goes on whole through each, each is a `StorageError` and counts in `/metrics`, and once the
/// store is well again every segment arrives once. (SeaweedFS behind a fault proxy; the
/// client's timeout set to 2 s in the credentials file, so a hang is found out quickly.)
#[test]
fn a_failing_or_hung_store_never_stops_recording() -> Result<()> {
    use openva_e2e::faultproxy::{Fault, FaultProxy};
    let tmp = TempDir::new("remote-faults");
    let server = Seaweed::new(&tmp.path().join("seaweed"))?;
    let _weed = server.start()?;
    let proxy = FaultProxy::start(server.port)?;
    let client = server.client()?;
    let env: Vec<_> = server
        .env()
        .into_iter()
        .map(|(k, v)| if k == "AWS_ENDPOINT" { (k, proxy.endpoint().into()) } else { (k, v) })
        .collect();
    let settings = tmp.path().join("client.conf");
    std::fs::write(&settings, "# a hung store is found out within seconds\ntimeout=2s\nconnect_timeout=1s\n")?;
    let store = TestStore {
        proc: None,
        start: Box::new(|| anyhow::bail!("not restarted here")),
        url: "s3://openva/site-f".into(),
        env,
        flags: vec!["--remote-credentials".into(), settings.display().to_string()],
        client: client.clone(),
        prefix: "site-f",
        secret: S3_SECRET,
        endpoint: proxy.endpoint(),
    };
    let (_sim, cam) = start_sim(free_port(), &["--size", "640x360", "--fps", "25", "--gop", "25"])?;
    let (mut host, base) = start_logged_host(&tmp.path().join("data"), &store, &tmp.path().join("host.log"), &[])?;
    let events = Events::subscribe_from_start(&base, None)?;
    record_tutorial(&base, "p", &cam, "cam")?;
    std::thread::sleep(Duration::from_secs(4));
    let (st, body) = method(&base, "livePipelineDeactivate", &json!({"@apiVersion": "1.1", "name": "p"}))?;
    ensure!(st == 200, "deactivate: {st} {body}");
    wait_until("the first segment uploaded", Duration::from_secs(60), || {
        Ok(metric(&base, "openva_remote_uploads_total")? == 1.0
            && metric(&base, "openva_remote_backlog_segments")? == 0.0)
    })?;
    let count = |short: &str, code: Option<&str>| {
        events
            .all()
            .iter()
            .filter(|e| {
                e["applicationProperties"]["eventType"].as_str().is_some_and(|t| t.ends_with(&format!(".{short}")))
                    && code.is_none_or(|c| e["body"]["errorCode"] == c)
            })
            .count()
    };
    for (n, fault) in [Fault::Error500, Fault::Hang].into_iter().enumerate() {
        let (failed, resumed) = (count("StorageError", Some("RemoteUploadFailed")), count("RemoteUploadResumed", None));
        let failures = metric(&base, "openva_remote_upload_failures_total")?;
        proxy.set(fault);
        record_once(&base, 4)?;
        wait_until(&format!("{fault:?}: a StorageError"), Duration::from_secs(60), || {
            Ok(count("StorageError", Some("RemoteUploadFailed")) == failed + 1)
        })?;
        let said = events.all().into_iter().rfind(|e| e["body"]["errorCode"] == "RemoteUploadFailed");
        eprintln!("{fault:?}: {}", said.unwrap_or_default()["body"]["message"]);
        ensure!(metric(&base, "openva_remote_upload_failures_total")? > failures);
        ensure!(metric(&base, "openva_remote_backlog_segments")? >= 1.0);
        // Recording went on whole: this recording's range is there, about 4 s long.
        let ranges = time_ranges(&base, "cam")?;
        let ranges = ranges.as_array().context("ranges")?;
        ensure!(ranges.len() == n + 2, "{ranges:?}");
        let last = &ranges[n + 1];
        let secs = (iso_ms(last["end"].as_str().unwrap_or_default())?
            - iso_ms(last["start"].as_str().unwrap_or_default())?) as f64
            / 1000.0;
        ensure!(secs >= 3.0, "{fault:?}: the recording holds {secs} s");
        // Well again: the backlog drains.
        proxy.set(Fault::Pass);
        wait_until(&format!("{fault:?}: resumed and drained"), Duration::from_secs(90), || {
            Ok(count("RemoteUploadResumed", None) == resumed + 1
                && metric(&base, "openva_remote_backlog_segments")? == 0.0)
        })?;
    }
    // Every segment once.
    let objects = block_on(list(&client, "site-f"))?;
    ensure!(objects.len() == 3, "{} objects for three segments", objects.len());
    ensure!(metric(&base, "openva_remote_uploads_total")? == 3.0);
    ensure!(host.terminate(Duration::from_secs(15))?.success());
    Ok(())
}

/// A container that does not exist (Azurite; SeaweedFS makes a bucket at its first write): a
/// `StorageError` at the host's start, recording goes on, nothing is uploaded.
#[test]
fn a_missing_container_is_reported_and_recording_goes_on() -> Result<()> {
    let tmp = TempDir::new("remote-no-container");
    let mut store = azurite_with_credentials_file(tmp.path())?;
    store.url = "azure://no-such-container/site-a".into();
    let (_sim, cam) = start_sim(free_port(), &["--size", "640x360", "--fps", "25", "--gop", "25"])?;
    let (mut host, base) = start_logged_host(&tmp.path().join("data"), &store, &tmp.path().join("host.log"), &[])?;
    let events = Events::subscribe_from_start(&base, None)?;
    let refused = events.wait_where(
        "StorageError",
        |e| e["body"]["errorCode"] == "RemoteUploadFailed",
        Duration::from_secs(60),
    )?;
    eprintln!("no such container: {}", refused["body"]["message"]);
    record_tutorial(&base, "p", &cam, "cam")?;
    std::thread::sleep(Duration::from_secs(3));
    let (st, _) = method(&base, "livePipelineDeactivate", &json!({"@apiVersion": "1.1", "name": "p"}))?;
    ensure!(st == 200);
    ensure!(time_ranges(&base, "cam")?.as_array().is_some_and(|r| r.len() == 1));
    ensure!(metric(&base, "openva_remote_backlog_segments")? == 1.0);
    ensure!(metric(&base, "openva_remote_uploads_total")? == 0.0);
    ensure!(host.terminate(Duration::from_secs(15))?.success());
    Ok(())
}

/// Real camera shapes, not our simulator: H.264 with B-frames and AAC, and H.265 with
/// B-frames, from GStreamer (tools/camera-zoo.py), recorded, copied to SeaweedFS, and served
/// by a read-only gateway from the bucket alone: the same ranges, the same MP4 bytes as the
/// recorder's, and every frame the camera sent decodes (ffprobe), audio included.
#[test]
fn real_camera_shapes_play_from_the_bucket_alone() -> Result<()> {
    let tmp = TempDir::new("remote-zoo");
    let zoo = Zoo::start(250)?;
    let mounts = ["h264-high-b2+aac", "h265-b3"];
    let data = tmp.path().join("data");
    zoo.record(&data, &mounts)?;
    let mut store = seaweed(&tmp.path().join("seaweed"))?;
    store.url = "s3://openva/zoo".into();
    let (mut recorder, base_r) = start_logged_host(&data, &store, &tmp.path().join("recorder.log"), &[])?;
    wait_until("both videos copied and described", Duration::from_secs(90), || {
        Ok(metric(&base_r, "openva_remote_uploads_total")? >= 2.0
            && metric(&base_r, "openva_remote_backlog_segments")? == 0.0
            && metric(&base_r, "openva_remote_manifests_total")? >= 2.0)
    })?;
    store.url = "s3://openva".into();
    store.flags.extend(["--read-only".into(), "--remote-sync".into(), "2".into()]);
    let (mut gateway, base_g) = start_logged_host(&tmp.path().join("g"), &store, &tmp.path().join("gateway.log"), &[])?;
    wait_until("the gateway lists both videos", Duration::from_secs(60), || Ok(video_names(&base_g)? == ["v0", "v1"]))?;
    for (i, (mount, codecs)) in mounts.iter().zip([("h264", Some("aac")), ("hevc", None)]).enumerate() {
        let video = format!("v{i}");
        let ranges = time_ranges(&base_r, &video)?;
        ensure!(time_ranges(&base_g, &video)? == ranges, "{video}: {ranges}");
        let arr = ranges.as_array().context("ranges")?;
        let (from, to) = (
            arr.first().and_then(|r| r["start"].as_str()).unwrap_or_default().to_owned(),
            arr.last().and_then(|r| r["end"].as_str()).unwrap_or_default().to_owned(),
        );
        let url = |base: &str| format!("{base}/api/videos/{video}/content.mp4?startTime={from}&endTime={to}");
        let (theirs, ours) = (request("GET", &url(&base_r), None, &[])?, request("GET", &url(&base_g), None, &[])?);
        ensure!(theirs.status == 200 && ours.status == 200, "{video}: {} and {}", theirs.status, ours.status);
        ensure!(theirs.body == ours.body, "{video}: the gateway's MP4 differs");
        let mp4 = tmp.path().join(format!("{video}.mp4"));
        std::fs::write(&mp4, &ours.body)?;
        ffmpeg_decodes(&mp4)?;
        let streams = probe_streams(&mp4)?;
        let sent = zoo.sent(mount, "video").and_then(|s| s.first().copied()).context("frames sent")?;
        let v = streams.iter().find(|s| s.kind == "video").context("video")?;
        ensure!((v.codec.as_str(), v.frames) == (codecs.0, sent), "{mount}: {v:?}, {sent} sent");
        let audio = streams.iter().find(|s| s.kind == "audio");
        match codecs.1 {
            Some(a) => ensure!(audio.is_some_and(|s| s.codec == a && s.frames > 0), "{mount}: {streams:?}"),
            None => ensure!(audio.is_none(), "{mount}: {streams:?}"),
        }
        eprintln!("{mount}: {sent} frames sent, {} decoded from the bucket, {} bytes", v.frames, ours.body.len());
    }
    ensure!(metric(&base_g, "openva_remote_read_gets_total")? >= 1.0, "the gateway read nothing from the store");
    ensure!(gateway.terminate(Duration::from_secs(15))?.success());
    ensure!(recorder.terminate(Duration::from_secs(15))?.success());
    Ok(())
}

/// Azurite under `dir`, the host given its key in a `--remote-credentials` file.
fn azurite_with_credentials_file(dir: &Path) -> Result<TestStore> {
    let mut store = azurite(&dir.join("azurite"))?;
    let creds = dir.join("azure-creds");
    std::fs::write(&creds, azure_settings(&store.endpoint, AZ_KEY))?;
    store.flags = vec!["--remote-credentials".into(), creds.display().to_string()];
    Ok(store)
}

/// A `--remote-credentials` file for Azurite with `key`.
fn azure_settings(endpoint: &str, key: &str) -> String {
    format!(
        "# Azurite\nazure_storage_account_name={AZ_ACCOUNT}\nazure_storage_account_key={key}\n\
         azure_storage_endpoint={endpoint}\nallow_http=true\n"
    )
}

/// AVA's cache in front of the remote tier: the tutorial's topology with a 1 MiB
/// `localMediaCacheMaximumSizeMiB` records into the store until more than 3 MiB went up. Then
/// the video's local segments hold at most 1 MiB, the oldest gone first, and each segment
/// still plays from wherever it is: its raw bytes are its object's, a picture from inside an
/// evicted one costs a few ranged GETs (64 KiB chunks here), not the object, the whole range is
/// one MP4 ffmpeg decodes with every frame in order, and `check` is clean.
/// A segment object lost from the store is then a clear error naming it (a 502), counted.
fn eviction_exercise(store: &mut TestStore, tmp: &Path) -> Result<()> {
    store.flags.extend(["--remote-read-chunk".into(), "64".into()]);
    let data = tmp.join("data");
    let (_sim, cam) = start_sim(free_port(), &["--size", "1280x720", "--fps", "25", "--gop", "25"])?;
    let (mut host, base) = start_logged_host(&data, store, &tmp.join("host.log"), &[])?;
    let topology = std::fs::read_to_string(repo_root().join("topologies/cvr-video.json"))?
        .replace("\"localMediaCacheMaximumSizeMiB\": \"2048\"", "\"localMediaCacheMaximumSizeMiB\": \"1\"");
    ensure!(topology.contains("\"localMediaCacheMaximumSizeMiB\": \"1\""), "the tutorial topology changed");
    let (st, body) = method(&base, "pipelineTopologySet", &serde_json::from_str(&topology)?)?;
    ensure!(st == 201, "{body}");
    let p = json!({"@apiVersion": "1.1", "name": "p", "properties": {"topologyName": "CVRToVideoSink",
        "parameters": [{"name": "rtspUrl", "value": cam}, {"name": "videoName", "value": "cam"}]}});
    ensure!(method(&base, "livePipelineSet", &p)?.0 == 201);
    // Recordings of 4 s (a segment each) until over 3 MiB went up.
    let mut recordings = 0;
    while recordings < 3 || metric(&base, "openva_remote_uploaded_bytes_total")? < (3 << 20) as f64 {
        ensure!(recordings < 12, "12 recordings made less than 3 MiB");
        record_once(&base, 4)?;
        recordings += 1;
        wait_until("the recording uploaded", Duration::from_secs(30), || {
            Ok(metric(&base, "openva_remote_uploads_total")? >= recordings as f64
                && metric(&base, "openva_remote_backlog_segments")? == 0.0)
        })?;
    }
    let objects = block_on(list(&store.client, store.prefix))?;
    ensure!(objects.len() == recordings, "{} objects for {recordings} recordings", objects.len());
    let evicted = metric(&base, "openva_remote_evicted_total")? as usize;
    // The local cache holds at most its cap, and what left it is the oldest.
    let local = local_segments(&data, "cam")?;
    let held: usize = local.iter().map(Vec::len).sum();
    ensure!(held <= 1 << 20, "{held} bytes of segments on local disk for a 1 MiB cap");
    ensure!(evicted >= 1 && local.len() + evicted == recordings, "{evicted} evicted, {} local", local.len());
    let mut keys: Vec<&String> = objects.keys().collect();
    keys.sort_by_key(|k| k.rsplit('/').next().unwrap_or_default().to_owned());
    let newest_local = keys[recordings - local.len()..].iter().all(|k| local.iter().any(|l| l == &objects[*k]));
    ensure!(newest_local, "the segments kept locally are not the newest");
    // The video still shows one range per recording, local or not.
    let am = request("GET", &format!("{base}/api/videos/cam/availableMedia"), None, &[])?.json()?;
    let ranges = am["timeRanges"].as_array().cloned().unwrap_or_default();
    ensure!(ranges.len() == recordings, "{am}");
    // Asked, each says where it is: the evicted ones remote only, the rest in both places.
    let located = request("GET", &format!("{base}/api/videos/cam/availableMedia?location=true"), None, &[])?.json()?;
    let places: Vec<&str> =
        located["timeRanges"].as_array().into_iter().flatten().filter_map(|r| r["location"].as_str()).collect();
    let remote = places.iter().take_while(|p| **p == "remote").count();
    ensure!(
        places.len() == recordings && remote == evicted && places[remote..].iter().all(|p| *p == "both"),
        "{located} ({evicted} evicted)"
    );
    let ms = |r: &serde_json::Value, k: &str| iso_ms(r[k].as_str().unwrap_or_default());
    // A picture from inside the first (evicted) recording: a few ranged GETs, not the object.
    let (gets, fetched) =
        (metric(&base, "openva_remote_read_gets_total")?, metric(&base, "openva_remote_read_bytes_total")?);
    let at = ms(&ranges[0], "start")? + 2_500;
    let img = request("GET", &format!("{base}/api/videos/cam/images/at.jpg?time={}", ms_iso(at)), None, &[])?;
    ensure!(img.status == 200 && img.body.starts_with(&[0xff, 0xd8]), "image: {}", img.status);
    let gets = metric(&base, "openva_remote_read_gets_total")? - gets;
    let fetched = metric(&base, "openva_remote_read_bytes_total")? - fetched;
    let first = objects[keys[0]].len() as f64;
    ensure!((1.0..=4.0).contains(&gets), "{gets} GETs for one picture");
    ensure!(fetched < first, "{fetched} bytes fetched for one picture of a {first}-byte segment");
    // Raw segments (what HLS players fetch): each the bytes of its object in the store.
    for (key, bytes) in &objects {
        let file = key.rsplit('/').next().unwrap_or_default();
        // Objects are named START90K-RUN-SEQ.mp4; files RUN-SEQ.mp4.
        let name = file.split_once('-').map(|(_, rest)| rest.to_owned()).unwrap_or_default();
        let r = request("GET", &format!("{base}/api/videos/cam/segments/{name}"), None, &[])?;
        ensure!(r.status == 200, "segment {name}: {}", r.status);
        ensure!(&r.body == bytes, "segment {name} differs from its object {key}");
    }
    // The whole range as one MP4: every frame, in order.
    let mp4 = tmp.join("all.mp4");
    let (from, to) = (ms_iso(ms(&ranges[0], "start")?), ms_iso(ms(&ranges[recordings - 1], "end")?));
    let r = request("GET", &format!("{base}/api/videos/cam/content.mp4?startTime={from}&endTime={to}"), None, &[])?;
    ensure!(r.status == 200, "content.mp4: {} {}", r.status, String::from_utf8_lossy(&r.body[..r.body.len().min(300)]));
    std::fs::write(&mp4, &r.body)?;
    ffmpeg_decodes(&mp4)?;
    let stamps = frame_stamps(&mp4, 1280)?;
    // (ffmpeg's constant-rate output repeats the last picture across the gaps between
    // recordings: pictures never go back, and each recording's are there.)
    let bad: Vec<(usize, i64, i64)> =
        stamps.windows(2).enumerate().filter(|(_, w)| w[1] < w[0]).map(|(i, w)| (i, w[0], w[1])).collect();
    ensure!(bad.is_empty(), "frames out of order at {bad:?} of {}", stamps.len());
    let mut distinct = stamps.clone();
    distinct.dedup();
    ensure!(distinct.len() >= recordings * 80, "{} pictures for {recordings} recordings of 4 s", distinct.len());
    ensure!(host.terminate(Duration::from_secs(15))?.success());
    let report = openva_json(&["check", "--data", data.to_str().unwrap_or_default()])?;
    ensure!(report["problems"] == json!([]), "{report}");

    // The first object lost from the store (the host restarted: its read cache starts empty).
    // A picture from it is a 502 naming the object; the failed read is counted.
    {
        use object_store::ObjectStoreExt;
        block_on(store.client.delete(&object_store::path::Path::from(keys[0].as_str())))?;
    }
    let (mut host, base) = start_logged_host(&data, store, &tmp.join("host-lost.log"), &[])?;
    let events = Events::subscribe(&base, None)?;
    let img = request("GET", &format!("{base}/api/videos/cam/images/at.jpg?time={}", ms_iso(at)), None, &[])?;
    let said = String::from_utf8_lossy(&img.body).into_owned();
    eprintln!("a picture from a lost object: {} {said}", img.status);
    ensure!(
        img.status == 502 && said.contains("RemoteStorageError") && said.contains(keys[0].as_str()),
        "{}: {said}",
        img.status
    );
    ensure!(metric(&base, "openva_remote_read_failures_total")? >= 1.0);
    // And an event naming the object, once however often it is read.
    let again = request("GET", &format!("{base}/api/videos/cam/images/at.jpg?time={}", ms_iso(at)), None, &[])?;
    ensure!(again.status == 502, "{}", again.status);
    let lost = |e: &serde_json::Value| e["body"]["errorCode"] == "RemoteReadFailed";
    let e = events.wait_where("StorageError", lost, Duration::from_secs(10))?;
    ensure!(e["body"]["key"] == keys[0].as_str() && e["applicationProperties"]["subject"] == "/remote", "{e}");
    std::thread::sleep(Duration::from_millis(500));
    let n = events.all().iter().filter(|e| lost(e)).count();
    ensure!(n == 1, "{n} RemoteReadFailed events for one lost object");
    ensure!(host.terminate(Duration::from_secs(15))?.success());
    Ok(())
}

#[test]
fn evicted_segments_play_from_seaweedfs() -> Result<()> {
    let tmp = TempDir::new("remote-evict-s3");
    let mut store = seaweed(&tmp.path().join("seaweed"))?;
    eviction_exercise(&mut store, tmp.path())
}

#[test]
fn evicted_segments_play_from_azurite() -> Result<()> {
    let tmp = TempDir::new("remote-evict-azure");
    let mut store = azurite_with_credentials_file(tmp.path())?;
    eviction_exercise(&mut store, tmp.path())
}

/// The names of the videos `base` serves.
fn video_names(base: &str) -> Result<Vec<String>> {
    let list = request("GET", &format!("{base}/api/videos"), None, &[])?.json()?;
    Ok(list["value"].as_array().into_iter().flatten().filter_map(|v| v["name"].as_str().map(str::to_owned)).collect())
}

fn time_ranges(base: &str, video: &str) -> Result<serde_json::Value> {
    let am = request("GET", &format!("{base}/api/videos/{video}/availableMedia"), None, &[])?.json()?;
    Ok(am["timeRanges"].clone())
}

/// Recorders sharing a bucket under their own prefixes, and a read-only gateway of the whole
/// bucket (`docs/remote.md`): the gateway serves every recorder's videos with the same ranges
/// and byte-identical MP4s, built from the bucket's manifests alone; a new recording shows
/// there within a minute and a deleted video goes; it refuses to record. A third host given a
/// prefix another host writes uploads nothing there. `check --from-remote` rebuilds a
/// recorder's index from its prefix, clean.
fn gateway_exercise(store: &mut TestStore, tmp: &Path) -> Result<()> {
    let root = store.url.rsplit_once('/').map(|(r, _)| r.to_owned()).context("a URL with a prefix")?;
    let at = |prefix: &str| format!("{root}/{prefix}");
    let own_flags = store.flags.clone();
    store.url = at("site-a");
    let (_sim, cam) = start_sim(free_port(), &["--size", "640x360", "--fps", "25", "--gop", "25"])?;
    let deactivate = |base: &str| -> Result<()> {
        let (st, body) = method(base, "livePipelineDeactivate", &json!({"@apiVersion": "1.1", "name": "p"}))?;
        ensure!(st == 200, "deactivate: {st} {body}");
        Ok(())
    };
    // Recorder A (site-a): two recordings of "cam". Recorder B (site-b): one of "door", which
    // B copies only once chosen (`--remote-videos chosen`).
    let data_a = tmp.join("a");
    let (mut a, base_a) = start_logged_host(&data_a, store, &tmp.join("a.log"), &[])?;
    record_tutorial(&base_a, "p", &cam, "cam")?;
    store.url = at("site-b");
    store.flags.extend(["--remote-videos".into(), "chosen".into()]);
    let (mut b, base_b) = start_logged_host(&tmp.join("b"), store, &tmp.join("b.log"), &[])?;
    store.flags.truncate(own_flags.len());
    record_tutorial(&base_b, "p", &cam, "door")?;
    std::thread::sleep(Duration::from_secs(4));
    deactivate(&base_a)?;
    deactivate(&base_b)?;
    record_once(&base_a, 4)?;
    // Not chosen: "door" is kept on B's disk only, its closed segment in no backlog.
    let located =
        request("GET", &format!("{base_b}/api/videos/door/availableMedia?location=true"), None, &[])?.json()?;
    ensure!(located["timeRanges"][0]["location"] == "local", "{located}");
    ensure!(metric(&base_b, "openva_remote_backlog_segments")? == 0.0);
    ensure!(metric(&base_b, "openva_remote_uploads_total")? == 0.0);
    // Chosen (AVA's video PATCH, openva's `archival.remoteTier`): what it holds is copied.
    let chosen = br#"{"properties": {"archival": {"remoteTier": true}}}"#;
    let r = request("PATCH", &format!("{base_b}/api/videos/door"), Some(chosen), &[])?;
    ensure!(r.status == 200, "PATCH: {}", r.status);
    let entity = r.json()?;
    ensure!(entity["properties"]["archival"]["remoteTier"] == json!(true), "{entity}");
    // A third host given A's prefix: refused, nothing uploaded there.
    store.url = at("site-a");
    let (mut c, base_c) = start_logged_host(&tmp.join("c"), store, &tmp.join("c.log"), &[])?;
    wait_until("the third host refused A's prefix", Duration::from_secs(30), || {
        Ok(metric(&base_c, "openva_remote_prefix_taken")? == 1.0)
    })?;
    ensure!(c.terminate(Duration::from_secs(15))?.success());
    for (base, n) in [(&base_a, 2.0), (&base_b, 1.0)] {
        wait_until("uploads and manifests", Duration::from_secs(60), || {
            Ok(metric(base, "openva_remote_uploads_total")? >= n
                && metric(base, "openva_remote_backlog_segments")? == 0.0
                && metric(base, "openva_remote_manifests_total")? >= 1.0)
        })?;
    }
    let segments_a = block_on(list(&store.client, "site-a"))?.len();
    ensure!(segments_a == 2, "{segments_a} segment objects under site-a");

    // Foreign and broken objects in the bucket: a file at its root, another application's
    // prefix, a video.json that is no JSON, an hour manifest of another shape.
    let foreign = [
        ("README.txt", "not ours"),
        ("other-app/data.bin", "not ours either"),
        ("site-b/v1/videos/ghost/video.json", "not json"),
        ("site-b/v1/videos/door/hours/2020/01/01/00.json", r#"{"foreign": true}"#),
    ];
    for (key, body) in foreign {
        use object_store::ObjectStoreExt;
        let key = object_store::path::Path::from(key);
        block_on(store.client.put(&key, body.as_bytes().to_vec().into()))?;
    }

    // The gateway: the whole bucket, read-only, passes every 2 s.
    store.url = root.clone();
    store.flags.extend(["--read-only".into(), "--remote-sync".into(), "2".into()]);
    let glog = tmp.join("gateway.log");
    let (mut g, base_g) = start_logged_host(&tmp.join("g"), store, &glog, &[])?;
    wait_until("the gateway lists both recorders' videos", Duration::from_secs(60), || {
        Ok(video_names(&base_g)? == ["cam", "door"])
    })?;
    // The broken two are left out, each said once (an event, a log line), and counted.
    let gevents = Events::subscribe_from_start(&base_g, None)?;
    let rejected = |e: &serde_json::Value| e["body"]["errorCode"] == "RemoteObjectRejected";
    wait_until("the broken objects reported", Duration::from_secs(30), || {
        Ok(gevents.all().iter().filter(|e| rejected(e)).count() >= 2)
    })?;
    std::thread::sleep(Duration::from_secs(5)); // two more passes
    let said: Vec<String> = gevents
        .all()
        .iter()
        .filter(|e| rejected(e))
        .map(|e| e["body"]["message"].as_str().unwrap_or_default().to_owned())
        .collect();
    eprintln!("rejected: {said:?}");
    ensure!(said.len() == 2, "{said:?}");
    ensure!(
        said.iter().any(|m| m.contains("ghost/video.json")) && said.iter().any(|m| m.contains("2020/01/01/00.json"))
    );
    ensure!(metric(&base_g, "openva_remote_sync_problems")? == 2.0);
    for (base, video) in [(&base_a, "cam"), (&base_b, "door")] {
        let (theirs, ours) = (time_ranges(base, video)?, time_ranges(&base_g, video)?);
        ensure!(theirs == ours && theirs.as_array().is_some_and(|r| !r.is_empty()), "{video}: {theirs} vs {ours}");
    }
    // The whole of "cam" as one MP4: the same bytes from the gateway as from its recorder.
    let ranges = time_ranges(&base_a, "cam")?;
    let ms = |r: &serde_json::Value, k: &str| iso_ms(r[k].as_str().unwrap_or_default());
    let last = ranges.as_array().map_or(0, Vec::len).saturating_sub(1);
    eprintln!("cam: {ranges}");
    let (from, to) = (ms_iso(ms(&ranges[0], "start")?), ms_iso(ms(&ranges[last], "end")?));
    let url = |base: &str| format!("{base}/api/videos/cam/content.mp4?startTime={from}&endTime={to}");
    let (theirs, ours) = (request("GET", &url(&base_a), None, &[])?, request("GET", &url(&base_g), None, &[])?);
    ensure!(
        theirs.status == 200 && ours.status == 200,
        "content.mp4: {} and {}: {}",
        theirs.status,
        ours.status,
        String::from_utf8_lossy(&ours.body[..ours.body.len().min(300)])
    );
    ensure!(theirs.body == ours.body, "the gateway's MP4 differs ({} vs {} bytes)", ours.body.len(), theirs.body.len());
    let mp4 = tmp.join("gateway.mp4");
    std::fs::write(&mp4, &ours.body)?;
    ffmpeg_decodes(&mp4)?;
    ensure!(metric(&base_g, "openva_remote_read_gets_total")? >= 1.0, "the gateway read nothing from the store");
    // HLS from the gateway: every segment its playlist names is a segment object, whole.
    let objects = block_on(list(&store.client, "site-a"))?;
    let playlist =
        request("GET", &format!("{base_g}/api/videos/cam/media.m3u8?startTime={from}&endTime={to}"), None, &[])?;
    ensure!(playlist.status == 200, "media.m3u8: {}", playlist.status);
    let playlist = String::from_utf8(playlist.body)?;
    let uris: std::collections::BTreeSet<&str> =
        playlist.lines().filter(|l| l.starts_with("segments/")).map(|l| l.split('?').next().unwrap_or(l)).collect();
    ensure!(uris.len() == 2, "{playlist}");
    for uri in uris {
        let r = request("GET", &format!("{base_g}/api/videos/cam/{uri}"), None, &[])?;
        ensure!(r.status == 200 && objects.values().any(|o| o == &r.body), "{uri}: {} is no segment object", r.status);
    }
    // And in Chromium: the gateway's own web player plays "cam" from the store.
    let out = Command::new("node")
        .arg(repo_root().join("tests/web/av-check.js"))
        .arg(&base_g)
        .arg(format!("cam={}", ms(&ranges[0], "start")?))
        .current_dir(repo_root().join("tests/web"))
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}"))
        .with_context(|| format!("av-check printed no JSON: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)))?;
    eprintln!("Chromium at the gateway: {seen}");
    let played = &seen["videos"]["cam"];
    ensure!(seen["failure"].is_null() && played["failure"].is_null(), "{seen}");
    ensure!(seen["consoleErrors"].as_array().is_some_and(Vec::is_empty), "console errors: {seen}");
    ensure!(played["advanced"].as_f64().unwrap_or(0.0) >= 1.5, "cam did not play: {seen}");
    ensure!(played["videoBytes"].as_u64().unwrap_or(0) > 0, "{seen}");
    let located =
        request("GET", &format!("{base_g}/api/videos/cam/availableMedia?location=true"), None, &[])?.json()?;
    let places: Vec<&str> =
        located["timeRanges"].as_array().into_iter().flatten().filter_map(|r| r["location"].as_str()).collect();
    ensure!(!places.is_empty() && places.iter().all(|p| *p == "remote"), "{located}");
    // It records nothing.
    let (st, body) = method(&base_g, "livePipelineActivate", &json!({"@apiVersion": "1.1", "name": "p"}))?;
    ensure!(st == 409 && body.to_string().contains("read-only"), "{st} {body}");

    // A new recording on A shows at the gateway within a minute.
    record_once(&base_a, 4)?;
    let closed = std::time::Instant::now();
    let now_a = time_ranges(&base_a, "cam")?;
    ensure!(now_a != ranges, "the recording did not change A's ranges: {now_a}");
    wait_until("the new recording at the gateway", Duration::from_secs(60), || {
        Ok(time_ranges(&base_g, "cam")? == now_a)
    })?;
    eprintln!("a new recording reached the gateway {:.1} s after it closed", closed.elapsed().as_secs_f64());
    // B deletes "door": the gateway forgets it within a minute.
    let r = request("DELETE", &format!("{base_b}/api/videos/door"), None, &[])?;
    ensure!(r.status == 200 || r.status == 204, "delete: {}", r.status);
    wait_until("door gone from the gateway", Duration::from_secs(60), || Ok(video_names(&base_g)? == ["cam"]))?;
    ensure!(metric(&base_g, "openva_remote_sync_failures_total")? == 0.0);
    ensure!(g.terminate(Duration::from_secs(15))?.success());
    ensure!(b.terminate(Duration::from_secs(15))?.success());
    ensure!(a.terminate(Duration::from_secs(15))?.success());

    // A's index rebuilt from its prefix alone: every segment, clean.
    let rebuilt = tmp.join("rebuilt");
    let mut cmd = Command::new(openva_bin());
    cmd.args(["check", "--data"]).arg(&rebuilt).args(["--from-remote", &at("site-a")]).args(&own_flags);
    cmd.envs(store.env.iter().map(|(k, v)| (*k, v))).stdin(Stdio::null());
    let out = cmd.output()?;
    ensure!(out.status.success(), "check --from-remote: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    ensure!(report["added"] == json!(3) && report["problems"] == json!([]), "{report}");
    let report = openva_json(&["check", "--data", rebuilt.to_str().unwrap_or_default()])?;
    ensure!(report["problems"] == json!([]) && report["segments"] == json!(3), "{report}");
    let log = std::fs::read_to_string(&glog)?;
    ensure!(!log.contains(store.secret), "the secret is in the gateway's log");
    Ok(())
}

#[test]
fn a_gateway_serves_every_recorder_of_a_seaweedfs_bucket() -> Result<()> {
    let tmp = TempDir::new("remote-gateway-s3");
    let mut store = seaweed(&tmp.path().join("seaweed"))?;
    gateway_exercise(&mut store, tmp.path())
}

#[test]
fn a_gateway_serves_every_recorder_of_an_azurite_container() -> Result<()> {
    let tmp = TempDir::new("remote-gateway-azure");
    let mut store = azurite_with_credentials_file(tmp.path())?;
    gateway_exercise(&mut store, tmp.path())
}
