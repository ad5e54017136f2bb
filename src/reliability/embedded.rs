//! The committed default artifacts (`reason_saved/`) compiled into the binary, so an installed
//! `reason` scores from any folder. All four files are needed: the manifest, the model, the k-NN
//! banks, and the training meta-vectors (the certificate's calibration rows and `eval`'s
//! ablation read them, and the class-aware bank is checked against them).
//!
//! They are written out once into the cache folder and loaded from there like any artifacts
//! folder, so `Artifacts::load` and the compatibility checks treat them exactly alike.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::artifacts::{manifest_path, BANK_FILE, MANIFEST, MODEL_FILE, TRAIN_META_FILE};
use super::neighbours::BANK_PATHS_FILE;
use crate::error::{Error, Result};
use crate::model::cache::cache_dir;
use crate::support::files::write_bytes_atomically;

/// The artifacts folder used when none is given, relative to the working directory.
pub const LOCAL_DEFAULT: &str = "reason_saved";

macro_rules! saved {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/reason_saved/", $name))
    };
}

/// The embedded files by name (the names `Artifacts::load` reads).
const FILES: [(&str, &[u8]); 5] = [
    (MODEL_FILE, saved!("model.safetensors")),
    (BANK_FILE, saved!("knn_bank.safetensors")),
    // The image of each bank row, for the dashboard's neighbours and `reason explain`.
    (BANK_PATHS_FILE, saved!("knn_bank_paths.json")),
    (TRAIN_META_FILE, saved!("train_meta.safetensors")),
    // Last: a folder whose manifest exists had its other files written before.
    (MANIFEST, saved!("manifest.json")),
];

/// The artifacts folder to use: `explicit` (`--artifacts DIR`) when given, else
/// `./reason_saved` when it holds a manifest, else the built-in artifacts written out by
/// [`write_out`].
pub fn resolve(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    let local = Path::new(LOCAL_DEFAULT);
    if manifest_path(local).is_file() {
        return Ok(local.to_path_buf());
    }
    write_out(&cache_dir().join("artifacts"))
}

/// Writes the embedded files into `<parent>/builtin-<manifest hash>/` and returns that folder.
/// A file already there is rewritten (atomically) only when its bytes differ, so a damaged
/// copy is repaired and concurrent runs never see a half-written file.
pub fn write_out(parent: &Path) -> Result<PathBuf> {
    let manifest = FILES[FILES.len() - 1].1;
    let hash: String = Sha256::digest(manifest)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = parent.join(format!("builtin-{hash}"));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    for (name, bytes) in FILES {
        let path = dir.join(name);
        if std::fs::read(&path).ok().as_deref() != Some(bytes) {
            write_bytes_atomically(&path, bytes).map_err(io(&path))?;
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_artifacts_are_the_committed_ones_and_load() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = write_out(tmp.path()).unwrap();
        for (name, bytes) in FILES {
            let committed = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(LOCAL_DEFAULT)
                .join(name);
            assert_eq!(std::fs::read(committed).unwrap(), bytes, "{name}");
        }
        // A damaged copy is repaired on the next use.
        std::fs::write(dir.join(MODEL_FILE), b"damaged").unwrap();
        assert_eq!(write_out(tmp.path()).unwrap(), dir);
        let artifacts = crate::reliability::artifacts::Artifacts::load(&dir).unwrap();
        assert_eq!(artifacts.manifest.backbone.name, "tf_efficientnet_lite0");
    }
}
