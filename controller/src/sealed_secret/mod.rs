//! SealedSecret (bitnami.com/v1alpha1): the reconciler that unseals objects into Secrets with
//! Sealed Secrets' ownership rules. The type and every sealing rule are enseal_sealing's.

mod crd;
pub mod reconcile;
