//! The residual BasicBlock of ResNet-18/20/34, built as a [`Graph`].

use crate::error::NnError;
use crate::layers::{BatchNorm2d, Conv2d, Conv2dConfig, Graph, Sequential};
use crate::rng::Rng;

/// `relu(main(x) + shortcut(x))` with `main = conv3×3(stride) → BN → ReLU → conv3×3 → BN` and
/// `shortcut` either the identity or `conv1×1(stride) → BN` (when the stride or the channel
/// count changes), from `c_in` to `c_out` channels: a [`Graph`] from
/// [`Graph::residual`].
///
/// PyTorch names (torchvision convention): `conv1`, `bn1`, `conv2`, `bn2`, `downsample.0`
/// (1×1 conv), `downsample.1` (its BN). The first BN is fused with its ReLU. The weights are
/// drawn from `rng` in that order.
///
/// # Errors
/// [`NnError::InvalidParameter`] for zero channels or stride.
pub fn basic_block(
    c_in: usize,
    c_out: usize,
    stride: usize,
    rng: &mut Rng,
) -> Result<Graph, NnError> {
    let mut main = Sequential::new();
    main.push(
        "conv1",
        Conv2d::new(Conv2dConfig::square(c_in, c_out, 3, stride, 1), rng)?,
    )
    .push("bn1", BatchNorm2d::new(c_out, true))
    .push(
        "conv2",
        Conv2d::new(Conv2dConfig::square(c_out, c_out, 3, 1, 1), rng)?,
    )
    .push("bn2", BatchNorm2d::new(c_out, false));
    let downsample = if stride != 1 || c_in != c_out {
        let mut s = Sequential::new();
        s.push(
            "0",
            Conv2d::new(Conv2dConfig::square(c_in, c_out, 1, stride, 0), rng)?,
        )
        .push("1", BatchNorm2d::new(c_out, false));
        Some(s)
    } else {
        None
    };
    Graph::residual(main, downsample)
}
