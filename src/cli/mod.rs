//! Command-line edge: argument definitions and the code behind each subcommand.

mod bench;
mod dashboard;
mod eval;
mod fetch;
mod predict;
mod progress;
mod train;
pub mod tui;

use clap::{Parser, Subcommand};

use crate::engine::backbone::{weights, Backbone, BackboneKind};
use crate::engine::device::{self, DeviceChoice, DeviceRequest};

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
    pub dashboard: tui::TuiArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The dashboard: browse predictions, tune the rejection threshold, annotate failures.
    Tui(tui::TuiArgs),
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
        let choice = device::select(self.device)?;
        eprintln!("device: {} ({})", choice.label(), choice.reason);
        Ok(choice)
    }

    /// Resolves the weights and loads the backbone on the chosen device; the resolved weights
    /// come back too (their path and origin go into artifacts and compatibility checks).
    pub fn load_backbone(
        &self,
        device: &DeviceChoice,
    ) -> anyhow::Result<(Backbone, weights::ResolvedWeights)> {
        let kind = self.kind()?;
        let resolved = weights::resolve(kind, self.weights.as_deref())?;
        tracing::info!("weights: {resolved}");
        Ok((
            Backbone::load(kind, &resolved.path, &device.device)?,
            resolved,
        ))
    }
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
    }
}
