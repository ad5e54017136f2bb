//! `reason train`: cross-fitted head, meta-features, MetaNet, calibration → `reason_saved/`.

use std::path::PathBuf;

use super::progress::StageBars;
use super::ModelArgs;
use crate::data::dataset::Dataset;
use crate::data::labels::{self, LabelsSource};
use crate::model::backbone::weights;
use crate::model::head::HeadConfig;
use crate::reliability::artifacts::Artifacts;
use crate::reliability::label_issues::{self, LabelIssue};
use crate::reliability::metanet::MetaNetConfig;
use crate::reliability::records::SampleRecord;
use crate::reliability::scoring::record_header;
use crate::reliability::train::{train_with_oof, InferenceHead, MetaModelChoice, TrainOptions};

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Dataset root with train/ (default: Imagenette in the data folder).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Split to train on.
    #[arg(long, default_value = "train")]
    pub split: String,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output folder of the artifacts.
    #[arg(long, default_value = "reason_saved")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Cross-fitting folds.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Train on a seeded subset of this many images (default: the whole split).
    #[arg(long)]
    pub subset: Option<usize>,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Corrupted views of each training image (training-only corruption kinds, disjoint from
    /// `eval --corrupt`'s), so the meta-model has errors of many kinds to learn from.
    #[arg(long, default_value_t = 2)]
    pub views: usize,
    /// Leave this many classes (drawn with --seed) out of training, for `eval`'s new-class
    /// evaluation: their images are always wrong predictions.
    #[arg(long, default_value_t = 0)]
    pub holdout_classes: usize,
    /// Meta-model: `auto` fits every candidate and keeps the best on the select rows.
    #[arg(long, value_enum, default_value_t = MetaModelChoice::Auto)]
    pub meta_model: MetaModelChoice,
    /// Inference head: the average of the fold heads (default), or one head on every row.
    #[arg(long, value_enum, default_value_t = InferenceHead::Average)]
    pub inference_head: InferenceHead,
    /// Selective risk the certified threshold guarantees (on data like the calibration rows).
    #[arg(long, default_value_t = 0.005)]
    pub target_risk: f64,
    /// The guarantee holds with probability at least 1 − delta.
    #[arg(long, default_value_t = 0.05)]
    pub delta: f64,
    /// Labels from a CSV column instead of the class folders: CSV:COLUMN, rows matched by the
    /// `path` column relative to the data root (e.g. noisy_imagenette.csv:noisy_labels_5).
    #[arg(long, value_name = "CSV:COLUMN")]
    pub labels: Option<LabelsSource>,
    /// Epochs of the base head.
    #[arg(long, default_value_t = HeadConfig::default().epochs)]
    pub head_epochs: usize,
    /// Maximum epochs of the MetaNet (early stopping usually ends sooner).
    #[arg(long, default_value_t = MetaNetConfig::default().max_epochs)]
    pub metanet_epochs: usize,
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let root = match &args.data {
        Some(root) => root.clone(),
        None => super::setup::default_imagenette()?,
    };
    let mut dataset = Dataset::open_split(&root, &args.split)?;
    let labels_note = match &args.labels {
        Some(source) => {
            let r = labels::apply(&mut dataset, &root, &args.split, source)?;
            let note = format!(
                "Labels: column `{}` of {} ({} of {} images labelled otherwise than their class folder{}).",
                source.column,
                source.csv.display(),
                r.changed,
                dataset.samples.len(),
                match r.other_splits {
                    0 => String::new(),
                    n => format!("; {n} rows of other splits ignored"),
                }
            );
            eprintln!("{note}");
            Some(note)
        }
        None => None,
    };
    eprintln!(
        "{}: {} images, {} classes",
        root.join(&args.split).display(),
        dataset.samples.len(),
        dataset.classes.len()
    );
    let device = args.model.device()?;
    let kind = args.model.kind()?;
    let (backbone, resolved) = args.model.load_backbone(&device)?;
    let sha = weights::sha256_file(&resolved.path)?;
    let bars = StageBars::new();
    let opts = TrainOptions {
        backbone: &backbone,
        weights_source: match &resolved.origin {
            weights::WeightsOrigin::Hub(id) => format!("hub:{id}"),
            weights::WeightsOrigin::DataFolder => format!(
                "data:weights/{}",
                resolved
                    .path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ),
            weights::WeightsOrigin::File => resolved
                .path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
        },
        // The data folder's copy is the hub's file under the backbone's own name.
        hub_id: match &resolved.origin {
            weights::WeightsOrigin::Hub(id) => Some(id.clone()),
            weights::WeightsOrigin::DataFolder => Some(kind.default_hub_id()),
            weights::WeightsOrigin::File => None,
        },
        weights_sha256: sha,
        dataset: &dataset,
        split: args.split.clone(),
        subset: args.subset,
        folds: args.folds,
        seed: args.seed,
        batch_size: args.batch_size,
        head: HeadConfig {
            epochs: args.head_epochs,
            ..Default::default()
        },
        metanet: MetaNetConfig {
            max_epochs: args.metanet_epochs,
            ..Default::default()
        },
        views: args.views,
        holdout_classes: args.holdout_classes,
        meta_model: args.meta_model,
        inference_head: args.inference_head,
        target_risk: args.target_risk,
        delta: args.delta,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    let (mut artifacts, oof) =
        train_with_oof(&opts, &|stage, done, total| bars.update(stage, done, total))?;
    bars.finish();
    artifacts.manifest.protocol.notes.extend(labels_note);
    artifacts.save(&args.out)?;
    let issues = write_label_issues(&args.out, &args.split, &artifacts, oof)?;
    let m = &artifacts.manifest;
    println!("artifacts written to {}", args.out.display());
    println!(
        "label issues: {} of {} training images suspected (confident learning on out-of-fold \
         predictions); ranking in {}, records in {}",
        issues.iter().filter(|i| i.suspected).count(),
        issues.len(),
        args.out.join(label_issues::FILE_NAME).display(),
        args.out.join(label_issues::RECORDS_FILE_NAME).display()
    );
    println!(
        "rows: {} of {} ({}), {} folds, seed {}",
        m.protocol.rows_used,
        m.protocol.rows_in_split,
        if m.protocol.subset_seed.is_some() {
            "seeded subset"
        } else {
            "all"
        },
        m.protocol.folds,
        m.protocol.seed
    );
    for (k, v) in &m.metrics {
        println!("{k}: {v}");
    }
    println!("meta-model candidates on the select rows (AUROC all / clean / views):");
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    for r in &m.protocol.selection {
        println!(
            "  {:<20} {} / {} / {}  best epoch {}{}",
            r.model,
            opt(r.auroc_all),
            opt(r.auroc_clean),
            opt(r.auroc_views),
            r.best_epoch,
            if r.chosen { "  (kept)" } else { "" }
        );
    }
    println!(
        "operating threshold on P(correct): {:.4} (target risk {})",
        m.calibration.threshold, m.calibration.target_risk
    );
    for t in &m.timings {
        let note = if t.from_cache { "  (from cache)" } else { "" };
        println!(
            "time {:<12} {:8.1} s  {:8.1} images/s{note}",
            t.stage,
            t.seconds,
            t.images as f64 / t.seconds.max(1e-9)
        );
    }
    Ok(())
}

/// Writes the training images ranked by suspected label error (`label_issues.csv`, paths
/// relative to the data root like `--labels` takes them) and their out-of-fold records
/// (`train_records.json`, which `reason tui --split` opens) beside the artifacts.
fn write_label_issues(
    out: &std::path::Path,
    split: &str,
    artifacts: &Artifacts,
    oof: Vec<SampleRecord>,
) -> anyhow::Result<Vec<LabelIssue>> {
    let rows: Vec<(String, Vec<f32>, u16)> = oof
        .iter()
        .filter_map(|r| Some((format!("{split}/{}", r.id), r.probs.clone(), r.label?)))
        .collect();
    let classes = &artifacts.manifest.classes;
    let issues = label_issues::rank(&rows, classes.len());
    label_issues::write_csv(&out.join(label_issues::FILE_NAME), &issues, classes)?;
    let mut set = record_header(artifacts);
    // No certifiable threshold is +∞ ("reject everything"), which JSON cannot hold: the
    // largest float rejects the same samples and reads back.
    if !set.threshold.is_finite() {
        set.threshold = f32::MAX;
    }
    set.records = oof;
    label_issues::write_records(&out.join(label_issues::RECORDS_FILE_NAME), &set)?;
    Ok(issues)
}
