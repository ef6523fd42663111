//! The bucket's description of itself, in the store (`archive::catalog` says what the
//! manifests hold; `docs/remote.md`, "A bucket that describes itself"):
//!
//! - [`claim_prefix`]: a recorder writes only under a prefix it owns. The prefix's
//!   `v1/writer.json` names its host (created with a create-only PUT); another host finding it
//!   taken uploads nothing there.
//! - [`write_due`]: after uploads, a recorder rewrites the manifests of the hours that changed
//!   and its videos' `video.json`.
//! - [`sync_once`]: an index made or kept up to date from a bucket alone (`openva check
//!   --from-remote`, `serve --read-only`), by listing and reading manifests, never segments.

use super::RemoteConfig;
use crate::archive::Archive;
use crate::archive::catalog::{HourManifest, Imported, VideoManifest};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Why a pass over the bucket failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The store failed or refused.
    #[error("{0}")]
    Store(#[from] object_store::Error),
    /// The index could not take it.
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
}

/// What `v1/writer.json` says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Writer {
    /// `openva-writer`.
    pub format: String,
    /// The writing host's id (`Archive::host_id`).
    pub host_id: String,
    /// When it claimed the prefix.
    pub claimed: String,
}

/// Whose prefix it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This host's: it may write there.
    Ours,
    /// Another host's (its `writer.json`, or why it cannot be read).
    Taken(String),
}

/// Claims `config`'s prefix for host `host_id`, or finds who has it.
pub async fn claim_prefix(
    store: &dyn ObjectStore,
    config: &RemoteConfig,
    host_id: &str,
) -> Result<Claim, CatalogError> {
    let key = Key::from(config.writer_key());
    let me = Writer {
        format: "openva-writer".into(),
        host_id: host_id.to_owned(),
        claimed: crate::time::Time90k::now().to_iso_millis(),
    };
    let body = serde_json::to_vec_pretty(&me).unwrap_or_default();
    let opts = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
    match store.put_opts(&key, body.into(), opts).await {
        Ok(_) => return Ok(Claim::Ours),
        Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let bytes = store.get(&key).await?.bytes().await?;
    Ok(match serde_json::from_slice::<Writer>(&bytes) {
        Ok(w) if w.host_id == host_id => Claim::Ours,
        Ok(w) => Claim::Taken(format!("host {} since {}", w.host_id, w.claimed)),
        Err(e) => Claim::Taken(format!("{key} cannot be read as a writer claim: {e}")),
    })
}

/// The writer claim at the top of `prefix`, if one is there (a recorder's own prefix).
pub async fn writer_of(store: &dyn ObjectStore, prefix: &str) -> Result<Option<Writer>, CatalogError> {
    let key = Key::from(join(prefix, "v1/writer.json"));
    match store.get(&key).await {
        Ok(got) => Ok(serde_json::from_slice(&got.bytes().await?).ok()),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `video.json` bodies written by this process (a video's is rewritten only when it changed).
pub type Written = HashMap<String, Vec<u8>>;

/// Hours a pass rewrites at most, and how many of them at once: a host of 400 cameras in
/// 30 s segments has about 13 hours a second to rewrite, and one PUT after another (a few tens
/// of ms each under load) kept manifests minutes behind.
const MANIFESTS_PER_PASS: usize = 256;
const MANIFESTS_AT_ONCE: usize = 8;

/// What a pass of [`write_due`] did.
#[derive(Debug, Default)]
pub struct ManifestPass {
    /// Hours written (or deleted, when they list nothing now).
    pub written: usize,
    /// Hours (and `video.json`s) that failed: they stay due for the next pass.
    pub failed: usize,
    /// The first failure.
    pub error: Option<CatalogError>,
}

impl ManifestPass {
    fn fail(&mut self, e: CatalogError) {
        self.failed += 1;
        self.error.get_or_insert(e);
    }
}

/// Rewrites the manifests due (up to [`MANIFESTS_PER_PASS`] hours, [`MANIFESTS_AT_ONCE`] at
/// once), and first the `video.json` of their videos when it changed. A failure leaves its
/// hour due and the others go on; an hour whose `video.json` failed waits for the next pass
/// (a gateway finds a video by its `video.json`).
pub async fn write_due(
    store: &dyn ObjectStore,
    config: &RemoteConfig,
    archive: &Arc<Archive>,
    written: &mut Written,
) -> Result<ManifestPass, CatalogError> {
    use futures::StreamExt;
    let due = blocking(archive, |a| a.manifests_due(MANIFESTS_PER_PASS))?;
    let mut pass = ManifestPass::default();
    let mut videos: Vec<String> = due.iter().map(|d| d.video.clone()).collect();
    videos.sort();
    videos.dedup();
    let mut ready = std::collections::HashSet::new();
    for video in videos {
        let v = video.clone();
        let vm = blocking(archive, move |a| a.video_manifest(&v))?;
        let vkey = Key::from(config.video_key(&video));
        let done = match vm {
            Some(vm) => {
                let body = serde_json::to_vec_pretty(&vm).unwrap_or_default();
                if written.get(&video) == Some(&body) {
                    Ok(())
                } else {
                    let r = store.put(&vkey, body.clone().into()).await.map(|_| ()).map_err(CatalogError::from);
                    if r.is_ok() {
                        written.insert(video.clone(), body);
                    }
                    r
                }
            }
            None => {
                written.remove(&video);
                delete(store, &vkey).await
            }
        };
        match done {
            Ok(()) => {
                ready.insert(video);
            }
            Err(e) => pass.fail(e),
        }
    }
    let hours = futures::stream::iter(due.into_iter().filter(|d| ready.contains(&d.video)))
        .map(|d| async move {
            let (video, hour) = (d.video.clone(), d.hour);
            let hm = blocking(archive, move |a| a.hour_manifest(&video, hour))?;
            let key = Key::from(config.hour_key(&d.video, d.hour));
            if hm.segments.is_empty() {
                delete(store, &key).await?;
            } else {
                store.put(&key, serde_json::to_vec(&hm).unwrap_or_default().into()).await?;
            }
            blocking(archive, move |a| a.manifest_written(&d))
        })
        .buffer_unordered(MANIFESTS_AT_ONCE)
        .collect::<Vec<Result<(), CatalogError>>>()
        .await;
    for r in hours {
        match r {
            Ok(()) => pass.written += 1,
            Err(e) => pass.fail(e),
        }
    }
    Ok(pass)
}

async fn delete(store: &dyn ObjectStore, key: &Key) -> Result<(), CatalogError> {
    match store.delete(key).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Runs index work off the reactor (SQLite is blocking).
fn blocking<T>(
    archive: &Arc<Archive>,
    f: impl FnOnce(&Archive) -> Result<T, crate::archive::ArchiveError>,
) -> Result<T, CatalogError> {
    Ok(tokio::task::block_in_place(|| f(archive))?)
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() { b.to_owned() } else { format!("{a}/{b}") }
}

/// What a pass over the bucket did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Recorder prefixes found.
    pub recorders: Vec<String>,
    /// Videos found.
    pub videos: u64,
    /// Manifests read (new or changed).
    pub manifests_read: u64,
    /// Segments added to the index.
    pub added: u64,
    /// Segments whose times changed.
    pub updated: u64,
    /// Segments removed (gone from the bucket).
    pub removed: u64,
    /// Videos forgotten (gone from the bucket).
    pub videos_forgotten: u64,
    /// What could not be taken (a manifest that does not parse, a name two recorders use).
    pub problems: Vec<String>,
}

impl SyncReport {
    fn add(&mut self, i: Imported) {
        self.added += i.added;
        self.updated += i.updated;
        self.removed += i.removed;
    }
}

/// The largest manifest read (an hour of 60 fps video in one-second segments is a few MB).
const MAX_MANIFEST: u64 = 64 << 20;

/// `remote_manifest_seen`'s hour for a `video.json`.
const VIDEO_JSON: i64 = -1;

/// The recorders' prefixes at or one level below `root`: those holding `v1/videos/`.
async fn recorders(store: &dyn ObjectStore, root: &str) -> Result<Vec<String>, CatalogError> {
    let mut out = Vec::new();
    let has_videos = |p: String| async move {
        let l = store.list_with_delimiter(Some(&Key::from(join(&p, "v1/videos")))).await?;
        Ok::<_, CatalogError>(!l.common_prefixes.is_empty())
    };
    if has_videos(root.to_owned()).await? {
        out.push(root.to_owned());
    }
    let top = if root.is_empty() { None } else { Some(Key::from(root)) };
    for p in store.list_with_delimiter(top.as_ref()).await?.common_prefixes {
        let p = p.to_string();
        if p != join(root, "v1") && has_videos(p.clone()).await? {
            out.push(p);
        }
    }
    Ok(out)
}

fn tag(m: &object_store::ObjectMeta) -> String {
    format!("{}|{}|{}", m.e_tag.as_deref().unwrap_or(""), m.last_modified.timestamp_millis(), m.size)
}

/// Brings `archive`'s index of the videos under `root` up to date with the bucket: every
/// recorder's videos (at `root`, or one level below it), their settings, and every segment
/// their hour manifests list, as remote-only segments. Reads only what changed since the last
/// pass (by the manifests' ETags); forgets videos and hours gone from the bucket. Never writes
/// to the store.
pub async fn sync_once(
    store: &dyn ObjectStore,
    root: &str,
    archive: &Arc<Archive>,
) -> Result<SyncReport, CatalogError> {
    let mut rep = SyncReport { recorders: recorders(store, root).await?, ..SyncReport::default() };
    // Video names are one namespace, as in an AVA account: the first recorder with a name has it.
    let mut found: BTreeMap<String, String> = BTreeMap::new();
    for rp in &rep.recorders {
        let l = store.list_with_delimiter(Some(&Key::from(join(rp, "v1/videos")))).await?;
        for p in l.common_prefixes {
            let Some(name) = p.filename().map(str::to_owned) else { continue };
            if crate::archive::validate_video_name(&name).is_err() {
                rep.problems.push(format!("{p}: not a video name; left out"));
                continue;
            }
            match found.get(&name) {
                Some(other) => rep.problems.push(format!(
                    "video '{name}' is recorded under both {other} and {rp}: the one under {other} is served"
                )),
                None => {
                    found.insert(name, rp.clone());
                }
            }
        }
    }
    rep.videos = found.len() as u64;
    let mut seen = blocking(archive, |a| a.manifests_seen())?;
    let imported: HashMap<String, String> = blocking(archive, |a| a.imported_videos())?.into_iter().collect();
    let mut absent = Vec::new();
    for (name, rp) in &found {
        let vprefix = join(rp, &format!("v1/videos/{name}"));
        let listing = store.list_with_delimiter(Some(&Key::from(vprefix.as_str()))).await?;
        let vkey = join(&vprefix, "video.json");
        let Some(vmeta) = listing.objects.iter().find(|o| o.location.as_ref() == vkey) else {
            // A deleted video (its segments' deletions may lag): not served.
            absent.push(name.clone());
            continue;
        };
        if vmeta.size > MAX_MANIFEST {
            rep.problems.push(format!("{vkey}: {} bytes, more than a video.json holds; left out", vmeta.size));
            continue;
        }
        let vtag = tag(vmeta);
        let known = imported.get(name).is_some_and(|s| s == rp);
        if !known || seen.get(&vkey).map(|s| &s.2) != Some(&vtag) {
            let body = store.get(&Key::from(vkey.as_str())).await?.bytes().await?;
            rep.manifests_read += 1;
            let vm: VideoManifest = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    rep.problems.push(format!("{vkey}: {e}"));
                    continue;
                }
            };
            if &vm.name != name {
                rep.problems.push(format!("{vkey}: names video '{}'", vm.name));
                continue;
            }
            let src = rp.clone();
            if let Err(e) = blocking(archive, move |a| a.import_video(&vm, &src)) {
                rep.problems.push(format!("{vkey}: {e}"));
                continue;
            }
            let (k, n) = (vkey.clone(), name.clone());
            blocking(archive, move |a| a.set_manifest_seen(&k, &n, VIDEO_JSON, Some(&vtag)))?;
        }
        // Every hour manifest of the video: one listing, not one request per hour.
        let hours_prefix = Key::from(join(&vprefix, "hours"));
        let mut listed: HashMap<String, String> = HashMap::new();
        {
            use futures::TryStreamExt;
            let mut s = store.list(Some(&hours_prefix));
            while let Some(m) = s.try_next().await? {
                if !m.location.as_ref().ends_with(".json") {
                    continue;
                }
                if m.size > MAX_MANIFEST {
                    // Read whole into memory: a foreign or broken object of any size must not be.
                    rep.problems.push(format!(
                        "{}: {} bytes, more than an hour's manifest holds; left out",
                        m.location, m.size
                    ));
                    continue;
                }
                listed.insert(m.location.to_string(), tag(&m));
            }
        }
        for (key, t) in &listed {
            if seen.get(key).is_some_and(|s| &s.2 == t) {
                continue;
            }
            let body = store.get(&Key::from(key.as_str())).await?.bytes().await?;
            rep.manifests_read += 1;
            let hm = match serde_json::from_slice::<HourManifest>(&body) {
                Ok(h) if h.format == crate::archive::catalog::HOUR_FORMAT && &h.video == name => h,
                Ok(h) => {
                    rep.problems.push(format!(
                        "{key}: not an hour manifest of '{name}' (format {}, video {})",
                        h.format, h.video
                    ));
                    continue;
                }
                Err(e) => {
                    rep.problems.push(format!("{key}: {e}"));
                    continue;
                }
            };
            let (n, k, t2) = (name.clone(), key.clone(), t.clone());
            match blocking(archive, move |a| {
                let i = a.import_hour(&n, hm.hour, &hm.segments)?;
                a.set_manifest_seen(&k, &n, hm.hour, Some(&t2))?;
                Ok(i)
            }) {
                Ok(i) => rep.add(i),
                Err(e) => rep.problems.push(format!("{key}: {e}")),
            }
        }
        // Hours gone from the bucket (retention on the recorder).
        let gone: Vec<(String, i64)> = seen
            .iter()
            .filter(|(k, (v, h, _))| v == name && *h != VIDEO_JSON && !listed.contains_key(*k))
            .map(|(k, (_, h, _))| (k.clone(), *h))
            .collect();
        for (key, hour) in gone {
            let n = name.clone();
            let i = blocking(archive, move |a| {
                let i = a.import_hour(&n, hour, &[])?;
                a.set_manifest_seen(&key, &n, hour, None)?;
                Ok(i)
            })?;
            rep.add(i);
        }
        seen.retain(|_, (v, _, _)| v != name);
    }
    // Videos gone from the bucket (deleted on their recorder).
    for name in imported.keys().filter(|n| !found.contains_key(*n) || absent.contains(n)) {
        let n = name.clone();
        rep.removed += blocking(archive, move |a| a.forget_imported_video(&n))?;
        rep.videos_forgotten += 1;
    }
    Ok(rep)
}
