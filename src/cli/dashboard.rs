//! `reason` / `reason tui`: the dashboard over a dataset scored with the trained artifacts.
//!
//! Artifacts and weights are checked before the terminal is taken over, so a mismatch is a
//! plain error message. Scoring runs on the worker thread the dashboard starts (the one thread
//! that owns the device and the models); a dataset scored before opens at once from the cache.

use std::sync::mpsc::Sender;

use anyhow::Context;

use super::tui::TuiArgs;
use crate::engine::artifacts::{self, Artifacts};
use crate::engine::backbone::{weights, Backbone, BackboneKind};
use crate::engine::cache::{self, CacheKey};
use crate::engine::dataset::Dataset;
use crate::engine::device::{self, DeviceRequest};
use crate::engine::features;
use crate::engine::records::{RecordSet, ScoringEvent};
use crate::engine::scoring::Scorer;
use crate::tui::RecordSource;

pub fn run(args: TuiArgs) -> anyhow::Result<()> {
    let path = args.dataset_path();
    let dataset = Dataset::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let artifacts = Artifacts::load(&args.artifacts).with_context(|| {
        format!(
            "loading {} (train them with `reason train`, or pass --artifacts DIR)",
            args.artifacts.display()
        )
    })?;
    let kind = BackboneKind::from_name(&artifacts.manifest.backbone.name)?;
    let resolved = weights::resolve(kind, None)?;
    let sha = weights::sha256_file(&resolved.path)?;
    artifacts.check_compatible(
        kind,
        &sha,
        &features::layout(artifacts.manifest.classes.len()),
    )?;

    let key = CacheKey::new("records")
        .part(
            "manifest",
            std::fs::read(artifacts::manifest_path(&args.artifacts)).unwrap_or_default(),
        )
        .part("weights", &sha)
        .samples(&dataset.samples.iter().collect::<Vec<_>>());
    let source = match cache::load_json::<RecordSet>(&key) {
        Some(records) => RecordSource::Ready(records),
        None => RecordSource::Compute(Box::new(move |tx: Sender<ScoringEvent>| {
            if let Err(e) = score_into(&tx, &dataset, &artifacts, kind, &resolved.path, &sha, &key)
            {
                let _ = tx.send(ScoringEvent::Failed(format!("{e:#}")));
            }
        })),
    };
    super::tui::run(args, source)
}

/// The worker: loads the backbone, scores every image and streams the records.
fn score_into(
    tx: &Sender<ScoringEvent>,
    dataset: &Dataset,
    artifacts: &Artifacts,
    kind: BackboneKind,
    weights_path: &std::path::Path,
    sha: &str,
    key: &CacheKey,
) -> anyhow::Result<()> {
    let device = device::select(DeviceRequest::Auto)?;
    let _ = tx.send(ScoringEvent::Progress {
        stage: format!("loading {kind} on {} ({})", device.label(), device.reason),
        done: 0,
        total: 1,
    });
    let backbone = Backbone::load(kind, weights_path, &device.device)?;
    let scorer = Scorer {
        backbone: &backbone,
        weights_sha256: sha,
        artifacts,
        batch_size: 16,
        seed: 0,
        imagenet_logits: false,
        use_cache: true,
    };
    let scored = scorer.score(dataset, None, &|event| {
        let _ = tx.send(event);
    })?;
    let mut records = scored.header;
    records.records = scored.records;
    cache::store_json(key, &records)?;
    Ok(())
}
