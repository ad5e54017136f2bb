//! Downloads: resumable HTTP files, safe `.tar.gz` extraction, the Imagenette data set and
//! Hugging Face hub weights.
//!
//! The rule throughout: a file or folder only appears under its final name once it is
//! complete and checked. Work in progress lives under a suffixed name (`<dest>.partial`,
//! `<dest>.partial-extract`) so an interrupted run can never be mistaken for a finished one,
//! and a download that stops half-way can resume where it stopped.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use flate2::read::GzDecoder;
use hf_hub::api::sync::ApiBuilder;
use hf_hub::Cache;
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use tar::EntryType;

/// Everything that can go wrong while fetching. Each message names the file or URL involved
/// and says what to do next.
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
         ({detail}) for {url}; delete {partial} and run the same command again"
    )]
    BadResume {
        url: String,
        partial: PathBuf,
        detail: String,
    },

    #[error(
        "download of {url} stopped after {received} of {} bytes ({reason}); the bytes received \
         so far are kept in {partial}: run the same command again to resume",
        describe_size(.expected)
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
         moved to {kept} (delete it once inspected). Run the command again to download it afresh, \
         or check the expected checksum"
    )]
    ChecksumMismatch {
        url: String,
        expected: String,
        actual: String,
        kept: PathBuf,
    },

    #[error("could not {action} {}: {detail}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        detail: String,
    },

    #[error("{} is not usable as a destination: it has no file name (give a path such as data/imagenette)", .path.display())]
    InvalidDestination { path: PathBuf },

    #[error(
        "{} is not a readable .tar.gz archive ({detail}); delete it and download it again",
        .archive.display()
    )]
    InvalidArchive { archive: PathBuf, detail: String },

    #[error(
        "cannot extract into {}: it already exists and is not an empty folder; remove it or choose another destination",
        .dest.display()
    )]
    DestinationExists { dest: PathBuf },

    #[error("unknown Imagenette size '{0}': use 160, 320 or full")]
    UnknownImagenetteSize(String),

    #[error(
        "the archive downloaded from {url} has no {missing} folder, so it is not the expected \
         Imagenette archive; check the URL (REASON_IMAGENETTE_URL if set) and run the command again"
    )]
    NotImagenette { url: String, missing: String },

    #[error(
        "the Imagenette folder {} is marked complete but has no {missing}/ folder; delete {} and \
         run the command again to fetch it afresh",
        .root.display(), .root.display()
    )]
    DatasetIncomplete {
        root: PathBuf,
        missing: &'static str,
    },

    #[error(
        "{} exists but was not completed by this tool (no {COMPLETE_MARKER} marker), so it may be a \
         partial extraction. Delete it and run the command again; or, if you extracted it yourself \
         and know it is complete, create an empty file {}",
        .root.display(), .root.join(COMPLETE_MARKER).display()
    )]
    DatasetUnverified { root: PathBuf },

    #[error(
        "could not get {filename} of {hub_id} from the Hugging Face hub ({detail}). If this machine \
         is offline, download {url} on a machine that is online and pass the file with \
         --weights PATH (or retry once online; downloads are cached in {})",
        .cache_dir.display()
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

// ---------------------------------------------------------------------------------------------
// HTTP download
// ---------------------------------------------------------------------------------------------

/// What [`download`] should check and show.
#[derive(Debug, Clone, Default)]
pub struct DownloadOptions {
    /// Exact size in bytes the file must have; the server's own claim is always checked too.
    pub expected_size: Option<u64>,
    /// Lower- or upper-case hex SHA-256 the finished file must have.
    pub sha256: Option<String>,
    /// Draw a progress bar on the terminal (leave off in tests and non-interactive use).
    pub progress: bool,
}

/// What [`download`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadReport {
    /// The finished file (the `dest` that was asked for).
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// True when `dest` was already there and complete, so nothing was fetched.
    pub skipped: bool,
    /// Bytes reused from an earlier `.partial` file (0 when the download started from scratch).
    pub resumed_from: u64,
}

/// One agent per download: generous but finite timeouts, so a dead connection becomes an
/// error (and a later resume) rather than a hang. There is no overall timeout, since the
/// archives are large.
fn http_agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(20))
        .timeout_read(Duration::from_secs(60))
        .timeout_write(Duration::from_secs(60))
        .user_agent(concat!("reason/", env!("CARGO_PKG_VERSION")))
        .try_proxy_from_env(true)
        .build()
}

/// Downloads `url` to `dest`, resuming an earlier partial download when there is one.
///
/// Bytes are streamed into `<dest>.partial`; if that file already exists the request asks for
/// the rest only (`Range: bytes=N-`). A `206` answer is appended; a `200` means the server
/// ignores ranges, so the download restarts from zero. The file is renamed to `dest` only
/// when its size matches exactly what the server announced (and `opts.expected_size`, if
/// given) and, when `opts.sha256` is given, its checksum matches. A connection that drops
/// early leaves the `.partial` file in place (run again to resume) and returns
/// [`FetchError::Truncated`]. A checksum mismatch moves the file to `<dest>.corrupt`, so that
/// it can be inspected and the next run starts afresh.
///
/// If `dest` already exists it is kept (reported as `skipped`) when it has the expected size
/// and checksum, or when neither is given: `dest` only ever appears complete. Otherwise it is
/// downloaded again and replaced.
pub fn download(
    url: &str,
    dest: &Path,
    opts: &DownloadOptions,
) -> Result<DownloadReport, FetchError> {
    if let Some(report) = already_downloaded(dest, opts)? {
        return Ok(report);
    }
    let partial = with_suffix(dest, ".partial")?;
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io_err("create the folder", parent))?;
    }

    let mut have = fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    if opts.expected_size.is_some_and(|expected| have > expected) {
        tracing::warn!(partial = %partial.display(), "partial file is larger than expected; starting over");
        have = 0;
    }

    let (written, resumed_from, announced) = if have > 0 && opts.expected_size == Some(have) {
        // An earlier run got every byte but stopped before the rename.
        (have, have, Some(have))
    } else {
        match start_transfer(&http_agent(), url, have, &partial)? {
            Transfer::AlreadyComplete { total } => (total, total, Some(total)),
            Transfer::Body {
                response,
                offset,
                total,
            } => {
                if let (Some(expected), Some(actual)) = (opts.expected_size, total) {
                    if expected != actual {
                        return Err(FetchError::SizeMismatch {
                            url: url.to_string(),
                            expected,
                            actual,
                        });
                    }
                }
                if offset > 0 {
                    tracing::info!(url, offset, "resuming download");
                }
                let written =
                    stream_to_partial(url, response, &partial, offset, total, opts.progress)?;
                (written, offset, total)
            }
        }
    };

    check_final_size(url, &partial, written, opts.expected_size.or(announced))?;
    if let Some(expected) = &opts.sha256 {
        let actual = sha256_hex(&partial)?;
        if !actual.eq_ignore_ascii_case(expected.trim()) {
            let kept = with_suffix(dest, ".corrupt")?;
            fs::rename(&partial, &kept).map_err(io_err("rename the corrupt download", &partial))?;
            return Err(FetchError::ChecksumMismatch {
                url: url.to_string(),
                expected: expected.trim().to_lowercase(),
                actual,
                kept,
            });
        }
    }
    fs::rename(&partial, dest).map_err(io_err("move the finished download to", dest))?;
    Ok(DownloadReport {
        path: dest.to_path_buf(),
        bytes: written,
        skipped: false,
        resumed_from,
    })
}

/// `Some(report)` when `dest` is already there and passes the checks asked for.
fn already_downloaded(
    dest: &Path,
    opts: &DownloadOptions,
) -> Result<Option<DownloadReport>, FetchError> {
    let Ok(meta) = fs::metadata(dest) else {
        return Ok(None);
    };
    if !meta.is_file() || opts.expected_size.is_some_and(|size| size != meta.len()) {
        return Ok(None);
    }
    if let Some(expected) = &opts.sha256 {
        if !sha256_hex(dest)?.eq_ignore_ascii_case(expected.trim()) {
            tracing::warn!(dest = %dest.display(), "existing file has the wrong checksum; downloading it again");
            return Ok(None);
        }
    }
    Ok(Some(DownloadReport {
        path: dest.to_path_buf(),
        bytes: meta.len(),
        skipped: true,
        resumed_from: 0,
    }))
}

enum Transfer {
    /// Stream `response` into the partial file starting at byte `offset`.
    Body {
        response: Box<ureq::Response>,
        offset: u64,
        total: Option<u64>,
    },
    /// The partial file already holds the whole file (the server said so with a 416).
    AlreadyComplete { total: u64 },
}

/// Sends the GET (with a `Range` header when `have > 0`) and decides where writing starts.
fn start_transfer(
    agent: &ureq::Agent,
    url: &str,
    have: u64,
    partial: &Path,
) -> Result<Transfer, FetchError> {
    // `identity`: the byte count must be that of the file, not of a compressed transfer.
    // `close`: one long transfer per connection; a server that aborts mid-way shows as EOF at once.
    let mut request = agent
        .get(url)
        .set("Accept-Encoding", "identity")
        .set("Connection", "close");
    if have > 0 {
        request = request.set("Range", &format!("bytes={have}-"));
    }
    match request.call() {
        Ok(response) if response.status() == 206 => {
            let range = response
                .header("Content-Range")
                .and_then(parse_content_range);
            match range {
                Some(range) if range.start == have => Ok(Transfer::Body {
                    response: Box::new(response),
                    offset: have,
                    total: range.total,
                }),
                _ => Err(FetchError::BadResume {
                    url: url.to_string(),
                    partial: partial.to_path_buf(),
                    detail: format!(
                        "asked for bytes from {have}, got Content-Range {:?}",
                        response.header("Content-Range").unwrap_or("(none)")
                    ),
                }),
            }
        }
        Ok(response) => {
            if have > 0 {
                tracing::warn!(url, "server does not support resuming; starting over");
            }
            let total = response
                .header("Content-Length")
                .and_then(|v| v.trim().parse().ok());
            Ok(Transfer::Body {
                response: Box::new(response),
                offset: 0,
                total,
            })
        }
        Err(ureq::Error::Status(416, response)) if have > 0 => {
            // "Range not satisfiable": the partial file is at least as long as the file.
            let total = response
                .header("Content-Range")
                .and_then(parse_content_range)
                .and_then(|r| r.total);
            if total == Some(have) {
                Ok(Transfer::AlreadyComplete { total: have })
            } else {
                tracing::warn!(
                    url,
                    "partial file does not match the server's file; starting over"
                );
                start_transfer(agent, url, 0, partial)
            }
        }
        Err(ureq::Error::Status(status, _)) => Err(FetchError::HttpStatus {
            url: url.to_string(),
            status,
        }),
        Err(ureq::Error::Transport(transport)) => Err(FetchError::Network {
            url: url.to_string(),
            detail: transport.to_string(),
        }),
    }
}

/// Writes the body into `partial` (appending from `offset`, or truncating when 0) and returns
/// the partial file's length once the body ends. A read error is a truncated download.
fn stream_to_partial(
    url: &str,
    response: Box<ureq::Response>,
    partial: &Path,
    offset: u64,
    total: Option<u64>,
    progress: bool,
) -> Result<u64, FetchError> {
    let mut file = if offset == 0 {
        File::create(partial)
    } else {
        OpenOptions::new().append(true).open(partial)
    }
    .map_err(io_err("open for writing", partial))?;

    let bar = progress_bar(progress, total, url);
    bar.set_position(offset);
    let mut reader = response.into_reader();
    let mut buf = vec![0u8; 64 * 1024];
    let mut written = offset;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                bar.abandon();
                file.sync_all().map_err(io_err("write", partial))?;
                return Err(FetchError::Truncated {
                    url: url.to_string(),
                    received: written,
                    expected: total,
                    partial: partial.to_path_buf(),
                    reason: e.to_string(),
                });
            }
        };
        file.write_all(&buf[..n])
            .map_err(io_err("write", partial))?;
        written += n as u64;
        bar.set_position(written);
    }
    file.sync_all().map_err(io_err("write", partial))?;
    bar.finish();
    Ok(written)
}

/// The byte count must be exactly what was announced: fewer bytes is a truncated download
/// (kept for resuming), more is a corrupt one (deleted).
fn check_final_size(
    url: &str,
    partial: &Path,
    written: u64,
    expected: Option<u64>,
) -> Result<(), FetchError> {
    match expected {
        Some(expected) if written < expected => Err(FetchError::Truncated {
            url: url.to_string(),
            received: written,
            expected: Some(expected),
            partial: partial.to_path_buf(),
            reason: "the connection closed early".to_string(),
        }),
        Some(expected) if written > expected => {
            fs::remove_file(partial).map_err(io_err("delete the oversized download", partial))?;
            Err(FetchError::SizeMismatch {
                url: url.to_string(),
                expected,
                actual: written,
            })
        }
        _ => Ok(()),
    }
}

/// A bar when the size is known, a spinner when not, nothing when `show` is false.
fn progress_bar(show: bool, total: Option<u64>, url: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(total) => (
            ProgressBar::new(total),
            "{msg} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ({eta})",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{msg} {spinner} {bytes} {bytes_per_sec}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_message(url.rsplit('/').next().unwrap_or(url).to_string());
    bar
}

/// The parts of a `Content-Range: bytes START-END/TOTAL` (or `bytes */TOTAL`) header we use.
#[derive(Debug, PartialEq, Eq)]
struct ContentRange {
    start: u64,
    total: Option<u64>,
}

fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    let start = match range.trim() {
        "*" => total?,
        r => r.split_once('-')?.0.trim().parse().ok()?,
    };
    Some(ContentRange { start, total })
}

fn sha256_hex(path: &Path) -> Result<String, FetchError> {
    let mut file = File::open(path).map_err(io_err("open for checksumming", path))?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).map_err(io_err("read for checksumming", path))?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Safe extraction
// ---------------------------------------------------------------------------------------------

/// What [`extract_tar_gz`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractReport {
    /// Regular files written.
    pub files: usize,
    /// Directories created.
    pub dirs: usize,
    /// Symbolic and hard links created (only those staying inside the destination).
    pub links: usize,
    /// Entries not extracted: (path as written in the archive, why).
    pub refused: Vec<(String, String)>,
}

/// Extracts a `.tar.gz` into `dest`, so that archive entry `a/b` becomes `dest/a/b`.
///
/// Archives come from the network, so entries that could write outside `dest` are refused
/// (listed in [`ExtractReport::refused`], not extracted): absolute paths, paths with a `..`
/// component, symbolic links whose target is absolute or climbs out of `dest` (a `..` is only
/// accepted at the start of a link target, where it can be checked without following other
/// links), hard links to anything but a plain relative path inside the archive, and device
/// files or FIFOs. Everything else is extracted.
///
/// Entries are written to `<dest>.partial-extract` (a leftover from an interrupted run is
/// deleted first), which is renamed to `dest` only when the whole archive has been read, so
/// `dest` never holds a partial extraction. `dest` must not exist or be an empty folder;
/// otherwise [`FetchError::DestinationExists`] is returned and nothing is touched.
pub fn extract_tar_gz(archive: &Path, dest: &Path) -> Result<ExtractReport, FetchError> {
    let dest_is_empty_dir = match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(io_err("inspect", dest)(e)),
        Ok(meta) => {
            let empty = meta.is_dir()
                && fs::read_dir(dest)
                    .map_err(io_err("list", dest))?
                    .next()
                    .is_none();
            if !empty {
                return Err(FetchError::DestinationExists {
                    dest: dest.to_path_buf(),
                });
            }
            true
        }
    };
    let staging = with_suffix(dest, ".partial-extract")?;
    if fs::symlink_metadata(&staging).is_ok() {
        fs::remove_dir_all(&staging).map_err(io_err("remove the leftover folder", &staging))?;
    }
    fs::create_dir_all(&staging).map_err(io_err("create the folder", &staging))?;

    let file = File::open(archive).map_err(io_err("open the archive", archive))?;
    let mut tar = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    let invalid = |e: io::Error| FetchError::InvalidArchive {
        archive: archive.to_path_buf(),
        detail: e.to_string(),
    };
    let mut report = ExtractReport::default();
    let mut links = HashSet::new();
    for entry in tar.entries().map_err(invalid)? {
        let mut entry = entry.map_err(invalid)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            continue; // metadata records, already applied by `tar` to the next entry
        }
        let checked = entry.path().map_err(|e| e.to_string()).and_then(|path| {
            let target = entry.link_name().map_err(|e| e.to_string())?;
            check_entry(&path, kind, target.as_deref(), &links)
        });
        let relative = match checked {
            Ok(Some(relative)) => relative,
            Ok(None) => continue, // "./" and the like: nothing to create
            Err(reason) => {
                tracing::warn!(entry = %name, %reason, "refused archive entry");
                report.refused.push((name, reason));
                continue;
            }
        };
        // `unpack_in` repeats its own checks (it also refuses `..` and canonicalises parents).
        let unpacked = entry.unpack_in(&staging).map_err(|e| FetchError::Io {
            action: "extract",
            path: staging.join(&relative),
            detail: e.to_string(),
        })?;
        if !unpacked {
            report
                .refused
                .push((name, "refused by the tar reader as unsafe".to_string()));
            continue;
        }
        match kind {
            EntryType::Directory => report.dirs += 1,
            EntryType::Symlink => {
                links.insert(relative);
                report.links += 1;
            }
            EntryType::Link => report.links += 1,
            _ => report.files += 1,
        }
    }

    if dest_is_empty_dir {
        fs::remove_dir(dest).map_err(io_err("replace the empty folder", dest))?;
    }
    fs::rename(&staging, dest).map_err(io_err("move the extracted folder to", dest))?;
    Ok(report)
}

/// Decides whether an entry may be extracted: `Ok(Some(path inside dest))`, `Ok(None)` for
/// an empty path, or `Err(reason)`. `links` holds the symbolic links created so far.
fn check_entry(
    path: &Path,
    kind: EntryType,
    link_target: Option<&Path>,
    links: &HashSet<PathBuf>,
) -> Result<Option<PathBuf>, String> {
    let Some(relative) = relative_inside(path)? else {
        return Ok(None);
    };
    // Nothing is created beneath a link: its real location may differ from its path, which
    // would defeat the checks below.
    if let Some(link) = symlink_on_path(&relative, links) {
        return Err(format!("goes through the symbolic link {}", link.display()));
    }
    match kind {
        EntryType::Regular
        | EntryType::Continuous
        | EntryType::GNUSparse
        | EntryType::Directory => {}
        EntryType::Symlink => {
            let target = link_target.ok_or("symbolic link without a target")?;
            check_symlink_target(&relative, target)?;
        }
        EntryType::Link => {
            // Hard-link targets are archive paths, relative to the archive root. Linking to a
            // symbolic link would copy the link itself to a place where it may point elsewhere.
            let target = link_target.ok_or("hard link without a target")?;
            let target = relative_inside(target)
                .map_err(|why| format!("hard link target {}: {why}", target.display()))?
                .ok_or("hard link with an empty target")?;
            if links.contains(&target) || symlink_on_path(&target, links).is_some() {
                return Err(format!(
                    "hard link to {}, which is or goes through a symbolic link",
                    target.display()
                ));
            }
        }
        other => {
            return Err(format!(
                "unsupported entry type {other:?} (only files, folders and links are extracted)"
            ))
        }
    }
    Ok(Some(relative))
}

/// The first proper ancestor of `path` that is one of `links`.
fn symlink_on_path<'a>(path: &'a Path, links: &HashSet<PathBuf>) -> Option<&'a Path> {
    path.ancestors()
        .skip(1)
        .find(|ancestor| links.contains(*ancestor))
}

/// A path with only plain components (`.` dropped); refuses absolute paths and `..`.
fn relative_inside(path: &Path) -> Result<Option<PathBuf>, String> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => {
                return Err("absolute path".to_string());
            }
            Component::ParentDir => return Err("path contains a '..' component".to_string()),
            Component::CurDir => {}
            Component::Normal(part) => out.push(part),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// A symbolic link at `link` (relative to the destination, not beneath another link) may
/// point to `target` only if the target is relative, its `..` components all come first (so
/// they climb real folders, not other links) and do not climb above the destination.
fn check_symlink_target(link: &Path, target: &Path) -> Result<(), String> {
    if target.as_os_str().is_empty() {
        return Err("symbolic link with an empty target".to_string());
    }
    let mut depth = link.components().count() - 1;
    let mut seen_name = false;
    for component in target.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => {
                return Err(format!(
                    "symbolic link to the absolute path {}",
                    target.display()
                ))
            }
            Component::CurDir => {}
            Component::ParentDir if seen_name => {
                return Err(format!(
                    "symbolic link to {} has '..' after a folder name (not accepted: it could \
                     climb out through another link)",
                    target.display()
                ))
            }
            Component::ParentDir => {
                depth = depth.checked_sub(1).ok_or_else(|| {
                    format!(
                        "symbolic link to {} points outside the destination",
                        target.display()
                    )
                })?
            }
            Component::Normal(_) => seen_name = true,
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Imagenette
// ---------------------------------------------------------------------------------------------

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
/// The archive is downloaded to `dest_dir` (resumable), extracted safely, checked for
/// `train/` and `val/`, marked complete with a [`COMPLETE_MARKER`] file (which also lists any
/// refused archive entries), moved into place, and then deleted to save space. When the root
/// is already complete this returns at once without touching the network; a root folder that
/// exists without the marker is an error rather than being trusted or overwritten.
///
/// The URL is `base_url_override/<archive>` when given (tests use a local server), otherwise
/// the full URL in `$REASON_IMAGENETTE_URL` when set, otherwise fast.ai's official one.
pub fn fetch_imagenette(
    size: ImagenetteSize,
    dest_dir: &Path,
    base_url_override: Option<&str>,
    progress: bool,
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
    tracing::info!(%url, archive = %archive.display(), "fetching Imagenette");
    let options = DownloadOptions {
        progress,
        ..DownloadOptions::default()
    };
    download(&url, &archive, &options)?;

    // Extracted into its own folder first: the archive's top folder is then moved to `root`.
    let unpacked = dest_dir.join(format!("{}.unpacked", size.folder_name()));
    if fs::symlink_metadata(&unpacked).is_ok() {
        fs::remove_dir_all(&unpacked).map_err(io_err("remove the leftover folder", &unpacked))?;
    }
    let report = extract_tar_gz(&archive, &unpacked)?;
    let extracted_root = unpacked.join(size.folder_name());
    for split in ["train", "val"] {
        if !extracted_root.join(split).is_dir() {
            return Err(FetchError::NotImagenette {
                url,
                missing: format!("{}/{split}", size.folder_name()),
            });
        }
    }

    let mut marker = format!(
        "source: {url}\nfiles: {}\nrefused: {}\n",
        report.files,
        report.refused.len()
    );
    for (entry, reason) in &report.refused {
        marker.push_str(&format!("  {entry}: {reason}\n"));
    }
    let marker_path = extracted_root.join(COMPLETE_MARKER);
    fs::write(&marker_path, marker).map_err(io_err("write", &marker_path))?;
    fs::rename(&extracted_root, &root).map_err(io_err("move the dataset to", &root))?;
    fs::remove_dir_all(&unpacked).map_err(io_err("remove the folder", &unpacked))?;
    fs::remove_file(&archive).map_err(io_err("delete the archive", &archive))?;
    Ok(root)
}

// ---------------------------------------------------------------------------------------------
// Hugging Face hub
// ---------------------------------------------------------------------------------------------

/// Which hub to talk to and where its downloads are cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSource {
    /// Base URL of the hub, e.g. `https://huggingface.co`.
    pub endpoint: String,
    /// The hub cache folder (the `hub` folder of the Hugging Face cache).
    pub cache_dir: PathBuf,
    /// Draw hf-hub's progress bar.
    pub progress: bool,
}

impl HubSource {
    /// What hf-hub itself uses: `$HF_ENDPOINT` (default `https://huggingface.co`) and
    /// `$HF_HOME/hub` (default `~/.cache/huggingface/hub`), with a progress bar.
    pub fn from_env() -> Self {
        let endpoint = std::env::var("HF_ENDPOINT")
            .ok()
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| "https://huggingface.co".to_string());
        Self {
            endpoint,
            cache_dir: Cache::from_env().path().clone(),
            progress: true,
        }
    }
}

/// Returns the local path of `filename` from hub repository `hub_id` (e.g.
/// `timm/resnet18.a1_in1k`, `model.safetensors`), downloading it into the standard Hugging
/// Face cache the first time. Honours `HF_ENDPOINT` and `HF_HOME` like hf-hub does.
pub fn fetch_hub_weights(hub_id: &str, filename: &str) -> Result<PathBuf, FetchError> {
    fetch_hub_weights_from(&HubSource::from_env(), hub_id, filename)
}

/// [`fetch_hub_weights`] with an explicit hub and cache folder (no environment lookups).
pub fn fetch_hub_weights_from(
    source: &HubSource,
    hub_id: &str,
    filename: &str,
) -> Result<PathBuf, FetchError> {
    let fail = |detail: String| FetchError::HubDownload {
        hub_id: hub_id.to_string(),
        filename: filename.to_string(),
        url: hub_url(&source.endpoint, hub_id, filename),
        cache_dir: source.cache_dir.clone(),
        detail,
    };
    let api = ApiBuilder::from_cache(Cache::new(source.cache_dir.clone()))
        .with_endpoint(source.endpoint.trim_end_matches('/').to_string())
        .with_progress(source.progress)
        .build()
        .map_err(|e| fail(e.to_string()))?;
    // `get` answers from the cache when it can, so this works offline once downloaded.
    api.model(hub_id.to_string())
        .get(filename)
        .map_err(|e| fail(e.to_string()))
}

/// The cached copy of `filename` from `hub_id` in the standard Hugging Face cache
/// (`$HF_HOME/hub` or `~/.cache/huggingface/hub`), if there is one. Never uses the network.
pub fn cached_hub_weights(hub_id: &str, filename: &str) -> Option<PathBuf> {
    cached_hub_weights_in(Cache::from_env().path(), hub_id, filename)
}

/// [`cached_hub_weights`] in an explicit hub cache folder.
pub fn cached_hub_weights_in(cache_dir: &Path, hub_id: &str, filename: &str) -> Option<PathBuf> {
    Cache::new(cache_dir.to_path_buf())
        .model(hub_id.to_string())
        .get(filename)
}

/// The hub's download URL for a file on the `main` revision.
pub fn hub_url(endpoint: &str, hub_id: &str, filename: &str) -> String {
    format!(
        "{}/{hub_id}/resolve/main/{filename}",
        endpoint.trim_end_matches('/')
    )
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

    #[test]
    fn content_range_parsing() {
        let parsed = |s| parse_content_range(s);
        assert_eq!(
            parsed("bytes 100-199/200"),
            Some(ContentRange {
                start: 100,
                total: Some(200)
            })
        );
        assert_eq!(
            parsed("bytes 0-0/*"),
            Some(ContentRange {
                start: 0,
                total: None
            })
        );
        assert_eq!(
            parsed("bytes */350"),
            Some(ContentRange {
                start: 350,
                total: Some(350)
            })
        );
        assert_eq!(parsed("items 0-1/2"), None);
        assert_eq!(parsed("bytes 1-2"), None);
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
    fn entry_paths_must_stay_inside() {
        let none = HashSet::new();
        let file = |p: &str| check_entry(Path::new(p), EntryType::Regular, None, &none);
        assert_eq!(file("a/./b.txt").unwrap(), Some(PathBuf::from("a/b.txt")));
        assert_eq!(file("./").unwrap(), None);
        assert!(file("../escape.txt").unwrap_err().contains(".."));
        assert!(file("a/../../b").is_err());
        assert!(file("/tmp/x").unwrap_err().contains("absolute"));
        assert!(check_entry(Path::new("dev"), EntryType::Char, None, &none)
            .unwrap_err()
            .contains("unsupported"));
    }

    #[test]
    fn link_targets_must_stay_inside() {
        let links: HashSet<PathBuf> = [PathBuf::from("a/here")].into();
        let symlink = |at: &str, to: &str| {
            check_entry(
                Path::new(at),
                EntryType::Symlink,
                Some(Path::new(to)),
                &links,
            )
        };
        assert!(symlink("a/b/link", "../c/file").is_ok());
        assert!(symlink("a/b/link", "../../top").is_ok());
        assert!(symlink("a/link", "sibling").is_ok());
        assert!(symlink("a/b/link", "../../../etc/passwd").is_err());
        assert!(symlink("link", "..").is_err());
        assert!(symlink("a/link", "/etc/passwd")
            .unwrap_err()
            .contains("absolute"));
        assert!(symlink("a/link", "b/../../x").is_err());
        assert!(symlink("a/link", "").is_err());

        // `a/here` is a link (to `.`, say): nothing may be created beneath it.
        assert!(symlink("a/here/link", "..").unwrap_err().contains("a/here"));
        assert!(check_entry(Path::new("a/here/f"), EntryType::Regular, None, &links).is_err());

        let hardlink = |at: &str, to: &str| {
            check_entry(Path::new(at), EntryType::Link, Some(Path::new(to)), &links)
        };
        assert!(hardlink("a/copy", "a/original").is_ok());
        assert!(hardlink("copy", "a/here")
            .unwrap_err()
            .contains("symbolic link"));
        assert!(hardlink("copy", "a/here/x").is_err());
        assert!(hardlink("a/copy", "../outside").is_err());
        assert!(hardlink("a/copy", "/etc/passwd").is_err());
    }

    #[test]
    fn hub_url_is_the_resolve_url() {
        assert_eq!(
            hub_url(
                "https://huggingface.co/",
                "timm/resnet18.a1_in1k",
                "model.safetensors"
            ),
            "https://huggingface.co/timm/resnet18.a1_in1k/resolve/main/model.safetensors"
        );
    }
}
