//! Walks the leaves of a tree in document order the way sops does, with each leaf's key path
//! (the AAD of its value) and the comments that precede it at every level (what the comment
//! crypt rules look at).

use crate::tree::{Item, Node, Scalar, Tree};

/// A leaf under visit: a scalar value or a comment.
pub enum Leaf<'a> {
    Scalar(&'a mut Scalar),
    Comment(&'a mut String),
}

/// Where a leaf sits.
pub struct Place<'a> {
    /// Mapping keys from the document root; sequence indices are not part of it (sops' AAD).
    pub path: &'a [String],
    /// For each level, the comments read since the last non-comment item of that level.
    pub comments: &'a [Vec<String>],
}

impl Place<'_> {
    /// The additional data of a value at this place: `a:b:` (`:` alone at the top level).
    pub fn aad(&self) -> String {
        let mut aad = String::new();
        for key in self.path {
            aad.push_str(key);
            aad.push(':');
        }
        if aad.is_empty() {
            aad.push(':');
        }
        aad
    }

    pub fn path_refs(&self) -> Vec<&str> {
        self.path.iter().map(String::as_str).collect()
    }

    pub fn comment_refs(&self) -> Vec<Vec<&str>> {
        self.comments
            .iter()
            .map(|g| g.iter().map(String::as_str).collect())
            .collect()
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

fn walk_node<E>(
    node: &mut Node,
    path: &mut Vec<String>,
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
                        comments.last_mut().expect("pushed above").push(c.clone());
                        visit(Leaf::Comment(c), &Place { path, comments })?;
                    }
                    Item::Pair(key, value) => {
                        path.push(key.clone());
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
