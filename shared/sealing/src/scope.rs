//! Sealing scopes: what a sealed value is bound to, through the RSA-OAEP label.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

pub const CLUSTER_WIDE_ANNOTATION: &str = "sealedsecrets.bitnami.com/cluster-wide";
pub const NAMESPACE_WIDE_ANNOTATION: &str = "sealedsecrets.bitnami.com/namespace-wide";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// Bound to one namespace and name: label `"<namespace>/<name>"` (the default).
    #[default]
    Strict,
    /// Bound to a namespace, any name: label `"<namespace>"`.
    NamespaceWide,
    /// Opens anywhere in the cluster: empty label.
    ClusterWide,
}

impl Scope {
    /// The OAEP label a value of this scope is sealed under.
    pub fn label(self, namespace: &str, name: &str) -> Vec<u8> {
        match self {
            Scope::Strict => format!("{namespace}/{name}").into_bytes(),
            Scope::NamespaceWide => namespace.as_bytes().to_vec(),
            Scope::ClusterWide => Vec::new(),
        }
    }

    /// The scope annotated on an object; `cluster-wide: "true"` wins over `namespace-wide`, and
    /// any other value than the exact string `"true"` means no.
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Scope {
        let on = |k: &str| annotations.get(k).is_some_and(|v| v == "true");
        if on(CLUSTER_WIDE_ANNOTATION) {
            Scope::ClusterWide
        } else if on(NAMESPACE_WIDE_ANNOTATION) {
            Scope::NamespaceWide
        } else {
            Scope::Strict
        }
    }

    /// Rewrites both scope annotations to say this scope (strict: neither is present).
    pub fn write_annotations(self, annotations: &mut BTreeMap<String, String>) {
        annotations.remove(CLUSTER_WIDE_ANNOTATION);
        annotations.remove(NAMESPACE_WIDE_ANNOTATION);
        match self {
            Scope::Strict => {}
            Scope::NamespaceWide => {
                annotations.insert(NAMESPACE_WIDE_ANNOTATION.into(), "true".into());
            }
            Scope::ClusterWide => {
                annotations.insert(CLUSTER_WIDE_ANNOTATION.into(), "true".into());
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scope::Strict => "strict",
            Scope::NamespaceWide => "namespace-wide",
            Scope::ClusterWide => "cluster-wide",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown scope {0:?}: must be one of strict, namespace-wide, cluster-wide")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    /// kubeseal's names; the empty string is the default (strict), as kubeseal takes it.
    fn from_str(s: &str) -> Result<Scope, UnknownScope> {
        match s {
            "" | "strict" => Ok(Scope::Strict),
            "namespace-wide" => Ok(Scope::NamespaceWide),
            "cluster-wide" => Ok(Scope::ClusterWide),
            other => Err(UnknownScope(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_match_sealed_secrets() {
        assert_eq!(Scope::Strict.label("ns", "name"), b"ns/name");
        assert_eq!(Scope::NamespaceWide.label("ns", "name"), b"ns");
        assert_eq!(Scope::ClusterWide.label("ns", "name"), b"");
    }

    #[test]
    fn cluster_wide_wins_and_only_exact_true_counts() {
        let both = annotations(&[
            (CLUSTER_WIDE_ANNOTATION, "true"),
            (NAMESPACE_WIDE_ANNOTATION, "true"),
        ]);
        assert_eq!(Scope::from_annotations(&both), Scope::ClusterWide);
        let ns = annotations(&[(NAMESPACE_WIDE_ANNOTATION, "true")]);
        assert_eq!(Scope::from_annotations(&ns), Scope::NamespaceWide);
        let not_true = annotations(&[(CLUSTER_WIDE_ANNOTATION, "True")]);
        assert_eq!(Scope::from_annotations(&not_true), Scope::Strict);
        assert_eq!(Scope::from_annotations(&BTreeMap::new()), Scope::Strict);
    }

    #[test]
    fn writing_annotations_replaces_the_old_scope() {
        let mut a = annotations(&[(CLUSTER_WIDE_ANNOTATION, "true"), ("other", "kept")]);
        Scope::NamespaceWide.write_annotations(&mut a);
        assert_eq!(
            a,
            annotations(&[(NAMESPACE_WIDE_ANNOTATION, "true"), ("other", "kept")])
        );
        Scope::Strict.write_annotations(&mut a);
        assert_eq!(a, annotations(&[("other", "kept")]));
    }

    #[test]
    fn parses_kubeseal_names() {
        for s in [Scope::Strict, Scope::NamespaceWide, Scope::ClusterWide] {
            assert_eq!(s.name().parse::<Scope>().unwrap(), s);
        }
        assert_eq!("".parse::<Scope>().unwrap(), Scope::Strict);
        assert!("global".parse::<Scope>().is_err());
    }
}
