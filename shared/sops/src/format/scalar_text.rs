//! How a typed scalar turns into the bytes sops encrypts and hashes, and back.
//!
//! sops works on parsed Go values (int, float64, bool, time.Time) and formats them again before
//! encrypting or hashing, which is why `1.0` comes back from sops as `1`. enseal keeps the text
//! as written, so it needs two views of a scalar:
//! - [`mac_bytes`]: exactly what sops' `ToBytes` produces from the parsed value; the MAC must be
//!   computed over these bytes or sops would report a MAC mismatch.
//! - [`plaintext`]: what goes inside `ENC[...]`. That is the source text whenever sops' decoder
//!   for the type (`strconv.Atoi`, `ParseFloat`, `ParseBool`, `time.UnmarshalText`) reads it to
//!   the same value, so that enseal gives back `1.0` exactly as written while sops still reads
//!   the file; otherwise the canonical form. Bools are the exception: always `True`/`False`, as
//!   sops writes them, with any other spelling kept by the store in the scalar's layout.

use std::borrow::Cow;

use crate::format::tree::{Kind, Scalar};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScalarError {
    #[error("{kind} value is not valid: {reason}")]
    Invalid { kind: &'static str, reason: String },
}

fn invalid(kind: Kind, reason: impl Into<String>) -> ScalarError {
    ScalarError::Invalid {
        kind: kind.sops_name(),
        reason: reason.into(),
    }
}

/// The bytes sops hashes into the MAC for this value. `None` for nulls, which sops skips.
pub fn mac_bytes(scalar: &Scalar) -> Result<Option<Cow<'_, [u8]>>, ScalarError> {
    let text = || {
        scalar
            .text()
            .ok_or_else(|| invalid(scalar.kind, "not UTF-8"))
    };
    Ok(Some(match scalar.kind {
        Kind::Null => return Ok(None),
        Kind::Str | Kind::Bytes => Cow::Borrowed(&scalar.value[..]),
        Kind::Int => Cow::Owned(parse_go_int(text()?)?.to_string().into_bytes()),
        Kind::Float => Cow::Owned(format_go_float(parse_float(text()?)?).into_bytes()),
        Kind::Bool => Cow::Borrowed(if parse_bool(text()?)? {
            &b"True"[..]
        } else {
            &b"False"[..]
        }),
        Kind::Time => Cow::Owned(canonical_time(text()?)?.into_bytes()),
    }))
}

/// The bytes enseal encrypts for this value (see the module comment).
pub fn plaintext(scalar: &Scalar) -> Result<Cow<'_, [u8]>, ScalarError> {
    let raw = || Ok(Cow::Borrowed(&scalar.value[..]));
    let text = scalar.text();
    match (scalar.kind, text) {
        (Kind::Str | Kind::Bytes | Kind::Null, _) => raw(),
        (kind, None) => Err(invalid(kind, "not UTF-8")),
        (Kind::Int, Some(t)) => {
            if is_plain_decimal(t) {
                raw()
            } else {
                Ok(Cow::Owned(parse_go_int(t)?.to_string().into_bytes()))
            }
        }
        (Kind::Float, Some(t)) => {
            let value = parse_float(t)?;
            if is_go_float_literal(t) {
                raw()
            } else {
                Ok(Cow::Owned(format_go_float(value).into_bytes()))
            }
        }
        // Always sops' own spelling, whatever the source's: sops writes `True`/`False`, and
        // an unchanged bool of a sops file must encrypt to the same plaintext (an edit keeps its
        // ciphertext). A store keeps any other spelling in the scalar's layout.
        (Kind::Bool, Some(t)) => Ok(Cow::Borrowed(if parse_bool(t)? {
            &b"True"[..]
        } else {
            &b"False"[..]
        })),
        (Kind::Time, Some(t)) => {
            let canonical = canonical_time(t)?;
            if is_rfc3339(t) {
                raw()
            } else {
                Ok(Cow::Owned(canonical.into_bytes()))
            }
        }
    }
}

/// Rebuilds a scalar from a decrypted plaintext and its `type:`; checks the plaintext is a valid
/// value of that type, as sops' decoders would.
pub fn from_plaintext(kind: Kind, plaintext: Vec<u8>) -> Result<Scalar, ScalarError> {
    let scalar = Scalar::from_bytes(kind, plaintext);
    if !matches!(kind, Kind::Str | Kind::Bytes) {
        let text = scalar.text().ok_or_else(|| invalid(kind, "not UTF-8"))?;
        match kind {
            Kind::Int => {
                parse_go_int(text)?;
            }
            Kind::Float => {
                parse_float(text)?;
            }
            Kind::Bool => {
                parse_bool(text)?;
            }
            Kind::Time => {
                canonical_time(text)?;
            }
            _ => {}
        }
    }
    Ok(scalar)
}

fn is_plain_decimal(t: &str) -> bool {
    let digits = t.strip_prefix('-').unwrap_or(t);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && t.parse::<i64>().is_ok()
}

/// `strconv.ParseInt(s, 0, 64)` after go-yaml's removal of underscores: base prefixes `0x`,
/// `0o`, `0b`, and a leading `0` meaning octal.
pub fn parse_go_int(text: &str) -> Result<i64, ScalarError> {
    let cleaned: String = text.chars().filter(|c| *c != '_').collect();
    let (negative, body) = match cleaned.as_bytes().first() {
        Some(b'-') => (true, &cleaned[1..]),
        Some(b'+') => (false, &cleaned[1..]),
        _ => (false, &cleaned[..]),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, &lower[..])
    };
    let magnitude = u64::from_str_radix(digits, radix)
        .map_err(|_| invalid(Kind::Int, "not an integer in range"))?;
    let value = if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    };
    value.ok_or_else(|| invalid(Kind::Int, "out of the 64-bit range"))
}

/// A float as YAML/JSON write it (`1.5`, `-2e3`, `.inf`, `.NaN`), to f64.
pub fn parse_float(text: &str) -> Result<f64, ScalarError> {
    let t = text.trim();
    let special = match t {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "+Inf" | "Inf" | "inf" => {
            Some(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" | "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" | "NaN" | "nan" => Some(f64::NAN),
        _ => None,
    };
    if let Some(v) = special {
        return Ok(v);
    }
    let cleaned: String = t.chars().filter(|c| *c != '_').collect();
    cleaned
        .parse::<f64>()
        .map_err(|_| invalid(Kind::Float, "not a number"))
}

/// Whether Go's `strconv.ParseFloat` reads `t` as written (so it can be encrypted verbatim).
fn is_go_float_literal(t: &str) -> bool {
    let b = t.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        digits += i - frac_start;
    }
    if digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`: shortest round-trip digits, never an exponent.
/// Rust's `Display` for f64 has the same contract; only the special values are spelled apart.
pub fn format_go_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn go_parse_bool(t: &str) -> Option<bool> {
    match t {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn parse_bool(t: &str) -> Result<bool, ScalarError> {
    go_parse_bool(t).ok_or_else(|| invalid(Kind::Bool, "not true or false"))
}

/// Go's `time.Time.MarshalText` (RFC 3339 with nanoseconds, trailing zeros trimmed) of a YAML
/// timestamp. Accepts the forms go-yaml accepts: date only, `T`/space/`t` separator, optional
/// fraction, `Z` or a numeric offset (or none, meaning UTC).
pub fn canonical_time(text: &str) -> Result<String, ScalarError> {
    let bad = || invalid(Kind::Time, "not a timestamp");
    let t = text.trim();
    let b = t.as_bytes();
    let num = |s: &str| -> Result<u32, ScalarError> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let (year, month, day) = (num(&t[0..4])?, num(&t[5..7])?, num(&t[8..10])?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(bad());
    }
    let date = format!("{year:04}-{month:02}-{day:02}");
    let rest = &t[10..];
    if rest.is_empty() {
        return Ok(format!("{date}T00:00:00Z"));
    }
    let rest = rest
        .strip_prefix(['T', 't'])
        .or_else(|| Some(rest.trim_start_matches([' ', '\t'])).filter(|r| r.len() < rest.len()))
        .ok_or_else(bad)?;
    // hh:mm:ss
    let (clock, mut zone) =
        rest.split_at(rest.find(['Z', 'z', '+', '-', ' ']).unwrap_or(rest.len()));
    let (hms, frac) = match clock.split_once('.') {
        Some((h, f)) => (h, Some(f)),
        None => (clock, None),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    if parts.len() != 3 || parts[0].is_empty() || parts[0].len() > 2 {
        return Err(bad());
    }
    let (h, m, s) = (num(parts[0])?, num(parts[1])?, num(parts[2])?);
    if h > 23 || m > 59 || s > 59 || parts[1].len() != 2 || parts[2].len() != 2 {
        return Err(bad());
    }
    let mut out = format!("{date}T{h:02}:{m:02}:{s:02}");
    if let Some(f) = frac {
        num(f)?;
        let mut nanos = f.to_string();
        nanos.truncate(9);
        let trimmed = nanos.trim_end_matches('0');
        if !trimmed.is_empty() {
            out.push('.');
            out.push_str(trimmed);
        }
    }
    zone = zone.trim_start_matches([' ', '\t']);
    match zone {
        "" | "Z" | "z" => out.push('Z'),
        z => {
            let sign = &z[..1];
            let body = &z[1..];
            let (zh, zm) = match body.split_once(':') {
                Some((a, b)) => (num(a)?, num(b)?),
                None if body.len() <= 2 => (num(body)?, 0),
                None if body.len() == 4 => (num(&body[..2])?, num(&body[2..])?),
                None => return Err(bad()),
            };
            if zh > 23 || zm > 59 {
                return Err(bad());
            }
            if zh == 0 && zm == 0 {
                out.push('Z');
            } else {
                out.push_str(&format!("{sign}{zh:02}:{zm:02}"));
            }
        }
    }
    Ok(out)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

/// Whether Go's `time.Time.UnmarshalText` (RFC 3339) reads `t` to the same instant as go-yaml
/// read it from the YAML source.
fn is_rfc3339(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() >= 20
        && b[10] == b'T'
        && (t.ends_with('Z') || {
            let z = &t[t.len() - 6..];
            (z.starts_with('+') || z.starts_with('-')) && z.as_bytes()[3] == b':'
        })
        && canonical_time(t).is_ok()
}

/// A value as the flat stores (dotenv, INI) write it, as sops' `stores.ValToString` does:
/// bools `true`/`false`, floats by Go's `FormatFloat(v, 'G', -1, 64)` with at least one
/// decimal digit (`3.0`, `1.5`, `1.2345678905E+09`), integers in decimal, a null as Go
/// prints nil (`<nil>`), strings and times as they are.
pub fn flat_text(scalar: &Scalar) -> String {
    let text = || String::from_utf8_lossy(&scalar.value).into_owned();
    match scalar.kind {
        Kind::Null => "<nil>".to_string(),
        Kind::Bool => match parse_bool(&text()) {
            Ok(b) => b.to_string(),
            Err(_) => text(),
        },
        Kind::Int => parse_go_int(&text()).map_or_else(|_| text(), |i| i.to_string()),
        Kind::Float => parse_float(&text()).map_or_else(|_| text(), go_format_g),
        Kind::Str | Kind::Bytes | Kind::Time => text(),
    }
}

/// Go's `strconv.FormatFloat(v, 'G', -1, 64)` followed by ValToString's rule that a result
/// looking like an integer gets `.0`.
fn go_format_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` prints the shortest digits that read back as `v`, as Go's -1 precision.
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if v < 0.0 { "-" } else { "" };
    // With the shortest precision Go switches to the exponent form from 1e6 and below 1e-4.
    let out = if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{first}{dot}E{esign}{:02}", exp.abs())
    } else {
        let dp = exp + 1;
        let n = digits.len() as i32;
        if dp <= 0 {
            format!("0.{}{digits}", "0".repeat((-dp) as usize))
        } else if dp >= n {
            format!("{digits}{}.0", "0".repeat((dp - n) as usize))
        } else {
            let (int, frac) = digits.split_at(dp as usize);
            format!("{int}.{frac}")
        }
    };
    format!("{sign}{out}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(kind: Kind, text: &str) -> String {
        String::from_utf8(
            mac_bytes(&Scalar::new(kind, text))
                .unwrap()
                .unwrap()
                .into_owned(),
        )
        .unwrap()
    }

    fn plain(kind: Kind, text: &str) -> String {
        String::from_utf8(plaintext(&Scalar::new(kind, text)).unwrap().into_owned()).unwrap()
    }

    #[test]
    fn mac_bytes_match_sops_formatting_of_parsed_values() {
        assert_eq!(mac(Kind::Float, "1.0"), "1");
        assert_eq!(mac(Kind::Float, "9007199254740993"), "9007199254740992");
        assert_eq!(mac(Kind::Float, "1e21"), "1000000000000000000000");
        assert_eq!(mac(Kind::Float, "0.000001"), "0.000001");
        assert_eq!(mac(Kind::Float, ".inf"), "+Inf");
        assert_eq!(mac(Kind::Int, "0x1F"), "31");
        assert_eq!(mac(Kind::Int, "010"), "8");
        assert_eq!(mac(Kind::Int, "-42"), "-42");
        assert_eq!(mac(Kind::Bool, "true"), "True");
        assert_eq!(mac(Kind::Bool, "FALSE"), "False");
        assert_eq!(
            mac(Kind::Time, "2024-01-02T03:04:05Z"),
            "2024-01-02T03:04:05Z"
        );
        assert_eq!(mac(Kind::Time, "2024-01-02"), "2024-01-02T00:00:00Z");
        assert_eq!(
            mac(Kind::Time, "2001-12-14 21:59:43.10 -5"),
            "2001-12-14T21:59:43.1-05:00"
        );
        assert!(mac_bytes(&Scalar::null()).unwrap().is_none());
    }

    #[test]
    fn plaintext_keeps_the_source_text_when_sops_reads_it_the_same() {
        assert_eq!(plain(Kind::Float, "1.0"), "1.0");
        assert_eq!(plain(Kind::Float, "9007199254740993"), "9007199254740993");
        assert_eq!(plain(Kind::Float, ".inf"), "+Inf");
        assert_eq!(plain(Kind::Int, "5432"), "5432");
        assert_eq!(plain(Kind::Int, "0x1F"), "31");
        assert_eq!(
            plain(Kind::Time, "2024-01-02T03:04:05Z"),
            "2024-01-02T03:04:05Z"
        );
        assert_eq!(plain(Kind::Time, "2024-01-02"), "2024-01-02T00:00:00Z");
    }

    #[test]
    fn a_bool_is_encrypted_as_sops_spells_it() {
        // sops writes `True`/`False`; the same plaintext lets an edit of a sops file keep the
        // ciphertext of its unchanged bools (a store keeps other spellings in the layout).
        assert_eq!(plain(Kind::Bool, "true"), "True");
        assert_eq!(plain(Kind::Bool, "True"), "True");
        assert_eq!(plain(Kind::Bool, "FALSE"), "False");
    }

    #[test]
    fn invalid_typed_plaintexts_are_refused() {
        assert!(from_plaintext(Kind::Int, b"12a".to_vec()).is_err());
        assert!(from_plaintext(Kind::Bool, b"yes".to_vec()).is_err());
        assert!(from_plaintext(Kind::Time, b"2024-13-01".to_vec()).is_err());
        assert!(from_plaintext(Kind::Float, b"1.5".to_vec()).is_ok());
    }

    #[test]
    fn flat_text_is_sops_val_to_string() {
        for (kind, text, want) in [
            (Kind::Bool, "True", "true"),
            (Kind::Null, "null", "<nil>"),
            (Kind::Float, "1234567890.5", "1.2345678905E+09"),
            (Kind::Float, "3.0", "3.0"),
            (Kind::Float, "1.50", "1.5"),
            (Kind::Float, "100000", "100000.0"),
            (Kind::Float, "1e6", "1E+06"),
            (Kind::Float, "0.00001", "1E-05"),
            (Kind::Float, "0.0001", "0.0001"),
            (Kind::Float, "-2.5e-7", "-2.5E-07"),
            (Kind::Int, "0x1F", "31"),
            (Kind::Str, "x y", "x y"),
        ] {
            assert_eq!(flat_text(&Scalar::new(kind, text)), want, "{text}");
        }
    }
}
