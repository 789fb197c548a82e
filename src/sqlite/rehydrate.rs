//! Rehydration of a restored database: each recorded cell gets its values back, by `UPDATE`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::{BUSY_TIMEOUT, columns, quiet_edits, quote, reason, rowid_alias};
use crate::handle::Handle;
use crate::redact::{Context, RedactError, Replacement, rehydrate_file};
use crate::secret::Secret;

/// A cell, as records name it: table, column, rowid, and whether it is a BLOB.
type CellKey = (String, String, i64, bool);

/// Fills every cell `replacements` record in the database at `file` (a restored copy, not the
/// agent's live one) with its values, in one transaction, then runs `PRAGMA integrity_check`.
/// Each cell must hold the placeholders its record says where it says; a record of another
/// kind, a table or column the database lacks, or a row that is not there, is an error and
/// nothing is written. `display` names the file in errors.
pub fn rehydrate(
    file: &Path,
    display: &str,
    replacements: &[Replacement],
    values: &HashMap<Handle, Secret>,
) -> Result<(), RedactError> {
    let fail = |reason: String| RedactError::Sqlite {
        path: display.to_string(),
        reason,
    };
    let mut cells: BTreeMap<CellKey, Vec<Replacement>> = BTreeMap::new();
    for r in replacements {
        let Context::SqliteCell(cell) = &r.context else {
            return Err(fail(
                "a record of the database does not name a cell; the archive's index is not \
                 one a snapshot wrote"
                    .to_string(),
            ));
        };
        cells
            .entry((
                cell.table.clone(),
                cell.column.clone(),
                cell.rowid,
                cell.blob,
            ))
            .or_default()
            .push(Replacement {
                context: cell.inner.clone(),
                ..r.clone()
            });
    }
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| fail(reason(e)))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| fail(reason(e)))?;
    quiet_edits(&conn).map_err(|e| fail(reason(e)))?;
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| fail(reason(e)))?;
    let mut aliases: HashMap<String, &'static str> = HashMap::new();
    for ((table, column, rowid, blob), inner) in &cells {
        let alias = match aliases.get(table) {
            Some(a) => *a,
            None => {
                let cols = columns(&conn, table).map_err(|e| fail(reason(e)))?;
                if !cols.contains(column) {
                    return Err(fail(format!(
                        "table `{table}` has no column `{column}` that a record names"
                    )));
                }
                let alias = rowid_alias(&cols).ok_or_else(|| {
                    fail(format!(
                        "table `{table}` has no rowid that a record can name"
                    ))
                })?;
                aliases.insert(table.clone(), alias);
                alias
            }
        };
        let select = format!(
            "SELECT {} FROM {} WHERE {alias} = ?1",
            quote(column),
            quote(table)
        );
        let current: Option<Vec<u8>> = conn
            .query_row(&select, [rowid], |r| {
                Ok(match r.get_ref(0)? {
                    ValueRef::Text(b) | ValueRef::Blob(b) => Some(b.to_vec()),
                    _ => None,
                })
            })
            .optional()
            .map_err(|e| fail(reason(e)))?
            .flatten();
        let Some(current) = current else {
            return Err(fail(format!(
                "row {rowid} of table `{table}` holds no text in `{column}`, where a record \
                 puts a placeholder"
            )));
        };
        let at = format!("{display} ({table}.{column}, row {rowid})");
        let restored = zeroize::Zeroizing::new(rehydrate_file(&at, &current, inner, values)?);
        let value = if *blob {
            ToSqlOutput::Borrowed(ValueRef::Blob(&restored))
        } else {
            if std::str::from_utf8(&restored).is_err() {
                return Err(fail(format!(
                    "the value for {at} is not UTF-8 text, which a TEXT cell holds"
                )));
            }
            ToSqlOutput::Borrowed(ValueRef::Text(&restored))
        };
        let update = format!(
            "UPDATE {} SET {} = ?1 WHERE {alias} = ?2",
            quote(table),
            quote(column)
        );
        conn.execute(&update, rusqlite::params![value, rowid])
            .map_err(|e| fail(reason(e)))?;
    }
    conn.execute_batch("COMMIT").map_err(|e| fail(reason(e)))?;
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| fail(reason(e)))?;
    if check != "ok" {
        return Err(fail(format!("integrity_check after rehydration: {check}")));
    }
    conn.close().map_err(|(_, e)| fail(reason(e)))
}
