//! Softmax and top-k over one row of logits, shared by the classifier, the meta-features and
//! the outputs so they agree to the last bit.

/// Softmax in f64 (stable: the maximum is subtracted first).
pub fn softmax64(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exps: Vec<f64> = logits.iter().map(|&z| (z as f64 - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

/// [`softmax64`] rounded to f32.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    softmax64(logits).into_iter().map(|p| p as f32).collect()
}

/// Indices of the `k` largest values, largest first; equal values by index.
pub fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

/// Index of the largest value (the first of equals); 0 for an empty row.
pub fn argmax(values: &[f32]) -> usize {
    top_k(values, 1).first().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_value_then_index() {
        assert_eq!(top_k(&[0.1, 0.5, 0.5, 0.9], 3), vec![3, 1, 2]);
        assert_eq!(top_k(&[1.0], 5), vec![0]);
        assert_eq!(argmax(&[0.5, 2.0, 2.0]), 1);
        assert_eq!(argmax(&[]), 0);
    }

    #[test]
    fn softmax_sums_to_one_and_survives_large_logits() {
        let p = softmax(&[1000.0, 1000.0, -1000.0]);
        assert!((p[0] - 0.5).abs() < 1e-6 && (p[1] - 0.5).abs() < 1e-6);
        assert_eq!(p[2], 0.0);
        let q = softmax64(&[1.0, 2.0, 3.0]);
        assert!((q.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert!((q[2] / q[1] - std::f64::consts::E).abs() < 1e-12);
    }
}
