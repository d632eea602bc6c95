//! INI files, read the way sops 3.11 reads them (through `gopkg.in/ini.v1`).
//!
//! Sections are top-level keys whose values are mappings; keys before the first header belong
//! to the section `DEFAULT`. Every value is a string: the text after the first `=` or `:`, cut
//! at the first `#` or `;` (an inline comment), trimmed, and stripped of one pair of surrounding
//! quotes (`"`, `'`, or a backtick / `"""` pair, which also protects `#` and `;`). Comment lines
//! gather until the next key or header; the gathered text (with the inline comment) is one
//! comment, stripped of its leading `;`/`#` and spaces (`; a\n; b` encrypts as `a\n; b`). In the
//! tree a key's comment comes right after the key and a section's comment first in the section,
//! as sops orders them. Metadata is the `[sops]` section, flattened (see [`super::flat`]).
//!
//! Not supported (an error, where sops would accept them): values continued over several lines
//! (a trailing `\`, an unclosed `"""` or backtick), quoted key names, duplicate keys in a section.

use super::flat;
use super::{Format, Layout, Parsed, Store, StoreError, WriteOptions};
use crate::format::tree::{Item, Kind, Node, Tree};

pub struct IniStore;

const FORMAT: &str = "ini";
const DEFAULT_SECTION: &str = "DEFAULT";
const METADATA_SECTION: &str = "sops";

enum LineKind {
    Blank,
    Comment {
        sec: usize,
        entry: usize,
    },
    Header {
        sec: usize,
    },
    Pair {
        sec: usize,
        entry: usize,
    },
    /// Part of the `[sops]` section (or the blank line sops puts before it): not data.
    Metadata,
}

enum Entry {
    Pair {
        key: String,
        value: String,
        /// Byte range of the value as written (quotes included), within the line.
        value_start: usize,
        value_end: usize,
    },
    Comment {
        text: String,
        /// Comment-only lines, in order.
        lines: Vec<usize>,
        /// An inline part: its line and the byte offset of its `;`/`#`.
        inline: Option<(usize, usize)>,
    },
}

struct Section {
    name: String,
    entries: Vec<Entry>,
}

pub(crate) struct Source {
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

/// sops' `stripCommentChar`.
fn strip_comment(raw: &str) -> String {
    let raw = raw.trim();
    if raw.starts_with(';') {
        raw.trim_start_matches([';', ' ']).to_string()
    } else if raw.starts_with('#') {
        raw.trim_start_matches(['#', ' ']).to_string()
    } else {
        raw.to_string()
    }
}

#[derive(Default)]
struct Pending {
    raw: String,
    lines: Vec<usize>,
}

impl Pending {
    fn take(&mut self, inline: Option<(usize, &str, usize)>) -> Option<Entry> {
        let mut raw = std::mem::take(&mut self.raw);
        let lines = std::mem::take(&mut self.lines);
        let inline = inline.map(|(line, text, at)| {
            raw.push_str(text);
            (line, at)
        });
        let raw = raw.trim();
        if raw.is_empty() {
            return None;
        }
        Some(Entry::Comment {
            text: strip_comment(raw),
            lines,
            inline,
        })
    }
}

fn parse_source(text: &str) -> Result<Source, StoreError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (body, trailing_newline) = match text.strip_suffix('\n') {
        Some(b) => (b, true),
        None => (text, false),
    };
    let lines: Vec<String> = if body.is_empty() && !trailing_newline {
        Vec::new()
    } else {
        body.split('\n').map(str::to_string).collect()
    };
    let mut kinds = Vec::with_capacity(lines.len());
    let mut sections = vec![Section {
        name: DEFAULT_SECTION.to_string(),
        entries: Vec::new(),
    }];
    let mut pending = Pending::default();
    let mut delimiter = None;
    for (n, raw_line) in lines.iter().enumerate() {
        let indent = raw_line.len() - raw_line.trim_start().len();
        let line = &raw_line[indent..];
        let sec = sections.len() - 1;
        if line.is_empty() {
            kinds.push(LineKind::Blank);
        } else if line.starts_with(['#', ';']) {
            pending.raw.push_str(line);
            pending.raw.push('\n');
            pending.lines.push(n);
            kinds.push(LineKind::Comment {
                sec,
                entry: usize::MAX,
            });
        } else if line.starts_with('[') {
            let close = line
                .rfind(']')
                .ok_or_else(|| syntax(n + 1, "unclosed section header"))?;
            let rest = &line[close + 1..];
            let inline = rest
                .find(['#', ';'])
                .map(|i| (n, &rest[i..], indent + close + 1 + i));
            let mut section = Section {
                name: line[1..close].to_string(),
                entries: Vec::new(),
            };
            let comment_lines = pending.lines.clone();
            let (target, entry) = if section.name == METADATA_SECTION {
                // Comments before `[sops]` are the data's last comments (which sops would drop),
                // not metadata: keep them with the section before.
                let prev = &mut sections[sec];
                (
                    sec,
                    pending
                        .take(None)
                        .map(|e| prev.entries.push(e))
                        .map(|_| prev.entries.len() - 1),
                )
            } else {
                (
                    sections.len(),
                    pending
                        .take(inline)
                        .map(|e| section.entries.push(e))
                        .map(|_| 0),
                )
            };
            if let Some(entry) = entry {
                for l in comment_lines {
                    kinds[l] = LineKind::Comment { sec: target, entry };
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
                syntax(
                    n + 1,
                    "line is neither a section, a comment nor key = value",
                )
            })?;
            let key = line[..delim].trim();
            if key.is_empty() {
                return Err(syntax(n + 1, "empty key name"));
            }
            let after = &line[delim + 1..];
            let read = read_value(after).map_err(|m| syntax(n + 1, m))?;
            let base = indent + delim + 1;
            if delimiter.is_none() {
                let key_end = indent + line[..delim].trim_end().len();
                delimiter = Some(raw_line[key_end..base + read.start].to_string());
            }
            let section = &mut sections[sec];
            if section
                .entries
                .iter()
                .any(|e| matches!(e, Entry::Pair { key: k, .. } if k == key))
            {
                return Err(syntax(
                    n + 1,
                    format!("duplicate key {key:?} in this section"),
                ));
            }
            let comment_lines = pending.lines.clone();
            section.entries.push(Entry::Pair {
                key: key.to_string(),
                value: read.value.clone(),
                value_start: base + read.start,
                value_end: base + read.end,
            });
            kinds.push(LineKind::Pair {
                sec,
                entry: section.entries.len() - 1,
            });
            let inline = read.inline.map(|i| (n, &raw_line[base + i..], base + i));
            if let Some(entry) = pending.take(inline) {
                section.entries.push(entry);
                let entry = section.entries.len() - 1;
                for l in comment_lines {
                    kinds[l] = LineKind::Comment { sec, entry };
                }
            }
        }
    }
    // sops drops comments after the last key; they stay in the tree here so that they are
    // encrypted with the rest rather than left in the clear.
    let comment_lines = pending.lines.clone();
    if let Some(entry) = pending.take(None) {
        let sec = sections.len() - 1;
        sections[sec].entries.push(entry);
        let entry = sections[sec].entries.len() - 1;
        for l in comment_lines {
            kinds[l] = LineKind::Comment { sec, entry };
        }
    }
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
            if n == 0 && section.entries.is_empty() {
                // sops' tree has an empty DEFAULT here; an empty mapping changes nothing.
                continue;
            }
            let entries = section
                .entries
                .iter()
                .map(|e| match e {
                    Entry::Pair { key, value, .. } => Item::Pair(key.clone(), Node::str(value)),
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
                if key.is_empty() || key.contains(['\n', '[']) || key.starts_with(['#', ';']) {
                    return Err(unrepresentable(format!(
                        "{name}.{key:?} cannot be written as an INI key"
                    )));
                }
            }
        }
        if name.contains(['\n', ']']) {
            return Err(unrepresentable(format!("section name {name:?}")));
        }
        out.push((name.as_str(), entries.as_slice()));
    }
    Ok(out)
}

fn value_text(node: &Node) -> String {
    match node {
        Node::Scalar(s) if s.kind == Kind::Null => String::new(),
        Node::Scalar(s) => String::from_utf8_lossy(&s.value).into_owned(),
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
        if original_raw.len() >= 2 * q.len()
            && original_raw.starts_with(q)
            && original_raw.ends_with(q)
        {
            candidates.push(format!("{q}{value}{q}"));
            break;
        }
    }
    candidates.push(value.to_string());
    candidates.push(quote_like_ini(value));
    candidates
        .into_iter()
        .find(|c| {
            read_value(c).is_ok_and(|r| r.value == value && r.inline.is_none() && r.end == c.len())
        })
        .ok_or_else(|| {
            unrepresentable(format!("the value of {path} cannot be written on one line"))
        })
}

fn marker_prefix(line: &str) -> &str {
    let indent = line.len() - line.trim_start().len();
    let after = &line[indent + 1..];
    let spaces = after.len() - after.trim_start_matches([' ', '\t']).len();
    &line[..indent + 1 + spaces]
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
            for (e, entry) in section.entries.iter().enumerate() {
                let found = match entry {
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
            added[s] = (0..items.len())
                .filter(|i| !claimed[*i])
                .map(|i| &items[i])
                .collect();
        }
        entry_match.push(matches);
    }

    let changed_comment = |s: usize, e: usize| -> Option<Option<&str>> {
        // None: removed; Some(None): unchanged; Some(Some(text)): changed.
        let Entry::Comment { text, .. } = &src.sections[s].entries[e] else {
            return None;
        };
        match entry_match[s][e] {
            Some(Item::Comment(new)) if new == text => Some(None),
            Some(Item::Comment(new)) => Some(Some(new.as_str())),
            _ => None,
        }
    };
    // The inline comment entry of a line, if any.
    let inline_on = |s: usize, line: usize| -> Option<usize> {
        src.sections[s]
            .entries
            .iter()
            .position(|e| matches!(e, Entry::Comment { inline: Some((l, _)), .. } if *l == line))
    };

    let mut out: Vec<String> = Vec::new();
    let mut insert_at: Vec<Option<usize>> = vec![None; src.sections.len()];
    for (n, kind) in src.kinds.iter().enumerate() {
        let line = &src.lines[n];
        match *kind {
            LineKind::Blank => out.push(line.clone()),
            LineKind::Metadata => {}
            LineKind::Comment { sec, entry } => {
                if sec_match[sec].is_none() {
                    continue;
                }
                let Some(Entry::Comment { lines, .. }) = src.sections[sec].entries.get(entry)
                else {
                    continue;
                };
                match changed_comment(sec, entry) {
                    Some(None) => out.push(line.clone()),
                    Some(Some(text)) if lines.first() == Some(&n) => {
                        out.push(format!("{}{text}", marker_prefix(line)));
                    }
                    _ => continue,
                }
                insert_at[sec] = Some(out.len());
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
                            text.push_str(&render_changed_value(
                                &line[*value_start..*value_end],
                                &new,
                                &path,
                            )?);
                        }
                        (text, *value_end)
                    }
                    _ => {
                        let close = line.rfind(']').map_or(line.len(), |c| c + 1);
                        (line[..close].to_string(), close)
                    }
                };
                let tail = &line[tail_from..];
                match inline_on(sec, n) {
                    None => text.push_str(tail),
                    Some(e) => {
                        let Entry::Comment { lines, inline, .. } = &src.sections[sec].entries[e]
                        else {
                            continue;
                        };
                        let at = inline.map_or(line.len(), |(_, at)| at);
                        match changed_comment(sec, e) {
                            Some(None) => text.push_str(tail),
                            Some(Some(new)) if lines.is_empty() && !new.contains('\n') => {
                                text.push_str(&line[tail_from..at]);
                                text.push_str(marker_prefix(&line[at..]));
                                text.push_str(new);
                            }
                            Some(Some(new)) if lines.is_empty() => {
                                out.push(format!("; {new}"));
                            }
                            _ => {}
                        }
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
                            Item::Comment(_) => Item::Comment(format!("ENC[c{counter}]")),
                        }
                    })
                    .collect(),
            ),
            Node::Scalar(s) if s.value.is_empty() => node.clone(),
            Node::Scalar(_) => Node::str(format!("ENC[v{counter}]")),
            other => other.clone(),
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
        let Item::Pair(_, Node::Map(items)) = &sections[0] else {
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
            let plain = parse(text);
            let sealed = Tree {
                documents: vec![seal(&plain.tree.documents[0], &mut 0)],
            };
            let md = sample_metadata();
            let encrypted = write(&sealed, Some(&md), Some(&plain));
            let enc_parsed = parse(&encrypted);
            assert_eq!(enc_parsed.tree, sealed, "{encrypted}");
            assert_eq!(enc_parsed.metadata.as_ref(), Some(&md), "{encrypted}");
            let back = write(&plain.tree, None, Some(&enc_parsed));
            assert_eq!(back, text, "encrypted form was:\n{encrypted}");
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
            ("[s]\na = 1\na = 2\n", 3),
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
