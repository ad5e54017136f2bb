//! `data::download` against a real HTTP server on 127.0.0.1 (no internet needed): resumable
//! downloads, truncation, size and checksum checks, progress reporting, safe extraction,
//! Imagenette end to end (and the clean-up after a failed run) and a server imitating the
//! Hugging Face hub.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::{write::GzEncoder, Compression};
use reason::data::download::{
    cached_hub_weights_in, download, extract_tar_gz, fetch_hub_weights_from, fetch_imagenette,
    hub_url, no_progress, DownloadOptions, DownloadProgress, FetchError, HubSource, ImagenetteSize,
    COMPLETE_MARKER,
};
use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

mod http_server;
use http_server::{Mode, TestServer};

// ---------------------------------------------------------------------------------------------
// Test data
// ---------------------------------------------------------------------------------------------

/// Deterministic bytes that do not compress (so a cut archive really is cut mid-stream).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Appends an entry whose name bytes are written by hand, so that names `tar::Builder` would
/// refuse (`..`, absolute paths) really end up in the archive.
fn append_raw<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    kind: EntryType,
    link: Option<&str>,
    data: &[u8],
) {
    let mut h = Header::new_gnu();
    assert!(name.len() < 100, "name too long for the old header");
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(if kind == EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_mtime(1_700_000_000);
    h.set_size(data.len() as u64);
    if let Some(link) = link {
        h.set_link_name(link).unwrap();
    }
    h.set_cksum();
    builder.append(&h, data).unwrap();
}

const TRAIN_IMAGE: &[u8] = b"pretend this is a JPEG of a tench";
const VAL_IMAGE: &[u8] = b"pretend this is another tench";

/// An imagenette-like archive with two real images, safe links, a large file, and malicious
/// entries: a `..` path, an absolute path (`absolute_target`), a symlink and a hard link
/// leading outside.
fn imagenette_archive(absolute_target: &Path, big: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    let f = EntryType::Regular;
    append_raw(&mut b, "imagenette2-160/", EntryType::Directory, None, b"");
    append_raw(
        &mut b,
        "imagenette2-160/train/n01440764/a.JPEG",
        f,
        None,
        TRAIN_IMAGE,
    );
    append_raw(&mut b, "../escape.txt", f, None, b"escaped via ..");
    append_raw(
        &mut b,
        absolute_target.to_str().unwrap(),
        f,
        None,
        b"escaped via /",
    );
    append_raw(
        &mut b,
        "imagenette2-160/val/n01440764/b.JPEG",
        f,
        None,
        VAL_IMAGE,
    );
    let symlink = EntryType::Symlink;
    append_raw(
        &mut b,
        "imagenette2-160/passwd",
        symlink,
        Some("../../etc/passwd"),
        b"",
    );
    append_raw(
        &mut b,
        "imagenette2-160/val/n01440764/c.JPEG",
        symlink,
        Some("b.JPEG"),
        b"",
    );
    let hard = EntryType::Link;
    append_raw(
        &mut b,
        "imagenette2-160/val/n01440764/d.JPEG",
        hard,
        Some("imagenette2-160/val/n01440764/b.JPEG"),
        b"",
    );
    append_raw(
        &mut b,
        "imagenette2-160/hard-escape",
        hard,
        Some("../escape.txt"),
        b"",
    );
    append_raw(&mut b, "imagenette2-160/train/big.bin", f, None, big);
    b.into_inner().unwrap().finish().unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn partial_of(dest: &Path) -> PathBuf {
    PathBuf::from(format!("{}.partial", dest.display()))
}

fn quiet() -> DownloadOptions {
    DownloadOptions::default()
}

/// A progress callback that keeps every event.
#[derive(Default)]
struct Recorder(RefCell<Vec<DownloadProgress>>);

impl Recorder {
    fn callback(&self) -> impl Fn(DownloadProgress) + '_ {
        move |event| self.0.borrow_mut().push(event)
    }

    fn take(&self) -> Vec<DownloadProgress> {
        self.0.take()
    }
}

/// Checks one transfer's events: a start at `from` of `total`, positions that never fall and
/// end at `until`, then the end (`complete` or not).
fn assert_transfer(
    events: &[DownloadProgress],
    name: &str,
    from: u64,
    total: Option<u64>,
    until: u64,
    complete: bool,
) {
    assert_eq!(
        events.first(),
        Some(&DownloadProgress::Started {
            name: name.to_string(),
            done: from,
            total
        }),
        "{events:?}"
    );
    assert_eq!(
        events.last(),
        Some(&DownloadProgress::Finished { complete }),
        "{events:?}"
    );
    let positions: Vec<u64> = events[1..events.len() - 1]
        .iter()
        .map(|event| match event {
            DownloadProgress::Advanced { done } => *done,
            other => panic!("unexpected {other:?} in {events:?}"),
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] <= w[1]), "{positions:?}");
    assert_eq!(positions.last(), Some(&until), "{positions:?}");
}

// ---------------------------------------------------------------------------------------------
// Downloads
// ---------------------------------------------------------------------------------------------

#[test]
fn plain_download_then_skip_when_present() {
    let server = TestServer::start();
    let body = noise(70_000, 1);
    server.serve("/file.bin", &body, Mode::Ranges);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("sub/file.bin");

    let report = download(&server.url("/file.bin"), &dest, &quiet(), &no_progress).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), body);
    assert_eq!(
        (report.bytes, report.skipped, report.resumed_from),
        (70_000, false, 0)
    );
    assert!(!partial_of(&dest).exists());

    let opts = DownloadOptions {
        expected_size: Some(70_000),
        ..quiet()
    };
    let again = download(&server.url("/file.bin"), &dest, &opts, &no_progress).unwrap();
    assert!(again.skipped);
    assert_eq!(
        server.requests().len(),
        1,
        "a complete file must not be fetched again"
    );
}

#[test]
fn resume_sends_range_and_yields_identical_file() {
    let server = TestServer::start();
    let body = noise(100_001, 2);
    server.serve("/data.tgz", &body, Mode::Ranges);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("data.tgz");
    let half = body.len() / 2;
    fs::write(partial_of(&dest), &body[..half]).unwrap();

    let progress = Recorder::default();
    let report = download(
        &server.url("/data.tgz"),
        &dest,
        &quiet(),
        &progress.callback(),
    )
    .unwrap();
    assert_eq!(report.resumed_from, half as u64);
    let len = body.len() as u64;
    assert_transfer(
        &progress.take(),
        "data.tgz",
        half as u64,
        Some(len),
        len,
        true,
    );
    assert_eq!(report.bytes, body.len() as u64);
    assert_eq!(
        server.requests(),
        vec![("/data.tgz".to_string(), Some(format!("bytes={half}-")))]
    );
    assert!(fs::read(&dest).unwrap() == body, "resumed file differs");
    assert!(!partial_of(&dest).exists());
}

#[test]
fn server_without_range_support_restarts_from_zero() {
    let server = TestServer::start();
    let body = noise(50_000, 3);
    server.serve("/data.tgz", &body, Mode::NoRanges);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("data.tgz");
    // Garbage that must be discarded, not appended to.
    fs::write(partial_of(&dest), vec![0xAA; 20_000]).unwrap();

    let report = download(&server.url("/data.tgz"), &dest, &quiet(), &no_progress).unwrap();
    assert_eq!(report.resumed_from, 0);
    assert!(fs::read(&dest).unwrap() == body);
    assert_eq!(server.requests()[0].1.as_deref(), Some("bytes=20000-"));
}

#[test]
fn truncated_body_is_an_error_keeps_partial_and_resumes_later() {
    let server = TestServer::start();
    let body = noise(80_000, 4);
    server.serve("/cut.tgz", &body, Mode::Truncate(30_000));
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("cut.tgz");

    let progress = Recorder::default();
    let err = download(
        &server.url("/cut.tgz"),
        &dest,
        &quiet(),
        &progress.callback(),
    )
    .unwrap_err();
    assert_transfer(&progress.take(), "cut.tgz", 0, Some(80_000), 30_000, false);
    match &err {
        FetchError::Truncated {
            received, expected, ..
        } => assert_eq!((*received, *expected), (30_000, Some(80_000))),
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert!(err.to_string().contains("resume"), "{err}");
    assert!(
        !dest.exists(),
        "a truncated download must not look complete"
    );
    assert_eq!(fs::read(partial_of(&dest)).unwrap(), &body[..30_000]);

    // The server recovers: the next run only fetches the rest.
    server.serve("/cut.tgz", &body, Mode::Ranges);
    let report = download(&server.url("/cut.tgz"), &dest, &quiet(), &no_progress).unwrap();
    assert_eq!(report.resumed_from, 30_000);
    assert!(fs::read(&dest).unwrap() == body);
    assert_eq!(server.requests()[1].1.as_deref(), Some("bytes=30000-"));
}

#[test]
fn expected_size_mismatch_is_an_error_without_final_file() {
    let server = TestServer::start();
    let body = noise(10_000, 5);
    server.serve("/f.bin", &body, Mode::Ranges);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("f.bin");
    let opts = DownloadOptions {
        expected_size: Some(10_001),
        ..quiet()
    };
    let err = download(&server.url("/f.bin"), &dest, &opts, &no_progress).unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::SizeMismatch {
                expected: 10_001,
                actual: 10_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!dest.exists());
}

#[test]
fn checksum_is_verified() {
    let server = TestServer::start();
    let body = noise(20_000, 6);
    server.serve("/w.bin", &body, Mode::Ranges);
    let tmp = tempfile::tempdir().unwrap();

    let good = tmp.path().join("good.bin");
    let opts = DownloadOptions {
        sha256: Some(sha256_hex(&body).to_uppercase()),
        ..quiet()
    };
    download(&server.url("/w.bin"), &good, &opts, &no_progress).unwrap();
    assert!(fs::read(&good).unwrap() == body);

    let bad = tmp.path().join("bad.bin");
    let opts = DownloadOptions {
        sha256: Some(sha256_hex(b"something else")),
        ..quiet()
    };
    let err = download(&server.url("/w.bin"), &bad, &opts, &no_progress).unwrap_err();
    assert!(
        matches!(err, FetchError::ChecksumMismatch { .. }),
        "{err:?}"
    );
    assert!(!bad.exists());
    assert!(!partial_of(&bad).exists());
    assert!(tmp.path().join("bad.bin.corrupt").exists());
}

#[test]
fn http_and_connection_errors_name_the_url() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let url = server.url("/missing.tgz");
    let err = download(&url, &tmp.path().join("m.tgz"), &quiet(), &no_progress).unwrap_err();
    assert!(
        matches!(err, FetchError::HttpStatus { status: 404, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&url) && message.contains("404"),
        "{message}"
    );

    // A server that hangs up on every connection. It keeps its port for the whole test, so the
    // outcome never depends on what else on the machine might take a freed port.
    let url = format!("{}/m.tgz", http_server::hang_up_server());
    let err = download(&url, &tmp.path().join("m.tgz"), &quiet(), &no_progress).unwrap_err();
    assert!(matches!(err, FetchError::Network { .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");
    assert!(!tmp.path().join("m.tgz").exists());
}

// ---------------------------------------------------------------------------------------------
// Extraction and Imagenette
// ---------------------------------------------------------------------------------------------

#[test]
fn extraction_refuses_escaping_entries_and_reports_them() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let absolute = outside.path().join("absolute.txt");
    let archive = tmp.path().join("a.tgz");
    fs::write(&archive, imagenette_archive(&absolute, &noise(1000, 7))).unwrap();
    let base = tmp.path().join("nest");
    let dest = base.join("out");

    let report = extract_tar_gz(&archive, &dest).unwrap();
    assert_eq!(report.files, 3, "{report:?}");
    assert_eq!(report.links, 2, "{report:?}");
    let refused: HashMap<&str, &str> = report
        .refused
        .iter()
        .map(|(n, r)| (n.as_str(), r.as_str()))
        .collect();
    assert_eq!(refused.len(), 4, "{refused:?}");
    assert!(refused["../escape.txt"].contains(".."));
    assert!(refused[absolute.to_str().unwrap()].contains("absolute"));
    assert!(refused["imagenette2-160/passwd"].contains("outside"));
    assert!(refused["imagenette2-160/hard-escape"].contains("hard link"));

    let root = dest.join("imagenette2-160");
    assert_eq!(
        fs::read(root.join("train/n01440764/a.JPEG")).unwrap(),
        TRAIN_IMAGE
    );
    assert_eq!(
        fs::read(root.join("val/n01440764/d.JPEG")).unwrap(),
        VAL_IMAGE
    );
    #[cfg(unix)]
    assert_eq!(
        fs::read(root.join("val/n01440764/c.JPEG")).unwrap(),
        VAL_IMAGE
    );
    assert!(fs::symlink_metadata(root.join("passwd")).is_err());
    assert!(fs::symlink_metadata(root.join("hard-escape")).is_err());
    assert!(!absolute.exists());
    assert_eq!(
        names(&base),
        vec!["out"],
        "nothing but the destination may appear"
    );
    assert_eq!(names(&dest), vec!["imagenette2-160"]);

    // A destination with content is left alone.
    let err = extract_tar_gz(&archive, &dest).unwrap_err();
    assert!(
        matches!(err, FetchError::DestinationExists { .. }),
        "{err:?}"
    );
    // An empty destination folder is fine.
    let empty = base.join("empty");
    fs::create_dir(&empty).unwrap();
    assert_eq!(extract_tar_gz(&archive, &empty).unwrap().files, 3);
}

#[test]
fn interrupted_extraction_leaves_no_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let full = imagenette_archive(&outside.path().join("x"), &noise(300_000, 8));
    let archive = tmp.path().join("cut.tgz");
    fs::write(&archive, &full[..full.len() * 2 / 3]).unwrap();
    let dest = tmp.path().join("out");

    let err = extract_tar_gz(&archive, &dest).unwrap_err();
    assert!(
        matches!(err, FetchError::InvalidArchive { deleted: false, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("cut.tgz"), "{err}");
    assert!(!dest.exists(), "a failed extraction must not look complete");
    assert_eq!(
        names(tmp.path()),
        vec!["cut.tgz"],
        "a failed extraction removes its work folder and keeps the archive it was given"
    );

    fs::write(&archive, &full).unwrap();
    extract_tar_gz(&archive, &dest).unwrap();
    assert_eq!(names(tmp.path()), vec!["cut.tgz", "out"]);
}

#[test]
fn imagenette_end_to_end_against_local_server() {
    let server = TestServer::start();
    let outside = tempfile::tempdir().unwrap();
    let absolute = outside.path().join("absolute.txt");
    let archive = imagenette_archive(&absolute, &noise(200_000, 9));
    server.serve("/mirror/imagenette2-160.tgz", &archive, Mode::Ranges);
    let tmp = tempfile::tempdir().unwrap();
    let dest_dir = tmp.path().join("data");
    let base_url = server.url("/mirror");

    let root = fetch_imagenette(
        ImagenetteSize::Px160,
        &dest_dir,
        Some(&base_url),
        &no_progress,
    )
    .unwrap();
    assert_eq!(root, dest_dir.join("imagenette2-160"));
    assert_eq!(
        fs::read(root.join("train/n01440764/a.JPEG")).unwrap(),
        TRAIN_IMAGE
    );
    assert_eq!(
        fs::read(root.join("val/n01440764/b.JPEG")).unwrap(),
        VAL_IMAGE
    );
    let marker = fs::read_to_string(root.join(COMPLETE_MARKER)).unwrap();
    for refused in [
        "../escape.txt",
        absolute.to_str().unwrap(),
        "imagenette2-160/passwd",
    ] {
        assert!(
            marker.contains(refused),
            "marker does not list {refused}:\n{marker}"
        );
    }
    // Nothing escaped, and no archive or work folders are left behind.
    assert!(!absolute.exists());
    assert!(!tmp.path().join("escape.txt").exists());
    assert!(!dest_dir.join("escape.txt").exists());
    assert!(fs::symlink_metadata(root.join("passwd")).is_err());
    assert_eq!(names(tmp.path()), vec!["data"]);
    assert_eq!(names(&dest_dir), vec!["imagenette2-160"]);

    // Already complete: returns at once, without a request.
    let requests = server.requests().len();
    let again = fetch_imagenette(
        ImagenetteSize::Px160,
        &dest_dir,
        Some(&base_url),
        &no_progress,
    )
    .unwrap();
    assert_eq!(again, root);
    assert_eq!(server.requests().len(), requests);

    // A root without the completion marker is not trusted.
    fs::remove_file(root.join(COMPLETE_MARKER)).unwrap();
    let err = fetch_imagenette(
        ImagenetteSize::Px160,
        &dest_dir,
        Some(&base_url),
        &no_progress,
    )
    .unwrap_err();
    assert!(
        matches!(err, FetchError::DatasetUnverified { .. }),
        "{err:?}"
    );
}

#[test]
fn imagenette_rejects_an_archive_without_train_and_val() {
    let server = TestServer::start();
    let mut b = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    append_raw(
        &mut b,
        "imagenette2-320/readme.txt",
        EntryType::Regular,
        None,
        b"hi",
    );
    let archive = b.into_inner().unwrap().finish().unwrap();
    server.serve("/imagenette2-320.tgz", &archive, Mode::Ranges);
    let tmp = tempfile::tempdir().unwrap();

    let err = fetch_imagenette(
        ImagenetteSize::Px320,
        tmp.path(),
        Some(&server.base),
        &no_progress,
    )
    .unwrap_err();
    assert!(matches!(err, FetchError::NotImagenette { .. }), "{err:?}");
    assert!(!tmp.path().join("imagenette2-320").exists());
    assert!(names(tmp.path()).is_empty(), "{:?}", names(tmp.path()));
}

/// A gzip-compressed tar of `entries` (name, kind, link target, contents).
fn tar_gz(entries: &[(&str, EntryType, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    for (name, kind, link, data) in entries {
        append_raw(&mut b, name, *kind, *link, data);
    }
    b.into_inner().unwrap().finish().unwrap()
}

/// Serves `archive` as Imagenette 160 and fetches it into a data folder that already holds a
/// file and another dataset; returns the error and what the data folder holds afterwards.
fn fetch_bad_archive(archive: &[u8]) -> (FetchError, Vec<String>) {
    let server = TestServer::start();
    server.serve("/imagenette2-160.tgz", archive, Mode::Ranges);
    let tmp = tempfile::tempdir().unwrap();
    let dest_dir = tmp.path().join("data");
    fs::create_dir_all(dest_dir.join("imagenette2-320/train")).unwrap();
    fs::write(dest_dir.join("notes.txt"), b"mine").unwrap();

    let err = fetch_imagenette(
        ImagenetteSize::Px160,
        &dest_dir,
        Some(&server.base),
        &no_progress,
    )
    .unwrap_err();
    assert!(!tmp.path().join("escape.txt").exists());
    assert_eq!(fs::read(dest_dir.join("notes.txt")).unwrap(), b"mine");
    assert!(dest_dir.join("imagenette2-320/train").is_dir());
    (err, names(&dest_dir))
}

#[test]
fn a_hostile_or_broken_archive_fails_naming_the_problem_and_leaves_nothing_behind() {
    let before = vec!["imagenette2-320".to_string(), "notes.txt".to_string()];
    let f = EntryType::Regular;
    let dir = EntryType::Directory;

    // Path traversal only (with a terminal escape in a name): nothing usable is extracted.
    let (err, left) = fetch_bad_archive(&tar_gz(&[
        ("imagenette2-160/", dir, None, b""),
        ("imagenette2-160/readme.txt", f, None, b"hi"),
        ("../\u{1b}[2Jescape.txt", f, None, b"escaped via .."),
        (
            "imagenette2-160/../../escape.txt",
            f,
            None,
            b"escaped via ..",
        ),
    ]));
    let message = err.to_string();
    assert!(
        matches!(err, FetchError::NotImagenette { deleted: true, .. }),
        "{err:?}"
    );
    assert!(
        message.contains("2 entries were refused as unsafe")
            && message.contains("../\\u{1b}[2Jescape.txt")
            && message.contains("'..'")
            && message.contains("deleted"),
        "{message}"
    );
    assert!(!message.contains('\u{1b}'), "{message:?}");
    assert_eq!(
        left, before,
        "no archive and no half-unpacked folder may stay"
    );

    // Symbolic links: files written through a link are refused, and the top folder may not be
    // a link (moved into place, it would point elsewhere).
    let (err, left) = fetch_bad_archive(&tar_gz(&[
        ("imagenette2-160", EntryType::Symlink, Some("."), b""),
        ("imagenette2-160/train/a.JPEG", f, None, b"x"),
        ("imagenette2-160/val/b.JPEG", f, None, b"y"),
    ]));
    let message = err.to_string();
    assert!(
        matches!(err, FetchError::NotImagenette { deleted: true, .. }),
        "{err:?}"
    );
    assert!(
        message.contains("goes through the symbolic link imagenette2-160"),
        "{message}"
    );
    assert_eq!(left, before);
    let (err, left) = fetch_bad_archive(&tar_gz(&[
        ("other/train/a.JPEG", f, None, b"x"),
        ("other/val/b.JPEG", f, None, b"y"),
        ("imagenette2-160", EntryType::Symlink, Some("other"), b""),
    ]));
    let message = err.to_string();
    assert!(
        matches!(err, FetchError::NotImagenette { deleted: true, .. }),
        "{err:?}"
    );
    assert!(
        message.contains("no imagenette2-160 folder (only a symbolic link by that name)"),
        "{message}"
    );
    assert_eq!(left, before);

    // Not gzip at all.
    let (err, left) = fetch_bad_archive(b"<html>this is an error page, not an archive</html>");
    let message = err.to_string();
    assert!(
        matches!(err, FetchError::InvalidArchive { deleted: true, .. }),
        "{err:?}"
    );
    assert!(
        message.contains("imagenette2-160.tgz")
            && message.contains("not a readable .tar.gz")
            && message.contains("deleted"),
        "{message}"
    );
    assert_eq!(left, before);

    // Cut in the middle of a file: some entries were already unpacked when it failed.
    let outside = tempfile::tempdir().unwrap();
    let full = imagenette_archive(&outside.path().join("x"), &noise(300_000, 11));
    let (err, left) = fetch_bad_archive(&full[..full.len() * 2 / 3]);
    assert!(
        matches!(err, FetchError::InvalidArchive { deleted: true, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("imagenette2-160.tgz"), "{err}");
    assert_eq!(left, before);

    // Cut after the last entry (only the gzip trailer is missing): still not a whole archive.
    let whole = tar_gz(&[
        ("imagenette2-160/train/a.JPEG", f, None, TRAIN_IMAGE),
        ("imagenette2-160/val/b.JPEG", f, None, VAL_IMAGE),
    ]);
    let (err, left) = fetch_bad_archive(&whole[..whole.len() - 8]);
    assert!(
        matches!(err, FetchError::InvalidArchive { deleted: true, .. }),
        "{err:?}"
    );
    assert_eq!(left, before);
}

#[test]
fn a_bad_archive_that_was_already_there_is_kept() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("imagenette2-160.tgz");
    fs::write(&archive, b"not an archive, and not ours").unwrap();

    let err = fetch_imagenette(
        ImagenetteSize::Px160,
        tmp.path(),
        Some(&server.base),
        &no_progress,
    )
    .unwrap_err();
    assert!(
        matches!(err, FetchError::InvalidArchive { deleted: false, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("delete it"), "{err}");
    assert!(
        server.requests().is_empty(),
        "a complete file is not fetched again"
    );
    assert_eq!(names(tmp.path()), vec!["imagenette2-160.tgz"]);
    assert_eq!(fs::read(&archive).unwrap(), b"not an archive, and not ours");
}

#[test]
fn an_interrupted_imagenette_download_keeps_only_the_partial_and_resumes() {
    let server = TestServer::start();
    let outside = tempfile::tempdir().unwrap();
    let archive = imagenette_archive(&outside.path().join("x"), &noise(200_000, 12));
    let cut = archive.len() / 2;
    server.serve("/imagenette2-160.tgz", &archive, Mode::Truncate(cut));
    let tmp = tempfile::tempdir().unwrap();

    let progress = Recorder::default();
    let err = fetch_imagenette(
        ImagenetteSize::Px160,
        tmp.path(),
        Some(&server.base),
        &progress.callback(),
    )
    .unwrap_err();
    assert!(matches!(err, FetchError::Truncated { .. }), "{err:?}");
    let len = archive.len() as u64;
    let name = "imagenette2-160.tgz";
    assert_transfer(&progress.take(), name, 0, Some(len), cut as u64, false);
    assert_eq!(names(tmp.path()), vec!["imagenette2-160.tgz.partial"]);

    server.serve("/imagenette2-160.tgz", &archive, Mode::Ranges);
    let root = fetch_imagenette(
        ImagenetteSize::Px160,
        tmp.path(),
        Some(&server.base),
        &progress.callback(),
    )
    .unwrap();
    assert_transfer(&progress.take(), name, cut as u64, Some(len), len, true);
    assert_eq!(server.requests()[1].1, Some(format!("bytes={cut}-")));
    assert!(root.join(COMPLETE_MARKER).is_file());
    assert_eq!(names(tmp.path()), vec!["imagenette2-160"]);
}

// ---------------------------------------------------------------------------------------------
// Hugging Face hub
// ---------------------------------------------------------------------------------------------

#[test]
fn hub_weights_land_in_the_cache_and_offline_errors_say_what_to_do() {
    let server = TestServer::start();
    let weights = noise(40_000, 10);
    let hub_id = "test-org/tiny-model";
    // What hf-hub's sync client reads: ETag (blob name), X-Repo-Commit (snapshot folder) and,
    // from its `Range: bytes=0-0` probe, Content-Range (size).
    let headers = vec![
        ("ETag".to_string(), format!("\"{}\"", sha256_hex(&weights))),
        (
            "X-Repo-Commit".to_string(),
            "0123456789abcdef0123456789abcdef01234567".to_string(),
        ),
    ];
    let path = format!("/{hub_id}/resolve/main/model.safetensors");
    server.serve_with_headers(&path, &weights, Mode::Ranges, headers);
    let tmp = tempfile::tempdir().unwrap();
    let source = HubSource {
        endpoint: server.base.clone(),
        cache_dir: tmp.path().join("hub"),
    };

    assert_eq!(
        cached_hub_weights_in(&source.cache_dir, hub_id, "model.safetensors"),
        None
    );
    let progress = Recorder::default();
    let got =
        fetch_hub_weights_from(&source, hub_id, "model.safetensors", &progress.callback()).unwrap();
    let events = progress.take();
    let last_start = events
        .iter()
        .rposition(|e| matches!(e, DownloadProgress::Started { .. }))
        .expect("a start event");
    assert_transfer(
        &events[last_start..],
        "model.safetensors",
        0,
        Some(40_000),
        40_000,
        true,
    );
    assert!(got.starts_with(&source.cache_dir), "{got:?}");
    assert!(fs::read(&got).unwrap() == weights);
    assert_eq!(
        cached_hub_weights_in(&source.cache_dir, hub_id, "model.safetensors"),
        Some(got.clone())
    );
    assert!(server.requests().iter().all(|(p, _)| *p == path));

    let endpoint = server.base.clone();
    drop(server);
    // Offline, the cached copy still answers...
    assert_eq!(
        fetch_hub_weights_from(&source, hub_id, "model.safetensors", &no_progress).unwrap(),
        got
    );
    // ...and without one the error says what to download and how to pass it.
    let empty = HubSource {
        cache_dir: tmp.path().join("empty-hub"),
        ..source
    };
    let err =
        fetch_hub_weights_from(&empty, hub_id, "model.safetensors", &no_progress).unwrap_err();
    let message = err.to_string();
    let url = hub_url(&endpoint, hub_id, "model.safetensors");
    assert!(message.contains(&url), "{message}");
    assert!(message.contains("--weights"), "{message}");
    assert_eq!(
        cached_hub_weights_in(&empty.cache_dir, hub_id, "model.safetensors"),
        None
    );
}

// ---------------------------------------------------------------------------------------------
// `reason fetch` as a command: the environment variables a user sets, the binary's output
// ---------------------------------------------------------------------------------------------

/// `reason ARGS` with a clean download environment (no proxy, no real hub or data folder) plus
/// `env`; returns (success, stdout, stderr).
fn reason_fetch(
    args: &[&str],
    env: &[(&str, &Path)],
    extra: &[(&str, &str)],
) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_reason"));
    cmd.arg("fetch").args(args);
    for name in [
        "REASON_DATA",
        "REASON_IMAGENETTE_URL",
        "HF_HOME",
        "HF_ENDPOINT",
        "HF_HUB_OFFLINE",
    ] {
        cmd.env_remove(name);
    }
    for (name, value) in env {
        cmd.env(name, value);
    }
    for (name, value) in extra {
        cmd.env(name, value);
    }
    let out = cmd.output().expect("reason runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn fetch_imagenette_command_follows_reason_imagenette_url_and_reason_data() {
    let server = TestServer::start();
    let outside = tempfile::tempdir().unwrap();
    let archive = imagenette_archive(&outside.path().join("absolute.txt"), &noise(50_000, 11));
    server.serve("/mirror/imagenette2-160.tgz", &archive, Mode::Ranges);
    let url = server.url("/mirror/imagenette2-160.tgz");
    let data = tempfile::tempdir().unwrap();

    // No --dest: the archive lands in $REASON_DATA, fetched from $REASON_IMAGENETTE_URL.
    let (ok, stdout, stderr) = reason_fetch(
        &["imagenette", "--size", "160"],
        &[("REASON_DATA", data.path())],
        &[("REASON_IMAGENETTE_URL", &url)],
    );
    assert!(ok, "{stderr}");
    let root = data.path().join("imagenette2-160");
    assert_eq!(stdout.trim(), root.display().to_string());
    assert_eq!(
        fs::read(root.join("val/n01440764/b.JPEG")).unwrap(),
        VAL_IMAGE
    );
    assert!(stderr.contains("finds it there by default"), "{stderr}");
    assert_eq!(server.requests().len(), 1);

    // --dest wins over $REASON_DATA.
    let dest = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = reason_fetch(
        &[
            "imagenette",
            "--size",
            "160",
            "--dest",
            dest.path().to_str().unwrap(),
        ],
        &[("REASON_DATA", data.path())],
        &[("REASON_IMAGENETTE_URL", &url)],
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout.trim(),
        dest.path().join("imagenette2-160").display().to_string()
    );
    // Somewhere else than the data folder: the message says how to make it the default.
    assert!(
        stderr.contains(&format!("REASON_DATA={}", dest.path().display())),
        "{stderr}"
    );

    // A missing archive: a non-zero exit whose message names the URL, and nothing left behind.
    let empty = tempfile::tempdir().unwrap();
    let missing = server.url("/mirror/nothing-here.tgz");
    let (ok, stdout, stderr) = reason_fetch(
        &[
            "imagenette",
            "--size",
            "160",
            "--dest",
            empty.path().to_str().unwrap(),
        ],
        &[],
        &[("REASON_IMAGENETTE_URL", &missing)],
    );
    assert!(!ok);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains(&missing) && stderr.contains("404"),
        "{stderr}"
    );
    assert!(!empty.path().join("imagenette2-160").exists());
}

#[test]
fn fetch_weights_command_follows_hf_endpoint_and_hf_home() {
    let server = TestServer::start();
    let weights = noise(30_000, 12);
    let hub_id = "test-org/cli-model";
    let headers = vec![
        ("ETag".to_string(), format!("\"{}\"", sha256_hex(&weights))),
        (
            "X-Repo-Commit".to_string(),
            "89abcdef0123456789abcdef0123456789abcdef".to_string(),
        ),
    ];
    let path = format!("/{hub_id}/resolve/main/model.safetensors");
    server.serve_with_headers(&path, &weights, Mode::Ranges, headers);
    let hf_home = tempfile::tempdir().unwrap();

    let (ok, stdout, stderr) = reason_fetch(
        &["weights", hub_id],
        &[("HF_HOME", hf_home.path())],
        &[("HF_ENDPOINT", &server.base)],
    );
    assert!(ok, "{stderr}");
    let got = PathBuf::from(stdout.trim());
    assert!(got.starts_with(hf_home.path().join("hub")), "{got:?}");
    assert!(fs::read(&got).unwrap() == weights);

    // Offline: the cached copy still answers, with no request.
    let endpoint = server.base.clone();
    drop(server);
    let (ok, stdout, stderr) = reason_fetch(
        &["weights", hub_id],
        &[("HF_HOME", hf_home.path())],
        &[("HF_ENDPOINT", &endpoint)],
    );
    assert!(ok, "{stderr}");
    assert_eq!(PathBuf::from(stdout.trim()), got);

    // Offline with an empty cache: non-zero, and the message says what to fetch and how to
    // pass a local file instead.
    let empty = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = reason_fetch(
        &["weights", hub_id],
        &[("HF_HOME", empty.path())],
        &[("HF_ENDPOINT", &endpoint)],
    );
    assert!(!ok);
    assert!(
        stderr.contains(&hub_url(&endpoint, hub_id, "model.safetensors")),
        "{stderr}"
    );
    assert!(stderr.contains("--weights"), "{stderr}");
}
