//! Per-sample tables exported to Parquet: the table format other tools (pandas, polars, DuckDB) read.
//!
//! Written with the `parquet` crate's low-level column writer (no arrow dependency); strings,
//! integers and booleans Snappy compressed and dictionary encoded, floats plain. Column types:
//!
//! | [`ColumnValues`] | Parquet physical / logical type | repetition |
//! |------------------|---------------------------------|------------|
//! | `Str`            | `BYTE_ARRAY` / `STRING` (UTF-8) | required   |
//! | `OptStr`         | `BYTE_ARRAY` / `STRING` (UTF-8) | optional   |
//! | `I64`            | `INT64`                         | required   |
//! | `OptI64`         | `INT64`                         | optional   |
//! | `Bool`           | `BOOLEAN`                       | required   |
//! | `OptBool`        | `BOOLEAN`                       | optional   |
//! | `F32`            | `FLOAT`                         | required   |
//!
//! pandas/pyarrow, polars, DuckDB and Spark read these files directly. The file is written to a
//! temporary file beside the destination, synced, then renamed over it, so a failed export
//! never leaves a partial file at `path`.

use std::collections::HashSet;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use parquet::basic::{Compression, LogicalType, Repetition, Type as PhysicalType};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, FloatType, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedColumnWriter, SerializedFileWriter};
use parquet::schema::types::{ColumnPath, Type};

use crate::support::files::write_atomically;

/// Rows per row group: bounds the memory a reader needs per group.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// One named column of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: ColumnValues,
}

impl Column {
    pub fn new(name: impl Into<String>, values: ColumnValues) -> Self {
        Column {
            name: name.into(),
            values,
        }
    }
}

/// The values of a column; `Opt*` variants are nullable columns (`None` = null).
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValues {
    Str(Vec<String>),
    OptStr(Vec<Option<String>>),
    I64(Vec<i64>),
    OptI64(Vec<Option<i64>>),
    Bool(Vec<bool>),
    OptBool(Vec<Option<bool>>),
    F32(Vec<f32>),
}

impl ColumnValues {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            ColumnValues::Str(v) => v.len(),
            ColumnValues::OptStr(v) => v.len(),
            ColumnValues::I64(v) => v.len(),
            ColumnValues::OptI64(v) => v.len(),
            ColumnValues::Bool(v) => v.len(),
            ColumnValues::OptBool(v) => v.len(),
            ColumnValues::F32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the column is nullable.
    pub fn is_optional(&self) -> bool {
        matches!(
            self,
            ColumnValues::OptStr(_) | ColumnValues::OptI64(_) | ColumnValues::OptBool(_)
        )
    }
}

/// Why an export failed. Nothing is left at the destination when it does.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("nothing to export: the table has no columns")]
    NoColumns,
    #[error("column {index} has an empty name")]
    EmptyName { index: usize },
    #[error("column name `{name}` appears more than once")]
    DuplicateName { name: String },
    #[error(
        "column `{name}` has {len} rows but column `{first}` has {expected}: \
         all columns must have the same length"
    )]
    LengthMismatch {
        name: String,
        len: usize,
        first: String,
        expected: usize,
    },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parquet encoding of {path} failed: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: ParquetError,
    },
}

/// Writes `columns` as one Parquet table at `path` (replacing any file there, atomically).
pub fn write_parquet(path: &Path, columns: &[Column]) -> Result<(), ExportError> {
    write_parquet_chunked(path, columns, &[], ROW_GROUP_ROWS)
}

/// [`write_parquet`] with `metadata` as the file's key-value metadata (what readers such as
/// `pyarrow.parquet.read_metadata(...).metadata` show).
pub fn write_parquet_with_metadata(
    path: &Path,
    columns: &[Column],
    metadata: &[(String, String)],
) -> Result<(), ExportError> {
    write_parquet_chunked(path, columns, metadata, ROW_GROUP_ROWS)
}

fn validate(columns: &[Column]) -> Result<usize, ExportError> {
    let first = columns.first().ok_or(ExportError::NoColumns)?;
    let rows = first.values.len();
    let mut names = HashSet::new();
    for (index, c) in columns.iter().enumerate() {
        if c.name.is_empty() {
            return Err(ExportError::EmptyName { index });
        }
        if !names.insert(c.name.as_str()) {
            return Err(ExportError::DuplicateName {
                name: c.name.clone(),
            });
        }
        if c.values.len() != rows {
            return Err(ExportError::LengthMismatch {
                name: c.name.clone(),
                len: c.values.len(),
                first: first.name.clone(),
                expected: rows,
            });
        }
    }
    Ok(rows)
}

fn schema(columns: &[Column]) -> Result<Type, ParquetError> {
    let fields = columns
        .iter()
        .map(|c| {
            let (physical, logical) = match c.values {
                ColumnValues::Str(_) | ColumnValues::OptStr(_) => {
                    (PhysicalType::BYTE_ARRAY, Some(LogicalType::String))
                }
                ColumnValues::I64(_) | ColumnValues::OptI64(_) => (PhysicalType::INT64, None),
                ColumnValues::Bool(_) | ColumnValues::OptBool(_) => (PhysicalType::BOOLEAN, None),
                ColumnValues::F32(_) => (PhysicalType::FLOAT, None),
            };
            let repetition = if c.values.is_optional() {
                Repetition::OPTIONAL
            } else {
                Repetition::REQUIRED
            };
            Type::primitive_type_builder(&c.name, physical)
                .with_repetition(repetition)
                .with_logical_type(logical)
                .build()
                .map(Arc::new)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Type::group_type_builder("schema")
        .with_fields(fields)
        .build()
}

fn write_parquet_chunked(
    path: &Path,
    columns: &[Column],
    metadata: &[(String, String)],
    rows_per_group: usize,
) -> Result<(), ExportError> {
    let rows = validate(columns)?;
    let io_err = |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let pq_err = |source| ExportError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let write = |tmp: &Path| {
        let file = File::create(tmp).map_err(io_err)?;
        let schema = Arc::new(schema(columns).map_err(pq_err)?);
        // Dictionaries and Snappy pay for strings (class names repeat; a column of unique paths
        // falls back to plain by itself) and not for floats, whose mantissas do not repeat:
        // there they only cost readers time (a fifth of the time to open a million rows).
        let props = columns
            .iter()
            .filter(|c| matches!(c.values, ColumnValues::F32(_)))
            .fold(
                WriterProperties::builder().set_compression(Compression::SNAPPY),
                |props, c| {
                    let column = ColumnPath::from(c.name.as_str());
                    props
                        .set_column_dictionary_enabled(column.clone(), false)
                        .set_column_compression(column, Compression::UNCOMPRESSED)
                },
            );
        let props = Arc::new(
            props
                .set_created_by(format!("reason {}", env!("CARGO_PKG_VERSION")))
                .set_key_value_metadata((!metadata.is_empty()).then(|| {
                    metadata
                        .iter()
                        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                        .collect()
                }))
                .build(),
        );
        let mut writer =
            SerializedFileWriter::new(BufWriter::new(file), schema, props).map_err(pq_err)?;
        let mut start = 0;
        while start < rows {
            let end = (start + rows_per_group.max(1)).min(rows);
            let mut group = writer.next_row_group().map_err(pq_err)?;
            for column in columns {
                let mut cw = group
                    .next_column()
                    .map_err(pq_err)?
                    .expect("the schema has one leaf per column");
                write_column(&mut cw, &column.values, start, end).map_err(pq_err)?;
                cw.close().map_err(pq_err)?;
            }
            group.close().map_err(pq_err)?;
            start = end;
        }
        let buffered = writer.into_inner().map_err(pq_err)?;
        buffered.into_inner().map_err(|e| io_err(e.into_error()))?;
        Ok(())
    };
    write_atomically(path, write, io_err)
}

/// Definition levels (1 = present, 0 = null) and the present values of an optional slice.
fn split_optional<T: Clone, U>(
    values: &[Option<T>],
    convert: impl Fn(&T) -> U,
) -> (Vec<i16>, Vec<U>) {
    let defs = values.iter().map(|v| i16::from(v.is_some())).collect();
    let present = values.iter().flatten().map(convert).collect();
    (defs, present)
}

fn write_column(
    cw: &mut SerializedColumnWriter<'_>,
    values: &ColumnValues,
    start: usize,
    end: usize,
) -> Result<(), ParquetError> {
    let bytes = |s: &String| ByteArray::from(s.as_bytes().to_vec());
    match values {
        ColumnValues::Str(v) => {
            let data: Vec<ByteArray> = v[start..end].iter().map(bytes).collect();
            cw.typed::<ByteArrayType>().write_batch(&data, None, None)?;
        }
        ColumnValues::OptStr(v) => {
            let (defs, data) = split_optional(&v[start..end], bytes);
            cw.typed::<ByteArrayType>()
                .write_batch(&data, Some(&defs), None)?;
        }
        ColumnValues::I64(v) => {
            cw.typed::<Int64Type>()
                .write_batch(&v[start..end], None, None)?;
        }
        ColumnValues::OptI64(v) => {
            let (defs, data) = split_optional(&v[start..end], |&x| x);
            cw.typed::<Int64Type>()
                .write_batch(&data, Some(&defs), None)?;
        }
        ColumnValues::Bool(v) => {
            cw.typed::<BoolType>()
                .write_batch(&v[start..end], None, None)?;
        }
        ColumnValues::OptBool(v) => {
            let (defs, data) = split_optional(&v[start..end], |&x| x);
            cw.typed::<BoolType>()
                .write_batch(&data, Some(&defs), None)?;
        }
        ColumnValues::F32(v) => {
            cw.typed::<FloatType>()
                .write_batch(&v[start..end], None, None)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    fn read_back(path: &Path) -> (Vec<(String, bool)>, Vec<Vec<Field>>, usize) {
        let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
        let meta = reader.metadata();
        let groups = meta.num_row_groups();
        let schema = meta.file_metadata().schema_descr();
        let names = schema
            .columns()
            .iter()
            .map(|c| (c.name().to_string(), c.self_type().is_optional()))
            .collect();
        let rows = reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| {
                r.unwrap()
                    .get_column_iter()
                    .map(|(_, f)| f.clone())
                    .collect()
            })
            .collect();
        (names, rows, groups)
    }

    fn sample_table() -> Vec<Column> {
        vec![
            Column::new(
                "id",
                ColumnValues::Str(vec![
                    "a/1.JPEG".into(),
                    "b/2.JPEG".into(),
                    "c/3.JPEG".into(),
                ]),
            ),
            Column::new(
                "label",
                ColumnValues::OptStr(vec![Some("tench".into()), None, Some("golf ball".into())]),
            ),
            Column::new("pred", ColumnValues::I64(vec![0, -7, i64::MAX])),
            Column::new(
                "label_index",
                ColumnValues::OptI64(vec![None, Some(3), Some(0)]),
            ),
            Column::new("accepted", ColumnValues::Bool(vec![true, false, true])),
            Column::new(
                "correct",
                ColumnValues::OptBool(vec![Some(false), Some(true), None]),
            ),
            Column::new("p_correct", ColumnValues::F32(vec![0.25, 1.0, -0.5])),
        ]
    }

    #[test]
    fn round_trips_values_nulls_and_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("samples.parquet");
        write_parquet(&path, &sample_table()).unwrap();
        let (names, rows, groups) = read_back(&path);
        assert_eq!(groups, 1);
        assert_eq!(
            names,
            vec![
                ("id".to_string(), false),
                ("label".to_string(), true),
                ("pred".to_string(), false),
                ("label_index".to_string(), true),
                ("accepted".to_string(), false),
                ("correct".to_string(), true),
                ("p_correct".to_string(), false),
            ]
        );
        use Field::*;
        let s = |x: &str| Str(x.to_string());
        assert_eq!(
            rows,
            vec![
                vec![
                    s("a/1.JPEG"),
                    s("tench"),
                    Long(0),
                    Null,
                    Bool(true),
                    Bool(false),
                    Float(0.25)
                ],
                vec![
                    s("b/2.JPEG"),
                    Null,
                    Long(-7),
                    Long(3),
                    Bool(false),
                    Bool(true),
                    Float(1.0)
                ],
                vec![
                    s("c/3.JPEG"),
                    s("golf ball"),
                    Long(i64::MAX),
                    Long(0),
                    Bool(true),
                    Null,
                    Float(-0.5)
                ],
            ]
        );
        // No temporary file is left beside it.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("samples.parquet")]);
    }

    #[test]
    fn unicode_strings_and_special_floats_survive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ü.parquet");
        let strings = vec![
            "n01440764/ILSVRC2012_val_00009111.JPEG".to_string(),
            "Ünïcödé/日本語/🐟 tench.jpg".to_string(),
            String::new(),
            "tab\tnew\nline \"quoted\"".to_string(),
        ];
        let cols = vec![
            Column::new("path ✓", ColumnValues::Str(strings.clone())),
            Column::new(
                "note",
                ColumnValues::OptStr(vec![None, Some("ñ".into()), Some(String::new()), None]),
            ),
            Column::new(
                "x",
                ColumnValues::F32(vec![f32::NAN, f32::INFINITY, f32::MIN_POSITIVE, -0.0]),
            ),
        ];
        write_parquet(&path, &cols).unwrap();
        let (names, rows, _) = read_back(&path);
        assert_eq!(names[0].0, "path ✓");
        let got: Vec<_> = rows.iter().map(|r| r[0].clone()).collect();
        let want: Vec<_> = strings.into_iter().map(Field::Str).collect();
        assert_eq!(got, want);
        assert_eq!(rows[0][1], Field::Null);
        assert_eq!(rows[1][1], Field::Str("ñ".into()));
        assert_eq!(rows[2][1], Field::Str(String::new()));
        match rows[0][2] {
            Field::Float(v) => assert!(v.is_nan()),
            ref other => panic!("{other:?}"),
        }
        assert_eq!(rows[1][2], Field::Float(f32::INFINITY));
        assert_eq!(rows[2][2], Field::Float(f32::MIN_POSITIVE));
    }

    #[test]
    fn splits_into_row_groups_without_losing_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("groups.parquet");
        let n = 25;
        let cols = vec![
            Column::new("i", ColumnValues::I64((0..n).collect())),
            Column::new(
                "maybe",
                ColumnValues::OptBool((0..n).map(|i| (i % 3 != 0).then_some(i % 2 == 0)).collect()),
            ),
        ];
        write_parquet_chunked(&path, &cols, &[], 10).unwrap();
        let (_, rows, groups) = read_back(&path);
        assert_eq!(groups, 3);
        assert_eq!(rows.len(), n as usize);
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row[0], Field::Long(i as i64));
            let want = if i % 3 != 0 {
                Field::Bool(i % 2 == 0)
            } else {
                Field::Null
            };
            assert_eq!(row[1], want);
        }
    }

    #[test]
    fn zero_rows_is_a_valid_empty_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.parquet");
        let cols = vec![
            Column::new("id", ColumnValues::Str(vec![])),
            Column::new("p", ColumnValues::F32(vec![])),
        ];
        write_parquet(&path, &cols).unwrap();
        let (names, rows, _) = read_back(&path);
        assert_eq!(names.len(), 2);
        assert!(rows.is_empty());
    }

    #[test]
    fn length_mismatch_is_an_error_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.parquet");
        let mut cols = sample_table();
        cols[4] = Column::new("accepted", ColumnValues::Bool(vec![true]));
        let err = write_parquet(&path, &cols).unwrap_err();
        assert!(
            matches!(err, ExportError::LengthMismatch { ref name, len: 1, expected: 3, .. } if name == "accepted"),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("`accepted` has 1 rows") && msg.contains("`id` has 3"),
            "{msg}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn bad_tables_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        assert!(matches!(
            write_parquet(&path, &[]).unwrap_err(),
            ExportError::NoColumns
        ));
        let dup = vec![
            Column::new("a", ColumnValues::I64(vec![1])),
            Column::new("a", ColumnValues::F32(vec![1.0])),
        ];
        assert!(matches!(
            write_parquet(&path, &dup).unwrap_err(),
            ExportError::DuplicateName { ref name } if name == "a"
        ));
        let unnamed = vec![Column::new("", ColumnValues::I64(vec![1]))];
        assert!(matches!(
            write_parquet(&path, &unnamed).unwrap_err(),
            ExportError::EmptyName { index: 0 }
        ));
        assert!(!path.exists());
    }

    #[test]
    fn a_failed_export_keeps_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keep.parquet");
        write_parquet(&path, &sample_table()).unwrap();
        let before = std::fs::read(&path).unwrap();
        let bad = vec![
            Column::new("a", ColumnValues::I64(vec![1, 2])),
            Column::new("b", ColumnValues::I64(vec![1])),
        ];
        assert!(write_parquet(&path, &bad).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), before);

        // An unwritable destination (its parent is a file) is an I/O error naming the path.
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let err = write_parquet(&blocker.join("t.parquet"), &sample_table()).unwrap_err();
        assert!(matches!(err, ExportError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("t.parquet"));

        // Overwriting an existing export replaces it.
        let small = vec![Column::new("z", ColumnValues::Bool(vec![false]))];
        write_parquet(&path, &small).unwrap();
        let (names, rows, _) = read_back(&path);
        assert_eq!(names, vec![("z".to_string(), false)]);
        assert_eq!(rows, vec![vec![Field::Bool(false)]]);
    }
}
