//! `reason tui` (and `reason` with no subcommand): the dashboard's command-line options.

use std::path::{Path, PathBuf};

use crate::engine::device::DeviceRequest;
use crate::engine::paths;
use crate::tui::{self, ImageProtocol, RecordSource, ScoringDevice, TuiConfig};

/// Folder that holds `<session>.json` files, relative to the working directory.
pub const SESSIONS_DIR: &str = "sessions";

#[derive(Debug, Clone, clap::Args)]
pub struct TuiArgs {
    /// Imagenette copy to inspect (its val split) [default: the Imagenette in the data folder].
    #[arg(long, value_name = "DIR", conflicts_with = "folder")]
    pub data: Option<PathBuf>,
    /// Any local folder of images instead: class sub-folders give labels, loose images are
    /// unlabelled.
    #[arg(long, value_name = "DIR")]
    pub folder: Option<PathBuf>,
    /// Trained artifacts (head, MetaNet, PCA, k-NN bank, calibration).
    #[arg(long, value_name = "DIR", default_value = "reason_saved")]
    pub artifacts: PathBuf,
    /// Session name: threshold, filters, cursor and annotations live in sessions/NAME.json.
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub session: String,
    /// Colour theme: dark, light, high-contrast, or NAME.toml in ./themes (or $REASON_THEMES).
    #[arg(long, value_name = "NAME", default_value = "dark")]
    pub theme: String,
    /// How previews are drawn: auto asks the terminal (works over SSH).
    #[arg(long, value_enum, value_name = "PROTOCOL", default_value_t = ImageProtocol::Auto)]
    pub image_protocol: ImageProtocol,
    /// Backbone weights: a .safetensors path or a Hugging Face hub id; they must be the ones the
    /// artifacts were trained with [default: <data>/weights/<backbone>.safetensors, else the
    /// backbone's timm hub repository].
    #[arg(long, value_name = "PATH|HUB_ID")]
    pub weights: Option<String>,
    /// Where images are scored: auto, cpu, cuda or cuda:N (auto: CUDA when built in and present).
    #[arg(long, value_name = "DEVICE", default_value = "auto")]
    pub device: DeviceRequest,
}

impl TuiArgs {
    /// The folder to score, as `Dataset::open` takes it.
    pub fn dataset_path(&self) -> PathBuf {
        self.folder
            .clone()
            .or_else(|| self.data.clone())
            .unwrap_or_else(paths::default_imagenette)
    }

    /// The folder record ids are relative to: `<path>/val` for an imagenette2 layout (as
    /// `Dataset::open` does), else the path itself.
    pub fn dataset_root(&self) -> PathBuf {
        let path = self.dataset_path();
        if path.join("train").is_dir() && path.join("val").is_dir() {
            path.join("val")
        } else {
            path
        }
    }

    /// `sessions/<name>.json`, once the name is known to be a plain file name.
    pub fn session_path(&self) -> anyhow::Result<PathBuf> {
        let name = &self.session;
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !plain {
            anyhow::bail!(
                "invalid session name `{name}`: use letters, digits, `-`, `_` and `.` \
                 (it names {SESSIONS_DIR}/NAME.json)"
            );
        }
        Ok(Path::new(SESSIONS_DIR).join(format!("{name}.json")))
    }

    pub fn config(&self) -> anyhow::Result<TuiConfig> {
        let root = self.dataset_root();
        Ok(TuiConfig {
            title: root.display().to_string(),
            dataset_root: root,
            session_path: self.session_path()?,
            theme: self.theme.clone(),
            image_protocol: self.image_protocol,
            device: None,
        })
    }
}

/// Opens the dashboard over `source` with these options; returns when the user quits.
pub fn run(args: TuiArgs, source: RecordSource) -> anyhow::Result<()> {
    tui::run(args.config()?, source)
}

/// As [`run`], with the scoring device and the reason it was chosen in the title bar.
pub fn run_on(args: TuiArgs, device: ScoringDevice, source: RecordSource) -> anyhow::Result<()> {
    let mut config = args.config()?;
    config.device = Some(device);
    tui::run(config, source)
}
