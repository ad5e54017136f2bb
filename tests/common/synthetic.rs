//! A synthetic world that needs no downloaded data: a seeded random-weight backbone written as a
//! safetensors file, and a generated imagenette2-style folder of coloured noise PNGs whose class
//! folders are ImageNet wnids. Everything is seeded, so every run sees the same bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reason::model::backbone::{Backbone, BackboneKind};

/// The smallest backbone (EfficientNet-Lite0: 4.7 M parameters, 224 px input).
pub const KIND: BackboneKind = BackboneKind::EfficientNetLite(0);

/// Class folders: Imagenette wnids, so `classify` can restrict predictions to them.
pub const CLASSES: [&str; 3] = ["n01440764", "n02102040", "n02979186"];

/// The base colour of each class (RGB, 0..1).
const COLOURS: [[f32; 3]; 3] = [[0.9, 0.2, 0.1], [0.1, 0.8, 0.2], [0.2, 0.3, 0.9]];

/// Points the cache at a folder of this test process, once, before any test touches the cache
/// (every test of a binary calls this first), and returns it. No environment change: other
/// test threads may be reading the environment.
pub fn private_cache() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(
            reason::model::cache::use_cache_dir(dir.path()),
            "the cache folder was already chosen"
        );
        dir
    })
    .path()
}

/// Writes seeded random weights for `kind` (timm tensor names, 1000 classes) to `path`.
///
/// Convolution and linear weights are uniform with the Kaiming standard deviation
/// `sqrt(2 / fan_in)`; BatchNorm keeps unit scale, identity running statistics and a small
/// seeded shift; biases are small and seeded. Names are visited in sorted order, so the file
/// (and its sha256) is the same on every run.
pub fn write_random_weights(kind: BackboneKind, seed: u64, path: &Path) {
    let varmap = VarMap::new();
    Backbone::from_var_builder(
        kind,
        1000,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .expect("the architecture builds");
    let mut shapes: Vec<(String, Vec<usize>)> = varmap
        .data()
        .lock()
        .expect("varmap lock")
        .iter()
        .map(|(name, var)| (name.clone(), var.dims().to_vec()))
        .collect();
    shapes.sort();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut uniform = |n: usize, std: f32| -> Vec<f32> {
        // Uniform on [-a, a] has standard deviation a / sqrt(3).
        let a = std * 3f32.sqrt();
        (0..n).map(|_| rng.random_range(-a..a)).collect()
    };
    let tensors: HashMap<String, Tensor> = shapes
        .into_iter()
        .map(|(name, dims)| {
            let n: usize = dims.iter().product();
            let values = if name.ends_with("running_mean") {
                vec![0.0; n]
            } else if name.ends_with("running_var") {
                vec![1.0; n]
            } else if dims.len() > 1 {
                let fan_in = n / dims[0];
                uniform(n, (2.0 / fan_in as f32).sqrt())
            } else if name.ends_with(".weight") {
                // A BatchNorm scale (every other weight has two or more dimensions).
                vec![1.0; n]
            } else {
                uniform(n, 0.05)
            };
            let t = Tensor::from_vec(values, dims, &Device::Cpu).expect("tensor");
            (name, t)
        })
        .collect();
    candle_core::safetensors::save(&tensors, path).expect("weights written");
}

/// One coloured-noise image of class `class` (or of no class: a random colour), `size` px.
///
/// The colour is the class colour mixed with a random one by a random amount, so some images
/// of a class look like another class: a head makes some mistakes, which the reliability
/// pipeline needs. A horizontal gradient and per-pixel noise vary the texture.
pub fn noise_image(class: Option<usize>, rng: &mut StdRng, size: u32) -> image::RgbImage {
    let random: [f32; 3] = [rng.random(), rng.random(), rng.random()];
    let (base, mix) = match class {
        Some(c) => (COLOURS[c], rng.random_range(0.35f32..1.0)),
        None => (random, 1.0),
    };
    let colour: [f32; 3] = std::array::from_fn(|k| mix * base[k] + (1.0 - mix) * random[k]);
    let slope: f32 = rng.random_range(-0.5..0.5);
    let noise: f32 = rng.random_range(0.05..0.3);
    image::RgbImage::from_fn(size, size, |x, _| {
        let ramp = slope * (x as f32 / size as f32 - 0.5);
        image::Rgb(std::array::from_fn(|k| {
            let v = colour[k] + ramp + noise * (rng.random::<f32>() - 0.5);
            (v.clamp(0.0, 1.0) * 255.0).round() as u8
        }))
    })
}

/// `<root>/<class>/<class>_<i>.png` for every class of `CLASSES[..classes]`, `per_class`
/// each, seeded. Returns the paths written, class by class.
pub fn write_class_folder(
    root: &Path,
    classes: usize,
    per_class: usize,
    seed: u64,
) -> Vec<PathBuf> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut written = Vec::new();
    for (c, wnid) in CLASSES.iter().enumerate().take(classes) {
        let dir = root.join(wnid);
        std::fs::create_dir_all(&dir).expect("class folder");
        for i in 0..per_class {
            let path = dir.join(format!("{wnid}_{i:02}.png"));
            noise_image(Some(c), &mut rng, 40)
                .save(&path)
                .expect("png written");
            written.push(path);
        }
    }
    written
}

/// A synthetic imagenette2-style root (`train/` and `val/`) and seeded Lite0 weights.
pub struct World {
    pub dir: tempfile::TempDir,
    pub weights: PathBuf,
}

impl World {
    /// `train_per_class` and `val_per_class` images of each of the three classes.
    pub fn new(train_per_class: usize, val_per_class: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        write_class_folder(&dir.path().join("train"), CLASSES.len(), train_per_class, 1);
        write_class_folder(&dir.path().join("val"), CLASSES.len(), val_per_class, 2);
        let weights = dir.path().join("lite0-random.safetensors");
        write_random_weights(KIND, 7, &weights);
        Self { dir, weights }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn backbone(&self) -> Backbone {
        Backbone::load(KIND, &self.weights, &Device::Cpu).expect("synthetic weights load")
    }

    pub fn weights_sha256(&self) -> String {
        reason::model::backbone::weights::sha256_file(&self.weights).expect("sha256")
    }
}
