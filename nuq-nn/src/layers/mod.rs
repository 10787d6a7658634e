//! Layer implementations.

mod batchnorm;
mod block;
mod conv;
mod flatten;
mod graph;
mod linear;
mod pool;
mod relu;
mod sequential;

pub use batchnorm::{BatchNorm2d, RELU6_MAX};
pub use block::basic_block;
pub use conv::{Conv2d, Conv2dConfig};
pub use flatten::Flatten;
pub use graph::{Add, Graph, GraphNode, Op};
pub use linear::Linear;
pub use pool::{GlobalAvgPool, MaxPool2d};
pub use relu::{Relu, Relu6};
pub use sequential::Sequential;
