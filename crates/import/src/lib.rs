//! colorize-import: PyTorch checkpoints of published colourisers → colorize model folders
//! (`config.json` + `model.safetensors`, see `docs/MODELS.md`).
//!
//! A checkpoint is data, not code: it is read by `pytorch-reader` (the reader burn-store uses),
//! which parses the pickle itself and refuses anything beyond tensors and plain containers
//! (`collections.OrderedDict`, torch's tensor-rebuild functions), so nothing in the file is ever
//! executed. Both of PyTorch's formats are read: the zip archive `torch.save` writes since 1.6 and
//! the legacy (pre-1.6) one. A raw state dict and one wrapped as `{'model': ...}`,
//! `{'state_dict': ...}` or `{'params': ...}` (BasicSR's training checkpoints, DDColor's `.pth`
//! release) are all taken.
//!
//! The import converts every tensor to f32, drops PyTorch's `num_batches_tracked` counters,
//! infers the network's widths from the tensor shapes, and builds the network's engine graph from
//! the result before anything is written: a missing key, a wrong shape or an extra tensor is an
//! error naming the key, and the output folder is left untouched. `config.json` records the
//! checkpoint's file name, SHA-256 and kind under `imported_from`.
//!
//! Kinds (`Kind`): Zhang et al.'s eccv16 and siggraph17 (automatic mode), DeOldify's
//! Artistic, Stable and Video generators (spectral and weight norm folded into plain weights
//! here), and DDColor's ConvNeXt-L and ConvNeXt-T models (spectral norm folded; the checkpoint's
//! `mean`/`std` buffers become the model's input normalisation).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use colorize_core::io::write_file_atomic;
use colorize_models::ddcolor::DdcolorConfig;
use colorize_models::deoldify::DeoldifyConfig;
use colorize_models::eccv16::Eccv16Config;
use colorize_models::model_dir::{CONFIG_FILE, WEIGHTS_FILE};
use colorize_models::model_io::{IMAGENET_MEAN, IMAGENET_STD};
use colorize_models::pipelines::Pipeline;
use colorize_models::siggraph17::Siggraph17Config;
use colorize_models::weights::{TensorData, to_safetensors_bytes};
use colorize_models::{
    InputKind, Isa, ModelConfig, ModelError, ModelIo, NetworkConfig, OutputKind, SizeRule, Weights,
};
use pytorch_reader::{DType, PickleValue, PytorchReader};
use sha2::{Digest, Sha256};

/// The published networks `colorize import` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// Zhang, Isola & Efros 2016 (arXiv:1603.08511), `colorization_release_v2` (eccv16).
    Eccv16,
    /// Zhang et al. 2017 (arXiv:1705.02999), the user-guided network (siggraph17), run in its
    /// automatic mode (no hints).
    Siggraph17,
    /// DeOldify's Artistic generator (`ColorizeArtistic_gen.pth`: ResNet-34, `DynamicUnetDeep`).
    DeoldifyArtistic,
    /// DeOldify's Stable generator (`ColorizeStable_gen.pth`: ResNet-101, `DynamicUnetWide`).
    DeoldifyStable,
    /// DeOldify's Video generator (`ColorizeVideo_gen.pth`): Stable's architecture with other
    /// weights, run at render factor 21 (336 pixels). Its keys cannot tell it from Stable, so it
    /// is chosen with `--kind`.
    DeoldifyVideo,
    /// DDColor with the ConvNeXt-L encoder (Kang et al. 2023; `ddcolor_paper`,
    /// `ddcolor_modelscope`, `ddcolor_artistic`).
    DdcolorLarge,
    /// DDColor with the ConvNeXt-T encoder (`ddcolor_paper_tiny`).
    DdcolorTiny,
}

impl Kind {
    /// Every kind, in the order detection reports them.
    pub const ALL: [Kind; 7] = [
        Kind::Eccv16,
        Kind::Siggraph17,
        Kind::DeoldifyArtistic,
        Kind::DeoldifyStable,
        Kind::DeoldifyVideo,
        Kind::DdcolorLarge,
        Kind::DdcolorTiny,
    ];

    /// The name used by `--kind` and in `config.json`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Eccv16 => "eccv16",
            Self::Siggraph17 => "siggraph17",
            Self::DeoldifyArtistic => "deoldify-artistic",
            Self::DeoldifyStable => "deoldify-stable",
            Self::DeoldifyVideo => "deoldify-video",
            Self::DdcolorLarge => "ddcolor-large",
            Self::DdcolorTiny => "ddcolor-tiny",
        }
    }

    /// The kind named `name` (`eccv16`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the kind is one of DDColor's.
    pub fn is_ddcolor(self) -> bool {
        matches!(self, Self::DdcolorLarge | Self::DdcolorTiny)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors of an import; each names the checkpoint, the key or the folder it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file cannot be read at all.
    #[error("{path}: cannot read ({source})")]
    Read {
        /// The checkpoint.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a PyTorch checkpoint this reader accepts (not zip or legacy pickle, a
    /// truncated archive, a pickle that asks for code).
    #[error("{path}: not a readable PyTorch checkpoint ({message})")]
    NotACheckpoint {
        /// The checkpoint.
        path: PathBuf,
        /// What the reader said.
        message: String,
    },
    /// A tensor's data could not be read or has a type that is not a float.
    #[error("{path}: tensor {key}: {message}")]
    Tensor {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor's key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// No known kind fits the keys.
    #[error("{path}: not a checkpoint of a known kind ({reason})")]
    UnknownKind {
        /// The checkpoint.
        path: PathBuf,
        /// Which kinds came closest and which key decided.
        reason: String,
    },
    /// `--kind` named a network the checkpoint is not (its keys say which one it is).
    #[error("{path}: not a {wanted} checkpoint: {reason}")]
    WrongKind {
        /// The checkpoint.
        path: PathBuf,
        /// The kind asked for.
        wanted: Kind,
        /// The key that decided, and what the checkpoint looks like instead.
        reason: String,
    },
    /// A known network that cannot be imported yet.
    #[error("{path}: looks like {what} ({key}), which colorize cannot import yet")]
    Unsupported {
        /// The checkpoint.
        path: PathBuf,
        /// The network it looks like.
        what: &'static str,
        /// The key that decided.
        key: String,
    },
    /// The tensors do not fit the network (missing, extra or mis-shaped, by key).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The output folder already holds a model and `overwrite` was not given.
    #[error("{path}: already holds a model (pass --overwrite to replace it)")]
    OutputExists {
        /// The existing file.
        path: PathBuf,
    },
    /// Writing the model folder failed.
    #[error("{path}: cannot write ({source})")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The tensors of a checkpoint as f32, by key, with the file's SHA-256.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The file.
    pub path: PathBuf,
    /// Lower-case hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// Every float tensor (wrapper prefix removed, `num_batches_tracked` dropped).
    pub tensors: BTreeMap<String, TensorData>,
}

/// Reads a PyTorch checkpoint (zip or legacy format; raw state dict or `{'model': ...}` /
/// `{'state_dict': ...}`).
///
/// # Errors
/// [`ImportError::Read`] if the file cannot be read, [`ImportError::NotACheckpoint`] if it is
/// not a PyTorch checkpoint (or asks for code to run), [`ImportError::Tensor`] for a tensor that
/// cannot be read or is not floating point.
pub fn read_checkpoint(path: &Path) -> Result<Checkpoint, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let sha256 = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    drop(bytes);
    let not_checkpoint = |message: String| ImportError::NotACheckpoint {
        path: path.to_path_buf(),
        message,
    };
    let reader = PytorchReader::new(path).map_err(|e| not_checkpoint(e.to_string()))?;
    // The reader never runs pickled code, but it keeps calls it does not interpret as opaque
    // values and goes on; a file that asks for any is refused here.
    let tree =
        PytorchReader::read_pickle_data(path, None).map_err(|e| not_checkpoint(e.to_string()))?;
    if let Some(name) = foreign_object(&tree) {
        return Err(not_checkpoint(format!(
            "its pickle asks for `{name}`, which a file of weights never does; nothing was run"
        )));
    }
    let all = reader.tensors();
    // A wrapper dict shows as a common first path component.
    let prefix = ["model.", "state_dict.", "params."]
        .into_iter()
        .find(|p| !all.is_empty() && all.keys().all(|k| k.starts_with(p)))
        .unwrap_or("");
    let mut tensors = BTreeMap::new();
    for (key, t) in all {
        if key.ends_with("num_batches_tracked") {
            continue;
        }
        let err = |message: String| ImportError::Tensor {
            path: path.to_path_buf(),
            key: key.clone(),
            message,
        };
        let raw = t.read().map_err(|e| err(e.to_string()))?;
        let values: Vec<f32> = match t.dtype() {
            DType::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F16 => raw
                .chunks_exact(2)
                .map(|c| half::f16::from_ne_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::BF16 => raw
                .chunks_exact(2)
                .map(|c| half::bf16::from_ne_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::F64 => raw
                .chunks_exact(8)
                .map(|c| f64::from_ne_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect(),
            other => return Err(err(format!("{other:?} is not a float type"))),
        };
        tensors.insert(
            key[prefix.len()..].to_string(),
            TensorData {
                shape: t.shape().to_vec(),
                values,
            },
        );
    }
    Ok(Checkpoint {
        path: path.to_path_buf(),
        sha256,
        tensors,
    })
}

/// The first value of a checkpoint's pickle that is neither plain data (numbers, strings,
/// lists, dicts) nor a tensor or storage: a call the reader did not interpret (`os.system`,
/// a class from the saving program). `None` for a file of weights.
fn foreign_object(value: &PickleValue) -> Option<&str> {
    match value {
        PickleValue::List(items) => items.iter().find_map(foreign_object),
        PickleValue::Dict(map) => map.values().find_map(foreign_object),
        PickleValue::Unsupported(name)
            if name.starts_with("torch.")
                && (name.ends_with("Tensor") || name.ends_with("Storage")) =>
        {
            None
        }
        PickleValue::Unsupported(name) => Some(name),
        _ => None,
    }
}

/// The kind of network the tensors belong to, from their keys and shapes.
///
/// # Errors
/// [`ImportError::Unsupported`] for a recognised network that cannot be imported yet
/// (siggraph17, DeOldify), [`ImportError::UnknownKind`] otherwise, saying which kind came
/// closest and which key decided.
pub fn detect(checkpoint: &Checkpoint) -> Result<Kind, ImportError> {
    let t = &checkpoint.tensors;
    let shape = |k: &str| t.get(k).map(|t| t.shape.as_slice());
    let path = checkpoint.path.clone();
    // DDColor: a ConvNeXt stem under `encoder.arch`; ConvNeXt-L has 27 blocks in its third
    // stage, ConvNeXt-T 9 (ddcolor.md §2, §3.5).
    if t.contains_key(DDCOLOR_KEY) {
        return match ddcolor_depths(t)[2] {
            27 => Ok(Kind::DdcolorLarge),
            9 => Ok(Kind::DdcolorTiny),
            n => Err(ImportError::UnknownKind {
                path,
                reason: format!(
                    "closest: DDColor ({DDCOLOR_KEY}), but its third ConvNeXt stage has {n} \
                     blocks, neither ConvNeXt-L's 27 nor ConvNeXt-T's 9"
                ),
            }),
        };
    }
    // siggraph17 shares eccv16's block names; its first convolution takes L, ab hints and a mask.
    match shape("model1.0.weight") {
        Some([_, 1, 3, 3]) => {}
        Some([_, 4, 3, 3]) if t.contains_key("model10up.0.weight") => return Ok(Kind::Siggraph17),
        _ => {}
    }
    // DeOldify: fastai's `layers.N` children; Deep decoders have `conv1`/`conv2` per block, Wide
    // ones a single `conv` (deoldify.md §4.3-4.4).
    if t.contains_key("layers.0.0.weight") {
        if t.contains_key("layers.4.conv1.0.weight_orig")
            || t.contains_key("layers.4.conv1.0.weight")
        {
            return Ok(Kind::DeoldifyArtistic);
        }
        if t.contains_key("layers.4.conv.0.weight_orig") || t.contains_key("layers.4.conv.0.weight")
        {
            return Ok(Kind::DeoldifyStable);
        }
        return Err(ImportError::UnknownKind {
            path,
            reason:
                "closest: DeOldify (layers.0.0.weight), but neither layers.4.conv1.0 (Artistic) \
                     nor layers.4.conv.0 (Stable, Video) decided"
                    .into(),
        });
    }
    // eccv16: the blocks model1..model8 and model_out.
    let wanted = (1..=8)
        .map(|i| format!("model{i}.0.weight"))
        .chain(["model_out.weight".to_string()]);
    let (mut found, mut missing) = (0, None);
    for k in wanted {
        if t.contains_key(&k) {
            found += 1;
        } else if missing.is_none() {
            missing = Some(k);
        }
    }
    match missing {
        None if matches!(shape("model1.0.weight"), Some([_, 1, 3, 3])) => Ok(Kind::Eccv16),
        other => Err(ImportError::UnknownKind {
            path,
            reason: format!(
                "closest: eccv16, {found} of its 9 block keys present; {} decided",
                other.unwrap_or_else(|| "model1.0.weight's shape".into())
            ),
        }),
    }
}

/// The key every DDColor checkpoint has: the ConvNeXt stem's convolution.
const DDCOLOR_KEY: &str = "encoder.arch.downsample_layers.0.0.weight";

/// Blocks under `prefix` (`prefix` + `{j}.…` keys): one more than the largest index `j`.
fn block_count(t: &BTreeMap<String, TensorData>, prefix: &str) -> usize {
    t.keys()
        .filter_map(|k| k.strip_prefix(prefix))
        .filter_map(|rest| rest.split('.').next()?.parse::<usize>().ok())
        .max()
        .map_or(0, |b| b + 1)
}

/// Blocks per ConvNeXt stage in a DDColor checkpoint (`encoder.arch.stages.{i}.{j}.*`).
fn ddcolor_depths(t: &BTreeMap<String, TensorData>) -> [usize; 4] {
    std::array::from_fn(|i| block_count(t, &format!("encoder.arch.stages.{i}.")))
}

/// The checkpoint's `mean` or `std` buffer (`[1, 3, 1, 1]`) as three values.
fn channel_stats(
    path: &Path,
    t: &BTreeMap<String, TensorData>,
    key: &str,
) -> Result<[f32; 3], ModelError> {
    let found = t.get(key).ok_or_else(|| ModelError::MissingWeight {
        path: path.to_path_buf(),
        key: key.to_string(),
    })?;
    match <[f32; 3]>::try_from(found.values.as_slice()) {
        Ok(v) if found.shape == [1, 3, 1, 1] => Ok(v),
        _ => Err(ModelError::WeightShape {
            path: path.to_path_buf(),
            key: key.to_string(),
            expected: vec![1, 3, 1, 1],
            found: found.shape.clone(),
        }),
    }
}

/// The eccv16 config whose widths the tensors have (the release or any reduced copy).
fn eccv16_config(
    path: &Path,
    t: &BTreeMap<String, TensorData>,
) -> Result<Eccv16Config, ModelError> {
    let dim = |key: &str, axis: usize| -> Result<usize, ModelError> {
        let t = t.get(key).ok_or_else(|| ModelError::MissingWeight {
            path: path.to_path_buf(),
            key: key.to_string(),
        })?;
        t.shape
            .get(axis)
            .copied()
            .ok_or_else(|| ModelError::WeightShape {
                path: path.to_path_buf(),
                key: key.to_string(),
                expected: vec![0; axis + 1],
                found: t.shape.clone(),
            })
    };
    let mut widths = [0; 7];
    for (b, w) in widths.iter_mut().enumerate() {
        *w = dim(&format!("model{}.0.weight", b + 1), 0)?;
    }
    Ok(Eccv16Config {
        widths,
        decoder_width: dim("model8.0.weight", 1)?,
        bins: dim("model8.6.weight", 0)?,
    })
}

/// The model config for `kind` with the widths of `tensors` and the network's own contract.
///
/// # Errors
/// [`ModelError::MissingWeight`] / [`ModelError::WeightShape`] when a tensor that fixes a width
/// is absent or has too few dimensions.
pub fn model_config(
    kind: Kind,
    path: &Path,
    tensors: &BTreeMap<String, TensorData>,
) -> Result<ModelConfig, ModelError> {
    match kind {
        Kind::Eccv16 => Ok(ModelConfig {
            network: NetworkConfig::Eccv16(eccv16_config(path, tensors)?),
            // zhang.md §2-3: (L − 50)/100 in, ab/110 out, 256x256 input.
            io: ModelIo {
                input: InputKind::Lightness {
                    offset: 50.0,
                    scale: 100.0,
                },
                output: OutputKind::Ab { scale: 110.0 },
                size: SizeRule::Square { multiple: 8 },
                pipeline: Pipeline::Zhang,
            },
            render_size: 256,
            saturation: 1.0,
            description: "Zhang, Isola & Efros 2016 (ECCV), colorization_release_v2 (eccv16), imported from PyTorch".into(),
        }),
        Kind::Siggraph17 => Ok(ModelConfig {
            network: NetworkConfig::Siggraph17(Siggraph17Config::default()),
            // zhang.md §5: (L − 50)/100, ab hints / 110 and the mask in; ab/110 out (tanh).
            io: ModelIo {
                input: InputKind::LightnessWithHints {
                    offset: 50.0,
                    scale: 100.0,
                    ab_scale: 110.0,
                },
                output: OutputKind::Ab { scale: 110.0 },
                size: SizeRule::Square { multiple: 8 },
                pipeline: Pipeline::Zhang,
            },
            render_size: 256,
            saturation: 1.0,
            description: "Zhang et al. 2017 (SIGGRAPH), siggraph17, automatic mode, imported from PyTorch".into(),
        }),
        Kind::DeoldifyArtistic | Kind::DeoldifyStable | Kind::DeoldifyVideo => {
            let depths: [usize; 4] =
                std::array::from_fn(|i| block_count(tensors, &format!("layers.0.{}.", 4 + i)));
            let (base, render_size, description) = match kind {
                Kind::DeoldifyArtistic => (
                    DeoldifyConfig::artistic(),
                    560,
                    "DeOldify Artistic (Jason Antic; ResNet-34 U-Net, self-attention), imported from PyTorch",
                ),
                Kind::DeoldifyStable => (
                    DeoldifyConfig::stable(),
                    560,
                    "DeOldify Stable (Jason Antic; ResNet-101 U-Net, self-attention), imported from PyTorch",
                ),
                _ => (
                    DeoldifyConfig::stable(),
                    336,
                    "DeOldify Video (Jason Antic; ResNet-101 U-Net, self-attention; render factor 21), imported from PyTorch",
                ),
            };
            Ok(ModelConfig {
                network: NetworkConfig::Deoldify(DeoldifyConfig { depths, ..base }),
                // deoldify.md §2: gray RGB in and RGB out, both with ImageNet statistics; a
                // square of render_factor · 16 (default 35 · 16 = 560).
                io: ModelIo {
                    input: InputKind::GrayRgb {
                        mean: IMAGENET_MEAN,
                        std: IMAGENET_STD,
                    },
                    output: OutputKind::Rgb {
                        mean: IMAGENET_MEAN,
                        std: IMAGENET_STD,
                    },
                    size: SizeRule::Square { multiple: 16 },
                    pipeline: Pipeline::Deoldify,
                },
                render_size,
                saturation: 1.0,
                description: description.into(),
            })
        }
        Kind::DdcolorLarge | Kind::DdcolorTiny => {
            let (network, description) = if kind == Kind::DdcolorLarge {
                (
                    DdcolorConfig::large(),
                    "DDColor (Kang et al. 2023, ICCV; ConvNeXt-L encoder, dual decoders), imported from PyTorch",
                )
            } else {
                (
                    DdcolorConfig::tiny(),
                    "DDColor tiny (Kang et al. 2023, ICCV; ConvNeXt-T encoder, dual decoders), imported from PyTorch",
                )
            };
            Ok(ModelConfig {
                network: NetworkConfig::Ddcolor(network),
                // ddcolor.md §3.0, §4: gray RGB normalised with the checkpoint's own mean/std
                // buffers in, CIELAB ab (OpenCV float units) out, a 512x512 square.
                io: ModelIo {
                    input: InputKind::GrayRgb {
                        mean: channel_stats(path, tensors, "mean")?,
                        std: channel_stats(path, tensors, "std")?,
                    },
                    output: OutputKind::Ab { scale: 1.0 },
                    size: SizeRule::Square { multiple: 32 },
                    pipeline: Pipeline::Ddcolor,
                },
                render_size: 512,
                saturation: 1.0,
                description: description.into(),
            })
        }
    }
}

/// Folds spectral norm (`weight_orig`, `weight_u`, `weight_v` → `weight = weight_orig / σ`,
/// `σ = u · (W v)`, eval form: no power iteration) and weight norm (`weight_g`, `weight_v` →
/// `weight = g · v / ‖v‖` per output channel) into plain `weight` tensors, and gives the 3-D
/// weights of 1-D convolutions (`[out, in, 1]`, DeOldify's self-attention) a 1x1 kernel
/// (deoldify.md §5). Other tensors are copied.
///
/// # Errors
/// [`ImportError::Model`] naming the key when a re-parameterisation is incomplete (a
/// `weight_orig` without `weight_u`, or without `weight_v` and without the plain `weight` an
/// older PyTorch stored) or its shapes do not agree.
pub fn fold_reparameterisations(
    path: &Path,
    tensors: &BTreeMap<String, TensorData>,
) -> Result<BTreeMap<String, TensorData>, ImportError> {
    let missing = |key: String| ModelError::MissingWeight {
        path: path.to_path_buf(),
        key,
    };
    let engine = |e: colorize_engine::EngineError| ImportError::Model(ModelError::Engine(e));
    let mut out = BTreeMap::new();
    for (key, t) in tensors {
        let (prefix, suffix) = key.rsplit_once('.').unwrap_or(("", key));
        let get = |name: &str| {
            let k = format!("{prefix}.{name}");
            tensors.get(&k).ok_or_else(|| missing(k))
        };
        match suffix {
            "weight_orig" => {
                let u = get("weight_u")?;
                let weight = match get("weight_v") {
                    Ok(v) => {
                        colorize_engine::fold::spectral_norm_weight(
                            key, &t.values, &u.values, &v.values,
                        )
                        .map_err(engine)?
                        .0
                    }
                    // PyTorch 1.0 stored the normalised weight beside weight_orig and no v.
                    Err(_) => get("weight")?.values.clone(),
                };
                out.insert(
                    format!("{prefix}.weight"),
                    kernel_2d(t.shape.clone(), weight),
                );
            }
            "weight_g" => {
                let v = get("weight_v")?;
                let weight = colorize_engine::fold::weight_norm_weight(key, &t.values, &v.values)
                    .map_err(engine)?;
                out.insert(
                    format!("{prefix}.weight"),
                    kernel_2d(v.shape.clone(), weight),
                );
            }
            "weight_u" | "weight_v" => {}
            "weight" if tensors.contains_key(&format!("{prefix}.weight_orig")) => {}
            _ => {
                out.insert(key.clone(), t.clone());
            }
        }
    }
    Ok(out)
}

/// A convolution weight with `shape`, a 1-D one (`[out, in, k]`) given a `[out, in, 1, k]` form.
fn kernel_2d(shape: Vec<usize>, values: Vec<f32>) -> TensorData {
    let shape = match shape[..] {
        [o, i, k] => vec![o, i, 1, k],
        _ => shape,
    };
    TensorData { shape, values }
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// The kind imported.
    pub kind: Kind,
    /// Tensors written.
    pub tensors: usize,
    /// Parameters (floats) written.
    pub parameters: usize,
    /// The checkpoint's SHA-256.
    pub sha256: String,
    /// The model folder.
    pub out: PathBuf,
}

/// Imports the checkpoint at `path` as a model folder `out` (created if needed). Everything is
/// checked (the network's engine graph is built from the converted tensors) before anything is
/// written; `config.json` is written last, so a folder is a model only once both files are in
/// place.
///
/// # Errors
/// As [`read_checkpoint`] and [`detect`]; [`ImportError::Model`] when the tensors do not fit
/// the kind's network (the key is named); [`ImportError::OutputExists`] when `out` already holds
/// a model and `overwrite` is false; [`ImportError::Write`] when writing fails.
pub fn import(
    path: &Path,
    kind: Option<Kind>,
    out: &Path,
    overwrite: bool,
) -> Result<ImportReport, ImportError> {
    let checkpoint = read_checkpoint(path)?;
    let kind = match kind {
        Some(k) => {
            check_kind(&checkpoint, k)?;
            k
        }
        None => detect(&checkpoint)?,
    };
    import_tensors(&checkpoint, kind, out, overwrite)
}

/// Refuses a DDColor `--kind` for a checkpoint without DDColor's stem (and the other kinds for
/// a DDColor checkpoint), naming what the keys say it is, before any work.
///
/// # Errors
/// [`ImportError::WrongKind`].
pub fn check_kind(checkpoint: &Checkpoint, kind: Kind) -> Result<(), ImportError> {
    let is_ddcolor = checkpoint.tensors.contains_key(DDCOLOR_KEY);
    if kind.is_ddcolor() == is_ddcolor {
        return Ok(());
    }
    let looks_like = match detect(checkpoint) {
        Ok(k) => format!("it looks like {k}"),
        Err(ImportError::UnknownKind { reason, .. }) => format!("no known kind fits ({reason})"),
        Err(e) => e.to_string(),
    };
    let reason = if kind.is_ddcolor() {
        format!("it has no {DDCOLOR_KEY}; {looks_like}")
    } else {
        format!("it has {DDCOLOR_KEY}, DDColor's ConvNeXt stem; {looks_like}")
    };
    Err(ImportError::WrongKind {
        path: checkpoint.path.clone(),
        wanted: kind,
        reason,
    })
}

/// As [`import`], from tensors already read.
///
/// # Errors
/// As [`import`].
pub fn import_tensors(
    checkpoint: &Checkpoint,
    kind: Kind,
    out: &Path,
    overwrite: bool,
) -> Result<ImportReport, ImportError> {
    let tensors = match kind {
        Kind::Eccv16 | Kind::Siggraph17 => checkpoint.tensors.clone(),
        Kind::DeoldifyArtistic
        | Kind::DeoldifyStable
        | Kind::DeoldifyVideo
        | Kind::DdcolorLarge
        | Kind::DdcolorTiny => fold_reparameterisations(&checkpoint.path, &checkpoint.tensors)?,
    };
    let config = model_config(kind, &checkpoint.path, &tensors)?;
    let tensors = if kind.is_ddcolor() {
        // `mean`/`std` are now the config's input normalisation; the classifier's final norm
        // and an old release's classifier head (`head_cls`) are not used for colour.
        let mut tensors = tensors;
        tensors.retain(|k, _| {
            !(k == "mean"
                || k == "std"
                || k.starts_with("encoder.arch.norm.")
                || k.starts_with("encoder.arch.head_cls."))
        });
        tensors
    } else {
        tensors
    };
    // Building the graph checks every key and shape, and that no tensor is left over.
    let weights = Weights::from_map(tensors.into_iter().collect(), &checkpoint.path);
    config.network.graph(&weights, Isa::detect())?;
    if !overwrite {
        for name in [CONFIG_FILE, WEIGHTS_FILE] {
            let p = out.join(name);
            if p.exists() {
                return Err(ImportError::OutputExists { path: p });
            }
        }
    }
    let tensors = weights.tensors();
    let bytes = to_safetensors_bytes(tensors.iter().map(|(k, t)| (k, *t)), None)?;
    let mut json = serde_json::to_value(&config).expect("a config serialises");
    json["imported_from"] = serde_json::json!({
        "file": checkpoint.path.file_name().map(|n| n.to_string_lossy().into_owned()),
        "sha256": checkpoint.sha256,
        "kind": kind.name(),
    });
    let json = serde_json::to_vec_pretty(&json).expect("JSON serialises");
    std::fs::create_dir_all(out).map_err(|source| ImportError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    let write = |name: &str, bytes: &[u8]| {
        let p = out.join(name);
        write_file_atomic(&p, bytes, true).map_err(|e| ImportError::Write {
            path: p,
            source: std::io::Error::other(e.to_string()),
        })
    };
    write(WEIGHTS_FILE, &bytes)?;
    write(CONFIG_FILE, &json)?;
    Ok(ImportReport {
        kind,
        tensors: tensors.len(),
        parameters: tensors.values().map(|t| t.values.len()).sum(),
        sha256: checkpoint.sha256.clone(),
        out: out.to_path_buf(),
    })
}
