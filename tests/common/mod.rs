//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The shared data folder (`$REASON_DATA`, else `../shared/data` beside the crate), or `None`
/// after printing why the calling test is skipped.
pub fn data_root(test: &str) -> Option<PathBuf> {
    let root = std::env::var_os("REASON_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    if root.join("imagenette/val").is_dir() && lite0_weights_in(&root).is_file() {
        Some(root)
    } else {
        eprintln!(
            "SKIPPED {test}: real data not found at {} (set REASON_DATA to a folder holding \
             imagenette/ and weights/tf_efficientnet_lite0.safetensors)",
            root.display()
        );
        None
    }
}

pub fn lite0_weights_in(root: &std::path::Path) -> PathBuf {
    root.join("weights/tf_efficientnet_lite0.safetensors")
}

pub mod serve;
pub mod synthetic;
