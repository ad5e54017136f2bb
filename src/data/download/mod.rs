//! Downloads: resumable HTTP files ([`download`]), safe `.tar.gz` extraction
//! ([`extract_tar_gz`]), the Imagenette data set ([`fetch_imagenette`]) and Hugging Face hub
//! weights ([`fetch_hub_weights`]).
//!
//! The rule throughout: a file or folder only appears under its final name once it is
//! complete and checked. Work in progress lives under a suffixed name (`<dest>.partial`,
//! `<dest>.partial-extract`) so an interrupted run can never be mistaken for a finished one,
//! and a download that stops half-way can resume where it stopped. A run that fails removes
//! what it created, except a partial download, which the next run resumes.
//!
//! Nothing here draws on the terminal: progress goes to a caller's callback as
//! [`DownloadProgress`] events (the command line turns them into bars).

mod archive;
mod http;
mod hub;
mod imagenette;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use archive::{extract_tar_gz, ExtractReport};
pub use http::{download, DownloadOptions, DownloadReport};
pub use hub::{
    cached_hub_weights, cached_hub_weights_in, fetch_hub_weights, fetch_hub_weights_from, hub_url,
    HubSource,
};
pub use imagenette::{
    fetch_imagenette, ImagenetteSize, COMPLETE_MARKER, IMAGENETTE_BASE_URL, IMAGENETTE_URL_ENV,
};

/// What a transfer is doing, for a caller that wants to show it. Events for one file come in
/// the order `Started`, `Advanced`..., `Finished`; a resumed or retried transfer may start
/// again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadProgress {
    /// A transfer begins. `name` is the file's name, with control characters escaped so it
    /// can be printed as is; `done` counts the bytes already on disk (a resumed download).
    Started {
        name: String,
        done: u64,
        total: Option<u64>,
    },
    /// `done` bytes of the file are on disk.
    Advanced { done: u64 },
    /// The transfer ended: `complete` is false when it stopped before the last byte.
    Finished { complete: bool },
}

/// A progress callback that ignores every event.
pub fn no_progress(_: DownloadProgress) {}

/// Everything that can go wrong while fetching. Each message names the file or URL involved
/// and says what to do next. File names are shown with control characters escaped.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "could not reach {url}: {detail}. Check the network connection (and HTTPS_PROXY/ALL_PROXY \
         if you use a proxy), then run the same command again; a partial download resumes"
    )]
    Network { url: String, detail: String },

    #[error(
        "{url} answered HTTP {status}{}: check that the URL is right and reachable from this machine",
        if *.status == 404 { " (not found)" } else { "" }
    )]
    HttpStatus { url: String, status: u16 },

    #[error(
        "the server sent a reply to a resume request that does not continue the partial file \
         ({detail}) for {url}; delete {} and run the same command again",
        shown(.partial)
    )]
    BadResume {
        url: String,
        partial: PathBuf,
        detail: String,
    },

    #[error(
        "download of {url} stopped after {received} of {} bytes ({reason}); the bytes received \
         so far are kept in {}: run the same command again to resume",
        describe_size(.expected), shown(.partial)
    )]
    Truncated {
        url: String,
        received: u64,
        expected: Option<u64>,
        partial: PathBuf,
        reason: String,
    },

    #[error(
        "{url} is {actual} bytes but {expected} were expected; the file on the server changed or \
         the URL is wrong. Nothing was saved under the final name; check the URL (or the expected size)"
    )]
    SizeMismatch {
        url: String,
        expected: u64,
        actual: u64,
    },

    #[error(
        "the file downloaded from {url} has sha256 {actual} but {expected} was expected; it was \
         moved to {} (delete it once inspected). Run the command again to download it afresh, \
         or check the expected checksum",
        shown(.kept)
    )]
    ChecksumMismatch {
        url: String,
        expected: String,
        actual: String,
        kept: PathBuf,
    },

    #[error("could not {action} {}: {detail}", shown(.path))]
    Io {
        action: &'static str,
        path: PathBuf,
        detail: String,
    },

    #[error("{} is not usable as a destination: it has no file name (give a path such as data/imagenette)", shown(.path))]
    InvalidDestination { path: PathBuf },

    #[error(
        "{} is not a readable .tar.gz archive ({detail}); {}",
        shown(.archive),
        if *.deleted {
            "it was deleted, and nothing was extracted: run the same command again to download it \
             afresh (if this repeats, the URL does not serve a .tar.gz archive)"
        } else {
            "delete it and download it again"
        }
    )]
    InvalidArchive {
        archive: PathBuf,
        detail: String,
        /// True when the archive was removed because this run had downloaded it.
        deleted: bool,
    },

    #[error(
        "cannot extract into {}: it already exists and is not an empty folder; remove it or choose another destination",
        shown(.dest)
    )]
    DestinationExists { dest: PathBuf },

    #[error("unknown Imagenette size '{0}': use 160, 320 or full")]
    UnknownImagenetteSize(String),

    #[error(
        "the archive from {url} has no {missing}, so it is not the expected Imagenette \
         archive{}; {}. Check the URL (REASON_IMAGENETTE_URL if set) and run the command again",
        describe_refused(.refused),
        if *.deleted {
            "it was deleted, and nothing was extracted".to_string()
        } else {
            format!("nothing was extracted; the archive is still {}", shown(.archive))
        }
    )]
    NotImagenette {
        url: String,
        /// What is missing, e.g. `imagenette2-160/train folder`.
        missing: String,
        archive: PathBuf,
        /// Entries refused as unsafe: (name as written in the archive, why).
        refused: Vec<(String, String)>,
        /// True when the archive was removed because this run had downloaded it.
        deleted: bool,
    },

    #[error(
        "the Imagenette folder {} is marked complete but has no {missing}/ folder; delete {} and \
         run the command again to fetch it afresh",
        shown(.root), shown(.root)
    )]
    DatasetIncomplete {
        root: PathBuf,
        missing: &'static str,
    },

    #[error(
        "{} exists but was not completed by this tool (no {COMPLETE_MARKER} marker), so it may be a \
         partial extraction. Delete it and run the command again; or, if you extracted it yourself \
         and know it is complete, create an empty file {}",
        shown(.root), shown(&.root.join(COMPLETE_MARKER))
    )]
    DatasetUnverified { root: PathBuf },

    #[error(
        "could not get {} of {hub_id} from the Hugging Face hub ({detail}). If this machine \
         is offline, download {url} on a machine that is online and pass the file with \
         --weights PATH (or retry once online; downloads are cached in {})",
        escaped(.filename), shown(.cache_dir)
    )]
    HubDownload {
        hub_id: String,
        filename: String,
        url: String,
        cache_dir: PathBuf,
        detail: String,
    },
}

fn describe_size(size: &Option<u64>) -> String {
    size.map_or_else(|| "an unknown number of".to_string(), |s| s.to_string())
}

/// `, and N entries were refused as unsafe (the first: NAME: WHY)`, or nothing.
fn describe_refused(refused: &[(String, String)]) -> String {
    match refused {
        [] => String::new(),
        [(name, why), rest @ ..] => format!(
            ", and {} {} refused as unsafe (the first: {}: {why})",
            rest.len() + 1,
            if rest.is_empty() {
                "entry was"
            } else {
                "entries were"
            },
            escaped(name)
        ),
    }
}

/// Names from archives and servers, for messages: control and bidirectional characters
/// escaped.
pub(crate) fn escaped(text: &str) -> String {
    crate::support::text::printable(text).into_owned()
}

/// A path for a message: [`escaped`].
pub(crate) fn shown(path: &Path) -> String {
    crate::support::text::printable_path(path).to_string()
}

/// A network library's error text for a message that already names `url`: its `: `-separated
/// parts without the URL and without a part that repeats the one before (ureq says
/// `URL: Network Error: Network Error: ...`).
fn detail_for(text: &str, url: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split(": ") {
        if part != url && parts.last() != Some(&part) {
            parts.push(part);
        }
    }
    parts.join(": ")
}

/// Builds a closure turning an I/O error into [`FetchError::Io`] about `path`.
fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FetchError + 'a {
    move |e| FetchError::Io {
        action,
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

/// `dir/name` → `dir/name<suffix>`: where work in progress on `path` is kept.
fn with_suffix(path: &Path, suffix: &str) -> Result<PathBuf, FetchError> {
    let name = path
        .file_name()
        .ok_or_else(|| FetchError::InvalidDestination {
            path: path.to_path_buf(),
        })?;
    let mut name = name.to_os_string();
    name.push(suffix);
    Ok(path.with_file_name(name))
}

/// Files and folders a run has created and must remove if it fails: dropped without
/// [`Created::keep`] (an error returned with `?`, or a panic), it deletes them. Only ever
/// given paths the run itself made, so a failure never deletes anything that was there before.
#[derive(Default)]
struct Created {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Created {
    fn file(&mut self, path: &Path) {
        self.files.push(path.to_path_buf());
    }

    fn dir(&mut self, path: &Path) {
        self.dirs.push(path.to_path_buf());
    }

    /// The run succeeded: keep everything.
    fn keep(mut self) {
        self.files.clear();
        self.dirs.clear();
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        let removed = self
            .files
            .iter()
            .map(|f| (f, fs::remove_file(f)))
            .chain(self.dirs.iter().map(|d| (d, fs::remove_dir_all(d))));
        for (path, result) in removed {
            match result {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    tracing::warn!(path = %shown(path), error = %e, "could not clean up after a failed run");
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_details_say_each_thing_once() {
        let url = "http://h:1/f.tgz";
        assert_eq!(
            detail_for(
                "request error: http://h:1/f.tgz: Network Error: Network Error: reset (os error 104)",
                url
            ),
            "request error: Network Error: reset (os error 104)"
        );
        assert_eq!(
            detail_for("Dns Failed: no such host", url),
            "Dns Failed: no such host"
        );
    }

    #[test]
    fn suffixes_go_on_the_file_name() {
        assert_eq!(
            with_suffix(Path::new("data/x.tgz"), ".partial").unwrap(),
            PathBuf::from("data/x.tgz.partial")
        );
        assert_eq!(
            with_suffix(Path::new("data/set/"), ".partial-extract").unwrap(),
            PathBuf::from("data/set.partial-extract")
        );
        assert!(with_suffix(Path::new("/"), ".partial").is_err());
    }

    #[test]
    fn control_characters_are_shown_as_escapes() {
        assert_eq!(escaped("imagenette2/a.JPEG"), "imagenette2/a.JPEG");
        assert_eq!(escaped("l'été ✓"), "l'été ✓");
        assert_eq!(escaped("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escaped("x\ny\tz\r"), "x\\ny\\tz\\r");
        assert_eq!(escaped("gpj.\u{202e}exe"), "gpj.\\u{202e}exe");
        // A literal backslash is escaped too, so `\u{1b}` in a name cannot pass for ESC.
        assert_eq!(escaped("a\\u{1b}"), "a\\\\u{1b}");
        assert_eq!(shown(Path::new("d/\u{7}bell")), "d/\\u{7}bell");
    }

    #[test]
    fn refused_entries_are_summarised_with_escaped_names() {
        assert_eq!(describe_refused(&[]), "");
        let one = describe_refused(&[("../x\u{1b}".into(), "path contains '..'".into())]);
        assert_eq!(
            one,
            ", and 1 entry was refused as unsafe (the first: ../x\\u{1b}: path contains '..')"
        );
        let two = describe_refused(&[
            ("/abs".into(), "absolute path".into()),
            ("../y".into(), "path contains '..'".into()),
        ]);
        assert!(
            two.contains("2 entries were") && two.contains("/abs"),
            "{two}"
        );
    }

    #[test]
    fn a_failed_run_removes_only_what_it_created() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("made.tgz");
        let dir = tmp.path().join("made.partial-extract");
        let before = tmp.path().join("was-there");
        fs::write(&file, b"x").unwrap();
        fs::create_dir_all(dir.join("a/b")).unwrap();
        fs::create_dir(&before).unwrap();
        {
            let mut created = Created::default();
            created.file(&file);
            created.dir(&dir);
            created.file(&tmp.path().join("never-made"));
        }
        assert!(!file.exists() && !dir.exists());
        assert!(before.is_dir());

        fs::write(&file, b"x").unwrap();
        let mut created = Created::default();
        created.file(&file);
        created.keep();
        assert!(file.exists());
    }
}
