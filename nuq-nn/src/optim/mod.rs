//! Optimisers and learning-rate schedules.
//!
//! Optimisers keep one state vector per parameter, keyed by the parameter's position in the
//! model's fixed visiting order and checked against its name; [`Optimizer::state`] and
//! [`Optimizer::load_state`] expose that state by name for checkpoints.

mod adamw;
mod schedule;
mod sgd;

pub use adamw::AdamW;
pub use schedule::{LrSchedule, Schedule};
pub use sgd::{Sgd, WeightDecay};

use std::collections::HashMap;

use crate::error::NnError;
use crate::models::Parameterized;

/// A named state tensor of an optimiser (e.g. `momentum_buffer.conv1.weight`).
pub type StateTensor = (String, Vec<f32>);

/// Common interface of the optimisers.
pub trait Optimizer: Send {
    /// Applies one update with learning rate `lr` to every parameter, from its current gradient.
    fn step(&mut self, model: &mut dyn Parameterized, lr: f32) -> Result<(), NnError>;

    /// The state tensors by name, and the scalar state (steps taken).
    fn state(&self) -> (Vec<StateTensor>, u64);

    /// Restores state saved by [`Optimizer::state`].
    fn load_state(&mut self, tensors: Vec<StateTensor>, steps: u64) -> Result<(), NnError>;
}

/// Per-parameter state slots in visiting order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Slots {
    pub names: Vec<String>,
    pub bufs: Vec<Vec<Vec<f32>>>,
    /// Restored state not yet claimed by a parameter, by name.
    pending: HashMap<String, Vec<Vec<f32>>>,
}

impl Slots {
    /// The `k` state vectors of parameter `index` (named `name`, `len` values), created zeroed
    /// on first use.
    pub fn get(
        &mut self,
        index: usize,
        name: &str,
        len: usize,
        k: usize,
    ) -> Result<&mut Vec<Vec<f32>>, NnError> {
        if index == self.names.len() {
            let bufs = match self.pending.remove(name) {
                Some(b) if b.len() == k && b.iter().all(|v| v.len() == len) => b,
                Some(b) => {
                    return Err(NnError::OptimizerState {
                        name: name.to_string(),
                        why: format!(
                            "{} tensors of {:?} values restored, expected {k} of {len}",
                            b.len(),
                            b.iter().map(Vec::len).collect::<Vec<_>>()
                        ),
                    })
                }
                None => vec![vec![0.0; len]; k],
            };
            self.names.push(name.to_string());
            self.bufs.push(bufs);
        }
        if index > self.names.len() || self.names[index] != name || self.bufs[index][0].len() != len
        {
            return Err(NnError::OptimizerState {
                name: name.to_string(),
                why: format!(
                    "slot {index} belongs to {:?}, not to this parameter of {len} values",
                    self.names.get(index)
                ),
            });
        }
        Ok(&mut self.bufs[index])
    }

    pub fn export(&self, kinds: &[&str]) -> Vec<StateTensor> {
        let mut out = Vec::new();
        let mut pending: Vec<(&String, &Vec<Vec<f32>>)> = self.pending.iter().collect();
        pending.sort_by(|a, b| a.0.cmp(b.0));
        for (name, bufs) in self.names.iter().zip(&self.bufs).chain(pending) {
            for (kind, b) in kinds.iter().zip(bufs) {
                out.push((format!("{kind}.{name}"), b.clone()));
            }
        }
        out
    }

    pub fn import(kinds: &[&str], tensors: Vec<StateTensor>) -> Result<Self, NnError> {
        let mut slots = Slots::default();
        let mut pending: Vec<(String, Vec<Option<Vec<f32>>>)> = Vec::new();
        for (full, v) in tensors {
            let (ki, name) = kinds
                .iter()
                .enumerate()
                .find_map(|(i, k)| {
                    full.strip_prefix(&format!("{k}."))
                        .map(|n| (i, n.to_string()))
                })
                .ok_or_else(|| NnError::OptimizerState {
                    name: full.clone(),
                    why: "not a state tensor of this optimiser".into(),
                })?;
            let pos = match pending.iter().position(|(n, _)| *n == name) {
                Some(p) => p,
                None => {
                    pending.push((name, vec![None; kinds.len()]));
                    pending.len() - 1
                }
            };
            pending[pos].1[ki] = Some(v);
        }
        for (name, bufs) in pending {
            let bufs: Option<Vec<Vec<f32>>> = bufs.into_iter().collect();
            let bufs = bufs.ok_or_else(|| NnError::OptimizerState {
                name: name.clone(),
                why: "incomplete".into(),
            })?;
            slots.pending.insert(name, bufs);
        }
        Ok(slots)
    }
}
