//! Reading `.sops.yaml` the way Go's yaml.v3 decodes into sops' typed fields: type
//! mismatches and duplicate keys are collected as problems with their location.

use saphyr::{MarkedYamlOwned, ScalarStyle, YamlDataOwned, YamlLoader};

use super::error::{Location, Problem};

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
    parser.load(&mut loader, true).map_err(scan)?;
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
    match &node.data {
        YamlDataOwned::BadValue => true,
        YamlDataOwned::Representation(text, ScalarStyle::Plain, None) => {
            matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL")
        }
        _ => false,
    }
}

pub(crate) fn kind_name(node: &Node) -> &'static str {
    match &node.data {
        YamlDataOwned::Sequence(_) => "!!seq",
        YamlDataOwned::Mapping(_) => "!!map",
        _ if is_null(node) => "!!null",
        _ => match scalar(node) {
            Some((text, true)) if resolve_int(text).is_some() => "!!int",
            Some((text, true)) if resolve_float(text).is_some() => "!!float",
            Some((text, true)) if resolve_bool(text).is_some() => "!!bool",
            _ => "!!str",
        },
    }
}

/// What an untyped (Go `interface{}`) field holds, for the key lists that accept a string or a
/// list of strings.
pub(crate) fn is_string_valued(node: &Node) -> bool {
    kind_name(node) == "!!str"
}

fn resolve_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn resolve_int(text: &str) -> Option<i64> {
    let plain = text.replace('_', "");
    let (neg, digits) = match plain.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, plain.strip_prefix('+').unwrap_or(&plain)),
    };
    let (radix, digits) = if let Some(h) = digits.strip_prefix("0x") {
        (16, h)
    } else if let Some(o) = digits.strip_prefix("0o") {
        (8, o)
    } else if let Some(b) = digits.strip_prefix("0b") {
        (2, b)
    } else {
        (10, digits)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let value = i64::from_str_radix(digits, radix).ok()?;
    Some(if neg { -value } else { value })
}

fn resolve_float(text: &str) -> Option<f64> {
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    let ok = text.chars().any(|c| c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-' | '_'));
    if ok {
        text.replace('_', "").parse().ok()
    } else {
        None
    }
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
        if let Some((text, resolvable)) = scalar(node) {
            if resolvable {
                if let Some(b) = resolve_bool(text) {
                    return b;
                }
            }
            match text {
                "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => return true,
                "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => return false,
                _ => {}
            }
        }
        self.mismatch(node, "bool");
        false
    }

    /// A Go `int` field: plain integers (decimal, 0x, 0o, 0b) and integral floats.
    pub(crate) fn int(&mut self, node: &Node) -> Option<i64> {
        if is_null(node) {
            return None;
        }
        if let Some((text, true)) = scalar(node) {
            if let Some(i) = resolve_int(text) {
                return Some(i);
            }
            if let Some(f) = resolve_float(text) {
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    return Some(f as i64);
                }
            }
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
