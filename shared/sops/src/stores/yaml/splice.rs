//! The lossless writer: the original text with only what changed replaced.
//!
//! The new tree is walked alongside the original document (mapping entries matched by key,
//! sequence items by position among items, comments by their place before the next entry), and
//! every difference becomes an edit of a byte range: a scalar's text, a comment's text, an entry
//! removed with its lines, an entry inserted after its predecessor's line, or a node re-emitted
//! canonically when its shape changed. Edits never touch bytes of unchanged values, so comments,
//! blank lines, quoting and indentation elsewhere stay as they were.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use super::emit::{self, Emitter};
use super::parse::{
    alias_of, line_end, line_start, next_line, BlockInfo, DocSource, SBody, SColl, SItem, SNode,
    SScalar, Source, Style, ALIAS_MARK,
};
use crate::format::tree::{Item, Kind, Node, Scalar};

struct Edit {
    start: usize,
    end: usize,
    text: String,
}

#[derive(Clone, Copy)]
enum Ctx {
    /// The top-level mapping of a document.
    Root,
    /// The value of a block mapping entry whose key is at column `indent`.
    MapValue { indent: usize, colon: usize },
    /// An item of a block sequence whose `-` is at byte `dash`, column `indent`.
    SeqItem { indent: usize, dash: usize },
    /// Anything inside a flow collection.
    Flow,
}

struct Splicer<'a> {
    text: &'a str,
    nl: &'static str,
    step: usize,
    edits: Vec<Edit>,
}

/// `docs[i]` is written from the original document `i`; `metadata` is appended to each.
pub fn write(
    src: &Source,
    docs: &[&[Item]],
    metadata: Option<&Node>,
    default_step: Option<usize>,
) -> String {
    let mut edits = Vec::new();
    for (doc, items) in src.docs.iter().zip(docs) {
        let step = doc.indent.or(default_step).unwrap_or(4);
        let mut s = Splicer {
            text: &src.text,
            nl: src.nl,
            step,
            edits: Vec::new(),
        };
        s.document(doc, items, metadata);
        edits.append(&mut s.edits);
    }
    apply(&src.text, edits)
}

fn apply(text: &str, mut edits: Vec<Edit>) -> String {
    edits.sort_by_key(|e| (e.start, e.end));
    let mut out =
        String::with_capacity(text.len() + edits.iter().map(|e| e.text.len()).sum::<usize>());
    let mut cursor = 0;
    for e in edits {
        if e.start < cursor {
            // Inside a region already rewritten as a whole (a node re-emitted canonically).
            continue;
        }
        out.push_str(&text[cursor..e.start]);
        out.push_str(&e.text);
        cursor = e.end;
    }
    out.push_str(&text[cursor..]);
    out
}

/// How an item of a collection is recognised in the new tree.
#[derive(Hash, PartialEq, Eq, Clone, Copy)]
enum Key<'k> {
    Name(&'k str),
    Index(usize),
    /// A comment: the entry it precedes (`None`: the end), and its rank among the comments
    /// before that entry.
    Comment(Option<Slot<'k>>, usize),
}

#[derive(Hash, PartialEq, Eq, Clone, Copy)]
enum Slot<'k> {
    Name(&'k str),
    Index(usize),
}

/// Keys for a list of items, given each item's slot (`None` for a comment).
fn keys<'k>(slots: &[Option<Slot<'k>>], skip: Option<usize>) -> Vec<Key<'k>> {
    let mut out = Vec::with_capacity(slots.len());
    let mut next = vec![None; slots.len()];
    let mut cur = None;
    for i in (0..slots.len()).rev() {
        // The `sops` block (removed or appended by the writer) is no comment's anchor.
        if slots[i].is_some() && Some(i) != skip {
            cur = slots[i];
        }
        next[i] = cur;
    }
    let mut rank = 0;
    for (i, slot) in slots.iter().enumerate() {
        out.push(match slot {
            Some(Slot::Name(n)) => {
                rank = 0;
                Key::Name(n)
            }
            Some(Slot::Index(n)) => {
                rank = 0;
                Key::Index(*n)
            }
            None => {
                rank += 1;
                Key::Comment(next[i], rank - 1)
            }
        });
    }
    out
}

fn orig_slots(c: &SColl) -> Vec<Option<Slot<'_>>> {
    let mut index = 0;
    c.items
        .iter()
        .map(|item| match item {
            SItem::Pair { key, .. } => Some(Slot::Name(key.as_str())),
            SItem::Entry {
                enc_comment: false, ..
            } => {
                index += 1;
                Some(Slot::Index(index - 1))
            }
            _ => None,
        })
        .collect()
}

impl Splicer<'_> {
    /// Whether an edit so far falls in `range` (anchors come before their aliases, and the
    /// writer goes through a document in order).
    fn touched(&self, range: &std::ops::Range<usize>) -> bool {
        self.edits
            .iter()
            .any(|e| e.start < range.end && e.end.max(e.start + 1) > range.start)
    }

    fn edit(&mut self, start: usize, end: usize, text: String) {
        self.edits.push(Edit { start, end, text });
    }

    fn document(&mut self, doc: &DocSource, items: &[Item], metadata: Option<&Node>) {
        let sops = metadata.map(|m| Item::Pair("sops".to_string(), m.clone()));
        let all: Vec<&Item> = items.iter().chain(sops.as_ref()).collect();
        let SBody::Map(c) = &doc.root.body else {
            return;
        };
        self.map(&doc.root, c, &all, Ctx::Root, doc.sops_item);
        if metadata.is_some() && doc.sops_item.is_none() {
            self.keep_last_block_value(c);
        }
    }

    /// A block scalar left in the clear that ends the file without a line break has no final
    /// line break in its value; the `sops` entry written after it would give it one (and the
    /// MAC would not match): its chomping becomes strip, which keeps the value.
    fn keep_last_block_value(&mut self, c: &SColl) {
        if self.text.ends_with('\n') {
            return;
        }
        let Some(SItem::Pair { value, .. }) = c
            .items
            .iter()
            .rev()
            .find(|i| !matches!(i, SItem::Comment { .. }))
        else {
            return;
        };
        let SBody::Scalar(SScalar { block: Some(b), .. }) = &value.body else {
            return;
        };
        if value.end < self.text.len() || self.touched(&(value.start..value.end)) {
            return;
        }
        // Without content the value is empty either way.
        if self.text[b.header_line_end.min(value.end)..value.end]
            .trim()
            .is_empty()
        {
            return;
        }
        let header = &self.text[b.header.0..b.header.1];
        if header.contains('-') {
            return;
        }
        let stripped: String = header.replace('+', "");
        let (indicator, rest) = stripped.split_at(1);
        self.edit(b.header.0, b.header.1, format!("{indicator}-{rest}"));
    }

    fn node(&mut self, orig: &SNode, new: &Node, ctx: Ctx) {
        if let (Some(c), Some(alias)) = (orig.coll(), alias_of(new)) {
            // A copy of an alias, decrypted: the alias is written back in its place. Comments
            // that follow the copy's last item were the file's, after the alias: they stay.
            let end = (!c.flow)
                .then(|| {
                    c.items
                        .iter()
                        .filter(|i| !matches!(i, SItem::Comment { .. }))
                        .map(SItem::end)
                        .max()
                })
                .flatten()
                .unwrap_or(orig.end);
            // A comment that followed the alias on its line was left on the key's line: it
            // stays there (and is decrypted by its own edit).
            let mut put_back = |at: usize| {
                let le = line_end(self.text, at);
                match self.text[at..le].find('#') {
                    Some(h) if self.text[at..at + h].trim().is_empty() => {
                        self.edit(at, at + h, format!(" {alias} "));
                        self.edit(le, end.max(le), String::new());
                    }
                    _ => self.edit(at, end, format!(" {alias}")),
                }
            };
            match ctx {
                Ctx::MapValue { colon, .. } => put_back(colon),
                Ctx::SeqItem { dash, .. } => put_back(dash + 1),
                Ctx::Flow => self.edit(orig.start, orig.end, alias.to_string()),
                Ctx::Root => self.replace(orig, new, ctx),
            }
            return;
        }
        match (&orig.body, new) {
            (SBody::Scalar(s), Node::Scalar(ns)) => {
                if !orig.holds_scalar(self.text, ns) {
                    self.scalar(orig, s, ns, ctx);
                }
            }
            (SBody::Alias(_, anchored), n) => {
                // Kept when it is the alias as read (an alias to a scalar carries its `*name`
                // text in its layout) and its anchored node is written as it was: an alias
                // left in a clear region to an anchor whose values were encrypted would read
                // back as ciphertext (and fail the MAC).
                if orig.to_node(self.text) != *n || self.touched(anchored) {
                    self.replace(orig, n, ctx);
                }
            }
            (SBody::Map(c), Node::Map(items)) => {
                let items: Vec<&Item> = items.iter().collect();
                self.map(orig, c, &items, ctx, None)
            }
            (SBody::Seq(c), Node::Seq(items)) => self.seq(orig, c, items, ctx),
            _ => self.replace(orig, new, ctx),
        }
    }

    /// Re-emits `orig` as `new`, canonically.
    fn replace(&mut self, orig: &SNode, new: &Node, ctx: Ctx) {
        let flow_orig = orig.coll().is_some_and(|c| c.flow);
        if matches!(ctx, Ctx::Flow) || (flow_orig && matches!(new, Node::Map(_) | Node::Seq(_))) {
            let mut out = String::new();
            emit::flow(new, &mut out);
            self.edit(orig.start, orig.end, out);
            return;
        }
        let mut out = String::new();
        let mut em = Emitter {
            out: &mut out,
            step: self.step,
            nl: self.nl,
        };
        match ctx {
            Ctx::Root => {
                let items: &[Item] = match new {
                    Node::Map(items) => items,
                    _ => &[],
                };
                let text = self.text;
                let (start, end) = (span_start(orig), orig.end.max(orig.extent));
                let at_line_start = line_start(text, start) == start;
                if !at_line_start {
                    em.out.push_str(self.nl);
                }
                if items.iter().any(|i| matches!(i, Item::Pair(..))) {
                    em.map(items, 0, true);
                } else {
                    em.document(items);
                    let n = em.out.len() - self.nl.len();
                    em.out.truncate(n);
                }
                let rest = &text[end..];
                if start == end && !rest.is_empty() && !rest.starts_with(['\n', '\r']) {
                    em.out.push_str(self.nl);
                }
                // An empty document ending the stream: the encrypted file ends with a line
                // break when the plaintext does (`---` + line break, where the block starts
                // on a line of its own), and without one when it does not (`---` at the very
                // end), so that decrypting can tell the two apart, as it can for a document
                // with entries (the `sops` entry then follows the last entry's line).
                if start == end && rest.is_empty() && at_line_start && start > 0 {
                    em.out.push_str(self.nl);
                }
                self.edit(start, end, out);
            }
            Ctx::MapValue { indent, colon }
            | Ctx::SeqItem {
                indent,
                dash: colon,
            } => {
                let is_seq = matches!(ctx, Ctx::SeqItem { .. });
                let after = if is_seq { colon + 1 } else { colon };
                let first = span_start(orig);
                let between = &self.text[after.min(first)..first];
                let le = line_end(self.text, orig.end);
                let trailing = !self.text[orig.end..le].trim().is_empty();
                let block_coll = match new {
                    Node::Map(items) => items.iter().any(|i| matches!(i, Item::Pair(..))),
                    Node::Seq(items) => !items.is_empty(),
                    _ => false,
                };
                if trailing && block_coll && !between.contains('#') {
                    // `key: *alias # note` becoming a mapping: the note stays on the key's line
                    // (where sops reads it as the key's), the entries go below.
                    let child = if is_seq {
                        indent + 2
                    } else {
                        emit::next_indent(indent, self.step)
                    };
                    em.out.push_str(self.nl);
                    match new {
                        Node::Map(items) => em.map(items, child, false),
                        Node::Seq(items) => em.seq(items, child, false),
                        _ => {}
                    }
                    let cut = if is_seq { after } else { after.min(first) };
                    let keep_space = self.text[cut..first].starts_with(' ');
                    self.edit(cut, orig.end.max(cut), String::new());
                    if !keep_space {
                        self.edit(orig.end, orig.end, String::new());
                    }
                    self.edit(le, le, out);
                } else if between.contains('#') {
                    // A comment sits between the indicator and the value: write the value where
                    // the old one started.
                    let col = orig.start - line_start(self.text, orig.start);
                    match new {
                        Node::Map(items) if items.iter().any(|i| matches!(i, Item::Pair(..))) => {
                            em.map(items, col, true)
                        }
                        Node::Seq(items) if !items.is_empty() => em.seq(items, col, true),
                        Node::Map(_) => em.out.push_str("{}"),
                        Node::Seq(_) => em.out.push_str("[]"),
                        Node::Scalar(s) if is_seq => {
                            em.scalar(s, indent, emit::seq_item_content(indent))
                        }
                        Node::Scalar(s) => {
                            em.scalar(s, indent, emit::next_indent(indent, self.step))
                        }
                        Node::Comment(c) => em.out.push_str(&emit::double_quoted(c)),
                    }
                    self.edit(orig.start, orig.end, out);
                } else {
                    if is_seq {
                        em.seq_item_value(new, indent);
                    } else {
                        em.value_after_key(new, indent);
                    }
                    self.edit(after.min(first), orig.end.max(after), out);
                }
            }
            Ctx::Flow => {}
        }
    }

    fn scalar(&mut self, orig: &SNode, s: &SScalar, new: &Scalar, ctx: Ctx) {
        let in_flow = matches!(ctx, Ctx::Flow);
        let empty_orig = orig.start == orig.end;
        let start = match &s.block {
            Some(b) => b.header.0,
            None => orig.start,
        };
        if let Some(layout) = new.layout.as_deref().filter(|l| !l.starts_with(ALIAS_MARK)) {
            // The source text sealed with the value: written back as it was, when it is of
            // the same sort (block or not) as what it replaces.
            match (&s.block, layout.starts_with(['|', '>'])) {
                (Some(b), true) => {
                    let split = layout.find(['\r', '\n']).unwrap_or(layout.len());
                    if self.text[b.header.0..b.header.1] != layout[..split] {
                        self.edit(b.header.0, b.header.1, layout[..split].to_string());
                    }
                    self.edit(
                        b.header_line_end,
                        orig.end.max(b.header_line_end),
                        layout[split..].to_string(),
                    );
                    return;
                }
                (None, false) => {
                    let prefix = if empty_orig { " " } else { "" };
                    self.edit(start, orig.end, format!("{prefix}{layout}"));
                    return;
                }
                // An alias whose copy was written as a block scalar in the encrypted file.
                (Some(b), false) if layout.starts_with('*') => {
                    self.edit(b.header.0, orig.end, layout.to_string());
                    return;
                }
                _ => {}
            }
        }
        let mut text = if !matches!(new.kind, Kind::Str | Kind::Bytes) {
            emit::inline_scalar(new, in_flow)
        } else {
            let Some(value) = new.text() else {
                self.edit(start, orig.end, emit::inline_scalar(new, in_flow));
                return;
            };
            match s.style {
                Style::Literal | Style::Folded if s.block.is_some() => {
                    if self.block(orig, s, value) {
                        return;
                    }
                    emit::double_quoted(value)
                }
                Style::Double => emit::double_quoted(value),
                // In a flow collection an `ENC[...]` needs quotes: a plain value is encrypted
                // single-quoted and comes back plain; a single-quoted one is encrypted
                // double-quoted (and comes back double-quoted: flow values of three styles
                // cannot all survive a trip through two).
                Style::Single
                    if in_flow
                        && orig.scalar_bytes(self.text).is_some_and(is_enc)
                        && emit::plain_ok(value, true) =>
                {
                    value.to_string()
                }
                Style::Single if in_flow && value.starts_with("ENC[") => emit::double_quoted(value),
                Style::Single if emit::single_ok(value) => emit::single_quoted(value),
                Style::Single => emit::double_quoted(value),
                _ if value.contains('\n') && !in_flow => self
                    .plain_to_literal(orig, value, ctx)
                    .unwrap_or_else(|| emit::double_quoted(value)),
                // A value that replaces an `ENC[...]` without its source text (a sops file, or a
                // value changed by `set`/`edit`) is written as go-yaml writes it, which quotes
                // YAML 1.1 booleans and base-60 numbers (`"no"`, `"0:0"`): kubectl and PyYAML
                // would read them bare as a bool or a number. Text that was plain in the
                // original stays plain (the lossless promise).
                _ if s.str_tag && emit::plain_syntax_ok(value, in_flow) => value.to_string(),
                _ if orig.scalar_bytes(self.text).is_some_and(is_enc) => {
                    emit::inline_scalar(new, in_flow)
                }
                _ if emit::plain_ok_lossless(value, in_flow) => value.to_string(),
                _ if in_flow && value.starts_with("ENC[") => emit::single_quoted(value),
                _ => emit::inline_scalar(new, in_flow),
            }
        };
        if empty_orig && !text.is_empty() {
            text.insert(0, ' ');
        }
        self.edit(start, orig.end, text);
    }

    /// A multi-line string where the original was a one-line scalar: a literal block, one step
    /// deeper than its key, when nothing else follows on the line.
    fn plain_to_literal(&self, orig: &SNode, value: &str, ctx: Ctx) -> Option<String> {
        let (parent, content) = match ctx {
            Ctx::MapValue { indent, .. } => (indent, emit::next_indent(indent, self.step)),
            Ctx::SeqItem { indent, .. } => (indent, emit::seq_item_content(indent)),
            _ => return None,
        };
        let le = line_end(self.text, orig.end);
        if !self.text[orig.end..le].trim().is_empty() {
            return None;
        }
        let (header, body) = emit::literal_block(value, parent, content, self.nl)?;
        Some(format!("{header}{}{body}", self.nl))
    }

    /// Rewrites a block scalar's content in place, keeping its header when it still fits the
    /// value. Returns false when a block cannot hold the value.
    ///
    /// A folded (`>`) scalar cannot always come back byte for byte: folding forgets where the
    /// lines were broken. A one-line value stays folded; a value with inner line breaks is
    /// written as a literal block with the same indicators, which reads back as the same string.
    fn block(&mut self, orig: &SNode, s: &SScalar, value: &str) -> bool {
        let Some(b) = &s.block else { return false };
        let header = &self.text[b.header.0..b.header.1];
        let is_enc = value.starts_with("ENC[") && !value.contains('\n');
        if !is_enc && !emit::literal_ok(value) {
            return false;
        }
        let mut content = String::new();
        if !value.is_empty() {
            content.push_str(self.nl);
            if is_enc {
                // sops 3.11 reads `key: |` + one `ENC[...]` line (its ENC regex ignores the
                // clipped line break), so the block keeps its header and indentation.
                content.extend(std::iter::repeat_n(' ', b.content_indent));
                content.push_str(value);
                content.push_str(kept_blank_lines(self.text, b, orig.end));
            } else {
                content.push_str(&emit::literal_content(value, b.content_indent, self.nl));
            }
        }
        if !is_enc {
            let mut style = header.chars().next().unwrap_or('|');
            let inner = value.trim_end_matches('\n').contains('\n');
            if style == '>' && inner {
                style = '|';
            }
            let digit: Option<char> = header.chars().find(char::is_ascii_digit);
            let needs_digit = value.starts_with([' ', '\n']);
            let orig_chomp = if header.contains('+') {
                "+"
            } else if header.contains('-') {
                "-"
            } else {
                ""
            };
            let chomp = match orig_chomp {
                "+" if value.ends_with('\n') || value.is_empty() => "+",
                "-" if !value.ends_with('\n') => "-",
                "" if value.ends_with('\n') && !value.ends_with("\n\n") => "",
                _ => emit::chomping(value),
            };
            let digit = match (digit, needs_digit) {
                (Some(d), _) => Some(d.to_string()),
                (None, true) => {
                    let d = b.content_indent.saturating_sub(b.parent_indent);
                    if !(1..=9).contains(&d) {
                        return false;
                    }
                    Some(d.to_string())
                }
                (None, false) => None,
            };
            let orig_style = header.chars().next().unwrap_or('|');
            let orig_digit = header
                .chars()
                .find(char::is_ascii_digit)
                .map(|d| d.to_string());
            if (orig_style, orig_digit.as_deref(), orig_chomp) != (style, digit.as_deref(), chomp) {
                let new_header = format!("{style}{}{chomp}", digit.unwrap_or_default());
                self.edit(b.header.0, b.header.1, new_header);
            }
        }
        self.edit(b.header_line_end, orig.end.max(b.header_line_end), content);
        true
    }

    fn comment_text(&self, new: &str) -> String {
        new.replace('\n', " ")
    }

    fn map(&mut self, orig: &SNode, c: &SColl, new: &[&Item], ctx: Ctx, exclude: Option<usize>) {
        let slots = orig_slots(c);
        let okeys = keys(&slots, exclude);
        let mut index: HashMap<Key, usize, RandomState> =
            HashMap::with_capacity_and_hasher(okeys.len(), RandomState::default());
        for (i, k) in okeys.iter().enumerate() {
            if Some(i) != exclude {
                index.entry(*k).or_insert(i);
            }
        }
        let nslots: Vec<Option<Slot>> = new
            .iter()
            .map(|item| match item {
                Item::Pair(k, _) => Some(Slot::Name(k.as_str())),
                Item::Comment(_) => None,
            })
            .collect();
        let appended = (matches!(ctx, Ctx::Root)
            && matches!(new.last(), Some(Item::Pair(k, _)) if k == "sops"))
        .then(|| new.len() - 1);
        let nkeys = keys(&nslots, appended);
        let matched: Vec<Option<usize>> = nkeys
            .iter()
            .map(|&k| match k {
                // The `sops` entry is always written anew at the end.
                Key::Name("sops") if matches!(ctx, Ctx::Root) => None,
                k => index.get(&k).copied(),
            })
            .collect();
        let has_pairs = new.iter().any(|i| matches!(i, Item::Pair(..)));
        let had_pairs = c
            .items
            .iter()
            .enumerate()
            .any(|(i, item)| matches!(item, SItem::Pair { .. }) && Some(i) != exclude);
        if !self.can_splice(c, &matched) || (!has_pairs && had_pairs) {
            let owned: Vec<Item> = new.iter().map(|&i| i.clone()).collect();
            self.replace(orig, &Node::Map(owned), ctx);
            return;
        }
        let mut used = vec![false; c.items.len()];
        for (n, m) in new.iter().zip(&matched) {
            let Some(i) = *m else { continue };
            used[i] = true;
            match (&c.items[i], n) {
                (SItem::Pair { value, colon, .. }, Item::Pair(_, nv)) => {
                    let nv: &Node = nv;
                    let cctx = if c.flow {
                        Ctx::Flow
                    } else {
                        Ctx::MapValue {
                            indent: c.indent,
                            colon: *colon,
                        }
                    };
                    self.node(value, nv, cctx);
                }
                (SItem::Comment { hash, end, .. }, Item::Comment(t)) => {
                    let t: &str = t;
                    if &self.text[hash + 1..*end] != t {
                        let t = self.comment_text(t);
                        self.edit(hash + 1, *end, t);
                    }
                }
                _ => {}
            }
        }
        self.delete_unused(c, &used, exclude.filter(|_| matches!(ctx, Ctx::Root)));
        let tail = appended.is_some();
        self.insert_new(c, &matched, new.len(), tail, |em, from, to| {
            let run: Vec<Item> = new[from..to].iter().map(|&i| i.clone()).collect();
            em.map(&run, c.indent, false)
        });
    }

    fn seq(&mut self, orig: &SNode, c: &SColl, new: &[Node], ctx: Ctx) {
        let slots = orig_slots(c);
        let okeys = keys(&slots, None);
        let mut index: HashMap<Key, usize, RandomState> =
            HashMap::with_capacity_and_hasher(okeys.len(), RandomState::default());
        for (i, k) in okeys.iter().enumerate() {
            index.entry(*k).or_insert(i);
        }
        let mut n_index = 0;
        let nslots: Vec<Option<Slot>> = new
            .iter()
            .map(|item| match item {
                Node::Comment(_) => None,
                _ => {
                    n_index += 1;
                    Some(Slot::Index(n_index - 1))
                }
            })
            .collect();
        let nkeys = keys(&nslots, None);
        let matched: Vec<Option<usize>> = nkeys.iter().map(|k| index.get(k).copied()).collect();
        let has_items = new.iter().any(|i| !matches!(i, Node::Comment(_)));
        let had_items = c.items.iter().any(|i| {
            matches!(
                i,
                SItem::Entry {
                    enc_comment: false,
                    ..
                }
            )
        });
        if !self.can_splice(c, &matched) || (!has_items && had_items) {
            self.replace(orig, &Node::Seq(new.to_vec()), ctx);
            return;
        }
        let mut used = vec![false; c.items.len()];
        for (n, m) in new.iter().zip(&matched) {
            let Some(i) = *m else { continue };
            used[i] = true;
            match (&c.items[i], n) {
                (
                    SItem::Entry {
                        value,
                        start,
                        enc_comment: false,
                    },
                    n,
                ) => {
                    let cctx = if c.flow {
                        Ctx::Flow
                    } else {
                        Ctx::SeqItem {
                            indent: c.indent,
                            dash: *start,
                        }
                    };
                    let n: &Node = n;
                    self.node(value, n, cctx);
                }
                (
                    SItem::Entry {
                        value,
                        start,
                        enc_comment: true,
                    },
                    Node::Comment(t),
                ) => {
                    let t: &str = t;
                    let same = value.scalar_bytes(self.text) == Some(t.as_bytes());
                    if !same && !c.flow {
                        let t = self.comment_text(t);
                        self.edit(*start, value.end, format!("#{t}"));
                    }
                }
                (SItem::Comment { hash, end, .. }, Node::Comment(t)) => {
                    let t: &str = t;
                    if &self.text[hash + 1..*end] != t {
                        let t = self.comment_text(t);
                        self.edit(hash + 1, *end, t);
                    }
                }
                _ => {}
            }
        }
        self.delete_unused(c, &used, None);
        self.insert_new(c, &matched, new.len(), false, |em, from, to| {
            em.seq(&new[from..to], c.indent, false)
        });
        if !has_items && !c.flow && !c.items.is_empty() {
            // A list of comments only (sops writes `key: [] # c` as `key:` + `- ENC[...]`):
            // its comment lines alone under `key:` would read as null, so the empty list is
            // spelled out where it began.
            match ctx {
                Ctx::MapValue { colon, .. } => self.edit(colon, colon, " []".into()),
                Ctx::SeqItem { dash, .. } => self.edit(dash + 1, dash + 1, " []".into()),
                Ctx::Root | Ctx::Flow => {}
            }
        }
    }

    /// Splicing keeps the original order, so the matched items must come in it; a flow
    /// collection is only spliced when no item comes or goes (else it is re-emitted).
    fn can_splice(&self, c: &SColl, matched: &[Option<usize>]) -> bool {
        let mut last = None;
        for &i in matched.iter().flatten() {
            if last.is_some_and(|l| i <= l) {
                return false;
            }
            last = Some(i);
        }
        if last.is_none() && !matched.is_empty() {
            return false;
        }
        if c.flow {
            let all_new_matched = matched.iter().all(Option::is_some);
            let all_orig_used = matched.iter().flatten().count() == c.items.len();
            return all_new_matched && all_orig_used;
        }
        true
    }

    /// Removes the items not `used`. `sops`: the index of a document's `sops` entry, which
    /// goes with its own lines only when blank lines come before it (see
    /// [`Self::insert_new`]'s `tail`), and with the line break before it when it is alone in
    /// the document and ends the text without one (see [`Self::replace`]).
    fn delete_unused(&mut self, c: &SColl, used: &[bool], sops: Option<usize>) {
        for (i, item) in c.items.iter().enumerate() {
            if used[i] {
                continue;
            }
            let start = item.start();
            if Some(i) == sops {
                let ls = line_start(self.text, start);
                let le = line_end(self.text, item.end());
                if self.after_blank_line(start) {
                    self.edit(ls, next_line(self.text, le), String::new());
                    continue;
                }
                if c.items.len() == 1 && le == self.text.len() {
                    // An empty document's block ending the text without a line break: so did
                    // the `---` line in the plaintext (see `replace`).
                    let before = &self.text[..ls];
                    let from = before
                        .strip_suffix('\n')
                        .map_or(ls, |t| t.strip_suffix('\r').unwrap_or(t).len());
                    self.edit(from, le, String::new());
                    continue;
                }
            }
            let prev_end = c
                .items
                .iter()
                .filter(|o| o.start() < start)
                .map(SItem::end)
                .max();
            match prev_end {
                Some(p) if p <= start => {
                    // From the end of the previous line, so that what trails the previous
                    // entry on its line (spaces, a comment) stays.
                    let le = line_end(self.text, p);
                    let from = if le < start { le } else { p };
                    self.edit(from, item.end(), String::new())
                }
                _ => {
                    let next = c
                        .items
                        .iter()
                        .enumerate()
                        .filter(|(j, o)| o.start() > start && used[*j])
                        .map(|(_, o)| o.start())
                        .min();
                    match next {
                        Some(n) => self.edit(start, n, String::new()),
                        None => {
                            // The first and last kept item: remove its whole lines.
                            let ls = line_start(self.text, start);
                            let from = if self.text[ls..start].trim().is_empty() {
                                ls
                            } else {
                                start
                            };
                            let le = line_end(self.text, item.end());
                            let to = (le + self.nl.len()).min(self.text.len());
                            self.edit(from, to, String::new())
                        }
                    }
                }
            }
        }
    }

    /// Whether the line holding `pos` comes after a blank line.
    fn after_blank_line(&self, pos: usize) -> bool {
        let before = &self.text[..line_start(self.text, pos)];
        before[before.trim_end().len()..].matches('\n').count() > 1
    }

    /// Past the blank lines that follow the line end `pos`, to the end of the last one (lines
    /// ended by a line break only).
    fn past_blank_lines(&self, pos: usize) -> usize {
        let mut q = pos;
        loop {
            let next = next_line(self.text, q);
            if next == q || next >= self.text.len() {
                return q;
            }
            let le = line_end(self.text, next);
            if le >= self.text.len() || !self.text[next..le].trim().is_empty() {
                return q;
            }
            q = le;
        }
    }

    /// Inserts the runs of new items that have no original, each after the line of the matched
    /// item before it (or before the first matched item's line).
    ///
    /// `tail`: the last run ends with the `sops` entry added to a document, which goes after
    /// the blank lines that end the document. go-yaml reads the comments before it as it reads
    /// them in the plaintext, where those blank lines are followed by the end of the document:
    /// a blank line ends a foot comment (`yaml_parser_scan_comments`), so without it the same
    /// comment went to another collection in the encrypted file than in the plaintext, with
    /// another AAD, and neither enseal nor sops could decrypt it.
    fn insert_new(
        &mut self,
        c: &SColl,
        matched: &[Option<usize>],
        len: usize,
        tail: bool,
        mut render: impl FnMut(&mut Emitter, usize, usize),
    ) {
        let mut i = 0;
        let mut prev: Option<usize> = None;
        while i < len {
            if let Some(m) = matched[i] {
                prev = Some(m);
                i += 1;
                continue;
            }
            let from = i;
            while i < len && matched[i].is_none() {
                i += 1;
            }
            let mut out = String::new();
            let mut em = Emitter {
                out: &mut out,
                step: self.step,
                nl: self.nl,
            };
            match prev {
                Some(p) => {
                    // After the whole line of the item (an inline comment stays on it), but
                    // before the items that come physically later on that line. Not before an
                    // item listed earlier: a head comment go-yaml holds past an empty item is
                    // listed after the collection it sits in (see `parse`).
                    let end = c.items[..=p].iter().map(SItem::end).max();
                    let pos = line_end(self.text, end.unwrap_or(c.items[p].end()));
                    let blanks_end = match tail && i == len {
                        true => self.past_blank_lines(pos),
                        false => pos,
                    };
                    if blanks_end > pos {
                        // On the line after the blank lines, which keep their own breaks.
                        render(&mut em, from, i);
                        em.out.push_str(self.nl);
                        let at = next_line(self.text, blanks_end);
                        self.edit(at, at, out);
                    } else {
                        em.out.push_str(self.nl);
                        render(&mut em, from, i);
                        self.edit(pos, pos, out);
                    }
                }
                None => {
                    let first = matched[i..].iter().flatten().next().copied();
                    let Some(f) = first else { continue };
                    let start = c.items[f].start();
                    let ls = line_start(self.text, start);
                    render(&mut em, from, i);
                    em.out.push_str(self.nl);
                    let pad = &self.text[ls..start];
                    if pad.trim().is_empty() {
                        self.edit(ls, ls, out);
                    } else {
                        // `- key: v`: the new entries go after the `- ` and take its place.
                        let col = start - ls;
                        out.extend(std::iter::repeat_n(' ', col));
                        let trimmed = out.trim_start().to_string();
                        self.edit(start, start, trimmed);
                    }
                }
            }
        }
    }
}

fn is_enc(value: &[u8]) -> bool {
    value.starts_with(b"ENC[")
}

/// The blank lines a keep (`+`) block scalar ends with (from the line break after its last
/// content line to `end`, the node's end), which an encrypted value written in the block keeps:
/// go-yaml's scanner counts a block scalar's trailing line breaks (`parser.newlines`), and a
/// comment below is a foot of the scalar's collection only when at most one came before it
/// (`first_empty` in `yaml_parser_scan_comments`). Without them the comment moves there in
/// sops' reading of the encrypted file (seed 100030: `- >+`, `  x`, a blank line, `# c` at the
/// sequence's column in a CRLF file goes to the key before, but to the sequence when the blank
/// line is gone). In the block they are part of the value, `ENC[...]` and line breaks, which
/// sops' ENC pattern (anchored at the start only) and [`crate::crypto::cipher`] both read.
fn kept_blank_lines<'t>(text: &'t str, b: &BlockInfo, end: usize) -> &'t str {
    let header = &text[b.header.0..b.header.1];
    if !header.contains('+') || end <= b.header_line_end {
        return "";
    }
    let content = &text[b.header_line_end..end];
    let last_char = content.trim_end_matches([' ', '\t', '\r', '\n']).len();
    if last_char == 0 {
        return "";
    }
    let last_line_end = line_end(text, b.header_line_end + last_char - 1);
    &text[last_line_end.min(end)..end]
}

/// Where a node's text starts, counting the comments it holds that come before its first entry
/// (a head comment is the mapping's first item but sits above the first key).
fn span_start(node: &SNode) -> usize {
    match node.coll() {
        Some(c) if !c.flow => c
            .items
            .iter()
            .map(SItem::start)
            .min()
            .map_or(node.start, |s| s.min(node.start)),
        _ => node.start,
    }
}
