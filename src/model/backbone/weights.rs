//! Finding backbone weights: a local safetensors file, the data folder, or the Hugging Face hub
//! (its standard cache first, then a download).

use std::fmt;
use std::path::{Path, PathBuf};

use super::BackboneKind;
use crate::data::download::{self, DownloadProgress};
use crate::data::paths;
use crate::error::{Error, Result};

pub const HUB_FILENAME: &str = "model.safetensors";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightsOrigin {
    /// Given on the command line as a path.
    File,
    /// Found in the data folder (`$REASON_DATA/weights`).
    DataFolder,
    /// A hub repository, from the cache or freshly downloaded.
    Hub(String),
}

#[derive(Debug, Clone)]
pub struct ResolvedWeights {
    pub path: PathBuf,
    pub origin: WeightsOrigin,
}

impl fmt::Display for ResolvedWeights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            WeightsOrigin::Hub(id) => write!(f, "hub:{id} ({})", self.path.display()),
            _ => write!(f, "{}", self.path.display()),
        }
    }
}

/// Resolves `--weights` (a path or a hub id) or, when absent, the backbone's default weights.
/// A hub download, when one is needed, is reported to `progress`.
pub fn resolve(
    kind: BackboneKind,
    spec: Option<&str>,
    progress: &dyn Fn(DownloadProgress),
) -> Result<ResolvedWeights> {
    match spec {
        Some(s) if Path::new(s).is_file() => Ok(ResolvedWeights {
            path: PathBuf::from(s),
            origin: WeightsOrigin::File,
        }),
        Some(s) if s.ends_with(".safetensors") || Path::new(s).is_dir() => Err(Error::Weights(
            format!("weights file `{s}` not found (expected a .safetensors file or a hub id)"),
        )),
        Some(hub_id) => from_hub(hub_id, progress),
        None => match find_default(kind) {
            Some(found) => Ok(found),
            None => from_hub(&kind.default_hub_id(), progress),
        },
    }
}

/// The backbone's default weights when they are on this machine (the data folder, else the
/// Hugging Face cache), without using the network.
pub fn find_default(kind: BackboneKind) -> Option<ResolvedWeights> {
    let local = paths::local_weights(kind.name());
    if local.is_file() {
        return Some(ResolvedWeights {
            path: local,
            origin: WeightsOrigin::DataFolder,
        });
    }
    let hub_id = kind.default_hub_id();
    download::cached_hub_weights(&hub_id, HUB_FILENAME).map(|path| ResolvedWeights {
        path,
        origin: WeightsOrigin::Hub(hub_id),
    })
}

fn from_hub(hub_id: &str, progress: &dyn Fn(DownloadProgress)) -> Result<ResolvedWeights> {
    let path = match download::cached_hub_weights(hub_id, HUB_FILENAME) {
        Some(path) => path,
        None => download::fetch_hub_weights(hub_id, HUB_FILENAME, progress)
            .map_err(|e| Error::Weights(e.to_string()))?,
    };
    Ok(ResolvedWeights {
        path,
        origin: WeightsOrigin::Hub(hub_id.to_string()),
    })
}

/// Hex sha256 of a file, recorded in artifacts so a mismatch is caught.
pub fn sha256_file(path: &Path) -> Result<String> {
    crate::support::files::sha256_file(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}
