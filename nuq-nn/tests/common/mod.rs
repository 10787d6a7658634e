//! Helpers the integer model tests share.

use nuq_nn::{BatchNorm2d, Network, Rng};

/// `n` smooth-ish images of `len` bytes: a gradient plus noise, so convolutions see structure.
pub fn images(n: usize, len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..n * len)
        .map(|i| {
            let base = ((i % len) * 255 / len) as f32;
            (base * 0.5 + rng.uniform(0.0, 127.0)) as u8
        })
        .collect()
}

/// Random BN statistics (with `negative`, some scales negative) so the folding, and the
/// alignment factors, take both signs.
pub fn randomise_bn(net: &mut Network, seed: u64, negative: bool) {
    let mut rng = Rng::new(seed);
    nuq_nn::visit_leaves_mut(&mut net.body, "", &mut |_, l| {
        if let Some(bn) = l.as_any_mut().downcast_mut::<BatchNorm2d>() {
            for o in 0..bn.channels() {
                let sign = if negative && rng.next_f32() < 0.2 {
                    -1.0
                } else {
                    1.0
                };
                bn.weight.value[o] = sign * rng.uniform(0.5, 1.5);
                bn.bias.value[o] = rng.uniform(-0.2, 0.4);
                bn.running_mean[o] = rng.uniform(-0.3, 0.3);
                bn.running_var[o] = rng.uniform(0.5, 2.0);
            }
        }
    });
}
