//! `reason score`: scores a dataset, or a deterministic shard of it, into the scored table
//! (`report::scores`) that `reason tui --scores` and `reason eval --scores` read.
//!
//! Resumable: every chunk of scored samples is written atomically to `<out>.parts/` as soon as
//! it is done; a rerun reuses the rows of those chunks (and of an existing `<out>`) whose image
//! has the same size and modification time, and scores the rest. The parts folder is removed
//! once `<out>` is written. Several devices (`--device cuda:0,cuda:1`, or `cpu,cpu`) each get a
//! worker with its own backbone, taking chunks from one queue.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;

use super::progress::StageBars;
use crate::data::corrupt::CorruptionSpec;
use crate::data::dataset::{Dataset, Sample};
use crate::data::imageio::TRUNCATED_SKIP_REASON;
use crate::model::device::DeviceRequest;
use crate::reliability::embedded;
use crate::reliability::scoring::{record_header, Scored, Scorer, ScoringModels, CHUNK};
use crate::report::scores::{
    self, artifacts_sha256, FileStamp, Identity, RunInfo, ScoreRow, ScoreTable, Shard,
};
use crate::support::text::printable;

#[derive(Debug, clap::Args)]
pub struct ScoreArgs {
    /// An imagenette2-style root, of which --split is scored [default: the Imagenette in the
    /// data folder].
    #[arg(long, value_name = "DIR", conflicts_with = "folder")]
    pub data: Option<PathBuf>,
    #[arg(long, default_value = "val")]
    pub split: String,
    /// Any folder of images instead: class sub-folders give labels, loose images are unlabelled.
    #[arg(long, value_name = "DIR")]
    pub folder: Option<PathBuf>,
    /// Trained artifacts [default: ./reason_saved when it exists, else the built-in ones].
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// Backbone weights (a .safetensors path or a hub id): the ones the artifacts were trained with.
    #[arg(long, value_name = "PATH|HUB_ID")]
    pub weights: Option<String>,
    /// Devices, comma-separated; each gets a worker with its own backbone: `cuda:0,cuda:1`
    /// splits the work across two GPUs, `cpu,cpu` runs two CPU workers.
    #[arg(
        long,
        value_name = "DEVICE[,DEVICE...]",
        default_value = "auto",
        value_delimiter = ',',
        // Given once, as every other option (a repeated --device is an error, not more workers).
        action = clap::ArgAction::Set
    )]
    pub device: Vec<DeviceRequest>,
    /// KIND:SEVERITY (gaussian_noise, blur, jpeg, contrast, pixelate; 1-5) or mixed.
    #[arg(long)]
    pub corrupt: Option<CorruptionSpec>,
    /// Seeds the corruption and MC dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Score only shard I of N (0 <= I < N): the samples whose relative path hashes to I.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Samples per chunk: the unit of work a device takes and of what an interrupted run keeps.
    #[arg(long, value_name = "N", default_value_t = CHUNK, value_parser = positive)]
    pub chunk: usize,
    /// The table to write (Parquet).
    #[arg(long, value_name = "FILE.parquet")]
    pub out: PathBuf,
    /// Leave truncated files out, as skipped with the reason.
    #[arg(long)]
    pub skip_truncated: bool,
}

fn positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{text}` is not a positive number")),
    }
}

pub fn run(args: ScoreArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    // The data first: a missing folder is said before minutes of model loading.
    let (dataset, split) = match &args.folder {
        Some(folder) => (Dataset::open(folder)?, None),
        None => {
            let root = match &args.data {
                Some(root) => root.clone(),
                None => super::setup::default_imagenette()?,
            };
            let dataset = Dataset::open_split(&root, &args.split)
                .with_context(|| format!("opening {}", root.display()))?;
            (dataset, Some(args.split.clone()))
        }
    };
    let artifacts_dir = embedded::resolve(args.artifacts.as_deref())?;
    let models = super::open_scoring_models(&artifacts_dir, args.weights.as_deref())?;
    let identity = Identity {
        artifacts_sha256: artifacts_sha256(&artifacts_dir)
            .with_context(|| format!("hashing {}", artifacts_dir.display()))?,
        weights_sha256: models.weights_sha256.clone(),
        backbone: models.kind.name().to_string(),
        layout: models.artifacts.manifest.layout.clone(),
    };
    let shard = args.shard.unwrap_or(Shard::ALL);
    let samples: Vec<&Sample> = dataset
        .samples
        .iter()
        .filter(|s| shard.contains(&s.id))
        .collect();
    let mut run = RunInfo {
        condition: args.corrupt.map_or("clean".into(), |c| c.to_string()),
        seed: args.seed,
        split,
        // Absolute, so a viewer started elsewhere on this machine still finds the images.
        dataset_root: std::fs::canonicalize(&dataset.root)
            .unwrap_or_else(|_| dataset.root.clone())
            .display()
            .to_string(),
        shard,
        skipped: Vec::new(),
    };
    let header = record_header(&models.artifacts);
    let parts = scores::parts_dir_for(&args.out);
    let previous = previous_rows(&args.out, &parts, &identity, &run);

    // Reuse what an earlier run scored from the same file; score the rest.
    let mut rows = Vec::new();
    let mut todo: Vec<(Sample, FileStamp)> = Vec::new();
    for sample in &samples {
        let stamp = FileStamp::of(&sample.path);
        match previous.get(&sample.id) {
            Some(row) if row.stamp == stamp => {
                if args.skip_truncated && row.record.truncated {
                    run.skipped
                        .push((sample.id.clone(), TRUNCATED_SKIP_REASON.to_string()));
                } else {
                    rows.push(row.clone());
                }
            }
            _ => todo.push(((*sample).clone(), stamp)),
        }
    }
    drop(previous);
    eprintln!(
        "{}: {} images{}, {} already scored, {} to score ({})",
        dataset.root.display(),
        samples.len(),
        if shard == Shard::ALL {
            String::new()
        } else {
            format!(" in shard {shard} of {}", dataset.samples.len())
        },
        rows.len(),
        todo.len(),
        run.condition
    );
    let reused = rows.len();
    if !todo.is_empty() {
        let chunk_table = |scored: Vec<ScoreRow>, skipped| ScoreTable {
            identity: identity.clone(),
            header: header.clone(),
            run: RunInfo {
                skipped,
                ..run.clone()
            },
            rows: scored,
        };
        let job = Job {
            args: &args,
            models: &models,
            dataset: &dataset,
            todo: &todo,
            parts: &parts,
            chunk_table: &chunk_table,
        };
        let (scored, skipped) = job.run()?;
        rows.extend(scored);
        run.skipped.extend(skipped);
    }
    for (id, reason) in &run.skipped {
        eprintln!("skipped {}: {}", printable(id), printable(reason));
    }
    rows.sort_by(|a, b| a.record.id.cmp(&b.record.id));
    run.skipped.sort();
    let table = ScoreTable {
        identity,
        header,
        run,
        rows,
    };
    scores::write(&args.out, &table)?;
    if parts.exists() {
        std::fs::remove_dir_all(&parts)
            .with_context(|| format!("removing {} after writing the table", parts.display()))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{} rows ({reused} from an earlier run, {} scored now, {} skipped) in {seconds:.1} s \
         ({:.1} images/s scored): {}",
        table.rows.len(),
        todo.len(),
        table.run.skipped.len(),
        todo.len() as f64 / seconds.max(1e-9),
        args.out.display()
    );
    Ok(())
}

/// Rows scored earlier for this table (its finished file, then its chunks), when they were
/// scored with the same models and settings; anything unreadable or different is ignored, and
/// said.
fn previous_rows(
    out: &Path,
    parts: &Path,
    identity: &Identity,
    run: &RunInfo,
) -> HashMap<String, ScoreRow> {
    let mut files = Vec::new();
    if out.is_file() {
        files.push(out.to_path_buf());
    }
    if let Ok(entries) = std::fs::read_dir(parts) {
        let mut chunks: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|e| e == "parquet")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        chunks.sort();
        files.extend(chunks);
    }
    let mut rows = HashMap::new();
    for file in files {
        match scores::read(&file) {
            Ok(t)
                if &t.identity == identity
                    && (&t.run.condition, t.run.seed, &t.run.split)
                        == (&run.condition, run.seed, &run.split) =>
            {
                rows.extend(t.rows.into_iter().map(|r| (r.record.id.clone(), r)));
            }
            Ok(_) => eprintln!(
                "not reusing {}: it was scored with other artifacts, weights or settings",
                file.display()
            ),
            Err(e) => eprintln!("not reusing {}: {e}", file.display()),
        }
    }
    rows
}

/// The samples left to score, and where their chunks go.
struct Job<'a> {
    args: &'a ScoreArgs,
    models: &'a ScoringModels,
    dataset: &'a Dataset,
    todo: &'a [(Sample, FileStamp)],
    parts: &'a Path,
    chunk_table: &'a (dyn Fn(Vec<ScoreRow>, Vec<(String, String)>) -> ScoreTable + Sync),
}

type Scores = (Vec<ScoreRow>, Vec<(String, String)>);

impl Job<'_> {
    /// Scores every chunk of `todo` on the devices, one worker each, writing each chunk to
    /// the parts folder as it finishes.
    fn run(&self) -> anyhow::Result<Scores> {
        let devices = self
            .args
            .device
            .iter()
            .map(|&d| super::select_device(d))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let chunks: Vec<&[(Sample, FileStamp)]> = self.todo.chunks(self.args.chunk).collect();
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let results = Mutex::new((Vec::new(), Vec::new()));
        let bars = StageBars::new();
        // Unique per run, so a resumed run never overwrites a chunk it is reusing.
        let run_tag = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        );
        let (next, done, failed, shared, bars, chunks, run_tag) =
            (&next, &done, &failed, &results, &bars, &chunks, &run_tag);
        let outcome: Vec<anyhow::Result<usize>> = std::thread::scope(|scope| {
            let workers: Vec<_> = devices
                .iter()
                .map(|device| {
                    scope.spawn(move || {
                        let work = || -> anyhow::Result<usize> {
                            let mut taken = 0;
                            let backbone = self.models.load_backbone(&device.device)?;
                            let scorer = Scorer {
                                batch_size: self.args.batch_size,
                                seed: self.args.seed,
                                skip_truncated: self.args.skip_truncated,
                                ..self.models.scorer(&backbone)
                            };
                            while !failed.load(Ordering::Relaxed) {
                                let c = next.fetch_add(1, Ordering::Relaxed);
                                let Some(chunk) = chunks.get(c) else { break };
                                let (rows, skipped) = self.score_chunk(&scorer, chunk)?;
                                let part = self.parts.join(format!("{run_tag}-{c:07}.parquet"));
                                scores::write(
                                    &part,
                                    &(self.chunk_table)(rows.clone(), skipped.clone()),
                                )?;
                                let mut all = shared.lock().expect("results lock");
                                all.0.extend(rows);
                                all.1.extend(skipped);
                                drop(all);
                                let n =
                                    done.fetch_add(chunk.len(), Ordering::Relaxed) + chunk.len();
                                bars.update("scoring", n, self.todo.len());
                                taken += 1;
                            }
                            Ok(taken)
                        };
                        let result = work();
                        if result.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        result
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a scoring worker panicked")))
                })
                .collect()
        });
        bars.finish();
        let mut taken = Vec::new();
        for (device, result) in devices.iter().zip(outcome) {
            let n = result.context("scoring stopped; run the same command again to resume")?;
            taken.push(format!("{} {n}", device.label()));
        }
        if devices.len() > 1 {
            eprintln!("chunks per worker: {}", taken.join(", "));
        }
        Ok(results.into_inner().expect("results lock"))
    }

    fn score_chunk(
        &self,
        scorer: &Scorer,
        chunk: &[(Sample, FileStamp)],
    ) -> anyhow::Result<Scores> {
        let part = Dataset {
            root: self.dataset.root.clone(),
            classes: self.dataset.classes.clone(),
            samples: chunk.iter().map(|(s, _)| s.clone()).collect(),
        };
        let Scored {
            records,
            extra,
            skipped,
            ..
        } = scorer.score(&part, self.args.corrupt, &|_| {})?;
        let by_id: HashMap<&str, &(Sample, FileStamp)> =
            chunk.iter().map(|s| (s.0.id.as_str(), s)).collect();
        let rows = records
            .into_iter()
            .zip(extra)
            .map(|(record, extra)| {
                let (sample, stamp) = by_id[record.id.as_str()];
                let label = sample.label.map(|l| self.dataset.classes[l].as_str());
                ScoreRow::new(record, extra, label, *stamp)
            })
            .collect();
        Ok((rows, skipped))
    }
}
