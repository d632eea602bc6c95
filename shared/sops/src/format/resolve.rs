//! Typing of YAML scalars the way sops 3.11 sees them, in its files and in `.sops.yaml` alike.
//!
//! sops decodes every scalar with go-yaml v3 (gopkg.in/yaml.v3 `resolve.go`): into
//! `interface{}` for a file's values, so a value's `type:` in the encrypted file is whatever
//! go-yaml's resolver (YAML 1.2 core schema plus a few YAML 1.1 leftovers: `0777` octals, `1_000`
//! underscores, date timestamps) makes of it; and into typed fields for `.sops.yaml`, where the
//! field then takes the resolved value (`shamir_threshold: 010` is 8, `0X1F` is 31). This module
//! is a port of that resolver's decisions (not of its code), the one both the YAML store and the
//! config decoder use: the observed kinds are pinned by `scalars_are_typed_as_sops_types_them` (in
//! stores/yaml/tests.rs) against the real sops, the values by the tests below and the config tests.

use crate::format::tree::Kind;

/// What go-yaml's `resolve` makes of a scalar: its type and, for booleans and numbers, its value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Resolved {
    Null,
    Bool(bool),
    /// Go's `int` or `uint64` (a positive value up to `u64::MAX` still resolves as `!!int`).
    Int(i128),
    Float(f64),
    Timestamp,
    Str,
}

impl Resolved {
    pub fn kind(self) -> Kind {
        match self {
            Resolved::Null => Kind::Null,
            Resolved::Bool(_) => Kind::Bool,
            Resolved::Int(_) => Kind::Int,
            Resolved::Float(_) => Kind::Float,
            Resolved::Timestamp => Kind::Time,
            Resolved::Str => Kind::Str,
        }
    }

    /// go-yaml's short tag, as it names the type in its "cannot unmarshal" errors.
    pub fn tag(self) -> &'static str {
        match self {
            Resolved::Null => "!!null",
            Resolved::Bool(_) => "!!bool",
            Resolved::Int(_) => "!!int",
            Resolved::Float(_) => "!!float",
            Resolved::Timestamp => "!!timestamp",
            Resolved::Str => "!!str",
        }
    }
}

/// The kind of an untagged plain scalar.
pub fn plain_kind(text: &str) -> Kind {
    resolve_plain(text).kind()
}

/// An untagged plain scalar, resolved.
pub fn resolve_plain(text: &str) -> Resolved {
    resolve(text, true)
}

/// The kind of a scalar with an explicit tag (`!!int "1"`), or an error message when go-yaml
/// refuses the combination (`!!int abc`). Tags outside the core schema leave the value a string.
pub fn tagged_kind(tag: &str, text: &str) -> Result<Kind, String> {
    resolve_tagged(tag, text).map(Resolved::kind)
}

/// A scalar with an explicit tag (`tag` is the core-schema name, `int` for `!!int`), resolved;
/// an error message when go-yaml refuses the combination.
pub fn resolve_tagged(tag: &str, text: &str) -> Result<Resolved, String> {
    let wanted = match tag {
        "str" | "binary" => return Ok(Resolved::Str),
        "null" => Kind::Null,
        "bool" => Kind::Bool,
        "int" => Kind::Int,
        "float" => Kind::Float,
        "timestamp" => Kind::Time,
        _ => return Ok(Resolved::Str),
    };
    let got = resolve(text, matches!(wanted, Kind::Time));
    match (wanted, got) {
        (w, g) if w == g.kind() => Ok(g),
        // go-yaml turns an integer tagged `!!float` into a float64.
        (Kind::Float, Resolved::Int(i)) => Ok(Resolved::Float(i as f64)),
        _ => Err(format!(
            "cannot decode a {} value as !!{tag}",
            got.kind().sops_name()
        )),
    }
}

/// `timestamps` is false for tagged values other than `!!timestamp`, as go-yaml only tries
/// timestamps on untagged (or timestamp-tagged) scalars.
fn resolve(s: &str, timestamps: bool) -> Resolved {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        _ => {}
    }
    let first = s.as_bytes()[0];
    match first {
        b'.' => {
            // go-yaml hands these to strconv.ParseFloat unchanged: only `.5`, `.5e3` forms.
            if is_yaml_float(s) {
                if let Some(f) = finite(s) {
                    return Resolved::Float(f);
                }
            }
            Resolved::Str
        }
        b'0'..=b'9' | b'+' | b'-' => {
            if timestamps && is_timestamp(s) {
                return Resolved::Timestamp;
            }
            let plain: String = s.chars().filter(|&c| c != '_').collect();
            if let Some(i) = go_parse_int(&plain) {
                return Resolved::Int(i);
            }
            if is_yaml_float(&plain) {
                if let Some(f) = finite(&plain) {
                    return Resolved::Float(f);
                }
            }
            Resolved::Str
        }
        _ => Resolved::Str,
    }
}

/// strconv.ParseFloat succeeding: it refuses what overflows to an infinity.
fn finite(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`, go-yaml's float syntax.
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Go's `strconv.ParseInt(s, 0, 64)`, or `ParseUint(s, 0, 64)` (no sign), when one succeeds: base
/// 0 reads `0x`/`0X`, `0o`/`0O`, `0b`/`0B` and a bare leading `0` (octal) prefixes.
fn go_parse_int(s: &str) -> Option<i128> {
    let (neg, signed, body) = match s.as_bytes().first() {
        Some(b'-') => (true, true, &s[1..]),
        Some(b'+') => (false, true, &s[1..]),
        _ => (false, false, s),
    };
    let (radix, digits) = if body.len() > 1 && body.starts_with('0') {
        match body.as_bytes()[1] {
            b'x' | b'X' => (16, &body[2..]),
            b'b' | b'B' => (2, &body[2..]),
            b'o' | b'O' => (8, &body[2..]),
            _ => (8, &body[1..]),
        }
    } else {
        (10, body)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    let fits = if neg {
        magnitude <= 1u128 << 63
    } else if signed {
        magnitude <= i64::MAX as u128
    } else {
        magnitude <= u64::MAX as u128
    };
    // Fits, so at most 2^64 and a lossless i128.
    let value = magnitude as i128;
    fits.then_some(if neg { -value } else { value })
}

/// go-yaml's timestamp formats: `2006-1-2`, `2006-1-2T15:4:5.999999999Z07:00` (also with a
/// lowercase `t`), and `2006-1-2 15:4:5.999999999` (no zone), as Go's `time.Parse` reads them.
pub fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 8 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let mut i = 5;
    let Some(month) = num12(b, &mut i) else {
        return false;
    };
    if i >= b.len() || b[i] != b'-' {
        return false;
    }
    i += 1;
    let Some(day) = num12(b, &mut i) else {
        return false;
    };
    let year: u32 = s[..4].parse().unwrap_or(0);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return false;
    }
    if i == b.len() {
        return true;
    }
    let zoned = match b[i] {
        b'T' | b't' => true,
        b' ' => false,
        _ => return false,
    };
    i += 1;
    let Some(hour) = num12(b, &mut i) else {
        return false;
    };
    if i >= b.len() || b[i] != b':' {
        return false;
    }
    i += 1;
    let Some(minute) = num12(b, &mut i) else {
        return false;
    };
    if i >= b.len() || b[i] != b':' {
        return false;
    }
    i += 1;
    let Some(second) = num12(b, &mut i) else {
        return false;
    };
    if hour > 23 || minute > 59 || second > 59 {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    if !zoned {
        return i == b.len();
    }
    match b.get(i) {
        Some(b'Z') => i + 1 == b.len(),
        Some(b'+') | Some(b'-') => {
            let z = &b[i + 1..];
            z.len() == 5
                && z[0].is_ascii_digit()
                && z[1].is_ascii_digit()
                && z[2] == b':'
                && z[3].is_ascii_digit()
                && z[4].is_ascii_digit()
        }
        _ => false,
    }
}

/// One or two digits, as Go's layouts `1`, `2`, `15`, `4`, `5` accept.
fn num12(b: &[u8], i: &mut usize) -> Option<u32> {
    let start = *i;
    while *i < b.len() && *i - start < 2 && b[*i].is_ascii_digit() {
        *i += 1;
    }
    if *i == start {
        return None;
    }
    std::str::from_utf8(&b[start..*i]).ok()?.parse().ok()
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// YAML 1.1 booleans that go-yaml still quotes on output so that older parsers keep reading
/// them as strings.
pub fn is_old_bool(s: &str) -> bool {
    old_bool(s).is_some()
}

/// The value of a YAML 1.1 boolean word (`yes`, `Off`...). go-yaml resolves these as strings,
/// but its decoder still takes them for a typed `bool` field (`mac_only_encrypted: yes`).
pub fn old_bool(s: &str) -> Option<bool> {
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// YAML 1.1 base-60 floats (`1:20`), also quoted on output by go-yaml.
pub fn is_base60_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    if i >= b.len() || !b[i].is_ascii_digit() {
        return false;
    }
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    let mut groups = 0;
    while i < b.len() && b[i] == b':' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() && i - start < 2 {
            i += 1;
        }
        if i == start || (i - start == 2 && b[start] > b'5') {
            return false;
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checked against sops 3.11: in a file, `a: 010` is `type:int` and decrypts to `8`, `0X1F`
    /// to `31`, `-010` to `-8`, `0x_1F` to `31`, and `08` (not octal) is `type:float`; in
    /// `.sops.yaml`, `shamir_threshold: 010` is 8. The config decoder once read `010` as 10 and
    /// refused `0X1F`.
    #[test]
    fn integers_resolve_as_go_parse_int_with_base_0_reads_them() {
        for (text, want) in [
            ("010", Resolved::Int(8)),
            ("0X1F", Resolved::Int(31)),
            ("0x1f", Resolved::Int(31)),
            ("0x_1F", Resolved::Int(31)),
            ("-010", Resolved::Int(-8)),
            ("0o17", Resolved::Int(15)),
            ("0O17", Resolved::Int(15)),
            ("0b11", Resolved::Int(3)),
            ("+1", Resolved::Int(1)),
            ("1_0", Resolved::Int(10)),
            ("18446744073709551615", Resolved::Int(u64::MAX as i128)),
            ("-9223372036854775808", Resolved::Int(i64::MIN as i128)),
            ("08", Resolved::Float(8.0)),
            ("2.7", Resolved::Float(2.7)),
            ("1e3", Resolved::Float(1000.0)),
            ("1e400", Resolved::Str),
            ("0xZZ", Resolved::Str),
            (
                "-18446744073709551615",
                Resolved::Float(-18446744073709551615.0),
            ),
            ("2001-01-01", Resolved::Timestamp),
            ("yes", Resolved::Str),
            ("True", Resolved::Bool(true)),
            ("~", Resolved::Null),
        ] {
            assert_eq!(resolve_plain(text), want, "{text}");
        }
    }

    #[test]
    fn tags_convert_or_refuse_as_go_yaml_does() {
        assert_eq!(resolve_tagged("float", "3"), Ok(Resolved::Float(3.0)));
        assert_eq!(resolve_tagged("int", "010"), Ok(Resolved::Int(8)));
        assert_eq!(resolve_tagged("str", "010"), Ok(Resolved::Str));
        // Timestamps are only tried untagged or under `!!timestamp`.
        assert_eq!(resolve_tagged("str", "2001-01-01"), Ok(Resolved::Str));
        assert!(resolve_tagged("int", "abc").is_err());
    }
}
