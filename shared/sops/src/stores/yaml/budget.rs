//! Limits on what a YAML text may make the reader build, so that a small hostile file (one an
//! attacker slipped into a pull request) ends in an error rather than in an abort.
//!
//! - Aliases: nine lines of "billion laughs" (`b: &b [*a, *a, ...]`, each level ten times the
//!   one before) expand to 10^9 nodes. The rule is go-yaml v3's (decode.go,
//!   `allowedAliasRatio`), which sops 3.11 and 3.13 apply to the first document of every file
//!   they read (stores/yaml/store.go decodes it into a `map[string]interface{}` first): a
//!   document may draw up to 99% of its nodes from alias expansion while it has at most 400,000
//!   nodes, a share that falls to 10% at 4,000,000. A file sops reads therefore stays readable.
//! - Nesting: the tree walkers (MAC, encryption, the writers, `Drop` itself) recurse once per
//!   level, and a line of `- - - - ...` nests a block sequence per two bytes. go-yaml stops at
//!   10,000 levels (scannerc.go, `max_flow_level` and `max_indents`), which goroutine stacks
//!   grow to hold; a Rust thread's stack does not grow (2 MiB for a spawned thread), so the
//!   limit is the JSON store's, [`MAX_DEPTH`] levels, counted on the tree as expanded (an alias
//!   to a deep anchor nests as deep as the anchor).
//! - Anchored collections: the reader keeps a copy of every anchored collection for its aliases.
//!   Anchors nested in anchors (`&a1 [&a2 [&a3 [...]]]`) copy the inner ones again at each
//!   level, quadratic in the nesting without a single alias; those copies are counted too.
//!
//! The budget watches the events the parser gives, before the reader builds anything from them.

use std::collections::HashMap;

use saphyr_parser::Event;

/// Deepest nesting of collections read, the same as [`crate::stores::json::MAX_DEPTH`]. Real
/// files stay far below: Helm charts' values nest a dozen levels.
pub const MAX_DEPTH: usize = 512;

/// Nodes copied for anchored collections allowed whatever the document's size; beyond it, up to
/// [`ANCHOR_COPIES_PER_NODE`] copies per node read. A document's anchors copy each of its nodes
/// at most once unless anchors nest, so real files stay below either bound.
const ANCHOR_COPY_FLOOR: u64 = 1_000_000;
const ANCHOR_COPIES_PER_NODE: u64 = 8;

/// go-yaml's `alias_ratio_range_low` and `alias_ratio_range_high`.
const ALIAS_RATIO_RANGE_LOW: u64 = 400_000;
const ALIAS_RATIO_RANGE_HIGH: u64 = 4_000_000;

/// go-yaml's `allowedAliasRatio`: the share of a document's nodes that may come from aliases.
fn allowed_alias_ratio(decoded: u64) -> f64 {
    if decoded <= ALIAS_RATIO_RANGE_LOW {
        0.99
    } else if decoded >= ALIAS_RATIO_RANGE_HIGH {
        0.10
    } else {
        let range = (ALIAS_RATIO_RANGE_HIGH - ALIAS_RATIO_RANGE_LOW) as f64;
        0.99 - 0.89 * ((decoded - ALIAS_RATIO_RANGE_LOW) as f64 / range)
    }
}

/// Which limit a text went past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exceeded {
    /// Collections nested deeper than [`MAX_DEPTH`], as written.
    Depth,
    /// An alias whose anchored node, put in its place, nests deeper than [`MAX_DEPTH`].
    AliasDepth,
    /// Aliases expand to more nodes than go-yaml allows.
    Aliases,
    /// Anchored collections nested in one another copy too many nodes.
    AnchorCopies,
}

impl Exceeded {
    /// What the reader says: the limit, never anything of the text.
    pub fn message(self) -> String {
        match self {
            Exceeded::Depth => format!("nesting deeper than {MAX_DEPTH} levels"),
            Exceeded::AliasDepth => {
                format!("an alias expands to nesting deeper than {MAX_DEPTH} levels")
            }
            Exceeded::Aliases => {
                "excessive aliasing: aliases expand to too many nodes for the document's size \
                 (go-yaml's rule, which sops applies too)"
                    .to_string()
            }
            Exceeded::AnchorCopies => {
                "anchored collections nested in one another too many times".to_string()
            }
        }
    }
}

/// An anchored node as the budget remembers it: how many nodes it stands for (its aliases
/// expanded) and how deep its collections nest (0 for a scalar).
#[derive(Clone, Copy)]
struct Anchored {
    nodes: u64,
    depth: usize,
}

/// A collection being read: its anchor, the node count before it, how deep what it holds nests.
struct Open {
    anchor: usize,
    decoded_before: u64,
    inner_depth: usize,
}

#[derive(Default)]
pub struct Budget {
    /// Nodes of the current document, aliases expanded (go-yaml's `decodeCount`).
    decoded: u64,
    /// Of those, the nodes that alias expansion produced (go-yaml's `aliasCount`).
    aliased: u64,
    /// Nodes copied for anchored collections in the current document.
    anchor_copies: u64,
    open: Vec<Open>,
    anchors: HashMap<usize, Anchored>,
}

impl Budget {
    /// Accounts for one event; an error when it goes past a limit. Events of a text the reader
    /// refuses anyway (an alias to an unknown anchor, an unbalanced end) pass: the reader says
    /// what is wrong with them.
    pub fn event(&mut self, event: &Event) -> Result<(), Exceeded> {
        match event {
            // go-yaml decodes document by document, with a new count each time.
            Event::DocumentStart(_) => {
                self.decoded = 0;
                self.aliased = 0;
                self.anchor_copies = 0;
                self.open.clear();
            }
            Event::Scalar(_, _, anchor, _) => {
                self.decoded += 1;
                if *anchor != 0 {
                    self.anchors
                        .insert(*anchor, Anchored { nodes: 1, depth: 0 });
                }
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                if self.open.len() >= MAX_DEPTH {
                    return Err(Exceeded::Depth);
                }
                self.open.push(Open {
                    anchor: *anchor,
                    decoded_before: self.decoded,
                    inner_depth: 0,
                });
                self.decoded += 1;
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let Some(done) = self.open.pop() else {
                    return Ok(());
                };
                let depth = done.inner_depth + 1;
                self.nested(depth);
                if done.anchor != 0 {
                    let nodes = self.decoded - done.decoded_before;
                    self.anchor_copies += nodes;
                    let allowed = ANCHOR_COPY_FLOOR.max(ANCHOR_COPIES_PER_NODE * self.decoded);
                    if self.anchor_copies > allowed {
                        return Err(Exceeded::AnchorCopies);
                    }
                    self.anchors.insert(done.anchor, Anchored { nodes, depth });
                }
            }
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(id).copied() else {
                    return Ok(());
                };
                if self.open.len() + target.depth > MAX_DEPTH {
                    return Err(Exceeded::AliasDepth);
                }
                self.nested(target.depth);
                // The alias node itself counts, outside the expansion, as in go-yaml.
                self.decoded += 1 + target.nodes;
                self.aliased += target.nodes;
                // go-yaml checks after every node of an expansion; the share only grows
                // during one, and the allowed share only falls, so checking at its end refuses
                // the same documents.
                if self.aliased > 100
                    && self.decoded > 1000
                    && self.aliased as f64 / self.decoded as f64 > allowed_alias_ratio(self.decoded)
                {
                    return Err(Exceeded::Aliases);
                }
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    /// Notes that the innermost open collection holds something nesting `depth` levels.
    fn nested(&mut self, depth: usize) {
        if let Some(parent) = self.open.last_mut() {
            parent.inner_depth = parent.inner_depth.max(depth);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use saphyr_parser::Parser;

    /// The first limit `text` goes past, if any.
    fn check(text: &str) -> Option<Exceeded> {
        let mut budget = Budget::default();
        for ev in Parser::new_from_str(text) {
            let (event, _) = ev.ok()?;
            if let Err(e) = budget.event(&event) {
                return Some(e);
            }
        }
        None
    }

    /// `levels` levels of "billion laughs", each a list of ten aliases to the level before.
    pub(crate) fn laughs(levels: usize) -> String {
        let mut s = String::from("a0: &a0 lol\n");
        for i in 1..=levels {
            let items = vec![format!("*a{}", i - 1); 10].join(", ");
            s.push_str(&format!("a{i}: &a{i} [{items}]\n"));
        }
        s
    }

    #[test]
    fn billion_laughs_is_refused_and_a_few_levels_are_not() {
        assert_eq!(check(&laughs(9)), Some(Exceeded::Aliases));
        // Three levels: 1,110 nodes from 40 aliases in a 150-byte file. go-yaml reads it.
        assert_eq!(check(&laughs(3)), None);
    }

    #[test]
    fn the_alias_rule_is_go_yamls() {
        // 1,000 nodes of content, then aliases to it: up to 99% of a small document may be
        // aliased, 10% of a very large one.
        assert!(allowed_alias_ratio(1_000) == 0.99);
        assert!(allowed_alias_ratio(ALIAS_RATIO_RANGE_HIGH) == 0.10);
        let mid = allowed_alias_ratio((ALIAS_RATIO_RANGE_LOW + ALIAS_RATIO_RANGE_HIGH) / 2);
        assert!((mid - 0.545).abs() < 1e-9, "{mid}");
        // An anchor of 100 scalars, then a list of aliases to it: each alias adds 102 nodes,
        // 101 of them aliased. 3,000 aliases (306,000 nodes, 99.0% aliased) are within the
        // rule, 4,000 (408,000 nodes, where 98.8% are allowed) are not: sops 3.13 encrypts the
        // first and refuses the second.
        let aliases = |n: usize| {
            let items = (0..100).map(|i| format!("v{i}")).collect::<Vec<_>>();
            format!(
                "base: &b [{}]\nk: [{}]\n",
                items.join(", "),
                vec!["*b"; n].join(", ")
            )
        };
        assert_eq!(check(&aliases(3000)), None);
        let text = aliases(4000);
        assert_eq!(check(&text), Some(Exceeded::Aliases));
    }

    #[test]
    fn nesting_is_limited_as_written_and_through_aliases() {
        let block = |n: usize| format!("a:\n{}x\n", "- ".repeat(n));
        // The root mapping is one level.
        assert_eq!(check(&block(MAX_DEPTH - 1)), None);
        assert_eq!(check(&block(MAX_DEPTH)), Some(Exceeded::Depth));
        assert_eq!(check(&block(100_000)), Some(Exceeded::Depth));
        // Each anchor is within the limit, the one put into the other is not.
        let half = MAX_DEPTH / 2 + 1;
        let text = format!(
            "a: &a\n{}x\nb:\n{}*a\n",
            "- ".repeat(half),
            "- ".repeat(half)
        );
        assert_eq!(check(&text), Some(Exceeded::AliasDepth));
    }

    #[test]
    fn nested_anchors_are_counted_once_per_copy() {
        // Lines of 200 anchored lists, one in another, around 2,000 scalars: every anchor
        // copies the scalars again, 400,000 copies per 5 KB line.
        let line = |k: usize| {
            let mut s = format!("k{k}: ");
            for i in 0..200 {
                s.push_str(&format!("&x{k}_{i} ["));
            }
            s.push_str(&["1"; 2000].join(","));
            s.push_str(&"]".repeat(200));
            s.push('\n');
            s
        };
        assert_eq!(check(&(line(0) + &line(1))), None);
        assert_eq!(
            check(&(line(0) + &line(1) + &line(2))),
            Some(Exceeded::AnchorCopies)
        );
    }

    /// A file at the limit goes through every walk (parse, encrypt with the MAC, write back,
    /// decrypt, write as YAML and JSON from scratch, drop) on a spawned thread's 2 MiB stack,
    /// as the controller's workers have: the limit is low enough for all of them.
    #[test]
    fn a_file_nested_to_the_limit_goes_through_every_walk_on_a_small_stack() {
        use crate::crypto::data_key::DataKey;
        use crate::crypto::values::{decrypt_tree, encrypt_tree, OpenOptions};
        use crate::format::crypt_rule::CryptRule;
        use crate::format::metadata::{KeyGroup, Metadata};
        use crate::stores::{json::JsonStore, yaml::YamlStore, Store, WriteOptions};

        let deep = MAX_DEPTH - 1;
        let mut text = format!("list:\n{}secret\nmap:\n", "- ".repeat(deep));
        for i in 0..deep {
            text.push_str(&format!("{}k{i}:\n", " ".repeat(i + 1)));
        }
        text.push_str(&format!("{}secret\n", " ".repeat(deep + 1)));
        let run = move || {
            let parsed = YamlStore.parse(text.as_bytes()).expect("parse");
            let mut tree = parsed.tree.clone();
            let key = DataKey::generate();
            let mut m = Metadata::new(vec![KeyGroup::default()], CryptRule::default());
            encrypt_tree(&mut tree, &key, &mut m, None).expect("encrypt");
            let options = WriteOptions::default();
            let enc = YamlStore
                .write(&tree, None, Some(&parsed), &options)
                .expect("write");
            let reread = YamlStore.parse(&enc).expect("parse encrypted");
            let mut back = reread.tree.clone();
            let (_, mac) =
                decrypt_tree(&mut back, &key, &m, &OpenOptions::default()).expect("decrypt");
            mac.verify().expect("mac");
            let plain = YamlStore
                .write(&back, None, Some(&reread), &options)
                .expect("write");
            assert_eq!(plain, text.as_bytes());
            YamlStore
                .write(&back, None, None, &options)
                .expect("canonical yaml");
            let json = JsonStore.write(&back, None, None, &options).expect("json");
            JsonStore.parse(&json).expect("json parse");
        };
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(run)
            .expect("thread")
            .join()
            .expect("no overflow");
    }
}
