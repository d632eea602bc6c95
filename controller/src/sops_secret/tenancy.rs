//! Which namespace a SopsSecret's file may be decrypted into (issue #13 item 8).
//!
//! The file is in Git, readable by every tenant, and its own metadata names the master keys
//! (even the KMS key and role). So whoever holds the keys that open a file, the file itself has
//! to say where its plaintext may go, or a tenant copies another team's file into their own
//! namespace and reads the Secret the controller makes:
//!
//! 1. A Secret manifest in the MAC-verified file that names a `metadata.namespace` other than
//!    the SopsSecret's is refused, whatever keys opened it: never relocated, and nothing from
//!    the file is written.
//! 2. The controller's own keys (`--sops-age-key-secret`, its KMS access) open a file for a
//!    SopsSecret only when the file is bound to that namespace: a stream of Secret manifests
//!    that each name it, under the MAC. A namespace listed in `--sops-trusted-namespaces` (or
//!    `*`) takes any file, as before this rule.
//! 3. Keys from a Secret in the SopsSecret's own namespace (`spec.decryption.secretRef`) need no
//!    binding: whoever holds them may decrypt the file anyway. Rule 1 still holds.
//!
//! Every check here reads the verified tree only, runs after the MAC check, and never quotes a
//! value (not even the namespace a file names: it may have been encrypted).

use std::collections::BTreeSet;

use enseal_sops::format::tree::{Kind, Node, Tree};

use super::render::{self, SopsError};

/// `--sops-trusted-namespaces`: where the controller's keys decrypt files that name no
/// namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustedNamespaces {
    /// `*`: every namespace (a single-tenant cluster; the behaviour before the binding rule).
    All,
    /// These namespaces only (none by default).
    Listed(BTreeSet<String>),
}

impl Default for TrustedNamespaces {
    /// None: safe for a cluster shared by tenants.
    fn default() -> Self {
        TrustedNamespaces::Listed(BTreeSet::new())
    }
}

impl TrustedNamespaces {
    /// From the flag's comma-separated entries; blanks are ignored, `*` means all.
    pub fn from_flag(entries: &[String]) -> TrustedNamespaces {
        let names: BTreeSet<String> = entries
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect();
        if names.contains("*") {
            TrustedNamespaces::All
        } else {
            TrustedNamespaces::Listed(names)
        }
    }

    pub fn trusts(&self, namespace: &str) -> bool {
        match self {
            TrustedNamespaces::All => true,
            TrustedNamespaces::Listed(names) => names.contains(namespace),
        }
    }
}

/// Whose keys opened the file; decides what the file must say about its namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opener {
    /// The controller's keys, in a namespace the admin trusts (or not).
    Cluster { trusted: bool },
    /// The age identities of a key Secret in the SopsSecret's own namespace.
    NamespaceKey,
}

/// What one Secret manifest says in `metadata.namespace`.
enum Named {
    Nothing,
    This,
    /// Another namespace, or something that is not a namespace name (a mapping, a list).
    Other,
}

fn named_namespace(doc: &Node, namespace: &str) -> Named {
    let Some(meta @ Node::Map(_)) = doc.get("metadata") else {
        return Named::Nothing;
    };
    let mut named = Named::Nothing;
    // Every `namespace` key, not just the first: a file with two must not be read one way here
    // and another way by whoever reads it next.
    for (key, value) in render::pairs(meta) {
        if key != "namespace" {
            continue;
        }
        match value {
            // Empty and null name no namespace, as for kubectl.
            Node::Scalar(s) if s.kind == Kind::Null || s.value.is_empty() => {}
            Node::Scalar(s) if s.text() == Some(namespace) => named = Named::This,
            _ => return Named::Other,
        }
    }
    named
}

/// Checks the rules above on the verified tree of the file. `mac_only_encrypted` is the file's
/// metadata flag: then values left in the clear are outside the MAC, so a `metadata.namespace`
/// binds only when it was encrypted; `encrypted_tree` gives the file's tree as stored (values
/// still `ENC[...]`) to tell, and is only called in that case.
pub fn check(
    spec: &enseal_sops_secret::SopsSecretSpec,
    tree: &Tree,
    namespace: &str,
    opener: Opener,
    mac_only_encrypted: bool,
    encrypted_tree: impl FnOnce() -> Option<Tree>,
) -> Result<(), SopsError> {
    let manifests = render::secret_manifests(spec, tree);
    for (i, doc) in manifests.iter().flatten().enumerate() {
        if let Named::Other = named_namespace(doc, namespace) {
            return Err(SopsError::NamespaceMismatch {
                document: i + 1,
                namespace: namespace.to_owned(),
            });
        }
    }
    if opener != (Opener::Cluster { trusted: false }) {
        return Ok(());
    }
    let not_bound = |why: String| SopsError::NamespaceNotBound {
        namespace: namespace.to_owned(),
        why,
    };
    let Some(manifests) = manifests else {
        return Err(not_bound(
            "it is not a stream of Secret manifests, so it names no namespace".into(),
        ));
    };
    for (i, doc) in manifests.iter().enumerate() {
        if !matches!(named_namespace(doc, namespace), Named::This) {
            return Err(not_bound(format!(
                "document {} (a Secret) has no metadata.namespace",
                i + 1
            )));
        }
    }
    if mac_only_encrypted {
        let stored = encrypted_tree().unwrap_or_default();
        for i in 0..manifests.len() {
            let sealed = stored
                .documents
                .get(i)
                .and_then(|d| d.get("metadata"))
                .and_then(|m| m.get("namespace"))
                .and_then(Node::as_scalar)
                .is_some_and(|s| s.value.starts_with(b"ENC["));
            if !sealed {
                return Err(not_bound(format!(
                    "the file is encrypted with mac_only_encrypted and document {}'s \
                     metadata.namespace is in the clear, so the MAC does not vouch for it \
                     (encrypt it too, e.g. encrypted_regex: ^(data|stringData|namespace)$)",
                    i + 1
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use enseal_sops::format::tree::Item;
    use enseal_sops::stores::{self, Format};
    use enseal_sops_secret::{SopsFormat, SopsSecretSpec};

    const UNTRUSTED: Opener = Opener::Cluster { trusted: false };
    const TRUSTED: Opener = Opener::Cluster { trusted: true };

    fn spec(format: SopsFormat) -> SopsSecretSpec {
        SopsSecretSpec {
            format,
            ..SopsSecretSpec::default()
        }
    }

    fn tree(format: Format, text: &str) -> Tree {
        stores::store_for(format)
            .parse(text.as_bytes())
            .unwrap()
            .tree
    }

    fn check_yaml(text: &str, opener: Opener) -> Result<(), SopsError> {
        check(
            &spec(SopsFormat::Yaml),
            &tree(Format::Yaml, text),
            "team-b",
            opener,
            false,
            || unreachable!("all values are under the MAC"),
        )
    }

    const BOUND_TO_A: &str =
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: team-a\nstringData:\n  password: A-S3CRET\n";
    const BOUND_TO_B: &str =
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: team-b\nstringData:\n  password: B-S3CRET\n";

    #[test]
    fn a_manifest_naming_another_namespace_is_refused_whatever_opened_it() {
        for opener in [UNTRUSTED, TRUSTED, Opener::NamespaceKey] {
            let e = check_yaml(BOUND_TO_A, opener).unwrap_err();
            assert_eq!(e.reason(), "NamespaceMismatch", "{opener:?}");
            let msg = e.to_string();
            assert!(
                msg.contains("\"team-b\"") && msg.contains("document 1"),
                "{msg}"
            );
            assert!(!msg.contains("team-a") && !msg.contains("S3CRET"), "{msg}");
        }
        // The second document of a stream, a non-name: the same.
        let second = format!("{BOUND_TO_B}---\n{BOUND_TO_A}");
        let e = check_yaml(&second, Opener::NamespaceKey).unwrap_err();
        assert!(e.to_string().contains("document 2"), "{e}");
        let e = check_yaml(
            "kind: Secret\nmetadata: {name: db, namespace: [team-b]}\n",
            TRUSTED,
        );
        assert_eq!(e.unwrap_err().reason(), "NamespaceMismatch");
        // A second `namespace` key (the YAML store refuses one; a tree from another reader
        // might not): any foreign one refuses the file.
        let twice = Tree {
            documents: vec![Node::Map(vec![
                Item::Pair("kind".into(), Node::str("Secret")),
                Item::Pair(
                    "metadata".into(),
                    Node::Map(vec![
                        Item::Pair("namespace".into(), Node::str("team-b")),
                        Item::Pair("namespace".into(), Node::str("team-a")),
                    ]),
                ),
            ])],
        };
        let e = check(
            &spec(SopsFormat::Yaml),
            &twice,
            "team-b",
            TRUSTED,
            false,
            || None,
        );
        assert_eq!(e.unwrap_err().reason(), "NamespaceMismatch");
    }

    #[test]
    fn cluster_keys_need_a_file_bound_to_the_namespace() {
        assert!(check_yaml(BOUND_TO_B, UNTRUSTED).is_ok());
        let unbound = [
            (SopsFormat::Yaml, Format::Yaml, "password: S3CRET\n"),
            (SopsFormat::Json, Format::Json, "{\"password\": \"S3CRET\"}"),
            (SopsFormat::Dotenv, Format::Dotenv, "PASSWORD=S3CRET\n"),
            (SopsFormat::Ini, Format::Ini, "[db]\npassword = S3CRET\n"),
            (SopsFormat::Binary, Format::Binary, "S3CRET"),
            (
                SopsFormat::Yaml,
                Format::Yaml,
                "kind: Secret\nmetadata: {name: db}\nstringData: {p: S3CRET}\n",
            ),
            (
                SopsFormat::Yaml,
                Format::Yaml,
                "kind: Secret\nmetadata: {name: db, namespace: ''}\nstringData: {p: S3CRET}\n",
            ),
        ];
        for (sops_format, format, text) in unbound {
            let s = spec(sops_format);
            let t = tree(format, text);
            let e = check(&s, &t, "team-b", UNTRUSTED, false, || None).unwrap_err();
            assert_eq!(e.reason(), "NamespaceNotBound", "{text}");
            let msg = e.to_string();
            for advice in [
                "metadata.namespace",
                "secretRef",
                "--sops-trusted-namespaces",
            ] {
                assert!(msg.contains(advice), "{msg}");
            }
            assert!(!msg.contains("S3CRET"), "{msg}");
            // Trusted namespace or a namespace key: the same file is fine.
            for opener in [TRUSTED, Opener::NamespaceKey] {
                assert!(check(&s, &t, "team-b", opener, false, || None).is_ok());
            }
        }
        // One bound manifest does not bind the others.
        let half = format!("{BOUND_TO_B}---\nkind: Secret\nmetadata: {{name: other}}\n");
        let e = check_yaml(&half, UNTRUSTED).unwrap_err();
        assert!(e.to_string().contains("document 2"), "{e}");
    }

    #[test]
    fn under_mac_only_encrypted_only_an_encrypted_namespace_binds() {
        let s = spec(SopsFormat::Yaml);
        let t = tree(Format::Yaml, BOUND_TO_B);
        let stored = |namespace: &str| {
            let text = format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: {namespace}\nstringData:\n  password: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\n"
            );
            move || Some(tree(Format::Yaml, &text))
        };
        let e = check(&s, &t, "team-b", UNTRUSTED, true, stored("team-b")).unwrap_err();
        assert_eq!(e.reason(), "NamespaceNotBound");
        assert!(e.to_string().contains("mac_only_encrypted"), "{e}");
        let sealed = stored("ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]");
        assert!(check(&s, &t, "team-b", UNTRUSTED, true, sealed).is_ok());
        assert!(check(&s, &t, "team-b", TRUSTED, true, stored("team-b")).is_ok());
    }

    #[test]
    fn the_trusted_list_takes_names_and_star() {
        let none = TrustedNamespaces::from_flag(&[]);
        assert!(!none.trusts("default"));
        let listed = TrustedNamespaces::from_flag(&["a".into(), " b ".into(), "".into()]);
        assert!(listed.trusts("a") && listed.trusts("b") && !listed.trusts("c"));
        let all = TrustedNamespaces::from_flag(&["a".into(), "*".into()]);
        assert_eq!(all, TrustedNamespaces::All);
        assert!(all.trusts("anything"));
    }
}
