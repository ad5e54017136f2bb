//! `reason fetch`: Imagenette from the official fastai archives, backbone weights from the hub.

use std::path::PathBuf;

use anyhow::Context;

use super::progress::DownloadBar;
use crate::data::download::{self, ImagenetteSize};
use crate::data::paths;
use crate::model::backbone::weights::HUB_FILENAME;

#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    #[command(subcommand)]
    pub what: FetchWhat,
}

#[derive(Debug, clap::Subcommand)]
pub enum FetchWhat {
    /// The imagenette2 dataset (train + val). Resumes an interrupted download.
    Imagenette {
        /// 160 or 320 (shorter side in pixels) or full.
        #[arg(long, default_value = "320")]
        size: ImagenetteSize,
        /// Destination folder [default: the data folder: $REASON_DATA, else ../shared/data when
        /// it exists, else the platform's data folder, e.g. ~/.local/share/reason].
        #[arg(long)]
        dest: Option<PathBuf>,
    },
    /// A safetensors file from a Hugging Face hub repository, into the standard hub cache.
    Weights {
        /// Repository id, e.g. timm/tf_efficientnet_lite0.in1k.
        hub_id: String,
        /// File inside the repository.
        #[arg(long, default_value = HUB_FILENAME)]
        file: String,
    },
}

pub fn run(args: FetchArgs) -> anyhow::Result<()> {
    let bar = DownloadBar::new();
    let progress = |event| bar.update(event);
    match args.what {
        FetchWhat::Imagenette { size, dest } => {
            let default = paths::data_root();
            let dest = dest.unwrap_or_else(|| default.clone());
            std::fs::create_dir_all(&dest)
                .with_context(|| format!("creating the folder {}", dest.display()))?;
            let root = download::fetch_imagenette(size, &dest, None, &progress)?;
            println!("{}", root.display());
            if dest == default {
                eprintln!("Imagenette ready; REASON finds it there by default.");
            } else {
                eprintln!(
                    "Imagenette ready. REASON finds it by default when {}={} is set.",
                    paths::DATA_ENV,
                    dest.display()
                );
            }
        }
        FetchWhat::Weights { hub_id, file } => {
            let path = download::fetch_hub_weights(&hub_id, &file, &progress)?;
            println!("{}", path.display());
        }
    }
    Ok(())
}
