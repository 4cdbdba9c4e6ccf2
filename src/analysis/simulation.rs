//! Seeded random draws for the judge's simulation tests: the same figures on
//! every run and machine (SplitMix64; no dependency for a few distributions).

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform on [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.uniform()).cos()
    }

    pub fn lognormal(&mut self, sigma: f64) -> f64 {
        (sigma * self.normal()).exp()
    }

    /// Binomial(n, p) by inversion, walking the pmf up from 0: for the
    /// simulations' n of thousands and p of a few percent (mean well under 1,000).
    pub fn binomial(&mut self, n: u64, p: f64) -> u64 {
        let u = self.uniform();
        let odds = p / (1.0 - p);
        let mut pmf = (1.0 - p).powf(n as f64);
        let mut cdf = pmf;
        let mut k = 0;
        while cdf <= u && k < n {
            pmf *= (n - k) as f64 / (k + 1) as f64 * odds;
            k += 1;
            cdf += pmf;
        }
        k
    }
}

#[test]
fn draws_have_the_moments_asked_for() {
    let mut rng = Rng::new(1);
    let draws: Vec<f64> = (0..20_000).map(|_| rng.binomial(2000, 0.02) as f64).collect();
    let mean = draws.iter().sum::<f64>() / draws.len() as f64;
    let variance = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / draws.len() as f64;
    assert!(
        (mean - 40.0).abs() < 0.3 && (variance - 39.2).abs() < 2.0,
        "{mean} {variance}"
    );
    let normals: Vec<f64> = (0..20_000).map(|_| rng.normal()).collect();
    let mean = normals.iter().sum::<f64>() / normals.len() as f64;
    let variance = normals.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / normals.len() as f64;
    assert!(mean.abs() < 0.03 && (variance - 1.0).abs() < 0.03, "{mean} {variance}");
}
