//! The lossless write: the original bytes, with only the values that changed spliced in.

use super::emit::{render_member, render_value, Style};
use super::parse::{JArray, JMember, JObject, JValue};
use crate::format::tree::{Item, Node};
use crate::stores::StoreError;

pub(super) fn first_member(obj: &JObject) -> Option<&JMember> {
    obj.members.first()
}

pub(super) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(super) fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub(super) struct Lossless<'a> {
    pub(super) src: &'a [u8],
    pub(super) style: &'a Style,
}

/// Where a written member or element came from: the original's index, if it had one.
pub(super) struct Piece {
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

    pub(super) fn object(
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

    pub(super) fn array(
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

    pub(super) fn value(
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
