//! The dashboard's command-line options (`src/cli/tui.rs`), parsed as clap would.
//!
//! `src/cli/tui.rs` is compiled into this test through `#[path]` (it refers to `crate::tui`
//! and `crate::engine`, provided below), so its options are tested before the subcommand is
//! wired into `src/cli/mod.rs`.

mod tui {
    pub use reason::tui::*;
}
mod engine {
    pub use reason::engine::*;
}
#[path = "../src/cli/tui.rs"]
mod cli_tui;

use std::path::PathBuf;

use clap::Parser;
use cli_tui::TuiArgs;
use reason::engine::device::DeviceRequest;
use reason::tui::ImageProtocol;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: TuiArgs,
}

fn parse(args: &[&str]) -> Result<TuiArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("reason").chain(args.iter().copied())).map(|c| c.args)
}

#[test]
fn defaults() {
    let a = parse(&[]).unwrap();
    assert_eq!(a.session, "default");
    assert_eq!(a.theme, "dark");
    assert_eq!(a.image_protocol, ImageProtocol::Auto);
    assert_eq!(a.artifacts, PathBuf::from("reason_saved"));
    assert_eq!(a.device, DeviceRequest::Auto);
    assert_eq!(a.weights, None);
    assert_eq!(a.config().unwrap().device, None);
    assert_eq!(
        a.session_path().unwrap(),
        PathBuf::from("sessions/default.json")
    );
}

#[test]
fn every_option() {
    let a = parse(&[
        "--folder",
        "/photos",
        "--artifacts",
        "art",
        "--session",
        "run-2",
        "--theme",
        "high-contrast",
        "--image-protocol",
        "halfblocks",
    ])
    .unwrap();
    assert_eq!(a.folder, Some(PathBuf::from("/photos")));
    assert_eq!(a.dataset_path(), PathBuf::from("/photos"));
    assert_eq!(
        a.session_path().unwrap(),
        PathBuf::from("sessions/run-2.json")
    );
    assert_eq!(a.image_protocol, ImageProtocol::Halfblocks);
    let config = a.config().unwrap();
    assert_eq!(config.dataset_root, PathBuf::from("/photos"));
    assert_eq!(config.theme, "high-contrast");
    for p in ["auto", "kitty", "sixel", "iterm2", "halfblocks"] {
        assert!(parse(&["--image-protocol", p]).is_ok(), "{p}");
    }
    assert!(parse(&["--image-protocol", "ascii"]).is_err());
    assert!(parse(&["--data", "a", "--folder", "b"]).is_err());
}

#[test]
fn imagenette_root_maps_to_its_val_split() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("train")).unwrap();
    std::fs::create_dir_all(dir.path().join("val")).unwrap();
    let a = parse(&["--data", dir.path().to_str().unwrap()]).unwrap();
    assert_eq!(a.dataset_root(), dir.path().join("val"));
}

#[test]
fn run_refuses_bad_options_before_touching_the_terminal() {
    let bad_session = parse(&["--session", "../x"]).unwrap();
    let source = reason::tui::RecordSource::Ready(Default::default());
    let err = cli_tui::run(bad_session.clone(), source).unwrap_err();
    assert!(err.to_string().contains("invalid session name"), "{err}");
    let device = reason::tui::ScoringDevice {
        label: "cpu".into(),
        reason: "CPU requested".into(),
    };
    let source = reason::tui::RecordSource::Ready(Default::default());
    let err = cli_tui::run_on(bad_session, device, source).unwrap_err();
    assert!(err.to_string().contains("invalid session name"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let bad_theme = parse(&[
        "--theme",
        "no-such-theme",
        "--folder",
        dir.path().to_str().unwrap(),
    ])
    .unwrap();
    let source = reason::tui::RecordSource::Ready(Default::default());
    let err = cli_tui::run(bad_theme, source).unwrap_err();
    assert!(
        err.to_string().contains("unknown theme `no-such-theme`"),
        "{err}"
    );
}

#[test]
fn session_names_are_plain_file_names() {
    for bad in ["", "../x", "a/b", ".hidden", "a b"] {
        let err = parse(&["--session", bad])
            .unwrap()
            .session_path()
            .unwrap_err();
        assert!(
            err.to_string().contains("invalid session name"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn device_and_weights_like_the_other_commands() {
    let a = parse(&["--device", "cuda:1", "--weights", "w.safetensors"]).unwrap();
    assert_eq!(a.device, DeviceRequest::Cuda(1));
    assert_eq!(a.weights.as_deref(), Some("w.safetensors"));
    for (name, want) in [
        ("auto", DeviceRequest::Auto),
        ("cpu", DeviceRequest::Cpu),
        ("cuda", DeviceRequest::Cuda(0)),
    ] {
        assert_eq!(parse(&["--device", name]).unwrap().device, want, "{name}");
    }
    for bad in ["gpu", "cuda:", "cuda:x", ""] {
        assert!(parse(&["--device", bad]).is_err(), "{bad}");
    }
}
