//! `reason` / `reason tui`: the dashboard over a dataset scored with the trained artifacts.
//!
//! The device, artifacts and weights are checked before the terminal is taken over, so a
//! missing GPU or a mismatch is a plain error message. Scoring runs on the worker thread the
//! dashboard starts (the one thread that uses the device and the models); a dataset scored
//! before opens at once from the records cache, a scored table (`report::records_cache`) like
//! the ones `--scores` opens. The title bar names the device and why it was chosen; a
//! CUDA failure while scoring is reported there and in the status line, with `--device cpu` as
//! the way out.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::Duration;

use anyhow::Context;
use candle_core::DeviceLocation;

use crate::reliability::{artifacts, embedded};

use crate::data::dataset::Dataset;
use crate::model::cache::CacheKey;
use crate::model::device::{DeviceChoice, DeviceRequest};
use crate::report::records_cache;
use crate::report::scores::{self, FileStamp, Identity, RunInfo, ScoreRow, ScoreTable, Shard};

use super::setup::{self, SetupArgs};
use crate::dashboard::inspect::InspectSource;
use crate::dashboard::{self, ImageProtocol, RecordSource, ScoringDevice, TuiConfig};
use crate::data::paths;
use crate::reliability::label_issues;
use crate::reliability::records::{split_truncated, RecordSet, ScoringEvent};
use crate::reliability::scoring::ScoringModels;

/// Folder that holds `<session>.json` files, relative to the working directory.
pub const SESSIONS_DIR: &str = "sessions";

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
            inspect: None,
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
    // The overlay runs on the CPU: one image at a time, where Lite0 is faster than on CUDA.
    let inspect = InspectSource {
        artifacts_dir: artifacts_dir.clone(),
        weights: Some(models.weights_path.clone()),
        device: candle_core::Device::Cpu,
        unavailable: None,
    };

    let root = dataset.root.clone();
    let identity = Identity {
        artifacts_sha256: scores::artifacts_sha256(&artifacts_dir)
            .with_context(|| format!("hashing {}", artifacts_dir.display()))?,
        weights_sha256: models.weights_sha256.clone(),
        backbone: models.kind.name().to_string(),
        layout: models.artifacts.manifest.layout.clone(),
    };
    // Everything the records depend on: an edited image, other artifacts or weights, or
    // another table version name another entry.
    let key = CacheKey::new("records")
        .part("format", scores::VERSION.to_string())
        .part("artifacts", &identity.artifacts_sha256)
        .part("weights", &identity.weights_sha256)
        .samples(&dataset.samples.iter().collect::<Vec<_>>());
    let skip_truncated = args.skip_truncated;
    let source = match records_cache::load(&key, &identity) {
        Some(table) => {
            // Nothing runs on the device: release it (a GPU context holds memory) and say so.
            drop(device);
            shown
                .reason
                .push_str("; unused: the scores came from the cache");
            table_source(table, skip_truncated)
        }
        None => {
            let label = shown.label.clone();
            let cached = Cached { key, identity };
            RecordSource::Compute(Box::new(move |tx: Sender<ScoringEvent>| {
                let scored = catch_unwind(AssertUnwindSafe(|| {
                    score_into(&tx, &device, &dataset, &models, &cached, skip_truncated)
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
    let mut config = args.config(&root, Some(shown))?;
    config.inspect = Some(inspect);
    dashboard::run(config, source)
}

/// A scored table's records, its skipped files listed as skips (and, with `skip_truncated`,
/// its truncated ones: the table holds every scored record, the choice is made on the way in).
fn table_source(table: ScoreTable, skip_truncated: bool) -> RecordSource {
    let mut skipped = table.run.skipped.clone();
    let mut records = table.into_record_set();
    if skip_truncated {
        skipped.extend(split_truncated(&mut records.records));
    }
    ready_or_replayed(records, skipped)
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
    let table = super::read_scores(&args.scores, crate::report::scores::Part::Records)?;
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
    let artifacts_sha256 = table.identity.artifacts_sha256.clone();
    let source = table_source(table, args.skip_truncated);
    let mut config = args.config(&root, Some(shown))?;
    config.inspect = Some(scores_inspect_source(&args, &artifacts_sha256));
    dashboard::run(config, source)
}

/// The models that explain a scored table: its own artifacts (`--artifacts`, else the default
/// ones when they are the ones that scored it), and the weights when they are on this machine
/// (never downloaded from here).
fn scores_inspect_source(args: &DashboardArgs, table_sha256: &str) -> InspectSource {
    let dir = embedded::resolve(args.artifacts.as_deref());
    let unavailable = match &dir {
        Err(e) => Some(format!("no artifacts to explain with: {e}")),
        Ok(dir) => match crate::report::scores::artifacts_sha256(dir) {
            Ok(sha) if sha == table_sha256 => None,
            Ok(_) => Some(format!(
                "the table was scored with other artifacts than {}: pass --artifacts DIR with                  the ones that scored it",
                dir.display()
            )),
            Err(e) => Some(format!("cannot read {}: {e}", dir.display())),
        },
    };
    let weights = match &args.weights {
        Some(w) => Some(PathBuf::from(w)).filter(|p| p.is_file()),
        None => dir
            .as_ref()
            .ok()
            .and_then(|d| artifacts::read_manifest(d).ok())
            .and_then(|m| crate::model::backbone::BackboneKind::from_name(&m.backbone.name).ok())
            .and_then(crate::model::backbone::weights::find_default)
            .map(|w| w.path),
    };
    InspectSource {
        artifacts_dir: dir.unwrap_or_default(),
        weights,
        device: candle_core::Device::Cpu,
        unavailable,
    }
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

/// Where the worker stores what it scored: the records cache entry and the identity it is
/// written with.
struct Cached {
    key: CacheKey,
    identity: Identity,
}

/// The worker: loads the backbone, scores every image and streams the records (without those
/// of truncated files, sent as skipped, when `skip_truncated`); the cache gets them all.
fn score_into(
    tx: &Sender<ScoringEvent>,
    device: &DeviceChoice,
    dataset: &Dataset,
    models: &ScoringModels,
    cached: &Cached,
    skip_truncated: bool,
) -> anyhow::Result<()> {
    let _ = tx.send(ScoringEvent::Progress {
        stage: format!("loading {} on {}", models.kind, device_label(device)),
        done: 0,
        total: 1,
    });
    // The files as they are scored (the key was made from them a moment ago).
    let stamps: HashMap<&str, (FileStamp, Option<&str>)> = dataset
        .samples
        .iter()
        .map(|s| {
            let label = s.label.map(|l| dataset.classes[l].as_str());
            (s.id.as_str(), (FileStamp::of(&s.path), label))
        })
        .collect();
    let backbone = models.load_backbone(&device.device)?;
    let scorer = models.scorer(&backbone);
    let scored = scorer.score(dataset, None, &|event| {
        for event in shown_events(event, skip_truncated) {
            let _ = tx.send(event);
        }
    })?;
    let rows = scored
        .records
        .into_iter()
        .zip(scored.extra)
        .map(|(record, extra)| {
            let (stamp, label) = stamps.get(record.id.as_str()).copied().unwrap_or_default();
            ScoreRow::new(record, extra, label, stamp)
        })
        .collect();
    let table = ScoreTable {
        identity: cached.identity.clone(),
        header: scored.header,
        run: RunInfo {
            condition: "clean".into(),
            seed: scorer.seed,
            // A folder (of an imagenette2 root, its val split: `Dataset::open` chose it).
            split: None,
            dataset_root: std::fs::canonicalize(&dataset.root)
                .unwrap_or_else(|_| dataset.root.clone())
                .display()
                .to_string(),
            shard: Shard::ALL,
            skipped: scored.skipped,
        },
        rows,
    };
    records_cache::store(&cached.key, &table)?;
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

    fn extra() -> crate::reliability::scoring::ExtraScores {
        crate::reliability::scoring::ExtraScores {
            metanet_logit: 0.0,
            baselines: [0.0; 13],
            imagenet_logits: None,
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
    fn a_table_lists_its_skipped_files_and_with_skip_truncated_its_truncated_ones() {
        let table = |skip_truncated| {
            let table = ScoreTable {
                identity: Identity {
                    artifacts_sha256: "a".into(),
                    weights_sha256: "w".into(),
                    backbone: "b".into(),
                    layout: Default::default(),
                },
                header: RecordSet::default(),
                run: RunInfo {
                    condition: "clean".into(),
                    seed: 0,
                    split: None,
                    dataset_root: "/photos".into(),
                    shard: Shard::ALL,
                    skipped: vec![("bad.jpg".into(), "not an image".into())],
                },
                rows: [record("a", true), record("b", false)]
                    .into_iter()
                    .map(|r| ScoreRow::new(r, extra(), None, FileStamp::default()))
                    .collect(),
            };
            let RecordSource::Compute(run) = table_source(table, skip_truncated) else {
                panic!("a table with skipped files opens as a replayed run");
            };
            let (tx, rx) = std::sync::mpsc::channel();
            run(tx);
            rx.iter()
                .map(|event| match event {
                    ScoringEvent::Skipped { id, reason } => format!("skipped {id}: {reason}"),
                    other => ids(&other),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            table(false),
            [
                "started 3",
                "records a,b",
                "skipped bad.jpg: not an image",
                "finished"
            ]
        );
        let truncated = table(true);
        assert_eq!(truncated.len(), 5, "{truncated:?}");
        assert_eq!(
            truncated[..3],
            ["started 3", "records b", "skipped bad.jpg: not an image"]
        );
        assert!(truncated[3].starts_with("skipped a: "), "{truncated:?}");
        assert!(truncated[3].contains("truncated"), "{truncated:?}");
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
