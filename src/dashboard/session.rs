//! Dashboard sessions: where the user left off (threshold, filter, sort, cursor) and what they
//! wrote about the samples (tags, verdict, note), keyed by the sample's relative path.
//!
//! UI-free: the dashboard reads and writes these, `eval` or a notebook can read them too.
//! Files are versioned and written atomically; a file this code cannot read is reported and
//! never overwritten.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::dashboard::filter::Filter;
use crate::reliability::records::{RecordSet, SampleRecord};
use crate::support::files::write_bytes_atomically;
use crate::support::text::csv_field;

/// Format version written by this code; files with a higher version are refused.
pub const SESSION_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot read session file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "session file {} is not a valid session ({reason}); it was left untouched: \
         move it away or choose another session name (--session)",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "session file {} has format version {found}, newer than the {supported} this REASON \
         understands; it was left untouched: upgrade REASON, move it away or choose another \
         session name (--session)",
        path.display()
    )]
    FutureVersion {
        path: PathBuf,
        found: u64,
        supported: u32,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What the user concluded about a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    ModelError,
    LabelError,
    Ambiguous,
    Fine,
}

impl Verdict {
    pub const ALL: [Verdict; 4] = [
        Verdict::ModelError,
        Verdict::LabelError,
        Verdict::Ambiguous,
        Verdict::Fine,
    ];

    /// Human-readable name.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::ModelError => "model error",
            Verdict::LabelError => "label error",
            Verdict::Ambiguous => "ambiguous",
            Verdict::Fine => "fine",
        }
    }

    /// The snake_case name used in files.
    pub fn key(self) -> &'static str {
        match self {
            Verdict::ModelError => "model_error",
            Verdict::LabelError => "label_error",
            Verdict::Ambiguous => "ambiguous",
            Verdict::Fine => "fine",
        }
    }

    /// Cycle order: none → model error → label error → ambiguous → fine → none.
    pub fn cycle(current: Option<Verdict>) -> Option<Verdict> {
        match current {
            None => Some(Verdict::ModelError),
            Some(Verdict::ModelError) => Some(Verdict::LabelError),
            Some(Verdict::LabelError) => Some(Verdict::Ambiguous),
            Some(Verdict::Ambiguous) => Some(Verdict::Fine),
            Some(Verdict::Fine) => None,
        }
    }
}

/// The user's notes on one sample.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotation {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl Annotation {
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.verdict.is_none() && self.note.is_empty()
    }
}

/// The column the list is sorted by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    #[default]
    Path,
    PCorrect,
    Msp,
    GradSensitivity,
    KnnDistance,
    /// 1 − p(given label): the suspected-label-error score (`reliability::label_issues`).
    LabelIssue,
}

impl SortKey {
    pub const ALL: [SortKey; 6] = [
        SortKey::Path,
        SortKey::PCorrect,
        SortKey::Msp,
        SortKey::GradSensitivity,
        SortKey::KnnDistance,
        SortKey::LabelIssue,
    ];

    pub fn label(self) -> &'static str {
        match self {
            SortKey::Path => "path",
            SortKey::PCorrect => "P(correct)",
            SortKey::Msp => "MSP",
            SortKey::GradSensitivity => "grad sensitivity",
            SortKey::KnnDistance => "k-NN distance",
            SortKey::LabelIssue => "label issue",
        }
    }

    /// The direction that puts the most suspicious samples first: least trusted for
    /// confidences, largest for the anomaly signals.
    pub fn default_descending(self) -> bool {
        matches!(
            self,
            SortKey::GradSensitivity | SortKey::KnnDistance | SortKey::LabelIssue
        )
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

/// One dashboard session, as saved in `sessions/<name>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub version: u32,
    /// Threshold on P(correct); `None` until the user moves it (the artifact's one applies).
    #[serde(default)]
    pub threshold: Option<f32>,
    #[serde(default)]
    pub filter: Filter,
    #[serde(default)]
    pub sort: Sort,
    /// The selected sample's id (never an index: the list order changes).
    #[serde(default)]
    pub cursor: Option<String>,
    /// Annotations keyed by sample id; empty annotations are not kept.
    #[serde(default)]
    pub annotations: BTreeMap<String, Annotation>,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            version: SESSION_VERSION,
            threshold: None,
            filter: Filter::default(),
            sort: Sort::default(),
            cursor: None,
            annotations: BTreeMap::new(),
        }
    }
}

impl Session {
    /// Reads a session file; `Ok(None)` when it does not exist. A file that is not valid JSON,
    /// not a session, or of a newer version is an error (and is left as it is).
    pub fn load(path: &Path) -> Result<Option<Session>, SessionError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SessionError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        Self::parse(&text, path).map(Some)
    }

    /// Parses session JSON; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Session, SessionError> {
        let corrupt = |reason: String| SessionError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
        // The version is checked before the shape, so a future format with other fields is
        // reported as "newer", not as "corrupt".
        let version = value
            .get("version")
            .ok_or_else(|| corrupt("no \"version\" field".into()))?
            .as_u64()
            .ok_or_else(|| corrupt("\"version\" is not a non-negative integer".into()))?;
        if version > u64::from(SESSION_VERSION) {
            return Err(SessionError::FutureVersion {
                path: path.to_path_buf(),
                found: version,
                supported: SESSION_VERSION,
            });
        }
        if version == 0 {
            return Err(corrupt("version 0 does not exist".into()));
        }
        let mut session: Session =
            serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
        session.annotations.retain(|_, a| !a.is_empty());
        Ok(session)
    }

    /// Writes the session atomically (temporary file in the same folder, then rename), creating
    /// the folder if needed.
    pub fn save(&self, path: &Path) -> Result<(), SessionError> {
        let mut json = serde_json::to_string_pretty(self).expect("a session always serialises");
        json.push('\n');
        write_atomically(path, json.as_bytes())
    }

    /// Tags, verdict and note of a sample (an empty annotation when there is none).
    pub fn annotation(&self, id: &str) -> Option<&Annotation> {
        self.annotations.get(id)
    }

    /// Replaces a sample's annotation; an empty one removes the entry.
    pub fn set_annotation(&mut self, id: &str, annotation: Annotation) {
        if annotation.is_empty() {
            self.annotations.remove(id);
        } else {
            self.annotations.insert(id.to_string(), annotation);
        }
    }

    /// Every distinct tag, sorted.
    pub fn all_tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = self
            .annotations
            .values()
            .flat_map(|a| a.tags.iter().cloned())
            .collect();
        tags.sort();
        tags.dedup();
        tags
    }
}

/// Splits comma-separated tag input: trimmed, empty ones dropped, duplicates removed
/// (first occurrence kept).
pub fn parse_tags(input: &str) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for tag in input.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_string());
        }
    }
    tags
}

/// [`write_bytes_atomically`] with the session's error.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SessionError> {
    write_bytes_atomically(path, bytes).map_err(|source| SessionError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Where [`export_annotations`] writes, beside the session file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportPaths {
    pub csv: PathBuf,
    pub json: PathBuf,
}

impl ExportPaths {
    /// `sessions/NAME.json` → `sessions/NAME.annotations.csv` and `.annotations.json`.
    pub fn beside(session_path: &Path) -> ExportPaths {
        let name = session_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "session".into());
        let stem = name.strip_suffix(".json").unwrap_or(&name);
        let dir = session_path.parent().unwrap_or(Path::new(""));
        ExportPaths {
            csv: dir.join(format!("{stem}.annotations.csv")),
            json: dir.join(format!("{stem}.annotations.json")),
        }
    }
}

/// One exported row: an annotated sample with what the model said about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportRow {
    pub id: String,
    /// Class identifier of the label; `None` when unlabelled or the sample is not scored.
    pub label: Option<String>,
    pub pred: Option<String>,
    pub p_correct: Option<f32>,
    pub verdict: Option<Verdict>,
    pub tags: Vec<String>,
    pub note: String,
    /// For a sample marked "label error": the class the model predicts instead of its label.
    pub suggested_label: Option<String>,
}

/// The annotated samples in id order, joined with their records (a sample that is annotated
/// but not in `records`, e.g. still being scored, keeps empty model fields).
pub fn export_rows(session: &Session, records: &RecordSet) -> Vec<ExportRow> {
    let by_id: BTreeMap<&str, &SampleRecord> = records
        .records
        .iter()
        .filter(|r| session.annotations.contains_key(&r.id))
        .map(|r| (r.id.as_str(), r))
        .collect();
    let class = |i: u16| {
        records
            .classes
            .get(i as usize)
            .cloned()
            .unwrap_or_else(|| i.to_string())
    };
    session
        .annotations
        .iter()
        .map(|(id, a)| {
            let record = by_id.get(id.as_str());
            ExportRow {
                id: id.clone(),
                label: record.and_then(|r| r.label).map(class),
                pred: record.map(|r| class(r.pred)),
                p_correct: record.map(|r| r.p_correct),
                verdict: a.verdict,
                tags: a.tags.clone(),
                note: a.note.clone(),
                suggested_label: record
                    .filter(|_| a.verdict == Some(Verdict::LabelError))
                    .filter(|r| r.label.is_some_and(|l| l != r.pred))
                    .map(|r| class(r.pred)),
            }
        })
        .collect()
}

/// Writes the annotated samples as CSV and JSON beside the session file (atomically).
/// CSV columns: id, label, pred, p_correct, verdict, tags (joined by `;`), note,
/// suggested_label (the prediction, for a sample marked "label error" whose label it is not).
pub fn export_annotations(
    session: &Session,
    records: &RecordSet,
    session_path: &Path,
) -> Result<ExportPaths, SessionError> {
    let paths = ExportPaths::beside(session_path);
    let rows = export_rows(session, records);

    let mut csv = String::from("id,label,pred,p_correct,verdict,tags,note,suggested_label\n");
    for row in &rows {
        let fields = [
            row.id.clone(),
            row.label.clone().unwrap_or_default(),
            row.pred.clone().unwrap_or_default(),
            row.p_correct.map(|p| p.to_string()).unwrap_or_default(),
            row.verdict.map(|v| v.key().to_string()).unwrap_or_default(),
            row.tags.join(";"),
            row.note.clone(),
            row.suggested_label.clone().unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        csv.push_str(&line.join(","));
        csv.push('\n');
    }
    write_atomically(&paths.csv, csv.as_bytes())?;

    let mut json = serde_json::to_string_pretty(&rows).expect("export rows always serialise");
    json.push('\n');
    write_atomically(&paths.json, json.as_bytes())?;
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reliability::records::Diagnostics;

    fn record(id: &str, label: Option<u16>, pred: u16, p: f32) -> SampleRecord {
        SampleRecord {
            id: id.into(),
            label,
            pred,
            probs: vec![0.5, 0.5],
            p_correct: p,
            diagnostics: Diagnostics::default(),
            meta: vec![],
            truncated: false,
        }
    }

    #[test]
    fn round_trip_and_atomic_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/s.json");
        assert!(Session::load(&path).unwrap().is_none());
        let mut s = Session {
            threshold: Some(0.42),
            filter: Filter::Class("n01440764".into()),
            sort: Sort {
                key: SortKey::KnnDistance,
                descending: true,
            },
            cursor: Some("a/b.jpg".into()),
            ..Session::default()
        };
        s.set_annotation(
            "a/b.jpg",
            Annotation {
                tags: vec!["blurry".into()],
                verdict: Some(Verdict::LabelError),
                note: "looks like a \"dog\"".into(),
            },
        );
        s.save(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"version\": 1"), "{text}");
        assert!(text.contains("\"label_error\""), "{text}");
        assert_eq!(Session::load(&path).unwrap(), Some(s));
        // No temporary file left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("s.json")]);
    }

    #[test]
    fn corrupt_and_future_files_are_refused() {
        let p = Path::new("sessions/x.json");
        for text in [
            "{",
            "[]",
            "{\"threshold\": 0.5}",
            "{\"version\": \"1\"}",
            "{\"version\": 0}",
        ] {
            let err = Session::parse(text, p).unwrap_err();
            assert!(matches!(err, SessionError::Corrupt { .. }), "{text}: {err}");
            assert!(err.to_string().contains("sessions/x.json"));
            assert!(err.to_string().contains("left untouched"));
        }
        let err = Session::parse("{\"version\": 1, \"annotations\": 3}", p).unwrap_err();
        assert!(matches!(err, SessionError::Corrupt { .. }));
        let err = Session::parse("{\"version\": 2, \"whatever\": []}", p).unwrap_err();
        assert!(matches!(
            err,
            SessionError::FutureVersion {
                found: 2,
                supported: 1,
                ..
            }
        ));
        assert!(err.to_string().contains("newer"));
    }

    #[test]
    fn minimal_file_gets_defaults_and_drops_empty_annotations() {
        let s = Session::parse(
            "{\"version\": 1, \"annotations\": {\"a\": {}, \"b\": {\"note\": \"x\"}}}",
            Path::new("s.json"),
        )
        .unwrap();
        assert_eq!(s.filter, Filter::All);
        assert_eq!(s.threshold, None);
        assert_eq!(s.annotations.len(), 1);
        assert_eq!(s.annotations["b"].note, "x");
    }

    #[test]
    fn tags_are_split_trimmed_and_deduplicated() {
        assert_eq!(parse_tags(" a, b ,,a, c d "), vec!["a", "b", "c d"]);
        assert!(parse_tags(" , ").is_empty());
    }

    #[test]
    fn verdict_cycles_through_all_and_back_to_none() {
        let mut v = None;
        let mut seen = vec![];
        for _ in 0..5 {
            v = Verdict::cycle(v);
            seen.push(v);
        }
        assert_eq!(
            seen,
            vec![
                Some(Verdict::ModelError),
                Some(Verdict::LabelError),
                Some(Verdict::Ambiguous),
                Some(Verdict::Fine),
                None
            ]
        );
    }

    #[test]
    fn export_writes_csv_and_json_beside_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let session_path = dir.path().join("run1.json");
        let records = RecordSet {
            classes: vec!["cat".into(), "dog".into()],
            class_names: vec!["Cat".into(), "Dog".into()],
            records: vec![
                record("cat/1.jpg", Some(0), 1, 0.25),
                record("dog/2.jpg", Some(1), 1, 0.75),
                record("x.jpg", None, 0, 0.5),
            ],
            ..RecordSet::default()
        };
        let mut s = Session::default();
        s.set_annotation(
            "cat/1.jpg",
            Annotation {
                tags: vec!["blurry".into(), "crop".into()],
                verdict: Some(Verdict::LabelError),
                note: "a, \"quoted\" note".into(),
            },
        );
        // Marked a label error, but the model agrees with the label: nothing to suggest.
        s.set_annotation(
            "dog/2.jpg",
            Annotation {
                verdict: Some(Verdict::LabelError),
                ..Annotation::default()
            },
        );
        s.set_annotation(
            "x.jpg",
            Annotation {
                note: "unlabelled".into(),
                ..Annotation::default()
            },
        );
        s.set_annotation(
            "gone.jpg",
            Annotation {
                verdict: Some(Verdict::Fine),
                ..Annotation::default()
            },
        );
        let paths = export_annotations(&s, &records, &session_path).unwrap();
        assert_eq!(paths.csv, dir.path().join("run1.annotations.csv"));
        assert_eq!(paths.json, dir.path().join("run1.annotations.json"));
        let csv = fs::read_to_string(&paths.csv).unwrap();
        assert_eq!(
            csv,
            "id,label,pred,p_correct,verdict,tags,note,suggested_label\n\
             cat/1.jpg,cat,dog,0.25,label_error,blurry;crop,\"a, \"\"quoted\"\" note\",dog\n\
             dog/2.jpg,dog,dog,0.75,label_error,,,\n\
             gone.jpg,,,,fine,,,\n\
             x.jpg,,cat,0.5,,,unlabelled,\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&paths.json).unwrap()).unwrap();
        assert_eq!(json.as_array().unwrap().len(), 4);
        assert_eq!(json[0]["tags"], serde_json::json!(["blurry", "crop"]));
        assert_eq!(json[0]["verdict"], "label_error");
        assert_eq!(json[0]["suggested_label"], "dog");
        assert_eq!(json[1]["suggested_label"], serde_json::Value::Null);
        assert_eq!(json[2]["label"], serde_json::Value::Null);
    }
}
