//! The lexer of Go's text/template (go/src/text/template/parse/lex.go), for the default
//! `{{`/`}}` delimiters. It yields the same items in the same places, so that the parser can
//! follow Go's grammar rule for rule.

use super::TemplateError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Text(String),
    /// `{{` (a trim marker has already been applied to the text before it).
    Left,
    Right,
    Pipe,
    LParen,
    RParen,
    Comma,
    Declare,
    Assign,
    Dot,
    /// `.name`
    Field(String),
    /// `$` or `$name`
    Variable(String),
    Ident(String),
    Str(String),
    /// A number literal, as written (Go keeps the text to decide int or float later).
    Number(String),
    /// A character constant like `'a'`: a number in Go.
    Char(char),
    Bool(bool),
    Nil,
    Keyword(&'static str),
}

#[derive(Debug, Clone)]
pub(super) struct Item {
    pub tok: Tok,
    pub line: usize,
    /// Whether spaces came before it inside the action: `$x.y` chains a field, `$x .y` is
    /// two operands (parse.go `operand` looks at the very next item).
    pub spaced: bool,
}

const KEYWORDS: [&str; 10] = [
    "block", "break", "continue", "define", "else", "end", "if", "range", "template", "with",
];

/// Go's `isSpace`/`isEndOfLine` inside actions: spaces, tabs, CR and LF.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

pub(super) fn lex(src: &str) -> Result<Vec<Item>, TemplateError> {
    let mut items = Vec::new();
    let mut rest = src;
    let mut line = 1;
    let mut trim_next_text = false;
    loop {
        let Some(start) = rest.find("{{") else {
            let mut text = rest;
            if trim_next_text {
                text = text.trim_start_matches(is_space);
            }
            if !text.is_empty() {
                items.push(Item {
                    tok: Tok::Text(text.to_string()),
                    line,
                    spaced: false,
                });
            }
            return Ok(items);
        };
        let mut text = &rest[..start];
        if trim_next_text {
            text = text.trim_start_matches(is_space);
        }
        let after = &rest[start + 2..];
        // lex.go `hasLeftTrimMarker`: "-" followed by a space.
        let left_trim = after.starts_with('-') && after[1..].starts_with(is_space);
        if left_trim {
            text = text.trim_end_matches(is_space);
        }
        if !text.is_empty() {
            items.push(Item {
                tok: Tok::Text(text.to_string()),
                line,
                spaced: false,
            });
        }
        line += rest[..start].matches('\n').count();
        let mut body = if left_trim { &after[2..] } else { after };
        // Comments: `{{/* ... */}}`, nothing else allowed between `*/` and `}}` but a trim mark.
        if let Some(c) = body.strip_prefix("/*") {
            let Some(end) = c.find("*/") else {
                return Err(TemplateError::parse(line, "unclosed comment"));
            };
            line += c[..end].matches('\n').count();
            let after_comment = &c[end + 2..];
            let (trim, rest_after) = if let Some(r) = strip_right_trim(after_comment) {
                (true, r)
            } else if let Some(r) = after_comment.strip_prefix("}}") {
                (false, r)
            } else {
                return Err(TemplateError::parse(
                    line,
                    "comment ends before closing delimiter",
                ));
            };
            trim_next_text = trim;
            rest = rest_after;
            continue;
        }
        items.push(Item {
            tok: Tok::Left,
            line,
            spaced: false,
        });
        // Inside the action.
        let mut spaced = false;
        loop {
            if let Some(r) = strip_right_trim(body) {
                items.push(Item {
                    tok: Tok::Right,
                    line,
                    spaced,
                });
                trim_next_text = true;
                rest = r;
                break;
            }
            if let Some(r) = body.strip_prefix("}}") {
                items.push(Item {
                    tok: Tok::Right,
                    line,
                    spaced,
                });
                trim_next_text = false;
                rest = r;
                break;
            }
            let Some(c) = body.chars().next() else {
                return Err(TemplateError::parse(line, "unclosed action"));
            };
            if is_space(c) {
                line += usize::from(c == '\n');
                body = &body[1..];
                spaced = true;
                continue;
            }
            let (tok, used) = lex_one(body, line)?;
            line += body[..used].matches('\n').count();
            items.push(Item { tok, line, spaced });
            spaced = false;
            body = &body[used..];
        }
    }
}

/// `" -}}"`: a space, then `-}}`.
fn strip_right_trim(s: &str) -> Option<&str> {
    let c = s.chars().next()?;
    if !is_space(c) {
        return None;
    }
    s[c.len_utf8()..].strip_prefix("-}}")
}

fn lex_one(s: &str, line: usize) -> Result<(Tok, usize), TemplateError> {
    let c = s.chars().next().unwrap();
    let ident_len = |from: usize| {
        s[from..]
            .char_indices()
            .find(|&(_, c)| !is_alnum(c))
            .map_or(s.len(), |(i, _)| from + i)
    };
    Ok(match c {
        '|' => (Tok::Pipe, 1),
        '(' => (Tok::LParen, 1),
        ')' => (Tok::RParen, 1),
        ',' => (Tok::Comma, 1),
        '=' => (Tok::Assign, 1),
        ':' if s[1..].starts_with('=') => (Tok::Declare, 2),
        '"' => {
            let mut escaped = false;
            let end = s[1..]
                .char_indices()
                .find(|&(_, c)| {
                    if escaped {
                        escaped = false;
                        return false;
                    }
                    if c == '\\' {
                        escaped = true;
                    }
                    c == '"' || c == '\n'
                })
                .map(|(i, c)| (i + 1, c));
            match end {
                Some((i, '"')) => (Tok::Str(unquote(&s[1..i], line)?), i + 1),
                _ => return Err(TemplateError::parse(line, "unterminated quoted string")),
            }
        }
        '`' => match s[1..].find('`') {
            Some(i) => (Tok::Str(s[1..1 + i].to_string()), i + 2),
            None => return Err(TemplateError::parse(line, "unterminated raw quoted string")),
        },
        '\'' => {
            let end = s[1..]
                .find('\'')
                .ok_or_else(|| TemplateError::parse(line, "unterminated character constant"))?;
            let text = unquote(&s[1..1 + end], line)?;
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(ch), None) => (Tok::Char(ch), end + 2),
                _ => return Err(TemplateError::parse(line, "malformed character constant")),
            }
        }
        '$' => {
            let end = ident_len(1);
            (Tok::Variable(s[..end].to_string()), end)
        }
        '.' => {
            // `.5` is a number; `.name` a field; `.` alone the dot.
            match s[1..].chars().next() {
                Some(d) if d.is_ascii_digit() => lex_number(s, line)?,
                Some(a) if is_alnum(a) => {
                    let end = ident_len(1);
                    (Tok::Field(s[1..end].to_string()), end)
                }
                _ => (Tok::Dot, 1),
            }
        }
        '+' | '-' | '0'..='9' => lex_number(s, line)?,
        c if is_alnum(c) => {
            let end = ident_len(0);
            let word = &s[..end];
            let tok = match word {
                "true" => Tok::Bool(true),
                "false" => Tok::Bool(false),
                "nil" => Tok::Nil,
                w => match KEYWORDS.iter().find(|k| **k == w) {
                    Some(k) => Tok::Keyword(k),
                    None => Tok::Ident(w.to_string()),
                },
            };
            (tok, end)
        }
        _ => {
            return Err(TemplateError::parse(
                line,
                &format!("unrecognized character in action: {c:?}"),
            ))
        }
    })
}

fn lex_number(s: &str, line: usize) -> Result<(Tok, usize), TemplateError> {
    // lex.go scanNumber: optional sign, then digits of the base, `_`, `.`, exponents.
    let bytes = s.as_bytes();
    let mut i = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let mut digits: &str = "0123456789_";
    let mut exp: &str = "eE";
    if bytes.get(i) == Some(&b'0') && matches!(bytes.get(i + 1), Some(b'x' | b'X')) {
        i += 2;
        digits = "0123456789abcdefABCDEF_";
        exp = "pP";
    } else if bytes.get(i) == Some(&b'0') && matches!(bytes.get(i + 1), Some(b'o' | b'O')) {
        i += 2;
        digits = "01234567_";
    } else if bytes.get(i) == Some(&b'0') && matches!(bytes.get(i + 1), Some(b'b' | b'B')) {
        i += 2;
        digits = "01_";
    }
    let take = |i: &mut usize, set: &str| {
        while *i < bytes.len() && set.as_bytes().contains(&bytes[*i]) {
            *i += 1;
        }
    };
    take(&mut i, digits);
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        take(&mut i, digits);
    }
    if i < bytes.len() && exp.as_bytes().contains(&bytes[i]) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        take(&mut i, "0123456789_");
    }
    if i < bytes.len() && (is_alnum(bytes[i] as char) || bytes[i] == b'.') {
        return Err(TemplateError::parse(line, "bad number syntax"));
    }
    if i == 0 || (i == 1 && matches!(bytes[0], b'+' | b'-')) {
        return Err(TemplateError::parse(line, "bad number syntax"));
    }
    Ok((Tok::Number(s[..i].to_string()), i))
}

/// strconv.Unquote for the body of a double-quoted Go string.
pub(super) fn unquote(body: &str, line: usize) -> Result<String, TemplateError> {
    let bad = || TemplateError::parse(line, "invalid syntax in quoted string");
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next().ok_or_else(bad)?;
        let hex = |chars: &mut std::str::Chars, n: usize| -> Result<u32, TemplateError> {
            let h: String = chars.by_ref().take(n).collect();
            if h.len() != n {
                return Err(bad());
            }
            u32::from_str_radix(&h, 16).map_err(|_| bad())
        };
        match e {
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            '\'' => out.push('\''),
            'x' => out.push(char::from_u32(hex(&mut chars, 2)?).ok_or_else(bad)?),
            'u' => out.push(char::from_u32(hex(&mut chars, 4)?).ok_or_else(bad)?),
            'U' => out.push(char::from_u32(hex(&mut chars, 8)?).ok_or_else(bad)?),
            '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                let v = u32::from_str_radix(&format!("{e}{rest}"), 8).map_err(|_| bad())?;
                out.push(char::from_u32(v).ok_or_else(bad)?);
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}
