//! Power loss, emulated honestly without special hardware: the process under test runs with
//! `tests/faults/powercut.c` preloaded, which records what each `fsync`/`fdatasync` made
//! durable (a length for the append-only `*.mp4` files, a copy for every other file). After the
//! process is killed (`kill -9`), [`PowerCut::cut`] puts every file under the data directory
//! back to that durable state: data written and not synced is gone, as after a real power cut
//! on ext4 in ordered mode (names survive; unsynced data does not). Nothing here needs root, a
//! loop device or device-mapper.

use anyhow::{Context, Result, ensure};
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The shim and its state for one data directory.
pub struct PowerCut {
    root: PathBuf,
    state: PathBuf,
    shim: PathBuf,
}

/// What one cut did.
#[derive(Debug, Default)]
pub struct CutReport {
    /// Files cut back to their last synced length (or emptied).
    pub truncated: usize,
    /// Bytes dropped from them.
    pub bytes_dropped: u64,
    /// Files put back to their last synced copy.
    pub restored: usize,
}

enum Durable {
    Len(u64),
    Copy(PathBuf),
}

impl PowerCut {
    /// Builds the shim (with the system C compiler) into `work` and records the data directory
    /// `data` (created if missing) as it is now as durable.
    pub fn new(work: &Path, data: &Path) -> Result<Self> {
        std::fs::create_dir_all(data)?;
        let state = work.join("powercut-state");
        std::fs::create_dir_all(&state)?;
        let shim = work.join("powercut.so");
        let src = crate::repo_root().join("tests/faults/powercut.c");
        let st = Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
            .arg(&shim)
            .arg(&src)
            .arg("-ldl")
            .status()
            .context("running cc (the power-cut shim is C)")?;
        ensure!(st.success(), "building {} failed", src.display());
        let pc = PowerCut { root: data.canonicalize()?, state: state.canonicalize()?, shim };
        pc.baseline()?;
        Ok(pc)
    }

    /// The environment that makes a process record its syncs.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("LD_PRELOAD", self.shim.clone().into_os_string()),
            ("POWERCUT_ROOT", self.root.clone().into_os_string()),
            ("POWERCUT_STATE", self.state.clone().into_os_string()),
        ]
    }

    /// Cuts the power: every file under the data directory goes back to what was last synced
    /// (a file never synced is emptied). Call after the process has been killed. Then what is
    /// on disk becomes the new durable state.
    pub fn cut(&self) -> Result<CutReport> {
        let durable = self.durable()?;
        let mut report = CutReport::default();
        for path in files_under(&self.root)? {
            let len = std::fs::metadata(&path)?.len();
            match durable.get(&path) {
                Some(Durable::Copy(c)) => {
                    std::fs::copy(c, &path).with_context(|| format!("restoring {}", path.display()))?;
                    report.restored += 1;
                }
                Some(Durable::Len(n)) if len > *n => {
                    std::fs::OpenOptions::new().write(true).open(&path)?.set_len(*n)?;
                    report.truncated += 1;
                    report.bytes_dropped += len - n;
                }
                Some(Durable::Len(_)) => {}
                None if len > 0 => {
                    std::fs::OpenOptions::new().write(true).open(&path)?.set_len(0)?;
                    report.truncated += 1;
                    report.bytes_dropped += len;
                }
                None => {}
            }
        }
        self.baseline()?;
        Ok(report)
    }

    /// The last durable state of each file, from the shim's log.
    fn durable(&self) -> Result<HashMap<PathBuf, Durable>> {
        let log = std::fs::read_to_string(self.state.join("log")).unwrap_or_default();
        let mut out = HashMap::new();
        for line in log.lines() {
            let mut f = line.splitn(3, '\t');
            let (Some(kind), Some(value), Some(path)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let d = match kind {
                "L" => Durable::Len(value.parse().with_context(|| format!("bad line {line}"))?),
                "S" => Durable::Copy(PathBuf::from(value)),
                _ => continue,
            };
            out.insert(PathBuf::from(path), d);
        }
        Ok(out)
    }

    /// Records everything on disk now as durable (a fresh log).
    fn baseline(&self) -> Result<()> {
        for e in std::fs::read_dir(&self.state)? {
            std::fs::remove_file(e?.path())?;
        }
        let mut log = String::new();
        for (i, path) in files_under(&self.root)?.into_iter().enumerate() {
            if path.extension().is_some_and(|x| x == "mp4") {
                log.push_str(&format!("L\t{}\t{}\n", std::fs::metadata(&path)?.len(), path.display()));
            } else {
                let copy = self.state.join(format!("base-{i}"));
                std::fs::copy(&path, &copy)?;
                log.push_str(&format!("S\t{}\t{}\n", copy.display(), path.display()));
            }
        }
        std::fs::write(self.state.join("log"), log)?;
        Ok(())
    }
}

/// Regular files under `dir`, recursively.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let t = e.file_type()?;
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    Ok(out)
}
