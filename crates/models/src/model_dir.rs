//! Model directories: `config.json` (a [`ModelConfig`]) beside `model.safetensors`.
//!
//! Weights are stored under PyTorch's `state_dict` names of the network's layers
//! (`layer1.0.conv1.weight`, `decoder.4.bn.weight`, `decoder.4.bn.running_var`, ...), in f32,
//! through burn-store's safetensors writer with its burn → PyTorch adapter, so one file serves the
//! engine's graph builders ([`crate::weights::Weights`]), burn, and PyTorch. Folders written
//! before (burn's `gamma`/`beta` for batch norm, as the bundled model) load too. Loading checks
//! every tensor: a missing, extra or mis-shaped tensor is an error naming the key (and both
//! shapes).
//!
//! `config.json` states the network (`network`, tagged by `arch`), its I/O contract (`io`, see
//! [`crate::model_io`]; absent means the contract of every model trained here), the default render
//! size and saturation.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::{
    ApplyError, BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore,
};
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::limits::{MAX_CHANNELS, MAX_NETWORK_SIDE, MAX_RENDER_SIZE};
use crate::model_io::{ModelIo, OutputKind, SizeRule};
use crate::network::{Network, NetworkConfig};

/// The name of the config file in a model directory.
pub const CONFIG_FILE: &str = "config.json";
/// The name of the weights file in a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// What `config.json` holds: the network's architecture and how the pipeline should run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The architecture (tagged by `arch`).
    pub network: NetworkConfig,
    /// What the network takes and returns and at which sizes; absent in folders written before
    /// the contract existed, which means [`ModelIo::default`].
    #[serde(default)]
    pub io: ModelIo,
    /// Default render size: the shorter side, in pixels, at which the network sees the photo.
    pub render_size: u32,
    /// Default saturation: the factor applied to the predicted a and b (chroma) before they are
    /// joined with L. 1.0 is the network as trained; below 1 is more muted (an L1/L2-trained
    /// network's wrong hues cost less), above 1 more vivid. Hue and L are unchanged.
    #[serde(default = "default_saturation")]
    pub saturation: f32,
    /// A one-line human description.
    #[serde(default)]
    pub description: String,
}

fn default_saturation() -> f32 {
    1.0
}

impl ModelConfig {
    /// Parses `config.json` content; `path` names it in errors. Everything that becomes an
    /// allocation is checked here, before any network or buffer exists: widths, depths and the
    /// estimated parameter count ([`crate::limits::check_network`]), the render size
    /// (`1..=`[`MAX_RENDER_SIZE`]; a size the network cannot take is rounded by its size rule)
    /// and the sizes in `io.size` (at most [`MAX_NETWORK_SIDE`]).
    ///
    /// # Errors
    /// [`ModelError::Config`] when the JSON is invalid, names an unknown `arch` or has
    /// inconsistent numbers; [`ModelError::Limit`] naming the field past a bound.
    pub fn from_json(bytes: &[u8], path: &Path) -> Result<Self, ModelError> {
        let config: Self = serde_json::from_slice(bytes).map_err(|e| ModelError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if !(config.saturation.is_finite() && config.saturation >= 0.0) {
            return Err(ModelError::Config {
                path: path.to_path_buf(),
                message: format!(
                    "saturation must be a number >= 0, not {}",
                    config.saturation
                ),
            });
        }
        let bad = |message: String| ModelError::Config {
            path: path.to_path_buf(),
            message,
        };
        let limit = |field: &str, message: String| ModelError::Limit {
            path: path.to_path_buf(),
            field: field.to_string(),
            message,
        };
        if !(1..=MAX_RENDER_SIZE).contains(&config.render_size) {
            return Err(limit(
                "render_size",
                format!(
                    "{} pixels is outside 1..={MAX_RENDER_SIZE}",
                    config.render_size
                ),
            ));
        }
        match config.io.size {
            SizeRule::MultipleOf { multiple } | SizeRule::Square { multiple }
                if multiple > MAX_NETWORK_SIDE =>
            {
                return Err(limit(
                    "io.size.multiple",
                    format!("{multiple} pixels is above {MAX_NETWORK_SIDE}"),
                ));
            }
            SizeRule::Fixed { width, height } if width.max(height) > MAX_NETWORK_SIDE => {
                return Err(limit(
                    "io.size",
                    format!("{width}x{height} pixels has a side above {MAX_NETWORK_SIDE}"),
                ));
            }
            _ => {}
        }
        if let OutputKind::AbBins { bins, .. } = &config.io.output
            && bins.len() > MAX_CHANNELS
        {
            return Err(limit(
                "io.output.bins",
                format!("{} bins is above {MAX_CHANNELS}", bins.len()),
            ));
        }
        config.io.validate().map_err(bad)?;
        crate::limits::check_network(&config.network)
            .map_err(|(field, message)| limit(&field, message))?;
        let (cin, cout) = config.network.channels();
        if (cin, cout) != (config.io.input_channels(), config.io.output_channels()) {
            return Err(bad(format!(
                "the network takes {cin} channels and returns {cout}, but io says {} and {}",
                config.io.input_channels(),
                config.io.output_channels()
            )));
        }
        Ok(config)
    }
}

/// Loads weights from safetensors bytes into a freshly built network, checking every tensor.
///
/// `path` names the weights in errors.
///
/// # Errors
/// [`ModelError::Weights`] for an unreadable file (one whose header does not describe its bytes:
/// see [`crate::weights::check_safetensors`]), [`ModelError::WeightShape`],
/// [`ModelError::MissingWeight`] or [`ModelError::UnexpectedWeight`] when the file does not fit
/// the network.
pub fn load_weights(network: &mut Network, bytes: Vec<u8>, path: &Path) -> Result<(), ModelError> {
    let weights_err = |message: String| ModelError::Weights {
        path: path.to_path_buf(),
        message,
    };
    // Check the header first: burn-store would otherwise report a bad file in its own words.
    crate::weights::check_safetensors(&bytes).map_err(weights_err)?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes))
        .with_from_adapter(PyTorchToBurnAdapter)
        .skip_enum_variants(true)
        .allow_partial(true)
        .validate(false);
    let result = network
        .load_from(&mut store)
        .map_err(|e| weights_err(e.to_string()))?;
    if let Some(e) = result.errors.first() {
        return Err(match e {
            ApplyError::ShapeMismatch {
                path: key,
                expected,
                found,
            } => ModelError::WeightShape {
                path: path.to_path_buf(),
                key: key.clone(),
                expected: expected.to_vec(),
                found: found.to_vec(),
            },
            other => weights_err(other.to_string()),
        });
    }
    if let Some((key, _)) = result.missing.first() {
        return Err(ModelError::MissingWeight {
            path: path.to_path_buf(),
            key: key.clone(),
        });
    }
    if let Some(key) = result.unused.first() {
        return Err(ModelError::UnexpectedWeight {
            path: path.to_path_buf(),
            key: key.clone(),
        });
    }
    Ok(())
}

/// Builds a network from `config.json` content and safetensors bytes (for example the model
/// bundled into the binary). `name` names the model in errors.
///
/// # Errors
/// As [`ModelConfig::from_json`] and [`load_weights`].
pub fn load_model_bytes(
    config_json: &[u8],
    weights: Vec<u8>,
    name: &Path,
    device: &Device,
) -> Result<(ModelConfig, Network), ModelError> {
    let config = ModelConfig::from_json(config_json, &name.join(CONFIG_FILE))?;
    let mut network = config.network.init(device)?;
    load_weights(&mut network, weights, &name.join(WEIGHTS_FILE))?;
    Ok((config, network))
}

/// Reads the two files of the model directory `dir`: `(config.json, model.safetensors)` bytes.
///
/// # Errors
/// [`ModelError::Io`] naming the file that is missing or unreadable.
pub fn read_model_dir(dir: &Path) -> Result<(Vec<u8>, Vec<u8>), ModelError> {
    let read = |name: &str| {
        let p = dir.join(name);
        std::fs::read(&p).map_err(|source| ModelError::Io { path: p, source })
    };
    Ok((read(CONFIG_FILE)?, read(WEIGHTS_FILE)?))
}

/// Loads the model directory `dir` (`config.json` + `model.safetensors`) as a burn network on
/// `device` (for training and for [`crate::EngineKind::Burn`]; inference does not need it).
///
/// # Errors
/// [`ModelError::Io`] when a file is missing or unreadable, then as [`load_model_bytes`].
pub fn load_model_dir(dir: &Path, device: &Device) -> Result<(ModelConfig, Network), ModelError> {
    let (config, weights) = read_model_dir(dir)?;
    load_model_bytes(&config, weights, dir, device)
}

/// Serialises the network's weights to safetensors bytes (f32, PyTorch `state_dict` keys).
///
/// # Errors
/// [`ModelError::Weights`] if serialisation fails.
pub fn weights_to_bytes(network: &Network) -> Result<Vec<u8>, ModelError> {
    let err = |message: String| ModelError::Weights {
        path: PathBuf::from(WEIGHTS_FILE),
        message,
    };
    let mut store = SafetensorsStore::from_bytes(None)
        .with_to_adapter(BurnToPyTorchAdapter)
        .skip_enum_variants(true)
        .metadata("producer", "colorize");
    network
        .save_into(&mut store)
        .map_err(|e| err(e.to_string()))?;
    store.get_bytes().map_err(|e| err(e.to_string()))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    colorize_core::io::write_file_atomic(path, bytes, true).map_err(|e| match e {
        colorize_core::CoreError::Io { path, source } => ModelError::Io { path, source },
        other => ModelError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(other.to_string()),
        },
    })
}

/// Writes `network` and `config` as a model directory (created if needed), each file atomically.
///
/// # Errors
/// [`ModelError::Io`] on file-system errors, [`ModelError::Weights`] if serialisation fails.
pub fn save_model_dir(
    dir: &Path,
    config: &ModelConfig,
    network: &Network,
) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let json = serde_json::to_vec_pretty(config).expect("config serialises");
    write_atomic(&dir.join(WEIGHTS_FILE), &weights_to_bytes(network)?)?;
    write_atomic(&dir.join(CONFIG_FILE), &json)?;
    Ok(())
}
