//! The ONNX graph as the importer reads it: nodes in file order, the constants (initializers,
//! `Constant` nodes and `Identity` of a constant) decoded to `f32` or `i64`, the one image
//! input and the one score output, and which nodes read each computed value.

use std::collections::HashMap;

use super::error::{NodeRef, OnnxError};
use super::proto::{attribute_proto::AttributeType, AttributeProto, ModelProto, TensorProto};

/// Oldest version of the standard operator set the importer reads (attribute forms of older
/// versions, e.g. `Clip` bounds as attributes, are not handled).
pub const OPSET_MIN: i64 = 11;
/// Newest version of the standard operator set the importer reads.
pub const OPSET_MAX: i64 = 22;

/// The values of a constant tensor.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Values {
    /// Floating-point elements (f32, f16, bf16 and f64 are all read as f32).
    Float(Vec<f32>),
    /// Integer and boolean elements.
    Int(Vec<i64>),
}

/// A constant tensor.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Constant {
    pub dims: Vec<usize>,
    pub values: Values,
}

impl Constant {
    pub fn floats(&self) -> Option<&[f32]> {
        match &self.values {
            Values::Float(v) => Some(v),
            Values::Int(_) => None,
        }
    }

    pub fn ints(&self) -> Option<&[i64]> {
        match &self.values {
            Values::Int(v) => Some(v),
            Values::Float(_) => None,
        }
    }
}

/// One axis of the graph input's declared shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Dim {
    Fixed(i64),
    Symbolic(String),
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(v) => write!(f, "{v}"),
            Dim::Symbolic(s) if s.is_empty() => f.write_str("?"),
            Dim::Symbolic(s) => f.write_str(s),
        }
    }
}

/// A node of the graph.
pub(crate) struct Node {
    pub at: NodeRef,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Vec<AttributeProto>,
    /// Whether the node is in the standard (`""` / `ai.onnx`) domain.
    pub standard: bool,
}

impl Node {
    pub fn op(&self) -> &str {
        &self.at.op
    }

    fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.attributes.iter().find(|a| a.name == name)
    }

    fn bad(&self, what: &str, expected: &str, found: String) -> OnnxError {
        OnnxError::BadValue {
            node: self.at.clone(),
            what: format!("attribute {what}"),
            problem: format!("expected {expected}, found {found}"),
        }
    }

    fn typed(&self, name: &str, ty: AttributeType) -> Result<Option<&AttributeProto>, OnnxError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) if a.r#type() == ty || a.r#type() == AttributeType::Undefined => Ok(Some(a)),
            Some(a) => Err(self.bad(
                name,
                &format!("type {}", ty.as_str_name()),
                format!("type {}", a.r#type().as_str_name()),
            )),
        }
    }

    /// An `INT` attribute, or `default` when absent.
    pub fn int(&self, name: &str, default: i64) -> Result<i64, OnnxError> {
        Ok(self
            .typed(name, AttributeType::Int)?
            .map_or(default, |a| a.i))
    }

    /// A `FLOAT` attribute, or `default` when absent.
    pub fn float(&self, name: &str, default: f32) -> Result<f32, OnnxError> {
        Ok(self
            .typed(name, AttributeType::Float)?
            .map_or(default, |a| a.f))
    }

    /// An `INTS` attribute, `None` when absent.
    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, OnnxError> {
        Ok(self
            .typed(name, AttributeType::Ints)?
            .map(|a| a.ints.clone()))
    }

    /// A `STRING` attribute (lossy UTF-8), `None` when absent.
    pub fn string(&self, name: &str) -> Result<Option<String>, OnnxError> {
        Ok(self
            .typed(name, AttributeType::String)?
            .map(|a| String::from_utf8_lossy(&a.s).into_owned()))
    }

    /// An `INTS` attribute of `n` non-negative values each at most `max`, or `default`.
    pub fn sizes(
        &self,
        name: &str,
        n: usize,
        max: usize,
        default: usize,
    ) -> Result<Vec<usize>, OnnxError> {
        let Some(v) = self.ints(name)? else {
            return Ok(vec![default; n]);
        };
        if v.len() != n || v.iter().any(|&x| x < 0 || x as u64 > max as u64) {
            return Err(self.bad(name, &format!("{n} values in 0..={max}"), format!("{v:?}")));
        }
        Ok(v.iter().map(|&x| x as usize).collect())
    }
}

/// The graph with its constants separated from the computation.
pub(crate) struct Graph {
    pub nodes: Vec<Node>,
    pub constants: HashMap<String, Constant>,
    /// The image input and its declared dimensions.
    pub input: String,
    pub input_dims: Vec<Dim>,
    /// The output and its declared dimensions (empty when not declared).
    pub output: String,
    pub output_dims: Vec<Dim>,
    /// The standard operator set version.
    pub opset: i64,
    /// `producer_name producer_version` of the file.
    pub producer: String,
    /// Nodes turned into constants (`Constant`, `Identity` of a constant).
    pub folded: Vec<bool>,
    /// The nodes that read each computed value, in file order.
    pub readers: HashMap<String, Vec<usize>>,
    /// The node that computes each value.
    pub producer_of: HashMap<String, usize>,
}

/// Elements of a tensor with `dims`, or an error for a negative or overflowing shape.
fn element_count(name: &str, dims: &[i64]) -> Result<(Vec<usize>, usize), OnnxError> {
    let bad = || OnnxError::Tensor {
        name: name.to_string(),
        problem: format!("invalid dimensions {dims:?}"),
    };
    let mut n: usize = 1;
    let mut out = Vec::with_capacity(dims.len());
    for &d in dims {
        let d = usize::try_from(d).map_err(|_| bad())?;
        n = n.checked_mul(d).ok_or_else(bad)?;
        out.push(d);
    }
    Ok((out, n))
}

fn le_chunks<const N: usize>(raw: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    raw.chunks_exact(N)
        .map(|c| c.try_into().expect("chunks_exact yields N bytes"))
}

/// Decodes a constant tensor: the element types nuq reads, from `raw_data` or the typed
/// field.
pub(crate) fn decode_tensor(name: &str, t: &TensorProto) -> Result<Constant, OnnxError> {
    let problem = |p: String| OnnxError::Tensor {
        name: name.to_string(),
        problem: p,
    };
    if t.data_location == 1 {
        return Err(problem(
            "its data is stored in an external file, which the importer does not read (export with the weights inside the .onnx file)".into(),
        ));
    }
    let (dims, count) = element_count(name, &t.dims)?;
    // The element size in raw_data.
    let size = match t.data_type {
        2 | 3 | 9 => 1,      // UINT8, INT8, BOOL
        4 | 5 | 10 | 16 => 2, // UINT16, INT16, FLOAT16, BFLOAT16
        1 | 6 | 12 => 4,     // FLOAT, INT32, UINT32
        7 | 11 => 8,         // INT64, DOUBLE
        other => {
            return Err(problem(format!(
                "element type {other} is not read (float, float16, bfloat16, double and integer types are)"
            )))
        }
    };
    let raw = &t.raw_data;
    let values = if !raw.is_empty() || count == 0 {
        let expected = count.saturating_mul(size);
        if raw.len() != expected {
            return Err(problem(format!(
                "raw_data holds {} bytes, expected {expected} for dimensions {dims:?}",
                raw.len()
            )));
        }
        match t.data_type {
            1 => Values::Float(le_chunks::<4>(raw).map(f32::from_le_bytes).collect()),
            10 => Values::Float(
                le_chunks::<2>(raw)
                    .map(|b| half::f16::from_le_bytes(b).to_f32())
                    .collect(),
            ),
            16 => Values::Float(
                le_chunks::<2>(raw)
                    .map(|b| half::bf16::from_le_bytes(b).to_f32())
                    .collect(),
            ),
            11 => Values::Float(
                le_chunks::<8>(raw)
                    .map(|b| f64::from_le_bytes(b) as f32)
                    .collect(),
            ),
            2 | 9 => Values::Int(raw.iter().map(|&b| i64::from(b)).collect()),
            3 => Values::Int(raw.iter().map(|&b| i64::from(b as i8)).collect()),
            4 => Values::Int(
                le_chunks::<2>(raw)
                    .map(|b| i64::from(u16::from_le_bytes(b)))
                    .collect(),
            ),
            5 => Values::Int(
                le_chunks::<2>(raw)
                    .map(|b| i64::from(i16::from_le_bytes(b)))
                    .collect(),
            ),
            6 => Values::Int(
                le_chunks::<4>(raw)
                    .map(|b| i64::from(i32::from_le_bytes(b)))
                    .collect(),
            ),
            12 => Values::Int(
                le_chunks::<4>(raw)
                    .map(|b| i64::from(u32::from_le_bytes(b)))
                    .collect(),
            ),
            _ => Values::Int(le_chunks::<8>(raw).map(i64::from_le_bytes).collect()),
        }
    } else {
        let (values, found) = match t.data_type {
            1 => (Values::Float(t.float_data.clone()), t.float_data.len()),
            11 => (
                Values::Float(t.double_data.iter().map(|&v| v as f32).collect()),
                t.double_data.len(),
            ),
            10 => (
                Values::Float(
                    t.int32_data
                        .iter()
                        .map(|&v| half::f16::from_bits(v as u16).to_f32())
                        .collect(),
                ),
                t.int32_data.len(),
            ),
            16 => (
                Values::Float(
                    t.int32_data
                        .iter()
                        .map(|&v| half::bf16::from_bits(v as u16).to_f32())
                        .collect(),
                ),
                t.int32_data.len(),
            ),
            7 => (Values::Int(t.int64_data.clone()), t.int64_data.len()),
            12 => (
                Values::Int(t.uint64_data.iter().map(|&v| v as i64).collect()),
                t.uint64_data.len(),
            ),
            _ => (
                Values::Int(t.int32_data.iter().map(|&v| i64::from(v)).collect()),
                t.int32_data.len(),
            ),
        };
        if found != count {
            return Err(problem(format!(
                "holds {found} values, expected {count} for dimensions {dims:?}"
            )));
        }
        values
    };
    if let Values::Float(v) = &values {
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(problem(format!("element {i} is {} (not finite)", v[i])));
        }
    }
    Ok(Constant { dims, values })
}

fn declared_dims(v: &super::proto::ValueInfoProto) -> Vec<Dim> {
    use super::proto::{tensor_shape_proto::dimension::Value, type_proto};
    let Some(type_proto::Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Vec::new();
    };
    let Some(shape) = &t.shape else {
        return Vec::new();
    };
    shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(Value::DimValue(v)) => Dim::Fixed(*v),
            Some(Value::DimParam(p)) => Dim::Symbolic(p.clone()),
            None => Dim::Symbolic(String::new()),
        })
        .collect()
}

/// The constant a `Constant` node defines.
fn constant_node(node: &Node) -> Result<Constant, OnnxError> {
    let name = node.outputs.first().cloned().unwrap_or_default();
    let Some(a) = node.attributes.first() else {
        return Err(node.bad("value", "one value attribute", "none".into()));
    };
    Ok(match a.name.as_str() {
        "value" => {
            let t =
                a.t.as_ref()
                    .ok_or_else(|| node.bad("value", "a tensor", "none".into()))?;
            decode_tensor(&name, t)?
        }
        "value_float" => Constant {
            dims: vec![],
            values: Values::Float(vec![a.f]),
        },
        "value_floats" => Constant {
            dims: vec![a.floats.len()],
            values: Values::Float(a.floats.clone()),
        },
        "value_int" => Constant {
            dims: vec![],
            values: Values::Int(vec![a.i]),
        },
        "value_ints" => Constant {
            dims: vec![a.ints.len()],
            values: Values::Int(a.ints.clone()),
        },
        other => {
            return Err(OnnxError::UnsupportedOp {
                node: node.at.clone(),
                reason: format!("a Constant given as {other} is not read (only numeric tensors)"),
            })
        }
    })
}

impl Graph {
    /// Reads the decoded model: checks the operator set, decodes every constant and indexes
    /// the computation.
    pub fn read(model: ModelProto) -> Result<Self, OnnxError> {
        let opsets = model.opset_import.len();
        let Some(g) = model.graph else {
            return Err(OnnxError::NoGraph {
                ir_version: model.ir_version,
                opsets,
            });
        };
        let opset = model
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map_or(0, |o| o.version);
        if !(OPSET_MIN..=OPSET_MAX).contains(&opset) {
            return Err(OnnxError::Opset {
                found: opset,
                min: OPSET_MIN,
                max: OPSET_MAX,
            });
        }
        let mut constants = HashMap::new();
        for t in &g.initializer {
            constants.insert(t.name.clone(), decode_tensor(&t.name, t)?);
        }
        let inputs: Vec<_> = g
            .input
            .iter()
            .filter(|i| !constants.contains_key(&i.name))
            .collect();
        let [input] = inputs.as_slice() else {
            return Err(OnnxError::Interface {
                what: "input",
                problem: format!(
                    "expected one image input, found {} ({:?})",
                    inputs.len(),
                    inputs.iter().map(|i| &i.name).collect::<Vec<_>>()
                ),
            });
        };
        let [output] = g.output.as_slice() else {
            return Err(OnnxError::Interface {
                what: "output",
                problem: format!(
                    "expected one output (the class scores), found {}",
                    g.output.len()
                ),
            });
        };
        let count = g.node.len();
        let nodes: Vec<Node> = g
            .node
            .into_iter()
            .enumerate()
            .map(|(index, n)| {
                let standard = n.domain.is_empty() || n.domain == "ai.onnx";
                let op = if standard {
                    n.op_type
                } else {
                    format!("{}::{}", n.domain, n.op_type)
                };
                Node {
                    at: NodeRef {
                        index,
                        count,
                        name: n.name,
                        op,
                    },
                    inputs: n.input,
                    outputs: n.output,
                    attributes: n.attribute,
                    standard,
                }
            })
            .collect();
        let mut folded = vec![false; nodes.len()];
        let mut readers: HashMap<String, Vec<usize>> = HashMap::new();
        let mut producer_of = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            let constant = if n.standard && n.op() == "Constant" {
                Some(constant_node(n)?)
            } else if n.standard && n.op() == "Identity" {
                n.inputs.first().and_then(|x| constants.get(x)).cloned()
            } else {
                None
            };
            if let Some(c) = constant {
                let out = n.outputs.first().cloned().unwrap_or_default();
                constants.insert(out, c);
                folded[i] = true;
                continue;
            }
            for x in n.inputs.iter().filter(|x| !x.is_empty()) {
                if constants.contains_key(x) {
                    continue;
                }
                if x != &input.name && !producer_of.contains_key(x) {
                    return Err(OnnxError::Input {
                        node: n.at.clone(),
                        input: x.clone(),
                        problem:
                            "is not computed by an earlier node, an initializer or the graph input",
                    });
                }
                readers.entry(x.clone()).or_default().push(i);
            }
            for y in n.outputs.iter().filter(|y| !y.is_empty()) {
                if producer_of.insert(y.clone(), i).is_some() || y == &input.name {
                    return Err(OnnxError::Structure {
                        node: n.at.clone(),
                        problem: format!("value {y:?} is computed twice"),
                    });
                }
            }
        }
        let producer = format!("{} {}", model.producer_name, model.producer_version)
            .trim()
            .to_string();
        Ok(Self {
            nodes,
            constants,
            input: input.name.clone(),
            input_dims: declared_dims(input),
            output: output.name.clone(),
            output_dims: declared_dims(output),
            opset,
            producer,
            folded,
            readers,
            producer_of,
        })
    }

    /// The nodes reading the computed value `v` as data (not only its shape).
    pub fn data_readers(&self, v: &str) -> Vec<usize> {
        self.readers
            .get(v)
            .map(|r| {
                r.iter()
                    .copied()
                    .filter(|&i| self.nodes[i].op() != "Shape")
                    .collect()
            })
            .unwrap_or_default()
    }
}
