//! `reason bench`: the JSON rows the PyTorch comparison reads, every kind, and clear errors.

mod common;

use std::process::{Command, Output};

fn reason(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reason"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn rows(out: &Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn json_rows_carry_the_schema_for_every_kind_and_both_kernel_paths() {
    for plain in [false, true] {
        let mut args = vec![
            "bench",
            "--models",
            "resnet18@32,tf_efficientnet_lite0@32",
            "--kinds",
            "forward,input_grad",
            "--batches",
            "1,2",
            "--repeats",
            "1",
            "--decode-images",
            "0",
            "--json",
        ];
        if plain {
            args.push("--plain-kernels");
        }
        let started = std::time::Instant::now();
        let out = reason(&args);
        let wall = started.elapsed().as_secs_f64();
        let rows = rows(&out);
        assert_eq!(rows.len(), 2 * 2 * 2, "{rows:?}");
        // One row per requested model × batch × kind, in that order, naming what was asked.
        let mut expected: Vec<(&str, u64, &str)> = Vec::new();
        for model in ["resnet18", "tf_efficientnet_lite0"] {
            for batch in [1, 2] {
                for kind in ["forward", "input_grad"] {
                    expected.push((model, batch, kind));
                }
            }
        }
        let got: Vec<(&str, u64, &str)> = rows
            .iter()
            .map(|r| {
                (
                    r["model"].as_str().unwrap(),
                    r["batch"].as_u64().unwrap(),
                    r["kind"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, expected);
        // images/s is the batch over one pass's seconds: each row ran a warm-up and a timed
        // pass, so the timed passes the rates imply fit in the process's wall time (a rate in
        // the wrong unit or inverted would not), and none is implausibly short. Only the timed
        // pass counts: on a loaded machine the warm-up can be the faster of the two.
        let mut implied = 0.0;
        for row in &rows {
            let keys: Vec<&str> = row
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
                .collect();
            assert_eq!(keys.len(), 7, "{row}");
            for key in [
                "model",
                "size",
                "batch",
                "kind",
                "images_per_s",
                "device",
                "cpu",
            ] {
                assert!(keys.contains(&key), "{row} lacks {key}");
            }
            assert_eq!(row["device"], "cpu");
            // The machine: the same CPU description on every row, with the threads used.
            assert_eq!(row["cpu"], rows[0]["cpu"]);
            assert!(!row["cpu"]["model"].as_str().unwrap().is_empty(), "{row}");
            let threads = row["cpu"]["threads"].as_u64().unwrap();
            let logical = row["cpu"]["logical_cpus"].as_u64().unwrap();
            assert!(threads >= 1 && logical >= 1, "{row}");
            assert!(row["cpu"]["gemm"].is_string() && row["cpu"]["detected"].is_array());
            assert_eq!(row["size"], 32);
            let rate = row["images_per_s"].as_f64().unwrap();
            assert!(rate.is_finite() && rate > 0.0, "{row}");
            let seconds = row["batch"].as_f64().unwrap() / rate;
            assert!(seconds > 1e-6, "{row}: {seconds} s a batch");
            implied += seconds;
        }
        assert!(
            implied <= wall,
            "rates imply {implied:.3} s of passes in a {wall:.3} s run: {rows:?}"
        );
        let kinds: Vec<&str> = rows.iter().map(|r| r["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds.iter().filter(|k| **k == "input_grad").count(), 4);
    }
}

#[test]
fn extract_scores_real_images_with_the_committed_artifacts_and_skips_other_models() {
    if common::data_root("bench extract").is_none() {
        return;
    }
    let started = std::time::Instant::now();
    let out = reason(&[
        "bench",
        "--models",
        "tf_efficientnet_lite0@224,resnet18@64",
        "--kinds",
        "extract",
        "--batches",
        "2",
        "--repeats",
        "1",
        "--extract-images",
        "4",
        "--decode-images",
        "0",
        "--json",
    ]);
    let wall = started.elapsed().as_secs_f64();
    let rows = rows(&out);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["model"], "tf_efficientnet_lite0");
    assert_eq!(rows[0]["kind"], "extract");
    assert_eq!(rows[0]["size"], 224);
    assert_eq!(rows[0]["batch"], 2);
    // The rate counts the 4 images scored per pass: the timed pass fits in the run's wall time
    // (the warm-up may be the faster one on a loaded machine), and scoring 4 real images end to
    // end takes more than a millisecond.
    let rate = rows[0]["images_per_s"].as_f64().unwrap();
    let seconds = 4.0 / rate;
    assert!(
        seconds > 1e-3 && seconds <= wall,
        "{rate} images/s: {seconds} s a pass in a {wall} s run"
    );
    // The breakdown: every stage took time, the backbone pass (forward and backward of a CNN)
    // costs more than the PCA projection, and the stages add up to their sum.
    let stages = &rows[0]["stages_ms_per_image"];
    let stage = |name: &str| {
        stages[name]
            .as_f64()
            .unwrap_or_else(|| panic!("{name}: {stages}"))
    };
    let names = [
        "decode",
        "backbone",
        "head_and_mc_dropout",
        "pca",
        "knn",
        "features_and_metanet",
    ];
    for name in names {
        assert!(stage(name) > 0.0, "{name}: {stages}");
    }
    assert!(stage("backbone") > stage("pca"), "{stages}");
    let total: f64 = names.iter().map(|n| stage(n)).sum();
    assert!(
        (total - stage("sum")).abs() < 1e-6 * total.max(1.0),
        "{stages}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("skipping extract for resnet18@64"),
        "{stderr}"
    );
}

#[test]
fn unknown_kinds_and_missing_artifacts_are_named() {
    let out = reason(&[
        "bench",
        "--models",
        "resnet18@32",
        "--kinds",
        "backward",
        "--batches",
        "1",
        "--decode-images",
        "0",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown kind `backward`"), "{stderr}");

    let dir = std::env::temp_dir().join(format!("reason-bench-none-{}", std::process::id()));
    let out = reason(&[
        "bench",
        "--kinds",
        "extract",
        "--artifacts",
        dir.to_str().unwrap(),
        "--decode-images",
        "0",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("need trained artifacts"), "{stderr}");
}

#[test]
fn the_decode_row_times_generated_images_when_there_is_no_data() {
    let empty = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_reason"))
        .current_dir(empty.path())
        .env(reason::data::paths::DATA_ENV, empty.path())
        .args([
            "bench",
            "--models",
            "resnet18@32",
            "--kinds",
            "forward",
            "--batches",
            "1",
            "--repeats",
            "1",
            "--decode-images",
            "6",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("binary runs");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let wall = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("using generated JPEGs instead"), "{stderr}");
    let rows = rows(&out);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let decode = &rows[0];
    assert_eq!(decode["kind"], "decode");
    assert_eq!(decode["model"], "-");
    assert_eq!(decode["batch"], 6, "the images decoded");
    assert_eq!(
        decode["size"], 224,
        "Lite0's input side, what decoding prepares"
    );
    let rate = decode["images_per_s"].as_f64().unwrap();
    // Two timed passes over the 6 images fit in the run, and decoding takes some time.
    let seconds = 6.0 / rate;
    assert!(
        seconds > 1e-5 && 2.0 * seconds <= wall,
        "{decode} in {wall:.3} s"
    );
    assert_eq!(rows[1]["kind"], "forward");
    assert_nothing_left_behind(pid);
}

/// The generated images are removed with the run.
fn assert_nothing_left_behind(pid: u32) {
    let prefix = format!("reason-bench-{pid}-");
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "{left:?} left behind");
}

#[test]
fn the_extract_row_scores_generated_images_when_there_is_no_data() {
    let empty = tempfile::tempdir().unwrap();
    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("reason_saved");
    let child = Command::new(env!("CARGO_BIN_EXE_reason"))
        .current_dir(empty.path())
        .env(reason::data::paths::DATA_ENV, empty.path())
        .args([
            "bench",
            "--models",
            "tf_efficientnet_lite0@224",
            "--kinds",
            "extract",
        ])
        .args(["--batches", "2", "--repeats", "1", "--extract-images", "3"])
        .args(["--decode-images", "0", "--json", "--artifacts"])
        .arg(&artifacts)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("binary runs");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("using generated JPEGs instead"), "{stderr}");
    let rows = rows(&out);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["kind"], "extract");
    assert_eq!(rows[0]["batch"], 2);
    assert!(rows[0]["images_per_s"].as_f64().unwrap() > 0.0);
    assert_nothing_left_behind(pid);
}
