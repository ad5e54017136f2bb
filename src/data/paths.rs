//! Where REASON looks for data and weights by default.

use std::path::PathBuf;

/// Environment variable naming the data folder (with `imagenette/` and `weights/` inside).
pub const DATA_ENV: &str = "REASON_DATA";

/// The data folder: `$REASON_DATA`, else `../shared/data` when it exists (the development
/// layout), else `./data`.
pub fn data_root() -> PathBuf {
    if let Some(dir) = std::env::var_os(DATA_ENV) {
        return PathBuf::from(dir);
    }
    let shared = PathBuf::from("../shared/data");
    if shared.is_dir() {
        shared
    } else {
        PathBuf::from("data")
    }
}

/// Folder names an Imagenette copy may have inside the data folder, in order of preference:
/// the shared copy, then what `reason fetch imagenette` extracts.
const IMAGENETTE_NAMES: [&str; 4] = [
    "imagenette",
    "imagenette2",
    "imagenette2-320",
    "imagenette2-160",
];

/// The default dataset root: the first `<data>/<name>` above that exists, else `<data>/imagenette`.
pub fn default_imagenette() -> PathBuf {
    let root = data_root();
    IMAGENETTE_NAMES
        .iter()
        .map(|name| root.join(name))
        .find(|dir| dir.join("val").is_dir())
        .unwrap_or_else(|| root.join(IMAGENETTE_NAMES[0]))
}

/// `<data>/weights/<backbone>.safetensors`, looked at before the hub.
pub fn local_weights(backbone: &str) -> PathBuf {
    data_root()
        .join("weights")
        .join(format!("{backbone}.safetensors"))
}
