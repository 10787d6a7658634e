//! Softmax cross-entropy with optional label smoothing, and knowledge distillation from a
//! teacher's logits.

use crate::error::NnError;
use crate::tensor::Tensor;

/// Mean softmax cross-entropy over a batch, with PyTorch's label smoothing: the target is
/// `(1 − ε)·onehot + ε/classes`.
#[derive(Clone, Debug, Default)]
pub struct CrossEntropy {
    /// Label smoothing ε in `[0, 1)`.
    pub smoothing: f32,
    grad: Tensor,
    /// Scratch of [`CrossEntropy::forward_distilled`]: a row's student and teacher
    /// log-probabilities.
    log_probs: Vec<f64>,
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

    /// Knowledge distillation (Hinton et al., 2015): the mean of
    /// `(1 − w)·CE(logits, labels) + w·T²·KL(softmax(teacher/T) ‖ softmax(logits/T))` over the
    /// batch, with `w` = [`Distill::weight`] and `T` = [`Distill::temperature`] (the `T²`
    /// keeps the soft term's gradient on the scale of the hard one's). Stores the gradient
    /// with respect to `logits` (read with [`CrossEntropy::grad`]); `correct` counts the
    /// student's arg-max against the labels.
    ///
    /// # Errors
    /// As [`CrossEntropy::forward`]; [`NnError::InputShape`] when `teacher` is not shaped as
    /// `logits`; [`NnError::InvalidParameter`] for an invalid `d` ([`Distill::validate`]).
    pub fn forward_distilled(
        &mut self,
        logits: &Tensor,
        labels: &[u32],
        teacher: &Tensor,
        d: Distill,
    ) -> Result<LossOutput, NnError> {
        d.validate()?;
        if teacher.shape() != logits.shape() {
            return Err(NnError::InputShape {
                layer: "distillation teacher".into(),
                found: teacher.shape(),
                reason: format!("expected the student's logit shape {:?}", logits.shape()),
            });
        }
        let hard = self.forward(logits, labels)?;
        let [n, _, _, classes] = logits.shape();
        let (w, t) = (f64::from(d.weight), f64::from(d.temperature));
        let inv_n = 1.0 / n as f64;
        let mut soft = 0.0f64;
        self.log_probs.resize(2 * classes, 0.0);
        let (ps, pt) = self.log_probs.split_at_mut(classes);
        for i in 0..n {
            let row = i * classes..(i + 1) * classes;
            log_softmax(&logits.data()[row.clone()], t, ps);
            log_softmax(&teacher.data()[row.clone()], t, pt);
            let g = &mut self.grad.data_mut()[row];
            for j in 0..classes {
                let (lps, lpt) = (ps[j], pt[j]);
                let pt_j = lpt.exp();
                soft += pt_j * (lpt - lps);
                let dsoft = t * (lps.exp() - pt_j) * inv_n;
                g[j] = ((1.0 - w) * f64::from(g[j]) + w * dsoft) as f32;
            }
        }
        Ok(LossOutput {
            loss: ((1.0 - w) * f64::from(hard.loss) + w * t * t * soft * inv_n) as f32,
            correct: hard.correct,
        })
    }
}

/// Writes `log softmax(z / t)` into `out`.
fn log_softmax(z: &[f32], t: f64, out: &mut [f64]) {
    let best = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let best = f64::from(best) / t;
    let log_sum = z
        .iter()
        .map(|&v| (f64::from(v) / t - best).exp())
        .sum::<f64>()
        .ln();
    for (o, &v) in out.iter_mut().zip(z) {
        *o = f64::from(v) / t - best - log_sum;
    }
}

/// Knowledge distillation from a teacher's logits ([`CrossEntropy::forward_distilled`]).
///
/// ```
/// use nuq_nn::Distill;
/// let d = Distill { weight: 0.5, temperature: 4.0 };
/// assert!(d.validate().is_ok());
/// assert!(Distill { weight: 1.5, ..d }.validate().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Distill {
    /// Share of the distillation term in the loss, in `(0, 1]` (1: the teacher alone, no
    /// labels).
    pub weight: f32,
    /// Softmax temperature of both distributions, positive and finite.
    pub temperature: f32,
}

impl Distill {
    /// Checks the weight and the temperature.
    ///
    /// # Errors
    /// [`NnError::InvalidParameter`] naming the field.
    pub fn validate(&self) -> Result<(), NnError> {
        if !(self.weight > 0.0 && self.weight <= 1.0) {
            return Err(NnError::InvalidParameter {
                what: "distillation weight".into(),
                allowed: "in (0, 1]",
                found: self.weight.to_string(),
            });
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(NnError::InvalidParameter {
                what: "distillation temperature".into(),
                allowed: "positive and finite",
                found: self.temperature.to_string(),
            });
        }
        Ok(())
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
    fn distillation_gradient_matches_finite_differences() {
        let z = vec![0.3, -1.2, 0.8, 0.1, 0.5, -0.4];
        let teacher = Tensor::from_vec([2, 1, 1, 3], vec![1.1, 0.2, -0.7, -0.3, 2.0, 0.4]).unwrap();
        let labels = [1, 2];
        for d in [
            Distill {
                weight: 1.0,
                temperature: 1.0,
            },
            Distill {
                weight: 0.5,
                temperature: 4.0,
            },
            Distill {
                weight: 0.3,
                temperature: 0.5,
            },
        ] {
            let mut ce = CrossEntropy::new(0.1).unwrap();
            let loss = |ce: &mut CrossEntropy, z: Vec<f32>| {
                let x = Tensor::from_vec([2, 1, 1, 3], z).unwrap();
                f64::from(ce.forward_distilled(&x, &labels, &teacher, d).unwrap().loss)
            };
            loss(&mut ce, z.clone());
            let g = ce.grad().data().to_vec();
            for i in 0..z.len() {
                let eps = 1e-3;
                let (mut zp, mut zm) = (z.clone(), z.clone());
                zp[i] += eps;
                zm[i] -= eps;
                let num = (loss(&mut ce, zp) - loss(&mut ce, zm)) / (2.0 * f64::from(eps));
                assert!(
                    (num - f64::from(g[i])).abs() < 2e-3,
                    "{d:?} {i}: {num} vs {}",
                    g[i]
                );
            }
        }
    }

    #[test]
    fn distilling_a_copy_of_itself_costs_nothing() {
        let z = Tensor::from_vec([2, 1, 1, 3], vec![0.3, -1.2, 0.8, 0.1, 0.5, -0.4]).unwrap();
        let mut ce = CrossEntropy::new(0.0).unwrap();
        let d = Distill {
            weight: 1.0,
            temperature: 3.0,
        };
        let out = ce.forward_distilled(&z, &[2, 0], &z, d).unwrap();
        assert!(out.loss.abs() < 1e-6, "{}", out.loss);
        assert!(ce.grad().data().iter().all(|g| g.abs() < 1e-7));
        assert_eq!(out.correct, 1);
        // Half the weight on the labels: the loss is half the hard loss.
        let hard = ce.forward(&z, &[2, 0]).unwrap().loss;
        let half = ce
            .forward_distilled(&z, &[2, 0], &z, Distill { weight: 0.5, ..d })
            .unwrap()
            .loss;
        assert!((half - 0.5 * hard).abs() < 1e-6);
    }

    #[test]
    fn distillation_rejects_bad_settings_and_shapes() {
        let z = Tensor::zeros([2, 1, 1, 3]);
        let mut ce = CrossEntropy::new(0.0).unwrap();
        let ok = Distill {
            weight: 0.5,
            temperature: 2.0,
        };
        for bad in [
            Distill { weight: 0.0, ..ok },
            Distill { weight: 1.01, ..ok },
            Distill {
                weight: f32::NAN,
                ..ok
            },
            Distill {
                temperature: 0.0,
                ..ok
            },
            Distill {
                temperature: f32::INFINITY,
                ..ok
            },
        ] {
            assert!(matches!(
                ce.forward_distilled(&z, &[0, 1], &z, bad),
                Err(NnError::InvalidParameter { .. })
            ));
        }
        assert!(matches!(
            ce.forward_distilled(&z, &[0, 1], &Tensor::zeros([2, 1, 1, 4]), ok),
            Err(NnError::InputShape { .. })
        ));
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
