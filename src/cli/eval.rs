//! `reason eval`: the MetaNet against every baseline on the evaluation split (clean or
//! corrupted), with plots, per-sample JSON and a Parquet export.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::progress::StageBars;

use crate::reliability::artifacts::Artifacts;
use crate::reliability::embedded;
use crate::support::text::printable;

use crate::data::corrupt::CorruptionSpec;
use crate::data::dataset::Dataset;
use crate::reliability::features;
use crate::reliability::records::ScoringEvent;
use crate::reliability::scoring::{Scored, Scorer};
use crate::report::evaluate::{evaluate, score_columns, EvalReport, EvalRows};
use crate::report::export::{write_parquet, Column, ColumnValues};
use crate::report::plots;

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Dataset root (default: Imagenette in the data folder).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, default_value = "val")]
    pub split: String,
    /// Trained artifacts [default: ./reason_saved when it exists, else the built-in ones].
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// KIND:SEVERITY (gaussian_noise, blur, jpeg, contrast, pixelate; 1-5) or mixed.
    #[arg(long)]
    pub corrupt: Option<CorruptionSpec>,
    /// Independent seeded corruption draws of every image (kind, severity and noise): more rows
    /// and errors, bootstrapped by source image. Default: 3 with --corrupt, 1 clean.
    #[arg(long)]
    pub repeats: Option<usize>,
    /// Write the table and every per-sample score as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Folder for ROC, risk-coverage, reliability and histogram PNGs.
    #[arg(long, default_value = "eval_plots")]
    pub plots: PathBuf,
    /// Write the per-sample table as Parquet.
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Paired bootstrap resamples.
    #[arg(long, default_value_t = 2000)]
    pub bootstrap: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    #[arg(long)]
    pub weights: Option<String>,
    #[arg(long, default_value = "auto")]
    pub device: crate::model::device::DeviceRequest,
    /// Skip truncated files (a JPEG that ends before its end marker) like undecodable ones,
    /// instead of scoring the picture the decoder completed and counting it as truncated.
    #[arg(long)]
    pub skip_truncated: bool,
    /// Evaluate scored tables (`reason score --out`: a file or a glob of shard parts) instead
    /// of scoring; --artifacts must be the ones they were scored with (for the ablation and
    /// the certificate), and no backbone is loaded.
    #[arg(long, value_name = "FILE|GLOB", num_args = 1..)]
    pub scores: Vec<String>,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    if !args.scores.is_empty() {
        return run_on_scores(&args);
    }
    let artifacts_dir = embedded::resolve(args.artifacts.as_deref())?;
    let models = super::open_scoring_models(&artifacts_dir, args.weights.as_deref())?;
    let device = super::select_device(args.device)?;
    let backbone = models.load_backbone(&device.device)?;
    let artifacts = &models.artifacts;

    let root = match &args.data {
        Some(root) => root.clone(),
        None => super::setup::default_imagenette()?,
    };
    let dataset = Dataset::open_split(&root, &args.split)?;
    // Never evaluate on what was trained on.
    if artifacts.manifest.protocol.split == args.split {
        anyhow::bail!(
            "refusing to evaluate on split `{}`: the artifacts were trained on it",
            args.split
        );
    }
    let condition = args.corrupt.map_or("clean".to_string(), |c| c.to_string());
    eprintln!(
        "{}: {} images, condition {condition}",
        root.join(&args.split).display(),
        dataset.samples.len()
    );

    let draws = match (args.corrupt, args.repeats) {
        (None, _) => 1,
        (Some(_), r) => r.unwrap_or(3).max(1),
    };
    let bars = StageBars::new();
    let mut scored = Scored::default();
    let mut draw_of = Vec::new();
    for draw in 0..draws {
        // Draw d re-seeds the corruption (and MC dropout): draw 0 is what a single
        // `--corrupt` run with this --seed gives.
        let scorer = Scorer {
            batch_size: args.batch_size,
            seed: args.seed.wrapping_add(draw as u64),
            skip_truncated: args.skip_truncated,
            ..models.scorer(&backbone)
        };
        let stage = if draws > 1 {
            format!("scoring (draw {}/{draws})", draw + 1)
        } else {
            "scoring".to_string()
        };
        let part = scorer.score(&dataset, args.corrupt, &|event| match event {
            ScoringEvent::Progress { done, total, .. } => bars.update(&stage, done, total),
            ScoringEvent::Skipped { id, reason } if draw == 0 => {
                eprintln!("skipped {}: {}", printable(&id), printable(&reason))
            }
            _ => {}
        })?;
        draw_of.extend(std::iter::repeat_n(draw as u32, part.records.len()));
        if draw == 0 {
            scored.header = part.header;
            scored.skipped = part.skipped;
        }
        scored.records.extend(part.records);
        scored.extra.extend(part.extra);
    }
    bars.finish();
    let novel_classes = &artifacts.manifest.protocol.holdout_classes;
    let class_of: std::collections::HashMap<&str, Option<usize>> = dataset
        .samples
        .iter()
        .map(|s| (s.id.as_str(), s.label))
        .collect();
    let novel: Vec<bool> = scored
        .records
        .iter()
        .map(|r| {
            class_of
                .get(r.id.as_str())
                .copied()
                .flatten()
                .is_some_and(|c| novel_classes.contains(&dataset.classes[c]))
        })
        .collect();
    let rows = EvalRows {
        scored: &scored,
        draw: draw_of,
        novel,
    };
    let title = format!(
        "{} {}, {condition}",
        root.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        args.split
    );
    report_and_write(&args, &rows, artifacts, &args.split, &condition, &title)
}

/// `eval --scores`: the same report on the rows of scored tables.
fn run_on_scores(args: &EvalArgs) -> anyhow::Result<()> {
    use crate::report::scores::artifacts_sha256;
    let table = super::read_scores(&args.scores, crate::report::scores::Part::Whole)?;
    let dir = embedded::resolve(args.artifacts.as_deref())?;
    let artifacts = Artifacts::load(&dir).with_context(|| format!("loading {}", dir.display()))?;
    let sha = artifacts_sha256(&dir).with_context(|| format!("hashing {}", dir.display()))?;
    if sha != table.identity.artifacts_sha256 {
        anyhow::bail!(
            "the scores were made with other artifacts (sha256 {}) than {} (sha256 {}): pass \
             --artifacts with the folder they were scored with",
            &table.identity.artifacts_sha256[..12.min(table.identity.artifacts_sha256.len())],
            dir.display(),
            &sha[..12]
        );
    }
    let split = table.run.split.clone().unwrap_or_else(|| "folder".into());
    if artifacts.manifest.protocol.split == split {
        anyhow::bail!("refusing to evaluate on split `{split}`: the artifacts were trained on it");
    }
    let holdout = &artifacts.manifest.protocol.holdout_classes;
    let novel = table
        .rows
        .iter()
        .map(|r| r.other_label.as_ref().is_some_and(|l| holdout.contains(l)))
        .collect();
    let title = format!(
        "{} {split}, {}",
        Path::new(&table.run.dataset_root)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        table.run.condition
    );
    let condition = table.run.condition.clone();
    let scored = Scored {
        extra: table.rows.iter().map(|r| r.extra()).collect(),
        skipped: table.run.skipped.clone(),
        records: table.rows.into_iter().map(|r| r.record).collect(),
        header: table.header,
    };
    let rows = EvalRows {
        draw: vec![0; scored.records.len()],
        scored: &scored,
        novel,
    };
    report_and_write(args, &rows, &artifacts, &split, &condition, &title)
}

/// The report on `rows`, printed, then the plots, JSON and Parquet the arguments ask for.
fn report_and_write(
    args: &EvalArgs,
    rows: &EvalRows,
    artifacts: &Artifacts,
    split: &str,
    condition: &str,
    title: &str,
) -> anyhow::Result<()> {
    let scored = rows.scored;
    let report = evaluate(rows, artifacts, split, condition, args.bootstrap, args.seed)?;
    print_report(&report, artifacts);
    let outcomes = rows.outcomes();
    let known: Vec<usize> = (0..outcomes.len())
        .filter(|&i| outcomes[i].is_some())
        .collect();
    let columns = score_columns(scored, &known);
    let correct: Vec<bool> = known.iter().map(|&i| outcomes[i] == Some(true)).collect();
    if !correct.is_empty() {
        let plot_scores: Vec<(&str, &[f32])> = columns
            .iter()
            .map(|(n, v, _)| (n.as_str(), v.as_slice()))
            .collect();
        let probability = columns[0].2.as_deref().unwrap_or_default();
        let written = plots::write_all(&args.plots, title, &plot_scores, &correct, probability)?;
        println!(
            "plots: {}",
            written
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(path) = &args.json {
        let json = serde_json::json!({ "report": report, "samples": per_sample_json(rows) });
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("per-sample JSON: {}", path.display());
    }
    if let Some(path) = &args.export {
        write_parquet(path, &per_sample_columns(rows))?;
        println!("per-sample Parquet: {}", path.display());
    }
    Ok(())
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

fn print_report(r: &EvalReport, a: &Artifacts) {
    let p = &a.manifest.protocol;
    println!(
        "split {} ({}), {} rows with a known outcome from {} images ({} draw{}), {} skipped, {} truncated scored; base head accuracy {} ({} errors). Artifacts: {} images of `{}` ({}), {} view(s) each, seed {}.",
        r.split,
        r.condition,
        r.labelled,
        r.source_images,
        r.draws,
        if r.draws == 1 { "" } else { "s" },
        r.skipped,
        r.truncated,
        opt(r.accuracy.map(|a| a * 100.0), 2) + " %",
        r.errors,
        p.rows_used,
        p.split,
        if p.subset_seed.is_some() { "seeded subset" } else { "all images" },
        p.views,
        p.seed
    );
    if r.truncated > 0 {
        println!(
            "truncated files: {} images were scored from a picture the decoder completed (their rows are in every metric; --skip-truncated leaves them out)",
            r.truncated
        );
    }
    if !r.novel_classes.is_empty() {
        println!(
            "new-class shift: classes {} were held out of training; their {} rows count as wrong predictions",
            r.novel_classes.join(", "),
            r.novel_rows
        );
    }
    let chance = r
        .rows
        .first()
        .map(|m| (m.metrics.aupr_success_chance, m.metrics.aupr_error_chance));
    if let Some((s, e)) = chance {
        println!(
            "chance levels: AUROC 0.5, AUPR-success {} (= accuracy), AUPR-error {} (= error rate); a constant score has AURC = error rate",
            opt(s, 4),
            opt(e, 4)
        );
    }
    let resampled = match r
        .rows
        .iter()
        .find_map(|x| x.vs_msp.as_ref())
        .and_then(|b| b.groups)
    {
        Some(g) => format!("{g} source images (all draws of an image together)"),
        None => "rows".to_string(),
    };
    println!(
        "ranking, with paired bootstrap 95 % intervals ({} resamples of {resampled}); AURC in ‰, lower is better:",
        r.bootstrap_resamples
    );
    println!(
        "{:<18} {:>7} {:>26} {:>26} {:>8} {:>24} {:>24}",
        "score",
        "AUROC",
        "ΔAUROC vs MSP",
        "ΔAUROC vs TS-MSP",
        "AURC‰",
        "ΔAURC‰ vs MSP",
        "ΔAURC‰ vs TS-MSP"
    );
    let diff = |d: Option<&crate::metrics::PairedDifference>, scale: f64, digits: usize| match d {
        Some(d) => format!(
            "{} [{}, {}]",
            opt(d.estimate.map(|v| v * scale), digits),
            opt(d.interval.map(|i| i.0 * scale), digits),
            opt(d.interval.map(|i| i.1 * scale), digits)
        ),
        None => "(reference)".into(),
    };
    for row in &r.rows {
        let m = &row.metrics;
        println!(
            "{:<18} {:>7} {:>26} {:>26} {:>8} {:>24} {:>24}",
            row.score,
            opt(m.auroc, 4),
            diff(row.vs_msp.as_ref().map(|b| &b.auroc), 1.0, 4),
            diff(row.vs_ts_msp.as_ref().map(|b| &b.auroc), 1.0, 4),
            opt(m.aurc.map(|v| v * 1e3), 3),
            diff(row.vs_msp.as_ref().map(|b| &b.aurc), 1e3, 3),
            diff(row.vs_ts_msp.as_ref().map(|b| &b.aurc), 1e3, 3),
        );
    }
    println!("other metrics (risk at coverage and E-AURC in ‰; E-AURC against the exact oracle AURC of the same rows):");
    println!(
        "{:<18} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}",
        "score",
        "AUPR-S",
        "AUPR-E",
        "FPR@95",
        "E-AURC‰",
        "AUGRC‰",
        "risk@80",
        "risk@90",
        "risk@95",
        "ECE",
        "Brier"
    );
    let per_mille = |v: Option<f64>| opt(v.map(|v| v * 1e3), 3);
    for row in &r.rows {
        let m = &row.metrics;
        println!(
            "{:<18} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}",
            row.score,
            opt(m.aupr_success, 4),
            opt(m.aupr_error, 4),
            opt(m.fpr_at_95tpr, 4),
            per_mille(m.eaurc),
            per_mille(m.augrc),
            per_mille(m.risk_at_80),
            per_mille(m.risk_at_90),
            per_mille(m.risk_at_95),
            opt(m.ece, 4),
            opt(m.brier, 4),
        );
    }
    println!("images unseen vs seen in the backbone's ImageNet pretraining:");
    for g in &r.pretraining {
        println!(
            "  {:<22} rows {:>6}  errors {:>5}  accuracy {}  AUROC {}",
            g.group,
            g.rows,
            g.errors,
            opt(g.accuracy, 4),
            g.auroc
                .iter()
                .map(|(n, v)| format!("{n} {}", opt(*v, 4)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!(
        "ablation (meta-model retrained without one family; a report, not a selection; reference AUROC {}):",
        opt(r.ablation_reference_auroc, 4)
    );
    for a in &r.ablation {
        println!(
            "  without {:<11} AUROC {}  Δ {}",
            a.without_family,
            opt(a.auroc, 4),
            opt(a.delta_auroc, 4)
        );
    }
    let t = &r.at_threshold;
    println!(
        "operating threshold {:.4}: coverage {}, trusted accuracy {}, accepted-wrong {}, rejected-right {}",
        r.threshold,
        opt(t.coverage, 4),
        opt(t.trusted_accuracy, 4),
        t.accepted_wrong,
        t.rejected_right
    );
    let c = &r.certificate;
    println!("certified operating point: {}", c.statement);
    println!(
        "  on these rows: {} accepted, {} errors, selective risk {} against the certified {}: {}",
        c.accepted,
        c.errors,
        opt(c.observed_risk, 4),
        c.target_risk,
        if c.held {
            "the bound held"
        } else {
            "the bound did NOT hold (these rows are not like the calibration rows, or the 1 − δ chance ran out)"
        }
    );
    println!("per-class selective risk at the threshold:");
    for c in &r.per_class {
        println!(
            "  {:<18} n {:>4}  errors {:>3}  coverage {:.3}  risk {}",
            c.name,
            c.samples,
            c.errors,
            c.coverage,
            opt(c.selective_risk, 4)
        );
    }
}

fn per_sample_json(rows: &EvalRows) -> Vec<serde_json::Value> {
    let s = rows.scored;
    let outcomes = rows.outcomes();
    s.records
        .iter()
        .zip(&s.extra)
        .enumerate()
        .map(|(i, (r, e))| {
            let mut scores = serde_json::Map::new();
            scores.insert("metanet_p_correct".into(), serde_json::json!(r.p_correct));
            scores.insert("metanet_logit".into(), serde_json::json!(e.metanet_logit));
            for (name, v) in features::BASELINES.iter().zip(e.baselines) {
                scores.insert(name.to_string(), serde_json::json!(v));
            }
            serde_json::json!({
                "path": r.id,
                "source": r.id,
                "draw": rows.draw[i],
                "novel_class": rows.novel[i],
                "label": r.label.map(|l| &s.header.classes[l as usize]),
                "pred": s.header.classes[r.pred as usize],
                "correct": outcomes[i],
                "truncated": r.truncated,
                "scores": scores,
            })
        })
        .collect()
}

fn per_sample_columns(rows: &EvalRows) -> Vec<Column> {
    let s = rows.scored;
    let classes = &s.header.classes;
    let mut cols = vec![
        Column::new(
            "path",
            ColumnValues::Str(s.records.iter().map(|r| r.id.clone()).collect()),
        ),
        Column::new(
            "source",
            ColumnValues::Str(s.records.iter().map(|r| r.id.clone()).collect()),
        ),
        Column::new(
            "draw",
            ColumnValues::I64(rows.draw.iter().map(|&d| d as i64).collect()),
        ),
        Column::new("novel_class", ColumnValues::Bool(rows.novel.clone())),
        Column::new(
            "label",
            ColumnValues::OptStr(
                s.records
                    .iter()
                    .map(|r| r.label.map(|l| classes[l as usize].clone()))
                    .collect(),
            ),
        ),
        Column::new(
            "pred",
            ColumnValues::Str(
                s.records
                    .iter()
                    .map(|r| classes[r.pred as usize].clone())
                    .collect(),
            ),
        ),
        Column::new("correct", ColumnValues::OptBool(rows.outcomes())),
        Column::new(
            "truncated",
            ColumnValues::Bool(s.records.iter().map(|r| r.truncated).collect()),
        ),
        Column::new(
            "metanet_p_correct",
            ColumnValues::F32(s.records.iter().map(|r| r.p_correct).collect()),
        ),
        Column::new(
            "metanet_logit",
            ColumnValues::F32(s.extra.iter().map(|e| e.metanet_logit).collect()),
        ),
    ];
    for (b, name) in features::BASELINES.iter().enumerate() {
        cols.push(Column::new(
            *name,
            ColumnValues::F32(s.extra.iter().map(|e| e.baselines[b]).collect()),
        ));
    }
    cols
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::corrupt::CorruptionKind;
    use crate::reliability::records::{RecordSet, SampleRecord};
    use crate::reliability::scoring::ExtraScores;
    use clap::Parser;

    /// `reason eval ARGS` as the command line parses it.
    fn eval_args(args: &[&str]) -> Result<EvalArgs, clap::Error> {
        let cli = super::super::Cli::try_parse_from(["reason", "eval"].iter().chain(args))?;
        match cli.command {
            Some(super::super::Command::Eval(args)) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn corrupt_is_parsed_from_the_command_line() {
        assert_eq!(eval_args(&[]).unwrap().corrupt, None);
        assert_eq!(
            eval_args(&["--corrupt", "gaussian_noise:3"])
                .unwrap()
                .corrupt,
            Some(CorruptionSpec::Single(CorruptionKind::GaussianNoise, 3))
        );
        assert_eq!(
            eval_args(&["--corrupt", "mixed", "--repeats", "2"])
                .map(|a| (a.corrupt, a.repeats))
                .unwrap(),
            (Some(CorruptionSpec::Mixed), Some(2))
        );
        for (bad, says) in [
            ("fog:3", "fog"),
            ("blur:6", "6"),
            ("blur", "severity"),
            ("blur:x", "x"),
        ] {
            let err = eval_args(&["--corrupt", bad]).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn per_row_outputs_say_which_images_were_truncated() {
        let record = |id: &str, truncated| SampleRecord {
            id: id.into(),
            label: Some(0),
            pred: 0,
            probs: vec![1.0],
            p_correct: 0.9,
            diagnostics: Default::default(),
            meta: Vec::new(),
            truncated,
        };
        let extra = ExtraScores {
            metanet_logit: 1.0,
            baselines: [0.0; 13],
            imagenet_logits: None,
        };
        let scored = Scored {
            header: RecordSet {
                classes: vec!["n0".into()],
                class_names: vec!["zero".into()],
                ..Default::default()
            },
            records: vec![record("a.jpg", false), record("b.jpg", true)],
            extra: vec![extra.clone(), extra],
            skipped: Vec::new(),
        };
        let rows = EvalRows {
            scored: &scored,
            draw: vec![0, 0],
            novel: vec![false, false],
        };
        let json = per_sample_json(&rows);
        assert_eq!(json[0]["truncated"], false);
        assert_eq!(json[1]["truncated"], true);
        let columns = per_sample_columns(&rows);
        let column = columns.iter().find(|c| c.name == "truncated").unwrap();
        assert!(matches!(&column.values, ColumnValues::Bool(v) if v == &[false, true]));
    }
}
