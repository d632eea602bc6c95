//! Reading a YAML stream into documents that remember where everything was.
//!
//! saphyr-parser does the YAML proper (structure, escapes, folding, errors); this module keeps,
//! next to every value, the byte ranges the lossless writer splices into, and finds the comments
//! (which the parser drops) by scanning the text between tokens. Comments are attached to the
//! mapping or sequence where sops (through go-yaml's head/line/foot comments) puts them, because a
//! comment's AAD is its parent's path: see [`Builder::place_comment`].

use std::collections::{HashMap, HashSet};

use foldhash::fast::RandomState;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use super::budget::Budget;
use super::emit;
use super::fast;
use super::mask::{Masked, PLACEHOLDER};
use super::runs::{self, Unfold};
use crate::format::resolve;
use crate::format::tree::{Item, Kind, Node, Scalar};
use crate::stores::StoreError;

/// A parsed stream and its layout.
pub struct Source {
    pub text: String,
    pub docs: Vec<DocSource>,
    /// The line break the file uses (`"\r\n"` when its first line ends that way).
    pub nl: &'static str,
}

pub struct DocSource {
    /// Always a mapping (an empty document is an empty block mapping at `content_start`).
    pub root: SNode,
    /// Index in `root`'s items of the top-level `sops` entry.
    pub sops_item: Option<usize>,
    /// The indentation step the document uses for nested block collections, when it has any.
    pub indent: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Plain,
    Single,
    Double,
    Literal,
    Folded,
}

pub struct SNode {
    /// First byte of the node itself (after any anchor or tag).
    pub start: usize,
    /// End of the node's text, never including the line break that ends its last line. For a
    /// block collection this covers all of its items, comments included; for a flow collection
    /// it is just after the closing bracket.
    pub end: usize,
    /// End of everything that belongs to the node, comments included (an inline comment given
    /// to a flow collection lies after its closing bracket).
    pub extent: usize,
    pub body: SBody,
}

pub enum SBody {
    Scalar(SScalar),
    /// An alias, resolved: the anchored node's value, and where the anchored node is.
    Alias(Node, std::ops::Range<usize>),
    Map(SColl),
    Seq(SColl),
}

pub struct SScalar {
    pub style: Style,
    /// Written with an explicit `!!str` tag, which keeps `4` a string when plain.
    pub str_tag: bool,
    /// The value, except its bytes when `in_text` (read them with [`SNode::scalar_bytes`]).
    pub value: Scalar,
    /// The value is spelled in the text exactly as it is (the node's `start..end`), so its
    /// bytes are not held twice: most values of a large file are such plain scalars.
    pub in_text: bool,
    /// For block scalars: the header indicators (`|-`, `>2`...), the content indentation and
    /// where the content lines start. The content runs from `content_start` to the node's `end`.
    /// Boxed: few scalars are blocks, and every item of a large file pays for the space.
    pub block: Option<Box<BlockInfo>>,
}

pub struct BlockInfo {
    pub header: (usize, usize),
    /// End of the header line (before its line break): where new content lines are attached.
    pub header_line_end: usize,
    pub content_indent: usize,
    /// The indentation of the structure the scalar belongs to (YAML's `n`).
    pub parent_indent: usize,
}

pub struct SColl {
    pub flow: bool,
    /// Column of the keys (mapping) or of the `-` (sequence) for block collections.
    pub indent: usize,
    pub items: Vec<SItem>,
}

pub enum SItem {
    Pair {
        key: String,
        /// Start of the key (including an anchor or tag on it).
        start: usize,
        /// Just after the `:` that ends the key.
        colon: usize,
        value: SNode,
    },
    Entry {
        /// The `-` of a block sequence item, or the item's start in a flow sequence.
        start: usize,
        value: SNode,
        /// A `- ENC[...,type:comment]` item as sops writes encrypted comments in lists: matched
        /// against comments of the new tree rather than against items.
        enc_comment: bool,
    },
    Comment {
        /// The `#`; the text runs from the next byte to `end`.
        hash: usize,
        end: usize,
        /// After other content on its line. Only the parse-shape tests read it (they pin which
        /// comments the parser took as inline); the tree placement already used it.
        #[cfg_attr(not(test), allow(dead_code))]
        inline: bool,
    },
}

impl SItem {
    pub fn start(&self) -> usize {
        match self {
            SItem::Pair { start, .. } | SItem::Entry { start, .. } => *start,
            // An inline comment starts at its `#`, after the item it follows on its line.
            SItem::Comment { hash, .. } => *hash,
        }
    }

    pub fn end(&self) -> usize {
        match self {
            SItem::Pair { value, .. } | SItem::Entry { value, .. } => value.extent,
            SItem::Comment { end, .. } => *end,
        }
    }

    fn value_mut(&mut self) -> Option<&mut SNode> {
        match self {
            SItem::Pair { value, .. } | SItem::Entry { value, .. } => Some(value),
            SItem::Comment { .. } => None,
        }
    }

    fn value(&self) -> Option<&SNode> {
        match self {
            SItem::Pair { value, .. } | SItem::Entry { value, .. } => Some(value),
            SItem::Comment { .. } => None,
        }
    }
}

impl SNode {
    /// A scalar node's value bytes.
    pub fn scalar_bytes<'a>(&'a self, text: &'a str) -> Option<&'a [u8]> {
        match &self.body {
            SBody::Scalar(s) if s.in_text => Some(
                text.as_bytes()
                    .get(self.start..self.end)
                    .unwrap_or_default(),
            ),
            SBody::Scalar(s) => Some(&s.value.value),
            _ => None,
        }
    }

    /// A scalar node's value, as a tree holds it.
    pub fn scalar_value(&self, text: &str) -> Option<Scalar> {
        let SBody::Scalar(s) = &self.body else {
            return None;
        };
        if !s.in_text {
            return Some(s.value.clone());
        }
        Some(Scalar {
            kind: s.value.kind,
            value: self.scalar_bytes(text).unwrap_or_default().to_vec(),
            layout: s.value.layout.clone(),
        })
    }

    /// Whether this is a scalar node whose value is `scalar`.
    pub fn holds_scalar(&self, text: &str, scalar: &Scalar) -> bool {
        match &self.body {
            SBody::Scalar(s) => {
                s.value.kind == scalar.kind
                    && s.value.layout == scalar.layout
                    && self.scalar_bytes(text) == Some(&scalar.value[..])
            }
            _ => false,
        }
    }

    pub fn coll(&self) -> Option<&SColl> {
        match &self.body {
            SBody::Map(c) | SBody::Seq(c) => Some(c),
            _ => None,
        }
    }

    fn coll_mut(&mut self) -> Option<&mut SColl> {
        match &mut self.body {
            SBody::Map(c) | SBody::Seq(c) => Some(c),
            _ => None,
        }
    }

    /// The tree value of this node.
    pub fn to_node(&self, text: &str) -> Node {
        match &self.body {
            SBody::Scalar(_) => Node::Scalar(self.scalar_value(text).unwrap_or_else(Scalar::null)),
            // An alias to a scalar is encrypted as a copy of the value (sops expands aliases: an
            // alias to an encrypted value could not be decrypted under its own path); its text
            // (`*name`) travels in the layout, so decrypting writes the alias back.
            SBody::Alias(Node::Scalar(value), _) => {
                let mut value = value.clone();
                value.layout = text.get(self.start..self.end).map(str::to_string);
                Node::Scalar(value)
            }
            // An alias to a mapping or sequence is encrypted as a copy too; its `*name` travels
            // in the layout of each of the copy's scalars that have a value (see
            // [`ALIAS_MARK`]): any one of them that is encrypted brings it back.
            SBody::Alias(n, _) => {
                let mut copy = n.clone();
                let digest = content_digest(&copy);
                let alias = text.get(self.start..self.end).unwrap_or_default();
                mark_valued_leaves(&mut copy, 0, &mut |leaf, depth| {
                    let inner = leaf.layout.take();
                    let mut mark = format!("{ALIAS_MARK}{depth}\u{0}{digest}\u{0}{alias}");
                    if let Some(inner) = inner {
                        mark.push('\u{0}');
                        mark.push_str(&inner);
                    }
                    leaf.layout = Some(mark);
                });
                copy
            }
            SBody::Map(c) => {
                // Sized up front: a large mapping would otherwise be copied as it grows.
                let mut items = Vec::with_capacity(c.items.len());
                items.extend(c.items.iter().filter_map(|item| match item {
                    SItem::Pair { key, value, .. } => {
                        Some(Item::Pair(key.clone(), value.to_node(text)))
                    }
                    SItem::Comment { hash, end, .. } => {
                        Some(Item::Comment(text[hash + 1..*end].to_string()))
                    }
                    SItem::Entry { .. } => None,
                }));
                Node::Map(items)
            }
            SBody::Seq(c) => Node::Seq(
                c.items
                    .iter()
                    .filter_map(|item| match item {
                        // sops writes a comment in a list as an encrypted item; its cipher
                        // gives a comment back, so the tree holds one.
                        SItem::Entry {
                            value,
                            enc_comment: true,
                            ..
                        } if value.scalar_bytes(text).is_some() => Some(Node::Comment(
                            String::from_utf8_lossy(value.scalar_bytes(text).unwrap_or_default())
                                .into_owned(),
                        )),
                        SItem::Entry { value, .. } => Some(value.to_node(text)),
                        SItem::Comment { hash, end, .. } => {
                            Some(Node::Comment(text[hash + 1..*end].to_string()))
                        }
                        SItem::Pair { .. } => None,
                    })
                    .collect(),
            ),
        }
    }
}

pub fn syntax(
    line: Option<usize>,
    column: Option<usize>,
    message: impl Into<String>,
) -> StoreError {
    StoreError::Syntax {
        format: "yaml",
        line,
        column,
        message: message.into(),
    }
}

/// 1-based line and column of byte `pos`.
pub fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(text.len());
    let before = &text.as_bytes()[..pos];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = text[line_start..pos].chars().count() + 1;
    (line, column)
}

pub fn line_start(text: &str, pos: usize) -> usize {
    text.as_bytes()[..pos]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1)
}

/// Position of the line break (`\n`, or the `\r` of `\r\n`) ending the line that holds `pos`.
pub fn line_end(text: &str, pos: usize) -> usize {
    let b = text.as_bytes();
    match b[pos..].iter().position(|&c| c == b'\n') {
        Some(p) if pos + p > 0 && b[pos + p - 1] == b'\r' => pos + p - 1,
        Some(p) => pos + p,
        None => b.len(),
    }
}

pub fn parse(bytes: Vec<u8>) -> Result<Source, StoreError> {
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let bytes = e.as_bytes();
            let valid = std::str::from_utf8(&bytes[..e.utf8_error().valid_up_to()]).unwrap_or("");
            let (line, column) = line_col(valid, valid.len());
            return Err(syntax(Some(line), Some(column), "the file is not UTF-8"));
        }
    };
    let nl = match text.find('\n') {
        Some(p) if p > 0 && text.as_bytes()[p - 1] == b'\r' => "\r\n",
        _ => "\n",
    };
    let docs = match Masked::of(&text) {
        Some(mask) => match Builder::new(&text, Some(&mask)).run() {
            Ok((docs, true)) => docs,
            // A guess of the mask was wrong, or the text has an error to place exactly.
            _ => unmasked(&text)?,
        },
        None => unmasked(&text)?,
    };
    Ok(Source { text, docs, nl })
}

/// Reads `text` without masking. Lines of flow collections that saphyr refuses for their
/// indentation (and go-yaml accepts) are indented for it, one line per retry: such lines are
/// rare (a closing `]` at its key's column), and a file without them is read once.
fn unmasked(text: &str) -> Result<Vec<DocSource>, StoreError> {
    let b = Builder::new(text, None);
    let first = match b.run_keeping_fix() {
        Ok(docs) => return Ok(docs),
        Err((e, None)) => return Err(e),
        Err((e, Some(fix))) => (e, fix),
    };
    let (first_error, mut fix) = first;
    let mut indented = Indented::of(text);
    // Each retry fixes one more line and reads the whole text again, so the work grows with
    // lines x size: a 20 KB file of 3,000 such lines took minutes (issue 13, item 7). Real
    // files have a handful; the bound keeps the re-reading under ~16 MiB of text in all.
    let retries = (RETRY_TEXT_BUDGET / text.len().max(1)).clamp(8, MAX_RETRIES);
    for _ in 0..retries {
        indented.insert(text, fix.0, fix.1);
        match Builder::reading(text, None, Some(&indented)).run_keeping_fix() {
            Ok(docs) => return Ok(docs),
            Err((e, None)) => return Err(e),
            Err((_, Some(next))) => fix = next,
        }
    }
    Err(match first_error {
        StoreError::Syntax { line, column, .. } => syntax(
            line,
            column,
            format!(
                "more than {retries} lines of flow collections are indented at or left of their \
                 key's column; indent them further"
            ),
        ),
        other => other,
    })
}

/// How much text [`unmasked`] may read again in all, and at most how many times.
const RETRY_TEXT_BUDGET: usize = 16 << 20;
const MAX_RETRIES: usize = 256;

/// Whether a typed scalar written `text` comes back as `text` from its encrypted form: the
/// plaintext sops encrypts for it, read back and written as the writer writes a value.
fn written_back_as_is(kind: Kind, text: &str, in_flow: bool) -> bool {
    let scalar = Scalar::new(kind, text);
    let Ok(plain) = crate::format::scalar_text::plaintext(&scalar) else {
        return false;
    };
    if *plain == *text.as_bytes() {
        return true;
    }
    crate::format::scalar_text::from_plaintext(kind, plain.into_owned())
        .is_ok_and(|back| emit::inline_scalar(&back, in_flow) == text)
}

/// A line saphyr needs indented: (start of the line in the original text, spaces to add).
type LineFix = (usize, usize);

/// A text with spaces inserted at the start of some lines, and the way back to the original
/// positions.
pub(crate) struct Indented {
    text: String,
    /// (position in the original text, spaces inserted there), sorted.
    inserts: Vec<(usize, usize)>,
}

impl Indented {
    fn of(text: &str) -> Indented {
        Indented {
            text: text.to_string(),
            inserts: Vec::new(),
        }
    }

    /// Spaces already inserted at original position `at`.
    fn inserted_at(&self, at: usize) -> usize {
        self.inserts
            .iter()
            .filter(|(p, _)| *p == at)
            .map(|(_, n)| n)
            .sum()
    }

    /// Inserts `n` more spaces at original position `at` (a line start) and rebuilds the text.
    fn insert(&mut self, original: &str, at: usize, n: usize) {
        match self.inserts.iter_mut().find(|(p, _)| *p == at) {
            Some((_, k)) => *k += n,
            None => {
                self.inserts.push((at, n));
                self.inserts.sort_unstable();
            }
        }
        let mut out = String::with_capacity(original.len() + self.inserts.len() * 4);
        let mut copied = 0;
        for &(p, k) in &self.inserts {
            out.push_str(&original[copied..p]);
            out.extend(std::iter::repeat_n(' ', k));
            copied = p;
        }
        out.push_str(&original[copied..]);
        self.text = out;
    }

    /// The original position of byte `pos` of the indented text (inserted spaces map to the
    /// start of their line).
    fn original(&self, pos: usize) -> usize {
        let mut shift = 0;
        for &(p, k) in &self.inserts {
            let at = p + shift;
            if pos < at {
                break;
            }
            if pos < at + k {
                return p;
            }
            shift += k;
        }
        pos - shift
    }
}

/// The documents of `text` read without masking, and read with masking when anything is masked
/// (with whether every masked value came back whole): the two readings the tests compare.
#[cfg(test)]
pub type Readings = (
    Result<Vec<DocSource>, StoreError>,
    Option<Result<(Vec<DocSource>, bool), StoreError>>,
);

#[cfg(test)]
pub fn both_readings(text: &str) -> Readings {
    let plain = Builder::new(text, None).run().map(|r| r.0);
    let masked = Masked::of(text).map(|m| Builder::new(text, Some(&m)).run());
    (plain, masked)
}

enum Frame {
    Map {
        node: SNode,
        /// The key waiting for its value: (key, start, colon).
        pending: Option<(String, usize, usize)>,
        anchor: usize,
    },
    Seq {
        node: SNode,
        /// The `-` of the item being built.
        pending: Option<usize>,
        /// Where to look for the next `-`.
        cursor: usize,
        anchor: usize,
    },
}

impl Frame {
    fn node(&self) -> &SNode {
        match self {
            Frame::Map { node, .. } | Frame::Seq { node, .. } => node,
        }
    }
    fn node_mut(&mut self) -> &mut SNode {
        match self {
            Frame::Map { node, .. } | Frame::Seq { node, .. } => node,
        }
    }
    fn items_mut(&mut self) -> &mut Vec<SItem> {
        match self.node_mut().coll_mut() {
            Some(c) => &mut c.items,
            None => unreachable!("frames hold collections"),
        }
    }
    /// Start of the item being built, when there is one.
    fn pending_start(&self) -> Option<usize> {
        match self {
            Frame::Map { pending, .. } => pending.as_ref().map(|p| p.1),
            Frame::Seq { pending, .. } => *pending,
        }
    }
}

/// A comment at a column at least this belongs to the collection when the collection ends right
/// after it (a foot comment). A sequence indented under its key keeps comments at its `-`
/// column; one written at its key's column (go-yaml's indentless sequence, which opens no
/// indentation level of its own) only deeper ones (checked with sops 3.11 and 3.13: `# foot` at
/// the `-` column after the last item goes to the parent there, to the sequence otherwise).
///
/// In a file with CRLF line breaks go-yaml keeps a comment at an indentless sequence's `-`
/// column in the sequence when its last item is a scalar (its comment scanner counts the
/// `\r`; checked with sops 3.13: after a mapping item it still goes to the parent).
fn threshold(node: &SNode, parent: Option<&SNode>, crlf: bool) -> usize {
    match &node.body {
        SBody::Map(c) if !c.flow => c.indent,
        SBody::Seq(c) if !c.flow => {
            let indentless = parent.and_then(SNode::coll).is_some_and(|p| {
                !p.flow
                    && matches!(parent.map(|n| &n.body), Some(SBody::Map(_)))
                    && p.indent == c.indent
            });
            let scalar_last = last_value(node).is_some_and(|v| v.coll().is_none());
            if indentless && !(crlf && scalar_last) {
                c.indent + 1
            } else {
                c.indent
            }
        }
        _ => 0,
    }
}

struct Builder<'t> {
    text: &'t str,
    nl: &'static str,
    /// What saphyr reads instead of `text`, when values are masked (see [`super::mask`]).
    mask: Option<&'t Masked>,
    /// What saphyr reads instead of `text` when lines of flow collections were indented for it
    /// (see [`Indented`]); never together with `mask`.
    indented: Option<&'t Indented>,
    /// Set when saphyr stopped at a line of a flow collection that is not indented past the
    /// block collection around it.
    flow_line_fix: Option<LineFix>,
    /// Masked values that came back whole.
    unmasked: usize,
    /// The masked value last looked up.
    run_hint: std::cell::Cell<usize>,
    /// Byte offset of each char of what saphyr reads when that is not ASCII (saphyr's markers
    /// count chars).
    char_bytes: Option<Vec<u32>>,
    stack: Vec<Frame>,
    /// Anchored nodes by id: their value, and where they are.
    anchors: HashMap<usize, (Node, std::ops::Range<usize>)>,
    docs: Vec<DocSource>,
    root: Option<SNode>,
    /// Comments met before a document's root exists (a document of comments only).
    orphans: Vec<SItem>,
    doc_content_start: usize,
    /// End of the last token seen: comments are looked for between it and the next token.
    last_end: usize,
    /// Stack depth when the last token was seen, and the lowest depth since.
    depth_at_token: usize,
    min_depth: usize,
    /// Nesting and alias expansion of what has been read (see [`super::budget`]).
    budget: Budget,
    /// The gap being read comes before an empty item (`-` with nothing after it).
    gap_for_empty: bool,
    /// The `#` of each head comment of an empty item, placed as the head of that item but
    /// waiting for the next token that takes comments, to be moved there (see
    /// [`Builder::place_comment`]).
    deferred_heads: Vec<usize>,
}

/// The token go-yaml gives each own-line comment of a gap (by its `#`), and where each token
/// puts it: the rank in the closed chain of each block collection that ends there (innermost
/// first), then of the innermost one open at the last token; `None` for the innermost
/// surviving collection.
struct Unfolded {
    tokens: HashMap<usize, Unfold>,
    ranks: Vec<Option<usize>>,
    /// For each block collection that ends (innermost first): a foot given to its end goes on
    /// to the token after the gap (see [`Builder::unfold_as_go_yaml`]).
    passes_on: Vec<bool>,
}

enum Placement {
    Append,
    Before(usize),
    First,
}

impl<'t> Builder<'t> {
    fn new(text: &'t str, mask: Option<&'t Masked>) -> Self {
        Self::reading(text, mask, None)
    }

    fn reading(text: &'t str, mask: Option<&'t Masked>, indented: Option<&'t Indented>) -> Self {
        let read = match (mask, indented) {
            (Some(m), _) => m.text.as_str(),
            (None, Some(i)) => i.text.as_str(),
            (None, None) => text,
        };
        let char_bytes = if read.is_ascii() {
            None
        } else {
            let mut v: Vec<u32> = read.char_indices().map(|(i, _)| i as u32).collect();
            v.push(read.len() as u32);
            Some(v)
        };
        let nl = match text.find('\n') {
            Some(p) if p > 0 && text.as_bytes()[p - 1] == b'\r' => "\r\n",
            _ => "\n",
        };
        Builder {
            text,
            nl,
            mask,
            indented,
            flow_line_fix: None,
            unmasked: 0,
            run_hint: std::cell::Cell::new(0),
            char_bytes,
            stack: Vec::new(),
            anchors: HashMap::new(),
            docs: Vec::new(),
            root: None,
            orphans: Vec::new(),
            doc_content_start: 0,
            last_end: 0,
            depth_at_token: 0,
            min_depth: 0,
            budget: Budget::default(),
            gap_for_empty: false,
            deferred_heads: Vec::new(),
        }
    }

    /// The byte of the original text at saphyr's `char_index`.
    fn byte(&self, char_index: usize) -> usize {
        let read = self.read_byte(char_index);
        match (self.mask, self.indented) {
            (Some(m), _) => m.original(read, &self.run_hint).min(self.text.len()),
            (None, Some(i)) => i.original(read).min(self.text.len()),
            (None, None) => read,
        }
    }

    /// Whether the node being read is inside a flow collection.
    fn in_flow(&self) -> bool {
        self.stack
            .last()
            .and_then(|f| f.node().coll())
            .is_some_and(|c| c.flow)
    }

    /// The text saphyr reads.
    fn read_text(&self) -> &'t str {
        match (self.mask, self.indented) {
            (Some(m), _) => m.text.as_str(),
            (None, Some(i)) => i.text.as_str(),
            (None, None) => self.text,
        }
    }

    /// The byte at saphyr's `char_index` in the text it reads.
    fn read_byte(&self, char_index: usize) -> usize {
        let len = self.read_text().len();
        match &self.char_bytes {
            None => char_index.min(len),
            Some(v) => v.get(char_index).map_or(len, |&b| b as usize),
        }
    }

    /// The original value of a scalar that is a placeholder as a whole, counted as found. A
    /// placeholder anywhere else is not counted, which sends the reading to the unmasked text.
    fn unmask(&mut self, span: &Span, plain: bool, has_props: bool) -> Option<&'t str> {
        let mask = self.mask?;
        let at = self.read_byte(span.start.index());
        let run = mask.run_at(at, &self.run_hint)?;
        let whole = self.read_byte(span.end.index()) == at + PLACEHOLDER.len();
        // Inside a flow collection (the implicit mapping of `[a: b]` included) `,[]{}` end a
        // plain scalar: the original value would not be one token.
        let in_flow = self
            .stack
            .iter()
            .any(|f| f.node().coll().is_some_and(|c| c.flow));
        let block_value = !in_flow
            && !matches!(
                self.stack.last(),
                Some(Frame::Map { pending: None, .. }) | None
            );
        if !(plain && whole && !has_props && block_value) {
            return None;
        }
        self.unmasked += 1;
        self.text.get(run.orig..run.orig + run.len)
    }

    fn err_at(&self, pos: usize, message: impl Into<String>) -> StoreError {
        let (line, column) = line_col(self.text, pos);
        syntax(Some(line), Some(column), message)
    }

    /// The documents, and whether every masked value came back whole (when it did not, the
    /// documents are not those of the original text).
    fn run(mut self) -> Result<(Vec<DocSource>, bool), StoreError> {
        let read = self.read_text();
        // A masked (encrypted) text's simple leading lines are read by the fast reader; an
        // error anywhere sends the text back to a reading by saphyr-parser alone (see
        // `parse`), which also gives it its exact line and column.
        let fast_end = self.mask.and_then(|_| fast::prefix_end(read));
        let mut from = 0;
        if let Some(end) = fast_end {
            for (event, span) in fast::Events::new(read, end) {
                if !self.event(event, span)? {
                    break;
                }
            }
            from = end;
        }
        if from < read.len() || fast_end.is_none() {
            self.read_with_saphyr(read, from)?;
        }
        let whole = self.mask.is_none_or(|m| self.unmasked == m.runs.len());
        Ok((self.docs, whole))
    }

    /// [`Builder::run`] without a mask, giving back on an error the line fix saphyr would need
    /// (see [`Builder::note_flow_line`]).
    fn run_keeping_fix(self) -> Result<Vec<DocSource>, (StoreError, Option<LineFix>)> {
        let mut me = self;
        let read = me.read_text();
        match me.read_with_saphyr(read, 0) {
            Ok(()) => Ok(me.docs),
            Err(e) => Err((e, me.flow_line_fix)),
        }
    }

    /// Feeds saphyr-parser's events for `read[from..]`. From a top-level key (`from > 0`, where
    /// the fast reader stopped with the root mapping open) the rest is parsed as a stream of its
    /// own, whose stream, document and mapping starts are already behind; positions are moved
    /// by `from` (the part before is ASCII, so bytes and characters count alike).
    fn read_with_saphyr(&mut self, read: &str, from: usize) -> Result<(), StoreError> {
        let mut parser = Parser::new_from_str(&read[from..]);
        let mut skip = if from > 0 { 3 } else { 0 };
        while let Some(ev) = parser.next_event() {
            let (event, span) = match ev {
                Ok(x) => x,
                Err(e) => {
                    let m = e.marker();
                    if e.info().starts_with("invalid indentation") {
                        self.note_flow_line(m.index() + from);
                    }
                    if self.indented.is_some() {
                        // Columns of the text as written, not as indented for saphyr.
                        let (line, column) = line_col(self.text, self.byte(m.index() + from));
                        return Err(syntax(Some(line), Some(column), e.info()));
                    }
                    return Err(syntax(Some(m.line()), Some(m.col() + 1), e.info()));
                }
            };
            if skip > 0 {
                skip -= 1;
                let expected = matches!(
                    (skip, &event),
                    (2, Event::StreamStart)
                        | (1, Event::DocumentStart(false))
                        | (0, Event::MappingStart(0, None))
                );
                if !expected {
                    return Err(syntax(
                        None,
                        None,
                        "unexpected start of the rest of the text",
                    ));
                }
                continue;
            }
            let span = if from > 0 {
                let at = |m: saphyr_parser::Marker| {
                    saphyr_parser::Marker::new(m.index() + from, m.line(), m.col())
                };
                Span::new(at(span.start), at(span.end))
            } else {
                span
            };
            if !self.event(event, span)? {
                break;
            }
        }
        Ok(())
    }

    /// When saphyr refused the line at `char_index` for its indentation while a flow collection
    /// is open, records how many spaces would make it acceptable: go-yaml (and so sops) reads a
    /// flow collection's lines at any indentation (`key: [` ... `]` at the key's column), while
    /// saphyr wants them past the enclosing block collection's indentation, as YAML 1.2 says.
    fn note_flow_line(&mut self, char_index: usize) {
        let pos = self.byte(char_index);
        let ls = line_start(self.text, pos);
        // saphyr looks ahead of the events it has given (a `[` may start a key), so the open
        // flow collection may not be on the stack yet: the text tells too. A line in a flow
        // collection closes it, or follows a line that opened it or ended an entry.
        let first = self.text[ls..]
            .trim_start_matches([' ', '\t'])
            .as_bytes()
            .first()
            .copied();
        let before = self.text[..ls].trim_end();
        let in_flow = self
            .stack
            .iter()
            .any(|f| f.node().coll().is_some_and(|c| c.flow))
            || matches!(first, Some(b']' | b'}'))
            || before.ends_with(['[', '{', ',']);
        if !in_flow {
            return;
        }
        let block_indent = self
            .stack
            .iter()
            .rev()
            .filter_map(|f| f.node().coll())
            .find(|c| !c.flow)
            .map_or(0, |c| c.indent);
        let col = self.text[ls..pos].chars().count();
        let shown = self.indented.map_or(0, |i| i.inserted_at(ls));
        if col + shown <= block_indent {
            self.flow_line_fix = Some((ls, block_indent + 1 - col - shown));
        }
    }

    /// Skips whitespace, comments and node properties (anchors, tags) from `pos`.
    fn skip_props(&self, mut pos: usize) -> usize {
        let b = self.text.as_bytes();
        loop {
            while pos < b.len() && matches!(b[pos], b' ' | b'\t' | b'\r' | b'\n') {
                pos += 1;
            }
            if pos < b.len() && (b[pos] == b'&' || b[pos] == b'!') {
                while pos < b.len() && !matches!(b[pos], b' ' | b'\t' | b'\r' | b'\n') {
                    pos += 1;
                }
            } else if pos < b.len()
                && b[pos] == b'#'
                && (pos == 0 || matches!(b[pos - 1], b' ' | b'\t' | b'\n'))
            {
                pos = line_end(self.text, pos);
            } else {
                return pos;
            }
        }
    }

    /// The first of `wanted` from `pos`, skipping whitespace, comments, properties and the block
    /// indicators `-`, `?`, `:`.
    fn find_indicator(&self, mut pos: usize, wanted: &[u8]) -> Option<usize> {
        let b = self.text.as_bytes();
        loop {
            pos = self.skip_props(pos);
            if pos >= b.len() {
                return None;
            }
            if wanted.contains(&b[pos]) {
                return Some(pos);
            }
            if matches!(b[pos], b'-' | b'?' | b':' | b',') {
                pos += 1;
            } else {
                return None;
            }
        }
    }

    /// Returns false at the end of the stream.
    fn event(&mut self, event: Event, span: Span) -> Result<bool, StoreError> {
        let s = self.byte(span.start.index());
        let e = self.byte(span.end.index());
        // Before anything is built from the event: an alias is copied, a collection nests.
        if let Err(exceeded) = self.budget.event(&event) {
            return Err(self.err_at(s, exceeded.message()));
        }
        match event {
            Event::StreamStart | Event::Nothing => {}
            Event::StreamEnd => return Ok(false),
            Event::DocumentStart(explicit) => {
                self.root = None;
                self.orphans.clear();
                self.depth_at_token = 0;
                self.min_depth = 0;
                if explicit {
                    // Comments before the first `---` head the document (go-yaml's document
                    // head comment, which sops lists first in the root mapping).
                    self.gap(s.max(self.last_end));
                }
                self.doc_content_start = if explicit { e } else { self.last_end };
                self.last_end = self.last_end.max(self.doc_content_start);
            }
            Event::DocumentEnd => {
                let end = s.max(self.last_end).min(self.text.len());
                self.root_to_map()?;
                self.gap(end);
                self.last_end = self.last_end.max(end);
                self.finish_doc()?;
            }
            Event::Alias(id) => {
                self.gap(s);
                let (value, anchored) = match self.anchors.get(&id) {
                    Some((n, at)) => match self.closed_node_at(at.start) {
                        // The anchored collection as it is now: go-yaml gives some comments
                        // to a collection after its end (a foot placed when the next token
                        // comes, see `gap`), and sops' copy of it holds them.
                        Some(node) => (late_feet_within(node.to_node(self.text), n), at.clone()),
                        None => (n.clone(), at.clone()),
                    },
                    None => return Err(self.err_at(s, "unknown alias")),
                };
                self.last_end = e;
                let node = SNode {
                    start: s,
                    end: e,
                    extent: e,
                    body: SBody::Alias(value, anchored),
                };
                self.add_node(node, s)?;
            }
            Event::Scalar(value, style, anchor, tag) => {
                let plain = style == ScalarStyle::Plain;
                let value = match self.unmask(&span, plain, anchor != 0 || tag.is_some()) {
                    Some(original) => original,
                    None => value.as_ref(),
                };
                self.scalar(value, style, anchor, tag.as_deref(), s, e)?;
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                let is_map = matches!(event, Event::MappingStart(..));
                let mut pos = self.skip_props(s);
                let b = self.text.as_bytes();
                // A flow collection's start token is its bracket; a block collection's is an
                // empty mark (saphyr's roll_indent), which for a sequence written at its key's
                // column sits on the first item's content: `- [a, b]` starts a block sequence
                // at `[`, not a flow one.
                let empty_mark = e <= s;
                if !is_map && empty_mark {
                    // saphyr marks a block sequence at its `-`, or (an indentless sequence,
                    // or a first item that is empty after its `-`) after it, on the first
                    // item's content, which may be lines later (`-  # note` then a mapping,
                    // `-` then a nested `- x`): the `-` is found back over blanks and comments.
                    // `key:` then `- - x`: both sequences are marked at the inner `-`; the one
                    // that is the key's value starts at the line's first `-`.
                    let ls = line_start(self.text, s.min(b.len()));
                    let prefix = &self.text[ls..s.min(b.len())];
                    let value_of_key = matches!(
                        self.stack.last(),
                        Some(Frame::Map {
                            pending: Some(_),
                            ..
                        })
                    );
                    if b.get(s) != Some(&b'-') {
                        if let Some(dash) = self.dash_before(s.min(b.len())) {
                            pos = dash;
                        }
                    } else if value_of_key
                        && prefix.contains('-')
                        && prefix.bytes().all(|c| c == b' ' || c == b'-')
                    {
                        pos = ls + prefix.find('-').unwrap_or(0);
                    }
                }
                let flow = !empty_mark
                    && self
                        .text
                        .as_bytes()
                        .get(pos)
                        .is_some_and(|&c| c == b'{' || c == b'[');
                if let Some(Frame::Map { pending: None, .. }) = self.stack.last() {
                    return Err(self.err_at(pos, "complex mapping keys are not supported"));
                }
                if !flow && matches!(self.stack.last(), Some(Frame::Seq { .. })) {
                    // A block collection as a sequence's item takes a head comment held from
                    // before its `-` (go-yaml's stem comment, `yaml_parser_split_stem_comment`):
                    // sops lists it in that sequence.
                    self.move_deferred_heads();
                }
                self.begin_item(pos);
                if flow {
                    self.gap(pos);
                    self.last_end = pos + 1;
                }
                let indent = pos - line_start(self.text, pos);
                let node = SNode {
                    start: pos,
                    end: if flow { pos + 1 } else { pos },
                    extent: pos,
                    body: {
                        let c = SColl {
                            flow,
                            indent,
                            items: Vec::new(),
                        };
                        if is_map {
                            SBody::Map(c)
                        } else {
                            SBody::Seq(c)
                        }
                    },
                };
                self.stack.push(if is_map {
                    Frame::Map {
                        node,
                        pending: None,
                        anchor,
                    }
                } else {
                    Frame::Seq {
                        node,
                        pending: None,
                        cursor: pos,
                        anchor,
                    }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let flow = self.stack.last().is_some_and(|f| match &f.node().body {
                    SBody::Map(c) | SBody::Seq(c) => c.flow,
                    _ => false,
                });
                if flow {
                    // `}` / `]`: saphyr's span for it may start after it or run on over blanks
                    // and a comment, so it is looked for: only blanks and comments can come
                    // between the last token and the closing bracket.
                    let close = self
                        .closing_bracket(self.last_end)
                        .unwrap_or_else(|| e.saturating_sub(1).max(s));
                    self.gap(close);
                    self.last_end = close + 1;
                }
                let Some(frame) = self.stack.pop() else {
                    return Err(self.err_at(s, "unbalanced collection"));
                };
                self.min_depth = self.min_depth.min(self.stack.len());
                let (mut node, anchor) = match frame {
                    Frame::Map { node, anchor, .. } | Frame::Seq { node, anchor, .. } => {
                        (node, anchor)
                    }
                };
                if let SBody::Map(c) = &node.body {
                    // Checked once the mapping is complete (as go-yaml does after parsing),
                    // which spares a copy of every key.
                    if let Some(at) = first_duplicate(&c.items) {
                        // The key itself stays out of the message: keys can be sensitive too.
                        return Err(self.err_at(at, "mapping key is defined twice"));
                    }
                }
                if flow {
                    node.end = self.last_end;
                } else {
                    node.end = node
                        .coll()
                        .and_then(|c| c.items.iter().map(SItem::end).max())
                        .unwrap_or(node.start);
                }
                // Up to date now (fix_extent completes it when the document ends): the next `-`
                // of an enclosing sequence is looked for from an item's extent, which must not
                // stop inside the item (at the `{` of `{}`, or at the first key of a mapping).
                node.extent = node.extent.max(node.end);
                if anchor != 0 {
                    self.anchors
                        .insert(anchor, (node.to_node(self.text), node.start..node.end));
                }
                let start = node.start;
                self.attach(node, start)?;
            }
        }
        Ok(true)
    }

    /// Records the `-` of a block sequence item that starts at `pos`.
    fn begin_item(&mut self, pos: usize) {
        let text = self.text;
        if let Some(Frame::Seq {
            node,
            pending,
            cursor,
            ..
        }) = self.stack.last_mut()
        {
            if pending.is_none() {
                let flow = node.coll().is_some_and(|c| c.flow);
                let dash = if flow {
                    pos
                } else {
                    find_dash(text, *cursor)
                        .filter(|&d| d <= pos)
                        .unwrap_or(pos)
                };
                *pending = Some(dash);
                *cursor = dash + 1;
            }
        }
    }

    fn scalar(
        &mut self,
        value: &str,
        style: ScalarStyle,
        anchor: usize,
        tag: Option<&saphyr_parser::Tag>,
        s: usize,
        e: usize,
    ) -> Result<(), StoreError> {
        let b = self.text.as_bytes();
        let style = match style {
            ScalarStyle::Plain => Style::Plain,
            ScalarStyle::SingleQuoted => Style::Single,
            ScalarStyle::DoubleQuoted => Style::Double,
            ScalarStyle::Literal => Style::Literal,
            ScalarStyle::Folded => Style::Folded,
        };
        let has_props = anchor != 0 || tag.is_some();
        let (start, end, block) = match style {
            Style::Plain => {
                let start = if has_props { self.skip_props(s) } else { s };
                if value.is_empty() && !has_props {
                    (usize::MAX, usize::MAX, None)
                } else {
                    (start.min(e), e, None)
                }
            }
            Style::Single | Style::Double => {
                let q = if style == Style::Single { b'\'' } else { b'"' };
                let start = self
                    .find_indicator(self.last_end.min(s), &[q])
                    .filter(|&p| p <= s.max(self.skip_props(s)))
                    .unwrap_or(s);
                let mut i = start + 1;
                let end = loop {
                    if i >= b.len() {
                        break b.len();
                    }
                    match (b[i], style) {
                        (b'\\', Style::Double) => i += 2,
                        (b'\'', Style::Single) if b.get(i + 1) == Some(&b'\'') => i += 2,
                        (c, _) if c == q => break i + 1,
                        _ => i += 1,
                    }
                };
                (start, end.min(b.len()), None)
            }
            Style::Literal | Style::Folded => {
                let Some(start) = self.find_indicator(self.last_end, b"|>") else {
                    return Err(self.err_at(s, "block scalar header not found"));
                };
                let (end, info) = self.block_scalar(start)?;
                (start, end, Some(info))
            }
        };
        // A block scalar that ends the file without a line break has no final line break to
        // keep: go-yaml (and sops) read `a: |` + `  text` at EOF as "text"; saphyr adds "\n".
        let trimmed;
        let last_line = &self.text[line_start(self.text, b.len())..];
        let value = if block.is_some()
            && end >= b.len()
            && !last_line.trim().is_empty()
            && value.ends_with('\n')
        {
            trimmed = &value[..value.len() - 1];
            trimmed
        } else {
            value
        };
        let (start, end) = if start == usize::MAX {
            // An empty plain scalar (`key:` or `-` with nothing after it): it sits right after
            // its indicator, which is where a new value will be written.
            let at = match self.stack.last() {
                Some(Frame::Map {
                    pending: Some((_, _, colon)),
                    ..
                }) => *colon,
                Some(Frame::Seq { .. }) => {
                    self.begin_item(s);
                    match self.stack.last() {
                        Some(Frame::Seq {
                            pending: Some(d), ..
                        }) => *d + 1,
                        _ => s,
                    }
                }
                _ => s,
            };
            let at = at.max(self.last_end).min(b.len());
            (at, at)
        } else {
            (start, end)
        };
        self.gap_for_empty = start == end && value.is_empty() && !has_props;
        self.gap(start);
        self.gap_for_empty = false;
        if let Some(info) = &block {
            // A comment after the header (`key: | # note`) precedes the pair, as in sops.
            let hdr_rest = info.header.1;
            if let Some(h) = self.text[hdr_rest..info.header_line_end].find('#') {
                let hash = hdr_rest + h;
                self.place_comment(hash, info.header_line_end);
            }
        }
        self.last_end = self.last_end.max(if block.is_some() {
            content_region_end(self.text, end)
        } else {
            end
        });

        // A core-schema tag by its name (`!!int`, `!<tag:yaml.org,2002:int>`, a `%TAG` handle
        // for the same prefix: go-yaml reads all three as `!!int`); "" for any other tag.
        let core_name = tag.map(|t| {
            let full = format!("{}{}", t.handle, t.suffix);
            full.strip_prefix("tag:yaml.org,2002:")
                .unwrap_or("")
                .to_string()
        });
        let is_key = matches!(self.stack.last(), Some(Frame::Map { pending: None, .. }));
        if let (Some(name), false) = (&core_name, is_key) {
            if value.starts_with("ENC[AES256_GCM,") {
                self.check_encrypted_tag(name, value, s)?;
            }
        }
        let binary = core_name.as_deref() == Some("binary");
        let decoded =
            if binary {
                Some(decode_binary(value).ok_or_else(|| {
                    self.err_at(start, "!!binary value contains invalid base64 data")
                })?)
            } else {
                None
            };
        let kind = match &core_name {
            Some(name) => resolve::tagged_kind(name, value).map_err(|m| self.err_at(start, m))?,
            None if style == Style::Plain => resolve::plain_kind(value),
            None => Kind::Str,
        };
        let str_tag = tag.is_some() && kind == Kind::Str;
        let mut start = start;
        let mut layout = None;
        // Where the tag starts, when it can travel with the value: not on a key, not on a
        // block scalar (whose header the writer rewrites), and after any anchor (an anchor
        // sealed away would leave its aliases dangling in the encrypted file).
        let tag_start = (tag.is_some() && !is_key && block.is_none())
            .then(|| self.tag_start(s, start))
            .flatten();
        let value = match &decoded {
            // go-yaml decodes `!!binary` into the bytes, which sops types `str`, encrypts and
            // hashes into the MAC; the text (tag and base64) travels sealed in the layout.
            Some(_) => "",
            None => value,
        };
        if let (Some(bytes), Some(at)) = (&decoded, tag_start) {
            start = at;
            layout = self.text.get(at..end).map(str::to_string);
            let scalar = Scalar {
                kind: Kind::Str,
                value: bytes.clone(),
                layout: layout.clone(),
            };
            return self.add_scalar(
                anchor,
                start,
                end,
                SScalar {
                    style,
                    str_tag: false,
                    value: scalar,
                    in_text: false,
                    block: None,
                },
            );
        } else if decoded.is_some() {
            // A block `!!binary |`: the writer cannot yet carry its tag sealed.
            return Err(self.err_at(
                start,
                "a !!binary value must be written on one line (with an anchor, after it)",
            ));
        } else if let (Some(at), Kind::Str) = (tag_start, kind) {
            // `!!str 4`, `!foo bar`: the tag goes with the value, sealed in its layout, so
            // that the encrypted file has no tag outside the MAC (a tag left beside an
            // `ENC[...]` is refused when the file is read, see `check_encrypted_tag`).
            start = at;
            layout = self.text.get(at..end).map(str::to_string);
        } else if kind == Kind::Str {
            layout = self.layout(style, value, start, end, block.as_ref());
        } else if tag.is_some() && block.is_none() && s < start {
            // `!!int "42"`: the tag goes with the value (an encrypted value is a string, and
            // `!!int ENC[...]` would not read back); it returns through the layout.
            start = s;
            layout = self.text.get(s..end).map(str::to_string);
        } else if kind == Kind::Bool && !matches!(value, "true" | "false") {
            // A bool is encrypted as sops spells it (`True`/`False`) and written back as sops
            // prints it (`true`/`false`); any other spelling travels in the layout.
            layout = Some(value.to_string());
        } else if matches!(kind, Kind::Int | Kind::Float | Kind::Time)
            && !written_back_as_is(kind, value, self.in_flow())
        {
            // The plaintext sops encrypts is the value's canonical spelling (`0o17` -> 15,
            // `2024-01-01` -> 2024-01-01T00:00:00Z, `.nan` -> NaN): any other spelling travels
            // in the layout, so that decrypting gives the text back as it was.
            layout = Some(value.to_string());
        }
        let in_text = self.text.get(start..end) == Some(value);
        let mut scalar = Scalar::new(kind, value);
        scalar.layout = layout;
        self.add_scalar(
            anchor,
            start,
            end,
            SScalar {
                style,
                str_tag,
                value: scalar,
                in_text,
                block: block.map(Box::new),
            },
        )
    }

    /// Where the tag among the properties between `s` and the value's `start` begins, when it
    /// is the last property (an anchor after it would be sealed away with it).
    fn tag_start(&self, s: usize, start: usize) -> Option<usize> {
        let props = self.text.get(s..start)?;
        let trimmed = props.trim_end();
        let last = trimmed.rfind([' ', '\t', '\n', '\r']).map_or(0, |i| i + 1);
        trimmed[last..].starts_with('!').then_some(s + last)
    }

    /// An `ENC[...]` value with a tag: the tag lies outside the MAC, which covers the
    /// decrypted value as sops types it. Only `!!str` on a `str` value means the same; any
    /// other tag would give a verified value another meaning downstream (PyYAML reads
    /// `!!null` as null, a custom tag may construct anything), so it is refused, naming the
    /// path. sops 3.13 refuses the core tags too (go-yaml cannot decode `ENC[...]` as
    /// `!!null`, `!!int`, `!!binary`) and ignores the others; enseal writes no tag beside an
    /// `ENC[...]` (it seals the tag in the value's layout).
    fn check_encrypted_tag(
        &self,
        core_name: &str,
        value: &str,
        s: usize,
    ) -> Result<(), StoreError> {
        let enc_type = value
            .rfind(",type:")
            .and_then(|i| value[i + 6..].split(']').next());
        if core_name == "str" && enc_type == Some("str") {
            return Ok(());
        }
        Err(self.err_at(
            s,
            format!(
                "the encrypted value at {} carries a YAML tag, which its MAC does not cover",
                self.path_display()
            ),
        ))
    }

    /// The path of the value being read, for messages (`db:password`); never a value.
    fn path_display(&self) -> String {
        let keys: Vec<&str> = self
            .stack
            .iter()
            .filter_map(|f| match f {
                Frame::Map {
                    pending: Some((key, _, _)),
                    ..
                } => Some(key.as_str()),
                _ => None,
            })
            .collect();
        if keys.is_empty() {
            "(top level)".to_string()
        } else {
            keys.join(":")
        }
    }

    /// The scalar's source text when the lossless writer could not rebuild it from the value
    /// (a folded block, a multi-line plain scalar, an escape spelled `\u00e9` rather than `é`):
    /// it travels sealed with the value so that decrypting gives the same bytes back. For a
    /// block scalar it is the header indicators followed by the content lines (from the line
    /// break that ends the header line), which is what the writer replaces.
    fn layout(
        &self,
        style: Style,
        value: &str,
        start: usize,
        end: usize,
        block: Option<&BlockInfo>,
    ) -> Option<String> {
        let src = self.text.get(start..end)?;
        match (style, block) {
            // A plain `yes` or `1:20` is a string to go-yaml v3 (and sops), but a value written
            // in place of an `ENC[...]` is quoted as go-yaml quotes it, so the plain spelling
            // travels with the value.
            (Style::Plain, _) => (src.contains('\n')
                || resolve::is_old_bool(value)
                || resolve::is_base60_float(value))
            .then(|| src.to_string()),
            // In a flow collection an `ENC[...]` is written double-quoted (its commas and
            // brackets need quotes), so a single-quoted value could not come back as it was.
            (Style::Single, _) => {
                (src != emit::single_quoted(value) || self.in_flow()).then(|| src.to_string())
            }
            (Style::Double, _) => (src != emit::double_quoted(value)).then(|| src.to_string()),
            (Style::Literal | Style::Folded, Some(b)) => {
                let header = self.text.get(b.header.0..b.header.1)?;
                let content = self
                    .text
                    .get(b.header_line_end..end.max(b.header_line_end))?;
                let expected = if value.is_empty() {
                    String::new()
                } else {
                    format!(
                        "{}{}",
                        self.nl,
                        emit::literal_content(value, b.content_indent, self.nl)
                    )
                };
                let folds = style == Style::Folded && value.trim_end_matches('\n').contains('\n');
                let needs_digit =
                    value.starts_with([' ', '\n']) && !header.chars().any(|c| c.is_ascii_digit());
                // A clip or keep header over a value without a final line break (a block
                // scalar ending the file) is not the header a writer would choose for it.
                let unusual_chomp = !value.ends_with('\n') && !header.contains('-');
                (folds
                    || needs_digit
                    || unusual_chomp
                    || content != expected
                    || !emit::literal_ok(value))
                .then(|| format!("{header}{content}"))
            }
            _ => None,
        }
    }

    /// The extent of a block scalar whose indicator is at `start`: its end (without the last line
    /// break) and its layout.
    fn block_scalar(&self, start: usize) -> Result<(usize, BlockInfo), StoreError> {
        let b = self.text.as_bytes();
        let mut i = start + 1;
        let mut explicit = None;
        let mut keep = false;
        while i < b.len() {
            match b[i] {
                b'1'..=b'9' => explicit = Some((b[i] - b'0') as usize),
                b'+' => keep = true,
                b'-' => {}
                _ => break,
            }
            i += 1;
        }
        let header = (start, i);
        let header_line_end = line_end(self.text, i);
        let parent_indent = match self.stack.last() {
            Some(f) => match &f.node().body {
                SBody::Map(c) | SBody::Seq(c) => c.indent as isize,
                _ => -1,
            },
            None => -1,
        };
        let mut pos = next_line(self.text, header_line_end);
        let mut content_indent = explicit.map(|d| (parent_indent.max(0) as usize) + d);
        let mut last_nonblank_end = None;
        let mut last_end = None;
        while pos < b.len() {
            let le = line_end(self.text, pos);
            let line = &self.text[pos..le];
            let spaces = line.len() - line.trim_start_matches(' ').len();
            let blank = line.trim_matches(|c| c == ' ' || c == '\t').is_empty();
            if !blank {
                // The line that ends the scalar does not set its indentation (`- |+`, a blank
                // line, then `- x` at the sequence's column: the content is empty).
                if (spaces as isize) <= parent_indent {
                    break;
                }
                let ci = *content_indent.get_or_insert(spaces);
                if spaces < ci {
                    break;
                }
                last_nonblank_end = Some(le);
            } else if content_indent.is_some_and(|ci| spaces < ci && !line.is_empty())
                && line.trim_matches(' ').starts_with('\t')
            {
                break;
            }
            last_end = Some(le);
            pos = next_line(self.text, le);
        }
        let end = if keep { last_end } else { last_nonblank_end };
        let end = end.unwrap_or(header_line_end).max(header_line_end);
        let content_indent = content_indent
            .filter(|_| end > header_line_end)
            .unwrap_or((parent_indent + 1).max(0) as usize);
        Ok((
            end,
            BlockInfo {
                header,
                header_line_end,
                content_indent,
                parent_indent: parent_indent.max(0) as usize,
            },
        ))
    }

    /// Adds a finished value node to the current collection (or as a mapping key).
    /// Adds a scalar's node at `start..end`, first recording it under its anchor (if any) with
    /// its whole value. A value spelled in the text as it is (`in_text`) is not held twice.
    fn add_scalar(
        &mut self,
        anchor: usize,
        start: usize,
        end: usize,
        mut body: SScalar,
    ) -> Result<(), StoreError> {
        if anchor != 0 {
            self.anchors
                .insert(anchor, (Node::Scalar(body.value.clone()), start..end));
        }
        if body.in_text {
            body.value.value = Vec::new();
        }
        let node = SNode {
            start,
            end,
            extent: end,
            body: SBody::Scalar(body),
        };
        self.add_node(node, start)
    }

    fn add_node(&mut self, mut node: SNode, pos: usize) -> Result<(), StoreError> {
        if let Some(Frame::Map { pending: None, .. }) = self.stack.last() {
            // A key. A scalar key's bytes came from the text, so they are UTF-8 and move into
            // the key as they are.
            let key = match &mut node.body {
                SBody::Scalar(s) if s.in_text => {
                    let bytes = node.scalar_bytes(self.text).unwrap_or_default();
                    String::from_utf8_lossy(bytes).into_owned()
                }
                SBody::Scalar(s) => match String::from_utf8(std::mem::take(&mut s.value.value)) {
                    Ok(key) => key,
                    Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
                },
                SBody::Alias(Node::Scalar(s), _) => String::from_utf8_lossy(&s.value).into_owned(),
                _ => return Err(self.err_at(pos, "complex mapping keys are not supported")),
            };
            let b = self.text.as_bytes();
            let mut c = node.end;
            while c < b.len() && matches!(b[c], b' ' | b'\t' | b'\r' | b'\n') {
                c += 1;
            }
            let colon = if c < b.len() && b[c] == b':' {
                c + 1
            } else {
                node.end
            };
            let key_start = node.start;
            if let Some(Frame::Map { pending, .. }) = self.stack.last_mut() {
                *pending = Some((key, key_start, colon));
            }
            return Ok(());
        }
        self.begin_item(pos);
        let start = node.start;
        self.attach(node, start)
    }

    fn attach(&mut self, node: SNode, pos: usize) -> Result<(), StoreError> {
        match self.stack.last_mut() {
            Some(Frame::Map {
                pending, node: map, ..
            }) => {
                let Some((key, start, colon)) = pending.take() else {
                    return Err(self.err_at(pos, "complex mapping keys are not supported"));
                };
                if let Some(c) = map.coll_mut() {
                    c.items.push(SItem::Pair {
                        key,
                        start,
                        colon,
                        value: node,
                    });
                }
            }
            Some(Frame::Seq {
                pending,
                node: seq,
                cursor,
                ..
            }) => {
                let start = pending.take().unwrap_or(node.start);
                *cursor = (*cursor).max(node.end);
                let enc_comment = match &node.body {
                    SBody::Scalar(s) => {
                        s.value.kind == Kind::Str
                            && node.scalar_bytes(self.text).is_some_and(is_enc_comment)
                    }
                    _ => false,
                };
                if let Some(c) = seq.coll_mut() {
                    c.items.push(SItem::Entry {
                        start,
                        value: node,
                        enc_comment,
                    });
                }
            }
            None => {
                if self.root.is_some() {
                    return Err(self.err_at(pos, "unexpected second root node"));
                }
                self.root = Some(node);
            }
        }
        Ok(())
    }

    /// An empty document (nothing, or only comments) is an empty mapping; other roots that are
    /// not mappings are refused, as sops refuses them.
    fn root_to_map(&mut self) -> Result<(), StoreError> {
        let empty = |at: usize| SNode {
            start: at,
            end: at,
            extent: at,
            body: SBody::Map(SColl {
                flow: false,
                indent: 0,
                items: Vec::new(),
            }),
        };
        let root = match self.root.take() {
            None => empty(
                self.doc_content_start
                    .max(self.last_end.min(self.doc_content_start)),
            ),
            Some(root) => match &root.body {
                SBody::Map(_) => root,
                SBody::Scalar(s) if s.value.kind == Kind::Null => {
                    // A `null` document: what replaces it replaces the word too.
                    let mut map = empty(root.start);
                    map.end = root.end;
                    map.extent = root.end;
                    map
                }
                SBody::Seq(_) => {
                    return Err(self.err_at(
                        root.start,
                        "YAML documents that are sequences are not supported",
                    ))
                }
                _ => {
                    return Err(self.err_at(
                        root.start,
                        "YAML documents that are values are not supported",
                    ))
                }
            },
        };
        self.root = Some(root);
        Ok(())
    }

    fn finish_doc(&mut self) -> Result<(), StoreError> {
        let Some(mut root) = self.root.take() else {
            return Ok(());
        };
        if !self.orphans.is_empty() {
            if let Some(c) = root.coll_mut() {
                let mut items = std::mem::take(&mut self.orphans);
                items.append(&mut c.items);
                c.items = items;
            }
        }
        fix_extent(&mut root);
        let sops_item = root.coll().and_then(|c| {
            c.items
                .iter()
                .position(|i| matches!(i, SItem::Pair { key, .. } if key == "sops"))
        });
        let indent = detect_indent(&root);
        self.docs.push(DocSource {
            root,
            sops_item,
            indent,
        });
        Ok(())
    }

    /// Looks for comments between the last token and `to` (the next token's position, or the
    /// end of the document).
    fn gap(&mut self, to: usize) {
        if !self.gap_for_empty {
            self.move_deferred_heads();
        }
        let from = self.last_end;
        if to > from {
            let b = self.text.as_bytes();
            let unfolded = self.unfold_as_go_yaml(from, to);
            let foot_end = match unfolded {
                Some(_) => None,
                None => self.foot_of_last_token(from, to),
            };
            let flow_feet = self.flow_feet(from, to);
            let mut i = from;
            let mut prev_ws = from == 0 || matches!(b[from - 1], b' ' | b'\t' | b'\n' | b'\r');
            while i < to {
                let c = b[i];
                if c == b'#' && prev_ws {
                    let end = line_end(self.text, i);
                    if flow_feet.contains(&i) {
                        let host = self.min_depth.min(self.stack.len()) - 1;
                        if let Some(flow) =
                            last_value_mut(self.stack[host].node_mut()).and_then(SNode::coll_mut)
                        {
                            flow.items.push(SItem::Comment {
                                hash: i,
                                end,
                                inline: false,
                            });
                        }
                        i = end;
                        prev_ws = false;
                        continue;
                    }
                    let go_yaml = unfolded
                        .as_ref()
                        .and_then(|u| Some((*u.tokens.get(&i)?, &u.ranks, &u.passes_on)));
                    if let Some((to_token, ranks, passes_on)) = go_yaml {
                        let to_token = match to_token {
                            Unfold::BlockEnd(k) if passes_on.get(k) == Some(&true) => {
                                Unfold::NextToken
                            }
                            other => other,
                        };
                        let comment = SItem::Comment {
                            hash: i,
                            end,
                            inline: false,
                        };
                        self.place_as_unfolded(comment, to_token, ranks);
                        i = end;
                        prev_ws = false;
                        continue;
                    }
                    match foot_end {
                        Some((ref run, j)) if run.contains(&i) => {
                            self.with_closed(self.min_depth.min(self.stack.len()), j, |n| {
                                if let Some(c) = n.coll_mut() {
                                    c.items.push(SItem::Comment {
                                        hash: i,
                                        end,
                                        inline: false,
                                    });
                                }
                            })
                        }
                        _ => self.place_comment(i, end),
                    }
                    i = end;
                    prev_ws = false;
                    continue;
                }
                prev_ws = matches!(c, b' ' | b'\t' | b'\n' | b'\r');
                i += 1;
            }
        }
        self.depth_at_token = self.stack.len();
        self.min_depth = self.stack.len();
    }

    /// The own-line comments between `from` and `to` that stay with the flow collection the last
    /// token closed, as the value of the only key of the innermost (block) mapping, when that key
    /// has a foot comment of its own (empty otherwise, and when a block collection ends too).
    ///
    /// go-yaml's scanner reads the comments after a token before the parser takes that token
    /// (it looks two tokens ahead), so a foot run after `]` or `}` goes to the collection's end
    /// event. decode.go (`parser.mapping`) then moves a value's foot to its key, unless the key
    /// has one: a foot run between a sequence's `-` and the first key of the mapping that is its
    /// item waits for the key's scalar event, and only a first key keeps it. sops then lists the
    /// comment in the flow collection (seed 100311, a CRLF file: `-`, `# one`, `s: [1]`,
    /// `# two`, `r: 1`, with the mapping's keys at one column, gives `# two` to `s`).
    fn flow_feet(&self, from: usize, to: usize) -> Vec<usize> {
        // The flow collection itself is the one collection closed since the last token.
        let depth = self.min_depth.min(self.stack.len());
        if self.depth_at_token > depth + 1 || depth < 2 {
            return Vec::new();
        }
        let Frame::Map {
            node,
            pending: None,
            ..
        } = &self.stack[depth - 1]
        else {
            return Vec::new();
        };
        let Some(map) = node.coll().filter(|c| !c.flow) else {
            return Vec::new();
        };
        let mut pairs = map
            .items
            .iter()
            .filter(|i| !matches!(i, SItem::Comment { .. }));
        let (Some(SItem::Pair { start, value, .. }), None) = (pairs.next(), pairs.next()) else {
            return Vec::new();
        };
        if !value.coll().is_some_and(|c| c.flow) || value.end > from {
            return Vec::new();
        }
        // The key's foot: comments between the `-` of the item the mapping is and the key.
        let Frame::Seq {
            node: seq,
            pending: Some(dash),
            ..
        } = &self.stack[depth - 2]
        else {
            return Vec::new();
        };
        let Some(seq) = seq.coll().filter(|c| !c.flow) else {
            return Vec::new();
        };
        let key_has_foot = self
            .own_line_comments(dash + 1, *start)
            .and_then(|first_hash| {
                runs::Gap {
                    text: self.text,
                    from: dash + 1,
                    first_hash,
                    to: *start,
                    after_value: false,
                    next_indent: seq.indent,
                    ending: &[],
                }
                .has_foot()
            });
        if key_has_foot != Some(true) {
            return Vec::new();
        }
        let Some(first_hash) = self.own_line_comments(from, to) else {
            return Vec::new();
        };
        let gap = runs::Gap {
            text: self.text,
            from,
            first_hash,
            to,
            after_value: false,
            next_indent: map.indent,
            ending: &[],
        };
        gap.unfold()
            .unwrap_or_default()
            .into_iter()
            .filter(|&(_, to)| to == Unfold::LastToken)
            .map(|(hash, _)| hash)
            .collect()
    }

    /// The first `#` between `from` and `to` that starts its line, when no comment comes before
    /// it on a line with other content.
    fn own_line_comments(&self, from: usize, to: usize) -> Option<usize> {
        let b = self.text.as_bytes();
        let mut i = from;
        while i < to.min(b.len()) {
            if b[i] == b'#' && (i == 0 || matches!(b[i - 1], b' ' | b'\t' | b'\n' | b'\r')) {
                let ls = line_start(self.text, i);
                return (ls >= from && self.text[ls..i].trim_matches([' ', '\t']).is_empty())
                    .then_some(i);
            }
            i += 1;
        }
        None
    }

    /// The token go-yaml gives each own-line comment between `from` and `to` (see [`runs`]),
    /// when block collections end there. `None` when none ends there, or the gap holds more
    /// than blank and comment lines after its first own-line comment (`- # note`): those
    /// comments are placed by [`Self::foot_of_last_token`] and [`Self::place_comment`].
    fn unfold_as_go_yaml(&self, from: usize, to: usize) -> Option<Unfolded> {
        let closed = self.depth_at_token.saturating_sub(self.min_depth);
        if closed == 0 {
            return None;
        }
        let surviving = self.min_depth.min(self.stack.len());
        // (indent, opens an indentation level of its own, is a mapping's value, is a
        // sequence's item) of each closed block sequence or mapping, outermost first; the
        // chain stops before a flow collection.
        let mut chain = Vec::new();
        self.closed_chain(surviving, closed, false, |n, parent| {
            let indent = n.coll().map_or(0, |c| c.indent);
            let is_seq = matches!(n.body, SBody::Seq(_));
            let seq_in_map =
                is_seq && parent.is_some_and(|p| matches!(&p.body, SBody::Map(c) if !c.flow));
            let seq_in_seq =
                is_seq && parent.is_some_and(|p| matches!(&p.body, SBody::Seq(c) if !c.flow));
            // An indentless sequence (`key:` then `- x` at the key's column) opens none.
            let indentless = seq_in_map && parent.and_then(SNode::coll).unwrap().indent == indent;
            chain.push((indent, !indentless, seq_in_map, seq_in_seq))
        });
        let &(next_indent, _, _, _) = chain.last()?;
        let text = self.text;
        let b = text.as_bytes();
        // The first comment alone on its line after the last token.
        let mut i = from;
        let first_hash = loop {
            if i >= to.min(b.len()) {
                return None;
            }
            if b[i] == b'#' && (i == 0 || matches!(b[i - 1], b' ' | b'\t' | b'\n' | b'\r')) {
                let ls = line_start(text, i);
                if ls > from && text[ls..i].trim_matches([' ', '\t']).is_empty() {
                    break i;
                }
                i = line_end(text, i);
                continue;
            }
            i += 1;
        };
        let first_ls = line_start(text, first_hash);
        let after_value = {
            let prev = text[..first_ls].trim_end();
            let line = &prev[line_start(prev, prev.len())..];
            let code = line.find(" #").map_or(line, |h| &line[..h]).trim_end();
            code.ends_with(':')
        };
        let ending_ranks: Vec<usize> = (0..chain.len()).rev().filter(|&j| chain[j].1).collect();
        let ending: Vec<usize> = ending_ranks.iter().map(|&j| chain[j].0).collect();
        // The foot a block sequence gets at its end goes on to the key it is the value of
        // (go-yaml's `parser.mapping` in decode.go moves a value's foot to its key), which sops
        // lists in the enclosing mapping: rank `j - 1`, or the innermost surviving collection.
        let mut ranks: Vec<Option<usize>> = ending_ranks
            .iter()
            .map(|&j| {
                if chain[j].2 {
                    j.checked_sub(1)
                } else {
                    Some(j)
                }
            })
            .collect();
        let found = runs::Gap {
            text,
            from,
            first_hash,
            to,
            after_value,
            next_indent,
            ending: &ending,
        }
        .unfold()?;
        // go-yaml's parser makes a block sequence's end event without taking the comments
        // pending (`yaml_parser_parse_block_sequence_entry` in parserc.go, unlike a mapping's
        // end), so a foot given to it goes on to the next event that takes comments. For a
        // mapping's value that is the mapping's end or next key, whose foot decode.go moves to
        // the key before: the rank above. For a sequence's item it is the end of the sequence
        // around it, or (when that one goes on) the token after the gap (checked with sops
        // 3.13 on a CRLF file: a foot at a nested sequence's column went to the key of the
        // outer one).
        let mut passes_on = vec![false; ending_ranks.len()];
        for k in (0..ending_ranks.len()).rev() {
            if chain[ending_ranks[k]].3 {
                match k + 1 < ending_ranks.len() {
                    true => {
                        ranks[k] = ranks[k + 1];
                        passes_on[k] = passes_on[k + 1];
                    }
                    false => passes_on[k] = true,
                }
            }
        }
        ranks.push(Some(chain.len() - 1));
        Some(Unfolded {
            tokens: found.into_iter().collect(),
            ranks,
            passes_on,
        })
    }

    /// Puts an own-line comment where go-yaml's token for it puts it in sops' tree: with the
    /// innermost collection open at the last token, as the foot of a block collection that
    /// ends, or with what follows. `ranks` as [`Unfolded`] holds them.
    fn place_as_unfolded(&mut self, comment: SItem, to: Unfold, ranks: &[Option<usize>]) {
        let surviving = self.min_depth.min(self.stack.len());
        let rank = match to {
            Unfold::LastToken => ranks.last().copied().flatten(),
            Unfold::BlockEnd(k) => match ranks.get(k).copied().flatten() {
                Some(j) => Some(j),
                None if surviving > 0 => {
                    // The sequence's key is in the innermost surviving mapping.
                    self.stack[surviving - 1].items_mut().push(comment);
                    return;
                }
                None => Some(0),
            },
            Unfold::NextToken if surviving == 0 => Some(0),
            Unfold::NextToken => None,
        };
        match rank {
            Some(j) => self.with_closed(surviving, j, |n| {
                if let Some(c) = n.coll_mut() {
                    c.items.push(comment);
                }
            }),
            None => {
                // A head of what follows: of the first collection the next token opens
                // (`- key: v` after a closed item), else of the next entry.
                let target = if self.stack.len() > surviving {
                    surviving
                } else {
                    surviving - 1
                };
                self.stack[target].items_mut().push(comment);
            }
        }
    }

    /// Where the comment lines that go-yaml keeps with the last token are, and the rank in the
    /// closed chain of the innermost block collection that was open at that token, which gets
    /// them; `None` when the comments between `from` and `to` are placed one by one.
    ///
    /// go-yaml's scanner reads the own-line comments after a token as one run
    /// (`yaml_parser_scan_comments` in scannerc.go) and makes the run a foot of that token, so
    /// of the innermost collection, whatever the run's columns, when it ends:
    /// - at a line, comment or not, less indented than that collection's block and not at the
    ///   run's first column (`column-1 < next_indent && column != start_mark.column`);
    /// - at its first blank line, when no blank line came before the run and the run is not
    ///   less indented than that block (a less indented one is placed by its column).
    ///
    /// The line break right after a comment line is never looked at (the scanner's look-ahead
    /// restarts one byte past it), so only a blank line ends a run there. Checked with sops
    /// 3.11 and 3.13: `a:` / `  b:` / `    c: 1` / `  # x` / `d: 2` gives `# x` to `a:b:`,
    /// not to `a:` as its column alone would.
    fn foot_of_last_token(
        &self,
        from: usize,
        to: usize,
    ) -> Option<(std::ops::Range<usize>, usize)> {
        let closed = self.depth_at_token.saturating_sub(self.min_depth);
        if closed == 0 {
            return None;
        }
        let surviving = self.min_depth.min(self.stack.len());
        let mut chain = Vec::new();
        self.closed_chain(surviving, closed, false, |n, _| {
            chain.push(n.coll().map_or(0, |c| c.indent))
        });
        // The chain stops before a flow collection (a foot never goes into one): its last
        // collection is the innermost block collection that was open at the token.
        let j = chain.len().checked_sub(1)?;
        let next_indent = chain[j];
        let text = self.text;
        let b = text.as_bytes();
        // The first own-line comment after the token (one on the token's line is its line
        // comment, read apart).
        let mut i = from;
        let first = loop {
            if i >= to {
                return None;
            }
            if b[i] == b'#' && (i == 0 || matches!(b[i - 1], b' ' | b'\t' | b'\n' | b'\r')) {
                let ls = line_start(text, i);
                if text[ls..i].trim_matches([' ', '\t']).is_empty() {
                    break i;
                }
                if text[ls..i].trim_matches([' ', '\t', '-']).is_empty() {
                    // `- # note`: not a run after the token.
                    return None;
                }
                i = line_end(text, i);
                continue;
            }
            i += 1;
        };
        let first_ls = line_start(text, first);
        let start_col = first - first_ls;
        let breaks_before = text[from..first_ls].matches('\n').count();
        // After `key:` the token is go-yaml's VALUE: a run on the next line is then no foot of
        // it by position alone.
        let after_value = {
            let prev = text[..first_ls].trim_end();
            let line = &prev[line_start(prev, prev.len())..];
            let code = line.find(" #").map_or(line, |h| &line[..h]).trim_end();
            code.ends_with(':')
        };
        let mut first_empty = breaks_before <= 1;
        // The scanner's first line break after the run's start: a foot ends there, or none can
        // end at a blank line any more.
        let first_break = |first_empty: &mut bool| {
            let foot =
                *first_empty && ((breaks_before == 1 && !after_value) || start_col < next_indent);
            *first_empty = false;
            foot
        };
        let mut pos = next_line(text, line_end(text, first));
        // In a file with CRLF line breaks the one byte skipped after a comment line is its `\r`,
        // so the scanner does look at the `\n` (checked with sops 3.13 on a CRLF file).
        if b.get(line_end(text, first)) == Some(&b'\r') && first_break(&mut first_empty) {
            return (start_col >= next_indent).then_some((first..pos, j));
        }
        loop {
            // The line of the next token is looked at too (its start may be the token's).
            if pos > to || pos >= text.len() {
                return None;
            }
            let le = line_end(text, pos);
            let line = &text[pos..le];
            let trimmed = line.trim_start_matches([' ', '\t']);
            if trimmed.is_empty() || trimmed == "\r" {
                if first_break(&mut first_empty) {
                    return (start_col >= next_indent).then_some((first..pos, j));
                }
                pos = next_line(text, le);
                continue;
            }
            let col = line.len() - trimmed.len();
            if col < next_indent && col != start_col {
                return Some((first..pos, j));
            }
            if !trimmed.starts_with('#') {
                return None;
            }
            pos = next_line(text, le);
        }
    }

    /// Puts the comment at `hash..end` where sops would (see the module docs): an inline comment
    /// before the first item that starts on its line, an own-line comment at the end of the
    /// deepest just-closed collection it is indented into, else before the next token.
    fn place_comment(&mut self, hash: usize, end: usize) {
        let ls = line_start(self.text, hash);
        // Inline when a node precedes it on the line: `- # note` and `--- # note` are not (sops
        // gives those to the node that follows, like a comment on a line of its own).
        let before = self.text[ls..hash].trim_matches(|c| c == ' ' || c == '\t' || c == '-');
        let inline = !before.is_empty();
        let comment = SItem::Comment { hash, end, inline };
        let closed = self.depth_at_token.saturating_sub(self.min_depth);
        let surviving = self.min_depth.min(self.stack.len());
        if inline && self.after_properties(hash) {
            // `key: &anchor # note` (or a tag) with the collection on the lines below: go-yaml's
            // parser holds the line comment until the next event that takes comments
            // (`yaml_parser_set_event_comments` in parserc.go), which a block collection's
            // start does not: the first key or item scalar gets it, so sops lists it in the
            // innermost collection open at that token. (A flow collection taking it loses it:
            // decode.go overwrites the node's LineComment with its end event's.)
            if let Some(frame) = self.stack.last_mut() {
                frame.items_mut().push(comment);
                return;
            }
        }
        if inline {
            // go-yaml makes it the line comment of the deepest node starting on the line, which
            // sops lists right before that node's entry; a flow collection on the line takes it
            // as its own first item instead.
            // Candidates, shallowest first: (frame depth, or rank in the closed chain).
            let mut found: Vec<(Option<usize>, usize, Placement)> = Vec::new();
            for depth in 0..surviving {
                let frame = &self.stack[depth];
                if frame.pending_start().is_some_and(|p| p >= ls) {
                    found.push((Some(depth), 0, Placement::Append));
                } else if let Some(p) = on_line(frame.node(), ls) {
                    found.push((Some(depth), 0, p));
                }
            }
            let mut chain = Vec::new();
            self.closed_chain(surviving, closed, true, |n, _| chain.push(on_line(n, ls)));
            for (j, p) in chain.into_iter().enumerate() {
                if let Some(p) = p {
                    found.push((None, j, p));
                }
            }
            let pick = match found.iter().position(|f| matches!(f.2, Placement::First)) {
                Some(i) => Some(found.swap_remove(i)),
                None => found.pop(),
            };
            match pick {
                Some((Some(depth), _, p)) => {
                    place(self.stack[depth].node_mut(), p, comment);
                    return;
                }
                Some((None, j, p)) => {
                    self.with_closed(surviving, j, |n| place(n, p, comment));
                    return;
                }
                None => {}
            }
        }
        let col = hash - ls;
        // `- # note`: the column says nothing, the note heads the item that follows.
        let after_dash = self.text[ls..hash].contains('-');
        // go-yaml splits a run of comment lines where one is less indented than the one before
        // (and than the current block): the part after the split heads what follows instead of
        // closing what came before (checked with sops 3.13: `# foot in item` at the item's
        // column, then `# foot list` at the `-` column, gives the second to the parent).
        let split_from_deeper = self.previous_comment_column(ls).is_some_and(|c| c > col);
        if after_dash && self.gap_for_empty {
            // `- # note` then an empty item (`-` and a line break): go-yaml's parser holds the
            // head comment until an event takes comments, which an empty scalar and a block
            // sequence's end do not: the next key or value does, so sops lists it where that
            // token is (`a:`, `  - # c`, `    -`, `b: 1`: with `b`, at the top level). It is
            // placed as before and moved when that token comes.
            self.deferred_heads.push(hash);
        }
        if closed > 0 && !after_dash && !split_from_deeper {
            let mut thresholds = Vec::new();
            let crlf = self.nl == "\r\n";
            self.closed_chain(surviving, closed, false, |n, parent| {
                thresholds.push(threshold(n, parent, crlf))
            });
            if let Some(j) = thresholds.iter().rposition(|&t| t <= col) {
                self.with_closed(surviving, j, |n| {
                    if let Some(c) = n.coll_mut() {
                        c.items.push(comment);
                    }
                });
                return;
            }
            if surviving == 0 {
                self.with_closed(0, 0, |n| {
                    if let Some(c) = n.coll_mut() {
                        c.items.push(comment);
                    }
                });
                return;
            }
            // A head comment of what follows: of the first collection the next token opens
            // (`- key: v` after a closed item), else of the next entry.
            let target = if self.stack.len() > surviving {
                surviving
            } else {
                surviving - 1
            };
            self.stack[target].items_mut().push(comment);
            return;
        }
        let target = if self.stack.len() > surviving {
            // The next token opens collections: the comment is the first item of the outermost
            // (checked with sops 3.11: a comment line before `- key: v` is the mapping's).
            surviving
        } else if self.stack.is_empty() {
            match self.root.as_mut().and_then(SNode::coll_mut) {
                Some(root) => root.items.push(comment),
                None => self.orphans.push(comment),
            }
            return;
        } else {
            self.stack.len() - 1
        };
        self.stack[target].items_mut().push(comment);
    }

    /// Moves the head comments held for the next token that takes comments (see
    /// [`Self::place_comment`]) into the innermost open collection, where that token is. With
    /// no collection open the document ends: go-yaml's document end event drops them from the
    /// plaintext (so does sops, checked with 3.13: `a:`, `  - # c`, `    -` at the end of the
    /// file has no comment in sops' tree), but in the encrypted file the `sops` key follows
    /// and takes them, so they go to the top level, where both tools read them there.
    fn move_deferred_heads(&mut self) {
        if self.deferred_heads.is_empty() {
            return;
        }
        let heads = std::mem::take(&mut self.deferred_heads);
        fn take(node: &mut SNode, hash: usize) -> Option<SItem> {
            let c = node.coll_mut()?;
            let at = c
                .items
                .iter()
                .position(|i| matches!(i, SItem::Comment { hash: h, .. } if *h == hash));
            match at {
                Some(i) => Some(c.items.remove(i)),
                None => c
                    .items
                    .iter_mut()
                    .filter_map(SItem::value_mut)
                    .find_map(|v| take(v, hash)),
            }
        }
        for hash in heads {
            let found = self
                .stack
                .iter_mut()
                .find_map(|f| take(f.node_mut(), hash))
                .or_else(|| self.root.as_mut().and_then(|r| take(r, hash)));
            let Some(comment) = found else { continue };
            match self.stack.last_mut() {
                Some(frame) => frame.items_mut().push(comment),
                None => {
                    if let Some(root) = self.root.as_mut().and_then(SNode::coll_mut) {
                        root.items.push(comment);
                    }
                }
            }
        }
    }

    /// Whether only indicators (`:`, `-`) and at least one node property (`&anchor`, `!tag`)
    /// come between the last token and the comment at `hash`, on the comment's line: the
    /// properties are those of a node that starts on a later line.
    fn after_properties(&self, hash: usize) -> bool {
        let from = self.last_end.max(line_start(self.text, hash));
        let Some(between) = self.text.get(from..hash) else {
            return false;
        };
        let mut props = 0;
        for word in between.split([' ', '\t']).filter(|w| !w.is_empty()) {
            match word.as_bytes()[0] {
                b'&' | b'!' => props += 1,
                _ if props == 0 && word.bytes().all(|c| c == b':' || c == b'-') => {}
                _ => return false,
            }
        }
        props > 0
    }

    /// The `-` before `pos` with only blanks and comments between, not before the last token.
    fn dash_before(&self, mut pos: usize) -> Option<usize> {
        let b = self.text.as_bytes();
        loop {
            while pos > self.last_end && matches!(b[pos - 1], b' ' | b'\t' | b'\r' | b'\n') {
                pos -= 1;
            }
            if pos <= self.last_end {
                return None;
            }
            if b[pos - 1] == b'-' {
                return Some(pos - 1);
            }
            // A comment ends this line: look before its `#`.
            let ls = line_start(self.text, pos - 1);
            let line = &b[ls..pos];
            let hash = (0..line.len())
                .find(|&i| line[i] == b'#' && (i == 0 || matches!(line[i - 1], b' ' | b'\t')))?;
            pos = ls + hash;
        }
    }

    /// The first `]` or `}` at or after `from` that is not inside a comment.
    fn closing_bracket(&self, from: usize) -> Option<usize> {
        let b = self.text.as_bytes();
        let mut i = from;
        while i < b.len() {
            match b[i] {
                b']' | b'}' => return Some(i),
                b'#' if i == 0 || matches!(b[i - 1], b' ' | b'\t' | b'\n' | b'\r') => {
                    i = line_end(self.text, i);
                }
                b' ' | b'\t' | b'\n' | b'\r' | b',' => i += 1,
                _ => return None,
            }
        }
        None
    }

    /// The column of the comment alone on the line just before the line starting at `ls`.
    fn previous_comment_column(&self, ls: usize) -> Option<usize> {
        let before = self.text[..ls].strip_suffix('\n')?;
        let before = before.strip_suffix('\r').unwrap_or(before);
        let start = before.rfind('\n').map_or(0, |p| p + 1);
        let line = &before[start..];
        let trimmed = line.trim_start_matches([' ', '\t']);
        trimmed.starts_with('#').then(|| line.len() - trimmed.len())
    }

    /// Calls `f` on each collection closed since the last token, outermost first, with its
    /// parent. `with_flow`: also on a flow collection (an inline comment after its bracket may
    /// be its own); without, the chain stops at one.
    fn closed_chain(
        &self,
        surviving: usize,
        closed: usize,
        with_flow: bool,
        mut f: impl FnMut(&SNode, Option<&SNode>),
    ) {
        let mut parent = surviving.checked_sub(1).map(|d| self.stack[d].node());
        let mut node = match parent {
            None => self.root.as_ref(),
            Some(p) => last_value(p),
        };
        for _ in 0..closed {
            let Some(n) = node else { return };
            // A flow collection ends at its bracket: go-yaml gives the comment lines that follow
            // it to the enclosing block collections, never to the flow collection (`key: []`
            // and a comment line below it: the comment is the mapping's).
            if n.coll().is_none_or(|c| c.flow && !with_flow) {
                return;
            }
            f(n, parent);
            parent = Some(n);
            node = last_value(n);
        }
    }

    /// The complete block or flow collection that starts at `start`, found from the open
    /// collections (innermost first) and the document's root down through the entries that
    /// hold `start`.
    fn closed_node_at(&self, start: usize) -> Option<&SNode> {
        fn down(node: &SNode, start: usize) -> Option<&SNode> {
            if node.start == start && node.coll().is_some() {
                return Some(node);
            }
            let child = node
                .coll()?
                .items
                .iter()
                .filter_map(SItem::value)
                .take_while(|v| v.start <= start)
                .last()?;
            down(child, start)
        }
        let open = self.stack.iter().rev().map(Frame::node);
        open.chain(self.root.as_ref())
            .filter(|n| n.start <= start)
            .find_map(|n| down(n, start))
    }

    fn with_closed(&mut self, surviving: usize, j: usize, f: impl FnOnce(&mut SNode)) {
        let mut node = if surviving == 0 {
            self.root.as_mut()
        } else {
            self.stack
                .get_mut(surviving - 1)
                .and_then(|fr| last_value_mut(fr.node_mut()))
        };
        for _ in 0..j {
            node = node.and_then(last_value_mut);
        }
        if let Some(n) = node {
            f(n);
        }
    }
}

/// `now`, an anchored collection with the comments placed in it after its end, but without
/// those added after its last entry (`then` is its value at its end): the writer keeps the
/// comments after a copy's last entry as the file's when it puts the alias back (`splice`), so
/// a copy ending in such a foot would leave it behind, still encrypted. The comments placed
/// before an entry, and the feet of the collections nested in it, stay.
fn late_feet_within(now: Node, then: &Node) -> Node {
    fn trailing<T>(items: &[T], is_comment: impl Fn(&T) -> bool) -> usize {
        items.iter().rev().take_while(|i| is_comment(i)).count()
    }
    let map_comment = |i: &Item| matches!(i, Item::Comment(_));
    let seq_comment = |n: &Node| matches!(n, Node::Comment(_));
    match (now, then) {
        (Node::Map(mut items), Node::Map(before)) => {
            let late = trailing(&items, map_comment).saturating_sub(trailing(before, map_comment));
            items.truncate(items.len() - late);
            Node::Map(items)
        }
        (Node::Seq(mut items), Node::Seq(before)) => {
            let late = trailing(&items, seq_comment).saturating_sub(trailing(before, seq_comment));
            items.truncate(items.len() - late);
            Node::Seq(items)
        }
        (now, _) => now,
    }
}

/// The start of the first entry whose key an earlier entry already has.
fn first_duplicate(items: &[SItem]) -> Option<usize> {
    let mut seen = HashSet::with_capacity_and_hasher(items.len(), RandomState::default());
    items.iter().find_map(|item| match item {
        SItem::Pair { key, start, .. } if !seen.insert(key.as_str()) => Some(*start),
        _ => None,
    })
}

fn place(node: &mut SNode, placement: Placement, comment: SItem) {
    if let Some(c) = node.coll_mut() {
        match placement {
            Placement::Append => c.items.push(comment),
            Placement::Before(i) => c.items.insert(i, comment),
            Placement::First => c.items.insert(0, comment),
        }
    }
}

/// Where an inline comment on the line starting at `ls` goes in `node`: first when `node` is a
/// flow collection starting on that line, before its last item when that item starts there.
fn on_line(node: &SNode, ls: usize) -> Option<Placement> {
    let c = node.coll()?;
    if c.flow && node.start >= ls {
        return Some(Placement::First);
    }
    let idx = c
        .items
        .iter()
        .rposition(|i| !matches!(i, SItem::Comment { .. }))?;
    (c.items[idx].start() >= ls).then_some(Placement::Before(idx))
}

fn last_value(node: &SNode) -> Option<&SNode> {
    node.coll()?.items.iter().rev().find_map(SItem::value)
}

fn last_value_mut(node: &mut SNode) -> Option<&mut SNode> {
    node.coll_mut()?
        .items
        .iter_mut()
        .rev()
        .find_map(SItem::value_mut)
}

pub fn next_line(text: &str, line_end_pos: usize) -> usize {
    let b = text.as_bytes();
    let mut p = line_end_pos;
    if p < b.len() && b[p] == b'\r' {
        p += 1;
    }
    if p < b.len() && b[p] == b'\n' {
        p += 1;
    }
    p
}

/// Comments are looked for after a block scalar's last content line, not inside it.
fn content_region_end(text: &str, end: usize) -> usize {
    end.min(text.len())
}

/// The next `-` from `pos`, skipping whitespace and comments.
fn find_dash(text: &str, mut pos: usize) -> Option<usize> {
    let b = text.as_bytes();
    while pos < b.len() {
        match b[pos] {
            b' ' | b'\t' | b'\r' | b'\n' => pos += 1,
            b'#' => pos = line_end(text, pos),
            b'-' => return Some(pos),
            _ => return None,
        }
    }
    None
}

/// Marks a layout that is not the scalar's own text but the `*name` of an alias whose copy
/// holds the scalar (an alias to a collection cannot be kept in an encrypted file: sops could
/// not decrypt the values it points at under the alias's path), with the scalar's depth below
/// the alias and a digest of the copy, so that an enclosing collection that starts with the
/// same scalars, or a copy changed since, is not taken for the alias. Every scalar of the copy
/// that has a value carries it, as only the encrypted ones bring it back (which those are is
/// the crypt rule's choice: `_unencrypted` keys, an `encrypted_regex`). Layout:
/// `MARK depth NUL digest NUL *name [NUL inner layout]`, the inner one being the scalar's own
/// (its spelling, or the mark of an alias nested in the anchored collection). A NUL cannot be
/// in YAML text.
pub const ALIAS_MARK: &str = "\u{0}alias\u{0}";

/// Calls `f` on each scalar of `node` that has a value (only those are encrypted and carry a
/// layout), with its depth below `node`.
fn mark_valued_leaves(node: &mut Node, depth: usize, f: &mut impl FnMut(&mut Scalar, usize)) {
    match node {
        Node::Scalar(s) if s.kind != Kind::Null && !s.value.is_empty() => f(s, depth),
        Node::Map(items) => {
            for item in items {
                if let Item::Pair(_, v) = item {
                    mark_valued_leaves(v, depth + 1, f);
                }
            }
        }
        Node::Seq(items) => {
            for v in items {
                mark_valued_leaves(v, depth + 1, f);
            }
        }
        _ => {}
    }
}

/// The `*name` a collection was written as, when one of its valued scalars carries the mark of
/// that alias for this very copy.
pub fn alias_of(node: &Node) -> Option<&str> {
    /// The first valued scalar, depth first, whose layout holds an alias mark.
    fn first_marked(node: &Node, depth: usize) -> Option<(&str, usize)> {
        match node {
            Node::Scalar(s) if s.kind != Kind::Null && !s.value.is_empty() => s
                .layout
                .as_deref()
                .filter(|l| l.starts_with(ALIAS_MARK))
                .map(|l| (l, depth)),
            Node::Map(items) => items.iter().find_map(|i| match i {
                Item::Pair(_, v) => first_marked(v, depth + 1),
                Item::Comment(_) => None,
            }),
            Node::Seq(items) => items.iter().find_map(|v| first_marked(v, depth + 1)),
            _ => None,
        }
    }
    if !matches!(node, Node::Map(_) | Node::Seq(_)) {
        return None;
    }
    let (mut layout, depth) = first_marked(node, 0)?;
    let mut digest = None;
    // Marks nest: outermost alias first.
    while let Some(mark) = layout.strip_prefix(ALIAS_MARK) {
        let (at, rest) = mark.split_once('\u{0}')?;
        let (marked, rest) = rest.split_once('\u{0}')?;
        let (alias, inner) = match rest.split_once('\u{0}') {
            Some((alias, inner)) => (alias, Some(inner)),
            None => (rest, None),
        };
        // Only an unchanged copy is the alias: one edited since (`set`, `edit`) is written out.
        if at.parse::<usize>().ok() == Some(depth)
            && marked == digest.get_or_insert_with(|| content_digest(node)).as_str()
        {
            return Some(alias);
        }
        layout = inner?;
    }
    None
}

/// A digest of a collection's keys and values as sops reads them (comments and layouts left
/// out), to tell whether an alias's copy is still what the alias stood for.
fn content_digest(node: &Node) -> String {
    use sha2::{Digest, Sha256};
    fn feed(node: &Node, h: &mut Sha256) {
        match node {
            Node::Map(items) => {
                h.update(b"{");
                for item in items {
                    if let Item::Pair(k, v) = item {
                        h.update((k.len() as u64).to_le_bytes());
                        h.update(k.as_bytes());
                        feed(v, h);
                    }
                }
                h.update(b"}");
            }
            Node::Seq(items) => {
                h.update(b"[");
                for item in items.iter().filter(|i| !matches!(i, Node::Comment(_))) {
                    feed(item, h);
                }
                h.update(b"]");
            }
            // Nulls are not encrypted, and `~`, `null` and nothing are the same null.
            Node::Scalar(s) if s.kind == Kind::Null => h.update(b"null"),
            Node::Scalar(s) => {
                h.update(s.kind.sops_name().as_bytes());
                let bytes = crate::format::scalar_text::mac_bytes(s).ok().flatten();
                let bytes = bytes.as_deref().unwrap_or(&s.value);
                h.update((bytes.len() as u64).to_le_bytes());
                h.update(bytes);
            }
            Node::Comment(_) => {}
        }
    }
    let mut h = Sha256::new();
    feed(node, &mut h);
    hex::encode(&h.finalize()[..8])
}

pub fn is_enc_comment(value: &[u8]) -> bool {
    value.starts_with(b"ENC[AES256_GCM,") && value.ends_with(b",type:comment]")
}

/// The indentation step of the first nested block collection that is indented past its parent.
fn detect_indent(root: &SNode) -> Option<usize> {
    let mut queue = vec![root];
    while let Some(node) = queue.pop() {
        let Some(c) = node.coll() else { continue };
        if c.flow {
            continue;
        }
        for item in &c.items {
            if let SItem::Pair { value, .. } = item {
                if let Some(inner) = value.coll() {
                    if !inner.flow && inner.indent > c.indent {
                        return Some(inner.indent - c.indent);
                    }
                    queue.push(value);
                }
            }
        }
        for item in &c.items {
            if let SItem::Entry { value, .. } = item {
                queue.push(value);
            }
        }
    }
    None
}

/// Sets every collection's `extent` (and a block collection's `end`) once all comments are in.
fn fix_extent(node: &mut SNode) {
    let Some(c) = node.coll_mut() else {
        node.extent = node.extent.max(node.end);
        return;
    };
    let flow = c.flow;
    let mut max = 0;
    for item in &mut c.items {
        if let Some(v) = item.value_mut() {
            fix_extent(v);
        }
        max = max.max(item.end());
    }
    if flow {
        node.extent = node.end.max(max);
    } else {
        node.end = node.end.max(max);
        node.extent = node.end;
    }
}

/// The bytes of a `!!binary` value as go-yaml decodes them: standard base64 with padding,
/// line breaks ignored (Go's `base64.StdEncoding`, which also accepts non-zero trailing bits).
fn decode_binary(text: &str) -> Option<Vec<u8>> {
    use base64::engine::{general_purpose::GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine as _;
    const GO_STD: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let compact: String = text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
    GO_STD.decode(compact).ok()
}
