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
        let rows = rows(&reason(&args));
        assert_eq!(rows.len(), 2 * 2 * 2, "{rows:?}");
        for row in &rows {
            let keys: Vec<&str> = row
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
                .collect();
            assert_eq!(keys.len(), 5, "{row}");
            for key in ["model", "size", "batch", "kind", "images_per_s"] {
                assert!(keys.contains(&key), "{row} lacks {key}");
            }
            assert_eq!(row["size"], 32);
            let rate = row["images_per_s"].as_f64().unwrap();
            assert!(rate.is_finite() && rate > 0.0, "{row}");
        }
        let kinds: Vec<&str> = rows.iter().map(|r| r["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds.iter().filter(|k| **k == "input_grad").count(), 4);
    }
}

#[test]
fn extract_scores_real_images_with_the_committed_artifacts_and_skips_other_models() {
    if common::data_root("bench extract").is_none() {
        return;
    }
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
    let rows = rows(&out);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["model"], "tf_efficientnet_lite0");
    assert_eq!(rows[0]["kind"], "extract");
    assert!(rows[0]["images_per_s"].as_f64().unwrap() > 0.0);
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
