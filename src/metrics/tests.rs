//! The metrics against brute-force definitions, hand-worked examples and invariances.

use super::bootstrap::*;

use super::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::support::order::score_key;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

fn assert_close(got: Option<f64>, want: f64) {
    let got = got.expect("metric should be defined");
    assert!(close(got, want, 1e-12), "got {got}, want {want}");
}

fn bools(v: &[u8]) -> Vec<bool> {
    v.iter().map(|&x| x == 1).collect()
}

#[test]
fn auroc_with_ties() {
    // Correct {0.9, 0.8}, wrong {0.8, 0.1}: pairs (0.9,0.8) win, (0.9,0.1) win,
    // (0.8,0.8) tie = ½, (0.8,0.1) win → 3.5 / 4 = 0.875.
    let s = [0.9, 0.8, 0.8, 0.1];
    let c = bools(&[1, 1, 0, 0]);
    assert_close(auroc(&s, &c), 0.875);
}

// Five-row example used below. Groups in descending order:
//   g1 s=0.9: 1 correct;  g2 s=0.7: 2 correct + 1 wrong;  g3 s=0.2: 1 wrong.
// N = 5, P = 3 correct, 2 wrong, ε = 0.4.
const S5: [f32; 5] = [0.7, 0.9, 0.2, 0.7, 0.7];
const C5: [u8; 5] = [1, 1, 0, 0, 1];

#[test]
fn five_row_ranking_metrics() {
    let c = bools(&C5);
    // AUROC: g1's correct beats 2 wrong (2); g2's 2 correct beat g3's wrong (2);
    // g2 ties 2·1 pairs → 1. (2 + 2 + 1) / (3·2) = 5/6.
    assert_close(auroc(&S5, &c), 5.0 / 6.0);
    // AP-success: after g1 P=1, ΔR=1/3; after g2 tp=3, fp=1, P=3/4, ΔR=2/3.
    // AP = 1/3 + 2/3·3/4 = 1/3 + 1/2 = 5/6.
    assert_close(aupr_success(&S5, &c), 5.0 / 6.0);
    // AP-error (ascending s, wrong positive): g3: tp=1, fp=0, P=1, ΔR=1/2;
    // g2: tp=2, fp=2, P=1/2, ΔR=1/2; g1 adds no positive. AP = 1/2 + 1/4 = 3/4.
    assert_close(aupr_error(&S5, &c), 0.75);
    // FPR@95TPR: need tp ≥ 0.95·3 = 2.85 → 3 → after g2, fp = 1 of 2 → 0.5.
    assert_close(fpr_at_95tpr(&S5, &c), 0.5);
    // ROC: (0,0), after g1 (0,1/3), after g2 (1/2,1), after g3 (1,1).
    assert_eq!(
        roc_curve(&S5, &c).unwrap(),
        vec![(0.0, 0.0), (0.0, 1.0 / 3.0), (0.5, 1.0), (1.0, 1.0)]
    );
}

#[test]
fn five_row_risk_coverage() {
    let c = bools(&C5);
    // Expected errors E(k), interpolated inside g2 (1 wrong in 3 rows, 1/3 per row):
    //   k=1: 0; k=2: 1/3; k=3: 2/3; k=4: 1; k=5: 2.
    // risk(k) = E(k)/k: 0, 1/6, 2/9, 1/4, 2/5; sum = (0+30+40+45+72)/180 = 187/180.
    // AURC = 187/900.
    assert_close(aurc(&S5, &c), 187.0 / 900.0);
    // Oracle order of the same rows (3 correct, then 2 wrong): risks 0, 0, 0, 1/4, 2/5 →
    // AURC_oracle = 0.65/5 = 117/900, E-AURC = (187 − 117)/900 = 7/90.
    assert_close(aurc_oracle(&c), 0.13);
    assert_close(eaurc(&S5, &c), 7.0 / 90.0);
    // The large-N limit: AURC*(0.4) = 0.4 + 0.6·ln 0.6 = 0.0935046257 (ln 0.6 =
    // −0.5108256238).
    assert!(close(aurc_optimal(0.4), 0.0935046257, 1e-9));
    // AUGRC = Σ E(k) / N² = (0 + 1/3 + 2/3 + 1 + 2) / 25 = 4/25.
    assert_close(augrc(&S5, &c), 0.16);
    // Curve at group ends: k=1 (0.2, 0), k=4 (0.8, 1/4), k=5 (1, 2/5).
    assert_eq!(
        risk_coverage_curve(&S5, &c),
        vec![(0.2, 0.0), (0.8, 0.25), (1.0, 0.4)]
    );
}

#[test]
fn constant_score_is_chance() {
    // All tied: AUROC ½; E(k) = k·ε → AURC = ε; AUGRC = ε·(N+1)/(2N); AP = chance
    // (one group: precision = accuracy at recall 1). 4 rows, 1 wrong: ε = 1/4.
    let s = [0.3f32; 4];
    let c = bools(&[1, 0, 1, 1]);
    assert_close(auroc(&s, &c), 0.5);
    assert_close(aurc(&s, &c), 0.25);
    assert_close(augrc(&s, &c), 0.25 * 5.0 / 8.0);
    assert_close(aupr_success(&s, &c), 0.75);
    assert_close(aupr_error(&s, &c), 0.25);
    // The only prefix is everything: FPR = 1.
    assert_close(fpr_at_95tpr(&s, &c), 1.0);
}

#[test]
fn fpr_at_95tpr_boundary_and_ties() {
    // 20 correct rows at 0.01..0.20; wrong rows at 0.50, 0.02 (tied with the 19th correct),
    // 0.015 and 0.005. TPR reaches 19/20 = 0.95 exactly in the 0.02 group, where the
    // accepted wrong rows are 0.50 and 0.02: FPR = 2/4.
    let mut s: Vec<f32> = (1..=20).map(|k| k as f32 / 100.0).collect();
    let mut c = vec![true; 20];
    s.extend([0.50, 0.02, 0.015, 0.005]);
    c.extend([false; 4]);
    assert_close(fpr_at_95tpr(&s, &c), 0.5);
    // With the wrong row at 0.02 moved to 0.019 (below the 19th correct, above the 20th),
    // only 0.50 is accepted at TPR 0.95: FPR = 1/4.
    s[21] = 0.019;
    assert_close(fpr_at_95tpr(&s, &c), 0.25);
}

#[test]
fn perfect_and_inverted() {
    // 3 correct above 2 wrong.
    let s = [0.9, 0.8, 0.7, 0.2, 0.1];
    let c = bools(&[1, 1, 1, 0, 0]);
    assert_close(auroc(&s, &c), 1.0);
    assert_close(aupr_success(&s, &c), 1.0);
    assert_close(aupr_error(&s, &c), 1.0);
    assert_close(fpr_at_95tpr(&s, &c), 0.0);
    // risks 0, 0, 0, 1/4, 2/5 → AURC = 0.65/5 = 0.13.
    assert_close(aurc(&s, &c), 0.13);
    // Inverted: AUROC 0; every wrong row is accepted before the correct ones → FPR 1.
    let inv: Vec<f32> = s.iter().map(|x| -x).collect();
    assert_close(auroc(&inv, &c), 0.0);
    assert_close(fpr_at_95tpr(&inv, &c), 1.0);
    // Inverted AURC: risks 1, 1, 2/3, 2/4, 2/5 → (1+1+2/3+1/2+2/5)/5 = (107/30)/5 = 107/150.
    assert_close(aurc(&inv, &c), 107.0 / 150.0);
}

#[test]
fn perfect_ranking_eaurc_is_exactly_zero() {
    // N = 100 000, ε = 0.2, perfect ranking: E-AURC is exactly 0. The exact oracle AURC
    // ε − (1−ε)(H_N − H_{N(1−ε)}) = AURC*(ε) + ε/(2N) + O(1/N²) sits ε/(2N) above the
    // large-N limit.
    let n = 100_000;
    let n_wrong = 20_000;
    let s: Vec<f32> = (0..n).map(|i| -(i as f32)).collect();
    let c: Vec<bool> = (0..n).map(|i| i < n - n_wrong).collect();
    assert_eq!(eaurc(&s, &c), Some(0.0));
    let gap = aurc_oracle(&c).unwrap() - aurc_optimal(0.2);
    assert!(close(gap, 0.2 / (2.0 * n as f64), 1e-8), "{gap}");
    // Also with ties inside each class, in shuffled row order.
    let mut rng = StdRng::seed_from_u64(4);
    let mut rows: Vec<(f32, bool)> = (0..997)
        .map(|i| {
            let right = i % 7 != 0;
            let s = if right {
                1.0
            } else {
                rng.random_range(0..5) as f32 / 10.0
            };
            (s, right)
        })
        .collect();
    rows.shuffle(&mut rng);
    let (s, c): (Vec<f32>, Vec<bool>) = rows.into_iter().unzip();
    assert_eq!(eaurc(&s, &c), Some(0.0));
    assert_eq!(aurc(&s, &c), aurc_oracle(&c));
}

#[test]
fn aurc_oracle_matches_brute_force() {
    for (pos, neg) in [
        (0, 0),
        (0, 1),
        (1, 0),
        (5, 0),
        (0, 7),
        (3, 2),
        (1, 1),
        (40, 13),
    ] {
        let mut c = vec![false; neg];
        c.extend(vec![true; pos]);
        c.rotate_left(neg / 2); // order must not matter
        let n = pos + neg;
        let got = aurc_oracle(&c);
        if n == 0 {
            assert_eq!(got, None);
            continue;
        }
        let mut sum = 0.0;
        for k in 1..=n {
            sum += k.saturating_sub(pos) as f64 / k as f64;
        }
        assert_close(got, sum / n as f64);
    }
    // Any score is at least as bad as the oracle.
    let (a, b, c) = random_rows(2000, 21);
    assert!(eaurc(&a, &c).unwrap() > 0.0);
    assert!(eaurc(&b, &c).unwrap() > eaurc(&a, &c).unwrap());
}

#[test]
fn risk_at_coverage_hand_example() {
    let c = bools(&C5);
    // E(k) = 0, 1/3, 2/3, 1, 2 (see five_row_risk_coverage).
    assert_close(risk_at_coverage(&S5, &c, 0.2), 0.0);
    // ⌈0.5·5⌉ = 3: (2/3)/3 = 2/9.
    assert_close(risk_at_coverage(&S5, &c, 0.5), 2.0 / 9.0);
    assert_close(risk_at_coverage(&S5, &c, 0.8), 0.25);
    // ⌈0.61·5⌉ = ⌈3.05⌉ = 4.
    assert_close(risk_at_coverage(&S5, &c, 0.61), 0.25);
    assert_close(risk_at_coverage(&S5, &c, 1.0), 0.4);
    assert_close(risk_at_coverage(&S5, &c, 1e-9), 0.0);
    for bad in [0.0, -0.1, 1.0001, f64::NAN, f64::INFINITY] {
        assert_eq!(risk_at_coverage(&S5, &c, bad), None, "{bad}");
    }
    assert_eq!(risk_at_coverage(&[], &[], 0.9), None);
    // 0.55·100 evaluates to 55.00000000000001 in f64; it still means k = 55, not 56.
    // 55 correct rows then 45 wrong: risk at k = 55 is 0, at 56 it would be 1/56.
    let s: Vec<f32> = (0..100).map(|i| -(i as f32)).collect();
    let c: Vec<bool> = (0..100).map(|i| i < 55).collect();
    assert!(std::hint::black_box(0.55f64) * 100.0 > 55.0);
    assert_eq!(risk_at_coverage(&s, &c, 0.55), Some(0.0));
    assert_close(risk_at_coverage(&s, &c, 0.56), 1.0 / 56.0);
}

/// Calls `f` with every permutation of `items` (Heap's algorithm).
fn for_each_permutation<T: Clone>(items: &mut [T], k: usize, f: &mut impl FnMut(&[T])) {
    if k <= 1 {
        f(items);
        return;
    }
    for i in 0..k {
        for_each_permutation(items, k - 1, f);
        let j = if k % 2 == 0 { i } else { 0 };
        items.swap(j, k - 1);
    }
}

#[test]
fn risk_at_coverage_is_the_mean_over_tie_orders() {
    // Average over every row order consistent with descending scores (each order of every
    // tie group equally often) of errors(top k)/k, against the interpolated value.
    let mut rng = StdRng::seed_from_u64(8);
    for _ in 0..40 {
        let n = rng.random_range(1..=7);
        let s: Vec<f32> = (0..n).map(|_| rng.random_range(0..3) as f32).collect();
        let c: Vec<bool> = (0..n).map(|_| rng.random_bool(0.6)).collect();
        let mut idx: Vec<usize> = (0..n).collect();
        for k in 1..=n {
            let (mut sum, mut count) = (0.0, 0usize);
            for_each_permutation(&mut idx, n, &mut |p: &[usize]| {
                if p.windows(2).all(|w| s[w[0]] >= s[w[1]]) {
                    sum += p[..k].iter().filter(|&&i| !c[i]).count() as f64 / k as f64;
                    count += 1;
                }
            });
            let coverage = k as f64 / n as f64;
            let got = risk_at_coverage(&s, &c, coverage).unwrap();
            assert!(close(got, sum / count as f64, 1e-12), "{s:?} {c:?} k={k}");
        }
    }
}

#[test]
fn ece_and_brier_hand_example() {
    // p = [0.95, 0.95, 0.5, 0.1], correct = [1, 0, 1, 0].
    // Bins: 0.95·15 = 14.25 → 14; 0.5·15 = 7.5 → 7; 0.1·15 = 1.5 → 1.
    // bin 14: n=2, conf 0.95, acc 0.5 → 2/4·0.45 = 0.225; bin 7: 1/4·|1 − 0.5| = 0.125;
    // bin 1: 1/4·|0 − 0.1| = 0.025. ECE = 0.375.
    // Brier: (0.05² + 0.95² + 0.5² + 0.1²)/4 = (0.0025 + 0.9025 + 0.25 + 0.01)/4 = 0.29125.
    let p = [0.95, 0.95, 0.5, 0.1];
    let c = bools(&[1, 0, 1, 0]);
    assert!(close(ece(&p, &c).unwrap(), 0.375, 1e-6));
    assert!(close(brier(&p, &c).unwrap(), 0.29125, 1e-6));
    let bins = reliability_diagram(&p, &c);
    assert_eq!(bins.len(), 15);
    assert_eq!(bins[14].count, 2);
    assert!(close(bins[14].mean_confidence.unwrap(), 0.95, 1e-6));
    assert_eq!(bins[14].accuracy, Some(0.5));
    assert_eq!(bins[7].count, 1);
    assert_eq!(bins[7].accuracy, Some(1.0));
    assert_eq!(bins[1].accuracy, Some(0.0));
    assert_eq!(bins[0].count, 0);
    assert_eq!(bins[0].mean_confidence, None);
    assert_eq!(bins[0].accuracy, None);
    assert_eq!(bins.iter().map(|b| b.count).sum::<usize>(), 4);
    assert!(close(bins[3].lower, 0.2, 1e-15) && close(bins[3].upper, 4.0 / 15.0, 1e-15));
}

#[test]
fn ece_edges() {
    // p = 1 goes to the closed last bin, p = 0 to bin 0; 1.5 clamps to 1; NaN counts as 0.
    // All four correct: |4 − (1 + 0 + 1 + 0)| / 4 = 0.5; Brier = (0 + 1 + 0 + 1)/4 = 0.5.
    let p = [1.0, 0.0, 1.5, f32::NAN];
    let c = vec![true; 4];
    assert_close(ece(&p, &c), 0.5);
    assert_close(brier(&p, &c), 0.5);
    let bins = reliability_diagram(&p, &c);
    assert_eq!((bins[0].count, bins[14].count), (2, 2));
}

#[test]
fn undefined_cases_are_none() {
    let s = [0.5, 0.2, 0.9];
    let all_right = vec![true; 3];
    let all_wrong = vec![false; 3];
    for c in [&all_right, &all_wrong] {
        assert_eq!(auroc(&s, c), None);
        assert_eq!(aupr_success(&s, c), None);
        assert_eq!(aupr_error(&s, c), None);
        assert_eq!(fpr_at_95tpr(&s, c), None);
        assert_eq!(roc_curve(&s, c), None);
    }
    // Defined without both classes: ε = 0 → AURC = 0 = AURC*(0); ε = 1 → AURC = 1 = AURC*(1).
    assert_eq!(aurc(&s, &all_right), Some(0.0));
    assert_eq!(eaurc(&s, &all_right), Some(0.0));
    assert_eq!(augrc(&s, &all_right), Some(0.0));
    assert_eq!(aurc(&s, &all_wrong), Some(1.0));
    assert_eq!(eaurc(&s, &all_wrong), Some(0.0));
    // AUGRC all wrong: Σ_k k / N² = 6/9.
    assert_close(augrc(&s, &all_wrong), 6.0 / 9.0);

    let row = MetricRow::compute(&[], &[], true);
    assert_eq!(
        row,
        MetricRow {
            n: 0,
            auroc: None,
            aupr_success: None,
            aupr_success_chance: None,
            aupr_error: None,
            aupr_error_chance: None,
            fpr_at_95tpr: None,
            aurc: None,
            eaurc: None,
            augrc: None,
            risk_at_80: None,
            risk_at_90: None,
            risk_at_95: None,
            ece: None,
            brier: None,
        }
    );
    assert!(risk_coverage_curve(&[], &[]).is_empty());
    let t = ThresholdTable::new(&[], &[]);
    let st = t.at(0.5);
    assert_eq!(
        (st.accepted, st.coverage, st.trusted_accuracy),
        (0, None, None)
    );
    assert!(t.coverage_curve().is_empty());
}

#[test]
fn nan_is_lowest() {
    // NaN ranks below −∞: correct at −∞ beats wrong at NaN → AUROC 1.
    assert_eq!(
        auroc(&[f32::NEG_INFINITY, f32::NAN], &[true, false]),
        Some(1.0)
    );
    assert_eq!(auroc(&[f32::NAN, 0.5], &[false, true]), Some(1.0));
    // Two NaNs tie.
    assert_eq!(auroc(&[f32::NAN, f32::NAN], &[false, true]), Some(0.5));
    // ±0 are one score.
    assert_eq!(auroc(&[-0.0, 0.0], &[true, false]), Some(0.5));
    assert_eq!(
        validate_scores(&[0.1, f32::NAN], 2),
        Err(MetricsError::NanScore { index: 1 })
    );
    assert_eq!(
        validate_scores(&[0.1], 2),
        Err(MetricsError::LengthMismatch {
            scores: 1,
            labels: 2
        })
    );
    assert_eq!(validate_scores(&[0.1, 0.2], 2), Ok(()));
}

#[test]
fn metric_row_bundles_everything() {
    let c = bools(&C5);
    let row = MetricRow::compute(&S5, &c, false);
    assert_eq!(row.n, 5);
    assert_eq!(row.auroc, auroc(&S5, &c));
    assert_eq!(row.aupr_success_chance, Some(0.6));
    assert_eq!(row.aupr_error_chance, Some(0.4));
    assert_eq!(row.aurc, aurc(&S5, &c));
    assert_eq!(row.eaurc, eaurc(&S5, &c));
    assert_eq!(row.augrc, augrc(&S5, &c));
    assert_eq!(row.risk_at_80, risk_at_coverage(&S5, &c, 0.8));
    assert_eq!(row.risk_at_90, risk_at_coverage(&S5, &c, 0.9));
    assert_eq!(row.risk_at_95, risk_at_coverage(&S5, &c, 0.95));
    assert_eq!(row.risk_at_80, Some(0.25));
    assert_eq!((row.ece, row.brier), (None, None));
    let row = MetricRow::compute(&S5, &c, true);
    assert_eq!(row.ece, ece(&S5, &c));
    assert_eq!(row.brier, brier(&S5, &c));
}

/// Random rows with many ties (scores on a coarse grid), NaN and ±0 included.
fn random_rows(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<bool>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut a = Vec::with_capacity(n);
    let mut b = Vec::with_capacity(n);
    let mut c = Vec::with_capacity(n);
    for _ in 0..n {
        let right = rng.random_bool(0.7);
        let base: f32 = if right { 0.6 } else { 0.4 };
        let noise = (rng.random_range(-20..=20) as f32) / 40.0;
        a.push((base + noise).clamp(0.0, 1.0));
        b.push((rng.random_range(0..30) as f32) / 29.0);
        c.push(right);
    }
    a[0] = f32::NAN;
    a[1] = -0.0;
    a[2] = 0.0;
    (a, b, c)
}

#[test]
fn permutation_invariance() {
    let (a, b, c) = random_rows(3000, 7);
    let row = MetricRow::compute(&a, &c, true);
    let roc = roc_curve(&a, &c);
    let rc = risk_coverage_curve(&a, &c);
    let rel = reliability_diagram(&a, &c);
    let boot = paired_bootstrap(&a, &b, &c, 200, 3);
    let labels: Vec<Option<bool>> = c.iter().map(|&x| Some(x)).collect();
    let table_curve = ThresholdTable::new(&a, &labels).coverage_curve();

    let mut idx: Vec<usize> = (0..a.len()).collect();
    idx.shuffle(&mut StdRng::seed_from_u64(99));
    let a2: Vec<f32> = idx.iter().map(|&i| a[i]).collect();
    let b2: Vec<f32> = idx.iter().map(|&i| b[i]).collect();
    let c2: Vec<bool> = idx.iter().map(|&i| c[i]).collect();
    let labels2: Vec<Option<bool>> = c2.iter().map(|&x| Some(x)).collect();

    // Bit-for-bit equal, not merely close.
    assert_eq!(MetricRow::compute(&a2, &c2, true), row);
    assert_eq!(roc_curve(&a2, &c2), roc);
    assert_eq!(risk_coverage_curve(&a2, &c2), rc);
    assert_eq!(reliability_diagram(&a2, &c2), rel);
    assert_eq!(paired_bootstrap(&a2, &b2, &c2, 200, 3), boot);
    assert_eq!(
        ThresholdTable::new(&a2, &labels2).coverage_curve(),
        table_curve
    );
    assert_eq!(table_curve, rc);
}

#[test]
fn auroc_matches_pair_count() {
    let (a, _, c) = random_rows(400, 11);
    let key = |s: f32| score_key(s);
    let (mut twice, mut pairs) = (0u64, 0u64);
    for i in 0..a.len() {
        for j in 0..a.len() {
            if c[i] && !c[j] {
                pairs += 1;
                twice += match key(a[i]).cmp(&key(a[j])) {
                    std::cmp::Ordering::Greater => 2,
                    std::cmp::Ordering::Equal => 1,
                    std::cmp::Ordering::Less => 0,
                };
            }
        }
    }
    assert_close(auroc(&a, &c), twice as f64 / (2 * pairs) as f64);
}

#[test]
fn bootstrap_self_difference_is_zero() {
    let (a, _, c) = random_rows(500, 5);
    let boot = paired_bootstrap(&a, &a, &c, DEFAULT_BOOTSTRAP_RESAMPLES, 1);
    assert_eq!(boot.resamples, 1000);
    for d in [&boot.auroc, &boot.aurc] {
        assert_eq!(d.estimate, Some(0.0));
        assert_eq!(d.interval, Some((0.0, 0.0)));
        assert_eq!(d.resamples_used + d.resamples_skipped, 1000);
    }
    assert_eq!(boot.aurc.resamples_used, 1000);
}

#[test]
fn bootstrap_better_score_excludes_zero() {
    let (a, b, c) = random_rows(600, 9); // a is informative, b is noise
    let boot = paired_bootstrap(&a, &b, &c, 1000, 42);
    let (lo, hi) = boot.auroc.interval.unwrap();
    assert!(lo > 0.0 && lo <= hi, "{lo} {hi}");
    assert!(boot.auroc.estimate.unwrap() > 0.0);
    let (lo, hi) = boot.aurc.interval.unwrap();
    assert!(hi < 0.0 && lo <= hi, "{lo} {hi}");
    // Deterministic for a seed.
    assert_eq!(paired_bootstrap(&a, &b, &c, 1000, 42), boot);
}

#[test]
fn bootstrap_skips_single_class_resamples() {
    // One wrong row among 3: a resample misses it with probability (2/3)³ = 8/27 ≈ 30 %.
    let a = [0.9, 0.8, 0.1];
    let b = [0.1, 0.8, 0.9];
    let c = bools(&[1, 1, 0]);
    let boot = paired_bootstrap(&a, &b, &c, 1000, 0);
    assert!(boot.auroc.resamples_skipped > 200 && boot.auroc.resamples_skipped < 400);
    assert_eq!(
        boot.auroc.resamples_used + boot.auroc.resamples_skipped,
        1000
    );
    assert_eq!(boot.aurc.resamples_used, 1000);
    // AUROC(a) = 1, AUROC(b) = 0.
    assert_eq!(boot.auroc.estimate, Some(1.0));
}

#[test]
fn grouped_bootstrap_with_singleton_groups_is_the_row_bootstrap() {
    let (a, b, c) = random_rows(500, 13);
    let row = paired_bootstrap(&a, &b, &c, 300, 17);
    assert_eq!(row.groups, None);
    // Arbitrary distinct labels.
    let ids: Vec<u32> = (0..a.len() as u32)
        .map(|i| i.wrapping_mul(2_654_435_761))
        .collect();
    let grouped = paired_bootstrap_grouped(&a, &b, &c, Some(&ids), 300, 17);
    assert_eq!(grouped.groups, Some(500));
    assert_eq!(
        PairedBootstrap {
            groups: None,
            ..grouped
        },
        row
    );
}

#[test]
fn grouped_bootstrap_moves_copies_together() {
    let (a, b, c) = random_rows(400, 31);
    let single = paired_bootstrap(&a, &b, &c, 1000, 5);
    // Every row three times, the copies in one group.
    let triple = |v: &[f32]| v.iter().flat_map(|&x| [x; 3]).collect::<Vec<f32>>();
    let (a3, b3) = (triple(&a), triple(&b));
    let c3: Vec<bool> = c.iter().flat_map(|&x| [x; 3]).collect();
    let ids: Vec<u32> = (0..a.len() as u32).flat_map(|i| [i; 3]).collect();
    let grouped = paired_bootstrap_grouped(&a3, &b3, &c3, Some(&ids), 1000, 5);
    assert_eq!(grouped.groups, Some(400));
    // AUROC is unchanged by tripling every count: the same draws give the same numbers.
    assert_eq!(grouped.auroc, single.auroc);
    // AURC averages over 3N prefixes instead of N: equal up to the O(1/N) discretisation.
    let (lo1, hi1) = single.aurc.interval.unwrap();
    let (lo3, hi3) = grouped.aurc.interval.unwrap();
    let width = hi1 - lo1;
    assert!((lo3 - lo1).abs() < 0.05 * width && (hi3 - hi1).abs() < 0.05 * width);
    // The naive row bootstrap treats the copies as independent: about 1/√3 as wide.
    let naive = paired_bootstrap(&a3, &b3, &c3, 1000, 5);
    for (g, nv) in [(&grouped.auroc, &naive.auroc), (&grouped.aurc, &naive.aurc)] {
        let (glo, ghi) = g.interval.unwrap();
        let (nlo, nhi) = nv.interval.unwrap();
        let ratio = (nhi - nlo) / (ghi - glo);
        assert!(ratio > 0.45 && ratio < 0.7, "{ratio}");
    }
}

#[test]
fn grouped_bootstrap_ignores_row_order_and_labels() {
    let (a, b, c) = random_rows(600, 41);
    let mut rng = StdRng::seed_from_u64(3);
    // Clusters of 1 to 4 rows.
    let ids: Vec<u32> = (0..a.len())
        .map(|i| (i / rng.random_range(1..=4)) as u32)
        .collect();
    let boot = paired_bootstrap_grouped(&a, &b, &c, Some(&ids), 200, 9);
    let mut idx: Vec<usize> = (0..a.len()).collect();
    idx.shuffle(&mut rng);
    let pick = |v: &[f32]| idx.iter().map(|&i| v[i]).collect::<Vec<f32>>();
    let c2: Vec<bool> = idx.iter().map(|&i| c[i]).collect();
    // New labels: a bijection of the old ones.
    let ids2: Vec<u32> = idx.iter().map(|&i| 1_000_000 - 7 * ids[i]).collect();
    let boot2 = paired_bootstrap_grouped(&pick(&a), &pick(&b), &c2, Some(&ids2), 200, 9);
    assert_eq!(boot2, boot);
    let distinct: std::collections::BTreeSet<u32> = ids.iter().copied().collect();
    assert_eq!(boot.groups, Some(distinct.len()));
}

#[test]
#[should_panic(expected = "group ids")]
fn grouped_bootstrap_checks_group_length() {
    paired_bootstrap_grouped(&[0.1, 0.2], &[0.1, 0.2], &[true, false], Some(&[0]), 10, 0);
}

#[test]
fn percentile_interpolates() {
    // Position 0.025·4 = 0.1 → 0 + 0.1·(1 − 0) = 0.1; 0.975·4 = 3.9 → 3 + 0.9·1 = 3.9.
    let v = [0.0, 1.0, 2.0, 3.0, 4.0];
    assert!(close(percentile(&v, 0.025), 0.1, 1e-12));
    assert!(close(percentile(&v, 0.975), 3.9, 1e-12));
    assert_eq!(percentile(&[2.5], 0.5), 2.5);
}

#[test]
fn threshold_table_hand_example() {
    // Rows: 0.9 right, 0.7 wrong, 0.7 unlabelled, 0.7 right, 0.2 wrong, 0.1 unlabelled.
    let s = [0.9, 0.7, 0.7, 0.7, 0.2, 0.1];
    let c = [Some(true), Some(false), None, Some(true), Some(false), None];
    let t = ThresholdTable::new(&s, &c);
    assert_eq!(t.len(), 6);
    assert_eq!(t.distinct_scores(), &[0.9, 0.7, 0.2, 0.1]);
    // t = 0.7 accepts 0.9 and the three 0.7 rows: 4 accepted (1 unlabelled), 2 right,
    // 1 wrong → trusted accuracy 2/3; rejected 0.2 (wrong) and 0.1 (unlabelled).
    let st = t.at(0.7);
    assert_eq!(
        st,
        ThresholdStats {
            threshold: 0.7,
            total: 6,
            accepted: 4,
            rejected: 2,
            coverage: Some(4.0 / 6.0),
            accepted_right: 2,
            accepted_wrong: 1,
            accepted_unlabelled: 1,
            rejected_right: 0,
            rejected_wrong: 1,
            trusted_accuracy: Some(2.0 / 3.0),
        }
    );
    assert_eq!(t.at(0.95).accepted, 0);
    assert_eq!(t.at(0.95).trusted_accuracy, None);
    assert_eq!(t.at(0.95).rejected_right, 2);
    assert_eq!(t.at(f32::NEG_INFINITY).accepted, 6);
    // Curve at group ends: (1/6, 0/1), (4/6, 1/3), (5/6, 2/4), (6/6, 2/4).
    assert_eq!(
        t.coverage_curve(),
        vec![
            (1.0 / 6.0, 0.0),
            (4.0 / 6.0, 1.0 / 3.0),
            (5.0 / 6.0, 0.5),
            (1.0, 0.5)
        ]
    );
}

#[test]
fn threshold_table_matches_brute_force() {
    let mut rng = StdRng::seed_from_u64(2024);
    let n = 2000;
    let mut s = Vec::with_capacity(n);
    let mut c = Vec::with_capacity(n);
    for i in 0..n {
        // Half the rows on a coarse grid (ties, ±0), half continuous.
        let x = if i % 2 == 0 {
            (rng.random_range(-10..=10) as f32) / 10.0
        } else {
            rng.random::<f32>() * 2.0 - 1.0
        };
        s.push(if x == 0.0 && rng.random_bool(0.5) {
            -0.0
        } else {
            x
        });
        c.push(match rng.random_range(0..3) {
            0 => None,
            1 => Some(false),
            _ => Some(true),
        });
    }
    let table = ThresholdTable::new(&s, &c);
    let mut thresholds: Vec<f32> = (0..3000).map(|_| rng.random::<f32>() * 2.4 - 1.2).collect();
    thresholds.extend(s.iter().take(300));
    thresholds.extend([f32::NEG_INFINITY, f32::INFINITY, 0.0, -0.0, 1.0, -1.0]);
    for &t in &thresholds {
        let st = table.at(t);
        let mut want = (0, 0, 0, 0, 0);
        for (&x, &y) in s.iter().zip(&c) {
            let acc = x >= t;
            match (acc, y) {
                (true, Some(true)) => want.1 += 1,
                (true, Some(false)) => want.2 += 1,
                (false, Some(true)) => want.3 += 1,
                (false, Some(false)) => want.4 += 1,
                _ => {}
            }
            want.0 += acc as usize;
        }
        let got = (
            st.accepted,
            st.accepted_right,
            st.accepted_wrong,
            st.rejected_right,
            st.rejected_wrong,
        );
        assert_eq!(got, want, "threshold {t}");
        assert_eq!(st.coverage, Some(want.0 as f64 / n as f64));
        let labelled = want.1 + want.2;
        assert_eq!(
            st.trusted_accuracy,
            (labelled > 0).then(|| want.1 as f64 / labelled as f64)
        );
    }
}
