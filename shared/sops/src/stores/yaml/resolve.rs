//! Typing of YAML scalars the way sops 3.11 sees them.
//!
//! sops decodes every scalar with go-yaml v3 into `interface{}`, so a value's `type:` in the
//! encrypted file is whatever go-yaml's resolver (YAML 1.2 core schema plus a few YAML 1.1
//! leftovers: `0777` octals, `1_000` underscores, date timestamps) makes of it. This module is a
//! port of that resolver's decisions (not of its code): the observed kinds are pinned by the
//! `sops_typing_table` test against the real sops.

use crate::format::tree::Kind;

/// The kind of an untagged plain scalar.
pub fn plain_kind(text: &str) -> Kind {
    resolve(text, true).unwrap_or(Kind::Str)
}

/// The kind of a scalar with an explicit tag (`!!int "1"`), or an error message when go-yaml
/// refuses the combination (`!!int abc`). Tags outside the core schema leave the value a string.
pub fn tagged_kind(tag: &str, text: &str) -> Result<Kind, String> {
    let wanted = match tag {
        "str" | "binary" => return Ok(Kind::Str),
        "null" => Kind::Null,
        "bool" => Kind::Bool,
        "int" => Kind::Int,
        "float" => Kind::Float,
        "timestamp" => Kind::Time,
        _ => return Ok(Kind::Str),
    };
    let got = resolve(text, matches!(wanted, Kind::Time)).unwrap_or(Kind::Str);
    match (wanted, got) {
        (w, g) if w == g => Ok(w),
        (Kind::Float, Kind::Int) => Ok(Kind::Float),
        _ => Err(format!(
            "cannot decode a {} value as !!{tag}",
            got.sops_name()
        )),
    }
}

/// `None` means "a string". `timestamps` is false for tagged values other than `!!timestamp`,
/// as go-yaml only tries timestamps on untagged (or timestamp-tagged) scalars.
fn resolve(s: &str, timestamps: bool) -> Option<Kind> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Kind::Null),
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => return Some(Kind::Bool),
        ".nan" | ".NaN" | ".NAN" | ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF"
        | "-.inf" | "-.Inf" | "-.INF" => return Some(Kind::Float),
        _ => {}
    }
    let first = s.as_bytes()[0];
    match first {
        b'.' => {
            // go-yaml hands these to strconv.ParseFloat unchanged: only `.5`, `.5e3` forms.
            if is_yaml_float(s) && finite(s) {
                return Some(Kind::Float);
            }
            None
        }
        b'0'..=b'9' | b'+' | b'-' => {
            if timestamps && is_timestamp(s) {
                return Some(Kind::Time);
            }
            let plain: String = s.chars().filter(|&c| c != '_').collect();
            if go_parse_int(&plain) {
                return Some(Kind::Int);
            }
            if is_yaml_float(&plain) && finite(&plain) {
                return Some(Kind::Float);
            }
            None
        }
        _ => None,
    }
}

fn finite(s: &str) -> bool {
    s.parse::<f64>().map(|f| f.is_finite()).unwrap_or(false)
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

/// Go's `strconv.ParseInt(s, 0, 64)` succeeding, or `ParseUint(s, 0, 64)` (no sign) succeeding.
fn go_parse_int(s: &str) -> bool {
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
        return false;
    }
    let Ok(magnitude) = u128::from_str_radix(digits, radix) else {
        return false;
    };
    if neg {
        magnitude <= 1u128 << 63
    } else if signed {
        magnitude <= i64::MAX as u128
    } else {
        magnitude <= u64::MAX as u128
    }
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
    matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
    )
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
