//! `classify` and `extract` on a seeded random-weight Lite0 and generated images: no downloaded
//! data, so these run on every clone. Each value is checked against an independent computation
//! (a plain forward pass, a hand-written objective), not against the code under test.

mod common;

use candle_core::{Device, Tensor};
use common::synthetic::{self, World, KIND};
use reason::data::dataset::{Dataset, Sample};
use reason::data::imageio::decode_rgb;
use reason::data::imagenet;
use reason::model::backbone::{one_hot, Backbone};
use reason::model::classify::{classify_dataset, Prediction};
use reason::model::extract::{ExtractSpec, Extracted};

/// The network input of `samples`, preprocessed one by one outside the batch pipeline.
fn input_of(samples: &[&Sample]) -> Tensor {
    let pre = KIND.preprocess();
    let images: Vec<Vec<f32>> = samples
        .iter()
        .map(|s| pre.apply(&decode_rgb(&s.path).unwrap()))
        .collect();
    pre.batch_tensor(&images, &Device::Cpu).unwrap()
}

fn logits_of(backbone: &Backbone, samples: &[&Sample]) -> Vec<Vec<f32>> {
    backbone
        .forward(&input_of(samples))
        .unwrap()
        .logits
        .to_vec2()
        .unwrap()
}

/// Indices of the 5 largest values, largest first.
fn top5(values: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    order.truncate(5);
    order
}

fn softmax64(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::MIN, f32::max) as f64;
    let e: Vec<f64> = logits.iter().map(|&z| (z as f64 - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

#[test]
fn classify_reports_sorted_top5_and_accuracy_that_match_an_independent_forward() {
    synthetic::private_cache();
    let world = World::new(0, 0);
    let backbone = world.backbone();
    // Eight unlabelled images first, to learn what this random network predicts for them.
    let staging = world.root().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3);
    for i in 0..8 {
        synthetic::noise_image(Some(i % 3), &mut rng, 40)
            .save(staging.join(format!("img{i}.png")))
            .unwrap();
    }
    let staged = Dataset::open(&staging).unwrap();
    let logits = logits_of(&backbone, &staged.samples.iter().collect::<Vec<_>>());
    // Class A: image 0's top-1 class; class B: its runner-up. Images 0..4 go to A, 4..8 to B,
    // so image 0 is right and (unless the network predicts B for them) B's images are wrong.
    let first = top5(&logits[0]);
    let wnid = |k: usize| imagenet::classes()[k].wnid.to_string();
    let (a, b) = (wnid(first[0]), wnid(first[1]));
    let root = world.root().join("labelled");
    for (i, s) in staged.samples.iter().enumerate() {
        let class = if i < 4 { &a } else { &b };
        std::fs::create_dir_all(root.join(class)).unwrap();
        std::fs::copy(&s.path, root.join(class).join(s.path.file_name().unwrap())).unwrap();
    }
    std::fs::write(root.join(&a).join("broken.png"), b"not a png").unwrap();
    let dataset = Dataset::open(&root).unwrap();
    assert_eq!(dataset.samples.len(), 9);

    let mut predictions = Vec::new();
    let mut skips = Vec::new();
    let summary = classify_dataset(
        &backbone,
        &dataset,
        16,
        false,
        |p: &Prediction| predictions.push(p.clone()),
        |id, _| skips.push(id.to_string()),
    )
    .unwrap();
    let broken = format!("{a}/broken.png");
    assert_eq!(skips, std::slice::from_ref(&broken));
    assert_eq!(summary.skipped.len(), 1);
    assert_eq!(summary.skipped[0].0, broken);
    assert_eq!((summary.images, summary.classified), (9, 8));
    assert_eq!(predictions.len(), 8);

    // The same images, one batch, in dataset order: the reference logits.
    let good: Vec<&Sample> = dataset
        .samples
        .iter()
        .filter(|s| !s.id.ends_with("broken.png"))
        .collect();
    let reference = logits_of(&backbone, &good);
    let in_dataset = [
        imagenet::index_of(&a).unwrap(),
        imagenet::index_of(&b).unwrap(),
    ];
    let (mut right_all, mut right_in_dataset) = (0, 0);
    for ((p, s), z) in predictions.iter().zip(&good).zip(&reference) {
        assert_eq!(p.path, s.id);
        let label = &dataset.classes[s.label.unwrap()];
        assert_eq!(p.label.as_ref(), Some(label));
        // Top-5: the five largest logits, sorted, with their softmax probabilities.
        let probs = softmax64(z);
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        let expected = top5(z);
        assert_eq!(p.top5.len(), 5);
        for (c, &k) in p.top5.iter().zip(&expected) {
            assert_eq!(c.wnid, imagenet::classes()[k].wnid);
            assert_eq!(c.name, imagenet::classes()[k].name);
            assert!(
                (c.prob as f64 - probs[k]).abs() < 1e-6,
                "{} vs {}",
                c.prob,
                probs[k]
            );
        }
        assert!(p.top5.windows(2).all(|w| w[0].prob >= w[1].prob));
        assert!(p.top5.iter().map(|c| c.prob as f64).sum::<f64>() <= 1.0 + 1e-6);
        // The prediction restricted to the dataset's two classes.
        let restricted = if z[in_dataset[0]] >= z[in_dataset[1]] {
            &a
        } else {
            &b
        };
        assert_eq!(p.pred_in_dataset.as_ref(), Some(restricted));
        right_all += usize::from(&wnid(expected[0]) == label);
        right_in_dataset += usize::from(restricted == label);
    }
    assert_eq!(summary.labelled, 8);
    assert_eq!(summary.correct_all_classes, right_all);
    assert_eq!(summary.correct_in_dataset, right_in_dataset);
    assert!(
        (1..8).contains(&right_all),
        "image 0 is right and B's images wrong: {right_all} right"
    );
    assert_eq!(summary.accuracy_all_classes(), Some(right_all as f64 / 8.0));
    assert_eq!(
        summary.accuracy_in_dataset(),
        Some(right_in_dataset as f64 / 8.0)
    );
}

/// ‖∂ log p_ŷ / ∂x‖₂ of one image, ŷ the backbone's top-1, written out here independently.
fn reference_grad_norm(backbone: &Backbone, x: &Tensor) -> (Vec<f32>, f32) {
    let (out, grad) = backbone
        .forward_with_input_gradient(x, |out| {
            let z: Vec<f32> = out.logits.flatten_all()?.to_vec1()?;
            let top = top5(&z)[0] as u32;
            let mask = one_hot(&[top], z.len(), &Device::Cpu).map_err(candle_core::Error::wrap)?;
            let log_p = candle_nn::ops::log_softmax(&out.logits, 1)?;
            log_p.mul(&mask)?.sum_all()
        })
        .unwrap();
    let norm = grad
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|g| (*g as f64) * (*g as f64))
        .sum::<f64>()
        .sqrt() as f32;
    (
        out.embedding.flatten_all().unwrap().to_vec1().unwrap(),
        norm,
    )
}

fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol * scale)
}

fn extract(spec: &ExtractSpec, samples: &[Sample]) -> Extracted {
    spec.with_gradients(samples, &|_, _| {}).unwrap()
}

#[test]
fn extract_gives_embeddings_and_gradients_and_its_cache_tracks_the_files() {
    synthetic::private_cache();
    let world = World::new(0, 2);
    let val = world.root().join("val");
    std::fs::write(
        val.join(synthetic::CLASSES[1]).join("zz-broken.png"),
        b"oops",
    )
    .unwrap();
    let dataset = Dataset::open(&val).unwrap();
    assert_eq!(dataset.samples.len(), 7);
    let backbone = world.backbone();
    let sha = world.weights_sha256();
    let spec = ExtractSpec {
        backbone: &backbone,
        weights_sha256: &sha,
        corruption: None,
        seed: 0,
        batch_size: 4,
        use_cache: true,
    };
    let first = extract(&spec, &dataset.samples);
    assert!(!first.from_cache);
    let broken = dataset
        .samples
        .iter()
        .position(|s| s.id.ends_with("zz-broken.png"))
        .unwrap();
    let good: Vec<usize> = (0..7).filter(|&i| i != broken).collect();
    assert_eq!(first.rows, good);
    assert_eq!(first.skipped.len(), 1);
    assert_eq!(first.skipped[0].0, dataset.samples[broken].id);
    assert_eq!(first.dim, KIND.embedding_dim());
    assert_eq!(first.embeddings.len(), 6 * KIND.embedding_dim());
    assert_eq!(first.grad_norms.len(), 6);
    assert!(
        first.grad_norms.iter().all(|g| g.is_finite() && *g > 0.0),
        "{:?}",
        first.grad_norms
    );

    // Each row against a one-image pass with the objective written out here.
    for (r, &i) in first.rows.iter().enumerate() {
        let x = input_of(&[&dataset.samples[i]]);
        let (embedding, norm) = reference_grad_norm(&backbone, &x);
        assert!(close(first.embedding(r), &embedding, 1e-4), "row {r}");
        let g = first.grad_norms[r];
        assert!((g - norm).abs() <= 1e-3 * norm, "row {r}: {g} vs {norm}");
    }
    // Forward-only embeddings are the same numbers.
    let forward = spec.embeddings(&dataset.samples, &|_, _| {}).unwrap();
    assert_eq!(forward.rows, first.rows);
    assert!(forward.grad_norms.is_empty());
    assert!(close(&forward.embeddings, &first.embeddings, 1e-4));
    // Chunks of 4 give the same rows, renumbered into the whole list.
    let chunked = spec
        .with_gradients_chunked(&dataset.samples, 4, &|_, _| {})
        .unwrap();
    assert_eq!(chunked.rows, first.rows);
    assert_eq!(chunked.skipped, first.skipped);
    assert!(close(&chunked.embeddings, &first.embeddings, 1e-4));
    assert!(close(&chunked.grad_norms, &first.grad_norms, 1e-3));

    // The second run is a cache hit, bit for bit, skipped list included.
    let hit = extract(&spec, &dataset.samples);
    assert!(hit.from_cache);
    assert_eq!(hit.rows, first.rows);
    assert_eq!(hit.skipped, first.skipped);
    assert_eq!(bits(&hit.embeddings), bits(&first.embeddings));
    assert_eq!(bits(&hit.grad_norms), bits(&first.grad_norms));
    // Another seed or corruption is another entry.
    let other_seed = ExtractSpec { seed: 1, ..spec };
    assert!(!extract(&other_seed, &dataset.samples).from_cache);

    // Replacing one image invalidates the entry: its row changes, the others do not.
    let changed = &dataset.samples[good[0]];
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(99);
    synthetic::noise_image(Some(2), &mut rng, 40)
        .save(&changed.path)
        .unwrap();
    let after = extract(&spec, &dataset.samples);
    assert!(
        !after.from_cache,
        "a replaced file must not be served from the cache"
    );
    assert_eq!(after.rows, first.rows);
    assert!(!close(after.embedding(0), first.embedding(0), 1e-3));
    for r in 1..6 {
        assert!(
            close(after.embedding(r), first.embedding(r), 1e-4),
            "row {r}"
        );
    }
    assert!(extract(&spec, &dataset.samples).from_cache);
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}
