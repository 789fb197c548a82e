//! SQLite state (issue "agent memory in SQLite"): a live WAL database, with a declared cell
//! secret and a token pasted in a message, snapshots with exit 0 or 3; no form of either
//! value is anywhere in the repository (pages, free pages, WAL); restore --rehydrate gives a
//! database whose `iterdump` equals the live one's, with the rotated value in its cell; a
//! writer inserting pairs of rows during the snapshot leaves an even count in the copy.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::Connection;

use crate::common::repository_plaintext;
use crate::restore_fixture::{Project, all_output, leak_forms};

const MANIFEST: &str = r#"{
  "version": 1,
  "agent": "kevin",
  "state": "./state",
  "repository": "./backups",
  "stores": {
    "local": { "kind": "local", "path": "./store/local.age", "identity": "./keys/local.key" }
  },
  "capture": { "store": "local", "path": "agents/{agent}/captured" },
  "secrets": [
    { "file": "memory.db", "sqlite": { "table": "credentials", "column": "value", "where": { "name": "openai" } },
      "handle": "local:agents/{agent}/openai#api_key" }
  ]
}"#;

const KEY: &str = "sk-proj-Tq7Lm2Xv9Bc4Nz8Wk3Hd6Jf1Rs5Yp0Ga2Qe7Uo4Ic9Vb3";
const ROTATED: &str = "sk-proj-Rt5Gh8Jk2Lm6Nb9Vc3Xz7Qw1Er4Ty0Ui8Op2As6Df5Gh";
const PASTED: &str = "ghp_Zk8Lp3Qm7Xn2Vb6Wc1Hy9Tg4Rf0Ed5Sa8Jk3L";

/// The agent's database: WAL mode, checkpoints off, the writer kept open (its last writes
/// only in the WAL), a row deleted (its text in a free page), a key in a cell, a token pasted
/// in a message.
fn agent_database(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
         CREATE TABLE credentials (name TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE messages (id INTEGER PRIMARY KEY, role TEXT, content TEXT, meta BLOB);
         CREATE INDEX messages_role ON messages (role);",
    )
    .unwrap();
    conn.execute("INSERT INTO credentials VALUES ('openai', ?1)", [KEY])
        .unwrap();
    conn.execute("INSERT INTO credentials VALUES ('theme', 'dark')", [])
        .unwrap();
    for i in 0..200 {
        conn.execute(
            "INSERT INTO messages (role, content, meta) VALUES ('user', ?1, ?2)",
            rusqlite::params![format!("note {i}: remember the milk"), vec![i as u8; 8]],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO messages (role, content) VALUES ('tool', ?1)",
        [format!(
            "$ gh auth status\nLogged in to github.com\nToken: {PASTED}\n"
        )],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO messages (role, content) VALUES ('tool', ?1)",
        [format!("scratch {KEY} {PASTED}")],
    )
    .unwrap();
    conn.execute("DELETE FROM messages WHERE content LIKE 'scratch%'", [])
        .unwrap();
    conn
}

/// `iterdump` and `integrity_check` as Python's sqlite3 (what agents use) sees the database.
fn python_dump(path: &Path) -> (String, String) {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys\n\
             c=sqlite3.connect(sys.argv[1])\n\
             sys.stdout.write(c.execute('PRAGMA integrity_check').fetchone()[0]+'\\n')\n\
             sys.stdout.write('\\n'.join(c.iterdump()))",
        ])
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (check, dump) = text.split_once('\n').unwrap();
    (check.to_string(), dump.to_string())
}

fn assert_nowhere(p: &Project, values: &[&str]) {
    let files = repository_plaintext(&p.path().join("backups"), None);
    assert!(files.iter().any(|(name, _)| name.contains("packs")));
    for (name, bytes) in &files {
        for (i, v) in values.iter().enumerate() {
            for form in leak_forms(v) {
                assert!(
                    !bytes.windows(form.len()).any(|w| w == form.as_slice()),
                    "{name} holds a form of planted value #{i}"
                );
            }
        }
    }
}

#[test]
fn a_live_wal_database_snapshots_without_its_secrets_and_restores_row_for_row() {
    let p = Project::new(MANIFEST);
    p.set("local:agents/kevin/openai#api_key", KEY, &[]);
    let db = p.state().join("memory.db");
    let writer = agent_database(&db);
    let wal = std::fs::metadata(p.state().join("memory.db-wal")).unwrap();
    assert!(wal.len() > 0, "the test needs uncheckpointed writes");
    let (_, live) = python_dump(&db);
    assert!(live.contains(KEY) && live.contains(PASTED));
    // The deleted row's text is still in the files (a free page, the WAL): a byte copy
    // would archive it.
    let mut on_disk = std::fs::read(&db).unwrap();
    on_disk.extend(std::fs::read(p.state().join("memory.db-wal")).unwrap());
    assert!(crate::restore_fixture::contains(&on_disk, "scratch"));
    assert!(!live.contains("scratch"));

    let out = p.agentbak().arg("snapshot").output().unwrap();
    let text = all_output(&out);
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "snapshot: {}",
        text
    );
    for v in [KEY, PASTED] {
        assert!(!text.contains(v), "the snapshot printed a value");
    }
    assert!(
        text.contains("memory.db"),
        "the captured token's file is named: {text}"
    );
    assert_nowhere(&p, &[KEY, PASTED]);

    // An audit finds nothing in it, and every handle resolves.
    let out = p
        .agentbak()
        .args(["verify", "latest", "--check-handles", "--against-store"])
        .output()
        .unwrap();
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(0), "verify: {text}");
    assert!(!text.contains(KEY) && !text.contains(PASTED));

    // The listing holds the database and none of its companions.
    let ls = p.agentbak().args(["ls", "latest"]).output().unwrap();
    let listing = String::from_utf8_lossy(&ls.stdout);
    assert!(listing.contains("memory.db"), "{listing}");
    assert!(!listing.contains("memory.db-wal") && !listing.contains("memory.db-shm"));

    // The key is rotated in the store; the agent keeps writing to the live database.
    p.set("local:agents/kevin/openai#api_key", ROTATED, &[]);
    writer
        .execute(
            "INSERT INTO messages (role, content) VALUES ('user', 'later')",
            [],
        )
        .unwrap();
    let target = p.path().join("restored");
    let out = p
        .agentbak()
        .args(["restore", "latest", "--rehydrate", "--target"])
        .arg(&target)
        .output()
        .unwrap();
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(0), "restore: {text}");
    assert!(!text.contains(ROTATED) && !text.contains(PASTED));
    let restored = target.join("memory.db");
    let (check, dump) = python_dump(&restored);
    assert_eq!(check, "ok");
    assert_eq!(dump, live.replace(KEY, ROTATED));
    for companion in ["memory.db-wal", "memory.db-shm", "memory.db-journal"] {
        assert!(!target.join(companion).exists(), "{companion} restored");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&restored).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "a database with secrets is private");
    drop(writer);
}

#[test]
fn a_writer_inserting_pairs_during_the_snapshot_leaves_an_even_count() {
    let p = Project::new(MANIFEST);
    p.set("local:agents/kevin/openai#api_key", KEY, &[]);
    let db = p.state().join("memory.db");
    drop(agent_database(&db));
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; CREATE TABLE pairs (id INTEGER PRIMARY KEY, half TEXT, pad BLOB);",
    )
    .unwrap();
    let count = |c: &Connection| -> i64 {
        c.query_row("SELECT count(*) FROM pairs", [], |r| r.get(0))
            .unwrap()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let db = db.clone();
        std::thread::spawn(move || {
            let mut conn = Connection::open(&db).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let tx = conn.transaction().unwrap();
                for half in ["a", "b"] {
                    tx.execute(
                        "INSERT INTO pairs (half, pad) VALUES (?1, zeroblob(2000))",
                        [half],
                    )
                    .unwrap();
                }
                tx.commit().unwrap();
                n += 1;
            }
            n
        })
    };
    // Some pairs first, so that the copy has work while the writer goes on.
    while count(&conn) < 2000 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let before = count(&conn);
    let out = p.agentbak().arg("snapshot").output().unwrap();
    let after = count(&conn);
    stop.store(true, Ordering::Relaxed);
    let pairs = writer.join().unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "snapshot: {}",
        all_output(&out)
    );
    assert!(after > before, "the writer wrote during the snapshot");

    let target = p.path().join("restored");
    let out = p
        .agentbak()
        .args(["restore", "latest", "--rehydrate", "--target"])
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "restore: {}", all_output(&out));
    let restored = Connection::open(target.join("memory.db")).unwrap();
    let check: String = restored
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let n = count(&restored);
    assert_eq!(n % 2, 0, "a transaction was cut in half: {n} rows");
    assert!(
        (before..=after).contains(&n),
        "{n} rows, not between {before} and {after} ({pairs} pairs written)"
    );
}

#[test]
fn a_database_sqlite_cannot_read_is_archived_as_its_bytes_with_a_warning() {
    let p = Project::new(&MANIFEST.replace(
        r#"{ "file": "memory.db", "sqlite": { "table": "credentials", "column": "value", "where": { "name": "openai" } },
      "handle": "local:agents/{agent}/openai#api_key" }"#,
        r#"{ "file": "config.json", "json": "/key", "handle": "local:agents/{agent}/openai#api_key" }"#,
    ));
    p.set("local:agents/kevin/openai#api_key", KEY, &[]);
    p.file(
        "config.json",
        0o600,
        format!("{{\"key\": \"{KEY}\"}}").as_bytes(),
    );
    // A SQLite header over pages of garbage: no page SQLite can read.
    let mut damaged = b"SQLite format 3\0".to_vec();
    damaged.resize(8192, 0xA5);
    p.file("damaged.db", 0o600, &damaged);
    let out = p.agentbak().arg("snapshot").output().unwrap();
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(3), "snapshot: {text}");
    assert!(
        text.contains("damaged.db") && text.contains("archived as its bytes"),
        "{text}"
    );
    let target = p.path().join("restored");
    let out = p
        .agentbak()
        .args(["restore", "latest", "--target"])
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "restore: {}", all_output(&out));
    assert_eq!(std::fs::read(target.join("damaged.db")).unwrap(), damaged);
}
