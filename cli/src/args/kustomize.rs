//! Arguments of `enseal kustomize`, and the names under which the binary runs as it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Args;

#[derive(Args, Debug)]
pub struct KustomizeArgs {
    /// The plugin config file kustomize passes to a legacy exec plugin. Without it, a KRM
    /// ResourceList is read from standard input (exec function).
    pub config: Option<PathBuf>,
}

/// Names the binary answers to as `enseal kustomize`, for kustomize's exec functions (which
/// take a path and no arguments) and legacy plugins (whose file name is the config's kind).
pub const PLUGIN_NAMES: [&str; 3] = ["ksops", "enseal-kustomize", "Decrypt"];

/// The command line with `kustomize` inserted when the binary was started under one of the
/// [`PLUGIN_NAMES`] (a symlink or copy), so `ksops CONFIG` runs as `enseal kustomize CONFIG`.
pub fn plugin_argv(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let invoked_as = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str());
    if invoked_as.is_some_and(|n| PLUGIN_NAMES.contains(&n)) {
        args.insert(1, "kustomize".into());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_run_as_the_kustomize_subcommand() {
        let argv = |v: &[&str]| plugin_argv(v.iter().map(OsString::from));
        assert_eq!(
            argv(&["/usr/local/bin/ksops", "/tmp/cfg"]),
            ["/usr/local/bin/ksops", "kustomize", "/tmp/cfg"]
        );
        assert_eq!(
            argv(&["./enseal-kustomize"]),
            ["./enseal-kustomize", "kustomize"]
        );
        assert_eq!(
            argv(&["/p/enseal.dev/v1alpha1/decrypt/Decrypt", "/tmp/c"]),
            [
                "/p/enseal.dev/v1alpha1/decrypt/Decrypt",
                "kustomize",
                "/tmp/c"
            ]
        );
        assert_eq!(argv(&["enseal", "decrypt"]), ["enseal", "decrypt"]);
    }

    #[test]
    fn the_subcommand_parses_with_and_without_a_config_file() {
        use clap::Parser;
        for (argv, want) in [
            (vec!["ksops"], None),
            (vec!["ksops", "/tmp/cfg"], Some(PathBuf::from("/tmp/cfg"))),
            (vec!["enseal", "kustomize"], None),
        ] {
            let cli =
                super::super::Cli::try_parse_from(plugin_argv(argv.iter().map(OsString::from)))
                    .unwrap();
            match cli.command {
                Some(super::super::Command::Kustomize(a)) => assert_eq!(a.config, want),
                other => panic!("parsed as {other:?}"),
            }
        }
    }
}
