//! Softmax cross-entropy with optional label smoothing.

use crate::error::NnError;
use crate::tensor::Tensor;

/// Mean softmax cross-entropy over a batch, with PyTorch's label smoothing: the target is
/// `(1 − ε)·onehot + ε/classes`.
#[derive(Clone, Debug, Default)]
pub struct CrossEntropy {
    /// Label smoothing ε in `[0, 1)`.
    pub smoothing: f32,
    grad: Tensor,
    probs: Vec<f32>,
}

/// Result of [`CrossEntropy::forward`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossOutput {
    /// Mean loss over the batch.
    pub loss: f32,
    /// Number of samples whose arg-max logit equals the label.
    pub correct: usize,
}

impl CrossEntropy {
    /// A loss with label smoothing `smoothing` (0 for plain cross-entropy).
    pub fn new(smoothing: f32) -> Result<Self, NnError> {
        if !(0.0..1.0).contains(&smoothing) {
            return Err(NnError::InvalidParameter {
                what: "label smoothing".into(),
                allowed: "in [0, 1)",
                found: smoothing.to_string(),
            });
        }
        Ok(Self {
            smoothing,
            ..Self::default()
        })
    }

    /// Computes the loss of `logits` (`[n, 1, 1, classes]`) against `labels` and stores the
    /// gradient with respect to the logits (read with [`CrossEntropy::grad`]).
    pub fn forward(&mut self, logits: &Tensor, labels: &[u32]) -> Result<LossOutput, NnError> {
        let [n, h, w, classes] = logits.shape();
        if h != 1 || w != 1 || labels.len() != n || classes == 0 {
            return Err(NnError::InputShape {
                layer: "CrossEntropy".into(),
                found: logits.shape(),
                reason: format!("expected [{}, 1, 1, classes ≥ 1] logits", labels.len()),
            });
        }
        if let Some((index, &label)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= classes)
        {
            return Err(NnError::Label {
                label,
                index,
                classes,
            });
        }
        self.grad.reshape_uninit(logits.shape());
        self.probs.resize(classes, 0.0);
        let eps = self.smoothing as f64;
        let off = eps / classes as f64;
        let on = 1.0 - eps + off;
        let inv_n = 1.0 / n as f64;
        let mut total = 0.0f64;
        let mut correct = 0;
        for (i, &label) in labels.iter().enumerate() {
            let z = &logits.data()[i * classes..(i + 1) * classes];
            let (mut best, mut arg) = (f32::NEG_INFINITY, 0);
            for (j, &v) in z.iter().enumerate() {
                if v > best {
                    best = v;
                    arg = j;
                }
            }
            if arg == label as usize {
                correct += 1;
            }
            let sum: f64 = z.iter().map(|&v| ((v - best) as f64).exp()).sum();
            let log_sum = sum.ln();
            let g = &mut self.grad.data_mut()[i * classes..(i + 1) * classes];
            for (j, &v) in z.iter().enumerate() {
                let logp = (v - best) as f64 - log_sum;
                let t = if j == label as usize { on } else { off };
                total -= t * logp;
                g[j] = ((logp.exp() - t) * inv_n) as f32;
            }
        }
        Ok(LossOutput {
            loss: (total * inv_n) as f32,
            correct,
        })
    }

    /// Gradient of the mean loss with respect to the logits of the last `forward`.
    pub fn grad(&self) -> &Tensor {
        &self.grad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hand_computation() {
        // logits (1, 2, 3), label 2: loss = ln(e¹+e²+e³) − 3.
        let logits = Tensor::from_vec([1, 1, 1, 3], vec![1.0, 2.0, 3.0]).unwrap();
        let mut ce = CrossEntropy::new(0.0).unwrap();
        let out = ce.forward(&logits, &[2]).unwrap();
        let lse = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
        assert!((out.loss as f64 - (lse - 3.0)).abs() < 1e-6);
        assert_eq!(out.correct, 1);
        let p2 = (3.0 - lse).exp();
        assert!((ce.grad().data()[2] as f64 - (p2 - 1.0)).abs() < 1e-6);
        // smoothing 0.3 over 3 classes: targets (0.1, 0.1, 0.8).
        let mut ces = CrossEntropy::new(0.3).unwrap();
        let o = ces.forward(&logits, &[2]).unwrap();
        let want = -(0.1 * (1.0 - lse) + 0.1 * (2.0 - lse) + 0.8 * (3.0 - lse));
        assert!((o.loss as f64 - want).abs() < 1e-6);
        let g0 = ((1.0 - lse).exp() - 0.1) as f32;
        assert!((ces.grad().data()[0] - g0).abs() < 1e-6);
    }

    #[test]
    fn rejects_bad_labels_and_shapes() {
        let logits = Tensor::zeros([2, 1, 1, 3]);
        let mut ce = CrossEntropy::new(0.0).unwrap();
        assert!(matches!(
            ce.forward(&logits, &[0, 3]),
            Err(NnError::Label {
                label: 3,
                index: 1,
                classes: 3
            })
        ));
        assert!(ce.forward(&logits, &[0]).is_err());
        assert!(CrossEntropy::new(1.0).is_err());
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let z = vec![0.3, -1.2, 0.8, 0.1, 0.5, -0.4];
        let labels = [1, 2];
        let mut ce = CrossEntropy::new(0.1).unwrap();
        ce.forward(&Tensor::from_vec([2, 1, 1, 3], z.clone()).unwrap(), &labels)
            .unwrap();
        let g = ce.grad().data().to_vec();
        for i in 0..z.len() {
            let eps = 1e-3;
            let mut zp = z.clone();
            zp[i] += eps;
            let mut zm = z.clone();
            zm[i] -= eps;
            let lp = ce
                .forward(&Tensor::from_vec([2, 1, 1, 3], zp).unwrap(), &labels)
                .unwrap()
                .loss;
            let lm = ce
                .forward(&Tensor::from_vec([2, 1, 1, 3], zm).unwrap(), &labels)
                .unwrap()
                .loss;
            let num = (lp - lm) / (2.0 * eps);
            assert!((num - g[i]).abs() < 1e-3, "{i}: {num} vs {}", g[i]);
        }
    }
}
