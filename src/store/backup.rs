//! The store's safety net: a check at open (a damaged or read-only file is
//! named, with what to do, and gets an exit status systemd does not restart
//! in a loop), a periodic online backup (`store.backup_path`, every
//! `store.backup_every`; written to a temporary file, checked, then renamed
//! into place), and `lockhub store restore`, which puts the last good backup
//! back (the damaged file is kept aside, never deleted).

use super::{Store, StoreError};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

/// Exit status for a damaged store (EX_DATAERR).
pub const EXIT_STORE_DAMAGED: i32 = 65;
/// Exit status for a store that cannot be written (EX_NOPERM).
pub const EXIT_STORE_READ_ONLY: i32 = 77;

/// Why the store could not be opened, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the store {path} is damaged ({detail}); restore the last backup with `lockhub store restore` (the damaged file is kept aside)")]
    Damaged { path: PathBuf, detail: String },
    #[error("the store {path} is read-only ({detail}): lockhub needs to write it (a disk remounted read-only, or its permissions)")]
    ReadOnly { path: PathBuf, detail: String },
    #[error("the store {path}: {source}")]
    Other { path: PathBuf, source: StoreError },
}

impl OpenError {
    pub fn exit_code(&self) -> i32 {
        match self {
            OpenError::Damaged { .. } => EXIT_STORE_DAMAGED,
            OpenError::ReadOnly { .. } => EXIT_STORE_READ_ONLY,
            OpenError::Other { .. } => 1,
        }
    }
}

fn sqlite_code(e: &StoreError) -> Option<rusqlite::ErrorCode> {
    match e {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => Some(f.code),
        _ => None,
    }
}

/// `PRAGMA quick_check` on a connection: `Ok` or what it found.
fn quick_check(conn: &Connection) -> Result<(), String> {
    let mut st = conn
        .prepare("PRAGMA quick_check")
        .map_err(|e| e.to_string())?;
    let rows: Vec<String> = st
        .query_map([], |r| r.get(0))
        .and_then(|r| r.collect())
        .map_err(|e| e.to_string())?;
    if rows == ["ok"] {
        Ok(())
    } else {
        Err(rows.into_iter().take(3).collect::<Vec<_>>().join("; "))
    }
}

/// Whether `path` is a sound lockhub database (opened read-only, never changed).
pub fn check_file(path: &Path) -> Result<(), String> {
    if !path.exists() {
        return Err(format!("{} does not exist", path.display()));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| e.to_string())?;
    quick_check(&conn)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if version < 1 {
        return Err("not a lockhub database (no schema)".into());
    }
    Ok(())
}

impl Store {
    /// Open the store for the daemon: a damaged file or one that cannot be
    /// written is refused with an error that names it.
    pub fn open_checked(path: &Path, key_file: &Path) -> Result<Store, OpenError> {
        let classify = |e: StoreError| {
            let detail = e.to_string();
            match sqlite_code(&e) {
                Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
                    OpenError::Damaged {
                        path: path.to_owned(),
                        detail,
                    }
                }
                Some(rusqlite::ErrorCode::ReadOnly) => OpenError::ReadOnly {
                    path: path.to_owned(),
                    detail,
                },
                Some(rusqlite::ErrorCode::CannotOpen) if read_only_dir(path) => {
                    OpenError::ReadOnly {
                        path: path.to_owned(),
                        detail,
                    }
                }
                _ => OpenError::Other {
                    path: path.to_owned(),
                    source: e,
                },
            }
        };
        let store = Store::open_with_key(path, key_file).map_err(classify)?;
        {
            let conn = store.conn();
            if conn
                .is_readonly(rusqlite::DatabaseName::Main)
                .unwrap_or(false)
            {
                return Err(OpenError::ReadOnly {
                    path: path.to_owned(),
                    detail: "opened read-only".into(),
                });
            }
            quick_check(&conn).map_err(|detail| OpenError::Damaged {
                path: path.to_owned(),
                detail,
            })?;
        }
        Ok(store)
    }

    /// Write a consistent copy of the store to `dest` (online: commands go on),
    /// check it, and only then put it in place of the previous backup.
    pub fn backup_to(&self, dest: &Path) -> Result<(), String> {
        let tmp = dest.with_extension("partial");
        let _ = std::fs::remove_file(&tmp);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        {
            let conn = self.read_conn();
            conn.execute("VACUUM INTO ?1", [tmp.to_string_lossy()])
                .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        }
        let sync = |p: &Path| std::fs::File::open(p).and_then(|f| f.sync_all());
        sync(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        check_file(&tmp).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("the new backup failed its check: {e}")
        })?;
        std::fs::rename(&tmp, dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        if let Some(dir) = dest.parent() {
            let _ = sync(dir);
        }
        Ok(())
    }
}

/// The directory of `path` cannot be written (a read-only mount).
fn read_only_dir(path: &Path) -> bool {
    let dir = path.parent().unwrap_or(Path::new("."));
    let probe = dir.join(".lockhub-write-probe");
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            false
        }
        Err(e) => {
            e.raw_os_error() == Some(libc::EROFS)
                || e.kind() == std::io::ErrorKind::PermissionDenied
        }
    }
}

/// What `restore` did.
#[derive(Debug)]
pub struct Restored {
    /// Where the store that was replaced now lies (if there was one).
    pub kept_aside: Option<PathBuf>,
}

/// Put the backup at `backup` in place of the store at `store` (lockhub must
/// not be running). The backup is checked first; the replaced store and its
/// WAL (and audit anchor) are renamed aside, never deleted; the copy is synced, then renamed in.
pub fn restore(backup: &Path, store: &Path) -> Result<Restored, String> {
    check_file(backup)
        .map_err(|e| format!("the backup {} is not usable: {e}", backup.display()))?;
    let tmp = store.with_extension("restoring");
    std::fs::copy(backup, &tmp).map_err(|e| format!("copying to {}: {e}", tmp.display()))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let mut kept_aside = None;
    if store.exists() {
        let aside = PathBuf::from(format!("{}.damaged-{stamp}", store.display()));
        std::fs::rename(store, &aside).map_err(|e| format!("{}: {e}", store.display()))?;
        kept_aside = Some(aside);
    }
    // The audit anchor names the replaced store's newest row; the backup is
    // older, so its anchor goes aside with it (kept for comparison).
    for ext in ["-wal", "-shm", ".audit-head"] {
        let side = PathBuf::from(format!("{}{ext}", store.display()));
        if side.exists() {
            let aside = PathBuf::from(format!("{}.damaged-{stamp}{ext}", store.display()));
            std::fs::rename(&side, &aside).map_err(|e| format!("{}: {e}", side.display()))?;
        }
    }
    std::fs::rename(&tmp, store).map_err(|e| format!("{}: {e}", store.display()))?;
    if let Some(dir) = store.parent() {
        let _ = std::fs::File::open(dir).and_then(|f| f.sync_all());
    }
    Ok(Restored { kept_aside })
}
