//! A speed-up for reading encrypted files: the long `ENC[AES256_GCM,...]` values are hidden from
//! the YAML parser behind a one-character placeholder.
//!
//! An encrypted file is mostly such values (over 100 characters each), and saphyr-parser scans
//! a plain scalar one character at a time at a high cost per character; with the values masked
//! it reads about a third of the text. Every position it reports is mapped back to the original
//! text, and a placeholder that comes back as a whole plain scalar gets the original value back.
//!
//! Masking is only a guess made on the raw text (a value after `key: ` or `- ` and alone on its
//! line): it cannot tell a comment, a quoted or block scalar, or a flow collection from a plain
//! value. So the masked reading is kept only when every placeholder came back as an untagged
//! plain scalar of its own in block context, which is exactly when the original text parses to
//! the same events; otherwise (and on any error, to report it at its true place) the original
//! text is parsed as it is.

use std::cell::Cell;

/// What stands for a masked value. It starts like the value (`E`), so the scalar begins at the
/// same place and the same way for the parser.
pub const PLACEHOLDER: &str = "E";

const HEAD: &str = "ENC[AES256_GCM,data:";

/// A masked value: the placeholder at `at` in the masked text stands for `orig..orig + len` of
/// the original text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub at: usize,
    pub orig: usize,
    pub len: usize,
}

#[derive(Debug)]
pub struct Masked {
    /// The text the parser reads.
    pub text: String,
    /// In text order.
    pub runs: Vec<Run>,
}

impl Masked {
    /// The masked text, or `None` when nothing in `text` looks like a value to mask.
    pub fn of(text: &str) -> Option<Masked> {
        let b = text.as_bytes();
        let mut runs = Vec::new();
        let mut out = String::new();
        let mut copied = 0;
        let mut from = 0;
        // The next `]` found, kept so that no byte is searched twice for one.
        let mut close = None;
        // `[` is rare outside the values, and looking for one byte is much faster than for the
        // whole head.
        while let Some(p) = b.get(from..).and_then(|t| memchr::memchr(b'[', t)) {
            let bracket = from + p;
            from = bracket + 1;
            let Some(start) = bracket.checked_sub(3) else {
                continue;
            };
            if !b[start..].starts_with(HEAD.as_bytes()) {
                continue;
            }
            let end = match value_end(text, start, &mut close) {
                Ok(end) => end,
                Err(skip) => {
                    from = skip.max(from);
                    continue;
                }
            };
            from = end;
            if !after_indicator(b, start) || !alone_after(b, end) {
                continue;
            }
            if out.capacity() == 0 {
                out.reserve(text.len() / 2);
            }
            out.push_str(&text[copied..start]);
            runs.push(Run {
                at: out.len(),
                orig: start,
                len: end - start,
            });
            out.push_str(PLACEHOLDER);
            copied = end;
        }
        if runs.is_empty() {
            return None;
        }
        out.push_str(&text[copied..]);
        Some(Masked { text: out, runs })
    }

    /// The original position of byte `pos` of the masked text. A position inside a placeholder
    /// (none is ever reported: it is one character) maps to the start of its value. `hint`
    /// remembers the last run found, as positions are asked for mostly in order.
    pub fn original(&self, pos: usize, hint: &Cell<usize>) -> usize {
        let Some(r) = self.last_run_from(pos, hint).map(|i| self.runs[i]) else {
            return pos;
        };
        let placeholder_end = r.at + PLACEHOLDER.len();
        if pos < placeholder_end {
            r.orig
        } else {
            r.orig + r.len + (pos - placeholder_end)
        }
    }

    /// The run whose placeholder starts at byte `at` of the masked text.
    pub fn run_at(&self, at: usize, hint: &Cell<usize>) -> Option<Run> {
        let i = self.last_run_from(at, hint)?;
        Some(self.runs[i]).filter(|r| r.at == at)
    }

    /// The index of the last run whose placeholder starts at or before `pos`.
    fn last_run_from(&self, pos: usize, hint: &Cell<usize>) -> Option<usize> {
        let is_last = |i: usize| {
            self.runs.get(i).is_some_and(|r| r.at <= pos)
                && self.runs.get(i + 1).is_none_or(|r| r.at > pos)
        };
        let h = hint.get();
        let i = if is_last(h) {
            h
        } else if is_last(h + 1) {
            h + 1
        } else {
            self.runs.partition_point(|r| r.at <= pos).checked_sub(1)?
        };
        hint.set(i);
        Some(i)
    }
}

/// Just after the `]` closing the value that starts at `start`, when the value is one plain
/// token: printable ASCII without blanks or `#` (none is in base64). Otherwise, where to look for
/// the next value: every value starting before a bad byte runs into it too, so skipping to it
/// keeps the search linear. `close` caches the position of the next `]`.
fn value_end(text: &str, start: usize, close: &mut Option<Option<usize>>) -> Result<usize, usize> {
    let from = start + HEAD.len();
    let next = match *close {
        Some(c) if c.is_none_or(|c| c >= from) => c,
        _ => {
            let c = text
                .as_bytes()
                .get(from..)
                .and_then(|t| memchr::memchr(b']', t))
                .map(|p| from + p);
            *close = Some(c);
            c
        }
    };
    let Some(next) = next else {
        return Err(text.len());
    };
    let ok = |c: u8| (c.wrapping_sub(b'!') < 0x5e) & (c != b'#');
    // By chunks without an early exit inside, so that it runs over many bytes at a time, and
    // stops near the first bad byte.
    let mut at = from;
    for chunk in text.as_bytes()[from..next].chunks(64) {
        if !chunk.iter().fold(true, |all, &c| all & ok(c)) {
            return Err(at + chunk.iter().position(|&c| !ok(c)).unwrap_or(0));
        }
        at += chunk.len();
    }
    Ok(next + 1)
}

/// Whether spaces and then `:` or `-` come before `start`, as in `key: ENC[...]` or
/// `- ENC[...]`.
fn after_indicator(b: &[u8], start: usize) -> bool {
    let mut i = start;
    while i > 0 && b[i - 1] == b' ' {
        i -= 1;
    }
    i < start && i > 0 && matches!(b[i - 1], b':' | b'-')
}

/// Whether only blanks, then the end of the line or a comment, follow `end`.
fn alone_after(b: &[u8], end: usize) -> bool {
    let mut i = end;
    while i < b.len() && matches!(b[i], b' ' | b'\t') {
        i += 1;
    }
    match b.get(i) {
        None | Some(b'\n' | b'\r') => true,
        Some(b'#') => i > end,
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: &str = "ENC[AES256_GCM,data:QUJD,iv:SVY=,tag:VEFH,type:str]";

    #[test]
    fn values_after_a_key_or_dash_and_alone_on_their_line_are_masked() {
        let text = format!("a: {V}\nb:\n  - {V} # note\nc: {V}");
        let m = Masked::of(&text).expect("masked");
        assert_eq!(m.text, "a: E\nb:\n  - E # note\nc: E");
        assert_eq!(m.runs.len(), 3);
        // Positions before, at, and after each placeholder map back, in any order.
        let hint = Cell::new(0);
        let note = m.text.find('#').expect("#");
        for _ in 0..2 {
            assert_eq!(m.original(m.text.len(), &hint), text.len());
            assert_eq!(m.original(0, &hint), 0);
            assert_eq!(m.original(3, &hint), 3);
            assert_eq!(m.original(4, &hint), 3 + V.len());
            assert_eq!(text[m.original(note, &hint)..].find("# note"), Some(0));
            let run = m.run_at(3, &hint);
            assert_eq!(run.map(|r| &text[r.orig..r.orig + r.len]), Some(V));
            assert_eq!(m.run_at(2, &hint), None);
            assert_eq!(m.run_at(note, &hint), None);
        }
    }

    #[test]
    fn values_not_standing_alone_are_left_as_they_are() {
        for text in [
            format!("a: {V}x\n"),
            format!("a: {V}, b\n"),
            format!("a: [{V}]\n"),
            format!("a: x{V}\n"),
            format!("a: &anchor {V}\n"),
            format!("a: !!str {V}\n"),
            format!("a:\t{V}\n"),
            format!("{V}: a\n"),
            format!("a: {V}#not a comment\n"),
            "a: ENC[AES256_GCM,data:no end\n".to_string(),
            "a: ENC[AES256_GCM,data:é]\n".to_string(),
            "é[AES256_GCM,data:x]\n".to_string(),
            "a: ENC[AES256_GCM,data:x]y]\n".to_string(),
        ] {
            assert!(Masked::of(&text).is_none(), "{text}");
        }
    }

    /// Heads that never close, or close after a bad byte, are each looked at once (a quadratic
    /// search would take minutes here).
    #[test]
    fn unclosed_values_are_searched_in_linear_time() {
        let many = HEAD.repeat(50_000);
        // One long plain token is one value.
        let one = format!("a: {many}]\n");
        assert_eq!(Masked::of(&one).map(|m| m.runs.len()), Some(1));
        for text in [
            format!("a: {many}\n"),
            format!("a: {many} ]\n"),
            format!("a: {}]\n", format!("{HEAD}x\n").repeat(50_000)),
        ] {
            assert!(Masked::of(&text).is_none());
        }
        let ok = format!("a: {HEAD} x]\nb: {V}\n");
        assert_eq!(Masked::of(&ok).map(|m| m.runs.len()), Some(1));
    }
}
