//! `reason train` as a user runs it: the same `--seed` and `--subset` give the same artifacts
//! byte for byte, from a cold cache or a warm one, and another seed gives other artifacts.
//! Runs on generated images and seeded random weights, so it needs no downloaded data.

mod common;

use std::path::Path;
use std::process::Command;

use common::synthetic::World;

/// `reason train` on `world` into `out`, with the feature cache in `cache`.
fn train(world: &World, out: &Path, cache: &Path, seed: u64) {
    let output = run_train(world, out, cache, seed, 40);
    assert!(
        output.status.success(),
        "reason train failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn run_train(
    world: &World,
    out: &Path,
    cache: &Path,
    seed: u64,
    subset: usize,
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_reason"))
        .arg("train")
        .arg("--data")
        .arg(world.root())
        .arg("--weights")
        .arg(&world.weights)
        .arg("--out")
        .arg(out)
        .args([
            "--device",
            "cpu",
            "--seed",
            &seed.to_string(),
            "--subset",
            &subset.to_string(),
        ])
        .args(["--folds", "3", "--views", "1", "--head-epochs", "5"])
        .args([
            "--metanet-epochs",
            "20",
            "--target-risk",
            "0.5",
            "--delta",
            "0.2",
        ])
        .env("REASON_CACHE", cache)
        .output()
        .expect("reason runs")
}

/// The artifact files, with the manifest's run-specific fields (the command line and stage
/// timings, which say whether the cache answered) removed.
fn contents(out: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let mut bytes = std::fs::read(&path).unwrap();
            if name == "manifest.json" {
                let mut manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                let object = manifest.as_object_mut().unwrap();
                assert!(object.remove("command").is_some());
                assert!(object.remove("timings").is_some());
                bytes = serde_json::to_vec_pretty(&manifest).unwrap();
            }
            (name, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn the_same_seed_and_subset_give_the_same_artifacts_from_a_cold_or_warm_cache() {
    let world = World::new(16, 2);
    let dir = tempfile::tempdir().unwrap();
    let (cache_a, cache_b) = (dir.path().join("cache-a"), dir.path().join("cache-b"));

    train(&world, &dir.path().join("a"), &cache_a, 3);
    train(&world, &dir.path().join("b"), &cache_b, 3);
    let a = contents(&dir.path().join("a"));
    let names: Vec<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "knn_bank.safetensors",
            "knn_bank_paths.json",
            "label_issues.csv",
            "manifest.json",
            "model.safetensors",
            "train_meta.safetensors",
            "train_records.json"
        ]
    );
    for ((name, x), (_, y)) in a.iter().zip(&contents(&dir.path().join("b"))) {
        assert!(x == y, "{name} differs between two cold-cache runs");
    }

    // Warm: the cache answers, and the artifacts do not change.
    train(&world, &dir.path().join("warm"), &cache_a, 3);
    for ((name, x), (_, y)) in a.iter().zip(&contents(&dir.path().join("warm"))) {
        assert!(x == y, "{name} differs between a cold and a warm run");
    }

    // Another seed draws another subset (and other folds): other artifacts.
    train(&world, &dir.path().join("other"), &cache_a, 4);
    let other = contents(&dir.path().join("other"));
    let file = |files: &[(String, Vec<u8>)], name: &str| {
        let found = files.iter().find(|(n, _)| n == name);
        found.unwrap_or_else(|| panic!("no {name}")).1.clone()
    };
    for name in ["model.safetensors", "manifest.json", "label_issues.csv"] {
        assert!(
            file(&a, name) != file(&other, name),
            "{name} ignores --seed"
        );
    }
}

#[test]
fn too_few_images_are_refused_before_any_work_with_the_remedy() {
    let world = World::new(16, 2);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let output = run_train(&world, &dir.path().join("out"), &cache, 0, 20);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("at least 32 labelled images") && stderr.contains("has 20"),
        "{stderr}"
    );
    assert!(stderr.contains("--subset"), "{stderr}");
    // Refused before the backbone ran: nothing was cached, nothing written.
    assert!(!dir.path().join("out").exists());
    assert!(!cache.exists() || std::fs::read_dir(&cache).unwrap().next().is_none());
}
