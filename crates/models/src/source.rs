//! Where a model comes from and how it is set up to run: the one loading path that the CLI's
//! commands and the server's workers share.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::prelude::Device;
use colorize_engine::Isa;

use crate::colorizer::{Colorizer, EngineKind};
use crate::error::ModelError;

/// Where a model comes from.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// A model held in memory (the bundled model): `config.json` and `model.safetensors` bytes.
    Bytes {
        /// The name clients use (`"default"`).
        name: String,
        /// The content of `config.json`.
        config_json: Arc<[u8]>,
        /// The content of `model.safetensors`.
        weights: Arc<[u8]>,
    },
    /// A model directory (`config.json` + `model.safetensors`).
    Dir {
        /// The name clients use (by convention the folder's name).
        name: String,
        /// The folder.
        path: PathBuf,
    },
}

impl ModelSource {
    /// A model directory named after its folder (`runs/mine` → `mine`).
    ///
    /// # Errors
    /// [`ModelError::Config`] when the path has no usable folder name (`/`, `..` that cannot be
    /// resolved, a name that is not UTF-8).
    pub fn dir(path: &Path) -> Result<Self, ModelError> {
        let name = path
            .canonicalize()
            .unwrap_or_else(|_| path.to_path_buf())
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
            .ok_or_else(|| ModelError::Config {
                path: path.to_path_buf(),
                message: "cannot name a model after this folder".into(),
            })?;
        Ok(Self::Dir {
            name,
            path: path.to_path_buf(),
        })
    }

    /// The name clients use to choose this model.
    pub fn name(&self) -> &str {
        match self {
            Self::Bytes { name, .. } | Self::Dir { name, .. } => name,
        }
    }

    /// Loads the model and sets it up as `options` say. With the native engine the graph is
    /// built (and every weight checked) here, so the first photo does not pay for it; burn's
    /// network is created here only for [`EngineKind::Burn`].
    ///
    /// # Errors
    /// As [`Colorizer::load`] / [`Colorizer::from_bytes`], and [`LoadOptions::apply`].
    pub fn load(&self, device: &Device, options: &LoadOptions) -> Result<Colorizer, ModelError> {
        let colorizer = match self {
            Self::Bytes {
                name,
                config_json,
                weights,
            } => Colorizer::from_bytes(
                config_json,
                weights.clone(),
                Path::new(&format!("<model {name}>")),
                device,
            )?,
            Self::Dir { path, .. } => Colorizer::load(path, device)?,
        };
        options.apply(colorizer)
    }
}

/// How a loaded model runs: engine, kernel family, render size and saturation (`None` keeps the
/// model's own default).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadOptions {
    /// The forward pass.
    pub engine: EngineKind,
    /// The native engine's kernel family (default: the best this CPU runs).
    pub isa: Option<Isa>,
    /// Render size in pixels (see [`Colorizer::with_render_size`]).
    pub render_size: Option<u32>,
    /// Saturation (see [`Colorizer::with_saturation`]).
    pub saturation: Option<f32>,
}

/// Refuses a render size the model's network cannot take exactly, where rounding it would
/// change what the published pipeline computes: DDColor's (a square whose side is a multiple of
/// 32).
///
/// # Errors
/// [`ModelError::RenderSize`] naming the nearest sizes that work.
pub fn check_render_size(c: &Colorizer, render_size: u32) -> Result<(), ModelError> {
    let io = &c.config().io;
    if io.pipeline != crate::pipelines::Pipeline::Ddcolor {
        return Ok(());
    }
    let multiple = match io.size {
        crate::SizeRule::Square { multiple } | crate::SizeRule::MultipleOf { multiple } => {
            multiple.max(1) as u32
        }
        crate::SizeRule::Fixed { .. } => return Ok(()),
    };
    if render_size >= multiple && render_size.is_multiple_of(multiple) {
        return Ok(());
    }
    let below = render_size / multiple * multiple;
    let above = below + multiple;
    let hint = if below == 0 {
        format!("try {above}")
    } else {
        format!("try {below} or {above}")
    };
    Err(ModelError::RenderSize {
        render_size,
        message: format!(
            "this DDColor model takes a square whose side is a multiple of {multiple} ({hint}; \
             the published models run at 512)"
        ),
    })
}

impl LoadOptions {
    /// Applies the options to a loaded model, building what the chosen engine needs.
    ///
    /// # Errors
    /// [`ModelError::Engine`] if this CPU cannot run `isa`; as [`Colorizer::graph`] or
    /// [`Colorizer::network`] when the chosen engine's form of the network cannot be built.
    pub fn apply(&self, colorizer: Colorizer) -> Result<Colorizer, ModelError> {
        let mut c = colorizer.with_engine(self.engine);
        if let Some(isa) = self.isa {
            c = c.with_isa(isa)?;
        }
        if let Some(n) = self.render_size {
            check_render_size(&c, n)?;
            c = c.with_render_size(n);
        }
        if let Some(s) = self.saturation {
            c = c.with_saturation(s);
        }
        match self.engine {
            EngineKind::Native => drop(c.graph()?),
            EngineKind::Burn => drop(c.network()?),
        }
        Ok(c)
    }
}
