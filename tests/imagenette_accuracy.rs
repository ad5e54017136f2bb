//! Acceptance on real data: tf_efficientnet_lite0 over all 3,925 Imagenette val images matches
//! the independent reference (75.29 % over 1000 classes, 99.29 % restricted to the ten), and
//! REASON's fast CPU kernels predict what candle's own kernels predict, image for image.

mod common;

use candle_core::Device;
use reason::data::dataset::Dataset;
use reason::model::backbone::kernel::with_plain_kernels;
use reason::model::backbone::{Backbone, BackboneKind};
use reason::model::classify::{classify_dataset, Prediction};

#[test]
fn lite0_reproduces_the_reference_accuracy_on_imagenette_val() {
    let Some(root) = common::data_root("imagenette accuracy") else {
        return;
    };
    let backbone = Backbone::load(
        BackboneKind::EfficientNetLite(0),
        &common::lite0_weights_in(&root),
        &Device::Cpu,
    )
    .unwrap();
    let dataset = Dataset::open(&root.join("imagenette")).unwrap();
    assert_eq!(dataset.samples.len(), 3925);
    let summary = classify_dataset(&backbone, &dataset, 32, false, |_| {}, |_, _| {}).unwrap();
    assert!(summary.skipped.is_empty(), "{:?}", summary.skipped);
    let all = summary.accuracy_all_classes().unwrap() * 100.0;
    let restricted = summary.accuracy_in_dataset().unwrap() * 100.0;
    eprintln!(
        "lite0 on imagenette val: {all:.2} % (1000 classes), {restricted:.2} % (10 classes), {:.1} images/s",
        summary.images_per_second()
    );
    assert!(
        (all - 75.29).abs() <= 0.3,
        "1000-way top-1 {all:.2} %, reference 75.29 %"
    );
    assert!(
        restricted >= 99.0,
        "restricted top-1 {restricted:.2} %, reference 99.29 %"
    );
}

/// Images per class in the fast-vs-plain comparison: enough to cover every class, cheap enough
/// for every CI run (candle's plain kernels are several times slower).
const PER_CLASS: usize = 8;

#[test]
fn fast_kernels_predict_what_candle_kernels_predict_image_for_image() {
    let Some(root) = common::data_root("fast vs plain kernels on imagenette") else {
        return;
    };
    let backbone = Backbone::load(
        BackboneKind::EfficientNetLite(0),
        &common::lite0_weights_in(&root),
        &Device::Cpu,
    )
    .unwrap();
    let mut dataset = Dataset::open(&root.join("imagenette")).unwrap();
    let mut per_class = vec![0; dataset.classes.len()];
    dataset.samples.retain(|s| {
        let class = s.label.unwrap();
        per_class[class] += 1;
        per_class[class] <= PER_CLASS
    });
    assert_eq!(dataset.samples.len(), PER_CLASS * dataset.classes.len());
    let run = || {
        let mut predictions: Vec<Prediction> = Vec::new();
        classify_dataset(
            &backbone,
            &dataset,
            16,
            false,
            |p| predictions.push(p.clone()),
            |_, _| {},
        )
        .unwrap();
        predictions
    };
    let fast = run();
    let plain = with_plain_kernels(run);
    assert_eq!(fast.len(), dataset.samples.len());
    assert_eq!(fast.len(), plain.len());
    let mut largest_gap = 0f32;
    for (f, p) in fast.iter().zip(&plain) {
        assert_eq!(f.path, p.path);
        assert_eq!(f.top5[0].wnid, p.top5[0].wnid, "{}: top-1 differs", f.path);
        assert_eq!(f.pred_in_dataset, p.pred_in_dataset, "{}", f.path);
        largest_gap = largest_gap.max((f.top5[0].prob - p.top5[0].prob).abs());
    }
    eprintln!(
        "fast vs plain kernels: {} images, same top-1 and in-dataset prediction, largest top-1 probability gap {largest_gap:.1e}",
        fast.len()
    );
    assert!(
        largest_gap < 1e-4,
        "top-1 probabilities differ by {largest_gap}"
    );
}
