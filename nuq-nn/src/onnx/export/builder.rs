//! Assembles an ONNX graph: constants as initializers, nodes in topological order, and the
//! type and shape of every value (QONNX's executor runs one node at a time and needs them
//! all; ONNX Runtime reads them as checks).

use crate::onnx::proto::{
    attribute_proto::AttributeType, tensor_shape_proto, type_proto, AttributeProto, NodeProto,
    StringStringEntryProto, TensorAnnotation, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};

/// Element types the exporter writes (ONNX `TensorProto.DataType` codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Elem {
    F32 = 1,
    U8 = 2,
    I32 = 6,
    I64 = 7,
    Bool = 9,
    F64 = 11,
}

/// A value's shape: `None` is the batch dimension when it is left symbolic.
pub(crate) type Shape = Vec<Option<i64>>;

/// A named value with its element type and shape.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Value {
    pub name: String,
    pub elem: Elem,
    pub shape: Shape,
}

/// An attribute of a node.
pub(crate) enum Attr<'a> {
    Int(&'a str, i64),
    Ints(&'a str, Vec<i64>),
    Str(&'a str, &'a str),
}

impl Attr<'_> {
    fn proto(&self) -> AttributeProto {
        let mut a = AttributeProto::default();
        match self {
            Attr::Int(n, v) => {
                a.name = (*n).into();
                a.i = *v;
                a.r#type = AttributeType::Int.into();
            }
            Attr::Ints(n, v) => {
                a.name = (*n).into();
                a.ints = v.clone();
                a.r#type = AttributeType::Ints.into();
            }
            Attr::Str(n, v) => {
                a.name = (*n).into();
                a.s = v.as_bytes().to_vec();
                a.r#type = AttributeType::String.into();
            }
        }
        a
    }
}

/// The graph under construction.
#[derive(Default)]
pub(crate) struct Builder {
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    pub value_info: Vec<ValueInfoProto>,
    pub annotations: Vec<TensorAnnotation>,
    /// Bytes of constant data written so far.
    pub constant_bytes: u64,
}

/// `data` as little-endian bytes (ONNX's `raw_data` layout).
fn le_bytes<T: Copy, const N: usize>(data: &[T], to_le: fn(T) -> [u8; N]) -> Vec<u8> {
    data.iter().flat_map(|&v| to_le(v)).collect()
}

/// The `ValueInfoProto` of `v`, the batch dimension named `N` when symbolic.
pub(crate) fn value_info(v: &Value) -> ValueInfoProto {
    let dim = v
        .shape
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                Some(n) => tensor_shape_proto::dimension::Value::DimValue(*n),
                None => tensor_shape_proto::dimension::Value::DimParam("N".into()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: v.name.clone(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: v.elem as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
    }
}

impl Builder {
    /// A constant named `name` with `dims` and little-endian `raw` bytes of type `elem`.
    fn constant(&mut self, name: String, elem: Elem, dims: &[usize], raw: Vec<u8>) -> Value {
        let shape: Shape = dims.iter().map(|&d| Some(d as i64)).collect();
        self.constant_bytes += raw.len() as u64;
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: elem as i32,
            name: name.clone(),
            raw_data: raw,
            ..TensorProto::default()
        });
        let v = Value { name, elem, shape };
        // QONNX's single-node runs declare a node's inputs from the value infos, so the
        // constants get one too.
        self.value_info.push(value_info(&v));
        v
    }

    pub fn u8s(&mut self, name: String, dims: &[usize], data: &[u8]) -> Value {
        self.constant(name, Elem::U8, dims, data.to_vec())
    }

    pub fn i32s(&mut self, name: String, dims: &[usize], data: &[i32]) -> Value {
        self.constant(name, Elem::I32, dims, le_bytes(data, i32::to_le_bytes))
    }

    pub fn i64s(&mut self, name: String, dims: &[usize], data: &[i64]) -> Value {
        self.constant(name, Elem::I64, dims, le_bytes(data, i64::to_le_bytes))
    }

    pub fn f32s(&mut self, name: String, dims: &[usize], data: &[f32]) -> Value {
        self.constant(name, Elem::F32, dims, le_bytes(data, f32::to_le_bytes))
    }

    pub fn f64s(&mut self, name: String, dims: &[usize], data: &[f64]) -> Value {
        self.constant(name, Elem::F64, dims, le_bytes(data, f64::to_le_bytes))
    }

    /// Adds node `op` (standard domain unless `domain` is given) reading `inputs` (an empty
    /// name is an omitted optional input) and producing `out` of type `elem` and `shape`.
    #[allow(clippy::too_many_arguments)]
    pub fn node(
        &mut self,
        domain: &str,
        op: &str,
        inputs: &[&str],
        attrs: &[Attr<'_>],
        out: String,
        elem: Elem,
        shape: Shape,
    ) -> Value {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| (*s).to_string()).collect(),
            output: vec![out.clone()],
            name: out.clone(),
            op_type: op.into(),
            attribute: attrs.iter().map(Attr::proto).collect(),
            domain: domain.into(),
        });
        let v = Value {
            name: out,
            elem,
            shape,
        };
        self.value_info.push(value_info(&v));
        v
    }

    /// Adds a standard-domain node.
    pub fn op(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: &[Attr<'_>],
        out: String,
        elem: Elem,
        shape: Shape,
    ) -> Value {
        self.node("", op, inputs, attrs, out, elem, shape)
    }

    /// Records QONNX's datatype annotation (`"UINT4"`, `"INT8"`, …) of a value.
    pub fn annotate(&mut self, v: &Value, datatype: String) {
        self.annotations.push(TensorAnnotation {
            tensor_name: v.name.clone(),
            quant_parameter_tensor_names: vec![StringStringEntryProto {
                key: "finn_datatype".into(),
                value: datatype,
            }],
        });
    }
}
