//! The tuning numbers that differ between machines, as one value per process.
//!
//! [`Tuning::detect`] derives them from the CPU (its L2, its vendor) and the defaults in
//! [`crate::archparam`]; the kernels read [`Tuning::current`], which is that unless an
//! application installed another one first ([`Tuning::install`]) — the reports' `--tune`,
//! for measuring a number on a machine without rebuilding. Like every number in
//! `archparam`, none of them changes a result: they only move work between threads, caches
//! and instructions.

use crate::archparam::{
    lookup_shares_multiplier, CB4_INT8_MIN_ROWS, L2_MAX_BYTES, L2_MIN_BYTES, MIN_TILE_MACS,
    TILES_PER_THREAD,
};
use crate::{CacheSizes, KernelError};
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// The machine-dependent tuning numbers of the kernels.
///
/// Written and parsed as `l2=1024K cb4_int8_rows=off tiles_per_thread=4
/// min_tile_macs=524288` (entries separated by spaces or commas; a size takes `K` or `M`;
/// a parsed text starts from [`Tuning::detect`] and changes only the entries it names):
///
/// ```
/// use nuq_kernels::Tuning;
/// let t: Tuning = "l2=2M, tiles_per_thread=8".parse()?;
/// assert_eq!((t.l2_bytes, t.tiles_per_thread), (2 << 20, 8));
/// assert_eq!(t.min_tile_macs, Tuning::detect().min_tile_macs);
/// assert_eq!(t.to_string().parse::<Tuning>()?, t);
/// assert!("l2=64K".parse::<Tuning>().is_err());
/// # Ok::<(), nuq_kernels::KernelError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tuning {
    /// One core's L2 as the cache-sized numbers see it (`l2`): the tile's activation bytes
    /// are a quarter of it, the light-weight row split and a split batch's chunk a half, the
    /// rows-outer weight limit 3/16 ([`crate::archparam`]). Within
    /// [`L2_MIN_BYTES`]`..=`[`L2_MAX_BYTES`].
    pub l2_bytes: usize,
    /// Rows from which an AVX-512 tile of 4-bit codebook weights multiplies the layer's int8
    /// copy instead of looking weights up in registers (`cb4_int8_rows`, `off` for never):
    /// [`CB4_INT8_MIN_ROWS`] where the lookups share a port with the multiply-adds
    /// ([`lookup_shares_multiplier`]), else never.
    pub cb4_int8_min_rows: Option<usize>,
    /// Tiles per thread a problem is split into, at least (`tiles_per_thread`, 1 to 64).
    pub tiles_per_thread: usize,
    /// Multiply-accumulates a tile is given at least (`min_tile_macs`, at least 1).
    pub min_tile_macs: usize,
}

/// The process's tuning, fixed at the first [`Tuning::current`] or [`Tuning::install`].
static CURRENT: OnceLock<Tuning> = OnceLock::new();

impl Tuning {
    /// The numbers for this CPU: its L2 ([`CacheSizes::detect`], within
    /// [`L2_MIN_BYTES`]`..=`[`L2_MAX_BYTES`]: an odd report of a hypervisor must not give
    /// tiles of a few rows or of a whole problem) and the defaults of
    /// [`crate::archparam`].
    pub fn detect() -> Tuning {
        Tuning {
            l2_bytes: CacheSizes::detect().l2.clamp(L2_MIN_BYTES, L2_MAX_BYTES),
            cb4_int8_min_rows: lookup_shares_multiplier().then_some(CB4_INT8_MIN_ROWS),
            tiles_per_thread: TILES_PER_THREAD,
            min_tile_macs: MIN_TILE_MACS,
        }
    }

    /// The tuning the kernels run with: the one [installed](Tuning::install), else
    /// [`Tuning::detect`]'s (fixed from then on).
    pub fn current() -> Tuning {
        *CURRENT.get_or_init(Tuning::detect)
    }

    /// Makes `self` the tuning of this process, before the kernels first read it — which
    /// on a CPU with AMX-INT8 includes the first
    /// [`KernelPath::best_available`](crate::KernelPath::best_available) (or `detect`),
    /// whose probe runs kernels ([`crate::probe`]): install first.
    ///
    /// # Errors
    /// [`KernelError::TuningInUse`] when another tuning is already in use (installed, or
    /// read by a kernel that ran); installing the one in use again is `Ok`.
    pub fn install(self) -> Result<(), KernelError> {
        let current = *CURRENT.get_or_init(|| self);
        if current == self {
            Ok(())
        } else {
            Err(KernelError::TuningInUse {
                current: current.to_string(),
            })
        }
    }

    /// `self` with one `key=value` entry applied.
    fn with_entry(mut self, entry: &str) -> Result<Tuning, KernelError> {
        let bad = |expected: &'static str| KernelError::BadTuning {
            entry: entry.to_string(),
            expected,
        };
        let (key, value) = entry.split_once('=').ok_or_else(|| bad(ENTRY))?;
        let value = value.trim();
        match key.trim() {
            "l2" => {
                self.l2_bytes = parse_size(value)
                    .filter(|b| (L2_MIN_BYTES..=L2_MAX_BYTES).contains(b))
                    .ok_or_else(|| bad("a size from 256K to 4M"))?;
            }
            "cb4_int8_rows" => {
                self.cb4_int8_min_rows = match value {
                    "off" => None,
                    v => Some(
                        v.parse()
                            .ok()
                            .filter(|&r| r >= 1)
                            .ok_or_else(|| bad("off or a positive row count"))?,
                    ),
                };
            }
            "tiles_per_thread" => {
                self.tiles_per_thread = value
                    .parse()
                    .ok()
                    .filter(|t| (1..=64).contains(t))
                    .ok_or_else(|| bad("1 to 64"))?;
            }
            "min_tile_macs" => {
                self.min_tile_macs = parse_size(value)
                    .filter(|&m| m >= 1)
                    .ok_or_else(|| bad("a positive count (K and M allowed)"))?;
            }
            _ => return Err(bad(ENTRY)),
        }
        Ok(self)
    }
}

/// What an entry looks like (the error for one without `=` or with an unknown key).
const ENTRY: &str = "key=value with key l2, cb4_int8_rows, tiles_per_thread or min_tile_macs";

/// `n`, `nK` (`n · 1024`) or `nM` (`n · 2^20`), if it fits a `usize`.
fn parse_size(v: &str) -> Option<usize> {
    let (digits, unit) = match v.as_bytes().last()? {
        b'K' | b'k' => (&v[..v.len() - 1], 1 << 10),
        b'M' | b'm' => (&v[..v.len() - 1], 1 << 20),
        _ => (v, 1),
    };
    digits.parse::<usize>().ok()?.checked_mul(unit)
}

impl FromStr for Tuning {
    type Err = KernelError;

    /// Entries applied in order over [`Tuning::detect`] (see the type's docs).
    fn from_str(s: &str) -> Result<Tuning, KernelError> {
        s.split([',', ' '])
            .filter(|e| !e.trim().is_empty())
            .try_fold(Tuning::detect(), Tuning::with_entry)
    }
}

impl fmt::Display for Tuning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Kilobytes where exact (as the reports print the caches), else bytes: the text
        // parses back to the same tuning.
        match self.l2_bytes % 1024 {
            0 => write!(f, "l2={}K cb4_int8_rows=", self.l2_bytes >> 10)?,
            _ => write!(f, "l2={} cb4_int8_rows=", self.l2_bytes)?,
        }
        match self.cb4_int8_min_rows {
            Some(r) => write!(f, "{r}")?,
            None => f.write_str("off")?,
        }
        write!(
            f,
            " tiles_per_thread={} min_tile_macs={}",
            self.tiles_per_thread, self.min_tile_macs
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_change_only_what_they_name() {
        let base = Tuning::detect();
        let t: Tuning = "cb4_int8_rows=64,min_tile_macs=1M".parse().unwrap();
        assert_eq!(t.cb4_int8_min_rows, Some(64));
        assert_eq!(t.min_tile_macs, 1 << 20);
        assert_eq!(
            (t.l2_bytes, t.tiles_per_thread),
            (base.l2_bytes, base.tiles_per_thread)
        );
        let off: Tuning = " cb4_int8_rows=off ".parse().unwrap();
        assert_eq!(off.cb4_int8_min_rows, None);
        assert_eq!("".parse::<Tuning>().unwrap(), base);
        // Later entries win.
        let t: Tuning = "l2=512K l2=2m".parse().unwrap();
        assert_eq!(t.l2_bytes, 2 << 20);
    }

    #[test]
    fn display_parses_back() {
        for s in [
            "l2=256K cb4_int8_rows=off",
            "l2=4M cb4_int8_rows=1 tiles_per_thread=64",
            // Not whole kilobytes (the fuzzer's first find: printed as 976K).
            "l2=999999",
        ] {
            let t: Tuning = s.parse().unwrap();
            assert_eq!(t.to_string().parse::<Tuning>().unwrap(), t);
        }
    }

    #[test]
    fn bad_entries_name_themselves() {
        for (text, entry) in [
            ("l2=128K", "l2=128K"),
            ("l2=8M", "l2=8M"),
            ("l2=1G", "l2=1G"),
            ("tiles_per_thread=0", "tiles_per_thread=0"),
            ("tiles_per_thread=65", "tiles_per_thread=65"),
            ("cb4_int8_rows=0", "cb4_int8_rows=0"),
            ("min_tile_macs=0", "min_tile_macs=0"),
            ("l2=1M,threads=4", "threads=4"),
            ("l2", "l2"),
            (
                "min_tile_macs=99999999999999999999M",
                "min_tile_macs=99999999999999999999M",
            ),
        ] {
            match text.parse::<Tuning>() {
                Err(KernelError::BadTuning { entry: e, .. }) => assert_eq!(e, entry, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_tuning_in_use_stays() {
        // Whatever the kernels of this test binary read first stays; installing it again is
        // fine, another one is refused with the one in use named.
        let current = Tuning::current();
        assert_eq!(current.install(), Ok(()));
        let other = Tuning {
            tiles_per_thread: current.tiles_per_thread % 64 + 1,
            ..current
        };
        match other.install() {
            Err(KernelError::TuningInUse { current: c }) => assert_eq!(c, current.to_string()),
            r => panic!("{r:?}"),
        }
        assert_eq!(Tuning::current(), current);
    }
}
