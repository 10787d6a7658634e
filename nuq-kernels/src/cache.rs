//! The sizes of one core's data caches, read once from CPUID (through `raw-cpuid`): the
//! tiling numbers of [`crate::archparam`] that are fractions of a cache are taken of these,
//! so that a core with a 2 MiB L2 (Intel Sapphire / Emerald Rapids) gets tiles twice those
//! of a 1 MiB one (AMD Zen 4 and 5). Results never depend on them: every tile computes
//! exact integers.
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
    /// leaf `0x8000_001D` (AMD), read through `raw-cpuid` — or `None` where it describes no
    /// L1 data cache and L2 (another architecture, or a hypervisor that hides the leaves).
    pub fn from_cpu() -> Option<CacheSizes> {
        #[cfg(target_arch = "x86_64")]
        {
            CacheSizes::from_cpuid(&raw_cpuid::CpuId::new())
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    /// Sizes from the cache parameters `cpuid` lists: each data or unified cache of levels
    /// 1–3 is `ways × partitions × line size × sets` bytes.
    #[cfg(target_arch = "x86_64")]
    fn from_cpuid<R: raw_cpuid::CpuIdReader>(cpuid: &raw_cpuid::CpuId<R>) -> Option<CacheSizes> {
        let mut sizes = [0usize; 4];
        for c in cpuid.get_cache_parameters()? {
            if c.cache_type() == raw_cpuid::CacheType::Instruction {
                continue;
            }
            let bytes = c.associativity()
                * c.physical_line_partitions()
                * c.coherency_line_size()
                * c.sets();
            let level = usize::from(c.level());
            if (1..=3).contains(&level) {
                sizes[level] = sizes[level].max(bytes);
            }
        }
        let [_, l1d, l2, l3] = sizes;
        (l1d > 0 && l2 > 0).then_some(CacheSizes { l1d, l2, l3 })
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use raw_cpuid::{CpuId, CpuIdResult};

    /// A CPU that answers leaf 0 with `vendor` (and the highest basic leaf 0x1F), leaf
    /// `0x8000_0000` with the highest extended leaf `0x8000_0021`, `leaf`'s subleaves with
    /// `subleaves` (`[eax, ebx, ecx]`; zeros past them) and every other leaf with zeros.
    fn cpu(vendor: &[u8; 12], leaf: u32, subleaves: Vec<[u32; 3]>) -> Option<CacheSizes> {
        let word = |i: usize| u32::from_le_bytes(vendor[i..i + 4].try_into().unwrap());
        let (b, d, c) = (word(0), word(4), word(8));
        let reader = move |eax: u32, ecx: u32| {
            let r = |eax, ebx, ecx, edx| CpuIdResult { eax, ebx, ecx, edx };
            match eax {
                0 => r(0x1F, b, c, d),
                0x8000_0000 => r(0x8000_0021, 0, 0, 0),
                _ if eax == leaf => {
                    let [a, b, c] = subleaves.get(ecx as usize).copied().unwrap_or([0; 3]);
                    r(a, b, c, 0)
                }
                _ => r(0, 0, 0, 0),
            }
        };
        CacheSizes::from_cpuid(&CpuId::with_cpuid_reader(reader))
    }

    /// A descriptor: `kind` (1 data, 2 instruction, 3 unified), `level`, and the geometry.
    fn desc(kind: u32, level: u32, ways: u32, line: u32, sets: u32) -> [u32; 3] {
        [kind | level << 5, (ways - 1) << 22 | (line - 1), sets - 1]
    }

    #[test]
    fn zen4() {
        // CPUID 0x8000_001D of an AMD EPYC (Zen 4, family 25 model 17), as read.
        let d = vec![
            [0x0000_0121, 0x01c0_003f, 0x0000_003f],
            [0x0000_0122, 0x01c0_003f, 0x0000_003f],
            [0x0000_0143, 0x01c0_003f, 0x0000_07ff],
            [0x0000_4163, 0x03c0_003f, 0x0000_7fff],
        ];
        assert_eq!(
            cpu(b"AuthenticAMD", 0x8000_001D, d),
            Some(CacheSizes {
                l1d: 32 << 10,
                l2: 1 << 20,
                l3: 32 << 20
            })
        );
    }

    #[test]
    fn intel_and_the_end_of_the_list() {
        // A Sapphire Rapids core: 48 KiB 12-way L1d, 32 KiB L1i, 2 MiB 16-way L2, a 15-way
        // L3 of 105 MiB; what follows the type-0 entry is not read.
        let d = vec![
            desc(1, 1, 12, 64, 64),
            desc(2, 1, 8, 64, 64),
            desc(3, 2, 16, 64, 2048),
            desc(3, 3, 15, 64, 114_688),
            [0, 0, 0],
            desc(3, 2, 16, 64, 1 << 20),
        ];
        let want = CacheSizes {
            l1d: 48 << 10,
            l2: 2 << 20,
            l3: 105 << 20,
        };
        assert_eq!(cpu(b"GenuineIntel", 4, d.clone()), Some(want));
        // An AMD CPU lists them in its own leaf, not in leaf 4.
        assert_eq!(cpu(b"AuthenticAMD", 4, d), None);
    }

    #[test]
    fn missing_levels_are_none() {
        assert_eq!(cpu(b"GenuineIntel", 4, vec![]), None);
        assert_eq!(cpu(b"GenuineIntel", 4, vec![desc(1, 1, 8, 64, 64)]), None);
        // An instruction cache is not a data cache.
        let i_and_l2 = vec![desc(2, 1, 8, 64, 64), desc(3, 2, 8, 64, 1024)];
        assert_eq!(cpu(b"GenuineIntel", 4, i_and_l2), None);
        // Without an L3.
        let l1_l2 = vec![desc(1, 1, 8, 64, 64), desc(3, 2, 8, 64, 1024)];
        assert_eq!(
            cpu(b"GenuineIntel", 4, l1_l2),
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
