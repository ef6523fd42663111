//! A real MQTT broker (Debian's mosquitto) and its command-line clients, for the MQTT tests.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Proc, wait_until};

/// mosquitto on `127.0.0.1:port`, anonymous, no persistence (a restart forgets everything, as
/// a broker that lost its disk would).
pub fn start_broker(dir: &Path, port: u16) -> Result<Proc> {
    std::fs::create_dir_all(dir)?;
    let conf = dir.join(format!("mosquitto-{port}.conf"));
    std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"))?;
    spawn(&conf, &[port])
}

/// mosquitto on `127.0.0.1:port` that takes only `user` with `password`.
pub fn start_broker_with_password(dir: &Path, port: u16, user: &str, password: &str) -> Result<Proc> {
    std::fs::create_dir_all(dir)?;
    let passwords = dir.join("passwords");
    let st = Command::new("mosquitto_passwd")
        .arg("-b")
        .arg("-c")
        .arg(&passwords)
        .args([user, password])
        .status()
        .context("mosquitto_passwd")?;
    anyhow::ensure!(st.success(), "mosquitto_passwd failed");
    let conf = dir.join(format!("mosquitto-{port}.conf"));
    std::fs::write(
        &conf,
        format!(
            "user {}\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\npersistence false\n",
            current_user(),
            passwords.display()
        ),
    )?;
    spawn(&conf, &[port])
}

/// Runs mosquitto on `conf` and waits until every one of `ports` takes connections.
fn spawn(conf: &Path, ports: &[u16]) -> Result<Proc> {
    let bin = if Path::new("/usr/sbin/mosquitto").exists() { "/usr/sbin/mosquitto" } else { "mosquitto" };
    let child = Command::new(bin)
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting mosquitto (apt-get install mosquitto)")?;
    let proc = Proc { child, name: "mosquitto".into() };
    wait_until("mosquitto listening", Duration::from_secs(10), || {
        Ok(ports.iter().all(|&p| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok()))
    })?;
    Ok(proc)
}

/// The user the tests run as: mosquitto started as root drops to its own user unless told to
/// stay, and that user could not read the test's key in a private temporary directory.
fn current_user() -> String {
    std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| {
        let out = Command::new("id").arg("-un").output().ok();
        out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_else(|| "root".into())
    })
}

/// One received message: topic, retained flag, payload.
#[derive(Clone, Debug)]
pub struct Message {
    /// Its topic.
    pub topic: String,
    /// Whether the broker delivered it as retained.
    pub retained: bool,
    /// Its payload (text).
    pub payload: String,
}

/// A `mosquitto_sub` (MQTT v5) collecting what it receives on a background thread.
pub struct Subscriber {
    _proc: Proc,
    got: Arc<Mutex<Vec<Message>>>,
}

impl Subscriber {
    /// Subscribes to `topic` (wildcards allowed) on the broker at `port`.
    pub fn start(port: u16, topic: &str) -> Result<Subscriber> {
        let mut child = Command::new("mosquitto_sub")
            .args(["-V", "mqttv5", "-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", topic])
            .args(["-F", "%t\t%r\t%p"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting mosquitto_sub (apt-get install mosquitto-clients)")?;
        let stdout = child.stdout.take().context("stdout")?;
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut parts = line.splitn(3, '\t');
                let (Some(topic), Some(r), Some(payload)) = (parts.next(), parts.next(), parts.next()) else {
                    continue;
                };
                let m = Message { topic: topic.into(), retained: r == "1", payload: payload.into() };
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(m);
            }
        });
        // mosquitto_sub has no ready line: give it a moment to subscribe.
        std::thread::sleep(Duration::from_millis(300));
        Ok(Subscriber { _proc: Proc { child, name: "mosquitto_sub".into() }, got })
    }

    /// Everything received so far.
    pub fn all(&self) -> Vec<Message> {
        self.got.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits for a message for which `pred` holds.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&Message) -> bool) -> Result<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.all().into_iter().find(|m| pred(m)) {
                return Ok(m);
            }
            if Instant::now() > deadline {
                let topics: Vec<String> = self.all().iter().map(|m| m.topic.clone()).collect();
                bail!("no {what} within {timeout:?}; got {topics:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The retained message of `topic` now (waits up to 5 s for it).
pub fn retained(port: u16, topic: &str) -> Result<String> {
    retained_as(port, topic, None)
}

/// [`retained`] logged in as `(user, password)`.
pub fn retained_as(port: u16, topic: &str, login: Option<(&str, &str)>) -> Result<String> {
    let mut cmd = Command::new("mosquitto_sub");
    cmd.args(["-V", "mqttv5", "-h", "127.0.0.1", "-p", &port.to_string(), "-t", topic, "-C", "1", "-W", "5"]);
    if let Some((u, p)) = login {
        cmd.args(["-u", u, "-P", p]);
    }
    let out = cmd.output().context("mosquitto_sub")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Publishes `payload` to `topic` (MQTT v5), with user properties `props`.
pub fn publish(port: u16, topic: &str, payload: &str, props: &[(&str, &str)]) -> Result<()> {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-V", "mqttv5", "-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", topic, "-m", payload]);
    for (k, v) in props {
        cmd.args(["-D", "publish", "user-property", k, v]);
    }
    let st = cmd.status().context("mosquitto_pub")?;
    anyhow::ensure!(st.success(), "mosquitto_pub failed");
    Ok(())
}

/// mosquitto with a TLS listener on `tls_port` (a certificate for `localhost` and 127.0.0.1,
/// from a test CA made with openssl) and a plain one on `plain_port`; returns it and the CA's
/// certificate file.
pub fn start_broker_tls(dir: &Path, tls_port: u16, plain_port: u16) -> Result<(Proc, std::path::PathBuf)> {
    crate::test_certificates(dir)?;
    let conf = dir.join("mosquitto-tls.conf");
    std::fs::write(
        &conf,
        format!(
            "user {}\nallow_anonymous true\npersistence false\nlistener {plain_port} 127.0.0.1\nlistener {tls_port} 127.0.0.1\n\
             cafile {1}/ca.crt\ncertfile {1}/server.crt\nkeyfile {1}/server.key\n",
            current_user(),
            dir.display()
        ),
    )?;
    let proc = spawn(&conf, &[tls_port, plain_port])?;
    Ok((proc, dir.join("ca.crt")))
}
