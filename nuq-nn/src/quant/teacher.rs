//! A float teacher for knowledge distillation during quantization-aware fine-tuning.

use crate::loss::Distill;
use crate::models::Network;
use crate::tensor::Tensor;
use crate::{Mode, NnError};

/// A full-precision network whose logits the fine-tuned network learns to match (set as
/// [`QuantizedNetwork::teacher`](crate::quant::QuantizedNetwork::teacher)), usually a copy of the float network before quantization. The teacher runs in evaluation
/// mode: its batch-norm running statistics are used and never updated, and it is not trained.
///
/// ```
/// # use nuq_nn::{quant::Teacher, Arch, Distill, ModelConfig, Network};
/// # fn main() -> Result<(), nuq_nn::NnError> {
/// let net = Network::new(ModelConfig::fashion_mnist(Arch::ResNet20, 0.25), 1)?;
/// let teacher = Teacher::new(net.clone(), Distill { weight: 0.5, temperature: 2.0 })?;
/// assert_eq!(teacher.distill.temperature, 2.0);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Teacher {
    /// The teacher network.
    pub net: Network,
    /// How its logits enter the loss.
    pub distill: Distill,
}

impl Teacher {
    /// A teacher, its distillation settings checked.
    ///
    /// # Errors
    /// [`Distill::validate`]'s.
    pub fn new(net: Network, distill: Distill) -> Result<Self, NnError> {
        distill.validate()?;
        Ok(Self { net, distill })
    }

    /// The teacher's logits for a batch (evaluation mode).
    ///
    /// # Errors
    /// As the network's forward pass.
    pub fn logits(&mut self, x: &Tensor) -> Result<&Tensor, NnError> {
        self.net.forward(x, Mode::Eval)
    }
}
