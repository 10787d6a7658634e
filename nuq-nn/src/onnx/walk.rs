//! The walk from the graph input to its output: every node becomes one of nuq's layer
//! operations ([`Op`]), a value that feeds two nodes opens a residual block whose two
//! branches must meet in one `Add` followed by `Relu`, and shapes are tracked so that each
//! operator's attributes can be checked against what nuq's layers express.

use std::collections::HashMap;

use crate::layers::{Conv2dConfig, RELU6_MAX};

use super::error::{NodeRef, OnnxError};
use super::graph::{Constant, Graph, Node};

/// Deepest nesting of residual blocks (and of a `Reshape` target's computation) the walk
/// follows; a deeper graph is refused instead of exhausting the stack.
const MAX_DEPTH: usize = 32;
/// Largest kernel, stride or padding read from an attribute.
const MAX_WINDOW: usize = 1 << 12;

/// The shape of an activation without its batch axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Act {
    /// A feature map, NCHW order in ONNX.
    Map { c: usize, h: usize, w: usize },
    /// A feature vector.
    Flat(usize),
}

impl Act {
    fn numel(self) -> usize {
        match self {
            Act::Map { c, h, w } => c * h * w,
            Act::Flat(f) => f,
        }
    }
}

impl std::fmt::Display for Act {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Act::Map { c, h, w } => write!(f, "[N, {c}, {h}, {w}]"),
            Act::Flat(n) => write!(f, "[N, {n}]"),
        }
    }
}

/// One of nuq's layer operations, with the index of the node it came from.
pub(crate) enum Op {
    Conv {
        at: usize,
        cfg: Conv2dConfig,
        /// PyTorch/ONNX order `[c_out][c_in][kh][kw]`.
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
    },
    Bn {
        at: usize,
        gamma: Vec<f32>,
        beta: Vec<f32>,
        mean: Vec<f32>,
        var: Vec<f32>,
        eps: f32,
    },
    Relu {
        at: usize,
    },
    /// `Clip(0, 6)`, PyTorch's `ReLU6`.
    Relu6 {
        at: usize,
    },
    MaxPool {
        at: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    GlobalAvg {
        at: usize,
    },
    Flatten {
        at: usize,
    },
    Linear {
        at: usize,
        inputs: usize,
        outputs: usize,
        /// `[out][in]`.
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
    },
    /// `main(x) + shortcut(x)`, then ReLU when `relu`; `at` is the `Add`.
    Residual {
        at: usize,
        main: Vec<Op>,
        shortcut: Vec<Op>,
        relu: bool,
    },
}

/// A value of a `Reshape` target's computation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SDim {
    Known(i64),
    Batch,
}

pub(crate) struct Walker<'g> {
    g: &'g Graph,
    pub used: Vec<bool>,
    acts: HashMap<String, Act>,
    /// The graph input's batch size when fixed (a traced `view(n, -1)` writes it).
    fixed_batch: Option<i64>,
    depth: usize,
}

fn unsupported(n: &Node, reason: impl Into<String>) -> OnnxError {
    OnnxError::UnsupportedOp {
        node: n.at.clone(),
        reason: reason.into(),
    }
}

fn structure(n: &Node, problem: impl Into<String>) -> OnnxError {
    OnnxError::Structure {
        node: n.at.clone(),
        problem: problem.into(),
    }
}

fn bad_value(n: &Node, what: &str, expected: &str, found: impl Into<String>) -> OnnxError {
    OnnxError::BadValue {
        node: n.at.clone(),
        what: what.to_string(),
        problem: format!("expected {expected}, found {}", found.into()),
    }
}

const SUPPORTED: &str = "nuq imports Conv (with groups), BatchNormalization, Relu, Clip(0, 6) (ReLU6), MaxPool, AveragePool over the whole map, GlobalAveragePool, Flatten, Reshape to [N, -1], Gemm, MatMul (+ Add of a bias), Add of a residual block, Identity and Dropout";

impl<'g> Walker<'g> {
    pub fn new(g: &'g Graph, input: Act, fixed_batch: Option<i64>) -> Self {
        let mut acts = HashMap::new();
        acts.insert(g.input.clone(), input);
        Self {
            g,
            used: vec![false; g.nodes.len()],
            acts,
            fixed_batch,
            depth: 0,
        }
    }

    pub fn act(&self, v: &str) -> Act {
        self.acts[v]
    }

    /// The constant input `k` of node `n` (a weight), or an error naming it.
    fn constant(&self, n: &Node, k: usize) -> Result<Option<&'g Constant>, OnnxError> {
        let Some(name) = n.inputs.get(k).filter(|x| !x.is_empty()) else {
            return Ok(None);
        };
        match self.g.constants.get(name) {
            Some(c) => Ok(Some(c)),
            None => Err(OnnxError::Input {
                node: n.at.clone(),
                input: name.clone(),
                problem: "must be a constant (an initializer): nuq's layers hold their weights",
            }),
        }
    }

    fn floats(&self, n: &Node, k: usize, what: &str) -> Result<&'g Constant, OnnxError> {
        let c = self.constant(n, k)?.ok_or_else(|| OnnxError::Input {
            node: n.at.clone(),
            input: what.to_string(),
            problem: "is missing",
        })?;
        if c.floats().is_none() {
            return Err(bad_value(
                n,
                what,
                "a floating-point tensor",
                "an integer tensor",
            ));
        }
        Ok(c)
    }

    /// A per-channel vector input of `len` values.
    fn vector(&self, n: &Node, k: usize, what: &str, len: usize) -> Result<Vec<f32>, OnnxError> {
        let c = self.floats(n, k, what)?;
        let v = c.floats().expect("checked float");
        if v.len() != len || c.dims.len() > 2 || c.dims.iter().filter(|&&d| d != 1).count() > 1 {
            return Err(bad_value(
                n,
                what,
                &format!("{len} values"),
                format!("dimensions {:?}", c.dims),
            ));
        }
        Ok(v.to_vec())
    }

    /// Walks from `start` along single-reader chains. Outside a branch the walk ends at the
    /// graph output; inside one it ends at the `Add` that joins the branches (returned).
    pub fn chain(
        &mut self,
        start: &str,
        in_branch: bool,
    ) -> Result<(Vec<Op>, String, Option<usize>), OnnxError> {
        let g = self.g;
        let mut v = start.to_string();
        let mut ops = Vec::new();
        loop {
            if !in_branch && v == g.output {
                return Ok((ops, v, None));
            }
            let readers = g.data_readers(&v);
            match readers.as_slice() {
                [] => {
                    let Some(&p) = g.producer_of.get(&v) else {
                        return Err(OnnxError::Interface {
                            what: "input",
                            problem: format!("{v:?} is read by no node"),
                        });
                    };
                    let problem = if v == g.output {
                        "the graph output is reached inside a residual branch, before the branches meet".to_string()
                    } else {
                        format!("its output {v:?} is read by no node and is not the graph output")
                    };
                    return Err(structure(&g.nodes[p], problem));
                }
                [r] => {
                    let n = &g.nodes[*r];
                    if self.is_join(n) {
                        if in_branch {
                            return Ok((ops, v, Some(*r)));
                        }
                        return Err(structure(
                            n,
                            "an Add of two computed values must join the two branches of a residual block (from a value that feeds both)",
                        ));
                    }
                    let (op, out) = self.node(*r, &v)?;
                    ops.extend(op);
                    v = out;
                }
                [a, b] => {
                    let (op, out) = self.residual(&v, *a, *b)?;
                    ops.push(op);
                    v = out;
                }
                more => {
                    return Err(structure(
                        &g.nodes[more[2]],
                        format!(
                            "value {v:?} feeds {} nodes; nuq expresses chains and residual blocks of two branches",
                            more.len()
                        ),
                    ))
                }
            }
        }
    }

    /// Whether `n` adds two computed values (a residual join, not a bias).
    fn is_join(&self, n: &Node) -> bool {
        n.standard
            && n.op() == "Add"
            && n.inputs.len() == 2
            && n.inputs.iter().all(|x| !self.g.constants.contains_key(x))
    }

    fn branch(&mut self, v: &str, first: usize) -> Result<(Vec<Op>, String, usize), OnnxError> {
        let n = &self.g.nodes[first];
        if self.is_join(n) {
            return Ok((Vec::new(), v.to_string(), first));
        }
        let (op, out) = self.node(first, v)?;
        let (rest, end, join) = self.chain(&out, true)?;
        let mut ops: Vec<Op> = op.into_iter().collect();
        ops.extend(rest);
        Ok((ops, end, join.expect("a branch walk ends at its join")))
    }

    fn residual(&mut self, v: &str, a: usize, b: usize) -> Result<(Op, String), OnnxError> {
        let g = self.g;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(structure(
                &g.nodes[a],
                format!("residual blocks nest deeper than {MAX_DEPTH}"),
            ));
        }
        let (ops_a, end_a, join_a) = self.branch(v, a)?;
        let (ops_b, end_b, join_b) = self.branch(v, b)?;
        let add = &g.nodes[join_a];
        if join_a != join_b {
            return Err(structure(
                add,
                format!(
                    "the two branches leaving {v:?} end in different Add nodes ({} and {})",
                    add.at, g.nodes[join_b].at
                ),
            ));
        }
        let mut ends = [end_a.as_str(), end_b.as_str()];
        let mut ins = [add.inputs[0].as_str(), add.inputs[1].as_str()];
        ends.sort_unstable();
        ins.sort_unstable();
        if ends != ins || (ops_a.is_empty() && ops_b.is_empty()) {
            return Err(structure(
                add,
                format!("adds {ins:?}, not the ends of two branches leaving {v:?}"),
            ));
        }
        let (sa, sb) = (self.act(&end_a), self.act(&end_b));
        if sa != sb {
            return Err(structure(
                add,
                format!("adds values of shapes {sa} and {sb}; nuq adds equal shapes only"),
            ));
        }
        self.used[join_a] = true;
        let sum = add.outputs.first().cloned().unwrap_or_default();
        // A ReLU that alone reads the sum joins the block; without one the block is linear
        // (MobileNet-V2's inverted residual).
        let relu = match g.data_readers(&sum).as_slice() {
            [r] if g.nodes[*r].standard && g.nodes[*r].op() == "Relu" => Some(*r),
            _ => None,
        };
        let out = match relu {
            Some(r) => {
                self.used[r] = true;
                g.nodes[r]
                    .outputs
                    .first()
                    .filter(|o| !o.is_empty())
                    .cloned()
                    .ok_or_else(|| structure(&g.nodes[r], "has no output"))?
            }
            None if sum.is_empty() => return Err(structure(add, "has no output")),
            None => sum,
        };
        self.acts.insert(out.clone(), sa);
        // The main branch is the longer one (torchvision: conv–BN–ReLU–conv–BN against the
        // identity or a 1×1 conv–BN projection).
        let (main, shortcut) = if ops_a.len() >= ops_b.len() {
            (ops_a, ops_b)
        } else {
            (ops_b, ops_a)
        };
        self.depth -= 1;
        Ok((
            Op::Residual {
                at: join_a,
                main,
                shortcut,
                relu: relu.is_some(),
            },
            out,
        ))
    }

    /// Translates node `i`, whose data input is `v`; returns its operation (none for the
    /// pass-through ones) and the value it leaves.
    fn node(&mut self, i: usize, v: &str) -> Result<(Option<Op>, String), OnnxError> {
        let g = self.g;
        let n = &g.nodes[i];
        self.used[i] = true;
        if !n.standard {
            return Err(unsupported(
                n,
                "operator outside the standard ONNX domain; nuq has no layer for it",
            ));
        }
        if n.inputs.first().map(String::as_str) != Some(v) {
            return Err(unsupported(
                n,
                format!("reads the activation {v:?} in another position than its first input; {SUPPORTED}"),
            ));
        }
        let x = self.act(v);
        let out = n
            .outputs
            .first()
            .filter(|o| !o.is_empty())
            .cloned()
            .ok_or_else(|| structure(n, "has no output"))?;
        for extra in n.outputs.iter().skip(1).filter(|o| !o.is_empty()) {
            if g.readers.contains_key(extra) || *extra == g.output {
                return Err(unsupported(
                    n,
                    format!("its second output {extra:?} is used; nuq's layer has one output"),
                ));
            }
        }
        let (op, act, out) = match n.op() {
            "Conv" => {
                let (op, act) = self.conv(n, x)?;
                (Some(op), act, out)
            }
            "BatchNormalization" => {
                let Act::Map { c, .. } = x else {
                    return Err(unsupported(n, format!("batch-norm of a flat {x} value; nuq has BatchNorm2d only")));
                };
                if n.int("training_mode", 0)? != 0 {
                    return Err(unsupported(n, "training-mode BatchNormalization (export the model in eval mode)"));
                }
                let eps = n.float("epsilon", 1e-5)?;
                if !(eps.is_finite() && eps >= 0.0) {
                    return Err(bad_value(n, "attribute epsilon", "a finite value ≥ 0", eps.to_string()));
                }
                let op = Op::Bn {
                    at: i,
                    gamma: self.vector(n, 1, "scale", c)?,
                    beta: self.vector(n, 2, "B", c)?,
                    mean: self.vector(n, 3, "input_mean", c)?,
                    var: self.vector(n, 4, "input_var", c)?,
                    eps,
                };
                if let Op::Bn { var, .. } = &op {
                    if let Some(k) = var.iter().position(|&s| s + eps <= 0.0) {
                        return Err(bad_value(n, "input_var", "variance + epsilon > 0 in every channel", format!("channel {k}: {}", var[k])));
                    }
                }
                (Some(op), x, out)
            }
            "Relu" => (Some(Op::Relu { at: i }), x, out),
            "MaxPool" => {
                let (op, act) = self.max_pool(i, n, x)?;
                (Some(op), act, out)
            }
            "AveragePool" => {
                let Act::Map { c, h, w } = x else {
                    return Err(unsupported(n, format!("AveragePool of a flat {x} value")));
                };
                let k = n.sizes("kernel_shape", 2, usize::MAX, 0)?;
                let pads = n.sizes("pads", 4, MAX_WINDOW, 0)?;
                let auto_pad = n.string("auto_pad")?.unwrap_or_default();
                if k != [h, w] || pads.iter().any(|&p| p != 0) || !matches!(auto_pad.as_str(), "" | "NOTSET" | "VALID") {
                    return Err(unsupported(
                        n,
                        format!("AveragePool with window {k:?} and pads {pads:?} over a {h}×{w} map; nuq has only the global average pool (a window covering the whole map, no padding)"),
                    ));
                }
                (Some(Op::GlobalAvg { at: i }), Act::Map { c, h: 1, w: 1 }, out)
            }
            "GlobalAveragePool" => {
                let Act::Map { c, .. } = x else {
                    return Err(unsupported(n, format!("GlobalAveragePool of a flat {x} value")));
                };
                (Some(Op::GlobalAvg { at: i }), Act::Map { c, h: 1, w: 1 }, out)
            }
            "Flatten" => {
                let axis = n.int("axis", 1)?;
                let ok = match x {
                    Act::Map { .. } => axis == 1 || axis == -3,
                    Act::Flat(_) => axis == 1 || axis == -1,
                };
                if !ok {
                    return Err(unsupported(n, format!("Flatten with axis {axis} of a {x} value; nuq flattens to [N, -1] (axis 1)")));
                }
                self.flatten(i, x, out)
            }
            "Reshape" => {
                self.reshape(i, n, x)?;
                self.flatten(i, x, out)
            }
            "Gemm" => {
                let (op, act) = self.gemm(i, n, x)?;
                (Some(op), act, out)
            }
            "MatMul" => return self.matmul(i, n, x, out),
            "Identity" => (None, x, out),
            "Dropout" => {
                if let Some(t) = self.constant(n, 2)? {
                    if t.ints().is_none_or(|v| v.iter().any(|&b| b != 0)) {
                        return Err(unsupported(n, "Dropout in training mode"));
                    }
                }
                (None, x, out)
            }
            "Clip" => {
                let (min, max) = self.clip_bounds(n)?;
                if min != Some(0.0) || max != Some(RELU6_MAX) {
                    let shown = |b: Option<f32>| b.map_or("none".to_string(), |v| v.to_string());
                    return Err(unsupported(
                        n,
                        format!(
                            "Clip(min {}, max {}): nuq has ReLU6 (Clip(0, 6), PyTorch's nn.ReLU6) and ReLU, no other clipped activation",
                            shown(min),
                            shown(max)
                        ),
                    ));
                }
                (Some(Op::Relu6 { at: i }), x, out)
            }
            "Add" => {
                return Err(unsupported(
                    n,
                    "Add of a constant that is not a MatMul's bias; nuq adds constants only as a layer's bias",
                ))
            }
            _ => return Err(unsupported(n, format!("no nuq layer for this operator; {SUPPORTED}"))),
        };
        self.acts.insert(out.clone(), act);
        Ok((op, out))
    }

    /// The bounds of a `Clip`: the `min`/`max` attributes before opset 11, the optional
    /// constant inputs 1 and 2 from opset 11 on (`None` where absent: unbounded).
    fn clip_bounds(&self, n: &Node) -> Result<(Option<f32>, Option<f32>), OnnxError> {
        if self.g.opset < 11 {
            let (min, max) = (n.float("min", f32::MIN)?, n.float("max", f32::MAX)?);
            return Ok((
                (min != f32::MIN).then_some(min),
                (max != f32::MAX).then_some(max),
            ));
        }
        let bound = |k: usize, what: &str| -> Result<Option<f32>, OnnxError> {
            let Some(c) = self.constant(n, k)? else {
                return Ok(None);
            };
            match c.floats() {
                Some([v]) => Ok(Some(*v)),
                _ => Err(bad_value(
                    n,
                    what,
                    "one floating-point value",
                    format!("dimensions {:?}", c.dims),
                )),
            }
        };
        Ok((bound(1, "min")?, bound(2, "max")?))
    }

    fn flatten(&mut self, i: usize, x: Act, out: String) -> (Option<Op>, Act, String) {
        let flat = Act::Flat(x.numel());
        match x {
            Act::Map { .. } => (Some(Op::Flatten { at: i }), flat, out),
            Act::Flat(_) => (None, flat, out),
        }
    }

    fn conv(&self, n: &Node, x: Act) -> Result<(Op, Act), OnnxError> {
        let Act::Map { c, h, w } = x else {
            return Err(unsupported(n, format!("Conv of a flat {x} value")));
        };
        let wt = self.floats(n, 1, "W")?;
        let [co, ci, kh, kw] = wt.dims[..] else {
            return Err(bad_value(
                n,
                "W",
                "a 4-D [c_out, c_in, kh, kw] weight (2-D convolution)",
                format!("dimensions {:?}", wt.dims),
            ));
        };
        let group = n.int("group", 1)?;
        let groups = usize::try_from(group)
            .ok()
            .filter(|&g| g > 0 && c.is_multiple_of(g) && co.is_multiple_of(g))
            .ok_or_else(|| {
                bad_value(
                    n,
                    "attribute group",
                    &format!("a positive divisor of the {c} input and {co} output channels"),
                    group.to_string(),
                )
            })?;
        if ci != c / groups || co == 0 || kh == 0 || kw == 0 {
            return Err(bad_value(
                n,
                "W",
                &format!(
                    "[c_out, {}, kh, kw] for a {x} input in {groups} group(s)",
                    c / groups
                ),
                format!("dimensions {:?}", wt.dims),
            ));
        }
        if let Some(k) = n.ints("kernel_shape")? {
            if k != [kh as i64, kw as i64] {
                return Err(bad_value(
                    n,
                    "attribute kernel_shape",
                    &format!("[{kh}, {kw}] (the weight's)"),
                    format!("{k:?}"),
                ));
            }
        }
        let [dh, dw] = n.sizes("dilations", 2, MAX_WINDOW, 1)?[..] else {
            unreachable!("two sizes")
        };
        if dh == 0 || dw == 0 {
            return Err(bad_value(
                n,
                "attribute dilations",
                "positive",
                format!("[{dh}, {dw}]"),
            ));
        }
        // The input pixels one (dilated) kernel window spans.
        let (eh, ew) = (dh * (kh - 1) + 1, dw * (kw - 1) + 1);
        let auto_pad = n.string("auto_pad")?.unwrap_or_default();
        if !matches!(auto_pad.as_str(), "" | "NOTSET" | "VALID") {
            return Err(unsupported(
                n,
                format!(
                    "auto_pad {auto_pad}: nuq reads explicit pads (PyTorch's export writes them)"
                ),
            ));
        }
        let pads = if auto_pad == "VALID" {
            vec![0; 4]
        } else {
            n.sizes("pads", 4, MAX_WINDOW, 0)?
        };
        if pads[0] != pads[2] || pads[1] != pads[3] {
            return Err(unsupported(
                n,
                format!("asymmetric padding {pads:?}: nuq's Conv2d pads both sides equally"),
            ));
        }
        let [sh, sw] = n.sizes("strides", 2, MAX_WINDOW, 1)?[..] else {
            unreachable!("two sizes")
        };
        if sh == 0 || sw == 0 {
            return Err(bad_value(
                n,
                "attribute strides",
                "positive",
                format!("[{sh}, {sw}]"),
            ));
        }
        let (ph, pw) = (pads[0], pads[1]);
        if h + 2 * ph < eh || w + 2 * pw < ew {
            return Err(bad_value(
                n,
                "W",
                &format!(
                    "a window fitting the padded {}×{} input",
                    h + 2 * ph,
                    w + 2 * pw
                ),
                if (dh, dw) == (1, 1) {
                    format!("{kh}×{kw}")
                } else {
                    format!("{kh}×{kw} dilated {dh}×{dw}, spanning {eh}×{ew}")
                },
            ));
        }
        let bias = match self.constant(n, 2)? {
            Some(_) => Some(self.vector(n, 2, "B", co)?),
            None => None,
        };
        let cfg = Conv2dConfig {
            c_in: c,
            c_out: co,
            kernel: (kh, kw),
            stride: (sh, sw),
            padding: (ph, pw),
            dilation: (dh, dw),
            bias: bias.is_some(),
            groups,
        };
        let act = Act::Map {
            c: co,
            h: (h + 2 * ph - eh) / sh + 1,
            w: (w + 2 * pw - ew) / sw + 1,
        };
        let weight = wt.floats().expect("checked float").to_vec();
        Ok((
            Op::Conv {
                at: n.at.index,
                cfg,
                weight,
                bias,
            },
            act,
        ))
    }

    fn max_pool(&self, i: usize, n: &Node, x: Act) -> Result<(Op, Act), OnnxError> {
        let Act::Map { c, h, w } = x else {
            return Err(unsupported(n, format!("MaxPool of a flat {x} value")));
        };
        let k = n.sizes("kernel_shape", 2, MAX_WINDOW, 0)?;
        let s = n.sizes("strides", 2, MAX_WINDOW, 1)?;
        let auto_pad = n.string("auto_pad")?.unwrap_or_default();
        if !matches!(auto_pad.as_str(), "" | "NOTSET" | "VALID") {
            return Err(unsupported(
                n,
                format!("auto_pad {auto_pad}: nuq reads explicit pads"),
            ));
        }
        let pads = if auto_pad == "VALID" {
            vec![0; 4]
        } else {
            n.sizes("pads", 4, MAX_WINDOW, 0)?
        };
        if k[0] != k[1] || s[0] != s[1] || pads.iter().any(|&p| p != pads[0]) {
            return Err(unsupported(n, format!("MaxPool with window {k:?}, strides {s:?}, pads {pads:?}: nuq's MaxPool2d is square with equal padding")));
        }
        if n.sizes("dilations", 2, MAX_WINDOW, 1)? != [1, 1] {
            return Err(unsupported(n, "dilated MaxPool"));
        }
        let (k, s, p) = (k[0], s[0], pads[0]);
        if k == 0 || s == 0 || 2 * p > k {
            return Err(bad_value(
                n,
                "attributes kernel_shape, strides, pads",
                "a positive window and stride, padding at most half the window",
                format!("{k}, {s}, {p}"),
            ));
        }
        if h + 2 * p < k || w + 2 * p < k {
            return Err(bad_value(
                n,
                "attribute kernel_shape",
                &format!(
                    "a window fitting the padded {}×{} input",
                    h + 2 * p,
                    w + 2 * p
                ),
                k.to_string(),
            ));
        }
        let ceil = n.int("ceil_mode", 0)?;
        if ceil != 0 && ((h + 2 * p - k) % s != 0 || (w + 2 * p - k) % s != 0) {
            return Err(unsupported(n, "MaxPool with ceil_mode 1 where it rounds differently from floor: nuq's MaxPool2d floors"));
        }
        let act = Act::Map {
            c,
            h: (h + 2 * p - k) / s + 1,
            w: (w + 2 * p - k) / s + 1,
        };
        Ok((
            Op::MaxPool {
                at: i,
                kernel: k,
                stride: s,
                padding: p,
            },
            act,
        ))
    }

    /// Checks that a `Reshape` flattens to `[N, -1]`.
    fn reshape(&mut self, i: usize, n: &Node, x: Act) -> Result<(), OnnxError> {
        let target_name = n.inputs.get(1).cloned().unwrap_or_default();
        let target = self.eval_shape(n, &target_name, 0)?;
        let allowzero = n.int("allowzero", 0)?;
        let is_batch = |d: SDim| {
            d == SDim::Batch
                || d == SDim::Known(-1)
                || (d == SDim::Known(0) && allowzero == 0)
                || self.fixed_batch.is_some_and(|b| d == SDim::Known(b))
        };
        let ok = match target[..] {
            [d0, SDim::Known(-1)] => is_batch(d0) && d0 != SDim::Known(-1),
            [d0, SDim::Known(f)] => is_batch(d0) && f == x.numel() as i64,
            _ => false,
        };
        if !ok {
            let shown: Vec<String> = target
                .iter()
                .map(|d| match d {
                    SDim::Batch => "N".into(),
                    SDim::Known(v) => v.to_string(),
                })
                .collect();
            return Err(unsupported(
                g_node(self.g, i),
                format!(
                    "Reshape of a {x} value to [{}]: nuq reshapes only to [N, -1] (a flatten)",
                    shown.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// Evaluates the integer vector `name` (a `Reshape` target): constants, and `Shape`,
    /// `Gather`, `Unsqueeze`, `Squeeze`, `Concat`, `Cast` and `Identity` over them, with the
    /// batch size symbolic.
    fn eval_shape(&mut self, at: &Node, name: &str, depth: usize) -> Result<Vec<SDim>, OnnxError> {
        let g = self.g;
        if depth > MAX_DEPTH {
            return Err(structure(
                at,
                "the Reshape target's computation is too deep",
            ));
        }
        if let Some(c) = g.constants.get(name) {
            return c
                .ints()
                .map(|v| v.iter().map(|&d| SDim::Known(d)).collect())
                .ok_or_else(|| bad_value(at, "shape", "an integer tensor", "a float tensor"));
        }
        let Some(&p) = g.producer_of.get(name) else {
            return Err(OnnxError::Input {
                node: at.at.clone(),
                input: name.to_string(),
                problem: "must be a shape computed from constants and Shape",
            });
        };
        let n = &g.nodes[p];
        self.used[p] = true;
        let arg = |k: usize| n.inputs.get(k).cloned().unwrap_or_default();
        Ok(match n.op() {
            "Shape" => {
                let dims = match self.acts.get(&arg(0)) {
                    Some(Act::Map { c, h, w }) => vec![SDim::Batch, SDim::Known(*c as i64), SDim::Known(*h as i64), SDim::Known(*w as i64)],
                    Some(Act::Flat(f)) => vec![SDim::Batch, SDim::Known(*f as i64)],
                    None => return Err(unsupported(n, "Shape of a value that is not on the walked path")),
                };
                let r = dims.len() as i64;
                let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
                let (s, e) = (clamp(n.int("start", 0)?), clamp(n.int("end", r)?));
                dims[s..e.max(s)].to_vec()
            }
            "Gather" => {
                let data = self.eval_shape(n, &arg(0), depth + 1)?;
                let idx = self.eval_shape(n, &arg(1), depth + 1)?;
                if n.int("axis", 0)? != 0 {
                    return Err(unsupported(n, "Gather on an axis other than 0 in a Reshape target"));
                }
                let r = data.len() as i64;
                idx.iter()
                    .map(|d| match d {
                        SDim::Known(k) if (-r..r).contains(k) => Ok(data[(if *k < 0 { k + r } else { *k }) as usize]),
                        _ => Err(bad_value(n, "indices", &format!("in -{r}..{r}"), format!("{d:?}"))),
                    })
                    .collect::<Result<_, _>>()?
            }
            "Unsqueeze" | "Squeeze" | "Cast" | "Identity" => self.eval_shape(n, &arg(0), depth + 1)?,
            "Concat" => {
                let mut v = Vec::new();
                for x in n.inputs.clone() {
                    v.extend(self.eval_shape(n, &x, depth + 1)?);
                }
                v
            }
            _ => return Err(unsupported(n, "operator in the computation of a Reshape target; nuq folds Shape, Gather, Unsqueeze, Squeeze, Concat, Cast and Identity of constants")),
        })
    }

    fn gemm(&self, i: usize, n: &Node, x: Act) -> Result<(Op, Act), OnnxError> {
        let f = flat_inputs(n, x)?;
        if n.int("transA", 0)? != 0 {
            return Err(unsupported(
                n,
                "Gemm with transA: the activation must be the left factor as is",
            ));
        }
        let trans_b = n.int("transB", 0)? != 0;
        let (alpha, beta) = (n.float("alpha", 1.0)?, n.float("beta", 1.0)?);
        let b = self.floats(n, 1, "B")?;
        let [r, c] = b.dims[..] else {
            return Err(bad_value(
                n,
                "B",
                "a 2-D weight",
                format!("dimensions {:?}", b.dims),
            ));
        };
        let (ins, outs) = if trans_b { (c, r) } else { (r, c) };
        if ins != f || outs == 0 {
            return Err(bad_value(
                n,
                "B",
                &format!("{f} inputs for a {x} value"),
                format!("dimensions {:?} (transB {})", b.dims, u8::from(trans_b)),
            ));
        }
        let v = b.floats().expect("checked float");
        let weight = (0..outs * ins)
            .map(|k| {
                let (o, j) = (k / ins, k % ins);
                alpha
                    * if trans_b {
                        v[o * ins + j]
                    } else {
                        v[j * outs + o]
                    }
            })
            .collect();
        let bias = match self.constant(n, 2)? {
            None => None,
            Some(cst) => {
                let cv = cst
                    .floats()
                    .ok_or_else(|| bad_value(n, "C", "a float tensor", "an integer tensor"))?;
                let full = if cv.len() == 1 {
                    vec![cv[0]; outs]
                } else {
                    self.vector(n, 2, "C", outs)?
                };
                Some(full.iter().map(|&b| beta * b).collect())
            }
        };
        Ok((
            Op::Linear {
                at: i,
                inputs: ins,
                outputs: outs,
                weight,
                bias,
            },
            Act::Flat(outs),
        ))
    }

    fn matmul(
        &mut self,
        i: usize,
        n: &Node,
        x: Act,
        out: String,
    ) -> Result<(Option<Op>, String), OnnxError> {
        let g = self.g;
        let f = flat_inputs(n, x)?;
        let b = self.floats(n, 1, "B")?;
        let [ins, outs] = b.dims[..] else {
            return Err(bad_value(
                n,
                "B",
                "a 2-D weight",
                format!("dimensions {:?}", b.dims),
            ));
        };
        if ins != f || outs == 0 {
            return Err(bad_value(
                n,
                "B",
                &format!("[{f}, outputs] for a {x} value"),
                format!("dimensions {:?}", b.dims),
            ));
        }
        let v = b.floats().expect("checked float");
        let weight = (0..outs * ins)
            .map(|k| v[(k % ins) * outs + k / ins])
            .collect();
        // A following Add of a constant vector is the bias.
        let (mut bias, mut end) = (None, out.clone());
        if let [r] = g.data_readers(&out).as_slice() {
            let a = &g.nodes[*r];
            if a.standard && a.op() == "Add" && a.inputs.len() == 2 && out != g.output {
                let other = if a.inputs[0] == out {
                    &a.inputs[1]
                } else {
                    &a.inputs[0]
                };
                if g.constants.contains_key(other) {
                    let k = if a.inputs[0] == out { 1 } else { 0 };
                    bias = Some(self.vector(a, k, "B (bias)", outs)?);
                    self.used[*r] = true;
                    end = a.outputs.first().cloned().unwrap_or_default();
                }
            }
        }
        self.acts.insert(end.clone(), Act::Flat(outs));
        Ok((
            Some(Op::Linear {
                at: i,
                inputs: ins,
                outputs: outs,
                weight,
                bias,
            }),
            end,
        ))
    }
}

fn g_node(g: &Graph, i: usize) -> &Node {
    &g.nodes[i]
}

/// Inputs of a matrix product on `x`: a flat value, or a 1×1 map (the same features).
fn flat_inputs(n: &Node, x: Act) -> Result<usize, OnnxError> {
    match x {
        Act::Flat(f) | Act::Map { c: f, h: 1, w: 1 } => Ok(f),
        Act::Map { .. } => Err(unsupported(
            n,
            format!("{} of a {x} feature map: flatten first", n.op()),
        )),
    }
}

/// The reference of node `i` (for errors raised after the walk).
pub(crate) fn node_ref(g: &Graph, i: usize) -> NodeRef {
    g.nodes[i].at.clone()
}
