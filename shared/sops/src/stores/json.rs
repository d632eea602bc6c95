//! JSON files, read losslessly.
//!
//! A small parser of its own keeps the byte span of every value, so that a write with the
//! original only splices the values that changed: indentation, key order, number spelling
//! (`9007199254740993`, `1.50`) and escapes of untouched strings stay as they were. sops 3.11
//! types every JSON number as `float`; the number's text is kept in the scalar and the core
//! derives what sops hashes from it. The canonical layout (no original) is sops': tab
//! indentation, `": "`, Go's string escaping (`<` as `\u003c`) and a final newline.

use std::any::Any;

use super::{Format, Parsed, Store, StoreError, WriteOptions};
use crate::format::tree::{Item, Kind, Node, Scalar, Tree};

pub struct JsonStore;

const FORMAT: &str = "json";
/// Deeper nesting is refused rather than risking the stack on hostile input.
pub const MAX_DEPTH: usize = 512;
const METADATA_KEY: &str = "sops";

/// A parsed value with the byte positions it came from.
pub(crate) enum JValue {
    Object(JObject),
    Array(JArray),
    Scalar {
        start: usize,
        end: usize,
        scalar: Scalar,
    },
}

pub(crate) struct JObject {
    /// Index of `{` and of `}`.
    open: usize,
    close: usize,
    members: Vec<JMember>,
}

pub(crate) struct JMember {
    key: String,
    /// Index of the key's opening quote, and just past its closing quote.
    start: usize,
    key_end: usize,
    value: JValue,
}

pub(crate) struct JArray {
    open: usize,
    close: usize,
    elems: Vec<JValue>,
}

impl JValue {
    fn start(&self) -> usize {
        match self {
            JValue::Object(o) => o.open,
            JValue::Array(a) => a.open,
            JValue::Scalar { start, .. } => *start,
        }
    }

    fn end(&self) -> usize {
        match self {
            JValue::Object(o) => o.close + 1,
            JValue::Array(a) => a.close + 1,
            JValue::Scalar { end, .. } => *end,
        }
    }
}

/// What [`JsonStore::parse`] remembers of the original bytes.
pub(crate) struct Source {
    text: Vec<u8>,
    root: JObject,
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    depth: usize,
}

fn syntax_at(src: &[u8], at: usize, message: impl Into<String>) -> StoreError {
    let at = at.min(src.len());
    let before = &src[..at];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p + 1);
    // Columns count characters, not bytes (continuation bytes are not counted).
    let column = before[line_start..]
        .iter()
        .filter(|b| (**b & 0xC0) != 0x80)
        .count()
        + 1;
    StoreError::Syntax {
        format: FORMAT,
        line: Some(line),
        column: Some(column),
        message: message.into(),
    }
}

impl<'a> Parser<'a> {
    fn err(&self, at: usize, message: impl Into<String>) -> StoreError {
        syntax_at(self.src, at, message)
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), StoreError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    fn unexpected(&self, what: &str) -> StoreError {
        match self.peek() {
            None => self.err(
                self.pos,
                format!("unexpected end of input, expected {what}"),
            ),
            Some(b) if b.is_ascii_graphic() => self.err(
                self.pos,
                format!("unexpected character '{}', expected {what}", b as char),
            ),
            Some(_) => self.err(self.pos, format!("unexpected character, expected {what}")),
        }
    }

    fn enter(&mut self) -> Result<(), StoreError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(self.pos, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn value(&mut self) -> Result<JValue, StoreError> {
        match self.peek() {
            Some(b'{') => Ok(JValue::Object(self.object()?)),
            Some(b'[') => self.array(),
            Some(b'"') => {
                let start = self.pos;
                let s = self.string()?;
                let mut scalar = Scalar::str(s);
                scalar.layout = string_layout(&self.src[start..self.pos], &scalar.value);
                Ok(JValue::Scalar {
                    start,
                    end: self.pos,
                    scalar,
                })
            }
            Some(b't') => self.literal("true", Kind::Bool),
            Some(b'f') => self.literal("false", Kind::Bool),
            Some(b'n') => self.literal("null", Kind::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.unexpected("a value")),
        }
    }

    fn literal(&mut self, word: &str, kind: Kind) -> Result<JValue, StoreError> {
        let start = self.pos;
        if self.src[start..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(JValue::Scalar {
                start,
                end: self.pos,
                scalar: Scalar::new(kind, word),
            })
        } else {
            Err(self.err(start, "invalid literal (expected true, false or null)"))
        }
    }

    fn digits(&mut self) -> usize {
        let from = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - from
    }

    fn number(&mut self) -> Result<JValue, StoreError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err(self.pos, "invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err(self.pos, "invalid number: digits expected after '.'"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err(self.pos, "invalid number: digits expected in exponent"));
            }
        }
        let text = String::from_utf8_lossy(&self.src[start..self.pos]).into_owned();
        Ok(JValue::Scalar {
            start,
            end: self.pos,
            scalar: Scalar::new(Kind::Float, text),
        })
    }

    fn hex4(&mut self) -> Result<u32, StoreError> {
        let at = self.pos;
        let digits = self
            .src
            .get(at..at + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.err(at, "invalid \\u escape"))?;
        let value =
            u32::from_str_radix(digits, 16).map_err(|_| self.err(at, "invalid \\u escape"))?;
        self.pos += 4;
        Ok(value)
    }

    fn string(&mut self) -> Result<String, StoreError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            let run = std::str::from_utf8(&self.src[run_start..self.pos])
                .map_err(|e| self.err(run_start + e.valid_up_to(), "string is not valid UTF-8"))?;
            out.push_str(run);
            match self.peek() {
                None => return Err(self.err(open, "unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let at = self.pos;
                    self.pos += 1;
                    let Some(esc) = self.peek() else {
                        return Err(self.err(open, "unterminated string"));
                    };
                    self.pos += 1;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape()?),
                        _ => return Err(self.err(at, "invalid escape sequence")),
                    }
                }
                Some(_) => {
                    return Err(self.err(self.pos, "control character inside a string"));
                }
            }
        }
    }

    /// A `\uXXXX` escape (after the `u`), joining surrogate pairs. A lone surrogate becomes
    /// U+FFFD, as Go's decoder (and so sops) reads it.
    fn unicode_escape(&mut self) -> Result<char, StoreError> {
        let first = self.hex4()?;
        if (0xD800..0xDC00).contains(&first) && self.src[self.pos..].starts_with(b"\\u") {
            let save = self.pos;
            self.pos += 2;
            let second = self.hex4()?;
            if (0xDC00..0xE000).contains(&second) {
                let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                return Ok(char::from_u32(code).unwrap_or('\u{FFFD}'));
            }
            self.pos = save;
        }
        Ok(char::from_u32(first).unwrap_or('\u{FFFD}'))
    }

    fn object(&mut self) -> Result<JObject, StoreError> {
        self.enter()?;
        let open = self.pos;
        self.pos += 1;
        let mut members: Vec<JMember> = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(JObject {
                open,
                close: self.pos - 1,
                members,
            });
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.unexpected("a string key"));
            }
            let start = self.pos;
            let key = self.string()?;
            let key_end = self.pos;
            if members.iter().any(|m| m.key == key) {
                return Err(self.err(start, format!("duplicate key {key:?}")));
            }
            self.skip_ws();
            self.expect(b':', "':'")?;
            self.skip_ws();
            let value = self.value()?;
            members.push(JMember {
                key,
                start,
                key_end,
                value,
            });
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(JObject {
                        open,
                        close: self.pos - 1,
                        members,
                    });
                }
                _ => return Err(self.unexpected("',' or '}'")),
            }
        }
    }

    fn array(&mut self) -> Result<JValue, StoreError> {
        self.enter()?;
        let open = self.pos;
        self.pos += 1;
        let mut elems = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                elems.push(self.value()?);
                self.skip_ws();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b']') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.unexpected("',' or ']'")),
                }
            }
        }
        self.depth -= 1;
        Ok(JValue::Array(JArray {
            open,
            close: self.pos - 1,
            elems,
        }))
    }
}

/// The string token's source text when the writer's minimal escaping would spell `value`
/// otherwise (`"\u00e9"`, `"\/"`): sealed with the value, it lets decrypting give the same bytes
/// back. `None` in every other case, since a layout costs ciphertext.
fn string_layout(token: &[u8], value: &[u8]) -> Option<String> {
    let value = std::str::from_utf8(value).ok()?;
    let mut minimal = String::with_capacity(token.len());
    quote_into(value, false, &mut minimal);
    if minimal.as_bytes() == token {
        return None;
    }
    std::str::from_utf8(token).ok().map(str::to_string)
}

/// The value of `text` when it is exactly one JSON string token.
fn decode_string_token(text: &str) -> Option<String> {
    let mut p = Parser {
        src: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    if p.peek() != Some(b'"') {
        return None;
    }
    let value = p.string().ok()?;
    (p.pos == text.len()).then_some(value)
}

/// Parses a whole document whose top level must be an object.
fn parse_document(src: &[u8]) -> Result<JObject, StoreError> {
    let mut p = Parser {
        src,
        pos: 0,
        depth: 0,
    };
    p.skip_ws();
    let root = match p.peek() {
        Some(b'{') => p.object()?,
        Some(b'[') => {
            return Err(p.err(
                p.pos,
                "the top-level value is an array; sops only accepts an object",
            ))
        }
        None => return Err(p.err(p.pos, "empty document; expected an object")),
        _ => return Err(p.unexpected("an object")),
    };
    p.skip_ws();
    if p.pos < src.len() {
        return Err(p.err(p.pos, "unexpected content after the top-level object"));
    }
    Ok(root)
}

fn to_node(value: &JValue) -> Node {
    match value {
        JValue::Object(o) => Node::Map(
            o.members
                .iter()
                .map(|m| Item::Pair(m.key.clone(), to_node(&m.value)))
                .collect(),
        ),
        JValue::Array(a) => Node::Seq(a.elems.iter().map(to_node).collect()),
        JValue::Scalar { scalar, .. } => Node::Scalar(scalar.clone()),
    }
}

/// The metadata as a generic node: integers are `Int`, other numbers `Float`.
fn to_metadata_node(value: &JValue) -> Node {
    match value {
        JValue::Object(o) => Node::Map(
            o.members
                .iter()
                .map(|m| Item::Pair(m.key.clone(), to_metadata_node(&m.value)))
                .collect(),
        ),
        JValue::Array(a) => Node::Seq(a.elems.iter().map(to_metadata_node).collect()),
        JValue::Scalar { scalar, .. } if scalar.kind == Kind::Float => {
            let integral = !scalar.value.iter().any(|b| matches!(b, b'.' | b'e' | b'E'));
            let kind = if integral { Kind::Int } else { Kind::Float };
            Node::Scalar(Scalar::from_bytes(kind, scalar.value.clone()))
        }
        JValue::Scalar { scalar, .. } => Node::Scalar(scalar.clone()),
    }
}

/// Parses JSON bytes into a tree and the metadata; also used by the binary store.
pub(crate) fn parse_json(bytes: &[u8]) -> Result<(Tree, Option<Node>, Source), StoreError> {
    let root = parse_document(bytes)?;
    let mut items = Vec::new();
    let mut metadata = None;
    for m in &root.members {
        if m.key == METADATA_KEY {
            if !matches!(m.value, JValue::Object(_)) {
                return Err(syntax_at(
                    bytes,
                    m.start,
                    "the top-level key \"sops\" is reserved for sops metadata and must be an object",
                ));
            }
            metadata = Some(to_metadata_node(&m.value));
        } else {
            items.push(Item::Pair(m.key.clone(), to_node(&m.value)));
        }
    }
    let tree = Tree {
        documents: vec![Node::Map(items)],
    };
    let source = Source {
        text: bytes.to_vec(),
        root,
    };
    Ok((tree, metadata, source))
}

impl Store for JsonStore {
    fn format(&self) -> Format {
        Format::Json
    }

    fn parse(&self, bytes: &[u8]) -> Result<Parsed, StoreError> {
        let (tree, metadata, source) = parse_json(bytes)?;
        Ok(Parsed {
            tree,
            metadata,
            source: Some(Box::new(source) as Box<dyn Any + Send + Sync>),
        })
    }

    fn write(
        &self,
        tree: &Tree,
        metadata: Option<&Node>,
        original: Option<&Parsed>,
        options: &WriteOptions,
    ) -> Result<Vec<u8>, StoreError> {
        let source = original
            .and_then(|p| p.source.as_ref())
            .and_then(|s| s.downcast_ref::<Source>());
        write_json(tree, metadata, source, options)
    }
}

fn unrepresentable(message: impl Into<String>) -> StoreError {
    StoreError::Unrepresentable {
        format: FORMAT,
        message: message.into(),
    }
}

pub(crate) fn write_json(
    tree: &Tree,
    metadata: Option<&Node>,
    source: Option<&Source>,
    options: &WriteOptions,
) -> Result<Vec<u8>, StoreError> {
    let items: &[Item] = match tree.documents.as_slice() {
        [] => &[],
        [Node::Map(items)] => items,
        [_] => {
            return Err(unrepresentable(
                "the document is not a mapping (sops JSON files are objects)",
            ))
        }
        _ => return Err(unrepresentable("a JSON file holds exactly one document")),
    };
    let extra = metadata.map(|md| (METADATA_KEY, md));
    match source {
        Some(src) => {
            let style = Style::infer(src, options);
            let w = Lossless {
                src: &src.text,
                style: &style,
            };
            let mut out = Vec::new();
            let root = &src.root;
            out.extend_from_slice(&src.text[..root.open]);
            w.object(items, root, "", extra, "", &mut out)?;
            out.extend_from_slice(&src.text[root.close + 1..]);
            Ok(out)
        }
        None => {
            let style = Style::canonical(options);
            let mut out = String::new();
            render_map(items, extra, "", &style, "", &mut out)?;
            out.push('\n');
            Ok(out.into_bytes())
        }
    }
}

/// How new structure is laid out: the document's own style in a lossless write, sops' otherwise.
struct Style {
    /// One level of indentation; `None` writes new structure on one line.
    unit: Option<String>,
    newline: &'static str,
    /// Between a key and its value, e.g. `: `.
    colon: String,
    /// Between members on one line, e.g. `, `.
    inline_sep: String,
    /// Go's escaping (as sops writes) rather than the minimal one.
    go_escape: bool,
    /// Whether a string's sealed source text ([`Scalar::layout`]) is written back: in a
    /// lossless write, not in sops' canonical one.
    keep_layouts: bool,
}

impl Style {
    fn canonical(options: &WriteOptions) -> Style {
        Style {
            unit: Some(options.indent.map_or("\t".to_string(), |n| " ".repeat(n))),
            newline: "\n",
            colon: ": ".into(),
            inline_sep: ", ".into(),
            go_escape: true,
            keep_layouts: false,
        }
    }

    fn infer(src: &Source, options: &WriteOptions) -> Style {
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

fn first_member(obj: &JObject) -> Option<&JMember> {
    obj.members.first()
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

struct Lossless<'a> {
    src: &'a [u8],
    style: &'a Style,
}

/// Where a written member or element came from: the original's index, if it had one.
struct Piece {
    orig: Option<usize>,
    text: Vec<u8>,
}

impl Lossless<'_> {
    fn indent_of(&self, open: usize, first_start: Option<usize>, outer: &str) -> String {
        if let Some(first) = first_start {
            let prefix = &self.src[open + 1..first];
            if let Some(nl) = prefix.iter().rposition(|b| *b == b'\n') {
                return lossy(&prefix[nl + 1..]);
            }
        }
        match &self.style.unit {
            Some(unit) => format!("{outer}{unit}"),
            None => String::new(),
        }
    }

    /// Joins the pieces with the original separators where two originally adjacent pieces meet.
    #[allow(clippy::too_many_arguments)]
    fn join(
        &self,
        pieces: Vec<Piece>,
        open: usize,
        close: usize,
        bounds: &[(usize, usize)],
        inner: &str,
        outer: &str,
        brackets: (u8, u8),
        out: &mut Vec<u8>,
    ) {
        if pieces.is_empty() {
            if bounds.is_empty() {
                out.extend_from_slice(&self.src[open..=close]);
            } else {
                out.extend_from_slice(&[brackets.0, brackets.1]);
            }
            return;
        }
        let (prefix, generic_sep, suffix): (Vec<u8>, Vec<u8>, Vec<u8>) = match bounds {
            [] => match &self.style.unit {
                Some(_) => {
                    let nl = self.style.newline;
                    (
                        format!("{}{nl}{inner}", brackets.0 as char).into_bytes(),
                        format!(",{nl}{inner}").into_bytes(),
                        format!("{nl}{outer}{}", brackets.1 as char).into_bytes(),
                    )
                }
                None => (
                    vec![brackets.0],
                    format!(",{}", self.style.inline_sep.trim_start_matches(',')).into_bytes(),
                    vec![brackets.1],
                ),
            },
            [first, rest @ ..] => {
                let prefix = self.src[open..first.0].to_vec();
                let sep = match rest.first() {
                    Some(second) => self.src[first.1..second.0].to_vec(),
                    None => {
                        let mut s = vec![b','];
                        s.extend_from_slice(&self.src[open + 1..first.0]);
                        s
                    }
                };
                let last = bounds[bounds.len() - 1];
                (prefix, sep, self.src[last.1..=close].to_vec())
            }
        };
        out.extend_from_slice(&prefix);
        let mut prev: Option<Option<usize>> = None;
        for piece in pieces {
            if let Some(prev) = prev {
                match (prev, piece.orig) {
                    (Some(a), Some(b)) if b == a + 1 => {
                        out.extend_from_slice(&self.src[bounds[a].1..bounds[b].0])
                    }
                    _ => out.extend_from_slice(&generic_sep),
                }
            }
            out.extend_from_slice(&piece.text);
            prev = Some(piece.orig);
        }
        out.extend_from_slice(&suffix);
    }

    fn object(
        &self,
        items: &[Item],
        orig: &JObject,
        outer: &str,
        extra: Option<(&str, &Node)>,
        path: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        let inner = self.indent_of(orig.open, orig.members.first().map(|m| m.start), outer);
        let mut used = vec![false; orig.members.len()];
        let mut pieces = Vec::new();
        for item in items {
            let Item::Pair(key, value) = item else {
                continue;
            };
            let sub = child_path(path, key);
            let found = orig
                .members
                .iter()
                .enumerate()
                .position(|(i, m)| !used[i] && m.key == *key);
            let mut text = Vec::new();
            match found {
                Some(i) => {
                    used[i] = true;
                    let m = &orig.members[i];
                    text.extend_from_slice(&self.src[m.start..m.value.start()]);
                    self.value(value, &m.value, &inner, &sub, &mut text)?;
                }
                None => {
                    let mut s = String::new();
                    render_member(key, value, &inner, self.style, &sub, &mut s)?;
                    text = s.into_bytes();
                }
            }
            pieces.push(Piece { orig: found, text });
        }
        if let Some((key, value)) = extra {
            let mut s = String::new();
            render_member(key, value, &inner, self.style, key, &mut s)?;
            pieces.push(Piece {
                orig: None,
                text: s.into_bytes(),
            });
        }
        let bounds: Vec<(usize, usize)> = orig
            .members
            .iter()
            .map(|m| (m.start, m.value.end()))
            .collect();
        self.join(
            pieces,
            orig.open,
            orig.close,
            &bounds,
            &inner,
            outer,
            (b'{', b'}'),
            out,
        );
        Ok(())
    }

    fn array(
        &self,
        nodes: &[Node],
        orig: &JArray,
        outer: &str,
        path: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        let inner = self.indent_of(orig.open, orig.elems.first().map(|e| e.start()), outer);
        let mut pieces = Vec::new();
        let values = nodes.iter().filter(|n| !matches!(n, Node::Comment(_)));
        for (i, node) in values.enumerate() {
            let mut text = Vec::new();
            let orig_index = match orig.elems.get(i) {
                Some(elem) => {
                    self.value(node, elem, &inner, path, &mut text)?;
                    Some(i)
                }
                None => {
                    let mut s = String::new();
                    render_value(node, &inner, self.style, path, &mut s)?;
                    text = s.into_bytes();
                    None
                }
            };
            pieces.push(Piece {
                orig: orig_index,
                text,
            });
        }
        let bounds: Vec<(usize, usize)> = orig.elems.iter().map(|e| (e.start(), e.end())).collect();
        self.join(
            pieces,
            orig.open,
            orig.close,
            &bounds,
            &inner,
            outer,
            (b'[', b']'),
            out,
        );
        Ok(())
    }

    fn value(
        &self,
        node: &Node,
        orig: &JValue,
        indent: &str,
        path: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        match (node, orig) {
            (Node::Map(items), JValue::Object(o)) => self.object(items, o, indent, None, path, out),
            (Node::Seq(nodes), JValue::Array(a)) => self.array(nodes, a, indent, path, out),
            (Node::Scalar(s), JValue::Scalar { start, end, scalar }) if s == scalar => {
                out.extend_from_slice(&self.src[*start..*end]);
                Ok(())
            }
            _ => {
                let mut s = String::new();
                render_value(node, indent, self.style, path, &mut s)?;
                out.extend_from_slice(s.as_bytes());
                Ok(())
            }
        }
    }
}

fn render_member(
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
fn render_map(
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

fn separator(n: usize, inner: Option<&str>, style: &Style, out: &mut String) {
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

fn closing(indent: &str, style: &Style, out: &mut String) {
    if style.unit.is_some() {
        out.push_str(style.newline);
        out.push_str(indent);
    }
}

fn render_value(
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

fn render_scalar(
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
fn spells(layout: &str, s: &Scalar) -> bool {
    decode_string_token(layout).is_some_and(|v| v.as_bytes() == s.value.as_slice())
}

fn is_json_number(text: &str) -> bool {
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
fn json_number(text: &str) -> Option<String> {
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
pub(crate) fn quote_into(s: &str, go_escape: bool, out: &mut String) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Parsed {
        JsonStore.parse(text.as_bytes()).unwrap()
    }

    fn write(tree: &Tree, md: Option<&Node>, orig: Option<&Parsed>) -> String {
        let bytes = JsonStore
            .write(tree, md, orig, &WriteOptions::default())
            .unwrap();
        String::from_utf8(bytes).unwrap()
    }

    fn syntax_error(text: &str) -> (Option<usize>, Option<usize>, String) {
        match JsonStore.parse(text.as_bytes()) {
            Err(StoreError::Syntax {
                line,
                column,
                message,
                ..
            }) => (line, column, message),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("parsed: {text}"),
        }
    }

    /// Replaces every string scalar with a fake ciphertext (numbers and booleans become strings,
    /// as sops encrypts them); `restore` gives back the original tree.
    fn seal(node: &Node, counter: &mut usize) -> Node {
        match node {
            Node::Map(items) => Node::Map(
                items
                    .iter()
                    .map(|i| match i {
                        Item::Pair(k, v) => Item::Pair(k.clone(), seal(v, counter)),
                        Item::Comment(c) => Item::Comment(c.clone()),
                    })
                    .collect(),
            ),
            Node::Seq(nodes) => Node::Seq(nodes.iter().map(|n| seal(n, counter)).collect()),
            Node::Scalar(s) if s.kind == Kind::Null || s.value.is_empty() => node.clone(),
            Node::Scalar(s) => {
                *counter += 1;
                Node::str(format!(
                    "ENC[AES256_GCM,data:{counter},type:{}]",
                    s.kind.sops_name()
                ))
            }
            Node::Comment(c) => Node::Comment(c.clone()),
        }
    }

    fn sample_metadata() -> Node {
        let p = Item::Pair;
        Node::Map(vec![
            p(
                "age".into(),
                Node::Seq(vec![Node::Map(vec![
                    p("recipient".into(), Node::str("age1xyz")),
                    p("enc".into(), Node::str("-----BEGIN\nabc\n")),
                ])]),
            ),
            p("lastmodified".into(), Node::str("2026-11-28T22:49:30Z")),
            p("version".into(), Node::str("3.11.0")),
        ])
    }

    const SAMPLES: &[&str] = &[
        "{\n  \"a\": \"x<y>&\u{e9}\\n\",\n  \"n\": 9007199254740993,\n  \"f\": 1.50,\n  \"b\": true,\n  \"z\": null,\n  \"e\": \"\",\n  \"arr\": [1, \"s\", {\"k\": \"v\"}],\n  \"o\": {}\n}\n",
        "{\"a\":1,\"b\":{\"c\":[true,false]}}",
        "{\n\t\"only\": \"one\"\n}",
        "{}",
        "{}\n",
        "  {\r\n    \"crlf\" : \"v\" ,\r\n    \"x\" : [ ]\r\n  }\r\n",
        "{\"a\": \"\u{1f600} \\u0001\\t \\\" caf\u{e9}\"}",
        NON_MINIMAL,
    ];

    /// Strings whose escapes are not the writer's minimal ones: their spelling must travel as
    /// the scalar's layout.
    const NON_MINIMAL: &str = "{\n  \"e\": \"caf\\u00e9\",\n  \"slash\": \"a\\/b\",\n  \"A\": [\"\\u0041\", \"plain\"],\n  \"go\": \"x\\u003cy\\u003e\\u0026\",\n  \"upper\": \"\\u001B\",\n  \"pair\": \"\\ud83d\\ude00\",\n  \"lone\": \"\\ud800x\",\n  \"n\": 1.50\n}\n";

    /// decrypt(encrypt(x)) == x byte for byte, across layouts, including strings spelled with
    /// escapes the writer would not choose (their source text is the scalar's layout).
    #[test]
    fn round_trip_through_fake_encryption_is_byte_exact() {
        for text in SAMPLES {
            let plain = parse(text);
            let doc = &plain.tree.documents[0];
            let sealed = Tree {
                documents: vec![seal(doc, &mut 0)],
            };
            let md = sample_metadata();
            let encrypted = write(&sealed, Some(&md), Some(&plain));
            let enc_parsed = parse(&encrypted);
            assert_eq!(enc_parsed.tree, sealed, "{encrypted}");
            assert_eq!(enc_parsed.metadata.as_ref(), Some(&md), "{encrypted}");
            let back = write(&plain.tree, None, Some(&enc_parsed));
            assert_eq!(back, *text, "encrypted form was:\n{encrypted}");
        }
    }

    /// Only strings the writer would spell differently carry a layout (it costs ciphertext),
    /// and the layout is the string token exactly as written, quotes included.
    #[test]
    fn only_non_minimal_strings_carry_their_source_text() {
        let p = parse(NON_MINIMAL);
        let doc = &p.tree.documents[0];
        let layout = |key: &str| match doc.get(key) {
            Some(Node::Scalar(s)) => s.layout.clone(),
            other => panic!("{key}: {other:?}"),
        };
        assert_eq!(layout("e").as_deref(), Some("\"caf\\u00e9\""));
        assert_eq!(layout("slash").as_deref(), Some("\"a\\/b\""));
        assert_eq!(layout("upper").as_deref(), Some("\"\\u001B\""));
        assert_eq!(layout("lone").as_deref(), Some("\"\\ud800x\""));
        assert_eq!(layout("n"), None);
        let Some(Node::Seq(a)) = doc.get("A") else {
            panic!("A")
        };
        assert_eq!(
            a[0].as_scalar().and_then(|s| s.layout.as_deref()),
            Some("\"\\u0041\"")
        );
        assert_eq!(a[1].as_scalar().map(|s| s.layout.is_none()), Some(true));
        for sample in &SAMPLES[..SAMPLES.len() - 1] {
            let plain = parse(sample);
            assert_eq!(count_layouts(&plain.tree.documents[0]), 0, "{sample}");
        }
    }

    fn count_layouts(node: &Node) -> usize {
        match node {
            Node::Map(items) => items
                .iter()
                .map(|i| match i {
                    Item::Pair(_, v) => count_layouts(v),
                    Item::Comment(_) => 0,
                })
                .sum(),
            Node::Seq(nodes) => nodes.iter().map(count_layouts).sum(),
            Node::Scalar(s) => usize::from(s.layout.is_some()),
            Node::Comment(_) => 0,
        }
    }

    /// A layout is written only where it still spells the value, and only in a lossless write:
    /// an edited value, or a layout from another format (a YAML block scalar), falls back to
    /// the writer's own escaping, and sops' canonical layout stays sops'.
    #[test]
    fn a_layout_is_written_only_when_it_spells_the_value() {
        let p = parse("{\"a\": \"x\", \"b\": \"y\", \"c\": \"z\", \"d\": \"w\"}");
        let with_layout = |value: &str, layout: &str| {
            let mut s = Scalar::str(value);
            s.layout = Some(layout.into());
            Node::Scalar(s)
        };
        let tree = Tree {
            documents: vec![Node::Map(vec![
                Item::Pair("a".into(), with_layout("é", "\"\\u00e9\"")),
                Item::Pair("b".into(), with_layout("edited", "\"\\u00e9\"")),
                Item::Pair(
                    "c".into(),
                    with_layout("folded text\n", ">\n  folded\n  text\n"),
                ),
                Item::Pair("d".into(), with_layout("é", "\"\\u00e9\" trailing")),
            ])],
        };
        assert_eq!(
            write(&tree, None, Some(&p)),
            "{\"a\": \"\\u00e9\", \"b\": \"edited\", \"c\": \"folded text\\n\", \"d\": \"é\"}"
        );
        assert_eq!(
            write(&tree, None, None),
            "{\n\t\"a\": \"é\",\n\t\"b\": \"edited\",\n\t\"c\": \"folded text\\n\",\n\t\"d\": \"é\"\n}\n"
        );
    }

    /// The same round trip through the real encryption: the layouts travel sealed after the
    /// `ENC[...]` values and come back on decrypt, so the plaintext file is reproduced exactly.
    #[test]
    fn round_trip_through_real_encryption_is_byte_exact() {
        use crate::config::crypt_rule::CryptRule;
        use crate::crypto::data_key::DataKey;
        use crate::file;
        use crate::format::metadata::Metadata;
        use crate::keys::age::{self as agekeys, AgeIdentities};
        use crate::keys::groups::{self, GroupRecipients, Keyring};

        let (secret, recipient) = agekeys::generate();
        let key = DataKey::generate();
        let group = GroupRecipients {
            age: vec![recipient.parse().unwrap()],
            kms: vec![],
        };
        let (groups, _) = groups::wrap(&key, &[group], None, None).unwrap();
        let keyring = Keyring::new(AgeIdentities::parse("test", &secret).unwrap());
        for text in [NON_MINIMAL, SAMPLES[0]] {
            let mut metadata = Metadata::new(groups.clone(), CryptRule::default());
            let options = file::EncryptOptions {
                layout: file::Layout::Keep,
                unchanged: None,
                write: &WriteOptions::default(),
            };
            let encrypted =
                file::encrypt(&JsonStore, parse(text), &key, &mut metadata, &options).unwrap();
            let encrypted_text = String::from_utf8(encrypted.clone()).unwrap();
            let layouts = encrypted_text.matches("]~").count();
            let expected = if text == NON_MINIMAL { 7 } else { 0 };
            assert_eq!(layouts, expected, "{encrypted_text}");
            let parsed = JsonStore.parse(&encrypted).unwrap();
            let opened = file::open(parsed, &keyring, &file::OpenOptions::default())
                .unwrap()
                .verify()
                .unwrap();
            let back = write(&opened.parsed.tree, None, Some(&opened.parsed));
            assert_eq!(back, text, "encrypted form was:\n{encrypted_text}");
        }
    }

    #[test]
    fn metadata_is_appended_in_the_document_style() {
        let plain = parse("{\n  \"a\": 1\n}\n");
        let md = Node::Map(vec![Item::Pair("version".into(), Node::str("3.11.0"))]);
        assert_eq!(
            write(&plain.tree, Some(&md), Some(&plain)),
            "{\n  \"a\": 1,\n  \"sops\": {\n    \"version\": \"3.11.0\"\n  }\n}\n"
        );
        let compact = parse("{\"a\":1}");
        assert_eq!(
            write(&compact.tree, Some(&md), Some(&compact)),
            "{\"a\":1,\"sops\":{\"version\":\"3.11.0\"}}"
        );
    }

    #[test]
    fn numbers_are_floats_that_keep_their_text() {
        let p = parse("{\"n\": 9007199254740993, \"f\": 1.50, \"e\": -2E+3}");
        let doc = &p.tree.documents[0];
        assert_eq!(
            doc.get("n"),
            Some(&Node::Scalar(Scalar::new(Kind::Float, "9007199254740993")))
        );
        assert_eq!(
            doc.get("f"),
            Some(&Node::Scalar(Scalar::new(Kind::Float, "1.50")))
        );
        assert_eq!(
            doc.get("e"),
            Some(&Node::Scalar(Scalar::new(Kind::Float, "-2E+3")))
        );
        // Unchanged in a canonical write too: the text is the value.
        assert!(write(&p.tree, None, None).contains("\"n\": 9007199254740993,"));
    }

    #[test]
    fn changed_strings_are_escaped_minimally_and_added_keys_go_last() {
        let p = parse("{\n    \"a\": \"old\",\n    \"gone\": 1,\n    \"c\": 3\n}");
        let tree = Tree {
            documents: vec![Node::Map(vec![
                Item::Pair("a".into(), Node::str("new \"q\" <é>\n")),
                Item::Pair("c".into(), Node::Scalar(Scalar::new(Kind::Float, "3"))),
                Item::Pair(
                    "d".into(),
                    Node::Map(vec![Item::Pair("x".into(), Node::str("y"))]),
                ),
            ])],
        };
        assert_eq!(
            write(&tree, None, Some(&p)),
            "{\n    \"a\": \"new \\\"q\\\" <é>\\n\",\n    \"c\": 3,\n    \"d\": {\n        \"x\": \"y\"\n    }\n}"
        );
    }

    /// What `sops decrypt` printed for the same document (tabs, Go escapes, final newline).
    #[test]
    fn canonical_write_matches_sops_output() {
        let p = parse(
            "{\"a\": \"x<y>&\\u00e9\\n\", \"b\": true, \"z\": null, \"arr\": [1, \"s\", {\"k\": \"v\"}], \"o\": {}, \"e\": []}",
        );
        assert_eq!(
            write(&p.tree, None, None),
            "{\n\t\"a\": \"x\\u003cy\\u003e\\u0026é\\n\",\n\t\"b\": true,\n\t\"z\": null,\n\t\"arr\": [\n\t\t1,\n\t\t\"s\",\n\t\t{\n\t\t\t\"k\": \"v\"\n\t\t}\n\t],\n\t\"o\": {},\n\t\"e\": []\n}\n"
        );
        let escapes = parse("{\"a\": \"\\b\\f\\u001b\\u2028\\ud83d\\ude00\\ud800x\"}");
        assert_eq!(
            write(&escapes.tree, None, None),
            "{\n\t\"a\": \"\\b\\f\\u001b\\u2028😀\u{fffd}x\"\n}\n"
        );
        let opts = WriteOptions { indent: Some(2) };
        let out = JsonStore.write(&p.tree, None, None, &opts).unwrap();
        assert!(String::from_utf8(out).unwrap().starts_with("{\n  \"a\""));
    }

    #[test]
    fn comments_from_yaml_are_dropped() {
        let tree = Tree {
            documents: vec![Node::Map(vec![
                Item::Comment(" note".into()),
                Item::Pair(
                    "l".into(),
                    Node::Seq(vec![Node::Comment(" c".into()), Node::str("v")]),
                ),
            ])],
        };
        assert_eq!(
            write(&tree, None, None),
            "{\n\t\"l\": [\n\t\t\"v\"\n\t]\n}\n"
        );
    }

    #[test]
    fn yaml_numbers_get_a_json_spelling() {
        let tree = Tree {
            documents: vec![Node::Map(vec![
                Item::Pair("h".into(), Node::Scalar(Scalar::new(Kind::Int, "0x1F"))),
                Item::Pair("u".into(), Node::Scalar(Scalar::new(Kind::Int, "1_000"))),
                Item::Pair("f".into(), Node::Scalar(Scalar::new(Kind::Float, "1."))),
            ])],
        };
        assert_eq!(
            write(&tree, None, None),
            "{\n\t\"h\": 31,\n\t\"u\": 1000,\n\t\"f\": 1\n}\n"
        );
        let inf = Tree {
            documents: vec![Node::Map(vec![Item::Pair(
                "x".into(),
                Node::Scalar(Scalar::new(Kind::Float, ".inf")),
            )])],
        };
        let err = JsonStore.write(&inf, None, None, &WriteOptions::default());
        assert!(matches!(err, Err(StoreError::Unrepresentable { .. })));
    }

    #[test]
    fn errors_carry_line_and_column() {
        assert_eq!(syntax_error("{\n  \"a\": tru\n}").0, Some(2));
        let (line, col, _) = syntax_error("{\n  \"a\": 1,\n  \"b\" 2\n}");
        assert_eq!((line, col), (Some(3), Some(7)));
        let (_, _, msg) = syntax_error("[1, 2]");
        assert!(msg.contains("array"), "{msg}");
        let (_, _, msg) = syntax_error("{\"a\": 1} x");
        assert!(msg.contains("after"), "{msg}");
        let (_, _, msg) = syntax_error("{\"a\": \"x\ny\"}");
        assert!(msg.contains("control"), "{msg}");
        let (_, _, msg) = syntax_error("{\"a\": 01}");
        assert!(msg.contains("','"), "{msg}");
        syntax_error("{\"a\": \"\\q\"}");
        syntax_error("{\"a\": 1,}");
        syntax_error("");
        syntax_error("{\"sops\": \"not an object\"}");
    }

    #[test]
    fn duplicate_keys_are_an_error_at_the_second_key() {
        let (line, col, msg) = syntax_error("{\"a\": 1,\n \"a\": 2}");
        assert_eq!((line, col), (Some(2), Some(2)));
        assert!(msg.contains("duplicate"), "{msg}");
    }

    #[test]
    fn a_depth_bomb_is_refused_without_overflowing_the_stack() {
        let bomb = format!("{{\"a\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let (_, _, msg) = syntax_error(&bomb);
        assert!(msg.contains("nesting"), "{msg}");
        let ok = format!("{{\"a\": {}{}}}", "[".repeat(500), "]".repeat(500));
        assert!(JsonStore.parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn metadata_numbers_and_nulls_keep_their_types() {
        let p = parse(
            "{\"a\": 1, \"sops\": {\"shamir_threshold\": 2, \"key_groups\": [{\"hc_vault\": null}], \"mac_only_encrypted\": true}}",
        );
        let md = p.metadata.unwrap();
        assert_eq!(
            md.get("shamir_threshold"),
            Some(&Node::Scalar(Scalar::new(Kind::Int, "2")))
        );
        assert_eq!(
            md.get("mac_only_encrypted"),
            Some(&Node::Scalar(Scalar::new(Kind::Bool, "true")))
        );
        assert_eq!(p.tree.documents[0].get("sops"), None);
    }

    fn age_recipient(md: &Node, group: Option<usize>) -> Option<&Node> {
        let holder = match group {
            Some(g) => match md.get("key_groups")? {
                Node::Seq(groups) => groups.get(g)?,
                _ => return None,
            },
            None => md,
        };
        match holder.get("age")? {
            Node::Seq(entries) => entries.first()?.get("recipient"),
            _ => None,
        }
    }

    /// A file sops 3.11 encrypted: its metadata reads back, and writing the parsed tree with
    /// the metadata reproduces sops' bytes exactly, both canonically and losslessly.
    #[test]
    fn sops_made_file_parses_and_is_reproduced_exactly() {
        let bytes = include_bytes!("../../tests/fixtures/stores/sops.json");
        let p = JsonStore.parse(bytes).unwrap();
        let md = p.metadata.as_ref().unwrap();
        assert_eq!(md.get("version"), Some(&Node::str("3.11.0")));
        assert!(md.get("lastmodified").is_some() && md.get("mac").is_some());
        assert_eq!(
            age_recipient(md, None),
            Some(&Node::str(
                "age1lgt2fnt68raqkys73elkjeen6jqzn9xvdlwknuye4crc0xmqu5xsv386en"
            ))
        );
        let doc = &p.tree.documents[0];
        let n = doc.get("n").and_then(Node::as_scalar).unwrap();
        assert!(n.text().unwrap().ends_with(",type:float]"));
        assert_eq!(doc.get("z"), Some(&Node::Scalar(Scalar::null())));
        assert_eq!(doc.get("e"), Some(&Node::str("")));
        let canonical = JsonStore
            .write(&p.tree, Some(md), None, &WriteOptions::default())
            .unwrap();
        assert_eq!(
            String::from_utf8(canonical).unwrap(),
            String::from_utf8_lossy(bytes)
        );
        let lossless = JsonStore
            .write(&p.tree, Some(md), Some(&p), &WriteOptions::default())
            .unwrap();
        assert_eq!(lossless, bytes);
    }

    #[test]
    fn sops_made_shamir_file_has_key_groups_and_threshold() {
        let bytes = include_bytes!("../../tests/fixtures/stores/shamir.json");
        let p = JsonStore.parse(bytes).unwrap();
        let md = p.metadata.as_ref().unwrap();
        assert_eq!(
            md.get("shamir_threshold"),
            Some(&Node::Scalar(Scalar::new(Kind::Int, "2")))
        );
        assert!(age_recipient(md, Some(0)).is_some());
        assert!(age_recipient(md, Some(1)).is_some());
        let Some(Node::Seq(groups)) = md.get("key_groups") else {
            panic!("no key_groups")
        };
        assert_eq!(
            groups[0].get("hc_vault"),
            Some(&Node::Scalar(Scalar::null()))
        );
        let canonical = JsonStore
            .write(&p.tree, Some(md), None, &WriteOptions::default())
            .unwrap();
        assert_eq!(canonical, bytes);
    }
}
