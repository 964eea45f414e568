//! Paired comparison of two classifiers on the same images: which images only one of them gets
//! right, and McNemar's exact test of whether that difference is more than chance.
//!
//! A new model is worth shipping only when it *measurably* beats the current one. Two
//! accuracies on the same 3,589 images are not independent samples, so the test looks only at
//! the images where the two disagree about being right: under "equally good" each such image is
//! a fair coin, and the p-value is the two-sided binomial tail of the split observed.
//!
//! The tail is summed here in log space (a dozen lines) rather than through a statistics crate:
//! the ones that have it (statrs) pull in a linear-algebra stack this one function does not need.

use serde::Serialize;

/// How two classifiers compare on the same labelled images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Paired {
    /// Images the first classifier gets right and the second gets wrong.
    pub only_first: u64,
    /// Images the second classifier gets right and the first gets wrong.
    pub only_second: u64,
    /// McNemar's exact two-sided p-value: the probability of a split at least this uneven if
    /// both were equally good (1 when they never disagree).
    pub p_value: f64,
}

/// Compares two classifiers' predicted classes against the true ones, image by image.
///
/// # Panics
/// If the three slices differ in length (a programming error: both must have classified the
/// same images in the same order).
pub fn paired(truth: &[usize], first: &[usize], second: &[usize]) -> Paired {
    assert!(
        truth.len() == first.len() && truth.len() == second.len(),
        "paired comparison over different image lists"
    );
    let (mut only_first, mut only_second) = (0, 0);
    for ((t, a), b) in truth.iter().zip(first).zip(second) {
        match (a == t, b == t) {
            (true, false) => only_first += 1,
            (false, true) => only_second += 1,
            _ => {}
        }
    }
    Paired {
        only_first,
        only_second,
        p_value: mcnemar_exact(only_first, only_second),
    }
}

/// McNemar's exact two-sided p-value for `b` and `c` discordant pairs:
/// `min(1, 2 · P(X ≤ min(b, c)))` with `X ~ Binomial(b + c, 1/2)`.
pub fn mcnemar_exact(b: u64, c: u64) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // ln C(n, i) - n ln 2, built up term by term; 2^-n alone underflows beyond n = 1074.
    let mut ln_pmf = -(n as f64) * std::f64::consts::LN_2;
    let mut tail = ln_pmf.exp();
    for i in 1..=k {
        ln_pmf += ((n - i + 1) as f64).ln() - (i as f64).ln();
        tail += ln_pmf.exp();
    }
    (2.0 * tail).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from Python's exact integer arithmetic
    /// (`2 * sum(comb(n, i) for i in range(k + 1)) / 2**n`).
    #[test]
    fn exact_p_values_match_integer_arithmetic() {
        for (b, c, p) in [
            (104, 76, 0.043871011453903486),
            (95, 78, 0.22370496818590446),
            (87, 73, 0.3040598777154111),
            (45, 48, 0.8358461346314852),
            (5, 0, 0.0625),
            (1500, 1400, 0.06598734966518381),
        ] {
            let got = mcnemar_exact(b, c);
            assert!(
                (got - p).abs() < 1e-9 * p.max(1e-3),
                "{b} vs {c}: {got}, want {p}"
            );
            assert_eq!(got, mcnemar_exact(c, b), "symmetric");
        }
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        assert_eq!(mcnemar_exact(3, 3), 1.0);
    }

    #[test]
    fn paired_counts_only_the_disagreements_about_being_right() {
        let truth = [0, 1, 2, 3, 4, 5];
        let first = [0, 1, 2, 0, 0, 5]; // right on 0, 1, 2, 5
        let second = [0, 0, 0, 3, 0, 5]; // right on 0, 3, 5
        let p = paired(&truth, &first, &second);
        assert_eq!((p.only_first, p.only_second), (2, 1));
        assert_eq!(p.p_value, 1.0);
    }
}
