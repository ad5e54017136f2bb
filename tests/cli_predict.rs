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

/// `odd_folder` plus real pictures, so a prediction or an accuracy can be wrong: two tench
/// pictures in the tench folder, and a second class, English springer, holding two springer
/// pictures and, filed there by mistake, a third tench picture. (The fixture images are
/// synthetic: what they are predicted as is not checked.)
fn two_class_folder(dir: &Path, root: &Path) {
    odd_folder(dir);
    let real = |wnid: &str| -> Vec<std::path::PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(root.join("imagenette/val").join(wnid))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    };
    let (tench, springer) = (real(TENCH), real(SPRINGER));
    let copy = |from: &Path, class: &str, name: &str| {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        std::fs::copy(from, dir.join(class).join(name)).unwrap();
    };
    copy(&tench[0], TENCH, "tench_0.JPEG");
    copy(&tench[1], TENCH, "tench_1.JPEG");
    copy(&springer[0], SPRINGER, "springer_0.JPEG");
    copy(&springer[1], SPRINGER, "springer_1.JPEG");
    copy(&tench[2], SPRINGER, "tench_misfiled.JPEG");
}

const TENCH: &str = "n01440764";
const SPRINGER: &str = "n02102040";

/// The real pictures of `two_class_folder`: path, label (the folder) and what they show.
const REAL: [(&str, &str, &str); 5] = [
    ("n01440764/tench_0.JPEG", TENCH, TENCH),
    ("n01440764/tench_1.JPEG", TENCH, TENCH),
    ("n02102040/springer_0.JPEG", SPRINGER, SPRINGER),
    ("n02102040/springer_1.JPEG", SPRINGER, SPRINGER),
    ("n02102040/tench_misfiled.JPEG", SPRINGER, TENCH),
];

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect()
}

#[test]
fn json_lines_follow_the_schema_and_bad_files_are_skipped_not_fatal() {
    let Some(root) = common::data_root("predict --json") else {
        return;
    };
    let weights = common::lite0_weights_in(&root);
    let dir = tempfile::tempdir().unwrap();
    two_class_folder(dir.path(), &root);
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
    let lines = json_lines(&out);
    let paths: Vec<&str> = lines.iter().map(|v| v["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        vec![
            "n01440764/cmyk.jpg",
            "n01440764/gray scale ü.JPG",
            "n01440764/rotated.jpeg",
            "n01440764/tench_0.JPEG",
            "n01440764/tench_1.JPEG",
            "n02102040/springer_0.JPEG",
            "n02102040/springer_1.JPEG",
            "n02102040/tench_misfiled.JPEG",
        ]
    );
    for v in &lines {
        let path = v["path"].as_str().unwrap();
        // The label is the folder.
        assert_eq!(v["label"], path.split('/').next().unwrap(), "{v}");
        let pred = v["pred_in_dataset"].as_str().unwrap();
        assert!(pred == TENCH || pred == SPRINGER, "{v}");
        let top5 = v["top5"].as_array().unwrap();
        assert_eq!(top5.len(), 5);
        let probs: Vec<f64> = top5.iter().map(|c| c["prob"].as_f64().unwrap()).collect();
        assert!(probs.windows(2).all(|w| w[0] >= w[1]), "{probs:?}");
        assert!(probs[0] > 0.0 && probs[0] <= 1.0, "{probs:?}");
        assert!(top5[0]["wnid"].as_str().unwrap().starts_with('n'));
        assert!(!top5[0]["name"].as_str().unwrap().is_empty());
    }
    // The real pictures are predicted as what they show, whatever folder they are in.
    for (path, label, shows) in REAL {
        let v = lines.iter().find(|v| v["path"] == path).unwrap();
        assert_eq!(v["label"], label, "{v}");
        assert_eq!(v["pred_in_dataset"], shows, "{v}");
        assert_eq!(v["top5"][0]["wnid"], shows, "{v}");
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

    // From the crate (its reason_saved/) and from an empty folder (the built-in copy of the
    // same artifacts): both add reliability, and the lines carry the flag.
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
    two_class_folder(dir.path(), &root);
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
        stdout.contains("9 found, 8 classified, 1 skipped"),
        "{stdout}"
    );
    // The accuracies are those of the per-image predictions: recounted from `--json` on the
    // same folder, where the misfiled tench is one sure error and four pictures are right.
    let lines = json_lines(&reason(&[
        "predict",
        "--json",
        "--weights",
        weights.to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ]));
    assert_eq!(lines.len(), 8);
    let right = |key: &dyn Fn(&serde_json::Value) -> &serde_json::Value| {
        lines.iter().filter(|v| key(v) == &v["label"]).count()
    };
    let in_dataset = right(&|v| &v["pred_in_dataset"]);
    let all_classes = right(&|v| &v["top5"][0]["wnid"]);
    for n in [in_dataset, all_classes] {
        assert!((4..8).contains(&n), "{n} right: {lines:?}");
    }
    let pct = |n: usize| format!("{:.2} % ({n}/8)", 100.0 * n as f64 / 8.0);
    assert!(
        stdout.contains(&format!("all 1000 classes:      {}", pct(all_classes))),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("the dataset's 2 classes: {}", pct(in_dataset))),
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

/// Runs everywhere (seeded random weights, generated images): with `--json`, stdout holds only
/// JSON lines even with `--summary`, whose text goes to stderr.
#[test]
fn summary_with_json_keeps_stdout_json_lines() {
    use rand::SeedableRng;
    use reason::model::backbone::BackboneKind;
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("lite0-random.safetensors");
    common::synthetic::write_random_weights(BackboneKind::EfficientNetLite(0), 7, &weights);
    let class = dir.path().join("photos/n01440764");
    std::fs::create_dir_all(&class).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for i in 0..3 {
        common::synthetic::noise_image(Some(i % 3), &mut rng, 64)
            .save(class.join(format!("{i}.png")))
            .unwrap();
    }
    // An empty working directory: the built-in artifacts do not fit random weights, so
    // ImageNet top-5 only.
    let out = Command::new(env!("CARGO_BIN_EXE_reason"))
        .current_dir(dir.path())
        .args([
            "predict",
            "photos",
            "--weights",
            weights.to_str().unwrap(),
            "--device",
            "cpu",
            "--summary",
            "--json",
        ])
        .output()
        .expect("binary runs");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for line in &lines {
        assert!(
            line["path"].as_str().unwrap().starts_with("n01440764/"),
            "{line}"
        );
        assert_eq!(line["top5"].as_array().unwrap().len(), 5, "{line}");
    }
    assert!(
        stderr.contains("3 found, 3 classified, 0 skipped"),
        "{stderr}"
    );
    assert!(
        stderr.contains("top-1 accuracy, all 1000 classes"),
        "{stderr}"
    );
    assert!(!stdout.contains("accuracy"), "{stdout}");
}
