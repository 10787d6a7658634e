//! Output pixels grouped by the part of their window that lies inside the image.
//!
//! With a zero padding byte (every layer but one fed the raw image), the taps of a window
//! that fall on the border multiply zeros: a pixel on an edge of a 3×3 convolution with
//! padding 1 has 6 live taps, a corner pixel 4. On ResNet-18's 4×4 layers that is 31 % of
//! the multiply-adds, on its 8×8 layers 16 %. The live taps of a pixel are a rectangle of
//! the kernel — kernel rows `ky0..ky1` (the gathered row's pieces) × kernel columns
//! `kx0..kx1` (a run of groups inside each piece) — that depends only on the pixel's output
//! row and column, so a layer has few distinct ones (9 for 3×3 with padding 1).
//!
//! [`Borders::sort`] orders a tile's rows by that rectangle, so each run of rows with one
//! rectangle goes to the GEMM with its [`Live`] window and the rows' places in the tile's
//! block: the sums are the same integers as over the whole window. Sorted exactly so, the
//! rows read no byte outside the image, and the tile gathers them from the unpadded input
//! instead of a padded copy where that costs little more than the cheapest sort
//! ([`Costs::exact_pays`]).

use std::ops::Range;

use crate::archparam::{BORDER_RUN_ROWS, INPUT_GATHER_SLACK, ROW_ALIGN};
use crate::gemm::Live;
use crate::window::Window;

/// The live kernel rows and columns of every output row and column of a layer.
#[derive(Debug, Clone)]
pub(super) struct Borders {
    /// Per output row: the index of its live kernel rows in `y_live`.
    y_class: Vec<usize>,
    /// The distinct live kernel-row ranges.
    y_live: Vec<(usize, usize)>,
    /// Stretches of output columns with one live kernel-column range: `(first, end, index
    /// in x_live)`, in order.
    x_runs: Vec<(usize, usize, usize)>,
    /// The distinct live kernel-column ranges.
    x_live: Vec<(usize, usize)>,
    /// Output pixels per image and per output row.
    plane: usize,
    width: usize,
    /// Groups (4 channels) per tap of the gathered rows.
    tap_groups: usize,
    kernel: usize,
}

/// The kernel taps `0..kernel` of output position `o` that fall inside `0..size` of an
/// input padded by `padding` (dilation 1).
fn live_taps(
    o: usize,
    stride: usize,
    padding: usize,
    kernel: usize,
    size: usize,
) -> (usize, usize) {
    // Tap `t` reads input position `o·stride + t − padding`.
    let origin = o * stride;
    let start = padding.saturating_sub(origin).min(kernel);
    let end = (size + padding)
        .saturating_sub(origin)
        .min(kernel)
        .max(start);
    (start, end)
}

/// Per position, the index of its range in the distinct ranges (in order of appearance).
fn classes(ranges: impl Iterator<Item = (usize, usize)>) -> (Vec<usize>, Vec<(usize, usize)>) {
    let mut distinct = Vec::new();
    let class = ranges
        .map(|r| {
            distinct.iter().position(|&d| d == r).unwrap_or_else(|| {
                distinct.push(r);
                distinct.len() - 1
            })
        })
        .collect();
    (class, distinct)
}

impl Borders {
    /// The borders of `shape` for gathered rows of `channels` (a multiple of 4) per tap, or
    /// `None` where every window lies wholly inside the image (no padding).
    pub(super) fn new(shape: &Window, channels: usize) -> Option<Borders> {
        if shape.padding == 0 || shape.dilation != 1 || !channels.is_multiple_of(4) {
            return None;
        }
        let (oh, ow) = (shape.out_height(), shape.out_width());
        let (s, p, kern) = (shape.stride, shape.padding, shape.kernel);
        let (y_class, y_live) = classes((0..oh).map(|o| live_taps(o, s, p, kern, shape.height)));
        let (x_class, x_live) = classes((0..ow).map(|o| live_taps(o, s, p, kern, shape.width)));
        let mut x_runs: Vec<(usize, usize, usize)> = Vec::new();
        for (ox, &c) in x_class.iter().enumerate() {
            match x_runs.last_mut() {
                Some((_, end, last)) if *last == c => *end = ox + 1,
                _ => x_runs.push((ox, ox + 1, c)),
            }
        }
        Some(Borders {
            y_class,
            y_live,
            x_runs,
            x_live,
            plane: oh * ow,
            width: ow,
            tap_groups: channels / 4,
            kernel: kern,
        })
    }

    /// Classes: live kernel-row ranges × live kernel-column ranges.
    fn classes(&self) -> usize {
        self.y_live.len() * self.x_live.len()
    }

    /// The live window of class `c`, or, `by_rows`, of kernel-row class `c` (every kernel
    /// column).
    fn live(&self, c: usize, by_rows: bool) -> Live {
        let (ky, kx) = if by_rows {
            (self.y_live[c], (0, self.kernel))
        } else {
            (
                self.y_live[c / self.x_live.len()],
                self.x_live[c % self.x_live.len()],
            )
        };
        Live {
            pieces: ky,
            groups: (kx.0 * self.tap_groups, kx.1 * self.tap_groups),
        }
    }

    /// Calls `f(r, len, class)` for each stretch of the output pixels `rows` (counted across
    /// the batch) that share one class: `len` pixels from block row `r` (pixel
    /// `rows.start + r`), within one output row. Divides once per output row, not per pixel.
    fn stretches(&self, rows: Range<usize>, mut f: impl FnMut(usize, usize, usize)) {
        let nx = self.x_live.len();
        let mut pix = rows.start;
        while pix < rows.end {
            let at = pix % self.plane;
            let (oy, ox) = (at / self.width, at % self.width);
            // This output row's pixels inside `rows`: columns `ox .. ox_end`.
            let ox_end = ox + (self.width - ox).min(rows.end - pix);
            let y = self.y_class[oy] * nx;
            for &(first, end, c) in &self.x_runs {
                let (a, b) = (first.max(ox), end.min(ox_end));
                if a < b {
                    f(pix - rows.start + (a - ox), b - a, y + c);
                }
            }
            pix += ox_end - ox;
        }
    }

    /// Counts the output pixels `rows` by class into `sorted`'s scratch and prices each way
    /// of sorting them ([`Costs`]).
    fn count(&self, rows: Range<usize>, sorted: &mut Sorted) -> Costs {
        let nx = self.x_live.len();
        let counts = &mut sorted.counts;
        counts.clear();
        counts.resize(self.classes() + self.y_live.len(), 0);
        self.stretches(rows.clone(), |_, len, c| counts[c] += len);
        let (by_class, by_row) = counts.split_at_mut(self.classes());
        for (c, &count) in by_class.iter().enumerate() {
            by_row[c / nx] += count;
        }
        let taps = |live: Live| (live.pieces.1 - live.pieces.0) * (live.groups.1 - live.groups.0);
        let cost = |counts: &[usize], by_rows: bool| -> usize {
            let live = |c| self.live(c, by_rows);
            counts
                .iter()
                .enumerate()
                .filter(|&(_, &n)| n > 0)
                .map(|(c, &n)| register_cost(n) * taps(live(c)))
                .sum()
        };
        Costs {
            whole: register_cost(rows.len()) * self.kernel * self.kernel * self.tap_groups,
            split: cost(by_class, false),
            by_rows: cost(by_row, true),
        }
    }

    /// Orders the output pixels `rows` by their live taps into `sorted` (see [`Sorted`]);
    /// row `r` of the block is pixel `rows.start + r`. Returns whether the rows were sorted
    /// by their exact live taps so that they may be gathered from the unpadded input.
    ///
    /// Rows are grouped whole (every row keeps the whole window), by live kernel rows, or
    /// by live kernel rows and columns, whichever [`register_cost`] says multiplies least:
    /// a class of a few rows runs in a short register tile, which costs nearly what a
    /// full one does, so a 32×32 layer's edge pixels are not worth their own tiles, while
    /// a 4×4 layer's are. Where the caller may gather from the unpadded `input` (whose taps
    /// outside the image read other pixels), by live kernel rows and columns wherever that
    /// costs little more ([`Costs::exact_pays`]: it saves copying the rows padded).
    pub(super) fn sort(&self, rows: Range<usize>, sorted: &mut Sorted, input: bool) -> bool {
        sorted.clear();
        if rows.is_empty() {
            return input;
        }
        let costs = self.count(rows.clone(), sorted);
        let exact = input && costs.exact_pays();
        let Sorted {
            order,
            runs,
            counts,
            ..
        } = sorted;
        let nx = self.x_live.len();
        let (by_class, by_row) = counts.split_at_mut(self.classes());
        let by_rows = !exact && costs.by_rows <= costs.split;
        if !exact && costs.whole <= costs.split.min(costs.by_rows) {
            let full = Live {
                pieces: (0, self.kernel),
                groups: (0, self.kernel * self.tap_groups),
            };
            runs.push((full, 0..rows.len()));
            return false;
        }
        // A counting sort by the chosen key, stable within a class.
        let key = |c: usize| if by_rows { c / nx } else { c };
        let counts: &mut [usize] = if by_rows { by_row } else { by_class };
        let mut next = 0;
        for (c, count) in counts.iter_mut().enumerate() {
            if *count > 0 {
                runs.push((self.live(c, by_rows), next..next + *count));
            }
            (*count, next) = (next, next + *count);
        }
        if runs.len() == 1 {
            // One class: the rows keep their order.
            return exact;
        }
        order.clear();
        order.resize(rows.len(), 0);
        self.stretches(rows.clone(), |r, len, c| {
            let slot = &mut counts[key(c)];
            order[*slot..*slot + len]
                .iter_mut()
                .zip(r..)
                .for_each(|(o, r)| *o = r);
            *slot += len;
        });
        exact
    }
}

/// What a run of `rows` rows costs per group of live taps, in rows of the register tile
/// ([`ROW_ALIGN`] rows): whole tiles cost their rows, a shorter last tile no less than 2
/// (its `vpdpbusd` chains then wait on their own latency), and the run itself
/// [`BORDER_RUN_ROWS`].
fn register_cost(rows: usize) -> usize {
    let rest = rows % ROW_ALIGN;
    rows - rest + if rest == 0 { 0 } else { rest.max(2) } + BORDER_RUN_ROWS
}

/// The register work of multiplying a block's rows (in [`register_cost`] units times live
/// tap groups) sorted each way [`Borders::sort`] can.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Costs {
    /// Every row whole, zero taps included.
    whole: usize,
    /// By live kernel rows and columns: exactly the live taps.
    split: usize,
    /// By live kernel rows, every kernel column.
    by_rows: usize,
}

impl Costs {
    /// Whether the exact split costs at most `1 + 1/slack` times the cheapest sort: then
    /// its rows may be gathered from the unpadded image, which saves copying them
    /// ([`INPUT_GATHER_SLACK`]).
    fn exact_pays(&self) -> bool {
        let best = self.whole.min(self.split).min(self.by_rows);
        self.split * INPUT_GATHER_SLACK <= best * (INPUT_GATHER_SLACK + 1)
    }
}

/// A block's rows ordered by their live windows ([`Borders::sort`]), kept by the caller so
/// that the vectors grow once.
#[derive(Debug, Default)]
pub(super) struct Sorted {
    /// Block-local row indices, class by class (when [`Sorted::reordered`]).
    pub order: Vec<usize>,
    /// Where each row of `order` starts in the padded input (when reordered).
    pub at: Vec<usize>,
    /// Each class's live window and its rows: a range of `order`, or, with one class, of
    /// the block's rows as they are. Empty: every row read whole, in order.
    pub runs: Vec<(Live, Range<usize>)>,
    /// Rows per class, then per kernel-row class (scratch).
    counts: Vec<usize>,
}

impl Sorted {
    /// Nothing sorted yet.
    pub(super) const fn new() -> Sorted {
        Sorted {
            order: Vec::new(),
            at: Vec::new(),
            runs: Vec::new(),
            counts: Vec::new(),
        }
    }

    /// No runs: every row read whole, in order.
    pub(super) fn clear(&mut self) {
        self.runs.clear();
    }

    /// Whether the rows were reordered (more than one class): `order` and `at` hold them.
    pub(super) fn reordered(&self) -> bool {
        self.runs.len() > 1
    }

    /// Where the reordered rows start, from where each block row starts (`rows_at[r]`):
    /// `at[i] = rows_at[order[i]]`; nothing to place when the rows keep their order.
    pub(super) fn place(&mut self, rows_at: &[usize]) {
        self.at.clear();
        if self.reordered() {
            self.at.extend(self.order.iter().map(|&r| rows_at[r]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_taps_of_a_padded_3x3() {
        // 4 wide, padding 1, stride 1: the first and last positions lose one tap.
        let t: Vec<_> = (0..4).map(|o| live_taps(o, 1, 1, 3, 4)).collect();
        assert_eq!(t, [(1, 3), (0, 3), (0, 3), (0, 2)]);
        // Stride 2 over 8: only the first position loses a tap.
        let t: Vec<_> = (0..4).map(|o| live_taps(o, 2, 1, 3, 8)).collect();
        assert_eq!(t, [(1, 3), (0, 3), (0, 3), (0, 3)]);
        // A 1-wide input with padding 2 and a 3-tap kernel: position 0 reads taps 2 only.
        assert_eq!(live_taps(0, 1, 2, 3, 1), (2, 3));
        // A window wholly in the border is empty.
        assert_eq!(live_taps(0, 1, 5, 3, 1), (3, 3));
    }

    #[test]
    fn a_4x4_layer_has_nine_classes_sorted_stably() {
        let shape = Window::new(4, 4, 8, 3, 1, 1);
        let b = Borders::new(&shape, 8).unwrap();
        let rows = 16..48; // images 1 and 2
        let rows_at: Vec<usize> = (0..32).map(|r| 1000 + 7 * r).collect();
        let mut sorted = Sorted::default();
        assert!(!b.sort(rows.clone(), &mut sorted, false));
        sorted.place(&rows_at);
        assert!(sorted.reordered());
        assert_eq!(sorted.runs.len(), 9);
        let mut seen = sorted.order.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..32).collect::<Vec<_>>());
        let mut total = 0;
        for (live, run) in &sorted.runs {
            let pix: Vec<_> = sorted.order[run.clone()]
                .iter()
                .map(|&r| rows.start + r)
                .collect();
            assert!(pix.windows(2).all(|w| w[0] < w[1]), "stable within a class");
            for &p in &pix {
                let (oy, ox) = (p % 16 / 4, p % 4);
                assert_eq!(live.pieces, live_taps(oy, 1, 1, 3, 4));
                let kx = live_taps(ox, 1, 1, 3, 4);
                assert_eq!(live.groups, (kx.0 * 2, kx.1 * 2));
            }
            total += run.len();
        }
        assert_eq!(total, 32);
        let want: Vec<_> = sorted.order.iter().map(|&r| rows_at[r]).collect();
        assert_eq!(sorted.at, want);
        // Two middle pixels of one image: one class, order kept.
        b.sort(21..23, &mut sorted, false);
        sorted.place(&rows_at);
        assert!(!sorted.reordered());
        assert_eq!(sorted.runs.len(), 1);
        let full = Live {
            pieces: (0, 3),
            groups: (0, 6),
        };
        assert_eq!(sorted.runs[0], (full, 0..2));
    }

    proptest::proptest! {
        /// The stretches cover the rows once, in order, each with its pixels' own class;
        /// a sort puts every row in one run whose window holds the row's live taps — and,
        /// where it sorted for the unpadded `input`, is them.
        #[test]
        fn stretches_and_sorts_cover_every_row(
            height in 1usize..12, width in 1usize..12, kernel in 1usize..6, stride in 1usize..4,
            padding in 1usize..4, images in 1usize..4, a in 0usize..1000, b in 0usize..1000,
            input: bool,
        ) {
            let shape = Window::new(height, width, 4, kernel, stride, padding);
            proptest::prop_assume!(height.min(width) + 2 * padding >= kernel);
            let b_ = Borders::new(&shape, 4).unwrap();
            let (oh, ow) = (shape.out_height(), shape.out_width());
            let m = images * oh * ow;
            let (lo, hi) = ((a % (m + 1)).min(b % (m + 1)), (a % (m + 1)).max(b % (m + 1)));
            let class_of = |pix: usize| {
                let at = pix % (oh * ow);
                let ky = live_taps(at / ow, stride, padding, kernel, height);
                let kx = live_taps(at % ow, stride, padding, kernel, width);
                (ky, kx)
            };
            let mut next = 0;
            b_.stretches(lo..hi, |r, len, c| {
                assert_eq!(r, next);
                next += len;
                for pix in lo + r..lo + r + len {
                    let live = b_.live(c, false);
                    let (ky, kx) = class_of(pix);
                    assert_eq!(live.pieces, ky);
                    assert_eq!(live.groups, kx);
                }
            });
            proptest::prop_assert_eq!(next, hi - lo);
            let rows_at: Vec<usize> = (0..hi - lo).map(|r| 3 * r + 1).collect();
            let mut sorted = Sorted::default();
            let exact = b_.sort(lo..hi, &mut sorted, input);
            proptest::prop_assert!(input || !exact);
            sorted.place(&rows_at);
            let mut seen = vec![0; hi - lo];
            for (live, run) in &sorted.runs {
                for i in run.clone() {
                    let r = if sorted.reordered() { sorted.order[i] } else { i };
                    if sorted.reordered() {
                        proptest::prop_assert_eq!(sorted.at[i], rows_at[r]);
                    }
                    seen[r] += 1;
                    let (ky, kx) = class_of(lo + r);
                    proptest::prop_assert!(live.pieces.0 <= ky.0 && ky.1 <= live.pieces.1);
                    proptest::prop_assert!(live.groups.0 <= kx.0 && kx.1 <= live.groups.1);
                    if exact {
                        proptest::prop_assert_eq!(live.pieces, ky);
                        proptest::prop_assert_eq!(live.groups, kx);
                    }
                }
            }
            proptest::prop_assert!(seen.iter().all(|&n| n == 1));
        }
    }

    #[test]
    fn no_borders_without_padding() {
        assert!(Borders::new(&Window::new(8, 8, 4, 3, 1, 0), 4).is_none());
        assert!(Borders::new(&Window::new(8, 8, 4, 3, 1, 1), 4).is_some());
    }
}
