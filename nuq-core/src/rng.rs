//! A small seeded pseudo-random generator (xoshiro256++), `no_std`.

/// A deterministic pseudo-random generator: xoshiro256++ seeded through SplitMix64.
///
/// Used for k-means++ seeding in [`Codebook::lloyd_max`](crate::Codebook::lloyd_max) and
/// handy for reproducible test data. The same seed gives the same stream on every platform.
/// It is fast and statistically sound for simulation, **not** cryptographically secure.
///
/// ```
/// use nuq_core::Rng;
/// let mut a = Rng::new(7);
/// let mut b = Rng::new(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// let u = a.next_f64();
/// assert!((0.0..1.0).contains(&u));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator seeded from `seed` (any value, zero included).
    ///
    /// ```
    /// let mut r = nuq_core::Rng::new(0);
    /// assert_ne!(r.next_u64(), r.next_u64());
    /// ```
    pub fn new(seed: u64) -> Rng {
        let mut z = seed;
        let mut s = [0u64; 4];
        for w in &mut s {
            // SplitMix64 never yields four zero words in a row, so the state is never all-zero.
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            *w = x ^ (x >> 31);
        }
        Rng { s }
    }

    /// The next 64 uniformly distributed bits.
    ///
    /// ```
    /// let x = nuq_core::Rng::new(1).next_u64();
    /// assert_eq!(x, nuq_core::Rng::new(1).next_u64());
    /// ```
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform `f64` in `[0, 1)` with 53 random bits.
    ///
    /// ```
    /// let u = nuq_core::Rng::new(2).next_f64();
    /// assert!(u >= 0.0 && u < 1.0);
    /// ```
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform integer in `0..n` (`n > 0`), without modulo bias (Lemire's method).
    ///
    /// ```
    /// let mut r = nuq_core::Rng::new(3);
    /// assert!(r.below(10) < 10);
    /// ```
    ///
    /// # Panics
    /// If `n == 0`, which has no value to return.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0) has no value to return");
        loop {
            let m = (self.next_u64() as u128) * (n as u128);
            let low = m as u64;
            if low >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }

    /// A standard normal sample N(0, 1) by the Box–Muller transform (one of the pair is used).
    ///
    /// ```
    /// let mut r = nuq_core::Rng::new(4);
    /// let n = 20_000;
    /// let mean = (0..n).map(|_| r.normal()).sum::<f64>() / n as f64;
    /// assert!(mean.abs() < 0.05);
    /// ```
    pub fn normal(&mut self) -> f64 {
        // 1 - u lies in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(core::f64::consts::TAU * u2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_by_seed_and_repeat_by_seed() {
        let a: alloc::vec::Vec<u64> = (0..8)
            .map({
                let mut r = Rng::new(42);
                move |_| r.next_u64()
            })
            .collect();
        let mut r = Rng::new(42);
        assert!(a.iter().all(|&x| x == r.next_u64()));
        assert_ne!(Rng::new(42).next_u64(), Rng::new(43).next_u64());
    }

    #[test]
    fn below_is_in_range_and_covers_it() {
        let mut r = Rng::new(5);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            seen[r.below(7) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut r = Rng::new(9);
        let n = 100_000;
        let (mut s1, mut s2) = (0.0, 0.0);
        for _ in 0..n {
            let x = r.normal();
            s1 += x;
            s2 += x * x;
        }
        let mean = s1 / n as f64;
        let var = s2 / n as f64 - mean * mean;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }
}
