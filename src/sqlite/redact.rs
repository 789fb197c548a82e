//! Redaction inside a database copy: declared cells, stray known values and what the caller
//! finds in TEXT cells become placeholders; then `VACUUM`.

use std::collections::{BTreeMap, HashMap};

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, params_from_iter};

use super::{Copy, SqliteCell, columns, quote, reason, rowid_alias, tables};
use crate::handle::Handle;
use crate::manifest::{Locator, SqlValue, SqliteCells};
use crate::redact::{
    Blocker, Context, MIN_STRAY_LEN, RedactError, RedactWarning, Replacement, Rule, Source,
    StrayMatcher, WarningKind, redact_file_with,
};
use crate::secret::Secret;

/// What redacting one database came to (its image is [`Copy::image`]).
#[derive(Debug, Default)]
pub struct Redacted {
    /// One record per cell and handle, for the archive index.
    pub replacements: Vec<Replacement>,
    /// The values found at declared cells, once per (handle, value).
    pub values: Vec<(Handle, Secret)>,
    /// Declared rules that found no cell.
    pub warnings: Vec<RedactWarning>,
    /// Known values in cells that are not text (a BLOB of binary data), which no edit can
    /// take out.
    pub blockers: Vec<Blocker>,
}

/// An edit to apply: a cell's new content.
struct Edit {
    table: String,
    column: String,
    alias: &'static str,
    rowid: i64,
    bytes: Vec<u8>,
    blob: bool,
}

/// The cells each `sqlite` rule declares, by (table, column, rowid) → the rule's index.
type Declared = HashMap<(String, String, i64), usize>;

/// Replaces every declared cell (a `sqlite` rule) by its handle's placeholder, and every
/// known value in any other TEXT cell (or BLOB of UTF-8 text) by the same placeholder as in
/// a text file; hands each text cell, as redacted, to `cell` (the caller's detection: what it
/// finds is captured and known on the next attempt); then rebuilds the copy with `VACUUM`
/// and checks every edited cell. A rule other than `sqlite` does not fit a database.
pub fn redact(
    path: &str,
    copy: &mut Copy,
    rules: &[Rule],
    known: &StrayMatcher,
    cell: &mut dyn FnMut(&[u8]),
) -> Result<Redacted, RedactError> {
    let fail = |reason: String| RedactError::Sqlite {
        path: path.to_string(),
        reason,
    };
    let mut out = Redacted::default();
    let edits = cells(path, &copy.conn, rules, known, cell, &mut out)?;
    apply(&copy.conn, &edits).map_err(|e| fail(reason(e)))?;
    // Rebuilt page by page: no old value is left in a free page.
    let conn = copy.rebuild().map_err(|e| fail(reason(e)))?;
    for e in &edits {
        let sql = format!(
            "SELECT {} FROM {} WHERE {} = ?1",
            quote(&e.column),
            quote(&e.table),
            e.alias
        );
        let same = conn
            .query_row(&sql, [e.rowid], |r| {
                Ok(match r.get_ref(0)? {
                    ValueRef::Text(t) => !e.blob && t == e.bytes.as_slice(),
                    ValueRef::Blob(b) => e.blob && b == e.bytes.as_slice(),
                    _ => false,
                })
            })
            .map_err(|err| fail(reason(err)))?;
        if !same {
            return Err(fail(format!(
                "after VACUUM, row {} of table `{}` is not the row redacted",
                e.rowid, e.table
            )));
        }
    }
    Ok(out)
}

/// Hands each text cell of the copy, as [`redact`] would write it, to `cell`, and changes
/// nothing: what a snapshot's capture reads its findings' values from, without the rebuild.
pub fn read_cells(
    path: &str,
    copy: &Copy,
    rules: &[Rule],
    known: &StrayMatcher,
    cell: &mut dyn FnMut(&[u8]),
) -> Result<(), RedactError> {
    cells(
        path,
        &copy.conn,
        rules,
        known,
        cell,
        &mut Redacted::default(),
    )
    .map(drop)
}

/// The pass over every cell: fills `out` (records, declared values, warnings, blockers),
/// hands each text cell as redacted to `cell`, and returns the edits to write.
fn cells(
    path: &str,
    conn: &Connection,
    rules: &[Rule],
    known: &StrayMatcher,
    cell: &mut dyn FnMut(&[u8]),
    out: &mut Redacted,
) -> Result<Vec<Edit>, RedactError> {
    let fail = |reason: String| RedactError::Sqlite {
        path: path.to_string(),
        reason,
    };
    let declared = declared_cells(path, conn, rules, &mut out.warnings)?;
    let mut edits = Vec::new();
    for (table, has_rowid) in tables(conn).map_err(|e| fail(reason(e)))? {
        let cols = columns(conn, &table).map_err(|e| fail(reason(e)))?;
        let alias = rowid_alias(&cols).filter(|_| has_rowid);
        // This table's declared cells, by (column index, rowid): no key built per cell.
        let here: HashMap<(usize, i64), usize> = declared
            .iter()
            .filter(|((t, _, _), _)| *t == table)
            .filter_map(|((_, c, id), &r)| Some(((cols.iter().position(|x| x == c)?, *id), r)))
            .collect();
        let select = format!(
            "SELECT {}, {} FROM {}",
            alias.unwrap_or("NULL"),
            cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", "),
            quote(&table)
        );
        let mut stmt = conn.prepare(&select).map_err(|e| fail(reason(e)))?;
        let mut rows = stmt.query([]).map_err(|e| fail(reason(e)))?;
        while let Some(row) = rows.next().map_err(|e| fail(reason(e)))? {
            let rowid: Option<i64> = row.get(0).map_err(|e| fail(reason(e)))?;
            for (i, column) in cols.iter().enumerate() {
                let (bytes, blob) = match row.get_ref(i + 1).map_err(|e| fail(reason(e)))? {
                    ValueRef::Text(t) => (t, false),
                    ValueRef::Blob(b) => (b, true),
                    _ => continue,
                };
                let at = |inner: Context| {
                    Context::SqliteCell(Box::new(SqliteCell {
                        table: table.clone(),
                        column: column.clone(),
                        rowid: rowid.unwrap_or(0),
                        blob,
                        inner,
                    }))
                };
                let rule = rowid.and_then(|id| here.get(&(i, id)));
                let (new, replacements) = if let Some(&r) = rule {
                    let rule = &rules[r];
                    let pair = (rule.handle.clone(), Secret::from_slice(bytes));
                    if !out.values.contains(&pair) {
                        out.values.push(pair);
                    }
                    let replacement = Replacement {
                        source: Source::Rule(rule.locator.clone()),
                        handle: rule.handle.clone(),
                        offsets: vec![0],
                        context: at(Context::Raw),
                    };
                    (rule.handle.placeholder().into_bytes(), vec![replacement])
                } else if bytes.len() < MIN_STRAY_LEN {
                    // Shorter than any value searched for or any credential found: most
                    // cells of a table (names, times, flags) cost nothing more.
                    continue;
                } else {
                    let text = !blob || std::str::from_utf8(bytes).is_ok();
                    let redacted = redact_file_with(path, bytes, &[], known)?;
                    if !text || !redacted.blockers.is_empty() {
                        // Binary data: a known value in it cannot be edited out. The blocker
                        // names the cell; its offset is in the cell.
                        let cell = match rowid {
                            Some(id) => format!("{path} ({table}.{column}, row {id})"),
                            None => format!("{path} ({table}.{column})"),
                        };
                        out.blockers
                            .extend(redacted.blockers.into_iter().map(|b| Blocker {
                                path: cell.clone(),
                                ..b
                            }));
                        continue;
                    }
                    cell(&redacted.output);
                    let std::borrow::Cow::Owned(new) = redacted.output else {
                        continue;
                    };
                    let replacements = redacted
                        .replacements
                        .into_iter()
                        .map(|r| Replacement {
                            context: at(r.context),
                            ..r
                        })
                        .collect();
                    (new, replacements)
                };
                let (Some(alias), Some(rowid)) = (alias, rowid) else {
                    return Err(fail(format!(
                        "table `{table}` has no rowid, so a secret in its column `{column}` \
                         cannot be replaced; leave the database out (`exclude`), or declare \
                         it whole (a `whole_file` rule)"
                    )));
                };
                out.replacements.extend(replacements);
                edits.push(Edit {
                    table: table.clone(),
                    column: column.clone(),
                    alias,
                    rowid,
                    bytes: new,
                    blob,
                });
            }
        }
    }
    Ok(edits)
}

/// Writes every edit, in one transaction.
fn apply(conn: &Connection, edits: &[Edit]) -> rusqlite::Result<()> {
    if edits.is_empty() {
        return Ok(());
    }
    conn.execute_batch("BEGIN")?;
    for e in edits {
        let sql = format!(
            "UPDATE {} SET {} = ?1 WHERE {} = ?2",
            quote(&e.table),
            quote(&e.column),
            e.alias
        );
        let value = if e.blob {
            ToSqlOutput::Borrowed(ValueRef::Blob(&e.bytes))
        } else {
            ToSqlOutput::Borrowed(ValueRef::Text(&e.bytes))
        };
        conn.prepare(&sql)?
            .execute(rusqlite::params![value, e.rowid])?;
    }
    conn.execute_batch("COMMIT")
}

/// The rowids of the cells each `sqlite` rule selects. A rule whose table or column the
/// database lacks, or that selects no row, is a warning (the agent may not have written it
/// yet); a rule of another kind does not fit a database.
fn declared_cells(
    path: &str,
    conn: &Connection,
    rules: &[Rule],
    warnings: &mut Vec<RedactWarning>,
) -> Result<Declared, RedactError> {
    let fail = |reason: String| RedactError::Sqlite {
        path: path.to_string(),
        reason,
    };
    let tables: BTreeMap<String, (String, bool)> = tables(conn)
        .map_err(|e| fail(reason(e)))?
        .into_iter()
        .map(|(name, rowid)| (name.to_ascii_lowercase(), (name, rowid)))
        .collect();
    let mut declared = Declared::new();
    for (i, rule) in rules.iter().enumerate() {
        let Locator::Sqlite(cells) = &rule.locator else {
            return Err(fail(format!(
                "a database takes `sqlite` rules (or `whole_file`), not {}",
                rule.locator
            )));
        };
        let selected = match tables.get(&cells.table.to_ascii_lowercase()) {
            Some((_, true)) => select(conn, cells).map_err(|e| fail(reason(e)))?,
            Some((_, false)) => {
                return Err(fail(format!(
                    "table `{}` has no rowid; its cells cannot be declared",
                    cells.table
                )));
            }
            None => None,
        };
        let (table, column, rowids) = selected.unwrap_or_default();
        if rowids.is_empty() {
            warnings.push(RedactWarning {
                path: path.to_string(),
                locator: rule.locator.clone(),
                kind: WarningKind::NotFound,
            });
        }
        for rowid in rowids {
            let key = (table.clone(), column.clone(), rowid);
            if let Some(&other) = declared.get(&key)
                && rules[other].handle != rule.handle
            {
                return Err(RedactError::Overlap {
                    path: path.to_string(),
                    first: rules[other].locator.clone(),
                    second: rule.locator.clone(),
                    offset: 0,
                });
            }
            declared.insert(key, i);
        }
    }
    Ok(declared)
}

/// The table and column `cells` names, spelt as the database spells them, and the rowids of
/// the rows it selects; `None` when the table lacks a column it names (or has no rowid).
fn select(conn: &Connection, cells: &SqliteCells) -> rusqlite::Result<Option<Selected>> {
    let Some(table) = tables(conn)?
        .into_iter()
        .map(|(name, _)| name)
        .find(|name| name.eq_ignore_ascii_case(&cells.table))
    else {
        return Ok(None);
    };
    let cols = columns(conn, &table)?;
    let spelt = |name: &String| cols.iter().find(|c| c.eq_ignore_ascii_case(name)).cloned();
    let Some(column) = spelt(&cells.column) else {
        return Ok(None);
    };
    if !cells.filter.keys().all(|k| spelt(k).is_some()) {
        return Ok(None);
    }
    let Some(alias) = rowid_alias(&cols) else {
        return Ok(None);
    };
    let mut sql = format!("SELECT {alias} FROM {}", quote(&table));
    for (i, column) in cells.filter.keys().enumerate() {
        let join = if i == 0 { "WHERE" } else { "AND" };
        sql.push_str(&format!(" {join} {} = ?{}", quote(column), i + 1));
    }
    let values = cells.filter.values().map(|v| match v {
        SqlValue::Integer(n) => Value::Integer(*n),
        SqlValue::Text(t) => Value::Text(t.clone()),
    });
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(values), |r| r.get::<_, i64>(0))?;
    let rowids = rows.collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(Some((table, column, rowids)))
}

/// A rule's cells: table, column (as the database spells them) and rowids.
type Selected = (String, String, Vec<i64>);

/// The values at a `sqlite` locator in a database image: what `scan` and `secrets push`
/// read without redacting anything.
pub fn values_at(
    path: &str,
    image: &[u8],
    cells: &SqliteCells,
) -> Result<Vec<Secret>, RedactError> {
    values_in(path, &Copy::from_bytes(image, path)?, cells)
}

/// Declared values, each with its handle.
pub type DeclaredValues = Vec<(Handle, Secret)>;

/// The values of the declared cells of `rules` in a copy, once per (handle, value), and a
/// warning for each rule that selects no cell: what a snapshot knows before it redacts.
pub fn declared_values(
    path: &str,
    copy: &Copy,
    rules: &[Rule],
) -> Result<(DeclaredValues, Vec<RedactWarning>), RedactError> {
    let mut warnings = Vec::new();
    declared_cells(path, &copy.conn, rules, &mut warnings)?;
    let mut values: Vec<(Handle, Secret)> = Vec::new();
    for rule in rules {
        let Locator::Sqlite(cells) = &rule.locator else {
            continue;
        };
        for v in values_in(path, copy, cells)? {
            let pair = (rule.handle.clone(), v);
            if !values.contains(&pair) {
                values.push(pair);
            }
        }
    }
    Ok((values, warnings))
}

/// The values at a `sqlite` locator in the live database at `file`, through a consistent
/// copy (its WAL included): what `scan`, `verify` and `secrets push` read from the state.
pub fn values_in_file(
    file: &std::path::Path,
    display: &str,
    cells: &SqliteCells,
) -> Result<Vec<Secret>, RedactError> {
    values_in(display, &Copy::capture(file, display)?, cells)
}

/// The values at a `sqlite` locator in a copy.
pub fn values_in(path: &str, copy: &Copy, cells: &SqliteCells) -> Result<Vec<Secret>, RedactError> {
    let fail = |e: rusqlite::Error| RedactError::Sqlite {
        path: path.to_string(),
        reason: reason(e),
    };
    let Some((table, column, rowids)) = select(&copy.conn, cells).map_err(fail)? else {
        return Ok(Vec::new());
    };
    let cols = columns(&copy.conn, &table).map_err(fail)?;
    let alias = rowid_alias(&cols).unwrap_or("rowid");
    let sql = format!(
        "SELECT {} FROM {} WHERE {alias} = ?1",
        quote(&column),
        quote(&table)
    );
    let mut out: Vec<Secret> = Vec::new();
    for rowid in rowids {
        let value = copy
            .conn
            .query_row(&sql, [rowid], |r| {
                Ok(match r.get_ref(0)? {
                    ValueRef::Text(b) | ValueRef::Blob(b) => Some(Secret::from_slice(b)),
                    _ => None,
                })
            })
            .map_err(fail)?;
        if let Some(v) = value
            && !out.contains(&v)
        {
            out.push(v);
        }
    }
    Ok(out)
}
