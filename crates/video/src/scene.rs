//! Scene cuts, found on L: a port of FFmpeg's `scdet` filter (libavfilter/vf_scdet.c).
//!
//! For each frame, `mafd` is the mean absolute difference from the previous frame's L, as a
//! percentage of L's range (L in 0..=100, so the plain mean); the score is
//! `clamp(min(mafd, |mafd - previous mafd|), 0, 100)`: a frame differs from the last one *and*
//! that difference jumped. A cut is a score at or above the threshold (`scdet`'s default: 10).
//! A steady pan has a large but even `mafd` and scores low; a flash or a cut scores high.

/// `scdet`'s default threshold.
pub const DEFAULT_THRESHOLD: f64 = 10.0;

/// The running state of the detector over one stream of frames.
#[derive(Debug, Clone)]
pub struct SceneDetector {
    threshold: f64,
    previous: Option<Vec<f32>>,
    previous_mafd: f64,
}

impl SceneDetector {
    /// A detector cutting at scores `>= threshold` (0..=100; [`DEFAULT_THRESHOLD`] is FFmpeg's).
    pub fn new(threshold: f64) -> Self {
        Self {
            threshold,
            previous: None,
            previous_mafd: 0.0,
        }
    }

    /// Scores the next frame's L plane (any fixed size for the whole stream, L in 0..=100) and
    /// says whether a new scene starts with it. The first frame starts one (score 100). A frame
    /// of another size than the last also starts one.
    pub fn push(&mut self, l: &[f32]) -> (bool, f64) {
        let score = match &self.previous {
            Some(p) if p.len() == l.len() && !l.is_empty() => {
                let sad: f64 = p.iter().zip(l).map(|(a, b)| (a - b).abs() as f64).sum();
                let mafd = sad / l.len() as f64;
                let diff = (mafd - self.previous_mafd).abs();
                self.previous_mafd = mafd;
                mafd.min(diff).clamp(0.0, 100.0)
            }
            _ => {
                self.previous_mafd = 0.0;
                100.0
            }
        };
        match &mut self.previous {
            Some(p) if p.len() == l.len() => p.copy_from_slice(l),
            _ => self.previous = Some(l.to_vec()),
        }
        (score >= self.threshold, score)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_a_jump_not_on_a_steady_change() {
        let mut d = SceneDetector::new(DEFAULT_THRESHOLD);
        let frame = |v: f32| vec![v; 64];
        assert_eq!(d.push(&frame(20.0)), (true, 100.0));
        // Same frame: nothing.
        assert!(!d.push(&frame(20.0)).0);
        // A jump of 40 L: mafd 40, |40 - 0| = 40: a cut.
        let (cut, score) = d.push(&frame(60.0));
        assert!(cut && (score - 40.0).abs() < 1e-6, "{score}");
        // A steady change of 12 per frame: the first step jumps from mafd 40 to 12 (28: a cut
        // by scdet's rule), then the changes are even and score 0.
        d.push(&frame(72.0));
        let (cut, score) = d.push(&frame(84.0));
        assert!(!cut && score.abs() < 1e-6, "{score}");
        // A small flicker (2 L) stays below the threshold.
        assert!(!d.push(&frame(86.0)).0);
    }
}
