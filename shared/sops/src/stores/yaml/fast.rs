//! A fast reader for the simple lines that make up most of a large encrypted file.
//!
//! Once its values are masked (see [`super::mask`]), an encrypted file is mostly lines like
//! `    SECRET_00042: E`, and saphyr-parser still spends thousands of instructions on each (it
//! scans every character, allocates every scalar and runs its general token machinery). This
//! module reads a leading run of such lines itself and produces the very events, spans
//! included, that saphyr-parser produces for them; the rest of the stream is left to saphyr,
//! from the start of a top-level key (where the only open collection is the root mapping, so
//! the reader's state and saphyr's agree).
//!
//! It understands only: blank lines, comment lines, and `key: value` / `key:` lines of block
//! mappings indented with spaces, with plain keys and plain one-line values made of a safe set
//! of characters, optionally followed by a comment. Any other line ends the part it reads; when
//! that leaves nothing, saphyr reads everything. The tests compare every reading with saphyr's
//! (`assert_masking_is_invisible` and the generated documents in the YAML store's tests).

use std::borrow::Cow;
use std::collections::VecDeque;

use saphyr_parser::{Event, Marker, ScalarStyle, Span};

/// saphyr-parser refuses a simple key longer than 1024 characters; such keys are left to it.
const MAX_KEY: usize = 1000;

/// One line of the text, as this reader sees it.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// Blank or a comment: no token.
    Nothing,
    /// `key:` with its value on the same line (`value` is its byte range) or not (`None`).
    Key {
        indent: usize,
        key_end: usize,
        value: Option<(usize, usize)>,
    },
    /// Anything this reader does not read.
    Other,
}

fn key_first(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'/')
}

fn key_char(c: u8) -> bool {
    key_first(c) || c == b'-'
}

/// A plain value's first character: none of YAML's indicators, nothing that could make the
/// scalar something else than a one-word-or-more plain string.
fn value_first(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'/' | b'+' | b'=')
}

fn value_char(c: u8) -> bool {
    value_first(c) || matches!(c, b'-' | b'@')
}

/// Classifies the line `b[start..end]` (`end` before its `\n`). Offsets are into `b`.
fn classify(b: &[u8], start: usize, end: usize) -> Line {
    let line = &b[start..end];
    let indent = line.iter().take_while(|&&c| c == b' ').count();
    let rest = &line[indent..];
    match rest.first() {
        None => return Line::Nothing,
        // A comment's text is not read, but it must be ASCII: positions are given to the
        // builder as character indices, which equal byte offsets only in ASCII text.
        Some(b'#') => {
            return if rest.is_ascii() && !rest.contains(&b'\r') {
                Line::Nothing
            } else {
                Line::Other
            }
        }
        Some(&c) if !key_first(c) => return Line::Other,
        Some(_) => {}
    }
    let key_len = rest.iter().take_while(|&&c| key_char(c)).count();
    if key_len > MAX_KEY || rest.get(key_len) != Some(&b':') {
        return Line::Other;
    }
    let key_end = start + indent + key_len;
    let mut i = indent + key_len + 1;
    let spaces = line[i..].iter().take_while(|&&c| c == b' ').count();
    i += spaces;
    if i == line.len() || line[i] == b'#' {
        // `key:` alone, or followed by a comment (which needs a space before it).
        if i < line.len() && (spaces == 0 || !line[i..].is_ascii() || line[i..].contains(&b'\r')) {
            return Line::Other;
        }
        return Line::Key {
            indent,
            key_end,
            value: None,
        };
    }
    if spaces == 0 || !value_first(line[i]) {
        return Line::Other;
    }
    let value_start = i;
    let mut value_end = i;
    while i < line.len() {
        let c = line[i];
        if c == b' ' {
            let run = line[i..].iter().take_while(|&&c| c == b' ').count();
            match line.get(i + run) {
                None => break,
                Some(b'#') => {
                    let comment = &line[i + run..];
                    if !comment.is_ascii() || comment.contains(&b'\r') {
                        return Line::Other;
                    }
                    break;
                }
                Some(_) => i += run,
            }
        } else if value_char(c) || (c == b':' && line.get(i + 1).is_some_and(|&n| n != b' ')) {
            i += 1;
            value_end = i;
        } else {
            return Line::Other;
        }
    }
    Line::Key {
        indent,
        key_end,
        value: Some((start + value_start, start + value_end)),
    }
}

/// The lines of `text` from `from` to `to`: (start, end before the line break).
fn lines(text: &str, to: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    let b = &text.as_bytes()[..to];
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= b.len() {
            return None;
        }
        let start = pos;
        let end = b[pos..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(b.len(), |p| pos + p);
        pos = end + 1;
        Some((start, end))
    })
}

/// How far this reader can read `text`: the whole text (`text.len()`), or the start of a
/// top-level key line from which saphyr-parser reads the rest. `None` when it can read nothing
/// of use (the first key is not a simple line at column 0).
pub fn prefix_end(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut stack: Vec<usize> = Vec::new();
    let mut pending = false;
    let mut first_key = None;
    let mut last_top = None;
    let give_up = |last_top: Option<usize>, first_key: Option<usize>| {
        last_top.filter(|&p| Some(p) != first_key)
    };
    for (start, end) in lines(text, b.len()) {
        match classify(b, start, end) {
            Line::Nothing => {}
            Line::Other => return give_up(last_top, first_key),
            Line::Key { indent, value, .. } => {
                if first_key.is_none() {
                    if indent != 0 {
                        return None;
                    }
                    first_key = Some(start);
                    stack.push(0);
                }
                let top = *stack.last().unwrap_or(&0);
                if pending && indent > top {
                    stack.push(indent);
                } else {
                    while stack.len() > 1 && indent < *stack.last().unwrap_or(&0) {
                        stack.pop();
                    }
                    if indent != *stack.last().unwrap_or(&0) {
                        return give_up(last_top, first_key);
                    }
                }
                if indent == 0 {
                    last_top = Some(start);
                }
                pending = value.is_none();
            }
        }
    }
    first_key.map(|_| b.len())
}

fn span(start: usize, end: usize) -> Span {
    // The builder reads only the indices; line and column matter for errors, which this
    // reader never reports (an error sends the whole text to saphyr-parser).
    Span::new(Marker::new(start, 0, 0), Marker::new(end, 0, 0))
}

fn plain(text: &str, start: usize, end: usize) -> (Event<'_>, Span) {
    (
        Event::Scalar(
            Cow::Borrowed(&text[start..end]),
            ScalarStyle::Plain,
            0,
            None,
        ),
        span(start, end),
    )
}

/// The events of `text[..end]`, where `end` came from [`prefix_end`]. When `end` is the whole
/// text they end with the stream; otherwise they stop with the root mapping still open, where
/// saphyr-parser's events for `text[end..]` (after its stream, document and mapping starts)
/// take over.
pub struct Events<'t> {
    text: &'t str,
    end: usize,
    lines: Box<dyn Iterator<Item = (usize, usize)> + 't>,
    stack: Vec<usize>,
    /// The end of the key whose value is not known yet (`key:` at the end of its line).
    pending: Option<usize>,
    queue: VecDeque<(Event<'t>, Span)>,
    done: bool,
}

impl<'t> Events<'t> {
    pub fn new(text: &'t str, end: usize) -> Events<'t> {
        let mut queue = VecDeque::new();
        queue.push_back((Event::StreamStart, span(0, 0)));
        Events {
            text,
            end,
            lines: Box::new(lines(text, end)),
            stack: Vec::new(),
            pending: None,
            queue,
            done: false,
        }
    }

    fn key_line(
        &mut self,
        start: usize,
        indent: usize,
        key_end: usize,
        value: Option<(usize, usize)>,
    ) {
        let key = start + indent;
        let q = &mut self.queue;
        if self.stack.is_empty() {
            q.push_back((Event::DocumentStart(false), span(key, key)));
            q.push_back((Event::MappingStart(0, None), span(key, key)));
            self.stack.push(0);
        } else if let Some(colon) = self.pending.take() {
            if indent > *self.stack.last().unwrap_or(&0) {
                q.push_back((Event::MappingStart(0, None), span(key, key)));
                self.stack.push(indent);
            } else {
                q.push_back(plain(self.text, colon, colon));
            }
        }
        while self.stack.len() > 1 && indent < *self.stack.last().unwrap_or(&0) {
            q.push_back((Event::MappingEnd, span(key, key)));
            self.stack.pop();
        }
        q.push_back(plain(self.text, key, key_end));
        match value {
            Some((vs, ve)) => q.push_back(plain(self.text, vs, ve)),
            None => self.pending = Some(key_end),
        }
    }

    fn finish(&mut self) {
        let q = &mut self.queue;
        if let Some(colon) = self.pending.take() {
            q.push_back(plain(self.text, colon, colon));
        }
        let at = self.end;
        let whole = at == self.text.len();
        let keep = usize::from(!whole);
        while self.stack.len() > keep {
            q.push_back((Event::MappingEnd, span(at, at)));
            self.stack.pop();
        }
        if whole {
            q.push_back((Event::DocumentEnd, span(at, at)));
            q.push_back((Event::StreamEnd, span(at, at)));
        }
        self.done = true;
    }
}

impl<'t> Iterator for Events<'t> {
    type Item = (Event<'t>, Span);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Some(ev);
            }
            if self.done {
                return None;
            }
            match self.lines.next() {
                Some((start, end)) => {
                    if let Line::Key {
                        indent,
                        key_end,
                        value,
                    } = classify(self.text.as_bytes(), start, end)
                    {
                        self.key_line(start, indent, key_end, value);
                    }
                }
                None => self.finish(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_classified_conservatively() {
        let key = |s: &str| classify(s.as_bytes(), 0, s.len());
        assert_eq!(
            key("  a: E"),
            Line::Key {
                indent: 2,
                key_end: 3,
                value: Some((5, 6))
            }
        );
        assert_eq!(
            key("a: b c  # note"),
            Line::Key {
                indent: 0,
                key_end: 1,
                value: Some((3, 6))
            }
        );
        assert_eq!(
            key("a:  # note"),
            Line::Key {
                indent: 0,
                key_end: 1,
                value: None
            }
        );
        assert_eq!(key("   "), Line::Nothing);
        assert_eq!(key("  # x"), Line::Nothing);
        for other in [
            "a: 'q'",
            "a: \"q\"",
            "a: |",
            "a: [1]",
            "a: {b: c}",
            "a: &x b",
            "a: !!str b",
            "a: *x",
            "- a",
            "a : b",
            "a: b: c",
            "a: b:",
            "a:b",
            "a:# c",
            "a: b #c\r",
            "\"a\": b",
            "? a",
            "---",
            "a:\tb",
            "a: caf\u{e9}",
            "# caf\u{e9}",
            "a: -1",
            "a: ~",
            "a: b#c",
        ] {
            assert_eq!(key(other), Line::Other, "{other:?}");
        }
    }

    #[test]
    fn the_read_part_ends_at_a_top_level_key() {
        assert_eq!(prefix_end("a: b\nc:\n  d: e\n"), Some(15));
        // The sequence under `s` goes to saphyr-parser from `s`.
        assert_eq!(prefix_end("a: b\ns:\n  - x\n"), Some(5));
        // Nothing useful to read: the first key is already unsupported, or indented.
        assert_eq!(prefix_end("a: 'b'\nc: d\n"), None);
        assert_eq!(prefix_end("  a: b\n"), None);
        assert_eq!(prefix_end("# only a comment\n"), None);
        // A wrongly indented key is left to saphyr-parser (which reports it).
        assert_eq!(prefix_end("a: b\nc:\n    d: e\n  f: g\n"), Some(5));
    }
}
