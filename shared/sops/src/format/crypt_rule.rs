//! Which values of a file are encrypted: at most one rule per file, as in sops.
//!
//! A file's metadata, a `.sops.yaml` creation rule and the command line name the rule by the
//! same six field names (`encrypted_regex`, `unencrypted_suffix`...); [`CryptRuleKind`] is the
//! one list of them, and a rule is a kind with its suffix or regex.

use regex::Regex;

pub const DEFAULT_UNENCRYPTED_SUFFIX: &str = "_unencrypted";

/// The kinds of crypt rule sops knows, each named by its metadata / `.sops.yaml` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CryptRuleKind {
    UnencryptedSuffix,
    EncryptedSuffix,
    UnencryptedRegex,
    EncryptedRegex,
    UnencryptedCommentRegex,
    EncryptedCommentRegex,
}

impl CryptRuleKind {
    /// Every kind, in the order sops checks a file's metadata for them.
    pub const ALL: [CryptRuleKind; 6] = [
        CryptRuleKind::UnencryptedSuffix,
        CryptRuleKind::EncryptedSuffix,
        CryptRuleKind::UnencryptedRegex,
        CryptRuleKind::EncryptedRegex,
        CryptRuleKind::UnencryptedCommentRegex,
        CryptRuleKind::EncryptedCommentRegex,
    ];

    /// The metadata / `.sops.yaml` field name (the command-line flag is `--` and the same name
    /// with dashes).
    pub const fn field(self) -> &'static str {
        match self {
            CryptRuleKind::UnencryptedSuffix => "unencrypted_suffix",
            CryptRuleKind::EncryptedSuffix => "encrypted_suffix",
            CryptRuleKind::UnencryptedRegex => "unencrypted_regex",
            CryptRuleKind::EncryptedRegex => "encrypted_regex",
            CryptRuleKind::UnencryptedCommentRegex => "unencrypted_comment_regex",
            CryptRuleKind::EncryptedCommentRegex => "encrypted_comment_regex",
        }
    }

    /// The kind a metadata / `.sops.yaml` field names, if it names one.
    pub fn from_field(field: &str) -> Option<CryptRuleKind> {
        CryptRuleKind::ALL.into_iter().find(|k| k.field() == field)
    }

    /// Whether the rule's value is a regex (else it is a key suffix).
    pub fn is_regex(self) -> bool {
        !matches!(
            self,
            CryptRuleKind::UnencryptedSuffix | CryptRuleKind::EncryptedSuffix
        )
    }

    /// Whether the rule looks at the comments before a value (else at the keys on its path).
    fn on_comments(self) -> bool {
        matches!(
            self,
            CryptRuleKind::UnencryptedCommentRegex | CryptRuleKind::EncryptedCommentRegex
        )
    }
}

/// A crypt rule: its kind, and the suffix or compiled regex it matches with.
#[derive(Clone, Debug)]
pub struct CryptRule {
    kind: CryptRuleKind,
    pattern: Pattern,
}

#[derive(Clone, Debug)]
enum Pattern {
    Suffix(String),
    Regex(Regex),
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
        CryptRule {
            kind: CryptRuleKind::UnencryptedSuffix,
            pattern: Pattern::Suffix(DEFAULT_UNENCRYPTED_SUFFIX.to_string()),
        }
    }
}

impl PartialEq for CryptRule {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.value() == other.value()
    }
}

impl CryptRule {
    /// The metadata / `.sops.yaml` field names, in the order sops checks them.
    pub const FIELDS: [&'static str; 6] = [
        CryptRuleKind::ALL[0].field(),
        CryptRuleKind::ALL[1].field(),
        CryptRuleKind::ALL[2].field(),
        CryptRuleKind::ALL[3].field(),
        CryptRuleKind::ALL[4].field(),
        CryptRuleKind::ALL[5].field(),
    ];

    /// A rule of `kind` with its suffix or regex; an error when the regex does not compile.
    pub fn new(kind: CryptRuleKind, value: &str) -> Result<CryptRule, CryptRuleError> {
        let pattern = if kind.is_regex() {
            Pattern::Regex(Regex::new(value).map_err(|e| CryptRuleError::BadRegex {
                field: kind.field(),
                pattern: value.to_string(),
                message: e.to_string(),
            })?)
        } else {
            Pattern::Suffix(value.to_string())
        };
        Ok(CryptRule { kind, pattern })
    }

    /// At most one rule from a set of optional fields (command line or config); sops refuses
    /// more than one. An empty value means unset.
    pub fn from_fields<'a>(
        fields: impl IntoIterator<Item = (CryptRuleKind, Option<&'a str>)>,
    ) -> Result<Option<CryptRule>, CryptRuleError> {
        let set: Vec<(CryptRuleKind, &str)> = fields
            .into_iter()
            .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (k, v)))
            .collect();
        match set.as_slice() {
            [] => Ok(None),
            [(k, v)] => CryptRule::new(*k, v).map(Some),
            many => Err(CryptRuleError::Conflict(
                many.iter().map(|(k, _)| k.field()).collect(),
            )),
        }
    }

    pub fn kind(&self) -> CryptRuleKind {
        self.kind
    }

    pub fn field(&self) -> &'static str {
        self.kind.field()
    }

    pub fn value(&self) -> &str {
        match &self.pattern {
            Pattern::Suffix(s) => s,
            Pattern::Regex(r) => r.as_str(),
        }
    }

    /// The regex of an `unencrypted_comment_regex` rule: sops refuses to write a comment whose
    /// ciphertext would match it, since reading the file back would leave it encrypted.
    pub fn unencrypted_comment_regex(&self) -> Option<&Regex> {
        match (&self.pattern, self.kind) {
            (Pattern::Regex(r), CryptRuleKind::UnencryptedCommentRegex) => Some(r),
            _ => None,
        }
    }

    fn matches(&self, text: &str) -> bool {
        match &self.pattern {
            Pattern::Suffix(s) => text.ends_with(s.as_str()),
            Pattern::Regex(r) => r.is_match(text),
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
        if !self.kind.on_comments() {
            let hit = path.iter().any(|k| self.matches(k.as_ref()));
            return match self.kind {
                CryptRuleKind::EncryptedSuffix | CryptRuleKind::EncryptedRegex => hit,
                _ => !hit,
            };
        }
        if self.kind == CryptRuleKind::UnencryptedCommentRegex {
            return !comments.iter().flatten().any(|c| self.matches(c.as_ref()));
        }
        // encrypted_comment_regex: the comment line that matches is itself left in the clear,
        // so skip the last comment of the innermost group when judging a comment.
        let last_group = comments.len().saturating_sub(1);
        comments.iter().enumerate().any(|(i, group)| {
            group.iter().enumerate().any(|(j, c)| {
                let is_self = is_comment && i == last_group && j + 1 == group.len();
                !is_self && self.matches(c.as_ref())
            })
        })
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
        let rule = CryptRule::new(CryptRuleKind::EncryptedSuffix, "_secret").unwrap();
        assert!(rule.should_encrypt(&["x_secret", "a"], NO_COMMENTS, false));
        assert!(!rule.should_encrypt(&["x", "a"], NO_COMMENTS, false));
    }

    #[test]
    fn regex_rules_are_unanchored() {
        let rule = CryptRule::new(CryptRuleKind::EncryptedRegex, "^(data|stringData)$").unwrap();
        assert!(rule.should_encrypt(&["data", "password"], NO_COMMENTS, false));
        assert!(!rule.should_encrypt(&["metadata", "name"], NO_COMMENTS, false));
        let rule = CryptRule::new(CryptRuleKind::UnencryptedRegex, "pub").unwrap();
        assert!(!rule.should_encrypt(&["a", "public_key"], NO_COMMENTS, false));
    }

    #[test]
    fn encrypted_comment_regex_leaves_the_marker_comment_clear() {
        let rule = CryptRule::new(CryptRuleKind::EncryptedCommentRegex, "sops:enc").unwrap();
        let marker = vec![vec![" sops:enc"]];
        assert!(rule.should_encrypt(&["k"], &marker, false));
        assert!(!rule.should_encrypt(TOP_LEVEL, &marker, true));
        assert!(!rule.should_encrypt(&["k"], &[Vec::<&str>::new()], false));
    }

    #[test]
    fn more_than_one_rule_is_refused() {
        let err = CryptRule::from_fields([
            (CryptRuleKind::EncryptedRegex, Some("a")),
            (CryptRuleKind::UnencryptedSuffix, Some("_u")),
        ])
        .unwrap_err();
        assert!(matches!(err, CryptRuleError::Conflict(_)));
    }
}
