//! Canonical YAML output, laid out the way sops (go-yaml v3) lays it out: used for new files,
//! for the `sops:` block, and for whatever the lossless writer has no original text for.

use crate::format::resolve;
use crate::format::tree::{Item, Kind, Node, Scalar};

/// go-yaml v3 indents a nested block to the next multiple of the indentation step (the `- ` of a
/// sequence item is the exception: a mapping in an item starts right after it).
pub fn next_indent(indent: usize, step: usize) -> usize {
    let step = step.max(1);
    step * ((indent + step) / step)
}

pub struct Emitter<'a> {
    pub out: &'a mut String,
    pub step: usize,
    pub nl: &'a str,
}

impl Emitter<'_> {
    fn pad(&mut self, n: usize) {
        self.out.extend(std::iter::repeat_n(' ', n));
    }

    /// A whole document: its top-level mapping, `{}` when it has no entries.
    pub fn document(&mut self, items: &[Item]) {
        if !items.iter().any(|i| matches!(i, Item::Pair(..))) {
            for item in items {
                if let Item::Comment(c) = item {
                    self.comment(c, 0, false);
                }
            }
            self.out.push_str("{}");
            self.out.push_str(self.nl);
            return;
        }
        self.map(items, 0, false);
        self.out.push_str(self.nl);
    }

    /// A document that is any value, as go-yaml's `Marshal` writes a lone value: a sequence
    /// with its `-` at column 0, a scalar on its own line (a multi-line string as a literal
    /// block one step in), `[]`/`{}` when empty.
    pub fn lone_value(&mut self, node: &Node) {
        match node {
            Node::Map(items) => self.document(items),
            Node::Seq(items) => {
                if has_values_seq(items) {
                    self.seq(items, 0, false);
                } else {
                    for item in items {
                        if let Node::Comment(c) = item {
                            self.comment(c, 0, false);
                        }
                    }
                    self.out.push_str("[]");
                }
                self.out.push_str(self.nl);
            }
            Node::Scalar(s) => {
                self.scalar(s, 0, self.step);
                self.out.push_str(self.nl);
            }
            Node::Comment(c) => {
                self.out.push_str(&double_quoted(c));
                self.out.push_str(self.nl);
            }
        }
    }

    fn comment(&mut self, text: &str, indent: usize, inline_first: bool) {
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 || !inline_first {
                self.pad(indent);
            }
            self.out.push('#');
            self.out.push_str(line.trim_end_matches('\r'));
            self.out.push_str(self.nl);
        }
    }

    /// Lines of a block mapping at `indent`, the last one without its line break. With
    /// `inline_first` the first line's indentation is already written (after `- `).
    pub fn map(&mut self, items: &[Item], indent: usize, inline_first: bool) {
        let mut first = inline_first;
        let mut any = false;
        for item in items {
            if any {
                self.out.push_str(self.nl);
            }
            match item {
                Item::Comment(c) => {
                    // Comments end with a line break of their own; the next item follows.
                    self.comment(c, indent, first);
                    first = false;
                    any = false;
                    continue;
                }
                Item::Pair(k, v) => {
                    if !first {
                        self.pad(indent);
                    }
                    self.out.push_str(&key_text(k));
                    self.out.push(':');
                    self.value_after_key(v, indent);
                }
            }
            first = false;
            any = true;
        }
        if !any && self.out.ends_with(self.nl) {
            // Only comments (or comments last): drop the final break, the caller adds one.
            let n = self.out.len() - self.nl.len();
            self.out.truncate(n);
        }
    }

    /// What follows `key:` for a value of a key at column `indent`.
    pub fn value_after_key(&mut self, v: &Node, indent: usize) {
        match v {
            Node::Map(items) if has_values_map(items) => {
                self.out.push_str(self.nl);
                self.map(items, next_indent(indent, self.step), false);
            }
            Node::Seq(items) if has_values_seq(items) => {
                self.out.push_str(self.nl);
                self.seq(items, next_indent(indent, self.step), false);
            }
            Node::Map(_) => self.out.push_str(" {}"),
            Node::Seq(_) => self.out.push_str(" []"),
            Node::Scalar(s) => {
                self.out.push(' ');
                self.scalar(s, indent, next_indent(indent, self.step));
            }
            Node::Comment(c) => {
                // Not a valid value; keep the text rather than lose it.
                self.out.push(' ');
                self.out.push_str(&double_quoted(c));
            }
        }
    }

    /// A scalar in block context; a multi-line string becomes a literal block whose content is
    /// at `content_indent` (its parent structure being at `parent_indent`).
    pub fn scalar(&mut self, s: &Scalar, parent_indent: usize, content_indent: usize) {
        if let Some(text) = block_candidate(s) {
            if let Some((header, content)) =
                literal_block(text, parent_indent, content_indent, self.nl)
            {
                self.out.push_str(&header);
                self.out.push_str(self.nl);
                self.out.push_str(&content);
                return;
            }
        }
        self.out.push_str(&inline_scalar(s, false));
    }

    /// Lines of a block sequence whose `-` are at `indent`.
    pub fn seq(&mut self, items: &[Node], indent: usize, inline_first: bool) {
        let mut first = inline_first;
        let mut any = false;
        for item in items {
            if any {
                self.out.push_str(self.nl);
            }
            if let Node::Comment(c) = item {
                self.comment(c, indent, first);
                first = false;
                any = false;
                continue;
            }
            // go-yaml writes the leading comments of a collection item above its `-`; read
            // back, they are the collection's again.
            let lead: &[Node] = match item {
                Node::Map(items) => {
                    let n = items
                        .iter()
                        .take_while(|i| matches!(i, Item::Comment(_)))
                        .count();
                    for c in &items[..n] {
                        if let Item::Comment(c) = c {
                            self.comment(c, indent, first);
                            first = false;
                        }
                    }
                    &[]
                }
                Node::Seq(items) => {
                    let n = items
                        .iter()
                        .take_while(|i| matches!(i, Node::Comment(_)))
                        .count();
                    &items[..n]
                }
                _ => &[],
            };
            for c in lead {
                if let Node::Comment(c) = c {
                    self.comment(c, indent, first);
                    first = false;
                }
            }
            if !first {
                self.pad(indent);
            }
            self.out.push('-');
            match item {
                Node::Map(items) => {
                    let n = items
                        .iter()
                        .take_while(|i| matches!(i, Item::Comment(_)))
                        .count();
                    self.seq_item_value(&Node::Map(items[n..].to_vec()), indent);
                }
                Node::Seq(items) => {
                    let n = items
                        .iter()
                        .take_while(|i| matches!(i, Node::Comment(_)))
                        .count();
                    self.seq_item_value(&Node::Seq(items[n..].to_vec()), indent);
                }
                _ => self.seq_item_value(item, indent),
            }
            first = false;
            any = true;
        }
        if !any && self.out.ends_with(self.nl) {
            let n = self.out.len() - self.nl.len();
            self.out.truncate(n);
        }
    }

    /// What follows the `-` of an item at column `indent`.
    pub fn seq_item_value(&mut self, item: &Node, indent: usize) {
        match item {
            Node::Map(items) if has_values_map(items) => {
                self.out.push(' ');
                self.map(items, indent + 2, true);
            }
            Node::Seq(items) if has_values_seq(items) => {
                self.out.push(' ');
                self.seq(items, indent + 2, true);
            }
            Node::Map(_) => self.out.push_str(" {}"),
            Node::Seq(_) => self.out.push_str(" []"),
            Node::Scalar(s) => {
                self.out.push(' ');
                self.scalar(s, indent, seq_item_content(indent));
            }
            Node::Comment(c) => {
                self.out.push(' ');
                self.out.push_str(&double_quoted(c));
            }
        }
    }
}

/// Where go-yaml puts the content of a block scalar that is a sequence item whose `-` is at
/// column `dash`: just past the `- `, whatever the indentation step (its emitter indents
/// "inside a sequence" by 2).
pub fn seq_item_content(dash: usize) -> usize {
    dash + 2
}

fn has_values_map(items: &[Item]) -> bool {
    items.iter().any(|i| matches!(i, Item::Pair(..)))
}

fn has_values_seq(items: &[Node]) -> bool {
    items.iter().any(|i| !matches!(i, Node::Comment(_)))
}

/// A value in flow style (`{a: 1, b: [x]}`), for flow collections that changed shape.
pub fn flow(node: &Node, out: &mut String) {
    match node {
        Node::Map(items) => {
            out.push('{');
            let mut first = true;
            for item in items {
                if let Item::Pair(k, v) = item {
                    if !first {
                        out.push_str(", ");
                    }
                    first = false;
                    out.push_str(&flow_key(k));
                    out.push_str(": ");
                    flow(v, out);
                }
            }
            out.push('}');
        }
        Node::Seq(items) => {
            out.push('[');
            let mut first = true;
            for item in items {
                if matches!(item, Node::Comment(_)) {
                    continue;
                }
                if !first {
                    out.push_str(", ");
                }
                first = false;
                flow(item, out);
            }
            out.push(']');
        }
        Node::Scalar(s) => out.push_str(&inline_scalar(s, true)),
        Node::Comment(c) => out.push_str(&double_quoted(c)),
    }
}

fn flow_key(k: &str) -> String {
    inline_scalar(&Scalar::str(k), true)
}

pub fn key_text(k: &str) -> String {
    inline_scalar(&Scalar::str(k), false)
}

/// The text of a string that would go in a block scalar: multi-line strings only.
pub fn block_candidate(s: &Scalar) -> Option<&str> {
    if !matches!(s.kind, Kind::Str | Kind::Bytes) {
        return None;
    }
    let text = s.text()?;
    text.contains('\n').then_some(text)
}

/// A scalar on one line: plain when go-yaml would write it plain, else single- or
/// double-quoted. Non-string kinds are written as their text.
pub fn inline_scalar(s: &Scalar, in_flow: bool) -> String {
    match s.kind {
        Kind::Str | Kind::Bytes => {}
        Kind::Null if s.value.is_empty() => return "null".to_string(),
        // sops encrypts a bool as `True`/`False` and prints it as go-yaml does, `true`/`false`;
        // a bool written `True` in a file enseal encrypted comes back through its layout.
        Kind::Bool if s.value == b"True" => return "true".to_string(),
        Kind::Bool if s.value == b"False" => return "false".to_string(),
        // Go formats these floats as NaN and ±Inf (the plaintext sops encrypts); go-yaml prints
        // them as YAML spells them, which a plain `NaN` is not (YAML 1.2 reads it as a string).
        Kind::Float if s.value == b"NaN" => return ".nan".to_string(),
        Kind::Float if s.value == b"+Inf" || s.value == b"Inf" => return ".inf".to_string(),
        Kind::Float if s.value == b"-Inf" => return "-.inf".to_string(),
        _ => return String::from_utf8_lossy(&s.value).into_owned(),
    }
    let text = match s.text() {
        Some(t) => t,
        None => return double_quoted(&String::from_utf8_lossy(&s.value)),
    };
    if plain_ok(text, in_flow) {
        text.to_string()
    } else if resolve::plain_kind(text) != Kind::Str
        || resolve::is_old_bool(text)
        || resolve::is_base60_float(text)
    {
        // go-yaml asks for double quotes outright when plain text would change type.
        double_quoted(text)
    } else if single_ok(text) {
        single_quoted(text)
    } else {
        double_quoted(text)
    }
}

/// Characters YAML can print as they are (libyaml's `is_printable`), tab excluded.
fn printable(c: char) -> bool {
    matches!(c, '\n' | '\u{20}'..='\u{7e}' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
        && c != '\u{feff}'
}

/// Whether `text` may be written as a plain scalar and read back as the same string. go-yaml
/// also quotes YAML 1.1 booleans (`yes`) and base-60 numbers (`1:20`); the lossless writer
/// leaves those plain where they were plain, as YAML 1.2 (and sops) read them as strings.
pub fn plain_ok(text: &str, in_flow: bool) -> bool {
    plain_ok_lossless(text, in_flow)
        && !resolve::is_old_bool(text)
        && !resolve::is_base60_float(text)
}

pub fn plain_ok_lossless(text: &str, in_flow: bool) -> bool {
    plain_syntax_ok(text, in_flow) && resolve::plain_kind(text) == Kind::Str
}

/// Whether `text` reads back as itself when written plain (its type aside: a `!!str` tag makes
/// `4` a string).
pub fn plain_syntax_ok(text: &str, in_flow: bool) -> bool {
    if text.is_empty()
        || text.starts_with([' ', '\t'])
        || text.ends_with([' ', '\t'])
        || text.starts_with("---")
        || text.starts_with("...")
        || !all_printable(text)
        || text.contains('\n')
    {
        return false;
    }
    // Every indicator is ASCII, so bytes will do (UTF-8 continuation bytes never match).
    let b = text.as_bytes();
    let ws = |i: usize| b.get(i).is_none_or(|&n| n == b' ' || n == b'\t');
    match b[0] {
        b'#' | b',' | b'[' | b']' | b'{' | b'}' | b'&' | b'*' | b'!' | b'|' | b'>' | b'\''
        | b'"' | b'%' | b'@' | b'`' => return false,
        b'?' | b':' if in_flow || ws(1) => return false,
        b'-' if ws(1) => return false,
        _ => {}
    }
    for i in 1..b.len() {
        match b[i] {
            b',' | b'?' | b'[' | b']' | b'{' | b'}' if in_flow => return false,
            b':' if in_flow || ws(i + 1) => return false,
            b'#' if b[i - 1] == b' ' || b[i - 1] == b'\t' => return false,
            _ => {}
        }
    }
    true
}

/// [`printable`] for a whole string, with a fast path for plain ASCII.
fn all_printable(text: &str) -> bool {
    if text.bytes().all(|c| (0x20..0x7f).contains(&c)) {
        return true;
    }
    text.chars().all(printable)
}

pub fn single_ok(text: &str) -> bool {
    !text.contains('\n') && all_printable(text)
}

pub fn single_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

pub fn double_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if printable(c) => out.push(c),
            c if (c as u32) <= 0xff => out.push_str(&format!("\\x{:02X}", c as u32)),
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// The chomping indicator a literal block needs to give back exactly `text`'s final breaks.
pub fn chomping(text: &str) -> &'static str {
    if !text.ends_with('\n') {
        "-"
    } else if text.ends_with("\n\n") || text == "\n" {
        "+"
    } else {
        ""
    }
}

/// Whether a literal block can hold `text` (libyaml's rules: no trailing spaces before a line
/// break or at the end, only printable characters).
pub fn literal_ok(text: &str) -> bool {
    !text.contains(" \n") && !text.ends_with(' ') && text.chars().all(printable)
}

/// The content lines of a literal block holding `text` at `content_indent`, joined by `nl`,
/// without the final line break.
pub fn literal_content(text: &str, content_indent: usize, nl: &str) -> String {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut out = String::with_capacity(body.len() + 16);
    for (i, line) in body.split('\n').enumerate() {
        if i > 0 {
            out.push_str(nl);
        }
        if !line.is_empty() {
            out.extend(std::iter::repeat_n(' ', content_indent));
            out.push_str(line);
        }
    }
    out
}

/// Header and content of a literal block for `text`, or `None` when a literal cannot hold it.
pub fn literal_block(
    text: &str,
    parent_indent: usize,
    content_indent: usize,
    nl: &str,
) -> Option<(String, String)> {
    if !literal_ok(text) {
        return None;
    }
    let mut header = String::from("|");
    if text.starts_with([' ', '\n']) {
        let digit = content_indent.checked_sub(parent_indent)?;
        if !(1..=9).contains(&digit) {
            return None;
        }
        header.push_str(&digit.to_string());
    }
    header.push_str(chomping(text));
    Some((header, literal_content(text, content_indent, nl)))
}
