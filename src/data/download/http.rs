//! Resumable HTTP downloads into `<dest>.partial`, renamed to `dest` once complete and checked.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{detail_for, escaped, io_err, shown, with_suffix, DownloadProgress, FetchError};

/// What [`download`] should check.
#[derive(Debug, Clone, Default)]
pub struct DownloadOptions {
    /// Exact size in bytes the file must have; the server's own claim is always checked too.
    pub expected_size: Option<u64>,
    /// Lower- or upper-case hex SHA-256 the finished file must have.
    pub sha256: Option<String>,
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
///
/// The transfer is reported to `progress` (see [`DownloadProgress`]); nothing is drawn here.
pub fn download(
    url: &str,
    dest: &Path,
    opts: &DownloadOptions,
    progress: &dyn Fn(DownloadProgress),
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
        tracing::warn!(partial = %shown(&partial), "partial file is larger than expected; starting over");
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
                let written = stream_to_partial(url, response, &partial, offset, total, progress)?;
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
            tracing::warn!(dest = %shown(dest), "existing file has the wrong checksum; downloading it again");
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
            detail: detail_for(&transport.to_string(), url),
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
    progress: &dyn Fn(DownloadProgress),
) -> Result<u64, FetchError> {
    let mut file = if offset == 0 {
        File::create(partial)
    } else {
        OpenOptions::new().append(true).open(partial)
    }
    .map_err(io_err("open for writing", partial))?;

    progress(DownloadProgress::Started {
        name: escaped(url.rsplit('/').next().unwrap_or(url)),
        done: offset,
        total,
    });
    let mut reader = response.into_reader();
    let mut buf = vec![0u8; 64 * 1024];
    let mut written = offset;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                progress(DownloadProgress::Finished { complete: false });
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
        if let Err(e) = file.write_all(&buf[..n]) {
            progress(DownloadProgress::Finished { complete: false });
            return Err(io_err("write", partial)(e));
        }
        written += n as u64;
        progress(DownloadProgress::Advanced { done: written });
    }
    progress(DownloadProgress::Finished {
        complete: total.is_none_or(|total| written == total),
    });
    file.sync_all().map_err(io_err("write", partial))?;
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
    crate::support::files::sha256_file(path).map_err(io_err("read for checksumming", path))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
