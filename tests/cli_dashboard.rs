//! The dashboard's command-line options (`src/cli/dashboard.rs`), parsed as `reason` parses
//! them, and refused before the terminal is taken over when they are bad.

use std::path::{Path, PathBuf};

use clap::Parser;
use reason::cli::dashboard::DashboardArgs;
use reason::cli::{Cli, Command};
use reason::dashboard::ImageProtocol;
use reason::model::device::DeviceRequest;

/// `reason tui ARGS`, and checks that `reason ARGS` (no subcommand) parses the same.
fn parse(args: &[&str]) -> Result<DashboardArgs, clap::Error> {
    let bare = Cli::try_parse_from(std::iter::once("reason").chain(args.iter().copied()));
    let sub = Cli::try_parse_from(["reason", "tui"].into_iter().chain(args.iter().copied()));
    let sub = sub.map(|c| match c.command {
        Some(Command::Tui(args)) => args,
        other => panic!("`reason tui` parsed as {other:?}"),
    });
    assert_eq!(
        bare.as_ref().map(|c| format!("{:?}", c.dashboard)).ok(),
        sub.as_ref().map(|a| format!("{a:?}")).ok(),
        "`reason {args:?}` and `reason tui {args:?}` differ"
    );
    sub
}

#[test]
fn defaults() {
    let a = parse(&[]).unwrap();
    assert_eq!(a.session, "default");
    assert_eq!(a.theme, "dark");
    assert_eq!(a.image_protocol, ImageProtocol::Auto);
    assert_eq!(a.artifacts, None);
    assert_eq!(a.device, DeviceRequest::Auto);
    assert_eq!(a.weights, None);
    assert_eq!(a.config(Path::new("x"), None).unwrap().device, None);
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
    let config = a.config(&a.dataset_path(), None).unwrap();
    assert_eq!(config.dataset_root, PathBuf::from("/photos"));
    assert_eq!(config.theme, "high-contrast");
    for p in ["auto", "kitty", "sixel", "iterm2", "halfblocks"] {
        assert!(parse(&["--image-protocol", p]).is_ok(), "{p}");
    }
    assert!(parse(&["--image-protocol", "ascii"]).is_err());
    assert!(parse(&["--data", "a", "--folder", "b"]).is_err());
}

#[test]
fn run_refuses_bad_options_before_touching_the_terminal() {
    let bad_session = parse(&["--session", "../x"]).unwrap();
    let err = bad_session
        .config(Path::new("x"), None)
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("invalid session name"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let bad_theme = parse(&[
        "--theme",
        "no-such-theme",
        "--folder",
        dir.path().to_str().unwrap(),
    ])
    .unwrap();
    let source = reason::dashboard::RecordSource::Ready(Default::default());
    let config = bad_theme.config(dir.path(), None).unwrap();
    let err = reason::dashboard::run(config, source).unwrap_err();
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
