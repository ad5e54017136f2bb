//! Why a prediction came out as it did: the k-NN bank's nearest neighbours against a
//! brute-force search, the saliency of the real Lite0 on a picture whose class evidence sits
//! in one corner, the committed bank paths against the training split, and `reason explain`'s
//! PNG. The real-data tests skip, saying so, without `../shared/data`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use image::{imageops, Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use reason::model::backbone::{Backbone, BackboneKind};
use reason::model::saliency;
use reason::reliability::artifacts::Artifacts;
use reason::reliability::knn::{self, KnnBank};
use reason::reliability::neighbours::BankPaths;

fn committed_artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("reason_saved")
}

#[test]
fn neighbours_match_a_brute_force_search() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let n = 3000;
    let points: Vec<[f32; knn::DIM]> = (0..n)
        .map(|_| std::array::from_fn(|_| rng.random_range(-3.0f32..3.0)))
        .collect();
    let labels: Vec<u16> = (0..n).map(|i| (i % 4) as u16).collect();
    let bank = KnnBank::new(points.clone(), labels, 4);
    for _ in 0..40 {
        let q: [f32; knn::DIM] = std::array::from_fn(|_| rng.random_range(-3.0f32..3.0));
        let mut brute: Vec<(usize, f32)> = points
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let d2: f32 = p.iter().zip(&q).map(|(a, b)| (a - b) * (a - b)).sum();
                (i, d2.sqrt())
            })
            .collect();
        brute.sort_by(|a, b| a.1.total_cmp(&b.1));
        let got = bank.nearest(&q, 10);
        assert_eq!(got.len(), 10);
        for (g, b) in got.iter().zip(&brute) {
            assert_eq!(g.0, b.0, "{got:?} vs {:?}", &brute[..10]);
            assert!((g.1 - b.1).abs() < 1e-4 * b.1.max(1.0), "{g:?} {b:?}");
        }
    }
    // Asking for more than the bank holds gives the whole bank, nearest first.
    let small = KnnBank::new(points[..3].to_vec(), vec![0, 1, 2], 3);
    let all = small.nearest(&points[1], 10);
    assert_eq!(all.len(), 3);
    assert_eq!(all[0], (1, 0.0));
}

/// The real Lite0 and the committed head, or `None` (said).
fn real_model(test: &str) -> Option<(Backbone, Artifacts, PathBuf)> {
    let data = common::data_root(test)?;
    let artifacts = Artifacts::load(&committed_artifacts()).unwrap();
    let backbone = Backbone::load(
        BackboneKind::EfficientNetLite(0),
        &common::lite0_weights_in(&data),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    Some((backbone, artifacts, data))
}

fn first_val_image(data: &Path, class: &str) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("imagenette/val").join(class))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.remove(0)
}

/// A grey canvas of the input size with a (shrunk) tench photo in its top-left quarter: the
/// only tench evidence there is sits in that corner.
fn tench_in_a_corner(data: &Path) -> RgbImage {
    let photo = reason::data::imageio::decode_rgb(&first_val_image(data, "n01440764")).unwrap();
    let patch = imageops::resize(&photo, 100, 100, imageops::FilterType::Triangle);
    let mut canvas = RgbImage::from_pixel(224, 224, Rgb([128, 128, 128]));
    imageops::overlay(&mut canvas, &patch, 4, 4);
    canvas
}

#[test]
fn the_saliency_of_the_class_peaks_where_its_evidence_is() {
    let Some((backbone, artifacts, data)) =
        real_model("the_saliency_of_the_class_peaks_where_its_evidence_is")
    else {
        return;
    };
    let tench = artifacts
        .manifest
        .classes
        .iter()
        .position(|c| c == "n01440764")
        .unwrap() as u16;
    let canvas = tench_in_a_corner(&data);
    let map = saliency::compute(&backbone, &artifacts.head, &canvas, tench).unwrap();
    assert_eq!(map.size, 224);
    let (px, py) = map.peak();
    assert!(px < 112 && py < 112, "peak at ({px}, {py})");
    let mean = |inside: bool| {
        let cells: Vec<f32> = (0..224 * 224)
            .filter(|i| ((i % 224) < 104 && (i / 224) < 104) == inside)
            .map(|i| map.values[i])
            .collect();
        cells.iter().sum::<f32>() / cells.len() as f32
    };
    let (corner, rest) = (mean(true), mean(false));
    assert!(corner > 3.0 * rest, "corner {corner} vs rest {rest}");
}

/// CPU seconds this process has used (user + system), from /proc.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// What the dashboard's worker does for one overlay: decode, gradient, map, blend, encode
/// (half-blocks, 40 × 20 cells). Prints the time; the number in the README comes from here.
#[test]
fn time_to_show_an_overlay_for_one_image() {
    let Some((backbone, artifacts, data)) = real_model("time_to_show_an_overlay_for_one_image")
    else {
        return;
    };
    let path = first_val_image(&data, "n03888257");
    let picker = ratatui_image::picker::Picker::halfblocks();
    let pre = backbone.kind.preprocess();
    // One warm-up (first-touch of the weights' pages), then the measured runs.
    let mut runs = Vec::new();
    for _ in 0..4 {
        let (wall, cpu) = (Instant::now(), cpu_seconds());
        let image = reason::data::imageio::decode_rgb(&path).unwrap();
        let map = saliency::compute(&backbone, &artifacts.head, &image, 0).unwrap();
        let blended = saliency::overlay(&image, &map, &pre);
        let encoded = picker
            .new_protocol(
                image::DynamicImage::ImageRgb8(blended),
                ratatui::layout::Size::new(40, 20),
                ratatui_image::Resize::Scale(None),
            )
            .unwrap();
        assert!(encoded.size().width > 0);
        let cpu = cpu.zip(cpu_seconds()).map(|(a, b)| b - a);
        runs.push((wall.elapsed().as_secs_f64(), cpu));
    }
    eprintln!("overlay for one image (wall s, CPU s), first is the warm-up: {runs:?}");
    assert!(runs[1..].iter().all(|(wall, _)| *wall < 60.0), "{runs:?}");
}

#[test]
fn the_committed_bank_paths_are_the_training_split_in_bank_order() {
    let Some(data) = common::data_root("the_committed_bank_paths_are_the_training_split") else {
        return;
    };
    let artifacts = Artifacts::load(&committed_artifacts()).unwrap();
    let listed = BankPaths::for_split(
        &data.join("imagenette"),
        &artifacts.manifest.protocol.split,
        &artifacts.manifest.classes,
        artifacts.bank.labels(),
    )
    .unwrap();
    let committed = artifacts.bank_paths.expect("reason_saved has its paths");
    assert_eq!(committed.split, listed.split);
    assert_eq!(committed.paths, listed.paths);
    // A bank of other images is refused: one row too many, or one label changed.
    let mut labels = artifacts.bank.labels().to_vec();
    labels.push(0);
    let err = BankPaths::for_split(
        &data.join("imagenette"),
        "train",
        &artifacts.manifest.classes,
        &labels,
    )
    .unwrap_err();
    assert!(err.to_string().contains("not the images"), "{err}");
    labels.pop();
    labels[100] = (labels[100] + 1) % 10;
    let err = BankPaths::for_split(
        &data.join("imagenette"),
        "train",
        &artifacts.manifest.classes,
        &labels,
    )
    .unwrap_err();
    assert!(err.to_string().contains("row 100"), "{err}");
}

#[test]
fn explain_writes_a_decodable_png_per_image() {
    let Some(data) = common::data_root("explain_writes_a_decodable_png_per_image") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    // A val image (labelled by its folder) and a picture in a plain local folder.
    let val = first_val_image(&data, "n03888257");
    let plain = tmp.path().join("photos/holiday.jpg");
    std::fs::create_dir_all(plain.parent().unwrap()).unwrap();
    std::fs::copy(first_val_image(&data, "n03445777"), &plain).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_reason"))
        .args(["explain", "--device", "cpu", "--out", "figs"])
        .arg(&val)
        .arg(&plain)
        .current_dir(&work)
        .env("REASON_DATA", &data)
        .env("REASON_CACHE", tmp.path().join("cache"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for name in [
        format!("{}.explain.png", val.file_name().unwrap().to_string_lossy()),
        "holiday.jpg.explain.png".to_string(),
    ] {
        let png = image::open(work.join("figs").join(&name))
            .unwrap_or_else(|e| panic!("{name}: {e}\n{stderr}"))
            .to_rgb8();
        assert!(png.width() >= 1000 && png.height() >= 500, "{name}");
        // The first neighbour tile holds a training picture (not the grey "missing" box).
        let tile = png.get_pixel(20 + 68, png.height() - 52 - 68).0;
        assert_ne!(
            tile,
            [235, 235, 235],
            "{name}: the neighbours were not found"
        );
    }
}
