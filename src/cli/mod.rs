//! Command-line edge: argument definitions and the code behind each subcommand.

mod bench;
pub mod dashboard;
pub mod errors;
mod eval;
mod explain;
mod fetch;
mod predict;
mod progress;
mod score;
mod serve;
mod setup;
mod train;

use std::path::Path;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::reliability::scoring::ScoringModels;

use crate::model::backbone::{weights, Backbone, BackboneKind};
use crate::model::device::{self, DeviceChoice, DeviceRequest};
use progress::DownloadBar;

#[derive(Debug, Parser)]
#[command(
    name = "reason",
    version,
    about = "Can this image classifier's prediction be trusted?"
)]
pub struct Cli {
    /// More log output (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Without a subcommand, the dashboard opens (`reason [OPTIONS]` = `reason tui [OPTIONS]`).
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub dashboard: dashboard::DashboardArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The dashboard: browse predictions, tune the rejection threshold, annotate failures.
    Tui(dashboard::DashboardArgs),
    /// Classify images or dataset folders with an ImageNet backbone.
    Predict(predict::PredictArgs),
    /// Download Imagenette or backbone weights.
    Fetch(fetch::FetchArgs),
    /// Measure decoding and network throughput on this machine.
    Bench(bench::BenchArgs),
    /// Train the reliability model (head, meta-features, MetaNet) into reason_saved/.
    Train(train::TrainArgs),
    /// Evaluate P(correct) against every baseline on the evaluation split.
    Eval(eval::EvalArgs),
    /// Serve P(correct) over HTTP: the JSON API and a web page.
    Serve(serve::ServeArgs),
    /// Load-test `serve` on loopback beside `predict`'s throughput (and soak it).
    ServeBench(serve::ServeBenchArgs),
    /// Score a dataset (or a shard of it) into a Parquet table that tui/eval --scores read.
    Score(score::ScoreArgs),
    /// Write a PNG per image: saliency overlays, top-5, P(correct) and the nearest training images.
    Explain(explain::ExplainArgs),
}

/// Options shared by every command that runs a backbone.
#[derive(Debug, clap::Args)]
pub struct ModelArgs {
    /// Backbone architecture.
    #[arg(long, default_value = "tf_efficientnet_lite0", value_parser = BackboneKind::ALL_NAMES)]
    pub backbone: String,
    /// Weights: a .safetensors path or a Hugging Face hub id (default: <data>/weights/<backbone>.safetensors,
    /// else the backbone's timm hub repository).
    #[arg(long)]
    pub weights: Option<String>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: DeviceRequest,
}

impl ModelArgs {
    pub fn kind(&self) -> anyhow::Result<BackboneKind> {
        Ok(BackboneKind::from_name(&self.backbone)?)
    }

    pub fn device(&self) -> anyhow::Result<DeviceChoice> {
        select_device(self.device)
    }

    /// Resolves the weights and loads the backbone on the chosen device; the resolved weights
    /// come back too (their path and origin go into artifacts and compatibility checks).
    pub fn load_backbone(
        &self,
        device: &DeviceChoice,
    ) -> anyhow::Result<(Backbone, weights::ResolvedWeights)> {
        let kind = self.kind()?;
        let bar = DownloadBar::new();
        let resolved = weights::resolve(kind, self.weights.as_deref(), &|event| bar.update(event))?;
        tracing::info!("weights: {resolved}");
        Ok((
            Backbone::load(kind, &resolved.path, &device.device)?,
            resolved,
        ))
    }
}

/// The requested device, said on stderr with the reason it was chosen.
/// A CUDA device that cannot be opened is an error that names `--device cpu`.
fn select_device(request: DeviceRequest) -> anyhow::Result<DeviceChoice> {
    let choice = match device::select(request) {
        Ok(choice) => choice,
        // A CPU-only build's message already says how to rebuild or to use --device cpu.
        Err(e) if !device::cuda_compiled_in() => return Err(e.into()),
        Err(e) => anyhow::bail!(
            "{}; check the driver with `nvidia-smi`, or run with --device cpu",
            first_line(&e.to_string())
        ),
    };
    eprintln!(
        "device: {} ({})",
        choice.label(),
        first_line(&choice.reason)
    );
    Ok(choice)
}

/// The first line of an error or reason, its brackets closed: with RUST_BACKTRACE set, candle
/// appends a backtrace to its errors, which fits neither the title bar nor a one-line message.
pub(crate) fn first_line(text: &str) -> String {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default().trim_end();
    if lines.next().is_none() {
        return first.to_string();
    }
    let open = first.matches('(').count();
    let closed = first.matches(')').count();
    format!("{first} …{}", ")".repeat(open.saturating_sub(closed)))
}

/// Trained artifacts in `dir` with their weights, checked against each other; the error says
/// how to get artifacts.
fn open_scoring_models(dir: &Path, weights: Option<&str>) -> anyhow::Result<ScoringModels> {
    let bar = DownloadBar::new();
    ScoringModels::open(dir, weights, &|event| bar.update(event)).with_context(|| {
        format!(
            "loading {} (train them with `reason train`, or pass --artifacts DIR)",
            dir.display()
        )
    })
}

/// `part` of the scored tables that `patterns` name (files or globs), read as one; says how
/// many parts and, for shards, which are missing.
fn read_scores(
    patterns: &[String],
    part: crate::report::scores::Part,
) -> anyhow::Result<crate::report::scores::ScoreTable> {
    use crate::report::scores;
    let files = scores::expand(patterns)?;
    let (table, shards) = scores::read_union(&files, part)?;
    let missing = scores::missing_shards(&shards);
    eprintln!(
        "scores: {} rows from {} file{}{}",
        table.rows.len(),
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        if missing.is_empty() {
            String::new()
        } else {
            format!("; missing shards {missing:?}: the table is incomplete")
        }
    );
    Ok(table)
}

pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Tui(cli.dashboard)) {
        Command::Tui(args) => dashboard::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Fetch(args) => fetch::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Serve(args) => serve::run(args),
        Command::ServeBench(args) => serve::run_bench(args),
        Command::Score(args) => score::run(args),
        Command::Explain(args) => explain::run(args),
    }
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
