//! `model-dir`: mutated model folders (`config.json` + `model.safetensors`) through the models
//! crate's loaders.
//!
//! The seeds are tiny valid folders written with [`colorize_models::save_model_dir`] (a plain
//! encoder-decoder, the same taking colour hints, a small U-Net; `--corpus` adds model folders).
//! An input changes `config.json` JSON-aware (numbers to 0, negative, huge or fractional, wrong
//! types, keys dropped or renamed, other `arch` and `kind` tags) and/or `model.safetensors` (the
//! 8-byte header length, the header JSON's dtypes, shapes and offsets, truncation, bytes, NaN
//! weights, another model's weights), or drops a file.
//!
//! Each execution writes the folder to a RAM-disk scratch folder and loads it the ways the
//! programs do: [`Colorizer::load`] (the native engine: every weight checked while the graph is
//! built) and, for a loaded model, a colourisation at render size 32; and on every fourth
//! execution [`colorize_models::load_model_dir`] (burn's network, what `--engine burn` and
//! training use). Errors are fine; panics, aborts (an allocation the process limit refuses) and
//! hangs are crashes.

use std::path::{Path, PathBuf};

use burn::prelude::Device;
use colorize_models::Colorizer;
use colorize_models::model_dir::{CONFIG_FILE, WEIGHTS_FILE};
use serde_json::{Value, json};

use crate::json::{mutate_json_text, mutate_value};
use crate::mutate::{interesting, mutate_bytes};
use crate::rng::Rng;
use crate::targets::{Target, TargetOptions, scratch_dir};

/// A model folder's two files; `None` for a file that is absent.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFiles {
    /// `config.json`.
    pub config: Option<Vec<u8>>,
    /// `model.safetensors`.
    pub weights: Option<Vec<u8>>,
}

/// `config.json` of the tiny plain encoder-decoder (1.5 k parameters) every target uses.
pub fn tiny_plain_config() -> Value {
    json!({
        "network": {
            "arch": "plain_cnn",
            "encoder_widths": [4, 8],
            "bottleneck_depth": 1,
            "decoder_widths": [8, 4],
            "in_channels": 1,
            "out_channels": 2,
            "output_activation": "tanh"
        },
        "io": {
            "input": {"kind": "lightness", "offset": 50.0, "scale": 50.0},
            "output": {"kind": "ab", "scale": 110.0},
            "size": {"kind": "multiple_of", "multiple": 4},
            "pipeline": "colorize"
        },
        "render_size": 32,
        "saturation": 1.0,
        "description": "colorize-fuzz: tiny plain CNN"
    })
}

/// The same network taking user colour hints (L, a, b and a mask: 4 input channels).
pub fn tiny_hints_config() -> Value {
    let mut c = tiny_plain_config();
    c["network"]["in_channels"] = json!(4);
    c["io"]["input"] =
        json!({"kind": "lightness_with_hints", "offset": 50.0, "scale": 50.0, "ab_scale": 110.0});
    c["description"] = json!("colorize-fuzz: tiny plain CNN with hints");
    c
}

/// A small U-Net over a ResNet encoder (one block a stage, 4-16 channels).
pub fn tiny_unet_config() -> Value {
    json!({
        "network": {
            "arch": "unet_resnet",
            "stem_width": 4,
            "widths": [4, 8, 8, 16],
            "depths": [1, 1, 1, 1],
            "decoder_widths": [8, 8, 4, 4, 4],
            "upsample": "bilinear",
            "in_channels": 1,
            "out_channels": 2,
            "output_activation": "tanh",
            "self_attention": false,
            "spectral_norm": false
        },
        "render_size": 32,
        "description": "colorize-fuzz: tiny U-Net"
    })
}

/// Writes a model folder for `config` with freshly initialised weights (seeded, so the files
/// are the same on every run).
///
/// # Errors
/// A description of what failed (an invalid config, an I/O error).
pub fn write_model(dir: &Path, config: &Value, seed: u64) -> Result<(), String> {
    let text = serde_json::to_vec(config).map_err(|e| e.to_string())?;
    let cfg = colorize_models::ModelConfig::from_json(&text, Path::new(CONFIG_FILE))
        .map_err(|e| e.to_string())?;
    let device = Device::flex();
    device.seed(seed);
    let net = cfg.network.init(&device).map_err(|e| e.to_string())?;
    colorize_models::save_model_dir(dir, &cfg, &net).map_err(|e| e.to_string())
}

/// A tiny model folder in a new scratch folder: the plain network (with `hints`, the one taking
/// colour hints). The folder is removed when the returned guard drops.
///
/// # Errors
/// A description of what failed.
pub fn tiny_model(hints: bool) -> Result<(tempfile::TempDir, PathBuf), String> {
    let tmp = scratch_dir("colorize-fuzz-model-").map_err(|e| e.to_string())?;
    let dir = tmp.path().join(if hints { "hints" } else { "tiny" });
    let config = if hints {
        tiny_hints_config()
    } else {
        tiny_plain_config()
    };
    write_model(&dir, &config, 17)?;
    Ok((tmp, dir))
}

/// The `model-dir` target.
pub struct ModelDir {
    seeds: Vec<(String, Value, Vec<u8>)>,
    scratch: Option<tempfile::TempDir>,
    device: Device,
    thorough: bool,
}

impl std::fmt::Debug for ModelDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelDir")
            .field("seeds", &self.seeds.len())
            .finish()
    }
}

fn read_model_seed(dir: &Path) -> Option<(String, Value, Vec<u8>)> {
    let config = serde_json::from_slice(&std::fs::read(dir.join(CONFIG_FILE)).ok()?).ok()?;
    let weights = std::fs::read(dir.join(WEIGHTS_FILE)).ok()?;
    Some((dir.display().to_string(), config, weights))
}

/// The safetensors file split into its header JSON and data, if it has that shape.
fn split_safetensors(bytes: &[u8]) -> Option<(Value, &[u8])> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header = bytes.get(8..8usize.checked_add(n)?)?;
    Some((serde_json::from_slice(header).ok()?, &bytes[8 + n..]))
}

fn join_safetensors(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

/// One mutation of a safetensors file.
fn mutate_weights(rng: &mut Rng, bytes: &mut Vec<u8>, other: &[u8]) {
    match rng.below(8) {
        // The header length field.
        0 => {
            let cur = u64::from_le_bytes(
                bytes
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .unwrap_or([0; 8]),
            );
            let v = match rng.below(6) {
                0 => u64::MAX - rng.below(8) as u64,
                1 => (bytes.len() as u64)
                    .wrapping_sub(8)
                    .wrapping_add(rng.below(3) as u64),
                2 => 1 << 63,
                _ => interesting(rng, cur, 64),
            };
            if bytes.len() >= 8 {
                bytes[..8].copy_from_slice(&v.to_le_bytes());
            }
        }
        // The header JSON, structurally: dtypes, shapes, offsets, names, metadata.
        1..=3 => {
            if let Some((mut header, data)) = split_safetensors(bytes) {
                let data = data.to_vec();
                let ptrs = crate::json::pointers(&header);
                let wanted: Vec<&String> = ptrs
                    .iter()
                    .filter(|p| {
                        p.contains("data_offsets") || p.contains("shape") || p.ends_with("dtype")
                    })
                    .collect();
                if !wanted.is_empty() && rng.one_in(2) {
                    let p = (*rng.pick(&wanted)).clone();
                    if let Some(v) = header.pointer_mut(&p) {
                        *v = if p.ends_with("dtype") {
                            json!(*rng.pick(&[
                                "F16", "BF16", "F64", "I64", "U8", "BOOL", "F8_E4M3", "F32", "Q4"
                            ]))
                        } else {
                            let cur = v.as_u64().unwrap_or(0);
                            match rng.below(3) {
                                0 => json!(interesting(rng, cur, 64)),
                                1 => json!(cur + 4),
                                _ => crate::json::interesting_number(rng, v.as_f64()),
                            }
                        };
                    }
                } else {
                    mutate_value(rng, &mut header);
                }
                let mut text = serde_json::to_vec(&header).unwrap_or_default();
                if rng.one_in(4) {
                    mutate_bytes(rng, &mut text, b"{}");
                }
                *bytes = join_safetensors(&text, &data);
            } else {
                mutate_bytes(rng, bytes, other);
            }
        }
        // Truncation.
        4 => {
            let keep = rng.below(bytes.len() + 1);
            bytes.truncate(keep);
        }
        // Non-finite or huge weights in the data.
        5 => {
            if let Some(data_len) = split_safetensors(bytes).map(|(_, d)| d.len()) {
                let start = bytes.len() - data_len;
                for _ in 0..rng.small_len(16) {
                    if data_len >= 4 {
                        let at = start + 4 * rng.below(data_len / 4);
                        let v = *rng.pick(&[
                            f32::NAN,
                            f32::INFINITY,
                            f32::NEG_INFINITY,
                            3.4e38,
                            -0.0,
                            1e-45,
                        ]);
                        bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
                    }
                }
            }
        }
        // Another model's weights.
        6 => *bytes = other.to_vec(),
        _ => mutate_bytes(rng, bytes, other),
    }
}

impl ModelDir {
    fn ensure_scratch(&mut self) -> Result<PathBuf, String> {
        if self.scratch.is_none() {
            self.scratch = Some(scratch_dir("colorize-fuzz-modeldir-").map_err(|e| e.to_string())?);
        }
        let dir = self
            .scratch
            .as_ref()
            .map(|t| t.path().join("model"))
            .unwrap_or_default();
        Ok(dir)
    }
}

/// What a loading error was, for the outcome counts.
fn error_kind(e: &colorize_models::ModelError) -> &'static str {
    use colorize_models::ModelError as E;
    match e {
        E::Io { .. } => "io",
        E::Config { .. } => "config",
        E::Weights { .. } => "weights",
        E::WeightShape { .. } => "weight-shape",
        E::MissingWeight { .. } => "missing-weight",
        E::UnexpectedWeight { .. } => "unexpected-weight",
        E::InferenceOnly { .. } => "inference-only",
        E::Engine(_) => "engine",
        E::Inference(_) => "inference",
        E::HintsUnsupported => "hints-unsupported",
        _ => "other",
    }
}

impl Target for ModelDir {
    type Input = ModelFiles;
    const NAME: &'static str = "model-dir";

    fn new(options: &TargetOptions) -> Self {
        let mut seeds = Vec::new();
        for (name, config) in [
            ("tiny-plain", tiny_plain_config()),
            ("tiny-hints", tiny_hints_config()),
            ("tiny-unet", tiny_unet_config()),
        ] {
            let made = scratch_dir("colorize-fuzz-seed-")
                .map_err(|e| e.to_string())
                .and_then(|t| {
                    write_model(&t.path().join(name), &config, 5)?;
                    read_model_seed(&t.path().join(name)).ok_or_else(|| "unreadable".to_string())
                });
            match made {
                Ok((_, c, w)) => seeds.push((name.to_string(), c, w)),
                Err(e) => eprintln!("colorize-fuzz: cannot build the seed model {name}: {e}"),
            }
        }
        if let Some(corpus) = &options.corpus {
            let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.path())
                        .filter(|p| p.is_dir())
                        .collect()
                })
                .unwrap_or_default();
            dirs.sort();
            seeds.extend(dirs.iter().filter_map(|d| read_model_seed(d)));
        }
        Self {
            seeds,
            scratch: None,
            device: Device::flex(),
            thorough: false,
        }
    }

    fn generate(&mut self, rng: &mut Rng, _index: u64) -> ModelFiles {
        let (_, config, weights) = rng.pick(&self.seeds).clone();
        let other = rng.pick(&self.seeds).2.clone();
        let mut files = ModelFiles {
            config: Some(serde_json::to_vec_pretty(&config).unwrap_or_default()),
            weights: Some(weights),
        };
        let mutate_config = |rng: &mut Rng, f: &mut ModelFiles| {
            let pretty = rng.one_in(2);
            f.config = Some(mutate_json_text(rng, &config, pretty));
        };
        let mutate_w = |rng: &mut Rng, f: &mut ModelFiles| {
            if let Some(w) = &mut f.weights {
                for _ in 0..rng.range(1, 3) {
                    mutate_weights(rng, w, &other);
                }
            }
        };
        match rng.below(20) {
            0..=6 => mutate_config(rng, &mut files),
            7..=13 => mutate_w(rng, &mut files),
            14..=16 => {
                mutate_config(rng, &mut files);
                mutate_w(rng, &mut files);
            }
            17 => {
                if rng.one_in(2) {
                    files.config = None;
                } else {
                    files.weights = None;
                }
            }
            18 => {
                if let Some(c) = &mut files.config {
                    mutate_bytes(rng, c, b"{\"network\": {}}");
                }
            }
            _ => {}
        }
        files
    }

    fn exec(&mut self, input: &ModelFiles, index: u64) -> Result<String, String> {
        let dir = self.ensure_scratch()?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("scratch folder: {e}"))?;
        for (name, bytes) in [(CONFIG_FILE, &input.config), (WEIGHTS_FILE, &input.weights)] {
            if let Some(b) = bytes {
                std::fs::write(dir.join(name), b).map_err(|e| format!("scratch folder: {e}"))?;
            }
        }
        let mut label = match Colorizer::load(&dir, &self.device) {
            Ok(c) => {
                // A loaded model must colourise a small photo at a small render size.
                let photo =
                    image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(24, 16, |x, y| {
                        image::Luma([(x * 10 + y * 3) as u8])
                    }));
                match c.with_render_size(32).colorize(&photo) {
                    Ok(_) => "native:colorized".to_string(),
                    Err(e) => format!("native:colorize-{}", error_kind(&e)),
                }
            }
            Err(e) => format!("native:{}", error_kind(&e)),
        };
        if self.thorough || index.is_multiple_of(4) {
            let burn = match colorize_models::load_model_dir(&dir, &self.device) {
                Ok(_) => "loaded".to_string(),
                Err(e) => error_kind(&e).to_string(),
            };
            label = format!("{label} burn:{burn}");
        }
        Ok(label)
    }

    fn thorough(&mut self) {
        self.thorough = true;
    }

    fn save(input: &ModelFiles, stem: &Path) -> std::io::Result<PathBuf> {
        let dir = stem.to_path_buf();
        std::fs::create_dir_all(&dir)?;
        for (name, bytes) in [(CONFIG_FILE, &input.config), (WEIGHTS_FILE, &input.weights)] {
            if let Some(b) = bytes {
                std::fs::write(dir.join(name), b)?;
            }
        }
        Ok(dir)
    }

    fn load(path: &Path) -> std::io::Result<ModelFiles> {
        if !path.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is not a model folder", path.display()),
            ));
        }
        let read = |name: &str| std::fs::read(path.join(name)).ok();
        Ok(ModelFiles {
            config: read(CONFIG_FILE),
            weights: read(WEIGHTS_FILE),
        })
    }
}
