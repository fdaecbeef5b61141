//! Temporal consistency: ab carried along the motion from frame to frame within a scene, and
//! blended with the network's fresh prediction where the motion is trusted.
//!
//! Per frame, at the network's size (ab is low-frequency; the full-resolution detail lives in L):
//! 1. the scene detector ([`crate::scene`]) scores L against the previous frame; at a cut the
//!    state is dropped and the frame's output is exactly the network's prediction;
//! 2. otherwise DIS optical flow ([`crate::flow`]) is computed both ways between this frame's L
//!    and the previous one's; the previous *output* ab is warped onto this frame;
//! 3. a pixel is trusted when the forward-backward check passes (Sundaram et al. 2010) and the
//!    warped previous L is within `photometric_threshold` of this frame's L (occlusions,
//!    appearing objects and flow failures fail one or the other);
//! 4. trusted pixels get `strength * warped + (1 - strength) * fresh`, the rest get `fresh`.
//!
//! Step 4 is an exponential moving average along motion trajectories, in the spirit of the
//! blind temporal-consistency methods (Lai et al. 2018, arXiv 1808.00449, whose warping error
//! [`crate::metrics`] measures): flicker, which is the frame-to-frame change of the prediction
//! for the same surface, is damped by about `1 - strength`, while a surface's colour still
//! follows the network over a few frames. With `keyframe_interval = k > 1` the network runs only
//! on every k-th frame of a scene (and on each scene's first); frames between get the warped
//! previous output alone (a speed mode).

use colorize_models::AbPlanes;

use crate::flow::{Flow, FlowParams, Plane, flow_with_consistency, warp};
use crate::scene::{DEFAULT_THRESHOLD, SceneDetector};

/// How strongly colour is carried along the motion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TemporalOptions {
    /// Weight of the motion-compensated previous output, `0.0..1.0` (0: frame by frame; default
    /// 0.75: flicker damped about fourfold, a new colour settles within ~5 frames).
    pub strength: f32,
    /// Run the network on every k-th frame of a scene (1: every frame, the default).
    pub keyframe_interval: usize,
    /// The scene detector's threshold ([`crate::scene`], 0..=100, default 10 as FFmpeg's
    /// `scdet`).
    pub scene_threshold: f64,
    /// A warped pixel whose L differs from the frame's by more than this (L units, 0..=100) is
    /// not trusted (default 8).
    pub photometric_threshold: f32,
    /// The optical flow's tuning.
    pub flow: FlowParams,
}

impl Default for TemporalOptions {
    fn default() -> Self {
        Self {
            strength: 0.75,
            keyframe_interval: 1,
            scene_threshold: DEFAULT_THRESHOLD,
            photometric_threshold: 8.0,
            flow: FlowParams::default(),
        }
    }
}

/// What a frame needs, decided from its L before the network runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRole {
    /// The first frame of a scene: the network's prediction is the output.
    SceneStart,
    /// A frame the network runs on, blended with the carried colour.
    Key,
    /// A frame between key frames (speed mode): carried colour only, no network.
    Between,
}

impl FrameRole {
    /// Whether the network must predict this frame.
    pub fn needs_prediction(self) -> bool {
        self != Self::Between
    }
}

/// The motion from the previous frame to this one, at the network size: where each pixel of
/// this frame is found in the previous one, and whether that is trusted. It depends only on the
/// two L planes, so it can be computed while the network runs ([`TemporalSmoother::motion`]).
pub struct Motion {
    flow: Flow,
    reliable: Vec<bool>,
}

struct Previous {
    l: Vec<f32>,
    ab: AbPlanes,
}

/// The colour state along one stream of frames (all of one network size).
pub struct TemporalSmoother {
    options: Option<TemporalOptions>,
    scenes: SceneDetector,
    previous: Option<Previous>,
    /// The size (values) of the last frame's L.
    last_len: Option<usize>,
    since_key: usize,
    /// Frames that started a scene so far (stream indices, 0-based).
    cuts: Vec<u64>,
    frame: u64,
    trusted: (u64, u64),
}

impl TemporalSmoother {
    /// A smoother with `options`, or `None` for frame-by-frame colourisation (the baseline: every
    /// frame predicted, nothing carried; scene cuts are still counted).
    ///
    /// # Panics
    /// If `strength` is outside `0.0..1.0` or `keyframe_interval` is 0 (the CLI checks both).
    pub fn new(options: Option<TemporalOptions>) -> Self {
        if let Some(o) = &options {
            assert!((0.0..1.0).contains(&o.strength), "strength {}", o.strength);
            assert!(o.keyframe_interval >= 1);
        }
        let threshold = options.map_or(DEFAULT_THRESHOLD, |o| o.scene_threshold);
        Self {
            options,
            scenes: SceneDetector::new(threshold),
            previous: None,
            last_len: None,
            since_key: 0,
            cuts: Vec::new(),
            frame: 0,
            trusted: (0, 0),
        }
    }

    /// Step 1 for the next frame: its L at the network size (`width * height` values, 0..=100)
    /// decides its role. Call once per frame, in order, then [`TemporalSmoother::finish`] for it.
    pub fn begin(&mut self, l: &[f32]) -> FrameRole {
        let (cut, score) = self.scenes.push(l);
        if std::env::var_os("COLORIZE_DEBUG_SCENES").is_some() {
            eprintln!("frame {}: scene score {score:.2}", self.frame);
        }
        let stale = self.last_len != Some(l.len());
        self.last_len = Some(l.len());
        let role = if cut || stale {
            self.cuts.push(self.frame);
            self.since_key = 0;
            FrameRole::SceneStart
        } else {
            self.since_key += 1;
            let k = self.options.map_or(1, |o| o.keyframe_interval);
            if self.since_key.is_multiple_of(k) {
                FrameRole::Key
            } else {
                FrameRole::Between
            }
        };
        self.frame += 1;
        role
    }

    /// Step 2-3 alone: the motion from `previous` to `l` (both L at the network size,
    /// `width * height` values), or `None` when temporal consistency is off. Pure: frames of one
    /// batch can be done in parallel, and beside the network.
    pub fn motion(
        &self,
        previous: &[f32],
        l: &[f32],
        width: usize,
        height: usize,
    ) -> Option<Motion> {
        let o = self.options?;
        let this = Plane {
            width,
            height,
            values: l,
        };
        let prev = Plane {
            width,
            height,
            values: previous,
        };
        let (flow, mut reliable) = flow_with_consistency(this, prev, &o.flow);
        let l_warped = warp(previous, &flow);
        for ((r, a), b) in reliable.iter_mut().zip(&l_warped).zip(l) {
            *r &= (a - b).abs() <= o.photometric_threshold;
        }
        Some(Motion { flow, reliable })
    }

    /// Steps 2-4: the frame's output ab at the network size, from its L (as given to
    /// [`TemporalSmoother::begin`]), its role, the network's prediction (`Some` exactly when
    /// the role needs one) and, optionally, its motion from the previous frame computed ahead
    /// ([`TemporalSmoother::motion`]; computed here when `None`).
    ///
    /// # Panics
    /// If `fresh` is `None` for a role that needs a prediction, or sizes disagree.
    pub fn finish(
        &mut self,
        l: &[f32],
        role: FrameRole,
        fresh: Option<AbPlanes>,
        motion: Option<Motion>,
    ) -> AbPlanes {
        let out = match (self.options, self.previous.as_ref(), role) {
            (Some(o), Some(p), FrameRole::Key | FrameRole::Between) => {
                let (w, h) = (p.ab.width, p.ab.height);
                assert_eq!(l.len(), w * h, "L size");
                let Motion { flow, reliable } = motion
                    .or_else(|| self.motion(&p.l, l, w, h))
                    .expect("options are set");
                let a_warped = warp(&p.ab.a, &flow);
                let b_warped = warp(&p.ab.b, &flow);
                self.trusted.0 += reliable.iter().filter(|&&r| r).count() as u64;
                self.trusted.1 += reliable.len() as u64;
                match fresh.as_ref() {
                    None => AbPlanes {
                        width: w,
                        height: h,
                        a: a_warped,
                        b: b_warped,
                    },
                    Some(f) => {
                        assert_eq!((f.width, f.height), (w, h), "prediction size");
                        let s = o.strength;
                        let blend = |warped: &[f32], fresh: &[f32]| -> Vec<f32> {
                            warped
                                .iter()
                                .zip(fresh)
                                .zip(&reliable)
                                .map(|((&w, &f), &r)| if r { s * w + (1.0 - s) * f } else { f })
                                .collect()
                        };
                        AbPlanes {
                            width: w,
                            height: h,
                            a: blend(&a_warped, &f.a),
                            b: blend(&b_warped, &f.b),
                        }
                    }
                }
            }
            _ => fresh.expect("a prediction for a frame that needs one"),
        };
        if self.options.is_some() {
            match &mut self.previous {
                Some(p) if p.l.len() == l.len() => {
                    p.l.copy_from_slice(l);
                    p.ab = out.clone();
                }
                _ => {
                    self.previous = Some(Previous {
                        l: l.to_vec(),
                        ab: out.clone(),
                    })
                }
            }
        }
        out
    }

    /// The frames (0-based) that started a scene so far, the first frame included.
    pub fn cuts(&self) -> &[u64] {
        &self.cuts
    }

    /// The share of pixels whose carried colour was trusted (0..=1), over all frames that were
    /// blended; `None` before any.
    pub fn trusted_share(&self) -> Option<f64> {
        (self.trusted.1 > 0).then(|| self.trusted.0 as f64 / self.trusted.1 as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planes(w: usize, h: usize, a: f32, b: f32) -> AbPlanes {
        AbPlanes {
            width: w,
            height: h,
            a: vec![a; w * h],
            b: vec![b; w * h],
        }
    }

    fn texture(w: usize, h: usize, shift: f32) -> Vec<f32> {
        (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32 + shift, (i / w) as f32);
                50.0 + 20.0 * (x * 0.31).sin() * (y * 0.23).cos()
                    + 10.0 * (x * 0.07 + y * 0.11).sin()
            })
            .collect()
    }

    #[test]
    fn flicker_is_damped_within_a_scene_and_reset_at_a_cut() {
        let (w, h) = (64, 48);
        let mut t = TemporalSmoother::new(Some(TemporalOptions::default()));
        // Frame 0: scene start, output = prediction.
        let l0 = texture(w, h, 0.0);
        assert_eq!(t.begin(&l0), FrameRole::SceneStart);
        let out = t.finish(
            &l0,
            FrameRole::SceneStart,
            Some(planes(w, h, 10.0, 0.0)),
            None,
        );
        assert!(out.a.iter().all(|&v| v == 10.0));
        // Frame 1: the same surface moved by 1 px; the network flickers to a = 30.
        let l1 = texture(w, h, 1.0);
        assert_eq!(t.begin(&l1), FrameRole::Key);
        let out = t.finish(&l1, FrameRole::Key, Some(planes(w, h, 30.0, 0.0)), None);
        let mid = out.a[(h / 2) * w + w / 2];
        assert!(
            (mid - 15.0).abs() < 0.5,
            "0.75 * 10 + 0.25 * 30 = 15, got {mid}"
        );
        // Frame 2: a different picture: a cut, exactly the prediction.
        let l2: Vec<f32> = l1.iter().map(|v| 100.0 - v).collect();
        assert_eq!(t.begin(&l2), FrameRole::SceneStart);
        let out = t.finish(
            &l2,
            FrameRole::SceneStart,
            Some(planes(w, h, -5.0, 7.0)),
            None,
        );
        assert!(out.a.iter().all(|&v| v == -5.0) && out.b.iter().all(|&v| v == 7.0));
        assert_eq!(t.cuts(), &[0, 2]);
    }

    #[test]
    fn keyframe_interval_skips_the_network_between_key_frames() {
        let (w, h) = (48, 32);
        let o = TemporalOptions {
            keyframe_interval: 3,
            ..TemporalOptions::default()
        };
        let mut t = TemporalSmoother::new(Some(o));
        let mut roles = Vec::new();
        for i in 0..7 {
            let l = texture(w, h, i as f32 * 0.5);
            let role = t.begin(&l);
            roles.push(role);
            let fresh = role.needs_prediction().then(|| planes(w, h, 20.0, -3.0));
            let out = t.finish(&l, role, fresh, None);
            // Carried colour of a flat prediction stays that colour.
            let mid = out.a[(h / 2) * w + w / 2];
            assert!((mid - 20.0).abs() < 0.1, "frame {i}: {mid}");
        }
        use FrameRole::*;
        assert_eq!(
            roles,
            [SceneStart, Between, Between, Key, Between, Between, Key]
        );
    }

    #[test]
    fn off_passes_predictions_through() {
        let mut t = TemporalSmoother::new(None);
        let l = texture(16, 16, 0.0);
        for v in [1.0, 9.0, -4.0] {
            let role = t.begin(&l);
            assert!(role.needs_prediction());
            let out = t.finish(&l, role, Some(planes(16, 16, v, v)), None);
            assert!(out.a.iter().all(|&x| x == v));
        }
    }
}
