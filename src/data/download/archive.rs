//! Safe `.tar.gz` extraction: nothing lands outside the destination, and the destination only
//! appears once the whole archive has been read.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufReader};
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;
use tar::EntryType;

use super::{escaped, io_err, shown, with_suffix, Created, FetchError};

/// What [`extract_tar_gz`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractReport {
    /// Regular files written.
    pub files: usize,
    /// Directories created.
    pub dirs: usize,
    /// Symbolic and hard links created (only those staying inside the destination).
    pub links: usize,
    /// Entries not extracted: (path as written in the archive, why). Names are as in the
    /// archive: escape them before printing.
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
/// deleted first), which is renamed to `dest` only when the whole archive has been read and
/// its gzip checksum verified, so `dest` never holds a partial extraction; on failure the
/// `.partial-extract` folder is removed again. `dest` must not exist or be an empty folder;
/// otherwise [`FetchError::DestinationExists`] is returned and nothing is touched. The archive
/// itself is never deleted here.
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
    let mut created = Created::default();
    fresh_dir(&staging, &mut created)?;
    let report = extract_into(archive, &staging)?;

    if dest_is_empty_dir {
        fs::remove_dir(dest).map_err(io_err("replace the empty folder", dest))?;
    }
    if let Err(e) = fs::rename(&staging, dest) {
        if dest_is_empty_dir {
            let _ = fs::create_dir(dest); // put back the folder that was there
        }
        return Err(io_err("move the extracted folder to", dest)(e));
    }
    created.keep();
    Ok(report)
}

/// Creates the empty work folder `dir` (removing a leftover from an interrupted run first: its
/// suffixed name marks it as this tool's) and adds it to `created`, for removal should the
/// run fail.
pub(super) fn fresh_dir(dir: &Path, created: &mut Created) -> Result<(), FetchError> {
    if fs::symlink_metadata(dir).is_ok() {
        fs::remove_dir_all(dir).map_err(io_err("remove the leftover folder", dir))?;
    }
    fs::create_dir_all(dir).map_err(io_err("create the folder", dir))?;
    created.dir(dir);
    Ok(())
}

/// Extracts `archive` into the existing, empty folder `dir` (see [`extract_tar_gz`] for what is
/// refused). Fails with [`FetchError::InvalidArchive`] when the archive cannot be read to its
/// end: not gzip, corrupt, or truncated (the gzip trailer is checked too). Whatever was
/// written before a failure stays in `dir`, for the caller to remove.
pub(super) fn extract_into(archive: &Path, dir: &Path) -> Result<ExtractReport, FetchError> {
    let file = File::open(archive).map_err(io_err("open the archive", archive))?;
    let mut tar = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    let invalid = |e: io::Error| FetchError::InvalidArchive {
        archive: archive.to_path_buf(),
        detail: e.to_string(),
        deleted: false,
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
                tracing::warn!(entry = %escaped(&name), %reason, "refused archive entry");
                report.refused.push((name, reason));
                continue;
            }
        };
        // `unpack_in` repeats its own checks (it also refuses `..` and canonicalises parents).
        let unpacked = entry.unpack_in(dir).map_err(|e| {
            if reading_failed(&e) {
                invalid(e)
            } else {
                FetchError::Io {
                    action: "extract",
                    path: dir.join(&relative),
                    detail: e.to_string(),
                }
            }
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
    // The tar reader stops at the end-of-archive marker (or, in a truncated archive, at a cut
    // that happens to fall between entries): reading the gzip stream to its end checks its
    // length and checksum, so a truncated or corrupt archive is never taken for a whole one.
    io::copy(&mut tar.into_inner(), &mut io::sink()).map_err(invalid)?;
    Ok(report)
}

/// Whether an error from unpacking an entry came from reading the archive (a truncated or
/// corrupt stream: the archive is bad) rather than from writing the file (the disk is).
fn reading_failed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput
    )
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
        return Err(format!("goes through the symbolic link {}", shown(link)));
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
                .map_err(|why| format!("hard link target {}: {why}", shown(target)))?
                .ok_or("hard link with an empty target")?;
            if links.contains(&target) || symlink_on_path(&target, links).is_some() {
                return Err(format!(
                    "hard link to {}, which is or goes through a symbolic link",
                    shown(&target)
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
                    shown(target)
                ))
            }
            Component::CurDir => {}
            Component::ParentDir if seen_name => {
                return Err(format!(
                    "symbolic link to {} has '..' after a folder name (not accepted: it could \
                     climb out through another link)",
                    shown(target)
                ))
            }
            Component::ParentDir => {
                depth = depth.checked_sub(1).ok_or_else(|| {
                    format!(
                        "symbolic link to {} points outside the destination",
                        shown(target)
                    )
                })?
            }
            Component::Normal(_) => seen_name = true,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn refusal_reasons_escape_link_targets() {
        let none = HashSet::new();
        let why = check_entry(
            Path::new("a/link"),
            EntryType::Symlink,
            Some(Path::new("/etc/\u{1b}[31mred")),
            &none,
        )
        .unwrap_err();
        assert!(why.contains("/etc/\\u{1b}[31mred"), "{why}");
        assert!(!why.contains('\u{1b}'), "{why}");
    }
}
