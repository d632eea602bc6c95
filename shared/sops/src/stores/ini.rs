//! INI files, read the way sops 3.11 and 3.13 read them (through `gopkg.in/ini.v1`, loaded
//! with only `AllowNonUniqueSections`: stores/ini/store.go).
//!
//! Sections are top-level keys whose values are mappings; keys before the first header belong
//! to the section `DEFAULT`, which comes first in the tree even when empty (as in ini.v1's, so a
//! conversion to JSON or YAML prints `"DEFAULT": {}` as sops does; INI output leaves it out). Every value is a string: the text after the first `=` or `:`, cut
//! at the first `#` or `;` (an inline comment), trimmed, and stripped of one pair of surrounding
//! quotes (`"`, `'`, or a backtick / `"""` pair, which also protects `#` and `;` and may span
//! lines). Comment lines gather until the next key or header; the gathered text (each line
//! left-trimmed, joined by newlines, blank lines skipped, then the inline comment) is one
//! comment, stripped of its leading run of `;`/`#` and spaces (`; a\n; b` encrypts as
//! `a\n; b`). In the tree a key's comment comes right after the key and a section's comment
//! first in the section, as sops orders them. A duplicated key keeps its first place with its
//! last value and comment, as in sops (see [`DUP_LAYOUT`]). Metadata is the `[sops]` section,
//! flattened (see [`super::flat`]).
//!
//! The file is written back byte for byte: the encrypted form keeps every line where it was,
//! each comment line holding its markers and indentation before the ciphertext or a
//! placeholder (see [`PLACEHOLDER`]).
//!
//! Refused, as sops refuses them: lines that are neither a header, a comment nor `key = value`
//! (boolean keys, continuation lines of setup.cfg / tox.ini lists), empty key names. Refused
//! where sops accepts them: a trailing `\` continuation, quoted key names.
//!
//! One deliberate difference: comments after the last key of the file, which ini.v1 reads but
//! attaches to nothing (sops drops them), are kept and encrypted as one more comment; sops
//! reads them, in enseal's file, as a comment of `[sops]` and ignores them.

use super::flat;
use super::{Format, Layout, Parsed, Store, StoreError, WriteOptions};
use crate::format::tree::{Item, Node, Scalar, Tree};

pub struct IniStore;

const FORMAT: &str = "ini";
const DEFAULT_SECTION: &str = "DEFAULT";
const METADATA_SECTION: &str = "sops";

enum LineKind {
    Blank,
    /// A comment-only line of a comment entry: one of its slots, a placeholder of one in
    /// enseal's encrypted form, or the line enseal adds above a header (see [`SYNTHETIC`]).
    Comment {
        sec: usize,
    },
    Header {
        sec: usize,
    },
    Pair {
        sec: usize,
        entry: usize,
    },
    /// A further line of a value quoted over several lines (`"""` or backticks).
    ValueContinued {
        sec: usize,
        entry: usize,
    },
    /// A line of an earlier occurrence of a duplicate key (its key line, or a line of the
    /// comment before it), which sops' tree does not hold (see [`DUP_LAYOUT`]); `placeholder`
    /// is its form in enseal's encrypted file.
    Hidden {
        sec: usize,
        first: usize,
        index: usize,
        placeholder: String,
    },
    /// Part of the `[sops]` section (or the blank line sops puts before it): not data.
    Metadata,
}

/// Where a piece of a comment stands in the file.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Slot {
    /// A comment-only line.
    Line(usize),
    /// An inline comment: its line, the byte offset of its `;`/`#`, and whether the line is a
    /// section header.
    Inline {
        line: usize,
        at: usize,
        header: bool,
    },
}

/// In enseal's encrypted form, a comment spread over several slots (lines, inline parts) is one
/// value, as in sops' tree: the first slot holds the `ENC[...]`, every other slot this
/// placeholder after its own markers, so that each line keeps its place, indentation and
/// markers, and blank lines between them stay where they were. sops reads the slots as one
/// comment `ENC[...]\n; ENC[^]...`; its pattern for encrypted values
/// (`^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]`, aes/cipher.go) is anchored at the
/// start only and `.` stops at the newline, so it decrypts the first line and drops the rest.
const PLACEHOLDER: &str = "ENC[^]";
/// The placeholder of a section header's inline comment: ini.v1 reads a section name up to the
/// last `]` of the line (parser.go, `bytes.LastIndexByte(line, ']')`), so it has none.
const HEADER_PLACEHOLDER: &str = "ENC[^";
/// A header's inline comment that is the whole comment of its section cannot hold its
/// `ENC[...]` (that `]` would become part of the section name): the value goes on a line of its
/// own above the header, and the header keeps this mark where its comment was.
const SYNTHETIC: &str = "ENC[@";
const ENC_START: &str = "ENC[AES256_GCM,";

enum Entry {
    Pair {
        key: String,
        value: String,
        /// Byte range of the value as written (quotes included), within its first line.
        value_start: usize,
        value_end: usize,
        /// The line the value ends on (after its first line for a multi-line quoted value).
        end_line: usize,
        /// For a later occurrence of a key: the entry of its first occurrence.
        first: Option<usize>,
    },
    Comment {
        /// The comment as sops' tree holds it (see [`comment_text`]).
        text: String,
        slots: Vec<Slot>,
        /// The line enseal added above a header for its encrypted inline comment.
        synthetic: Option<usize>,
        /// The pair entry this comment belongs to (ini.v1's `key.Comment`), if any.
        key: Option<usize>,
    },
}

/// Duplicate keys in a section: ini.v1 (without `AllowShadows`, as sops loads it) keeps the
/// key at its first place with the value of its last occurrence, and sets `key.Comment` at
/// every occurrence, so the comment before the last one wins (section.go `NewKey`, parser.go
/// `key.Comment = ...`). sops' tree, and its MAC, hold only that. The earlier occurrences'
/// lines are carried, for a lossless round trip, in the layout of the surviving value
/// ([`Scalar::layout`]): this prefix, then the lines joined by newlines. The value cipher
/// encrypts it after the value's `ENC[...]` (`~token`, which sops' pattern ignores), and the
/// encrypted file keeps a placeholder at each of those lines.
const DUP_LAYOUT: &str = "ini-earlier-duplicates\n";

struct Section {
    name: String,
    entries: Vec<Entry>,
}

pub(crate) struct Source {
    /// The file started with a UTF-8 byte order mark (ini.v1 skips it; so does the parse), given
    /// back by the lossless write so that the file keeps it.
    bom: bool,
    lines: Vec<String>,
    trailing_newline: bool,
    kinds: Vec<LineKind>,
    sections: Vec<Section>,
    /// The text between key and value in the file's first pair (` = `, `=`...), for new keys.
    delimiter: String,
}

fn syntax(line: usize, message: impl Into<String>) -> StoreError {
    StoreError::Syntax {
        format: FORMAT,
        line: Some(line),
        column: None,
        message: message.into(),
    }
}

fn unrepresentable(message: impl Into<String>) -> StoreError {
    StoreError::Unrepresentable {
        format: FORMAT,
        message: message.into(),
    }
}

/// A value as ini.v1 reads it from the text after the delimiter.
#[derive(Debug, PartialEq)]
struct ValueRead {
    value: String,
    /// Byte range of the written value (quotes included) within the input.
    start: usize,
    end: usize,
    /// Byte offset of an inline comment's marker.
    inline: Option<usize>,
}

fn read_value(s: &str) -> Result<ValueRead, &'static str> {
    let start = s.len() - s.trim_start().len();
    let line = &s[start..];
    if line.is_empty() {
        return Ok(ValueRead {
            value: String::new(),
            start,
            end: start,
            inline: None,
        });
    }
    let quote = if line.len() > 3 && line.starts_with("\"\"\"") {
        Some("\"\"\"")
    } else if line.starts_with('`') {
        Some("`")
    } else {
        None
    };
    if let Some(q) = quote {
        let body = &line[q.len()..];
        let Some(pos) = body.rfind(q) else {
            return Err("values spanning several lines are not supported");
        };
        return Ok(ValueRead {
            value: body[..pos].to_string(),
            start,
            end: start + q.len() + pos + q.len(),
            inline: None,
        });
    }
    let trimmed = line.trim_end();
    if trimmed.ends_with('\\') {
        return Err("values continued with a trailing '\\' are not supported");
    }
    let (text, inline) = match trimmed.find(['#', ';']) {
        Some(i) => (trimmed[..i].trim_end(), Some(start + i)),
        None => (trimmed, None),
    };
    let surrounded = |q: char| {
        text.len() >= 2
            && text.starts_with(q)
            && text.ends_with(q)
            && text[1..].find(q) == Some(text.len() - 2)
    };
    let value = if surrounded('\'') || surrounded('"') {
        &text[1..text.len() - 1]
    } else {
        text
    };
    Ok(ValueRead {
        value: value.to_string(),
        start,
        end: start + text.len(),
        inline,
    })
}

/// sops' `stripCommentChar` (stores/ini/store.go): `TrimLeft` of `"; "` or `"# "` after the
/// first marker, on the comment ini.v1 gathered (already `TrimSpace`d).
fn strip_comment(raw: &str) -> String {
    raw[comment_run(raw)..].to_string()
}

/// Length of the leading run `stripCommentChar` removes from `text` (which starts at its
/// marker): `;` and spaces, or `#` and spaces. A tab ends the run (`TrimLeft` cutset is `"; "`).
fn comment_run(text: &str) -> usize {
    let cut: &[char] = if text.starts_with(';') {
        &[';', ' ']
    } else if text.starts_with('#') {
        &['#', ' ']
    } else {
        return 0;
    };
    text.len() - text.trim_start_matches(cut).len()
}

fn slot_text(lines: &[String], slot: Slot) -> &str {
    match slot {
        Slot::Line(n) => lines[n].trim_start(),
        Slot::Inline { line, at, .. } => &lines[line][at..],
    }
}

fn slot_line(slot: Slot) -> usize {
    match slot {
        Slot::Line(n) | Slot::Inline { line: n, .. } => n,
    }
}

/// The text of a slot after its markers, without trailing whitespace.
fn slot_body(lines: &[String], slot: Slot) -> &str {
    let t = slot_text(lines, slot);
    t[comment_run(t)..].trim_end()
}

/// The comment ini.v1 and sops make of these slots: each comment line left-trimmed with its
/// newline, then the inline part (parser.go: `p.comment.Write(line)`, `p.comment.WriteString(
/// line[i:])`), the whole `TrimSpace`d (`key.Comment = strings.TrimSpace(...)`) and stripped of
/// its leading markers. Blank lines between them are skipped by the parser, so not in it.
fn comment_text(lines: &[String], slots: &[Slot]) -> String {
    let mut raw = String::new();
    for slot in slots {
        raw.push_str(slot_text(lines, *slot));
        if matches!(slot, Slot::Line(_)) {
            raw.push('\n');
        }
    }
    strip_comment(raw.trim())
}

fn is_sealed(text: &str) -> bool {
    text.starts_with(ENC_START) && !text.contains('\n')
}

#[derive(Default)]
struct Pending {
    slots: Vec<Slot>,
}

impl Pending {
    /// The comment made of the pending lines and `inline`, if any.
    fn take(&mut self, lines: &[String], inline: Option<Slot>) -> Option<(Entry, Vec<usize>)> {
        let mut slots = std::mem::take(&mut self.slots);
        let mut synthetic = None;
        if let Some(i @ Slot::Inline { header, .. }) = inline {
            if header
                && slot_body(lines, i) == SYNTHETIC
                && slots.len() == 1
                && is_sealed(slot_body(lines, slots[0]))
            {
                // enseal's encrypted form of a header's own inline comment (see SYNTHETIC).
                let Slot::Line(l) = slots[0] else {
                    unreachable!()
                };
                synthetic = Some(l);
                let text = slot_body(lines, slots[0]).to_string();
                return Some((
                    Entry::Comment {
                        text,
                        slots: vec![i],
                        synthetic,
                        key: None,
                    },
                    vec![l],
                ));
            }
            slots.push(i);
        }
        if slots.is_empty() {
            return None;
        }
        let line_slots: Vec<usize> = slots
            .iter()
            .filter_map(|s| match s {
                Slot::Line(n) => Some(*n),
                Slot::Inline { .. } => None,
            })
            .collect();
        let first = slot_body(lines, slots[0]);
        let sealed = slots.len() > 1
            && is_sealed(first)
            && slots[1..].iter().all(|s| {
                let want = match s {
                    Slot::Inline { header: true, .. } => HEADER_PLACEHOLDER,
                    _ => PLACEHOLDER,
                };
                slot_body(lines, *s) == want
            });
        let text = if sealed {
            first.to_string()
        } else {
            comment_text(lines, &slots)
        };
        Some((
            Entry::Comment {
                text,
                slots,
                synthetic,
                key: None,
            },
            line_slots,
        ))
    }
}

/// A value quoted with `"""` or a backtick and not closed on its line goes on to the line
/// holding the last such quote (parser.go `readMultilines`): its text, with the newlines, and
/// the index of that line. Nothing but spaces may follow the closing quote here.
fn read_multiline(
    lines: &[String],
    n: usize,
    after: &str,
) -> Result<Option<(String, usize)>, StoreError> {
    let line = after.trim_start();
    let quote = if line.len() > 3 && line.starts_with("\"\"\"") {
        "\"\"\""
    } else if line.starts_with('`') {
        "`"
    } else {
        return Ok(None);
    };
    let mut value = line[quote.len()..].to_string();
    for (m, next) in lines.iter().enumerate().skip(n + 1) {
        value.push('\n');
        if let Some(pos) = next.rfind(quote) {
            if !next[pos + quote.len()..].trim().is_empty() {
                return Err(syntax(
                    m + 1,
                    "text after the closing quote of a multi-line value is not supported",
                ));
            }
            value.push_str(&next[..pos]);
            return Ok(Some((value, m)));
        }
        value.push_str(next);
    }
    Err(syntax(n + 1, "the quoted value is never closed"))
}

/// The occurrences of each duplicated key of `section`: first entry -> all its pair entries.
fn duplicates(section: &Section) -> Vec<(usize, Vec<usize>)> {
    let mut out: Vec<(usize, Vec<usize>)> = Vec::new();
    for (e, entry) in section.entries.iter().enumerate() {
        if let Entry::Pair { first: Some(f), .. } = entry {
            match out.iter_mut().find(|(g, _)| g == f) {
                Some((_, occ)) => occ.push(e),
                None => out.push((*f, vec![*f, e])),
            }
        }
    }
    out
}

/// The entry whose value the pair of entry `f` has in sops' tree: its last occurrence.
fn last_occurrence(section: &Section, f: usize) -> usize {
    (f..section.entries.len())
        .rev()
        .find(|e| matches!(section.entries[*e], Entry::Pair { first: Some(g), .. } if g == f))
        .unwrap_or(f)
}

/// The entries of `section` in the order of sops' tree: a key at its first place (standing
/// for its last occurrence) followed by the comment of that last occurrence; the comments of
/// earlier occurrences are not in it.
fn tree_order(section: &Section) -> Vec<usize> {
    let mut out = Vec::new();
    for (e, entry) in section.entries.iter().enumerate() {
        match entry {
            Entry::Pair { first: None, .. } => {
                out.push(e);
                let last = last_occurrence(section, e);
                if let Some(c) = section
                    .entries
                    .iter()
                    .position(|c| matches!(c, Entry::Comment { key: Some(k), .. } if *k == last))
                {
                    out.push(c);
                }
            }
            Entry::Pair { .. } | Entry::Comment { key: Some(_), .. } => {}
            Entry::Comment { key: None, .. } => out.push(e),
        }
    }
    out
}

/// Marks the lines of the earlier occurrences of duplicate keys (see [`DUP_LAYOUT`]).
fn mark_hidden(lines: &[String], sections: &[Section], kinds: &mut [LineKind]) {
    for (sec, section) in sections.iter().enumerate() {
        for (f, occurrences) in duplicates(section) {
            let earlier = &occurrences[..occurrences.len() - 1];
            let mut hidden: Vec<(usize, String)> = Vec::new();
            for &o in earlier {
                if let Some(Entry::Comment { slots, .. }) = section
                    .entries
                    .iter()
                    .find(|c| matches!(c, Entry::Comment { key: Some(k), .. } if *k == o))
                {
                    for slot in slots {
                        if let Slot::Line(n) = *slot {
                            let t = slot_text(lines, *slot);
                            let indent = &lines[n][..lines[n].len() - t.len()];
                            hidden.push((
                                n,
                                format!("{indent}{}{PLACEHOLDER}", &t[..comment_run(t)]),
                            ));
                        }
                    }
                }
                if let Entry::Pair { value_start, .. } = &section.entries[o] {
                    let n = (0..kinds.len())
                        .find(|n| matches!(kinds[*n], LineKind::Pair { sec: s, entry } if s == sec && entry == o))
                        .expect("a pair has its line");
                    hidden.push((n, format!("{}{PLACEHOLDER}", &lines[n][..*value_start])));
                }
            }
            hidden.sort();
            for (index, (n, placeholder)) in hidden.into_iter().enumerate() {
                kinds[n] = LineKind::Hidden {
                    sec,
                    first: f,
                    index,
                    placeholder,
                };
            }
        }
    }
}

/// The layout a duplicated key's value carries: the original text of its hidden lines, unless
/// they are enseal's placeholders already (the file is encrypted; the layout comes with the
/// value when it is decrypted).
fn hidden_layout(src: &Source, sec: usize, first: usize) -> Option<String> {
    let mut lines = Vec::new();
    for (n, kind) in src.kinds.iter().enumerate() {
        if let LineKind::Hidden {
            sec: s,
            first: f,
            placeholder,
            ..
        } = kind
        {
            if *s == sec && *f == first {
                if src.lines[n] == *placeholder {
                    return None;
                }
                lines.push(src.lines[n].as_str());
            }
        }
    }
    (!lines.is_empty()).then(|| format!("{DUP_LAYOUT}{}", lines.join("\n")))
}

fn parse_source(text: &str) -> Result<Source, StoreError> {
    let (text, bom) = match text.strip_prefix('\u{feff}') {
        Some(rest) => (rest, true),
        None => (text, false),
    };
    let (body, trailing_newline) = match text.strip_suffix('\n') {
        Some(b) => (b, true),
        None => (text, false),
    };
    let lines: Vec<String> = if body.is_empty() && !trailing_newline {
        Vec::new()
    } else {
        body.split('\n').map(str::to_string).collect()
    };
    let mut kinds: Vec<LineKind> = Vec::with_capacity(lines.len());
    let mut sections = vec![Section {
        name: DEFAULT_SECTION.to_string(),
        entries: Vec::new(),
    }];
    let mut pending = Pending::default();
    let mut delimiter = None;
    let mut n = 0;
    while n < lines.len() {
        let raw_line = &lines[n];
        let indent = raw_line.len() - raw_line.trim_start().len();
        let line = &raw_line[indent..];
        let sec = sections.len() - 1;
        if line.is_empty() {
            kinds.push(LineKind::Blank);
        } else if line.starts_with(['#', ';']) {
            pending.slots.push(Slot::Line(n));
            kinds.push(LineKind::Comment { sec });
        } else if line.starts_with('[') {
            // ini.v1 reads the name up to the last `]` of the line: `[*.[ch]]` is `*.[ch]`.
            let close = line
                .rfind(']')
                .ok_or_else(|| syntax(n + 1, "unclosed section header"))?;
            let rest = &line[close + 1..];
            let inline = rest.find(['#', ';']).map(|i| Slot::Inline {
                line: n,
                at: indent + close + 1 + i,
                header: true,
            });
            let mut section = Section {
                name: line[1..close].to_string(),
                entries: Vec::new(),
            };
            let (target, taken) = if section.name == METADATA_SECTION {
                // Comments before `[sops]` are the data's last comments (which sops would drop),
                // not metadata: keep them with the section before.
                let prev = &mut sections[sec];
                let taken = pending.take(&lines, None).map(|(e, ls)| {
                    prev.entries.push(e);
                    ls
                });
                (sec, taken)
            } else {
                let taken = pending.take(&lines, inline).map(|(e, ls)| {
                    section.entries.push(e);
                    ls
                });
                (sections.len(), taken)
            };
            if let Some(comment_lines) = taken {
                for l in comment_lines {
                    kinds[l] = LineKind::Comment { sec: target };
                }
            }
            let sec = sections.len();
            sections.push(section);
            kinds.push(LineKind::Header { sec });
        } else {
            if line.starts_with(['"', '`']) {
                return Err(syntax(n + 1, "quoted key names are not supported"));
            }
            let delim = line.find(['=', ':']).ok_or_else(|| {
                // sops loads INI with only AllowNonUniqueSections (stores/ini/store.go), so
                // ini.v1 refuses such a line too ("key-value delimiter not found").
                syntax(
                    n + 1,
                    "line is neither a section, a comment nor key = value (sops refuses it too)",
                )
            })?;
            let key = line[..delim].trim();
            if key.is_empty() {
                return Err(syntax(n + 1, "empty key name (sops refuses it too)"));
            }
            let after = &line[delim + 1..];
            let base = indent + delim + 1;
            let (value, value_start, value_end, end_line, inline) = match read_value(after) {
                Ok(read) => {
                    let inline = read.inline.map(|i| Slot::Inline {
                        line: n,
                        at: base + i,
                        header: false,
                    });
                    (read.value, base + read.start, base + read.end, n, inline)
                }
                Err(m) => match read_multiline(&lines, n, after)? {
                    Some((value, end)) => {
                        let start = base + (after.len() - after.trim_start().len());
                        (value, start, raw_line.trim_end().len(), end, None)
                    }
                    None => return Err(syntax(n + 1, m)),
                },
            };
            if delimiter.is_none() {
                let key_end = indent + line[..delim].trim_end().len();
                delimiter = Some(raw_line[key_end..value_start].to_string());
            }
            let section = &mut sections[sec];
            let first = section
                .entries
                .iter()
                .position(|e| matches!(e, Entry::Pair { key: k, first: None, .. } if k == key));
            if first.is_some() && end_line > n {
                return Err(syntax(
                    n + 1,
                    format!("duplicate key {key:?} with a value over several lines"),
                ));
            }
            section.entries.push(Entry::Pair {
                key: key.to_string(),
                value,
                value_start,
                value_end,
                end_line,
                first,
            });
            let entry = section.entries.len() - 1;
            kinds.push(LineKind::Pair { sec, entry });
            for _ in n + 1..=end_line {
                kinds.push(LineKind::ValueContinued { sec, entry });
            }
            if let Some((mut e, comment_lines)) = pending.take(&lines, inline) {
                if let Entry::Comment { key, .. } = &mut e {
                    *key = Some(entry);
                }
                section.entries.push(e);
                for l in comment_lines {
                    kinds[l] = LineKind::Comment { sec };
                }
            }
            n = end_line;
        }
        n += 1;
    }
    // sops drops comments after the last key; they stay in the tree here so that they are
    // encrypted with the rest rather than left in the clear.
    if let Some((e, comment_lines)) = pending.take(&lines, None) {
        let sec = sections.len() - 1;
        sections[sec].entries.push(e);
        for l in comment_lines {
            kinds[l] = LineKind::Comment { sec };
        }
    }
    mark_hidden(&lines, &sections, &mut kinds);
    // The metadata section, and the blank line sops writes before it, are not data.
    if let Some(meta) = sections.iter().position(|s| s.name == METADATA_SECTION) {
        let mut in_meta = false;
        for n in 0..kinds.len() {
            if let LineKind::Header { sec } = kinds[n] {
                in_meta = sec == meta;
                if in_meta && n > 0 && matches!(kinds[n - 1], LineKind::Blank) {
                    kinds[n - 1] = LineKind::Metadata;
                }
            }
            if in_meta {
                kinds[n] = LineKind::Metadata;
            }
        }
    }
    Ok(Source {
        bom,
        lines,
        trailing_newline,
        kinds,
        sections,
        delimiter: delimiter.unwrap_or_else(|| " = ".to_string()),
    })
}

impl Store for IniStore {
    fn format(&self) -> Format {
        Format::Ini
    }

    fn parse(&self, bytes: &[u8]) -> Result<Parsed, StoreError> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            syntax(line, "not valid UTF-8")
        })?;
        let source = parse_source(text)?;
        let mut items = Vec::new();
        let mut metadata = None;
        for (n, section) in source.sections.iter().enumerate() {
            if section.name == METADATA_SECTION && metadata.is_none() {
                let pairs = section
                    .entries
                    .iter()
                    .filter_map(|e| match e {
                        Entry::Pair { key, value, .. } => {
                            Some((key.clone(), value.replace("\\n", "\n")))
                        }
                        Entry::Comment { .. } => None,
                    })
                    .collect();
                metadata = Some(flat::unflatten(pairs).map_err(|e| StoreError::Syntax {
                    format: FORMAT,
                    line: None,
                    column: None,
                    message: format!("sops metadata: {e}"),
                })?);
                continue;
            }
            let entries = tree_order(section)
                .into_iter()
                .map(|e| match &section.entries[e] {
                    Entry::Pair { key, .. } => {
                        let Entry::Pair { value, .. } =
                            &section.entries[last_occurrence(section, e)]
                        else {
                            unreachable!("occurrences are pairs")
                        };
                        let mut scalar = Scalar::str(value.clone());
                        scalar.layout = hidden_layout(&source, n, e);
                        Item::Pair(key.clone(), Node::Scalar(scalar))
                    }
                    Entry::Comment { text, .. } => Item::Comment(text.clone()),
                })
                .collect();
            items.push(Item::Pair(section.name.clone(), Node::Map(entries)));
        }
        Ok(Parsed {
            tree: Tree {
                documents: vec![Node::Map(items)],
            },
            metadata,
            source: Layout::ini(source),
        })
    }

    fn write(
        &self,
        tree: &Tree,
        metadata: Option<&Node>,
        original: Option<&Parsed>,
        _options: &WriteOptions,
    ) -> Result<Vec<u8>, StoreError> {
        let source = Layout::of_ini(original)?;
        let sections = sections_of(tree)?;
        let text = match source {
            Some(src) if src.bom => format!("\u{feff}{}", lossless(src, &sections, metadata)?),
            Some(src) => lossless(src, &sections, metadata)?,
            None => canonical(&sections, metadata)?,
        };
        Ok(text.into_bytes())
    }
}

/// A section of the tree: its name and its items (pairs with scalar values, comments).
type SectionRef<'a> = (&'a str, &'a [Item]);

fn sections_of(tree: &Tree) -> Result<Vec<SectionRef<'_>>, StoreError> {
    let items: &[Item] = match tree.documents.as_slice() {
        [] => &[],
        [Node::Map(items)] => items,
        [_] => return Err(unrepresentable("the document is not a mapping")),
        _ => return Err(unrepresentable("an INI file holds exactly one document")),
    };
    let mut out = Vec::new();
    for item in items {
        let Item::Pair(name, node) = item else {
            continue;
        };
        let Node::Map(entries) = node else {
            return Err(unrepresentable(format!(
                "top-level key {name:?} is not a section (a mapping)"
            )));
        };
        for entry in entries {
            if let Item::Pair(key, value) = entry {
                if !matches!(value, Node::Scalar(_)) {
                    return Err(unrepresentable(format!(
                        "{name}.{key} is nested deeper than section.key"
                    )));
                }
                // `php_admin_value[error_log]` is a key for ini.v1: only a line *starting* with
                // `[` is a header.
                if key.is_empty() || key.contains('\n') || key.starts_with(['#', ';', '[']) {
                    return Err(unrepresentable(format!(
                        "{name}.{key:?} cannot be written as an INI key"
                    )));
                }
            }
        }
        // ini.v1 reads a header's name up to the line's last `]` (`[*.[ch]]` is `*.[ch]`).
        if name.contains('\n') {
            return Err(unrepresentable(format!("section name {name:?}")));
        }
        out.push((name.as_str(), entries.as_slice()));
    }
    Ok(out)
}

fn value_text(node: &Node) -> String {
    match node {
        Node::Scalar(s) => crate::format::scalar_text::flat_text(s),
        _ => String::new(),
    }
}

/// ini.v1's quoting of a value on write.
fn quote_like_ini(val: &str) -> String {
    if val.contains(['\n', '`']) {
        format!("\"\"\"{val}\"\"\"")
    } else if val.contains(['#', ';']) {
        format!("`{val}`")
    } else if val.trim() != val {
        format!("\"{val}\"")
    } else {
        val.to_string()
    }
}

fn quote_key_like_ini(key: &str) -> String {
    if key.contains(['"', '=', ':']) {
        format!("`{key}`")
    } else if key.contains('`') {
        format!("\"\"\"{key}\"\"\"")
    } else {
        key.to_string()
    }
}

fn comment_lines(text: &str, out: &mut Vec<String>) {
    for line in text.split('\n') {
        let line = line.trim();
        match line.chars().next() {
            Some(c @ ('#' | ';')) => out.push(format!("{c} {}", line[1..].trim())),
            _ => out.push(format!("; {line}")),
        }
    }
}

/// Aligned `key = value` lines, as ini.v1 pretty-prints a section.
fn aligned(pairs: &[(String, String, Option<String>)], out: &mut Vec<String>) {
    let keys: Vec<String> = pairs
        .iter()
        .map(|(k, _, _)| quote_key_like_ini(k))
        .collect();
    let width = keys.iter().map(|k| k.len()).max().unwrap_or(0);
    for (key, (_, value, comment)) in keys.iter().zip(pairs) {
        if let Some(c) = comment {
            comment_lines(c, out);
        }
        out.push(format!("{key:width$} = {}", quote_like_ini(value)));
    }
}

fn metadata_pairs(md: &Node) -> Vec<(String, String, Option<String>)> {
    flat::flatten(md)
        .into_iter()
        .map(|(k, v)| (k, v.replace('\n', "\\n"), None))
        .collect()
}

/// sops' layout: sections separated by a blank line, `=` aligned, comments above their key.
fn canonical(sections: &[SectionRef<'_>], metadata: Option<&Node>) -> Result<String, StoreError> {
    let mut blocks: Vec<Vec<String>> = Vec::new();
    let total = sections.len() + usize::from(metadata.is_some());
    for (i, (name, items)) in sections.iter().enumerate() {
        let mut lines = Vec::new();
        let mut rest = *items;
        if let [Item::Comment(c), tail @ ..] = rest {
            comment_lines(c, &mut lines);
            rest = tail;
        }
        let mut pairs: Vec<(String, String, Option<String>)> = Vec::new();
        for item in rest {
            match item {
                Item::Pair(k, v) => pairs.push((k.clone(), value_text(v), None)),
                Item::Comment(c) => {
                    // Like sops, a comment belongs to the key before it and is written above it.
                    if let Some(last) = pairs.last_mut() {
                        last.2 = Some(match last.2.take() {
                            Some(prev) => format!("{prev}\n{c}"),
                            None => c.clone(),
                        });
                    }
                }
            }
        }
        if i > 0 || !name.eq_ignore_ascii_case(DEFAULT_SECTION) {
            lines.push(format!("[{name}]"));
        } else if pairs.is_empty() {
            continue;
        }
        aligned(&pairs, &mut lines);
        if i + 1 < total {
            lines.push(String::new());
        }
        blocks.push(lines);
    }
    if let Some(md) = metadata {
        let mut lines = vec![format!("[{METADATA_SECTION}]")];
        aligned(&metadata_pairs(md), &mut lines);
        blocks.push(lines);
    }
    let mut out = String::new();
    for line in blocks.concat() {
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

/// Renders a changed value, keeping the original quoting when it still reads back the same.
fn render_changed_value(original_raw: &str, value: &str, path: &str) -> Result<String, StoreError> {
    let mut candidates = Vec::new();
    for q in ["\"\"\"", "`", "\"", "'"] {
        // A multi-line original is passed as its first line and a newline.
        let closed = original_raw.len() >= 2 * q.len() && original_raw.ends_with(q);
        if original_raw.starts_with(q) && (closed || original_raw.ends_with('\n')) {
            candidates.push(format!("{q}{value}{q}"));
            break;
        }
    }
    candidates.push(value.to_string());
    candidates.push(quote_like_ini(value));
    candidates
        .into_iter()
        .find(|c| reads_back(c, value))
        .ok_or_else(|| unrepresentable(format!("the value of {path} cannot be written back")))
}

/// Whether ini.v1 reads the written value `c` (one line, or several in `"""`/backticks) as
/// `value`, with nothing left over.
fn reads_back(c: &str, value: &str) -> bool {
    if !c.contains('\n') {
        return read_value(c)
            .is_ok_and(|r| r.value == value && r.inline.is_none() && r.end == c.len());
    }
    let lines: Vec<String> = c.split('\n').map(str::to_string).collect();
    read_value(&lines[0]).is_err()
        && matches!(read_multiline(&lines, 0, &lines[0]),
            Ok(Some((v, end))) if v == value && end == lines.len() - 1 && lines[end].ends_with(['"', '`']))
}

/// What a comment entry writes: whole comment lines (by line index, `None` to drop), inline
/// parts (the text from the marker on, `None` to drop), and lines to add before a line.
#[derive(Default)]
struct CommentPlan {
    lines: std::collections::HashMap<usize, Option<String>>,
    inline: std::collections::HashMap<usize, Option<String>>,
    before: std::collections::HashMap<usize, Vec<String>>,
}

fn trailing_ws(line: &str) -> &str {
    &line[line.trim_end().len()..]
}

/// Plans the slots of comment `slots` (text `old`) for the new text `new` (`None`: removed).
fn plan_comment(
    lines: &[String],
    slots: &[Slot],
    synthetic: Option<usize>,
    old: &str,
    new: Option<&str>,
    plan: &mut CommentPlan,
) {
    fn put_in(plan: &mut CommentPlan, slot: Slot, text: Option<String>) {
        match slot {
            Slot::Line(n) => plan.lines.insert(n, text),
            Slot::Inline { line, .. } => plan.inline.insert(line, text),
        };
    }
    let Some(new) = new else {
        for s in slots {
            put_in(plan, *s, None);
        }
        if let Some(l) = synthetic {
            plan.lines.insert(l, None);
        }
        return;
    };
    if new == old {
        for s in slots {
            let kept = match *s {
                Slot::Line(n) => lines[n].clone(),
                Slot::Inline { line, at, .. } => lines[line][at..].to_string(),
            };
            put_in(plan, *s, Some(kept));
        }
        if let Some(l) = synthetic {
            plan.lines.insert(l, Some(lines[l].clone()));
        }
        return;
    }
    if let Some(l) = synthetic {
        plan.lines.insert(l, None);
    }
    // A slot's text: its indentation (comment lines), then `body`, then its line's trailing
    // whitespace when `trail` (the last slot's, which ini.v1's TrimSpace kept out of the text).
    let slot_out = |slot: Slot, body: &str, trail: bool| -> String {
        let n = slot_line(slot);
        let mut out = match slot {
            Slot::Line(n) => lines[n][..lines[n].len() - lines[n].trim_start().len()].to_string(),
            Slot::Inline { .. } => String::new(),
        };
        out.push_str(body);
        if trail {
            out.push_str(trailing_ws(&lines[n]));
        }
        out
    };
    let run = |slot: Slot| {
        let t = slot_text(lines, slot);
        &t[..comment_run(t)]
    };
    let last = slots.len() - 1;
    let parts: Vec<&str> = new.split('\n').collect();
    if is_sealed(new) {
        if let [h @ Slot::Inline {
            header: true, line, ..
        }] = slots
        {
            // See SYNTHETIC: the value above the header, the mark in its place.
            let header = &lines[*line];
            let indent = &header[..header.len() - header.trim_start().len()];
            plan.before
                .entry(*line)
                .or_default()
                .push(format!("{indent}{}{new}", run(*h)));
            put_in(
                plan,
                *h,
                Some(slot_out(*h, &format!("{}{SYNTHETIC}", run(*h)), true)),
            );
            return;
        }
        if slots.len() > 1 {
            for (i, s) in slots.iter().enumerate() {
                let body = if i == 0 {
                    format!("{}{new}", run(*s))
                } else {
                    let mark = match s {
                        Slot::Inline { header: true, .. } => HEADER_PLACEHOLDER,
                        _ => PLACEHOLDER,
                    };
                    format!("{}{mark}", run(*s))
                };
                put_in(plan, *s, Some(slot_out(*s, &body, true)));
            }
            return;
        }
    }
    if parts.len() == slots.len() {
        // One part per slot: the first keeps the markers sops stripped, the others hold theirs.
        for (i, (s, part)) in slots.iter().zip(&parts).enumerate() {
            let body = if i == 0 {
                format!("{}{part}", run(*s))
            } else {
                part.to_string()
            };
            put_in(plan, *s, Some(slot_out(*s, &body, i == last)));
        }
        return;
    }
    // An edited comment with another number of lines: all of it in the first slot.
    for (i, s) in slots.iter().enumerate() {
        let text = (i == 0).then(|| slot_out(*s, &format!("{}{new}", run(*s)), i == last));
        put_in(plan, *s, text);
    }
}

fn lossless(
    src: &Source,
    sections: &[SectionRef<'_>],
    metadata: Option<&Node>,
) -> Result<String, StoreError> {
    // Match sections by name (in order), then their entries: pairs by key, comments by rank.
    let mut sec_used = vec![false; sections.len()];
    let mut sec_match: Vec<Option<usize>> = vec![None; src.sections.len()];
    for (s, section) in src.sections.iter().enumerate() {
        if section.name == METADATA_SECTION && s > 0 {
            continue;
        }
        if let Some(n) =
            (0..sections.len()).find(|n| !sec_used[*n] && sections[*n].0 == section.name)
        {
            sec_used[n] = true;
            sec_match[s] = Some(n);
        }
    }
    let mut entry_match: Vec<Vec<Option<&Item>>> = Vec::new();
    let mut added: Vec<Vec<&Item>> = vec![Vec::new(); src.sections.len()];
    for (s, section) in src.sections.iter().enumerate() {
        let mut matches = vec![None; section.entries.len()];
        if let Some(n) = sec_match[s] {
            let items = sections[n].1;
            let mut claimed = vec![false; items.len()];
            let comments: Vec<usize> = (0..items.len())
                .filter(|i| matches!(items[*i], Item::Comment(_)))
                .collect();
            let mut rank = 0;
            for e in tree_order(section) {
                let found = match &section.entries[e] {
                    Entry::Pair { key, .. } => (0..items.len()).find(|i| {
                        !claimed[*i] && matches!(&items[*i], Item::Pair(k, _) if k == key)
                    }),
                    Entry::Comment { .. } => {
                        rank += 1;
                        comments.get(rank - 1).copied()
                    }
                };
                if let Some(i) = found {
                    claimed[i] = true;
                    matches[e] = Some(&items[i]);
                }
            }
            // Every occurrence of a duplicated key writes the tree's value (the last one holds
            // it; the earlier ones are hidden lines).
            for (e, entry) in section.entries.iter().enumerate() {
                if let Entry::Pair { first: Some(f), .. } = entry {
                    matches[e] = matches[*f];
                }
            }
            added[s] = (0..items.len())
                .filter(|i| !claimed[*i])
                .map(|i| &items[i])
                .collect();
        }
        entry_match.push(matches);
    }

    let mut plan = CommentPlan::default();
    for (s, section) in src.sections.iter().enumerate() {
        for e in tree_order(section) {
            if let Entry::Comment {
                text,
                slots,
                synthetic,
                ..
            } = &section.entries[e]
            {
                let new = match entry_match[s][e] {
                    Some(Item::Comment(new)) if sec_match[s].is_some() => Some(new.as_str()),
                    _ => None,
                };
                plan_comment(&src.lines, slots, *synthetic, text, new, &mut plan);
            }
        }
    }

    let mut out: Vec<String> = Vec::new();
    let mut insert_at: Vec<Option<usize>> = vec![None; src.sections.len()];
    for (n, kind) in src.kinds.iter().enumerate() {
        let line = &src.lines[n];
        if let Some(before) = plan.before.get(&n) {
            out.extend(before.iter().cloned());
        }
        match *kind {
            LineKind::Blank => out.push(line.clone()),
            LineKind::Metadata => {}
            LineKind::Comment { sec, .. } => {
                if let Some(Some(text)) = plan.lines.get(&n) {
                    out.push(text.clone());
                    insert_at[sec] = Some(out.len());
                }
            }
            LineKind::Hidden {
                sec,
                first,
                index,
                ref placeholder,
            } => {
                let Some(Item::Pair(key, Node::Scalar(scalar))) = entry_match[sec][first] else {
                    continue;
                };
                let count = src
                    .kinds
                    .iter()
                    .filter(|k| matches!(k, LineKind::Hidden { sec: s, first: f, .. } if *s == sec && *f == first))
                    .count();
                let restored = scalar
                    .layout
                    .as_deref()
                    .and_then(|l| l.strip_prefix(DUP_LAYOUT))
                    .map(|l| l.split('\n').collect::<Vec<_>>())
                    .filter(|l| l.len() == count);
                let text = if let Some(lines) = restored {
                    // Plaintext: the lines as they were.
                    Some(lines[index].to_string())
                } else if metadata.is_some() {
                    // The encrypted form: placeholders when the layout went into the value's
                    // ciphertext (`ENC[...]~token`), else the lines would stay in the clear.
                    let sealed = String::from_utf8_lossy(&scalar.value);
                    if (sealed.starts_with(ENC_START) && sealed.contains("]~"))
                        || *line == *placeholder
                    {
                        Some(placeholder.clone())
                    } else {
                        return Err(unrepresentable(format!(
                            "{}.{key} occurs several times and its last value is empty or not \
                             encrypted: the earlier ones cannot be kept encrypted with it",
                            src.sections[sec].name
                        )));
                    }
                } else if *line == *placeholder {
                    // An encrypted file's placeholder without the layout to restore it.
                    None
                } else {
                    Some(line.clone())
                };
                if let Some(text) = text {
                    out.push(text);
                    insert_at[sec] = Some(out.len());
                }
            }
            LineKind::ValueContinued { sec, entry } => {
                // Written with the first line of the value unless the value is unchanged.
                let Entry::Pair { value, .. } = &src.sections[sec].entries[entry] else {
                    continue;
                };
                if matches!(entry_match[sec][entry], Some(Item::Pair(_, node)) if value_text(node) == *value)
                {
                    out.push(line.clone());
                    insert_at[sec] = Some(out.len());
                }
            }
            LineKind::Header { sec } | LineKind::Pair { sec, .. } => {
                if sec_match[sec].is_none() {
                    continue;
                }
                let (mut text, tail_from) = match *kind {
                    LineKind::Pair { entry, .. } => {
                        let Entry::Pair {
                            key,
                            value,
                            value_start,
                            value_end,
                            end_line,
                            ..
                        } = &src.sections[sec].entries[entry]
                        else {
                            continue;
                        };
                        let Some(Item::Pair(_, node)) = entry_match[sec][entry] else {
                            continue;
                        };
                        let new = value_text(node);
                        let mut text = line[..*value_start].to_string();
                        if new == *value {
                            text.push_str(&line[*value_start..*value_end]);
                        } else {
                            let path = format!("{}.{key}", src.sections[sec].name);
                            let original = if *end_line > n {
                                format!("{}\n", &line[*value_start..*value_end])
                            } else {
                                line[*value_start..*value_end].to_string()
                            };
                            text.push_str(&render_changed_value(&original, &new, &path)?);
                        }
                        (text, *value_end)
                    }
                    _ => {
                        // ini.v1 reads the name up to the line's last `]`; an inline comment
                        // starts after it.
                        let close = line.rfind(']').map_or(line.len(), |c| c + 1);
                        (line[..close].to_string(), close)
                    }
                };
                match plan.inline.get(&n) {
                    None => text.push_str(&line[tail_from..]),
                    Some(None) => {}
                    Some(Some(inline)) => {
                        text.push_str(&line[tail_from..inline_at(src, n)]);
                        text.push_str(inline);
                    }
                }
                out.push(text);
                insert_at[sec] = Some(out.len());
            }
        }
    }

    // New keys go after the last line of their section; new sections at the end.
    let mut insertions: Vec<(usize, Vec<String>)> = Vec::new();
    for (s, items) in added.iter().enumerate() {
        if items.is_empty() {
            continue;
        }
        let mut lines = Vec::new();
        for item in items {
            match item {
                Item::Pair(k, v) => {
                    let path = format!("{}.{k}", src.sections[s].name);
                    let value = render_changed_value("", &value_text(v), &path)?;
                    lines.push(format!("{k}{}{value}", src.delimiter));
                }
                Item::Comment(c) => lines.push(format!("; {c}")),
            }
        }
        let at = match insert_at[s] {
            Some(at) => at,
            None if s == 0 => 0,
            None => out.len(),
        };
        insertions.push((at, lines));
    }
    insertions.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    for (at, lines) in insertions {
        out.splice(at..at, lines);
    }
    for (n, (name, items)) in sections.iter().enumerate() {
        if sec_used[n] {
            continue;
        }
        if !out.is_empty() && !out.last().is_some_and(|l| l.is_empty()) {
            out.push(String::new());
        }
        let mut lines = vec![format!("[{name}]")];
        for item in items.iter() {
            match item {
                Item::Pair(k, v) => {
                    let value = render_changed_value("", &value_text(v), &format!("{name}.{k}"))?;
                    lines.push(format!("{k}{}{value}", src.delimiter));
                }
                Item::Comment(c) => lines.push(format!("; {c}")),
            }
        }
        out.extend(lines);
    }

    let trailing_newline = src.trailing_newline || src.lines.is_empty();
    if let Some(md) = metadata {
        if !out.is_empty() {
            out.push(String::new());
        }
        out.push(format!("[{METADATA_SECTION}]"));
        aligned(&metadata_pairs(md), &mut out);
    }
    let mut text = out.join("\n");
    if trailing_newline && !out.is_empty() {
        text.push('\n');
    }
    Ok(text)
}

/// Byte offset of the inline comment slot on line `n`.
fn inline_at(src: &Source, n: usize) -> usize {
    src.sections
        .iter()
        .flat_map(|s| &s.entries)
        .find_map(|e| match e {
            Entry::Comment { slots, .. } => slots.iter().find_map(|s| match *s {
                Slot::Inline { line, at, .. } if line == n => Some(at),
                _ => None,
            }),
            Entry::Pair { .. } => None,
        })
        .unwrap_or(src.lines[n].len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Parsed {
        IniStore.parse(text.as_bytes()).unwrap()
    }

    fn write(tree: &Tree, md: Option<&Node>, orig: Option<&Parsed>) -> String {
        let out = IniStore
            .write(tree, md, orig, &WriteOptions::default())
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    fn seal(node: &Node, counter: &mut usize) -> Node {
        match node {
            Node::Map(items) => Node::Map(
                items
                    .iter()
                    .map(|i| {
                        *counter += 1;
                        match i {
                            Item::Pair(k, v) => Item::Pair(k.clone(), seal(v, counter)),
                            Item::Comment(c) if c.is_empty() => Item::Comment(String::new()),
                            Item::Comment(_) => Item::Comment(fake_enc(*counter)),
                        }
                    })
                    .collect(),
            ),
            Node::Scalar(s) if s.value.is_empty() => node.clone(),
            // The value cipher appends the encrypted layout as `~token`.
            Node::Scalar(s) if s.layout.is_some() => {
                Node::str(format!("{}~dG9rZW4=", fake_enc(*counter)))
            }
            Node::Scalar(_) => Node::str(fake_enc(*counter)),
            other => other.clone(),
        }
    }

    /// Shaped like sops' ciphertext, which the store recognises in comments.
    fn fake_enc(n: usize) -> String {
        format!("ENC[AES256_GCM,data:d{n},iv:i,tag:t,type:comment]")
    }

    /// Plaintext -> fake-encrypted file -> plaintext again, checking the encrypted file reads
    /// back to the sealed tree. Returns the encrypted file.
    fn seal_round_trip(text: &str) -> String {
        let plain = parse(text);
        let sealed = Tree {
            documents: vec![seal(&plain.tree.documents[0], &mut 0)],
        };
        let md = sample_metadata();
        let encrypted = write(&sealed, Some(&md), Some(&plain));
        let enc_parsed = parse(&encrypted);
        assert_eq!(enc_parsed.tree, sealed, "{encrypted}");
        let back = write(&plain.tree, None, Some(&enc_parsed));
        assert_eq!(back, text, "encrypted form was:\n{encrypted}");
        encrypted
    }

    /// Found by the sops_ini fuzz target (fuzz/regressions/sops_ini): the parse skipped a
    /// leading byte order mark and the write never gave it back, so a file lost its first three
    /// bytes through encrypt + decrypt. The encrypted file keeps it too (ini.v1 skips it).
    #[test]
    fn a_byte_order_mark_survives_the_round_trip() {
        let text = "\u{feff}t = true\n\n[s]\nk = v\n";
        let p = parse(text);
        assert_eq!(write(&p.tree, None, Some(&p)), text);
        let encrypted = seal_round_trip(text);
        assert!(encrypted.starts_with('\u{feff}'), "{encrypted}");
    }

    /// The data lines of an encrypted file (without `[sops]`).
    fn data_part(encrypted: &str) -> &str {
        encrypted[..encrypted.find("\n[sops]").unwrap()].trim_end_matches('\n')
    }

    fn comments_of(p: &Parsed) -> Vec<String> {
        let Node::Map(sections) = &p.tree.documents[0] else {
            panic!()
        };
        let mut out = Vec::new();
        for s in sections {
            if let Item::Pair(_, Node::Map(items)) = s {
                for i in items {
                    if let Item::Comment(c) = i {
                        out.push(c.clone());
                    }
                }
            }
        }
        out
    }

    /// Banners and marker runs (`;;;;`, `;;; x`, `#### x ####`), tab-indented comments, blank
    /// lines between comment lines and runs of them all come back byte for byte; the tree holds
    /// what sops reads (ini.v1 left-trims each line, keeps them joined by newlines, skips blank
    /// lines; stripCommentChar trims the first run of `;`/`#` and spaces only).
    #[test]
    fn comment_blocks_round_trip_exactly_and_read_like_sops() {
        let text = ";;;;;;;;\n;;; odbc setup file\n\n; ENV is global\n[ENV]\n#### Core ####\n\t\t\t;(min 500)\nk = v\n; a\n\n;   b  \n\n; c\nj = w\n";
        let p = parse(text);
        assert_eq!(
            comments_of(&p),
            [
                "\n;;; odbc setup file\n; ENV is global",
                "Core ####\n;(min 500)",
                "a\n;   b  \n; c",
            ]
        );
        let enc = seal_round_trip(text);
        // Every line keeps its place, indentation and markers; only the text is replaced.
        assert_eq!(
            data_part(&enc),
            ";;;;;;;;ENC[AES256_GCM,data:d3,iv:i,tag:t,type:comment]\n;;; ENC[^]\n\n; ENC[^]\n[ENV]\n#### ENC[AES256_GCM,data:d5,iv:i,tag:t,type:comment]\n\t\t\t;ENC[^]\nk = ENC[AES256_GCM,data:d4,iv:i,tag:t,type:comment]\n; ENC[AES256_GCM,data:d7,iv:i,tag:t,type:comment]\n\n;   ENC[^]  \n\n; ENC[^]\nj = ENC[AES256_GCM,data:d6,iv:i,tag:t,type:comment]"

        );
    }

    /// What sops makes of enseal's placeholders: one comment whose first line is the
    /// ciphertext (its pattern is anchored at the start only, so it decrypts that line).
    #[test]
    fn placeholders_read_by_sops_start_with_the_ciphertext() {
        let enc = seal_round_trip("[s]\n; a\n; b\nk = v ; c\n");
        let src = parse_source(&enc).unwrap();
        let Entry::Comment { slots, text, .. } = &src.sections[1].entries[1] else {
            panic!()
        };
        assert_eq!(slots.len(), 3);
        assert_eq!(text, &fake_enc(4));
        // ini.v1's reading of the same lines, as sops' stripCommentChar leaves it.
        assert_eq!(
            comment_text(&src.lines, slots),
            format!("{}\n; ENC[^]\n; ENC[^]", fake_enc(4))
        );
    }

    /// `pm.process_idle_timeout = 10s;`: ini.v1 cuts the value at `;` (value `10s`) and keeps
    /// `;` as the key's comment, which stripCommentChar empties; sops does not encrypt an
    /// empty comment. The line comes back as it was, with the comments above it.
    #[test]
    fn value_followed_by_a_bare_marker() {
        let text = "[www]\n; The number of seconds\n; Default Value: 10s\npm.process_idle_timeout = 10s;\n";
        let p = parse(text);
        assert_eq!(
            comments_of(&p),
            ["The number of seconds\n; Default Value: 10s\n;"]
        );
        let enc = seal_round_trip(text);
        assert!(enc.contains("pm.process_idle_timeout = ENC[AES256_GCM,data:d3,iv:i,tag:t,type:comment];ENC[^]\n"), "{enc}");
        assert_eq!(comments_of(&parse("[s]\nk = 10s;\n")), [""]);
        seal_round_trip("[s]\nk = 10s;\n");
    }

    /// A header's inline comment that is the section's whole comment cannot hold `ENC[...]`
    /// on the header line (ini.v1 reads the name up to the line's last `]`, which made the
    /// name `pbm] # ENC[...` and the AAD wrong): it goes on a line above, and the header keeps
    /// a mark. With comment lines above the header, the inline part is a placeholder.
    #[test]
    fn header_inline_comments_keep_the_section_name() {
        let text = "[a]\nx = 1\n\n[pbm] # Password-based protection\n# Server auth\nref = $insta::ref # 3078\n; above\n[q] ; inline\ny = 2\n";
        let p = parse(text);
        let enc = seal_round_trip(text);
        let data = data_part(&enc);
        assert!(
            data.contains("\n# ENC[AES256_GCM,data:d5,iv:i,tag:t,type:comment]\n[pbm] # ENC[@\n"),
            "{data}"
        );
        assert!(
            data.contains("\n; ENC[AES256_GCM,data:d9,iv:i,tag:t,type:comment]\n[q] ; ENC[^\n"),
            "{data}"
        );
        let e = parse(&enc);
        let names = |p: &Parsed| -> Vec<String> {
            let Node::Map(s) = &p.tree.documents[0] else {
                panic!()
            };
            s.iter()
                .filter_map(|i| match i {
                    Item::Pair(k, _) => Some(k.clone()),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(names(&e), names(&p));
        assert_eq!(names(&p), ["DEFAULT", "a", "pbm", "q"]);
    }

    /// `[*.[ch]]` is the section `*.[ch]` and `php_admin_value[error_log]` a key, for ini.v1
    /// and sops; both are written back and read again.
    #[test]
    fn brackets_in_section_names_and_keys() {
        let text =
            "[*.[ch]]\nindent_style = tab\n[www]\nphp_admin_value[error_log] = /var/log/x.log\n";
        let p = parse(text);
        let Node::Map(s) = &p.tree.documents[0] else {
            panic!()
        };
        // sops' tree starts with ini.v1's DEFAULT section, empty here.
        assert!(matches!(&s[0], Item::Pair(k, Node::Map(m)) if k == "DEFAULT" && m.is_empty()));
        assert!(matches!(&s[1], Item::Pair(k, _) if k == "*.[ch]"));
        assert_eq!(
            p.tree.documents[0]
                .get("www")
                .and_then(|w| w.get("php_admin_value[error_log]")),
            Some(&Node::str("/var/log/x.log"))
        );
        seal_round_trip(text);
        let canonical = write(&p.tree, None, None);
        assert_eq!(parse(&canonical).tree, p.tree);
    }

    /// sops 3.13.0 and 3.13.1 wrote multi-line metadata values `"""`-quoted over several lines
    /// (3.13.2 escapes newlines again); ini.v1 reads them up to the closing quote.
    #[test]
    fn triple_quoted_multi_line_metadata_of_sops_3_13_0() {
        let text = "[s]\nk = ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\n\n[sops]\nage__list_0__map_enc = \"\"\"-----BEGIN AGE ENCRYPTED FILE-----\nYWJj\n-----END AGE ENCRYPTED FILE-----\n\"\"\"\nage__list_0__map_recipient = age1xyz\nlastmodified = 2026-01-01T00:00:00Z\nversion = 3.13.0\n";
        let p = parse(text);
        let md = p.metadata.as_ref().unwrap();
        let Some(Node::Seq(age)) = md.get("age") else {
            panic!("no age")
        };
        assert_eq!(
            age[0].get("enc"),
            Some(&Node::str(
                "-----BEGIN AGE ENCRYPTED FILE-----\nYWJj\n-----END AGE ENCRYPTED FILE-----\n"
            ))
        );
        assert_eq!(md.get("version"), Some(&Node::str("3.13.0")));
        // A data value quoted over several lines comes back as written.
        seal_round_trip("[s]\nk = \"\"\"one\ntwo\"\"\"\nj = x\n");
    }

    /// ini.v1 keeps a duplicated key at its first place with its last value, and the comment
    /// before its last occurrence (section.go `NewKey`); that is sops' tree (and MAC). The
    /// earlier lines travel in the value's layout, so the file still comes back byte for byte;
    /// the encrypted file has placeholders there, which sops reads as earlier values it drops.
    #[test]
    fn duplicate_keys_read_like_sops_and_come_back() {
        let text = "[url \"git@github.com:\"]\n; first\npushInsteadOf = a ; i\nother = x\n; second\npushInsteadOf = b\n";
        let p = parse(text);
        let Some(Node::Map(items)) = p.tree.documents[0].get("url \"git@github.com:\"") else {
            panic!()
        };
        let summary: Vec<String> = items
            .iter()
            .map(|i| match i {
                Item::Pair(k, v) => format!("{k}={}", value_text(v)),
                Item::Comment(c) => format!("#{c}"),
            })
            .collect();
        assert_eq!(summary, ["pushInsteadOf=b", "#second", "other=x"]);
        let enc = seal_round_trip(text);
        assert!(
            data_part(&enc).starts_with(
                "[url \"git@github.com:\"]\n; ENC[^]\npushInsteadOf = ENC[^]\nother = "
            ),
            "{enc}"
        );
        // The last value left in the clear (or empty) cannot hide the earlier ones: refused
        // rather than writing them in the clear.
        let clear = Tree {
            documents: vec![Node::Map(vec![Item::Pair(
                "url \"git@github.com:\"".into(),
                Node::Map(vec![
                    Item::Pair("pushInsteadOf".into(), Node::str("")),
                    Item::Pair("other".into(), Node::str("x")),
                ]),
            )])],
        };
        let md = sample_metadata();
        assert!(IniStore
            .write(&clear, Some(&md), Some(&p), &WriteOptions::default())
            .is_err());
    }

    /// Lines sops refuses too (ini.v1 without AllowBooleanKeys or python multi-line values):
    /// my.cnf boolean keys, tox.ini list continuations, `=value`.
    #[test]
    fn lines_sops_refuses_are_refused() {
        for text in [
            "[mysqld]\nskip-name-resolve\n",
            "[tox]\nenvlist =\n    py38,\n",
            "[options]\n=src\n",
        ] {
            assert!(IniStore.parse(text.as_bytes()).is_err(), "{text}");
        }
    }

    fn sample_metadata() -> Node {
        let p = Item::Pair;
        Node::Map(vec![
            p(
                "age".into(),
                Node::Seq(vec![Node::Map(vec![
                    p("enc".into(), Node::str("-----BEGIN\nabc\n")),
                    p("recipient".into(), Node::str("age1xyz")),
                ])]),
            ),
            p("lastmodified".into(), Node::str("2026-11-28T22:49:35Z")),
            p("version".into(), Node::str("3.11.0")),
        ])
    }

    const SAMPLE: &str = "; top\nglobal = g\n\n# sec comment\n[sec1]\n; before a\na = 1\nb=two words\nc = \"quoted\"  ; inline\n# trailing\n\n[sec2]\nx: y\n";

    /// What sops 3.11 made of SAMPLE (`sops decrypt --output-type yaml` of its encryption).
    #[test]
    fn tree_matches_what_sops_reads() {
        let p = parse(SAMPLE);
        let c = |t: &str| Item::Comment(t.into());
        let kv = |k: &str, v: &str| Item::Pair(k.into(), Node::str(v));
        assert_eq!(
            p.tree.documents[0],
            Node::Map(vec![
                Item::Pair(
                    "DEFAULT".into(),
                    Node::Map(vec![kv("global", "g"), c("top")])
                ),
                Item::Pair(
                    "sec1".into(),
                    Node::Map(vec![
                        c("sec comment"),
                        kv("a", "1"),
                        c("before a"),
                        kv("b", "two words"),
                        kv("c", "quoted"),
                        c("inline"),
                    ])
                ),
                Item::Pair("sec2".into(), Node::Map(vec![c("trailing"), kv("x", "y")])),
            ])
        );
    }

    #[test]
    fn multi_line_comments_are_one_comment_like_sops() {
        let p = parse("[s]\na=1\n; c1\n; c2\nb=2\n");
        let Node::Map(sections) = &p.tree.documents[0] else {
            panic!()
        };
        let Item::Pair(_, Node::Map(items)) = &sections[1] else {
            panic!()
        };
        assert_eq!(items[2], Item::Comment("c1\n; c2".into()));
    }

    #[test]
    fn round_trip_through_fake_encryption_is_byte_exact() {
        for text in [
            SAMPLE,
            "[s]\na=1\n; c1\n; c2\nb=2\n",
            "[s]\n  k   =   v   \nq = 'single'\nbt = `a;b`\n",
            "[a]\nx=1\n; dangling at the end",
            "",
            "k = v\n[DEFAULT]\nj = w\n",
        ] {
            let encrypted = seal_round_trip(text);
            assert_eq!(
                parse(&encrypted).metadata.as_ref(),
                Some(&sample_metadata()),
                "{encrypted}"
            );
        }
    }

    /// sops' layout: `=` aligned per section, a blank line between sections, the metadata last,
    /// and a comment written above the key it follows in the tree. The data part is exactly
    /// what `sops decrypt` printed for SAMPLE.
    #[test]
    fn canonical_write_matches_sops_layout() {
        let p = parse(SAMPLE);
        let md = Node::Map(vec![
            Item::Pair("mac".into(), Node::str("ENC[x]")),
            Item::Pair("version".into(), Node::str("3.11.0")),
        ]);
        assert_eq!(
            write(&p.tree, Some(&md), None),
            "; top\nglobal = g\n\n; sec comment\n[sec1]\n; before a\na = 1\nb = two words\n; inline\nc = quoted\n\n; trailing\n[sec2]\nx = y\n\n[sops]\nmac     = ENC[x]\nversion = 3.11.0\n"
        );
    }

    #[test]
    fn changed_values_keep_or_gain_the_quoting_they_need() {
        let p = parse("[s]\na = \"x\"\nb = y\n");
        let tree = Tree {
            documents: vec![Node::Map(vec![Item::Pair(
                "s".into(),
                Node::Map(vec![
                    Item::Pair("a".into(), Node::str("new")),
                    Item::Pair("b".into(), Node::str("has;semicolon")),
                    Item::Pair("c".into(), Node::str(" padded ")),
                ]),
            )])],
        };
        assert_eq!(
            write(&tree, None, Some(&p)),
            "[s]\na = \"new\"\nb = `has;semicolon`\nc = \" padded \"\n"
        );
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line) in [
            ("[s]\nnovalue\n", 2),
            ("[s\n", 1),
            ("[s]\na = \"\"\"open\n", 2),
            ("[s]\na = x \\\n", 2),
        ] {
            match IniStore.parse(text.as_bytes()) {
                Err(StoreError::Syntax { line: l, .. }) => assert_eq!(l, Some(line), "{text}"),
                other => panic!("{text}: {:?}", other.map(|_| ())),
            }
        }
    }

    #[test]
    fn nesting_below_section_key_is_unrepresentable() {
        let tree = Tree {
            documents: vec![Node::Map(vec![Item::Pair(
                "s".into(),
                Node::Map(vec![Item::Pair(
                    "k".into(),
                    Node::Map(vec![Item::Pair("deep".into(), Node::str("v"))]),
                )]),
            )])],
        };
        let err = IniStore.write(&tree, None, None, &WriteOptions::default());
        let msg = err.err().unwrap().to_string();
        assert!(msg.contains("s.k"), "{msg}");
        let top_scalar = Tree {
            documents: vec![Node::Map(vec![Item::Pair("k".into(), Node::str("v"))])],
        };
        assert!(IniStore
            .write(&top_scalar, None, None, &WriteOptions::default())
            .is_err());
    }

    /// Files sops 3.11 encrypted: the `[sops]` section unflattens (Shamir groups included),
    /// the data has the shape sops gave it, and a canonical write reproduces sops' data part
    /// (its metadata key order is random, so only the data part is compared).
    #[test]
    fn sops_made_files_parse_and_their_data_part_is_reproduced() {
        for (bytes, shamir) in [
            (
                &include_bytes!("../../tests/fixtures/stores/sops.ini")[..],
                false,
            ),
            (
                &include_bytes!("../../tests/fixtures/stores/shamir.ini")[..],
                true,
            ),
        ] {
            let p = IniStore.parse(bytes).unwrap();
            let md = p.metadata.as_ref().unwrap();
            assert_eq!(md.get("version"), Some(&Node::str("3.11.0")));
            if shamir {
                let Some(Node::Seq(kg)) = md.get("key_groups") else {
                    panic!("no key_groups")
                };
                assert_eq!(kg.len(), 2);
            } else {
                let Some(Node::Seq(age)) = md.get("age") else {
                    panic!("no age")
                };
                let enc = age[0].get("enc").and_then(Node::as_scalar).unwrap();
                assert!(enc
                    .text()
                    .unwrap()
                    .contains("\n-----END AGE ENCRYPTED FILE-----\n"));
            }
            let Node::Map(sections) = &p.tree.documents[0] else {
                panic!()
            };
            let names: Vec<&str> = sections
                .iter()
                .filter_map(|i| match i {
                    Item::Pair(k, _) => Some(k.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(names, ["DEFAULT", "sec1", "sec2"]);
            let text = String::from_utf8_lossy(bytes);
            let data_part = &text[..text.find("[sops]").unwrap()];
            let out = write(&p.tree, Some(md), None);
            assert_eq!(&out[..out.find("[sops]").unwrap()], data_part);
            // Lossless: everything, including sops' metadata order, comes back.
            assert_eq!(write(&p.tree, None, Some(&p)) + "\n", data_part);
            let again = IniStore
                .parse(write(&p.tree, Some(md), Some(&p)).as_bytes())
                .unwrap();
            // Same fields; the order of sops' [sops] section is random, ours sorted.
            assert_eq!(
                flat::flatten(again.metadata.as_ref().unwrap()),
                flat::flatten(md)
            );
        }
    }
}
