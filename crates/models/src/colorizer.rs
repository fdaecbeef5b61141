//! The whole photo → photo pipeline over a loaded network.
//!
//! **decode → L at full size → L at render size → network → ab → ab at full size → join with the
//! full-size L → sRGB.** The network only ever sees a small L image (the render size); all the
//! detail of the photo stays in the full-resolution L, which is copied to the output unchanged (up
//! to 8-bit rounding), as in Zhang et al. 2016 (arXiv:1603.08511) and DeOldify.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use burn::prelude::*;
use colorize_core::LabImage;
use colorize_core::lab::lightness_of;
use colorize_core::resize::resize_plane;
use colorize_engine::{Graph, Isa};
use image::{DynamicImage, Rgb32FImage};

use crate::compile::compile;
use crate::error::ModelError;
use crate::model_dir::{ModelConfig, load_model_bytes, load_model_dir};
use crate::network::Network;

/// Scale between the network's tanh output and CIELAB ab.
pub const AB_SCALE: f32 = 110.0;

/// Size granularity of the render size: the U-Net halves the resolution five times.
pub const RENDER_MULTIPLE: usize = 32;

/// The size at which the network sees an image of `width x height`: the shorter side becomes
/// `render_size`, the longer side keeps the aspect ratio up to 4:1 (longer strips are squeezed,
/// which the bilinear enlargement of ab undoes), and both are rounded to a multiple of 32
/// (at least 32).
///
/// Returns `(render_width, render_height)`.
pub fn render_dims(width: usize, height: usize, render_size: u32) -> (usize, usize) {
    let short = width.min(height).max(1) as f64;
    let scale = render_size as f64 / short;
    let round = |v: f64| {
        let cap = 4.0 * render_size as f64;
        let v = v.min(cap);
        (((v / RENDER_MULTIPLE as f64).round() as usize).max(1)) * RENDER_MULTIPLE
    };
    (round(width as f64 * scale), round(height as f64 * scale))
}

/// Which forward pass runs the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineKind {
    /// colorize's own inference engine (`colorize-engine`): batch norm folded, fused
    /// epilogues, packed weights, SIMD kernels for the CPU it runs on. The default.
    #[default]
    Native,
    /// burn's forward pass on the colorizer's device (the training framework's own ops), kept for
    /// comparison and as the reference the engine is tested against.
    Burn,
}

impl EngineKind {
    /// `native` or `burn`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Burn => "burn",
        }
    }
}

/// A loaded model ready to colourise photos. Cloning shares nothing mutable: the copy runs the
/// same weights with its own render size and saturation (and shares the compiled engine graph).
#[derive(Debug, Clone)]
pub struct Colorizer {
    network: Network,
    config: ModelConfig,
    device: Device,
    render_size: u32,
    saturation: f32,
    engine: EngineKind,
    isa: Isa,
    /// The engine graph, compiled on first use for `isa` and shared by clones.
    compiled: Arc<OnceLock<Result<Arc<Graph>, String>>>,
}

impl Colorizer {
    /// Wraps a network and its config; the render size starts at the config's default.
    pub fn new(network: Network, config: ModelConfig, device: Device) -> Self {
        let render_size = config.render_size;
        let saturation = config.saturation;
        Self {
            network,
            config,
            device,
            render_size,
            saturation,
            engine: EngineKind::default(),
            isa: Isa::detect(),
            compiled: Arc::new(OnceLock::new()),
        }
    }

    /// Chooses the forward pass (default [`EngineKind::Native`]).
    pub fn with_engine(mut self, engine: EngineKind) -> Self {
        self.engine = engine;
        self
    }

    /// Chooses the engine's kernel family (default [`Isa::detect`]: the best this CPU runs).
    ///
    /// # Errors
    /// [`ModelError::Engine`] if this CPU cannot run `isa`.
    pub fn with_isa(mut self, isa: Isa) -> Result<Self, ModelError> {
        if !isa.is_available() {
            return Err(colorize_engine::EngineError::IsaUnavailable(isa.name()).into());
        }
        if isa != self.isa {
            self.isa = isa;
            self.compiled = Arc::new(OnceLock::new());
        }
        Ok(self)
    }

    /// The forward pass in use.
    pub fn engine(&self) -> EngineKind {
        self.engine
    }

    /// The engine's kernel family.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The network compiled for the engine (compiled on the first call, then shared).
    ///
    /// # Errors
    /// As [`compile`].
    pub fn graph(&self) -> Result<Arc<Graph>, ModelError> {
        self.compiled
            .get_or_init(|| {
                compile(&self.network, self.isa)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(ModelError::Inference)
    }

    /// Loads a model directory (`config.json` + `model.safetensors`).
    ///
    /// # Errors
    /// As [`load_model_dir`].
    pub fn load(dir: &Path, device: &Device) -> Result<Self, ModelError> {
        let (config, network) = load_model_dir(dir, device)?;
        Ok(Self::new(network, config, device.clone()))
    }

    /// Loads a model from memory (the bundled model); `name` names it in errors.
    ///
    /// # Errors
    /// As [`load_model_bytes`].
    pub fn from_bytes(
        config_json: &[u8],
        weights: Vec<u8>,
        name: &Path,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let (config, network) = load_model_bytes(config_json, weights, name, device)?;
        Ok(Self::new(network, config, device.clone()))
    }

    /// Sets the render size (shorter side in pixels, rounded to a multiple of 32, at least 32).
    pub fn with_render_size(mut self, render_size: u32) -> Self {
        self.render_size = render_size.max(1);
        self
    }

    /// Sets the saturation: the factor on the predicted a and b (1.0 = as trained, 0 = gray).
    /// Negative or non-finite values are taken as 0.
    pub fn with_saturation(mut self, saturation: f32) -> Self {
        self.saturation = if saturation.is_finite() {
            saturation.max(0.0)
        } else {
            0.0
        };
        self
    }

    /// The saturation in use.
    pub fn saturation(&self) -> f32 {
        self.saturation
    }

    /// The render size in use.
    pub fn render_size(&self) -> u32 {
        self.render_size
    }

    /// The model's config.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Runs the network on an L plane that is already at the size it should see.
    ///
    /// `l`: `width * height` values, L in `0..=100`. Returns the a and b planes (same size), in
    /// CIELAB units, with the saturation applied.
    ///
    /// # Errors
    /// [`ModelError::Inference`] if the backend fails; [`ModelError::Engine`] if the engine cannot
    /// run the network at this size.
    pub fn predict_ab(
        &self,
        l: &[f32],
        width: usize,
        height: usize,
    ) -> Result<(Vec<f32>, Vec<f32>), ModelError> {
        let input: Vec<f32> = l.iter().map(|v| v / 50.0 - 1.0).collect();
        let k = AB_SCALE * self.saturation;
        if self.engine == EngineKind::Native {
            let ab = self.graph()?.run(&input, 1, height, width)?; // [1, height, width, 2]
            let a = ab.iter().step_by(2).map(|v| v * k).collect();
            let b = ab.iter().skip(1).step_by(2).map(|v| v * k).collect();
            return Ok((a, b));
        }
        let x = Tensor::<4>::from_data(TensorData::new(input, [1, 1, height, width]), &self.device);
        let y = self.network.forward(x); // [1, 2, height, width]
        let ab = y
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| ModelError::Inference(format!("{e:?}")))?;
        let n = width * height;
        let a = ab[..n].iter().map(|v| v * k).collect();
        let b = ab[n..2 * n].iter().map(|v| v * k).collect();
        Ok((a, b))
    }

    /// Colourises a full-size L plane: resizes it to the render size, predicts ab, resizes ab
    /// back bilinearly and joins it with the untouched full-size L.
    ///
    /// `l`: `width * height` values, L in `0..=100`.
    ///
    /// # Errors
    /// [`ModelError::Inference`] if the backend fails.
    pub fn colorize_lightness(
        &self,
        width: usize,
        height: usize,
        l: Vec<f32>,
    ) -> Result<LabImage, ModelError> {
        let (rw, rh) = render_dims(width, height, self.render_size);
        let small = resize_plane(&l, width, height, rw, rh);
        let (a, b) = self.predict_ab(&small, rw, rh)?;
        Ok(LabImage::join(width, height, l, rw, rh, &a, &b))
    }

    /// Colourises a photo. A colour photo is first reduced to its CIELAB L (its gray version).
    /// The output has the input's size; its L equals the input's L up to rounding.
    ///
    /// # Errors
    /// [`ModelError::Inference`] if the backend fails.
    pub fn colorize(&self, image: &DynamicImage) -> Result<Rgb32FImage, ModelError> {
        let (w, h, l) = lightness_of(image);
        Ok(self.colorize_lightness(w, h, l)?.to_rgb32f())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_dims_rounds_and_caps() {
        assert_eq!(render_dims(256, 256, 256), (256, 256));
        assert_eq!(render_dims(481, 321, 160), (224, 160));
        assert_eq!(render_dims(321, 481, 160), (160, 224));
        assert_eq!(render_dims(1, 1, 160), (160, 160));
        assert_eq!(render_dims(1, 5000, 160), (160, 640));
        assert_eq!(render_dims(3, 2, 10), (32, 32));
    }
}
