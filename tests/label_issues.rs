//! `reason train --labels CSV:COLUMN` and the label-issue ranking it writes: on generated images
//! with labels flipped on purpose (no download needed), and on Imagenette's published noisy
//! labels (`noisy_labels_5`) when the real data is here. The ranking's score is fixed in
//! `reliability::label_issues` (1 − p(given label)); these tests only measure it.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::synthetic::{World, CLASSES};

/// One row of `label_issues.csv`.
#[derive(Debug)]
struct Issue {
    rank: usize,
    path: String,
    given: String,
    suggested: String,
    p_given: f32,
    score: f32,
    suspected: bool,
}

fn read_issues(out: &Path) -> Vec<Issue> {
    let text = std::fs::read_to_string(out.join("label_issues.csv")).expect("label_issues.csv");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("rank,path,given_label,suggested_label,p_given,p_suggested,score,suspected")
    );
    lines
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), 8, "{line}");
            Issue {
                rank: f[0].parse().unwrap(),
                path: f[1].into(),
                given: f[2].into(),
                suggested: f[3].into(),
                p_given: f[4].parse().unwrap(),
                score: f[6].parse().unwrap(),
                suspected: f[7].parse().unwrap(),
            }
        })
        .collect()
}

/// Share of the first `k` ranked paths that are flips.
fn precision_at(issues: &[Issue], flips: &HashSet<String>, k: usize) -> f64 {
    issues[..k]
        .iter()
        .filter(|i| flips.contains(&i.path))
        .count() as f64
        / k as f64
}

fn train(root: &Path, weights: &Path, out: &Path, cache: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reason"))
        .arg("train")
        .arg("--data")
        .arg(root)
        .arg("--weights")
        .arg(weights)
        .arg("--out")
        .arg(out)
        .args(["--device", "cpu"])
        .args(extra)
        .env("REASON_CACHE", cache)
        .output()
        .expect("reason runs")
}

/// Labels of `train/` with every `every`-th image moved to the next class; returns the CSV
/// (with a `val/` row, which belongs to another split and is ignored) and the flipped paths.
fn flipped_labels(root: &Path, every: usize) -> (String, HashSet<String>) {
    let mut csv = String::from("path,noisy,is_valid\n");
    let mut flips = HashSet::new();
    let mut paths: Vec<(PathBuf, usize)> = Vec::new();
    for (c, wnid) in CLASSES.iter().enumerate() {
        for entry in std::fs::read_dir(root.join("train").join(wnid)).unwrap() {
            paths.push((entry.unwrap().path(), c));
        }
    }
    paths.sort();
    for (i, (path, class)) in paths.iter().enumerate() {
        let rel = format!(
            "train/{}/{}",
            CLASSES[*class],
            path.file_name().unwrap().to_string_lossy()
        );
        let label = if i % every == every / 2 {
            flips.insert(rel.clone());
            CLASSES[(class + 1) % CLASSES.len()]
        } else {
            CLASSES[*class]
        };
        csv.push_str(&format!("{rel},{label},False\n"));
    }
    let val = std::fs::read_dir(root.join("val").join(CLASSES[0]))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    csv.push_str(&format!(
        "val/{}/{},{},True\n",
        CLASSES[0],
        val.file_name().to_string_lossy(),
        CLASSES[1]
    ));
    (csv, flips)
}

#[test]
fn injected_flips_rank_above_chance_and_bad_label_tables_are_refused() {
    let world = World::new(40, 2);
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let (csv, flips) = flipped_labels(world.root(), 10);
    let csv_path = world.root().join("noisy.csv");
    std::fs::write(&csv_path, &csv).unwrap();
    let labels = format!("{}:noisy", csv_path.display());

    // Refusals come before any backbone pass, each naming what is wrong.
    for (column, table, expected) in [
        ("nope", csv.clone(), "no column `nope`"),
        (
            "noisy",
            csv.replacen(",n01440764,False", ",n99999999,False", 1),
            "`n99999999` ",
        ),
        (
            "noisy",
            format!("{csv}train/n01440764/gone.png,n01440764,False\n"),
            "1 row(s) match no image",
        ),
    ] {
        let bad = world.root().join("bad.csv");
        std::fs::write(&bad, table).unwrap();
        let arg = format!("{}:{column}", bad.display());
        let o = train(
            world.root(),
            &world.weights,
            out.path(),
            cache.path(),
            &["--labels", &arg],
        );
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    assert!(!out.path().join("manifest.json").exists());

    let o = train(
        world.root(),
        &world.weights,
        out.path(),
        cache.path(),
        &[
            "--labels",
            &labels,
            "--folds",
            "4",
            "--views",
            "0",
            "--head-epochs",
            "20",
            "--metanet-epochs",
            "20",
            "--target-risk",
            "0.5",
            "--delta",
            "0.2",
        ],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "reason train failed:\n{stderr}");
    assert!(
        stderr.contains(&format!("{} of 120 images labelled otherwise", flips.len())),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 rows of other splits ignored"),
        "{stderr}"
    );

    let issues = read_issues(out.path());
    assert_eq!(issues.len(), 120);
    assert_eq!(
        issues.iter().map(|i| i.rank).collect::<Vec<_>>(),
        (1..=120).collect::<Vec<_>>()
    );
    // The given labels are the CSV's, the score is 1 − p(given), ranked most suspicious first.
    for i in &issues {
        let flipped = flips.contains(&i.path);
        let folder = i.path.split('/').nth(1).unwrap();
        assert_eq!(i.given == folder, !flipped, "{i:?}");
        assert!((i.score - (1.0 - i.p_given)).abs() < 1e-6, "{i:?}");
        assert!(CLASSES.contains(&i.suggested.as_str()));
    }
    assert!(issues.windows(2).all(|w| w[0].score >= w[1].score));
    let k = flips.len();
    let precision = precision_at(&issues, &flips, k);
    let chance = k as f64 / issues.len() as f64;
    eprintln!("synthetic: precision@{k} {precision:.3} (chance {chance:.3})");
    assert!(precision >= 3.0 * chance, "precision@{k} {precision}");
    // The out-of-fold records the dashboard opens for the training split: the same labels.
    let set: reason::reliability::records::RecordSet =
        serde_json::from_slice(&std::fs::read(out.path().join("train_records.json")).unwrap())
            .unwrap();
    assert_eq!(set.records.len(), 120);
    let manifest = std::fs::read_to_string(out.path().join("manifest.json")).unwrap();
    assert!(manifest.contains("column `noisy`"), "{manifest}");
}

/// Imagenette's `noisy_labels_5` on a seeded subset of the training split, out-of-fold: the
/// known flips must head the ranking far more often than chance (5 %).
#[test]
fn imagenette_noisy_labels_5_flips_head_the_ranking() {
    let Some(data) = common::data_root("imagenette_noisy_labels_5_flips_head_the_ranking") else {
        return;
    };
    let root = data.join("imagenette");
    let csv = root.join("noisy_imagenette.csv");
    if !csv.is_file() {
        eprintln!("SKIPPED: {} not found", csv.display());
        return;
    }
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (path, clean, noisy) = (col("path"), col("noisy_labels_0"), col("noisy_labels_5"));
    let flips: HashSet<String> = lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f[clean] != f[noisy])
        .map(|f| f[path].to_string())
        .collect();
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let labels = format!("{}:noisy_labels_5", csv.display());
    let o = train(
        &root,
        &common::lite0_weights_in(&data),
        out.path(),
        cache.path(),
        &["--labels", &labels, "--subset", "500", "--views", "0"],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "reason train failed:\n{stderr}");
    let issues = read_issues(out.path());
    assert_eq!(issues.len(), 500);
    let in_subset = issues.iter().filter(|i| flips.contains(&i.path)).count();
    assert!(in_subset >= 10, "{in_subset} flips in the subset");
    let k = in_subset;
    let precision = precision_at(&issues, &flips, k);
    let chance = k as f64 / issues.len() as f64;
    let suspected: Vec<&Issue> = issues.iter().filter(|i| i.suspected).collect();
    let suspected_precision = suspected.iter().filter(|i| flips.contains(&i.path)).count() as f64
        / suspected.len().max(1) as f64;
    eprintln!(
        "noisy_labels_5, 500 images: precision@{k} {precision:.3} (chance {chance:.3}); \
         {} suspected, {suspected_precision:.3} of them flips",
        suspected.len()
    );
    assert!(precision >= 0.5, "precision@{k} {precision}");
    assert!(suspected_precision >= 0.5, "{suspected_precision}");
}
