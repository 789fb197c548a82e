//! The file-level driver: applies a file's rules, then the stray search, and writes the
//! redacted bytes in one pass; and the reverse, with a re-parse that proves the result.
//!
//! Every edit is computed against the input's byte ranges first and applied once, so no edit
//! moves another; the offsets recorded are those of the placeholders in the output.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use zeroize::Zeroizing;

use super::{
    Blocker, Context, Format, FormatError, RedactError, RedactWarning, RedactedFile, Replacement,
    Rule, Site, Source, StrayMatcher, Unfit, WarningKind, regex, stray, whole,
};
use crate::handle::Handle;
use crate::manifest::Locator;
use crate::secret::Secret;

/// How much of a file decides whether it is binary.
const SNIFF: usize = 8192;

/// Whether a file is binary: a NUL byte or invalid UTF-8 in its first 8 KiB (a character cut
/// by the 8 KiB boundary does not count).
pub fn is_binary(input: &[u8]) -> bool {
    let head = &input[..input.len().min(SNIFF)];
    if head.contains(&0) {
        return true;
    }
    match std::str::from_utf8(head) {
        Ok(_) => false,
        Err(e) => e.error_len().is_some() || input.len() <= SNIFF,
    }
}

/// The locator's text in its format's syntax (a pointer, a key, `section.key`).
fn locator_text(locator: &Locator) -> &str {
    locator.text().unwrap_or("")
}

/// A declared value about to be replaced.
struct Declared {
    site: Site,
    rule: usize,
}

/// Applies the declared rules of a file, then replaces stray occurrences of `known` values
/// (raw and as each format escapes them) by the same placeholder. In a binary file (NUL or
/// invalid UTF-8 in the first 8 KiB) only a `whole_file` rule applies, and a known value is
/// a [`Blocker`] with its offset instead.
///
/// `path` is used in messages and to guess the format of a file only strays touch.
///
/// This builds the search for `known` on every call: to redact many files with the same
/// known values, build a [`StrayMatcher`] once and call [`redact_file_with`].
pub fn redact_file<'a>(
    path: &str,
    input: &'a [u8],
    rules: &[Rule],
    known: &[(Handle, Secret)],
) -> Result<RedactedFile<'a>, RedactError> {
    redact_file_with(path, input, rules, &StrayMatcher::new(known))
}

/// [`redact_file`] with the known values' search built once ([`StrayMatcher::new`]) for
/// every file of a run. The file's own declared values are searched for too, after the
/// known ones, exactly as [`redact_file`] does.
pub fn redact_file_with<'a>(
    path: &str,
    input: &'a [u8],
    rules: &[Rule],
    known: &StrayMatcher,
) -> Result<RedactedFile<'a>, RedactError> {
    if let Some(whole) = rules.iter().find(|r| r.locator == Locator::WholeFile) {
        return redact_whole(path, input, whole, rules);
    }
    if let Some(rule) = rules
        .iter()
        .find(|r| matches!(r.locator, Locator::Sqlite(_)))
    {
        return Err(RedactError::Sqlite {
            path: path.into(),
            reason: format!(
                "{} names cells, but the file is not a SQLite database",
                rule.locator
            ),
        });
    }
    if is_binary(input) {
        if let Some(rule) = rules.first() {
            return Err(RedactError::NotText {
                path: path.into(),
                locator: rule.locator.clone(),
            });
        }
        let blockers = known
            .find(input, None, &[], &[])
            .into_iter()
            .map(|hit| Blocker {
                path: path.into(),
                offset: hit.range.start,
                handle: known.handle(hit.known, &[]).clone(),
            })
            .collect();
        return Ok(RedactedFile {
            output: Cow::Borrowed(input),
            blockers,
            ..RedactedFile::default()
        });
    }
    let format = file_format(path, rules)?;
    let mut result = RedactedFile::default();
    let declared = locate_declared(path, input, rules, format, &mut result.warnings)?;
    for d in &declared {
        let pair = (
            rules[d.rule].handle.clone(),
            Secret::from_slice(d.site.value.expose()),
        );
        if !result.values.contains(&pair) {
            result.values.push(pair);
        }
    }
    let mut skip: Vec<Range<usize>> = declared.iter().map(|d| d.site.range.clone()).collect();
    skip.extend(stray::placeholder_ranges(input));
    skip.sort_by_key(|r| (r.start, r.end));
    let stray_format = format.or_else(|| Format::of_path(path));
    // The file's declared values are searched for elsewhere in it too.
    let own = &result.values;
    let strays = known.find(input, stray_format, &merge(skip), own);

    let mut edits: Vec<(Range<usize>, Source, &Handle, &Context)> = declared
        .iter()
        .map(|d| {
            let rule = &rules[d.rule];
            (
                d.site.range.clone(),
                Source::Rule(rule.locator.clone()),
                &rule.handle,
                &d.site.context,
            )
        })
        .collect();
    edits.extend(strays.iter().map(|h| {
        (
            h.range.clone(),
            Source::Stray,
            known.handle(h.known, own),
            &h.context,
        )
    }));
    edits.sort_by_key(|e| e.0.start);
    let (output, replacements) = if edits.is_empty() {
        (Cow::Borrowed(input), Vec::new())
    } else {
        let (output, replacements) = apply(input, &edits);
        (Cow::Owned(output), replacements)
    };
    result.output = output;
    result.replacements = replacements;
    check_exact(path, input, rules, &declared, &mut result.warnings);
    if let Some(format) = stray_format {
        check_redacted(path, input, &result, rules, format, !strays.is_empty())?;
    }
    Ok(result)
}

fn redact_whole<'a>(
    path: &str,
    input: &[u8],
    whole: &Rule,
    rules: &[Rule],
) -> Result<RedactedFile<'a>, RedactError> {
    if let Some(other) = rules.iter().find(|r| !std::ptr::eq(*r, whole)) {
        return Err(RedactError::Overlap {
            path: path.into(),
            first: whole.locator.clone(),
            second: other.locator.clone(),
            offset: 0,
        });
    }
    let mut result = RedactedFile::default();
    if input.is_empty() {
        result.warnings.push(RedactWarning {
            path: path.into(),
            locator: Locator::WholeFile,
            kind: WarningKind::NotFound,
        });
        return Ok(result);
    }
    let site = whole::locate(input, is_binary(input));
    result.output = Cow::Owned(whole.handle.placeholder().into_bytes());
    result.replacements.push(Replacement {
        source: Source::Rule(Locator::WholeFile),
        handle: whole.handle.clone(),
        offsets: vec![0],
        context: site.context,
    });
    result.values.push((whole.handle.clone(), site.value));
    Ok(result)
}

/// The one structured format the rules read the file as, if any.
fn file_format(path: &str, rules: &[Rule]) -> Result<Option<Format>, RedactError> {
    let mut found: Option<(Format, &Locator)> = None;
    for rule in rules {
        let Some(f) = Format::of_locator(&rule.locator) else {
            continue;
        };
        match found {
            Some((g, first)) if g != f => {
                return Err(RedactError::MixedFormats {
                    path: path.into(),
                    first: first.clone(),
                    second: rule.locator.clone(),
                });
            }
            Some(_) => {}
            None => found = Some((f, &rule.locator)),
        }
    }
    Ok(found.map(|(f, _)| f))
}

fn format_error(path: &str, format: Format, rules: &[&Rule], e: FormatError) -> RedactError {
    match e {
        FormatError::Parse {
            line,
            column,
            reason,
        } => RedactError::Parse {
            path: path.into(),
            format,
            line,
            column,
            reason,
        },
        FormatError::NotAString { locator, found } => RedactError::NotAString {
            path: path.into(),
            locator: rules[locator].locator.clone(),
            found,
        },
        FormatError::BadLocator { locator, reason } => RedactError::BadLocator {
            path: path.into(),
            locator: rules[locator].locator.clone(),
            reason,
        },
    }
}

/// Parses `input` as UTF-8 text for a structured format, or reports where it is not.
fn as_text<'a>(path: &str, input: &'a [u8], format: Format) -> Result<&'a str, RedactError> {
    std::str::from_utf8(input).map_err(|e| {
        let (line, column) = crate::json_span::line_col(input, e.valid_up_to());
        RedactError::Parse {
            path: path.into(),
            format,
            line,
            column,
            reason: "invalid UTF-8".into(),
        }
    })
}

/// Every site of every rule, sorted, without overlaps; a rule that finds nothing is a warning.
fn locate_declared(
    path: &str,
    input: &[u8],
    rules: &[Rule],
    format: Option<Format>,
    warnings: &mut Vec<RedactWarning>,
) -> Result<Vec<Declared>, RedactError> {
    let mut declared = Vec::new();
    if let Some(format) = format {
        let text = as_text(path, input, format)?;
        let structured: Vec<(usize, &Rule)> = rules
            .iter()
            .enumerate()
            .filter(|(_, r)| Format::of_locator(&r.locator).is_some())
            .collect();
        let strs: Vec<&str> = structured
            .iter()
            .map(|(_, r)| locator_text(&r.locator))
            .collect();
        let by_index: Vec<&Rule> = structured.iter().map(|(_, r)| *r).collect();
        let found = format
            .redactor()
            .locate(text, &strs)
            .map_err(|e| format_error(path, format, &by_index, e))?;
        for ((rule, _), sites) in structured.iter().zip(found) {
            declared.extend(sites.into_iter().map(|site| Declared { site, rule: *rule }));
        }
    }
    for (i, rule) in rules.iter().enumerate() {
        if let Locator::Regex(pattern) = &rule.locator {
            let sites =
                regex::locate(input, pattern).map_err(|reason| RedactError::BadLocator {
                    path: path.into(),
                    locator: rule.locator.clone(),
                    reason,
                })?;
            declared.extend(sites.into_iter().map(|site| Declared { site, rule: i }));
        }
    }
    for (i, rule) in rules.iter().enumerate() {
        if !declared.iter().any(|d| d.rule == i) {
            warnings.push(RedactWarning {
                path: path.into(),
                locator: rule.locator.clone(),
                kind: WarningKind::NotFound,
            });
        }
    }
    declared.sort_by_key(|d| (d.site.range.start, d.site.range.end));
    let mut kept: Vec<Declared> = Vec::with_capacity(declared.len());
    for d in declared {
        if let Some(prev) = kept.last() {
            let same = prev.site.range == d.site.range;
            if same && rules[prev.rule].handle == rules[d.rule].handle {
                continue;
            }
            if same || d.site.range.start < prev.site.range.end {
                return Err(RedactError::Overlap {
                    path: path.into(),
                    first: rules[prev.rule].locator.clone(),
                    second: rules[d.rule].locator.clone(),
                    offset: d.site.range.start,
                });
            }
        }
        kept.push(d);
    }
    Ok(kept)
}

/// Sorted ranges merged where they touch or overlap.
fn merge(sorted: Vec<Range<usize>>) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

type Edit<'a> = (Range<usize>, Source, &'a Handle, &'a Context);

/// Writes the output and groups the placeholders' offsets by (source, handle, context).
fn apply(input: &[u8], edits: &[Edit<'_>]) -> (Vec<u8>, Vec<Replacement>) {
    let mut out = Vec::with_capacity(input.len());
    let mut replacements: Vec<Replacement> = Vec::new();
    let mut groups: HashMap<(&Source, &Handle, &Context), usize> = HashMap::new();
    let mut cursor = 0;
    for (range, source, handle, context) in edits {
        out.extend_from_slice(&input[cursor..range.start]);
        let offset = out.len();
        out.extend_from_slice(handle.placeholder().as_bytes());
        cursor = range.end;
        let i = *groups
            .entry((source, *handle, *context))
            .or_insert_with(|| {
                replacements.push(Replacement {
                    source: source.clone(),
                    handle: (*handle).clone(),
                    offsets: Vec::new(),
                    context: (*context).clone(),
                });
                replacements.len() - 1
            });
        replacements[i].offsets.push(offset);
    }
    out.extend_from_slice(&input[cursor..]);
    (out, replacements)
}

/// Warns, once per rule, where the recorded context cannot give back the original bytes.
fn check_exact(
    path: &str,
    input: &[u8],
    rules: &[Rule],
    declared: &[Declared],
    warnings: &mut Vec<RedactWarning>,
) {
    for d in declared {
        let exact = d.site.context.encode(d.site.value.expose()).is_ok_and(|s| {
            s.before == 0 && s.after == 0 && *s.bytes == input[d.site.range.clone()]
        });
        let warning = RedactWarning {
            path: path.into(),
            locator: rules[d.rule].locator.clone(),
            kind: WarningKind::Inexact,
        };
        if !exact && !warnings.contains(&warning) {
            warnings.push(warning);
        }
    }
}

/// Proves the redacted file still parses, with each rule's placeholders where its locator
/// points. A stray-only file is checked when the input parsed.
fn check_redacted(
    path: &str,
    input: &[u8],
    result: &RedactedFile<'_>,
    rules: &[Rule],
    format: Format,
    had_strays: bool,
) -> Result<(), RedactError> {
    let structured: Vec<&Rule> = rules
        .iter()
        .filter(|r| Format::of_locator(&r.locator) == Some(format))
        .collect();
    if structured.is_empty() {
        let input_parses =
            std::str::from_utf8(input).is_ok_and(|t| format.redactor().locate(t, &[]).is_ok());
        if !had_strays || !input_parses {
            return Ok(());
        }
    }
    let broke = |line, column| RedactError::BrokeStructure {
        path: path.into(),
        format,
        line,
        column,
    };
    let text = std::str::from_utf8(&result.output).map_err(|_| broke(1, 1))?;
    let strs: Vec<&str> = structured
        .iter()
        .map(|r| locator_text(&r.locator))
        .collect();
    let found = format.redactor().locate(text, &strs).map_err(|e| match e {
        FormatError::Parse { line, column, .. } => broke(line, column),
        _ => broke(1, 1),
    })?;
    // Each site the locator now names must be exactly its handle's placeholder.
    for (rule, sites) in structured.iter().zip(found) {
        let placeholder = rule.handle.placeholder();
        if let Some(bad) = sites
            .iter()
            .find(|s| text.get(s.range.clone()) != Some(&placeholder))
        {
            let (line, column) = super::position(text, bad.range.start);
            return Err(broke(line, column));
        }
    }
    Ok(())
}

/// Checks, without the file, that every value `replacements` need can be written in its
/// context: what [`rehydrate_file`] would refuse (a missing value, a value its format cannot
/// carry exactly), found before any file is written. Errors name the file and the handle.
pub fn check_rehydratable(
    path: &str,
    replacements: &[Replacement],
    values: &HashMap<Handle, Secret>,
) -> Result<(), RedactError> {
    for r in replacements {
        let offset = r.offsets.first().copied().unwrap_or(0);
        encode_for(path, r, values, offset)?;
    }
    Ok(())
}

/// The splice that writes `r`'s value at its placeholder at `offset`.
fn encode_for(
    path: &str,
    r: &Replacement,
    values: &HashMap<Handle, Secret>,
    offset: usize,
) -> Result<super::Splice, RedactError> {
    let value = values
        .get(&r.handle)
        .ok_or_else(|| RedactError::MissingValue {
            path: path.into(),
            handle: Box::new(r.handle.clone()),
        })?;
    let bytes = match &r.context {
        Context::WholeFile(style) => {
            whole::decode(style, value.expose()).ok_or_else(|| RedactError::NotBase64 {
                path: path.into(),
                handle: Box::new(r.handle.clone()),
            })?
        }
        _ => Zeroizing::new(value.expose().to_vec()),
    };
    let unfit = |reason| RedactError::Unrepresentable {
        path: path.into(),
        handle: Box::new(r.handle.clone()),
        offset,
        reason,
    };
    let splice = r
        .context
        .encode(&bytes)
        .map_err(|Unfit(reason)| unfit(reason))?;
    if r.source == Source::Stray && (splice.before > 0 || splice.after > 0) {
        return Err(unfit(
            "a value found outside its locator cannot change its quoting",
        ));
    }
    Ok(splice)
}

/// Puts values back: every placeholder recorded in `replacements` gets its handle's value,
/// encoded for its context; the result is parsed again and must hold each value at its
/// locator. A placeholder the redaction did not write (text that was in the file already)
/// is left alone.
pub fn rehydrate_file(
    path: &str,
    redacted: &[u8],
    replacements: &[Replacement],
    values: &HashMap<Handle, Secret>,
) -> Result<Vec<u8>, RedactError> {
    let mut edits: Vec<(Range<usize>, Zeroizing<Vec<u8>>)> = Vec::new();
    for r in replacements {
        let placeholder = r.handle.placeholder();
        for &offset in &r.offsets {
            let end = offset + placeholder.len();
            let no_placeholder = || RedactError::NoPlaceholder {
                path: path.into(),
                handle: Box::new(r.handle.clone()),
                offset,
            };
            if redacted.get(offset..end) != Some(placeholder.as_bytes()) {
                return Err(no_placeholder());
            }
            let splice = encode_for(path, r, values, offset)?;
            let start = offset
                .checked_sub(splice.before)
                .ok_or_else(no_placeholder)?;
            let stop = end + splice.after;
            if stop > redacted.len() {
                return Err(no_placeholder());
            }
            edits.push((start..stop, splice.bytes));
        }
    }
    edits.sort_by_key(|e| e.0.start);
    let mut out = Vec::with_capacity(redacted.len());
    let mut cursor = 0;
    for (range, bytes) in &edits {
        if range.start < cursor {
            return Err(RedactError::Verify {
                path: path.into(),
                what: format!("two records claim byte {}", range.start),
            });
        }
        out.extend_from_slice(&redacted[cursor..range.start]);
        out.extend_from_slice(bytes);
        cursor = range.end;
    }
    out.extend_from_slice(&redacted[cursor..]);
    verify(path, redacted, &out, replacements, values)?;
    Ok(out)
}

/// Re-parses a rehydrated file: it must be valid, and each locator must hold its value.
fn verify(
    path: &str,
    redacted: &[u8],
    out: &[u8],
    replacements: &[Replacement],
    values: &HashMap<Handle, Secret>,
) -> Result<(), RedactError> {
    let mut rules: Vec<(&Locator, &Handle)> = Vec::new();
    for r in replacements {
        if let Source::Rule(locator) = &r.source
            && Format::of_locator(locator).is_some()
            && !rules.contains(&(locator, &r.handle))
        {
            rules.push((locator, &r.handle));
        }
    }
    let has_strays = replacements.iter().any(|r| r.source == Source::Stray);
    let format = match rules.first() {
        Some((locator, _)) => Format::of_locator(locator),
        None if has_strays => Format::of_path(path),
        None => None,
    };
    let Some(format) = format else {
        return Ok(());
    };
    let fail = |what: String| RedactError::Verify {
        path: path.into(),
        what,
    };
    if rules.is_empty() {
        let parses = |b: &[u8]| {
            std::str::from_utf8(b).is_ok_and(|t| format.redactor().locate(t, &[]).is_ok())
        };
        if parses(redacted) && !parses(out) {
            return Err(fail(format!("the file is no longer valid {format}")));
        }
        return Ok(());
    }
    let text = std::str::from_utf8(out).map_err(|_| fail("the file is not UTF-8".into()))?;
    let strs: Vec<&str> = rules.iter().map(|(l, _)| locator_text(l)).collect();
    let found = format.redactor().locate(text, &strs).map_err(|e| match e {
        FormatError::Parse { line, column, .. } => fail(format!(
            "the file is not valid {format} at line {line}, column {column}"
        )),
        _ => fail("a locator no longer names a string".into()),
    })?;
    for ((locator, handle), sites) in rules.iter().zip(found) {
        let want = values.get(*handle).map(|v| v.expose());
        if sites.is_empty() || sites.iter().any(|s| Some(s.value.expose()) != want) {
            return Err(fail(format!(
                "{locator} does not hold the value of {handle}"
            )));
        }
    }
    Ok(())
}

/// The decoded values at `locator` in one file: what `scan` and `secrets push` need without
/// redacting anything. One parser per format serves every command.
pub fn values_at(path: &str, input: &[u8], locator: &Locator) -> Result<Vec<Secret>, RedactError> {
    if let Locator::Sqlite(cells) = locator {
        return crate::sqlite::values_at(path, input, cells);
    }
    // Any handle will do: only the values are kept, the placeholders are thrown away.
    let handle = Handle::parse("agentbak:values#at").expect("a valid handle");
    let rule = Rule {
        locator: locator.clone(),
        handle,
    };
    let redacted = redact_file(path, input, std::slice::from_ref(&rule), &[])?;
    Ok(redacted.values.into_iter().map(|(_, v)| v).collect())
}
