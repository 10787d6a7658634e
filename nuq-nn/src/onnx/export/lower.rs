//! Lowers each integer operation of an [`IntegerModel`] to ONNX operators, in one of two
//! flavours (see the module docs of [`super`]): exact integer operators, or QONNX's float
//! containers with `MultiThreshold`.

use super::builder::{Attr, Builder, Elem, Shape, Value};
use super::{AccumulatorBound, Flavour};
use crate::integer::{
    AddNode, ConvNode, ConvOutput, IntegerModel, LinearNode, MaxPoolNode, Node, Requant,
    TensorInfo, TensorKind,
};

/// QONNX's custom-operator domain (where `MultiThreshold` lives).
pub(crate) const QONNX_DOMAIN: &str = "qonnx.custom_op.general";

/// The lowering state: the graph so far and the ONNX value of every integer tensor.
pub(crate) struct Lower<'m> {
    pub b: Builder,
    pub flavour: Flavour,
    pub batch: Option<i64>,
    pub values: Vec<Value>,
    pub bounds: Vec<AccumulatorBound>,
    model: &'m IntegerModel,
    infos: Vec<TensorInfo>,
    axes_last: Option<Value>,
}

impl<'m> Lower<'m> {
    pub fn new(
        model: &'m IntegerModel,
        infos: Vec<TensorInfo>,
        flavour: Flavour,
        batch: Option<i64>,
    ) -> Self {
        Lower {
            b: Builder::default(),
            flavour,
            batch,
            values: Vec::new(),
            bounds: Vec::new(),
            model,
            infos,
            axes_last: None,
        }
    }

    /// The element type that holds activation levels.
    fn levels_elem(&self) -> Elem {
        match self.flavour {
            Flavour::Onnx => Elem::U8,
            Flavour::Qonnx => Elem::F32,
        }
    }

    fn nchw(&self, c: usize, h: usize, w: usize) -> Shape {
        vec![self.batch, Some(c as i64), Some(h as i64), Some(w as i64)]
    }

    /// The image input `[N, C, H, W]`: bytes, or bytes held in `f32` for QONNX.
    pub fn input(&mut self) -> Value {
        let i = &self.model.input;
        let v = Value {
            name: "image".into(),
            elem: self.levels_elem(),
            shape: self.nchw(i.channels, i.height, i.width),
        };
        if self.flavour == Flavour::Qonnx {
            self.b.annotate(&v, "UINT8".into());
        }
        self.values.push(v.clone());
        v
    }

    /// Lowers node `i`; its output becomes the value of tensor `i + 1`.
    pub fn node(&mut self, i: usize) {
        let out = match &self.model.nodes[i] {
            Node::Conv(c) => self.conv(i, c),
            Node::Add(a) => self.add(i, a),
            Node::MaxPool(p) => self.max_pool(i, p),
            Node::GlobalAvgPool { input } => self.global_avg_pool(i, *input),
            Node::Linear(l) => self.linear(i, l),
        };
        self.values.push(out);
    }

    /// `ConvInteger` over bytes (weights offset by 128 to `u8`, zero point 128), or `Conv`
    /// over `f32`, in the node's channel groups (`group`); then the per-channel bias, plus
    /// the model input's padding correction.
    fn conv(&mut self, i: usize, c: &ConvNode) -> Value {
        let x = self.values[c.input].clone();
        let xi = self.infos[c.input];
        let oi = self.infos[i + 1];
        // `cin`: the input channels one output channel reads (its group's).
        let (k, cin, cout) = (c.kernel, c.c_in / c.groups.max(1), c.c_out);
        // OHWI → OIHW.
        let levels = c.weights.decoded();
        let mut oihw = vec![0i8; levels.len()];
        for o in 0..cout {
            for ky in 0..k {
                for kx in 0..k {
                    for ci in 0..cin {
                        oihw[((o * cin + ci) * k + ky) * k + kx] =
                            levels[((o * k + ky) * k + kx) * cin + ci];
                    }
                }
            }
        }
        // The model input pads with each channel's zero point; the ONNX convolution pads
        // with zero, so the taps that fall into the padding are added back as a constant
        // per output position.
        let zp = &self.model.input.zero_point;
        let correction = (c.input == 0 && c.padding > 0 && zp.iter().any(|&z| z != 0))
            .then(|| padding_correction(c, &levels, zp, xi, oi));
        let max_in = self.max_level(c.input);
        let bound = (0..cout)
            .map(|o| {
                let taps: u64 = oihw[o * cin * k * k..(o + 1) * cin * k * k]
                    .iter()
                    .map(|&w| u64::from(w.unsigned_abs()))
                    .sum();
                let corr = correction.as_ref().map_or(0, |corr| {
                    corr[o * oi.h * oi.w..(o + 1) * oi.h * oi.w]
                        .iter()
                        .map(|v| v.unsigned_abs())
                        .max()
                        .unwrap_or(0)
                });
                taps * max_in + u64::from(c.bias[o].unsigned_abs()) + u64::from(corr)
            })
            .max()
            .unwrap_or(0);
        let limit = match self.flavour {
            Flavour::Onnx => 1 << 31,
            Flavour::Qonnx => 1 << 24,
        };
        self.bounds.push(AccumulatorBound {
            node: i,
            op: "conv",
            bound,
            limit,
        });
        let attrs = [
            Attr::Ints("kernel_shape", vec![k as i64; 2]),
            Attr::Ints("strides", vec![c.stride as i64; 2]),
            Attr::Ints("pads", vec![c.padding as i64; 4]),
            Attr::Ints("dilations", vec![c.dilation.max(1) as i64; 2]),
            Attr::Int("group", c.groups as i64),
        ];
        let shape = self.nchw(cout, oi.h, oi.w);
        let p = format!("n{i}_conv");
        let acc = match self.flavour {
            Flavour::Onnx => {
                let w: Vec<u8> = oihw.iter().map(|&v| (i16::from(v) + 128) as u8).collect();
                let w = self.b.u8s(format!("{p}_w"), &[cout, cin, k, k], &w);
                let zp = self.b.u8s(format!("{p}_w_zero_point"), &[], &[128]);
                let acc = self.b.op(
                    "ConvInteger",
                    &[&x.name, &w.name, "", &zp.name],
                    &attrs,
                    format!("{p}_acc"),
                    Elem::I32,
                    shape.clone(),
                );
                let (dims, bias) = bias_table(&c.bias, correction.as_deref(), oi);
                let bias = self.b.i32s(format!("{p}_bias"), &dims, &bias);
                self.binary("Add", &acc, &bias, &[], format!("{p}_out"))
            }
            Flavour::Qonnx => {
                let w: Vec<f32> = oihw.iter().map(|&v| f32::from(v)).collect();
                let w = self.b.f32s(format!("{p}_w"), &[cout, cin, k, k], &w);
                self.b.annotate(&w, "INT8".into());
                let acc = self.b.op(
                    "Conv",
                    &[&x.name, &w.name],
                    &attrs,
                    format!("{p}_acc"),
                    Elem::F32,
                    shape.clone(),
                );
                let (dims, bias) = bias_table(&c.bias, correction.as_deref(), oi);
                let bias: Vec<f32> = bias.iter().map(|&v| v as f32).collect();
                let bias = self.b.f32s(format!("{p}_bias"), &dims, &bias);
                self.binary("Add", &acc, &bias, &[], format!("{p}_out"))
            }
        };
        match &c.output {
            ConvOutput::Accumulator => acc,
            ConvOutput::Codes(r) => self.requant(&p, acc, r),
        }
    }

    /// The largest level tensor `id` can hold (255 for the image).
    fn max_level(&self, id: usize) -> u64 {
        if id == 0 {
            return 255;
        }
        let codebook = match &self.model.nodes[id - 1] {
            Node::Conv(ConvNode {
                output: ConvOutput::Codes(r),
                ..
            }) => &r.codebook,
            Node::Add(a) => &a.output.codebook,
            Node::MaxPool(p) => return self.max_level(p.input),
            Node::GlobalAvgPool { input } => return self.max_level(*input),
            _ => return u64::from(u32::MAX),
        };
        codebook
            .levels()
            .iter()
            .map(|&l| l.unsigned_abs())
            .max()
            .map_or(0, u64::from)
    }

    /// The shared `[4]` axes constant of the threshold counts.
    fn axes_last(&mut self) -> Value {
        if let Some(v) = &self.axes_last {
            return v.clone();
        }
        let v = self.b.i64s("axes_last".into(), &[1], &[4]);
        self.axes_last = Some(v.clone());
        v
    }

    /// Threshold requantization of `acc` (`[N, C, H, W]`) to the levels of `r`'s codebook.
    fn requant(&mut self, p: &str, acc: Value, r: &Requant) -> Value {
        let t = &r.thresholds;
        let (ch, per) = (t.channels(), t.per_channel());
        let falling: Vec<bool> = t.directions().iter().map(|d| d.is_falling()).collect();
        let any_falling = falling.iter().any(|&f| f);
        // A falling channel counts `acc <= T`, i.e. `−acc >= −T`: both sides negated, every
        // channel counts "greater or equal" as QONNX's MultiThreshold does.
        let signed: Vec<i64> = (0..ch)
            .flat_map(|c| {
                let s = if falling[c] { -1 } else { 1 };
                t.row(c).iter().map(move |&v| s * i64::from(v))
            })
            .collect();
        let sign: Vec<i64> = falling.iter().map(|&f| if f { -1 } else { 1 }).collect();
        let shape = acc.shape.clone();
        let levels = r.lut();
        let identity = levels.iter().enumerate().all(|(i, &l)| usize::from(l) == i);
        match self.flavour {
            Flavour::Onnx => {
                let x = if acc.elem == Elem::I64 {
                    acc
                } else {
                    self.cast(&acc, Elem::I64, format!("{p}_acc64"))
                };
                let x = if any_falling {
                    let s = self.b.i64s(format!("{p}_sign"), &[1, ch, 1, 1], &sign);
                    self.binary("Mul", &x, &s, &[], format!("{p}_signed"))
                } else {
                    x
                };
                let axes = self.axes_last();
                let mut s5 = shape.clone();
                s5.push(Some(1));
                let u = self.b.op(
                    "Unsqueeze",
                    &[&x.name, &axes.name],
                    &[],
                    format!("{p}_col"),
                    Elem::I64,
                    s5,
                );
                let th = self
                    .b
                    .i64s(format!("{p}_thresholds"), &[ch, 1, 1, per], &signed);
                let mut sk = shape.clone();
                sk.push(Some(per as i64));
                let ge = self.b.op(
                    "GreaterOrEqual",
                    &[&u.name, &th.name],
                    &[],
                    format!("{p}_reached"),
                    Elem::Bool,
                    sk.clone(),
                );
                let ones = self.cast(&ge, Elem::I32, format!("{p}_reached32"));
                let code = self.b.op(
                    "ReduceSum",
                    &[&ones.name, &axes.name],
                    &[Attr::Int("keepdims", 0)],
                    format!("{p}_code"),
                    Elem::I32,
                    shape.clone(),
                );
                let lut = self.b.u8s(format!("{p}_levels"), &[levels.len()], &levels);
                self.b.op(
                    "Gather",
                    &[&lut.name, &code.name],
                    &[Attr::Int("axis", 0)],
                    format!("{p}_act"),
                    Elem::U8,
                    shape,
                )
            }
            Flavour::Qonnx => {
                // qonnx's MultiThreshold computes in numpy and returns float64 whatever it
                // reads, so it reads float64 too: declared types and values agree.
                let x = if acc.elem == Elem::F64 {
                    acc
                } else {
                    self.cast(&acc, Elem::F64, format!("{p}_acc64"))
                };
                let x = if any_falling {
                    let s: Vec<f64> = sign.iter().map(|&v| v as f64).collect();
                    let s = self.b.f64s(format!("{p}_sign"), &[1, ch, 1, 1], &s);
                    self.binary("Mul", &x, &s, &[], format!("{p}_signed"))
                } else {
                    x
                };
                let th: Vec<f64> = signed.iter().map(|&v| v as f64).collect();
                let th = self.b.f64s(format!("{p}_thresholds"), &[ch, per], &th);
                let dt = format!("UINT{}", r.bits());
                let code = self.b.node(
                    QONNX_DOMAIN,
                    "MultiThreshold",
                    &[&x.name, &th.name],
                    &[
                        Attr::Str("out_dtype", &dt),
                        Attr::Str("data_layout", "NCHW"),
                    ],
                    format!("{p}_code"),
                    Elem::F64,
                    shape.clone(),
                );
                self.b.annotate(&code, dt.clone());
                let out = if identity {
                    self.cast(&code, Elem::F32, format!("{p}_act"))
                } else {
                    let idx = self.cast(&code, Elem::I64, format!("{p}_code_index"));
                    let lut: Vec<f32> = levels.iter().map(|&l| f32::from(l)).collect();
                    let lut = self.b.f32s(format!("{p}_levels"), &[lut.len()], &lut);
                    self.b.op(
                        "Gather",
                        &[&lut.name, &idx.name],
                        &[Attr::Int("axis", 0)],
                        format!("{p}_act"),
                        Elem::F32,
                        shape,
                    )
                };
                self.b.annotate(&out, "UINT8".into());
                out
            }
        }
    }

    /// `op(a, b)` elementwise, with `a`'s type and shape (`b` broadcasts).
    fn binary(
        &mut self,
        op: &str,
        a: &Value,
        b: &Value,
        attrs: &[Attr<'_>],
        name: String,
    ) -> Value {
        self.b.op(
            op,
            &[&a.name, &b.name],
            attrs,
            name,
            a.elem,
            a.shape.clone(),
        )
    }

    fn cast(&mut self, v: &Value, to: Elem, name: String) -> Value {
        self.b.op(
            "Cast",
            &[&v.name],
            &[Attr::Int("to", to as i64)],
            name,
            to,
            v.shape.clone(),
        )
    }

    /// `requant((a << a_shift) + round_half_up(b · M / 2^shift))` per channel.
    fn add(&mut self, i: usize, n: &AddNode) -> Value {
        let a = self.values[n.a].clone();
        let bv = self.values[n.b].clone();
        let oi = self.infos[i + 1];
        let ch = oi.c;
        let p = format!("n{i}_add");
        let shape = a.shape.clone();
        let c4 = [1, ch, 1, 1];
        let mults: Vec<i64> = n.align.iter().map(|f| i64::from(f.multiplier())).collect();
        let shifts: Vec<u8> = n.align.iter().map(|f| f.shift()).collect();
        let half: Vec<i64> = shifts
            .iter()
            .map(|&s| if s == 0 { 0 } else { 1i64 << (s - 1) })
            .collect();
        let max_b = if self.infos[n.b].kind == TensorKind::Accumulator {
            self.bounds
                .iter()
                .rev()
                .find(|b| b.node + 1 == n.b)
                .map_or(u64::from(u32::MAX), |b| b.bound)
        } else {
            self.max_level(n.b)
        };
        let max_m = mults.iter().map(|m| m.unsigned_abs()).max().unwrap_or(0);
        self.bounds.push(AccumulatorBound {
            node: i,
            op: "add",
            bound: max_b.saturating_mul(max_m),
            limit: 1 << 53,
        });
        let sum = match self.flavour {
            Flavour::Onnx => {
                let a64 = self.cast(&a, Elem::I64, format!("{p}_a64"));
                let a64 = if n.a_shift > 0 {
                    let f = self
                        .b
                        .i64s(format!("{p}_a_scale"), &[], &[1i64 << n.a_shift]);
                    self.binary("Mul", &a64, &f, &[], format!("{p}_a_shifted"))
                } else {
                    a64
                };
                let b64 = self.cast(&bv, Elem::I64, format!("{p}_b64"));
                let m = self.b.i64s(format!("{p}_align_m"), &c4, &mults);
                let y = self.binary("Mul", &b64, &m, &[], format!("{p}_b_mul"));
                let h = self.b.i64s(format!("{p}_align_half"), &c4, &half);
                let y = self.binary("Add", &y, &h, &[], format!("{p}_b_round"));
                // Arithmetic shift right = floor division: y − (y mod 2^s), then an exact
                // division (`Mod` with fmod = 0 takes the divisor's sign).
                let d: Vec<i64> = shifts.iter().map(|&s| 1i64 << s).collect();
                let d = self.b.i64s(format!("{p}_align_div"), &c4, &d);
                let r = self.binary("Mod", &y, &d, &[Attr::Int("fmod", 0)], format!("{p}_b_rem"));
                let y = self.binary("Sub", &y, &r, &[], format!("{p}_b_floor"));
                let y = self.binary("Div", &y, &d, &[], format!("{p}_b_aligned"));
                self.binary("Add", &a64, &y, &[], format!("{p}_sum"))
            }
            Flavour::Qonnx => {
                let a64 = self.cast(&a, Elem::F64, format!("{p}_a64"));
                let a64 = if n.a_shift > 0 {
                    let f = self
                        .b
                        .f64s(format!("{p}_a_scale"), &[], &[(1u64 << n.a_shift) as f64]);
                    self.binary("Mul", &a64, &f, &[], format!("{p}_a_shifted"))
                } else {
                    a64
                };
                let b64 = self.cast(&bv, Elem::F64, format!("{p}_b64"));
                let m: Vec<f64> = mults.iter().map(|&v| v as f64).collect();
                let m = self.b.f64s(format!("{p}_align_m"), &c4, &m);
                let y = self.binary("Mul", &b64, &m, &[], format!("{p}_b_mul"));
                let h: Vec<f64> = half.iter().map(|&v| v as f64).collect();
                let h = self.b.f64s(format!("{p}_align_half"), &c4, &h);
                let y = self.binary("Add", &y, &h, &[], format!("{p}_b_round"));
                let inv: Vec<f64> = shifts.iter().map(|&s| (-f64::from(s)).exp2()).collect();
                let inv = self.b.f64s(format!("{p}_align_inv"), &c4, &inv);
                let y = self.binary("Mul", &y, &inv, &[], format!("{p}_b_scaled"));
                let y = self.b.op(
                    "Floor",
                    &[&y.name],
                    &[],
                    format!("{p}_b_aligned"),
                    Elem::F64,
                    shape.clone(),
                );
                self.binary("Add", &a64, &y, &[], format!("{p}_sum"))
            }
        };
        self.requant(&p, sum, &n.output)
    }

    fn max_pool(&mut self, i: usize, n: &MaxPoolNode) -> Value {
        let x = self.values[n.input].clone();
        let oi = self.infos[i + 1];
        let shape = self.nchw(oi.c, oi.h, oi.w);
        self.b.op(
            "MaxPool",
            &[&x.name],
            &[
                Attr::Ints("kernel_shape", vec![n.kernel as i64; 2]),
                Attr::Ints("strides", vec![n.stride as i64; 2]),
                Attr::Ints("pads", vec![n.padding as i64; 4]),
            ],
            format!("n{i}_maxpool"),
            x.elem,
            shape,
        )
    }

    /// `(Σ + n/2) / n` in `int32` (exact in both flavours), cast back to the levels' type.
    fn global_avg_pool(&mut self, i: usize, input: usize) -> Value {
        let x = self.values[input].clone();
        let xi = self.infos[input];
        let p = format!("n{i}_avgpool");
        let n = (xi.h * xi.w) as i32;
        let shape = self.nchw(xi.c, 1, 1);
        let x32 = self.cast(&x, Elem::I32, format!("{p}_x32"));
        let axes = self.b.i64s(format!("{p}_axes"), &[2], &[2, 3]);
        let s = self.b.op(
            "ReduceSum",
            &[&x32.name, &axes.name],
            &[Attr::Int("keepdims", 1)],
            format!("{p}_sum"),
            Elem::I32,
            shape.clone(),
        );
        let h = self.b.i32s(format!("{p}_half"), &[], &[n / 2]);
        let s = self.binary("Add", &s, &h, &[], format!("{p}_round"));
        let d = self.b.i32s(format!("{p}_count"), &[], &[n]);
        let q = self.binary("Div", &s, &d, &[], format!("{p}_mean"));
        let elem = self.levels_elem();
        self.cast(&q, elem, format!("{p}_out"))
    }

    fn linear(&mut self, i: usize, l: &LinearNode) -> Value {
        let x = self.values[l.input].clone();
        let p = format!("n{i}_linear");
        let (fin, fout) = (l.in_features, l.out_features);
        let flat = self.b.op(
            "Flatten",
            &[&x.name],
            &[Attr::Int("axis", 1)],
            format!("{p}_flat"),
            x.elem,
            vec![self.batch, Some(fin as i64)],
        );
        // `[out][in]` → `[in][out]` for MatMul.
        let levels = l.weights.decoded();
        let mut t = vec![0i8; levels.len()];
        for o in 0..fout {
            for f in 0..fin {
                t[f * fout + o] = levels[o * fin + f];
            }
        }
        let max_in = self.max_level(l.input);
        let bound = (0..fout)
            .map(|o| {
                let taps: u64 = levels[o * fin..(o + 1) * fin]
                    .iter()
                    .map(|&w| u64::from(w.unsigned_abs()))
                    .sum();
                taps * max_in + u64::from(l.bias[o].unsigned_abs())
            })
            .max()
            .unwrap_or(0);
        self.bounds.push(AccumulatorBound {
            node: i,
            op: "linear",
            bound,
            limit: match self.flavour {
                Flavour::Onnx => 1 << 31,
                Flavour::Qonnx => 1 << 53,
            },
        });
        let shape = vec![self.batch, Some(fout as i64)];
        match self.flavour {
            Flavour::Onnx => {
                let w: Vec<u8> = t.iter().map(|&v| (i16::from(v) + 128) as u8).collect();
                let w = self.b.u8s(format!("{p}_w"), &[fin, fout], &w);
                let zp = self.b.u8s(format!("{p}_w_zero_point"), &[], &[128]);
                let y = self.b.op(
                    "MatMulInteger",
                    &[&flat.name, &w.name, "", &zp.name],
                    &[],
                    format!("{p}_acc"),
                    Elem::I32,
                    shape.clone(),
                );
                let bias = self.b.i32s(format!("{p}_bias"), &[fout], &l.bias);
                self.binary("Add", &y, &bias, &[], "logits".into())
            }
            Flavour::Qonnx => {
                // In f64: a classifier over many features can pass f32's 2^24.
                let x = self.cast(&flat, Elem::F64, format!("{p}_flat64"));
                let w: Vec<f64> = t.iter().map(|&v| f64::from(v)).collect();
                let w = self.b.f64s(format!("{p}_w"), &[fin, fout], &w);
                self.b.annotate(&w, "INT8".into());
                let y = self.b.op(
                    "MatMul",
                    &[&x.name, &w.name],
                    &[],
                    format!("{p}_acc"),
                    Elem::F64,
                    shape.clone(),
                );
                let bias: Vec<f64> = l.bias.iter().map(|&v| f64::from(v)).collect();
                let bias = self.b.f64s(format!("{p}_bias"), &[fout], &bias);
                self.binary("Add", &y, &bias, &[], "logits".into())
            }
        }
    }
}

/// The bias as `[1, C, 1, 1]`, or with the padding correction as `[1, C, OH, OW]`.
fn bias_table(bias: &[i32], correction: Option<&[i32]>, oi: TensorInfo) -> (Vec<usize>, Vec<i32>) {
    match correction {
        None => (vec![1, bias.len(), 1, 1], bias.to_vec()),
        Some(corr) => {
            let plane = oi.h * oi.w;
            let v = corr
                .iter()
                .enumerate()
                .map(|(j, &c)| c.wrapping_add(bias[j / plane]))
                .collect();
            (vec![1, bias.len(), oi.h, oi.w], v)
        }
    }
}

/// Per output channel and position (`[C_out][OH][OW]`), `Σ w · zero_point[c]` over the taps
/// that fall into the padding of the model input (`c` running over the output channel's
/// group of input channels; tap `(ky, kx)` reads `dilation·(ky, kx)` from the window's
/// corner).
pub(super) fn padding_correction(
    c: &ConvNode,
    ohwi: &[i8],
    zp: &[u8],
    xi: TensorInfo,
    oi: TensorInfo,
) -> Vec<i32> {
    let groups = c.groups.max(1);
    let (k, cin, per_group) = (c.kernel, c.c_in / groups, c.c_out / groups);
    let d = c.dilation.max(1);
    // Σ_c w · zp[c] per (o, ky, kx), `c` in the group of `o`.
    let tap: Vec<i32> = (0..c.c_out * k * k)
        .map(|t| {
            let first = t / (k * k) / per_group * cin;
            (0..cin)
                .map(|ci| i32::from(ohwi[t * cin + ci]) * i32::from(zp[first + ci]))
                .sum()
        })
        .collect();
    let mut out = vec![0i32; c.c_out * oi.h * oi.w];
    for o in 0..c.c_out {
        for oy in 0..oi.h {
            for ox in 0..oi.w {
                let mut s = 0i32;
                for ky in 0..k {
                    for kx in 0..k {
                        let iy = (oy * c.stride + ky * d) as isize - c.padding as isize;
                        let ix = (ox * c.stride + kx * d) as isize - c.padding as isize;
                        let inside =
                            iy >= 0 && ix >= 0 && (iy as usize) < xi.h && (ix as usize) < xi.w;
                        if !inside {
                            s += tap[(o * k + ky) * k + kx];
                        }
                    }
                }
                out[(o * oi.h + oy) * oi.w + ox] = s;
            }
        }
    }
    out
}
