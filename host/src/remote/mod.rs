//! The remote tier: closed segments copied to object storage (S3 or Azure Blob, through the
//! `object_store` crate) and their copies recorded in the index (`docs/remote.md`).
//!
//! - [`RemoteConfig`]: where (`s3://bucket/prefix`, `azure://container/prefix`) and with which
//!   credentials (the environment, or a file; never the command line, never a log line).
//! - [`upload`]: the uploader, a task beside recording that never makes it wait.
//! - [`catalog`]: the bucket's manifests (written after uploads, read to rebuild an index).
//! - [`gateway`]: a read-only host serving every video of a bucket.
//! - [`read`]: ranged reads of remote-only segments through a cache on local disk.
//!
//! Object keys name what they hold, so a bucket describes itself:
//! `PREFIX/v1/videos/VIDEO/seg/YYYY/MM/DD/HH/START90K-RUN-SEQ.mp4` (the segment file itself, which
//! also carries its video, run, sequence and times in its `ovmd` box).

pub mod catalog;
pub mod gateway;
pub mod read;
pub mod upload;

use crate::time::Time90k;
use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Why the remote tier cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// `--remote` is not a URL we take.
    #[error("--remote '{url}': {reason}")]
    BadUrl {
        /// The URL, credentials hidden.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The credentials file cannot be read or names an unknown setting.
    #[error("--remote-credentials {path}: {reason}")]
    BadCredentials {
        /// The file.
        path: String,
        /// What is wrong (never a value).
        reason: String,
    },
    /// The store client refused the settings.
    #[error("the remote store's settings: {0}")]
    Store(String),
}

/// Which service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// S3 and S3-compatible stores (`s3://`).
    S3,
    /// Azure Blob Storage (`azure://`, `az://`).
    Azure,
}

/// Where the remote tier is, and the settings its client is built with.
#[derive(Clone)]
pub struct RemoteConfig {
    /// The service.
    pub service: Service,
    /// Bucket or container.
    pub bucket: String,
    /// Key prefix inside it (no leading or trailing `/`), this host's part of a shared bucket.
    pub prefix: String,
    /// Settings from the credentials file (`object_store` keys such as `aws_secret_access_key`).
    options: Vec<(String, String)>,
}

impl std::fmt::Debug for RemoteConfig {
    // Settings are secrets: only their names are ever shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("target", &self.target())
            .field("settings", &self.options.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

/// How long one request to the store may take, and to connect: a store that hangs fails the
/// upload (retried later), never holds it forever.
const TIMEOUT: &str = "60s";
const CONNECT_TIMEOUT: &str = "5s";

impl RemoteConfig {
    /// Parses `--remote` and reads `--remote-credentials` (lines `key=value`, `#` comments;
    /// keys are `object_store`'s, e.g. `aws_access_key_id`, `azure_storage_account_key`).
    /// Credentials in the URL are refused: command lines are visible to every user of the
    /// machine and end up in logs.
    pub fn parse(url: &str, credentials: Option<&Path>) -> Result<Self, RemoteError> {
        let bad = |reason: &str| RemoteError::BadUrl { url: crate::secrets::redact_url(url), reason: reason.into() };
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad("credentials do not go in the URL: set them in the environment (AWS_*, AZURE_*) \
                 or in the file --remote-credentials names"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad("a query or fragment is not part of a remote tier's URL"));
        }
        let service = match parsed.scheme() {
            "s3" => Service::S3,
            "azure" | "az" => Service::Azure,
            s => return Err(bad(&format!("scheme '{s}' is not s3:// or azure://"))),
        };
        let bucket = parsed.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("no bucket or container"))?;
        let prefix = parsed.path().trim_matches('/').to_owned();
        // Checked on the text: the URL parser resolves `a/../b` to `b` silently.
        if url.split(['/', '?', '#']).any(|p| p == "." || p == "..") {
            return Err(bad("the prefix may not hold '.' or '..'"));
        }
        let options = match credentials {
            Some(path) => read_settings(path, service)?,
            None => Vec::new(),
        };
        Ok(RemoteConfig { service, bucket: bucket.to_owned(), prefix, options })
    }

    /// `s3://bucket/prefix`: what logs and replies may show.
    pub fn target(&self) -> String {
        let scheme = match self.service {
            Service::S3 => "s3",
            Service::Azure => "azure",
        };
        format!("{scheme}://{}/{}", self.bucket, self.prefix)
    }

    /// The store's client: the environment's settings (`AWS_*` or `AZURE_*`), then the
    /// credentials file's, with bounded timeouts and few retries (the uploader retries with
    /// its own backoff, so an outage never piles up requests in the client).
    pub fn build(&self) -> Result<Arc<dyn ObjectStore>, RemoteError> {
        // The store's HTTPS client is rustls without a bundled provider: ring, as the rest of
        // the host uses (an error only says one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store_err = |e: object_store::Error| RemoteError::Store(e.to_string());
        let retry = object_store::RetryConfig {
            backoff: object_store::BackoffConfig::default(),
            max_retries: 2,
            retry_timeout: Duration::from_secs(30),
        };
        Ok(match self.service {
            Service::S3 => {
                let mut b = AmazonS3Builder::new();
                for (k, v) in self.settings("AWS_") {
                    if let Ok(key) = k.parse::<AmazonS3ConfigKey>() {
                        b = b.with_config(key, v);
                    }
                }
                Arc::new(b.with_bucket_name(&self.bucket).with_retry(retry).build().map_err(store_err)?)
            }
            Service::Azure => {
                let mut b = MicrosoftAzureBuilder::new();
                for (k, v) in self.settings("AZURE_") {
                    if let Ok(key) = k.parse::<AzureConfigKey>() {
                        b = b.with_config(key, v);
                    }
                }
                Arc::new(b.with_container_name(&self.bucket).with_retry(retry).build().map_err(store_err)?)
            }
        })
    }

    /// The client's settings in the order they apply (a later one wins): our timeouts, the
    /// environment's variables starting with `env_prefix` (as the cloud tools name them), the
    /// credentials file's.
    fn settings(&self, env_prefix: &str) -> Vec<(String, String)> {
        [("timeout", TIMEOUT), ("connect_timeout", CONNECT_TIMEOUT)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .chain(
                std::env::vars().filter(|(k, _)| k.starts_with(env_prefix)).map(|(k, v)| (k.to_ascii_lowercase(), v)),
            )
            .chain(self.options.iter().cloned())
            .collect()
    }

    /// The key of a segment of `video` starting at `start`, run `run`, sequence `seq`.
    pub fn segment_key(&self, video: &str, start: Time90k, run: i64, seq: i64) -> String {
        self.key(&format!("v1/videos/{video}/seg/{}/{}-{run:08}-{seq:06}.mp4", hour_path(start), start.0))
    }

    /// The key of `video`'s manifest of `hour` (`archive::catalog`).
    pub fn hour_key(&self, video: &str, hour: i64) -> String {
        let start = Time90k(hour.saturating_mul(crate::archive::catalog::HOUR_90K));
        self.key(&format!("v1/videos/{video}/hours/{}.json", hour_path(start)))
    }

    /// The key of `video`'s `video.json`.
    pub fn video_key(&self, video: &str) -> String {
        self.key(&format!("v1/videos/{video}/video.json"))
    }

    /// The key of the object naming the host that writes this prefix.
    pub fn writer_key(&self) -> String {
        self.key("v1/writer.json")
    }

    fn key(&self, rest: &str) -> String {
        if self.prefix.is_empty() { rest.to_owned() } else { format!("{}/{rest}", self.prefix) }
    }
}

/// `YYYY/MM/DD/HH` of a time's UTC hour.
fn hour_path(t: Time90k) -> String {
    let iso = t.to_iso_millis(); // 2026-12-07T09:05:31.505Z
    format!("{}/{}/{}/{}", &iso[0..4], &iso[5..7], &iso[8..10], &iso[11..13])
}

/// The settings of a credentials file: `key=value` lines whose keys the service's client
/// knows. An unknown key is an error naming it (a typo would otherwise be ignored, and the
/// store reached with other credentials); values are never quoted in errors.
fn read_settings(path: &Path, service: Service) -> Result<Vec<(String, String)>, RemoteError> {
    let bad = |reason: String| RemoteError::BadCredentials { path: path.display().to_string(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| bad(format!("line {} is not key=value", n + 1)))?;
        let k = k.trim().to_ascii_lowercase();
        let known = match service {
            Service::S3 => k.parse::<AmazonS3ConfigKey>().is_ok(),
            Service::Azure => k.parse::<AzureConfigKey>().is_ok(),
        };
        if !known {
            return Err(bad(format!("line {}: '{k}' is not a setting of this store's client", n + 1)));
        }
        out.push((k, v.trim().to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_keys() {
        let c = RemoteConfig::parse("s3://openva/site-a/", None).unwrap();
        assert_eq!((c.service, c.bucket.as_str(), c.prefix.as_str()), (Service::S3, "openva", "site-a"));
        assert_eq!(c.target(), "s3://openva/site-a");
        let start = Time90k::parse_iso("2026-12-07T09:05:31.505Z").unwrap();
        assert_eq!(
            c.segment_key("door", start, 3, 12),
            format!("site-a/v1/videos/door/seg/2026/12/07/09/{}-00000003-000012.mp4", start.0)
        );
        let a = RemoteConfig::parse("azure://recordings", None).unwrap();
        assert_eq!((a.service, a.prefix.as_str()), (Service::Azure, ""));
        assert!(a.segment_key("v", start, 1, 0).starts_with("v1/videos/v/seg/"));
        let hour = start.0.div_euclid(crate::archive::catalog::HOUR_90K);
        assert_eq!(c.hour_key("door", hour), "site-a/v1/videos/door/hours/2026/12/07/09.json");
        assert_eq!(c.video_key("door"), "site-a/v1/videos/door/video.json");
        assert_eq!(a.writer_key(), "v1/writer.json");
        for (url, says) in [
            ("s3://key:secret@bucket/p", "credentials"),
            ("gs://bucket", "scheme"),
            ("s3://bucket/p?x=1", "query"),
            ("s3:///p", "bucket"),
            ("s3://bucket/a/../b", ".."),
        ] {
            let e = RemoteConfig::parse(url, None).unwrap_err().to_string();
            assert!(e.contains(says) && !e.contains("secret"), "{url}: {e}");
        }
    }

    #[test]
    fn credential_files_name_bad_keys_never_values() {
        let dir = std::env::temp_dir().join(format!("openva-remote-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("creds");
        std::fs::write(&f, "# comment\naws_access_key_id = AKIA\naws_secret_access_key=s3cr3t\n").unwrap();
        let c = RemoteConfig::parse("s3://b", Some(&f)).unwrap();
        assert_eq!(c.options.len(), 2);
        assert!(!format!("{c:?}").contains("s3cr3t"));
        std::fs::write(&f, "aws_secret_acess_key=s3cr3t\n").unwrap();
        let e = RemoteConfig::parse("s3://b", Some(&f)).unwrap_err().to_string();
        assert!(e.contains("aws_secret_acess_key") && !e.contains("s3cr3t"), "{e}");
        std::fs::write(&f, "azure_storage_account_key\n").unwrap();
        assert!(RemoteConfig::parse("azure://c", Some(&f)).unwrap_err().to_string().contains("line 1"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
