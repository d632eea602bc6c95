//! Which values of a file are encrypted: at most one rule per file, as in sops.

use regex::Regex;

pub const DEFAULT_UNENCRYPTED_SUFFIX: &str = "_unencrypted";

#[derive(Clone, Debug)]
pub enum CryptRule {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(Regex),
    EncryptedRegex(Regex),
    UnencryptedCommentRegex(Regex),
    EncryptedCommentRegex(Regex),
}

#[derive(Debug, thiserror::Error)]
pub enum CryptRuleError {
    #[error("invalid {field} {pattern:?}: {message}")]
    BadRegex {
        field: &'static str,
        pattern: String,
        message: String,
    },
    #[error("only one of {} may be set; got {}", CryptRule::FIELDS.join(", "), .0.join(" and "))]
    Conflict(Vec<&'static str>),
}

impl Default for CryptRule {
    fn default() -> Self {
        CryptRule::UnencryptedSuffix(DEFAULT_UNENCRYPTED_SUFFIX.to_string())
    }
}

impl PartialEq for CryptRule {
    fn eq(&self, other: &Self) -> bool {
        self.field() == other.field() && self.value() == other.value()
    }
}

impl CryptRule {
    /// The metadata / `.sops.yaml` field names, in the order sops checks them.
    pub const FIELDS: [&'static str; 6] = [
        "unencrypted_suffix",
        "encrypted_suffix",
        "unencrypted_regex",
        "encrypted_regex",
        "unencrypted_comment_regex",
        "encrypted_comment_regex",
    ];

    /// Builds the rule named by a metadata / `.sops.yaml` field.
    pub fn from_field(field: &str, value: &str) -> Result<Option<CryptRule>, CryptRuleError> {
        let regex = |name: &'static str| {
            Regex::new(value).map_err(|e| CryptRuleError::BadRegex {
                field: name,
                pattern: value.to_string(),
                message: e.to_string(),
            })
        };
        Ok(Some(match field {
            "unencrypted_suffix" => CryptRule::UnencryptedSuffix(value.to_string()),
            "encrypted_suffix" => CryptRule::EncryptedSuffix(value.to_string()),
            "unencrypted_regex" => CryptRule::UnencryptedRegex(regex("unencrypted_regex")?),
            "encrypted_regex" => CryptRule::EncryptedRegex(regex("encrypted_regex")?),
            "unencrypted_comment_regex" => {
                CryptRule::UnencryptedCommentRegex(regex("unencrypted_comment_regex")?)
            }
            "encrypted_comment_regex" => {
                CryptRule::EncryptedCommentRegex(regex("encrypted_comment_regex")?)
            }
            _ => return Ok(None),
        }))
    }

    /// At most one rule from a set of optional fields (command line or config); sops refuses
    /// more than one.
    pub fn from_fields<'a>(
        fields: impl IntoIterator<Item = (&'static str, Option<&'a str>)>,
    ) -> Result<Option<CryptRule>, CryptRuleError> {
        let set: Vec<(&'static str, &str)> = fields
            .into_iter()
            .filter_map(|(f, v)| v.filter(|v| !v.is_empty()).map(|v| (f, v)))
            .collect();
        match set.as_slice() {
            [] => Ok(None),
            [(f, v)] => CryptRule::from_field(f, v),
            many => Err(CryptRuleError::Conflict(
                many.iter().map(|(f, _)| *f).collect(),
            )),
        }
    }

    pub fn field(&self) -> &'static str {
        match self {
            CryptRule::UnencryptedSuffix(_) => "unencrypted_suffix",
            CryptRule::EncryptedSuffix(_) => "encrypted_suffix",
            CryptRule::UnencryptedRegex(_) => "unencrypted_regex",
            CryptRule::EncryptedRegex(_) => "encrypted_regex",
            CryptRule::UnencryptedCommentRegex(_) => "unencrypted_comment_regex",
            CryptRule::EncryptedCommentRegex(_) => "encrypted_comment_regex",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            CryptRule::UnencryptedSuffix(s) | CryptRule::EncryptedSuffix(s) => s,
            CryptRule::UnencryptedRegex(r)
            | CryptRule::EncryptedRegex(r)
            | CryptRule::UnencryptedCommentRegex(r)
            | CryptRule::EncryptedCommentRegex(r) => r.as_str(),
        }
    }

    /// sops' `shouldBeEncrypted`: `path` is the keys from the document root to the value (a
    /// comment's path is its parent's); `comments` is the stack of comment groups that precede
    /// the value at each level; `is_comment` marks a comment item itself.
    pub fn should_encrypt<K: AsRef<str>, C: AsRef<str>>(
        &self,
        path: &[K],
        comments: &[Vec<C>],
        is_comment: bool,
    ) -> bool {
        let keys = || path.iter().map(AsRef::as_ref);
        match self {
            CryptRule::UnencryptedSuffix(s) => !keys().any(|k| k.ends_with(s.as_str())),
            CryptRule::EncryptedSuffix(s) => keys().any(|k| k.ends_with(s.as_str())),
            CryptRule::UnencryptedRegex(r) => !keys().any(|k| r.is_match(k)),
            CryptRule::EncryptedRegex(r) => keys().any(|k| r.is_match(k)),
            CryptRule::UnencryptedCommentRegex(r) => {
                !comments.iter().flatten().any(|c| r.is_match(c.as_ref()))
            }
            CryptRule::EncryptedCommentRegex(r) => {
                // The comment line that matches is itself left in the clear: skip the last
                // comment of the innermost group when judging a comment.
                let last_group = comments.len().saturating_sub(1);
                comments.iter().enumerate().any(|(i, group)| {
                    group.iter().enumerate().any(|(j, c)| {
                        let is_self = is_comment && i == last_group && j + 1 == group.len();
                        !is_self && r.is_match(c.as_ref())
                    })
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No comments precede the value.
    const NO_COMMENTS: &[Vec<&str>] = &[];
    const TOP_LEVEL: &[&str] = &[];

    #[test]
    fn suffix_rules_look_at_every_key_on_the_path() {
        let rule = CryptRule::default();
        assert!(rule.should_encrypt(&["db", "password"], NO_COMMENTS, false));
        assert!(!rule.should_encrypt(&["db_unencrypted", "password"], NO_COMMENTS, false));
        let rule = CryptRule::EncryptedSuffix("_secret".into());
        assert!(rule.should_encrypt(&["x_secret", "a"], NO_COMMENTS, false));
        assert!(!rule.should_encrypt(&["x", "a"], NO_COMMENTS, false));
    }

    #[test]
    fn regex_rules_are_unanchored() {
        let rule = CryptRule::from_field("encrypted_regex", "^(data|stringData)$")
            .unwrap()
            .unwrap();
        assert!(rule.should_encrypt(&["data", "password"], NO_COMMENTS, false));
        assert!(!rule.should_encrypt(&["metadata", "name"], NO_COMMENTS, false));
        let rule = CryptRule::from_field("unencrypted_regex", "pub")
            .unwrap()
            .unwrap();
        assert!(!rule.should_encrypt(&["a", "public_key"], NO_COMMENTS, false));
    }

    #[test]
    fn encrypted_comment_regex_leaves_the_marker_comment_clear() {
        let rule = CryptRule::from_field("encrypted_comment_regex", "sops:enc")
            .unwrap()
            .unwrap();
        let marker = vec![vec![" sops:enc"]];
        assert!(rule.should_encrypt(&["k"], &marker, false));
        assert!(!rule.should_encrypt(TOP_LEVEL, &marker, true));
        assert!(!rule.should_encrypt(&["k"], &[Vec::<&str>::new()], false));
    }

    #[test]
    fn more_than_one_rule_is_refused() {
        let err = CryptRule::from_fields([
            ("encrypted_regex", Some("a")),
            ("unencrypted_suffix", Some("_u")),
        ])
        .unwrap_err();
        assert!(matches!(err, CryptRuleError::Conflict(_)));
    }
}
