//! `printf`: the part of Go's fmt.Sprintf (go/src/fmt/print.go, format.go) that templates use:
//! flags `-+# 0`, width, precision and the verbs `v s q d x X o b c t f F e E g G %`, with fmt's
//! in-band complaints ("%!d(string=…)", "%!v(MISSING)", "%!(EXTRA …)") where Go writes them.

use zeroize::Zeroizing;

use super::value::{go_float_g, go_quote, Bytes, Value};

#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

pub(super) fn sprintf(format: &[u8], args: &[Value]) -> Bytes {
    let mut out = Zeroizing::new(Vec::new());
    let mut next = 0;
    let mut i = 0;
    while i < format.len() {
        if format[i] != b'%' {
            out.push(format[i]);
            i += 1;
            continue;
        }
        i += 1;
        let mut spec = Spec::default();
        while i < format.len() {
            match format[i] {
                b'-' => spec.minus = true,
                b'+' => spec.plus = true,
                b'#' => spec.sharp = true,
                b'0' => spec.zero = true,
                b' ' => spec.space = true,
                _ => break,
            }
            i += 1;
        }
        let num = |i: &mut usize, next: &mut usize| -> Option<usize> {
            if *i < format.len() && format[*i] == b'*' {
                *i += 1;
                let v = match args.get(*next) {
                    Some(Value::Int(n)) if *n >= 0 => Some(*n as usize),
                    _ => None,
                };
                *next += 1;
                return v;
            }
            let start = *i;
            while *i < format.len() && format[*i].is_ascii_digit() {
                *i += 1;
            }
            std::str::from_utf8(&format[start..*i]).ok()?.parse().ok()
        };
        spec.width = num(&mut i, &mut next);
        if i < format.len() && format[i] == b'.' {
            i += 1;
            spec.prec = Some(num(&mut i, &mut next).unwrap_or(0));
        }
        if i >= format.len() {
            out.extend_from_slice(b"%!(NOVERB)");
            break;
        }
        // The verb is a rune.
        let verb_len = utf8_len(format[i]);
        let verb_bytes = &format[i..(i + verb_len).min(format.len())];
        let verb = std::str::from_utf8(verb_bytes)
            .ok()
            .and_then(|s| s.chars().next())
            .unwrap_or('\u{fffd}');
        i += verb_len;
        if verb == '%' {
            out.push(b'%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.extend_from_slice(format!("%!{verb}(MISSING)").as_bytes());
            continue;
        };
        next += 1;
        let text = format_one(arg, verb, &spec);
        pad(
            &mut out,
            &text,
            &spec,
            matches!(arg, Value::Int(_) | Value::Float(_)),
        );
    }
    if next < args.len() {
        out.extend_from_slice(b"%!(EXTRA ");
        for (k, a) in args[next..].iter().enumerate() {
            if k > 0 {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(a.type_name().as_bytes());
            out.push(b'=');
            a.print(&mut out);
        }
        out.push(b')');
    }
    out
}

fn utf8_len(b: u8) -> usize {
    match b {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

fn bad(arg: &Value, verb: char) -> Vec<u8> {
    let mut v = format!("%!{verb}(").into_bytes();
    match arg {
        Value::Nil | Value::Missing => v.extend_from_slice(b"<nil>"),
        a => {
            v.extend_from_slice(a.type_name().as_bytes());
            v.push(b'=');
            a.print(&mut v);
        }
    }
    v.push(b')');
    v
}

fn format_one(arg: &Value, verb: char, spec: &Spec) -> Vec<u8> {
    match (verb, arg) {
        ('v', Value::Float(f)) => go_float_g(*f).into_bytes(),
        ('v', _) => arg.to_bytes().to_vec(),
        ('s', Value::Str(s)) => truncate_runes(s, spec.prec),
        ('s', Value::List(_) | Value::Map { .. }) => arg.to_bytes().to_vec(),
        ('q', Value::Str(s)) => go_quote(s),
        ('q', Value::Int(n)) => {
            format!("'{}'", char::from_u32(*n as u32).unwrap_or('\u{fffd}')).into_bytes()
        }
        ('x' | 'X', Value::Str(s)) => {
            let h: String = s.iter().map(|b| format!("{b:02x}")).collect();
            if verb == 'X' { h.to_uppercase() } else { h }.into_bytes()
        }
        ('d', Value::Int(n)) => signed(n.to_string(), *n >= 0, spec),
        ('x', Value::Int(n)) => signed(format!("{:x}", n.unsigned_abs()), *n >= 0, spec),
        ('X', Value::Int(n)) => signed(format!("{:X}", n.unsigned_abs()), *n >= 0, spec),
        ('o', Value::Int(n)) => signed(format!("{:o}", n.unsigned_abs()), *n >= 0, spec),
        ('b', Value::Int(n)) => signed(format!("{:b}", n.unsigned_abs()), *n >= 0, spec),
        ('c', Value::Int(n)) => char::from_u32(*n as u32)
            .unwrap_or('\u{fffd}')
            .to_string()
            .into_bytes(),
        ('t', Value::Bool(b)) => b.to_string().into_bytes(),
        ('f' | 'F', Value::Float(f)) => signed(
            format!("{:.*}", spec.prec.unwrap_or(6), f.abs()),
            *f >= 0.0,
            spec,
        ),
        ('e' | 'E', Value::Float(f)) => {
            let s = go_exp(f.abs(), spec.prec.unwrap_or(6));
            let s = if verb == 'E' { s.to_uppercase() } else { s };
            signed(s, *f >= 0.0, spec)
        }
        ('g' | 'G', Value::Float(f)) => {
            let s = go_float_g(f.abs());
            let s = if verb == 'G' { s.to_uppercase() } else { s };
            signed(s, *f >= 0.0, spec)
        }
        _ => bad(arg, verb),
    }
}

fn go_exp(f: f64, prec: usize) -> String {
    let s = format!("{f:.prec$e}");
    let (m, e) = s.split_once('e').unwrap();
    let e: i32 = e.parse().unwrap();
    format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

fn signed(digits: String, non_negative: bool, spec: &Spec) -> Vec<u8> {
    let sign = if !non_negative {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    format!("{sign}{digits}").into_bytes()
}

fn truncate_runes(s: &[u8], prec: Option<usize>) -> Vec<u8> {
    match prec {
        None => s.to_vec(),
        Some(p) => String::from_utf8_lossy(s)
            .chars()
            .take(p)
            .collect::<String>()
            .into_bytes(),
    }
}

fn pad(out: &mut Vec<u8>, text: &[u8], spec: &Spec, numeric: bool) {
    let len = String::from_utf8_lossy(text).chars().count();
    let Some(width) = spec.width.filter(|w| *w > len) else {
        out.extend_from_slice(text);
        return;
    };
    let fill = width - len;
    if spec.minus {
        out.extend_from_slice(text);
        out.extend(std::iter::repeat_n(b' ', fill));
    } else if spec.zero && numeric {
        // Zeros go after the sign.
        let (sign, rest) = match text.first() {
            Some(b'-' | b'+' | b' ') => text.split_at(1),
            _ => (&text[..0], text),
        };
        out.extend_from_slice(sign);
        out.extend(std::iter::repeat_n(b'0', fill));
        out.extend_from_slice(rest);
    } else {
        out.extend(std::iter::repeat_n(
            if spec.zero { b'0' } else { b' ' },
            fill,
        ));
        out.extend_from_slice(text);
    }
}
