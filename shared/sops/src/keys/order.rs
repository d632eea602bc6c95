//! The order in which the master keys of a key group are tried: sops' `--decryption-order`
//! (`SOPS_DECRYPTION_ORDER`, sops 3.8+).
//!
//! sops sorts a group's keys stably by the position of their type in the list (sops.go
//! `sortKeyGroupIndices`); types not in the list come after, in the group's own order, which
//! for a group read from a file is kms, gcp_kms, hckms, azure_kv, hc_vault, pgp, age
//! (stores/stores.go `internalGroupFrom`). The default list is `age,pgp`
//! (`sops.DefaultDecryptionOrder`). The order decides which key is asked first, and so
//! whether a slow or interactive one (a KMS call, gpg's pinentry, a YubiKey) is reached at all
//! when another key opens the group.

use std::fmt;
use std::str::FromStr;

use crate::keys::MasterKey;

/// Key types as sops names them in the list (each key source's `KeyTypeIdentifier`).
pub const AGE: &str = "age";
pub const PGP: &str = "pgp";
pub const KMS: &str = "kms";
pub const GCP_KMS: &str = "gcp_kms";
pub const AZURE_KV: &str = "azure_kv";
pub const HC_VAULT: &str = "hc_vault";

/// A list of key types, most preferred first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecryptionOrder(Vec<String>);

impl Default for DecryptionOrder {
    /// `age,pgp`, sops' default.
    fn default() -> Self {
        DecryptionOrder(vec![AGE.to_owned(), PGP.to_owned()])
    }
}

impl DecryptionOrder {
    /// No preference: every key in the group's own (file) order, as sops tries them where it
    /// passes no order (updatekeys, groups add/delete).
    pub fn file_order() -> Self {
        DecryptionOrder(Vec::new())
    }

    /// The types in order.
    pub fn types(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// `keys`, grouped by type in the group's own order, arranged for trying: stably by the
    /// position of their type in this list, unlisted types last.
    pub fn arrange<'g>(
        &self,
        keys: impl IntoIterator<Item = (&'static str, &'g dyn MasterKey)>,
    ) -> Vec<&'g dyn MasterKey> {
        let mut keys: Vec<(usize, &dyn MasterKey)> = keys
            .into_iter()
            .map(|(kind, key)| {
                let rank = self
                    .0
                    .iter()
                    .position(|t| t == kind)
                    .unwrap_or(self.0.len());
                (rank, key)
            })
            .collect();
        // Stable, as Go's sort.SliceStable.
        keys.sort_by_key(|(rank, _)| *rank);
        keys.into_iter().map(|(_, key)| key).collect()
    }
}

/// A key type named twice (sops: exit 112, "Duplicate decryption key type: T").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Duplicate decryption key type: {0}")]
pub struct DuplicateKeyType(pub String);

impl FromStr for DecryptionOrder {
    type Err = DuplicateKeyType;

    /// sops' parsing (cmd/sops/main.go `decryptionOrder`): empty is the default; otherwise the
    /// text split at commas, kept as written (no trimming: ` pgp` is an unknown type, which
    /// sops accepts and ranks last), a repeated type refused. Unknown types are accepted.
    fn from_str(text: &str) -> Result<Self, DuplicateKeyType> {
        if text.is_empty() {
            return Ok(DecryptionOrder::default());
        }
        let mut types: Vec<String> = Vec::new();
        for t in text.split(',') {
            if types.iter().any(|seen| seen == t) {
                return Err(DuplicateKeyType(t.to_owned()));
            }
            types.push(t.to_owned());
        }
        Ok(DecryptionOrder(types))
    }
}

impl fmt::Display for DecryptionOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    struct Key(&'static str);

    impl MasterKey for Key {
        fn describe(&self) -> String {
            self.0.to_owned()
        }
        fn unwrap(&self, _: &crate::keys::KeyAccess<'_>) -> Result<Zeroizing<Vec<u8>>, String> {
            Err("not a real key".to_owned())
        }
    }

    fn arranged(order: &DecryptionOrder, keys: &[(&'static str, Key)]) -> Vec<String> {
        order
            .arrange(
                keys.iter()
                    .map(|(kind, key)| (*kind, key as &dyn MasterKey)),
            )
            .iter()
            .map(|k| k.describe())
            .collect()
    }

    /// sops' TestSortKeyGroupIndices (sops_test.go, 3.13.3), case by case, the keys named by
    /// their index in the group.
    #[test]
    fn keys_are_sorted_stably_by_type_like_sops() {
        let cases: [(&[&'static str], &str, [&str; 4]); 4] = [
            (&[HC_VAULT, AGE, PGP], "", ["1", "2", "0", ""]),
            (&[HC_VAULT, PGP, AGE], "", ["2", "1", "0", ""]),
            (&[PGP, HC_VAULT, PGP, AGE], "", ["3", "0", "2", "1"]),
            (
                &[HC_VAULT, PGP, AGE],
                "pgp,age,hc_vault",
                ["1", "2", "0", ""],
            ),
        ];
        const NAMES: [&str; 4] = ["0", "1", "2", "3"];
        for (types, order, expected) in cases {
            let group: Vec<(&'static str, Key)> = types
                .iter()
                .zip(NAMES)
                .map(|(kind, name)| (*kind, Key(name)))
                .collect();
            let order: DecryptionOrder = order.parse().unwrap();
            let expected: Vec<&str> = expected.into_iter().filter(|e| !e.is_empty()).collect();
            assert_eq!(arranged(&order, &group), expected, "{types:?} by {order}");
        }
        // Where sops passes no order (updatekeys): the group's own order.
        let group = [(PGP, Key("0")), (AGE, Key("1"))];
        assert_eq!(arranged(&DecryptionOrder::file_order(), &group), ["0", "1"]);
    }

    #[test]
    fn parsing_follows_sops() {
        assert_eq!(
            "".parse::<DecryptionOrder>().unwrap(),
            DecryptionOrder::default()
        );
        assert_eq!(
            "pgp,age,pgp".parse::<DecryptionOrder>(),
            Err(DuplicateKeyType("pgp".to_owned()))
        );
        assert_eq!(
            "pgp,age,pgp"
                .parse::<DecryptionOrder>()
                .unwrap_err()
                .to_string(),
            "Duplicate decryption key type: pgp"
        );
        // Not trimmed, and unknown names accepted, as in sops.
        let odd: DecryptionOrder = "age, pgp,nonsense".parse().unwrap();
        assert_eq!(odd.types().collect::<Vec<_>>(), ["age", " pgp", "nonsense"]);
        assert_eq!(odd.to_string(), "age, pgp,nonsense");
    }
}
