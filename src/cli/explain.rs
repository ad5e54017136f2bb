//! `reason explain IMAGE...`: one PNG per image with the picture, the saliency of the
//! predicted class (and of the labelled one), the head's top-5 and P(correct), and the nearest
//! training images: the picture for a paper or a bug report.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use crate::data::imageio;
use crate::model::saliency;
use crate::reliability::embedded;
use crate::reliability::explain::Explainer;
use crate::reliability::knn;
use crate::reliability::neighbours::{NeighbourImage, NO_PATHS_HINT};
use crate::reliability::prediction::verdict;
use crate::report::explain::{self as figure, Figure, Tile};
use crate::support::text::{printable, printable_path};

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// Images to explain.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// Folder the figures are written to (`<image name>.explain.png`).
    #[arg(long, value_name = "DIR", default_value = "explain")]
    pub out: PathBuf,
    /// The labelled class (a class folder name such as n01440764, or its readable name)
    /// [default: the image's folder, when it is one of the artifacts' classes].
    #[arg(long, value_name = "CLASS")]
    pub label: Option<String>,
    /// Trained artifacts [default: ./reason_saved when it exists, else the built-in ones].
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// Backbone weights: a .safetensors path or a hub id [default: the artifacts' own].
    #[arg(long, value_name = "PATH|HUB_ID")]
    pub weights: Option<String>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: crate::model::device::DeviceRequest,
}

pub fn run(args: ExplainArgs) -> anyhow::Result<()> {
    // Every image must be readable before minutes of model loading.
    for path in &args.images {
        if !path.is_file() {
            let reason = match std::fs::metadata(path) {
                Ok(_) => "not a file".to_string(),
                Err(e) => e.to_string(),
            };
            anyhow::bail!(
                "cannot explain {}: {reason} (give image files: reason explain IMAGE...)",
                printable_path(path)
            );
        }
    }
    let artifacts_dir = embedded::resolve(args.artifacts.as_deref())?;
    let device = super::select_device(args.device)?;
    let models = super::open_scoring_models(&artifacts_dir, args.weights.as_deref())?;
    let classes = models.artifacts.manifest.classes.clone();
    let names = models.artifacts.manifest.class_names.clone();
    let label_given = match &args.label {
        Some(l) => Some(class_index(&classes, &names, l).with_context(|| {
            format!(
                "--label {}: not one of the artifacts' classes ({})",
                printable(l),
                classes.join(", ")
            )
        })?),
        None => None,
    };
    let explainer = Explainer::new(models, &device.device)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", printable_path(&args.out)))?;
    let mut written = HashSet::new();
    for path in &args.images {
        let started = Instant::now();
        let decoded = imageio::decode(path)?;
        let label = label_given.or_else(|| folder_class(path, &classes));
        let id = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let record = explainer.score(&id, &decoded.image, decoded.truncated)?;
        let out = unique_name(&args.out, &id, &mut written);
        let fig = build_figure(&explainer, &id, &decoded.image, &record, label)?;
        figure::write_png(&out, &fig)?;
        eprintln!(
            "{} → {} ({:.1} s)",
            printable_path(path),
            printable_path(&out),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// The class named `name` (folder name or readable name, case-insensitive).
fn class_index(classes: &[String], names: &[String], name: &str) -> Option<u16> {
    let i = classes
        .iter()
        .position(|c| c.eq_ignore_ascii_case(name))
        .or_else(|| names.iter().position(|c| c.eq_ignore_ascii_case(name)))?;
    Some(i as u16)
}

/// The image's folder as a label, when it is one of the classes.
fn folder_class(path: &Path, classes: &[String]) -> Option<u16> {
    let folder = path.parent()?.file_name()?.to_str()?;
    classes.iter().position(|c| c == folder).map(|i| i as u16)
}

/// `<out>/<name>.explain.png`, numbered when two images share a name.
fn unique_name(out: &Path, name: &str, taken: &mut HashSet<PathBuf>) -> PathBuf {
    let mut n = 1;
    loop {
        let file = if n == 1 {
            format!("{name}.explain.png")
        } else {
            format!("{name}.{n}.explain.png")
        };
        let path = out.join(file);
        if taken.insert(path.clone()) {
            return path;
        }
        n += 1;
    }
}

fn build_figure(
    explainer: &Explainer,
    id: &str,
    image: &image::RgbImage,
    record: &crate::reliability::records::SampleRecord,
    label: Option<u16>,
) -> anyhow::Result<Figure> {
    let manifest = &explainer.models.artifacts.manifest;
    let name = |c: u16| {
        manifest
            .class_names
            .get(c as usize)
            .or_else(|| manifest.classes.get(c as usize))
            .cloned()
            .unwrap_or_else(|| format!("#{c}"))
    };
    let pre = explainer.backbone.kind.preprocess();
    let mut panels = vec![("image".to_string(), image.clone())];
    let mut classes = vec![(record.pred, "predicted")];
    if let Some(l) = label.filter(|&l| l != record.pred) {
        classes.push((l, "label"));
    }
    for (class, role) in classes {
        let map = explainer.saliency(image, class)?;
        panels.push((
            format!("saliency · {} ({role})", name(class)),
            saliency::overlay(image, &map, &pre),
        ));
    }
    let threshold = manifest.calibration.threshold;
    let mut lines = vec![(
        format!(
            "P(correct) {:.3} · {} at t={threshold:.3}",
            record.p_correct,
            verdict(record.p_correct, threshold)
        ),
        record.p_correct < threshold,
    )];
    lines.push((format!("predicted {}", name(record.pred)), false));
    match label {
        Some(l) if l == record.pred => lines.push((format!("label {} ✓", name(l)), false)),
        Some(l) => lines.push((format!("label {} ✗", name(l)), true)),
        None => lines.push(("no label".into(), false)),
    }
    if record.truncated {
        lines.push(("⚠ truncated file".into(), true));
    }
    let mut top: Vec<(u16, f32)> = record
        .probs
        .iter()
        .enumerate()
        .map(|(i, &p)| (i as u16, p))
        .collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    let near = explainer.neighbours(record, figure::MAX_TILES.min(knn::K));
    let has_paths = explainer.models.artifacts.bank_paths.is_some();
    let neighbours_title = if has_paths {
        "nearest training images (k-NN bank, PCA space) · ✗ not the predicted class".to_string()
    } else {
        format!("nearest training images: {NO_PATHS_HINT}")
    };
    let neighbours = near
        .into_iter()
        .map(|n| {
            let (image, missing) = match &n.image {
                NeighbourImage::Found(file) => match imageio::decode_rgb(file) {
                    Ok(image) => (Some(image), String::new()),
                    Err(_) => (None, "unreadable".to_string()),
                },
                NeighbourImage::Missing(_) => (None, "missing".to_string()),
                NeighbourImage::Unknown => (None, "no path".to_string()),
            };
            Tile {
                image,
                missing,
                label: name(n.label),
                distance: n.distance,
                other_class: n.label != record.pred,
            }
        })
        .collect();
    Ok(Figure {
        title: printable(id).into_owned(),
        panels,
        lines,
        top: top.into_iter().take(5).map(|(c, p)| (name(c), p)).collect(),
        neighbours_title,
        neighbours,
    })
}
