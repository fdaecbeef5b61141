//! Named weights: a tensor map over `model.safetensors` with scoped key paths.
//!
//! Graph builders read a network's parameters by name, as PyTorch's `state_dict` and candle's
//! `VarBuilder` do: `w.pp("layer1").pp(0).tensor("conv1.weight", &[64, 64, 3, 3])` reads the
//! tensor `layer1.0.conv1.weight` and checks its shape. No burn module is involved, so a network
//! that exists only as a weight file (an imported checkpoint) reaches the engine the same way as
//! one trained here.
//!
//! Every read is recorded; [`Weights::unused`] lists the tensors no builder asked for, so a file
//! with extra tensors is reported by key, like a missing or mis-shaped one. Tensors stored as f16,
//! bf16 or f64 are converted to f32 on load.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use safetensors::{Dtype, SafeTensors};

use crate::error::ModelError;

/// One tensor: its shape (PyTorch order, `[out, in, kh, kw]` for a convolution) and its values,
/// row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorData {
    /// The shape.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub values: Vec<f32>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    tensors: HashMap<String, TensorData>,
    used: Mutex<BTreeSet<String>>,
}

/// A map of named f32 tensors with a key prefix; cheap to clone and to scope.
#[derive(Debug, Clone)]
pub struct Weights {
    inner: Arc<Inner>,
    prefix: String,
}

impl Weights {
    /// Parses safetensors bytes; `path` names the file in errors.
    ///
    /// # Errors
    /// [`ModelError::Weights`] when the bytes are not a safetensors file (see
    /// [`check_safetensors`]) or a tensor has a dtype other than f32, f16, bf16 or f64.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, ModelError> {
        let err = |message: String| ModelError::Weights {
            path: path.to_path_buf(),
            message,
        };
        check_safetensors(bytes).map_err(err)?;
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| err(format!("not a safetensors file ({e})")))?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
                Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                Dtype::F16 => data
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                Dtype::BF16 => data
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                Dtype::F64 => data
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                    .collect(),
                other => return Err(err(format!("{name}: dtype {other:?} is not a float type"))),
            };
            let shape = view.shape().to_vec();
            tensors.insert(name, TensorData { shape, values });
        }
        Ok(Self::from_map(tensors, path))
    }

    /// Reads a safetensors file.
    ///
    /// # Errors
    /// [`ModelError::Io`] if the file cannot be read, then as [`Weights::from_bytes`].
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// A map from tensors already in memory; `path` names it in errors.
    pub fn from_map(tensors: HashMap<String, TensorData>, path: &Path) -> Self {
        Self {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                tensors,
                used: Mutex::new(BTreeSet::new()),
            }),
            prefix: String::new(),
        }
    }

    /// The same map with `name` appended to the key prefix (`w.pp("layer1").pp(0)` reads
    /// `layer1.0.*`).
    pub fn pp(&self, name: impl Display) -> Self {
        let name = name.to_string();
        Self {
            inner: self.inner.clone(),
            prefix: if self.prefix.is_empty() {
                name
            } else {
                format!("{}.{name}", self.prefix)
            },
        }
    }

    /// The full key of `name` under this prefix.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// The file the weights came from.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether `name` (under this prefix) exists.
    pub fn contains(&self, name: &str) -> bool {
        self.inner.tensors.contains_key(&self.key(name))
    }

    /// The shape of `name`, if it exists.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.inner
            .tensors
            .get(&self.key(name))
            .map(|t| t.shape.as_slice())
    }

    /// The values of `name` (row-major), checked against `shape`.
    ///
    /// # Errors
    /// [`ModelError::MissingWeight`] if there is no such tensor, [`ModelError::WeightShape`] if
    /// its shape differs.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<&[f32], ModelError> {
        let key = self.key(name);
        let t = self
            .inner
            .tensors
            .get(&key)
            .ok_or_else(|| ModelError::MissingWeight {
                path: self.inner.path.clone(),
                key: key.clone(),
            })?;
        if t.shape != shape {
            return Err(ModelError::WeightShape {
                path: self.inner.path.clone(),
                key,
                expected: shape.to_vec(),
                found: t.shape.clone(),
            });
        }
        self.mark_used(key);
        Ok(&t.values)
    }

    /// The first of `names` that exists, checked against `shape`: for keys spelled two ways
    /// (PyTorch's batch-norm `weight`/`bias` and burn's `gamma`/`beta`).
    ///
    /// # Errors
    /// As [`Weights::tensor`], naming the first alias when none exists.
    pub fn tensor_any(&self, names: &[&str], shape: &[usize]) -> Result<&[f32], ModelError> {
        let name = names.iter().find(|n| self.contains(n)).unwrap_or(&names[0]);
        self.tensor(name, shape)
    }

    /// The values of `name` whatever its shape, with the shape.
    ///
    /// # Errors
    /// [`ModelError::MissingWeight`] if there is no such tensor.
    pub fn get(&self, name: &str) -> Result<&TensorData, ModelError> {
        let key = self.key(name);
        let t = self
            .inner
            .tensors
            .get(&key)
            .ok_or_else(|| ModelError::MissingWeight {
                path: self.inner.path.clone(),
                key: key.clone(),
            })?;
        self.mark_used(key);
        Ok(t)
    }

    /// Marks `name` as read without reading it (buffers a builder knowingly ignores, such as
    /// PyTorch's `num_batches_tracked`).
    pub fn skip(&self, name: &str) {
        let key = self.key(name);
        if self.inner.tensors.contains_key(&key) {
            self.mark_used(key);
        }
    }

    fn mark_used(&self, key: String) {
        self.inner
            .used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key);
    }

    /// The keys (whole map, sorted) that no read has asked for yet.
    pub fn unused(&self) -> Vec<String> {
        let used = self.inner.used.lock().unwrap_or_else(|e| e.into_inner());
        let mut keys: Vec<String> = self
            .inner
            .tensors
            .keys()
            .filter(|k| !used.contains(*k) && !k.ends_with("num_batches_tracked"))
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    /// Fails on the first unused key: a file with tensors the network does not have.
    ///
    /// # Errors
    /// [`ModelError::UnexpectedWeight`] naming the key.
    pub fn check_all_used(&self) -> Result<(), ModelError> {
        match self.unused().into_iter().next() {
            Some(key) => Err(ModelError::UnexpectedWeight {
                path: self.inner.path.clone(),
                key,
            }),
            None => Ok(()),
        }
    }

    /// Every tensor, by full key, sorted.
    pub fn tensors(&self) -> BTreeMap<&str, &TensorData> {
        self.inner
            .tensors
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect()
    }
}

/// Checks that safetensors bytes describe themselves before anything reads them, with checked
/// arithmetic throughout: an 8-byte little-endian header length within the file (and at most
/// [`crate::limits::MAX_SAFETENSORS_HEADER`]), a JSON object header, and for each tensor a known
/// dtype, a shape whose element count and byte size do not overflow, and `data_offsets`
/// `[begin, end]` inside the data that hold exactly those bytes.
///
/// # Errors
/// A one-line description of the first problem, naming the tensor and field.
pub fn check_safetensors(bytes: &[u8]) -> Result<(), String> {
    let Some((len, rest)) = bytes.split_first_chunk::<8>() else {
        return Err(format!(
            "file is {} bytes, too short for safetensors",
            bytes.len()
        ));
    };
    let n = u64::from_le_bytes(*len);
    if n == 0 || n > crate::limits::MAX_SAFETENSORS_HEADER || n > rest.len() as u64 {
        return Err(format!(
            "not a safetensors file (header length {n} for a {}-byte file)",
            bytes.len()
        ));
    }
    let (header, data) = rest.split_at(n as usize);
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header)
        .map_err(|e| format!("not a safetensors file (header: {e})"))?;
    for (name, info) in &header {
        if name == "__metadata__" {
            continue;
        }
        let field = |f: &str| {
            info.get(f)
                .ok_or_else(|| format!("tensor '{name}': no {f}"))
        };
        let dtype: Dtype = serde_json::from_value(field("dtype")?.clone())
            .map_err(|_| format!("tensor '{name}': unknown dtype {}", info["dtype"]))?;
        let shape: Vec<u64> = serde_json::from_value(field("shape")?.clone())
            .map_err(|_| format!("tensor '{name}': shape is not a list of sizes"))?;
        let [begin, end]: [u64; 2] = serde_json::from_value(field("data_offsets")?.clone())
            .map_err(|_| format!("tensor '{name}': data_offsets is not [begin, end]"))?;
        let nbytes = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .and_then(|elements| elements.checked_mul(dtype.bitsize() as u64))
            .map(|bits| bits.div_ceil(8))
            .ok_or_else(|| format!("tensor '{name}': shape {shape:?} has too many elements"))?;
        if begin > end || end > data.len() as u64 {
            return Err(format!(
                "tensor '{name}': data_offsets [{begin}, {end}] run past the {} bytes of data (truncated file?)",
                data.len()
            ));
        }
        if end - begin != nbytes {
            return Err(format!(
                "tensor '{name}': data_offsets [{begin}, {end}] hold {} bytes, shape {shape:?} of {dtype:?} needs {nbytes}",
                end - begin
            ));
        }
    }
    Ok(())
}

/// Serialises named f32 tensors as safetensors bytes (keys sorted; `metadata` in the header).
///
/// # Errors
/// [`ModelError::Weights`] if a tensor's values do not fill its shape.
pub fn to_safetensors_bytes<'a, K: AsRef<str>>(
    tensors: impl IntoIterator<Item = (K, &'a TensorData)>,
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>, ModelError> {
    let err = |message: String| ModelError::Weights {
        path: PathBuf::from(crate::model_dir::WEIGHTS_FILE),
        message,
    };
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .into_iter()
        .map(|(k, t)| {
            let k = k.as_ref();
            if t.values.len() != t.shape.iter().product::<usize>() {
                return Err(err(format!(
                    "{k}: {} values for shape {:?}",
                    t.values.len(),
                    t.shape
                )));
            }
            let b = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            Ok((k.to_string(), b, t.shape.clone()))
        })
        .collect::<Result<_, _>>()?;
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(k, b, s)| {
            safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (k.clone(), v))
                .map_err(|e| err(format!("{k}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    safetensors::serialize(views, metadata).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> BTreeMap<String, TensorData> {
        let mut m = BTreeMap::new();
        m.insert(
            "layer1.0.conv1.weight".to_string(),
            TensorData {
                shape: vec![2, 1, 1, 1],
                values: vec![1.5, -2.0],
            },
        );
        m.insert(
            "bn.gamma".to_string(),
            TensorData {
                shape: vec![2],
                values: vec![3.0, 4.0],
            },
        );
        m
    }

    #[test]
    fn round_trip_scopes_aliases_and_unused_keys() {
        let bytes = to_safetensors_bytes(&map(), None).unwrap();
        let w = Weights::from_bytes(&bytes, Path::new("m.safetensors")).unwrap();
        let conv = w.pp("layer1").pp(0).pp("conv1");
        assert_eq!(conv.key("weight"), "layer1.0.conv1.weight");
        assert_eq!(conv.tensor("weight", &[2, 1, 1, 1]).unwrap(), &[1.5, -2.0]);
        assert_eq!(w.unused(), vec!["bn.gamma".to_string()]);
        assert!(matches!(
            w.check_all_used(),
            Err(ModelError::UnexpectedWeight { key, .. }) if key == "bn.gamma"
        ));
        assert_eq!(
            w.pp("bn").tensor_any(&["weight", "gamma"], &[2]).unwrap(),
            &[3.0, 4.0]
        );
        assert!(w.check_all_used().is_ok());
        assert!(matches!(
            conv.tensor("weight", &[2, 1, 3, 3]),
            Err(ModelError::WeightShape { key, found, .. })
                if key == "layer1.0.conv1.weight" && found == vec![2, 1, 1, 1]
        ));
        assert!(matches!(
            conv.tensor("bias", &[2]),
            Err(ModelError::MissingWeight { key, .. }) if key == "layer1.0.conv1.bias"
        ));
    }

    #[test]
    fn half_precision_is_widened() {
        let vals = [half::f16::from_f32(0.5), half::f16::from_f32(-3.25)];
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(Dtype::F16, vec![2], &bytes).unwrap();
        let st = safetensors::serialize([("x", view)], None).unwrap();
        let w = Weights::from_bytes(&st, Path::new("h")).unwrap();
        assert_eq!(w.tensor("x", &[2]).unwrap(), &[0.5, -3.25]);
    }

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let e =
            Weights::from_bytes(b"not a file at all", Path::new("bad.safetensors")).unwrap_err();
        assert!(e.to_string().contains("bad.safetensors"), "{e}");
    }
}
