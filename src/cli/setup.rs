//! The first run: when the dashboard's default data (Imagenette val) or backbone weights are
//! not on this machine, say what was looked for and where, then download them into the data
//! folder and the Hugging Face cache: after asking, on a terminal; without asking, with
//! `--yes`; never with `--no-download` or without a terminal (a question nobody can answer
//! would hang a script), which instead stop with the commands that get them.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::progress::DownloadBar;
use crate::data::download::{self, HubSource, ImagenetteSize};
use crate::data::paths;
use crate::model::backbone::weights::{self, HUB_FILENAME};
use crate::model::backbone::BackboneKind;
use crate::reliability::artifacts;

/// The size `reason fetch imagenette` downloads by default, and the first run too.
pub const FIRST_RUN_SIZE: ImagenetteSize = ImagenetteSize::Px320;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct SetupArgs {
    /// Download missing default data and weights without asking.
    #[arg(long, conflicts_with = "no_download")]
    pub yes: bool,
    /// Never download: when the default data or weights are missing, say how to get them and
    /// stop.
    #[arg(long)]
    pub no_download: bool,
}

/// Something the dashboard needs that is not on this machine.
enum Missing {
    Imagenette,
    Weights(BackboneKind),
}

impl Missing {
    /// What was looked for, and where.
    fn looked_for(&self) -> String {
        match self {
            Missing::Imagenette => format!(
                "no Imagenette in the data folder {} (looked for {} holding val/; the data \
                 folder is {})",
                paths::data_root().display(),
                paths::IMAGENETTE_NAMES.map(|n| format!("{n}/")).join(", "),
                paths::data_root_rule()
            ),
            Missing::Weights(kind) => format!(
                "no {} weights in {} nor in the Hugging Face cache {}",
                kind.name(),
                paths::local_weights(kind.name()).display(),
                HubSource::from_env().cache_dir.display()
            ),
        }
    }

    /// What a download would fetch, with its size.
    fn offer(&self) -> String {
        match self {
            Missing::Imagenette => format!(
                "Imagenette ({}, {}) into {}",
                FIRST_RUN_SIZE.folder_name(),
                imagenette_size(FIRST_RUN_SIZE),
                paths::data_root().display()
            ),
            Missing::Weights(kind) => format!(
                "the {} weights ({}, {}) into the Hugging Face cache",
                kind.name(),
                kind.default_hub_id(),
                weights_size(*kind)
            ),
        }
    }

    /// The command that gets it.
    fn command(&self) -> String {
        match self {
            Missing::Imagenette => "reason fetch imagenette".to_string(),
            Missing::Weights(kind) => format!("reason fetch weights {}", kind.default_hub_id()),
        }
    }

    fn fetch(&self, bar: &DownloadBar) -> anyhow::Result<()> {
        let progress = |event| bar.update(event);
        match self {
            Missing::Imagenette => {
                let root = paths::data_root();
                std::fs::create_dir_all(&root)
                    .with_context(|| format!("creating the data folder {}", root.display()))?;
                download::fetch_imagenette(FIRST_RUN_SIZE, &root, None, &progress)?;
            }
            Missing::Weights(kind) => {
                download::fetch_hub_weights(&kind.default_hub_id(), HUB_FILENAME, &progress)?;
            }
        }
        Ok(())
    }
}

/// Approximate archive sizes, for the question (the download shows the exact one).
fn imagenette_size(size: ImagenetteSize) -> &'static str {
    match size {
        ImagenetteSize::Px160 => "about 95 MB",
        ImagenetteSize::Px320 => "about 330 MB",
        ImagenetteSize::Full => "about 1.5 GB",
    }
}

/// Approximate sizes of the hub's safetensors files (4 bytes a parameter).
fn weights_size(kind: BackboneKind) -> &'static str {
    match kind.name() {
        "tf_efficientnet_lite0" => "about 19 MB",
        "tf_efficientnet_lite1" => "about 22 MB",
        "tf_efficientnet_lite2" => "about 25 MB",
        "tf_efficientnet_lite3" => "about 33 MB",
        "tf_efficientnet_lite4" => "about 52 MB",
        "resnet18" => "about 47 MB",
        "resnet34" => "about 88 MB",
        _ => "about 100 MB",
    }
}

/// Makes sure the dashboard's defaults are here: Imagenette when neither `--data` nor
/// `--folder` was given, and the weights of the artifacts in `artifacts_dir` when `--weights`
/// was not. Downloads what is missing if allowed (see the module comment); otherwise the error
/// says what is missing and the commands that get it.
pub fn ensure_dashboard_defaults(
    setup: &SetupArgs,
    dataset_given: bool,
    weights_given: bool,
    artifacts_dir: &Path,
) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    if !dataset_given && paths::find_imagenette().is_none() {
        missing.push(Missing::Imagenette);
    }
    if !weights_given {
        // Unreadable artifacts are reported by the code that opens them.
        let kind = artifacts::read_manifest(artifacts_dir)
            .ok()
            .and_then(|m| BackboneKind::from_name(&m.backbone.name).ok());
        if let Some(kind) = kind.filter(|&k| weights::find_default(k).is_none()) {
            missing.push(Missing::Weights(kind));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let looked: Vec<String> = missing.iter().map(Missing::looked_for).collect();
    let stop = |why: &str| {
        anyhow::anyhow!(
            "{}.\n{why}{}",
            looked.join(";\n"),
            how_to_get(&missing, dataset_given)
        )
    };
    if setup.no_download {
        return Err(stop("Not downloading (--no-download). "));
    }
    if !setup.yes {
        let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        if !interactive {
            return Err(stop(
                "There is no terminal to ask on, so nothing was downloaded (--yes downloads \
                 without asking). ",
            ));
        }
        let offers: Vec<String> = missing.iter().map(Missing::offer).collect();
        eprint!(
            "{}.\nDownload {}? [Y/n] ",
            looked.join(";\n"),
            offers.join(", and ")
        );
        std::io::stderr().flush().ok();
        if !said_yes(&mut std::io::stdin().lock()) {
            return Err(stop("Nothing was downloaded. "));
        }
    }
    let bar = DownloadBar::new();
    for item in &missing {
        item.fetch(&bar).map_err(|e| {
            anyhow::anyhow!(
                "{}.\n{}",
                super::errors::message(&e),
                how_to_get(&missing, dataset_given)
            )
        })?;
    }
    Ok(())
}

/// The answer to a yes/no question read from `input`: yes unless it starts with `n` (an empty
/// line takes the default, yes); nothing to read (end of input) is no.
fn said_yes(input: &mut dyn BufRead) -> bool {
    let mut line = String::new();
    match input.read_line(&mut line) {
        Ok(0) | Err(_) => false,
        Ok(_) => !line.trim().to_ascii_lowercase().starts_with('n'),
    }
}

/// The commands that get what is missing, and the ways around it.
fn how_to_get(missing: &[Missing], dataset_given: bool) -> String {
    let commands: Vec<String> = missing
        .iter()
        .map(|m| format!("  {}", m.command()))
        .collect();
    let mut text = format!(
        "Get {} with:\n{}\nthen run the command again (`reason --yes` downloads what the \
         dashboard needs and opens it)",
        if missing.len() == 1 { "it" } else { "them" },
        commands.join("\n")
    );
    if !dataset_given && missing.iter().any(|m| matches!(m, Missing::Imagenette)) {
        text.push_str(&format!(
            "; or open your own images with `reason --folder DIR`, or set {} to a folder \
             holding imagenette/",
            paths::DATA_ENV
        ));
    }
    text
}

/// The default Imagenette root for the commands that use it without asking (`eval`, `train`,
/// `bench`, `predict`); the error names where it was looked for and how to get it.
pub fn default_imagenette() -> anyhow::Result<PathBuf> {
    paths::find_imagenette().ok_or_else(|| {
        anyhow::anyhow!(
            "{}.\n{}",
            Missing::Imagenette.looked_for(),
            how_to_get(&[Missing::Imagenette], false)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        for (input, yes) in [
            ("\n", true),
            ("y\n", true),
            ("Yes\n", true),
            ("n\n", false),
            (" No\n", false),
            ("", false),
        ] {
            assert_eq!(said_yes(&mut input.as_bytes()), yes, "{input:?}");
        }
    }

    #[test]
    fn the_remedy_names_each_command() {
        let text = how_to_get(
            &[
                Missing::Imagenette,
                Missing::Weights(BackboneKind::EfficientNetLite(0)),
            ],
            false,
        );
        assert!(text.contains("  reason fetch imagenette\n"), "{text}");
        assert!(
            text.contains("  reason fetch weights timm/tf_efficientnet_lite0.in1k\n"),
            "{text}"
        );
        assert!(text.contains("--folder DIR"), "{text}");
    }
}
