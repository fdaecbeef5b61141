//! The networks a model directory can hold, selected by the `arch` tag of `config.json`.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use colorize_engine::{Graph, Isa};

use crate::ddcolor::DdcolorConfig;
use crate::deoldify::DeoldifyConfig;
use crate::eccv16::Eccv16Config;
use crate::error::ModelError;
use crate::fusion::{Fusion, FusionConfig};
use crate::plain_cnn::{PlainCnn, PlainCnnConfig};
use crate::resnet18_regressor::{Resnet18Regressor, Resnet18RegressorConfig};
use crate::siggraph17::Siggraph17Config;
use crate::unet_resnet::{UnetResnet, UnetResnetConfig};
use crate::weights::Weights;

/// A network's architecture, tagged by `arch` in `config.json`
/// (`{"arch": "unet_resnet", "stem_width": 64, ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "arch", rename_all = "snake_case")]
#[non_exhaustive]
pub enum NetworkConfig {
    /// [`UnetResnet`]: U-Net over a ResNet encoder, L → ab regression.
    UnetResnet(UnetResnetConfig),
    /// Zhang et al. 2016's eccv16 ([`crate::eccv16`]): inference only (no burn module).
    Eccv16(Eccv16Config),
    /// DeOldify's generator ([`crate::deoldify`]): inference only (no burn module).
    Deoldify(DeoldifyConfig),
    /// DDColor ([`crate::ddcolor`]): inference only (no burn module).
    Ddcolor(DdcolorConfig),
    /// Zhang et al. 2017's siggraph17 ([`crate::siggraph17`]): inference only (no burn module).
    Siggraph17(Siggraph17Config),
    /// [`PlainCnn`]: the plain encoder-decoder baseline ([`crate::plain_cnn`]).
    PlainCnn(PlainCnnConfig),
    /// [`Resnet18Regressor`]: a ResNet-18 encoder with an upsampling head
    /// ([`crate::resnet18_regressor`]).
    Resnet18Regressor(Resnet18RegressorConfig),
    /// [`Fusion`]: Deep Koalarization, encoder + global classifier features
    /// ([`crate::fusion`]).
    Fusion(FusionConfig),
}

impl NetworkConfig {
    /// Builds burn's network with fresh weights (for training and [`crate::EngineKind::Burn`]).
    ///
    /// # Errors
    /// [`ModelError::Limit`] for widths, depths or a parameter count past [`crate::limits`]
    /// (checked before anything is allocated), [`ModelError::InferenceOnly`] for an architecture
    /// that exists only as an engine graph.
    pub fn init(&self, device: &Device) -> Result<Network, ModelError> {
        self.check_limits()?;
        match self {
            Self::UnetResnet(c) => Ok(Network::UnetResnet(c.init(device))),
            Self::PlainCnn(c) => Ok(Network::PlainCnn(c.init(device))),
            Self::Resnet18Regressor(c) => Ok(Network::Resnet18Regressor(c.init(device))),
            Self::Fusion(c) => Ok(Network::Fusion(c.init(device))),
            Self::Eccv16(_) | Self::Deoldify(_) | Self::Ddcolor(_) | Self::Siggraph17(_) => {
                Err(ModelError::InferenceOnly { arch: self.arch() })
            }
        }
    }

    /// The network as an engine graph, built from its named weights (no burn module). Every
    /// tensor of `weights` must be used.
    ///
    /// # Errors
    /// [`ModelError::MissingWeight`], [`ModelError::WeightShape`] or
    /// [`ModelError::UnexpectedWeight`] when the weights do not fit; [`ModelError::Engine`] when
    /// the engine cannot run a layer or `isa` is unavailable; [`ModelError::Limit`] as
    /// [`NetworkConfig::init`].
    pub fn graph(&self, weights: &Weights, isa: Isa) -> Result<Graph, ModelError> {
        self.check_limits()?;
        match self {
            Self::UnetResnet(c) => crate::unet_resnet::graph(c, weights, isa),
            Self::Eccv16(c) => crate::eccv16::graph(c, weights, isa),
            Self::Deoldify(c) => crate::deoldify::graph(c, weights, isa),
            Self::Ddcolor(c) => crate::ddcolor::graph(c, weights, isa),
            Self::Siggraph17(c) => crate::siggraph17::graph(c, weights, isa),
            Self::PlainCnn(c) => crate::plain_cnn::graph(c, weights, isa),
            Self::Resnet18Regressor(c) => crate::resnet18_regressor::graph(c, weights, isa),
            Self::Fusion(c) => crate::fusion::graph(c, weights, isa),
        }
    }

    /// Checks widths, depths and the estimated parameter count against [`crate::limits`]
    /// ([`crate::limits::check_network`]).
    ///
    /// # Errors
    /// [`ModelError::Limit`] naming the field (under `network`), with `config.json` as the path.
    pub fn check_limits(&self) -> Result<(), ModelError> {
        crate::limits::check_network(self).map_err(|(field, message)| ModelError::Limit {
            path: std::path::PathBuf::from(crate::model_dir::CONFIG_FILE),
            field,
            message,
        })
    }

    /// `(input channels, output channels)` of the network.
    pub fn channels(&self) -> (usize, usize) {
        match self {
            Self::UnetResnet(c) => (c.in_channels, c.out_channels),
            Self::Eccv16(_) => (1, 2),
            Self::Deoldify(_) => (3, 3),
            Self::Ddcolor(_) => (3, 2),
            Self::Siggraph17(_) => (4, 2),
            Self::PlainCnn(c) => (c.in_channels, c.out_channels),
            Self::Resnet18Regressor(c) => (c.in_channels, c.out_channels),
            Self::Fusion(c) => (c.in_channels, c.out_channels),
        }
    }

    /// The `arch` tag.
    pub fn arch(&self) -> &'static str {
        match self {
            Self::UnetResnet(_) => "unet_resnet",
            Self::Eccv16(_) => "eccv16",
            Self::Deoldify(_) => "deoldify",
            Self::Ddcolor(_) => "ddcolor",
            Self::Siggraph17(_) => "siggraph17",
            Self::PlainCnn(_) => "plain_cnn",
            Self::Resnet18Regressor(_) => "resnet18_regressor",
            Self::Fusion(_) => "fusion",
        }
    }
}

/// A loaded burn network (for training and [`crate::EngineKind::Burn`]); what its input and
/// output mean is the model's [`crate::ModelIo`].
// Variants differ by a few hundred bytes of layer handles (the tensors live on the device), and
// a network is built once and shared behind an `Arc`: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
#[non_exhaustive]
pub enum Network {
    /// U-Net over a ResNet encoder.
    UnetResnet(UnetResnet),
    /// The plain encoder-decoder baseline.
    PlainCnn(PlainCnn),
    /// A ResNet-18 encoder with an upsampling head.
    Resnet18Regressor(Resnet18Regressor),
    /// Deep Koalarization (encoder fused with a backbone's global features).
    Fusion(Fusion),
}

impl Network {
    /// Runs the network.
    ///
    /// # Shapes
    /// `x: [batch, in_channels, H, W]` → `[batch, out_channels, H', W']`, encoded as the model's
    /// [`crate::ModelIo`] says (default: `(L − 50)/50` in, `ab/110` out, `H' = H`, `W' = W`).
    pub fn forward(&self, l: Tensor<4>) -> Tensor<4> {
        match self {
            Self::UnetResnet(n) => n.forward(l),
            Self::PlainCnn(n) => n.forward(l),
            Self::Resnet18Regressor(n) => n.forward(l),
            Self::Fusion(n) => n.forward(l),
        }
    }

    /// One power iteration on every spectral-normalised layer
    /// ([`UnetResnet::power_iteration`]), for the training loop to call once per optimiser
    /// step; networks without spectral norm are returned unchanged.
    pub fn power_iteration(self) -> Self {
        match self {
            Self::UnetResnet(n) => Self::UnetResnet(n.power_iteration()),
            #[allow(unreachable_patterns)]
            other => other,
        }
    }
}
