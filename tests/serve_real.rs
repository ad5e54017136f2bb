//! `reason serve` with the committed artifacts and the real Lite0 on Imagenette val images:
//! each answer is `reason predict --json`'s object for the same file, and a batch scores each
//! image as it scores alone. Skipped, saying so, without the data or `reason_saved/`.

mod common;

use common::serve as s;
use reason::serve::ServeConfig;
use serde_json::Value;

/// Largest relative difference between the numbers of two JSON values of the same shape
/// (strings, keys and lengths must be equal).
fn max_relative_difference(a: &Value, b: &Value, at: &str) -> f64 {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "at {at}"
            );
            x.iter()
                .map(|(k, v)| max_relative_difference(v, &y[k], &format!("{at}.{k}")))
                .fold(0.0, f64::max)
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "at {at}");
            x.iter()
                .zip(y)
                .enumerate()
                .map(|(i, (v, w))| max_relative_difference(v, w, &format!("{at}[{i}]")))
                .fold(0.0, f64::max)
        }
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() / x.abs().max(y.abs()).max(1e-3)
        }
        _ => {
            assert_eq!(a, b, "at {at}");
            0.0
        }
    }
}

#[test]
fn real_answers_equal_predict_json_and_batches_score_like_singles() {
    let Some(models) =
        s::real_models("real_answers_equal_predict_json_and_batches_score_like_singles")
    else {
        return;
    };
    let server = s::start(ServeConfig::default(), s::loader(&models));
    let mut alone = Vec::new();
    for (i, path) in models.images.iter().enumerate() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(path).unwrap();
        let (status, answer) = s::post_raw(&server, &name, &bytes);
        assert_eq!(status, 200, "{answer}");
        let answer = s::without_timing(answer);
        if i < 3 {
            // `predict` on the file: the same object, bit for bit.
            let cli = s::predict_json(&models, path);
            assert_eq!(
                max_relative_difference(&answer, &cli, "predict"),
                0.0,
                "{name}"
            );
        }
        alone.push((name, bytes, answer));
    }
    let parts: Vec<(&str, &str, &[u8])> = alone
        .iter()
        .map(|(n, b, _)| ("image", n.as_str(), b.as_slice()))
        .collect();
    let (status, batch) = s::post_multipart(&server, "/v1/predict/batch", &parts);
    assert_eq!(status, 200);
    let mut worst = 0.0f64;
    for ((_, _, single), batched) in alone.iter().zip(batch["results"].as_array().unwrap()) {
        assert!(batched["timing"]["batch_size"].as_u64().unwrap() >= 2);
        let batched = s::without_timing(batched.clone());
        // Verdicts and classes are equal; numbers to float rounding (a batch shares GEMMs).
        assert_eq!(
            batched["reliability"]["verdict"],
            single["reliability"]["verdict"]
        );
        worst = worst.max(max_relative_difference(&batched, single, "batch"));
    }
    println!(
        "batch of {} vs alone: max relative difference {worst:.2e}",
        alone.len()
    );
    assert!(worst < 1e-3, "{worst}");
    server.stop().unwrap();
}
