//! The Imagenette data set: fast.ai's archive, downloaded, extracted safely and marked
//! complete.

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::archive::{extract_into, fresh_dir};
use super::{
    download, escaped, io_err, shown, with_suffix, Created, DownloadOptions, DownloadProgress,
    FetchError,
};

/// Where fast.ai publishes the Imagenette archives.
pub const IMAGENETTE_BASE_URL: &str = "https://s3.amazonaws.com/fast-ai-imageclas";

/// Environment variable holding a full URL to fetch the Imagenette archive from instead of
/// fast.ai's (a mirror, or a local server in tests).
pub const IMAGENETTE_URL_ENV: &str = "REASON_IMAGENETTE_URL";

/// Written into a dataset folder once it is fully extracted and checked.
pub const COMPLETE_MARKER: &str = ".reason-complete";

/// The three published resolutions of Imagenette (shortest side of 160 px, 320 px, original).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImagenetteSize {
    Px160,
    Px320,
    Full,
}

impl ImagenetteSize {
    /// All sizes, smallest first.
    pub const ALL: [ImagenetteSize; 3] = [Self::Px160, Self::Px320, Self::Full];

    /// The top-level folder inside the archive, which becomes the dataset root.
    pub fn folder_name(self) -> &'static str {
        match self {
            Self::Px160 => "imagenette2-160",
            Self::Px320 => "imagenette2-320",
            Self::Full => "imagenette2",
        }
    }

    /// The archive's file name, e.g. `imagenette2-160.tgz`.
    pub fn archive_name(self) -> String {
        format!("{}.tgz", self.folder_name())
    }

    /// The official fast.ai download URL.
    pub fn url(self) -> String {
        format!("{IMAGENETTE_BASE_URL}/{}", self.archive_name())
    }
}

impl std::fmt::Display for ImagenetteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Px160 => "160",
            Self::Px320 => "320",
            Self::Full => "full",
        })
    }
}

impl FromStr for ImagenetteSize {
    type Err = FetchError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "160" => Ok(Self::Px160),
            "320" => Ok(Self::Px320),
            "full" => Ok(Self::Full),
            _ => Err(FetchError::UnknownImagenetteSize(s.to_string())),
        }
    }
}

/// The archive URL: `base_url_override` + `/<archive name>` if given, else the full URL in
/// `$REASON_IMAGENETTE_URL` if set, else fast.ai's.
fn imagenette_url(size: ImagenetteSize, base_url_override: Option<&str>) -> String {
    if let Some(base) = base_url_override {
        return format!("{}/{}", base.trim_end_matches('/'), size.archive_name());
    }
    match std::env::var(IMAGENETTE_URL_ENV) {
        Ok(url) if !url.trim().is_empty() => url.trim().to_string(),
        _ => size.url(),
    }
}

/// Makes sure Imagenette at `size` is in `dest_dir` and returns its root (the folder holding
/// `train/` and `val/`), i.e. `dest_dir/imagenette2-160` and so on.
///
/// The archive is downloaded to `dest_dir` (resumable; the transfer is reported to
/// `progress`), extracted safely into `<root>.partial-extract`, checked for `train/` and
/// `val/`, marked complete with a [`COMPLETE_MARKER`] file (which also lists any refused
/// archive entries), moved into place, and then deleted to save space. When the root is
/// already complete this returns at once without touching the network; a root folder that
/// exists without the marker is an error rather than being trusted or overwritten.
///
/// A run that fails cleans up after itself: the extraction folder is removed, and so is the
/// archive when this run downloaded it (it is complete but unusable, so the next run starts
/// afresh); an archive that was already there is left alone. An interrupted transfer keeps
/// its `.partial` file, which the next run resumes. `dest_dir` and anything else that was
/// there before are never touched.
///
/// The URL is `base_url_override/<archive>` when given (tests use a local server), otherwise
/// the full URL in `$REASON_IMAGENETTE_URL` when set, otherwise fast.ai's official one.
pub fn fetch_imagenette(
    size: ImagenetteSize,
    dest_dir: &Path,
    base_url_override: Option<&str>,
    progress: &dyn Fn(DownloadProgress),
) -> Result<PathBuf, FetchError> {
    let root = dest_dir.join(size.folder_name());
    if root.exists() {
        if !root.join(COMPLETE_MARKER).is_file() {
            return Err(FetchError::DatasetUnverified { root });
        }
        for split in ["train", "val"] {
            if !root.join(split).is_dir() {
                return Err(FetchError::DatasetIncomplete {
                    root,
                    missing: split,
                });
            }
        }
        return Ok(root);
    }

    let url = imagenette_url(size, base_url_override);
    let archive = dest_dir.join(size.archive_name());
    tracing::info!(%url, archive = %shown(&archive), "fetching Imagenette");
    let downloaded = download(&url, &archive, &DownloadOptions::default(), progress)?;

    // Extracted into a work folder first: the archive's top folder is then moved to `root`.
    // From here on a failure removes the work folder and, if this run downloaded it, the archive.
    let staging = with_suffix(&root, ".partial-extract")?;
    let mut created = Created::default();
    let deleted = !downloaded.skipped;
    if deleted {
        created.file(&archive);
    }
    fresh_dir(&staging, &mut created)?;
    let report = extract_into(&archive, &staging).map_err(|e| match e {
        FetchError::InvalidArchive {
            archive, detail, ..
        } => FetchError::InvalidArchive {
            archive,
            detail,
            deleted,
        },
        other => other,
    })?;
    // The top folder must be a real folder: a link would be moved into place as a link, away
    // from what it points to.
    let extracted_root = staging.join(size.folder_name());
    let missing = match fs::symlink_metadata(&extracted_root) {
        Ok(meta) if meta.is_symlink() => Some(format!(
            "{} folder (only a symbolic link by that name)",
            size.folder_name()
        )),
        _ => ["train", "val"]
            .into_iter()
            .find(|split| !extracted_root.join(split).is_dir())
            .map(|split| format!("{}/{split} folder", size.folder_name())),
    };
    if let Some(missing) = missing {
        return Err(FetchError::NotImagenette {
            url,
            missing,
            archive,
            refused: report.refused,
            deleted,
        });
    }

    let mut marker = format!(
        "source: {url}\nfiles: {}\nrefused: {}\n",
        report.files,
        report.refused.len()
    );
    for (entry, reason) in &report.refused {
        marker.push_str(&format!("  {}: {reason}\n", escaped(entry)));
    }
    let marker_path = extracted_root.join(COMPLETE_MARKER);
    fs::write(&marker_path, marker).map_err(io_err("write", &marker_path))?;
    fs::rename(&extracted_root, &root).map_err(io_err("move the dataset to", &root))?;
    created.keep();
    fs::remove_dir_all(&staging).map_err(io_err("remove the folder", &staging))?;
    fs::remove_file(&archive).map_err(io_err("delete the archive", &archive))?;
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagenette_size_round_trips_through_strings() {
        for size in ImagenetteSize::ALL {
            assert_eq!(size.to_string().parse::<ImagenetteSize>().unwrap(), size);
        }
        assert_eq!(
            " FULL ".parse::<ImagenetteSize>().unwrap(),
            ImagenetteSize::Full
        );
        let err = "240".parse::<ImagenetteSize>().unwrap_err().to_string();
        assert!(
            err.contains("'240'") && err.contains("160, 320 or full"),
            "{err}"
        );
    }

    #[test]
    fn imagenette_urls_are_the_official_ones() {
        assert_eq!(
            ImagenetteSize::Px160.url(),
            "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz"
        );
        assert_eq!(
            ImagenetteSize::Px320.url(),
            "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-320.tgz"
        );
        assert_eq!(
            ImagenetteSize::Full.url(),
            "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2.tgz"
        );
        assert_eq!(ImagenetteSize::Full.folder_name(), "imagenette2");
        assert_eq!(
            imagenette_url(ImagenetteSize::Px320, Some("http://127.0.0.1:9/mirror/")),
            "http://127.0.0.1:9/mirror/imagenette2-320.tgz"
        );
    }
}
