//! The JSON parser: a value tree that keeps the byte span of every value and key, so that a
//! lossless write can splice the original bytes.

use super::emit::quote_into;
use super::{FORMAT, MAX_DEPTH};
use crate::format::tree::{Item, Kind, Node, Scalar};
use crate::stores::StoreError;

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
    pub(super) open: usize,
    pub(super) close: usize,
    pub(super) members: Vec<JMember>,
}

pub(crate) struct JMember {
    pub(super) key: String,
    /// Index of the key's opening quote, and just past its closing quote.
    pub(super) start: usize,
    pub(super) key_end: usize,
    pub(super) value: JValue,
}

pub(crate) struct JArray {
    pub(super) open: usize,
    pub(super) close: usize,
    pub(super) elems: Vec<JValue>,
}

impl JValue {
    pub(super) fn start(&self) -> usize {
        match self {
            JValue::Object(o) => o.open,
            JValue::Array(a) => a.open,
            JValue::Scalar { start, .. } => *start,
        }
    }

    pub(super) fn end(&self) -> usize {
        match self {
            JValue::Object(o) => o.close + 1,
            JValue::Array(a) => a.close + 1,
            JValue::Scalar { end, .. } => *end,
        }
    }
}

/// What [`JsonStore::parse`] remembers of the original bytes.
pub(crate) struct Source {
    pub(super) text: Vec<u8>,
    pub(super) root: JObject,
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    depth: usize,
}

pub(super) fn syntax_at(src: &[u8], at: usize, message: impl Into<String>) -> StoreError {
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
        // As sops 3.13.2+ (stores/json normalizeJSONNumber): an integer within int64 is an
        // `int`, anything else a `float`. sops 3.11 read every number as float64 (losing
        // 9007199254740993), but it reads `type:int` values written this way correctly.
        let integral = !text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'));
        let kind = if integral && text.parse::<i64>().is_ok() {
            Kind::Int
        } else {
            Kind::Float
        };
        Ok(JValue::Scalar {
            start,
            end: self.pos,
            scalar: Scalar::new(kind, text),
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
            // A key given twice is kept twice, in order, as sops' token-by-token JSON reader
            // keeps it (both values are encrypted and hashed into the MAC).
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
pub(super) fn string_layout(token: &[u8], value: &[u8]) -> Option<String> {
    let value = std::str::from_utf8(value).ok()?;
    let mut minimal = String::with_capacity(token.len());
    quote_into(value, false, &mut minimal);
    if minimal.as_bytes() == token {
        return None;
    }
    std::str::from_utf8(token).ok().map(str::to_string)
}

/// The value of `text` when it is exactly one JSON string token.
pub(super) fn decode_string_token(text: &str) -> Option<String> {
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
pub(super) fn parse_document(src: &[u8]) -> Result<JObject, StoreError> {
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

pub(super) fn to_node(value: &JValue) -> Node {
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
pub(super) fn to_metadata_node(value: &JValue) -> Node {
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
