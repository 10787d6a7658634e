//! From the walked operations to nuq's layers: a [`Sequential`] whose convolutions are
//! followed by batch-norm (a unit one where the exporter folded BN into the convolution's
//! bias), ReLUs and ReLU6s fused into the batch-norm before them, and residual blocks as
//! [`Graph`](crate::Graph)s from [`Graph::residual`](crate::Graph::residual).

use std::iter::Peekable;

use crate::layers::{
    BatchNorm2d, Conv2d, Flatten, GlobalAvgPool, Graph as LayerGraph, Linear, MaxPool2d, Relu,
    Relu6, Sequential,
};
use crate::param::join_name;
use crate::rng::Rng;

use super::error::OnnxError;
use super::graph::Graph;
use super::walk::Op;
use super::LayerOrigin;

/// Variance of the unit batch-norm: with ε = 1e-5 its scale `1/√(σ² + ε)` is 1 in `f32`.
const UNIT_EPS: f32 = 1e-5;

pub(crate) struct Lower<'g> {
    g: &'g Graph,
    pub origins: Vec<LayerOrigin>,
    rng: Rng,
}

impl<'g> Lower<'g> {
    pub fn new(g: &'g Graph) -> Self {
        Self {
            g,
            origins: Vec::new(),
            rng: Rng::new(0),
        }
    }

    fn origin(&mut self, layer: String, at: usize, note: Option<&'static str>) {
        let n = &self.g.nodes[at].at;
        self.origins.push(LayerOrigin {
            layer,
            node: n.name.clone(),
            op: n.op.clone(),
            note,
        });
    }

    /// The layers of `ops` under `prefix`, children named by position.
    pub fn seq(&mut self, prefix: &str, ops: Vec<Op>) -> Result<Sequential, OnnxError> {
        let mut s = Sequential::new();
        let mut ops = ops.into_iter().peekable();
        while let Some(op) = ops.next() {
            let name = s.len().to_string();
            let full = join_name(prefix, &name);
            match op {
                Op::Conv {
                    at,
                    cfg,
                    weight,
                    bias,
                } => {
                    let mut conv = Conv2d::new(cfg, &mut self.rng)?;
                    conv.weight.set_from_torch(&weight)?;
                    if let (Some(p), Some(b)) = (conv.bias.as_mut(), bias) {
                        p.value = b;
                    }
                    s.push(name, conv);
                    self.origin(full, at, None);
                    let bn_name = s.len().to_string();
                    let bn_full = join_name(prefix, &bn_name);
                    let (bn, at, note) = match ops.next_if(|o| matches!(o, Op::Bn { .. })) {
                        Some(bn) => {
                            let Op::Bn { at, .. } = bn else {
                                unreachable!("matched Bn")
                            };
                            (bn_layer(bn, &mut ops), at, None)
                        }
                        None => {
                            let c = cfg.c_out;
                            let mut bn = fused_bn(c, &mut ops);
                            bn.running_var = vec![1.0 - UNIT_EPS; c];
                            bn.eps = UNIT_EPS;
                            (
                                bn,
                                at,
                                Some("unit batch-norm added after a convolution without one (BN folded by the exporter): the identity in evaluation, nuq's conv–BN form for quantization"),
                            )
                        }
                    };
                    s.push(bn_name, bn);
                    self.origin(bn_full, at, note);
                }
                Op::Bn { at, .. } => {
                    s.push(name, bn_layer(op, &mut ops));
                    self.origin(full, at, None);
                }
                Op::Relu { at } => {
                    s.push(name, Relu::new());
                    self.origin(full, at, None);
                }
                Op::Relu6 { at } => {
                    s.push(name, Relu6::new());
                    self.origin(full, at, None);
                }
                Op::MaxPool {
                    at,
                    kernel,
                    stride,
                    padding,
                } => {
                    s.push(name, MaxPool2d::with_padding(kernel, stride, padding)?);
                    self.origin(full, at, None);
                }
                Op::GlobalAvg { at } => {
                    s.push(name, GlobalAvgPool::new());
                    self.origin(full, at, None);
                }
                Op::Flatten { at } => {
                    s.push(name, Flatten::new());
                    self.origin(full, at, None);
                }
                Op::Linear {
                    at,
                    inputs,
                    outputs,
                    weight,
                    bias,
                } => {
                    let mut lin = Linear::new(inputs, outputs, bias.is_some(), &mut self.rng)?;
                    lin.weight.set_from_torch(&weight)?;
                    if let (Some(p), Some(b)) = (lin.bias.as_mut(), bias) {
                        p.value = b;
                    }
                    s.push(name, lin);
                    self.origin(full, at, None);
                }
                Op::Residual {
                    at,
                    main,
                    shortcut,
                    relu,
                } => {
                    self.origin(full.clone(), at, None);
                    let main = self.seq(&full, main)?;
                    let shortcut = if shortcut.is_empty() {
                        None
                    } else {
                        Some(self.seq(&join_name(&full, "downsample"), shortcut)?)
                    };
                    let block = if relu {
                        LayerGraph::residual(main, shortcut)?
                    } else {
                        LayerGraph::linear_residual(main, shortcut)?
                    };
                    s.push(name, block);
                }
            }
        }
        Ok(s)
    }
}

/// A batch-norm of `channels` channels (γ = 1, β = 0) fused with the next operation when it
/// is a ReLU or ReLU6 (then consumed).
fn fused_bn(channels: usize, ops: &mut Peekable<impl Iterator<Item = Op>>) -> BatchNorm2d {
    match ops.next_if(|o| matches!(o, Op::Relu { .. } | Op::Relu6 { .. })) {
        Some(Op::Relu6 { .. }) => BatchNorm2d::with_relu6(channels),
        Some(_) => BatchNorm2d::new(channels, true),
        None => BatchNorm2d::new(channels, false),
    }
}

fn bn_layer(op: Op, ops: &mut Peekable<impl Iterator<Item = Op>>) -> BatchNorm2d {
    let Op::Bn {
        gamma,
        beta,
        mean,
        var,
        eps,
        ..
    } = op
    else {
        unreachable!("called with a Bn")
    };
    let mut bn = fused_bn(gamma.len(), ops);
    bn.weight.value = gamma;
    bn.bias.value = beta;
    bn.running_mean = mean;
    bn.running_var = var;
    bn.eps = eps;
    bn
}
