//! The statistics an A/B readout needs: a two-proportion z-test (thumbs-up
//! rates) and Welch's t-test (cost per ticket), with p-values from the
//! normal and Student-t distributions. No crate: both are a few lines.

/// A two-sided test's statistic and p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Test {
    pub statistic: f64,
    pub p_value: f64,
}

/// Summary of one sample.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sample {
    pub n: f64,
    pub mean: f64,
    /// Sample variance (n − 1).
    pub variance: f64,
}

impl Sample {
    pub fn of(values: &[f64]) -> Sample {
        let n = values.len() as f64;
        if n == 0.0 {
            return Sample::default();
        }
        let mean = values.iter().sum::<f64>() / n;
        let variance = if n > 1.0 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
        Sample { n, mean, variance }
    }
}

/// Two-proportion z-test: are `x1/n1` and `x2/n2` different? `None` when a
/// group is empty or the pooled rate is 0 or 1 (nothing to compare).
pub fn two_proportion_z(x1: f64, n1: f64, x2: f64, n2: f64) -> Option<Test> {
    if n1 <= 0.0 || n2 <= 0.0 {
        return None;
    }
    let pooled = (x1 + x2) / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se == 0.0 || !se.is_finite() {
        return None;
    }
    let z = (x1 / n1 - x2 / n2) / se;
    Some(Test { statistic: z, p_value: 2.0 * (1.0 - normal_cdf(z.abs())) })
}

/// Welch's t-test for two means with unequal variances.
pub fn welch_t(a: Sample, b: Sample) -> Option<Test> {
    if a.n < 2.0 || b.n < 2.0 {
        return None;
    }
    let (va, vb) = (a.variance / a.n, b.variance / b.n);
    let se = (va + vb).sqrt();
    if se == 0.0 || !se.is_finite() {
        return None;
    }
    let t = (a.mean - b.mean) / se;
    let df = (va + vb).powi(2) / (va.powi(2) / (a.n - 1.0) + vb.powi(2) / (b.n - 1.0));
    Some(Test { statistic: t, p_value: 2.0 * student_t_sf(t.abs(), df) })
}

/// Φ(x), from erf (Abramowitz–Stegun 7.1.26 is too coarse for small p:
/// this uses the complementary error function's continued-fraction-free
/// series from Numerical Recipes `erfc`, accurate to ~1e-7).
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// P(T > t) for Student's t with `df` degrees of freedom, through the
/// regularised incomplete beta function.
pub fn student_t_sf(t: f64, df: f64) -> f64 {
    if !t.is_finite() {
        return 0.0;
    }
    let x = df / (df + t * t);
    let tail = 0.5 * incomplete_beta(df / 2.0, 0.5, x);
    if t >= 0.0 { tail } else { 1.0 - tail }
}

/// Regularised incomplete beta I_x(a, b) (Numerical Recipes `betai`).
fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_fraction(b, a, 1.0 - x) / b
    }
}

fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < 3e-12 {
            break;
        }
    }
    h
}

/// ln Γ(x), Lanczos approximation.
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 6] = [
        76.180_091_729_471_46,
        -86.505_320_329_416_77,
        24.014_098_240_830_91,
        -1.231_739_572_450_155,
        0.120_865_097_386_617_9e-2,
        -0.539_523_938_495_3e-5,
    ];
    let mut y = x;
    let tmp = x + 5.5;
    let tmp = tmp - (x + 0.5) * tmp.ln();
    let mut series = 1.000_000_000_190_015;
    for g in G {
        y += 1.0;
        series += g / y;
    }
    -tmp + (2.506_628_274_631_000_5 * series / x).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn normal_cdf_matches_tables() {
        assert!(close(normal_cdf(0.0), 0.5, 1e-7));
        assert!(close(normal_cdf(1.96), 0.975_002, 1e-6));
        assert!(close(normal_cdf(-1.0), 0.158_655, 1e-6));
        assert!(close(normal_cdf(3.0), 0.998_650, 1e-6));
    }

    #[test]
    fn student_t_matches_tables() {
        // two-sided 5% critical values: df 10 → 2.228, df 30 → 2.042
        assert!(close(2.0 * student_t_sf(2.228, 10.0), 0.05, 1e-3));
        assert!(close(2.0 * student_t_sf(2.042, 30.0), 0.05, 1e-3));
        assert!(close(student_t_sf(0.0, 5.0), 0.5, 1e-9));
        // large df tends to the normal
        assert!(close(student_t_sf(1.96, 1e6), 0.025, 1e-4));
    }

    #[test]
    fn z_test_on_a_textbook_example() {
        // 45/100 vs 30/100: z ≈ 2.19, p ≈ 0.029
        let t = two_proportion_z(45.0, 100.0, 30.0, 100.0).unwrap();
        assert!(close(t.statistic, 2.191, 1e-3), "{t:?}");
        assert!(close(t.p_value, 0.0285, 1e-3), "{t:?}");
        assert!(two_proportion_z(0.0, 10.0, 0.0, 10.0).is_none());
        assert!(two_proportion_z(1.0, 0.0, 1.0, 10.0).is_none());
    }

    #[test]
    fn welch_on_a_textbook_example() {
        // Welch (1947)-style check against scipy.stats.ttest_ind(equal_var=False)
        let a = Sample::of(&[27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]);
        let b = Sample::of(&[27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]);
        let t = welch_t(a, b).unwrap();
        assert!(close(t.statistic, -2.46, 0.01), "{t:?}");
        assert!(close(t.p_value, 0.021, 0.002), "{t:?}");
        assert!(welch_t(Sample::of(&[1.0]), b).is_none());
    }
}
