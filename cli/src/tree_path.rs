//! sops' path syntax for `--extract`, `set` and `unset`: `["key"][0]["other"]`.

use enseal_sops::format::tree::{Item, Node};

use crate::exit::{self, Failure, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

pub fn parse(path: &str) -> Result<Vec<Step>> {
    let bad = |why: &str| {
        Failure::new(
            exit::INVALID_TREE_PATH,
            format!("invalid path {path:?}: {why} (expected e.g. '[\"key\"][0]')"),
        )
    };
    let mut steps = Vec::new();
    let mut rest = path.trim();
    while !rest.is_empty() {
        rest = rest.strip_prefix('[').ok_or_else(|| bad("expected ["))?;
        if let Some(after) = rest.strip_prefix('"').or_else(|| rest.strip_prefix('\'')) {
            let quote = rest.as_bytes()[0] as char;
            let mut key = String::new();
            let mut chars = after.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, e)) => key.push(e),
                        None => return Err(bad("unterminated escape")),
                    },
                    c if c == quote => {
                        end = Some(i + 1);
                        break;
                    }
                    c => key.push(c),
                }
            }
            let end = end.ok_or_else(|| bad("unterminated key"))?;
            rest = after[end..]
                .strip_prefix(']')
                .ok_or_else(|| bad("expected ] after key"))?;
            steps.push(Step::Key(key));
        } else {
            let close = rest.find(']').ok_or_else(|| bad("expected ]"))?;
            let index = rest[..close]
                .trim()
                .parse::<usize>()
                .map_err(|_| bad("an index must be a non-negative number"))?;
            steps.push(Step::Index(index));
            rest = &rest[close + 1..];
        }
        rest = rest.trim_start();
    }
    if steps.is_empty() {
        return Err(bad("empty path"));
    }
    Ok(steps)
}

fn describe(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|s| match s {
            Step::Key(k) => format!("[{k:?}]"),
            Step::Index(i) => format!("[{i}]"),
        })
        .collect()
}

fn not_found(steps: &[Step]) -> Failure {
    Failure::new(exit::GENERIC, format!("path {} not found", describe(steps)))
}

/// Sequence items that are values (comments are items of the tree but not addressable).
fn value_positions(items: &[Node]) -> Vec<usize> {
    items
        .iter()
        .enumerate()
        .filter(|(_, n)| !matches!(n, Node::Comment(_)))
        .map(|(i, _)| i)
        .collect()
}

pub fn get<'a>(root: &'a Node, steps: &[Step]) -> Result<&'a Node> {
    let mut node = root;
    for (i, step) in steps.iter().enumerate() {
        node = match (node, step) {
            (Node::Map(_), Step::Key(k)) => node.get(k),
            (Node::Seq(items), Step::Index(n)) => {
                value_positions(items).get(*n).map(|p| &items[*p])
            }
            _ => None,
        }
        .ok_or_else(|| not_found(&steps[..=i]))?;
    }
    Ok(node)
}

/// Sets the value at `steps`, creating missing mapping keys (and appending at index == len).
pub fn set(root: &mut Node, steps: &[Step], value: Node) -> Result<()> {
    let Some((last, parents)) = steps.split_last() else {
        return Err(not_found(steps));
    };
    let mut node = root;
    for (i, step) in parents.iter().enumerate() {
        let next_is_index = matches!(steps[i + 1], Step::Index(_));
        node = child_or_create(node, step, next_is_index).ok_or_else(|| not_found(&steps[..=i]))?;
    }
    match (node, last) {
        (Node::Map(items), Step::Key(k)) => {
            match items.iter_mut().find_map(|it| match it {
                Item::Pair(key, v) if key == k => Some(v),
                _ => None,
            }) {
                Some(slot) => *slot = value,
                None => items.push(Item::Pair(k.clone(), value)),
            }
            Ok(())
        }
        (Node::Seq(items), Step::Index(n)) => {
            let positions = value_positions(items);
            match positions.get(*n) {
                Some(p) => items[*p] = value,
                None if *n == positions.len() => items.push(value),
                None => return Err(not_found(steps)),
            }
            Ok(())
        }
        _ => Err(not_found(steps)),
    }
}

fn child_or_create<'a>(
    node: &'a mut Node,
    step: &Step,
    next_is_index: bool,
) -> Option<&'a mut Node> {
    let fresh = || {
        if next_is_index {
            Node::Seq(Vec::new())
        } else {
            Node::Map(Vec::new())
        }
    };
    match (node, step) {
        (Node::Map(items), Step::Key(k)) => {
            let pos = items
                .iter()
                .position(|it| matches!(it, Item::Pair(key, _) if key == k));
            let pos = match pos {
                Some(p) => p,
                None => {
                    items.push(Item::Pair(k.clone(), fresh()));
                    items.len() - 1
                }
            };
            match &mut items[pos] {
                Item::Pair(_, v) => Some(v),
                Item::Comment(_) => None,
            }
        }
        (Node::Seq(items), Step::Index(n)) => {
            let positions = value_positions(items);
            match positions.get(*n) {
                Some(p) => items.get_mut(*p),
                None if *n == positions.len() => {
                    items.push(fresh());
                    items.last_mut()
                }
                None => None,
            }
        }
        _ => None,
    }
}

/// Removes the value at `steps`; `Ok(false)` when it was not there.
pub fn unset(root: &mut Node, steps: &[Step]) -> Result<bool> {
    let Some((last, parents)) = steps.split_last() else {
        return Ok(false);
    };
    let mut node = root;
    for step in parents {
        node = match (node, step) {
            (n @ Node::Map(_), Step::Key(k)) => match n.get_mut(k) {
                Some(v) => v,
                None => return Ok(false),
            },
            (Node::Seq(items), Step::Index(i)) => match value_positions(items).get(*i).copied() {
                Some(p) => &mut items[p],
                None => return Ok(false),
            },
            _ => return Ok(false),
        };
    }
    Ok(match (node, last) {
        (n @ Node::Map(_), Step::Key(k)) => n.remove(k).is_some(),
        (Node::Seq(items), Step::Index(i)) => match value_positions(items).get(*i).copied() {
            Some(p) => {
                items.remove(p);
                true
            }
            None => false,
        },
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sops_paths() {
        assert_eq!(
            parse(r#"["a"][0]["b c"]"#).unwrap(),
            vec![
                Step::Key("a".into()),
                Step::Index(0),
                Step::Key("b c".into())
            ]
        );
        assert_eq!(parse("['x']").unwrap(), vec![Step::Key("x".into())]);
        assert!(parse(r#"["a""#).is_err());
        assert!(parse("a").is_err());
    }

    #[test]
    fn set_creates_missing_parents_and_unset_removes() {
        let mut root = Node::Map(vec![]);
        set(&mut root, &parse(r#"["a"]["b"]"#).unwrap(), Node::str("v")).unwrap();
        assert_eq!(
            get(&root, &parse(r#"["a"]["b"]"#).unwrap()).unwrap(),
            &Node::str("v")
        );
        assert!(unset(&mut root, &parse(r#"["a"]["b"]"#).unwrap()).unwrap());
        assert!(!unset(&mut root, &parse(r#"["a"]["b"]"#).unwrap()).unwrap());
    }
}
