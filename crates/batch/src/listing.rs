//! The inputs of a batch: every image under the input prefix (by extension, as
//! [`colorize_core::files::IMAGE_EXTENSIONS`]), or the keys a manifest names, relative to the
//! prefix and sorted.

use std::collections::BTreeSet;
use std::path::Path;

use futures_util::StreamExt;
use object_store::path::Path as StorePath;

use crate::error::BatchError;
use crate::location::Location;

/// The folder, under the output prefix, that holds colorize's own files (the shard reports).
/// Input keys under a folder of this name are never taken as images.
pub const META_DIR: &str = "_colorize";

/// Whether `key` (relative) names an image colorize reads, by its extension.
pub fn is_image_key(key: &str) -> bool {
    !key.split('/').any(|s| s == META_DIR) && colorize_core::files::is_image_path(Path::new(key))
}

/// Lists every image under `input`'s prefix: keys relative to it, sorted.
///
/// # Errors
/// [`BatchError::List`] when the listing fails (unreachable store, wrong credentials, no such
/// bucket).
pub async fn list_images(input: &Location) -> Result<Vec<String>, BatchError> {
    let prefix = (!input.prefix.as_ref().is_empty()).then_some(&input.prefix);
    let mut stream = input.store.list(prefix);
    let mut keys = BTreeSet::new();
    while let Some(item) = stream.next().await {
        let meta = item.map_err(|error| BatchError::List {
            url: input.url.clone(),
            error,
        })?;
        if let Some(rel) = input.relative(&meta.location)
            && is_image_key(&rel)
        {
            keys.insert(rel);
        }
    }
    Ok(keys.into_iter().collect())
}

/// The keys a manifest names: one per line, relative to the input prefix (a line may also be
/// the full URL of the input, `s3://bucket/prefix/a/b.tif`, or start with `/`); blank lines and
/// lines starting with `#` are ignored, and each key is taken once. A key need not have an image
/// extension (the manifest is the user's choice); a key that does not exist fails on its own.
pub fn parse_manifest(text: &str, input: &Location) -> Vec<String> {
    let url_prefix = format!("{}/", input.url.trim_end_matches('/'));
    let mut seen = BTreeSet::new();
    let mut keys = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let rel = line.strip_prefix(&url_prefix).unwrap_or(line);
        let rel = rel.trim_start_matches('/');
        // A valid key as it is (as the store lists it), otherwise through object_store's encoding.
        let key = StorePath::parse(rel)
            .unwrap_or_else(|_| StorePath::from(rel))
            .to_string();
        if !key.is_empty() && seen.insert(key.clone()) {
            keys.push(key);
        }
    }
    keys
}

/// Reads the manifest file `path` ([`parse_manifest`]).
///
/// # Errors
/// [`BatchError::Manifest`] when it cannot be read.
pub fn read_manifest(path: &Path, input: &Location) -> Result<Vec<String>, BatchError> {
    let text = std::fs::read_to_string(path).map_err(|error| BatchError::Manifest {
        path: path.display().to_string(),
        error,
    })?;
    Ok(parse_manifest(&text, input))
}
