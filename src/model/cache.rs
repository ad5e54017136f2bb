//! On-disk cache of per-sample computations (embeddings, gradients, scored records), keyed by
//! everything that determines them, so a second run skips the backbone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use sha2::{Digest, Sha256};

use crate::data::dataset::Sample;
use crate::error::{Error, Result};
use crate::support::files::{write_atomically, write_bytes_atomically};

/// Environment variable naming the cache folder.
pub const CACHE_ENV: &str = "REASON_CACHE";

/// A folder set by [`use_cache_dir`], which wins over the environment.
static CACHE_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Makes this process cache in `dir`, whatever the environment says; only the first call counts
/// (returns whether it did). For embedders and tests: changing the environment of a running
/// multi-threaded process is not safe.
pub fn use_cache_dir(dir: &Path) -> bool {
    CACHE_DIR.set(dir.to_path_buf()).is_ok()
}

/// The folder of [`use_cache_dir`], else `$REASON_CACHE`, else `$XDG_CACHE_HOME/reason`, else
/// `~/.cache/reason`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = CACHE_DIR.get() {
        return dir.clone();
    }
    if let Some(dir) = std::env::var_os(CACHE_ENV) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("reason");
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/reason"))
        .unwrap_or_else(|| PathBuf::from(".reason-cache"))
}

/// A cache key: the sha256 of named parts.
#[derive(Debug, Clone)]
pub struct CacheKey {
    hasher: Sha256,
    kind: String,
}

impl CacheKey {
    pub fn new(kind: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(kind.as_bytes());
        Self {
            hasher,
            kind: kind.to_string(),
        }
    }

    pub fn part(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.hasher.update((name.len() as u64).to_le_bytes());
        self.hasher.update(name.as_bytes());
        let value = value.as_ref();
        self.hasher.update((value.len() as u64).to_le_bytes());
        self.hasher.update(value);
        self
    }

    /// Adds the identity of every sample: relative path, size and modification time, so an
    /// edited or replaced image invalidates the entry.
    pub fn samples(mut self, samples: &[&Sample]) -> Self {
        for s in samples {
            let meta = std::fs::metadata(&s.path).ok();
            let size = meta.as_ref().map_or(0, |m| m.len());
            let mtime = meta
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            self = self.part("sample", format!("{}\0{size}\0{mtime}", s.id));
        }
        self
    }

    pub fn file_stem(&self) -> String {
        format!("{}-{:x}", self.kind, self.hasher.clone().finalize())
    }
}

fn path_for(key: &CacheKey, ext: &str) -> PathBuf {
    cache_dir().join(format!("{}.{ext}", key.file_stem()))
}

/// Loads cached tensors, if present and readable (a corrupt entry is ignored and recomputed).
pub fn load_tensors(key: &CacheKey) -> Option<HashMap<String, Tensor>> {
    read_tensors(&path_for(key, "safetensors"))
}

fn read_tensors(path: &Path) -> Option<HashMap<String, Tensor>> {
    if !path.is_file() {
        return None;
    }
    match candle_core::safetensors::load(path, &Device::Cpu) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!("ignoring unreadable cache entry {}: {e}", path.display());
            None
        }
    }
}

pub fn store_tensors(key: &CacheKey, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let path = path_for(key, "safetensors");
    write_atomically(
        &path,
        |tmp| Ok(candle_core::safetensors::save(tensors, tmp)?),
        |source| Error::Io {
            path: path.clone(),
            source,
        },
    )
}

pub fn load_json<T: serde::de::DeserializeOwned>(key: &CacheKey) -> Option<T> {
    read_json(&path_for(key, "json"))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes)
        .map_err(|e| tracing::warn!("ignoring unreadable cache entry {}: {e}", path.display()))
        .ok()
}

pub fn store_json<T: serde::Serialize>(key: &CacheKey, value: &T) -> Result<()> {
    let path = path_for(key, "json");
    let bytes =
        serde_json::to_vec(value).map_err(|e| Error::Weights(format!("cache encode: {e}")))?;
    write_bytes_atomically(&path, &bytes).map_err(|source| Error::Io { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_change_with_any_part_and_with_file_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        std::fs::write(&path, b"1").unwrap();
        let sample = Sample {
            id: "a.png".into(),
            path: path.clone(),
            label: None,
        };
        let a = CacheKey::new("emb")
            .part("w", "x")
            .samples(&[&sample])
            .file_stem();
        let b = CacheKey::new("emb")
            .part("w", "y")
            .samples(&[&sample])
            .file_stem();
        assert_ne!(a, b);
        std::fs::write(&path, b"22").unwrap();
        let c = CacheKey::new("emb")
            .part("w", "x")
            .samples(&[&sample])
            .file_stem();
        assert_ne!(a, c);
        // Part boundaries matter: ("ab","c") differs from ("a","bc").
        let d = CacheKey::new("k").part("ab", "c").file_stem();
        let e = CacheKey::new("k").part("a", "bc").file_stem();
        assert_ne!(d, e);
    }

    #[test]
    fn keys_change_when_only_the_modification_time_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        std::fs::write(&path, b"same").unwrap();
        let sample = Sample {
            id: "a.png".into(),
            path: path.clone(),
            label: None,
        };
        let key = || CacheKey::new("emb").samples(&[&sample]).file_stem();
        let before = key();
        assert_eq!(before, key(), "a key is a function of the files");
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        file.set_modified(later).unwrap();
        drop(file);
        assert_eq!(std::fs::read(&path).unwrap(), b"same");
        assert_ne!(
            before,
            key(),
            "a touched file with the same bytes and size is rescored"
        );
    }

    #[test]
    fn unreadable_entries_are_misses_not_errors() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("records-x.json");
        write_bytes_atomically(&json, b"[1, 2, 3]").unwrap();
        assert_eq!(read_json::<Vec<u32>>(&json), Some(vec![1, 2, 3]));
        // A truncated entry (a crash of another writer, a full disk) reads as a miss.
        std::fs::write(&json, b"[1, 2").unwrap();
        assert_eq!(read_json::<Vec<u32>>(&json), None);
        assert_eq!(read_json::<Vec<u32>>(&dir.path().join("absent.json")), None);
        // So does a tensor entry that is not safetensors.
        let tensors = dir.path().join("emb-x.safetensors");
        std::fs::write(&tensors, b"not safetensors").unwrap();
        assert!(read_tensors(&tensors).is_none());
    }
}
