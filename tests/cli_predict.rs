//! `reason predict` end to end: odd images, JSON Lines schema, summary, and clear errors.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn reason(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reason"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn odd_folder(dir: &Path) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let class = dir.join("n01440764");
    std::fs::create_dir_all(&class).unwrap();
    std::fs::copy(fixtures.join("cmyk.jpg"), class.join("cmyk.jpg")).unwrap();
    std::fs::copy(fixtures.join("gray.jpg"), class.join("gray scale ü.JPG")).unwrap();
    std::fs::copy(
        fixtures.join("exif_rotate90.jpg"),
        class.join("rotated.jpeg"),
    )
    .unwrap();
    let bytes = std::fs::read(fixtures.join("cmyk.jpg")).unwrap();
    std::fs::write(class.join("truncated.jpg"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(class.join("notes.txt"), b"not an image").unwrap();
}

#[test]
fn json_lines_follow_the_schema_and_bad_files_are_skipped_not_fatal() {
    let Some(root) = common::data_root("predict --json") else {
        return;
    };
    let weights = common::lite0_weights_in(&root);
    let dir = tempfile::tempdir().unwrap();
    odd_folder(dir.path());
    let out = reason(&[
        "predict",
        "--json",
        "--device",
        "cpu",
        "--weights",
        weights.to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    let paths: Vec<&str> = lines.iter().map(|v| v["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        vec![
            "n01440764/cmyk.jpg",
            "n01440764/gray scale ü.JPG",
            "n01440764/rotated.jpeg"
        ]
    );
    for v in &lines {
        assert_eq!(v["label"], "n01440764");
        assert_eq!(v["pred_in_dataset"], "n01440764");
        let top5 = v["top5"].as_array().unwrap();
        assert_eq!(top5.len(), 5);
        let probs: Vec<f64> = top5.iter().map(|c| c["prob"].as_f64().unwrap()).collect();
        assert!(probs.windows(2).all(|w| w[0] >= w[1]), "{probs:?}");
        assert!(top5[0]["wnid"].as_str().unwrap().starts_with('n'));
        assert!(!top5[0]["name"].as_str().unwrap().is_empty());
    }
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("skipped n01440764/truncated.jpg"),
        "{stderr}"
    );
}

/// A class folder with a busy JPEG and a copy of it cut in half (which still decodes: the
/// decoder fills in the missing half).
fn truncated_folder(dir: &Path) {
    let class = dir.join("n01440764");
    std::fs::create_dir_all(&class).unwrap();
    let whole = class.join("whole.jpg");
    image::RgbImage::from_fn(224, 224, |x, y| {
        let v = (x * 31 + y * 17) ^ (x * y);
        image::Rgb([v as u8, (v >> 3) as u8, (x ^ y) as u8])
    })
    .save(&whole)
    .unwrap();
    let bytes = std::fs::read(&whole).unwrap();
    std::fs::write(class.join("cut.jpg"), &bytes[..bytes.len() / 2]).unwrap();
}

#[test]
fn truncated_files_are_flagged_in_json_and_text_or_skipped_on_request() {
    let Some(root) = common::data_root("predict truncated") else {
        return;
    };
    let weights = common::lite0_weights_in(&root);
    let dir = tempfile::tempdir().unwrap();
    truncated_folder(dir.path());
    let folder = dir.path().to_str().unwrap();
    let args = [
        "predict",
        "--device",
        "cpu",
        "--weights",
        weights.to_str().unwrap(),
    ];

    // From the crate (its reason_saved/ adds reliability) and from an empty folder (ImageNet
    // top-5 only): both kinds of line carry the flag.
    let elsewhere = tempfile::tempdir().unwrap();
    for cwd in [Path::new(env!("CARGO_MANIFEST_DIR")), elsewhere.path()] {
        let out = Command::new(env!("CARGO_BIN_EXE_reason"))
            .args([&args[..], &["--json", folder]].concat())
            .current_dir(cwd)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let flags: Vec<(String, serde_json::Value)> = text(&out.stdout)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["path"].as_str().unwrap().to_string(),
                    v["truncated"].clone(),
                )
            })
            .collect();
        assert_eq!(
            flags,
            vec![
                ("n01440764/cut.jpg".to_string(), serde_json::json!(true)),
                ("n01440764/whole.jpg".to_string(), serde_json::json!(false)),
            ],
            "from {}",
            cwd.display()
        );
    }

    let out = reason(&[&args[..], &[folder]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let cut = stdout.find("n01440764/cut.jpg").unwrap();
    let whole = stdout.find("n01440764/whole.jpg").unwrap();
    let warning = stdout.find("⚠ truncated file").expect(&stdout);
    assert!(cut < warning && warning < whole, "{stdout}");
    assert_eq!(stdout.matches("⚠ truncated").count(), 1, "{stdout}");

    let out = reason(&[&args[..], &["--json", "--skip-truncated", folder]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("n01440764/whole.jpg"), "{stdout}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("skipped n01440764/cut.jpg: truncated"),
        "{stderr}"
    );
}

#[test]
fn summary_counts_skipped_files_and_reports_accuracy() {
    let Some(root) = common::data_root("predict --summary") else {
        return;
    };
    let weights = common::lite0_weights_in(&root);
    let dir = tempfile::tempdir().unwrap();
    odd_folder(dir.path());
    let out = reason(&[
        "predict",
        "--summary",
        "--weights",
        weights.to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("4 found, 3 classified, 1 skipped"),
        "{stdout}"
    );
    assert!(
        stdout.contains("the dataset's 1 classes: 100.00 % (3/3)"),
        "{stdout}"
    );
    assert!(stdout.contains("images/s"), "{stdout}");
}

#[test]
fn bad_inputs_fail_with_specific_messages() {
    let dir = tempfile::tempdir().unwrap();
    let out = reason(&[
        "predict",
        "--weights",
        "/nonexistent/w.safetensors",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("/nonexistent/w.safetensors"),
        "{}",
        text(&out.stderr)
    );

    let Some(root) = common::data_root("predict errors") else {
        return;
    };
    let weights = common::lite0_weights_in(&root);
    let out = reason(&[
        "predict",
        "--weights",
        weights.to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no images found"),
        "{}",
        text(&out.stderr)
    );

    if !cfg!(feature = "cuda") {
        let out = reason(&["predict", "--device", "cuda", dir.path().to_str().unwrap()]);
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("--features cuda"),
            "{}",
            text(&out.stderr)
        );
    }
}
