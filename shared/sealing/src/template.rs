//! `spec.template.data`: Sealed Secrets renders each entry as a Go text/template (with sprig)
//! over the decrypted values. This is the subset people use to assemble config files from
//! secrets: literal text, `{{ .key }}`, `{{ index . "key" }}` and the `{{-`/`-}}` trim markers.
//! Anything else is refused with a clear error rather than rendered differently.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("unclosed action (missing `}}}}`)")]
    Unclosed,
    #[error("unsupported template action `{0}`: only `.key` and `index . \"key\"` are supported")]
    Unsupported(String),
}

/// Renders `template` over `values` (the decrypted `encryptedData`).
pub fn render(
    template: &str,
    values: &BTreeMap<String, Zeroizing<Vec<u8>>>,
) -> Result<Zeroizing<Vec<u8>>, TemplateError> {
    let mut out = Zeroizing::new(Vec::with_capacity(template.len()));
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let mut text = &rest[..start];
        let after_open = &rest[start + 2..];
        let end = after_open.find("}}").ok_or(TemplateError::Unclosed)?;
        let mut action = &after_open[..end];
        let mut next = &after_open[end + 2..];
        // Go: "{{- " trims the whitespace before, " -}}" the whitespace after.
        if let Some(a) = action.strip_prefix("- ") {
            text = text.trim_end();
            action = a;
        }
        if let Some(a) = action.strip_suffix(" -") {
            next = next.trim_start();
            action = a;
        }
        out.extend_from_slice(text.as_bytes());
        let (key, lookup) = key_of(action.trim())?;
        match values.get(&key) {
            Some(value) => out.extend_from_slice(value),
            // What Go prints for a missing map key: `.key` gives "<no value>", `index` the
            // zero value.
            None if lookup == Lookup::Field => out.extend_from_slice(b"<no value>"),
            None => {}
        }
        rest = next;
    }
    out.extend_from_slice(rest.as_bytes());
    Ok(out)
}

#[derive(PartialEq)]
enum Lookup {
    Field,
    Index,
}

fn key_of(action: &str) -> Result<(String, Lookup), TemplateError> {
    let unsupported = || TemplateError::Unsupported(action.to_string());
    if let Some(field) = action.strip_prefix('.') {
        if !field.is_empty() && field.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Ok((field.to_string(), Lookup::Field));
        }
        return Err(unsupported());
    }
    let mut words = action.split_whitespace();
    if words.next() == Some("index") && words.next() == Some(".") {
        let arg = words.collect::<Vec<_>>().join(" ");
        if let Some(key) = arg
            .strip_prefix('"')
            .and_then(|a| a.strip_suffix('"'))
            .filter(|k| !k.contains('"') && !k.contains('\\'))
        {
            return Ok((key.to_string(), Lookup::Index));
        }
    }
    Err(unsupported())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> BTreeMap<String, Zeroizing<Vec<u8>>> {
        [("user", "admin"), ("pass.word", "s3cret")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), Zeroizing::new(v.as_bytes().to_vec())))
            .collect()
    }

    fn render_str(t: &str) -> Result<String, TemplateError> {
        render(t, &values()).map(|v| String::from_utf8(v.to_vec()).unwrap())
    }

    #[test]
    fn renders_fields_and_index() {
        assert_eq!(
            render_str("u={{ .user }} p={{ index . \"pass.word\" }}").unwrap(),
            "u=admin p=s3cret"
        );
        assert_eq!(render_str("plain text").unwrap(), "plain text");
    }

    #[test]
    fn trim_markers_trim_whitespace_like_go() {
        assert_eq!(render_str("a  {{- .user -}}  \n b").unwrap(), "aadminb");
    }

    #[test]
    fn missing_keys_render_as_go_renders_them() {
        assert_eq!(render_str("[{{ .nope }}]").unwrap(), "[<no value>]");
        assert_eq!(render_str("[{{ index . \"nope\" }}]").unwrap(), "[]");
    }

    #[test]
    fn refuses_what_it_cannot_render_faithfully() {
        assert!(matches!(
            render_str("{{ .user | b64enc }}"),
            Err(TemplateError::Unsupported(_))
        ));
        assert_eq!(render_str("{{ .user "), Err(TemplateError::Unclosed));
    }
}
