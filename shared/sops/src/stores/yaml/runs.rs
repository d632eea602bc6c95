//! Which token go-yaml hands each own-line comment to, when block collections end between two
//! tokens: the comment's tree position in sops, and so its AAD, follows from it.
//!
//! go-yaml (v3, what sops 3.11 and 3.13 read YAML with) does this in two steps, mirrored here
//! in enseal's own terms:
//! - its scanner reads the own-line comments between two tokens as runs
//!   (`yaml_parser_scan_comments` in scannerc.go): a run is a *foot* when a blank line or a
//!   dedented line ends it, else the last run is a *head*; each run is marked with the token it
//!   waits for (the last token, its own start, or the end of the run before it);
//! - when the next token is less indented, it ends the block collections one by one
//!   (`yaml_parser_unroll_indent`), each end placed before the first run of the gap that starts
//!   at that collection's column (searching back from the previous end).
//!
//! The parser then gives every run to the first token at or after its mark
//! (`yaml_parser_unfold_comments` in parserc.go), except that a head never goes to a block end:
//! a foot taken by a block end is that collection's foot, one taken by the last token stays in
//! the innermost collection, and everything else goes with the next token.

/// The token a run of comments goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unfold {
    /// The last token before the comments: the innermost block collection open there keeps it.
    LastToken,
    /// The end of the `i`-th block collection that ends in the gap, innermost first.
    BlockEnd(usize),
    /// The token after the comments (a head, or a foot no block end took).
    NextToken,
}

/// A run of comment lines as go-yaml's scanner cuts it.
#[derive(Debug)]
struct Run {
    /// Its first `#`, and that line's 1-based column (go-yaml's `start_mark`).
    start: usize,
    column: usize,
    /// Where the scanner was when it ended the run (`end_mark`).
    end: usize,
    /// Where the scan that found it started (`scan_mark`): the end of the run before it.
    scan: usize,
    /// The position of the token it waits for; `None` for the last token.
    token: Option<usize>,
    foot: bool,
    /// The `#` of each of its lines.
    hashes: Vec<usize>,
}

/// Ends the comment lines gathered since `start` as a foot run at `end` (a blank line or a
/// less indented line closes a foot, as in go-yaml's scanner); the next run's scan, and the
/// token it waits for, start there.
fn end_foot(
    runs: &mut Vec<Run>,
    start: (usize, isize, usize),
    end: usize,
    scan: &mut usize,
    token: &mut Option<usize>,
    hashes: &mut Vec<usize>,
) {
    runs.push(Run {
        start: start.0,
        column: start.2,
        end,
        scan: *scan,
        token: *token,
        foot: true,
        hashes: std::mem::take(hashes),
    });
    *scan = end;
    *token = Some(end);
}

/// What the comments between two tokens need to be placed as go-yaml places them.
pub struct Gap<'t> {
    pub text: &'t str,
    /// End of the last token (after the comment on its line, if any).
    pub from: usize,
    /// The first `#` that starts its line after the last token.
    pub first_hash: usize,
    /// Where the next token starts.
    pub to: usize,
    /// The last token is the `:` of a key with nothing after it on its line (go-yaml's VALUE
    /// token): a run right below it is not its foot by position alone.
    pub after_value: bool,
    /// The indentation of the innermost block collection open at the last token (the
    /// scanner's `indent`).
    pub next_indent: usize,
    /// The indentation of each block collection that ends before the next token, innermost
    /// first (an indentless sequence opens no level of its own and is not listed).
    pub ending: &'t [usize],
}

impl Gap<'_> {
    /// Every own-line comment from `first_hash` on, with the token it goes to. `None` when the
    /// gap holds something else than blank and comment lines before the next token (which
    /// the caller places its own way).
    pub fn unfold(&self) -> Option<Vec<(usize, Unfold)>> {
        let runs = self.runs()?;
        let ends = self.block_ends(&runs);
        let mut out = Vec::new();
        for run in &runs {
            let to = match run.token {
                _ if !run.foot => Unfold::NextToken,
                None => Unfold::LastToken,
                Some(mark) => ends
                    .iter()
                    .position(|&end| end >= mark)
                    .map_or(Unfold::NextToken, Unfold::BlockEnd),
            };
            out.extend(run.hashes.iter().map(|&h| (h, to)));
        }
        Some(out)
    }

    /// Whether go-yaml's scanner cuts a foot run from the comments (see [`Self::runs`]); `None`
    /// as [`Self::unfold`].
    pub fn has_foot(&self) -> Option<bool> {
        Some(self.runs()?.iter().any(|run| run.foot))
    }

    /// `yaml_parser_scan_comments`, from the first `#`. Columns are 1-based as go-yaml's
    /// `column` is there; lines count from the last token's line. As in go-yaml, the line
    /// break right after a comment line is skipped unlooked (the loop's `peek` restarts at 0
    /// and is incremented before the next look), so with LF breaks only a blank line is a
    /// break to it, while with CRLF the `\n` after the `\r` is one too.
    fn runs(&self) -> Option<Vec<Run>> {
        let text = self.text;
        let b = text.as_bytes();
        // A text that does not end with a line break gets one before the `sops:` line in
        // enseal's encrypted file: in a CRLF file its `\n` is a break to the scanner (the `\r`
        // is skipped unlooked), so the text is read as going on with it.
        let tail: &[u8] = match text.ends_with('\n') || b.is_empty() {
            true => b"",
            false if text.contains("\r\n") => b"\r\n",
            false => b"\n",
        };
        let at = |i: usize| match i.checked_sub(b.len()) {
            None => b[i],
            Some(v) => tail.get(v).copied().unwrap_or(0),
        };
        let is_break = |c: u8| c == b'\n' || c == b'\r';
        // Line breaks since the last non-blank character (`parser.newlines`).
        let newlines = {
            let before = &b[..self.first_hash];
            let content = before
                .iter()
                .rposition(|c| !matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
                .map_or(0, |p| p + 1);
            before[content..].iter().filter(|&&c| c == b'\n').count()
        };
        let first_ls = super::parse::line_start(text, self.first_hash);
        let first_column = self.first_hash - first_ls;
        // The line just below the last token (`foot_line`), unless that token is on the
        // file's first line.
        let foot_line = b[..self.from]
            .contains(&b'\n')
            .then(|| 1 + isize::from(newlines == 0 && first_column > 1));
        let mut runs = Vec::new();
        let mut token: Option<usize> = None;
        let mut scan = self.from;
        let mut start = (0usize, 0isize, 0usize); // index, line, column
        let mut hashes: Vec<usize> = Vec::new();
        let mut recent_empty = false;
        let mut first_empty = newlines <= 1;
        let mut line = newlines as isize;
        let mut column = first_column;
        let mut true_line = newlines as isize;
        let mut last_hash = self.first_hash;
        let mut pos = self.first_hash;
        let mut peek = 0usize;
        while peek < 512 {
            let i = pos + peek;
            column += 1;
            let c = at(i);
            // The end of the text is where enseal's encrypted file has its `sops:` line (and a
            // following document its `---`): a token at the first column, which is how
            // go-yaml reads the comments there when sops opens that file.
            let eof = i >= b.len() + tail.len();
            if eof {
                column = 1;
            }
            if c == b' ' || c == b'\t' {
                peek += 1;
                continue;
            }
            if is_break(c) {
                if !recent_empty {
                    let dedented = start.2 < self.next_indent + 1;
                    if first_empty
                        && ((Some(start.1) == foot_line && !self.after_value) || dedented)
                        && !hashes.is_empty()
                    {
                        if dedented {
                            // Less indented than the block: unrelated to the last token.
                            token = Some(start.0);
                        }
                        end_foot(&mut runs, start, i, &mut scan, &mut token, &mut hashes);
                    }
                }
                first_empty = false;
                recent_empty = true;
                column = 0;
                line += 1;
                peek += 1;
                continue;
            }
            if !hashes.is_empty() && column < self.next_indent + 1 && column != start.2 {
                // A line at another, lesser indentation ends a foot of what came before.
                end_foot(&mut runs, start, i, &mut scan, &mut token, &mut hashes);
            }
            if eof {
                break;
            }
            if c != b'#' {
                // The next token (or the `-` of its sequence entry): nothing but blank and
                // comment lines may come before it.
                let to = self.to.min(b.len());
                if i > to || !b[i..to].iter().all(|c| matches!(c, b' ' | b'\t' | b'-')) {
                    return None;
                }
                break;
            }
            true_line += b[last_hash..i].iter().filter(|&&c| c == b'\n').count() as isize;
            last_hash = i;
            if hashes.is_empty() {
                start = (i, line, column);
            }
            hashes.push(i);
            recent_empty = false;
            // The comment line is read up to its line break.
            pos = super::parse::line_end(text, i);
            peek = 1;
            column = 0;
            line = true_line;
        }
        if peek >= 512 {
            // go-yaml would start a new scan further on; not modelled.
            return None;
        }
        if !hashes.is_empty() {
            runs.push(Run {
                start: start.0,
                column: start.2,
                end: (pos + peek).saturating_sub(1),
                scan,
                token: Some(start.0),
                foot: false,
                hashes,
            });
        }
        Some(runs)
    }

    /// Where go-yaml puts the end of each block collection that ends in the gap, innermost
    /// first (`yaml_parser_unroll_indent`): before the earliest run at the collection's column
    /// among the runs that follow the previous end without anything between them.
    fn block_ends(&self, runs: &[Run]) -> Vec<usize> {
        let mut mark = self.from.saturating_sub(1);
        let mut ends = Vec::with_capacity(self.ending.len());
        for &indent in self.ending {
            let mut stop = mark;
            for run in runs.iter().rev() {
                if run.end < stop {
                    break;
                }
                if run.column == indent + 1 {
                    mark = run.start;
                }
                stop = run.scan;
            }
            ends.push(mark);
        }
        ends
    }
}
