use std::collections::HashMap;

use rusqlite::Connection;

use super::*;
use crate::handle::Handle;
use crate::manifest::{Locator, SqlValue, SqliteCells};
use crate::redact::{Rule, StrayMatcher};
use crate::secret::Secret;

const KEY: &str = "sk-live-Qm9ZxT4pLw8RkV2nJc6HdY1sAe3UfG7b";
const PASTED: &str = "ghp_R8kLm2Nq4Tv6Xz9Bc1Df3Gh5Jk7Mn0Pq2Rs4";

fn handle(s: &str) -> Handle {
    Handle::parse(s).unwrap()
}

/// A WAL database with a cell secret and a pasted value, some of it only in the WAL, and the
/// writer still open.
fn live(dir: &Path) -> (std::path::PathBuf, Connection) {
    let path = dir.join("memory.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
         CREATE TABLE creds (name TEXT PRIMARY KEY, value TEXT);
         CREATE TABLE messages (id INTEGER PRIMARY KEY, body TEXT, raw BLOB);
         CREATE TRIGGER stamp AFTER UPDATE ON messages BEGIN
           INSERT INTO creds VALUES ('trigger fired', 'x'); END;",
    )
    .unwrap();
    conn.execute("INSERT INTO creds VALUES ('openai', ?1)", [KEY])
        .unwrap();
    conn.execute("INSERT INTO creds VALUES ('other', 'not a secret')", [])
        .unwrap();
    for i in 0..50 {
        conn.execute(
            "INSERT INTO messages (body, raw) VALUES (?1, ?2)",
            rusqlite::params![format!("message {i} says hello"), vec![0u8, 1, 2]],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO messages (body, raw) VALUES (?1, ?2)",
        rusqlite::params![
            format!("the tool said: export TOKEN={PASTED} and left"),
            format!("{{\"token\": \"{PASTED}\"}}").into_bytes()
        ],
    )
    .unwrap();
    // The old value of a deleted row lingers in a free page of a plain copy.
    conn.execute(
        "INSERT INTO messages (body) VALUES (?1)",
        [format!("gone {PASTED}")],
    )
    .unwrap();
    conn.execute("DELETE FROM messages WHERE body LIKE 'gone%'", [])
        .unwrap();
    (path, conn)
}

fn rows(conn: &Connection) -> Vec<String> {
    let mut out = Vec::new();
    for table in ["creds", "messages"] {
        let mut stmt = conn
            .prepare(&format!("SELECT rowid, * FROM {table} ORDER BY rowid"))
            .unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let cells: Vec<String> = (0..n)
                .map(|i| match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    other => format!("{other:?}"),
                })
                .collect();
            out.push(format!("{table}: {}", cells.join(" | ")));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn a_live_wal_database_is_copied_redacted_and_rehydrated_row_for_row() {
    let dir = tempfile::tempdir().unwrap();
    let (path, writer) = live(dir.path());
    assert!(
        std::fs::metadata(dir.path().join("memory.db-wal"))
            .unwrap()
            .len()
            > 0
    );
    assert!(sniff(&path, std::fs::metadata(&path).unwrap().len()));
    let before = rows(&writer);

    let mut copy = Copy::capture(&path, "memory.db").unwrap();
    let declared = handle("local:agents/kevin/openai#api_key");
    let pasted = handle("local:agents/kevin/captured#github-pat-1");
    let rules = [Rule {
        locator: Locator::Sqlite(Box::new(SqliteCells {
            table: "creds".into(),
            column: "value".into(),
            filter: [("name".to_string(), SqlValue::Text("openai".into()))].into(),
        })),
        handle: declared.clone(),
    }];
    let known = StrayMatcher::new(&[(pasted.clone(), Secret::from(PASTED.to_string()))]);
    let mut cells = 0;
    let redacted = redact("memory.db", &mut copy, &rules, &known, &mut |_| cells += 1).unwrap();
    assert_eq!(
        redacted.values,
        vec![(declared.clone(), Secret::from(KEY.to_string()))]
    );
    assert!(redacted.blockers.is_empty() && redacted.warnings.is_empty());
    assert!(
        cells > 50,
        "every text cell is handed to detection: {cells}"
    );
    let mut image = Vec::new();
    std::io::Read::read_to_end(&mut copy.image().unwrap().reader(), &mut image).unwrap();
    assert!(is_database(&image));
    assert_eq!(image[18..20], [2, 2], "the image keeps WAL mode");
    for value in [KEY, PASTED] {
        assert!(!contains(&image, value), "a value survived in the image");
    }
    // The agent's database is untouched and still being written.
    writer
        .execute("INSERT INTO messages (body) VALUES ('after')", [])
        .unwrap();

    let restored = dir.path().join("restored.db");
    std::fs::write(&restored, &image).unwrap();
    let rotated = "sk-live-ROTATEDROTATEDROTATEDROTATED0000";
    let values = HashMap::from([
        (declared.clone(), Secret::from(rotated.to_string())),
        (pasted.clone(), Secret::from(PASTED.to_string())),
    ]);
    rehydrate(&restored, "restored.db", &redacted.replacements, &values).unwrap();
    for companion in COMPANIONS {
        let left = dir.path().join(format!("restored.db{companion}"));
        assert!(!left.exists(), "{} left behind", left.display());
    }
    let conn = Connection::open(&restored).unwrap();
    let want: Vec<String> = before.iter().map(|r| r.replace(KEY, rotated)).collect();
    assert_eq!(rows(&conn), want);
    let fired: i64 = conn
        .query_row(
            "SELECT count(*) FROM creds WHERE name = 'trigger fired'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(fired, 0, "an edit fired a trigger");
}

#[test]
fn a_secret_in_a_table_without_rowid_is_refused_naming_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;")
        .unwrap();
    conn.execute("INSERT INTO kv VALUES ('token', ?1)", [PASTED])
        .unwrap();
    drop(conn);
    let mut copy = Copy::capture(&path, "kv.db").unwrap();
    let known = StrayMatcher::new(&[(handle("local:a#b"), Secret::from(PASTED.to_string()))]);
    let err = redact("kv.db", &mut copy, &[], &known, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("kv.db") && err.contains("`kv`"), "{err}");
    assert!(!err.contains(PASTED));
}

#[test]
fn a_forged_record_naming_a_missing_column_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE t (a TEXT); INSERT INTO t VALUES ('x');")
        .unwrap();
    drop(conn);
    let h = handle("local:a#b");
    let forged = crate::redact::Replacement {
        source: crate::redact::Source::Stray,
        handle: h.clone(),
        offsets: vec![0],
        context: crate::redact::Context::SqliteCell(Box::new(SqliteCell {
            table: "t".into(),
            column: "a\" = 1; DROP TABLE t; --".into(),
            rowid: 1,
            blob: false,
            inner: crate::redact::Context::Raw,
        })),
    };
    let values = HashMap::from([(h, Secret::from(KEY.to_string()))]);
    let err = rehydrate(&path, "m.db", &[forged], &values).unwrap_err();
    assert!(err.to_string().contains("no column"), "{err}");
    let conn = Connection::open(&path).unwrap();
    let a: String = conn.query_row("SELECT a FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(a, "x");
}

#[test]
fn a_known_value_in_a_binary_blob_is_a_blocker_naming_the_cell() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blobs.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE state (id INTEGER PRIMARY KEY, data BLOB);")
        .unwrap();
    let mut blob = vec![0u8, 159, 146, 150];
    blob.extend_from_slice(PASTED.as_bytes());
    conn.execute("INSERT INTO state (data) VALUES (?1)", [&blob])
        .unwrap();
    drop(conn);
    let mut copy = Copy::capture(&path, "blobs.db").unwrap();
    let h = handle("local:agents/kevin/captured#github-pat-1");
    let known = StrayMatcher::new(&[(h.clone(), Secret::from(PASTED.to_string()))]);
    let redacted = redact("blobs.db", &mut copy, &[], &known, &mut |_| {}).unwrap();
    assert_eq!(redacted.blockers.len(), 1);
    let b = &redacted.blockers[0];
    assert_eq!(b.path, "blobs.db (state.data, row 1)");
    assert_eq!((b.offset, &b.handle), (4, &h));
    assert!(redacted.replacements.is_empty());
}
