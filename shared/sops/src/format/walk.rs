//! Walks the leaves of a tree in document order the way sops does, with each leaf's key path
//! (the AAD of its value) and the comments that precede it at every level (what the comment
//! crypt rules look at).

use crate::format::tree::{Item, Node, Scalar, Tree};

/// A leaf under visit: a scalar value or a comment.
pub enum Leaf<'a> {
    Scalar(&'a mut Scalar),
    Comment(&'a mut String),
}

/// Where a leaf sits.
pub struct Place<'a> {
    /// Mapping keys from the document root; sequence indices are not part of it (sops' AAD).
    /// Borrowed from the tree: a large file has one key per value, and copying every key on
    /// the way down was a large share of the time to open it.
    pub path: &'a [&'a str],
    /// For each level, the comments read since the last non-comment item of that level.
    pub comments: &'a [Vec<String>],
}

impl Place<'_> {
    /// The additional data of a value at this place: `a:b:` (`:` alone at the top level).
    pub fn aad(&self) -> String {
        let len = self.path.iter().map(|k| k.len() + 1).sum::<usize>().max(1);
        let mut aad = String::with_capacity(len);
        for key in self.path {
            aad.push_str(key);
            aad.push(':');
        }
        if aad.is_empty() {
            aad.push(':');
        }
        aad
    }

    /// A readable name for messages (`db:password`, or `(top level)`); never a value.
    pub fn display(&self) -> String {
        if self.path.is_empty() {
            "(top level)".to_string()
        } else {
            self.path.join(":")
        }
    }
}

/// Calls `visit` for every scalar and comment of every document, in document order.
pub fn walk_leaves<E>(
    tree: &mut Tree,
    visit: &mut dyn FnMut(Leaf<'_>, &Place<'_>) -> Result<(), E>,
) -> Result<(), E> {
    for doc in &mut tree.documents {
        let mut path = Vec::new();
        let mut comments = Vec::new();
        walk_node(doc, &mut path, &mut comments, visit)?;
    }
    Ok(())
}

fn walk_node<'t, E>(
    node: &'t mut Node,
    path: &mut Vec<&'t str>,
    comments: &mut Vec<Vec<String>>,
    visit: &mut dyn FnMut(Leaf<'_>, &Place<'_>) -> Result<(), E>,
) -> Result<(), E> {
    match node {
        Node::Scalar(s) => visit(Leaf::Scalar(s), &Place { path, comments }),
        Node::Comment(c) => visit(Leaf::Comment(c), &Place { path, comments }),
        Node::Map(items) => {
            comments.push(Vec::new());
            for item in items.iter_mut() {
                match item {
                    Item::Comment(c) => {
                        // The comment itself is judged with itself on the stack, as in sops.
                        // (Copied: the visitor may rewrite it while it is on the stack.)
                        comments.last_mut().expect("pushed above").push(c.clone());
                        visit(Leaf::Comment(c), &Place { path, comments })?;
                    }
                    Item::Pair(key, value) => {
                        let key: &'t String = key;
                        path.push(key);
                        walk_node(value, path, comments, visit)?;
                        path.pop();
                        comments.last_mut().expect("pushed above").clear();
                    }
                }
            }
            comments.pop();
            Ok(())
        }
        Node::Seq(items) => {
            comments.push(Vec::new());
            for item in items.iter_mut() {
                let is_comment = matches!(item, Node::Comment(_));
                if let Node::Comment(c) = item {
                    comments.last_mut().expect("pushed above").push(c.clone());
                }
                walk_node(item, path, comments, visit)?;
                if !is_comment {
                    comments.last_mut().expect("pushed above").clear();
                }
            }
            comments.pop();
            Ok(())
        }
    }
}
