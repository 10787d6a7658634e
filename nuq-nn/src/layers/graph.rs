//! A directed acyclic graph of layers: branches that leave a tensor and joins that add
//! tensors, trained by back-propagation through the graph.

use rayon::prelude::*;

use crate::error::NnError;
use crate::layer::{check_grad_shape, Layer, Mode};
use crate::layers::relu::masked_grad;
use crate::layers::Sequential;
use crate::param::{join_name, BufferMut, Param};
use crate::tensor::Tensor;

/// Elements per parallel work item of the element-wise loops.
const BLOCK: usize = 1 << 15;

/// The element-wise sum of two or more tensors of one shape, optionally followed by ReLU:
/// the join of a residual block.
#[derive(Clone, Default)]
pub struct Add {
    relu: bool,
    out: Tensor,
    dsum: Tensor,
}

impl Add {
    /// A join, `relu(Σ inputs)` when `relu`, else `Σ inputs`.
    pub fn new(relu: bool) -> Self {
        Self {
            relu,
            ..Self::default()
        }
    }

    /// Whether a ReLU follows the sum.
    pub fn relu(&self) -> bool {
        self.relu
    }

    fn output_shape(&self, name: &str, shapes: &[[usize; 4]]) -> Result<[usize; 4], NnError> {
        let first = shapes[0];
        if let Some(other) = shapes.iter().find(|s| **s != first) {
            return Err(NnError::InputShape {
                layer: format!("Add {name}"),
                found: *other,
                reason: format!("the tensors it adds differ in shape (the first is {first:?})"),
            });
        }
        Ok(first)
    }

    fn forward(&mut self, name: &str, xs: &[&Tensor]) -> Result<(), NnError> {
        let shapes: Vec<[usize; 4]> = xs.iter().map(|x| x.shape()).collect();
        let shape = self.output_shape(name, &shapes)?;
        self.out.reshape_uninit(shape);
        let relu = self.relu;
        self.out
            .data_mut()
            .par_chunks_mut(BLOCK)
            .enumerate()
            .for_each(|(k, o)| {
                let range = k * BLOCK..k * BLOCK + o.len();
                for ((o, a), b) in o
                    .iter_mut()
                    .zip(&xs[0].data()[range.clone()])
                    .zip(&xs[1].data()[range.clone()])
                {
                    *o = a + b;
                }
                for x in &xs[2..] {
                    for (o, v) in o.iter_mut().zip(&x.data()[range.clone()]) {
                        *o += v;
                    }
                }
                if relu {
                    for o in o.iter_mut() {
                        *o = o.max(0.0);
                    }
                }
            });
        Ok(())
    }

    /// The gradient reaching every input: `dy`, masked where the ReLU cut the sum.
    fn backward(&mut self, dy: &Tensor) {
        self.dsum.reshape_uninit(dy.shape());
        if !self.relu {
            self.dsum.data_mut().copy_from_slice(dy.data());
            return;
        }
        // Masked by the output, as a ReLU layer masks by its input.
        masked_grad(&mut self.dsum, &self.out, dy, true, |y| y > 0.0);
    }
}

/// What a graph node computes.
#[derive(Clone)]
pub enum Op {
    /// A layer of one input.
    Layer(Box<dyn Layer>),
    /// The sum of two or more inputs ([`Add`]).
    Add(Add),
}

/// A named node and the tensors it reads.
#[derive(Clone)]
pub struct GraphNode {
    name: String,
    inputs: Vec<usize>,
    op: Op,
}

impl GraphNode {
    /// The node's name: its layer's parameter-name prefix (`conv1`, `downsample.0`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tensors it reads: 0 is the graph's input, `i + 1` the output of node `i`.
    pub fn inputs(&self) -> &[usize] {
        &self.inputs
    }

    /// What it computes.
    pub fn op(&self) -> &Op {
        &self.op
    }

    /// What it computes, mutably (to swap a layer for a variant of the same shape).
    pub fn op_mut(&mut self) -> &mut Op {
        &mut self.op
    }

    /// The node's output of the last forward pass.
    pub fn output(&self) -> &Tensor {
        match &self.op {
            Op::Layer(l) => l.output(),
            Op::Add(a) => &a.out,
        }
    }

    /// The gradient of the last backward pass reaching each of its inputs.
    fn input_grad(&self) -> &Tensor {
        match &self.op {
            Op::Layer(l) => l.input_grad(),
            Op::Add(a) => &a.dsum,
        }
    }
}

/// Where the gradient of the graph's input lives after a backward pass.
#[derive(Clone, Copy, Default)]
enum InputGrad {
    /// Not computed.
    #[default]
    None,
    /// In the input gradient of the one node that reads the input.
    Node(usize),
    /// Summed in the graph's own buffer (several readers).
    Sum,
}

/// A directed acyclic graph of layers, itself a [`Layer`].
///
/// Tensors are numbered: 0 is the graph's input and `i + 1` the output of node `i`; nodes
/// are kept in topological order (each reads only earlier tensors) and the last node's
/// output is the graph's output. A node is a layer of one input or an [`Add`] of two or
/// more. Every tensor but the output must be read, so every node contributes to the output.
///
/// Back-propagation runs the nodes in reverse; a tensor read by several nodes receives the
/// sum of their input gradients, added in node order.
///
/// ```
/// use nuq_nn::{BatchNorm2d, Conv2d, Conv2dConfig, Graph, Layer, Mode, Rng, Tensor};
///
/// # fn main() -> Result<(), nuq_nn::NnError> {
/// let mut rng = Rng::new(0);
/// // relu(bn(conv(x)) + x)
/// let mut g = Graph::new();
/// let c = g.push(0, "conv", Conv2d::new(Conv2dConfig::square(4, 4, 3, 1, 1), &mut rng)?)?;
/// let b = g.push(c, "bn", BatchNorm2d::new(4, false))?;
/// g.push_add(&[b, 0], "", true)?;
/// let y = g.forward(&Tensor::zeros([2, 8, 8, 4]), Mode::Train)?;
/// assert_eq!(y.shape(), [2, 8, 8, 4]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Graph {
    nodes: Vec<GraphNode>,
    /// Per tensor, the nodes reading it in node order (a node reading it twice is listed
    /// twice); rebuilt whenever the wiring changes.
    readers: Vec<Vec<usize>>,
    /// Per tensor, the summed gradient when several nodes read it.
    grads: Vec<Tensor>,
    input_grad: InputGrad,
    empty: Tensor,
}

impl Graph {
    /// An empty graph (it must receive at least one node before use).
    pub fn new() -> Self {
        Self::default()
    }

    fn check_inputs(&self, name: &str, inputs: &[usize]) -> Result<(), NnError> {
        if let Some(&t) = inputs.iter().find(|&&t| t > self.nodes.len()) {
            return Err(NnError::InvalidParameter {
                what: format!("input of graph node {name:?}"),
                allowed: "an earlier tensor (0: the graph input, i + 1: node i)",
                found: format!("tensor {t} of {}", self.nodes.len() + 1),
            });
        }
        Ok(())
    }

    /// Appends a layer reading tensor `input`; returns the tensor it writes.
    ///
    /// # Errors
    /// [`NnError::InvalidParameter`] when `input` is not an existing tensor.
    pub fn push(
        &mut self,
        input: usize,
        name: impl Into<String>,
        layer: impl Layer,
    ) -> Result<usize, NnError> {
        self.push_boxed(input, name, Box::new(layer))
    }

    /// Appends a boxed layer reading tensor `input`; returns the tensor it writes.
    ///
    /// # Errors
    /// As [`Graph::push`].
    pub fn push_boxed(
        &mut self,
        input: usize,
        name: impl Into<String>,
        layer: Box<dyn Layer>,
    ) -> Result<usize, NnError> {
        let name = name.into();
        self.check_inputs(&name, &[input])?;
        self.nodes.push(GraphNode {
            name,
            inputs: vec![input],
            op: Op::Layer(layer),
        });
        self.rewire();
        Ok(self.nodes.len())
    }

    /// Appends the sum of `inputs` (two or more tensors of one shape), followed by ReLU when
    /// `relu`; returns the tensor it writes.
    ///
    /// # Errors
    /// [`NnError::InvalidParameter`] for fewer than two inputs or one that does not exist.
    pub fn push_add(
        &mut self,
        inputs: &[usize],
        name: impl Into<String>,
        relu: bool,
    ) -> Result<usize, NnError> {
        let name = name.into();
        if inputs.len() < 2 {
            return Err(NnError::InvalidParameter {
                what: format!("inputs of the Add {name:?}"),
                allowed: "two or more",
                found: inputs.len().to_string(),
            });
        }
        self.check_inputs(&name, inputs)?;
        self.nodes.push(GraphNode {
            name,
            inputs: inputs.to_vec(),
            op: Op::Add(Add::new(relu)),
        });
        self.rewire();
        Ok(self.nodes.len())
    }

    /// Inserts `layer` right after node `node`, reading its output; every later reader of
    /// that output reads the new layer's instead.
    ///
    /// # Errors
    /// [`NnError::InvalidParameter`] when there is no node `node`.
    pub fn insert_after(
        &mut self,
        node: usize,
        name: impl Into<String>,
        layer: Box<dyn Layer>,
    ) -> Result<(), NnError> {
        if node >= self.nodes.len() {
            return Err(NnError::InvalidParameter {
                what: "graph node to insert after".into(),
                allowed: "an existing node",
                found: format!("{node} of {}", self.nodes.len()),
            });
        }
        // Tensor `node + 1` is the output; the new node writes `node + 2` and every later
        // tensor id moves up by one.
        let t = node + 1;
        for n in &mut self.nodes[node + 1..] {
            for i in &mut n.inputs {
                if *i >= t {
                    *i += 1;
                }
            }
        }
        self.nodes.insert(
            node + 1,
            GraphNode {
                name: name.into(),
                inputs: vec![t],
                op: Op::Layer(layer),
            },
        );
        self.rewire();
        Ok(())
    }

    /// The nodes in topological order.
    pub fn nodes(&self) -> &[GraphNode] {
        &self.nodes
    }

    /// Mutable access to the nodes (their layers; the wiring stays).
    pub fn nodes_mut(&mut self) -> &mut [GraphNode] {
        &mut self.nodes
    }

    /// The layer of the node called `name` (`None` for a join or an unknown name).
    pub fn get_mut(&mut self, name: &str) -> Option<&mut dyn Layer> {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .and_then(|n| match &mut n.op {
                Op::Layer(l) => Some(l.as_mut() as &mut dyn Layer),
                Op::Add(_) => None,
            })
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// `relu(main(x) + shortcut(x))`, the shortcut the identity when `None`: a residual
    /// block. The main branch's layers keep their names, the shortcut's are prefixed with
    /// `downsample.` (torchvision's names), and the join is the unnamed last node.
    ///
    /// # Errors
    /// [`NnError::InvalidParameter`] when `main` is empty.
    pub fn residual(main: Sequential, shortcut: Option<Sequential>) -> Result<Self, NnError> {
        Self::branches(main, shortcut, true)
    }

    /// `main(x) + shortcut(x)` without a ReLU after the sum, as MobileNet-V2's inverted
    /// residual (linear bottleneck) adds; otherwise as [`Graph::residual`]. The sum can be
    /// negative, so the fold into the integer model (unsigned activation codes) refuses it;
    /// the float network trains and evaluates.
    ///
    /// # Errors
    /// As [`Graph::residual`].
    pub fn linear_residual(
        main: Sequential,
        shortcut: Option<Sequential>,
    ) -> Result<Self, NnError> {
        Self::branches(main, shortcut, false)
    }

    fn branches(
        main: Sequential,
        shortcut: Option<Sequential>,
        relu: bool,
    ) -> Result<Self, NnError> {
        if main.is_empty() {
            return Err(NnError::InvalidParameter {
                what: "main branch of a residual block".into(),
                allowed: "at least one layer",
                found: "none".into(),
            });
        }
        let mut g = Graph::new();
        let mut a = 0;
        for (name, layer) in main.into_layers() {
            a = g.push_boxed(a, name, layer)?;
        }
        let mut b = 0;
        for (name, layer) in shortcut.map(Sequential::into_layers).unwrap_or_default() {
            b = g.push_boxed(b, join_name("downsample", &name), layer)?;
        }
        g.push_add(&[a, b], "", relu)?;
        Ok(g)
    }

    /// Rebuilds [`Graph::readers`] from the nodes' inputs.
    fn rewire(&mut self) {
        self.readers = vec![Vec::new(); self.nodes.len() + 1];
        for (i, n) in self.nodes.iter().enumerate() {
            for &t in &n.inputs {
                self.readers[t].push(i);
            }
        }
    }

    /// An error for an empty graph or a tensor other than the output that no node reads.
    fn check(&self) -> Result<(), NnError> {
        if self.nodes.is_empty() {
            return Err(NnError::InvalidParameter {
                what: "Graph".into(),
                allowed: "non-empty",
                found: "no nodes".into(),
            });
        }
        if let Some(t) = self.readers[..self.nodes.len()]
            .iter()
            .position(Vec::is_empty)
        {
            let what = if t == 0 {
                "the graph input".to_string()
            } else {
                format!("the output of node {:?}", self.nodes[t - 1].name)
            };
            return Err(NnError::InvalidParameter {
                what: format!("{what} in a graph"),
                allowed: "read by a later node (every node must reach the output)",
                found: "read by none".into(),
            });
        }
        Ok(())
    }

    /// The shape of every tensor for an input shape.
    fn shapes(&self, input: [usize; 4]) -> Result<Vec<[usize; 4]>, NnError> {
        let mut shapes = Vec::with_capacity(self.nodes.len() + 1);
        shapes.push(input);
        for n in &self.nodes {
            let s = match &n.op {
                Op::Layer(l) => l.output_shape(shapes[n.inputs[0]])?,
                Op::Add(a) => {
                    let ins: Vec<[usize; 4]> = n.inputs.iter().map(|&t| shapes[t]).collect();
                    a.output_shape(&n.name, &ins)?
                }
            };
            shapes.push(s);
        }
        Ok(shapes)
    }
}

/// `dst = Σ srcs`, added in order.
fn sum_into(dst: &mut Tensor, srcs: &[&Tensor]) {
    dst.reshape_uninit(srcs[0].shape());
    dst.data_mut()
        .par_chunks_mut(BLOCK)
        .enumerate()
        .for_each(|(k, o)| {
            let range = k * BLOCK..k * BLOCK + o.len();
            o.copy_from_slice(&srcs[0].data()[range.clone()]);
            for x in &srcs[1..] {
                for (o, v) in o.iter_mut().zip(&x.data()[range.clone()]) {
                    *o += v;
                }
            }
        });
}

impl Layer for Graph {
    fn describe(&self) -> String {
        let parts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| match &n.op {
                Op::Layer(l) => format!("{}: {}", n.name, l.describe()),
                Op::Add(a) => format!(
                    "{}: Add{}(tensors {:?})",
                    if n.name.is_empty() { "(join)" } else { &n.name },
                    if a.relu { "+ReLU" } else { "" },
                    n.inputs
                ),
            })
            .collect();
        format!("Graph[{}]", parts.join(", "))
    }

    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], NnError> {
        self.check()?;
        Ok(*self.shapes(input)?.last().expect("non-empty"))
    }

    fn forward(&mut self, x: &Tensor, mode: Mode) -> Result<&Tensor, NnError> {
        self.check()?;
        for i in 0..self.nodes.len() {
            let (before, rest) = self.nodes.split_at_mut(i);
            let node = &mut rest[0];
            let input = |t: usize| if t == 0 { x } else { before[t - 1].output() };
            match &mut node.op {
                Op::Layer(l) => {
                    l.forward(input(node.inputs[0]), mode)?;
                }
                Op::Add(a) => {
                    let xs: Vec<&Tensor> = node.inputs.iter().map(|&t| input(t)).collect();
                    a.forward(&node.name, &xs)?;
                }
            }
        }
        Ok(self.output())
    }

    fn output(&self) -> &Tensor {
        self.nodes.last().map_or(&self.empty, GraphNode::output)
    }

    fn backward(&mut self, x: &Tensor, dy: &Tensor, need_input_grad: bool) -> Result<(), NnError> {
        self.check()?;
        check_grad_shape("Graph", self.output().shape(), dy)?;
        let readers = &self.readers;
        let n = self.nodes.len();
        self.grads.resize_with(n + 1, Tensor::default);
        for i in (0..n).rev() {
            let t = i + 1;
            if readers[t].len() > 1 {
                let srcs: Vec<&Tensor> = readers[t]
                    .iter()
                    .map(|&r| self.nodes[r].input_grad())
                    .collect();
                sum_into(&mut self.grads[t], &srcs);
            }
            let (before, rest) = self.nodes.split_at_mut(i);
            let (node, after) = rest.split_first_mut().expect("i < n");
            let grad = match readers[t].as_slice() {
                [] => dy,
                [r] => after[r - t].input_grad(),
                _ => &self.grads[t],
            };
            let need = need_input_grad || node.inputs.iter().any(|&s| s > 0);
            match &mut node.op {
                Op::Layer(l) => {
                    let s = node.inputs[0];
                    let input = if s == 0 { x } else { before[s - 1].output() };
                    l.backward(input, grad, need)?;
                }
                Op::Add(a) => a.backward(grad),
            }
        }
        self.input_grad = if !need_input_grad {
            InputGrad::None
        } else if let [r] = readers[0].as_slice() {
            InputGrad::Node(*r)
        } else {
            let srcs: Vec<&Tensor> = readers[0]
                .iter()
                .map(|&r| self.nodes[r].input_grad())
                .collect();
            sum_into(&mut self.grads[0], &srcs);
            InputGrad::Sum
        };
        Ok(())
    }

    fn input_grad(&self) -> &Tensor {
        match self.input_grad {
            InputGrad::None => &self.empty,
            InputGrad::Node(r) => self.nodes[r].input_grad(),
            InputGrad::Sum => &self.grads[0],
        }
    }

    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        for n in &mut self.nodes {
            if let Op::Layer(l) = &mut n.op {
                l.visit_params(&join_name(prefix, &n.name), f);
            }
        }
    }

    fn visit_buffers(&mut self, prefix: &str, f: &mut dyn FnMut(&str, BufferMut<'_>)) {
        for n in &mut self.nodes {
            if let Op::Layer(l) = &mut n.op {
                l.visit_buffers(&join_name(prefix, &n.name), f);
            }
        }
    }

    fn macs(&self, input: [usize; 4]) -> u64 {
        let Ok(shapes) = self.shapes(input) else {
            return 0;
        };
        self.nodes
            .iter()
            .map(|n| match &n.op {
                Op::Layer(l) => l.macs(shapes[n.inputs[0]]),
                Op::Add(_) => 0,
            })
            .sum()
    }

    fn children(&self) -> Vec<(&str, &dyn Layer)> {
        self.nodes
            .iter()
            .filter_map(|n| match &n.op {
                Op::Layer(l) => Some((n.name.as_str(), l.as_ref())),
                Op::Add(_) => None,
            })
            .collect()
    }

    fn children_mut(&mut self) -> Vec<(&str, &mut dyn Layer)> {
        self.nodes
            .iter_mut()
            .filter_map(|n| match &mut n.op {
                Op::Layer(l) => Some((n.name.as_str(), l.as_mut() as &mut dyn Layer)),
                Op::Add(_) => None,
            })
            .collect()
    }
}
