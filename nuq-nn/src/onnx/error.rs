//! [`OnnxError`]: why an ONNX file was not imported.

use thiserror::Error;

use crate::error::NnError;

/// Where in the graph a problem is: the node's position in the file's node list (0-based),
/// its name and its operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRef {
    /// Position of the node in `graph.node` (0-based), of `count` nodes.
    pub index: usize,
    /// Number of nodes in the graph.
    pub count: usize,
    /// The node's name (may be empty: ONNX makes names optional).
    pub name: String,
    /// The operator, e.g. `Conv` (with its domain when not the standard one).
    pub op: String,
}

impl std::fmt::Display for NodeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "graph.node[{}] of {} ({} {:?})",
            self.index, self.count, self.op, self.name
        )
    }
}

/// Errors from [`crate::onnx::import`].
#[derive(Debug, Error)]
pub enum OnnxError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The bytes are not a protobuf-encoded ONNX model (truncated, corrupt or another format).
    #[error("not a valid ONNX file: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The file decodes but holds no graph (an empty or non-ONNX protobuf message).
    #[error(
        "not an ONNX model: it holds no graph (ir_version {ir_version}, {opsets} opset entries)"
    )]
    NoGraph {
        /// The IR version the file states (0 when absent).
        ir_version: i64,
        /// How many operator sets it imports.
        opsets: usize,
    },
    /// The model imports a version of the standard operator set the importer does not read.
    #[error("standard operator set version {found} is not supported; the importer reads versions {min}–{max} (re-export with opset_version in that range)")]
    Opset {
        /// The version in the file.
        found: i64,
        /// Oldest version read.
        min: i64,
        /// Newest version read.
        max: i64,
    },
    /// An operator nuq has no layer for, or an operator configuration nuq's layers cannot
    /// express.
    #[error("{node}: {reason}")]
    UnsupportedOp {
        /// The node.
        node: NodeRef,
        /// Why it cannot be imported.
        reason: String,
    },
    /// An attribute or constant input of a supported operator has a value that is malformed.
    #[error("{node}: {what}: {problem}")]
    BadValue {
        /// The node.
        node: NodeRef,
        /// The attribute or input.
        what: String,
        /// What a valid value is and what the file holds (`expected …, found …`).
        problem: String,
    },
    /// A node reads a tensor that no initializer, constant, graph input or earlier node
    /// provides, or needs a constant (a weight) where the value is computed at run time.
    #[error("{node}: input {input:?} {problem}")]
    Input {
        /// The node.
        node: NodeRef,
        /// The tensor name.
        input: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A constant tensor (initializer or `Constant` node) cannot be decoded.
    #[error("tensor {name:?}: {problem}")]
    Tensor {
        /// The tensor name.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// The graph's inputs or outputs are not one image batch in and one score matrix out.
    #[error("graph {what}: {problem}")]
    Interface {
        /// `input` or `output`.
        what: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The graph's connections are not a chain of layers with two-branch residual blocks,
    /// the shapes nuq's network expresses.
    #[error("{node}: {problem}")]
    Structure {
        /// The node where the walk stopped.
        node: NodeRef,
        /// What nuq cannot express.
        problem: String,
    },
    /// A node does not lie on the path from the graph's input to its output; the importer
    /// refuses rather than drop it.
    #[error("{node}: not on the path from the graph input to its output (nuq imports every node or refuses)")]
    Unreached {
        /// The node.
        node: NodeRef,
    },
    /// Building nuq's layers from the imported values failed.
    #[error("building the network: {0}")]
    Layer(#[source] Box<NnError>),
}

impl From<NnError> for OnnxError {
    fn from(e: NnError) -> Self {
        OnnxError::Layer(Box::new(e))
    }
}
