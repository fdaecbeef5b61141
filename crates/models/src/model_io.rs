//! The model I/O contract: what a network takes, what it returns and at which sizes it runs.
//!
//! Every colouriser works on the same photo-level flow (full-size L → L at render size → network
//! → ab → full-size ab joined with the full-size L), but the networks differ at their edges:
//!
//! | network | input | output | size |
//! |---|---|---|---|
//! | ours (`unet_resnet`) | L, `(L − 50)/50` | ab/110 (tanh) | shorter side, multiple of 32 |
//! | Zhang et al. eccv16 | L, `(L − 50)/100` | ab/110, or 313 ab-bin logits | multiple of 8 |
//! | Zhang et al. siggraph17 | L, `(L − 50)/100`, ab hints /110, hint mask | ab/110 | multiple of 8 |
//! | DeOldify | gray RGB, ImageNet mean/std | RGB, ImageNet mean/std | square side, multiple of 16 |
//! | DDColor | gray RGB in `0..=1` | ab in CIELAB units | square side |
//!
//! [`ModelIo`] states these in `config.json` under `"io"`; a `config.json` without it (every model
//! folder written before the contract, the bundled one included) means [`ModelIo::default`], the
//! `unet_resnet` contract. [`crate::Colorizer`], the trainer and `eval` read the contract; no copy
//! of these constants lives anywhere else.
//!
//! Sources: `../shared/reference/zhang.md` (Zhang, Isola & Efros 2016, arXiv:1603.08511:
//! `normalize_l`, `unnormalize_ab`, annealed mean), `deoldify.md` (fastai's `imagenet_stats`,
//! `render_factor · 16` square) and `ddcolor.md` (Kang et al. 2023, arXiv:2212.11613).

use colorize_core::color::{lightness_to_srgb_gray, srgb_to_lab_pixel};
use serde::{Deserialize, Serialize};

/// ImageNet channel means (torchvision, fastai's `imagenet_stats`), for sRGB in `0..=1`.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations, for sRGB in `0..=1`.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// What a network takes, what it returns, and at which sizes; `config.json`'s `"io"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ModelIo {
    /// The network's input.
    #[serde(default)]
    pub input: InputKind,
    /// The network's output.
    #[serde(default)]
    pub output: OutputKind,
    /// The sizes the network accepts, from the photo's size and the render size.
    #[serde(default)]
    pub size: SizeRule,
    /// The photo-level pipeline around the network: colorize's own (default), or the published
    /// model's reference one ([`crate::pipelines`]).
    #[serde(default)]
    pub pipeline: crate::pipelines::Pipeline,
}

/// What the network takes, derived from the photo's CIELAB L (`0..=100`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum InputKind {
    /// One channel: `(L − offset) / scale`. Ours: offset 50, scale 50 (`-1..=1`); Zhang et al.:
    /// offset 50, scale 100.
    Lightness {
        /// Subtracted from L.
        offset: f32,
        /// L is divided by this after the offset (not 0).
        scale: f32,
    },
    /// Four channels, Zhang et al. 2017's user-guided input (siggraph17): `(L − offset) / scale`,
    /// then ab hints `a / ab_scale`, `b / ab_scale`, then a mask (1 where a hint is given, 0
    /// elsewhere). Automatic colourisation gives no hints: zeros in the last three channels.
    LightnessWithHints {
        /// Subtracted from L (siggraph17: 50).
        offset: f32,
        /// L is divided by this after the offset (siggraph17: 100; not 0).
        scale: f32,
        /// The hints' a and b are divided by this (siggraph17: 110; not 0).
        ab_scale: f32,
    },
    /// Three channels: the gray sRGB value of L (`0..=1`, the same in R, G and B), normalised per
    /// channel as `(v − mean[c]) / std[c]`. DeOldify: ImageNet statistics; DDColor: mean 0, std 1.
    GrayRgb {
        /// Per-channel mean, in sRGB `0..=1` units.
        mean: [f32; 3],
        /// Per-channel standard deviation (no zeros).
        std: [f32; 3],
    },
}

impl Default for InputKind {
    /// `unet_resnet`'s input: `L/50 − 1`.
    fn default() -> Self {
        Self::Lightness {
            offset: 50.0,
            scale: 50.0,
        }
    }
}

/// What the network returns, and how ab is taken from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OutputKind {
    /// Two channels, `ab / scale` (ours and Zhang et al.'s decoded output: scale 110; DDColor:
    /// scale 1).
    Ab {
        /// The factor from the network's output to CIELAB a and b.
        scale: f32,
    },
    /// Three channels of sRGB normalised as `(v − mean[c]) / std[c]`; ab is the CIELAB a and b of
    /// the denormalised colour (clamped to `0..=1`), at the network's resolution (DeOldify).
    Rgb {
        /// Per-channel mean, in sRGB `0..=1` units.
        mean: [f32; 3],
        /// Per-channel standard deviation.
        std: [f32; 3],
    },
    /// `bins.len()` channels of logits over quantised ab; ab is the expectation of the bin
    /// centres under `softmax(logits / temperature)` (Zhang et al. 2016 §3.1: the mean at
    /// temperature 1, the annealed mean at 0.38).
    AbBins {
        /// The centre `[a, b]` of each bin, in CIELAB units (Zhang et al.: the 313 in-gamut bins of
        /// `pts_in_hull.npy`).
        bins: Vec<[f32; 2]>,
        /// Softmax temperature (> 0).
        temperature: f32,
    },
}

impl Default for OutputKind {
    /// `unet_resnet`'s output: `ab/110`.
    fn default() -> Self {
        Self::Ab { scale: 110.0 }
    }
}

/// The sizes a network runs at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SizeRule {
    /// The shorter side becomes the render size, the longer keeps the aspect ratio up to 4:1
    /// (longer strips are squeezed; the bilinear enlargement of ab undoes it), both rounded to a
    /// multiple of `multiple` (at least one multiple). Ours: 32 (five halvings).
    MultipleOf {
        /// Size granularity, in pixels (at least 1).
        multiple: usize,
    },
    /// A square of side render size, rounded to a multiple of `multiple`, whatever the photo's
    /// aspect ratio (DeOldify: `render_factor · 16`; DDColor: its input size).
    Square {
        /// Size granularity, in pixels (at least 1).
        multiple: usize,
    },
    /// Always `width x height`; the render size is ignored (networks with a fixed-size layer).
    Fixed {
        /// Width in pixels (at least 1).
        width: usize,
        /// Height in pixels (at least 1).
        height: usize,
    },
}

impl Default for SizeRule {
    /// `unet_resnet`'s rule: multiples of 32.
    fn default() -> Self {
        Self::MultipleOf { multiple: 32 }
    }
}

impl SizeRule {
    /// The size `(width, height)` at which the network sees a photo of `width x height` for a
    /// render size of `render_size` pixels.
    pub fn network_size(&self, width: usize, height: usize, render_size: u32) -> (usize, usize) {
        let round = |v: f64, m: usize| (((v / m as f64).round() as usize).max(1)) * m;
        match *self {
            Self::MultipleOf { multiple } => {
                let m = multiple.max(1);
                let short = width.min(height).max(1) as f64;
                let scale = render_size as f64 / short;
                let cap = 4.0 * render_size as f64;
                (
                    round((width as f64 * scale).min(cap), m),
                    round((height as f64 * scale).min(cap), m),
                )
            }
            Self::Square { multiple } => {
                let side = round(render_size as f64, multiple.max(1));
                (side, side)
            }
            Self::Fixed { width, height } => (width.max(1), height.max(1)),
        }
    }
}

impl ModelIo {
    /// Channels of the network's input (1 or 3).
    pub fn input_channels(&self) -> usize {
        match self.input {
            InputKind::Lightness { .. } => 1,
            InputKind::LightnessWithHints { .. } => 4,
            InputKind::GrayRgb { .. } => 3,
        }
    }

    /// Channels of the network's output (2, 3 or the number of bins).
    pub fn output_channels(&self) -> usize {
        match &self.output {
            OutputKind::Ab { .. } => 2,
            OutputKind::Rgb { .. } => 3,
            OutputKind::AbBins { bins, .. } => bins.len(),
        }
    }

    /// Checks the numbers: no zero scale or standard deviation, no empty bin list, no zero
    /// temperature or size. Returns a one-line description of the first problem.
    ///
    /// # Errors
    /// The description, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        match &self.input {
            InputKind::Lightness { offset, scale } => {
                if !finite(&[*offset, *scale]) || *scale == 0.0 {
                    return Err(format!(
                        "io.input: scale must be a non-zero number, not {scale}"
                    ));
                }
            }
            InputKind::LightnessWithHints {
                offset,
                scale,
                ab_scale,
            } => {
                if !finite(&[*offset, *scale, *ab_scale]) || *scale == 0.0 || *ab_scale == 0.0 {
                    return Err("io.input: scale and ab_scale must be non-zero numbers".into());
                }
            }
            InputKind::GrayRgb { mean, std } => {
                if !finite(mean) || !finite(std) || std.contains(&0.0) {
                    return Err("io.input: mean and std must be numbers, std non-zero".into());
                }
            }
        }
        match &self.output {
            OutputKind::Ab { scale } => {
                if !scale.is_finite() || *scale == 0.0 {
                    return Err(format!(
                        "io.output: scale must be a non-zero number, not {scale}"
                    ));
                }
            }
            OutputKind::Rgb { mean, std } => {
                if !finite(mean) || !finite(std) {
                    return Err("io.output: mean and std must be numbers".into());
                }
            }
            OutputKind::AbBins { bins, temperature } => {
                if bins.len() < 2 {
                    return Err("io.output: at least two ab bins are needed".into());
                }
                if !(temperature.is_finite() && *temperature > 0.0) {
                    return Err(format!(
                        "io.output: temperature must be above 0, not {temperature}"
                    ));
                }
            }
        }
        use crate::pipelines::Pipeline;
        match (self.pipeline, &self.input, &self.output) {
            (Pipeline::Deoldify, InputKind::GrayRgb { .. }, OutputKind::Rgb { .. })
            | (Pipeline::Zhang, InputKind::Lightness { .. }, OutputKind::Ab { .. })
            | (Pipeline::Zhang, InputKind::LightnessWithHints { .. }, OutputKind::Ab { .. })
            | (Pipeline::Ddcolor, InputKind::GrayRgb { .. }, OutputKind::Ab { .. })
            | (Pipeline::Colorize, _, _) => {}
            (Pipeline::Ddcolor, _, _) => {
                return Err("io.pipeline: ddcolor needs gray_rgb input and ab output".into());
            }
            (Pipeline::Deoldify, _, _) => {
                return Err("io.pipeline: deoldify needs gray_rgb input and rgb output".into());
            }
            (Pipeline::Zhang, _, _) => {
                return Err("io.pipeline: zhang needs lightness input and ab output".into());
            }
        }
        match self.size {
            SizeRule::MultipleOf { multiple: 0 } | SizeRule::Square { multiple: 0 } => {
                Err("io.size: multiple must be at least 1".into())
            }
            SizeRule::Fixed { width, height } if width == 0 || height == 0 => {
                Err("io.size: width and height must be at least 1".into())
            }
            _ => Ok(()),
        }
    }

    /// The network's input for one L plane: `[channels, height, width]` planar values (CHW, the
    /// layout of one item of burn's and PyTorch's `[batch, channels, height, width]`).
    ///
    /// `l`: `height · width` values of CIELAB L in `0..=100`.
    pub fn encode_input(&self, l: &[f32]) -> Vec<f32> {
        match self.input {
            InputKind::Lightness { offset, scale } => {
                let inv = 1.0 / scale;
                l.iter().map(|v| (v - offset) * inv).collect()
            }
            InputKind::LightnessWithHints { offset, scale, .. } => {
                // No hints: a, b and the mask are zero.
                let inv = 1.0 / scale;
                let mut out: Vec<f32> = l.iter().map(|v| (v - offset) * inv).collect();
                out.resize(4 * l.len(), 0.0);
                out
            }
            InputKind::GrayRgb { mean, std } => {
                let gray: Vec<f32> = l.iter().map(|&v| lightness_to_srgb_gray(v)).collect();
                let mut out = Vec::with_capacity(3 * l.len());
                for c in 0..3 {
                    let inv = 1.0 / std[c];
                    out.extend(gray.iter().map(|g| (g - mean[c]) * inv));
                }
                out
            }
        }
    }

    /// The a and b planes (CIELAB units) from one item of the network's output, given as
    /// `[height · width, channels]` interleaved values (NHWC, the engine's layout).
    pub fn decode_output_nhwc(&self, y: &[f32], pixels: usize) -> (Vec<f32>, Vec<f32>) {
        let c = self.output_channels();
        debug_assert_eq!(y.len(), pixels * c);
        let px = |p: usize| &y[p * c..(p + 1) * c];
        let ab: Vec<[f32; 2]> = (0..pixels).map(|p| self.decode_pixel(px(p))).collect();
        ab.into_iter().map(|[a, b]| (a, b)).unzip()
    }

    /// As [`ModelIo::decode_output_nhwc`], from `[channels, height · width]` planar values (NCHW).
    pub fn decode_output_planar(&self, y: &[f32], pixels: usize) -> (Vec<f32>, Vec<f32>) {
        let c = self.output_channels();
        debug_assert_eq!(y.len(), pixels * c);
        let mut v = vec![0.0f32; c];
        let mut a = Vec::with_capacity(pixels);
        let mut b = Vec::with_capacity(pixels);
        for p in 0..pixels {
            for (k, slot) in v.iter_mut().enumerate() {
                *slot = y[k * pixels + p];
            }
            let [pa, pb] = self.decode_pixel(&v);
            a.push(pa);
            b.push(pb);
        }
        (a, b)
    }

    /// a and b of one output pixel (`output_channels()` values).
    fn decode_pixel(&self, v: &[f32]) -> [f32; 2] {
        match &self.output {
            OutputKind::Ab { scale } => [v[0] * scale, v[1] * scale],
            OutputKind::Rgb { mean, std } => {
                let rgb: [f32; 3] =
                    std::array::from_fn(|c| (v[c] * std[c] + mean[c]).clamp(0.0, 1.0));
                let lab = srgb_to_lab_pixel(rgb);
                [lab[1], lab[2]]
            }
            OutputKind::AbBins { bins, temperature } => {
                let inv_t = 1.0 / temperature;
                let max = v.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                let (mut sum, mut a, mut b) = (0.0f64, 0.0f64, 0.0f64);
                for (x, bin) in v.iter().zip(bins) {
                    let e = (((x - max) * inv_t) as f64).exp();
                    sum += e;
                    a += e * bin[0] as f64;
                    b += e * bin[1] as f64;
                }
                [(a / sum) as f32, (b / sum) as f32]
            }
        }
    }

    /// The training target for a and b planes (CIELAB units, `pixels` each): `[2, pixels]`
    /// planar `ab / scale`.
    ///
    /// # Errors
    /// A one-line message when the output is not [`OutputKind::Ab`] (the trainer regresses ab;
    /// RGB and ab-bin outputs are for imported networks).
    pub fn encode_target(&self, a: &[f32], b: &[f32]) -> Result<Vec<f32>, String> {
        match self.output {
            OutputKind::Ab { scale } => {
                let inv = 1.0 / scale;
                Ok(a.iter().chain(b).map(|v| v * inv).collect())
            }
            _ => Err("the trainer regresses ab: the model's io.output must be `ab`".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_unet_resnet_contract() {
        let io = ModelIo::default();
        assert_eq!(io.encode_input(&[0.0, 50.0, 100.0]), vec![-1.0, 0.0, 1.0]);
        let (a, b) = io.decode_output_nhwc(&[0.5, -1.0, 1.0, 0.0], 2);
        assert_eq!((a, b), (vec![55.0, 110.0], vec![-110.0, 0.0]));
        assert_eq!(io.network_size_default(481, 321, 160), (224, 160));
    }

    impl ModelIo {
        fn network_size_default(&self, w: usize, h: usize, r: u32) -> (usize, usize) {
            self.size.network_size(w, h, r)
        }
    }

    #[test]
    fn missing_fields_mean_the_default_and_json_round_trips() {
        let io: ModelIo = serde_json::from_str("{}").unwrap();
        assert_eq!(io, ModelIo::default());
        let deoldify = ModelIo {
            input: InputKind::GrayRgb {
                mean: IMAGENET_MEAN,
                std: IMAGENET_STD,
            },
            output: OutputKind::Rgb {
                mean: IMAGENET_MEAN,
                std: IMAGENET_STD,
            },
            size: SizeRule::Square { multiple: 16 },
            pipeline: Default::default(),
        };
        let json = serde_json::to_string(&deoldify).unwrap();
        assert!(json.contains(r#""kind":"gray_rgb""#), "{json}");
        assert_eq!(serde_json::from_str::<ModelIo>(&json).unwrap(), deoldify);
        assert!(serde_json::from_str::<ModelIo>(r#"{"input":{"kind":"hsv"}}"#).is_err());
    }

    #[test]
    fn size_rules() {
        let m = SizeRule::MultipleOf { multiple: 32 };
        assert_eq!(m.network_size(256, 256, 256), (256, 256));
        assert_eq!(m.network_size(321, 481, 160), (160, 224));
        assert_eq!(m.network_size(1, 5000, 160), (160, 640));
        assert_eq!(m.network_size(3, 2, 10), (32, 32));
        let s = SizeRule::Square { multiple: 16 };
        assert_eq!(s.network_size(1024, 300, 280), (288, 288));
        let f = SizeRule::Fixed {
            width: 512,
            height: 256,
        };
        assert_eq!(f.network_size(10, 10, 99), (512, 256));
    }

    #[test]
    fn gray_rgb_input_is_the_gray_of_l_normalised() {
        let io = ModelIo {
            input: InputKind::GrayRgb {
                mean: IMAGENET_MEAN,
                std: IMAGENET_STD,
            },
            ..ModelIo::default()
        };
        // L = 53.389 is sRGB gray 0.5 (CIE 1976; 0.5 in sRGB is 21.404 % luminance).
        let x = io.encode_input(&[53.389, 100.0]);
        assert_eq!(x.len(), 6);
        for c in 0..3 {
            let g = x[2 * c] * IMAGENET_STD[c] + IMAGENET_MEAN[c];
            assert!((g - 0.5).abs() < 1e-3, "channel {c}: {g}");
            let w = x[2 * c + 1] * IMAGENET_STD[c] + IMAGENET_MEAN[c];
            assert!((w - 1.0).abs() < 1e-4, "channel {c}: {w}");
        }
    }

    #[test]
    fn hint_input_without_hints_is_l_then_three_zero_planes() {
        let io = ModelIo {
            input: InputKind::LightnessWithHints {
                offset: 50.0,
                scale: 100.0,
                ab_scale: 110.0,
            },
            ..ModelIo::default()
        };
        assert_eq!(io.input_channels(), 4);
        let x = io.encode_input(&[0.0, 75.0]);
        assert_eq!(x, vec![-0.5, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn rgb_output_gives_the_lab_ab_of_the_colour() {
        let io = ModelIo {
            output: OutputKind::Rgb {
                mean: [0.0; 3],
                std: [1.0; 3],
            },
            ..ModelIo::default()
        };
        // sRGB red (1, 0, 0) is CIELAB (53.24, 80.09, 67.20) under D65.
        let (a, b) = io.decode_output_planar(&[1.0, 0.0, 0.0], 1);
        assert!(
            (a[0] - 80.09).abs() < 0.05 && (b[0] - 67.20).abs() < 0.05,
            "{a:?} {b:?}"
        );
    }

    #[test]
    fn ab_bins_decode_by_softmax_expectation() {
        let io = ModelIo {
            output: OutputKind::AbBins {
                bins: vec![[0.0, 0.0], [10.0, -20.0], [-30.0, 40.0]],
                temperature: 1.0,
            },
            ..ModelIo::default()
        };
        let logits = [0.0f32, 1.0, 2.0];
        let e: Vec<f64> = logits.iter().map(|&x| (x as f64).exp()).collect();
        let s: f64 = e.iter().sum();
        let want_a = (e[1] * 10.0 - e[2] * 30.0) / s;
        let want_b = (-e[1] * 20.0 + e[2] * 40.0) / s;
        let (a, b) = io.decode_output_nhwc(&logits, 1);
        assert!((a[0] as f64 - want_a).abs() < 1e-4 && (b[0] as f64 - want_b).abs() < 1e-4);
        // At a low temperature the expectation approaches the most likely bin.
        let cold = ModelIo {
            output: OutputKind::AbBins {
                bins: vec![[0.0, 0.0], [10.0, -20.0], [-30.0, 40.0]],
                temperature: 0.01,
            },
            ..ModelIo::default()
        };
        let (a, b) = cold.decode_output_planar(&logits, 1);
        assert!((a[0] + 30.0).abs() < 1e-3 && (b[0] - 40.0).abs() < 1e-3);
    }

    #[test]
    fn validation_names_the_field() {
        let mut io = ModelIo::default();
        assert!(io.validate().is_ok());
        io.input = InputKind::Lightness {
            offset: 50.0,
            scale: 0.0,
        };
        assert!(io.validate().unwrap_err().starts_with("io.input"));
        io = ModelIo {
            size: SizeRule::Square { multiple: 0 },
            ..ModelIo::default()
        };
        assert!(io.validate().unwrap_err().starts_with("io.size"));
    }
}
