//! `reason serve` (the HTTP API and its page) and `reason serve-bench` (its load benchmark
//! and soak, beside `predict`'s throughput on the same images). The server itself is
//! `crate::serve`; this file turns flags into its configuration and loads the models.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::http::HeaderValue;

use super::{open_scoring_models, ModelArgs};
use crate::data::dataset::Dataset;
use crate::model::backbone::BackboneKind;
use crate::model::device::DeviceRequest;
use crate::reliability::embedded;
use crate::reliability::scoring::Scorer;
use crate::serve::load::{self, LoadOptions, LoadReport};
use crate::serve::{BatchPolicy, Loaded, Loader, RunningServer, ServeConfig};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on. Loopback by default; any other address is reachable from the
    /// network, and the log says so.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// What shapes the server, shared by `serve` and `serve-bench`.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Trained reliability artifacts to answer with [default: ./reason_saved when it exists,
    /// else the artifacts built into the binary].
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Allow browser calls from this origin (e.g. http://localhost:3000); CORS is off without it.
    #[arg(long)]
    pub cors: Option<String>,
    /// Most images per backbone pass.
    #[arg(long, default_value_t = 16)]
    pub max_batch: usize,
    /// How long a batch that is not full waits for more images (ms).
    #[arg(long, default_value_t = 5)]
    pub batch_wait_ms: u64,
    /// Most images waiting for the model; past it requests get 503 with Retry-After.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Largest request body (MiB).
    #[arg(long, default_value_t = 16)]
    pub max_body_mib: usize,
    /// Longest time for a request, upload included (s); past it the answer is 408.
    #[arg(long, default_value_t = 30)]
    pub request_timeout_s: u64,
}

impl ServerArgs {
    fn config(&self, addr: SocketAddr) -> anyhow::Result<ServeConfig> {
        anyhow::ensure!(self.max_batch >= 1, "--max-batch must be at least 1");
        anyhow::ensure!(self.queue >= 1, "--queue must be at least 1");
        let cors = self
            .cors
            .as_deref()
            .map(|o| HeaderValue::from_str(o).with_context(|| format!("--cors {o:?}")))
            .transpose()?;
        Ok(ServeConfig {
            addr,
            batch: BatchPolicy {
                max_batch: self.max_batch,
                wait: Duration::from_millis(self.batch_wait_ms),
                capacity: self.queue,
            },
            body_limit: self.max_body_mib << 20,
            request_timeout: Duration::from_secs(self.request_timeout_s),
            cors,
        })
    }

    /// Loads the artifacts and their backbone on the requested device (on the worker thread).
    fn loader(&self) -> Loader {
        let explicit = self.artifacts.clone();
        let weights = self.model.weights.clone();
        let backbone = self.model.backbone.clone();
        let device: DeviceRequest = self.model.device;
        Box::new(move || {
            let device = super::select_device(device)?;
            let dir = embedded::resolve(explicit.as_deref())?;
            let models = open_scoring_models(&dir, weights.as_deref())?;
            let asked = BackboneKind::from_name(&backbone)?;
            anyhow::ensure!(
                asked == models.kind,
                "{} was trained on {}, not --backbone {backbone}",
                dir.display(),
                models.kind.name()
            );
            let backbone = models.load_backbone(&device.device)?;
            Ok(Loaded {
                models,
                backbone,
                device: device.label(),
            })
        })
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.server.config(args.addr)?;
    let listener = crate::serve::bind(config.addr)?;
    let addr = listener.local_addr()?;
    if addr.ip().is_loopback() {
        eprintln!("serving on http://{addr} (loopback only)");
    } else {
        eprintln!(
            "serving on http://{addr}: NOT loopback, reachable from other machines \
             (chosen with --addr {})",
            args.addr
        );
        tracing::warn!("listening on non-loopback address {addr}");
    }
    if let Some(origin) = &args.server.cors {
        eprintln!("CORS: browser calls allowed from {origin}");
    }
    let loader = args.server.loader();
    tokio::runtime::Runtime::new()?.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        crate::serve::serve(listener, config, loader, crate::serve::termination_signal()).await
    })?;
    eprintln!("stopped");
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ServeBenchArgs {
    /// Labelled images to send (default: the Imagenette val split in the data folder).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Distinct images, spread over the dataset.
    #[arg(long, default_value_t = 128)]
    pub images: usize,
    /// Concurrent clients, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    pub clients: Vec<usize>,
    /// Requests per client in each run.
    #[arg(long, default_value_t = 16)]
    pub requests: usize,
    /// Longest a run may take (s).
    #[arg(long, default_value_t = 300)]
    pub max_seconds: u64,
    /// Then a soak of this many seconds: 16 clients and hostile requests, memory sampled.
    #[arg(long, default_value_t = 0)]
    pub soak_seconds: u64,
    #[command(flatten)]
    pub server: ServerArgs,
}

pub fn run_bench(args: ServeBenchArgs) -> anyhow::Result<()> {
    let root = match &args.data {
        Some(d) => d.clone(),
        None => super::setup::default_imagenette()?.join("val"),
    };
    let all = Dataset::open(&root).with_context(|| format!("opening {}", root.display()))?;
    let step = (all.samples.len() / args.images.max(1)).max(1);
    let picked = Dataset {
        samples: all
            .samples
            .iter()
            .step_by(step)
            .take(args.images)
            .cloned()
            .collect(),
        ..all.clone()
    };
    let images: Vec<(String, Vec<u8>)> = picked
        .samples
        .iter()
        .map(|s| Ok((s.id.clone(), std::fs::read(&s.path)?)))
        .collect::<std::io::Result<_>>()?;

    // `reason predict`'s work on the same images: the same scorer, batch 16, no cache.
    let loaded = args.server.loader()()?;
    let scorer = Scorer {
        batch_size: 16,
        imagenet_logits: true,
        use_cache: false,
        ..loaded.models.scorer(&loaded.backbone)
    };
    scorer.score(&picked, None, &|_| {})?; // warm-up
    let started = Instant::now();
    let scored = scorer.score(&picked, None, &|_| {})?;
    let predict_rate = scored.records.len() as f64 / started.elapsed().as_secs_f64();
    drop(loaded);
    println!(
        "predict (same scorer, batch 16, cache off): {} images, {predict_rate:.1} images/s",
        scored.records.len()
    );

    let mut config = args.server.config(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    config.request_timeout = Duration::from_secs(120);
    let body_limit = config.body_limit;
    let server = RunningServer::start(config, args.server.loader())?;
    wait_ready(&server)?;
    println!("\n| clients | requests | images/s | ÷ predict | p50 ms | p95 ms | p99 ms | errors | mean batch |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut batches_before = load::batch_sizes(server.addr).map_or((Vec::new(), 0.0), |b| b);
    for &clients in &args.clients {
        let report = load::run(
            server.addr,
            &images,
            &LoadOptions {
                clients,
                requests_per_client: args.requests,
                max_time: Duration::from_secs(args.max_seconds),
                hostile: false,
                body_limit,
            },
        );
        let batches = load::batch_sizes(server.addr).unwrap_or_default();
        let mean = mean_between(&batches_before, &batches);
        batches_before = batches;
        print_row(&report, predict_rate, mean);
    }
    if let Some((buckets, _)) = load::batch_sizes(server.addr) {
        println!("\nbatch sizes formed (cumulative, all runs): {buckets:?}");
    }
    if args.soak_seconds > 0 {
        soak(&server, &images, args.soak_seconds, body_limit)?;
    }
    server.stop()
}

/// Mean batch size of the batches formed between two readings of the histogram.
fn mean_between(before: &(Vec<(String, u64)>, f64), after: &(Vec<(String, u64)>, f64)) -> f64 {
    let count = |b: &(Vec<(String, u64)>, f64)| b.0.last().map_or(0, |(_, c)| *c) as f64;
    let (n0, n1) = (count(before), count(after));
    if n1 <= n0 {
        return f64::NAN;
    }
    (after.1 * n1 - before.1 * n0) / (n1 - n0)
}

fn print_row(r: &LoadReport, predict_rate: f64, mean_batch: f64) {
    println!(
        "| {} | {} | {:.1} | {:.2} | {:.0} | {:.0} | {:.0} | {} | {:.1} |",
        r.clients,
        r.ok + r.error_count(),
        r.throughput(),
        r.throughput() / predict_rate,
        r.percentile(0.50),
        r.percentile(0.95),
        r.percentile(0.99),
        if r.errors.is_empty() {
            "0".to_string()
        } else {
            format!("{:?}", r.errors)
        },
        mean_batch
    );
}

fn wait_ready(server: &RunningServer) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        if ureq::get(&server.url("/readyz")).call().is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("the server was not ready after 300 s")
}

/// 16 clients for `seconds` in slices of 10 s, hostile requests mixed in, memory sampled.
fn soak(
    server: &RunningServer,
    images: &[(String, Vec<u8>)],
    seconds: u64,
    body_limit: usize,
) -> anyhow::Result<()> {
    println!("\nsoak: 16 clients + hostile requests for {seconds} s (RSS of this process: server and clients)");
    println!("| t (s) | images/s | p99 ms | errors | hostile sent | hostile answered wrongly | RSS MiB |");
    println!("|---|---|---|---|---|---|---|");
    let started = Instant::now();
    while started.elapsed().as_secs() < seconds {
        let report = load::run(
            server.addr,
            images,
            &LoadOptions {
                clients: 16,
                requests_per_client: usize::MAX,
                max_time: Duration::from_secs(10),
                hostile: true,
                body_limit,
            },
        );
        println!(
            "| {:.0} | {:.1} | {:.0} | {} | {} | {} | {:.0} |",
            started.elapsed().as_secs_f64(),
            report.throughput(),
            report.percentile(0.99),
            report.error_count(),
            report.hostile_sent,
            if report.hostile_unexpected.is_empty() {
                "0".to_string()
            } else {
                format!("{:?}", report.hostile_unexpected)
            },
            load::rss_mib().unwrap_or(f64::NAN)
        );
    }
    anyhow::ensure!(
        ureq::get(&server.url("/healthz")).call().is_ok(),
        "the server stopped answering during the soak"
    );
    Ok(())
}
