//! The values a template computes with, shaped like the Go values Sealed Secrets' templates
//! see: the data is a `map[string]string`, sprig builds `map[string]interface{}` and
//! `[]interface{}`, numbers are Go ints and float64s. How they print follows `fmt.Print`
//! (`%v`), how they encode follows `encoding/json`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use zeroize::Zeroizing;

/// Strings hold bytes: Go strings may hold any bytes, and a decrypted value need not be UTF-8.
pub(super) type Bytes = Zeroizing<Vec<u8>>;

#[derive(Clone, Debug)]
pub(super) enum Value {
    /// Go's invalid `reflect.Value`: what a missing map key gives (`.nope`); prints as
    /// "<no value>".
    Missing,
    /// A nil interface: prints as "<nil>".
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Bytes),
    List(Rc<Vec<Value>>),
    /// A map with string keys; `strings` when it is a `map[string]string` (the data itself,
    /// sprig's `split`), which sprig's dict functions refuse as Go's type check does.
    /// Shared and mutable as a Go map is: sprig's `set` changes it in place.
    Map {
        map: Rc<RefCell<BTreeMap<String, Value>>>,
        strings: bool,
    },
}

impl Value {
    pub fn str(s: impl Into<Vec<u8>>) -> Value {
        Value::Str(Zeroizing::new(s.into()))
    }

    pub fn map(map: BTreeMap<String, Value>, strings: bool) -> Value {
        Value::Map {
            map: Rc::new(RefCell::new(map)),
            strings,
        }
    }

    /// Go's type name, for error messages (never the value itself).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Missing => "<no value>",
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map { strings: true, .. } => "map[string]string",
            Value::Map { .. } => "map[string]interface {}",
        }
    }

    /// exec.go `isTrue`.
    pub fn truth(&self) -> bool {
        match self {
            Value::Missing | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map { map, .. } => !map.borrow().is_empty(),
        }
    }

    /// `fmt.Sprint(v)` (what an action prints, and `%v`).
    pub fn print(&self, out: &mut Vec<u8>) {
        match self {
            Value::Missing => out.extend_from_slice(b"<no value>"),
            Value::Nil => out.extend_from_slice(b"<nil>"),
            Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
            Value::Float(f) => out.extend_from_slice(go_float_g(*f).as_bytes()),
            Value::Str(s) => out.extend_from_slice(s),
            Value::List(l) => {
                out.push(b'[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    v.print_in_container(out);
                }
                out.push(b']');
            }
            Value::Map { map, .. } => {
                out.extend_from_slice(b"map[");
                for (i, (k, v)) in map.borrow().iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    out.extend_from_slice(k.as_bytes());
                    out.push(b':');
                    v.print_in_container(out);
                }
                out.push(b']');
            }
        }
    }

    /// Inside a slice or map fmt prints a nil interface as "<nil>".
    fn print_in_container(&self, out: &mut Vec<u8>) {
        match self {
            Value::Missing => out.extend_from_slice(b"<nil>"),
            v => v.print(out),
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = Zeroizing::new(Vec::new());
        self.print(&mut out);
        out
    }

    /// sprig `strval`: strings as they are, everything else as `%v`.
    pub fn strval(&self) -> Bytes {
        match self {
            Value::Str(s) => s.clone(),
            v => v.to_bytes(),
        }
    }

    /// encoding/json `Marshal`; `html` escapes `<`, `>` and `&` as Marshal does by default
    /// (toJson) and `SetEscapeHTML(false)` does not (toRawJson).
    pub fn json(&self, out: &mut Vec<u8>, html: bool, indent: Option<usize>) {
        let nl = |out: &mut Vec<u8>, depth: usize| {
            if let Some(step) = indent {
                out.push(b'\n');
                out.extend(std::iter::repeat_n(b' ', step * depth));
            }
        };
        self.json_at(out, html, indent, 0, &nl);
    }

    fn json_at(
        &self,
        out: &mut Vec<u8>,
        html: bool,
        indent: Option<usize>,
        depth: usize,
        nl: &dyn Fn(&mut Vec<u8>, usize),
    ) {
        match self {
            Value::Missing | Value::Nil => out.extend_from_slice(b"null"),
            Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
            Value::Float(f) => out.extend_from_slice(json_float(*f).as_bytes()),
            Value::Str(s) => json_string(s, out, html),
            Value::List(l) => {
                if l.is_empty() {
                    out.extend_from_slice(b"[]");
                    return;
                }
                out.push(b'[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    nl(out, depth + 1);
                    v.json_at(out, html, indent, depth + 1, nl);
                }
                nl(out, depth);
                out.push(b']');
            }
            Value::Map { map, .. } => {
                let map = map.borrow();
                if map.is_empty() {
                    out.extend_from_slice(b"{}");
                    return;
                }
                out.push(b'{');
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    nl(out, depth + 1);
                    json_string(k.as_bytes(), out, html);
                    out.push(b':');
                    if indent.is_some() {
                        out.push(b' ');
                    }
                    v.json_at(out, html, indent, depth + 1, nl);
                }
                nl(out, depth);
                out.push(b'}');
            }
        }
    }
}

/// encoding/json `appendString`: invalid UTF-8 becomes U+FFFD, control characters and (with
/// `html`) `<>&` are escaped, and U+2028/U+2029 always are.
fn json_string(s: &[u8], out: &mut Vec<u8>, html: bool) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                '<' | '>' | '&' if html => {
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[(c as usize) >> 4]);
                    out.push(HEX[(c as usize) & 15]);
                }
                c if (c as u32) < 0x20 => {
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[(c as usize) >> 4]);
                    out.push(HEX[(c as usize) & 15]);
                }
                '\u{2028}' => out.extend_from_slice(b"\\u2028"),
                '\u{2029}' => out.extend_from_slice(b"\\u2029"),
                c => {
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
    out.push(b'"');
}

/// The shortest decimal digits and exponent of `f` (like strconv with precision -1):
/// `(digits, dp)` where the value is 0.digits × 10^dp.
fn shortest(f: f64) -> (String, i32) {
    let e = format!("{:e}", f.abs());
    let (mant, exp) = e.split_once('e').unwrap();
    let exp: i32 = exp.parse().unwrap();
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let digits = digits.trim_end_matches('0').to_string();
    let digits = if digits.is_empty() {
        "0".to_string()
    } else {
        digits
    };
    (digits, exp + 1)
}

/// strconv.FormatFloat(f, 'g', -1, 64), which `%v` uses for float64.
pub(super) fn go_float_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sign = if f < 0.0 { "-" } else { "" };
    let (digits, dp) = shortest(f);
    let exp = dp - 1;
    // strconv/ftoa.go: "if precision was the shortest possible, use precision 6 for this
    // decision".
    let eprec = 6;
    if exp < -4 || exp >= eprec {
        let (first, rest) = digits.split_at(1);
        let mant = if rest.is_empty() {
            first.to_string()
        } else {
            format!("{first}.{rest}")
        };
        let es = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{mant}e{es}{:02}", exp.abs());
    }
    format!("{sign}{}", fixed(&digits, dp))
}

fn fixed(digits: &str, dp: i32) -> String {
    if dp <= 0 {
        format!("0.{}{}", "0".repeat((-dp) as usize), digits)
    } else if dp as usize >= digits.len() {
        format!("{}{}", digits, "0".repeat(dp as usize - digits.len()))
    } else {
        format!("{}.{}", &digits[..dp as usize], &digits[dp as usize..])
    }
}

/// encoding/json's float64 encoding: like 'f', but 'e' outside [1e-6, 1e21).
fn json_float(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    let abs = f.abs();
    let sign = if f < 0.0 { "-" } else { "" };
    let (digits, dp) = shortest(f);
    if !(1e-6..1e21).contains(&abs) {
        let (first, rest) = digits.split_at(1);
        let mant = if rest.is_empty() {
            first.to_string()
        } else {
            format!("{first}.{rest}")
        };
        let exp = dp - 1;
        let es = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{mant}e{es}{}", exp.abs());
    }
    format!("{sign}{}", fixed(&digits, dp))
}

/// strconv.Quote (fmt's `%q` of a string).
pub(super) fn go_quote(s: &[u8]) -> Vec<u8> {
    let mut out = vec![b'"'];
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\u{7}' => out.extend_from_slice(b"\\a"),
                '\u{8}' => out.extend_from_slice(b"\\b"),
                '\u{c}' => out.extend_from_slice(b"\\f"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                '\u{b}' => out.extend_from_slice(b"\\v"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    out.extend_from_slice(format!("\\x{:02x}", c as u32).as_bytes())
                }
                c if c.is_control() || c == '\u{feff}' || c == '\u{ad}' => {
                    if (c as u32) < 0x10000 {
                        out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
                    } else {
                        out.extend_from_slice(format!("\\U{:08x}", c as u32).as_bytes())
                    }
                }
                c => {
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        for b in chunk.invalid() {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        }
    }
    out.push(b'"');
    out
}
