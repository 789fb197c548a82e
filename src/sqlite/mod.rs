//! SQLite databases in the state: a consistent private copy, secrets redacted inside cells,
//! and the reverse at restore (docs/redaction.md, "SQLite").
//!
//! An agent's memory in SQLite is written while the snapshot runs, often in WAL mode with
//! content that is not checkpointed into the main file yet. Copying the file (and its `-wal`)
//! byte by byte can give an inconsistent pair, and a value deleted or updated lingers in free
//! pages, where no redaction reaches. So a database is never archived as it lies on disk:
//! - [`Copy::capture`] takes it through SQLite's online backup API, in one step (one read
//!   transaction: every page as of one moment, WAL content included, while the agent goes on
//!   writing), into a private in-memory database ([`Copy`](struct@Copy)): no plaintext copy
//!   on disk;
//! - [`redact`] replaces declared cells, known values and what the caller's detection finds
//!   in TEXT cells (and BLOBs of UTF-8 text) by placeholders, with `UPDATE`s on the copy,
//!   then rebuilds it with `VACUUM`, so that no old value survives in a free page, and checks
//!   that every edited cell is where its record says;
//! - the rebuilt image ([`Copy::image`]) is what the archive holds and the leak gate scans;
//! - [`rehydrate`] fills the recorded cells of a restored database with `UPDATE`s and checks
//!   its integrity.
//!
//! Invariants:
//! - the agent's database is opened read-only: no page of it is written. Like any reader of
//!   a WAL database, the connection may create the `-wal` and `-shm` files SQLite's locking
//!   needs when the agent left none (SQLite gives them the database's owner when run as
//!   root); they are SQLite's own, and the walk leaves them out;
//! - triggers, foreign-key actions and CHECK constraints are off on every connection that
//!   edits (the copy, the restored file): an edit changes its one cell and nothing else;
//! - records ([`SqliteCell`]) name a table, a column and a rowid, never a value; SQL built
//!   from them quotes the names and binds the rest, so a forged record can only name a cell;
//! - errors carry SQLite's message and names from the schema, never a cell's content.
//!
//! The result holds the same rows as the live database at the moment of the copy (an
//! `iterdump` of both is equal), not the same bytes: `VACUUM` lays the pages out afresh.

mod redact;
mod rehydrate;

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, FileControl, MAIN_DB, OpenFlags};

use crate::redact::RedactError;
pub use crate::redact::SqliteCell;
pub use redact::{
    Redacted, declared_values, read_cells, redact, values_at, values_in, values_in_file,
};
pub use rehydrate::rehydrate;

/// The first 16 bytes of every SQLite 3 database.
pub const HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Files SQLite keeps beside a database: archived through the database, never on their own.
pub const COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// How long a step waits for a lock another connection holds (a checkpoint, a rollback
/// journal's writer) before it gives up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `head` starts like a SQLite 3 database.
pub fn is_database(head: &[u8]) -> bool {
    head.starts_with(HEADER)
}

/// Whether the regular file at `path`, of `size` bytes, is a SQLite database: a database is
/// a whole number of pages of at least 512 bytes, and starts with [`HEADER`]. Anything else
/// costs no read.
pub fn sniff(path: &Path, size: u64) -> bool {
    if size < 512 || !size.is_multiple_of(512) {
        return false;
    }
    let mut head = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && is_database(&head)
}

/// A private, in-memory copy of a database: what [`redact`] edits, and then the image the
/// archive holds ([`Copy::image`]).
///
/// The copy is an in-memory database of SQLite's page cache (which reads a WAL database's
/// header as it is); [`redact`] rebuilds it with `VACUUM INTO` a `memdb` database (SQLite's
/// in-memory file, with its journal in memory too), whose bytes are the image.
pub struct Copy {
    conn: Connection,
    /// The rebuilt database, once [`redact`] made it.
    image: Option<Connection>,
    /// Whether the database was in WAL mode (header bytes 18 and 19), which the image keeps.
    wal: bool,
}

impl std::fmt::Debug for Copy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sqlite::Copy")
    }
}

/// SQLite's error as a reason: its message names tables and columns, never bound values.
pub(crate) fn reason(e: rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(code, Some(msg)) => format!("{msg} ({:?})", code.code),
        rusqlite::Error::SqliteFailure(code, None) => format!("{:?}", code.code),
        other => other.to_string(),
    }
}

/// Header bytes 18 and 19 (write and read format version): 2 for WAL, 1 for a rollback
/// journal.
const VERSION_BYTES: std::ops::Range<usize> = 18..20;

impl Copy {
    /// Copies the database at `path` through the online backup API, in one step: the pages
    /// as of one read transaction, WAL content included, while other connections go on
    /// writing. The database is opened read-only. `display` names it in errors.
    pub fn capture(path: &Path, display: &str) -> Result<Copy, RedactError> {
        let fail = |e: rusqlite::Error| RedactError::Sqlite {
            path: display.to_string(),
            reason: reason(e),
        };
        let src = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(fail)?;
        src.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
        let mut conn = Connection::open_in_memory().map_err(fail)?;
        {
            let backup = rusqlite::backup::Backup::new(&src, &mut conn).map_err(fail)?;
            let started = std::time::Instant::now();
            loop {
                match backup.step(-1).map_err(fail)? {
                    rusqlite::backup::StepResult::Done => break,
                    // A writer holds a lock the read needs (a checkpoint, a rollback
                    // journal): wait and try the whole copy again.
                    _ if started.elapsed() < BUSY_TIMEOUT => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => {
                        return Err(RedactError::Sqlite {
                            path: display.to_string(),
                            reason: format!(
                                "the database stayed locked for {}s; the next run will try \
                                 again",
                                BUSY_TIMEOUT.as_secs()
                            ),
                        });
                    }
                }
            }
        }
        let wal: i64 = src
            .pragma_query_value(None, "journal_mode", |r| r.get::<_, String>(0))
            .map(|mode| i64::from(mode.eq_ignore_ascii_case("wal")))
            .map_err(fail)?;
        let copy = Copy {
            conn,
            image: None,
            wal: wal == 1,
        };
        copy.prepare().map_err(fail)?;
        Ok(copy)
    }

    /// A copy of a database image (an archived file, for `values_at`).
    pub fn from_bytes(bytes: &[u8], display: &str) -> Result<Copy, RedactError> {
        let fail = |e: rusqlite::Error| RedactError::Sqlite {
            path: display.to_string(),
            reason: reason(e),
        };
        // An image of a WAL database reads as a rollback one: memdb has no WAL.
        let mut conn = Connection::open_in_memory().map_err(fail)?;
        conn.deserialize_read_exact(MAIN_DB, with_version(bytes, 1), bytes.len(), true)
            .map_err(fail)?;
        let copy = Copy {
            conn,
            image: None,
            wal: false,
        };
        Ok(copy)
    }

    /// The copy's connection, to read its tables and cells (discovery proposes rules from
    /// them); edits belong to [`redact`], which keeps the invariants above.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Makes the copy safe to edit: no trigger, foreign-key action or CHECK constraint may
    /// turn one cell's edit into others; temporary data stays in memory.
    fn prepare(&self) -> rusqlite::Result<()> {
        quiet_edits(&self.conn)?;
        self.conn.pragma_update(None, "temp_store", "MEMORY")?;
        Ok(())
    }

    /// Rebuilds the copy with `VACUUM INTO` a fresh `memdb` database, which becomes the
    /// image: no free page, nothing of an old value.
    fn rebuild(&mut self) -> rusqlite::Result<&Connection> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // A name starting with `/` is shared within the process: the copy's connection
        // writes it, this one keeps it.
        let uri = format!("file:/agentbak-image-{}-{n}?vfs=memdb", std::process::id());
        let image = Connection::open_with_flags(
            &uri,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // memdb stops at 1 GiB unless told otherwise.
        let mut limit = i64::MAX;
        image.file_control(Some(MAIN_DB), FileControl::SizeLimit(&mut limit))?;
        self.conn.execute("VACUUM INTO ?1", [&uri])?;
        // The copy is done with: its memory goes back before the image is read.
        self.conn = Connection::open_in_memory()?;
        Ok(self.image.insert(image))
    }

    /// The database image, as a file of it holds it (in WAL mode when the database was):
    /// after [`redact`].
    pub fn image(&mut self) -> Result<Image<'_>, String> {
        let wal = self.wal;
        let conn = self
            .image
            .as_mut()
            .ok_or_else(|| "the copy was not redacted".to_string())?;
        let data = conn.serialize(MAIN_DB).map_err(reason)?;
        Ok(Image { data, wal })
    }
}

/// The bytes of a redacted database, as the archive holds them.
pub struct Image<'c> {
    data: rusqlite::serialize::Data<'c>,
    wal: bool,
}

impl Image<'_> {
    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        self.data.len() as u64
    }

    /// Whether it is empty (it never is: a database has a header).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Its bytes: the first 100 (the header, its version bytes set back to WAL when the
    /// database was in WAL mode), then the rest.
    pub fn reader(&self) -> impl Read + '_ {
        with_version(&self.data, if self.wal { 2 } else { 1 })
    }
}

/// A database image's bytes with its header's version bytes set to `version` (2 for WAL, 1
/// for a rollback journal), the rest read as it is.
fn with_version(image: &[u8], version: u8) -> impl Read + '_ {
    let split = image.len().min(100);
    let mut head = image[..split].to_vec();
    if head.len() == 100 {
        head[VERSION_BYTES].fill(version);
    }
    std::io::Cursor::new(head).chain(&image[split..])
}

/// Turns off what would make one `UPDATE` change more than its cell.
pub(crate) fn quiet_edits(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::config::DbConfig;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false)?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.pragma_update(None, "ignore_check_constraints", "ON")?;
    conn.pragma_update(None, "recursive_triggers", "OFF")?;
    Ok(())
}

/// `name` as an SQL identifier, whatever it holds.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The name that reaches a table's rowid (`rowid`, `_rowid_` or `oid`, whichever no column
/// takes), or `None` for a table without one.
pub(crate) fn rowid_alias(columns: &[String]) -> Option<&'static str> {
    ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|alias| !columns.iter().any(|c| c.eq_ignore_ascii_case(alias)))
}

/// The ordinary tables of the main database (SQLite's own `sqlite_*` tables left out), each
/// with whether it has a rowid.
pub(crate) fn tables(conn: &Connection) -> rusqlite::Result<Vec<(String, bool)>> {
    let mut stmt = conn.prepare(
        "SELECT name, wr FROM pragma_table_list WHERE schema = 'main' \
         AND type IN ('table', 'shadow') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
         ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? == 0))
    })?;
    rows.collect()
}

/// The stored, visible columns of `table` (generated and hidden columns left out).
pub(crate) fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt =
        conn.prepare("SELECT name FROM pragma_table_xinfo(?1) WHERE hidden = 0 ORDER BY cid")?;
    let rows = stmt.query_map([table], |r| r.get::<_, String>(0))?;
    rows.collect()
}

#[cfg(test)]
mod tests;
