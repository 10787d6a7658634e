//! The [`Layer`] trait: explicit forward and backward passes with owned, reused buffers.

use std::any::Any;

use crate::error::NnError;
use crate::param::{BufferMut, Param};
use crate::tensor::Tensor;

/// Training or inference behaviour (BatchNorm batch statistics vs running statistics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Use batch statistics and update running statistics.
    Train,
    /// Use running statistics.
    Eval,
}

/// A network layer with an explicit forward and backward pass.
///
/// Buffer ownership: a layer owns its output tensor and its input-gradient tensor and reuses
/// them across steps, so a training step allocates nothing once shapes are settled. `forward`
/// returns a reference to the output; `backward` receives the same input again (the caller
/// still holds it: the previous layer's output) together with the gradient of the output, and
/// writes the input gradient (read it with [`Layer::input_grad`]) and the parameter gradients
/// (overwritten, not accumulated).
///
/// To swap a layer for a variant (e.g. a fake-quantized convolution), replace the
/// `Box<dyn Layer>` inside a [`crate::Sequential`]; concrete layers are reachable through
/// `<dyn Layer>::as_any_mut` and parameters through [`Layer::visit_params`] by PyTorch name.
///
/// Layers are `Clone` (a `Box<dyn Layer>` clones as its concrete type), so a whole
/// [`crate::Network`] can be copied, e.g. to keep the float network as a distillation teacher.
pub trait Layer: Send + Any + dyn_clone::DynClone {
    /// A short description, e.g. `Conv2d(64→128, 3×3, stride 2)`.
    fn describe(&self) -> String;

    /// The output shape for an input shape, or an error when the input does not fit.
    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], NnError>;

    /// Computes the output for `x` and keeps what `backward` needs.
    fn forward(&mut self, x: &Tensor, mode: Mode) -> Result<&Tensor, NnError>;

    /// The output of the last `forward`.
    fn output(&self) -> &Tensor;

    /// Back-propagates `dy` (gradient of the output of the last `forward`, whose input was `x`).
    /// Parameter gradients are overwritten; the input gradient is computed only when
    /// `need_input_grad` (the first layer of a network does not need it).
    fn backward(&mut self, x: &Tensor, dy: &Tensor, need_input_grad: bool) -> Result<(), NnError>;

    /// The input gradient of the last `backward` (empty when it was not requested).
    fn input_grad(&self) -> &Tensor;

    /// Calls `f` with the PyTorch name (under `prefix`) and value of every trainable parameter.
    fn visit_params(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, &mut Param)) {}

    /// Calls `f` with the PyTorch name and value of every non-trainable state tensor.
    fn visit_buffers(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, BufferMut<'_>)) {}

    /// Multiply-accumulate operations of one forward pass for a single image of the given shape.
    fn macs(&self, _input: [usize; 4]) -> u64 {
        0
    }

    /// The direct sub-layers of a container ([`crate::Sequential`], [`crate::Graph`]) with
    /// their names, in forward order; empty for a leaf layer.
    fn children(&self) -> Vec<(&str, &dyn Layer)> {
        Vec::new()
    }

    /// The direct sub-layers, mutably ([`Layer::children`]).
    fn children_mut(&mut self) -> Vec<(&str, &mut dyn Layer)> {
        Vec::new()
    }
}

/// Calls `f` with the full name (under `prefix`) of every leaf layer inside `layer` (itself
/// when it has no children), in forward order.
pub fn visit_leaves(layer: &dyn Layer, prefix: &str, f: &mut dyn FnMut(&str, &dyn Layer)) {
    let children = layer.children();
    if children.is_empty() {
        f(prefix, layer);
    }
    for (name, child) in children {
        visit_leaves(child, &crate::param::join_name(prefix, name), f);
    }
}

/// [`visit_leaves`] with mutable layers.
pub fn visit_leaves_mut(
    layer: &mut dyn Layer,
    prefix: &str,
    f: &mut dyn FnMut(&str, &mut dyn Layer),
) {
    let mut children = layer.children_mut();
    if children.is_empty() {
        drop(children);
        f(prefix, layer);
        return;
    }
    for (name, child) in children.iter_mut() {
        visit_leaves_mut(*child, &crate::param::join_name(prefix, name), f);
    }
}

// A boxed layer clones as its concrete type (a network's copy for a distillation teacher).
dyn_clone::clone_trait_object!(Layer);

impl dyn Layer {
    /// The layer as `Any`, to reach the concrete type (trait upcasting: no layer writes it).
    pub fn as_any(&self) -> &dyn Any {
        self
    }

    /// The layer as mutable `Any`, to reach the concrete type.
    pub fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

pub(crate) fn check_grad_shape(
    layer: &str,
    expected: [usize; 4],
    dy: &Tensor,
) -> Result<(), NnError> {
    if dy.shape() != expected {
        return Err(NnError::GradShape {
            layer: layer.to_string(),
            expected,
            found: dy.shape(),
        });
    }
    Ok(())
}
