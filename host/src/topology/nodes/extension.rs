//! `HttpExtension` and `GrpcExtension`: AVA's way to run a model outside the media module —
//! sampled frames, scaled and encoded, go to an inference server, whose inferences come back
//! on the frame (research/extensions.md §1–§2). Both share AVA's `ExtensionProcessorBase`:
//! `endpoint`, `image`, `samplingOptions`; the gRPC node adds `dataTransfer` and
//! `extensionConfiguration`. This module reads and checks the settings; the runtime's side
//! comes with the extensions work (issue 18), until then the host refuses these nodes when a
//! topology is set.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::super::catalogue::strip_type_prefix;
use super::super::config::Stage;
use super::super::error::{TopologyError, shown};
use super::super::json;
use super::encoder::{ScaleMode, ScaleSpec};
use crate::secrets::redact_url;
use crate::time::Duration90k;

/// Largest scaled picture side sent to an extension.
pub const MAX_SCALE: u32 = 8192;
/// AVA's shared-memory size range for the gRPC extension, MiB (openva's bounds: the corpus
/// uses 64 and 75; AVA documented none).
pub const SHARED_MEMORY_MIB: (u32, u32) = (1, 1024);

/// Which extension contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtensionKind {
    /// HTTP POST of one image per sample.
    Http,
    /// AVA's gRPC contract (`MediaGraphExtension.ProcessMediaStream`).
    Grpc {
        /// How samples travel.
        transfer: DataTransfer,
        /// `extensionConfiguration`, passed to the server as is.
        configuration: Option<String>,
    },
}

/// `dataTransfer.mode` of the gRPC extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataTransfer {
    /// Bytes in the gRPC messages.
    Embedded,
    /// Bytes in a shared-memory file of this many MiB (`/dev/shm`), referenced by the messages.
    SharedMemory {
        /// `sharedMemorySizeMiB`.
        size_mib: u32,
    },
}

/// How the server authenticates the host.
#[derive(Clone, PartialEq, Eq)]
pub enum ExtensionCredentials {
    /// None.
    None,
    /// `UsernamePasswordCredentials`: HTTP Basic (gRPC: `x-ms-authentication` metadata).
    Basic {
        /// User.
        username: String,
        /// Password.
        password: String,
    },
    /// `HttpHeaderCredentials`: one header with a secret value.
    Header {
        /// Its name.
        name: String,
        /// Its value.
        value: String,
    },
}

impl std::fmt::Debug for ExtensionCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExtensionCredentials::None => f.write_str("None"),
            ExtensionCredentials::Basic { username, .. } => write!(f, "Basic({username}, ******)"),
            ExtensionCredentials::Header { name, .. } => write!(f, "Header({name}: ******)"),
        }
    }
}

/// A `TlsEndpoint`'s settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// `trustedCertificates.certificates` (PEM); empty: the system's CA list.
    pub certificates: Vec<String>,
    /// `validationOptions.ignoreHostname`.
    pub ignore_hostname: bool,
    /// `validationOptions.ignoreSignature`.
    pub ignore_signature: bool,
}

/// `image.format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageFormat {
    /// JPEG at `quality` (0–100; AVA's default when absent is undocumented, openva: 90).
    Jpeg {
        /// Quality.
        quality: u8,
    },
    /// PNG.
    Png,
    /// BMP.
    Bmp,
    /// Raw pixels in one of AVA's formats (`yuv420p`, `rgb24`, `bgra`…).
    Raw {
        /// AVA's `pixelFormat`, lower case.
        pixel_format: String,
    },
}

/// AVA's raw pixel formats.
pub const PIXEL_FORMATS: &[&str] =
    &["yuv420p", "rgb565be", "rgb565le", "rgb555be", "rgb555le", "rgb24", "bgr24", "argb", "rgba", "abgr", "bgra"];

/// Settings of an extension node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionConfig {
    /// HTTP or gRPC, and the gRPC settings.
    pub kind: ExtensionKind,
    /// `endpoint.url` (HTTP: `http(s)://`; gRPC: `tcp://host:port`, or `http(s)://`).
    pub url: String,
    /// `endpoint.credentials`.
    pub credentials: ExtensionCredentials,
    /// `TlsEndpoint`'s settings (`None`: `UnsecuredEndpoint`).
    pub tls: Option<TlsSettings>,
    /// `image.scale` (`None`: the picture as decoded).
    pub scale: Option<ScaleSpec>,
    /// `image.format`.
    pub format: ImageFormat,
    /// `samplingOptions.maximumSamplesPerSecond`: least media time between samples.
    pub interval: Option<Duration90k>,
    /// `samplingOptions.skipSamplesWithoutAnnotation`: only frames carrying upstream inferences.
    pub skip_without_annotation: bool,
}

/// Which node type is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::topology) enum Which {
    Http,
    Grpc,
}

pub(in crate::topology) fn build(
    node: &str,
    obj: &Map<String, Value>,
    stage: Stage,
    which: Which,
) -> Result<ExtensionConfig, TopologyError> {
    let type_name = if which == Which::Http { "HttpExtension" } else { "GrpcExtension" };
    let what = |p: &str| format!("node '{node}' ({type_name}): {p}");
    let missing = |p: &str| TopologyError::module(format!("{} is missing", what(p)));
    let invalid =
        |p: &str, v: &str, why: &str| TopologyError::module(format!("{} '{}' {why}", what(p), shown(&redact_url(v))));
    let literal = |o: &Map<String, Value>, key: &str, p: &str| -> Result<Option<String>, TopologyError> {
        Ok(stage.literal(json::opt_scalar(o, key, || what(p))?).map(Cow::into_owned))
    };
    let flag = |o: &Map<String, Value>, key: &str, p: &str| -> Result<bool, TopologyError> {
        match literal(o, key, p)? {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(invalid(p, &v, "must be true or false")),
        }
    };

    // endpoint
    let endpoint = json::opt_object(obj, "endpoint", || what("endpoint"))?.ok_or_else(|| missing("endpoint"))?;
    let url = json::opt_scalar(endpoint, "url", || what("endpoint.url"))?.ok_or_else(|| missing("endpoint.url"))?;
    let endpoint_type = literal(endpoint, "@type", "endpoint.@type")?;
    let tls = match endpoint_type.as_deref().map(|t| strip_type_prefix(t).unwrap_or(t).to_ascii_lowercase()) {
        None => None,
        Some(t) if t == "unsecuredendpoint" => None,
        Some(t) if t == "tlsendpoint" => Some(tls_settings(endpoint, stage, &what)?),
        Some(_) => {
            let t = endpoint_type.unwrap_or_default();
            return Err(invalid("endpoint.@type", &t, "must be UnsecuredEndpoint or TlsEndpoint"));
        }
    };
    if let Some(u) = stage.literal(Some(url.clone())) {
        let schemes: &[&str] = if which == Which::Http { &["http", "https"] } else { &["tcp", "http", "https"] };
        match url::Url::parse(&u) {
            Err(e) => return Err(invalid("endpoint.url", &u, &format!("is not a URL: {e}"))),
            Ok(p) if !schemes.contains(&p.scheme()) => {
                return Err(invalid("endpoint.url", &u, &format!("must use {}", schemes.join(", "))));
            }
            Ok(p) if p.host_str().is_none_or(str::is_empty) => return Err(invalid("endpoint.url", &u, "has no host")),
            Ok(p) if which == Which::Grpc && p.scheme() == "tcp" && p.port().is_none() => {
                return Err(invalid("endpoint.url", &u, "needs a port (tcp://host:port)"));
            }
            Ok(_) => {}
        }
    }
    let credentials = match json::opt_object(endpoint, "credentials", || what("endpoint.credentials"))? {
        None => ExtensionCredentials::None,
        Some(c) => {
            let t = literal(c, "@type", "endpoint.credentials.@type")?;
            let field = |key: &str| -> Result<String, TopologyError> {
                let p = format!("endpoint.credentials.{key}");
                json::opt_scalar(c, key, || what(&p))?.map(Cow::into_owned).ok_or_else(|| missing(&p))
            };
            match t.as_deref().map(|t| strip_type_prefix(t).unwrap_or(t).to_ascii_lowercase()) {
                Some(t) if t == "httpheadercredentials" => {
                    ExtensionCredentials::Header { name: field("headerName")?, value: field("headerValue")? }
                }
                Some(t) if t == "usernamepasswordcredentials" => {
                    ExtensionCredentials::Basic { username: field("username")?, password: field("password")? }
                }
                // A type still waiting for a parameter: checked on the pipeline.
                None => ExtensionCredentials::None,
                Some(_) => {
                    return Err(invalid(
                        "endpoint.credentials.@type",
                        &t.unwrap_or_default(),
                        "must be UsernamePasswordCredentials or HttpHeaderCredentials",
                    ));
                }
            }
        }
    };

    // image
    let image = json::opt_object(obj, "image", || what("image"))?.ok_or_else(|| missing("image"))?;
    let scale = match json::opt_object(image, "scale", || what("image.scale"))? {
        None => None,
        Some(s) => {
            let mode = match literal(s, "mode", "image.scale.mode")? {
                None => ScaleMode::Pad,
                Some(m) => ScaleMode::parse(&m)
                    .ok_or_else(|| invalid("image.scale.mode", &m, "must be pad, preserveAspectRatio or stretch"))?,
            };
            let side = |key: &str| -> Result<Option<u32>, TopologyError> {
                let p = format!("image.scale.{key}");
                match literal(s, key, &p)? {
                    None => Ok(None),
                    Some(v) => match v.trim().parse::<u32>() {
                        Ok(n) if (1..=MAX_SCALE).contains(&n) => Ok(Some(n)),
                        _ => Err(invalid(&p, &v, &format!("must be a whole number from 1 to {MAX_SCALE}"))),
                    },
                }
            };
            let (width, height) = (side("width")?, side("height")?);
            let waits = |key: &str| json::get(s, key).is_some_and(json::has_placeholder);
            let complete = |v: Option<u32>, key: &str| v.is_some() || waits(key);
            let both = complete(width, "width") && complete(height, "height");
            let one = complete(width, "width") || complete(height, "height");
            if (mode != ScaleMode::PreserveAspectRatio && !both) || !one {
                return Err(TopologyError::module(format!(
                    "{} needs width and height (preserveAspectRatio: at least one)",
                    what("image.scale")
                )));
            }
            Some(ScaleSpec { mode, width, height })
        }
    };
    let format = match json::opt_object(image, "format", || what("image.format"))? {
        None => ImageFormat::Jpeg { quality: 90 },
        Some(f) => {
            let t = literal(f, "@type", "image.format.@type")?.unwrap_or_default();
            match strip_type_prefix(&t).unwrap_or(&t).to_ascii_lowercase().as_str() {
                "imageformatjpeg" => {
                    let quality = match literal(f, "quality", "image.format.quality")? {
                        None => 90,
                        Some(q) => match q.trim().parse::<u8>() {
                            Ok(n) if n <= 100 => n,
                            _ => {
                                return Err(invalid(
                                    "image.format.quality",
                                    &q,
                                    "must be a whole number from 0 to 100",
                                ));
                            }
                        },
                    };
                    ImageFormat::Jpeg { quality }
                }
                "imageformatpng" => ImageFormat::Png,
                "imageformatbmp" => ImageFormat::Bmp,
                "imageformatraw" => {
                    let p = literal(f, "pixelFormat", "image.format.pixelFormat")?;
                    let waits = json::get(f, "pixelFormat").is_some_and(json::has_placeholder);
                    match p {
                        Some(p) if PIXEL_FORMATS.iter().any(|k| k.eq_ignore_ascii_case(&p)) => {
                            ImageFormat::Raw { pixel_format: p.to_ascii_lowercase() }
                        }
                        Some(p) => {
                            return Err(invalid(
                                "image.format.pixelFormat",
                                &p,
                                &format!("must be one of {}", PIXEL_FORMATS.join(", ")),
                            ));
                        }
                        None if waits => ImageFormat::Raw { pixel_format: String::new() },
                        None => return Err(missing("image.format.pixelFormat")),
                    }
                }
                // Waiting for a parameter: the pipeline checks it.
                "" if json::get(f, "@type").is_some_and(json::has_placeholder) => ImageFormat::Jpeg { quality: 90 },
                _ => {
                    return Err(invalid(
                        "image.format.@type",
                        &t,
                        "must be ImageFormatJpeg, ImageFormatPng, ImageFormatBmp or ImageFormatRaw",
                    ));
                }
            }
        }
    };

    // samplingOptions
    let sampling = json::get(obj, "samplingOptions");
    let interval = match sampling {
        Some(v) if stage == Stage::Pipeline || !json::has_placeholder(v) => super::sampling_interval(node, Some(v))?,
        _ => None,
    };
    let skip_without_annotation = match sampling.and_then(|v| v.as_object()) {
        Some(o) => flag(o, "skipSamplesWithoutAnnotation", "samplingOptions.skipSamplesWithoutAnnotation")?,
        None => false,
    };

    let kind = match which {
        Which::Http => ExtensionKind::Http,
        Which::Grpc => {
            let dt = json::opt_object(obj, "dataTransfer", || what("dataTransfer"))?
                .ok_or_else(|| missing("dataTransfer"))?;
            let mode = literal(dt, "mode", "dataTransfer.mode")?;
            let transfer = match mode.as_deref() {
                Some(m) if m.eq_ignore_ascii_case("embedded") => DataTransfer::Embedded,
                Some(m) if m.eq_ignore_ascii_case("sharedMemory") => {
                    let p = "dataTransfer.sharedMemorySizeMiB";
                    let (lo, hi) = SHARED_MEMORY_MIB;
                    match literal(dt, "sharedMemorySizeMiB", p)? {
                        None if json::get(dt, "sharedMemorySizeMiB").is_some() => {
                            DataTransfer::SharedMemory { size_mib: 0 }
                        }
                        None => return Err(missing(p)),
                        Some(v) => match v.trim().parse::<u32>() {
                            Ok(n) if (lo..=hi).contains(&n) => DataTransfer::SharedMemory { size_mib: n },
                            _ => {
                                return Err(invalid(
                                    p,
                                    &v,
                                    &format!("must be a whole number of MiB from {lo} to {hi}"),
                                ));
                            }
                        },
                    }
                }
                None if json::get(dt, "mode").is_some() => DataTransfer::Embedded,
                None => return Err(missing("dataTransfer.mode")),
                Some(m) => return Err(invalid("dataTransfer.mode", m, "must be embedded or sharedMemory")),
            };
            let configuration = json::opt_scalar(obj, "extensionConfiguration", || what("extensionConfiguration"))?
                .map(Cow::into_owned);
            ExtensionKind::Grpc { transfer, configuration }
        }
    };
    Ok(ExtensionConfig {
        kind,
        url: url.into_owned(),
        credentials,
        tls,
        scale,
        format,
        interval,
        skip_without_annotation,
    })
}

fn tls_settings(
    endpoint: &Map<String, Value>,
    stage: Stage,
    what: &dyn Fn(&str) -> String,
) -> Result<TlsSettings, TopologyError> {
    let mut t = TlsSettings::default();
    if let Some(list) = json::opt_object(endpoint, "trustedCertificates", || what("endpoint.trustedCertificates"))? {
        for (i, c) in json::opt_array(list, "certificates", || what("endpoint.trustedCertificates.certificates"))?
            .iter()
            .enumerate()
        {
            let pem = json::scalar(c).ok_or_else(|| {
                TopologyError::module(format!(
                    "{}[{i}] must be a string",
                    what("endpoint.trustedCertificates.certificates")
                ))
            })?;
            if stage.literal(Some(pem.clone())).is_some() && !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(TopologyError::module(format!(
                    "{}[{i}] is not a PEM certificate (-----BEGIN CERTIFICATE-----)",
                    what("endpoint.trustedCertificates.certificates")
                )));
            }
            t.certificates.push(pem.into_owned());
        }
    }
    if let Some(v) = json::opt_object(endpoint, "validationOptions", || what("endpoint.validationOptions"))? {
        for (key, slot) in [("ignoreHostname", &mut t.ignore_hostname), ("ignoreSignature", &mut t.ignore_signature)] {
            let p = format!("endpoint.validationOptions.{key}");
            match stage.literal(json::opt_scalar(v, key, || what(&p))?) {
                None => {}
                Some(x) if x.eq_ignore_ascii_case("true") => *slot = true,
                Some(x) if x.eq_ignore_ascii_case("false") => *slot = false,
                Some(x) => {
                    return Err(TopologyError::module(format!("{} '{}' must be true or false", what(&p), shown(&x))));
                }
            }
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(which: Which, v: Value) -> Result<ExtensionConfig, TopologyError> {
        build("ext", v.as_object().expect("an object"), Stage::Pipeline, which)
    }

    fn grpc() -> Value {
        json!({
            "endpoint": {"@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": "tcp://avaextension:44000",
                         "credentials": {"@type": "#Microsoft.VideoAnalyzer.UsernamePasswordCredentials",
                                         "username": "u", "password": "p"}},
            "image": {"scale": {"mode": "pad", "width": "416", "height": "416"},
                      "format": {"@type": "#Microsoft.VideoAnalyzer.ImageFormatRaw", "pixelFormat": "bgr24"}},
            "samplingOptions": {"skipSamplesWithoutAnnotation": "False", "maximumSamplesPerSecond": "2.0"},
            "dataTransfer": {"mode": "sharedMemory", "SharedMemorySizeMiB": "75"},
            "extensionConfiguration": "{\"objectLabel\": \"car\"}"
        })
    }

    #[test]
    fn the_corpus_shapes_are_read() {
        let c = read(Which::Grpc, grpc()).unwrap();
        assert_eq!(
            c.kind,
            ExtensionKind::Grpc {
                transfer: DataTransfer::SharedMemory { size_mib: 75 },
                configuration: Some("{\"objectLabel\": \"car\"}".into())
            }
        );
        assert_eq!(c.scale, Some(ScaleSpec { mode: ScaleMode::Pad, width: Some(416), height: Some(416) }));
        assert_eq!(c.format, ImageFormat::Raw { pixel_format: "bgr24".into() });
        assert_eq!(c.interval, Some(Duration90k(45_000)));
        assert!(!c.skip_without_annotation);
        assert_eq!(c.credentials, ExtensionCredentials::Basic { username: "u".into(), password: "p".into() });
        assert!(!format!("{c:?}").contains("\"p\""), "Debug hides the password");
        let http = read(
            Which::Http,
            json!({"endpoint": {"@type": "#Microsoft.VideoAnalyzer.TlsEndpoint", "url": "https://yolo/score?object=truck",
                                "credentials": {"@type": "#Microsoft.VideoAnalyzer.HttpHeaderCredentials",
                                                "headerName": "x-key", "headerValue": "k"},
                                "validationOptions": {"ignoreHostname": "true"}},
                   "image": {"scale": {"mode": "preserveAspectRatio", "height": "360"},
                             "format": {"@type": "#Microsoft.VideoAnalyzer.ImageFormatJpeg", "quality": "80"}}}),
        )
        .unwrap();
        assert_eq!(http.kind, ExtensionKind::Http);
        assert_eq!(http.format, ImageFormat::Jpeg { quality: 80 });
        assert_eq!(http.tls.map(|t| (t.ignore_hostname, t.ignore_signature)), Some((true, false)));
        assert_eq!(http.url, "https://yolo/score?object=truck", "path and query kept");
    }

    #[test]
    fn bad_values_name_their_property() {
        let cases: &[(&str, Value, &str)] = &[
            ("/endpoint/url", json!("ftp://x/"), "endpoint.url"),
            ("/endpoint/url", json!("tcp://noport"), "needs a port"),
            (
                "/endpoint/credentials/@type",
                json!("#Microsoft.VideoAnalyzer.SymmetricKeyCredentials"),
                "credentials.@type",
            ),
            ("/image/scale/width", json!("0"), "image.scale.width"),
            ("/image/scale/mode", json!("zoom"), "image.scale.mode"),
            ("/image/format/pixelFormat", json!("nv12"), "pixelFormat"),
            ("/dataTransfer/mode", json!("pigeon"), "dataTransfer.mode"),
            ("/dataTransfer/SharedMemorySizeMiB", json!("4096"), "sharedMemorySizeMiB"),
            ("/samplingOptions/skipSamplesWithoutAnnotation", json!("maybe"), "skipSamplesWithoutAnnotation"),
            ("/samplingOptions/maximumSamplesPerSecond", json!("0"), "maximumSamplesPerSecond"),
        ];
        for (path, value, named) in cases {
            let mut v = grpc();
            *v.pointer_mut(path).expect(path) = value.clone();
            let e = read(Which::Grpc, v).expect_err(path);
            assert!(e.message.contains(named), "{path}: {}", e.message);
            assert!(e.message.contains("'ext'"), "{path}: {}", e.message);
        }
        let mut v = grpc();
        v["image"]["scale"].as_object_mut().unwrap().remove("height");
        assert!(read(Which::Grpc, v).unwrap_err().message.contains("needs width and height"));
        let mut v = grpc();
        v["image"]["format"] = json!({"@type": "#Microsoft.VideoAnalyzer.ImageFormatJpeg", "quality": "101"});
        assert!(read(Which::Grpc, v).unwrap_err().message.contains("image.format.quality"));
        let mut v = grpc();
        v["endpoint"]["@type"] = json!("#Microsoft.VideoAnalyzer.TlsEndpoint");
        v["endpoint"]["trustedCertificates"] = json!({"certificates": ["not a certificate"]});
        assert!(read(Which::Grpc, v).unwrap_err().message.contains("not a PEM certificate"));
        let mut v = grpc();
        v.as_object_mut().unwrap().remove("dataTransfer");
        assert!(read(Which::Grpc, v).unwrap_err().message.contains("dataTransfer is missing"));
        // A password in the URL never shows in a message.
        let mut v = grpc();
        v["endpoint"]["url"] = json!("ftp://user:hunter2@x/");
        assert!(!read(Which::Grpc, v).unwrap_err().message.contains("hunter2"));
    }
}
