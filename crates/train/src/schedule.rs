//! Learning-rate schedule: linear warm-up then cosine decay (Loshchilov & Hutter 2017,
//! arXiv:1608.03983, without restarts), as in the reference experiment of TRAINING-NOTES.md.

/// Learning rate at `step` (0-based) of `total_steps`: rises linearly from `peak/warmup_steps` to
/// `peak` over `warmup_steps`, then follows a half cosine down to `peak * final_fraction`.
pub fn lr_at(
    step: usize,
    total_steps: usize,
    warmup_steps: usize,
    peak: f64,
    final_fraction: f64,
) -> f64 {
    if step < warmup_steps {
        return peak * (step + 1) as f64 / warmup_steps as f64;
    }
    let decay_steps = total_steps.saturating_sub(warmup_steps).max(1);
    let t = ((step - warmup_steps) as f64 / decay_steps as f64).min(1.0);
    let floor = peak * final_fraction;
    floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_peak_and_floor() {
        assert!((lr_at(0, 100, 10, 1.0, 0.01) - 0.1).abs() < 1e-12);
        assert!((lr_at(9, 100, 10, 1.0, 0.01) - 1.0).abs() < 1e-12);
        assert!((lr_at(10, 100, 10, 1.0, 0.01) - 1.0).abs() < 1e-12);
        assert!((lr_at(55, 100, 10, 1.0, 0.01) - 0.505).abs() < 1e-9);
        assert!((lr_at(100, 100, 10, 1.0, 0.01) - 0.01).abs() < 1e-12);
        // Monotone after warm-up.
        let lrs: Vec<f64> = (10..100).map(|s| lr_at(s, 100, 10, 1.0, 0.01)).collect();
        assert!(lrs.windows(2).all(|w| w[1] <= w[0]));
    }
}
