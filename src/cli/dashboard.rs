//! `reason` / `reason tui`: the dashboard over a dataset scored with the trained artifacts.
//!
//! The device, artifacts and weights are checked before the terminal is taken over, so a
//! missing GPU or a mismatch is a plain error message. Scoring runs on the worker thread the
//! dashboard starts (the one thread that uses the device and the models); a dataset scored
//! before opens at once from the cache. The title bar names the device and why it was chosen; a
//! CUDA failure while scoring is reported there and in the status line, with `--device cpu` as
//! the way out.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::Sender;

use anyhow::Context;
use candle_core::DeviceLocation;

use super::tui::TuiArgs;
use crate::engine::artifacts::{self, Artifacts};
use crate::engine::backbone::{weights, Backbone, BackboneKind};
use crate::engine::cache::{self, CacheKey};
use crate::engine::dataset::Dataset;
use crate::engine::device::{self, DeviceChoice, DeviceRequest};
use crate::engine::features;
use crate::engine::records::{RecordSet, ScoringEvent};
use crate::engine::scoring::Scorer;
use crate::tui::{RecordSource, ScoringDevice};

pub fn run(args: TuiArgs) -> anyhow::Result<()> {
    let device = open_device(args.device)?;
    let mut shown = ScoringDevice {
        label: device_label(&device),
        reason: first_line(&device.reason),
    };
    eprintln!("device: {} ({})", shown.label, shown.reason);
    let path = args.dataset_path();
    let dataset = Dataset::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let artifacts = Artifacts::load(&args.artifacts).with_context(|| {
        format!(
            "loading {} (train them with `reason train`, or pass --artifacts DIR)",
            args.artifacts.display()
        )
    })?;
    let kind = BackboneKind::from_name(&artifacts.manifest.backbone.name)?;
    let resolved = weights::resolve(kind, args.weights.as_deref())?;
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
        Some(records) => {
            // Nothing runs on the device: release it (a GPU context holds memory) and say so.
            drop(device);
            shown
                .reason
                .push_str("; unused: the scores came from the cache");
            RecordSource::Ready(records)
        }
        None => {
            let label = shown.label.clone();
            RecordSource::Compute(Box::new(move |tx: Sender<ScoringEvent>| {
                let scored = catch_unwind(AssertUnwindSafe(|| {
                    score_into(
                        &tx,
                        &device,
                        &dataset,
                        &artifacts,
                        kind,
                        &resolved.path,
                        &sha,
                        &key,
                    )
                }));
                let failure = match scored {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => first_line(&format!("{e:#}")),
                    Err(panic) => format!("the worker crashed: {}", panic_text(&*panic)),
                };
                let _ = tx.send(ScoringEvent::Failed(failure_message(
                    &device, &label, failure,
                )));
            }))
        }
    };
    super::tui::run_on(args, shown, source)
}

/// The requested device, as the other commands resolve it; a CUDA device that cannot be opened
/// is an error that names `--device cpu`.
fn open_device(request: DeviceRequest) -> anyhow::Result<DeviceChoice> {
    match device::select(request) {
        Ok(choice) => Ok(choice),
        // A CPU-only build's message already says how to rebuild or to use --device cpu.
        Err(e) if !device::cuda_compiled_in() => Err(e.into()),
        Err(e) => Err(anyhow::anyhow!(
            "{}; check the driver with `nvidia-smi`, or run with --device cpu to score on the CPU",
            first_line(&e.to_string())
        )),
    }
}

/// The first line of an error or reason, its brackets closed: with RUST_BACKTRACE set, candle
/// appends a backtrace to its errors, which fits neither the title bar nor a one-line message.
fn first_line(text: &str) -> String {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default().trim_end();
    if lines.next().is_none() {
        return first.to_string();
    }
    let open = first.matches('(').count();
    let closed = first.matches(')').count();
    format!("{first} …{}", ")".repeat(open.saturating_sub(closed)))
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

/// The worker: loads the backbone, scores every image and streams the records.
#[allow(clippy::too_many_arguments)]
fn score_into(
    tx: &Sender<ScoringEvent>,
    device: &DeviceChoice,
    dataset: &Dataset,
    artifacts: &Artifacts,
    kind: BackboneKind,
    weights_path: &std::path::Path,
    sha: &str,
    key: &CacheKey,
) -> anyhow::Result<()> {
    let _ = tx.send(ScoringEvent::Progress {
        stage: format!("loading {kind} on {}", device_label(device)),
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

#[cfg(test)]
mod tests {
    use super::first_line;

    #[test]
    fn first_line_drops_a_backtrace_and_closes_brackets() {
        assert_eq!(first_line("CPU requested"), "CPU requested");
        assert_eq!(
            first_line("CPU: device 0 is unavailable (DriverError(X, \"y\")\n   0: bt\n   1: new)"),
            "CPU: device 0 is unavailable (DriverError(X, \"y\") …)"
        );
        assert_eq!(first_line(""), "");
    }
}
