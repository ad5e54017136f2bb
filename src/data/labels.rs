//! Labels from a CSV column instead of the class folders (`reason train --labels CSV:COLUMN`),
//! e.g. Imagenette's published noisy labels (`noisy_imagenette.csv`, column `noisy_labels_5`).
//!
//! Rows are matched by their `path` column, relative to the dataset root (`train/<wnid>/x.JPEG`).
//! Rows of the root's other splits (`val/…`) are ignored; every other row must match an image,
//! every image of the split must have a row, and every label must be one of the class folders,
//! or the whole table is refused with what is wrong.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::data::dataset::Dataset;
use crate::error::{Error, Result};

/// `CSV:COLUMN`, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelsSource {
    pub csv: PathBuf,
    pub column: String,
}

impl std::str::FromStr for LabelsSource {
    type Err = String;

    /// Split at the last `:` (a Windows drive letter keeps its own).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.rsplit_once(':') {
            Some((csv, column)) if !csv.is_empty() && !column.is_empty() => Ok(LabelsSource {
                csv: PathBuf::from(csv),
                column: column.to_string(),
            }),
            _ => Err(format!(
                "`{s}` is not CSV:COLUMN (e.g. noisy_imagenette.csv:noisy_labels_5)"
            )),
        }
    }
}

/// What relabelling did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relabelled {
    /// Images whose label differs from their class folder.
    pub changed: usize,
    /// Rows of other splits, ignored.
    pub other_splits: usize,
}

/// Replaces the labels of `ds`, the split `split` of `root`, by the CSV column.
pub fn apply(
    ds: &mut Dataset,
    root: &Path,
    split: &str,
    source: &LabelsSource,
) -> Result<Relabelled> {
    let refuse = |reason: String| Error::Dataset {
        path: source.csv.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&source.csv).map_err(|e| Error::Io {
        path: source.csv.clone(),
        source: e,
    })?;
    let mut rows = parse_csv(&text).map_err(&refuse)?.into_iter();
    let header = rows
        .next()
        .ok_or_else(|| refuse("the file is empty".into()))?;
    let find = |name: &str| header.iter().position(|h| h.trim() == name);
    let path_col = find("path")
        .ok_or_else(|| refuse(format!("no `path` column (columns: {})", header.join(", "))))?;
    let label_col = find(&source.column).ok_or_else(|| {
        refuse(format!(
            "no column `{}` (columns: {})",
            source.column,
            header.join(", ")
        ))
    })?;
    let class_index: HashMap<&str, usize> = ds
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let prefix = format!("{split}/");
    let mut labels: BTreeMap<String, usize> = BTreeMap::new();
    let mut unmatched: Vec<String> = Vec::new();
    let mut other_splits = 0;
    let sample_ids: std::collections::HashSet<&str> =
        ds.samples.iter().map(|s| s.id.as_str()).collect();
    for (line, row) in rows.enumerate() {
        let line = line + 2;
        if row.len() == 1 && row[0].is_empty() {
            continue;
        }
        let (Some(path), Some(label)) = (row.get(path_col), row.get(label_col)) else {
            return Err(refuse(format!(
                "line {line} has {} fields, fewer than the header",
                row.len()
            )));
        };
        let Some(id) = path.strip_prefix(&prefix) else {
            // Another split of the same root (Imagenette's `val/` rows): not ours to label.
            let first = path.split('/').next().unwrap_or_default();
            if !first.is_empty() && first != split && root.join(first).is_dir() {
                other_splits += 1;
                continue;
            }
            unmatched.push(path.clone());
            continue;
        };
        if !sample_ids.contains(id) {
            unmatched.push(path.clone());
            continue;
        }
        let class = *class_index.get(label.trim()).ok_or_else(|| {
            refuse(format!(
                "line {line}: label `{}` of {path} is not a class of {} (classes: {})",
                label.trim(),
                root.join(split).display(),
                ds.classes.join(", ")
            ))
        })?;
        labels.insert(id.to_string(), class);
    }
    if !unmatched.is_empty() {
        return Err(refuse(format!(
            "{} row(s) match no image of {} (first: {}); paths are relative to {}, e.g. {prefix}<class>/<file>",
            unmatched.len(),
            root.join(split).display(),
            unmatched[0],
            root.display()
        )));
    }
    let missing: Vec<&str> = ds
        .samples
        .iter()
        .filter(|s| !labels.contains_key(&s.id))
        .map(|s| s.id.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(refuse(format!(
            "{} image(s) of {} have no row (first: {prefix}{})",
            missing.len(),
            root.join(split).display(),
            missing[0]
        )));
    }
    let mut changed = 0;
    for s in &mut ds.samples {
        let new = labels[&s.id];
        changed += usize::from(s.label != Some(new));
        s.label = Some(new);
    }
    Ok(Relabelled {
        changed,
        other_splits,
    })
}

/// RFC 4180 rows: quoted fields may hold commas, doubled quotes and line breaks.
fn parse_csv(text: &str) -> std::result::Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            c => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    fn world() -> (tempfile::TempDir, Dataset) {
        let dir = tempfile::tempdir().unwrap();
        for p in [
            "train/a/1.png",
            "train/a/2.png",
            "train/b/3.png",
            "val/a/9.png",
        ] {
            touch(&dir.path().join(p));
        }
        let ds = Dataset::open_split(dir.path(), "train").unwrap();
        (dir, ds)
    }

    fn source(dir: &Path, csv: &str, column: &str) -> LabelsSource {
        let path = dir.join("labels.csv");
        std::fs::write(&path, csv).unwrap();
        LabelsSource {
            csv: path,
            column: column.into(),
        }
    }

    #[test]
    fn a_column_replaces_the_folder_labels_and_other_splits_are_ignored() {
        let (dir, mut ds) = world();
        let csv = "path,noisy,is_valid\r\ntrain/a/1.png,a,False\n\"train/a/2.png\",b,False\n\
                   train/b/3.png,a,False\nval/a/9.png,b,True\n";
        let src = source(dir.path(), csv, "noisy");
        let r = apply(&mut ds, dir.path(), "train", &src).unwrap();
        assert_eq!(
            r,
            Relabelled {
                changed: 2,
                other_splits: 1
            }
        );
        let labels: Vec<_> = ds.samples.iter().map(|s| s.label).collect();
        assert_eq!(labels, [Some(0), Some(1), Some(0)]);
    }

    #[test]
    fn missing_column_unknown_class_and_unmatched_rows_are_refused() {
        let (dir, ds) = world();
        let all = "path,l\ntrain/a/1.png,a\ntrain/a/2.png,a\ntrain/b/3.png,b\n";
        let err = |csv: &str, column: &str| {
            apply(
                &mut ds.clone(),
                dir.path(),
                "train",
                &source(dir.path(), csv, column),
            )
            .unwrap_err()
            .to_string()
        };
        let e = err(all, "nope");
        assert!(
            e.contains("no column `nope`") && e.contains("path, l"),
            "{e}"
        );
        let e = err(
            "path,l\ntrain/a/1.png,a\ntrain/a/2.png,zebra\ntrain/b/3.png,b\n",
            "l",
        );
        assert!(
            e.contains("line 3") && e.contains("`zebra`") && e.contains("a, b"),
            "{e}"
        );
        let e = err(
            &format!("{all}train/a/gone.png,a\nelsewhere/x.png,a\n"),
            "l",
        );
        assert!(
            e.contains("2 row(s) match no image") && e.contains("train/a/gone.png"),
            "{e}"
        );
        let e = err("path,l\ntrain/a/1.png,a\n", "l");
        assert!(e.contains("2 image(s)") && e.contains("have no row"), "{e}");
        assert!("file.csv".parse::<LabelsSource>().is_err());
        let s: LabelsSource = "C:\\x\\n.csv:noisy_labels_5".parse().unwrap();
        assert_eq!(
            (s.csv, s.column.as_str()),
            (PathBuf::from("C:\\x\\n.csv"), "noisy_labels_5")
        );
    }
}
