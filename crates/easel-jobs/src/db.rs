//! Why this exists: the embedded SQLite database under the data dir holds the embedded queue's
//! job table, the outcome record of each job and the callback outbox, so a fresh clone runs with no
//! services and a restarted worker finds its undelivered callbacks. One connection per process,
//! used from blocking threads; WAL and a busy timeout let several worker processes share it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

/// How long a statement waits for another process's write lock before failing: writes are
/// tiny, so 5 s only passes when something is wrong.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema; every statement is idempotent so opening an existing database is safe.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    queue        TEXT NOT NULL,
    payload      TEXT NOT NULL,
    job_id       TEXT,
    state        TEXT NOT NULL,
    consumer     TEXT,
    lease_until  REAL,
    deliveries   INTEGER NOT NULL DEFAULT 0,
    enqueued_at  REAL NOT NULL,
    finished_at  REAL,
    dead_reason  TEXT,
    outcome      TEXT
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (queue, state, seq);
CREATE INDEX IF NOT EXISTS jobs_job_id ON jobs (job_id);
CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id          TEXT NOT NULL,
    body            TEXT NOT NULL,
    target          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    claimed_until   REAL NOT NULL DEFAULT 0,
    created_at      REAL NOT NULL,
    delivered_at    REAL,
    given_up_at     REAL,
    last_error      TEXT
);
CREATE TABLE IF NOT EXISTS outcomes (
    queue        TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    body         TEXT NOT NULL,
    recorded_at  REAL NOT NULL,
    PRIMARY KEY (queue, job_id)
);
CREATE TABLE IF NOT EXISTS queue_workers (
    queue        TEXT PRIMARY KEY,
    started_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (delivered_at, given_up_at, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_job ON outbox (job_id);
";

/// Columns added to `jobs` after its first release (job control: who runs it, its progress,
/// a cancel request). Added to older databases on open; SQLite has no `ADD COLUMN IF NOT EXISTS`.
const JOB_COLUMNS: &[(&str, &str)] = &[
    ("job_type", "TEXT"),
    ("user_id", "TEXT"),
    ("started_at", "REAL"),
    ("phase", "TEXT"),
    ("step", "INTEGER"),
    ("steps", "INTEGER"),
    ("progress_at", "REAL"),
    ("cancel_requested", "INTEGER NOT NULL DEFAULT 0"),
];

fn add_missing_columns(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('jobs')")?;
    let have: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    for (name, kind) in JOB_COLUMNS {
        if !have.iter().any(|h| h == name) {
            conn.execute_batch(&format!("ALTER TABLE jobs ADD COLUMN {name} {kind}"))?;
        }
    }
    Ok(())
}

/// A database error, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("database {path}: {msg}")]
pub struct DbError {
    pub path: PathBuf,
    pub msg: String,
}

/// The shared embedded database.
/// WAL, then the schema and its column additions in one write transaction.
fn initialise(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let done = conn.execute_batch(SCHEMA).and_then(|()| add_missing_columns(conn));
    match done {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Whether `e` is SQLite's "busy" or "locked".
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl Db {
    /// Opens (creating if needed) the database at `path`, and its folder.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let fail = |msg: String| DbError {
            path: path.to_path_buf(),
            msg,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                fail(format!(
                    "cannot create its folder: {e}; set EASEL_DATA_DIR to a writable folder"
                ))
            })?;
        }
        let conn = Connection::open(path).map_err(|e| fail(e.to_string()))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| fail(e.to_string()))?;
        // Processes opening a fresh database together (a worker starting while `easel submit`
        // pushes) can meet SQLITE_BUSY where SQLite does not wait: switching to WAL, or a
        // read lock upgraded to a write. The schema goes in one BEGIN IMMEDIATE (the write
        // lock taken up front, waiting), and a busy start is tried again within the timeout.
        let started = std::time::Instant::now();
        loop {
            match initialise(&conn) {
                Ok(()) => break,
                Err(e) if is_busy(&e) && started.elapsed() < BUSY_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(20 + u64::from(rand::random::<u8>() % 30)));
                }
                Err(e) => return Err(fail(e.to_string())),
            }
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_path_buf(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection in a blocking thread.
    pub async fn call<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let this = self.clone();
        let joined = tokio::task::spawn_blocking(move || this.call_blocking(f)).await;
        joined.map_err(|e| DbError {
            path: self.path.clone(),
            msg: format!("database task failed: {e}"),
        })?
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction (the write lock is taken up front, so two
    /// processes never deadlock upgrading a read), committed if it succeeds.
    pub async fn transaction<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.call(move |c| {
            c.execute_batch("BEGIN IMMEDIATE")?;
            match f(c) {
                Ok(v) => c.execute_batch("COMMIT").map(|()| v),
                Err(e) => {
                    let _ = c.execute_batch("ROLLBACK");
                    Err(e)
                }
            }
        })
        .await
    }

    /// Runs `f` on the connection on this thread.
    pub fn call_blocking<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, DbError> {
        let guard = self
            .conn
            .lock()
            .map_err(|_| self.error("connection lock poisoned".into()))?;
        f(&guard).map_err(|e| self.error(e.to_string()))
    }

    fn error(&self, msg: String) -> DbError {
        DbError {
            path: self.path.clone(),
            msg,
        }
    }
}

/// Seconds since the Unix epoch, as the contract's timestamps are.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker starting while `easel submit` pushes: many connections open one fresh
    /// database at the same moment, and every one of them gets it.
    #[test]
    fn connections_opening_a_fresh_database_together_all_succeed() {
        for round in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("easel.db");
            let barrier = Arc::new(std::sync::Barrier::new(8));
            let opens: Vec<_> = (0..8)
                .map(|_| {
                    let (path, barrier) = (path.clone(), Arc::clone(&barrier));
                    std::thread::spawn(move || {
                        barrier.wait();
                        Db::open(&path).map(|_| ())
                    })
                })
                .collect();
            for open in opens {
                let result = open.join().unwrap();
                assert!(result.is_ok(), "round {round}: {:?}", result.err());
            }
        }
    }
}
