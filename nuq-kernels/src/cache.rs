//! The sizes of one core's data caches, read once from CPUID: the tiling numbers of
//! [`crate::archparam`] that are fractions of a cache are taken of these, so that a core
//! with a 2 MiB L2 (Intel Sapphire / Emerald Rapids) gets tiles twice those of a 1 MiB one
//! (AMD Zen 4 and 5). Results never depend on them: every tile computes exact integers.
//!
//! Where CPUID does not describe the caches (another architecture, a hypervisor that hides
//! the leaves), [`CacheSizes::ASSUMED`] stands in.
//!
//! ```
//! use nuq_kernels::CacheSizes;
//!
//! let c = CacheSizes::detect();
//! assert!(c.l2 >= c.l1d);
//! ```

use std::sync::OnceLock;

/// Sizes in bytes of the data caches one core sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSizes {
    /// The level-1 data cache.
    pub l1d: usize,
    /// The level-2 cache.
    pub l2: usize,
    /// The level-3 cache as one core sees it (the whole of a shared one), 0 where there is
    /// none.
    pub l3: usize,
}

impl CacheSizes {
    /// What the tiling assumes where CPUID does not tell: an AMD Zen 4 core's caches
    /// (32 KiB, 1 MiB, 32 MiB), the machine its numbers were first measured on.
    pub const ASSUMED: CacheSizes = CacheSizes {
        l1d: 32 << 10,
        l2: 1 << 20,
        l3: 32 << 20,
    };

    /// This CPU's caches as CPUID describes them, or [`CacheSizes::ASSUMED`]; read once per
    /// process.
    pub fn detect() -> CacheSizes {
        static SIZES: OnceLock<CacheSizes> = OnceLock::new();
        *SIZES.get_or_init(|| CacheSizes::from_cpu().unwrap_or(CacheSizes::ASSUMED))
    }

    /// The caches CPUID describes — the deterministic cache parameters of leaf 4 (Intel) or
    /// leaf `0x8000_001D` (AMD) — or `None` where it describes no L1 data cache and L2
    /// (another architecture, or a hypervisor that hides the leaves).
    pub fn from_cpu() -> Option<CacheSizes> {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::__cpuid_count;
            let max_leaf = __cpuid_count(0, 0).eax;
            let max_ext = __cpuid_count(0x8000_0000, 0).eax;
            // Each leaf lists its caches in subleaves 0, 1, … up to one of type 0; 16 is
            // more than any CPU has.
            let leaf = |leaf: u32| {
                (0..16).map(move |i| {
                    let r = __cpuid_count(leaf, i);
                    [r.eax, r.ebx, r.ecx]
                })
            };
            let intel = (max_leaf >= 4)
                .then(|| CacheSizes::from_descriptors(leaf(4)))
                .flatten();
            intel.or_else(|| {
                (max_ext >= 0x8000_001D)
                    .then(|| CacheSizes::from_descriptors(leaf(0x8000_001D)))
                    .flatten()
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    /// Sizes from deterministic cache parameter descriptors (`[eax, ebx, ecx]` of CPUID leaf
    /// 4 or `0x8000_001D`, subleaf by subleaf), read up to the first of type 0 (no more
    /// caches): each data or unified cache of levels 1–3 is `ways × partitions × line size ×
    /// sets` bytes. `None` without both an L1 data cache and an L2.
    pub fn from_descriptors(descriptors: impl IntoIterator<Item = [u32; 3]>) -> Option<CacheSizes> {
        let mut sizes = [0usize; 4];
        for [eax, ebx, ecx] in descriptors {
            let kind = eax & 0x1F;
            if kind == 0 {
                break;
            }
            // 1: data, 2: instruction, 3: unified.
            if kind == 2 {
                continue;
            }
            let level = ((eax >> 5) & 0x7) as usize;
            let field =
                |v: u32, shift: u32, bits: u32| ((v >> shift) & ((1 << bits) - 1)) as usize + 1;
            let bytes =
                field(ebx, 22, 10) * field(ebx, 12, 10) * field(ebx, 0, 12) * (ecx as usize + 1);
            if (1..=3).contains(&level) {
                sizes[level] = sizes[level].max(bytes);
            }
        }
        let [_, l1d, l2, l3] = sizes;
        (l1d > 0 && l2 > 0).then_some(CacheSizes { l1d, l2, l3 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A descriptor: `kind` (1 data, 2 instruction, 3 unified), `level`, and the geometry.
    fn desc(kind: u32, level: u32, ways: u32, line: u32, sets: u32) -> [u32; 3] {
        [kind | level << 5, (ways - 1) << 22 | (line - 1), sets - 1]
    }

    #[test]
    fn zen4_descriptors() {
        // CPUID 0x8000_001D of an AMD EPYC (Zen 4, family 25 model 17), as read.
        let d = [
            [0x0000_0121, 0x01c0_003f, 0x0000_003f],
            [0x0000_0122, 0x01c0_003f, 0x0000_003f],
            [0x0000_0143, 0x01c0_003f, 0x0000_07ff],
            [0x0000_4163, 0x03c0_003f, 0x0000_7fff],
            [0, 0, 0],
        ];
        assert_eq!(
            CacheSizes::from_descriptors(d),
            Some(CacheSizes {
                l1d: 32 << 10,
                l2: 1 << 20,
                l3: 32 << 20
            })
        );
    }

    #[test]
    fn intel_descriptors_and_their_end() {
        // A Sapphire Rapids core: 48 KiB 12-way L1d, 32 KiB L1i, 2 MiB 16-way L2, a
        // 15-way L3 of 105 MiB; what follows the type-0 entry is not read.
        let d = [
            desc(1, 1, 12, 64, 64),
            desc(2, 1, 8, 64, 64),
            desc(3, 2, 16, 64, 2048),
            desc(3, 3, 15, 64, 114_688),
            [0, 0, 0],
            desc(3, 2, 16, 64, 1 << 20),
        ];
        assert_eq!(
            CacheSizes::from_descriptors(d),
            Some(CacheSizes {
                l1d: 48 << 10,
                l2: 2 << 20,
                l3: 105 << 20
            })
        );
    }

    #[test]
    fn missing_levels_are_none() {
        assert_eq!(CacheSizes::from_descriptors([]), None);
        assert_eq!(CacheSizes::from_descriptors([desc(1, 1, 8, 64, 64)]), None);
        // An instruction cache is not a data cache.
        assert_eq!(
            CacheSizes::from_descriptors([desc(2, 1, 8, 64, 64), desc(3, 2, 8, 64, 1024)]),
            None
        );
        // Without an L3.
        assert_eq!(
            CacheSizes::from_descriptors([desc(1, 1, 8, 64, 64), desc(3, 2, 8, 64, 1024)]),
            Some(CacheSizes {
                l1d: 32 << 10,
                l2: 512 << 10,
                l3: 0
            })
        );
    }

    #[test]
    fn detected_sizes_are_ordered() {
        let c = CacheSizes::detect();
        assert!(c.l1d > 0 && c.l2 >= c.l1d, "{c:?}");
        assert_eq!(c, CacheSizes::detect());
    }
}
