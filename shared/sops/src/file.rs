//! Whole-file operations shared by the CLI and the controller: open an encrypted file (parse,
//! unwrap the data key, decrypt, check the MAC) and seal a tree into an encrypted file.

use crate::crypto::data_key::DataKey;
use crate::crypto::values::{self, CiphertextMemory, EncryptionError, MacCheck};
use crate::format::metadata::{Metadata, MetadataError};
use crate::keys::groups::{self, KeyGroupError, Keyring};
use crate::stores::{Parsed, Store, StoreError, WriteOptions};

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("sops metadata not found: the file is not encrypted")]
    NotEncrypted,
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    KeyGroup(#[from] KeyGroupError),
    #[error(transparent)]
    Encryption(#[from] EncryptionError),
}

/// An encrypted file, opened: `parsed.tree` holds the plaintext, `parsed.source` still describes
/// the encrypted bytes (so writing it back keeps their layout).
pub struct Opened {
    pub parsed: Parsed,
    pub metadata: Metadata,
    pub key: DataKey,
    pub memory: CiphertextMemory,
}

/// Parses `bytes` and returns its metadata; `NotEncrypted` when it has none.
pub fn read_metadata(parsed: &Parsed) -> Result<Metadata, FileError> {
    let node = parsed.metadata.as_ref().ok_or(FileError::NotEncrypted)?;
    Ok(Metadata::from_node(node)?)
}

pub fn open(
    store: &dyn Store,
    bytes: &[u8],
    keyring: &Keyring,
    ignore_mac: bool,
) -> Result<Opened, FileError> {
    let parsed = store.parse(bytes)?;
    open_parsed(parsed, keyring, ignore_mac)
}

pub fn open_parsed(
    parsed: Parsed,
    keyring: &Keyring,
    ignore_mac: bool,
) -> Result<Opened, FileError> {
    open_with(parsed, keyring, ignore_mac, false)
}

/// Like [`open_parsed`], for a file that will be changed and written back: `Opened::memory`
/// then holds each value's ciphertext, so that unchanged values keep it.
pub fn open_for_edit(
    parsed: Parsed,
    keyring: &Keyring,
    ignore_mac: bool,
) -> Result<Opened, FileError> {
    open_with(parsed, keyring, ignore_mac, true)
}

fn open_with(
    parsed: Parsed,
    keyring: &Keyring,
    ignore_mac: bool,
    remember: bool,
) -> Result<Opened, FileError> {
    let (opened, mac) = open_deferring(parsed, keyring, ignore_mac, remember)?;
    mac.verify()?;
    Ok(opened)
}

/// Like [`open_parsed`], with the MAC check handed back rather than made, so that the caller
/// can prepare its output meanwhile. Nothing of the opened file may leave the process before
/// [`MacCheck::verify`] succeeds.
pub fn open_deferring_mac(
    parsed: Parsed,
    keyring: &Keyring,
    ignore_mac: bool,
) -> Result<(Opened, MacCheck), FileError> {
    open_deferring(parsed, keyring, ignore_mac, false)
}

fn open_deferring(
    mut parsed: Parsed,
    keyring: &Keyring,
    ignore_mac: bool,
    remember: bool,
) -> Result<(Opened, MacCheck), FileError> {
    let metadata = read_metadata(&parsed)?;
    let key = groups::unwrap(&metadata, keyring)?;
    let (memory, mac) = values::decrypt_tree_deferring_mac(
        &mut parsed.tree,
        &key,
        &metadata,
        ignore_mac,
        remember,
    )?;
    let opened = Opened {
        parsed,
        metadata,
        key,
        memory,
    };
    Ok((opened, mac))
}

/// Encrypts `plain.tree` under `key` and writes the encrypted file. `layout` is the parse whose
/// layout the output keeps (usually `plain` itself, or the encrypted original); `None` writes the
/// store's canonical layout (a format conversion).
pub fn seal(
    store: &dyn Store,
    mut plain: Parsed,
    key: &DataKey,
    metadata: &mut Metadata,
    memory: Option<&CiphertextMemory>,
    keep_layout: bool,
    options: &WriteOptions,
) -> Result<Vec<u8>, FileError> {
    metadata.touch();
    // The tree is taken out of `plain` before it is encrypted, so that a store can only learn the
    // original layout from `plain.source`, never mistake the encrypted tree for the original
    // one, and so never skip writing a value because it "did not change".
    let mut tree = std::mem::take(&mut plain.tree);
    values::encrypt_tree(&mut tree, key, metadata, memory)?;
    let node = metadata.to_node();
    let layout = if keep_layout { Some(&plain) } else { None };
    Ok(store.write(&tree, Some(&node), layout, options)?)
}
