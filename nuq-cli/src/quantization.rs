//! The quantizer options the commands share, turned into the library's
//! [`Recipe`].

use clap::Args;
use nuq_core::{Assignment, BinLevel};
use nuq_nn::pipeline::Recipe;
use nuq_nn::quant::{family_name, Family, KQuantileRule, QuantConfig};
use nuq_nn::Distill;

/// Parses a codebook family for clap.
pub fn parse_family(s: &str) -> Result<Family, String> {
    nuq_nn::quant::parse_family(s).map_err(|e| e.to_string())
}

/// How to quantize.
#[derive(Debug, Clone, Args)]
pub struct QuantArgs {
    /// Bits of the inner layers' weights and activations (2..=8).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(2..=8))]
    pub bits: u8,
    /// Weight bits, if different from --bits.
    #[arg(long, value_parser = clap::value_parser!(u8).range(2..=8))]
    pub weight_bits: Option<u8>,
    /// Activation bits, if different from --bits.
    #[arg(long, value_parser = clap::value_parser!(u8).range(2..=8))]
    pub act_bits: Option<u8>,
    /// Codebook family of weights and activations: kquantile (the paper), lloyd, apot, uniform.
    #[arg(long, default_value = "kquantile", value_parser = parse_family)]
    pub family: Family,
    /// Weight codebook family, if different from --family.
    #[arg(long, value_parser = parse_family)]
    pub weight_family: Option<Family>,
    /// Activation codebook family, if different from --family.
    #[arg(long, value_parser = parse_family)]
    pub act_family: Option<Family>,
    /// One weight scale per tensor instead of one per output channel.
    #[arg(long)]
    pub per_tensor: bool,
    /// Weight bits of the first convolution and the classifier.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(2..=8))]
    pub edge_bits: u8,
    /// Activation thresholds per output channel (k-quantile: each channel's own equal-mass
    /// quantiles, one level table per layer); default one threshold set per layer.
    #[arg(long)]
    pub act_per_channel: bool,
    /// Learn the activation clips and weight scales during fine-tuning (APoT-style clip
    /// gradient from every element, LSQ gradient scaling); default: kept where calibration
    /// put them.
    #[arg(long)]
    pub learn_clip: bool,
    /// Weight normalisation for fine-tuning: each inner convolution's output channel uses
    /// its weights minus their mean (APoT's (w − mean)/std; the per-channel scale divides by
    /// the spread).
    #[arg(long)]
    pub weight_norm: bool,
    /// Training images the activation quantizers are calibrated on.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub calib_images: u64,
    /// Epochs of quantization-aware fine-tuning after calibration (fractions allowed; 0:
    /// post-training quantization only).
    #[arg(long, default_value_t = 0.0, value_parser = parse_epochs)]
    pub qat_epochs: f32,
    /// Peak learning rate of the fine-tuning (cosine decay to zero).
    #[arg(long, default_value_t = nuq_nn::pipeline::QAT_LR)]
    pub qat_lr: f32,
    /// Images per fine-tuning step (at a fixed --qat-epochs, smaller batches take more steps).
    #[arg(long, default_value_t = nuq_nn::pipeline::QAT_BATCH as u64, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub qat_batch: u64,
    /// Refit the weight codebooks to the float masters and recalibrate the activation
    /// quantizers every N fine-tuning steps (0: keep the first calibration).
    #[arg(long, default_value_t = 0, value_name = "STEPS")]
    pub recalib_every: u64,
    /// Progressive bit reduction: fine-tune at these wider bit widths first (comma list,
    /// descending, e.g. 8,4 before --bits 3); the fine-tuning images are split equally
    /// between the stages and the final width.
    #[arg(long, value_delimiter = ',', value_name = "BITS", value_parser = clap::value_parser!(u8).range(2..=8))]
    pub progressive: Vec<u8>,
    /// How k-quantile weights are assigned: quantile (by their empirical CDF within each
    /// row: equal-mass bins, boundaries at the quantiles; the paper's quantizer) or nearest
    /// (to the nearest of the equal-mass centroids).
    #[arg(long, default_value = "quantile", value_parser = parse_assignment)]
    pub assign: Assignment,
    /// What a k-quantile weight bin's level stands at under quantile assignment: centroid
    /// (mean of the bin) or median.
    #[arg(long, default_value = "centroid", value_parser = parse_bin_level)]
    pub bin_level: BinLevel,
    /// Keep the k-quantile weights' equal-mass boundaries where calibration (or
    /// --recalib-every) put them during fine-tuning, instead of recomputing each row's
    /// quantiles from the float masters at every step.
    #[arg(long)]
    pub fixed_quantiles: bool,
    /// UNIQ training: the first SHARE of each fine-tuning stage's steps use noisy k-quantile
    /// weights (uniform noise one bin wide in the CDF domain, mapped back through the row's
    /// inverse CDF) instead of the straight-through estimator (0: STE throughout).
    #[arg(long, default_value_t = 0.0, value_name = "SHARE", value_parser = parse_share)]
    pub uniq_noise: f32,
    /// UNIQ's gradual schedule: split the weight layers, in forward order, into N blocks
    /// quantized one stage after another, the fine-tuning split equally between the stages.
    /// At stage i block i is quantized (codebooks refitted, activation quantizers calibrated
    /// with the earlier blocks quantized) and trained (--uniq-noise's share of the stage with
    /// noise, then STE); earlier blocks stay quantized and frozen (see
    /// --gradual-train-done); later blocks run in full precision (float weights and
    /// activations) and train. 0 or 1: all layers at once. Needs --qat-epochs; not with
    /// --progressive.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub gradual: usize,
    /// With --gradual: keep training the blocks of finished stages (quantized, STE) instead
    /// of freezing them (UNIQ's choice).
    #[arg(long)]
    pub gradual_train_done: bool,
    /// Knowledge distillation during fine-tuning: the float network before quantization is
    /// the teacher, and the loss is (1 − W)·cross-entropy on the labels + W·T²·KL(teacher ‖
    /// student) at temperature --distill-temperature (0: labels only).
    #[arg(long, default_value_t = 0.0, value_name = "W", value_parser = parse_share)]
    pub distill: f32,
    /// Softmax temperature T of --distill.
    #[arg(long, default_value_t = 1.0, value_name = "T", value_parser = parse_temperature)]
    pub distill_temperature: f32,
}

fn parse_temperature(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(t) if t.is_finite() && t > 0.0 && t <= 100.0 => Ok(t),
        _ => Err(format!("expected a temperature in (0, 100], got {s:?}")),
    }
}

fn parse_assignment(s: &str) -> Result<Assignment, String> {
    match s {
        "quantile" => Ok(Assignment::Quantile),
        "nearest" => Ok(Assignment::Nearest),
        _ => Err(format!("expected quantile or nearest, got {s:?}")),
    }
}

fn parse_bin_level(s: &str) -> Result<BinLevel, String> {
    match s {
        "centroid" => Ok(BinLevel::Centroid),
        "median" => Ok(BinLevel::Median),
        _ => Err(format!("expected centroid or median, got {s:?}")),
    }
}

fn parse_share(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(e) if (0.0..=1.0).contains(&e) => Ok(e),
        _ => Err(format!("expected a share in [0, 1], got {s:?}")),
    }
}

fn parse_epochs(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(e) if (0.0..=1000.0).contains(&e) => Ok(e),
        _ => Err(format!(
            "expected a number of epochs in [0, 1000], got {s:?}"
        )),
    }
}

impl QuantArgs {
    /// The library configuration these options describe.
    pub fn config(&self) -> QuantConfig {
        let mut c = QuantConfig::new(self.bits, self.family);
        c.weight_bits = self.weight_bits.unwrap_or(self.bits);
        c.act_bits = self.act_bits.unwrap_or(self.bits);
        c.weight_family = self.weight_family.unwrap_or(self.family);
        c.act_family = self.act_family.unwrap_or(self.family);
        c.per_channel = !self.per_tensor;
        c.edge_bits = self.edge_bits;
        c.act_per_channel = self.act_per_channel;
        c.learn_clip = self.learn_clip;
        c.weight_norm = self.weight_norm;
        c.kq_rule = KQuantileRule {
            assign: self.assign,
            level: self.bin_level,
        };
        c.follow_quantiles = !self.fixed_quantiles;
        c
    }

    /// A short description, e.g. `W4/A4 kquantile/kquantile per-channel, first/last 8-bit`.
    pub fn describe(&self) -> String {
        let c = self.config();
        let scope = if c.per_channel {
            "per-channel"
        } else {
            "per-tensor"
        };
        let mut d = format!(
            "W{}/A{} {}/{} {scope}, first/last {}-bit",
            c.weight_bits,
            c.act_bits,
            family_name(c.weight_family),
            family_name(c.act_family),
            c.edge_bits
        );
        if c.weight_family == Family::KQuantile {
            d.push_str(&format!(
                ", {} weights ({} levels{})",
                c.kq_rule.assign.name(),
                c.kq_rule.level.name(),
                if c.follow_quantiles {
                    ""
                } else {
                    ", fixed quantiles"
                }
            ));
        }
        if self.uniq_noise > 0.0 {
            d.push_str(&format!(", UNIQ noise for {} of QAT", self.uniq_noise));
        }
        if self.distill > 0.0 {
            d.push_str(&format!(
                ", distilled from float (weight {}, T {})",
                self.distill, self.distill_temperature
            ));
        }
        if self.gradual > 1 {
            d.push_str(&format!(
                ", gradual in {} stages ({} done blocks)",
                self.gradual,
                if self.gradual_train_done {
                    "trained"
                } else {
                    "frozen"
                }
            ));
        }
        if c.act_per_channel {
            d.push_str(", per-channel activation thresholds");
        }
        if c.learn_clip {
            d.push_str(", learned clips");
        }
        if c.weight_norm {
            d.push_str(", weight normalisation");
        }
        if !self.progressive.is_empty() {
            let stages: Vec<String> = self.progressive.iter().map(u8::to_string).collect();
            d.push_str(&format!(", progressive {} first", stages.join("→")));
        }
        if self.recalib_every > 0 {
            d.push_str(&format!(
                ", recalibrated every {} steps",
                self.recalib_every
            ));
        }
        d
    }
}

impl QuantArgs {
    /// The library recipe for a training set of `train_len` images.
    pub fn recipe(&self, train_len: usize, seed: u64) -> Recipe {
        Recipe {
            config: self.config(),
            calib_images: usize::try_from(self.calib_images).unwrap_or(usize::MAX),
            qat_images: (f64::from(self.qat_epochs) * train_len as f64).round() as usize,
            qat_lr: self.qat_lr,
            qat_batch: usize::try_from(self.qat_batch).unwrap_or(usize::MAX),
            seed,
            recalib_every: usize::try_from(self.recalib_every).unwrap_or(usize::MAX),
            stages: self.progressive.clone(),
            noise_share: self.uniq_noise,
            gradual: self.gradual,
            freeze_done: !self.gradual_train_done,
            distill: (self.distill > 0.0).then_some(Distill {
                weight: self.distill,
                temperature: self.distill_temperature,
            }),
        }
    }
}
