//! Reading `.sops.yaml` the way Go's yaml.v3 decodes into sops' typed fields: type
//! mismatches and duplicate keys are collected as problems with their location. Scalars are
//! typed by [`crate::format::resolve`], the resolver the YAML store uses for file values, so that
//! `010` is 8 and `0X1F` is 31 in both, as go-yaml reads them.

use saphyr::{MarkedYamlOwned, ScalarStyle, YamlDataOwned, YamlLoader};
use saphyr_parser::SpannedEventReceiver;

use super::error::{Location, Problem};
use crate::format::resolve::{self, Resolved};
use crate::stores::yaml::budget::Budget;

pub(crate) type Node = MarkedYamlOwned;

pub(crate) fn load_yaml(text: &str) -> Result<Vec<Node>, Problem> {
    let mut parser = saphyr_parser::Parser::new_from_str(text);
    let mut loader: YamlLoader<Node> = YamlLoader::default();
    // Raw scalars: the config decides what a scalar means from the field it fills, as Go does.
    loader.early_parse(false);
    let scan = |e: saphyr::ScanError| Problem {
        at: Location {
            line: e.marker().line(),
            column: e.marker().col() + 1,
        },
        message: e.info().to_owned(),
    };
    // The events are fed to the loader one by one rather than through `Parser::load`, which
    // recurses once per nesting level (a 100 KB `.sops.yaml` of `- - - ...` overflowed the
    // stack and aborted every command, the pre-commit hook among them); the YAML store's
    // budget bounds nesting and alias expansion before the loader builds anything.
    let mut budget = Budget::default();
    for next in &mut parser {
        let (event, span) = next.map_err(scan)?;
        if let Err(exceeded) = budget.event(&event) {
            return Err(Problem {
                at: Location {
                    line: span.start.line(),
                    column: span.start.col() + 1,
                },
                message: exceeded.message(),
            });
        }
        loader.on_event(event, span);
    }
    if let Some(e) = loader.error() {
        return Err(scan(e.clone()));
    }
    Ok(loader.into_documents())
}

pub(crate) fn location(node: &Node) -> Location {
    Location {
        line: node.span.start.line(),
        column: node.span.start.col() + 1,
    }
}

/// A scalar's text and whether it is plain and untagged (so its type is resolved from its
/// text, as yaml.v3 does for untyped fields). `None` for collections.
pub(crate) fn scalar(node: &Node) -> Option<(&str, bool)> {
    match &node.data {
        YamlDataOwned::Representation(text, style, tag) => {
            let resolvable = *style == ScalarStyle::Plain && tag.is_none();
            Some((text.as_str(), resolvable))
        }
        _ => None,
    }
}

pub(crate) fn is_null(node: &Node) -> bool {
    matches!(node.data, YamlDataOwned::BadValue) || resolved(node) == Some(Resolved::Null)
}

/// What go-yaml's resolver makes of a scalar node (`None` for collections): a plain untagged
/// scalar by its text, a tagged one by its tag, a quoted one is a string.
fn resolved(node: &Node) -> Option<Resolved> {
    let YamlDataOwned::Representation(text, style, tag) = &node.data else {
        return None;
    };
    Some(match tag {
        Some(t) if t.handle == "!!" || t.handle == "tag:yaml.org,2002:" => {
            // go-yaml fails the whole decode on `!!int abc`; here it stays a string, which the
            // typed field then refuses with its location.
            resolve::resolve_tagged(&t.suffix, text).unwrap_or(Resolved::Str)
        }
        Some(_) => Resolved::Str,
        None if *style == ScalarStyle::Plain => resolve::resolve_plain(text),
        None => Resolved::Str,
    })
}

pub(crate) fn kind_name(node: &Node) -> &'static str {
    match &node.data {
        YamlDataOwned::Sequence(_) => "!!seq",
        YamlDataOwned::Mapping(_) => "!!map",
        _ if is_null(node) => "!!null",
        _ => resolved(node).map_or("!!str", Resolved::tag),
    }
}

/// What an untyped (Go `interface{}`) field holds, for the key lists that accept a string or a
/// list of strings.
pub(crate) fn is_string_valued(node: &Node) -> bool {
    kind_name(node) == "!!str"
}

/// Collects problems as it goes, like yaml.v3's "unmarshal errors" list.
#[derive(Default)]
pub(crate) struct Decoder {
    pub(crate) problems: Vec<Problem>,
    pub(super) unknown: Vec<(String, Location)>,
}

impl Decoder {
    pub(crate) fn problem(&mut self, node: &Node, message: String) {
        self.problems.push(Problem {
            at: location(node),
            message,
        });
    }

    fn mismatch(&mut self, node: &Node, want: &str) {
        let shown = match scalar(node) {
            Some((text, _)) => format!("{} `{}`", kind_name(node), abbreviate(text)),
            None => kind_name(node).to_owned(),
        };
        self.problem(node, format!("cannot unmarshal {shown} into {want}"));
    }

    pub(crate) fn unknown(&mut self, key: &str, value: &Node) {
        self.unknown.push((key.to_owned(), location(value)));
    }

    /// The entries of a mapping (null is an empty one), with `<<` merge keys applied: merged
    /// entries come first and explicit keys override them.
    pub(crate) fn fields<'a>(&mut self, node: &'a Node, what: &str) -> Vec<(&'a str, &'a Node)> {
        if is_null(node) {
            return Vec::new();
        }
        let YamlDataOwned::Mapping(map) = &node.data else {
            self.mismatch(node, what);
            return Vec::new();
        };
        let mut out: Vec<(&'a str, &'a Node)> = Vec::new();
        let mut explicit: Vec<(&'a str, &'a Node)> = Vec::new();
        for (k, v) in map {
            match scalar(k) {
                Some(("<<", true)) => {
                    let sources: Vec<&Node> = match &v.data {
                        YamlDataOwned::Sequence(items) => items.iter().collect(),
                        _ => vec![v],
                    };
                    for source in sources {
                        for (mk, mv) in self.fields(source, "merge key") {
                            out.retain(|(k, _)| *k != mk);
                            out.push((mk, mv));
                        }
                    }
                }
                Some((key, _)) => explicit.push((key, v)),
                None => self.problem(k, "mapping keys must be scalars".to_owned()),
            }
        }
        for (k, v) in explicit {
            out.retain(|(ok, _)| *ok != k);
            out.push((k, v));
        }
        out
    }

    pub(crate) fn seq<'a>(&mut self, node: &'a Node, what: &str) -> &'a [Node] {
        match &node.data {
            YamlDataOwned::Sequence(items) => items,
            _ if is_null(node) => &[],
            _ => {
                self.mismatch(node, &format!("[]{what}"));
                &[]
            }
        }
    }

    /// A Go `string` field: any scalar's text; null is unset.
    pub(crate) fn string(&mut self, node: &Node) -> Option<String> {
        if is_null(node) {
            return None;
        }
        match scalar(node) {
            Some((text, _)) => Some(text.to_owned()),
            None => {
                self.mismatch(node, "string");
                None
            }
        }
    }

    /// A Go `[]string` field: a list of scalars (a single string is an error, as in sops).
    pub(crate) fn strings(&mut self, node: &Node) -> Vec<String> {
        let items = self.seq(node, "string");
        items
            .iter()
            .filter_map(|item| {
                if is_null(item) {
                    Some(String::new())
                } else {
                    self.string(item)
                }
            })
            .collect()
    }

    /// A Go `bool` field: YAML booleans plus the YAML 1.1 words yaml.v3 accepts for typed bools.
    pub(crate) fn bool(&mut self, node: &Node) -> bool {
        if is_null(node) {
            return false;
        }
        // Typed bools also take the YAML 1.1 words, from any scalar that resolves to a string
        // (plain `yes` or quoted `'off'`), as yaml.v3's decoder does.
        match (resolved(node), scalar(node)) {
            (Some(Resolved::Bool(b)), _) => return b,
            (Some(Resolved::Str), Some((text, _))) => {
                if let Some(b) = resolve::old_bool(text) {
                    return b;
                }
            }
            _ => {}
        }
        self.mismatch(node, "bool");
        false
    }

    /// A Go `int` field: what go-yaml resolves as an integer that fits (`0x1F`, `0X1F`, `010`
    /// octal, `0o17`, `0b11`, `1_000`), or a float, truncated towards zero as Go's
    /// `int64(f)` does (`2.7` is 2).
    pub(crate) fn int(&mut self, node: &Node) -> Option<i64> {
        if is_null(node) {
            return None;
        }
        match resolved(node) {
            Some(Resolved::Int(i)) => {
                if let Ok(i) = i64::try_from(i) {
                    return Some(i);
                }
            }
            // go-yaml: `resolved <= math.MaxInt64` (NaN fails it), then `int64(resolved)`.
            Some(Resolved::Float(f)) if f <= i64::MAX as f64 => return Some(f as i64),
            _ => {}
        }
        self.mismatch(node, "int");
        None
    }
}

fn abbreviate(text: &str) -> String {
    if text.chars().count() > 10 {
        format!("{}...", text.chars().take(7).collect::<String>())
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::load_yaml;

    #[test]
    fn a_deeply_nested_config_is_an_error_not_a_stack_overflow() {
        // 200 KB of `- ` nests 100,000 block sequences; saphyr's own loader recursed per level.
        let text = format!(
            "creation_rules:\n  - key_groups:\n    {}x\n",
            "- ".repeat(100_000)
        );
        let problem = load_yaml(&text).expect_err("refused");
        assert_eq!(problem.at.line, 3);
        assert!(
            problem.message.contains("nesting deeper than 512"),
            "{problem}"
        );
        // Real configs nest a few levels, and so may a file far deeper than any of them.
        let fine = format!(
            "creation_rules:\n  - key_groups:\n    {}x\n",
            "- ".repeat(400)
        );
        assert!(load_yaml(&fine).is_ok());
    }

    #[test]
    fn billion_laughs_in_a_config_is_an_error() {
        let mut text = String::from("a0: &a0 lol\n");
        for i in 1..=9 {
            let items = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
        }
        text.push_str("creation_rules: [{age: x}]\n");
        let problem = load_yaml(&text).expect_err("refused");
        assert!(problem.message.contains("excessive aliasing"), "{problem}");
    }
}
