//! Arguments of `enseal sops-secret`.

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug)]
pub struct SopsSecretArgs {
    /// The enseal/sops-encrypted file (format from its extension, binary when unknown).
    pub file: PathBuf,
    /// metadata.name of the SopsSecret (default: the file name without extension).
    #[arg(long)]
    pub name: Option<String>,
    /// metadata.namespace of the SopsSecret (and so of its Secrets).
    #[arg(long)]
    pub namespace: Option<String>,
    /// A Secret in the SopsSecret's namespace whose `*.agekey` entries open the file
    /// (spec.decryption.secretRef): then only those age identities are used, never the
    /// controller's own keys, and the file need not name the namespace.
    #[arg(long, value_name = "NAME")]
    pub key_secret: Option<String>,
    /// Manifest format (`--output FILE` is the global option: write there instead of stdout).
    #[arg(short = 'o', long = "format", default_value = "yaml", value_parser = ["yaml", "json"])]
    pub format: String,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;

    use super::super::{Cli, Command};

    #[test]
    fn the_arguments_parse_next_to_the_global_options() {
        let cli = Cli::try_parse_from([
            "enseal",
            "sops-secret",
            "s.enc.yaml",
            "-o",
            "json",
            "--output",
            "out.json",
        ])
        .unwrap();
        assert_eq!(cli.global.output.as_deref(), Some(Path::new("out.json")));
        match cli.command {
            Some(Command::SopsSecret(a)) => assert_eq!(a.format, "json"),
            other => panic!("parsed as {other:?}"),
        }
    }
}
