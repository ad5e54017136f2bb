//! `reason` as a new user meets it: the built binary in an empty folder, with an empty data
//! folder (`$REASON_DATA`) and an empty Hugging Face cache (`$HF_HOME`), Imagenette and the
//! weights served by a local server imitating fast.ai's and the hub's. It must say what is
//! missing, ask before downloading (on a terminal only), download, and open the dashboard on
//! the downloaded data with the built-in artifacts; offline or unanswered, it must stop with the
//! commands that get the data.

mod common;
mod dashboard_support;
mod http_server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use dashboard_support::pty::{assert_restored, wait_until, Tui};
use flate2::{write::GzEncoder, Compression};
use http_server::{hang_up_server, Mode, TestServer};
use portable_pty::CommandBuilder;
use reason::reliability::records::RecordSet;

const HUB_ID: &str = "timm/tf_efficientnet_lite0.in1k";
const ARCHIVE: &str = "/imagenette2-320.tgz";
/// Loading the backbone and scoring with input gradients on a busy 2-core CPU.
const SCORING_TIMEOUT: Duration = Duration::from_secs(180);

/// An empty home for one run: working folder, data folder, Hugging Face home and cache, all
/// empty, so nothing on the machine is found.
struct Fresh {
    tmp: tempfile::TempDir,
}

impl Fresh {
    fn new() -> Fresh {
        let tmp = tempfile::tempdir().unwrap();
        for dir in ["work", "data", "hf", "cache"] {
            std::fs::create_dir(tmp.path().join(dir)).unwrap();
        }
        Fresh { tmp }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// What the binary gets: `(name, value)` pairs naming the empty folders and the servers.
    fn env(&self, imagenette_url: &str, hub: &str) -> Vec<(&'static str, String)> {
        let shown = |p: PathBuf| p.to_str().unwrap().to_string();
        vec![
            ("REASON_DATA", shown(self.path("data"))),
            ("HF_HOME", shown(self.path("hf"))),
            ("REASON_CACHE", shown(self.path("cache"))),
            ("REASON_IMAGENETTE_URL", imagenette_url.to_string()),
            ("HF_ENDPOINT", hub.to_string()),
            ("RUST_BACKTRACE", "0".to_string()),
        ]
    }

    /// Runs `reason ARGS` without a terminal (stdin empty, output captured).
    fn run(&self, args: &[&str], imagenette_url: &str, hub: &str) -> Output {
        Command::new(env!("CARGO_BIN_EXE_reason"))
            .args(args)
            .current_dir(self.path("work"))
            .envs(self.env(imagenette_url, hub))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `reason ARGS` in a pseudo-terminal.
    fn tui(&self, args: &[&str], imagenette_url: &str, hub: &str) -> Tui {
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_reason"));
        cmd.args(args);
        cmd.cwd(self.path("work"));
        for (name, value) in self.env(imagenette_url, hub) {
            cmd.env(name, value);
        }
        Tui::start(cmd)
    }
}

/// An imagenette2-320 archive holding `val` images (the first `n` of the real tench class) and
/// one training image, as fast.ai's archive lays them out.
fn imagenette_archive(data: &Path, n: usize) -> (Vec<u8>, Vec<String>) {
    let class = "n01440764";
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("imagenette/val").join(class))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    let mut ids = Vec::new();
    for (i, file) in files.iter().take(n + 1).enumerate() {
        let name = file.file_name().unwrap().to_str().unwrap();
        let split = if i == 0 { "train" } else { "val" };
        if i > 0 {
            ids.push(format!("{class}/{name}"));
        }
        builder
            .append_path_with_name(file, format!("imagenette2-320/{split}/{class}/{name}"))
            .unwrap();
    }
    (builder.into_inner().unwrap().finish().unwrap(), ids)
}

/// The records the dashboard's scoring worker stored in the (empty before) cache folder.
fn cached_records(cache: &Path) -> Option<RecordSet> {
    let entry = std::fs::read_dir(cache).ok()?.find_map(|e| {
        let path = e.ok()?.path();
        let name = path.file_name()?.to_str()?;
        (name.starts_with("records-") && name.ends_with(".parquet")).then_some(path)
    })?;
    // A scored table, written atomically: once the name exists the file is complete.
    Some(
        reason::report::scores::read(&entry)
            .unwrap()
            .into_record_set(),
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_new_user_answers_yes_and_the_dashboard_scores_the_downloaded_data() {
    let test = "a_new_user_answers_yes_and_the_dashboard_scores_the_downloaded_data";
    let Some(data) = common::data_root(test) else {
        return;
    };
    let server = TestServer::start();
    let (archive, ids) = imagenette_archive(&data, 3);
    server.serve(ARCHIVE, &archive, Mode::Ranges);
    // The real weights: the built-in artifacts were trained with them (sha256 checked).
    let weights = std::fs::read(common::lite0_weights_in(&data)).unwrap();
    server.serve_hub_file(HUB_ID, "model.safetensors", &weights);

    let fresh = Fresh::new();
    let args = ["--device", "cpu", "--image-protocol", "halfblocks"];
    let mut tui = fresh
        .tui(&args, &server.url(ARCHIVE), &server.base)
        .timeout(SCORING_TIMEOUT);
    tui.wait_for("[Y/n]");
    let question = tui.text();
    // It said what it looked for and where, and what it would download, with the size.
    let data_dir = fresh.path("data");
    for needle in [
        "no Imagenette in the data folder",
        data_dir.to_str().unwrap(),
        "imagenette2-320",
        "about 330 MB",
        "no tf_efficientnet_lite0 weights",
        HUB_ID,
        "about 19 MB",
    ] {
        assert!(question.contains(needle), "{needle:?} not in:\n{question}");
    }
    assert!(server.requests().is_empty(), "downloaded before the answer");
    tui.keys("y\r");

    let scored = format!("scored {} samples", ids.len());
    tui.wait_for(&scored);
    let records = wait_until(SCORING_TIMEOUT, "the records in the cache", || {
        cached_records(&fresh.path("cache"))
    })
    .unwrap_or_else(|what| panic!("{what}; output:\n{}", tui.text()));
    tui.keys("q");
    let (ok, output) = tui.finish();
    assert_restored(ok, &output);

    // Both downloads landed where REASON looks by default, and were complete.
    assert!(data_dir.join("imagenette2-320/.reason-complete").is_file());
    let cached = reason::data::download::cached_hub_weights_in(
        &fresh.path("hf/hub"),
        HUB_ID,
        "model.safetensors",
    )
    .expect("the weights in the hub cache");
    assert!(std::fs::read(cached).unwrap() == weights);
    // Scored with the built-in artifacts: every val image, labelled, with P(correct).
    let mut scored_ids: Vec<&str> = records.records.iter().map(|r| r.id.as_str()).collect();
    scored_ids.sort();
    assert_eq!(scored_ids, ids);
    let first = &records.records[0];
    assert_eq!(
        first.label.map(usize::from),
        records.classes.iter().position(|c| c == "n01440764")
    );
    assert!(
        (0.0..=1.0).contains(&first.p_correct),
        "{}",
        first.p_correct
    );
    // A second run finds both and needs nothing more: it gets as far as the session name
    // (checked last, so it stops there before taking the terminal).
    let again = fresh.run(&["--no-download", "--session", "bad/name"], "", "");
    let stderr = text(&again.stderr);
    assert!(stderr.contains("invalid session name"), "{stderr}");
    assert!(!stderr.contains("no Imagenette"), "{stderr}");
}

#[test]
fn offline_it_says_how_to_get_the_data_and_fails() {
    let offline = hang_up_server();
    let fresh = Fresh::new();
    let url = format!("{offline}{ARCHIVE}");
    let out = fresh.run(&["--yes"], &url, &offline);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for needle in [
        "could not reach",
        url.as_str(),
        "  reason fetch imagenette\n",
        &format!("  reason fetch weights {HUB_ID}\n"),
        "reason --folder DIR",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in:\n{stderr}");
    }
    let errors = stderr.lines().filter(|l| l.starts_with("error: ")).count();
    assert_eq!(errors, 1, "{stderr}");
    // Nothing half-done is left where the data would go.
    let left: Vec<_> = std::fs::read_dir(fresh.path("data")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn without_an_answer_nothing_is_downloaded() {
    let server = TestServer::start();
    let fresh = Fresh::new();
    let url = server.url(ARCHIVE);

    // No terminal: no question, the commands instead.
    let out = fresh.run(&[], &url, &server.base);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.contains("[Y/n]"), "{stderr}");
    assert!(stderr.contains("no terminal to ask on"), "{stderr}");
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(stderr.contains("  reason fetch imagenette\n"), "{stderr}");

    // --no-download, even on a terminal.
    let tui = fresh.tui(&["--no-download"], &url, &server.base);
    let (ok, output) = tui.finish();
    let output = text(&output);
    assert!(!ok);
    assert!(!output.contains("[Y/n]"), "{output}");
    assert!(
        output.contains("Not downloading (--no-download)"),
        "{output}"
    );

    // Answered no on a terminal.
    let mut tui = fresh.tui(&[], &url, &server.base);
    tui.wait_for("[Y/n]");
    tui.keys("n\r");
    let (ok, output) = tui.finish();
    let output = text(&output);
    assert!(!ok);
    assert!(output.contains("Nothing was downloaded"), "{output}");
    assert!(output.contains("reason fetch imagenette"), "{output}");

    assert!(server.requests().is_empty(), "{:?}", server.requests());
}
