//! Deterministic synthetic data for the dashboard's tests, benchmark and demo: records that
//! look like an Imagenette evaluation (10 classes, ~80 % accuracy, P(correct) informative but
//! imperfect, a 66-dimensional meta-vector in named families) and generated preview images;
//! [`pty`] drives a dashboard process in a pseudo-terminal.

#![allow(dead_code)]

pub mod pty;

use std::path::Path;

use reason::dashboard::session::Session;
use reason::dashboard::{App, Theme};
use reason::reliability::records::{
    Diagnostics, FeatureBlock, FeatureLayout, RecordSet, SampleRecord,
};

pub const CLASSES: [(&str, &str); 10] = [
    ("n01440764", "tench"),
    ("n02102040", "English springer"),
    ("n02979186", "cassette player"),
    ("n03000684", "chain saw"),
    ("n03028079", "church"),
    ("n03394916", "French horn"),
    ("n03417042", "garbage truck"),
    ("n03425413", "gas pump"),
    ("n03445777", "golf ball"),
    ("n03888605", "parachute"),
];

/// splitmix64: a tiny deterministic generator, identical everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), on a 1/4096 grid so values print the same everywhere.
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 52) as f32 / 4096.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

pub fn layout() -> FeatureLayout {
    let families: [(&str, &[&str]); 7] = [
        ("entropy", &["entropy", "entropy_norm"]),
        ("margin", &["logit_gap", "prob_margin"]),
        ("top_logits", &["top1", "top2", "top3", "top4", "top5"]),
        (
            "mc_dropout",
            &["mean_p_pred", "var_p_pred", "mean_entropy", "mutual_info"],
        ),
        ("grad", &["grad_norm"]),
        ("pca", &[]),
        (
            "knn",
            &["mean_dist", "kth_dist", "pred_class_dist", "trust_score"],
        ),
    ];
    let mut blocks = Vec::new();
    let mut offset = 0;
    for (family, names) in families {
        let names: Vec<String> = if family == "pca" {
            (0..48).map(|i| format!("pca.{i}")).collect()
        } else {
            names.iter().map(|n| format!("{family}.{n}")).collect()
        };
        let len = names.len();
        blocks.push(FeatureBlock {
            family: family.into(),
            names,
            offset,
        });
        offset += len;
    }
    FeatureLayout { blocks }
}

/// `n` labelled records in dataset (path) order.
pub fn record_set(n: usize, seed: u64) -> RecordSet {
    let mut rng = Rng::new(seed);
    let per_class = n.div_ceil(CLASSES.len()).max(1);
    let mut records = Vec::with_capacity(n);
    for i in 0..n {
        let class = i / per_class;
        let label = class as u16;
        let right = rng.unit() < 0.8;
        let pred = if right {
            label
        } else {
            ((class + 1 + rng.below(CLASSES.len() - 1)) % CLASSES.len()) as u16
        };
        // P(correct) separates right from wrong better than MSP does.
        let p_correct = if right {
            0.35 + 0.65 * rng.unit()
        } else {
            0.05 + 0.6 * rng.unit()
        };
        let msp = (0.3 + 0.7 * rng.unit()).max(if right { 0.4 } else { 0.3 });
        let mut probs = vec![0.0f32; CLASSES.len()];
        let rest = (1.0 - msp) / (CLASSES.len() - 1) as f32;
        for (c, p) in probs.iter_mut().enumerate() {
            *p = if c == pred as usize {
                msp
            } else {
                rest * (0.5 + rng.unit())
            };
        }
        let diagnostics = Diagnostics {
            msp,
            entropy: 2.3 * (1.0 - msp),
            logit_gap: 8.0 * msp - 2.0,
            mc_variance: 0.02 * (1.0 - p_correct) * rng.unit(),
            grad_sensitivity: 0.1 + 3.0 * rng.unit() * (1.0 - p_correct),
            knn_distance: 5.0 + 20.0 * rng.unit() * (1.2 - p_correct),
            trust_score: 0.5 + 2.0 * p_correct * rng.unit(),
        };
        let mut meta = vec![
            diagnostics.entropy,
            diagnostics.entropy / 2.3,
            diagnostics.logit_gap,
            msp - rest,
        ];
        meta.extend((0..5).map(|k| 9.0 - 1.5 * k as f32 - rng.unit()));
        meta.extend([
            msp,
            diagnostics.mc_variance,
            diagnostics.entropy * 0.9,
            0.01 * rng.unit(),
        ]);
        meta.push(diagnostics.grad_sensitivity);
        meta.extend((0..48).map(|_| 6.0 * rng.unit() - 3.0));
        meta.extend([
            diagnostics.knn_distance,
            diagnostics.knn_distance * 1.3,
            diagnostics.knn_distance * 0.8,
            diagnostics.trust_score,
        ]);
        records.push(SampleRecord {
            id: format!("{}/ILSVRC2012_val_{:08}.JPEG", CLASSES[class].0, i + 1),
            label: Some(label),
            pred,
            probs,
            p_correct,
            diagnostics,
            meta,
            truncated: false,
        });
    }
    RecordSet {
        classes: CLASSES.iter().map(|c| c.0.to_string()).collect(),
        class_names: CLASSES.iter().map(|c| c.1.to_string()).collect(),
        layout: layout(),
        threshold: 0.5,
        records,
        calibration: None,
    }
}

/// The same records without labels (an unlabelled folder).
pub fn unlabelled(mut set: RecordSet) -> RecordSet {
    for r in &mut set.records {
        r.label = None;
    }
    set
}

/// A dashboard on `set` with the dark theme and a terminal of `width` × `height`.
pub fn app(set: RecordSet, session: Session, width: u16, height: u16) -> App {
    let mut app = App::new(set, session, Theme::dark(), "synthetic");
    reason::dashboard::update(
        &mut app,
        reason::dashboard::Action::Resize { width, height },
    );
    app
}

/// A deterministic 96 × 72 test picture: colour gradients with a dark disc.
pub fn write_image(path: &Path) {
    let image = image::RgbImage::from_fn(96, 72, |x, y| {
        let (dx, dy) = (x as i32 - 48, y as i32 - 36);
        if dx * dx + dy * dy < 20 * 20 {
            image::Rgb([20, 20, 60])
        } else {
            image::Rgb([(x * 255 / 95) as u8, (y * 255 / 71) as u8, 128])
        }
    });
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    image.save(path).unwrap();
}
