//! Where topologies and live pipelines persist: `control.db` (SQLite, WAL) in the data
//! directory, beside the archive's own index. A host restarted after a crash reads back every
//! topology and pipeline, and re-activates the pipelines that were active.
//!
//! Topologies are stored as the JSON they were set with (it is re-parsed on load, so a parser
//! fix applies to old entries); pipelines as their properties. Secret parameter values are
//! stored as given: the file is created readable by its owner only.

use crate::time::Time90k;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS topology (
    name TEXT PRIMARY KEY,
    json TEXT NOT NULL,
    created_90k INTEGER NOT NULL,
    modified_90k INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS job (
    name TEXT PRIMARY KEY,
    json TEXT NOT NULL,
    created_90k INTEGER NOT NULL,
    modified_90k INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pipeline (
    name TEXT PRIMARY KEY,
    json TEXT NOT NULL,
    active INTEGER NOT NULL,
    created_90k INTEGER NOT NULL,
    modified_90k INTEGER NOT NULL
);
"#;

/// One stored row.
#[derive(Clone, Debug)]
pub struct Row {
    /// Name (primary key).
    pub name: String,
    /// The stored JSON.
    pub json: String,
    /// Desired state (pipelines only).
    pub active: bool,
    /// When created.
    pub created: Time90k,
    /// When last changed.
    pub modified: Time90k,
}

/// The control database.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens or creates `control.db` in `dir`.
    pub fn open(dir: &Path) -> rusqlite::Result<Store> {
        let path = dir.join("control.db");
        let conn = Connection::open(&path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: an acknowledged control call (a set, an activate) survives power loss.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1')", [])?;
        Ok(Store { conn })
    }

    /// All rows of `table`, by name.
    pub fn load(&self, table: Table) -> rusqlite::Result<Vec<Row>> {
        let active = if table == Table::Pipeline { "active" } else { "0" };
        let mut st = self.conn.prepare(&format!(
            "SELECT name, json, {active}, created_90k, modified_90k FROM {} ORDER BY name",
            table.name()
        ))?;
        st.query_map([], |r| {
            Ok(Row {
                name: r.get(0)?,
                json: r.get(1)?,
                active: r.get::<_, i64>(2)? != 0,
                created: Time90k(r.get(3)?),
                modified: Time90k(r.get(4)?),
            })
        })?
        .collect()
    }

    /// Inserts or replaces a row, keeping its creation time; returns (created?, created time).
    pub fn put(&self, table: Table, name: &str, json: &str, now: Time90k) -> rusqlite::Result<(bool, Time90k)> {
        let t = table.name();
        let created: Option<i64> = self
            .conn
            .query_row(&format!("SELECT created_90k FROM {t} WHERE name = ?1"), [name], |r| r.get(0))
            .optional()?;
        match created {
            Some(c) => {
                self.conn.execute(
                    &format!("UPDATE {t} SET json = ?2, modified_90k = ?3 WHERE name = ?1"),
                    params![name, json, now.0],
                )?;
                Ok((false, Time90k(c)))
            }
            None => {
                let cols = if table == Table::Pipeline { ", active" } else { "" };
                let vals = if table == Table::Pipeline { ", 0" } else { "" };
                self.conn.execute(
                    &format!(
                        "INSERT INTO {t} (name, json, created_90k, modified_90k{cols}) VALUES (?1, ?2, ?3, ?3{vals})"
                    ),
                    params![name, json, now.0],
                )?;
                Ok((true, now))
            }
        }
    }

    /// Deletes a row; returns whether it existed.
    pub fn delete(&self, table: Table, name: &str) -> rusqlite::Result<bool> {
        Ok(self.conn.execute(&format!("DELETE FROM {} WHERE name = ?1", table.name()), [name])? > 0)
    }

    /// Records a pipeline's desired state.
    pub fn set_active(&self, name: &str, active: bool) -> rusqlite::Result<()> {
        self.conn.execute("UPDATE pipeline SET active = ?2 WHERE name = ?1", params![name, active as i64])?;
        Ok(())
    }
}

/// The stored collections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// Pipeline topologies.
    Topology,
    /// Live pipelines.
    Pipeline,
    /// Pipeline jobs.
    Job,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Topology => "topology",
            Table::Pipeline => "pipeline",
            Table::Job => "job",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_load_delete() {
        let dir = std::env::temp_dir().join(format!("openva-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let s = Store::open(&dir).expect("open");
        assert!(s.put(Table::Pipeline, "p1", "{}", Time90k(5)).expect("put").0);
        let (created, at) = s.put(Table::Pipeline, "p1", "{\"a\":1}", Time90k(9)).expect("put");
        assert!(!created);
        assert_eq!(at, Time90k(5));
        s.set_active("p1", true).expect("active");
        let rows = s.load(Table::Pipeline).expect("load");
        assert_eq!(rows.len(), 1);
        assert!(rows[0].active);
        assert_eq!(rows[0].modified, Time90k(9));
        assert!(s.delete(Table::Pipeline, "p1").expect("delete"));
        assert!(!s.delete(Table::Pipeline, "p1").expect("delete"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
