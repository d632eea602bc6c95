//! What can be wrong with `.sops.yaml`, and where.

use std::fmt;
use std::path::PathBuf;

/// A position in the config file, both 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// One problem in the config file, where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub at: Location,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid YAML in config file {}: {problem}", path.display())]
    Syntax { path: PathBuf, problem: Problem },
    #[error("invalid config file {}: {}", path.display(), join(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
    /// The file has no `creation_rules` key at all (sops then acts as if there were no config).
    #[error("config file {} has no creation rules", path.display())]
    NoCreationRules { path: PathBuf },
    #[error("no matching creation rules found in {} for {}", path.display(), file.display())]
    NoMatchingRule { path: PathBuf, file: PathBuf },
    #[error("invalid path_regex {pattern:?} in {} at {at}: {message}", path.display())]
    BadPathRegex {
        path: PathBuf,
        at: Location,
        pattern: String,
        message: String,
    },
    #[error(
        "creation rule in {} at {at} sets {}: only one of encrypted_suffix, unencrypted_suffix, \
         encrypted_regex, unencrypted_regex, encrypted_comment_regex or \
         unencrypted_comment_regex may be used per rule",
        path.display(),
        fields.join(" and ")
    )]
    ConflictingCryptRules {
        path: PathBuf,
        at: Location,
        fields: Vec<&'static str>,
    },
    #[error("invalid key configuration in {} at {}", path.display(), problem)]
    InvalidKeys { path: PathBuf, problem: Problem },
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
