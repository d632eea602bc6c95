//! The functions a template can call: text/template's builtins (go/src/text/template/
//! funcs.go) and sprig v3.3.0's `GenericFuncMap` (github.com/Masterminds/sprig/v3
//! functions.go) minus `env`, `expandenv` and `getHostByName`, which Sealed Secrets deletes
//! (pkg/apis/sealedsecrets/v1alpha1/sealedsecret_expansion.go `init`).
//!
//! Every sprig name is known, so that a template is refused for the right reason: a name that
//! is not in the map is "not defined" (as in Go), a sprig function enseal does not implement
//! is reported as such rather than silently rendered differently. Errors name types, never
//! values: a value may be a secret.

use std::collections::BTreeMap;
use std::rc::Rc;

use base64::Engine;
use sha2::Digest;
use zeroize::Zeroizing;

use super::value::{go_quote, Bytes, Value};

const BUILTINS: [&str; 19] = [
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf",
    "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
];

/// sprig v3.3.0 genericMap, without the three Sealed Secrets deletes.
const SPRIG: &[&str] = &[
    "hello",
    "ago",
    "date",
    "date_in_zone",
    "date_modify",
    "dateInZone",
    "dateModify",
    "duration",
    "durationRound",
    "htmlDate",
    "htmlDateInZone",
    "must_date_modify",
    "mustDateModify",
    "mustToDate",
    "now",
    "toDate",
    "unixEpoch",
    "abbrev",
    "abbrevboth",
    "trunc",
    "trim",
    "upper",
    "lower",
    "title",
    "untitle",
    "substr",
    "repeat",
    "trimall",
    "trimAll",
    "trimSuffix",
    "trimPrefix",
    "nospace",
    "initials",
    "randAlphaNum",
    "randAlpha",
    "randAscii",
    "randNumeric",
    "swapcase",
    "shuffle",
    "snakecase",
    "camelcase",
    "kebabcase",
    "wrap",
    "wrapWith",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "quote",
    "squote",
    "cat",
    "indent",
    "nindent",
    "replace",
    "plural",
    "sha1sum",
    "sha256sum",
    "sha512sum",
    "adler32sum",
    "toString",
    "atoi",
    "int64",
    "int",
    "float64",
    "seq",
    "toDecimal",
    "split",
    "splitList",
    "splitn",
    "toStrings",
    "until",
    "untilStep",
    "add1",
    "add",
    "sub",
    "div",
    "mod",
    "mul",
    "randInt",
    "add1f",
    "addf",
    "subf",
    "divf",
    "mulf",
    "biggest",
    "max",
    "min",
    "maxf",
    "minf",
    "ceil",
    "floor",
    "round",
    "join",
    "sortAlpha",
    "default",
    "empty",
    "coalesce",
    "all",
    "any",
    "compact",
    "mustCompact",
    "fromJson",
    "toJson",
    "toPrettyJson",
    "toRawJson",
    "mustFromJson",
    "mustToJson",
    "mustToPrettyJson",
    "mustToRawJson",
    "ternary",
    "deepCopy",
    "mustDeepCopy",
    "typeOf",
    "typeIs",
    "typeIsLike",
    "kindOf",
    "kindIs",
    "deepEqual",
    "base",
    "dir",
    "clean",
    "ext",
    "isAbs",
    "osBase",
    "osClean",
    "osDir",
    "osExt",
    "osIsAbs",
    "b64enc",
    "b64dec",
    "b32enc",
    "b32dec",
    "tuple",
    "list",
    "dict",
    "get",
    "set",
    "unset",
    "hasKey",
    "pluck",
    "keys",
    "pick",
    "omit",
    "merge",
    "mergeOverwrite",
    "mustMerge",
    "mustMergeOverwrite",
    "values",
    "append",
    "push",
    "mustAppend",
    "mustPush",
    "prepend",
    "mustPrepend",
    "first",
    "mustFirst",
    "rest",
    "mustRest",
    "last",
    "mustLast",
    "initial",
    "mustInitial",
    "reverse",
    "mustReverse",
    "uniq",
    "mustUniq",
    "without",
    "mustWithout",
    "has",
    "mustHas",
    "slice",
    "mustSlice",
    "concat",
    "dig",
    "chunk",
    "mustChunk",
    "bcrypt",
    "htpasswd",
    "genPrivateKey",
    "derivePassword",
    "buildCustomCert",
    "genCA",
    "genCAWithKey",
    "genSelfSignedCert",
    "genSelfSignedCertWithKey",
    "genSignedCert",
    "genSignedCertWithKey",
    "encryptAES",
    "decryptAES",
    "randBytes",
    "uuidv4",
    "semver",
    "semverCompare",
    "fail",
    "regexMatch",
    "mustRegexMatch",
    "regexFindAll",
    "mustRegexFindAll",
    "regexFind",
    "mustRegexFind",
    "regexReplaceAll",
    "mustRegexReplaceAll",
    "regexReplaceAllLiteral",
    "mustRegexReplaceAllLiteral",
    "regexSplit",
    "mustRegexSplit",
    "regexQuoteMeta",
    "urlParse",
    "urlJoin",
];

const IMPLEMENTED: &[&str] = &[
    "and",
    "html",
    "index",
    "js",
    "len",
    "not",
    "or",
    "print",
    "printf",
    "println",
    "urlquery",
    "eq",
    "ge",
    "gt",
    "le",
    "lt",
    "ne",
    "hello",
    "trunc",
    "trim",
    "upper",
    "lower",
    "title",
    "untitle",
    "substr",
    "repeat",
    "trimall",
    "trimAll",
    "trimSuffix",
    "trimPrefix",
    "nospace",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "quote",
    "squote",
    "cat",
    "indent",
    "nindent",
    "replace",
    "plural",
    "sha1sum",
    "sha256sum",
    "sha512sum",
    "toString",
    "atoi",
    "int64",
    "int",
    "float64",
    "split",
    "splitList",
    "splitn",
    "toStrings",
    "add1",
    "add",
    "sub",
    "div",
    "mod",
    "mul",
    "biggest",
    "max",
    "min",
    "join",
    "sortAlpha",
    "default",
    "empty",
    "coalesce",
    "all",
    "any",
    "compact",
    "mustCompact",
    "fromJson",
    "mustFromJson",
    "toJson",
    "toPrettyJson",
    "toRawJson",
    "mustToJson",
    "mustToPrettyJson",
    "mustToRawJson",
    "ternary",
    "b64enc",
    "b64dec",
    "b32enc",
    "b32dec",
    "tuple",
    "list",
    "dict",
    "get",
    "set",
    "unset",
    "hasKey",
    "pluck",
    "keys",
    "pick",
    "omit",
    "values",
    "append",
    "push",
    "mustAppend",
    "mustPush",
    "prepend",
    "mustPrepend",
    "first",
    "mustFirst",
    "rest",
    "mustRest",
    "last",
    "mustLast",
    "initial",
    "mustInitial",
    "reverse",
    "mustReverse",
    "uniq",
    "mustUniq",
    "has",
    "mustHas",
    "concat",
    "fail",
    "kindIs",
    "kindOf",
    "typeOf",
    "base",
    "dir",
    "ext",
];

pub(super) fn exists(name: &str) -> bool {
    BUILTINS.contains(&name) || SPRIG.contains(&name)
}

pub(super) fn implemented(name: &str) -> bool {
    IMPLEMENTED.contains(&name)
}

/// Whether a `nil` literal may be passed (parameters of interface type).
pub(super) fn takes_nil(name: &str) -> bool {
    !matches!(
        name,
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" | "len" | "index" | "not"
    )
}

type R = Result<Value, String>;

/// The arguments of one call, converted as exec.go `validateType` converts them.
struct Args(Vec<Value>);

impl Args {
    fn arity(&self, want: usize, variadic: bool, name: &str) -> Result<(), String> {
        let got = self.0.len();
        if (variadic && got < want) || (!variadic && got != want) {
            let least = if variadic { "at least " } else { "" };
            let _ = name;
            return Err(format!(
                "wrong number of args: want {least}{want} got {got}"
            ));
        }
        Ok(())
    }
    /// A `string` parameter: a missing value is "invalid", another type "wrong type".
    fn str(&self, i: usize) -> Result<Bytes, String> {
        match &self.0[i] {
            Value::Str(s) => Ok(s.clone()),
            Value::Missing => Err("invalid value; expected string".into()),
            other => Err(format!(
                "wrong type for value; expected string; got {}",
                other.type_name()
            )),
        }
    }
    fn text(&self, i: usize) -> Result<Zeroizing<String>, String> {
        Ok(Zeroizing::new(
            String::from_utf8_lossy(&self.str(i)?).into_owned(),
        ))
    }
    fn int(&self, i: usize) -> Result<i64, String> {
        match &self.0[i] {
            Value::Int(n) => Ok(*n),
            Value::Missing => Err("invalid value; expected int".into()),
            other => Err(format!(
                "wrong type for value; expected int; got {}",
                other.type_name()
            )),
        }
    }
    fn bool(&self, i: usize) -> Result<bool, String> {
        match &self.0[i] {
            Value::Bool(b) => Ok(*b),
            Value::Missing => Err("invalid value; expected bool".into()),
            other => Err(format!(
                "wrong type for value; expected bool; got {}",
                other.type_name()
            )),
        }
    }
    /// An `interface{}` parameter: a missing value arrives as nil.
    fn any(&self, i: usize) -> Value {
        match &self.0[i] {
            Value::Missing => Value::Nil,
            v => v.clone(),
        }
    }
    /// A `map[string]interface{}` parameter (sprig's dict functions).
    fn dict(&self, i: usize) -> Result<Value, String> {
        match &self.0[i] {
            v @ Value::Map { strings: false, .. } => Ok(v.clone()),
            Value::Missing | Value::Nil => Ok(Value::map(BTreeMap::new(), false)),
            other => Err(format!(
                "wrong type for value; expected map[string]interface {{}}; got {}",
                other.type_name()
            )),
        }
    }
}

fn s(b: impl Into<Vec<u8>>) -> Value {
    Value::str(b)
}

fn list(v: Vec<Value>) -> Value {
    Value::List(Rc::new(v))
}

fn nil_to_missing_list(v: &Value) -> Result<Vec<Value>, String> {
    match v {
        Value::List(l) => Ok(l.as_ref().clone()),
        Value::Nil | Value::Missing => Ok(Vec::new()),
        other => Err(format!("Cannot find first on type {}", other.type_name())),
    }
}

/// Go's unicode.ToUpper/ToLower rune by rune (a rune without a one-rune mapping stays).
fn map_case(s: &str, upper: bool) -> String {
    s.chars()
        .map(|c| {
            let mut m: Vec<char> = if upper {
                c.to_uppercase().collect()
            } else {
                c.to_lowercase().collect()
            };
            if m.len() == 1 {
                m.pop().unwrap()
            } else {
                c
            }
        })
        .collect()
}

/// strings.Title: the first letter of each word upper-cased (title case), words separated by
/// anything but letters, digits and `_` (strings.go `isSeparator`).
fn title(s: &str) -> String {
    let mut prev_sep = true;
    s.chars()
        .map(|c| {
            let sep = if c.is_ascii() {
                !(c.is_ascii_alphanumeric() || c == '_')
            } else {
                c.is_whitespace()
            };
            let out = if prev_sep {
                map_case(&c.to_string(), true)
            } else {
                c.to_string()
            };
            prev_sep = sep;
            out
        })
        .collect()
}

/// spf13/cast v1.7.0 `ToInt64E`, which sprig's arithmetic uses (errors become 0).
fn to_int64(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => {
            let t = String::from_utf8_lossy(s);
            // cast trims a ".0…" decimal part, then strconv.ParseInt(s, 0, 0).
            let t = match t.split_once('.') {
                Some((int, frac)) if frac.bytes().all(|b| b == b'0') => int.to_string(),
                _ => t.into_owned(),
            };
            parse_int_base0(&t).unwrap_or(0)
        }
        _ => 0,
    }
}

fn parse_int_base0(t: &str) -> Option<i64> {
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let body = body.replace('_', "");
    let lower = body.to_ascii_lowercase();
    let v = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()?
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()?
    } else if lower.len() > 1 && lower.starts_with('0') {
        i64::from_str_radix(&lower[1..], 8).ok()?
    } else {
        if lower.is_empty() || !lower.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        lower.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

fn to_float64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => String::from_utf8_lossy(s).parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// sprig `empty`.
fn empty(v: &Value) -> bool {
    !v.truth()
}

/// sprig `strslice`: a list's non-nil elements as strings.
fn strslice(v: &Value) -> Vec<Bytes> {
    match v {
        Value::List(l) => l
            .iter()
            .filter(|v| !matches!(v, Value::Nil | Value::Missing))
            .map(|v| v.strval())
            .collect(),
        Value::Nil | Value::Missing => Vec::new(),
        other => vec![other.strval()],
    }
}

fn join_bytes(parts: &[Bytes], sep: &[u8]) -> Bytes {
    let mut out = Zeroizing::new(Vec::new());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(sep);
        }
        out.extend_from_slice(p);
    }
    out
}

/// text/template `basicKind` classes for comparisons.
#[derive(PartialEq)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
    Invalid,
    Other,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::Str,
        Value::Missing => Kind::Invalid,
        _ => Kind::Other,
    }
}

/// funcs.go `eq`: true if the first argument equals any of the others.
fn eq(args: &[Value]) -> Result<bool, String> {
    if args.len() < 2 {
        return Err("missing argument for comparison".into());
    }
    let a = &args[0];
    for b in &args[1..] {
        let (ka, kb) = (kind(a), kind(b));
        if ka != kb {
            if ka != Kind::Invalid && kb != Kind::Invalid {
                return Err("incompatible types for comparison".into());
            }
            continue;
        }
        let truth = match (a, b) {
            (Value::Bool(x), Value::Bool(y)) => x == y,
            (Value::Int(x), Value::Int(y)) => x == y,
            (Value::Float(x), Value::Float(y)) => x == y,
            (Value::Str(x), Value::Str(y)) => x == y,
            _ => return Err("non-comparable types".into()),
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

/// funcs.go `lt`.
fn lt(a: &Value, b: &Value) -> Result<bool, String> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x < y),
        (Value::Float(x), Value::Float(y)) => Ok(x < y),
        (Value::Str(x), Value::Str(y)) => Ok(x.as_slice() < y.as_slice()),
        (Value::Bool(_), _) | (_, Value::Bool(_)) => Err("invalid type for comparison".into()),
        _ if kind(a) != kind(b) => Err("incompatible types for comparison".into()),
        _ => Err("invalid type for comparison".into()),
    }
}

/// fmt.Sprint: a space between operands when neither is a string.
fn sprint(args: &[Value], out: &mut Vec<u8>) {
    for (i, v) in args.iter().enumerate() {
        if i > 0 && !matches!(v, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
            out.push(b' ');
        }
        v.print(out);
    }
}

/// Arguments of `...interface{}`: missing values arrive as nil.
fn interfaces(args: Vec<Value>) -> Vec<Value> {
    args.into_iter()
        .map(|v| match v {
            Value::Missing => Value::Nil,
            v => v,
        })
        .collect()
}

pub(super) fn call(name: &str, vals: Vec<Value>) -> R {
    let a = Args(vals);
    let n = a.0.len();
    Ok(match name {
        // --- text/template builtins ---
        "not" => {
            a.arity(1, false, name)?;
            Value::Bool(!a.0[0].truth())
        }
        "len" => {
            a.arity(1, false, name)?;
            Value::Int(match &a.0[0] {
                Value::Str(s) => s.len(),
                Value::List(l) => l.len(),
                Value::Map { map, .. } => map.borrow().len(),
                Value::Missing => {
                    return Err("reflect: call of reflect.Value.Type on zero Value".into())
                }
                other => return Err(format!("len of type {}", other.type_name())),
            } as i64)
        }
        "index" => {
            a.arity(1, true, name)?;
            let mut item = a.0[0].clone();
            for key in &a.0[1..] {
                item = match (&item, key) {
                    (Value::Map { map, strings }, Value::Str(k)) => {
                        let k = String::from_utf8_lossy(k);
                        match map.borrow().get(k.as_ref()) {
                            Some(v) => v.clone(),
                            // The zero value of the element type.
                            None if *strings => s(""),
                            None => Value::Nil,
                        }
                    }
                    (Value::Map { .. }, other) => {
                        return Err(format!(
                            "value has type {}; should be string",
                            other.type_name()
                        ))
                    }
                    (Value::List(l), Value::Int(i)) => {
                        match usize::try_from(*i).ok().and_then(|i| l.get(i)) {
                            Some(v) => v.clone(),
                            None => return Err(format!("index out of range: {i}")),
                        }
                    }
                    (Value::Str(st), Value::Int(i)) => {
                        match usize::try_from(*i).ok().and_then(|i| st.get(i)) {
                            Some(b) => Value::Int(i64::from(*b)),
                            None => return Err(format!("index out of range: {i}")),
                        }
                    }
                    (Value::Missing | Value::Nil, _) => return Err("index of untyped nil".into()),
                    (other, _) => {
                        return Err(format!("can't index item of type {}", other.type_name()))
                    }
                };
            }
            item
        }
        "eq" => Value::Bool(eq(&a.0)?),
        "ne" => {
            a.arity(2, false, name)?;
            Value::Bool(!eq(&a.0)?)
        }
        "lt" | "le" | "gt" | "ge" => {
            a.arity(2, false, name)?;
            let (x, y) = (&a.0[0], &a.0[1]);
            Value::Bool(match name {
                "lt" => lt(x, y)?,
                "le" => lt(x, y)? || eq(&a.0)?,
                "gt" => !lt(x, y)? && !eq(&a.0)?,
                _ => !lt(x, y)?,
            })
        }
        "print" | "println" => {
            let args = interfaces(a.0);
            let mut out = Zeroizing::new(Vec::new());
            if name == "print" {
                sprint(&args, &mut out);
            } else {
                for (i, v) in args.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    v.print(&mut out);
                }
                out.push(b'\n');
            }
            Value::Str(out)
        }
        "printf" => {
            a.arity(1, true, name)?;
            let format = a.str(0)?;
            let args = interfaces(a.0[1..].to_vec());
            Value::Str(super::printf::sprintf(&format, &args))
        }
        "urlquery" | "html" | "js" => {
            let args = interfaces(a.0);
            // funcs.go `evalArgs`: one string argument as it is, else fmt.Sprint.
            let text = match args.as_slice() {
                [Value::Str(st)] => st.clone(),
                _ => {
                    let mut out = Zeroizing::new(Vec::new());
                    sprint(&args, &mut out);
                    out
                }
            };
            Value::Str(match name {
                "urlquery" => query_escape(&text),
                "html" => html_escape(&text),
                _ => js_escape(&text),
            })
        }
        // --- sprig: strings ---
        "hello" => s("Hello!"),
        "upper" | "lower" => {
            a.arity(1, false, name)?;
            s(map_case(&a.text(0)?, name == "upper"))
        }
        "title" => {
            a.arity(1, false, name)?;
            s(title(&a.text(0)?))
        }
        "untitle" => {
            a.arity(1, false, name)?;
            let t = a.text(0)?;
            let mut prev_space = true;
            s(t.chars()
                .map(|c| {
                    let out = if prev_space {
                        map_case(&c.to_string(), false)
                    } else {
                        c.to_string()
                    };
                    prev_space = c.is_whitespace();
                    out
                })
                .collect::<String>())
        }
        "trim" => {
            a.arity(1, false, name)?;
            s(a.text(0)?.trim())
        }
        "trimAll" | "trimall" => {
            a.arity(2, false, name)?;
            let cut: Vec<char> = a.text(0)?.chars().collect();
            s(a.text(1)?.trim_matches(|c| cut.contains(&c)))
        }
        "trimPrefix" | "trimSuffix" => {
            a.arity(2, false, name)?;
            let (affix, st) = (a.str(0)?, a.str(1)?);
            let out = if name == "trimPrefix" {
                st.strip_prefix(affix.as_slice()).unwrap_or(&st)
            } else {
                st.strip_suffix(affix.as_slice()).unwrap_or(&st)
            };
            s(out.to_vec())
        }
        "nospace" => {
            a.arity(1, false, name)?;
            s(a.text(0)?
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>())
        }
        "trunc" => {
            a.arity(2, false, name)?;
            let (c, st) = (a.int(0)?, a.str(1)?);
            let len = st.len() as i64;
            s(if c < 0 && len + c > 0 {
                st[(len + c) as usize..].to_vec()
            } else if c >= 0 && len > c {
                st[..c as usize].to_vec()
            } else {
                st.to_vec()
            })
        }
        "substr" => {
            a.arity(3, false, name)?;
            let (start, end, st) = (a.int(0)?, a.int(1)?, a.str(2)?);
            let len = st.len() as i64;
            let slice = |from: i64, to: i64| -> Result<Value, String> {
                if from < 0 || to < from || to > len {
                    return Err("runtime error: slice bounds out of range".into());
                }
                Ok(s(st[from as usize..to as usize].to_vec()))
            };
            if start < 0 {
                slice(0, end)?
            } else if end < 0 || end > len {
                slice(start, len)?
            } else {
                slice(start, end)?
            }
        }
        "repeat" => {
            a.arity(2, false, name)?;
            let (c, st) = (a.int(0)?, a.str(1)?);
            if c < 0 {
                return Err("strings: negative Repeat count".into());
            }
            s(st.repeat(c as usize))
        }
        "contains" | "hasPrefix" | "hasSuffix" => {
            a.arity(2, false, name)?;
            let (sub, st) = (a.str(0)?, a.str(1)?);
            Value::Bool(match name {
                "contains" => sub.is_empty() || st.windows(sub.len()).any(|w| w == sub.as_slice()),
                "hasPrefix" => st.starts_with(&sub),
                _ => st.ends_with(&sub),
            })
        }
        "quote" | "squote" => {
            let mut out = Zeroizing::new(Vec::new());
            let mut first = true;
            for v in interfaces(a.0) {
                if matches!(v, Value::Nil) {
                    continue;
                }
                if !first {
                    out.push(b' ');
                }
                first = false;
                if name == "quote" {
                    out.extend_from_slice(&go_quote(&v.strval()));
                } else {
                    out.push(b'\'');
                    v.print(&mut out);
                    out.push(b'\'');
                }
            }
            Value::Str(out)
        }
        "cat" => {
            let vals: Vec<Value> = interfaces(a.0)
                .into_iter()
                .filter(|v| !matches!(v, Value::Nil))
                .collect();
            let mut out = Zeroizing::new(Vec::new());
            for (i, v) in vals.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                v.print(&mut out);
            }
            Value::Str(out)
        }
        "indent" | "nindent" => {
            a.arity(2, false, name)?;
            let (n, st) = (a.int(0)?, a.str(1)?);
            let pad = vec![b' '; n.max(0) as usize];
            let mut out = Zeroizing::new(Vec::new());
            if name == "nindent" {
                out.push(b'\n');
            }
            out.extend_from_slice(&pad);
            for &b in st.iter() {
                out.push(b);
                if b == b'\n' {
                    out.extend_from_slice(&pad);
                }
            }
            Value::Str(out)
        }
        "replace" => {
            a.arity(3, false, name)?;
            let (old, new, src) = (a.str(0)?, a.str(1)?, a.str(2)?);
            Value::Str(replace_all(&src, &old, &new))
        }
        "plural" => {
            a.arity(3, false, name)?;
            let (one, many, c) = (a.str(0)?, a.str(1)?, a.int(2)?);
            Value::Str(if c == 1 { one } else { many })
        }
        "sha1sum" | "sha256sum" | "sha512sum" => {
            a.arity(1, false, name)?;
            let st = a.str(0)?;
            let digest: Vec<u8> = match name {
                "sha1sum" => sha1::Sha1::digest(&*st).to_vec(),
                "sha256sum" => sha2::Sha256::digest(&*st).to_vec(),
                _ => sha2::Sha512::digest(&*st).to_vec(),
            };
            s(digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>())
        }
        "b64enc" => {
            a.arity(1, false, name)?;
            s(base64::engine::general_purpose::STANDARD.encode(&*a.str(0)?))
        }
        "b64dec" => {
            a.arity(1, false, name)?;
            match go_base64_decode(&a.str(0)?) {
                Ok(d) => Value::Str(d),
                // sprig's base64decode returns the error's text as the result, not an error.
                Err(at) => s(format!("illegal base64 data at input byte {at}")),
            }
        }
        "b32enc" | "b32dec" => return Err("base32 is not supported by enseal".into()),
        "toString" => {
            a.arity(1, false, name)?;
            Value::Str(a.any(0).strval())
        }
        "atoi" => {
            a.arity(1, false, name)?;
            let t = a.text(0)?;
            let t = t.strip_prefix('+').unwrap_or(&t);
            Value::Int(t.parse::<i64>().unwrap_or(0))
        }
        "int" | "int64" => {
            a.arity(1, false, name)?;
            Value::Int(to_int64(&a.any(0)))
        }
        "float64" => {
            a.arity(1, false, name)?;
            Value::Float(to_float64(&a.any(0)))
        }
        "add1" => {
            a.arity(1, false, name)?;
            Value::Int(to_int64(&a.any(0)).wrapping_add(1))
        }
        "add" => Value::Int(
            interfaces(a.0)
                .iter()
                .map(to_int64)
                .fold(0i64, i64::wrapping_add),
        ),
        "mul" => {
            a.arity(1, true, name)?;
            let v = interfaces(a.0);
            Value::Int(v.iter().map(to_int64).fold(1i64, i64::wrapping_mul))
        }
        "sub" | "div" | "mod" => {
            a.arity(2, false, name)?;
            let (x, y) = (to_int64(&a.any(0)), to_int64(&a.any(1)));
            if name != "sub" && y == 0 {
                return Err("runtime error: integer divide by zero".into());
            }
            Value::Int(match name {
                "sub" => x.wrapping_sub(y),
                "div" => x.wrapping_div(y),
                _ => x.wrapping_rem(y),
            })
        }
        "max" | "biggest" | "min" => {
            a.arity(1, true, name)?;
            let v: Vec<i64> = interfaces(a.0).iter().map(to_int64).collect();
            Value::Int(if name == "min" {
                *v.iter().min().unwrap()
            } else {
                *v.iter().max().unwrap()
            })
        }
        "split" | "splitn" => {
            let (sep, orig, limit) = if name == "split" {
                a.arity(2, false, name)?;
                (a.str(0)?, a.str(1)?, None)
            } else {
                a.arity(3, false, name)?;
                (a.str(0)?, a.str(2)?, Some(a.int(1)?))
            };
            let parts = split_bytes(&orig, &sep, limit);
            let map = parts
                .into_iter()
                .enumerate()
                .map(|(i, p)| (format!("_{i}"), Value::Str(p)))
                .collect();
            Value::map(map, true)
        }
        "splitList" => {
            a.arity(2, false, name)?;
            let (sep, orig) = (a.str(0)?, a.str(1)?);
            list(
                split_bytes(&orig, &sep, None)
                    .into_iter()
                    .map(Value::Str)
                    .collect(),
            )
        }
        "toStrings" => {
            a.arity(1, false, name)?;
            list(strslice(&a.any(0)).into_iter().map(Value::Str).collect())
        }
        "join" => {
            a.arity(2, false, name)?;
            let sep = a.str(0)?;
            Value::Str(join_bytes(&strslice(&a.any(1)), &sep))
        }
        "sortAlpha" => {
            a.arity(1, false, name)?;
            let mut v = strslice(&a.any(0));
            v.sort_by(|x, y| x.as_slice().cmp(y.as_slice()));
            list(v.into_iter().map(Value::Str).collect())
        }
        // --- sprig: defaults, JSON ---
        "default" => {
            a.arity(1, true, name)?;
            let d = a.any(0);
            if n < 2 || empty(&a.any(1)) {
                d
            } else {
                a.any(1)
            }
        }
        "empty" => {
            a.arity(1, false, name)?;
            Value::Bool(empty(&a.any(0)))
        }
        "coalesce" => interfaces(a.0)
            .into_iter()
            .find(|v| !empty(v))
            .unwrap_or(Value::Nil),
        "all" => Value::Bool(interfaces(a.0).iter().all(|v| !empty(v))),
        "any" => Value::Bool(interfaces(a.0).iter().any(|v| !empty(v))),
        "compact" | "mustCompact" => {
            a.arity(1, false, name)?;
            list(
                nil_to_missing_list(&a.any(0))?
                    .into_iter()
                    .filter(|v| !empty(v))
                    .collect(),
            )
        }
        "ternary" => {
            a.arity(3, false, name)?;
            if a.bool(2)? {
                a.any(0)
            } else {
                a.any(1)
            }
        }
        "toJson" | "mustToJson" | "toRawJson" | "mustToRawJson" | "toPrettyJson"
        | "mustToPrettyJson" => {
            a.arity(1, false, name)?;
            let mut out = Zeroizing::new(Vec::new());
            let raw = name.contains("Raw");
            let pretty = name.contains("Pretty");
            a.any(0).json(&mut out, !raw, pretty.then_some(2));
            Value::Str(out)
        }
        "fromJson" | "mustFromJson" => {
            a.arity(1, false, name)?;
            let st = a.str(0)?;
            match serde_json::from_slice::<serde_json::Value>(&st) {
                Ok(j) => from_json(j),
                // sprig's fromJson swallows the error and returns an empty map.
                Err(_) if name == "fromJson" => Value::map(BTreeMap::new(), false),
                Err(_) => return Err("the value is not valid JSON".into()),
            }
        }
        // --- sprig: lists and dicts ---
        "list" | "tuple" => list(interfaces(a.0)),
        "dict" => {
            let v = interfaces(a.0);
            let mut map = BTreeMap::new();
            for pair in v.chunks(2) {
                let key = String::from_utf8_lossy(&pair[0].strval()).into_owned();
                map.insert(key, pair.get(1).cloned().unwrap_or_else(|| s("")));
            }
            Value::map(map, false)
        }
        "get" => {
            a.arity(2, false, name)?;
            let (d, k) = (a.dict(0)?, a.text(1)?);
            let Value::Map { map, .. } = d else {
                unreachable!()
            };
            let v = map.borrow().get(k.as_str()).cloned();
            v.unwrap_or_else(|| s(""))
        }
        "set" | "unset" => {
            a.arity(if name == "set" { 3 } else { 2 }, false, name)?;
            let (d, k) = (a.dict(0)?, a.text(1)?);
            if let Value::Map { map, .. } = &d {
                if name == "set" {
                    map.borrow_mut().insert(k.to_string(), a.any(2));
                } else {
                    map.borrow_mut().remove(k.as_str());
                }
            }
            d
        }
        "hasKey" => {
            a.arity(2, false, name)?;
            let (d, k) = (a.dict(0)?, a.text(1)?);
            let Value::Map { map, .. } = d else {
                unreachable!()
            };
            let has = map.borrow().contains_key(k.as_str());
            Value::Bool(has)
        }
        "pluck" => {
            a.arity(1, true, name)?;
            let k = a.text(0)?;
            let mut out = Vec::new();
            for i in 1..n {
                if let Value::Map { map, .. } = a.dict(i)? {
                    if let Some(v) = map.borrow().get(k.as_str()) {
                        out.push(v.clone());
                    }
                }
            }
            list(out)
        }
        // Go ranges over a map in random order; sorted is one of the orders it may give.
        "keys" | "values" => {
            let mut out = Vec::new();
            for i in 0..n {
                if name == "values" && n != 1 {
                    a.arity(1, false, name)?;
                }
                if let Value::Map { map, .. } = a.dict(i)? {
                    for (k, v) in map.borrow().iter() {
                        out.push(if name == "keys" {
                            s(k.as_bytes())
                        } else {
                            v.clone()
                        });
                    }
                }
            }
            list(out)
        }
        "pick" | "omit" => {
            a.arity(1, true, name)?;
            let Value::Map { map, .. } = a.dict(0)? else {
                unreachable!()
            };
            let mut names = Vec::new();
            for i in 1..n {
                names.push(a.text(i)?.to_string());
            }
            let out = map
                .borrow()
                .iter()
                .filter(|(k, _)| names.contains(k) == (name == "pick"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Value::map(out, false)
        }
        "append" | "push" | "mustAppend" | "mustPush" | "prepend" | "mustPrepend" => {
            a.arity(2, false, name)?;
            let mut l = match a.any(0) {
                Value::List(l) => l.as_ref().clone(),
                Value::Nil => Vec::new(),
                other => return Err(format!("Cannot push on type {}", other.type_name())),
            };
            if name.to_lowercase().contains("prepend") {
                l.insert(0, a.any(1));
            } else {
                l.push(a.any(1));
            }
            list(l)
        }
        "first" | "mustFirst" | "last" | "mustLast" | "rest" | "mustRest" | "initial"
        | "mustInitial" | "reverse" | "mustReverse" | "uniq" | "mustUniq" => {
            a.arity(1, false, name)?;
            let l = nil_to_missing_list(&a.any(0))?;
            let base = name.trim_start_matches("must").to_lowercase();
            match base.as_str() {
                "first" => l.first().cloned().unwrap_or(Value::Nil),
                "last" => l.last().cloned().unwrap_or(Value::Nil),
                "rest" => list(l.get(1..).map(<[Value]>::to_vec).unwrap_or_default()),
                "initial" => list(
                    l.get(..l.len().saturating_sub(1))
                        .map(<[Value]>::to_vec)
                        .unwrap_or_default(),
                ),
                "reverse" => list(l.into_iter().rev().collect()),
                _ => {
                    let mut out: Vec<Value> = Vec::new();
                    for v in l {
                        if !out
                            .iter()
                            .any(|o| eq(&[o.clone(), v.clone()]).unwrap_or(false))
                        {
                            out.push(v);
                        }
                    }
                    list(out)
                }
            }
        }
        "has" | "mustHas" => {
            a.arity(2, false, name)?;
            let needle = a.any(0);
            let l = nil_to_missing_list(&a.any(1))?;
            Value::Bool(
                l.iter()
                    .any(|v| eq(&[v.clone(), needle.clone()]).unwrap_or(false)),
            )
        }
        "concat" => {
            let mut out = Vec::new();
            for v in interfaces(a.0) {
                out.extend(nil_to_missing_list(&v)?);
            }
            list(out)
        }
        "kindOf" | "typeOf" => {
            a.arity(1, false, name)?;
            let v = a.any(0);
            s(match (name, &v) {
                ("kindOf", Value::List(_)) => "slice",
                ("kindOf", Value::Map { .. }) => "map",
                ("kindOf", Value::Nil) => "invalid",
                (_, v) => v.type_name(),
            })
        }
        "kindIs" => {
            a.arity(2, false, name)?;
            let want = a.text(0)?;
            let k = match a.any(1) {
                Value::List(_) => "slice",
                Value::Map { .. } => "map",
                Value::Nil => "invalid",
                v => v.type_name(),
            };
            Value::Bool(want.as_str() == k)
        }
        "base" | "dir" | "ext" => {
            a.arity(1, false, name)?;
            let p = a.text(0)?;
            s(path_fn(name, &p))
        }
        // `fail` is how a template reports a problem; its message may be built from a secret,
        // so it is not repeated.
        "fail" => {
            a.arity(1, false, name)?;
            a.str(0)?;
            return Err("the template called fail".into());
        }
        other => return Err(format!("{other} is not supported by enseal")),
    })
}

/// encoding/base64 `StdEncoding.DecodeString` (base64.go `decodeQuantum`): CR and LF are
/// skipped, and a failure is reported at the byte offset Go reports.
fn go_base64_decode(src: &[u8]) -> Result<Bytes, usize> {
    fn sym(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let skip_nl = |si: &mut usize| {
        while *si < src.len() && matches!(src[*si], b'\n' | b'\r') {
            *si += 1;
        }
    };
    let mut out = Zeroizing::new(Vec::with_capacity(src.len() / 4 * 3));
    let mut si = 0;
    while si < src.len() {
        let mut buf = [0u32; 4];
        let mut dlen = 4;
        let mut trailing_garbage = None;
        let mut j = 0;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                return Err(si - j);
            }
            let c = src[si];
            si += 1;
            if let Some(v) = sym(c) {
                buf[j] = v;
                j += 1;
                continue;
            }
            if c == b'\n' || c == b'\r' {
                continue;
            }
            if c != b'=' || j < 2 {
                return Err(si - 1);
            }
            if j == 2 {
                skip_nl(&mut si);
                if si == src.len() {
                    return Err(src.len());
                }
                if src[si] != b'=' {
                    return Err(si - 1);
                }
                si += 1;
            }
            skip_nl(&mut si);
            if si < src.len() {
                trailing_garbage = Some(si);
            }
            dlen = j;
            break;
        }
        let val = buf[0] << 18 | buf[1] << 12 | buf[2] << 6 | buf[3];
        let bytes = [(val >> 16) as u8, (val >> 8) as u8, val as u8];
        out.extend_from_slice(&bytes[..dlen - 1]);
        if let Some(at) = trailing_garbage {
            return Err(at);
        }
    }
    Ok(out)
}

fn replace_all(src: &[u8], old: &[u8], new: &[u8]) -> Bytes {
    let mut out = Zeroizing::new(Vec::with_capacity(src.len()));
    if old.is_empty() {
        // strings.Replace with an empty old inserts `new` around every rune.
        let text = String::from_utf8_lossy(src);
        out.extend_from_slice(new);
        for c in text.chars() {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            out.extend_from_slice(new);
        }
        return out;
    }
    let mut i = 0;
    while i < src.len() {
        if src[i..].starts_with(old) {
            out.extend_from_slice(new);
            i += old.len();
        } else {
            out.push(src[i]);
            i += 1;
        }
    }
    out
}

/// strings.Split / SplitN (n < 0 or None: all).
fn split_bytes(s: &[u8], sep: &[u8], limit: Option<i64>) -> Vec<Bytes> {
    let limit = limit.filter(|n| *n >= 0).map(|n| n as usize);
    if limit == Some(0) {
        return Vec::new();
    }
    if sep.is_empty() {
        let text = String::from_utf8_lossy(s);
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let mut out: Vec<Bytes> = Vec::new();
        for (i, c) in chars.iter().enumerate() {
            if Some(out.len() + 1) == limit {
                out.push(Zeroizing::new(chars[i..].concat().into_bytes()));
                return out;
            }
            out.push(Zeroizing::new(c.clone().into_bytes()));
        }
        return out;
    }
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + sep.len() <= s.len() {
        if Some(out.len() + 1) == limit {
            break;
        }
        if &s[i..i + sep.len()] == sep {
            out.push(Zeroizing::new(s[start..i].to_vec()));
            i += sep.len();
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(Zeroizing::new(s[start..].to_vec()));
    out
}

fn from_json(j: serde_json::Value) -> Value {
    match j {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(b),
        // encoding/json decodes every number into interface{} as float64.
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(st) => s(st.into_bytes()),
        serde_json::Value::Array(a) => list(a.into_iter().map(from_json).collect()),
        serde_json::Value::Object(o) => Value::map(
            o.into_iter().map(|(k, v)| (k, from_json(v))).collect(),
            false,
        ),
    }
}

/// path.Base / path.Dir / path.Ext.
fn path_fn(name: &str, p: &str) -> String {
    match name {
        "ext" => {
            let base = p.rsplit('/').next().unwrap_or("");
            base.rfind('.')
                .map(|i| base[i..].to_string())
                .unwrap_or_default()
        }
        "base" => {
            if p.is_empty() {
                return ".".into();
            }
            let t = p.trim_end_matches('/');
            if t.is_empty() {
                return "/".into();
            }
            t.rsplit('/').next().unwrap_or(t).to_string()
        }
        _ => {
            let dir = match p.rfind('/') {
                Some(i) => &p[..=i],
                None => "",
            };
            clean(dir)
        }
    }
}

/// path.Clean.
fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// net/url.QueryEscape.
fn query_escape(s: &[u8]) -> Bytes {
    let mut out = Zeroizing::new(Vec::new());
    for &b in s {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b),
            b' ' => out.push(b'+'),
            _ => out.extend_from_slice(format!("%{b:02X}").as_bytes()),
        }
    }
    out
}

/// template.HTMLEscapeString.
fn html_escape(s: &[u8]) -> Bytes {
    let mut out = Zeroizing::new(Vec::new());
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"&#34;"),
            b'\'' => out.extend_from_slice(b"&#39;"),
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            0 => out.extend_from_slice("\u{fffd}".as_bytes()),
            b => out.push(b),
        }
    }
    out
}

/// template.JSEscapeString.
fn js_escape(s: &[u8]) -> Bytes {
    let mut out = Zeroizing::new(Vec::new());
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.extend_from_slice(b"\\\\"),
                '\'' => out.extend_from_slice(b"\\'"),
                '"' => out.extend_from_slice(b"\\\""),
                '<' => out.extend_from_slice(b"\\u003C"),
                '>' => out.extend_from_slice(b"\\u003E"),
                '&' => out.extend_from_slice(b"\\u0026"),
                '=' => out.extend_from_slice(b"\\u003D"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                c if (c as u32) < 0x20 => {
                    out.extend_from_slice(format!("\\u{:04X}", c as u32).as_bytes())
                }
                c => {
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        out.extend_from_slice(chunk.invalid());
    }
    out
}
