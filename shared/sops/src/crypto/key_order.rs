//! Checking the MAC of a file whose mapping keys were reordered after it was encrypted.
//!
//! sops hashes the values of a file in walk order, and nothing else: not the keys, only the
//! order in which values come. A Kubernetes API server keeps a custom resource as a Go map and
//! gives it back with every mapping's keys sorted, so an object that was sops-encrypted as a
//! whole (sops-secrets-operator's `SopsSecret`) comes back from the cluster with the values and
//! the key *set* its author encrypted, but not their order, and its MAC no longer matches the
//! file as read. That operator gives up and ignores the MAC.
//!
//! Here the MAC is checked against every order the mappings could have been written in,
//! depth first, sharing the hash of each common prefix (a SHA-512 state is cloned, not
//! recomputed), the order as given first. Sequences keep their order (the API server keeps
//! it). A file whose value sequence under some order hashes to the stored MAC is verified:
//! that is exactly what a MAC check proves of a file read in that order, since keys are not
//! hashed. The search is bounded by a budget of candidate orders; beyond it the file is
//! refused rather than checked for long (a mapping of n keys has n! orders).
//!
//! What this gives up: sops binds a value to its key only through the AES-GCM additional data
//! of an encrypted value. Two values left in the clear under one mapping (`metadata.name` and
//! `metadata.namespace`) can be swapped and still verify here, as they would in a file whose
//! keys were also swapped; a caller that trusts such a value checks the swap too.

use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use crate::crypto::cipher;
use crate::crypto::data_key::DataKey;
use crate::crypto::values::{mac_aad, EncryptionError, MAC_ONLY_ENCRYPTED_INIT};
use crate::format::metadata::Metadata;
use crate::format::scalar_text::{self, ScalarError};
use crate::format::tree::{Item, Node, Tree};

#[derive(Debug, thiserror::Error)]
pub enum KeyOrderError {
    /// The stored MAC is missing, undecryptable or its `lastmodified` invalid.
    #[error(transparent)]
    Mac(EncryptionError),
    #[error("the value at {path}: {source}")]
    Scalar { path: String, source: ScalarError },
    /// Every order was tried: the values themselves differ from what was encrypted.
    #[error("MAC mismatch in every one of the {tried} orders the file's keys could have been written in: a value was changed, added or dropped after it was encrypted")]
    NoOrder { tried: u64 },
    /// The budget ran out before every order was tried.
    #[error("MAC mismatch in the first {tried} of the {orders} orders the file's keys could have been written in (the rest were not tried): a value was changed after it was encrypted, or the file has too many keys to find the order it was written in; encrypt it with its keys sorted (the order the API server keeps), e.g. `yq -P 'sort_keys(..)'` before `sops -e`")]
    TooManyOrders { tried: u64, orders: u128 },
}

/// The MAC's input, as a tree of choices: bytes, pieces in a fixed order, or pieces in any order.
enum Piece {
    Bytes(Zeroizing<Vec<u8>>),
    Seq(Vec<Piece>),
    AnyOrder(Vec<Piece>),
}

impl Piece {
    /// How many byte sequences this piece can give (saturating).
    fn orders(&self) -> u128 {
        match self {
            Piece::Bytes(_) => 1,
            Piece::Seq(parts) => parts
                .iter()
                .fold(1u128, |n, p| n.saturating_mul(p.orders())),
            Piece::AnyOrder(parts) => (1..=parts.len() as u128)
                .fold(1u128, |n, k| n.saturating_mul(k))
                .saturating_mul(
                    parts
                        .iter()
                        .fold(1u128, |n, p| n.saturating_mul(p.orders())),
                ),
        }
    }
}

/// What is still to be hashed, innermost first (a stack).
#[derive(Clone)]
enum Todo<'a> {
    One(&'a Piece),
    /// The pieces of an `AnyOrder` not placed yet.
    Rest(Vec<&'a Piece>),
}

struct Search<'a> {
    want: &'a [u8],
    tried: u64,
    budget: u64,
}

enum Step {
    Found,
    Exhausted,
    Continue,
}

impl Search<'_> {
    fn run(&mut self, mut todo: Vec<Todo<'_>>, mut hash: Sha512) -> Step {
        loop {
            let Some(next) = todo.pop() else {
                self.tried += 1;
                let computed = hex::encode_upper(hash.finalize());
                // Constant time, as the ordinary check: how much of a forged MAC matches must
                // not show in the timing.
                if bool::from(subtle::ConstantTimeEq::ct_eq(
                    self.want,
                    computed.as_bytes(),
                )) {
                    return Step::Found;
                }
                return if self.tried >= self.budget {
                    Step::Exhausted
                } else {
                    Step::Continue
                };
            };
            match next {
                Todo::One(Piece::Bytes(b)) => hash.update(&b[..]),
                Todo::One(Piece::Seq(parts)) => todo.extend(parts.iter().rev().map(Todo::One)),
                Todo::One(Piece::AnyOrder(parts)) => todo.push(Todo::Rest(parts.iter().collect())),
                Todo::Rest(rest) if rest.is_empty() => {}
                Todo::Rest(rest) => {
                    // Each remaining piece in turn goes first; the given order is tried first.
                    for i in 0..rest.len() {
                        let mut others = rest.clone();
                        let first = others.remove(i);
                        let mut branch = todo.clone();
                        branch.push(Todo::Rest(others));
                        branch.push(Todo::One(first));
                        match self.run(branch, hash.clone()) {
                            Step::Continue => {}
                            done => return done,
                        }
                    }
                    return Step::Continue;
                }
            }
        }
    }
}

fn piece(
    node: &Node,
    path: &mut Vec<String>,
    metadata: &Metadata,
) -> Result<Option<Piece>, KeyOrderError> {
    Ok(match node {
        Node::Scalar(scalar) => {
            let counted = !metadata.mac_only_encrypted
                || metadata
                    .crypt_rule
                    .should_encrypt(path, &[] as &[Vec<String>], false);
            if !counted {
                return Ok(None);
            }
            scalar_text::mac_bytes(scalar)
                .map_err(|source| KeyOrderError::Scalar {
                    path: path.join(":"),
                    source,
                })?
                .map(|b| Piece::Bytes(Zeroizing::new(b.into_owned())))
        }
        Node::Comment(_) => None,
        Node::Seq(items) => {
            let mut parts = Vec::new();
            for item in items {
                parts.extend(piece(item, path, metadata)?);
            }
            Some(Piece::Seq(parts))
        }
        Node::Map(items) => {
            let mut parts = Vec::new();
            for item in items {
                if let Item::Pair(key, value) = item {
                    path.push(key.clone());
                    let part = piece(value, path, metadata);
                    path.pop();
                    parts.extend(part?);
                }
            }
            Some(if parts.len() < 2 {
                Piece::Seq(parts)
            } else {
                Piece::AnyOrder(parts)
            })
        }
    })
}

/// Checks the MAC of the decrypted `tree` against every order of its mappings' keys, at most
/// `budget` of them; `Ok(orders tried)` when one matches.
pub(crate) fn verify(
    tree: &Tree,
    metadata: &Metadata,
    key: &DataKey,
    budget: u64,
) -> Result<u64, KeyOrderError> {
    if metadata.mac.is_empty() {
        return Err(KeyOrderError::Mac(EncryptionError::MacMissing));
    }
    let aad = mac_aad(&metadata.last_modified).map_err(KeyOrderError::Mac)?;
    let (stored, _) = cipher::decrypt(&metadata.mac, key, aad.as_bytes())
        .map_err(|e| KeyOrderError::Mac(EncryptionError::MacUndecryptable(e)))?;
    let mut documents = Vec::new();
    for doc in &tree.documents {
        documents.extend(piece(doc, &mut Vec::new(), metadata)?);
    }
    let whole = Piece::Seq(documents);
    let mut hash = Sha512::new();
    if metadata.mac_only_encrypted {
        hash.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    let mut search = Search {
        want: &stored,
        tried: 0,
        budget: budget.max(1),
    };
    match search.run(vec![Todo::One(&whole)], hash) {
        Step::Found => Ok(search.tried),
        Step::Exhausted if whole.orders() > u128::from(search.tried) => {
            Err(KeyOrderError::TooManyOrders {
                tried: search.tried,
                orders: whole.orders(),
            })
        }
        Step::Exhausted | Step::Continue => Err(KeyOrderError::NoOrder {
            tried: search.tried,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::values::encrypt_tree;
    use crate::format::crypt_rule::{CryptRule, CryptRuleKind};
    use crate::format::metadata::KeyGroup;
    use crate::format::tree::{Kind, Scalar};

    fn pair(k: &str, v: Node) -> Item {
        Item::Pair(k.into(), v)
    }

    /// An isindir SopsSecret as its author wrote it (keys in the author's order).
    fn authored() -> Tree {
        let template = Node::Map(vec![
            pair("name", Node::str("db")),
            pair("labels", Node::Map(vec![pair("app", Node::str("web"))])),
            pair(
                "stringData",
                Node::Map(vec![
                    pair("user", Node::str("admin")),
                    pair("password", Node::str("S3CRET")),
                ]),
            ),
            pair("data", Node::Map(vec![pair("token", Node::str("dG9r"))])),
        ]);
        Tree {
            documents: vec![Node::Map(vec![
                pair("apiVersion", Node::str("isindir.github.com/v1alpha3")),
                pair("kind", Node::str("SopsSecret")),
                pair(
                    "metadata",
                    Node::Map(vec![
                        pair("name", Node::str("s")),
                        pair("namespace", Node::str("team-a")),
                    ]),
                ),
                pair(
                    "spec",
                    Node::Map(vec![
                        pair("secretTemplates", Node::Seq(vec![template])),
                        pair("suspend", Node::Scalar(Scalar::new(Kind::Bool, "false"))),
                    ]),
                ),
            ])],
        }
    }

    /// Every mapping's keys sorted, as the API server gives a custom resource back.
    fn sorted(node: &mut Node) {
        match node {
            Node::Map(items) => {
                items.sort_by(|a, b| match (a, b) {
                    (Item::Pair(x, _), Item::Pair(y, _)) => x.cmp(y),
                    _ => std::cmp::Ordering::Equal,
                });
                for item in items {
                    if let Item::Pair(_, v) = item {
                        sorted(v);
                    }
                }
            }
            Node::Seq(items) => items.iter_mut().for_each(sorted),
            _ => {}
        }
    }

    fn encrypted(rule: CryptRule, mac_only: bool) -> (Tree, Metadata, DataKey) {
        let key = DataKey::generate();
        let mut m = Metadata::new(vec![KeyGroup::default()], rule);
        m.mac_only_encrypted = mac_only;
        let mut tree = authored();
        encrypt_tree(&mut tree, &key, &mut m, None).unwrap();
        (tree, m, key)
    }

    fn suffix() -> CryptRule {
        CryptRule::new(CryptRuleKind::EncryptedSuffix, "Templates").unwrap()
    }

    fn reordered_plaintext() -> Tree {
        let mut tree = authored();
        sorted(&mut tree.documents[0]);
        tree
    }

    #[test]
    fn a_whole_object_with_its_keys_sorted_verifies_in_the_authors_order() {
        for mac_only in [false, true] {
            let (_, m, key) = encrypted(suffix(), mac_only);
            let tried = verify(&reordered_plaintext(), &m, &key, 100_000).unwrap();
            // The sorted order is not the author's, so more than one order was tried.
            assert!(tried > 1, "mac_only={mac_only}: {tried}");
            // As read, in the author's order: the first order tried.
            assert_eq!(verify(&authored(), &m, &key, 100_000).unwrap(), 1);
        }
    }

    #[test]
    fn a_changed_moved_or_added_value_matches_no_order() {
        let (_, m, key) = encrypted(suffix(), false);
        let mut changed = reordered_plaintext();
        let ns = changed.documents[0]
            .get_mut("metadata")
            .and_then(|md| md.get_mut("namespace"))
            .unwrap();
        *ns = Node::str("team-b");
        let e = verify(&changed, &m, &key, 1_000_000).unwrap_err();
        assert!(
            matches!(e, KeyOrderError::NoOrder { tried } if tried > 1),
            "{e}"
        );
        let mut added = reordered_plaintext();
        if let Some(Node::Map(items)) = added.documents[0].get_mut("metadata") {
            items.push(pair("labels", Node::Map(vec![pair("x", Node::str("y"))])));
        }
        assert!(matches!(
            verify(&added, &m, &key, 1_000_000),
            Err(KeyOrderError::NoOrder { .. })
        ));
        // A budget smaller than the orders there are: said so, with the way out.
        let e = verify(&changed, &m, &key, 3).unwrap_err();
        assert!(
            matches!(e, KeyOrderError::TooManyOrders { tried: 3, orders } if orders > 3),
            "{e}"
        );
        assert!(e.to_string().contains("sort_keys"), "{e}");
        assert!(!e.to_string().contains("S3CRET"));
    }

    #[test]
    fn a_missing_mac_is_said_so() {
        let (_, mut m, key) = encrypted(suffix(), false);
        m.mac.clear();
        assert!(matches!(
            verify(&authored(), &m, &key, 10),
            Err(KeyOrderError::Mac(EncryptionError::MacMissing))
        ));
    }
}
