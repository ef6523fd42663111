//! Events out over MQTT against a real broker (mosquitto): a `mosquitto_sub` subscriber gets
//! every event the SSE stream shows for a pipeline, the same envelopes in the same order; the
//! pipeline's state and the host's availability are retained; a broker restarted mid-recording
//! stalls nothing and what happened meanwhile arrives after it; `kill -9` leaves the last will.

use openva_e2e::http::*;
use openva_e2e::mqtt::*;
use openva_e2e::*;
use serde_json::{Value, json};
use std::time::Duration;

fn mqtt_url(port: u16) -> String {
    format!("mqtt://127.0.0.1:{port}")
}

#[test]
fn events_state_and_availability_reach_the_broker_and_survive_its_restart() -> anyhow::Result<()> {
    let tmp = TempDir::new("mqtt-events");
    let port = free_port();
    let mut broker = start_broker(tmp.path(), port)?;
    let sub = Subscriber::start(port, "openva/#")?;
    let (_sim, cam) = start_sim(free_port(), &["--size", "640x360", "--gop", "25"])?;
    let (mut host, base) = start_host(&tmp.path().join("data"), &["--mqtt", &mqtt_url(port)])?;
    let events = Events::subscribe(&base, Some("cam1"))?;
    record_tutorial(&base, "cam1", &cam, "v1")?;
    events.wait_for("RecordingAvailable", Duration::from_secs(30))?;
    sub.wait_for("RecordingAvailable over MQTT", Duration::from_secs(10), |m| {
        m.payload.contains("RecordingAvailable")
    })?;
    // The same envelopes, in the same order, on the pipeline's outputs.
    let sse: Vec<Value> = events.all();
    let over_mqtt: Vec<Value> = sub
        .all()
        .iter()
        .filter(|m| m.topic.starts_with("openva/pipelines/cam1/outputs/"))
        .filter_map(|m| serde_json::from_str(&m.payload).ok())
        .collect();
    assert!(sse.len() >= 3, "{sse:?}");
    assert_eq!(&over_mqtt[..sse.len()], &sse[..], "MQTT carries what SSE shows");
    let topic_of =
        |kind: &str| sub.all().into_iter().find(|m| m.payload.contains(kind)).map(|m| m.topic).unwrap_or_default();
    assert_eq!(topic_of("MediaSessionEstablished"), "openva/pipelines/cam1/outputs/diagnostics");
    assert_eq!(topic_of("RecordingStarted"), "openva/pipelines/cam1/outputs/operational");
    // Retained: the pipeline's state and the host's availability, for anyone who subscribes later.
    wait_until("state retained", Duration::from_secs(5), || {
        Ok(retained(port, "openva/pipelines/cam1/state")? == "active")
    })?;
    assert_eq!(retained(port, "openva/available")?, "online");

    // /metrics: connected, every event so far acknowledged, none dropped.
    wait_until(
        "everything acknowledged",
        Duration::from_secs(10),
        || Ok(metric(&base, "openva_mqtt_waiting")? == 0.0),
    )?;
    assert_eq!(metric(&base, "openva_mqtt_connected")?, 1.0);
    let delivered = metric(&base, "openva_mqtt_delivered_total")?;
    assert!(delivered >= sse.len() as f64, "{delivered} delivered for {} events", sse.len());

    // The broker goes away for 3 s (and forgets everything): recording goes on.
    broker.kill9()?;
    drop(sub);
    wait_until("the outage seen", Duration::from_secs(10), || Ok(metric(&base, "openva_mqtt_connected")? == 0.0))?;
    // 4 s: the host retries after 1 s, then 2 s more, then 4 s more (t = 1, 3, 7), so the new
    // broker and this test's subscriber are up well before it reconnects and sends what it
    // queued (at 3 s they raced, and the subscriber could miss the outage's event).
    std::thread::sleep(Duration::from_secs(4));
    let _broker = start_broker(tmp.path(), port)?;
    let sub = Subscriber::start(port, "openva/#")?;
    // After the host reconnects: availability and state again, and the event about the outage
    // that happened while the broker was away.
    sub.wait_for("availability after the restart", Duration::from_secs(40), |m| {
        m.topic == "openva/available" && m.payload == "online"
    })?;
    sub.wait_for("the outage's event", Duration::from_secs(10), |m| {
        m.topic == "openva/module/outputs/diagnostics" && m.payload.contains("\"protocol\":\"mqtt\"")
    })?;
    assert_eq!(retained(port, "openva/pipelines/cam1/state")?, "active");
    assert_eq!(metric(&base, "openva_mqtt_connected")?, 1.0);
    assert_eq!(metric(&base, "openva_mqtt_dropped_total")?, 0.0, "a short outage drops nothing");
    // New events arrive: a deactivation's RecordingStopped.
    let (st, _) = method(&base, "livePipelineDeactivate", &json!({"@apiVersion": "1.1", "name": "cam1"}))?;
    assert_eq!(st, 200);
    sub.wait_for("RecordingStopped after the restart", Duration::from_secs(10), |m| {
        m.topic == "openva/pipelines/cam1/outputs/operational" && m.payload.contains("RecordingStopped")
    })?;
    wait_until("state inactive", Duration::from_secs(5), || {
        Ok(retained(port, "openva/pipelines/cam1/state")? == "inactive")
    })?;
    // The recording never stalled: one range, no gap around the outage.
    let am = request("GET", &format!("{base}/api/videos/v1/availableMedia"), None, &[])?.json()?;
    assert_eq!(am["timeRanges"].as_array().map(Vec::len), Some(1), "{am}");
    // A crash leaves the last will.
    host.kill9()?;
    wait_until("last will", Duration::from_secs(10), || Ok(retained(port, "openva/available")? == "offline"))?;
    Ok(())
}

#[test]
fn an_absent_broker_does_not_stop_the_host_and_a_clean_stop_says_stopped() -> anyhow::Result<()> {
    let tmp = TempDir::new("mqtt-absent");
    let port = free_port();
    // No broker yet: the host starts, records, and reports the broker unreachable.
    let (_sim, cam) = start_sim(free_port(), &["--size", "640x360", "--gop", "25"])?;
    let (mut host, base) = start_host(&tmp.path().join("data"), &["--mqtt", &mqtt_url(port)])?;
    let all = Events::subscribe_from_start(&base, None)?;
    record_tutorial(&base, "cam1", &cam, "v1")?;
    all.wait_for("RecordingAvailable", Duration::from_secs(30))?;
    let e = all.wait_where(
        "NetworkError",
        |e| e["body"]["protocol"] == "mqtt" && e["applicationProperties"]["subject"] == "/mqtt",
        Duration::from_secs(10),
    )?;
    assert!(e["body"]["target"].as_str().is_some_and(|t| t.ends_with(&format!(":{port}"))), "{e}");
    // The broker appears: what was queued arrives (the pipeline's first events included).
    let _broker = start_broker(tmp.path(), port)?;
    let sub = Subscriber::start(port, "openva/#")?;
    sub.wait_for("queued RecordingAvailable", Duration::from_secs(40), |m| m.payload.contains("RecordingAvailable"))?;
    // Bad settings are refused at start, naming the option.
    let out = openva(&["serve", "--data", tmp.path().join("d2").to_str().unwrap_or_default(), "--mqtt", "http://x"])?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mqtt"), "{}", String::from_utf8_lossy(&out.stderr));
    // A clean stop publishes `stopped`.
    host.terminate(Duration::from_secs(20))?;
    assert_eq!(retained(port, "openva/available")?, "stopped");
    Ok(())
}

#[test]
fn tls_to_the_broker_checks_its_certificate() -> anyhow::Result<()> {
    let tmp = TempDir::new("mqtt-tls");
    let (tls_port, plain_port) = (free_port(), free_port());
    let (_broker, ca) = start_broker_tls(&tmp.path().join("pki"), tls_port, plain_port)?;
    let url = format!("mqtts://localhost:{tls_port}");
    // Trusting the broker's CA: connected, availability retained (read on the plain listener).
    let (_host, _) =
        start_host(&tmp.path().join("data"), &["--mqtt", &url, "--mqtt-ca", ca.to_str().unwrap_or_default()])?;
    wait_until("online over TLS", Duration::from_secs(15), || {
        Ok(retained(plain_port, "openva/available")? == "online")
    })?;
    // Not trusting it: refused by the host's TLS check, reported, retried.
    let (_other, base) = start_host(
        &tmp.path().join("data2"),
        &["--mqtt", &url, "--mqtt-client-id", "untrusting", "--mqtt-prefix", "other"],
    )?;
    let all = Events::subscribe_from_start(&base, None)?;
    let e = all.wait_where("NetworkError", |e| e["body"]["protocol"] == "mqtt", Duration::from_secs(15))?;
    assert!(e["body"]["message"].as_str().is_some_and(|m| m.to_lowercase().contains("certificate")), "{e}");
    assert_eq!(retained(plain_port, "other/available")?, "");
    Ok(())
}

#[test]
fn credentials_in_the_url_log_in_and_a_refusal_is_reported() -> anyhow::Result<()> {
    let tmp = TempDir::new("mqtt-login");
    let port = free_port();
    let _broker = start_broker_with_password(&tmp.path().join("broker"), port, "cam-host", "s3cr:t@x")?;
    // The password percent-encoded in the URL, as URLs require.
    let url = format!("mqtt://cam-host:s3cr%3At%40x@127.0.0.1:{port}");
    let (_host, _) = start_host(&tmp.path().join("data"), &["--mqtt", &url])?;
    let login = Some(("cam-host", "s3cr:t@x"));
    wait_until("online with credentials", Duration::from_secs(15), || {
        Ok(retained_as(port, "openva/available", login)? == "online")
    })?;
    // A wrong password: refused by the broker, reported without the password, retried.
    let bad = format!("mqtt://cam-host:wrong-pass@127.0.0.1:{port}");
    let (_other, base) = start_host(
        &tmp.path().join("data2"),
        &["--mqtt", &bad, "--mqtt-client-id", "other", "--mqtt-prefix", "other"],
    )?;
    let all = Events::subscribe_from_start(&base, None)?;
    let e = all.wait_where("NetworkError", |e| e["body"]["protocol"] == "mqtt", Duration::from_secs(15))?;
    assert!(!e.to_string().contains("wrong-pass"), "{e}");
    assert_eq!(retained_as(port, "other/available", login)?, "");
    Ok(())
}
