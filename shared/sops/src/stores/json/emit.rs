//! Writing values as JSON text: sops' canonical layout, and new structure in a lossless write.

use super::parse::{decode_string_token, Source};
use super::splice::{child_path, first_member, lossy};
use super::unrepresentable;
use crate::format::tree::{Item, Kind, Node, Scalar};
use crate::stores::{StoreError, WriteOptions};

/// How new structure is laid out: the document's own style in a lossless write, sops' otherwise.
pub(super) struct Style {
    /// One level of indentation; `None` writes new structure on one line.
    pub(super) unit: Option<String>,
    pub(super) newline: &'static str,
    /// Between a key and its value, e.g. `: `.
    pub(super) colon: String,
    /// Between members on one line, e.g. `, `.
    pub(super) inline_sep: String,
    /// Go's escaping (as sops writes) rather than the minimal one.
    pub(super) go_escape: bool,
    /// Whether a string's sealed source text ([`Scalar::layout`]) is written back: in a
    /// lossless write, not in sops' canonical one.
    pub(super) keep_layouts: bool,
}

impl Style {
    pub(super) fn canonical(options: &WriteOptions) -> Style {
        Style {
            unit: Some(options.indent.map_or("\t".to_string(), |n| " ".repeat(n))),
            newline: "\n",
            colon: ": ".into(),
            inline_sep: ", ".into(),
            go_escape: true,
            keep_layouts: false,
        }
    }

    pub(super) fn infer(src: &Source, options: &WriteOptions) -> Style {
        let text = &src.text;
        let root = &src.root;
        let default_unit = options.indent.map_or("\t".to_string(), |n| " ".repeat(n));
        let mut style = Style {
            unit: Some(default_unit),
            newline: if text.windows(2).any(|w| w == b"\r\n") {
                "\r\n"
            } else {
                "\n"
            },
            colon: ": ".into(),
            inline_sep: ", ".into(),
            go_escape: false,
            keep_layouts: true,
        };
        if let Some(first) = first_member(root) {
            style.colon = lossy(&text[first.key_end..first.value.start()]);
        }
        if let Some(first) = root.members.first() {
            let prefix = &text[root.open + 1..first.start];
            match prefix.iter().rposition(|b| *b == b'\n') {
                Some(nl) => style.unit = Some(lossy(&prefix[nl + 1..])),
                None => {
                    style.unit = None;
                    if let Some(second) = root.members.get(1) {
                        style.inline_sep = lossy(&text[first.value.end()..second.start]);
                    }
                }
            }
        }
        style
    }
}

pub(super) fn render_member(
    key: &str,
    value: &Node,
    indent: &str,
    style: &Style,
    path: &str,
    out: &mut String,
) -> Result<(), StoreError> {
    quote_into(key, style.go_escape, out);
    out.push_str(&style.colon);
    render_value(value, indent, style, path, out)
}

/// Writes a mapping (plus an optional extra last member) at indentation `indent`.
pub(super) fn render_map(
    items: &[Item],
    extra: Option<(&str, &Node)>,
    indent: &str,
    style: &Style,
    path: &str,
    out: &mut String,
) -> Result<(), StoreError> {
    let pairs: Vec<(&str, &Node)> = items
        .iter()
        .filter_map(|i| match i {
            Item::Pair(k, v) => Some((k.as_str(), v)),
            Item::Comment(_) => None,
        })
        .chain(extra)
        .collect();
    if pairs.is_empty() {
        out.push_str("{}");
        return Ok(());
    }
    let inner = style.unit.as_ref().map(|u| format!("{indent}{u}"));
    out.push('{');
    for (n, (key, value)) in pairs.into_iter().enumerate() {
        separator(n, inner.as_deref(), style, out);
        let sub = child_path(path, key);
        render_member(key, value, inner.as_deref().unwrap_or(""), style, &sub, out)?;
    }
    closing(indent, style, out);
    out.push('}');
    Ok(())
}

pub(super) fn separator(n: usize, inner: Option<&str>, style: &Style, out: &mut String) {
    match inner {
        Some(inner) => {
            if n > 0 {
                out.push(',');
            }
            out.push_str(style.newline);
            out.push_str(inner);
        }
        None => {
            if n > 0 {
                out.push(',');
                out.push_str(style.inline_sep.trim_start_matches(','));
            }
        }
    }
}

pub(super) fn closing(indent: &str, style: &Style, out: &mut String) {
    if style.unit.is_some() {
        out.push_str(style.newline);
        out.push_str(indent);
    }
}

pub(super) fn render_value(
    node: &Node,
    indent: &str,
    style: &Style,
    path: &str,
    out: &mut String,
) -> Result<(), StoreError> {
    match node {
        Node::Map(items) => render_map(items, None, indent, style, path, out),
        Node::Seq(nodes) => {
            let values: Vec<&Node> = nodes
                .iter()
                .filter(|n| !matches!(n, Node::Comment(_)))
                .collect();
            if values.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            let inner = style.unit.as_ref().map(|u| format!("{indent}{u}"));
            out.push('[');
            for (n, value) in values.into_iter().enumerate() {
                separator(n, inner.as_deref(), style, out);
                render_value(value, inner.as_deref().unwrap_or(""), style, path, out)?;
            }
            closing(indent, style, out);
            out.push(']');
            Ok(())
        }
        Node::Scalar(s) => render_scalar(s, style, path, out),
        Node::Comment(_) => Err(unrepresentable(format!(
            "a comment stands as the value of {path:?}"
        ))),
    }
}

pub(super) fn render_scalar(
    s: &Scalar,
    style: &Style,
    path: &str,
    out: &mut String,
) -> Result<(), StoreError> {
    match s.kind {
        Kind::Str | Kind::Time | Kind::Bytes => match s.layout.as_deref() {
            Some(layout) if s.kind == Kind::Str && style.keep_layouts && spells(layout, s) => {
                out.push_str(layout)
            }
            _ => quote_into(&String::from_utf8_lossy(&s.value), style.go_escape, out),
        },
        Kind::Null => out.push_str("null"),
        Kind::Bool => {
            let yes = s.text().is_some_and(|t| t.eq_ignore_ascii_case("true"));
            out.push_str(if yes { "true" } else { "false" });
        }
        Kind::Int | Kind::Float => {
            let text = s.text().and_then(json_number).ok_or_else(|| {
                unrepresentable(format!("the number at {path:?} has no JSON spelling"))
            })?;
            out.push_str(&text);
        }
    }
    Ok(())
}

/// Whether a sealed layout is a JSON string spelling `s`'s value: a layout that another store
/// made (a YAML block scalar) or that no longer matches an edited value is not written.
pub(super) fn spells(layout: &str, s: &Scalar) -> bool {
    decode_string_token(layout).is_some_and(|v| v.as_bytes() == s.value.as_slice())
}

pub(super) fn is_json_number(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_len = i - int_start;
    if int_len == 0 || (int_len > 1 && b[int_start] == b'0') {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let from = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == from {
            return false;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let from = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == from {
            return false;
        }
    }
    i == b.len()
}

/// The JSON spelling of a number written in another format (YAML `0x1F`, `1_000`, `+1`, `1.`).
pub(super) fn json_number(text: &str) -> Option<String> {
    if is_json_number(text) {
        return Some(text.to_string());
    }
    let cleaned: String = text.chars().filter(|c| *c != '_').collect();
    let (neg, digits) = match cleaned.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, cleaned.strip_prefix('+').unwrap_or(&cleaned)),
    };
    let sign = if neg { "-" } else { "" };
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(d) = digits.strip_prefix(prefix) {
            return u128::from_str_radix(d, radix)
                .ok()
                .map(|v| format!("{sign}{v}"));
        }
    }
    let candidate = format!("{sign}{digits}");
    if is_json_number(&candidate) {
        return Some(candidate);
    }
    let value: f64 = candidate.parse().ok()?;
    value.is_finite().then(|| format!("{value}"))
}

/// Quotes a string. Go's `encoding/json` (what sops writes) also escapes `<`, `>`, `&`,
/// U+2028 and U+2029; the minimal form only escapes what JSON requires.
pub(super) fn quote_into(s: &str, go_escape: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' if go_escape => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
