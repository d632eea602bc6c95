//! `--label-selector` checked when the controller starts, as Sealed Secrets does (it parses
//! the flag with apimachinery's `labels.Parse` and exits on an error). Unchecked, a typo would
//! reach the API server with every list and watch, each refused with 400 while the controller
//! looked healthy and reconciled nothing.
//!
//! The grammar is apimachinery's (pkg/labels/selector.go): requirements separated by commas,
//! each `key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (v1,v2)`,
//! `key notin (v1,v2)`, `key>n` or `key<n` (n an integer); keys are qualified names
//! (`prefix/name`), values label values (63 characters at most, may be empty). Only the check
//! is done here: the text itself goes to the API server unchanged, which evaluates it.

/// What the lexer sees: apimachinery's special symbols, and identifiers between them.
#[derive(Debug, PartialEq)]
enum Token<'s> {
    Ident(&'s str),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
}

fn tokens(s: &str) -> Vec<Token<'_>> {
    const SPECIAL: &[char] = &['!', '=', '(', ')', ',', '<', '>'];
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start();
        let Some(c) = rest.chars().next() else {
            return out;
        };
        let (token, len) = match c {
            '!' if rest.starts_with("!=") => (Token::NotEq, 2),
            '!' => (Token::Not, 1),
            '=' if rest.starts_with("==") => (Token::DoubleEq, 2),
            '=' => (Token::Eq, 1),
            '(' => (Token::Open, 1),
            ')' => (Token::Close, 1),
            ',' => (Token::Comma, 1),
            '<' => (Token::Lt, 1),
            '>' => (Token::Gt, 1),
            _ => {
                let len = rest
                    .find(|c: char| c.is_whitespace() || SPECIAL.contains(&c))
                    .unwrap_or(rest.len());
                (Token::Ident(&rest[..len]), len)
            }
        };
        out.push(token);
        rest = &rest[len..];
    }
}

/// The flag's value, unchanged, when it is a selector the API server accepts.
pub fn validate(s: &str) -> Result<String, String> {
    check(s).map(|()| s.to_owned()).map_err(|reason| {
        format!(
            "{s:?} is not a label selector: {reason} (e.g. `team=a`, `tier in (x,y)`, `!legacy`)"
        )
    })
}

fn check(s: &str) -> Result<(), String> {
    let tokens = tokens(s);
    if tokens.is_empty() {
        return Ok(()); // everything, as an unset flag
    }
    let mut it = tokens.into_iter().peekable();
    loop {
        requirement(&mut it)?;
        match it.next() {
            None => return Ok(()),
            Some(Token::Comma) if it.peek().is_none() => {
                return Err("a ',' with no requirement after it".into())
            }
            Some(Token::Comma) => {}
            Some(t) => return Err(format!("expected ',' or the end, found {t:?}")),
        }
    }
}

type Tokens<'s> = std::iter::Peekable<std::vec::IntoIter<Token<'s>>>;

fn requirement(it: &mut Tokens<'_>) -> Result<(), String> {
    let key = match it.next() {
        Some(Token::Not) => {
            return match it.next() {
                Some(Token::Ident(key)) => label_key(key),
                t => Err(format!("expected a label key after '!', found {t:?}")),
            }
        }
        Some(Token::Ident(key)) => key,
        t => Err(format!("expected a label key or '!', found {t:?}"))?,
    };
    label_key(key)?;
    if matches!(it.peek(), None | Some(Token::Comma)) {
        return Ok(()); // `key`: it exists
    }
    match it.next() {
        Some(Token::Ident("in" | "notin")) => {
            match it.next() {
                Some(Token::Open) => {}
                t => return Err(format!("expected '(' after in/notin, found {t:?}")),
            }
            loop {
                match it.next() {
                    Some(Token::Ident(v)) => label_value(v)?,
                    Some(Token::Comma) => continue,
                    Some(Token::Close) => return Ok(()),
                    t => return Err(format!("expected a value, ',' or ')', found {t:?}")),
                }
                match it.next() {
                    Some(Token::Comma) => {}
                    Some(Token::Close) => return Ok(()),
                    t => return Err(format!("expected ',' or ')', found {t:?}")),
                }
            }
        }
        Some(Token::Eq | Token::DoubleEq | Token::NotEq) => match it.peek() {
            Some(Token::Ident(v)) => {
                let v = *v;
                it.next();
                label_value(v)
            }
            None | Some(Token::Comma) => Ok(()), // the empty value
            Some(t) => Err(format!("expected a value, found {t:?}")),
        },
        Some(Token::Gt | Token::Lt) => match it.next() {
            Some(Token::Ident(v)) if v.parse::<i64>().is_ok() => Ok(()),
            t => Err(format!("'>' and '<' take an integer, found {t:?}")),
        },
        t => Err(format!(
            "expected an operator (=, ==, !=, in, notin, >, <) after {key:?}, found {t:?}"
        )),
    }
}

/// apimachinery's IsQualifiedName: `[prefix/]name`, the prefix a DNS subdomain.
fn label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let subdomain = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            });
        if !subdomain {
            return Err(format!(
                "label key {key:?}: its prefix is not a DNS subdomain"
            ));
        }
    }
    if name.is_empty() || !is_label_name(name) {
        return Err(format!(
            "label key {key:?}: the name must be 1-63 letters, digits, '-', '_' or '.', \
             starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// apimachinery's IsValidLabelValue: empty, or like a key's name.
fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err(format!(
            "label value {value:?}: at most 63 letters, digits, '-', '_' or '.', starting and \
             ending with a letter or digit"
        ))
    }
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn selectors_the_api_server_accepts_pass_unchanged() {
        for s in [
            "",
            "  ",
            "team=a",
            "team==a",
            "team!=a",
            "team=",
            "!legacy",
            "legacy",
            "tier in (x,y)",
            "tier notin (x, y),team=a",
            "tier in ()",
            "example.com/team=a,!example.com/legacy",
            "a.b_c-d=e.f_g-h",
            "replicas>2",
            "replicas < -1",
            "a,b,c",
            " team = a , tier in (x) ",
        ] {
            assert_eq!(validate(s).as_deref(), Ok(s), "{s:?}");
        }
    }

    #[test]
    fn malformed_selectors_are_refused_with_the_reason() {
        for (s, reason) in [
            ("team=a,", "no requirement after it"),
            ("team=a b", "expected ',' or the end"),
            ("=a", "expected a label key"),
            ("!", "expected a label key after '!'"),
            ("!a=b", "expected ',' or the end"),
            ("tier in x", "expected '('"),
            ("tier in (x", "expected ',' or ')'"),
            ("tier in (,", "expected a value, ',' or ')'"),
            ("tier in (x y)", "expected ',' or ')'"),
            ("replicas>two", "integer"),
            ("-team=a", "label key \"-team\""),
            ("Example.com/team=a", "prefix is not a DNS subdomain"),
            ("team=a/b", "label value \"a/b\""),
            ("team=-a", "label value \"-a\""),
            (&format!("team={}", "x".repeat(64)), "at most 63"),
            ("team a", "expected an operator"),
        ] {
            let err = validate(s).expect_err(s);
            assert!(err.contains(reason), "{s:?}: {err}");
        }
    }
}
