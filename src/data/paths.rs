//! Where REASON looks for data and weights by default.

use std::path::PathBuf;

/// Environment variable naming the data folder (with `imagenette/` and `weights/` inside).
pub const DATA_ENV: &str = "REASON_DATA";

/// The development copy beside a checkout, used when it exists (CI and this repository's
/// machines keep the data there).
const SHARED: &str = "../shared/data";

/// The data folder: `$REASON_DATA`, else `../shared/data` when it exists, else the platform's
/// data folder (`~/.local/share/reason` on Linux), so a downloaded copy is found from any
/// working directory.
pub fn data_root() -> PathBuf {
    if let Some(dir) = std::env::var_os(DATA_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let shared = PathBuf::from(SHARED);
    if shared.is_dir() {
        return shared;
    }
    platform_data_dir()
}

/// `<platform data folder>/reason`, or `./data` on a system without one (no home folder).
fn platform_data_dir() -> PathBuf {
    dirs::data_dir().map_or_else(|| PathBuf::from("data"), |d| d.join("reason"))
}

/// How [`data_root`] chooses, for messages that say where REASON looked.
pub fn data_root_rule() -> String {
    format!(
        "${DATA_ENV}, else {SHARED} when it exists, else {}",
        platform_data_dir().display()
    )
}

/// Folder names an Imagenette copy may have inside the data folder, in order of preference:
/// the shared copy, then what `reason fetch imagenette` extracts.
pub const IMAGENETTE_NAMES: [&str; 4] = [
    "imagenette",
    "imagenette2",
    "imagenette2-320",
    "imagenette2-160",
];

/// The default dataset root: the first `<data>/<name>` above that exists, else `<data>/imagenette`.
pub fn default_imagenette() -> PathBuf {
    find_imagenette().unwrap_or_else(|| data_root().join(IMAGENETTE_NAMES[0]))
}

/// The first `<data>/<name>` of [`IMAGENETTE_NAMES`] that holds a `val/` folder.
pub fn find_imagenette() -> Option<PathBuf> {
    let root = data_root();
    IMAGENETTE_NAMES
        .iter()
        .map(|name| root.join(name))
        .find(|dir| dir.join("val").is_dir())
}

/// `<data>/weights/<backbone>.safetensors`, looked at before the hub.
pub fn local_weights(backbone: &str) -> PathBuf {
    data_root()
        .join("weights")
        .join(format!("{backbone}.safetensors"))
}
