//! Every subcommand, run with something it needs missing, must fail with one message that
//! names the missing thing and says what to do, and say the OS error (if any) once.
//!
//! Each runs the built binary in an empty folder with an empty data folder and Hugging Face
//! cache, and with the network answered by a port that hangs up, so nothing on this machine or
//! the internet is found.

mod http_server;

use std::path::Path;
use std::process::{Command, Stdio};

use http_server::hang_up_server;

/// (arguments, texts the message must hold: the missing thing, then the remedy).
fn cases(tmp: &Path) -> Vec<(Vec<String>, Vec<String>)> {
    let missing = tmp.join("missing").to_str().unwrap().to_string();
    let photos = tmp.join("photos").to_str().unwrap().to_string();
    let missing_weights = format!("{missing}.safetensors");
    let fake_weights = tmp.join("w.safetensors").to_str().unwrap().to_string();
    let s = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let lite0_hub = "timm/tf_efficientnet_lite0.in1k";
    vec![
        // The dashboard, bare and as `tui`: default data and weights missing.
        (
            s(&[]),
            s(&[
                "no Imagenette",
                "reason fetch imagenette",
                "reason --folder DIR",
            ]),
        ),
        (
            s(&["tui", "--no-download"]),
            s(&[
                "no tf_efficientnet_lite0 weights",
                "reason fetch weights timm/tf_efficientnet_lite0.in1k",
            ]),
        ),
        // A dataset folder that is not there.
        (
            s(&["tui", "--data", &missing, "--weights", &fake_weights]),
            s(&[&missing, "--folder"]),
        ),
        // Artifacts that are not there.
        (
            s(&["tui", "--folder", &photos, "--artifacts", &missing]),
            s(&[&format!("{missing}/manifest.json"), "reason train"]),
        ),
        (
            s(&["predict"]),
            s(&["no Imagenette", "reason fetch imagenette"]),
        ),
        (
            s(&["predict", &photos, "--weights", &missing_weights]),
            s(&[&missing_weights, "a .safetensors file or a hub id"]),
        ),
        // Weights from an unreachable hub.
        (s(&["predict", &photos]), s(&[lite0_hub, "--weights PATH"])),
        (s(&["eval"]), s(&[lite0_hub, "--weights PATH"])),
        (
            s(&["eval", "--artifacts", &missing]),
            s(&[&format!("{missing}/manifest.json"), "reason train"]),
        ),
        (
            s(&["train"]),
            s(&["no Imagenette", "reason fetch imagenette"]),
        ),
        (
            s(&["train", "--data", &missing]),
            s(&[&format!("{missing}/train"), "expected"]),
        ),
        // (`bench` without Imagenette times generated images: tests/cli_bench.rs.)
        (
            s(&[
                "bench",
                "--kinds",
                "extract",
                "--decode-images",
                "0",
                "--artifacts",
                &missing,
            ]),
            s(&[&missing, "reason train"]),
        ),
        (
            s(&["serve", "--addr", "127.0.0.1:0", "--artifacts", &missing]),
            s(&[&format!("{missing}/manifest.json"), "reason train"]),
        ),
        (
            s(&["serve-bench", "--images", "4"]),
            s(&["no Imagenette", "reason fetch imagenette"]),
        ),
        (
            s(&["score", "--out", "t.parquet"]),
            s(&["no Imagenette", "reason fetch imagenette"]),
        ),
        (
            s(&[
                "score",
                "--folder",
                &photos,
                "--out",
                "t.parquet",
                "--artifacts",
                &missing,
            ]),
            s(&[&format!("{missing}/manifest.json"), "reason train"]),
        ),
        // An image that is not there: said before any model loads.
        (
            s(&["explain", &format!("{missing}.jpg")]),
            s(&[&format!("{missing}.jpg"), "reason explain IMAGE"]),
        ),
        (
            s(&["fetch", "imagenette"]),
            s(&["could not reach", "network connection"]),
        ),
        (
            s(&["fetch", "weights", "nobody/nothing"]),
            s(&["nobody/nothing", "--weights PATH"]),
        ),
    ]
}

#[test]
fn every_subcommand_names_what_is_missing_and_the_remedy_once() {
    let tmp = tempfile::tempdir().unwrap();
    for dir in ["work", "data", "hf", "cache", "photos/n01440764"] {
        std::fs::create_dir_all(tmp.path().join(dir)).unwrap();
    }
    image::RgbImage::from_pixel(32, 32, image::Rgb([200, 30, 30]))
        .save(tmp.path().join("photos/n01440764/red.png"))
        .unwrap();
    std::fs::write(tmp.path().join("w.safetensors"), b"not weights").unwrap();
    let offline = hang_up_server();
    let mut subcommands_seen = std::collections::BTreeSet::new();
    for (args, needles) in cases(tmp.path()) {
        let out = Command::new(env!("CARGO_BIN_EXE_reason"))
            .args(&args)
            .current_dir(tmp.path().join("work"))
            .env("REASON_DATA", tmp.path().join("data"))
            .env("HF_HOME", tmp.path().join("hf"))
            .env("REASON_CACHE", tmp.path().join("cache"))
            .env("HF_ENDPOINT", &offline)
            .env(
                "REASON_IMAGENETTE_URL",
                format!("{offline}/imagenette2-320.tgz"),
            )
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let case = format!("`reason {}`:\n{stderr}", args.join(" "));
        assert!(!out.status.success(), "succeeded: {case}");
        let errors = stderr.lines().filter(|l| l.starts_with("error: ")).count();
        assert_eq!(errors, 1, "{case}");
        for needle in &needles {
            assert!(
                stderr.contains(needle.as_str()),
                "{needle:?} missing: {case}"
            );
        }
        // The OS's own words, said once: `cannot read X: No such file...: No such file...`
        // was the bug.
        assert!(stderr.matches("(os error").count() <= 1, "{case}");
        for line in stderr.lines() {
            let parts: Vec<&str> = line.split(": ").collect();
            assert!(
                parts.windows(2).all(|w| w[0] != w[1]),
                "a repeated part: {case}"
            );
        }
        subcommands_seen.insert(args.first().cloned().unwrap_or_default());
    }
    // Every subcommand of `reason --help` is audited (and the bare command).
    let help = Command::new(env!("CARGO_BIN_EXE_reason"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let listed: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|&c| c != "help")
        .collect();
    assert!(listed.len() >= 6, "{help}");
    for command in listed {
        assert!(
            subcommands_seen.contains(command),
            "`reason {command}` has no missing-input case here"
        );
    }
    assert!(subcommands_seen.contains(""));
}
