//! The nearest training images of a sample: the k-NN bank's rows with the paths of the images
//! they came from (`knn_bank_paths.json` beside the bank, relative to the training data root).
//!
//! The paths file is optional, so artifacts written before it existed still load: their
//! neighbours have labels and distances but no pictures ([`NeighbourImage::Unknown`]). A path
//! whose file is not on this machine is [`NeighbourImage::Missing`], never an error.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::dataset::Dataset;
use crate::data::paths;
use crate::error::{Error, Result};
use crate::reliability::knn::{self, KnnBank};
use crate::reliability::records::FeatureLayout;
use crate::support::files::write_bytes_atomically;

/// The file beside `knn_bank.safetensors` that names each bank row's image.
pub const BANK_PATHS_FILE: &str = "knn_bank_paths.json";

/// What to tell a user whose artifacts have no paths file.
pub const NO_PATHS_HINT: &str = "these artifacts predate neighbour paths (knn_bank_paths.json): \
     retrain them with `reason train` to see the training images";

/// The image of every k-NN bank row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BankPaths {
    /// The folder the paths are relative to, as training read it (`<data>/<split>`); empty
    /// when not known (the committed artifacts, whose paths were listed after training).
    pub root: String,
    /// The split trained on: another copy of the data set is looked up as its `<split>` folder.
    pub split: String,
    /// One `/`-separated path per bank row, in bank order.
    pub paths: Vec<String>,
}

impl BankPaths {
    /// The paths of `sources`, the bank rows in order, relative to `dataset_root`.
    pub fn new<'a>(
        dataset_root: &Path,
        split: &str,
        sources: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let root = std::path::absolute(dataset_root).unwrap_or_else(|_| dataset_root.into());
        BankPaths {
            root: root.display().to_string(),
            split: split.to_string(),
            paths: sources.into_iter().map(str::to_string).collect(),
        }
    }

    /// The bank paths of artifacts trained on `split` of `data` before paths were saved: the
    /// split listed the way `reason train` lists it (labelled images in dataset order, classes
    /// the artifacts do not know left out). Refused unless there is one image per bank row and
    /// every image's class is its row's label: then the rows are these images.
    pub fn for_split(
        data: &Path,
        split: &str,
        classes: &[String],
        bank_labels: &[u16],
    ) -> Result<Self> {
        let dataset = Dataset::open_split(data, split)?;
        let mut ids = Vec::new();
        let mut labels = Vec::new();
        for sample in &dataset.samples {
            let Some(l) = sample.label else { continue };
            if let Some(c) = classes.iter().position(|c| *c == dataset.classes[l]) {
                ids.push(sample.id.as_str());
                labels.push(c as u16);
            }
        }
        let refuse = |reason: String| Error::Dataset {
            path: dataset.root.clone(),
            reason,
        };
        if ids.len() != bank_labels.len() {
            return Err(refuse(format!(
                "{} labelled images of the artifacts' classes, the k-NN bank has {} rows: not the \
                 images it was built from",
                ids.len(),
                bank_labels.len()
            )));
        }
        if let Some(i) = (0..ids.len()).find(|&i| labels[i] != bank_labels[i]) {
            return Err(refuse(format!(
                "row {i} ({}) is class {}, the bank's row {i} is class {}: not the images it was \
                 built from",
                ids[i], labels[i], bank_labels[i]
            )));
        }
        Ok(Self::new(&dataset.root, split, ids))
    }

    /// The paths file in `dir`, or `None` when there is none (older artifacts).
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(BANK_PATHS_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(Error::Io { path, source }),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::Weights(format!(
                "artifacts in {} are unusable: {BANK_PATHS_FILE}: {e}",
                dir.display()
            ))
        })
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(BANK_PATHS_FILE);
        let json = serde_json::to_vec(self).map_err(|e| Error::Weights(e.to_string()))?;
        write_bytes_atomically(&path, &json).map_err(|source| Error::Io { path, source })
    }

    /// Where the images are on this machine: the folder training read when it is here, else
    /// the `<split>` folder of the Imagenette in the data folder; `None` when neither is.
    pub fn resolve_root(&self) -> Option<PathBuf> {
        let trained = PathBuf::from(&self.root);
        if trained.is_dir() {
            return Some(trained);
        }
        let default = paths::default_imagenette().join(&self.split);
        default.is_dir().then_some(default)
    }
}

/// Where a neighbour's picture is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NeighbourImage {
    /// The file, on this machine.
    Found(PathBuf),
    /// The path the bank names, not found on this machine.
    Missing(String),
    /// The artifacts have no paths file.
    Unknown,
}

/// One of the nearest training images.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbour {
    /// Its row in the k-NN bank.
    pub index: usize,
    /// Its class (an index into the artifacts' classes).
    pub label: u16,
    /// Euclidean distance in the bank's PCA space (the space of the k-NN features).
    pub distance: f32,
    pub image: NeighbourImage,
}

/// The `k` nearest bank rows of `point`, nearest first, with their images looked up in `root`
/// (from [`BankPaths::resolve_root`]). Checks the file system: call it off a UI thread.
pub fn nearest(
    bank: &KnnBank,
    paths: Option<&BankPaths>,
    root: Option<&Path>,
    point: &[f32; knn::DIM],
    k: usize,
) -> Vec<Neighbour> {
    bank.nearest(point, k)
        .into_iter()
        .map(|(index, distance)| {
            let image = match paths.and_then(|p| p.paths.get(index)) {
                None => NeighbourImage::Unknown,
                Some(rel) => match root.map(|r| r.join(rel)).filter(|f| f.is_file()) {
                    Some(file) => NeighbourImage::Found(file),
                    None => NeighbourImage::Missing(rel.clone()),
                },
            };
            Neighbour {
                index,
                label: bank.labels()[index],
                distance,
                image,
            }
        })
        .collect()
}

/// The bank-space point of a sample: the `pca` block of its meta-vector (the same PCA
/// coordinates the bank holds). `None` when the layout has no such block or the vector is short.
pub fn point_of_meta(layout: &FeatureLayout, meta: &[f32]) -> Option<[f32; knn::DIM]> {
    let block = layout.blocks.iter().find(|b| b.family == "pca")?;
    let values = meta.get(block.offset..block.offset + block.names.len())?;
    Some(knn::to_point(values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reliability::records::FeatureBlock;

    #[test]
    fn paths_files_round_trip_and_their_absence_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(BankPaths::load(dir.path()).unwrap(), None);
        let paths = BankPaths::new(dir.path(), "train", ["a/1.jpg", "b/2.jpg"]);
        paths.save(dir.path()).unwrap();
        assert_eq!(BankPaths::load(dir.path()).unwrap(), Some(paths.clone()));
        assert_eq!(paths.resolve_root().as_deref(), Some(dir.path()));
        std::fs::write(dir.path().join(BANK_PATHS_FILE), b"{").unwrap();
        let err = BankPaths::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(BANK_PATHS_FILE), "{err}");
    }

    #[test]
    fn neighbours_say_where_their_pictures_are() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("here.png"), b"x").unwrap();
        let points = vec![knn::to_point(&[0.0]), knn::to_point(&[1.0])];
        let bank = KnnBank::new(points, vec![0, 1], 2);
        let paths = BankPaths::new(dir.path(), "train", ["here.png", "gone.png"]);
        let near = nearest(
            &bank,
            Some(&paths),
            Some(dir.path()),
            &knn::to_point(&[0.9]),
            5,
        );
        assert_eq!(near.len(), 2);
        assert_eq!((near[0].index, near[0].label), (1, 1));
        assert!((near[0].distance - 0.1).abs() < 1e-5);
        assert_eq!(near[0].image, NeighbourImage::Missing("gone.png".into()));
        assert_eq!(
            near[1].image,
            NeighbourImage::Found(dir.path().join("here.png"))
        );
        let unknown = nearest(&bank, None, None, &knn::to_point(&[0.0]), 1);
        assert_eq!(unknown[0].image, NeighbourImage::Unknown);
    }

    #[test]
    fn the_point_is_the_pca_block_of_the_meta_vector() {
        let layout = FeatureLayout {
            blocks: vec![
                FeatureBlock {
                    family: "entropy".into(),
                    names: vec!["entropy.entropy".into()],
                    offset: 0,
                },
                FeatureBlock {
                    family: "pca".into(),
                    names: vec!["pca.0".into(), "pca.1".into()],
                    offset: 1,
                },
            ],
        };
        let p = point_of_meta(&layout, &[9.0, 1.5, -2.0]).unwrap();
        assert_eq!(&p[..3], &[1.5, -2.0, 0.0]);
        assert!(point_of_meta(&layout, &[9.0]).is_none());
    }
}
