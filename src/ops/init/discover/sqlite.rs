//! Discovery in SQLite databases: a `sqlite` rule for each cell that holds a secret.
//!
//! A database is read through a consistent copy ([`Copy::capture`]: every row as of one
//! moment, WAL content included), never as bytes. In each table with a rowid, three kinds of
//! cell become rules:
//! - **Credential columns**: a column whose name reads like a credential (`api_token`,
//!   `password`), in the cells whose value has a credential's shape ([`classify`]). One rule
//!   for the column (no `where`) when all its cells hold that one value; otherwise one rule
//!   per row, keyed by the row's key.
//! - **Key/value rows**: in a table shaped like a key/value store (`settings(key, value)`),
//!   a row whose key reads like a credential's name (`OPENAI_API_KEY`, `github_token`) and
//!   whose value has a credential's shape: `where key = 'OPENAI_API_KEY'`.
//! - **Provider tokens**: a cell that a provider rule matches whole (an OpenAI key in
//!   `credentials(name, value)`), keyed by the row's key.
//!
//! A row's key is a column whose cells are distinct integers or texts, none of them a secret:
//! the table's primary key, else a column named like a key (`id`, `name`, `slug`, …).
//!
//! Not rules: a token pasted inside longer text (a message), whose place changes with every
//! message; each snapshot scans every cell and captures what it finds there. Nor a column of
//! a secret per row beyond [`MAX_ROWS`] rows (a users table): that is an [`Attention`].
//!
//! Invariants: a `where` holds a key, never a secret (a column in which any cell is a secret
//! is no key); values stay in [`Secret`]s; attention messages name tables and columns, never
//! a cell's content.

use std::collections::{BTreeMap, HashSet};

use rusqlite::Connection;
use rusqlite::types::ValueRef;

use crate::detect::Detector;
use crate::manifest::{Locator, SqlValue, SqliteCells};
use crate::ops::walk::Entry;
use crate::secret::Secret;
use crate::sqlite::{Copy, columns, quote, rowid_alias, tables};

use super::classify::{WEAK_RULES, classify, key_words, names_credential};
use super::{Attention, Candidate};

/// At most this many rules for one column: a secret in each of more rows is a table of
/// users, not of the agent's credentials.
const MAX_ROWS: usize = 32;

/// Cells longer than this are text (a message, a document), not one credential: no
/// detection runs over them here.
const MAX_CELL: usize = 16 << 10;

/// Column names of a key/value table's key.
const KEY_COLUMNS: &[&str] = &["key", "name", "k", "setting", "option", "var", "variable"];

/// Column names of a key/value table's value.
const VALUE_COLUMNS: &[&str] = &["value", "v", "val", "data", "secret"];

/// A key/value table has its key, its value and at most this many other columns (an id,
/// a time).
const KV_MAX_COLUMNS: usize = 4;

/// Last words of a column's name that make it a row's key, when it is unique.
const ROW_KEY_WORDS: &[&str] = &[
    "id", "name", "key", "k", "slug", "provider", "service", "label", "setting", "username",
    "account", "alias",
];

/// A cell, as discovery reads it.
enum Cell {
    Integer(i64),
    Text(Secret),
    /// A BLOB: a rule reads it too, so a column with one is not one value.
    Blob,
    /// NULL or a real number: a rule reads nothing there.
    Nothing,
}

/// A table with a rowid, all its rows read.
struct Table {
    name: String,
    columns: Vec<String>,
    /// The primary key's column, when it has one column.
    primary: Option<usize>,
    rows: Vec<Vec<Cell>>,
}

/// A cell that holds a secret.
struct Hit {
    row: usize,
    value: Secret,
    reason: String,
    /// In a key/value table, the row's key (`OPENAI_API_KEY`): the rule's `where`.
    kv_key: Option<String>,
}

/// Proposes rules for the database `entry` (a walked entry with `sqlite` set). A database
/// that cannot be read, and secrets no rule can select, are noted for attention.
pub(super) fn database(
    entry: &Entry,
    detector: &Detector,
    out: &mut Vec<Candidate>,
    attention: &mut Vec<Attention>,
) {
    let note = |message: String| Attention {
        file: entry.rel.clone(),
        line: None,
        message,
    };
    let read = Copy::capture(&entry.path, &entry.rel)
        .map_err(|e| e.to_string())
        .and_then(|copy| read_tables(copy.conn()).map_err(crate::sqlite::reason));
    let tables = match read {
        Ok(tables) => tables,
        Err(reason) => {
            attention.push(note(format!(
                "a SQLite database that could not be read ({reason}): its secrets get no rule"
            )));
            return;
        }
    };
    for table in &tables {
        propose(&entry.rel, table, detector, out, &mut |m| {
            attention.push(note(m));
        });
    }
}

/// Every table with a rowid, and its rows.
fn read_tables(conn: &Connection) -> rusqlite::Result<Vec<Table>> {
    let mut out = Vec::new();
    for (name, has_rowid) in tables(conn)? {
        let cols = columns(conn, &name)?;
        // A rule selects rows by rowid: a table without one cannot have a rule.
        if !has_rowid || rowid_alias(&cols).is_none() || cols.is_empty() {
            continue;
        }
        let primary = primary_key(conn, &name)?.and_then(|pk| cols.iter().position(|c| *c == pk));
        let list: Vec<String> = cols.iter().map(|c| quote(c)).collect();
        let sql = format!("SELECT {} FROM {}", list.join(", "), quote(&name));
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        let mut cells = Vec::new();
        while let Some(row) = rows.next()? {
            let mut r = Vec::with_capacity(cols.len());
            for i in 0..cols.len() {
                r.push(match row.get_ref(i)? {
                    ValueRef::Integer(n) => Cell::Integer(n),
                    ValueRef::Text(t) => Cell::Text(Secret::from_slice(t)),
                    ValueRef::Blob(_) => Cell::Blob,
                    ValueRef::Null | ValueRef::Real(_) => Cell::Nothing,
                });
            }
            cells.push(r);
        }
        out.push(Table {
            name,
            columns: cols,
            primary,
            rows: cells,
        });
    }
    Ok(out)
}

/// The column of `table`'s primary key, when it is one column.
fn primary_key(conn: &Connection, table: &str) -> rusqlite::Result<Option<String>> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_xinfo(?1) WHERE pk > 0")?;
    let names = stmt
        .query_map([table], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(match <[String; 1]>::try_from(names) {
        Ok([one]) => Some(one),
        Err(_) => None,
    })
}

/// The rules of one table: its secret cells, column by column. `note` takes what needs a
/// person.
fn propose(
    file: &str,
    table: &Table,
    detector: &Detector,
    out: &mut Vec<Candidate>,
    note: &mut dyn FnMut(String),
) {
    let kv = kv_shape(&table.columns);
    let hits: Vec<Vec<Hit>> = (0..table.columns.len())
        .map(|c| column_hits(file, table, c, kv, detector))
        .collect();
    let secret: Vec<bool> = hits.iter().map(|h| !h.is_empty()).collect();
    for (c, hits) in hits.iter().enumerate() {
        if hits.is_empty() {
            continue;
        }
        let column = &table.columns[c];
        let rule = |filter: BTreeMap<String, SqlValue>| {
            Locator::Sqlite(Box::new(SqliteCells {
                table: table.name.clone(),
                column: column.clone(),
                filter,
            }))
        };
        let candidate = |hit: &Hit, locator: Locator, name: String| Candidate {
            file: file.to_string(),
            files: vec![file.to_string()],
            locator,
            value: hit.value.clone(),
            reason: hit.reason.clone(),
            name,
            ephemeral: false,
        };
        let (kv_hits, row_hits): (Vec<&Hit>, Vec<&Hit>) =
            hits.iter().partition(|h| h.kv_key.is_some());
        if let Some((k, _)) = kv {
            for hit in kv_hits {
                let key = hit.kv_key.clone().unwrap_or_default();
                let filter =
                    BTreeMap::from([(table.columns[k].clone(), SqlValue::Text(key.clone()))]);
                out.push(candidate(
                    hit,
                    rule(filter),
                    format!("{}_{key}", table.name),
                ));
            }
        }
        if row_hits.is_empty() {
            continue;
        }
        if names_credential(column) && one_value(table, c) {
            let name = format!("{}_{column}", table.name);
            out.push(candidate(row_hits[0], rule(BTreeMap::new()), name));
            continue;
        }
        let what = format!("`{}`.`{column}`", table.name);
        let Some(k) = row_key(table, &secret) else {
            note(format!(
                "{what} holds {} secret(s) in rows that no unique column names: add a \
                 `sqlite` rule by hand",
                row_hits.len()
            ));
            continue;
        };
        if row_hits.len() > MAX_ROWS {
            note(format!(
                "{what} holds a secret in each of {} rows, more than {MAX_ROWS} rules: \
                 declare them by hand if the agent needs them",
                row_hits.len()
            ));
            continue;
        }
        for hit in row_hits {
            let Some(key) = key_value(&table.rows[hit.row][k]) else {
                continue;
            };
            let shown = match &key {
                SqlValue::Integer(n) => n.to_string(),
                SqlValue::Text(t) => t.clone(),
            };
            let filter = BTreeMap::from([(table.columns[k].clone(), key)]);
            let name = format!("{}_{shown}_{column}", table.name);
            out.push(candidate(hit, rule(filter), name));
        }
    }
}

/// The secret cells of column `c`: a value of a credential's shape under a credential's name
/// (the column's, or in a key/value table the row's key), or a provider token, whole.
fn column_hits(
    file: &str,
    table: &Table,
    c: usize,
    kv: Option<(usize, usize)>,
    detector: &Detector,
) -> Vec<Hit> {
    let column = &table.columns[c];
    // A key/value table's keys name secrets; they are none.
    if kv.is_some_and(|(k, _)| k == c) {
        return Vec::new();
    }
    let mut hits = Vec::new();
    for (r, row) in table.rows.iter().enumerate() {
        let Cell::Text(secret) = &row[c] else {
            continue;
        };
        let value = secret.expose();
        let whole = whole_rule(detector, file, value);
        let kv_key = match kv {
            Some((k, v)) if v == c => match &row[k] {
                Cell::Text(key) => std::str::from_utf8(key.expose()).ok().map(str::to_string),
                _ => None,
            },
            _ => None,
        };
        let by_key = kv_key
            .as_deref()
            .and_then(|key| classify(key, value, whole.as_deref()));
        let by_column = || {
            // A column named like nothing secret holds a secret only when a provider rule
            // matches the whole cell.
            let named = names_credential(column);
            let rule = whole
                .as_deref()
                .filter(|r| named || !WEAK_RULES.contains(r));
            (named || rule.is_some())
                .then(|| classify(column, value, rule))
                .flatten()
        };
        let (reason, kv_key) = match by_key {
            Some(reason) => (reason, kv_key),
            None => match by_column() {
                // Keyed by the row's key in a key/value table too.
                Some(reason) if kv_key.is_some() => (reason, kv_key),
                Some(reason) => (reason, None),
                None => continue,
            },
        };
        hits.push(Hit {
            row: r,
            value: secret.clone(),
            reason,
            kv_key,
        });
    }
    hits
}

/// The rule that matches the whole of a cell (its surrounding whitespace aside): a provider
/// rule before a generic one. A longer cell is text, and a token inside it is no rule's.
fn whole_rule(detector: &Detector, file: &str, value: &[u8]) -> Option<String> {
    if value.len() > MAX_CELL {
        return None;
    }
    let start = value.len() - value.trim_ascii_start().len();
    let end = value.trim_ascii_end().len();
    if start >= end {
        return None;
    }
    let whole: Vec<_> = detector
        .scan_bytes(file, value)
        .into_iter()
        .filter(|f| f.offset as usize == start && f.offset as usize + f.length == end)
        .collect();
    whole
        .iter()
        .find(|f| !WEAK_RULES.contains(&f.rule.as_str()))
        .or(whole.first())
        .map(|f| f.rule.clone())
}

/// The key and value columns of a table shaped like a key/value store: one column named like
/// a key (`key`, `name`, `setting`), one like a value (`value`, `data`), and few others.
fn kv_shape(columns: &[String]) -> Option<(usize, usize)> {
    if columns.len() > KV_MAX_COLUMNS {
        return None;
    }
    let one = |names: &[&str]| {
        let mut found = columns
            .iter()
            .enumerate()
            .filter(|(_, c)| names.contains(&c.to_ascii_lowercase().as_str()))
            .map(|(i, _)| i);
        match (found.next(), found.next()) {
            (Some(i), None) => Some(i),
            _ => None,
        }
    };
    Some((one(KEY_COLUMNS)?, one(VALUE_COLUMNS)?))
}

/// Whether every cell a rule on column `c` reads (its texts and BLOBs) is one text: then a
/// rule without `where` reads exactly that value.
fn one_value(table: &Table, c: usize) -> bool {
    let mut first: Option<&Secret> = None;
    for row in &table.rows {
        match &row[c] {
            Cell::Text(v) if first.is_none_or(|f| f == v) => first = Some(v),
            Cell::Nothing | Cell::Integer(_) => {}
            _ => return false,
        }
    }
    first.is_some()
}

/// The column that names each row: the primary key, else a column named like a key; its
/// cells distinct integers or texts, and none of them a secret (`secret[i]`: column `i`
/// holds one; a column named like a credential is no key either).
fn row_key(table: &Table, secret: &[bool]) -> Option<usize> {
    let named = |i: &usize| {
        key_words(&table.columns[*i])
            .last()
            .is_some_and(|w| ROW_KEY_WORDS.contains(&w.as_str()))
    };
    table
        .primary
        .into_iter()
        .chain((0..table.columns.len()).filter(named))
        .filter(|&i| {
            // A column named like a credential is no key, unless it is a bare `key`.
            let name = table.columns[i].to_ascii_lowercase();
            !secret[i] && (!names_credential(&name) || ROW_KEY_WORDS.contains(&name.as_str()))
        })
        .find(|&i| {
            let mut seen = HashSet::new();
            table
                .rows
                .iter()
                .all(|row| key_value(&row[i]).is_some_and(|k| seen.insert(k)))
        })
}

/// A cell as a `where` value: an integer, or a text that is UTF-8.
fn key_value(cell: &Cell) -> Option<SqlValue> {
    match cell {
        Cell::Integer(n) => Some(SqlValue::Integer(*n)),
        Cell::Text(t) => std::str::from_utf8(t.expose())
            .ok()
            .map(|s| SqlValue::Text(s.to_string())),
        Cell::Blob | Cell::Nothing => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Detect;

    // Made for these tests; nothing live-looking is committed.
    const GITHUB: &str = "ghp_Zq8vN2xT5mK9pL3wR7bY4cD6fG1hJ0kM2nP4";
    const OPENAI: &str = "sk-proj-Qm9ZxT4pLw8RkV2nJc6HdY1sAe3UfG7bWq5Er8Ty2Ui4Op6As";
    const TOKEN_1: &str = "Xw7Kp2Lm9Qr4Tz8Vn3Bc6Hd1Fg5Js0Ya";
    const TOKEN_2: &str = "Rt5Yu8Io2Pa4Sd7Fg1Hj3Kl6Zx9Cv0Bn";

    /// The candidates `database` proposes for a database made by `sql`, and the attention.
    fn discovered(sql: &str) -> (Vec<Candidate>, Vec<Attention>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
        let entry = crate::ops::walk::walk(dir.path(), &["**".to_string()], &[])
            .unwrap()
            .entries
            .into_iter()
            .find(|e| e.sqlite)
            .expect("the database is walked as one");
        let detector = Detector::new(&Detect::default(), None).unwrap();
        let (mut out, mut attention) = (Vec::new(), Vec::new());
        database(&entry, &detector, &mut out, &mut attention);
        (out, attention)
    }

    /// `(locator, handle field, value)` of each candidate.
    fn rules(found: &[Candidate]) -> Vec<(String, String, Secret)> {
        found
            .iter()
            .map(|c| (c.locator.to_string(), c.name.clone(), c.value.clone()))
            .collect()
    }

    fn secret(s: &str) -> Secret {
        Secret::from_slice(s.as_bytes())
    }

    #[test]
    fn key_value_rows_whose_key_names_a_credential_are_keyed_rules() {
        let (found, attention) = discovered(&format!(
            "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT, updated INTEGER);
             INSERT INTO settings VALUES ('theme', 'dark', 1), ('max_tokens', '4096', 2),
               ('model', 'gpt-4o-mini', 3), ('OPENAI_API_KEY', '{TOKEN_1}', 4),
               ('api_key_env', 'OPENAI_API_KEY', 5), ('github_token', '${{GITHUB_TOKEN}}', 6);"
        ));
        assert_eq!(
            rules(&found),
            [(
                "sqlite settings.value where key = 'OPENAI_API_KEY'".to_string(),
                "settings_OPENAI_API_KEY".to_string(),
                secret(TOKEN_1)
            )]
        );
        assert!(attention.is_empty());
        assert_eq!(found[0].reason, "key name");
    }

    #[test]
    fn provider_tokens_whole_in_a_cell_are_keyed_by_the_row() {
        let (found, attention) = discovered(&format!(
            "CREATE TABLE credentials (name TEXT PRIMARY KEY, value TEXT);
             INSERT INTO credentials VALUES ('github', '{GITHUB}'), ('openai', '{OPENAI}'),
               ('note', 'rotate in June');
             CREATE TABLE messages (id INTEGER PRIMARY KEY, role TEXT, content TEXT);
             INSERT INTO messages (role, content) VALUES ('user',
               'here is my token {GITHUB} - please use it for the release, thanks!');"
        ));
        assert_eq!(
            rules(&found),
            [
                (
                    "sqlite credentials.value where name = 'github'".to_string(),
                    "credentials_github".to_string(),
                    secret(GITHUB)
                ),
                (
                    "sqlite credentials.value where name = 'openai'".to_string(),
                    "credentials_openai".to_string(),
                    secret(OPENAI)
                ),
            ]
        );
        assert_eq!(found[0].reason, "github-pat");
        // The token pasted in a message is no rule, nor a note: snapshots capture it.
        assert!(attention.is_empty());
    }

    #[test]
    fn a_credential_column_is_one_rule_for_one_value_and_a_rule_per_row_otherwise() {
        let (found, attention) = discovered(&format!(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, password_hash TEXT,
               api_token TEXT);
             INSERT INTO users VALUES
               (1, 'kevin@example.net', '$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW', '{TOKEN_1}'),
               (2, 'ana@example.net', '$2b$12$Kq3vZ8mN1pL4tR7wX0yB2eC5fH8jK1mN4pQ7sT0vW3yZ6bD9gJ2m', '{TOKEN_2}'),
               (3, 'bot@example.net', NULL, NULL);
             CREATE TABLE account (id INTEGER PRIMARY KEY, refresh_token TEXT, scope TEXT);
             INSERT INTO account VALUES (7, '{TOKEN_2}', 'repo');"
        ));
        assert_eq!(
            rules(&found),
            [
                (
                    "sqlite account.refresh_token".to_string(),
                    "account_refresh_token".to_string(),
                    secret(TOKEN_2)
                ),
                (
                    "sqlite users.api_token where id = 1".to_string(),
                    "users_1_api_token".to_string(),
                    secret(TOKEN_1)
                ),
                (
                    "sqlite users.api_token where id = 2".to_string(),
                    "users_2_api_token".to_string(),
                    secret(TOKEN_2)
                ),
            ]
        );
        assert!(attention.is_empty());
    }

    #[test]
    fn secrets_in_rows_without_a_key_are_noted_and_get_no_rule() {
        // Neither column is unique: no `where` selects one row.
        let (found, attention) = discovered(&format!(
            "CREATE TABLE pasted (at TEXT, body TEXT);
             INSERT INTO pasted VALUES ('today', '{GITHUB}'), ('today', 'hello');"
        ));
        assert!(found.is_empty());
        assert_eq!(attention.len(), 1);
        assert!(
            attention[0].message.contains("`pasted`.`body`"),
            "{}",
            attention[0].message
        );
        assert!(!attention[0].message.contains(GITHUB));
    }

    #[test]
    fn key_value_shapes_and_row_keys() {
        let cols = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(kv_shape(&cols(&["key", "value"])), Some((0, 1)));
        assert_eq!(kv_shape(&cols(&["id", "Name", "data", "at"])), Some((1, 2)));
        assert_eq!(kv_shape(&cols(&["k", "v"])), Some((0, 1)));
        // Two key-like columns, no value column, or a table too wide to be a store.
        assert_eq!(kv_shape(&cols(&["key", "name", "value"])), None);
        assert_eq!(kv_shape(&cols(&["name", "email"])), None);
        assert_eq!(kv_shape(&cols(&["a", "b", "c", "key", "value"])), None);

        let table = |columns: &[&str], rows: Vec<Vec<Cell>>| Table {
            name: "t".into(),
            columns: cols(columns),
            primary: None,
            rows,
        };
        let text = |s: &str| Cell::Text(secret(s));
        // `slug` is unique, `name` is not; the first unique key-named column wins.
        let t = table(
            &["name", "slug", "api_key"],
            vec![
                vec![text("a"), text("x"), text(TOKEN_1)],
                vec![text("a"), text("y"), text(TOKEN_2)],
            ],
        );
        assert_eq!(row_key(&t, &[false, false, true]), Some(1));
        // A column that holds a secret is no key, nor one named like a credential.
        assert_eq!(row_key(&t, &[false, true, true]), None);
        let t = table(
            &["id", "token_id"],
            vec![
                vec![Cell::Integer(1), text("a")],
                vec![Cell::Nothing, text("b")],
            ],
        );
        assert_eq!(row_key(&t, &[false, false]), Some(1), "NULL is no key");
        let t = table(
            &["api_key", "k"],
            vec![
                vec![text("abc"), text("one")],
                vec![text("abd"), text("two")],
            ],
        );
        assert_eq!(row_key(&t, &[false, false]), Some(1));
        // One value for the column: a NULL or an integer is read as nothing, a BLOB is read.
        let t = table(
            &["token"],
            vec![
                vec![text(TOKEN_1)],
                vec![Cell::Nothing],
                vec![text(TOKEN_1)],
            ],
        );
        assert!(one_value(&t, 0));
        let t = table(&["token"], vec![vec![text(TOKEN_1)], vec![Cell::Blob]]);
        assert!(!one_value(&t, 0));
        let t = table(&["token"], vec![vec![text(TOKEN_1)], vec![text(TOKEN_2)]]);
        assert!(!one_value(&t, 0));
    }
}
