//! Acceptance on real data: tf_efficientnet_lite0 over all 3,925 Imagenette val images matches
//! the independent reference (75.29 % over 1000 classes, 99.29 % restricted to the ten).

mod common;

use candle_core::Device;
use reason::data::dataset::Dataset;
use reason::model::backbone::{Backbone, BackboneKind};
use reason::model::classify::classify_dataset;

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
