//! The whole photo → photo pipeline over a loaded network.
//!
//! **decode → L at full size → L at render size → network → ab → ab at full size → join with the
//! full-size L → sRGB.** The network only ever sees a small L image (the render size); all the
//! detail of the photo stays in the full-resolution L, which is copied to the output unchanged (up
//! to 8-bit rounding), as in Zhang et al. 2016 (arXiv:1603.08511) and DeOldify.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use burn::prelude::*;
use colorize_core::LabImage;
use colorize_core::lab::{Lightness, SampleDepth, join_to_srgb, quantize16};
use colorize_core::resize::{resize_plane, resize_plane_rows};
use colorize_engine::{Graph, Isa};
use image::{DynamicImage, Rgb32FImage};

use crate::error::ModelError;
use crate::hints::{Hint, paint};
use crate::model_dir::{
    CONFIG_FILE, ModelConfig, WEIGHTS_FILE, load_weights, read_model_dir, weights_to_bytes,
};
use crate::model_io::InputKind;
use crate::network::Network;
use crate::weights::Weights;

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

/// One network input, prepared from a photo's L by [`Colorizer::prepare`]: the values the
/// network takes at the size it takes them (the model's [`crate::ModelIo`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkInput {
    /// Width in pixels (the network size, from the render size and the size rule).
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `[channels, height, width]` planar values (1 channel for L, 3 for gray RGB), normalised as
    /// the model's contract says.
    pub values: Vec<f32>,
}

/// The colour a network predicted for one input: CIELAB a and b planes at the network's output
/// size, saturation applied.
#[derive(Debug, Clone, PartialEq)]
pub struct AbPlanes {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// CIELAB a, `width · height` values (about `-110..=110`).
    pub a: Vec<f32>,
    /// CIELAB b, `width · height` values.
    pub b: Vec<f32>,
}

type Shared<T> = Arc<OnceLock<Result<T, String>>>;

/// The memory layout of a batch of network outputs.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// `[batch, height, width, channels]` (the native engine).
    Nhwc,
    /// `[batch, channels, height, width]` (burn).
    Nchw,
}

/// Where a [`Colorizer`]'s safetensors bytes come from when they are needed again.
#[derive(Debug, Clone)]
enum WeightBytes {
    /// Held in memory and shared (the bundled model, a network being trained).
    Shared(Arc<[u8]>),
    /// A model folder's `model.safetensors`, read again when needed.
    File(PathBuf),
}

impl WeightBytes {
    fn read(&self) -> Result<std::borrow::Cow<'_, [u8]>, ModelError> {
        match self {
            Self::Shared(b) => Ok(std::borrow::Cow::Borrowed(b)),
            Self::File(p) => std::fs::read(p)
                .map(std::borrow::Cow::Owned)
                .map_err(|source| ModelError::Io {
                    path: p.clone(),
                    source,
                }),
        }
    }
}

/// A loaded model ready to colourise photos, in three stages that batch engines and video can
/// drive separately: [`Colorizer::prepare`] (full-size L → network input),
/// [`Colorizer::predict`] (a batch of inputs → ab) and [`Colorizer::join`] (ab + full-size L →
/// CIELAB photo). [`Colorizer::colorize`] runs all three on one photo.
///
/// The native engine's graph is built straight from the named weights (no burn module); burn's
/// network is created only when [`EngineKind::Burn`] is chosen. Cloning shares the weights and
/// both compiled forms; each clone keeps its own render size and saturation.
#[derive(Debug, Clone)]
pub struct Colorizer {
    config: ModelConfig,
    /// Where the safetensors bytes can be read again (for another kernel family or burn's
    /// network), and the name errors give them.
    weights: WeightBytes,
    source: PathBuf,
    device: Device,
    render_size: u32,
    saturation: f32,
    engine: EngineKind,
    isa: Isa,
    /// The engine graph, built on first use for `isa` and shared by clones.
    compiled: Shared<Arc<Graph>>,
    /// burn's network, created on first use with [`EngineKind::Burn`].
    network: Shared<Arc<Network>>,
}

impl Colorizer {
    /// Wraps a network in memory (a network being trained) and its config; the render size and
    /// saturation start at the config's defaults. The weights are serialised once so the engine
    /// graph is built from them like any model folder's.
    ///
    /// # Errors
    /// [`ModelError::Weights`] if the weights cannot be serialised.
    pub fn new(network: Network, config: ModelConfig, device: Device) -> Result<Self, ModelError> {
        let bytes = WeightBytes::Shared(weights_to_bytes(&network)?.into());
        let source = PathBuf::from("<network in memory>");
        let c = Self::assemble(config, bytes, source, device);
        c.network
            .set(Ok(Arc::new(network)))
            .expect("a new cell is empty");
        Ok(c)
    }

    fn assemble(
        config: ModelConfig,
        weights: WeightBytes,
        source: PathBuf,
        device: Device,
    ) -> Self {
        Self {
            render_size: config.render_size,
            saturation: config.saturation,
            config,
            weights,
            source,
            device,
            engine: EngineKind::default(),
            isa: Isa::detect(),
            compiled: Arc::new(OnceLock::new()),
            network: Arc::new(OnceLock::new()),
        }
    }

    /// Loads a model directory (`config.json` + `model.safetensors`) and builds its engine graph
    /// (which checks every weight against the config); no burn module is created.
    ///
    /// Only the packed engine weights stay in memory: the file's bytes and the named tensors are
    /// dropped once the graph is built (the file is read again for another kernel family or for
    /// burn's network), so a model's weights are held once, not three times.
    ///
    /// # Errors
    /// [`ModelError::Io`] when a file is missing or unreadable, then as
    /// [`Colorizer::from_bytes`].
    pub fn load(dir: &Path, device: &Device) -> Result<Self, ModelError> {
        let (config_json, bytes) = read_model_dir(dir)?;
        let config = ModelConfig::from_json(&config_json, &dir.join(CONFIG_FILE))?;
        let source = dir.join(WEIGHTS_FILE);
        let graph = {
            let named = Weights::from_bytes(&bytes, &source)?;
            drop(bytes);
            config.network.graph(&named, Isa::detect())?
        };
        let c = Self::assemble(
            config,
            WeightBytes::File(source.clone()),
            source,
            device.clone(),
        );
        c.compiled
            .set(Ok(Arc::new(graph)))
            .expect("a new cell is empty");
        Ok(c)
    }

    /// Loads a model from memory (the bundled model); `name` names it in errors.
    ///
    /// # Errors
    /// [`ModelError::Config`] for a bad `config.json`, [`ModelError::Weights`] for a bad
    /// safetensors file, [`ModelError::MissingWeight`], [`ModelError::WeightShape`] or
    /// [`ModelError::UnexpectedWeight`] when the weights do not fit the architecture.
    pub fn from_bytes(
        config_json: &[u8],
        weights: Arc<[u8]>,
        name: &Path,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let config = ModelConfig::from_json(config_json, &name.join(CONFIG_FILE))?;
        let source = name.join(WEIGHTS_FILE);
        let graph = {
            let named = Weights::from_bytes(&weights, &source)?;
            config.network.graph(&named, Isa::detect())?
        };
        let c = Self::assemble(config, WeightBytes::Shared(weights), source, device.clone());
        c.compiled
            .set(Ok(Arc::new(graph)))
            .expect("a new cell is empty");
        Ok(c)
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

    /// The engine graph, built from the named weights on the first call, then shared.
    ///
    /// # Errors
    /// As [`crate::NetworkConfig::graph`].
    pub fn graph(&self) -> Result<Arc<Graph>, ModelError> {
        let built = self.compiled.get_or_init(|| {
            let bytes = self.weights.read().map_err(|e| e.to_string())?;
            let weights = Weights::from_bytes(&bytes, &self.source).map_err(|e| e.to_string())?;
            self.config
                .network
                .graph(&weights, self.isa)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        });
        built.clone().map_err(ModelError::Inference)
    }

    /// burn's network with the model's weights, created on the first call, then shared.
    ///
    /// # Errors
    /// As [`load_weights`].
    pub fn network(&self) -> Result<Arc<Network>, ModelError> {
        let built = self.network.get_or_init(|| {
            let mut network = self
                .config
                .network
                .init(&self.device)
                .map_err(|e| e.to_string())?;
            let bytes = self.weights.read().map_err(|e| e.to_string())?;
            load_weights(&mut network, bytes.into_owned(), &self.source)
                .map(|()| Arc::new(network))
                .map_err(|e| e.to_string())
        });
        built.clone().map_err(ModelError::Inference)
    }

    /// Whether burn's network has been created (it is only for [`EngineKind::Burn`] and
    /// [`Colorizer::new`]).
    pub fn has_burn_network(&self) -> bool {
        self.network.get().is_some()
    }

    /// Sets the render size (the shorter side in pixels for the default size rule; see
    /// [`crate::model_io::SizeRule`]). Values outside `1..=`[`crate::limits::MAX_RENDER_SIZE`]
    /// are taken as the nearer bound.
    pub fn with_render_size(mut self, render_size: u32) -> Self {
        self.render_size = render_size.clamp(1, crate::limits::MAX_RENDER_SIZE);
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

    /// The size `(width, height)` at which the network sees a photo of `width x height` at the
    /// current render size (the model's size rule).
    pub fn network_size(&self, width: usize, height: usize) -> (usize, usize) {
        self.config
            .io
            .size
            .network_size(width, height, self.render_size)
    }

    /// Stage 1: the network input for a photo's full-size L plane (`width · height` values,
    /// `0..=100`): L resized (area-averaged when shrinking) to the network size, then encoded as
    /// the model's contract says (for example `(L − 50)/50`, or normalised gray RGB).
    pub fn prepare(&self, width: usize, height: usize, l: &[f32]) -> NetworkInput {
        let (rw, rh) = self.network_size(width, height);
        let small = resize_plane(l, width, height, rw, rh);
        self.prepare_resized(rw, rh, &small)
    }

    /// As [`Colorizer::prepare`] for an L plane already at the size the network should see.
    pub fn prepare_resized(&self, width: usize, height: usize, l: &[f32]) -> NetworkInput {
        NetworkInput {
            width,
            height,
            values: self.config.io.encode_input(l),
        }
    }

    /// Whether the network takes user hints ([`crate::hints`]).
    pub fn takes_hints(&self) -> bool {
        matches!(self.config.io.input, InputKind::LightnessWithHints { .. })
    }

    /// Paints user hints into a prepared input; `photo_width x photo_height` is the size of the
    /// photo the hints' coordinates refer to.
    ///
    /// # Errors
    /// [`ModelError::HintsUnsupported`] when the network does not take hints.
    pub fn add_hints(
        &self,
        input: &mut NetworkInput,
        photo_width: usize,
        photo_height: usize,
        hints: &[Hint],
    ) -> Result<(), ModelError> {
        match self.config.io.input {
            InputKind::LightnessWithHints { ab_scale, .. } => {
                paint(input, photo_width, photo_height, hints, ab_scale);
                Ok(())
            }
            _ if hints.is_empty() => Ok(()),
            _ => Err(ModelError::HintsUnsupported),
        }
    }

    /// Stage 2: runs the network on a batch of inputs and returns each one's a and b (CIELAB
    /// units, at the network's output size, with the saturation applied). Consecutive inputs of
    /// the same size run as one batch (`[batch, channels, height, width]`), which is faster per
    /// image than one at a time.
    ///
    /// # Errors
    /// [`ModelError::Inference`] if an input's length does not fit its size or the backend
    /// fails; [`ModelError::Engine`] if the engine cannot run the network at a size.
    pub fn predict(&self, inputs: &[NetworkInput]) -> Result<Vec<AbPlanes>, ModelError> {
        for x in inputs {
            self.check_input(x)?;
        }
        let mut out = Vec::with_capacity(inputs.len());
        let mut start = 0;
        while start < inputs.len() {
            let (w, h) = (inputs[start].width, inputs[start].height);
            let mut end = start + 1;
            while end < inputs.len() && (inputs[end].width, inputs[end].height) == (w, h) {
                end += 1;
            }
            out.extend(self.predict_same_size(&inputs[start..end], w, h)?);
            start = end;
        }
        Ok(out)
    }

    fn predict_same_size(
        &self,
        inputs: &[NetworkInput],
        width: usize,
        height: usize,
    ) -> Result<Vec<AbPlanes>, ModelError> {
        let io = &self.config.io;
        let k = self.saturation;
        let (ow, oh, layout, y) = self.forward(inputs, width, height)?;
        let per = io.output_channels() * ow * oh;
        Ok(y.chunks_exact(per)
            .map(|item| {
                let (a, b) = match layout {
                    Layout::Nhwc => io.decode_output_nhwc(item, ow * oh),
                    Layout::Nchw => io.decode_output_planar(item, ow * oh),
                };
                AbPlanes {
                    width: ow,
                    height: oh,
                    a: a.into_iter().map(|v| v * k).collect(),
                    b: b.into_iter().map(|v| v * k).collect(),
                }
            })
            .collect())
    }

    /// Runs the chosen engine on same-size inputs: `(out width, out height, layout, values)`,
    /// `[batch, oh, ow, C]` from the native engine, `[batch, C, oh, ow]` from burn.
    fn forward(
        &self,
        inputs: &[NetworkInput],
        width: usize,
        height: usize,
    ) -> Result<(usize, usize, Layout, Vec<f32>), ModelError> {
        let io = &self.config.io;
        let (cin, cout) = (io.input_channels(), io.output_channels());
        let batch = inputs.len();
        let pixels = width * height;
        if self.engine == EngineKind::Native {
            let graph = self.graph()?;
            // The engine is NHWC: one channel is already that layout; otherwise interleave.
            let mut x = Vec::with_capacity(batch * cin * pixels);
            for input in inputs {
                if cin == 1 {
                    x.extend_from_slice(&input.values);
                } else {
                    for p in 0..pixels {
                        x.extend((0..cin).map(|c| input.values[c * pixels + p]));
                    }
                }
            }
            let (oh, ow) = graph.output_size(height, width)?;
            let y = graph.run(&x, batch, height, width)?; // [batch, oh, ow, cout]
            return Ok((ow, oh, Layout::Nhwc, y));
        }
        let network = self.network()?;
        let x: Vec<f32> = inputs
            .iter()
            .flat_map(|i| i.values.iter().copied())
            .collect();
        let x = Tensor::<4>::from_data(
            TensorData::new(x, [batch, cin, height, width]),
            &self.device,
        );
        let y = network.forward(x); // [batch, cout, oh, ow]
        let [_, c, oh, ow] = y.dims();
        if c != cout {
            return Err(ModelError::Inference(format!(
                "the network returned {c} channels, the model's contract says {cout}"
            )));
        }
        let y = y
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| ModelError::Inference(format!("{e:?}")))?;
        Ok((ow, oh, Layout::Nchw, y))
    }

    /// The network's raw output for one input: `(width, height, values)` with `values` planar
    /// `[channels, height, width]`, before the contract's decoding and without the saturation
    /// (for the reference pipelines of [`crate::pipelines`]).
    ///
    /// # Errors
    /// As [`Colorizer::predict`].
    pub fn predict_raw(
        &self,
        input: &NetworkInput,
    ) -> Result<(usize, usize, Vec<f32>), ModelError> {
        self.check_input(input)?;
        let (ow, oh, layout, y) =
            self.forward(std::slice::from_ref(input), input.width, input.height)?;
        let y = match layout {
            Layout::Nchw => y,
            Layout::Nhwc => {
                let c = self.config.io.output_channels();
                (0..c)
                    .flat_map(|k| (0..oh * ow).map(move |p| (k, p)))
                    .map(|(k, p)| y[p * c + k])
                    .collect()
            }
        };
        Ok((ow, oh, y))
    }

    fn check_input(&self, x: &NetworkInput) -> Result<(), ModelError> {
        let cin = self.config.io.input_channels();
        if x.values.len() != cin * x.width * x.height {
            return Err(ModelError::Inference(format!(
                "network input has {} values, {cin} x {} x {} needs {}",
                x.values.len(),
                x.height,
                x.width,
                cin * x.width * x.height
            )));
        }
        Ok(())
    }

    /// Stage 3: joins predicted ab with the photo's full-size L (`width · height` values, kept
    /// exactly): ab is enlarged bilinearly to the photo's size.
    ///
    /// # Errors
    /// [`ModelError::Inference`] if `l` does not hold `width · height` values.
    pub fn join(
        &self,
        width: usize,
        height: usize,
        l: Vec<f32>,
        ab: &AbPlanes,
    ) -> Result<LabImage, ModelError> {
        if l.len() != width * height {
            return Err(ModelError::Inference(format!(
                "L has {} values, {width} x {height} needs {}",
                l.len(),
                width * height
            )));
        }
        Ok(LabImage::join(
            width, height, l, ab.width, ab.height, &ab.a, &ab.b,
        ))
    }

    /// Runs the network on an L plane that is already at the size it should see.
    ///
    /// `l`: `width · height` values, L in `0..=100`. Returns the a and b planes (at the network's
    /// output size, the input's for every network so far), in CIELAB units, with the saturation
    /// applied.
    ///
    /// # Errors
    /// As [`Colorizer::predict`].
    pub fn predict_ab(
        &self,
        l: &[f32],
        width: usize,
        height: usize,
    ) -> Result<(Vec<f32>, Vec<f32>), ModelError> {
        let input = self.prepare_resized(width, height, l);
        let ab = self.predict(std::slice::from_ref(&input))?.remove(0);
        Ok((ab.a, ab.b))
    }

    /// Colourises a full-size L plane: the three stages on one photo.
    ///
    /// `l`: `width · height` values, L in `0..=100`.
    ///
    /// # Errors
    /// As [`Colorizer::predict`] and [`Colorizer::join`].
    pub fn colorize_lightness(
        &self,
        width: usize,
        height: usize,
        l: Vec<f32>,
    ) -> Result<LabImage, ModelError> {
        let input = self.prepare(width, height, &l);
        let ab = self.predict(std::slice::from_ref(&input))?.remove(0);
        self.join(width, height, l, &ab)
    }

    /// Colourises a photo. A colour photo is first reduced to its CIELAB L (its gray version).
    /// The output has the input's size; its L equals the input's L up to rounding.
    ///
    /// This returns a float image (12 bytes per pixel); [`Colorizer::colorize_to`] writes 8- or
    /// 16-bit pixels straight away, which is what the CLI and the server do.
    ///
    /// # Errors
    /// As [`Colorizer::colorize_lightness`].
    pub fn colorize(&self, image: &DynamicImage) -> Result<Rgb32FImage, ModelError> {
        self.colorize_with_hints(image, &[])
    }

    /// As [`Colorizer::colorize`], with user hints in the photo's pixel coordinates (none: the
    /// same as [`Colorizer::colorize`]). A model whose `io.pipeline` is a published one runs that
    /// pipeline ([`crate::pipelines`]) instead of colorize's own (and ignores the saturation).
    ///
    /// # Errors
    /// [`ModelError::HintsUnsupported`] for hints to a network that does not take them, then as
    /// [`Colorizer::colorize_lightness`].
    pub fn colorize_with_hints(
        &self,
        image: &DynamicImage,
        hints: &[Hint],
    ) -> Result<Rgb32FImage, ModelError> {
        Ok(self
            .colorize_to(image, hints, SampleDepth::Float)?
            .into_rgb32f())
    }

    /// Colourises a photo (with hints, as [`Colorizer::colorize_with_hints`]) straight into an
    /// sRGB image of `depth` ([`DynamicImage::ImageRgb8`], `ImageRgb16` or `ImageRgb32F`), with the
    /// pixels [`Colorizer::colorize_with_hints`] followed by
    /// [`colorize_core::io::to_output_pixels`] would give, bit for bit.
    ///
    /// **Memory.** The full-size L, a and b planes are never held: L is read from `image` a band
    /// of rows at a time, both on the way down to the network size and on the way back, and ab is
    /// enlarged and converted to sRGB band by band straight into the output
    /// ([`colorize_core::lab::join_to_srgb`]). Besides `image` itself (1 byte per pixel for 8-bit
    /// gray, 3 for 8-bit RGB, 2–8 for 16-bit) and the output (`depth.bytes_per_pixel()`: 3, 6 or
    /// 12 bytes per pixel), the photo costs `4 · (height · network width + network height ·
    /// width)` bytes per plane for the two resizes' intermediates (about 8 MB each for 100
    /// megapixels at render size 160) and `12 · width · 32` bytes per thread; the network's own
    /// memory depends on the render size only. The published pipelines of [`crate::pipelines`]
    /// (imported eccv16/siggraph17/DeOldify models) still work on whole planes.
    ///
    /// # Errors
    /// As [`Colorizer::colorize_with_hints`].
    pub fn colorize_to(
        &self,
        image: &DynamicImage,
        hints: &[Hint],
        depth: SampleDepth,
    ) -> Result<DynamicImage, ModelError> {
        if let Some(rgb) = crate::pipelines::run(self, self.config.io.pipeline, image, hints)? {
            return Ok(from_rgb8(rgb, depth));
        }
        let l = Lightness::Image(image);
        let (w, h) = (l.width(), l.height());
        let (rw, rh) = self.network_size(w, h);
        let small = resize_plane_rows(w, h, rw, rh, |first, out| l.rows(first, out));
        let mut input = self.prepare_resized(rw, rh, &small);
        drop(small);
        if !hints.is_empty() {
            self.add_hints(&mut input, w, h, hints)?;
        }
        let ab = self.predict(std::slice::from_ref(&input))?.remove(0);
        drop(input);
        Ok(join_to_srgb(&l, ab.width, ab.height, &ab.a, &ab.b, depth))
    }
}

/// A published pipeline's 8-bit result at `depth` (16-bit and float through `v / 255`, as the
/// float result was before [`colorize_core::io::to_output_pixels`]).
fn from_rgb8(rgb: image::RgbImage, depth: SampleDepth) -> DynamicImage {
    let (w, h) = rgb.dimensions();
    match depth {
        SampleDepth::Eight => DynamicImage::ImageRgb8(rgb),
        SampleDepth::Sixteen => {
            let px = rgb
                .as_raw()
                .iter()
                .map(|&v| quantize16(v as f32 / 255.0))
                .collect();
            DynamicImage::ImageRgb16(image::ImageBuffer::from_raw(w, h, px).expect("same size"))
        }
        SampleDepth::Float => {
            let px = rgb.as_raw().iter().map(|&v| v as f32 / 255.0).collect();
            DynamicImage::ImageRgb32F(Rgb32FImage::from_raw(w, h, px).expect("same size"))
        }
    }
}
