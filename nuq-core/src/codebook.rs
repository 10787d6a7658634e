//! [`Codebook`]: up to `2^b` strictly increasing integer levels on a [`Grid`], with decision
//! thresholds and nearest-level lookup.
//!
//! The family constructors live in one file each under `codebook/`.

use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::family::Family;
use crate::grid::Grid;

mod apot;
mod explicit;
mod k_quantile;
mod lloyd_max;
mod mu_law;
mod normal_float;
mod power_of_two;
mod uniform;

pub use lloyd_max::LloydMaxOptions;

/// How a fixed-shape family lays its levels out around zero.
///
/// ```
/// use nuq_core::{Codebook, Grid, Polarity};
/// let g = Grid::I8;
/// assert_eq!(Codebook::uniform(g, 2, Polarity::Unsigned)?.levels(), &[0, 42, 84, 126]);
/// assert_eq!(Codebook::uniform(g, 2, Polarity::Signed)?.levels(), &[-127, 0, 127]);
/// assert_eq!(Codebook::uniform(g, 2, Polarity::SignedMidrise)?.levels(), &[-126, -42, 42, 126]);
/// # Ok::<(), nuq_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Polarity {
    /// Levels `>= 0`, zero included: `2^b` levels (post-ReLU activations).
    Unsigned,
    /// Symmetric around a zero level ("mid-tread"): `2^b - 1` levels, one index unused. Needs
    /// `b >= 2` and a signed grid. The usual choice for weights.
    Signed,
    /// Symmetric without a zero level ("mid-rise"): `2^b` levels. Needs a signed grid.
    SignedMidrise,
}

impl Polarity {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Polarity::Unsigned => "unsigned",
            Polarity::Signed => "signed (mid-tread)",
            Polarity::SignedMidrise => "signed mid-rise",
        }
    }

    /// Checks that signed polarities sit on a signed grid.
    pub(crate) fn check_grid(self, family: &'static str, grid: Grid) -> Result<()> {
        if self != Polarity::Unsigned && !grid.is_signed() {
            return Err(Error::SignedLevelsOnUnsignedGrid { family, grid });
        }
        Ok(())
    }
}

/// A codebook: `1..=2^b` strictly increasing integer levels on a [`Grid`], addressed by `b`-bit
/// indices (`b` in `1..=8`).
///
/// A value `x` in *grid units* (real value divided by the tensor's [`Scale`](crate::Scale))
/// encodes to the index of its nearest level; index `i` decodes to the integer `levels()[i]`.
/// Index 0 is the smallest level, so index order is level order.
///
/// **Decision thresholds.** Between levels `l[i]` and `l[i+1]` lies the threshold
/// `t[i] = (l[i] + l[i+1]) / 2`, an exact half-integer (stored as `f32`, exact for every grid).
/// **Tie rule:** a value exactly on a threshold goes to the *upper* level, so the index of `x`
/// is the number of thresholds `x` reaches: `#{i : x >= t[i]}`. That is exactly the comparator
/// bank of the paper's requantizer ("count the thresholds the accumulator reaches"). For
/// integer inputs the same rule reads `v >= T[i]` with the integer thresholds
/// `T[i] = ceil(t[i])` ([`Codebook::integer_thresholds`]); multiplied into accumulator units
/// they are the paper's MAC thresholds.
///
/// ```
/// use nuq_core::{Codebook, Grid};
/// let cb = Codebook::explicit(Grid::I8, 2, &[-100, -10, 10, 100])?;
/// assert_eq!(cb.thresholds(), &[-55.0, 0.0, 55.0]);
/// assert_eq!(cb.nearest(-56.0), 0);
/// assert_eq!(cb.nearest(0.0), 2); // a tie goes up
/// assert_eq!(cb.level(3), Some(100));
/// # Ok::<(), nuq_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Codebook {
    family: Family,
    grid: Grid,
    bits: u8,
    levels: Vec<i32>,
    /// The thresholds followed by `+inf` padding up to `2^bits - 1` entries, for the
    /// branch-free search in [`Codebook::nearest`].
    search: Vec<f32>,
}

impl PartialEq for Codebook {
    fn eq(&self, other: &Self) -> bool {
        self.grid == other.grid && self.bits == other.bits && self.levels == other.levels
    }
}

impl Eq for Codebook {}

impl core::hash::Hash for Codebook {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.grid.hash(state);
        self.bits.hash(state);
        self.levels.hash(state);
    }
}

pub(crate) fn check_index_bits(bits: u8) -> Result<()> {
    if !(1..=8).contains(&bits) {
        return Err(Error::InvalidIndexBits { bits });
    }
    Ok(())
}

impl Codebook {
    /// Validates and builds strictly increasing levels; every family constructor ends here.
    pub(crate) fn build(grid: Grid, bits: u8, levels: Vec<i32>) -> Result<Codebook> {
        Codebook::build_levels(grid, bits, levels, true)
    }

    /// A stored level table, as a `.nuq` file or an integer model holds one: like
    /// [`Codebook::explicit`], except that a level may repeat (FORMAT.md §6.2: "non-decreasing";
    /// a writer pads a short codebook by repeating its last level). No family designs
    /// repeated levels; [`Codebook::nearest`] picks the last of equal levels (ties go up), so
    /// every value still gets a level nearest to it.
    ///
    /// # Errors
    /// As [`Codebook::explicit`], with [`Error::LevelsDecreasing`] instead of
    /// [`Error::LevelsNotIncreasing`].
    ///
    /// ```
    /// use nuq_core::{Codebook, Grid};
    /// let t = Codebook::table(Grid::U8, 2, &[0, 3, 3, 9])?;
    /// assert_eq!(t.levels(), &[0, 3, 3, 9]);
    /// assert_eq!(t.nearest(3.0), 2);
    /// assert!(Codebook::table(Grid::U8, 2, &[0, 3, 2]).is_err());
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn table(grid: Grid, bits: u8, levels: &[i32]) -> Result<Codebook> {
        Codebook::build_levels(grid, bits, levels.to_vec(), false)
    }

    fn build_levels(grid: Grid, bits: u8, levels: Vec<i32>, strict: bool) -> Result<Codebook> {
        check_index_bits(bits)?;
        if levels.is_empty() {
            return Err(Error::NoLevels);
        }
        let max = 1usize << bits;
        if levels.len() > max {
            return Err(Error::TooManyLevels {
                levels: levels.len(),
                bits,
                max,
            });
        }
        for (index, &level) in levels.iter().enumerate() {
            if !grid.contains(level) {
                return Err(Error::LevelOffGrid {
                    index,
                    level,
                    min: grid.min(),
                    max: grid.max(),
                });
            }
            if index > 0 && level <= levels[index - 1] {
                let (previous, found) = (levels[index - 1], level);
                if strict {
                    return Err(Error::LevelsNotIncreasing {
                        index,
                        previous,
                        found,
                    });
                }
                if level < previous {
                    return Err(Error::LevelsDecreasing {
                        index,
                        previous,
                        found,
                    });
                }
            }
        }
        let mut search: Vec<f32> = levels
            .windows(2)
            .map(|w| (w[0] + w[1]) as f32 * 0.5)
            .collect();
        search.resize(max - 1, f32::INFINITY);
        Ok(Codebook {
            family: Family::Custom,
            grid,
            bits,
            levels,
            search,
        })
    }

    /// Sets the family (constructors of a named family).
    pub(crate) fn with_family(mut self, family: Family) -> Codebook {
        self.family = family;
        self
    }

    /// How the levels were designed (informational: equality and hashing ignore it).
    ///
    /// ```
    /// use nuq_core::{Codebook, Family};
    /// assert_eq!(Codebook::iq4_nl().family(), Family::Iq4Nl);
    /// ```
    pub fn family(&self) -> Family {
        self.family
    }

    /// The grid the levels live on.
    ///
    /// ```
    /// let cb = nuq_core::Codebook::iq4_nl();
    /// assert_eq!(cb.grid(), nuq_core::Grid::I8);
    /// ```
    pub fn grid(&self) -> Grid {
        self.grid
    }

    /// The index width `b` in bits (`1..=8`).
    ///
    /// ```
    /// assert_eq!(nuq_core::Codebook::iq4_nl().bits(), 4);
    /// ```
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// The number of levels (`1..=2^b`).
    ///
    /// ```
    /// use nuq_core::{Codebook, Grid, Polarity};
    /// assert_eq!(Codebook::uniform(Grid::I8, 3, Polarity::Signed)?.len(), 7);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    #[allow(clippy::len_without_is_empty)] // a codebook always has at least one level
    pub fn len(&self) -> usize {
        self.levels.len()
    }

    /// The levels, strictly increasing (non-decreasing for a [`Codebook::table`]), as integers
    /// on the grid.
    ///
    /// ```
    /// assert_eq!(nuq_core::Codebook::iq4_nl().levels()[0], -127);
    /// ```
    pub fn levels(&self) -> &[i32] {
        &self.levels
    }

    /// The level of index `index`, or `None` when no level has that index.
    ///
    /// ```
    /// let cb = nuq_core::Codebook::iq4_nl();
    /// assert_eq!(cb.level(15), Some(113));
    /// assert_eq!(cb.level(16), None);
    /// ```
    pub fn level(&self, index: u8) -> Option<i32> {
        self.levels.get(index as usize).copied()
    }

    /// The `len() - 1` decision thresholds in grid units: `t[i] = (l[i] + l[i+1]) / 2`, exact
    /// half-integers. See the type docs for the tie rule.
    ///
    /// ```
    /// use nuq_core::{Codebook, Grid};
    /// let cb = Codebook::explicit(Grid::I8, 2, &[0, 1, 4])?;
    /// assert_eq!(cb.thresholds(), &[0.5, 2.5]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn thresholds(&self) -> &[f32] {
        &self.search[..self.levels.len() - 1]
    }

    /// The thresholds doubled, `l[i] + l[i+1]`, as exact integers (no half-integers needed).
    ///
    /// ```
    /// use nuq_core::{Codebook, Grid};
    /// let cb = Codebook::explicit(Grid::I8, 2, &[0, 1, 4])?;
    /// assert_eq!(cb.doubled_thresholds(), vec![1, 5]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn doubled_thresholds(&self) -> Vec<i32> {
        self.levels.windows(2).map(|w| w[0] + w[1]).collect()
    }

    /// The integer thresholds `T[i] = ceil(t[i])`: an integer `v` has index
    /// `#{i : v >= T[i]}`, the same as [`Codebook::nearest`] gives for `v as f32`.
    ///
    /// ```
    /// use nuq_core::{Codebook, Grid};
    /// let cb = Codebook::explicit(Grid::I8, 2, &[-3, 0, 4])?;
    /// assert_eq!(cb.integer_thresholds(), vec![-1, 2]);
    /// assert_eq!(cb.index_of_integer(-2), 0);
    /// assert_eq!(cb.index_of_integer(2), 2);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn integer_thresholds(&self) -> Vec<i32> {
        self.levels
            .windows(2)
            .map(|w| (w[0] + w[1] + 1).div_euclid(2))
            .collect()
    }

    /// The index of the level nearest to the integer `v` (ties go up).
    ///
    /// ```
    /// let cb = nuq_core::Codebook::iq4_nl();
    /// assert_eq!(cb.index_of_integer(1), 8);
    /// assert_eq!(cb.index_of_integer(i32::MIN), 0);
    /// ```
    pub fn index_of_integer(&self, v: i32) -> u8 {
        // Every threshold is a half-integer of magnitude below 2^16; rounding `v` to f32 only
        // moves values beyond 2^24, which lie past every threshold either way.
        self.nearest(v as f32)
    }

    /// The index of the level nearest to `x` (in grid units), ties going to the upper level.
    ///
    /// Branch-free: `b` compare-and-add steps over the padded threshold table. Values beyond
    /// the outer levels clamp to index 0 or `len() - 1`; `+inf` gives the last index, `-inf`
    /// index 0, and NaN index 0 (the tensor API rejects NaN before it gets here).
    ///
    /// ```
    /// use nuq_core::{Codebook, Grid, Polarity};
    /// let cb = Codebook::uniform(Grid::I8, 3, Polarity::Signed)?; // -126, -84, ..., 126
    /// assert_eq!(cb.nearest(-1000.0), 0);
    /// assert_eq!(cb.nearest(20.9), 3);
    /// assert_eq!(cb.nearest(21.0), 4);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    #[inline]
    pub fn nearest(&self, x: f32) -> u8 {
        let t = &self.search[..];
        let mut idx = 0usize;
        let mut step = 1usize << (self.bits - 1);
        while step > 0 {
            // idx + step - 1 <= 2^bits - 2 = t.len() - 1 throughout.
            idx += if x >= t[idx + step - 1] { step } else { 0 };
            step >>= 1;
        }
        // Only x = +inf reaches the +inf padding.
        idx.min(self.levels.len() - 1) as u8
    }

    /// The index of the level nearest to `u` (in grid units) computed in `f64`: `lo` below
    /// and `hi` above `u`, the lower one only when `u − lo < hi − u` (ties go up); values
    /// beyond the outer levels clamp. The `f64` form of [`Codebook::nearest`], for values
    /// that were computed in `f64` (the quantizers' fine-tuning steps).
    ///
    /// ```
    /// use nuq_core::{Codebook, Grid};
    /// let cb = Codebook::explicit(Grid::I8, 2, &[-4, 0, 4])?;
    /// assert_eq!([cb.nearest_f64(-9.0), cb.nearest_f64(1.999), cb.nearest_f64(2.0)], [0, 1, 2]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    #[inline]
    pub fn nearest_f64(&self, u: f64) -> u8 {
        let l = &self.levels;
        let p = l.partition_point(|&v| f64::from(v) < u);
        if p == 0 {
            return 0;
        }
        if p == l.len() {
            return (l.len() - 1) as u8;
        }
        let (lo, hi) = (f64::from(l[p - 1]), f64::from(l[p]));
        if u - lo < hi - u {
            (p - 1) as u8
        } else {
            p as u8
        }
    }

    /// The nearest level itself (in grid units), `levels()[nearest(x)]`.
    ///
    /// ```
    /// assert_eq!(nuq_core::Codebook::iq4_nl().snap(30.0), 25);
    /// ```
    #[inline]
    pub fn snap(&self, x: f32) -> i32 {
        self.levels[self.nearest(x) as usize]
    }

    /// Encodes values in grid units into indices, `out[i] = nearest(xs[i])`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] when `out` is not as long as `xs`;
    /// [`Error::NonFinite`] naming the first NaN or infinite value.
    ///
    /// ```
    /// let cb = nuq_core::Codebook::iq4_nl();
    /// let mut idx = [0u8; 3];
    /// cb.encode(&[-200.0, 0.0, 40.0], &mut idx)?;
    /// assert_eq!(idx, [0, 8, 11]);
    /// assert!(cb.encode(&[1.0, f32::NAN, 2.0], &mut idx).is_err());
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn encode(&self, xs: &[f32], out: &mut [u8]) -> Result<()> {
        check_len(xs.len(), out.len())?;
        crate::quantizer::check_finite(xs, 0)?;
        for (o, &x) in out.iter_mut().zip(xs) {
            *o = self.nearest(x);
        }
        Ok(())
    }

    /// Decodes indices into their integer levels.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] when the lengths differ; [`Error::IndexOutOfRange`]
    /// naming the first index that addresses no level.
    ///
    /// ```
    /// let cb = nuq_core::Codebook::iq4_nl();
    /// let mut levels = [0i32; 2];
    /// cb.decode(&[0, 15], &mut levels)?;
    /// assert_eq!(levels, [-127, 113]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn decode(&self, indices: &[u8], out: &mut [i32]) -> Result<()> {
        check_len(indices.len(), out.len())?;
        for (position, (o, &i)) in out.iter_mut().zip(indices).enumerate() {
            *o = self.level(i).ok_or(Error::IndexOutOfRange {
                position,
                index: i,
                levels: self.levels.len(),
            })?;
        }
        Ok(())
    }
}

pub(crate) fn check_len(expected: usize, found: usize) -> Result<()> {
    if expected != found {
        return Err(Error::LengthMismatch { expected, found });
    }
    Ok(())
}

/// Rounds normalised levels (`[-1, 1]`, largest magnitude 1) onto the grid, scaled by the grid's
/// largest value, and checks they stay distinct.
pub(crate) fn snap_normalized(
    family: &'static str,
    grid: Grid,
    bits: u8,
    normalized: &[f64],
) -> Result<Codebook> {
    let top = grid.max() as f64;
    let mut levels: Vec<i32> = Vec::with_capacity(normalized.len());
    for &v in normalized {
        let q = libm::round(v * top) as i32;
        if levels.last().is_some_and(|&p| p >= q) {
            return Err(Error::GridTooCoarse { family, bits, grid });
        }
        levels.push(q);
    }
    Codebook::build(grid, bits, levels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn nearest_f64_ties_go_up_and_clamp() {
        let cb = Codebook::explicit(Grid::I8, 2, &[-4, -1, 0, 3]).unwrap();
        let got: Vec<u8> = [-9.0, -2.5, 1.5, 1.4, 99.0]
            .iter()
            .map(|&u| cb.nearest_f64(u))
            .collect();
        assert_eq!(got, [0, 1, 3, 2, 3]);
        // Agrees with the f32 search wherever f32 holds the value exactly.
        for i in -600..600 {
            let u = f64::from(i) / 100.0;
            if f64::from(u as f32) == u {
                assert_eq!(cb.nearest_f64(u), cb.nearest(u as f32), "{u}");
            }
        }
        let t = Codebook::table(Grid::I8, 2, &[-4, 0, 0, 3]).unwrap();
        assert_eq!(t.levels()[usize::from(t.nearest_f64(0.2))], 0);
    }

    #[test]
    fn build_rejects_each_bad_input() {
        let g = Grid::I8;
        assert_eq!(
            Codebook::build(g, 0, vec![1]),
            Err(Error::InvalidIndexBits { bits: 0 })
        );
        assert_eq!(
            Codebook::build(g, 9, vec![1]),
            Err(Error::InvalidIndexBits { bits: 9 })
        );
        assert_eq!(Codebook::build(g, 2, vec![]), Err(Error::NoLevels));
        assert_eq!(
            Codebook::build(g, 1, vec![1, 2, 3]),
            Err(Error::TooManyLevels {
                levels: 3,
                bits: 1,
                max: 2
            })
        );
        assert_eq!(
            Codebook::build(g, 2, vec![1, 1]),
            Err(Error::LevelsNotIncreasing {
                index: 1,
                previous: 1,
                found: 1
            })
        );
        assert_eq!(
            Codebook::build(g, 2, vec![-128, 1]),
            Err(Error::LevelOffGrid {
                index: 0,
                level: -128,
                min: -127,
                max: 127
            })
        );
    }

    #[test]
    fn single_level_codebook_maps_everything_to_it() {
        let cb = Codebook::build(Grid::I8, 3, vec![5]).unwrap();
        assert!(cb.thresholds().is_empty());
        for x in [-1e30f32, -1.0, 5.0, 1e30, f32::INFINITY] {
            assert_eq!(cb.nearest(x), 0);
        }
    }

    #[test]
    fn nearest_handles_infinities_and_nan() {
        let cb = Codebook::build(Grid::I8, 3, vec![-5, 0, 5]).unwrap();
        assert_eq!(cb.nearest(f32::INFINITY), 2);
        assert_eq!(cb.nearest(f32::NEG_INFINITY), 0);
        assert_eq!(cb.nearest(f32::NAN), 0);
    }

    #[test]
    fn equality_ignores_nothing_that_matters() {
        let a = Codebook::build(Grid::I8, 2, vec![0, 1]).unwrap();
        let b = Codebook::build(Grid::I8, 3, vec![0, 1]).unwrap();
        assert_ne!(a, b);
        assert_eq!(a, a.clone());
    }
}
