//! `reason` / `reason tui`: the dashboard over a dataset scored with the trained artifacts.
//!
//! The device, artifacts and weights are checked before the terminal is taken over, so a
//! missing GPU or a mismatch is a plain error message. Scoring runs on the worker thread the
//! dashboard starts (the one thread that uses the device and the models); a dataset scored
//! before opens at once from the cache. The title bar names the device and why it was chosen; a
//! CUDA failure while scoring is reported there and in the status line, with `--device cpu` as
//! the way out.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::Duration;

use anyhow::Context;
use candle_core::DeviceLocation;

use crate::reliability::{artifacts, embedded};

use crate::data::dataset::Dataset;
use crate::model::cache::{self, CacheKey};
use crate::model::device::{DeviceChoice, DeviceRequest};

use super::setup::{self, SetupArgs};
use crate::dashboard::{self, ImageProtocol, RecordSource, ScoringDevice, TuiConfig};
use crate::data::paths;
use crate::reliability::label_issues;
use crate::reliability::records::{split_truncated, RecordSet, ScoringEvent};
use crate::reliability::scoring::ScoringModels;

/// Folder that holds `<session>.json` files, relative to the working directory.
pub const SESSIONS_DIR: &str = "sessions";

/// Part of the records cache key: a new value leaves older cached record sets unread.
/// 2: records say whether their file was truncated.
const RECORDS_FORMAT: &str = "2";

#[derive(Debug, Clone, clap::Args)]
pub struct DashboardArgs {
    /// Imagenette copy to inspect (its val split) [default: the Imagenette in the data folder].
    #[arg(long, value_name = "DIR", conflicts_with = "folder")]
    pub data: Option<PathBuf>,
    /// Split of the --data root to open instead of `val`. The split the artifacts were trained
    /// on opens the out-of-fold records `reason train` wrote beside them (train_records.json),
    /// with its label-issue ranking: never the artifacts' in-sample predictions.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["folder", "scores"])]
    pub split: Option<String>,
    /// Any local folder of images instead: class sub-folders give labels, loose images are
    /// unlabelled.
    #[arg(long, value_name = "DIR")]
    pub folder: Option<PathBuf>,
    /// Trained artifacts (head, MetaNet, PCA, k-NN bank, calibration) [default: ./reason_saved
    /// when it exists, else the ones built into REASON].
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// Session name: threshold, filters, cursor and annotations live in sessions/NAME.json.
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub session: String,
    /// Colour theme: dark, light, high-contrast, or NAME.toml in ./themes (or $REASON_THEMES).
    #[arg(long, value_name = "NAME", default_value = "dark")]
    pub theme: String,
    /// How previews are drawn: auto asks the terminal (works over SSH).
    #[arg(long, value_enum, value_name = "PROTOCOL", default_value_t = ImageProtocol::Auto)]
    pub image_protocol: ImageProtocol,
    /// Milliseconds `--image-protocol auto` waits for the terminal's answer before using
    /// half-blocks (raise it on a slow SSH link).
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub image_query_timeout: u64,
    /// Backbone weights: a .safetensors path or a Hugging Face hub id; they must be the ones the
    /// artifacts were trained with [default: <data>/weights/<backbone>.safetensors, else the
    /// backbone's timm hub repository].
    #[arg(long, value_name = "PATH|HUB_ID")]
    pub weights: Option<String>,
    /// Where images are scored: auto, cpu, cuda or cuda:N (auto: CUDA when built in and present).
    #[arg(long, value_name = "DEVICE", default_value = "auto")]
    pub device: DeviceRequest,
    /// Leave truncated files (a JPEG that ends before its end marker) out of the list, as
    /// skipped with the reason, instead of showing them marked ⚠.
    #[arg(long)]
    pub skip_truncated: bool,
    #[command(flatten)]
    pub setup: SetupArgs,
    /// Open scored tables (`reason score --out`) instead of scoring: a file or a glob of
    /// shard parts (`'parts/*.parquet'`), read as one table. No model is loaded; previews
    /// come from --data/--folder, else from the folder the table was scored in.
    #[arg(long, value_name = "FILE|GLOB", num_args = 1..)]
    pub scores: Vec<String>,
}

impl DashboardArgs {
    /// The folder to score, as `Dataset::open` takes it.
    pub fn dataset_path(&self) -> PathBuf {
        self.folder
            .clone()
            .or_else(|| self.data.clone())
            .unwrap_or_else(paths::default_imagenette)
    }

    /// `sessions/<name>.json`, once the name is known to be a plain file name.
    pub fn session_path(&self) -> anyhow::Result<PathBuf> {
        let name = &self.session;
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !plain {
            anyhow::bail!(
                "invalid session name `{name}`: use letters, digits, `-`, `_` and `.` \
                 (it names {SESSIONS_DIR}/NAME.json)"
            );
        }
        Ok(Path::new(SESSIONS_DIR).join(format!("{name}.json")))
    }

    /// The dashboard's configuration for a dataset opened from [`Self::dataset_path`] (record ids
    /// are relative to its `root`), scored on `device` (none: from the cache).
    pub fn config(
        &self,
        dataset_root: &Path,
        device: Option<ScoringDevice>,
    ) -> anyhow::Result<TuiConfig> {
        Ok(TuiConfig {
            title: dataset_root.display().to_string(),
            dataset_root: dataset_root.to_path_buf(),
            session_path: self.session_path()?,
            theme: self.theme.clone(),
            image_protocol: self.image_protocol,
            image_query_timeout: Duration::from_millis(self.image_query_timeout),
            device,
        })
    }
}

pub fn run(args: DashboardArgs) -> anyhow::Result<()> {
    if !args.scores.is_empty() {
        return run_on_scores(args);
    }
    let artifacts_dir = embedded::resolve(args.artifacts.as_deref())?;
    // The training split's out-of-fold records need no model: no weights to look for.
    if let Some(split) = &args.split {
        if let Some(records) = training_split_records(&artifacts_dir, split)? {
            let root = args.dataset_path().join(split);
            let shown = ScoringDevice {
                label: "out-of-fold".into(),
                reason: format!(
                    "the records `reason train` wrote for split `{split}` ({})",
                    artifacts_dir.display()
                ),
            };
            let config = args.config(&root, Some(shown))?;
            return dashboard::run(config, RecordSource::Ready(records));
        }
    }
    setup::ensure_dashboard_defaults(
        &args.setup,
        args.data.is_some() || args.folder.is_some(),
        args.weights.is_some(),
        &artifacts_dir,
    )?;
    let device = super::select_device(args.device)?;
    let mut shown = ScoringDevice {
        label: device_label(&device),
        reason: super::first_line(&device.reason),
    };
    let path = args.dataset_path();
    let dataset = match &args.split {
        Some(split) => Dataset::open_split(&path, split),
        None => Dataset::open(&path),
    }
    .with_context(|| {
        format!(
            "no images at {} (--data takes an Imagenette copy, --folder any folder of images)",
            path.display()
        )
    })?;
    let models = super::open_scoring_models(&artifacts_dir, args.weights.as_deref())?;

    let root = dataset.root.clone();
    let key = CacheKey::new("records")
        .part("format", RECORDS_FORMAT)
        .part(
            "manifest",
            std::fs::read(artifacts::manifest_path(&artifacts_dir)).unwrap_or_default(),
        )
        .part("weights", &models.weights_sha256)
        .samples(&dataset.samples.iter().collect::<Vec<_>>());
    let skip_truncated = args.skip_truncated;
    let source = match cache::load_json::<RecordSet>(&key) {
        Some(mut records) => {
            // Nothing runs on the device: release it (a GPU context holds memory) and say so.
            drop(device);
            shown
                .reason
                .push_str("; unused: the scores came from the cache");
            // The cache holds every scored record; --skip-truncated is applied on the way in.
            let skipped = if skip_truncated {
                split_truncated(&mut records.records)
            } else {
                Vec::new()
            };
            ready_or_replayed(records, skipped)
        }
        None => {
            let label = shown.label.clone();
            RecordSource::Compute(Box::new(move |tx: Sender<ScoringEvent>| {
                let scored = catch_unwind(AssertUnwindSafe(|| {
                    score_into(&tx, &device, &dataset, &models, &key, skip_truncated)
                }));
                let failure = match scored {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => super::first_line(&super::errors::message(&e)),
                    Err(panic) => format!("the worker crashed: {}", panic_text(&*panic)),
                };
                let _ = tx.send(ScoringEvent::Failed(failure_message(
                    &device, &label, failure,
                )));
            }))
        }
    };
    let config = args.config(&root, Some(shown))?;
    dashboard::run(config, source)
}

/// The out-of-fold records of the split the artifacts were trained on (`None` for another
/// split). Scoring that split with the artifacts would show the head agreeing with the labels it
/// was fitted to, so artifacts without the records are refused.
fn training_split_records(artifacts_dir: &Path, split: &str) -> anyhow::Result<Option<RecordSet>> {
    let manifest_path = artifacts::manifest_path(artifacts_dir);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&manifest_path)
            .with_context(|| format!("cannot read {}", manifest_path.display()))?,
    )
    .with_context(|| format!("{} is not a manifest", manifest_path.display()))?;
    if manifest["protocol"]["split"].as_str() != Some(split) {
        return Ok(None);
    }
    let path = artifacts_dir.join(label_issues::RECORDS_FILE_NAME);
    if !path.is_file() {
        anyhow::bail!(
            "the artifacts in {} were trained on split `{split}`, and they hold no out-of-fold \
             records of it ({} is missing; scoring the split with them would show in-sample \
             predictions): retrain them with `reason train --out {}` or open another split",
            artifacts_dir.display(),
            path.display(),
            artifacts_dir.display()
        );
    }
    Ok(Some(label_issues::read_records(&path)?))
}

/// Records that are all here: given as they are, or, when files were skipped, replayed as a
/// finished scoring run so the skips are listed like any other.
fn ready_or_replayed(records: RecordSet, skipped: Vec<(String, String)>) -> RecordSource {
    if skipped.is_empty() {
        return RecordSource::Ready(records);
    }
    RecordSource::Compute(Box::new(move |tx: Sender<ScoringEvent>| {
        for event in replay(records, skipped) {
            if tx.send(event).is_err() {
                return;
            }
        }
    }))
}

/// The dashboard over scored tables: read (and checked to belong together) before the terminal
/// is taken over, then shown like a cache hit.
fn run_on_scores(args: DashboardArgs) -> anyhow::Result<()> {
    let table = super::read_scores(&args.scores)?;
    let root = args
        .folder
        .clone()
        .or_else(|| args.data.as_ref().map(|_| args.dataset_path()))
        .unwrap_or_else(|| PathBuf::from(&table.run.dataset_root));
    let shown = ScoringDevice {
        label: "scores".into(),
        reason: format!(
            "{} rows read from {}",
            table.rows.len(),
            args.scores.join(" ")
        ),
    };
    let mut skipped = table.run.skipped.clone();
    let mut records = table.into_record_set();
    if args.skip_truncated {
        skipped.extend(split_truncated(&mut records.records));
    }
    let source = ready_or_replayed(records, skipped);
    let config = args.config(&root, Some(shown))?;
    dashboard::run(config, source)
}

/// `cpu` or `cuda:N`.
fn device_label(choice: &DeviceChoice) -> String {
    match choice.device.location() {
        DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        _ => choice.label(),
    }
}

/// A scoring failure as shown in the dashboard; on a GPU it begins with the way out (the title
/// bar cuts long messages at the end).
fn failure_message(device: &DeviceChoice, label: &str, failure: String) -> String {
    if device.device.is_cpu() {
        failure
    } else {
        format!("on {label} (try --device cpu): {failure}")
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// The worker: loads the backbone, scores every image and streams the records (without those
/// of truncated files, sent as skipped, when `skip_truncated`); the cache gets them all.
fn score_into(
    tx: &Sender<ScoringEvent>,
    device: &DeviceChoice,
    dataset: &Dataset,
    models: &ScoringModels,
    key: &CacheKey,
    skip_truncated: bool,
) -> anyhow::Result<()> {
    let _ = tx.send(ScoringEvent::Progress {
        stage: format!("loading {} on {}", models.kind, device_label(device)),
        done: 0,
        total: 1,
    });
    let backbone = models.load_backbone(&device.device)?;
    let scorer = models.scorer(&backbone);
    let scored = scorer.score(dataset, None, &|event| {
        for event in shown_events(event, skip_truncated) {
            let _ = tx.send(event);
        }
    })?;
    let mut records = scored.header;
    records.records = scored.records;
    cache::store_json(key, &records)?;
    Ok(())
}

/// A scoring event as the dashboard gets it: with `skip_truncated`, the records of truncated
/// files become skips.
fn shown_events(event: ScoringEvent, skip_truncated: bool) -> Vec<ScoringEvent> {
    match event {
        ScoringEvent::Records(mut records) if skip_truncated => {
            let skipped = split_truncated(&mut records);
            std::iter::once(ScoringEvent::Records(records))
                .chain(
                    skipped
                        .into_iter()
                        .map(|(id, reason)| ScoringEvent::Skipped { id, reason }),
                )
                .collect()
        }
        event => vec![event],
    }
}

/// A cached record set, less the `skipped` ones, as the events of a finished scoring run.
fn replay(mut set: RecordSet, skipped: Vec<(String, String)>) -> Vec<ScoringEvent> {
    let records = std::mem::take(&mut set.records);
    let mut events = vec![
        ScoringEvent::Started {
            total: records.len() + skipped.len(),
            header: set,
        },
        ScoringEvent::Records(records),
    ];
    events.extend(
        skipped
            .into_iter()
            .map(|(id, reason)| ScoringEvent::Skipped { id, reason }),
    );
    events.push(ScoringEvent::Finished);
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reliability::records::SampleRecord;

    fn record(id: &str, truncated: bool) -> SampleRecord {
        SampleRecord {
            id: id.into(),
            label: None,
            pred: 0,
            probs: vec![1.0],
            p_correct: 0.5,
            diagnostics: Default::default(),
            meta: Vec::new(),
            truncated,
        }
    }

    fn ids(event: &ScoringEvent) -> String {
        match event {
            ScoringEvent::Started { total, .. } => format!("started {total}"),
            ScoringEvent::Records(r) => {
                let ids: Vec<&str> = r.iter().map(|r| r.id.as_str()).collect();
                format!("records {}", ids.join(","))
            }
            ScoringEvent::Skipped { id, reason } => {
                assert!(reason.contains("truncated"), "{reason}");
                format!("skipped {id}")
            }
            ScoringEvent::Finished => "finished".into(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn skip_truncated_turns_truncated_records_into_skips() {
        let batch = || ScoringEvent::Records(vec![record("a", false), record("b", true)]);
        let kept: Vec<String> = shown_events(batch(), false).iter().map(ids).collect();
        assert_eq!(kept, ["records a,b"]);
        let skipped: Vec<String> = shown_events(batch(), true).iter().map(ids).collect();
        assert_eq!(skipped, ["records a", "skipped b"]);
    }

    #[test]
    fn a_cached_set_replays_with_its_skips() {
        let mut set = RecordSet {
            records: vec![record("a", true), record("b", false)],
            ..Default::default()
        };
        let skipped = split_truncated(&mut set.records);
        let events: Vec<String> = replay(set, skipped).iter().map(ids).collect();
        assert_eq!(events, ["started 2", "records b", "skipped a", "finished"]);
    }
}
