//! The dashboard's records cache: a scored dataset kept in the cache folder as a scored table
//! (`report::scores`, the file `reason score` writes and `--scores` reads), so scores are stored
//! one way.
//!
//! An entry is named by a key over everything that determines it (the table's version, the
//! artifacts, the weights, every image's path, size and modification time): a changed image or
//! other artifacts or weights name another entry. An entry that cannot be read, or whose
//! identity is not the expected one, is a miss, never an error; rescoring overwrites it.

use std::path::{Path, PathBuf};

use crate::model::cache::{cache_dir, CacheKey};

use super::scores::{self, Identity, ScoreTable, ScoresError};

/// The entry of `key` in the cache folder.
pub fn path(key: &CacheKey) -> PathBuf {
    path_in(&cache_dir(), key)
}

fn path_in(dir: &Path, key: &CacheKey) -> PathBuf {
    dir.join(format!("{}.parquet", key.file_stem()))
}

/// The records of the table cached under `key` ([`Part::Records`](scores::Part)), if there is
/// a readable one scored with `identity`.
pub fn load(key: &CacheKey, identity: &Identity) -> Option<ScoreTable> {
    load_from(&path(key), identity)
}

fn load_from(path: &Path, identity: &Identity) -> Option<ScoreTable> {
    if !path.is_file() {
        return None;
    }
    match scores::read_part(path, scores::Part::Records) {
        Ok(table) if &table.identity == identity => Some(table),
        Ok(_) => {
            tracing::warn!(
                "ignoring cache entry {}: scored with other artifacts or weights",
                path.display()
            );
            None
        }
        Err(e) => {
            tracing::warn!("ignoring unreadable cache entry {}: {e}", path.display());
            None
        }
    }
}

/// Writes `table` under `key`, atomically (a reader sees the old entry, or none, or this one).
pub fn store(key: &CacheKey, table: &ScoreTable) -> Result<(), ScoresError> {
    scores::write(&path(key), table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::Sample;
    use crate::reliability::records::{
        Diagnostics, FeatureBlock, FeatureLayout, RecordSet, SampleRecord,
    };
    use crate::report::scores::{FileStamp, RunInfo, ScoreRow, Shard};

    fn identity(artifacts: &str) -> Identity {
        Identity {
            artifacts_sha256: artifacts.into(),
            weights_sha256: "w".into(),
            backbone: "tf_efficientnet_lite0".into(),
            layout: FeatureLayout {
                blocks: vec![FeatureBlock {
                    family: "entropy".into(),
                    names: vec!["entropy.entropy".into()],
                    offset: 0,
                }],
            },
        }
    }

    fn table(identity: Identity, ids: &[&str]) -> ScoreTable {
        let header = RecordSet {
            classes: vec!["cat".into(), "dog".into()],
            class_names: vec!["Cat".into(), "Dog".into()],
            layout: identity.layout.clone(),
            threshold: 0.5,
            records: Vec::new(),
            calibration: None,
        };
        let rows = ids
            .iter()
            .enumerate()
            .map(|(i, id)| ScoreRow {
                record: SampleRecord {
                    id: id.to_string(),
                    label: Some((i % 2) as u16),
                    pred: 0,
                    probs: vec![0.75, 0.25],
                    p_correct: 0.1 * i as f32,
                    diagnostics: Diagnostics {
                        msp: 0.75,
                        ..Default::default()
                    },
                    meta: vec![i as f32],
                    truncated: i == 1,
                },
                metanet_logit: i as f32 - 1.0,
                baselines: [0.5; 13],
                other_label: None,
                stamp: FileStamp {
                    size: 10 + i as i64,
                    mtime_ns: 7,
                },
            })
            .collect();
        ScoreTable {
            identity,
            header,
            run: RunInfo {
                condition: "clean".into(),
                seed: 0,
                split: None,
                dataset_root: "/photos".into(),
                shard: Shard::ALL,
                skipped: vec![("bad.jpg".into(), "not an image".into())],
            },
            rows,
        }
    }

    /// The key the dashboard builds: here over one image file.
    fn key(image: &Sample) -> CacheKey {
        CacheKey::new("records")
            .part("format", scores::VERSION.to_string())
            .part("artifacts", "a")
            .samples(&[image])
    }

    #[test]
    fn an_entry_reads_back_as_it_was_stored_until_its_image_changes() {
        let dir = tempfile::tempdir().unwrap();
        let image_path = dir.path().join("cat/a.jpg");
        std::fs::create_dir_all(image_path.parent().unwrap()).unwrap();
        std::fs::write(&image_path, b"jpeg").unwrap();
        let image = Sample {
            id: "cat/a.jpg".into(),
            path: image_path.clone(),
            label: Some(0),
        };
        let cache = dir.path().join("cache");
        let stored = table(identity("a"), &["cat/a.jpg", "cat/b.jpg"]);
        let entry = path_in(&cache, &key(&image));
        scores::write(&entry, &stored).unwrap();
        // The records come back as they were (the baselines and stamps are not read).
        let loaded = load_from(&entry, &identity("a")).unwrap();
        assert_eq!(loaded.rows.len(), stored.rows.len());
        assert_eq!(loaded.run, stored.run);
        assert_eq!(loaded.into_record_set(), stored.clone().into_record_set());
        assert!(entry.extension().is_some_and(|e| e == "parquet"));

        // A new size names another entry: a miss.
        std::fs::write(&image_path, b"a longer jpeg").unwrap();
        let edited = path_in(&cache, &key(&image));
        assert_ne!(edited, entry);
        assert_eq!(load_from(&edited, &identity("a")), None);
    }

    #[test]
    fn other_artifacts_and_unreadable_entries_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("records-x.parquet");
        scores::write(&entry, &table(identity("a"), &["a.jpg"])).unwrap();
        assert!(load_from(&entry, &identity("a")).is_some());
        // The same name with other artifacts or weights (a key collision or a copied file).
        assert_eq!(load_from(&entry, &identity("b")), None);
        let mut other_weights = identity("a");
        other_weights.weights_sha256 = "v".into();
        assert_eq!(load_from(&entry, &other_weights), None);
        // A truncated entry (a crash of another writer, a full disk) and a foreign file.
        let bytes = std::fs::read(&entry).unwrap();
        std::fs::write(&entry, &bytes[..bytes.len() / 2]).unwrap();
        assert_eq!(load_from(&entry, &identity("a")), None);
        std::fs::write(&entry, b"[1, 2, 3]").unwrap();
        assert_eq!(load_from(&entry, &identity("a")), None);
        assert_eq!(
            load_from(&dir.path().join("absent.parquet"), &identity("a")),
            None
        );
    }
}
