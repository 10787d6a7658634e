//! Per-image augmentation and normalisation into the network's `f32` input.

use crate::rng::Rng;

/// Augmentation and normalisation settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Augment {
    /// Random-crop padding in pixels (0 disables the crop): the image is zero-padded by this
    /// much on every side and a window of the original size is taken at a random offset.
    pub crop_padding: usize,
    /// Random horizontal flip with probability ½ (leave off for digits).
    pub hflip: bool,
    /// Per-channel mean, subtracted after scaling pixels to `[0, 1]`.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by.
    pub std: Vec<f32>,
}

impl Augment {
    /// No augmentation, normalisation with the given statistics (evaluation).
    pub fn normalize_only(mean: Vec<f32>, std: Vec<f32>) -> Self {
        Self {
            crop_padding: 0,
            hflip: false,
            mean,
            std,
        }
    }

    /// CIFAR-10 training: crop with 4-pixel padding, flip, CIFAR-10 channel statistics.
    pub fn cifar10_train() -> Self {
        Self {
            crop_padding: 4,
            hflip: true,
            mean: vec![0.4914, 0.4822, 0.4465],
            std: vec![0.2470, 0.2435, 0.2616],
        }
    }

    /// Fashion-MNIST training: crop with 2-pixel padding and flip (clothes are mirror
    /// symmetric; set `hflip = false` for digits), Fashion-MNIST statistics.
    pub fn fashion_mnist_train() -> Self {
        Self {
            crop_padding: 2,
            hflip: true,
            mean: vec![0.2860],
            std: vec![0.3530],
        }
    }

    /// The same statistics without the random parts.
    pub fn eval(&self) -> Self {
        Self::normalize_only(self.mean.clone(), self.std.clone())
    }

    /// Writes image `src` (`h×w×c` bytes) into `dst` (`h×w×c` floats), drawing crop offset and
    /// flip from `rng`.
    pub fn apply(&self, src: &[u8], h: usize, w: usize, c: usize, rng: &mut Rng, dst: &mut [f32]) {
        let p = self.crop_padding as isize;
        let (dy, dx) = if p > 0 {
            (
                rng.below(2 * p as usize + 1) as isize - p,
                rng.below(2 * p as usize + 1) as isize - p,
            )
        } else {
            (0, 0)
        };
        let flip = self.hflip && rng.below(2) == 1;
        // Statistics repeat cyclically over channels; missing ones mean 0 / 1.
        let pick = |v: &[f32], ch: usize, default: f32| {
            v.get(ch % v.len().max(1)).copied().unwrap_or(default)
        };
        let scale: Vec<f32> = (0..c)
            .map(|ch| 1.0 / (255.0 * pick(&self.std, ch, 1.0)))
            .collect();
        let shift: Vec<f32> = (0..c)
            .map(|ch| -pick(&self.mean, ch, 0.0) / pick(&self.std, ch, 1.0))
            .collect();
        for y in 0..h {
            let sy = y as isize + dy;
            for x in 0..w {
                let xx = if flip { w - 1 - x } else { x };
                let sx = xx as isize + dx;
                let o = &mut dst[(y * w + x) * c..(y * w + x + 1) * c];
                if sy < 0 || sx < 0 || sy >= h as isize || sx >= w as isize {
                    // Zero padding of the raw image, i.e. pixel value 0 before normalisation.
                    o.copy_from_slice(&shift);
                } else {
                    let s = &src[(sy as usize * w + sx as usize) * c..][..c];
                    for ch in 0..c {
                        o[ch] = s[ch] as f32 * scale[ch] + shift[ch];
                    }
                }
            }
        }
    }
}
