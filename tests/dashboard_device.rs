//! The dashboard's device: `reason tui --device` is resolved like the other commands' device,
//! before the terminal is taken over, and the title bar names the device and why it was chosen.

mod dashboard_support;

use std::process::{Command, Output, Stdio};

use dashboard_support::{app, record_set};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use reason::dashboard::session::Session;
use reason::dashboard::{draw, update, Action, App, ScoringDevice, Theme};
use reason::reliability::records::ScoringEvent;

fn title_row(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| draw(frame, app)).unwrap();
    let buffer = terminal.backend().buffer();
    (0..width)
        .map(|x| buffer[(x, 0)].symbol())
        .collect::<String>()
        .trim_end()
        .to_string()
}

fn cuda(reason: &str) -> Option<ScoringDevice> {
    Some(ScoringDevice {
        label: "cuda:0".into(),
        reason: reason.into(),
    })
}

#[test]
fn title_bar_names_the_device_and_why_it_was_chosen() {
    let mut app = app(record_set(40, 1), Session::default(), 120, 40);
    app.device = cuda("cuda:0 requested");
    let title = title_row(&app, 120, 40);
    insta::assert_snapshot!("title_cuda_120x40", title);
    assert!(title.contains(" · cuda:0 (cuda:0 requested)"), "{title}");

    app.device = Some(ScoringDevice {
        label: "cpu".into(),
        reason: "CPU: this build has no CUDA support (build with --features cuda)".into(),
    });
    let title = title_row(&app, 120, 40);
    assert!(
        title.contains(" · cpu (CPU: this build has no CUDA support"),
        "{title}"
    );

    // Without a device (no scoring behind the dashboard) the title has no device part.
    app.device = None;
    let title = title_row(&app, 120, 40);
    assert!(!title.contains("cpu") && !title.contains("cuda"), "{title}");
}

#[test]
fn title_bar_keeps_the_device_beside_the_scoring_progress() {
    let mut app = App::scoring(Session::default(), Theme::dark(), "val");
    app.device = cuda("CUDA device 0 found");
    update(
        &mut app,
        Action::Resize {
            width: 120,
            height: 40,
        },
    );
    update(
        &mut app,
        Action::Scoring(ScoringEvent::Progress {
            stage: "loading tf_efficientnet_lite0 on cuda:0".into(),
            done: 0,
            total: 1,
        }),
    );
    let title = title_row(&app, 120, 40);
    insta::assert_snapshot!("title_cuda_scoring_120x40", title);
    assert!(title.contains("· cuda:0 (CUDA device 0 found)"), "{title}");
    assert!(
        title.contains("loading tf_efficientnet_lite0 on cuda:0"),
        "{title}"
    );
}

#[test]
fn a_long_data_set_path_gives_way_to_the_device() {
    let path = "/root/a/rather/long/checkout/.gpu/data/imagenette/val";
    let mut app = App::scoring(Session::default(), Theme::dark(), path);
    app.device = cuda("cuda:0 requested");
    update(
        &mut app,
        Action::Resize {
            width: 100,
            height: 30,
        },
    );
    let title = title_row(&app, 100, 30);
    assert!(
        title.contains("/imagenette/val · 0 samples · cuda:0"),
        "{title}"
    );
    assert!(title.contains(" · …"), "{title}");

    // Ready: the whole width; the path shows in full, the reason after the device.
    let mut app = app_with_title(path);
    app.device = cuda("cuda:0 requested");
    let title = title_row(&app, 120, 40);
    assert!(
        title.contains(&format!(
            "· {path} · 40 samples · cuda:0 (cuda:0 requested)"
        )),
        "{title}"
    );
}

fn app_with_title(title: &str) -> App {
    let mut app = App::new(record_set(40, 1), Session::default(), Theme::dark(), title);
    update(
        &mut app,
        Action::Resize {
            width: 120,
            height: 40,
        },
    );
    app
}

fn reason(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reason"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("binary runs")
}

#[test]
fn cuda_on_a_cpu_only_build_is_a_clear_error_before_the_terminal_is_touched() {
    if cfg!(feature = "cuda") {
        return; // Whether CUDA opens depends on the machine; scripts/gpu-check.sh covers it.
    }
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().to_str().unwrap();
    for args in [
        vec!["tui", "--device", "cuda", "--folder", folder],
        vec!["--device", "cuda:1", "--folder", folder],
    ] {
        let out = reason(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("built without CUDA") && stderr.contains("--device cpu"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        // Nothing was drawn: no alternate screen, no escape sequences.
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn device_and_weights_are_checked_before_the_terminal_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");

    // A device name the parser does not know: clap's usage error.
    let out = reason(&["tui", "--device", "gpu"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("use auto, cpu, cuda or cuda:N"), "{stderr}");

    // The CPU opens; the next problem (no such folder) is reported, after the device line.
    let out = reason(&[
        "tui",
        "--device",
        "cpu",
        "--folder",
        missing.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("device: cpu (CPU requested)"), "{stderr}");
    // The message names the folder and what the options take, and the OS error once.
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("--folder any folder of images"), "{stderr}");
    assert_eq!(stderr.matches("(os error 2)").count(), 1, "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn weights_other_than_the_artifacts_ones_are_refused_before_the_terminal_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    dashboard_support::write_image(&dir.path().join("photos/cat.png"));
    let other = dir.path().join("other.safetensors");
    std::fs::write(&other, b"not the weights the artifacts were trained with").unwrap();
    let artifacts = concat!(env!("CARGO_MANIFEST_DIR"), "/reason_saved");
    let out = reason(&[
        "tui",
        "--device",
        "cpu",
        "--folder",
        dir.path().join("photos").to_str().unwrap(),
        "--artifacts",
        artifacts,
        "--weights",
        other.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("artifacts were trained with weights sha256"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    let out = reason(&[
        "tui",
        "--device",
        "cpu",
        "--folder",
        dir.path().join("photos").to_str().unwrap(),
        "--artifacts",
        artifacts,
        "--weights",
        dir.path().join("absent.safetensors").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not found"), "{stderr}");
}
