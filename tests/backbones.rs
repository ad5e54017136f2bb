//! Backbones: published architectures, equality with candle-transformers, and input gradients
//! checked against finite differences.

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reason::data::dataset::Dataset;
use reason::data::imageio::decode_rgb;
use reason::model::backbone::{Backbone, BackboneKind};
use std::collections::HashMap;

/// A standard normal draw (Box–Muller), from a seeded generator.
fn normal(rng: &mut StdRng) -> f64 {
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn seeded_tensor(shape: &[usize], mut draw: impl FnMut() -> f64) -> Tensor {
    let data: Vec<f64> = (0..shape.iter().product::<usize>())
        .map(|_| draw())
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

/// The parameters of a `kind` network (1000 classes) as candle initialises them, but drawn from
/// a seeded generator, in f64: candle's CPU initialisers cannot be seeded, and a network drawn
/// afresh on every run made these tests flaky. Weights (rank ≥ 2) are Kaiming-normal as candle
/// draws them (std √(2 / fan-in)); the linear bias uniform in ±1/√fan-in; the constants
/// (BatchNorm) stay as initialised.
fn seeded_weights(kind: BackboneKind, seed: u64) -> HashMap<String, Tensor> {
    let varmap = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    Backbone::from_var_builder(kind, 1000, vb).unwrap();
    let data = varmap.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    // HashMap order is random: draw in name order so that the seed fixes every value.
    names.sort();
    let mut rng = StdRng::seed_from_u64(seed);
    names
        .into_iter()
        .map(|name| {
            let t = data[name].as_tensor().detach();
            let dims = t.dims().to_vec();
            let t = if dims.len() >= 2 {
                let fan_in = dims[1..].iter().product::<usize>() as f64;
                let std = (2.0 / fan_in).sqrt();
                seeded_tensor(&dims, || std * normal(&mut rng))
            } else if name.ends_with(".bias")
                && data
                    .get(&name.replace(".bias", ".weight"))
                    .is_some_and(|w| w.as_tensor().rank() == 2)
            {
                let weight = data[&name.replace(".bias", ".weight")].as_tensor().dims()[1];
                let bound = 1.0 / (weight as f64).sqrt();
                seeded_tensor(&dims, || rng.random_range(-bound..bound))
            } else {
                t
            };
            (name.clone(), t)
        })
        .collect()
}

fn backbone_from(kind: BackboneKind, tensors: &HashMap<String, Tensor>, dtype: DType) -> Backbone {
    let vb = VarBuilder::from_tensors(tensors.clone(), dtype, &Device::Cpu);
    Backbone::from_var_builder(kind, 1000, vb).unwrap()
}

/// Deterministic pseudo-random values in [-1, 1), as f64.
fn random_input(n: usize, size: usize, seed: u64) -> Tensor {
    let count = n * 3 * size * size;
    let mut state = seed;
    let data: Vec<f64> = (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(data, (n, 3, size, size), &Device::Cpu).unwrap()
}

/// Checks `<∇f(x), v>` against the central difference `(f(x+εv) − f(x−εv)) / 2ε` for the logit
/// `classes[i]` of each sample, in f64. These networks are piecewise linear with very many
/// kinks (ReLU6, max-pool), so only a tiny ε stays inside one linear piece; f32 cannot resolve
/// that, f64 can (at ε = 1e-2 in f32 the estimate is off by 20 % on lite0, at 1e-7 in f64 0.1 %).
fn check_gradient(backbone: &Backbone, x: &Tensor, classes: &[u32]) {
    let x = &x.to_dtype(DType::F64).unwrap();
    let grad = backbone.logit_input_gradient(x, classes).unwrap();
    assert_eq!(grad.dims(), x.dims());
    let v = random_input(x.dim(0).unwrap(), x.dim(2).unwrap(), 99);
    let eps = 1e-7;
    let logit = |input: &Tensor| -> Vec<f64> {
        let logits = backbone
            .forward(input)
            .unwrap()
            .logits
            .to_vec2::<f64>()
            .unwrap();
        classes
            .iter()
            .enumerate()
            .map(|(i, &c)| logits[i][c as usize])
            .collect()
    };
    let plus = logit(&(x + (&v * eps).unwrap()).unwrap());
    let minus = logit(&(x - (&v * eps).unwrap()).unwrap());
    let analytic: Vec<f64> = (&grad * &v)
        .unwrap()
        .sum((1, 2, 3))
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!(
        analytic.iter().all(|a| a.abs() > 1e-6),
        "vanishing gradients {analytic:?}: the check would be vacuous"
    );
    for i in 0..classes.len() {
        let numeric = (plus[i] - minus[i]) / (2.0 * eps);
        let tolerance = 1e-2 * analytic[i].abs().max(numeric.abs()).max(1e-3);
        assert!(
            (numeric - analytic[i]).abs() <= tolerance,
            "sample {i}: finite difference {numeric} vs gradient {}",
            analytic[i]
        );
    }
}

#[test]
fn efficientnet_lite_variants_have_their_published_parameter_counts() {
    // Published parameter counts (ImageNet-1k heads), in millions, two decimals.
    for (level, millions) in [(0u8, 4.65), (1, 5.42), (2, 6.09), (3, 8.20), (4, 13.01)] {
        let (_, params) =
            Backbone::random(BackboneKind::EfficientNetLite(level), 1000, &Device::Cpu).unwrap();
        let got = params as f64 / 1e6;
        assert!(
            (got - millions).abs() < 0.006,
            "lite{level}: {got:.3} M parameters, published {millions} M"
        );
    }
}

#[test]
fn resnets_have_their_published_parameter_counts() {
    for (depth, millions) in [(18u16, 11.69), (34, 21.80), (50, 25.56)] {
        let (_, params) =
            Backbone::random(BackboneKind::ResNet(depth), 1000, &Device::Cpu).unwrap();
        let got = params as f64 / 1e6;
        assert!(
            (got - millions).abs() < 0.006,
            "resnet{depth}: {got:.3} M, published {millions} M"
        );
    }
}

/// Our ResNet (needed for input gradients) computes what candle-transformers' ResNet computes.
#[test]
fn resnet_logits_equal_candle_transformers() {
    let kind = BackboneKind::ResNet(18);
    // BatchNorm statistics away from (0, 1), so a mistake in their use shows.
    let mut rng = StdRng::seed_from_u64(11);
    let mut tensors = seeded_weights(kind, 3);
    let mut names: Vec<String> = tensors.keys().cloned().collect();
    names.sort();
    for name in names {
        let dims = tensors[&name].dims().to_vec();
        if name.ends_with("running_var") {
            tensors.insert(name, seeded_tensor(&dims, || rng.random_range(0.5..1.5)));
        } else if name.ends_with("running_mean") {
            tensors.insert(name, seeded_tensor(&dims, || 0.1 * normal(&mut rng)));
        }
    }
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let ours = Backbone::from_var_builder(BackboneKind::ResNet(18), 1000, vb.clone()).unwrap();
    let theirs = candle_transformers::models::resnet::resnet18(1000, vb).unwrap();
    let x = random_input(2, 64, 5).to_dtype(DType::F32).unwrap();
    let a = ours.forward(&x).unwrap().logits;
    let b = x.apply(&theirs).unwrap();
    let scale = b
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let diff = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    eprintln!("resnet18 vs candle-transformers F32: max |Δlogit| {diff:e}, logit scale {scale}");
    assert!(
        scale > 1e-3,
        "logits {scale}: the comparison would be vacuous"
    );
    assert!(
        diff <= 1e-4 * scale.max(1.0),
        "max difference {diff} (logit scale {scale})"
    );
}

#[test]
fn resnet_input_gradient_matches_finite_differences() {
    let kind = BackboneKind::ResNet(18);
    let backbone = backbone_from(kind, &seeded_weights(kind, 1), DType::F64);
    check_gradient(&backbone, &random_input(2, 64, 1), &[3, 998]);
}

#[test]
fn lite0_real_weights_input_gradient_matches_finite_differences() {
    let Some(root) = common::data_root("lite0 gradient") else {
        return;
    };
    let backbone = Backbone::load_as(
        BackboneKind::EfficientNetLite(0),
        &common::lite0_weights_in(&root),
        &Device::Cpu,
        DType::F64,
    )
    .unwrap();
    let dataset = Dataset::open(&root.join("imagenette/val/n03445777")).unwrap();
    let pre = backbone.kind.preprocess();
    let images: Vec<Vec<f32>> = dataset.samples[..2]
        .iter()
        .map(|s| pre.apply(&decode_rgb(&s.path).unwrap()))
        .collect();
    let x = pre.batch_tensor(&images, &Device::Cpu).unwrap();
    // 574 = golf ball (the true class), 0 = tench.
    check_gradient(&backbone, &x, &[574, 0]);
}

#[test]
fn lite0_recognises_a_tench_and_mismatched_weights_are_named() {
    let Some(root) = common::data_root("lite0 tench") else {
        return;
    };
    let weights = common::lite0_weights_in(&root);
    let backbone =
        Backbone::load(BackboneKind::EfficientNetLite(0), &weights, &Device::Cpu).unwrap();
    let dataset = Dataset::open(&root.join("imagenette/val/n01440764")).unwrap();
    let pre = backbone.kind.preprocess();
    let img = pre.apply(&decode_rgb(&dataset.samples[0].path).unwrap());
    let out = backbone
        .forward(&pre.batch_tensor(&[img], &Device::Cpu).unwrap())
        .unwrap();
    assert_eq!(out.embedding.dims(), &[1, 1280]);
    let top = out.logits.argmax(1).unwrap().to_vec1::<u32>().unwrap();
    assert_eq!(top, vec![0], "tench is ImageNet class 0");

    let err = match Backbone::load(BackboneKind::ResNet(50), &weights, &Device::Cpu) {
        Ok(_) => panic!("lite0 weights loaded into resnet50"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("resnet50") && err.contains("conv1"), "{err}");
}

/// ‖a − b‖ / ‖b‖.
fn relative_error(a: &Tensor, b: &Tensor) -> f64 {
    let norm = |t: &Tensor| {
        t.to_dtype(DType::F64)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .sqrt()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let reference = norm(b);
    assert!(
        reference > 0.0,
        "the reference is all zeros: nothing is compared"
    );
    norm(&(a - b).unwrap()) / reference
}

/// Tolerances of `check_fast_path_equals_candle`, relative (‖a − b‖ / ‖b‖).
const F32_VALUES: f64 = 2e-6;
const F32_GRADIENTS: f64 = 8e-3;
const F64_ALL: f64 = 1e-12;

/// Logits, embeddings and input gradients (of log p of the predicted class, as the gradient
/// family uses) from REASON's CPU kernels and manual backward, against candle's own kernels
/// and autograd, on real Imagenette images.
///
/// In f64 the two agree to rounding. In f32 the different summation orders (~1e-7 relative)
/// move a few of the millions of pre-activations across a ReLU/ReLU6 kink, which switches that
/// unit's gradient on or off, so Lite0's input gradients agree only to ~4e-3.
///
/// The tolerances are the README's numbers with a stated margin: f32 logits and embeddings 2e-6
/// (README: 1e-6), f32 gradients 8e-3 (README: ~4e-3), f64 everything 1e-12 (README: 1e-12).
/// Measured on a 2-core AMD EPYC (relative, largest of the runs below):
/// - Lite0 f32: logits 9.2e-7, embeddings 9.1e-7, gradients 3.8e-3
/// - Lite0 f64: logits 1.8e-15, embeddings 1.7e-15, gradients 8.3e-15
/// - ResNet-18 f32: logits 3.7e-7, embeddings 2.3e-7, gradients 4.8e-7
/// - ResNet-18 f64: 7.0e-16, 4.3e-16, 8.4e-16; ResNet-50 f64: 5.5e-16, 1.9e-16, 1.6e-15
///
/// Other CPUs (another GEMM micro-kernel, another thread count) sum in other orders, hence the
/// margins.
fn check_fast_path_equals_candle(backbone: &Backbone, x: &Tensor) {
    let tolerance = match x.dtype() {
        DType::F32 => [F32_VALUES, F32_GRADIENTS],
        _ => [F64_ALL, F64_ALL],
    };
    use reason::model::backbone::kernel::with_plain_kernels;
    let objective = |out: &reason::model::backbone::BackboneOutput| {
        let predicted = out.logits.argmax(1)?.to_vec1::<u32>()?;
        let mask = reason::model::backbone::one_hot(&predicted, 1000, &Device::Cpu)
            .map_err(candle_core::Error::wrap)?
            .to_dtype(out.logits.dtype())?;
        candle_nn::ops::log_softmax(&out.logits, 1)?
            .mul(&mask)?
            .sum_all()
    };
    let (fast, fast_grad) = backbone.forward_with_input_gradient(x, objective).unwrap();
    let (plain, plain_grad) =
        with_plain_kernels(|| backbone.forward_with_input_gradient(x, objective)).unwrap();
    let name = backbone.kind.name();
    let logits = relative_error(&fast.logits, &plain.logits);
    let embedding = relative_error(&fast.embedding, &plain.embedding);
    let grad = relative_error(&fast_grad, &plain_grad);
    eprintln!(
        "{name} {:?}: logits {logits:e}, embeddings {embedding:e}, gradients {grad:e}",
        x.dtype()
    );
    assert!(logits < tolerance[0], "{name}: logits differ by {logits:e}");
    assert!(
        embedding < tolerance[0],
        "{name}: embeddings differ by {embedding:e}"
    );
    assert!(
        grad < tolerance[1],
        "{name}: input gradients differ by {grad:e}"
    );
    // A plain forward (no gradient) takes the same fast kernels.
    let forward = backbone.forward(x).unwrap();
    assert!(relative_error(&forward.logits, &plain.logits) < tolerance[0]);
}

/// A random f64 network whose BatchNorm shifts are random too: with zero shifts, a convolution
/// over an all-zero region gives exactly 0 before its ReLU, where candle's autograd passes the
/// gradient and ours (as PyTorch's) does not, a difference of convention only.
fn random_with_bn_shift(kind: BackboneKind, seed: u64) -> HashMap<String, Tensor> {
    let mut tensors = seeded_weights(kind, seed);
    let mut rng = StdRng::seed_from_u64(seed + 1000);
    let mut names: Vec<String> = tensors.keys().cloned().collect();
    names.sort();
    for name in names {
        let is_bn = name.contains(".bn") || name.starts_with("bn") || name.contains("downsample.1");
        let t = &tensors[&name];
        let t = if is_bn && name.ends_with(".bias") {
            seeded_tensor(t.dims(), || 0.1 * normal(&mut rng))
        } else if is_bn && name.ends_with(".weight") {
            // Halved, so activations stay moderate through the residual stages: otherwise
            // some draws give logits so far apart that log p(ŷ) is exactly 0 in f64 and the
            // gradient vanishes.
            (t * 0.5).unwrap()
        } else {
            continue;
        };
        tensors.insert(name, t);
    }
    tensors
}

fn val_batch(root: &std::path::Path, kind: BackboneKind, size: u32, count: usize) -> Tensor {
    let dataset = Dataset::open(&root.join("imagenette/val")).unwrap();
    let mut pre = kind.preprocess();
    pre.size = size;
    let step = dataset.samples.len() / count;
    let images: Vec<Vec<f32>> = (0..count)
        .map(|i| pre.apply(&decode_rgb(&dataset.samples[i * step].path).unwrap()))
        .collect();
    pre.batch_tensor(&images, &Device::Cpu).unwrap()
}

#[test]
fn lite0_fast_kernels_equal_candle_kernels_on_real_images() {
    let Some(root) = common::data_root("lite0 fast kernels") else {
        return;
    };
    let kind = BackboneKind::EfficientNetLite(0);
    let weights = common::lite0_weights_in(&root);
    let x = val_batch(&root, kind, 224, 3);
    let backbone = Backbone::load(kind, &weights, &Device::Cpu).unwrap();
    check_fast_path_equals_candle(&backbone, &x);
    let backbone = Backbone::load_as(kind, &weights, &Device::Cpu, DType::F64).unwrap();
    let x = x.to_dtype(DType::F64).unwrap();
    check_fast_path_equals_candle(&backbone, &x);
}

#[test]
fn resnet_fast_kernels_equal_candle_kernels_on_real_images() {
    let Some(root) = common::data_root("resnet fast kernels") else {
        return;
    };
    // Random weights (no ResNet weights ship with the data); odd sizes exercise the padding.
    for (depth, size) in [(18, 64), (50, 97)] {
        let kind = BackboneKind::ResNet(depth);
        let tensors = random_with_bn_shift(kind, depth as u64);
        let backbone = backbone_from(kind, &tensors, DType::F64);
        // Flat image regions give exactly equal stem outputs, so max-pool windows hold tied
        // maxima, where candle's `maximum` backward splits the gradient and ours (as
        // PyTorch's) gives it to the first. A 1e-6 perturbation breaks the ties.
        let x = val_batch(&root, kind, size, 2)
            .to_dtype(DType::F64)
            .unwrap();
        let x = (&x + (random_input(2, size as usize, 7) * 1e-6).unwrap()).unwrap();
        check_fast_path_equals_candle(&backbone, &x);
        if depth == 18 {
            // f32 too: the same network and images.
            let backbone = backbone_from(kind, &tensors, DType::F32);
            let x = x.to_dtype(DType::F32).unwrap();
            check_fast_path_equals_candle(&backbone, &x);
        }
    }
}
