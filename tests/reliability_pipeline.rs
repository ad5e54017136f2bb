//! The reliability pipeline end to end on a small labelled set of real Imagenette images:
//! `train` → artifacts → `eval` (table, JSON, Parquet, plots) → `predict` with reliability, and
//! the protocol's guarantees (no evaluation on the training split, mismatched artifacts named).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

fn reason(cache: &Path, data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reason"))
        .args(args)
        .env("REASON_CACHE", cache)
        .env("REASON_DATA", data)
        .output()
        .expect("binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A small imagenette2-style copy: `per_class` images of the first `classes` classes, per split.
fn small_imagenette(root: &Path, dest: &Path, classes: usize, train: usize, val: usize) {
    for (split, n) in [("train", train), ("val", val)] {
        let mut class_dirs: Vec<_> = std::fs::read_dir(root.join("imagenette").join(split))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        class_dirs.sort();
        for dir in class_dirs.iter().take(classes) {
            let mut files: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            let out = dest
                .join("imagenette")
                .join(split)
                .join(dir.file_name().unwrap());
            std::fs::create_dir_all(&out).unwrap();
            for f in files.iter().take(n) {
                std::fs::copy(f, out.join(f.file_name().unwrap())).unwrap();
            }
        }
    }
    std::fs::create_dir_all(dest.join("weights")).unwrap();
    std::fs::copy(
        common::lite0_weights_in(root),
        dest.join("weights/tf_efficientnet_lite0.safetensors"),
    )
    .unwrap();
}

/// Every column of a Parquet file by name, read back with the `parquet` crate's reader.
fn parquet_columns(path: &Path) -> Vec<(String, Vec<Field>)> {
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let names: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let mut columns: Vec<(String, Vec<Field>)> =
        names.into_iter().map(|n| (n, Vec::new())).collect();
    for row in reader.get_row_iter(None).unwrap() {
        let row = row.unwrap();
        let fields: Vec<(&String, &Field)> = row.get_column_iter().collect();
        assert_eq!(fields.len(), columns.len());
        for ((name, field), (want, values)) in fields.into_iter().zip(&mut columns) {
            assert_eq!(name, want);
            values.push(field.clone());
        }
    }
    columns
}

/// A Parquet value and a per-sample JSON value are the same (floats as the f32 both hold).
fn same_value(field: &Field, json: &serde_json::Value) -> bool {
    match field {
        Field::Null => json.is_null(),
        Field::Bool(b) => json.as_bool() == Some(*b),
        Field::Long(v) => json.as_i64() == Some(*v),
        Field::Str(v) => json.as_str() == Some(v.as_str()),
        // JSON has no NaN: serde_json writes null.
        Field::Float(v) if v.is_nan() => json.is_null(),
        Field::Float(v) => json.as_f64().map(|j| j as f32) == Some(*v),
        _ => false,
    }
}

#[test]
fn train_eval_predict_on_a_small_real_dataset() {
    let Some(root) = common::data_root("reliability pipeline") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cache = tmp.path().join("cache");
    small_imagenette(&root, &data, 3, 40, 12);
    let out = tmp.path().join("saved");
    let out_s = out.to_str().unwrap();

    let train = reason(
        &cache,
        &data,
        &[
            "train",
            "--folds",
            "3",
            "--head-epochs",
            "15",
            "--metanet-epochs",
            "40",
            "--views",
            "1",
            "--out",
            out_s,
        ],
    );
    assert!(train.status.success(), "{}", text(&train.stderr));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format_version"], 2);
    assert_eq!(manifest["protocol"]["views"], 1);
    assert_eq!(manifest["protocol"]["rows_used"], 120);
    assert_eq!(manifest["protocol"]["split"], "train");
    assert_eq!(manifest["classes"].as_array().unwrap().len(), 3);
    let families: Vec<&str> = manifest["layout"]["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["family"].as_str().unwrap())
        .collect();
    assert_eq!(
        families,
        [
            "entropy",
            "gap",
            "topk",
            "mc_dropout",
            "gradient",
            "pca",
            "knn",
            "class_knn",
            "softmax"
        ]
    );
    // Fit and select rows count every view; the calibration rows are the clean ones only.
    let roles = manifest["protocol"]["metanet_fit_rows"].as_u64().unwrap()
        + manifest["protocol"]["metanet_stop_rows"].as_u64().unwrap()
        + 2 * manifest["protocol"]["calibration_rows"].as_u64().unwrap();
    assert_eq!(
        roles, 240,
        "the three groups partition the out-of-fold rows (120 images, clean and one view)"
    );
    // Every view of an image has the image's role: no image straddles fit/select/calibration.
    let artifacts = reason::reliability::artifacts::Artifacts::load(&out).unwrap();
    let tm = &artifacts.train_meta;
    assert_eq!(tm.correct.len(), 240);
    for i in 0..tm.correct.len() {
        let clean = (0..tm.correct.len())
            .find(|&j| tm.source[j] == tm.source[i] && tm.view[j] == 0)
            .unwrap();
        assert_eq!(tm.role[i], tm.role[clean], "row {i}");
    }
    // The certified threshold is stated, and never a fallback: infeasible means reject all.
    let cert = &manifest["calibration"]["certificate"];
    if cert["feasible"] == true {
        assert!(cert["upper_bound"].as_f64().unwrap() <= cert["target_risk"].as_f64().unwrap());
        assert_eq!(cert["threshold"], manifest["calibration"]["threshold"]);
    } else {
        assert!(manifest["calibration"]["threshold"].is_null());
    }
    // Each candidate meta-model is reported beside TS-MSP on the select rows, one kept.
    let selection = manifest["protocol"]["selection"].as_array().unwrap();
    assert_eq!(selection.len(), 4);
    assert_eq!(selection.iter().filter(|r| r["chosen"] == true).count(), 1);

    // The second run reuses the cached embeddings and gradients and writes identical artifacts.
    let again = tmp.path().join("again");
    let train2 = reason(
        &cache,
        &data,
        &[
            "train",
            "--folds",
            "3",
            "--head-epochs",
            "15",
            "--metanet-epochs",
            "40",
            "--views",
            "1",
            "--out",
            again.to_str().unwrap(),
        ],
    );
    assert!(train2.status.success());
    assert_eq!(
        std::fs::read(out.join("model.safetensors")).unwrap(),
        std::fs::read(again.join("model.safetensors")).unwrap()
    );

    // Never evaluate on what was trained on.
    let refused = reason(
        &cache,
        &data,
        &["eval", "--split", "train", "--artifacts", out_s],
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("trained on it"),
        "{}",
        text(&refused.stderr)
    );

    let json = tmp.path().join("eval.json");
    let parquet = tmp.path().join("eval.parquet");
    let plots = tmp.path().join("plots");
    let eval = reason(
        &cache,
        &data,
        &[
            "eval",
            "--artifacts",
            out_s,
            "--bootstrap",
            "200",
            "--json",
            json.to_str().unwrap(),
            "--export",
            parquet.to_str().unwrap(),
            "--plots",
            plots.to_str().unwrap(),
        ],
    );
    assert!(eval.status.success(), "{}", text(&eval.stderr));
    let stdout = text(&eval.stdout);
    for score in [
        "metanet_p_correct",
        "msp",
        "msp_temperature",
        "neg_entropy",
        "margin",
        "max_logit",
        "energy",
        "doctor",
        "mc_dropout_mean",
        "neg_knn_distance",
        "trust_score",
        "maxlogit_pnorm",
        "rel_u",
        "class_knn",
    ] {
        assert!(stdout.contains(score), "{score} missing from\n{stdout}");
    }
    assert!(stdout.contains("chance levels"), "{stdout}");
    assert!(stdout.contains("without gradient"), "{stdout}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let samples = report["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 36);
    // Anyone can recompute the accuracy from the per-sample rows.
    let correct = samples.iter().filter(|s| s["correct"] == true).count();
    let accuracy = report["report"]["accuracy"].as_f64().unwrap();
    assert!((accuracy - correct as f64 / 36.0).abs() < 1e-12);
    assert!(samples[0]["scores"]["msp"].is_number());
    // Every number of the table is recomputable from the per-sample rows.
    let outcomes: Vec<bool> = samples.iter().map(|s| s["correct"] == true).collect();
    let rows = report["report"]["rows"].as_array().unwrap();
    for name in ["msp", "metanet_p_correct", "rel_u"] {
        let key = if name == "metanet_p_correct" {
            "metanet_logit"
        } else {
            name
        };
        let scores: Vec<f32> = samples
            .iter()
            .map(|s| s["scores"][key].as_f64().unwrap() as f32)
            .collect();
        let row = rows.iter().find(|r| r["score"] == name).unwrap();
        let table = row["metrics"]["auroc"].as_f64();
        assert_eq!(reason::metrics::auroc(&scores, &outcomes), table, "{name}");
        let aurc = reason::metrics::aurc(&scores, &outcomes).unwrap();
        assert!((aurc - row["metrics"]["aurc"].as_f64().unwrap()).abs() < 1e-12);
    }
    for png in [
        "roc.png",
        "risk_coverage.png",
        "reliability.png",
        "score_hist.png",
    ] {
        assert!(image::open(plots.join(png)).is_ok(), "{png}");
    }
    // The Parquet export holds the per-sample rows of the JSON, value for value.
    let columns = parquet_columns(&parquet);
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    let mut expected_names = vec![
        "path",
        "source",
        "draw",
        "novel_class",
        "label",
        "pred",
        "correct",
        "truncated",
        "metanet_p_correct",
        "metanet_logit",
    ];
    expected_names.extend(reason::reliability::features::BASELINES);
    assert_eq!(names, expected_names);
    for (name, values) in &columns {
        assert_eq!(values.len(), samples.len(), "{name}");
        for (i, (field, sample)) in values.iter().zip(samples).enumerate() {
            let json = match name.as_str() {
                "path" | "source" | "draw" | "novel_class" | "label" | "pred" | "correct"
                | "truncated" => &sample[name.as_str()],
                score => &sample["scores"][score],
            };
            assert!(
                same_value(field, json),
                "row {i}, column {name}: Parquet {field:?}, JSON {json}"
            );
        }
    }
    // The values mean what they say: `correct` is label == pred, and the JSON's accuracy.
    let column = |name: &str| &columns.iter().find(|(n, _)| n == name).unwrap().1;
    let parquet_correct = column("correct")
        .iter()
        .zip(column("label"))
        .zip(column("pred"))
        .filter(|((c, l), p)| {
            assert_eq!(**c, Field::Bool(l == p), "{l:?} {p:?}");
            **c == Field::Bool(true)
        })
        .count();
    assert_eq!(parquet_correct, correct);

    // Mixed corruptions, two draws of every image: rows name their source and draw, and the
    // bootstrap resamples source images.
    let mixed_json = tmp.path().join("mixed.json");
    let mixed = reason(
        &cache,
        &data,
        &[
            "eval",
            "--artifacts",
            out_s,
            "--corrupt",
            "mixed",
            "--repeats",
            "2",
            "--bootstrap",
            "100",
            "--json",
            mixed_json.to_str().unwrap(),
            "--plots",
            plots.to_str().unwrap(),
        ],
    );
    assert!(mixed.status.success(), "{}", text(&mixed.stderr));
    assert!(text(&mixed.stdout).contains("(mixed)"));
    let mixed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&mixed_json).unwrap()).unwrap();
    let rows = mixed["samples"].as_array().unwrap();
    assert_eq!(rows.len(), 72);
    for draw in [0, 1] {
        assert_eq!(rows.iter().filter(|r| r["draw"] == draw).count(), 36);
    }
    assert_eq!(mixed["report"]["source_images"], 36);
    let first = &mixed["report"]["rows"][0]["vs_msp"];
    assert_eq!(first["groups"], 36, "{first}");
    // Two draws of one image differ: the corruption is re-drawn.
    let of = |d: i64| {
        rows.iter()
            .find(|r| r["draw"] == d && r["source"] == rows[0]["source"])
            .unwrap()["scores"]["msp"]
            .clone()
    };
    assert_ne!(of(0), of(1));
    // A corrupted image is scored from the corrupted picture: its scores differ from the
    // clean image's (in the first evaluation), for every image and draw.
    for row in rows {
        let clean = samples
            .iter()
            .find(|s| s["source"] == row["source"])
            .unwrap_or_else(|| panic!("no clean row for {}", row["source"]));
        assert_eq!(clean["label"], row["label"]);
        assert_ne!(clean["scores"], row["scores"], "{}", row["source"]);
        assert_ne!(
            clean["scores"]["msp"], row["scores"]["msp"],
            "{}",
            row["source"]
        );
    }

    // New-class shift: one class held out of training; its val images count as wrong.
    let held = tmp.path().join("held");
    let train_held = reason(
        &cache,
        &data,
        &[
            "train",
            "--folds",
            "3",
            "--head-epochs",
            "15",
            "--metanet-epochs",
            "40",
            "--views",
            "1",
            "--holdout-classes",
            "1",
            "--out",
            held.to_str().unwrap(),
        ],
    );
    assert!(train_held.status.success(), "{}", text(&train_held.stderr));
    let held_json = tmp.path().join("held.json");
    let eval_held = reason(
        &cache,
        &data,
        &[
            "eval",
            "--artifacts",
            held.to_str().unwrap(),
            "--bootstrap",
            "100",
            "--json",
            held_json.to_str().unwrap(),
            "--plots",
            plots.to_str().unwrap(),
        ],
    );
    assert!(eval_held.status.success(), "{}", text(&eval_held.stderr));
    assert!(text(&eval_held.stdout).contains("new-class shift"));
    let held_report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&held_json).unwrap()).unwrap();
    assert_eq!(held_report["report"]["novel_rows"], 12);
    assert_eq!(held_report["report"]["labelled"], 36);
    let novel: Vec<_> = held_report["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["novel_class"] == true)
        .collect();
    assert_eq!(novel.len(), 12);
    assert!(novel.iter().all(|r| r["correct"] == false));

    // predict gains reliability with artifacts.
    let val_class = std::fs::read_dir(data.join("imagenette/val"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let predict = reason(
        &cache,
        &data,
        &[
            "predict",
            "--json",
            "--artifacts",
            out_s,
            val_class.to_str().unwrap(),
        ],
    );
    assert!(predict.status.success(), "{}", text(&predict.stderr));
    let line: serde_json::Value =
        serde_json::from_str(text(&predict.stdout).lines().next().unwrap()).unwrap();
    let rel = &line["reliability"];
    let p = rel["p_correct"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p));
    // A null threshold is an infeasible certificate: everything is rejected.
    let verdict = match rel["threshold"].as_f64() {
        Some(t) if p >= t => "accept",
        _ => "reject",
    };
    assert_eq!(rel["verdict"], verdict);
    assert_eq!(rel["head_top5"].as_array().unwrap().len(), 3);
    assert!(rel["meta"]["gradient.log_grad_norm"].is_number());
    assert!(rel["diagnostics"]["trust_score"].is_number());
    assert_eq!(line["top5"].as_array().unwrap().len(), 5);

    // Artifacts trained with other weights are refused with a message saying what differs.
    let mut bytes = std::fs::read(data.join("weights/tf_efficientnet_lite0.safetensors")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1; // the last byte of the last tensor: loads, but hashes differently
    let other = tmp.path().join("other.safetensors");
    std::fs::write(&other, bytes).unwrap();
    let mismatched = reason(
        &cache,
        &data,
        &[
            "predict",
            "--weights",
            other.to_str().unwrap(),
            "--artifacts",
            out_s,
            val_class.to_str().unwrap(),
        ],
    );
    assert!(!mismatched.status.success());
    assert!(
        text(&mismatched.stderr).contains("sha256"),
        "{}",
        text(&mismatched.stderr)
    );
    // Corrupt artifacts are named too.
    std::fs::write(out.join("manifest.json"), b"{\"format_version\": 99}").unwrap();
    let corrupt = reason(&cache, &data, &["eval", "--artifacts", out_s]);
    assert!(!corrupt.status.success());
    assert!(
        text(&corrupt.stderr).contains("format version"),
        "{}",
        text(&corrupt.stderr)
    );
}
