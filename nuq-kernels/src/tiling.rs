//! How a GEMM-shaped problem (`m` rows × weight panels) is cut into parallel tiles: the one
//! tile policy of the crate, used by the GEMMs and the fused convolution with their own
//! numbers from [`crate::archparam`].

use crate::archparam::{tile_bytes, CONV_MAX_ROWS, CONV_MIN_SPLIT_ROWS, GEMM_MAX_ROWS, ROW_ALIGN};
use crate::packed::PANEL;
use crate::Tuning;

/// Rows per tile and weight panels per tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TilePlan {
    pub rows: usize,
    pub panels: usize,
}

/// The bounds a caller's tiles keep to.
pub(crate) struct TilePolicy {
    /// Most rows per tile.
    max_rows: usize,
    /// Rows are halved down to this before panels are split.
    split_rows_first: usize,
    /// ... and down to this after panels are split.
    min_rows: usize,
}

/// The GEMMs: panels are split before rows, rows down to one register tile.
pub(crate) const GEMM: TilePolicy = TilePolicy {
    max_rows: GEMM_MAX_ROWS,
    split_rows_first: GEMM_MAX_ROWS,
    min_rows: ROW_ALIGN,
};

/// The fused convolution: rows are split down to [`CONV_MIN_SPLIT_ROWS`], then panels.
pub(crate) const CONV: TilePolicy = TilePolicy {
    max_rows: CONV_MAX_ROWS,
    split_rows_first: CONV_MIN_SPLIT_ROWS,
    min_rows: CONV_MIN_SPLIT_ROWS,
};

/// A fused convolution with light weights (at most
/// [`row_split_max_weight_bytes`](crate::archparam::row_split_max_weight_bytes)): rows are
/// split down to one register tile, then panels.
pub(crate) const CONV_LIGHT: TilePolicy = TilePolicy {
    max_rows: CONV_MAX_ROWS,
    split_rows_first: ROW_ALIGN,
    min_rows: ROW_ALIGN,
};

impl TilePolicy {
    /// [`TilePolicy::plan_within`] this core's [`tile_bytes`].
    pub(crate) fn plan(
        &self,
        m: usize,
        row_bytes: usize,
        panels: usize,
        threads: usize,
    ) -> TilePlan {
        self.plan_within(tile_bytes(), m, row_bytes, panels, threads)
    }

    /// Tiles for `m` rows of `row_bytes` activation bytes against `panels` weight panels on
    /// `threads` threads: rows within `tile_bytes` (a multiple of [`ROW_ALIGN`]), then
    /// halved (rows, panels, rows as the policy says) until there are
    /// [`Tuning::tiles_per_thread`] tiles per thread — fewer for small problems, whose tiles
    /// keep [`Tuning::min_tile_macs`] each (a multiple of the thread count where there are
    /// more tiles than threads) — or nothing is left to split.
    pub(crate) fn plan_within(
        &self,
        tile_bytes: usize,
        m: usize,
        row_bytes: usize,
        panels: usize,
        threads: usize,
    ) -> TilePlan {
        let threads = threads.max(1);
        let Tuning {
            tiles_per_thread,
            min_tile_macs,
            ..
        } = Tuning::current();
        let macs = m
            .saturating_mul(row_bytes)
            .saturating_mul(panels)
            .saturating_mul(PANEL);
        let affordable = (macs / min_tile_macs).max(1);
        let want = if affordable >= tiles_per_thread * threads {
            tiles_per_thread * threads
        } else if affordable > threads {
            affordable.next_multiple_of(threads)
        } else {
            affordable
        };
        let align = |r: usize| r.div_ceil(ROW_ALIGN) * ROW_ALIGN;
        let cap =
            (tile_bytes / row_bytes.max(1) / ROW_ALIGN * ROW_ALIGN).clamp(ROW_ALIGN, self.max_rows);
        let mut mc = align(m.min(cap));
        let mut pc = panels;
        let count = |mc: usize, pc: usize| m.div_ceil(mc) * panels.div_ceil(pc);
        while count(mc, pc) < want && mc > self.split_rows_first {
            mc = align(mc / 2);
        }
        while count(mc, pc) < want && pc > 1 {
            pc = pc.div_ceil(2);
        }
        while count(mc, pc) < want && mc > self.min_rows {
            mc = align(mc / 2);
        }
        // Rows split whole: as even tiles as the count allows, and no more of them than
        // wanted (halving overshoots: 1024 rows in 10 tiles of 112, the last of 16, where 8
        // of 128 keep two threads equally busy), within the cap.
        let tiles = m.div_ceil(mc);
        if pc == panels && tiles > threads {
            let even = tiles
                .min(want)
                .max(m.div_ceil(cap))
                .next_multiple_of(threads);
            let rows = align(m.div_ceil(even)).min(cap);
            if rows >= mc.min(self.split_rows_first) {
                mc = rows;
            }
        }
        TilePlan {
            rows: mc,
            panels: pc,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any problem on 1 to 64 threads, under every policy and cache size: tiles are whole
        /// register tiles within the policy's rows and the problem's panels; a problem is
        /// never cut into tiles of less than an eighth of the least work a tile is given on
        /// average (so that more threads do not make a small layer's tiles too short to be
        /// worth waking a thread for); and where the problem affords a tile per thread and
        /// the policy can cut that many, every thread gets one (batch 1 keeps every core
        /// busy).
        #[test]
        fn tiles_are_worth_a_thread_and_every_thread_gets_one(
            m in 1usize..20_000,
            row_bytes in 1usize..10_000,
            panels in 1usize..40,
            threads in 1usize..=64,
            tile_kib in 64usize..=1024,
            which in 0usize..3,
        ) {
            let policy = [&GEMM, &CONV, &CONV_LIGHT][which];
            let t = policy.plan_within(tile_kib << 10, m, row_bytes, panels, threads);
            prop_assert!(t.rows.is_multiple_of(ROW_ALIGN));
            prop_assert!((ROW_ALIGN..=policy.max_rows).contains(&t.rows));
            prop_assert!((1..=panels).contains(&t.panels));
            let count = m.div_ceil(t.rows) * panels.div_ceil(t.panels);
            let macs = m * row_bytes * panels * PANEL;
            let least = Tuning::current().min_tile_macs;
            prop_assert!(
                macs / count >= macs.min(least) / 8,
                "{count} tiles of {} MACs on average ({t:?})",
                macs / count
            );
            let most = m.div_ceil(policy.min_rows) * panels;
            if macs / least >= threads && most >= threads {
                prop_assert!(count >= threads, "{count} tiles for {threads} threads ({t:?})");
            }
        }
    }

    /// The tile bytes of a 1 MiB L2, which the expected plans below were worked out for.
    const TILE: usize = 256 << 10;

    #[test]
    fn plans_cover_and_split() {
        for (m, panels, threads, kp) in [(1, 1, 1, 4), (16, 16, 8, 576), (7, 3, 2, 1 << 20)] {
            for policy in [&GEMM, &CONV] {
                let t = policy.plan_within(TILE, m, kp, panels, threads);
                assert!(t.rows % ROW_ALIGN == 0 && (ROW_ALIGN..=policy.max_rows).contains(&t.rows));
                assert!((1..=panels).contains(&t.panels));
            }
        }
        let gemm = |m, kp, panels| GEMM.plan_within(TILE, m, kp, panels, 2);
        assert_eq!(
            gemm(16, 4608, 16),
            TilePlan {
                rows: 16,
                panels: 2
            }
        );
        assert_eq!(
            gemm(512, 4608, 16),
            TilePlan {
                rows: 56,
                panels: 16
            }
        );
        assert_eq!(
            gemm(32768, 576, 2),
            TilePlan {
                rows: 128,
                panels: 2
            }
        );
        // Small problems on many threads get fewer, larger tiles.
        assert_eq!(
            CONV.plan_within(TILE, 1024, 27, 2, 16),
            TilePlan {
                rows: 256,
                panels: 2
            }
        );
        assert_eq!(GEMM.plan_within(TILE, 16, 64, 1, 16).rows, 16);
        // Short convolutions keep 32-row tiles and split panels instead ...
        assert_eq!(
            CONV.plan_within(TILE, 64, 4608, 16, 2),
            TilePlan {
                rows: 32,
                panels: 4
            }
        );
        // ... unless their weights are light: rows down to one register tile first.
        assert_eq!(
            CONV_LIGHT.plan_within(TILE, 64, 2304, 8, 2),
            TilePlan { rows: 8, panels: 8 }
        );
        assert_eq!(
            CONV_LIGHT.plan_within(TILE, 8, 4608, 16, 2),
            TilePlan { rows: 8, panels: 2 }
        );
        assert_eq!(
            CONV.plan_within(TILE, 32768, 576, 2, 2),
            TilePlan {
                rows: 256,
                panels: 2
            }
        );
    }

    /// A larger L2 gives the long-row layers taller tiles; the ones the row cap already
    /// bounds stay as they are.
    #[test]
    fn tiles_grow_with_the_cache() {
        for (k, rows_1m, rows_2m) in [(2304, 112, 224), (4608, 56, 112), (576, 256, 256)] {
            for (tile, rows) in [(TILE, rows_1m), (2 * TILE, rows_2m)] {
                assert_eq!(
                    CONV.plan_within(tile, 32768, k, 8, 2),
                    TilePlan { rows, panels: 8 },
                    "k {k}, tile bytes {tile}"
                );
            }
        }
    }
}
