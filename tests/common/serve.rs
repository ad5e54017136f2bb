//! A server to test against: trained artifacts and weights (real ones when the data is here,
//! else a seeded random-weight Lite0 with artifacts trained on generated images), started
//! in-process on an ephemeral loopback port.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::Device;
use reason::data::dataset::Dataset;
use reason::model::head::HeadConfig;
use reason::reliability::metanet::MetaNetConfig;
use reason::reliability::scoring::ScoringModels;
use reason::reliability::train::{train, InferenceHead, MetaModelChoice, TrainOptions};
use reason::serve::{Loaded, Loader, RunningServer, ServeConfig};

use super::synthetic::{self, World};

/// Artifacts, their weights and images to send.
pub struct Models {
    pub artifacts: PathBuf,
    pub weights: PathBuf,
    /// Images of different classes.
    pub images: Vec<PathBuf>,
    /// Keeps the synthetic world's files alive.
    _world: Option<World>,
}

/// Artifacts trained on a synthetic world (no data needed; about 10 s on 2 cores).
pub fn synthetic_models() -> Models {
    synthetic::private_cache();
    // 48 training images: PCA keeps 32 components.
    let world = World::new(16, 2);
    let backbone = world.backbone();
    let dataset = Dataset::open_split(world.root(), "train").unwrap();
    let opts = TrainOptions {
        backbone: &backbone,
        weights_source: "lite0-random.safetensors".into(),
        hub_id: None,
        weights_sha256: world.weights_sha256(),
        dataset: &dataset,
        split: "train".into(),
        subset: None,
        folds: 3,
        seed: 0,
        batch_size: 16,
        head: HeadConfig {
            epochs: 10,
            ..Default::default()
        },
        metanet: MetaNetConfig {
            max_epochs: 20,
            ..Default::default()
        },
        views: 1,
        holdout_classes: 0,
        meta_model: MetaModelChoice::Auto,
        inference_head: InferenceHead::Average,
        target_risk: 0.5,
        delta: 0.2,
        command: "serve test".into(),
    };
    let artifacts = train(&opts, &|_, _, _| {}).unwrap();
    let saved = world.root().join("saved");
    artifacts.save(&saved).unwrap();
    let val = Dataset::open_split(world.root(), "val").unwrap();
    Models {
        artifacts: saved,
        weights: world.weights.clone(),
        images: val.samples.iter().map(|s| s.path.clone()).collect(),
        _world: Some(world),
    }
}

/// The committed artifacts with the real Lite0 weights and val images of three classes, or
/// `None` (said) when the data or `reason_saved/` is absent.
pub fn real_models(test: &str) -> Option<Models> {
    let data = super::data_root(test)?;
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("reason_saved");
    if !artifacts.join("manifest.json").is_file() {
        eprintln!(
            "SKIPPED {test}: no trained artifacts at {}",
            artifacts.display()
        );
        return None;
    }
    let mut images = Vec::new();
    for class in ["n01440764", "n02979186", "n03394916", "n03888257"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("imagenette/val").join(class))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        images.extend(files.into_iter().take(2));
    }
    Some(Models {
        artifacts,
        weights: super::lite0_weights_in(&data),
        images,
        _world: None,
    })
}

/// Loads `models` on the CPU (what `reason serve --device cpu` does, without the CLI).
pub fn loader(models: &Models) -> Loader {
    let (dir, weights) = (models.artifacts.clone(), models.weights.clone());
    Box::new(move || {
        let models = ScoringModels::open(&dir, weights.to_str(), &|_| {})?;
        let backbone = models.load_backbone(&Device::Cpu)?;
        Ok(Loaded {
            models,
            backbone,
            device: "cpu".into(),
        })
    })
}

/// A server on an ephemeral loopback port, ready (models loaded and warmed).
pub fn start(config: ServeConfig, loader: Loader) -> RunningServer {
    let server = RunningServer::start(
        ServeConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            ..config
        },
        loader,
    )
    .unwrap();
    wait_ready(&server);
    server
}

pub fn wait_ready(server: &RunningServer) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if ureq::get(&server.url("/readyz")).call().is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the server was not ready within 120 s");
}

/// `reason predict FILE --json` for one file (own cache folder), its one JSON line.
pub fn predict_json(models: &Models, file: &Path) -> serde_json::Value {
    let cache = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reason"))
        .arg("predict")
        .arg(file)
        .args(["--json", "--device", "cpu", "--artifacts"])
        .arg(&models.artifacts)
        .arg("--weights")
        .arg(&models.weights)
        .env("REASON_CACHE", cache.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "predict failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(text.lines().next().expect("one JSON line")).unwrap()
}

/// POSTs `bytes` as the raw body of /v1/predict under `name`: (status, JSON answer).
pub fn post_raw(server: &RunningServer, name: &str, bytes: &[u8]) -> (u16, serde_json::Value) {
    let answer = ureq::post(&server.url("/v1/predict"))
        .query("name", name)
        .set("Content-Type", "application/octet-stream")
        .send_bytes(bytes);
    read(answer)
}

/// A multipart/form-data body with one part per (field, file name, bytes).
pub fn multipart(parts: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "reason-test-boundary-7f3a";
    let mut body = Vec::new();
    for (field, file, bytes) in parts {
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend(*bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

pub fn post_multipart(
    server: &RunningServer,
    path: &str,
    parts: &[(&str, &str, &[u8])],
) -> (u16, serde_json::Value) {
    let (content_type, body) = multipart(parts);
    read(
        ureq::post(&server.url(path))
            .set("Content-Type", &content_type)
            .send_bytes(&body),
    )
}

/// Status and JSON of an answer, error statuses included.
pub fn read(answer: Result<ureq::Response, ureq::Error>) -> (u16, serde_json::Value) {
    let response = match answer {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("no answer: {e}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, json)
}

/// The answer without its timing (the one part that differs from `predict --json`).
pub fn without_timing(mut v: serde_json::Value) -> serde_json::Value {
    v.as_object_mut().unwrap().remove("timing");
    v
}
