//! Dataset sources: the imagenette2 layout, any folder of class sub-folders (labelled), a flat
//! folder or single files (unlabelled).
//!
//! Samples are identified by their path relative to the dataset root, and always come in the
//! same (byte-wise sorted) order, so caches, sessions and exports can key on them.

use std::path::{Path, PathBuf};

use crate::data::imagenet;
use crate::error::{Error, Result};

/// File extensions that are treated as images (case-insensitive).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"];

/// Class folders are searched this deep, which also stops symlink loops.
const MAX_DEPTH: usize = 8;

#[derive(Debug, Clone)]
pub struct Sample {
    /// Path relative to the dataset root, `/`-separated: the sample's identity.
    pub id: String,
    pub path: PathBuf,
    /// Index into `Dataset::classes`, or `None` for unlabelled images.
    pub label: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub root: PathBuf,
    /// Class folder names (wnids for Imagenette), sorted.
    pub classes: Vec<String>,
    pub samples: Vec<Sample>,
}

impl Dataset {
    /// Opens a folder or a single image.
    ///
    /// - a file: one unlabelled sample;
    /// - an imagenette2-style root (`train/` and `val/` inside): the `val` split;
    /// - a folder with sub-folders holding images: labelled by the first-level folder name;
    ///   images directly in the folder are included unlabelled.
    pub fn open(path: &Path) -> Result<Dataset> {
        let meta = std::fs::metadata(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if meta.is_file() {
            return Self::single_file(path);
        }
        if path.join("train").is_dir() && path.join("val").is_dir() {
            tracing::info!(
                "{} looks like imagenette2: using its val split",
                path.display()
            );
            return Self::open_split(path, "val");
        }
        Self::open_folder(path)
    }

    /// Opens `<root>/<split>` of an imagenette2-style dataset.
    pub fn open_split(root: &Path, split: &str) -> Result<Dataset> {
        let dir = root.join(split);
        if !dir.is_dir() {
            return Err(Error::Dataset {
                path: dir,
                reason: format!(
                    "split `{split}` not found (expected <root>/{split}/<class>/*.JPEG)"
                ),
            });
        }
        Self::open_folder(&dir)
    }

    fn single_file(path: &Path) -> Result<Dataset> {
        let root = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let id = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Dataset {
            root,
            classes: Vec::new(),
            samples: vec![Sample {
                id,
                path: path.to_path_buf(),
                label: None,
            }],
        })
    }

    fn open_folder(root: &Path) -> Result<Dataset> {
        let mut loose_files = Vec::new();
        let mut class_dirs = Vec::new();
        for entry in read_dir_sorted(root)? {
            if entry.is_dir() {
                class_dirs.push(entry);
            } else if is_image_path(&entry) {
                loose_files.push(entry);
            }
        }

        let mut classes = Vec::new();
        let mut samples = Vec::new();
        for dir in class_dirs {
            let mut files = Vec::new();
            collect_images(&dir, 1, &mut files)?;
            if files.is_empty() {
                continue;
            }
            let label = classes.len();
            classes.push(
                dir.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
            samples.extend(files.into_iter().map(|path| Sample {
                id: relative_id(root, &path),
                path,
                label: Some(label),
            }));
        }
        samples.extend(loose_files.into_iter().map(|path| Sample {
            id: relative_id(root, &path),
            path,
            label: None,
        }));
        samples.sort_by(|a, b| a.id.cmp(&b.id));

        if samples.is_empty() {
            return Err(Error::Dataset {
                path: root.to_path_buf(),
                reason: format!(
                    "no images found (looked for {} files, in the folder and its class sub-folders)",
                    IMAGE_EXTENSIONS.join("/")
                ),
            });
        }
        Ok(Dataset {
            root: root.to_path_buf(),
            classes,
            samples,
        })
    }

    pub fn is_labelled(&self) -> bool {
        self.samples.iter().any(|s| s.label.is_some())
    }

    /// ImageNet-1k index of each class, when every class folder is an ImageNet wnid.
    pub fn imagenet_indices(&self) -> Option<Vec<usize>> {
        if self.classes.is_empty() {
            return None;
        }
        self.classes.iter().map(|c| imagenet::index_of(c)).collect()
    }

    /// A readable name for class `i`: the ImageNet name for wnids, else the folder name.
    pub fn class_name(&self, i: usize) -> &str {
        let folder = &self.classes[i];
        imagenet::name_of(folder).unwrap_or(folder)
    }
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let io_err = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(io_err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io_err)?;
    entries.sort();
    Ok(entries)
}

fn collect_images(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    if depth > MAX_DEPTH {
        tracing::warn!(
            "{}: deeper than {MAX_DEPTH} levels, not searched",
            dir.display()
        );
        return Ok(());
    }
    for entry in read_dir_sorted(dir)? {
        if entry.is_dir() {
            collect_images(&entry, depth + 1, out)?;
        } else if is_image_path(&entry) {
            out.push(entry);
        }
    }
    Ok(())
}

pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn relative_id(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    #[test]
    fn class_folders_give_labels_and_sorted_relative_ids() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(&root.join("n02102040/b.JPEG"));
        touch(&root.join("n01440764/z.jpeg"));
        touch(&root.join("n01440764/nested/a.png"));
        touch(&root.join("n01440764/notes.txt"));
        touch(&root.join("loose image.JPG"));
        std::fs::create_dir_all(root.join("empty")).unwrap();

        let ds = Dataset::open(root).unwrap();
        assert_eq!(ds.classes, vec!["n01440764", "n02102040"]);
        let ids: Vec<_> = ds.samples.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            vec![
                "loose image.JPG",
                "n01440764/nested/a.png",
                "n01440764/z.jpeg",
                "n02102040/b.JPEG"
            ]
        );
        let labels: Vec<_> = ds.samples.iter().map(|s| s.label).collect();
        assert_eq!(labels, vec![None, Some(0), Some(0), Some(1)]);
        assert_eq!(ds.imagenet_indices(), Some(vec![0, 217]));
        assert_eq!(ds.class_name(1), "English springer");
    }

    #[test]
    fn imagenette_root_opens_val_split() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("train/n01440764/t.JPEG"));
        touch(&dir.path().join("val/n01440764/v.JPEG"));
        let ds = Dataset::open(dir.path()).unwrap();
        assert_eq!(ds.samples.len(), 1);
        assert_eq!(ds.samples[0].id, "n01440764/v.JPEG");
    }

    #[test]
    fn flat_folder_is_unlabelled_and_non_wnid_classes_have_no_imagenet_mapping() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("a.png"));
        let ds = Dataset::open(dir.path()).unwrap();
        assert!(!ds.is_labelled());
        assert_eq!(ds.imagenet_indices(), None);

        touch(&dir.path().join("cats/c.png"));
        let ds = Dataset::open(dir.path()).unwrap();
        assert_eq!(ds.imagenet_indices(), None);
        assert_eq!(ds.class_name(0), "cats");
    }

    #[test]
    fn empty_and_missing_folders_give_specific_errors() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("readme.txt"));
        let err = Dataset::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no images found"), "{err}");

        let err = Dataset::open(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing"), "{err}");
    }
}
