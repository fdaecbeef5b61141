//! The networks a model directory can hold, selected by the `arch` tag of `config.json`.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::unet_resnet::{UnetResnet, UnetResnetConfig};

/// A network's architecture, tagged by `arch` in `config.json`
/// (`{"arch": "unet_resnet", "stem_width": 64, ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "arch", rename_all = "snake_case")]
#[non_exhaustive]
pub enum NetworkConfig {
    /// [`UnetResnet`]: U-Net over a ResNet encoder, L → ab regression.
    UnetResnet(UnetResnetConfig),
}

impl NetworkConfig {
    /// Builds the network with fresh weights.
    pub fn init(&self, device: &Device) -> Network {
        match self {
            Self::UnetResnet(c) => Network::UnetResnet(c.init(device)),
        }
    }

    /// The `arch` tag.
    pub fn arch(&self) -> &'static str {
        match self {
            Self::UnetResnet(_) => "unet_resnet",
        }
    }
}

/// A loaded network. Every variant maps L to ab with the same scaling (see [`Network::forward`]).
#[derive(Module, Debug)]
#[non_exhaustive]
pub enum Network {
    /// U-Net over a ResNet encoder.
    UnetResnet(UnetResnet),
}

impl Network {
    /// Predicts ab from L.
    ///
    /// # Shapes
    /// `l: [batch, 1, H, W]`, `L/50 − 1` in `-1..1` → `[batch, 2, H, W]`, `ab/110` in `-1..1`.
    pub fn forward(&self, l: Tensor<4>) -> Tensor<4> {
        match self {
            Self::UnetResnet(n) => n.forward(l),
        }
    }
}
