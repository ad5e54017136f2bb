//! The dashboard on records read from a JSON file (a serialised `RecordSet`), without models:
//! for trying the dashboard and for its end-to-end test.
//!
//! Usage: tui_demo RECORDS.json DATASET_ROOT SESSION.json [--stream] [--theme=NAME]
//!        [--image-protocol=auto|kitty|sixel|iterm2|halfblocks]
//!
//! `--stream` feeds the records through a background worker in small batches (as a scoring run
//! would) instead of opening them at once.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::Sender;
use std::time::Duration;

use clap::ValueEnum;
use reason::dashboard::{ImageProtocol, RecordSource, TuiConfig};
use reason::reliability::records::{RecordSet, ScoringEvent};

const USAGE: &str = "usage: tui_demo RECORDS.json DATASET_ROOT SESSION.json [--stream] \
                     [--theme=NAME] [--image-protocol=PROTOCOL] [--image-query-timeout=MS]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut positional = Vec::new();
    let mut stream = false;
    let mut theme = "dark".to_string();
    let mut image_protocol = ImageProtocol::Auto;
    let mut image_query_timeout = Duration::from_secs(2);
    for arg in std::env::args().skip(1) {
        if arg == "--stream" {
            stream = true;
        } else if let Some(name) = arg.strip_prefix("--theme=") {
            theme = name.to_string();
        } else if let Some(p) = arg.strip_prefix("--image-protocol=") {
            image_protocol = ImageProtocol::from_str(p, true)
                .map_err(|e| anyhow::anyhow!("--image-protocol: {e}"))?;
        } else if let Some(ms) = arg.strip_prefix("--image-query-timeout=") {
            image_query_timeout = Duration::from_millis(
                ms.parse()
                    .map_err(|e| anyhow::anyhow!("--image-query-timeout: {e}"))?,
            );
        } else if arg.starts_with("--") {
            anyhow::bail!("unknown option {arg}\n{USAGE}");
        } else {
            positional.push(PathBuf::from(arg));
        }
    }
    let [records, dataset_root, session_path] =
        <[PathBuf; 3]>::try_from(positional).map_err(|_| anyhow::anyhow!("{USAGE}"))?;
    let file = std::fs::File::open(&records)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", records.display()))?;
    let set: RecordSet = serde_json::from_reader(std::io::BufReader::new(file))?;
    let source = if stream {
        RecordSource::Compute(Box::new(move |events| feed(set, events)))
    } else {
        RecordSource::Ready(set)
    };
    reason::dashboard::run(
        TuiConfig {
            dataset_root,
            session_path,
            theme,
            image_protocol,
            image_query_timeout,
            title: records.display().to_string(),
            device: None,
            // The demo has no model: the overlay and neighbours panels say so.
            inspect: None,
        },
        source,
    )
}

/// Sends the records like a scoring run: a header, then batches with progress.
fn feed(mut set: RecordSet, events: Sender<ScoringEvent>) {
    let records = std::mem::take(&mut set.records);
    let total = records.len();
    if events
        .send(ScoringEvent::Started { total, header: set })
        .is_err()
    {
        return;
    }
    let mut done = 0;
    for batch in records.chunks(25) {
        std::thread::sleep(Duration::from_millis(20));
        done += batch.len();
        let sent = events
            .send(ScoringEvent::Progress {
                stage: "scoring".into(),
                done,
                total,
            })
            .and_then(|()| events.send(ScoringEvent::Records(batch.to_vec())));
        if sent.is_err() {
            return;
        }
    }
    let _ = events.send(ScoringEvent::Finished);
}
