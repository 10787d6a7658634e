//! A named chain of layers.

use crate::error::NnError;
use crate::layer::{Layer, Mode};
use crate::param::{join_name, BufferMut, Param};
use crate::tensor::Tensor;

/// Layers applied in order, each with a PyTorch-style name (`"conv1"`, `"layer1.0"`, `"0"`).
///
/// Children are boxed trait objects, so any one can be replaced (e.g. by a fake-quantized
/// variant) with [`Sequential::replace`] or inserted with [`Sequential::insert`].
#[derive(Clone, Default)]
pub struct Sequential {
    layers: Vec<(String, Box<dyn Layer>)>,
    empty: Tensor,
}

impl Sequential {
    /// An empty chain (it must receive at least one layer before use).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a named layer.
    pub fn push(&mut self, name: impl Into<String>, layer: impl Layer) -> &mut Self {
        self.layers.push((name.into(), Box::new(layer)));
        self
    }

    /// Appends a boxed layer.
    pub fn push_boxed(&mut self, name: impl Into<String>, layer: Box<dyn Layer>) -> &mut Self {
        self.layers.push((name.into(), layer));
        self
    }

    /// Inserts a boxed layer at `index` (0 ≤ index ≤ len).
    pub fn insert(
        &mut self,
        index: usize,
        name: impl Into<String>,
        layer: Box<dyn Layer>,
    ) -> Result<(), NnError> {
        if index > self.layers.len() {
            return Err(NnError::InvalidParameter {
                what: "insert position".into(),
                allowed: "at most the number of layers",
                found: format!("{index} of {}", self.layers.len()),
            });
        }
        self.layers.insert(index, (name.into(), layer));
        Ok(())
    }

    /// Replaces the layer called `name`, returning the old one.
    pub fn replace(
        &mut self,
        name: &str,
        layer: Box<dyn Layer>,
    ) -> Result<Box<dyn Layer>, NnError> {
        let slot = self
            .layers
            .iter_mut()
            .find(|(n, _)| n == name)
            .ok_or_else(|| NnError::NoSuchLayer(name.to_string()))?;
        Ok(std::mem::replace(&mut slot.1, layer))
    }

    /// Number of direct children.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there are no children.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The direct children with their names.
    pub fn layers(&self) -> &[(String, Box<dyn Layer>)] {
        &self.layers
    }

    /// Mutable access to the direct children.
    pub fn layers_mut(&mut self) -> &mut [(String, Box<dyn Layer>)] {
        &mut self.layers
    }

    /// The child called `name`.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut dyn Layer> {
        self.layers
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, l)| l.as_mut() as &mut dyn Layer)
    }

    /// The children with their names, consuming the chain.
    pub fn into_layers(self) -> Vec<(String, Box<dyn Layer>)> {
        self.layers
    }

    fn need_layers(&self) -> Result<(), NnError> {
        if self.layers.is_empty() {
            return Err(NnError::InvalidParameter {
                what: "Sequential".into(),
                allowed: "non-empty",
                found: "no layers".into(),
            });
        }
        Ok(())
    }
}

impl Layer for Sequential {
    fn describe(&self) -> String {
        let parts: Vec<String> = self
            .layers
            .iter()
            .map(|(n, l)| format!("{n}: {}", l.describe()))
            .collect();
        format!("Sequential[{}]", parts.join(", "))
    }

    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], NnError> {
        self.need_layers()?;
        let mut s = input;
        for (_, l) in &self.layers {
            s = l.output_shape(s)?;
        }
        Ok(s)
    }

    fn forward(&mut self, x: &Tensor, mode: Mode) -> Result<&Tensor, NnError> {
        self.need_layers()?;
        let (first, rest) = self.layers.split_first_mut().expect("checked non-empty");
        let mut cur = first.1.forward(x, mode)?;
        for (_, l) in rest {
            cur = l.forward(cur, mode)?;
        }
        Ok(cur)
    }

    fn output(&self) -> &Tensor {
        self.layers.last().map_or(&self.empty, |(_, l)| l.output())
    }

    fn backward(&mut self, x: &Tensor, dy: &Tensor, need_input_grad: bool) -> Result<(), NnError> {
        self.need_layers()?;
        let n = self.layers.len();
        for i in (0..n).rev() {
            let (before, from) = self.layers.split_at_mut(i);
            let (cur, after) = from.split_first_mut().expect("i < n");
            let input = if i == 0 { x } else { before[i - 1].1.output() };
            let grad = if i == n - 1 {
                dy
            } else {
                after[0].1.input_grad()
            };
            cur.1.backward(input, grad, i > 0 || need_input_grad)?;
        }
        Ok(())
    }

    fn input_grad(&self) -> &Tensor {
        self.layers
            .first()
            .map_or(&self.empty, |(_, l)| l.input_grad())
    }

    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        for (name, l) in &mut self.layers {
            l.visit_params(&join_name(prefix, name), f);
        }
    }

    fn visit_buffers(&mut self, prefix: &str, f: &mut dyn FnMut(&str, BufferMut<'_>)) {
        for (name, l) in &mut self.layers {
            l.visit_buffers(&join_name(prefix, name), f);
        }
    }

    fn children(&self) -> Vec<(&str, &dyn Layer)> {
        self.layers
            .iter()
            .map(|(n, l)| (n.as_str(), l.as_ref()))
            .collect()
    }

    fn children_mut(&mut self) -> Vec<(&str, &mut dyn Layer)> {
        self.layers
            .iter_mut()
            .map(|(n, l)| (n.as_str(), l.as_mut() as &mut dyn Layer))
            .collect()
    }

    fn macs(&self, input: [usize; 4]) -> u64 {
        let mut s = input;
        let mut total = 0;
        for (_, l) in &self.layers {
            total += l.macs(s);
            match l.output_shape(s) {
                Ok(o) => s = o,
                Err(_) => return total,
            }
        }
        total
    }
}
