//! The built-in controlled experiment that proves (or not) that personalized plans work: a
//! seeded, stable share of HCPs per product is held out and gets the deck's default order, and
//! the two arms are compared on stage progression and on prescriptions (difference in
//! differences against each HCP's own prior periods), with 95% confidence intervals and "not
//! enough data" below a minimum sample. Pure: the store sums each arm's per-HCP figures
//! ([`Moments`]), this module turns them into an estimate. Design: docs/adr/0022-holdout-experiment.md.

use serde::{Deserialize, Serialize};

use super::profile::HcpProfile;
use super::stages::ExperimentPolicy;

/// The experiment arm of one HCP for one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    /// Gets personalized plans.
    Treatment,
    /// Gets the deck's default order (the control group).
    Holdout,
}

impl Arm {
    pub fn as_str(self) -> &'static str {
        match self {
            Arm::Treatment => "treatment",
            Arm::Holdout => "holdout",
        }
    }

    pub fn parse(s: &str) -> Option<Arm> {
        [Arm::Treatment, Arm::Holdout].into_iter().find(|a| a.as_str() == s)
    }
}

/// Where `(seed, product, hcp)` falls in `[0, 1)`: the first 8 bytes of their SHA-256 as a
/// fraction. Stable across processes, platforms and the order HCPs are met in.
pub fn position(seed: &str, product: &str, hcp_id: &str) -> f64 {
    let d = edetail_bundle::Sha256Digest::of(format!("edetail holdout\n{seed}\n{product}\n{hcp_id}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.0[..8]);
    // 53 bits: exactly representable in an f64.
    (u64::from_be_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// The arm the policy assigns (ignoring any arm already recorded).
pub fn assign(policy: &ExperimentPolicy, product: &str, hcp_id: &str) -> Arm {
    if policy.holdout_share > 0.0 && position(&policy.seed, product, hcp_id) < policy.holdout_share { Arm::Holdout } else { Arm::Treatment }
}

/// Her arm for the product: the one recorded when she was enrolled (her first plan), else the
/// policy's. A recorded arm never changes, even when the operator changes the share or seed.
pub fn arm_for(profile: &HcpProfile, product: &str, policy: &ExperimentPolicy) -> Arm {
    profile
        .products
        .get(product)
        .and_then(|f| f.arm.as_deref())
        .and_then(Arm::parse)
        .unwrap_or_else(|| assign(policy, product, &profile.hcp_id))
}

/// Days a progression figure is measured over at least (a week-old enrolment is not
/// extrapolated to a month).
pub const MIN_OBSERVED_DAYS: f64 = 30.0;

/// Her stage progression per 30 days since enrolment: rungs climbed (0-4) * 30 / days
/// observed, the days counted as at least [`MIN_OBSERVED_DAYS`].
pub fn progression_per_30_days(level_now: u8, level_at_enrolment: u8, days_observed: f64) -> f64 {
    (level_now as f64 - level_at_enrolment as f64) * 30.0 / days_observed.max(MIN_OBSERVED_DAYS)
}

/// Her prescription change: mean monthly count from her enrolment month on, minus the mean
/// before it. `None` without periods on both sides (she cannot be her own baseline).
pub fn rx_change(before: &[f64], after: &[f64]) -> Option<f64> {
    if before.is_empty() || after.is_empty() {
        return None;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    Some(mean(after) - mean(before))
}

/// Count, sum and sum of squares of one arm's per-HCP figures (what SQL sums).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    pub n: u64,
    pub sum: f64,
    pub sum_sq: f64,
}

impl Moments {
    pub fn add(&mut self, x: f64) {
        self.n += 1;
        self.sum += x;
        self.sum_sq += x * x;
    }

    pub fn of(xs: impl IntoIterator<Item = f64>) -> Moments {
        let mut m = Moments::default();
        for x in xs {
            m.add(x);
        }
        m
    }

    pub fn mean(&self) -> f64 {
        if self.n == 0 { 0.0 } else { self.sum / self.n as f64 }
    }

    /// Sample variance (n - 1); 0 below two values.
    pub fn variance(&self) -> f64 {
        if self.n < 2 {
            return 0.0;
        }
        let n = self.n as f64;
        ((self.sum_sq - self.sum * self.sum / n) / (n - 1.0)).max(0.0)
    }
}

/// z for a two-sided 95% interval. With at least 30 HCPs per arm (the default minimum) the
/// normal approximation of Welch's interval is within a few percent of Student's t.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// Treatment against holdout on one figure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Estimate {
    /// Fewer HCPs than the minimum in an arm: no number is shown.
    NotEnoughData { treatment_n: u64, holdout_n: u64, min_per_arm: u64 },
    /// Difference of the arms' means (treatment - holdout) with its 95% interval.
    Effect { treatment_n: u64, holdout_n: u64, treatment_mean: f64, holdout_mean: f64, difference: f64, low: f64, high: f64 },
}

impl Estimate {
    /// The interval excludes zero.
    pub fn is_significant(&self) -> bool {
        matches!(self, Estimate::Effect { low, high, .. } if *low > 0.0 || *high < 0.0)
    }
}

/// Welch's comparison of two arms' means with a 95% interval, or "not enough data".
pub fn compare(treatment: &Moments, holdout: &Moments, min_per_arm: u64) -> Estimate {
    let min = min_per_arm.max(2);
    if treatment.n < min || holdout.n < min {
        return Estimate::NotEnoughData { treatment_n: treatment.n, holdout_n: holdout.n, min_per_arm: min };
    }
    let difference = treatment.mean() - holdout.mean();
    let se = (treatment.variance() / treatment.n as f64 + holdout.variance() / holdout.n as f64).sqrt();
    Estimate::Effect {
        treatment_n: treatment.n,
        holdout_n: holdout.n,
        treatment_mean: treatment.mean(),
        holdout_mean: holdout.mean(),
        difference,
        low: difference - Z_95 * se,
        high: difference + Z_95 * se,
    }
}
