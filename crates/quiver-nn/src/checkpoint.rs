//! Checkpoints as safetensors files (the format of Hugging Face's `safetensors`, read by PyTorch,
//! JAX and candle): every network's blocks as tensors named `<network>.<block>` (weights stored
//! input-major, `[fan_in, fan_out]`: the transpose of `torch.nn.Linear.weight`), each network's
//! [`MlpSpec`] as JSON in the metadata under `spec.<network>`, and the caller's own metadata
//! beside them (training step, seed, input scaling).

use crate::{Mlp, MlpSpec, NnError, Real};
use safetensors::tensor::{SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

fn error(path: &Path, why: impl std::fmt::Display) -> NnError {
    NnError::Checkpoint { path: path.display().to_string(), why: why.to_string() }
}

/// Write `networks` (name, network) and `metadata` to `path` (replacing it: written beside it,
/// then renamed, so a reader never sees half a file).
pub fn save<T: Real>(
    path: &Path,
    networks: &[(&str, &Mlp<T>)],
    metadata: &HashMap<String, String>,
) -> Result<(), NnError> {
    let mut meta = metadata.clone();
    let mut data: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, net) in networks {
        meta.insert(format!("spec.{name}"), serde_json::to_string(net.spec()).map_err(|e| error(path, e))?);
        for block in net.blocks() {
            let mut bytes = Vec::with_capacity(block.range.len() * std::mem::size_of::<T>());
            net.params[block.range.clone()].iter().for_each(|&x| x.to_le(&mut bytes));
            data.push((format!("{name}.{}", block.name), block.shape, bytes));
        }
    }
    let views = data
        .iter()
        .map(|(name, shape, bytes)| {
            Ok((name.clone(), TensorView::new(T::DTYPE, shape.clone(), bytes).map_err(|e| error(path, e))?))
        })
        .collect::<Result<Vec<_>, NnError>>()?;
    let tmp = path.with_extension("safetensors.partial");
    safetensors::serialize_to_file(views, Some(meta), &tmp).map_err(|e| error(path, e))?;
    std::fs::rename(&tmp, path).map_err(|e| error(path, e))
}

/// A checkpoint read back: its networks by name and its metadata.
#[derive(Debug)]
pub struct Checkpoint<T> {
    /// The networks, by name.
    pub networks: HashMap<String, Mlp<T>>,
    /// The metadata (without the `spec.*` entries).
    pub metadata: HashMap<String, String>,
}

/// Read a checkpoint written by [`save`]: every network named in its metadata, each tensor checked
/// for its dtype and shape against the network's spec. A file that is not a checkpoint, is cut
/// short, or disagrees with itself is an error, never a crash.
pub fn load<T: Real>(path: &Path) -> Result<Checkpoint<T>, NnError> {
    let bytes = std::fs::read(path).map_err(|e| error(path, e))?;
    let (_, header) =
        SafeTensors::read_metadata(&bytes).map_err(|e| error(path, format!("not a safetensors file ({e})")))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| error(path, format!("not a safetensors file ({e})")))?;
    let mut metadata = header.metadata().clone().unwrap_or_default();
    let specs: Vec<(String, String)> =
        metadata.iter().filter_map(|(k, v)| k.strip_prefix("spec.").map(|n| (n.to_string(), v.clone()))).collect();
    if specs.is_empty() {
        return Err(error(path, "no network in it (no 'spec.<name>' metadata): not a Quiver checkpoint"));
    }
    let mut networks = HashMap::new();
    for (name, spec) in specs {
        metadata.remove(&format!("spec.{name}"));
        let spec: MlpSpec = serde_json::from_str(&spec).map_err(|e| error(path, format!("network '{name}': {e}")))?;
        spec.check().map_err(|e| error(path, format!("network '{name}': {e}")))?;
        let params = quiver_numerics::memory::try_vec(spec.parameter_count(), T::zero(), "a checkpoint's network")?;
        let mut net = Mlp::<T>::from_params(spec, params)?;
        for block in net.blocks() {
            let key = format!("{name}.{}", block.name);
            let t = file.tensor(&key).map_err(|e| error(path, format!("tensor '{key}': {e}")))?;
            if t.dtype() != T::DTYPE || t.shape() != block.shape.as_slice() {
                return Err(error(
                    path,
                    format!(
                        "tensor '{key}' is {:?} {:?}, the network needs {:?} {:?}",
                        t.dtype(),
                        t.shape(),
                        T::DTYPE,
                        block.shape
                    ),
                ));
            }
            let size = std::mem::size_of::<T>();
            for (x, b) in net.params[block.range.clone()].iter_mut().zip(t.data().chunks_exact(size)) {
                *x = T::from_le(b);
            }
        }
        networks.insert(name, net);
    }
    Ok(Checkpoint { networks, metadata })
}
