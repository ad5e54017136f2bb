//! A million-row scored table, end to end: rows synthesised with the committed artifacts' layout
//! and scored by their MetaNet, written by the same writer as `reason score`, then opened the way
//! `reason tui --scores` opens it (read, records, first frame) in a fresh process whose peak
//! memory is measured, with slider moves, filter changes, sorts and a search on it, and
//! `reason eval --scores` run on it.
//!
//! `cargo bench --bench scores_1m` (N rows: `SCORES_BENCH_ROWS`, default 1,000,000). Targets:
//! first frame < 1 s from a warm file, slider < 1 ms, filter or sort < 100 ms, < 1 GB resident.

#[path = "../tests/dashboard_support/mod.rs"]
mod dashboard_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ratatui::backend::TestBackend;
use ratatui::Terminal;
use reason::dashboard::session::Session;
use reason::dashboard::{draw, update, Action, App, Theme};
use reason::reliability::artifacts::Artifacts;
use reason::reliability::scoring::record_header;
use reason::report::scores::{self, FileStamp, Identity, RunInfo, ScoreRow, ScoreTable, Shard};

/// The allocator of the `reason` binary, so the bench allocates the way `reason tui` does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const OPEN_ENV: &str = "SCORES_BENCH_OPEN";

fn artifacts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("reason_saved")
}

/// Peak resident memory of this process (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}

/// Resident memory of this process now (VmRSS), in MiB.
fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

/// A memory figure of `/proc/self/status`, in MiB.
fn status_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU time of this process so far, all threads, user + system, in ms (10 ms resolution): the
/// machine may be shared, so wall time alone says little.
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and
    // 13th of them, in clock ticks (100 a second on Linux).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) * 10.0,
        _ => f64::NAN,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// N rows: the synthetic dashboard records' labels, predictions and probabilities, with
/// meta-vectors of the artifacts' layout scored by the artifacts' MetaNet.
fn synthesise(n: usize, artifacts: &Artifacts) -> ScoreTable {
    let set = dashboard_support::record_set(n, 1);
    let header = record_header(artifacts);
    let classes = header.classes.len();
    let dim = artifacts.manifest.layout.dim();
    let mut rng = dashboard_support::Rng::new(7);
    let rows = set
        .records
        .into_iter()
        .map(|mut record| {
            record.label = record.label.map(|l| l % classes as u16);
            record.pred %= classes as u16;
            record.probs.resize(classes, 0.0);
            record.meta = (0..dim).map(|_| 4.0 * rng.unit() - 2.0).collect();
            record.p_correct = artifacts.metanet.p_correct(&record.meta);
            ScoreRow {
                metanet_logit: artifacts.metanet.calibrated_logit(&record.meta),
                baselines: std::array::from_fn(|b| record.diagnostics.msp.ln() - b as f32 * 0.01),
                other_label: None,
                stamp: FileStamp {
                    size: 100_000,
                    mtime_ns: 0,
                },
                record,
            }
        })
        .collect();
    ScoreTable {
        identity: Identity {
            artifacts_sha256: scores::artifacts_sha256(&artifacts_dir()).unwrap(),
            weights_sha256: artifacts.manifest.backbone.weights_sha256.clone(),
            backbone: artifacts.manifest.backbone.name.clone(),
            layout: artifacts.manifest.layout.clone(),
        },
        header,
        run: RunInfo {
            condition: "clean".into(),
            seed: 0,
            split: Some("val".into()),
            dataset_root: "/synthetic".into(),
            shard: Shard::ALL,
            skipped: Vec::new(),
        },
        rows,
    }
}

/// The dashboard side, in a fresh process: open, first frame, then interactions.
fn open_and_interact(path: &Path) {
    // As `reason`'s main does: freed pages stay mapped for 10 s (`mi_option_purge_delay`, 15).
    // SAFETY: sets a plain integer option; mimalloc allows it at any time.
    unsafe { libmimalloc_sys::mi_option_set_default(15, 10_000) };
    // Each step's wall and CPU time (the CPU time of all threads: rayon's workers too).
    let started = Instant::now();
    let cpu_start = cpu_ms();
    let mut last = (Duration::ZERO, cpu_start);
    let mut step = |name: &str| {
        let (wall, cpu) = (started.elapsed(), cpu_ms());
        println!(
            "{name}_ms {:.0} (cpu {:.0}; resident {:.0} MiB, peak {:.0} MiB)",
            ms(wall - last.0),
            cpu - last.1,
            rss_mib(),
            peak_rss_mib()
        );
        last = (wall, cpu);
    };
    // As `reason tui --scores FILE` reads it.
    let (table, _) = scores::read_union(&[path.to_path_buf()], scores::Part::Records).unwrap();
    step("read_table");
    let set = table.into_record_set();
    let n = set.records.len();
    step("records");
    let mut app = App::new(set, Session::default(), Theme::dark(), "bench");
    update(
        &mut app,
        Action::Resize {
            width: 120,
            height: 40,
        },
    );
    step("app_new");
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    terminal.draw(|frame| draw(frame, &app)).unwrap();
    step("draw");
    println!("rows {n}");
    println!(
        "first_frame_ms {:.0} (cpu {:.0})",
        ms(started.elapsed()),
        cpu_ms() - cpu_start
    );
    println!("peak_rss_after_open_mib {:.0}", peak_rss_mib());

    let moves = 2000;
    let t = Instant::now();
    for i in 0..moves {
        let step = if i % 2 == 0 { 0.01 } else { -0.01 };
        update(&mut app, Action::ThresholdBy(step));
    }
    println!("slider_move_us {:.2}", ms(t.elapsed()) * 1e3 / moves as f64);

    let mut worst_filter: f64 = 0.0;
    for _ in 0..5 {
        let t = Instant::now();
        update(&mut app, Action::NextFilter);
        terminal.draw(|frame| draw(frame, &app)).unwrap();
        worst_filter = worst_filter.max(ms(t.elapsed()));
    }
    println!("filter_change_worst_ms {worst_filter:.1}");
    update(&mut app, Action::First);
    while app.filter != reason::dashboard::session::Filter::All {
        update(&mut app, Action::NextFilter);
    }

    let mut worst_sort: f64 = 0.0;
    for _ in 0..6 {
        let t = Instant::now();
        update(&mut app, Action::NextSort);
        terminal.draw(|frame| draw(frame, &app)).unwrap();
        worst_sort = worst_sort.max(ms(t.elapsed()));
    }
    println!("sort_change_worst_ms {worst_sort:.1}");

    update(&mut app, Action::StartSearch);
    let mut worst_key: f64 = 0.0;
    let mut keys = Vec::new();
    let cpu = cpu_ms();
    // The first key also builds the search index; `v` matches every row, `val_0004` a few.
    for c in "val_0004".chars() {
        let t = Instant::now();
        update(&mut app, Action::Input(c));
        terminal.draw(|frame| draw(frame, &app)).unwrap();
        keys.push(format!("{:.1}", ms(t.elapsed())));
        worst_key = worst_key.max(ms(t.elapsed()));
    }
    let search_cpu = cpu_ms() - cpu;
    let shown = app.view.len();
    // Backspace widens the search again.
    let t = Instant::now();
    update(&mut app, Action::InputBackspace);
    terminal.draw(|frame| draw(frame, &app)).unwrap();
    let backspace = ms(t.elapsed());
    let t = Instant::now();
    update(&mut app, Action::InputSubmit);
    terminal.draw(|frame| draw(frame, &app)).unwrap();
    println!(
        "search_keystroke_worst_ms {worst_key:.1} (each: {}; cpu {search_cpu:.0} for all 8; \
         {shown} rows match)",
        keys.join(", ")
    );
    println!("search_backspace_ms {backspace:.1}");
    println!("search_submit_ms {:.1}", ms(t.elapsed()));
    println!("peak_rss_mib {:.0}", peak_rss_mib());
}

fn main() {
    if let Ok(path) = std::env::var(OPEN_ENV) {
        open_and_interact(Path::new(&path));
        return;
    }
    // `cargo bench` passes --bench; anything else (cargo test --benches) runs a small size.
    let n: usize = std::env::var("SCORES_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if std::env::args().any(|a| a == "--bench") {
            1_000_000
        } else {
            10_000
        });
    let artifacts = Artifacts::load(&artifacts_dir()).expect("reason_saved/ loads");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scores.parquet");
    // `SCORES_BENCH_KEEP=FILE` keeps the table, to profile its opening with `SCORES_BENCH_OPEN`.
    let path = std::env::var_os("SCORES_BENCH_KEEP").map_or(path, PathBuf::from);
    let t = Instant::now();
    let table = synthesise(n, &artifacts);
    println!("synthesise_s {:.1}", t.elapsed().as_secs_f64());
    let t = Instant::now();
    scores::write(&path, &table).unwrap();
    drop(table);
    println!("write_s {:.1}", t.elapsed().as_secs_f64());
    println!(
        "file_mib {:.0}",
        std::fs::metadata(&path).unwrap().len() as f64 / (1 << 20) as f64
    );
    // Warm the page cache, as a second opening of the same file finds it.
    std::fs::read(&path).unwrap();

    let child = Command::new(std::env::current_exe().unwrap())
        .env(OPEN_ENV, &path)
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "{}",
        String::from_utf8_lossy(&child.stderr)
    );
    print!("{}", String::from_utf8_lossy(&child.stdout));

    // The paired bootstrap dominates eval at this size; its resamples are a parameter.
    let resamples = std::env::var("SCORES_BENCH_BOOTSTRAP").unwrap_or_else(|_| "20".into());
    let t = Instant::now();
    let eval = Command::new(env!("CARGO_BIN_EXE_reason"))
        .args(["eval", "--scores"])
        .arg(&path)
        .arg("--artifacts")
        .arg(artifacts_dir())
        .args(["--bootstrap", &resamples, "--plots"])
        .arg(dir.path().join("plots"))
        .output()
        .unwrap();
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    println!(
        "eval_scores_s {:.1} (bootstrap {resamples})",
        t.elapsed().as_secs_f64()
    );
}
