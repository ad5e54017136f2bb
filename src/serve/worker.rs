//! The model worker: one thread owns the backbone and the artifacts and scores dynamic batches
//! taken from a bounded queue; a second thread forms the batches and decodes them (in parallel)
//! while the first computes, as `model::pipeline` overlaps decoding with compute for `predict`.
//!
//! Admission is the only place a request can be turned away for load: a request's images are
//! admitted together or not at all (503 + Retry-After), so the backlog never exceeds the
//! queue's capacity.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;
use rayon::prelude::*;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::error::ApiError;
use super::metrics::Metrics;
use crate::data::dataset::{Dataset, Sample};
use crate::data::imageio;
use crate::data::preprocess::Preprocess;
use crate::model::backbone::Backbone;
use crate::model::classify::{predict_one, Prediction};
use crate::reliability::prediction::ReliablePrediction;
use crate::reliability::records::SampleRecord;
use crate::reliability::scoring::{PreparedImage, Scorer, ScoringModels};

/// What the worker scores with. Loading takes seconds, so it happens on the worker thread
/// while the server already answers `/healthz` (and `/readyz` says not yet).
pub struct Loaded {
    pub models: ScoringModels,
    pub backbone: Backbone,
    /// The device, in words, for `/v1/model`.
    pub device: String,
}

pub type Loader = Box<dyn FnOnce() -> anyhow::Result<Loaded> + Send>;

/// One image waiting to be scored, and where its answer goes.
pub struct Job {
    pub id: String,
    pub bytes: Bytes,
    pub admitted: Instant,
    pub reply: oneshot::Sender<Result<Answer, ApiError>>,
}

/// One image's answer: `predict --json`'s object, as text, and the timing.
pub struct Answer {
    /// Serialised straight from `ReliablePrediction`, as `predict` prints it: through a
    /// `serde_json::Value` its f32 numbers would come out with f64 digits instead.
    pub prediction: String,
    pub timing: Timing,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Timing {
    /// Admitted until its batch started, decoding excluded.
    pub queue_ms: f64,
    pub decode_ms: f64,
    /// The batch's backbone pass and meta-features.
    pub model_ms: f64,
    pub batch_size: usize,
    /// Request arrival to answer (set by the handler).
    pub total_ms: f64,
}

impl Answer {
    /// The prediction object with `"timing"` added as its last member.
    pub fn to_json(&self) -> String {
        let timing = serde_json::to_string(&self.timing).expect("timing serialises");
        // `prediction` is a JSON object with members: drop its closing brace, append.
        let open = self.prediction.trim_end().strip_suffix('}').unwrap_or("{");
        format!("{open},\"timing\":{timing}}}")
    }
}

#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    /// Most images per backbone pass.
    pub max_batch: usize,
    /// How long a batch that is not full waits for more images.
    pub wait: Duration,
    /// Most images admitted and not yet taken by the worker.
    pub capacity: usize,
}

/// The sending side of the bounded queue, shared by the request handlers.
pub struct Queue {
    tx: SyncSender<Job>,
    depth: Arc<AtomicUsize>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

impl Queue {
    /// Admits every job or none: 503 when they do not all fit.
    pub fn submit(&self, jobs: Vec<Job>) -> Result<(), ApiError> {
        let n = jobs.len();
        self.depth
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |d| {
                (d + n <= self.capacity).then_some(d + n)
            })
            .map_err(|_| {
                ApiError::unavailable(
                    "queue_full",
                    format!(
                        "the model queue is full ({} images waiting); retry shortly",
                        self.capacity
                    ),
                )
            })?;
        self.metrics
            .queue_depth
            .set(self.depth.load(Ordering::SeqCst) as i64);
        for job in jobs {
            // Never full: the depth count reserved the room. It fails only when the worker
            // is gone (it stopped on a load failure), and then the reply says so.
            if let Err(e) = self.tx.try_send(job) {
                self.depth.fetch_sub(1, Ordering::SeqCst);
                let job = match e {
                    std::sync::mpsc::TrySendError::Full(j)
                    | std::sync::mpsc::TrySendError::Disconnected(j) => j,
                };
                let _ = job.reply.send(Err(ApiError::unavailable(
                    "worker_stopped",
                    "the model worker is not running",
                )));
            }
        }
        Ok(())
    }
}

/// What the worker publishes once the models are loaded and warmed.
#[derive(Default)]
pub struct Status {
    pub ready: AtomicBool,
    /// The `/v1/model` document.
    pub model: OnceLock<Value>,
}

/// Starts the worker; `on_failure` receives a load failure (the server then stops).
pub fn start(
    loader: Loader,
    policy: BatchPolicy,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
    on_failure: oneshot::Sender<anyhow::Error>,
) -> (Queue, std::thread::JoinHandle<()>) {
    let (tx, rx) = sync_channel(policy.capacity.max(1));
    let depth = Arc::new(AtomicUsize::new(0));
    let queue = Queue {
        tx,
        depth: depth.clone(),
        capacity: policy.capacity,
        metrics: metrics.clone(),
    };
    let handle = std::thread::Builder::new()
        .name("reason-model".into())
        .spawn(move || {
            let loaded = match loader() {
                Ok(l) => l,
                Err(e) => {
                    let _ = on_failure.send(e);
                    return;
                }
            };
            model_loop(loaded, rx, depth, policy, metrics, status)
        })
        .expect("spawning the model thread");
    (queue, handle)
}

/// A decoded batch on its way from the batcher to the model thread.
type Prepared = Vec<(Job, PreparedImage, Duration)>;

fn model_loop(
    loaded: Loaded,
    rx: Receiver<Job>,
    depth: Arc<AtomicUsize>,
    policy: BatchPolicy,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
) {
    let models = &loaded.models;
    let scorer = Scorer {
        imagenet_logits: true,
        // Uploads are not files: nothing to key a cache on, and nothing worth keeping.
        use_cache: false,
        ..models.scorer(&loaded.backbone)
    };
    let preprocess = loaded.backbone.kind.preprocess();
    // Warm-up: the first pass allocates and sizes every buffer; a client should not pay it.
    let side = preprocess.size as usize;
    let warm = PreparedImage {
        id: "warm-up".into(),
        chw: vec![0.0; 3 * side * side],
        truncated: false,
    };
    if let Err(e) = scorer.score_images(&[warm]) {
        tracing::error!("warm-up pass failed: {e}");
    }
    let _ = status
        .model
        .set(model_document(&loaded, &preprocess, &policy));
    let (to_model, batches) = sync_channel::<Prepared>(0);
    let batcher = {
        let metrics = metrics.clone();
        std::thread::Builder::new()
            .name("reason-batcher".into())
            .spawn(move || batch_loop(rx, depth, policy, preprocess, to_model, &metrics))
            .expect("spawning the batcher thread")
    };
    status.ready.store(true, Ordering::SeqCst);
    tracing::info!("model worker ready");
    for batch in batches {
        metrics.batch_size.observe(batch.len() as f64);
        let started = Instant::now();
        let images: Vec<PreparedImage> = batch.iter().map(|(_, image, _)| image.clone()).collect();
        // A panic in one batch fails that batch's requests, not the server.
        let scored = std::panic::catch_unwind(AssertUnwindSafe(|| scorer.score_images(&images)))
            .map_err(|_| "the model panicked on this batch".to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        let model_time = started.elapsed();
        let n = batch.len();
        match scored {
            Ok(rows) => {
                for ((job, _, decode_time), (record, extra)) in batch.into_iter().zip(rows) {
                    let logits = extra.imagenet_logits.unwrap_or_default();
                    let answer =
                        prediction_json(&record, &logits, models).map(|prediction| Answer {
                            prediction,
                            timing: Timing {
                                queue_ms: ms(started
                                    .duration_since(job.admitted)
                                    .saturating_sub(decode_time)),
                                decode_ms: ms(decode_time),
                                model_ms: ms(model_time),
                                batch_size: n,
                                total_ms: 0.0,
                            },
                        });
                    let _ = job.reply.send(answer);
                }
            }
            Err(message) => {
                tracing::error!("scoring a batch of {n} failed: {message}");
                for (job, _, _) in batch {
                    let _ = job.reply.send(Err(ApiError::internal(message.clone())));
                }
            }
        }
    }
    let _ = batcher.join();
}

/// The object `reason predict --json` prints for a file named `record.id` (a single file is an
/// unlabelled one-sample dataset there too), built and serialised by the same code.
fn prediction_json(
    record: &SampleRecord,
    logits: &[f32],
    models: &ScoringModels,
) -> Result<String, ApiError> {
    let upload = Dataset {
        root: PathBuf::new(),
        classes: Vec::new(),
        samples: vec![Sample {
            id: record.id.clone(),
            path: PathBuf::new(),
            label: None,
        }],
    };
    let imagenet = Prediction {
        truncated: record.truncated,
        ..predict_one(&upload, 0, logits, None)
    };
    serde_json::to_string(&ReliablePrediction::new(
        imagenet,
        record,
        &models.artifacts,
    ))
    .map_err(|e| ApiError::internal(e.to_string()))
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Forms batches: the first waiting image, then whatever else is queued, waiting at most
/// `policy.wait` for the batch to fill; decodes them in parallel and hands them on.
fn batch_loop(
    rx: Receiver<Job>,
    depth: Arc<AtomicUsize>,
    policy: BatchPolicy,
    preprocess: Preprocess,
    to_model: SyncSender<Prepared>,
    metrics: &Metrics,
) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let deadline = Instant::now() + policy.wait;
        while jobs.len() < policy.max_batch.max(1) {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(job) => jobs.push(job),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        depth.fetch_sub(jobs.len(), Ordering::SeqCst);
        metrics.queue_depth.set(depth.load(Ordering::SeqCst) as i64);
        // A client that left (disconnect, timeout) is not worth a backbone pass.
        let (live, gone): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(|j| !j.reply.is_closed());
        for _ in gone {
            metrics.error("client_gone");
        }
        let decoded: Vec<(Job, Result<PreparedImage, ApiError>, Duration)> = live
            .into_par_iter()
            .map(|job| {
                let started = Instant::now();
                let prepared = prepare(&job, &preprocess);
                (job, prepared, started.elapsed())
            })
            .collect();
        let mut batch = Vec::new();
        for (job, prepared, took) in decoded {
            match prepared {
                Ok(image) => batch.push((job, image, took)),
                Err(e) => {
                    let _ = job.reply.send(Err(e));
                }
            }
        }
        if !batch.is_empty() && to_model.send(batch).is_err() {
            return;
        }
    }
}

/// Decodes an upload with the repository's one decoder (limits, EXIF, truncation) and
/// preprocesses it; a failure is the client's: 422 with the decoder's reason.
fn prepare(job: &Job, preprocess: &Preprocess) -> Result<PreparedImage, ApiError> {
    let decoded = imageio::decode_bytes(&job.bytes, &job.id).map_err(|e| {
        let reason = match &e {
            crate::error::Error::Decode { reason, .. } => reason.clone(),
            other => other.to_string(),
        };
        let kind = if reason == imageio::NOT_AN_IMAGE {
            "not_an_image"
        } else if reason.starts_with(imageio::REFUSED) {
            "image_too_large"
        } else {
            "undecodable_image"
        };
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, kind, reason)
    })?;
    Ok(PreparedImage {
        id: job.id.clone(),
        chw: preprocess.apply(&decoded.image),
        truncated: decoded.truncated,
    })
}

/// `GET /v1/model`: what answers, and the numbers needed to read its answers.
fn model_document(loaded: &Loaded, preprocess: &Preprocess, policy: &BatchPolicy) -> Value {
    let m = &loaded.models.artifacts.manifest;
    let certificate = &m.calibration.certificate;
    json!({
        "backbone": m.backbone.name,
        "weights": {
            "source": m.backbone.weights_source,
            "hub_id": m.backbone.hub_id,
            "sha256": loaded.models.weights_sha256,
        },
        "device": loaded.device,
        "preprocess": preprocess,
        "classes": m.classes.iter().zip(&m.class_names)
            .map(|(c, n)| json!({ "class": c, "name": n })).collect::<Vec<_>>(),
        "layout": m.layout,
        "meta_dim": m.layout.dim(),
        "meta_model": m.protocol.meta_model,
        "threshold": m.calibration.threshold,
        "certificate": {
            "statement": certificate.statement(),
            "feasible": certificate.feasible,
            "threshold": m.calibration.threshold,
            "target_risk": certificate.target_risk,
            "delta": certificate.delta,
            "accepted": certificate.accepted,
            "errors": certificate.errors,
        },
        "serving": {
            "max_batch": policy.max_batch,
            "batch_wait_ms": policy.wait.as_secs_f64() * 1e3,
            "queue_capacity": policy.capacity,
        },
    })
}
