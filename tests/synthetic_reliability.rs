//! `train` → artifacts → `Scorer::score` → `evaluate` on a seeded random-weight Lite0 and
//! generated images: no downloaded data, so these run on every clone. One training run is
//! shared by the tests; each checks numbers against an independent recount from the rows.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use candle_core::Device;
use common::synthetic::{self, World, CLASSES, KIND};
use reason::data::dataset::Dataset;
use reason::model::backbone::{Backbone, BackboneKind};
use reason::model::head::HeadConfig;
use reason::reliability::artifacts::Artifacts;
use reason::reliability::features::{self, BASELINES};
use reason::reliability::metanet::MetaNetConfig;
use reason::reliability::records::ScoringEvent;
use reason::reliability::scoring::{Scored, ScoringModels};
use reason::reliability::train::{train, InferenceHead, MetaModelChoice, TrainOptions};
use reason::report::evaluate::{evaluate, EvalRows, METANET};

const TRAIN_PER_CLASS: usize = 16;
const VAL_PER_CLASS: usize = 4;
/// Val images outside the trained classes (unlabelled for the artifacts).
const VAL_UNKNOWN: usize = 2;
const BROKEN: &str = "n02102040/zz-broken.png";

struct Fixture {
    world: World,
    backbone: Backbone,
    sha256: String,
    /// What `train` returned, before any save.
    trained: Artifacts,
    saved: PathBuf,
    val: Dataset,
}

/// One world, one training run, saved once; the tests share them.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        synthetic::private_cache();
        let world = World::new(TRAIN_PER_CLASS, VAL_PER_CLASS);
        let val_root = world.root().join("val");
        std::fs::write(val_root.join(BROKEN), b"not an image").unwrap();
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(5);
        let unknown = val_root.join("unknown_class");
        std::fs::create_dir_all(&unknown).unwrap();
        for i in 0..VAL_UNKNOWN {
            synthetic::noise_image(None, &mut rng, 40)
                .save(unknown.join(format!("u{i}.png")))
                .unwrap();
        }
        let backbone = world.backbone();
        let sha256 = world.weights_sha256();
        let artifacts = train_once(&world, &backbone, &sha256);
        let saved = world.root().join("saved");
        artifacts.save(&saved).unwrap();
        let val = Dataset::open_split(world.root(), "val").unwrap();
        Fixture {
            world,
            backbone,
            sha256,
            trained: artifacts,
            saved,
            val,
        }
    })
}

fn train_once(world: &World, backbone: &Backbone, sha256: &str) -> Artifacts {
    let dataset = Dataset::open_split(world.root(), "train").unwrap();
    let opts = TrainOptions {
        backbone,
        weights_source: "lite0-random.safetensors".into(),
        hub_id: None,
        weights_sha256: sha256.to_string(),
        dataset: &dataset,
        split: "train".into(),
        subset: None,
        folds: 3,
        seed: 0,
        batch_size: 16,
        head: HeadConfig {
            epochs: 15,
            ..Default::default()
        },
        metanet: MetaNetConfig {
            max_epochs: 40,
            ..Default::default()
        },
        views: 1,
        holdout_classes: 0,
        meta_model: MetaModelChoice::Auto,
        inference_head: InferenceHead::Average,
        // Loose, so that a handful of calibration rows can certify a threshold.
        target_risk: 0.5,
        delta: 0.2,
        command: "synthetic test".into(),
    };
    train(&opts, &|_, _, _| {}).unwrap()
}

fn load() -> Artifacts {
    Artifacts::load(&fixture().saved).unwrap()
}

#[test]
fn train_produces_a_protocol_its_rows_agree_with() {
    let f = fixture();
    let a = load();
    let m = &a.manifest;
    let sources = CLASSES.len() * TRAIN_PER_CLASS;
    let rows = 2 * sources; // clean and one view
    assert_eq!(m.classes, CLASSES);
    assert_eq!(m.backbone.name, KIND.name());
    assert_eq!(m.backbone.weights_sha256, f.sha256);
    assert_eq!(m.backbone.embedding_dim, KIND.embedding_dim());
    assert_eq!(m.protocol.rows_used, sources);
    assert_eq!(m.protocol.rows_in_split, sources);
    assert_eq!(m.protocol.folds, 3);
    assert_eq!(m.layout, features::layout(CLASSES.len()));
    let tm = &a.train_meta;
    assert_eq!(tm.correct.len(), rows);
    assert_eq!(tm.rows.len(), rows * m.layout.dim());
    // Sources 0..n clean, then the same sources as view 1.
    assert_eq!(tm.view.iter().filter(|&&v| v == 0).count(), sources);
    for i in 0..sources {
        assert_eq!((tm.source[i], tm.view[i]), (i as u32, 0));
        assert_eq!(
            (tm.source[sources + i], tm.view[sources + i]),
            (i as u32, 1)
        );
        // Every view of an image has the image's role.
        assert_eq!(tm.role[i], tm.role[sources + i], "source {i}");
    }
    // The role counts are the protocol's; calibration counts clean rows only.
    let count = |keep: &dyn Fn(usize) -> bool| (0..rows).filter(|&i| keep(i)).count();
    assert_eq!(m.protocol.metanet_fit_rows, count(&|i| tm.role[i] == 0));
    assert_eq!(m.protocol.metanet_stop_rows, count(&|i| tm.role[i] == 1));
    assert_eq!(
        m.protocol.calibration_rows,
        count(&|i| tm.role[i] == 2 && tm.view[i] == 0)
    );
    // The run's metrics are recounts of the saved outcomes.
    let errors_clean = count(&|i| tm.view[i] == 0 && !tm.correct[i]);
    let errors_views = count(&|i| tm.view[i] == 1 && !tm.correct[i]);
    assert!(
        errors_clean > 0 && errors_clean < sources,
        "the synthetic classes must give both outcomes: {errors_clean} errors of {sources}"
    );
    assert_eq!(m.metrics["oof_errors_clean"], errors_clean as f64);
    assert_eq!(m.metrics["oof_errors_views"], errors_views as f64);
    assert_eq!(m.metrics["oof_rows"], rows as f64);
    let accuracy = m.metrics["oof_head_accuracy_clean"].as_f64().unwrap();
    assert!((accuracy - (1.0 - errors_clean as f64 / sources as f64)).abs() < 1e-12);
    // TS-MSP and each candidate on the select rows, exactly one kept, and it is the best.
    let selection = &m.protocol.selection;
    assert_eq!(selection.len(), 1 + MetaModelChoice::CANDIDATES.len());
    assert_eq!(selection.iter().filter(|r| r.chosen).count(), 1);
    let kept = selection.iter().find(|r| r.chosen).unwrap();
    assert_eq!(kept.model, m.protocol.meta_model);
    assert!(selection[1..]
        .iter()
        .all(|r| r.auroc_all.unwrap_or(0.0) <= kept.auroc_all.unwrap_or(0.0)));
    // The certificate recounted on the clean calibration rows with the saved MetaNet.
    let dim = m.layout.dim();
    let cert = &m.calibration.certificate;
    let calib: Vec<usize> = (0..rows)
        .filter(|&i| tm.role[i] == 2 && tm.view[i] == 0)
        .collect();
    assert_eq!(cert.calibration_rows, calib.len());
    let p = |i: usize| a.metanet.p_correct(&tm.rows[i * dim..(i + 1) * dim]);
    assert!((0..rows).all(|i| (0.0..=1.0).contains(&p(i))));
    if cert.feasible {
        let accepted: Vec<usize> = calib
            .iter()
            .copied()
            .filter(|&i| p(i) >= cert.threshold)
            .collect();
        assert_eq!(cert.accepted, accepted.len());
        assert_eq!(
            cert.errors,
            accepted.iter().filter(|&&i| !tm.correct[i]).count()
        );
        assert!(cert.upper_bound <= cert.target_risk);
        assert_eq!(m.calibration.threshold, cert.threshold);
    } else {
        assert!(m.calibration.threshold.is_infinite());
    }
    // The k-NN bank holds the clean training images with their labels, 32-d.
    assert_eq!(a.bank.points().len(), sources);
    let mut labels = a.bank.labels().to_vec();
    labels.sort_unstable();
    let expected: Vec<u16> = (0..CLASSES.len() as u16)
        .flat_map(|c| std::iter::repeat_n(c, TRAIN_PER_CLASS))
        .collect();
    assert_eq!(labels, expected);
    assert_eq!(a.outcome_bank.points().len(), rows);
    assert_eq!(a.outcome_bank.correct(), &tm.correct[..]);
    // A row's neighbours exclude its own image: the bank's groups are the source images.
    assert_eq!(a.outcome_bank.group(), &tm.source[..]);
}

/// Copies the saved artifacts to a fresh folder (to damage them there).
fn copy_of(saved: &Path, name: &str) -> PathBuf {
    let dir = fixture().world.root().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(saved).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    dir
}

fn error_of<T>(r: reason::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn artifacts_round_trip_exactly_and_refuse_what_does_not_belong() {
    let f = fixture();
    // What `train` returned against what was saved and loaded: every part equal.
    let a = &f.trained;
    let c = load();
    assert_eq!(c.manifest, a.manifest);
    assert_eq!(c.head, a.head);
    assert_eq!(c.metanet, a.metanet);
    assert_eq!(c.pca, a.pca);
    assert_eq!(c.relu, a.relu);
    assert_eq!(c.bank.points(), a.bank.points());
    assert_eq!(c.bank.labels(), a.bank.labels());
    assert_eq!(c.outcome_bank.points(), a.outcome_bank.points());
    assert_eq!(c.outcome_bank.predicted(), a.outcome_bank.predicted());
    assert_eq!(c.outcome_bank.correct(), a.outcome_bank.correct());
    assert_eq!(c.outcome_bank.group(), a.outcome_bank.group());
    // The bank rows' images: one per row, each a training file of the row's class folder.
    assert_eq!(c.bank_paths, a.bank_paths);
    let paths = c.bank_paths.as_ref().expect("train writes the bank paths");
    assert_eq!(paths.paths.len(), c.bank.points().len());
    let root = paths.resolve_root().expect("the training folder is here");
    for (path, &label) in paths.paths.iter().zip(c.bank.labels()) {
        assert!(root.join(path).is_file(), "{path}");
        assert!(
            path.starts_with(&c.manifest.classes[label as usize]),
            "{path}"
        );
    }
    assert_eq!(c.train_meta.rows, a.train_meta.rows);
    assert_eq!(c.train_meta.correct, a.train_meta.correct);
    assert_eq!(c.train_meta.role, a.train_meta.role);
    assert_eq!(c.train_meta.source, a.train_meta.source);
    assert_eq!(c.train_meta.view, a.train_meta.view);
    // Loaded and saved again: every file byte-identical.
    let again = f.world.root().join("saved-again");
    c.save(&again).unwrap();
    for file in [
        "manifest.json",
        "model.safetensors",
        "knn_bank.safetensors",
        "knn_bank_paths.json",
        "train_meta.safetensors",
    ] {
        assert_eq!(
            std::fs::read(f.saved.join(file)).unwrap(),
            std::fs::read(again.join(file)).unwrap(),
            "{file}"
        );
    }

    // The right backbone, weights and layout pass; each wrong one is named.
    let layout = features::layout(CLASSES.len());
    a.check_compatible(KIND, &f.sha256, &layout).unwrap();
    let e = error_of(a.check_compatible(BackboneKind::ResNet(18), &f.sha256, &layout));
    assert!(
        e.contains("backbone `tf_efficientnet_lite0`, not `resnet18`"),
        "{e}"
    );
    let other_weights = f.world.root().join("other.safetensors");
    synthetic::write_random_weights(KIND, 8, &other_weights);
    let e = error_of(ScoringModels::with_weights(load(), KIND, &other_weights));
    assert!(e.contains("sha256") && e.contains(&f.sha256[..12]), "{e}");
    let e = error_of(a.check_compatible(KIND, &f.sha256, &features::layout(5)));
    assert!(e.contains("feature layout differs"), "{e}");
    ScoringModels::with_weights(load(), KIND, &f.world.weights).unwrap();

    // Damaged artifacts say what is wrong.
    let dir = copy_of(&f.saved, "truncated");
    let model = std::fs::read(dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &model[..model.len() / 2]).unwrap();
    let e = error_of(Artifacts::load(&dir));
    assert!(
        e.contains("cannot read") && e.contains("model.safetensors"),
        "{e}"
    );

    let dir = copy_of(&f.saved, "missing-tensor");
    let path = dir.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    tensors.remove("pca.mean").unwrap();
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let e = error_of(Artifacts::load(&dir));
    assert!(e.contains("lacks tensor `pca.mean`"), "{e}");

    let dir = copy_of(&f.saved, "fewer-classes");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    manifest["classes"].as_array_mut().unwrap().pop();
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    let e = error_of(Artifacts::load(&dir));
    assert!(e.contains("head has 3 classes, manifest lists 2"), "{e}");

    let dir = copy_of(&f.saved, "future");
    std::fs::write(dir.join("manifest.json"), br#"{"format_version": 99}"#).unwrap();
    let e = error_of(Artifacts::load(&dir));
    assert!(e.contains("format version Some(99)"), "{e}");

    let dir = copy_of(&f.saved, "not-json");
    std::fs::write(dir.join("manifest.json"), b"{").unwrap();
    let e = error_of(Artifacts::load(&dir));
    assert!(e.contains("manifest.json is not JSON"), "{e}");
}

/// Scores the val split with the saved artifacts (`use_cache` off: the backbone runs).
fn score(seed: u64, events: &(dyn Fn(ScoringEvent) + Sync)) -> Scored {
    let f = fixture();
    let models = ScoringModels::with_weights(load(), KIND, &f.world.weights).unwrap();
    let mut scorer = models.scorer(&f.backbone);
    scorer.use_cache = false;
    scorer.seed = seed;
    scorer.batch_size = 5;
    scorer.score(&f.val, None, events).unwrap()
}

#[test]
fn scoring_gives_one_bounded_record_per_image_deterministically_and_names_skips() {
    let f = fixture();
    let events = Mutex::new(Vec::new());
    let first = score(0, &|e| events.lock().unwrap().push(e));
    let good: Vec<_> = f.val.samples.iter().filter(|s| s.id != BROKEN).collect();
    assert_eq!(f.val.samples.len(), good.len() + 1);
    assert_eq!(first.records.len(), good.len());
    assert_eq!(first.extra.len(), good.len());
    assert_eq!(first.skipped.len(), 1);
    assert_eq!(first.skipped[0].0, BROKEN);
    let a = load();
    for (r, s) in first.records.iter().zip(&good) {
        assert_eq!(r.id, s.id);
        // Labels map onto the artifacts' classes by folder name; other folders are unlabelled.
        let folder = s.label.map(|l| f.val.classes[l].as_str());
        let expected = folder.and_then(|c| CLASSES.iter().position(|k| *k == c));
        assert_eq!(r.label, expected.map(|l| l as u16), "{}", r.id);
        assert!((0.0..=1.0).contains(&r.p_correct), "{}", r.p_correct);
        assert_eq!(r.p_correct, a.metanet.p_correct(&r.meta));
        assert_eq!(r.probs.len(), CLASSES.len());
        assert!((r.probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(r.pred as usize, reason::support::math::argmax(&r.probs));
        assert_eq!(r.meta.len(), a.manifest.layout.dim());
        assert!(r.meta.iter().all(|v| v.is_finite()), "{:?}", r.meta);
    }
    assert_eq!(
        first.records.iter().filter(|r| r.label.is_none()).count(),
        VAL_UNKNOWN
    );
    // What a viewer was told: the start, the skip by name, every record once, the end.
    let events = events.into_inner().unwrap();
    assert!(
        matches!(events.first(), Some(ScoringEvent::Started { total, .. }) if *total == f.val.samples.len())
    );
    assert!(matches!(events.last(), Some(ScoringEvent::Finished)));
    let skipped: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ScoringEvent::Skipped { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(skipped, [BROKEN]);
    let streamed: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ScoringEvent::Records(r) => Some(r.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(streamed, first.records);

    // The same seed gives the same records, bit for bit; another seed redraws MC dropout only.
    let second = score(0, &|_| {});
    assert_eq!(second.records, first.records);
    let third = score(1, &|_| {});
    let layout = &a.manifest.layout;
    let mut mc_changed = false;
    for (x, y) in first.records.iter().zip(&third.records) {
        assert_eq!(x.probs, y.probs);
        for j in 0..layout.dim() {
            if layout.family_of(j) == Some("mc_dropout") {
                mc_changed |= x.meta[j] != y.meta[j];
            } else {
                assert_eq!(x.meta[j], y.meta[j], "{}", layout.name(j).unwrap());
            }
        }
    }
    assert!(mc_changed, "the seed must reach MC dropout");
}

/// AUROC of `score` for separating correct from wrong rows, by counting every pair:
/// P(score of a correct row > score of a wrong row) + ½ P(tie).
fn auroc_by_pairs(score: &[f64], correct: &[bool]) -> f64 {
    let (mut twice, mut pairs) = (0u64, 0u64);
    for i in (0..score.len()).filter(|&i| correct[i]) {
        for j in (0..score.len()).filter(|&j| !correct[j]) {
            pairs += 1;
            twice += match score[i].partial_cmp(&score[j]).unwrap() {
                std::cmp::Ordering::Greater => 2,
                std::cmp::Ordering::Equal => 1,
                std::cmp::Ordering::Less => 0,
            };
        }
    }
    twice as f64 / (2 * pairs) as f64
}

#[test]
fn evaluate_reports_numbers_recomputable_from_the_rows() {
    let f = fixture();
    let a = load();
    let scored = score(0, &|_| {});
    let n = scored.records.len();
    let rows = EvalRows {
        scored: &scored,
        draw: vec![0; n],
        novel: vec![false; n],
    };
    let report = evaluate(&rows, &a, "val", "clean", 50, 0).unwrap();
    let labelled: Vec<usize> = (0..n)
        .filter(|&i| scored.records[i].label.is_some())
        .collect();
    let correct: Vec<bool> = labelled
        .iter()
        .map(|&i| scored.records[i].label == Some(scored.records[i].pred))
        .collect();
    let errors = correct.iter().filter(|&&c| !c).count();
    assert!(
        errors > 0 && errors < labelled.len(),
        "both outcomes are needed: {errors} errors of {}",
        labelled.len()
    );
    assert_eq!(report.samples, n);
    assert_eq!(report.labelled, labelled.len());
    assert_eq!(report.labelled, CLASSES.len() * VAL_PER_CLASS);
    assert_eq!(report.skipped, 1);
    assert_eq!(report.errors, errors);
    assert_eq!(report.draws, 1);
    assert_eq!(report.source_images, labelled.len());
    let accuracy = 1.0 - errors as f64 / labelled.len() as f64;
    assert!((report.accuracy.unwrap() - accuracy).abs() < 1e-12);
    assert_eq!(report.rows.len(), 1 + BASELINES.len());
    assert_eq!(report.bootstrap_resamples, 50);

    // The MetaNet's row ranks by the calibrated logit (P(correct) = σ(logit) saturates to 1 in
    // f32 above logit ≈ 17, which ties rows the logit still orders): AUROC by pair counting.
    let p: Vec<f64> = labelled
        .iter()
        .map(|&i| scored.records[i].p_correct as f64)
        .collect();
    let logit: Vec<f64> = labelled
        .iter()
        .map(|&i| scored.extra[i].metanet_logit as f64)
        .collect();
    for (p, z) in p.iter().zip(&logit) {
        assert!(
            (p - 1.0 / (1.0 + (-z).exp())).abs() < 1e-6,
            "P(correct) {p} is not σ({z})"
        );
    }
    let metanet = report.rows.iter().find(|r| r.score == METANET).unwrap();
    let auroc = metanet.metrics.auroc.unwrap();
    let by_pairs = auroc_by_pairs(&logit, &correct);
    assert!((auroc - by_pairs).abs() < 1e-12, "{auroc} vs {by_pairs}");
    assert_eq!(metanet.metrics.n, labelled.len());
    let brier = p
        .iter()
        .zip(&correct)
        .map(|(p, &c)| (p - f64::from(u8::from(c))).powi(2))
        .sum::<f64>()
        / p.len() as f64;
    assert!((metanet.metrics.brier.unwrap() - brier).abs() < 1e-6);
    // MSP's row from the head probabilities of the records.
    let msp: Vec<f64> = labelled
        .iter()
        .map(|&i| {
            let probs = &scored.records[i].probs;
            probs.iter().copied().fold(0f32, f32::max) as f64
        })
        .collect();
    let msp_row = report.rows.iter().find(|r| r.score == "msp").unwrap();
    assert!((msp_row.metrics.auroc.unwrap() - auroc_by_pairs(&msp, &correct)).abs() < 1e-12);
    assert!(msp_row.vs_msp.is_none() && msp_row.vs_ts_msp.is_some());
    assert!(metanet.vs_msp.is_some() && metanet.vs_ts_msp.is_some());
    // Every baseline's AUROC by pair counting over its column.
    for (b, name) in BASELINES.iter().enumerate() {
        let values: Vec<f64> = labelled
            .iter()
            .map(|&i| scored.extra[i].baselines[b] as f64)
            .collect();
        let row = report.rows.iter().find(|r| r.score == *name).unwrap();
        if let Some(auroc) = row.metrics.auroc {
            assert!(
                (auroc - auroc_by_pairs(&values, &correct)).abs() < 1e-12,
                "{name}"
            );
        }
    }

    // At the threshold, over every row (unlabelled ones too).
    let t = report.threshold;
    assert_eq!(t, a.manifest.calibration.threshold);
    let accepted: Vec<usize> = (0..n)
        .filter(|&i| scored.records[i].p_correct >= t)
        .collect();
    let wrong = |i: usize| scored.records[i].correct() == Some(false);
    assert_eq!(report.at_threshold.accepted, accepted.len());
    assert_eq!(report.at_threshold.rejected, n - accepted.len());
    assert_eq!(
        report.at_threshold.accepted_wrong,
        accepted.iter().filter(|&&i| wrong(i)).count()
    );
    let accepted_labelled: Vec<usize> = accepted
        .iter()
        .copied()
        .filter(|&i| scored.records[i].label.is_some())
        .collect();
    assert_eq!(report.certificate.accepted, accepted_labelled.len());
    assert_eq!(
        report.certificate.errors,
        accepted_labelled.iter().filter(|&&i| wrong(i)).count()
    );
    // Per class: members, errors, accepted.
    assert_eq!(report.per_class.len(), CLASSES.len());
    for (c, row) in report.per_class.iter().enumerate() {
        let members: Vec<usize> = (0..n)
            .filter(|&i| scored.records[i].label == Some(c as u16))
            .collect();
        assert_eq!(row.class, CLASSES[c]);
        assert_eq!(row.samples, members.len());
        assert_eq!(row.errors, members.iter().filter(|&&i| wrong(i)).count());
        assert_eq!(
            row.accepted,
            members
                .iter()
                .filter(|&&i| scored.records[i].p_correct >= t)
                .count()
        );
    }
    // No file is named like an ImageNet val image: every row was seen in pretraining.
    let seen = report
        .pretraining
        .iter()
        .find(|g| g.group == "seen in pretraining")
        .unwrap();
    assert_eq!((seen.rows, seen.errors), (labelled.len(), errors));
    // The ablation retrains from the saved rows and reports against its own reference.
    let reference = report.ablation_reference_auroc.unwrap();
    assert!(!report.ablation.is_empty());
    for row in &report.ablation {
        let d = row.delta_auroc.unwrap();
        assert!((row.auroc.unwrap() - reference - d).abs() < 1e-12);
    }
    let _ = f;
}
