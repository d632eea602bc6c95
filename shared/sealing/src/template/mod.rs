//! `spec.template.data`: Sealed Secrets renders each entry as a Go `text/template` with sprig's
//! functions over the decrypted values (pkg/apis/sealedsecrets/v1alpha1/
//! sealedsecret_expansion.go `unseal`: `template.New(key).Funcs(sprigFuncMap).Parse(value)`,
//! then `Execute(&buf, data)` with `data` a `map[string]string`).
//!
//! This is an interpreter of that language in Rust, module for module after Go's:
//! [`lex`] (parse/lex.go), [`parse`] (parse/parse.go), [`exec`] (exec.go), [`funcs`]
//! (funcs.go and sprig v3.3.0), [`printf`] (fmt). A template enseal cannot render as Go
//! would (a sprig function it does not implement) is refused with an error, never rendered
//! differently. Errors name the construct, never a value: values are secrets.

mod exec;
mod funcs;
mod lex;
mod parse;
mod printf;
mod value;

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use value::Value;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    /// The template text is not a valid Go template (or names a function sprig does not
    /// have); Go reports these before running anything.
    #[error("line {line}: {message}")]
    Parse { line: usize, message: String },
    /// A sprig function that Sealed Secrets offers but enseal does not implement.
    #[error("function {0:?} is not supported by enseal (Sealed Secrets would run it)")]
    Unsupported(String),
    /// Running the template failed (a wrong argument type, a failing function, ...).
    #[error("line {line}: {message}")]
    Exec { line: usize, message: String },
}

impl TemplateError {
    fn parse(line: usize, message: &str) -> TemplateError {
        TemplateError::Parse {
            line,
            message: message.to_string(),
        }
    }
}

/// Renders `template` over `values`: the map Sealed Secrets hands its templates (the opened
/// `encryptedData` values plus the plain text of the other template entries).
pub fn render(
    template: &str,
    values: &BTreeMap<String, Zeroizing<Vec<u8>>>,
) -> Result<Zeroizing<Vec<u8>>, TemplateError> {
    let parsed = parse::parse(lex::lex(template)?)?;
    let data = Value::map(
        values
            .iter()
            .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
            .collect(),
        true,
    );
    let mut exec = exec::Exec {
        defines: &parsed.defines,
        vars: vec![("$".to_string(), data.clone())],
        out: Zeroizing::new(Vec::with_capacity(template.len())),
        depth: 0,
    };
    exec.walk(&data, &parsed.root)?;
    Ok(exec.out)
}

#[cfg(test)]
mod tests;
