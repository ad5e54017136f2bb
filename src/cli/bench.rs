//! `reason bench`: images/s of decoding, forward passes and input gradients on this machine.
//!
//! Networks use random weights (throughput does not depend on the values), so the numbers can
//! be compared with the PyTorch reference script, which does the same.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Tensor};
use rayon::prelude::*;
use serde::Serialize;

use crate::data::dataset::Dataset;
use crate::data::imageio::decode_rgb;
use crate::data::paths;
use crate::model::backbone::{kernel, Backbone, BackboneKind};
use crate::model::cpu::CpuInfo;
use crate::model::device::{self, DeviceRequest};
use crate::reliability::artifacts::Artifacts;
use crate::reliability::embedded;
use crate::reliability::scoring::{Scorer, StageSeconds};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Networks as NAME@SIZE, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "tf_efficientnet_lite0@224"
    )]
    pub models: Vec<String>,
    /// What to measure: forward, input_grad (gradient of the top logit w.r.t. the input),
    /// extract (end-to-end meta-features per image: decode, forward, gradient, MC dropout,
    /// PCA, k-NN, MetaNet, with the artifacts of `--artifacts` on Imagenette val images).
    #[arg(long, value_delimiter = ',', default_value = "forward")]
    pub kinds: Vec<String>,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub batches: Vec<usize>,
    /// Timed repetitions per row after one warm-up; the best is reported.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Images decoded for the decode row (0 skips it).
    #[arg(long, default_value_t = 256)]
    pub decode_images: usize,
    /// Images scored per `extract` row (the first ones of Imagenette val).
    #[arg(long, default_value_t = 64)]
    pub extract_images: usize,
    /// Artifacts the `extract` rows use; their backbone is the only model they run for
    /// [default: ./reason_saved when it exists, else the built-in ones].
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value = "auto")]
    pub device: DeviceRequest,
    /// Use candle's own kernels for every layer instead of REASON's CPU kernels (the
    /// reference the fast path is measured against).
    #[arg(long)]
    pub plain_kernels: bool,
}

#[derive(Debug, Serialize)]
struct Row<'a> {
    model: String,
    size: u32,
    batch: usize,
    kind: String,
    images_per_s: f64,
    /// `cpu` or `cuda:N`.
    device: &'a str,
    /// Every row names the machine, so no figure travels without it.
    cpu: &'a CpuInfo,
    /// `extract` rows: milliseconds per image in each stage, each stage timed on its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    stages_ms_per_image: Option<StagesMs>,
}

/// [`StageSeconds`] per image, in milliseconds.
#[derive(Debug, Serialize)]
struct StagesMs {
    decode: f64,
    backbone: f64,
    head_and_mc_dropout: f64,
    pca: f64,
    knn: f64,
    features_and_metanet: f64,
    /// The stages one after another; the end-to-end row overlaps decoding with the backbone.
    sum: f64,
}

impl StagesMs {
    fn new(s: &StageSeconds) -> Self {
        let per_image = |seconds: f64| 1e3 * seconds / s.images.max(1) as f64;
        let stages = [
            s.decode,
            s.backbone,
            s.head_and_mc_dropout,
            s.pca,
            s.knn,
            s.features_and_metanet,
        ];
        Self {
            decode: per_image(s.decode),
            backbone: per_image(s.backbone),
            head_and_mc_dropout: per_image(s.head_and_mc_dropout),
            pca: per_image(s.pca),
            knn: per_image(s.knn),
            features_and_metanet: per_image(s.features_and_metanet),
            sum: per_image(stages.iter().sum()),
        }
    }
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.plain_kernels {
        return kernel::with_plain_kernels(|| measure(args));
    }
    measure(args)
}

fn measure(args: BenchArgs) -> anyhow::Result<()> {
    let device = device::select(args.device)?;
    eprintln!(
        "device: {} ({}); {} rayon threads",
        device.label(),
        device.reason,
        rayon::current_num_threads()
    );
    let cpu = CpuInfo::detect(rayon::current_num_threads());
    let device_label = device.label();
    if !args.json {
        println!("CPU: {}", cpu.summary());
        println!(
            "{:<24} {:>5} {:>6} {:<11} {:>10}",
            "model", "size", "batch", "kind", "images/s"
        );
    }
    let print = |row: Row| {
        if args.json {
            println!("{}", serde_json::to_string(&row).expect("plain struct"));
            return;
        }
        println!(
            "{:<24} {:>5} {:>6} {:<11} {:>10.2}",
            row.model, row.size, row.batch, row.kind, row.images_per_s
        );
        if let Some(s) = &row.stages_ms_per_image {
            println!(
                "  ms/image: decode {:.1}, backbone {:.1}, head+MC dropout {:.2}, PCA {:.2}, \
                 k-NN {:.2}, features+MetaNet {:.2}; sum {:.1} (end to end {:.1}: decoding \
                 overlaps the backbone)",
                s.decode,
                s.backbone,
                s.head_and_mc_dropout,
                s.pca,
                s.knn,
                s.features_and_metanet,
                s.sum,
                1e3 / row.images_per_s
            );
        }
    };

    if args.decode_images > 0 {
        let (images_per_s, size) = bench_decode(args.decode_images)?;
        print(Row {
            model: "-".into(),
            size,
            batch: args.decode_images,
            kind: "decode".into(),
            images_per_s,
            device: &device_label,
            cpu: &cpu,
            stages_ms_per_image: None,
        });
    }

    let extract = if args.kinds.iter().any(|k| k == "extract") {
        Some(ExtractInputs::load(&args)?)
    } else {
        None
    };
    for spec in &args.models {
        let (name, size) = parse_model(spec)?;
        let kind = BackboneKind::from_name(name)?;
        let (backbone, _) = Backbone::random(kind, 1000, &device.device)?;
        for &batch in &args.batches {
            let input = Tensor::randn(
                0f32,
                1f32,
                (batch, 3, size as usize, size as usize),
                &device.device,
            )?;
            for what in &args.kinds {
                if what == "extract" {
                    let inputs = extract.as_ref().expect("loaded when asked for");
                    if inputs.artifacts.manifest.backbone.name != name
                        || kind.preprocess().size != size
                    {
                        eprintln!(
                            "skipping extract for {spec}: the artifacts are for {}@{}",
                            inputs.artifacts.manifest.backbone.name,
                            kind.preprocess().size
                        );
                        continue;
                    }
                    let seconds = best_time(args.repeats.saturating_sub(1), || {
                        inputs.score(&backbone, batch)
                    })?;
                    let stages = inputs
                        .scorer(&backbone, batch)
                        .stage_seconds(&inputs.images.dataset.samples)?;
                    print(Row {
                        model: name.to_string(),
                        size,
                        batch,
                        kind: what.clone(),
                        images_per_s: inputs.images.dataset.samples.len() as f64 / seconds,
                        device: &device_label,
                        cpu: &cpu,
                        stages_ms_per_image: Some(StagesMs::new(&stages)),
                    });
                    continue;
                }
                let run_once = || -> anyhow::Result<()> {
                    match what.as_str() {
                        "forward" => {
                            backbone
                                .forward(&input)?
                                .logits
                                .to_dtype(DType::F32)?
                                .to_vec2::<f32>()?;
                        }
                        "input_grad" => {
                            let g = backbone
                                .input_gradient(&input, |out| out.logits.max(1)?.sum_all())?;
                            g.sum_all()?.to_scalar::<f32>()?;
                        }
                        other => {
                            anyhow::bail!("unknown kind `{other}` (forward, input_grad, extract)")
                        }
                    }
                    Ok(())
                };
                let seconds = best_time(args.repeats, run_once)?;
                print(Row {
                    model: name.to_string(),
                    size,
                    batch,
                    kind: what.clone(),
                    images_per_s: batch as f64 / seconds,
                    device: &device_label,
                    cpu: &cpu,
                    stages_ms_per_image: None,
                });
            }
        }
    }
    Ok(())
}

/// What the `extract` rows score: the first images of Imagenette val (generated JPEGs without
/// the data) with trained artifacts.
struct ExtractInputs {
    artifacts: Artifacts,
    images: BenchImages,
}

impl ExtractInputs {
    fn load(args: &BenchArgs) -> anyhow::Result<Self> {
        let dir = embedded::resolve(args.artifacts.as_deref())?;
        let artifacts = Artifacts::load(&dir).with_context(|| {
            format!(
                "the extract rows need trained artifacts (`reason train`); none at {}",
                dir.display()
            )
        })?;
        let images = BenchImages::open(args.extract_images.max(1))?;
        Ok(Self { artifacts, images })
    }

    fn scorer<'a>(&'a self, backbone: &'a Backbone, batch: usize) -> Scorer<'a> {
        Scorer {
            backbone,
            weights_sha256: "bench",
            artifacts: &self.artifacts,
            batch_size: batch,
            seed: 0,
            imagenet_logits: false,
            use_cache: false,
            skip_truncated: false,
        }
    }

    /// One full scoring pass, without the cache. The backbone has random weights: the
    /// throughput does not depend on them, and the artifacts' shapes fit any weights.
    fn score(&self, backbone: &Backbone, batch: usize) -> anyhow::Result<()> {
        let scorer = self.scorer(backbone, batch);
        let dataset = &self.images.dataset;
        let scored = scorer.score(dataset, None, &|_| {})?;
        anyhow::ensure!(
            scored.records.len() == dataset.samples.len(),
            "{} of {} images could not be scored",
            scored.skipped.len(),
            dataset.samples.len()
        );
        Ok(())
    }
}

fn parse_model(spec: &str) -> anyhow::Result<(&str, u32)> {
    let (name, size) = spec
        .split_once('@')
        .with_context(|| format!("`{spec}`: expected NAME@SIZE, e.g. resnet50@224"))?;
    Ok((
        name,
        size.parse()
            .with_context(|| format!("`{spec}`: bad size"))?,
    ))
}

/// Best wall time of `repeats` runs after one warm-up.
fn best_time(repeats: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    f()?;
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let started = Instant::now();
        f()?;
        best = best.min(started.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Decode + preprocess throughput (parallel, as in `predict`).
fn bench_decode(count: usize) -> anyhow::Result<(f64, u32)> {
    let pre = BackboneKind::EfficientNetLite(0).preprocess();
    let images = BenchImages::open(count)?;
    let run = || -> anyhow::Result<()> {
        images
            .dataset
            .samples
            .par_iter()
            .map(|s| decode_rgb(&s.path).map(|img| pre.apply(&img).len()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(())
    };
    let seconds = best_time(2, run)?;
    Ok((images.dataset.samples.len() as f64 / seconds, pre.size))
}

/// The images the decode and extract rows time: the first `count` of Imagenette val when the
/// data is present, else `count` generated 224×224 JPEGs (removed when this drops), so the
/// rows run, and are tested, on a machine without the data.
struct BenchImages {
    dataset: Dataset,
    _generated: Option<TempDir>,
}

impl BenchImages {
    fn open(count: usize) -> anyhow::Result<Self> {
        let val = paths::default_imagenette().join("val");
        if val.is_dir() {
            let mut dataset = Dataset::open(&val)?;
            dataset.samples.truncate(count);
            return Ok(Self {
                dataset,
                _generated: None,
            });
        }
        eprintln!("{} not found: using generated JPEGs instead", val.display());
        let dir = TempDir(tempfile_dir()?);
        for i in 0..count {
            let img = image::RgbImage::from_fn(224, 224, |x, y| {
                image::Rgb([
                    (x * 7 + i as u32) as u8,
                    (y * 13) as u8,
                    ((x ^ y) * 3) as u8,
                ])
            });
            img.save(dir.0.join(format!("{i:05}.jpg")))?;
        }
        Ok(Self {
            dataset: Dataset::open(&dir.0)?,
            _generated: Some(dir),
        })
    }
}

/// A new folder `reason-bench-<pid>-<n>` in the temporary directory.
fn tempfile_dir() -> std::io::Result<PathBuf> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("reason-bench-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Removes the generated images when the benchmark ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
