//! `reason predict`: top-5 ImageNet classes per image, and accuracy with `--summary`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use super::ModelArgs;
use crate::data::dataset::Dataset;
use crate::model::backbone::{Backbone, BackboneKind};
use crate::model::classify::{classify_dataset, predict_one, ClassifySummary, Prediction};
use crate::reliability::artifacts::{self, Artifacts};
use crate::reliability::embedded;
use crate::support::text::{printable, printable_path};

use crate::data::imageio::decode_rgb;
use crate::reliability::prediction::{verdict, ReliablePrediction};
use crate::reliability::records::{SampleRecord, ScoringEvent};
use crate::reliability::scoring::{Scorer, ScoringModels};

#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// Images or dataset folders (default: the Imagenette val split in the data folder).
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print JSON Lines, one object per image.
    #[arg(long)]
    pub json: bool,
    /// Preview each image in the terminal.
    #[arg(long)]
    pub show: bool,
    /// Print counts, skipped files, accuracy and throughput (per-image lines only with --json).
    #[arg(long)]
    pub summary: bool,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Trained reliability artifacts: adds the head's top-5, P(correct), the verdict and the
    /// meta-features. Used when present; an explicitly given folder must match the backbone.
    #[arg(long)]
    pub artifacts: Option<PathBuf>,
    /// Skip truncated files (a JPEG that ends before its end marker) like undecodable ones,
    /// instead of scoring the picture the decoder completed and flagging it.
    #[arg(long)]
    pub skip_truncated: bool,
}

pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    let paths = if args.paths.is_empty() {
        vec![default_dataset()?]
    } else {
        args.paths.clone()
    };
    let device = args.model.device()?;
    let (backbone, resolved) = args.model.load_backbone(&device)?;
    let reliability = load_reliability(&args, backbone.kind, &resolved.path)?;
    let stdout = std::io::stdout();
    for path in &paths {
        let dataset = Dataset::open(path)?;
        if let Some(models) = &reliability {
            predict_reliable(&args, &dataset, &backbone, models)?;
            continue;
        }
        eprintln!(
            "{}: {} images, {} classes{}",
            path.display(),
            dataset.samples.len(),
            dataset.classes.len(),
            if dataset.imagenet_indices().is_some() {
                " (ImageNet classes)"
            } else {
                ""
            }
        );
        let per_image = args.json || !args.summary;
        let summary = classify_dataset(
            &backbone,
            &dataset,
            args.batch_size,
            args.skip_truncated,
            |prediction| {
                if !per_image {
                    return;
                }
                if args.show {
                    show(&dataset.root.join(&prediction.path));
                }
                let mut out = stdout.lock();
                let written = if args.json {
                    serde_json::to_writer(&mut out, prediction)
                        .map_err(std::io::Error::from)
                        .and_then(|_| writeln!(out))
                } else {
                    write_human(&mut out, prediction, &dataset)
                };
                if let Err(e) = written {
                    tracing::debug!("stdout closed: {e}");
                }
            },
            |path, reason| eprintln!("skipped {}: {}", printable(path), printable(reason)),
        )
        .with_context(|| format!("classifying {}", path.display()))?;
        if args.summary {
            let mut out = summary_out(args.json);
            print_summary(
                &mut *out,
                &summary,
                &dataset,
                args.batch_size,
                &device.label(),
            )?;
        }
    }
    Ok(())
}

/// Imagenette val; the error also says that a PATH can be given.
fn default_dataset() -> anyhow::Result<PathBuf> {
    let root = super::setup::default_imagenette().context("no PATH given")?;
    Ok(root.join("val"))
}

fn write_human(out: &mut impl Write, p: &Prediction, dataset: &Dataset) -> std::io::Result<()> {
    let label = p
        .label
        .as_deref()
        .map(|l| {
            dataset
                .classes
                .iter()
                .position(|c| c == l)
                .map_or(l, |i| dataset.class_name(i))
        })
        .unwrap_or("-");
    writeln!(out, "{}  (label: {label})", printable(&p.path))?;
    if p.truncated {
        writeln!(
            out,
            "  ⚠ truncated file: the decoder filled in the missing part (--skip-truncated leaves such files out)"
        )?;
    }
    for c in &p.top5 {
        writeln!(out, "  {:6.2} %  {} ({})", c.prob * 100.0, c.name, c.wnid)?;
    }
    if let Some(wnid) = &p.pred_in_dataset {
        let i = dataset.classes.iter().position(|c| c == wnid).unwrap_or(0);
        writeln!(out, "  in dataset: {} ({wnid})", dataset.class_name(i))?;
    }
    Ok(())
}

fn show(path: &std::path::Path) {
    let config = viuer::Config {
        width: Some(32),
        absolute_offset: false,
        ..Default::default()
    };
    // Decoded by REASON itself so odd images (EXIF-rotated, CMYK, 16-bit) look as classified.
    let shown = decode_rgb(path).map_err(|e| e.to_string()).and_then(|img| {
        viuer::print(&image::DynamicImage::ImageRgb8(img), &config).map_err(|e| e.to_string())
    });
    if let Err(e) = shown {
        eprintln!("cannot preview {}: {}", printable_path(path), printable(&e));
    }
}

/// The summary goes to stdout, or to stderr with `--json` (stdout then holds only JSON lines).
fn summary_out(json: bool) -> Box<dyn Write> {
    if json {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    }
}

fn print_summary(
    out: &mut dyn Write,
    s: &ClassifySummary,
    dataset: &Dataset,
    batch: usize,
    device: &str,
) -> std::io::Result<()> {
    let pct = |x: Option<f64>, n: usize| match x {
        Some(a) => format!("{:.2} % ({n}/{})", a * 100.0, s.labelled),
        None => "n/a (no images labelled with ImageNet classes)".to_string(),
    };
    writeln!(
        out,
        "images:     {} found, {} classified, {} skipped",
        s.images,
        s.classified,
        s.skipped.len()
    )?;
    for (path, reason) in &s.skipped {
        writeln!(out, "  skipped {}: {}", printable(path), printable(reason))?;
    }
    if s.truncated > 0 {
        writeln!(
        out,
            "truncated:  {} of the classified images (scored from a picture the decoder completed; --skip-truncated leaves them out)",
            s.truncated
        )?;
    }
    writeln!(
        out,
        "top-1 accuracy, all 1000 classes:      {}",
        pct(s.accuracy_all_classes(), s.correct_all_classes)
    )?;
    writeln!(
        out,
        "top-1 accuracy, the dataset's {} classes: {}",
        dataset.classes.len(),
        pct(s.accuracy_in_dataset(), s.correct_in_dataset)
    )?;
    writeln!(
        out,
        "throughput: {:.1} images/s (decode + backbone, batch {batch}, {device}, {:.1} s)",
        s.images_per_second(),
        s.seconds
    )?;
    Ok(())
}

/// The artifacts to add reliability with, or `None` (said on stderr) when there are none.
fn load_reliability(
    args: &PredictArgs,
    kind: BackboneKind,
    weights_path: &std::path::Path,
) -> anyhow::Result<Option<ScoringModels>> {
    let explicit = args.artifacts.is_some();
    let dir = embedded::resolve(args.artifacts.as_deref())?;
    if explicit && !artifacts::manifest_path(&dir).is_file() {
        anyhow::bail!(
            "no artifacts in {} (train them with `reason train --out {}`, or leave out \
             --artifacts to use the built-in ones)",
            dir.display(),
            dir.display()
        );
    }
    let loaded =
        Artifacts::load(&dir).and_then(|a| ScoringModels::with_weights(a, kind, weights_path));
    match loaded {
        Ok(found) => Ok(Some(found)),
        Err(e) if explicit => Err(e.into()),
        // The default artifacts fit only the weights they were trained with: other weights
        // still get ImageNet predictions.
        Err(e) => {
            eprintln!(
                "not using the default artifacts ({}): {e}; ImageNet top-5 only (train artifacts \
                 for these weights with `reason train`)",
                dir.display()
            );
            Ok(None)
        }
    }
}

fn predict_reliable(
    args: &PredictArgs,
    dataset: &Dataset,
    backbone: &Backbone,
    models: &ScoringModels,
) -> anyhow::Result<()> {
    let artifacts = &models.artifacts;
    let scorer = Scorer {
        batch_size: args.batch_size,
        imagenet_logits: true,
        skip_truncated: args.skip_truncated,
        ..models.scorer(backbone)
    };
    let started = std::time::Instant::now();
    let scored = scorer.score(dataset, None, &|event| {
        if let ScoringEvent::Skipped { id, reason } = event {
            eprintln!("skipped {}: {}", printable(&id), printable(&reason));
        }
    })?;
    let threshold = artifacts.manifest.calibration.threshold;
    let in_dataset = dataset.imagenet_indices();
    let index_of: std::collections::HashMap<&str, usize> = dataset
        .samples
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut summary = ClassifySummary {
        images: dataset.samples.len(),
        skipped: scored.skipped.clone(),
        ..Default::default()
    };
    let mut out = std::io::stdout().lock();
    let per_image = args.json || !args.summary;
    let mut stdout_open = true;
    for (record, extra) in scored.records.iter().zip(&scored.extra) {
        let sample = index_of[record.id.as_str()];
        let logits = extra.imagenet_logits.as_deref().unwrap_or_default();
        let imagenet = Prediction {
            truncated: record.truncated,
            ..predict_one(dataset, sample, logits, in_dataset.as_deref())
        };
        summary.count(dataset, sample, logits, &imagenet, in_dataset.as_deref());
        if !per_image || !stdout_open {
            continue;
        }
        if args.show {
            show(&dataset.root.join(&record.id));
        }
        let written = if args.json {
            let line = ReliablePrediction::new(imagenet, record, artifacts);
            serde_json::to_writer(&mut out, &line)
                .map_err(std::io::Error::from)
                .and_then(|_| writeln!(out))
        } else {
            write_human(&mut out, &imagenet, dataset)
                .and_then(|_| write_reliability(&mut out, record, artifacts, threshold))
        };
        // stdout closed (e.g. piped into head): keep counting for the summary.
        stdout_open = written.is_ok();
    }
    drop(out);
    summary.seconds = started.elapsed().as_secs_f64();
    if args.summary {
        let mut out = summary_out(args.json);
        print_summary(
            &mut *out,
            &summary,
            dataset,
            args.batch_size,
            &device_label(backbone),
        )?;
        let labelled: Vec<&SampleRecord> = scored
            .records
            .iter()
            .filter(|r| r.label.is_some())
            .collect();
        if !labelled.is_empty() {
            let right =
                |rs: &[&SampleRecord]| rs.iter().filter(|r| r.correct() == Some(true)).count();
            let accepted: Vec<&SampleRecord> = labelled
                .iter()
                .copied()
                .filter(|r| r.p_correct >= threshold)
                .collect();
            writeln!(
                out,
                "trained head on the {} trained classes: {:.2} % ({}/{})",
                artifacts.manifest.classes.len(),
                100.0 * right(&labelled) as f64 / labelled.len() as f64,
                right(&labelled),
                labelled.len()
            )?;
            let trusted = if accepted.is_empty() {
                "-".to_string()
            } else {
                format!(
                    "{:.2} %",
                    100.0 * right(&accepted) as f64 / accepted.len() as f64
                )
            };
            writeln!(
                out,
                "P(correct) >= {threshold:.4}: {} accepted ({:.2} % coverage), trusted accuracy {trusted}",
                accepted.len(),
                100.0 * accepted.len() as f64 / labelled.len() as f64,
            )?;
        }
        writeln!(
            out,
            "certified operating point: {}",
            artifacts.manifest.calibration.certificate.statement()
        )?;
    }
    Ok(())
}

fn device_label(backbone: &Backbone) -> String {
    if backbone.device().is_cpu() {
        "cpu".into()
    } else {
        "cuda".into()
    }
}

fn write_reliability(
    out: &mut impl Write,
    r: &SampleRecord,
    a: &Artifacts,
    threshold: f32,
) -> std::io::Result<()> {
    let m = &a.manifest;
    let d = &r.diagnostics;
    writeln!(
        out,
        "  head: {} {:.2} %   P(correct) {:.4} -> {} (threshold {threshold:.4})",
        m.class_names[r.pred as usize],
        r.probs[r.pred as usize] * 100.0,
        r.p_correct,
        verdict(r.p_correct, threshold)
    )?;
    writeln!(
        out,
        "  entropy {:.4}  gap {:.3}  MC variance {:.2e}  gradient {:.2e}  k-NN distance {:.3}  trust {:.3}",
        d.entropy, d.logit_gap, d.mc_variance, d.grad_sensitivity, d.knn_distance, d.trust_score
    )
}
