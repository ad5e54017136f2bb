//! `reason predict`: top-5 ImageNet classes per image, and accuracy with `--summary`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use super::ModelArgs;
use crate::engine::classify::{classify_dataset, ClassifySummary, Prediction};
use crate::engine::dataset::Dataset;
use crate::engine::imageio::decode_rgb;
use crate::engine::paths;

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
}

pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    let paths = if args.paths.is_empty() {
        vec![default_dataset()?]
    } else {
        args.paths.clone()
    };
    let device = args.model.device()?;
    let backbone = args.model.load_backbone(&device)?;
    let stdout = std::io::stdout();
    for path in &paths {
        let dataset = Dataset::open(path)?;
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
            |path, reason| eprintln!("skipped {path}: {reason}"),
        )
        .with_context(|| format!("classifying {}", path.display()))?;
        if args.summary {
            print_summary(&summary, &dataset, args.batch_size, &device.label());
        }
    }
    Ok(())
}

fn default_dataset() -> anyhow::Result<PathBuf> {
    let root = paths::default_imagenette();
    if root.join("val").is_dir() {
        return Ok(root.join("val"));
    }
    anyhow::bail!(
        "no dataset given and the default {} is missing: run `reason fetch imagenette --dest {}`, \
         point {} at a folder holding imagenette/, or pass a PATH",
        root.join("val").display(),
        paths::data_root().display(),
        paths::DATA_ENV
    )
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
    writeln!(out, "{}  (label: {label})", p.path)?;
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
        eprintln!("cannot preview {}: {e}", path.display());
    }
}

fn print_summary(s: &ClassifySummary, dataset: &Dataset, batch: usize, device: &str) {
    let pct = |x: Option<f64>, n: usize| match x {
        Some(a) => format!("{:.2} % ({n}/{})", a * 100.0, s.labelled),
        None => "n/a (no images labelled with ImageNet classes)".to_string(),
    };
    println!(
        "images:     {} found, {} classified, {} skipped",
        s.images,
        s.classified,
        s.skipped.len()
    );
    for (path, reason) in &s.skipped {
        println!("  skipped {path}: {reason}");
    }
    println!(
        "top-1 accuracy, all 1000 classes:      {}",
        pct(s.accuracy_all_classes(), s.correct_all_classes)
    );
    println!(
        "top-1 accuracy, the dataset's {} classes: {}",
        dataset.classes.len(),
        pct(s.accuracy_in_dataset(), s.correct_in_dataset)
    );
    println!(
        "throughput: {:.1} images/s (decode + forward, batch {batch}, {device}, {:.1} s)",
        s.images_per_second(),
        s.seconds
    );
}
