//! Flattening of the `sops` metadata for the formats that have no nesting (dotenv, INI).
