//! One ordering of scores for sorting and ranking, the same in metrics and in the dashboard.

/// Monotone `u32` key of a score: larger key = larger score; `-0.0` and `+0.0` share a key
/// and every NaN maps to 0, below the key of `-∞` (a NaN score ranks last, never first).
pub fn score_key(s: f32) -> u32 {
    if s.is_nan() {
        return 0;
    }
    let s = if s == 0.0 { 0.0 } else { s };
    let bits = s.to_bits();
    if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_like_the_scores() {
        let xs = [
            f32::NEG_INFINITY,
            -1e30,
            -1.0,
            -f32::MIN_POSITIVE,
            0.0,
            f32::MIN_POSITIVE,
            0.5,
            1.0,
            f32::INFINITY,
        ];
        for w in xs.windows(2) {
            assert!(score_key(w[0]) < score_key(w[1]), "{w:?}");
        }
        assert_eq!(score_key(-0.0), score_key(0.0));
        assert_eq!(score_key(f32::NAN), 0);
        assert_eq!(score_key(-f32::NAN), 0);
        assert!(score_key(f32::NEG_INFINITY) > 0);
    }
}
