//! The scored table: one Parquet file (or several shard parts) with one row per sample and
//! everything the dashboard and `eval` read, so a table scored on a GPU box opens anywhere, and
//! pandas, polars and DuckDB read it as it is.
//!
//! Columns (version [`VERSION`]; C classes, D meta-vector dimensions):
//!
//! | column | type | what |
//! |---|---|---|
//! | `path` | string | the sample's path relative to the dataset root (its identity) |
//! | `label` | string, null | the dataset's class folder (null: unlabelled) |
//! | `pred` | string | the predicted class |
//! | `correct` | bool, null | `label == pred` (null when `label` is none of the artifacts' classes) |
//! | `p_correct` | float | the meta-model's calibrated P(correct) |
//! | `metanet_logit` | float | its logit (ranks like `p_correct` where float32 saturates) |
//! | `accepted` | bool | the verdict: `p_correct >= threshold` (the artifacts' threshold) |
//! | `truncated` | bool | the file ended early and was scored from the picture the decoder completed |
//! | `top1` … `top5`, `top1_prob` … `top5_prob` | string, float | the head's five most likely classes |
//! | `prob.<class>` | float | the head's probability of every class (C columns) |
//! | `diag.<name>` | float | msp, entropy, logit_gap, mc_variance, grad_sensitivity, knn_distance, trust_score |
//! | `baseline.<name>` | float | every baseline score of `features::BASELINES` (higher = more likely correct) |
//! | `meta.<name>` | float | the meta-vector, named by its layout (D columns) |
//! | `file_size`, `file_mtime_ns` | int64 | the image file when scored: a changed file is rescored |
//!
//! The file's key-value metadata holds the identity (`reason.artifacts_sha256`,
//! `reason.weights_sha256`, `reason.backbone`, `reason.layout`), the version
//! (`reason.scores.version`), the header the dashboard needs (classes, threshold, calibration
//! rows: `reason.header`) and the run (condition, seed, split, shard, skipped files:
//! `reason.run`), all JSON but the hashes and the version.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::column::reader::get_typed_column_reader;
use parquet::data_type::{BoolType, ByteArrayType, DataType, FloatType, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::reader::{FileReader, RowGroupReader, SerializedFileReader};
use parquet::file::serialized_reader::ReadOptionsBuilder;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::reliability::features::BASELINES;
use crate::reliability::records::{Diagnostics, FeatureLayout, RecordSet, SampleRecord};
use crate::reliability::scoring::ExtraScores;
use crate::report::export::{write_parquet_with_metadata, Column, ColumnValues, ExportError};
use crate::support::hash::{fnv1a, mix64, FNV_OFFSET};

/// The table's version: a reader refuses any other (a change of columns or of their meaning
/// bumps it).
pub const VERSION: u32 = 1;

const KEY_VERSION: &str = "reason.scores.version";
const KEY_ARTIFACTS: &str = "reason.artifacts_sha256";
const KEY_WEIGHTS: &str = "reason.weights_sha256";
const KEY_BACKBONE: &str = "reason.backbone";
const KEY_LAYOUT: &str = "reason.layout";
const KEY_HEADER: &str = "reason.header";
const KEY_RUN: &str = "reason.run";

/// The diagnostics' column names, in `Diagnostics` field order.
pub const DIAGNOSTICS: [&str; 7] = [
    "msp",
    "entropy",
    "logit_gap",
    "mc_variance",
    "grad_sensitivity",
    "knn_distance",
    "trust_score",
];

fn diagnostics_values(d: &Diagnostics) -> [f32; 7] {
    [
        d.msp,
        d.entropy,
        d.logit_gap,
        d.mc_variance,
        d.grad_sensitivity,
        d.knn_distance,
        d.trust_score,
    ]
}

fn diagnostics_from(v: [f32; 7]) -> Diagnostics {
    Diagnostics {
        msp: v[0],
        entropy: v[1],
        logit_gap: v[2],
        mc_variance: v[3],
        grad_sensitivity: v[4],
        knn_distance: v[5],
        trust_score: v[6],
    }
}

/// What every part of a table must agree on: the models that scored it and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// sha256 over the artifacts folder's files ([`artifacts_sha256`]).
    pub artifacts_sha256: String,
    pub weights_sha256: String,
    pub backbone: String,
    pub layout: FeatureLayout,
}

/// A deterministic 1/`count` of the samples: those whose relative path hashes to `index`. A
/// sample's shard depends on its path alone, so adding files never moves the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn contains(&self, id: &str) -> bool {
        mix64(fnv1a(id.as_bytes(), FNV_OFFSET)) % u64::from(self.count) == u64::from(self.index)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `I/N` with 0 ≤ I < N (Slurm's array index and Kubernetes' completion index count from 0).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a shard: use I/N with 0 <= I < N, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// How a table was scored, beyond the models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// `clean` or the corruption (`blur:3`, `mixed`).
    pub condition: String,
    pub seed: u64,
    /// The split of an imagenette2-style root, `None` for a plain folder.
    pub split: Option<String>,
    /// The dataset folder the paths are relative to, where it was scored.
    pub dataset_root: String,
    pub shard: Shard,
    /// Files that could not be scored, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// An image file's size and modification time when it was scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileStamp {
    pub size: i64,
    pub mtime_ns: i64,
}

impl FileStamp {
    /// The stamp of `path` now (zeros for a file that cannot be read: it never matches a
    /// scored one).
    pub fn of(path: &Path) -> FileStamp {
        let meta = std::fs::metadata(path).ok();
        let mtime_ns = meta
            .as_ref()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i64);
        FileStamp {
            size: meta.map_or(0, |m| m.len() as i64),
            mtime_ns,
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow {
    pub record: SampleRecord,
    pub metanet_logit: f32,
    pub baselines: [f32; 13],
    /// The dataset's label when it is none of the artifacts' classes (a held-out or unknown
    /// class; `record.label` is `None` then).
    pub other_label: Option<String>,
    pub stamp: FileStamp,
}

impl ScoreRow {
    /// A scored sample as a row. `dataset_label` is its class folder in the dataset (kept as
    /// `other_label` when the artifacts do not know it); `stamp` is its file when scored.
    pub fn new(
        record: SampleRecord,
        extra: ExtraScores,
        dataset_label: Option<&str>,
        stamp: FileStamp,
    ) -> ScoreRow {
        let other_label = match record.label {
            Some(_) => None,
            None => dataset_label.map(str::to_string),
        };
        ScoreRow {
            metanet_logit: extra.metanet_logit,
            baselines: extra.baselines,
            other_label,
            stamp,
            record,
        }
    }

    pub fn extra(&self) -> ExtraScores {
        ExtraScores {
            metanet_logit: self.metanet_logit,
            baselines: self.baselines,
            imagenet_logits: None,
        }
    }
}

/// A scored table: identity, header (classes, threshold, calibration rows, no records), run and
/// rows in path order.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreTable {
    pub identity: Identity,
    pub header: RecordSet,
    pub run: RunInfo,
    pub rows: Vec<ScoreRow>,
}

impl ScoreTable {
    /// The records as the dashboard reads them.
    pub fn into_record_set(self) -> RecordSet {
        let mut set = self.header;
        set.records = self.rows.into_iter().map(|r| r.record).collect();
        set
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScoresError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a readable Parquet file: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: ParquetError,
    },
    #[error("{path} is not a REASON scores table: {why}")]
    NotScores { path: PathBuf, why: String },
    #[error(
        "{path} and {first} disagree about {what} ({theirs} against {ours}): they were scored \
         with different models or settings and cannot be read as one table"
    )]
    Disagree {
        path: PathBuf,
        first: PathBuf,
        what: &'static str,
        theirs: String,
        ours: String,
    },
    #[error("{id} is in both {a} and {b}: parts of one table must not overlap")]
    Overlap { id: String, a: PathBuf, b: PathBuf },
    #[error("no scores table matches `{pattern}`")]
    NoMatch { pattern: String },
    #[error(transparent)]
    Write(#[from] ExportError),
}

/// sha256 over the artifacts folder's regular files (names and bytes, in name order): two
/// tables scored with the same artifacts agree on it, whatever folder they were loaded from.
pub fn artifacts_sha256(dir: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.retain(|p| p.is_file());
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        let sha = crate::support::files::sha256_file(&file)?;
        hasher.update(format!("{name}\0{sha}\n"));
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// `<out>.parts`: where `reason score` keeps the chunks of an unfinished run of `out`.
pub fn parts_dir_for(out: &Path) -> PathBuf {
    let name = out.file_name().unwrap_or_default().to_string_lossy();
    out.with_file_name(format!("{name}.parts"))
}

fn top_k(header: &RecordSet) -> usize {
    header.classes.len().min(5)
}

/// Writes `table` to `path` atomically (a crash leaves the previous file or none).
pub fn write(path: &Path, table: &ScoreTable) -> Result<(), ScoresError> {
    let rows = &table.rows;
    let classes = &table.header.classes;
    let threshold = table.header.threshold;
    let f32s = |f: &dyn Fn(&ScoreRow) -> f32| ColumnValues::F32(rows.iter().map(f).collect());
    let label = |r: &ScoreRow| {
        r.record
            .label
            .map(|l| classes[l as usize].clone())
            .or_else(|| r.other_label.clone())
    };
    let mut columns = vec![
        Column::new(
            "path",
            ColumnValues::Str(rows.iter().map(|r| r.record.id.clone()).collect()),
        ),
        Column::new(
            "label",
            ColumnValues::OptStr(rows.iter().map(label).collect()),
        ),
        Column::new(
            "pred",
            ColumnValues::Str(
                rows.iter()
                    .map(|r| classes[r.record.pred as usize].clone())
                    .collect(),
            ),
        ),
        Column::new(
            "correct",
            ColumnValues::OptBool(rows.iter().map(|r| r.record.correct()).collect()),
        ),
        Column::new("p_correct", f32s(&|r| r.record.p_correct)),
        Column::new("metanet_logit", f32s(&|r| r.metanet_logit)),
        Column::new(
            "accepted",
            ColumnValues::Bool(
                rows.iter()
                    .map(|r| r.record.p_correct >= threshold)
                    .collect(),
            ),
        ),
        Column::new(
            "truncated",
            ColumnValues::Bool(rows.iter().map(|r| r.record.truncated).collect()),
        ),
    ];
    let tops: Vec<Vec<usize>> = rows
        .iter()
        .map(|r| crate::support::math::top_k(&r.record.probs, top_k(&table.header)))
        .collect();
    for k in 0..top_k(&table.header) {
        columns.push(Column::new(
            format!("top{}", k + 1),
            ColumnValues::Str(tops.iter().map(|t| classes[t[k]].clone()).collect()),
        ));
    }
    for k in 0..top_k(&table.header) {
        columns.push(Column::new(
            format!("top{}_prob", k + 1),
            ColumnValues::F32(
                rows.iter()
                    .zip(&tops)
                    .map(|(r, t)| r.record.probs[t[k]])
                    .collect(),
            ),
        ));
    }
    for (c, class) in classes.iter().enumerate() {
        columns.push(Column::new(
            format!("prob.{class}"),
            f32s(&|r| r.record.probs[c]),
        ));
    }
    for (d, name) in DIAGNOSTICS.iter().enumerate() {
        columns.push(Column::new(
            format!("diag.{name}"),
            f32s(&|r| diagnostics_values(&r.record.diagnostics)[d]),
        ));
    }
    for (b, name) in BASELINES.iter().enumerate() {
        columns.push(Column::new(
            format!("baseline.{name}"),
            f32s(&|r| r.baselines[b]),
        ));
    }
    for j in 0..table.identity.layout.dim() {
        let name = table.identity.layout.name(j).unwrap_or_default();
        columns.push(Column::new(
            format!("meta.{name}"),
            f32s(&|r| r.record.meta[j]),
        ));
    }
    columns.push(Column::new(
        "file_size",
        ColumnValues::I64(rows.iter().map(|r| r.stamp.size).collect()),
    ));
    columns.push(Column::new(
        "file_mtime_ns",
        ColumnValues::I64(rows.iter().map(|r| r.stamp.mtime_ns).collect()),
    ));

    fn json<T: Serialize>(value: &T) -> String {
        serde_json::to_string(value).expect("metadata serialises")
    }
    let metadata = vec![
        (KEY_VERSION.to_string(), VERSION.to_string()),
        (
            KEY_ARTIFACTS.into(),
            table.identity.artifacts_sha256.clone(),
        ),
        (KEY_WEIGHTS.into(), table.identity.weights_sha256.clone()),
        (KEY_BACKBONE.into(), table.identity.backbone.clone()),
        (KEY_LAYOUT.into(), json(&table.identity.layout)),
        (KEY_HEADER.into(), json(&table.header)),
        (KEY_RUN.into(), json(&table.run)),
    ];
    Ok(write_parquet_with_metadata(path, &columns, &metadata)?)
}

/// Which columns a reader decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Every column.
    Whole,
    /// What the dashboard shows: the records. The MetaNet logit, the baselines and the file
    /// stamps are left at zero, which saves a fifth of the decoding.
    Records,
}

/// Reads one table written by [`write`].
pub fn read(path: &Path) -> Result<ScoreTable, ScoresError> {
    read_part(path, Part::Whole)
}

/// Reads `part` of one table written by [`write`].
pub fn read_part(path: &Path, part: Part) -> Result<ScoreTable, ScoresError> {
    let not = |why: String| ScoresError::NotScores {
        path: path.to_path_buf(),
        why,
    };
    let pq = |source| ScoresError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|source| ScoresError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = SerializedFileReader::new(file).map_err(pq)?;
    let meta = reader.metadata();
    let kv: HashMap<&str, &str> = meta
        .file_metadata()
        .key_value_metadata()
        .map(|kvs| {
            kvs.iter()
                .filter_map(|kv| Some((kv.key.as_str(), kv.value.as_deref()?)))
                .collect()
        })
        .unwrap_or_default();
    let get = |key: &str| {
        kv.get(key)
            .copied()
            .ok_or_else(|| not(format!("its metadata lacks `{key}`")))
    };
    let version = get(KEY_VERSION)?;
    if version != VERSION.to_string() {
        return Err(not(format!(
            "table version {version}, this build reads version {VERSION}"
        )));
    }
    fn from_json<T: serde::de::DeserializeOwned>(text: &str, key: &str) -> Result<T, String> {
        serde_json::from_str(text).map_err(|e| format!("`{key}` is not what this build reads: {e}"))
    }
    let identity = Identity {
        artifacts_sha256: get(KEY_ARTIFACTS)?.to_string(),
        weights_sha256: get(KEY_WEIGHTS)?.to_string(),
        backbone: get(KEY_BACKBONE)?.to_string(),
        layout: from_json(get(KEY_LAYOUT)?, KEY_LAYOUT).map_err(not)?,
    };
    let header: RecordSet = from_json(get(KEY_HEADER)?, KEY_HEADER).map_err(not)?;
    let run: RunInfo = from_json(get(KEY_RUN)?, KEY_RUN).map_err(not)?;

    // Column positions by name.
    let schema = meta.file_metadata().schema_descr();
    let position: HashMap<&str, usize> = schema
        .columns()
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name(), i))
        .collect();
    let col = |name: &str| {
        position
            .get(name)
            .copied()
            .ok_or_else(|| not(format!("it has no column `{name}`")))
    };
    let dim = identity.layout.dim();
    let layout_names: Vec<String> = (0..dim)
        .map(|j| format!("meta.{}", identity.layout.name(j).unwrap_or_default()))
        .collect();
    let want = Wanted {
        path: col("path")?,
        label: col("label")?,
        pred: col("pred")?,
        p_correct: col("p_correct")?,
        metanet_logit: col("metanet_logit")?,
        truncated: col("truncated")?,
        probs: header
            .classes
            .iter()
            .map(|c| col(&format!("prob.{c}")))
            .collect::<Result<_, _>>()?,
        diagnostics: DIAGNOSTICS
            .iter()
            .map(|n| col(&format!("diag.{n}")))
            .collect::<Result<_, _>>()?,
        baselines: BASELINES
            .iter()
            .map(|n| col(&format!("baseline.{n}")))
            .collect::<Result<_, _>>()?,
        meta: layout_names
            .iter()
            .map(|n| col(n))
            .collect::<Result<_, _>>()?,
        size: col("file_size")?,
        mtime: col("file_mtime_ns")?,
    };
    let class_index: HashMap<&str, u16> = header
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i as u16))
        .collect();
    // Row groups decode in parallel, one per thread at a time, each through its own file handle
    // (clones of one `File` share its read position, so threads seeking one handle would read
    // each other's pages). Each wave's rows move into the table before the next wave is read,
    // so the rows are never held twice: reading all groups and then concatenating them put a
    // million-row table's peak memory over 1 GB.
    let total = meta.file_metadata().num_rows().max(0) as usize;
    let mut rows: Vec<ScoreRow> = Vec::new();
    rows.try_reserve_exact(total).map_err(|_| {
        not(format!(
            "it claims {total} rows, more than this machine can hold"
        ))
    })?;
    let groups = meta.num_row_groups();
    let wave = rayon::current_num_threads().max(1);
    for first in (0..groups).step_by(wave) {
        let read: Vec<Vec<ScoreRow>> = (first..(first + wave).min(groups))
            .into_par_iter()
            .map(|g| {
                let file = File::open(path).map_err(|e| ParquetError::External(Box::new(e)))?;
                let own = SerializedFileReader::new_with_options(
                    file,
                    ReadOptionsBuilder::new()
                        .with_predicate(Box::new(move |_, i| i == g))
                        .build(),
                )?;
                let group = own.get_row_group(0)?;
                read_group(&*group, &want, &class_index, part)
            })
            .collect::<Result<_, ParquetError>>()
            .map_err(pq)?;
        for group in read {
            rows.extend(group);
        }
    }
    Ok(ScoreTable {
        identity,
        header,
        run,
        rows,
    })
}

/// The positions of the columns a reader needs.
struct Wanted {
    path: usize,
    label: usize,
    pred: usize,
    p_correct: usize,
    metanet_logit: usize,
    truncated: usize,
    probs: Vec<usize>,
    diagnostics: Vec<usize>,
    baselines: Vec<usize>,
    meta: Vec<usize>,
    size: usize,
    mtime: usize,
}

/// The present values of a column chunk, and its definition levels when it is nullable.
type Levelled<T> = (Vec<T>, Option<Vec<i16>>);

/// The values of column `i` of a row group, and its definition levels when it is nullable.
fn column<T: DataType>(
    group: &dyn RowGroupReader,
    i: usize,
    rows: usize,
) -> Result<Levelled<T::T>, ParquetError> {
    let mut reader = get_typed_column_reader::<T>(group.get_column_reader(i)?);
    let optional = group.metadata().column(i).column_descr().max_def_level() > 0;
    let mut values = Vec::with_capacity(rows);
    let mut defs = optional.then(|| Vec::with_capacity(rows));
    let mut read = 0;
    while read < rows {
        let (records, _, _) = reader.read_records(rows - read, defs.as_mut(), None, &mut values)?;
        if records == 0 {
            break;
        }
        read += records;
    }
    if read != rows {
        return Err(ParquetError::General(format!(
            "column {i} has {read} rows, its row group {rows}"
        )));
    }
    Ok((values, defs))
}

/// Each row's value of string column `i` as `f` turns it into a `T` (`None` for a null), with
/// no `String` made unless `f` makes one.
fn map_strings<T>(
    group: &dyn RowGroupReader,
    i: usize,
    rows: usize,
    mut f: impl FnMut(&str) -> T,
) -> Result<Vec<Option<T>>, ParquetError> {
    let (values, defs) = column::<ByteArrayType>(group, i, rows)?;
    let mut values = values.iter();
    let mut next = || -> Result<Option<T>, ParquetError> {
        let v = values
            .next()
            .ok_or_else(|| ParquetError::General("missing string value".into()))?;
        Ok(Some(f(v.as_utf8()?)))
    };
    match defs {
        None => (0..rows).map(|_| next()).collect(),
        Some(defs) => defs
            .iter()
            .map(|&d| if d > 0 { next() } else { Ok(None) })
            .collect(),
    }
}

fn floats(group: &dyn RowGroupReader, i: usize, rows: usize) -> Result<Vec<f32>, ParquetError> {
    Ok(column::<FloatType>(group, i, rows)?.0)
}

fn read_group(
    group: &dyn RowGroupReader,
    want: &Wanted,
    class_index: &HashMap<&str, u16>,
    part: Part,
) -> Result<Vec<ScoreRow>, ParquetError> {
    let n = group.metadata().num_rows() as usize;
    let bad = |why: String| ParquetError::General(why);
    let paths = map_strings(group, want.path, n, str::to_string)?;
    let labels = map_strings(group, want.label, n, class_lookup(class_index))?;
    let preds = map_strings(group, want.pred, n, class_lookup(class_index))?;
    let p_correct = floats(group, want.p_correct, n)?;
    let truncated = column::<BoolType>(group, want.truncated, n)?.0;
    let whole = part == Part::Whole;
    let (logit, size, mtime) = if whole {
        (
            floats(group, want.metanet_logit, n)?,
            column::<Int64Type>(group, want.size, n)?.0,
            column::<Int64Type>(group, want.mtime, n)?.0,
        )
    } else {
        (vec![0.0; n], vec![0; n], vec![0; n])
    };
    let mut rows = Vec::with_capacity(n);
    for (r, ((path, label), pred)) in paths.into_iter().zip(labels).zip(preds).enumerate() {
        let pred = pred.unwrap_or_else(|| Err(String::new())).map_err(|pred| {
            bad(format!(
                "prediction `{pred}` is none of the header's classes"
            ))
        })?;
        let (known, other_label) = match label {
            Some(Ok(class)) => (Some(class), None),
            Some(Err(other)) => (None, Some(other)),
            None => (None, None),
        };
        // The vectors and arrays are filled from their columns below.
        rows.push(ScoreRow {
            record: SampleRecord {
                id: path.unwrap_or_default(),
                label: known,
                pred,
                probs: vec![0.0; want.probs.len()],
                p_correct: p_correct[r],
                diagnostics: Diagnostics::default(),
                meta: vec![0.0; want.meta.len()],
                truncated: truncated[r],
            },
            metanet_logit: logit[r],
            baselines: [0.0; 13],
            other_label,
            stamp: FileStamp {
                size: size[r],
                mtime_ns: mtime[r],
            },
        });
    }
    // One family of columns at a time, so only its columns are held at once.
    let many = |cols: &[usize]| -> Result<Vec<Vec<f32>>, ParquetError> {
        cols.iter().map(|&i| floats(group, i, n)).collect()
    };
    scatter(&many(&want.probs)?, &mut rows, |r| &mut r.record.probs);
    scatter(&many(&want.meta)?, &mut rows, |r| &mut r.record.meta);
    if whole {
        scatter(&many(&want.baselines)?, &mut rows, |r| &mut r.baselines);
    }
    let mut diagnostics = vec![[0.0; DIAGNOSTICS.len()]; n];
    scatter(&many(&want.diagnostics)?, &mut diagnostics, |d| d);
    for (row, d) in rows.iter_mut().zip(diagnostics) {
        row.record.diagnostics = diagnostics_from(d);
    }
    Ok(rows)
}

/// A class name's index; only a label the header does not know is kept as text. Rows come in
/// path order, so runs of one class are common: the last answer is kept.
fn class_lookup<'a>(
    class_index: &'a HashMap<&str, u16>,
) -> impl FnMut(&str) -> Result<u16, String> + 'a {
    let mut last: Option<(String, u16)> = None;
    move |name| {
        if let Some((last_name, index)) = &last {
            if last_name == name {
                return Ok(*index);
            }
        }
        let index = *class_index.get(name).ok_or_else(|| name.to_string())?;
        last = Some((name.to_string(), index));
        Ok(index)
    }
}

/// Rows per tile of [`scatter`]: the tile's rows (a few hundred KiB) stay in cache.
const TILE: usize = 1024;

/// Copies `cols[j][r]` into `field(rows[r])[j]`, a tile of rows at a time: each column is read
/// in order while the tile's rows stay in cache. Gathering each row from its ~80 columns, row
/// after row, read from ~80 places at once and was 40 % of the time to read a table.
fn scatter<R>(cols: &[Vec<f32>], rows: &mut [R], field: impl Fn(&mut R) -> &mut [f32]) {
    for (t, tile) in rows.chunks_mut(TILE).enumerate() {
        let start = t * TILE;
        for (j, col) in cols.iter().enumerate() {
            for (row, &value) in tile.iter_mut().zip(&col[start..]) {
                field(row)[j] = value;
            }
        }
    }
}

/// The files `patterns` name: a path, or a glob whose last component holds `*` or `?`
/// (`parts/*.parquet`), sorted. A pattern that matches nothing is an error.
pub fn expand(patterns: &[String]) -> Result<Vec<PathBuf>, ScoresError> {
    let mut out = Vec::new();
    for pattern in patterns {
        let path = Path::new(pattern);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let wild = name.as_deref().is_some_and(|n| n.contains(['*', '?']));
        if !wild {
            if !path.is_file() {
                return Err(ScoresError::NoMatch {
                    pattern: pattern.clone(),
                });
            }
            out.push(path.to_path_buf());
            continue;
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let glob = name.unwrap_or_default();
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|source| ScoresError::Io {
                path: dir.clone(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.file_name()
                        .is_some_and(|n| wildcard(&glob, &n.to_string_lossy()))
            })
            .collect();
        if found.is_empty() {
            return Err(ScoresError::NoMatch {
                pattern: pattern.clone(),
            });
        }
        found.sort();
        out.extend(found);
    }
    out.dedup();
    Ok(out)
}

/// Shell-style matching of `*` (any run) and `?` (one character); a leading `.` is matched
/// only by a literal dot, as shells do (hidden temporary files stay out).
fn wildcard(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Classic greedy matching with one backtrack point for the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// The parts in `paths` read as one table: they must agree on identity, condition, seed and
/// split, and no sample may be in two of them. Rows come in path order (the order of one
/// unsharded run); skipped files are merged. The shard of each part comes back too.
pub fn read_union(paths: &[PathBuf], part: Part) -> Result<(ScoreTable, Vec<Shard>), ScoresError> {
    let mut tables: Vec<(PathBuf, ScoreTable)> = paths
        .par_iter()
        .map(|p| read_part(p, part).map(|t| (p.clone(), t)))
        .collect::<Result<_, _>>()?;
    if tables.is_empty() {
        return Err(ScoresError::NoMatch {
            pattern: String::new(),
        });
    }
    let shards: Vec<Shard> = tables.iter().map(|(_, t)| t.run.shard).collect();
    let (first_path, mut union) = tables.remove(0);
    // Which part each sample came from, to name both parts of an overlap; one table needs no
    // such map (a million ids would cost a tenth of a second to open it).
    let mut owner: HashMap<&str, usize> = HashMap::new();
    let mut names = vec![first_path.clone()];
    if !tables.is_empty() {
        for row in &union.rows {
            owner.insert(row.record.id.as_str(), 0);
        }
    }
    for (path, table) in &tables {
        let disagree = |what: &'static str, theirs: String, ours: String| ScoresError::Disagree {
            path: path.clone(),
            first: first_path.clone(),
            what,
            theirs,
            ours,
        };
        let (a, b) = (&table.identity, &union.identity);
        let short = |s: &str| s[..s.len().min(12)].to_string();
        if a.artifacts_sha256 != b.artifacts_sha256 {
            return Err(disagree(
                "artifacts",
                short(&a.artifacts_sha256),
                short(&b.artifacts_sha256),
            ));
        }
        if a.weights_sha256 != b.weights_sha256 || a.backbone != b.backbone {
            return Err(disagree(
                "weights",
                format!("{} {}", a.backbone, short(&a.weights_sha256)),
                format!("{} {}", b.backbone, short(&b.weights_sha256)),
            ));
        }
        if a.layout != b.layout {
            let blocks = |l: &FeatureLayout| {
                l.blocks
                    .iter()
                    .map(|b| format!("{}:{}", b.family, b.names.len()))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            return Err(disagree("layout", blocks(&a.layout), blocks(&b.layout)));
        }
        let (r, u) = (&table.run, &union.run);
        if (&r.condition, r.seed) != (&u.condition, u.seed) {
            return Err(disagree(
                "condition",
                format!("{} seed {}", r.condition, r.seed),
                format!("{} seed {}", u.condition, u.seed),
            ));
        }
        if r.split != u.split {
            return Err(disagree(
                "split",
                format!("{:?}", r.split),
                format!("{:?}", u.split),
            ));
        }
        if table.header != union.header {
            return Err(disagree(
                "header (classes, threshold or calibration)",
                "another".into(),
                "this".into(),
            ));
        }
        let part = names.len();
        for row in &table.rows {
            if let Some(&other) = owner.get(row.record.id.as_str()) {
                return Err(ScoresError::Overlap {
                    id: row.record.id.clone(),
                    a: names[other].clone(),
                    b: path.clone(),
                });
            }
            owner.insert(row.record.id.as_str(), part);
        }
        names.push(path.clone());
    }
    drop(owner);
    for (_, table) in tables {
        union.rows.extend(table.rows);
        union.run.skipped.extend(table.run.skipped);
    }
    // A single table is already in path order: checking is cheaper than sorting a million rows.
    if !union.rows.is_sorted_by(|a, b| a.record.id <= b.record.id) {
        union.rows.sort_by(|a, b| a.record.id.cmp(&b.record.id));
    }
    union.run.skipped.sort();
    if names.len() > 1 {
        union.run.shard = Shard::ALL;
    }
    Ok((union, shards))
}

/// The shard indices absent from `parts` when they are shards of one split into N (empty when
/// they are not, or when none is missing).
pub fn missing_shards(parts: &[Shard]) -> Vec<u32> {
    let Some(count) = parts.first().map(|s| s.count) else {
        return Vec::new();
    };
    if count == 1 || parts.iter().any(|s| s.count != count) {
        return Vec::new();
    }
    (0..count)
        .filter(|&i| !parts.iter().any(|s| s.index == i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_and_parse() {
        let ids: Vec<String> = (0..1000)
            .map(|i| format!("c{}/img_{i}.JPEG", i % 7))
            .collect();
        let shards: Vec<Shard> = (0..4).map(|i| Shard { index: i, count: 4 }).collect();
        let mut sizes = [0usize; 4];
        for id in &ids {
            let owners: Vec<usize> = (0..4).filter(|&s| shards[s].contains(id)).collect();
            assert_eq!(owners.len(), 1, "{id} is in exactly one shard");
            sizes[owners[0]] += 1;
        }
        // Balanced: each quarter within 20 % of 250.
        assert!(sizes.iter().all(|&n| (200..=300).contains(&n)), "{sizes:?}");
        // Pinned, so a shard's samples never change between versions or machines.
        let pinned: Vec<u32> = ["n01440764/ILSVRC2012_val_00009111.JPEG", "a.png", "b/c.jpg"]
            .iter()
            .map(|id| (0..4).find(|&i| shards[i as usize].contains(id)).unwrap())
            .collect();
        assert_eq!(pinned, [1, 2, 0], "computed independently in Python");
        assert!(Shard::ALL.contains("anything"));
        assert_eq!("2/5".parse::<Shard>(), Ok(Shard { index: 2, count: 5 }));
        for bad in ["5/5", "1/0", "x/2", "3", "-1/2"] {
            let err = bad.parse::<Shard>().unwrap_err();
            assert!(err.contains("I/N"), "{bad}: {err}");
        }
        assert_eq!(Shard { index: 3, count: 8 }.to_string(), "3/8");
    }

    #[test]
    fn wildcards_match_like_a_shell() {
        assert!(wildcard("*.parquet", "part-0.parquet"));
        assert!(wildcard("part-?.parquet", "part-3.parquet"));
        assert!(!wildcard("part-?.parquet", "part-13.parquet"));
        assert!(wildcard("p*-*-of-*.parquet", "part-1-of-4.parquet"));
        assert!(!wildcard("*.parquet", "part.parquet.tmp"));
        assert!(!wildcard("*.parquet", ".part.parquet.123-0.tmp.parquet"));
        assert!(wildcard("exact", "exact"));
        assert!(!wildcard("exact", "exactly"));
    }
}
