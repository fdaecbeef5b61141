//! Image storage under the data directory.
//!
//! Every upload gets a server-generated id: 128 random bits as 32 lowercase hex digits. An image
//! lives in `DATA_DIR/images/<id>/` with `original` (the upload's bytes, unchanged), `colorized`
//! and `meta.json` (content types, size, time). The folder is assembled under a temporary name
//! (`DATA_DIR/images/.tmp-<id>`) and renamed into place, so an image is either complete or absent;
//! leftovers of a crash are removed at start-up. Client file names never reach the file system,
//! and an id is checked ([`ImageId::parse`]) before any path is built from it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::ServerError;

/// A validated image id: exactly 32 lowercase hexadecimal digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageId([u8; 32]);

impl ImageId {
    /// A new random id (128 bits from the operating system's generator).
    pub fn random() -> Self {
        let n: u128 = rand::random();
        let s = format!("{n:032x}");
        let mut b = [0u8; 32];
        b.copy_from_slice(s.as_bytes());
        Self(b)
    }

    /// Parses an id; `None` unless `s` is exactly 32 characters from `0-9a-f`. Anything with a
    /// `/`, `.`, `%` or any other character is refused before it can reach the file system.
    pub fn parse(s: &str) -> Option<Self> {
        let bytes = s.as_bytes();
        if bytes.len() != 32 || !bytes.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut b = [0u8; 32];
        b.copy_from_slice(bytes);
        Some(Self(b))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // The bytes are ASCII hex digits by construction.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl std::fmt::Display for ImageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is known about a stored image (`meta.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageMeta {
    /// Content type of the original, from its content (not from the client's header).
    pub original_type: String,
    /// Content type of the colourised image.
    pub colorized_type: String,
    /// Width in pixels (after EXIF orientation).
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The model used.
    pub model: String,
    /// The render size used.
    pub render_size: u32,
    /// When it was stored, seconds since the Unix epoch.
    pub created_unix: u64,
}

/// Which of an image's two files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The upload, byte for byte.
    Original,
    /// The colourised image.
    Colorized,
}

impl Variant {
    fn file_name(self) -> &'static str {
        match self {
            Self::Original => "original",
            Self::Colorized => "colorized",
        }
    }
}

/// How many images to keep, for how long, and in how many bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Most images kept; the oldest are removed first. `None`: no limit.
    pub max_images: Option<usize>,
    /// Images older than this are removed. `None`: kept forever.
    pub max_age: Option<Duration>,
    /// Most bytes kept (originals, colourised images and `meta.json` together); the oldest
    /// images are removed first. `None`: no limit.
    pub max_bytes: Option<u64>,
}

impl Default for Retention {
    /// 1000 images, 24 hours, 2 GB (10^9 bytes x 2).
    fn default() -> Self {
        Self {
            max_images: Some(1000),
            max_age: Some(Duration::from_secs(24 * 3600)),
            max_bytes: Some(2_000_000_000),
        }
    }
}

/// A test hook called with a file's name after half of it has been written (see
/// [`crate::FaultInjection::store_write`]); an error fails the write.
pub type WriteHook = Arc<dyn Fn(&str) -> std::io::Result<()> + Send + Sync>;

/// A stored file opened for streaming: the open file, its length in bytes and content type.
#[derive(Debug)]
pub struct StoredFile {
    /// The file, opened for reading.
    pub file: std::fs::File,
    /// Its length in bytes.
    pub len: u64,
    /// Its content type (from `meta.json`).
    pub content_type: String,
}

/// Whether an I/O error means the disk (or the user's quota) is full.
pub fn is_storage_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) || matches!(e.raw_os_error(), Some(28 | 122)) // ENOSPC, EDQUOT on Linux
}

/// The image store: a folder of complete image folders.
#[derive(Clone)]
pub struct ImageStore {
    images: PathBuf,
    retention: Retention,
    write_hook: Option<WriteHook>,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("images", &self.images)
            .field("retention", &self.retention)
            .finish()
    }
}

/// The operating-system error inside a colorize-core error (its kind kept, so a full disk is
/// still recognisable), or the error itself.
fn io_error(e: colorize_core::CoreError) -> std::io::Error {
    match e {
        colorize_core::CoreError::Io { source, .. } => source,
        other => std::io::Error::other(other.to_string()),
    }
}

const TMP_PREFIX: &str = ".tmp-";
const DEL_PREFIX: &str = ".del-";

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl ImageStore {
    /// Opens (creating it if needed) the store under `data_dir`, and removes half-assembled
    /// folders left by a crash.
    ///
    /// # Errors
    /// [`ServerError::DataDir`] if the folder cannot be created or listed.
    pub fn open(data_dir: &Path, retention: Retention) -> Result<Self, ServerError> {
        let images = data_dir.join("images");
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ServerError::DataDir { path, source }
        };
        std::fs::create_dir_all(&images).map_err(err(&images))?;
        for entry in std::fs::read_dir(&images).map_err(err(&images))? {
            let entry = entry.map_err(err(&images))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(TMP_PREFIX) || name.starts_with(DEL_PREFIX) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(Self {
            images,
            retention,
            write_hook: None,
        })
    }

    /// Sets (or clears) the test hook called while each file is written.
    #[doc(hidden)]
    pub fn with_write_hook(mut self, hook: Option<WriteHook>) -> Self {
        self.write_hook = hook;
        self
    }

    /// The folder that holds the image folders.
    pub fn images_dir(&self) -> &Path {
        &self.images
    }

    fn dir_of(&self, id: &ImageId) -> PathBuf {
        self.images.join(id.as_str())
    }

    /// Stores a new image under a fresh id: the folder is written under a temporary name, every
    /// file synced, then renamed into place.
    ///
    /// # Errors
    /// The I/O error (its kind kept: see [`is_storage_full`]), with nothing left behind.
    pub fn insert(
        &self,
        original: &[u8],
        colorized: &[u8],
        meta: &ImageMeta,
    ) -> std::io::Result<ImageId> {
        let id = ImageId::random();
        let tmp = self.images.join(format!("{TMP_PREFIX}{id}"));
        let result = (|| {
            std::fs::create_dir(&tmp)?;
            let write = |name: &str, bytes: &[u8]| {
                let mut overwrite = false;
                if let Some(hook) = &self.write_hook {
                    std::fs::write(tmp.join(name), &bytes[..bytes.len() / 2])?;
                    hook(name)?;
                    overwrite = true;
                }
                colorize_core::io::write_file_atomic(&tmp.join(name), bytes, overwrite)
                    .map_err(io_error)
            };
            write(Variant::Original.file_name(), original)?;
            write(Variant::Colorized.file_name(), colorized)?;
            let json = serde_json::to_vec(meta).map_err(std::io::Error::other)?;
            write("meta.json", &json)?;
            std::fs::rename(&tmp, self.dir_of(&id))
        })();
        match result {
            Ok(()) => Ok(id),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(e)
            }
        }
    }

    /// The metadata of an image, `None` if there is no such image.
    pub fn meta(&self, id: &ImageId) -> Option<ImageMeta> {
        let bytes = std::fs::read(self.dir_of(id).join("meta.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// One file of an image with its content type, `None` if there is no such image.
    pub fn read(&self, id: &ImageId, variant: Variant) -> Option<(Vec<u8>, String)> {
        let meta = self.meta(id)?;
        let bytes = std::fs::read(self.dir_of(id).join(variant.file_name())).ok()?;
        let ty = match variant {
            Variant::Original => meta.original_type,
            Variant::Colorized => meta.colorized_type,
        };
        Some((bytes, ty))
    }

    /// One file of an image opened for streaming, `None` if there is no such image. Only the
    /// file handle and its length are held, never the whole file.
    pub fn open_file(&self, id: &ImageId, variant: Variant) -> Option<StoredFile> {
        let meta = self.meta(id)?;
        let file = std::fs::File::open(self.dir_of(id).join(variant.file_name())).ok()?;
        let len = file.metadata().ok()?.len();
        let content_type = match variant {
            Variant::Original => meta.original_type,
            Variant::Colorized => meta.colorized_type,
        };
        Some(StoredFile {
            file,
            len,
            content_type,
        })
    }

    /// Bytes an image takes on disk (its files' lengths), 0 if there is no such image.
    pub fn image_bytes(&self, id: &ImageId) -> u64 {
        let Ok(entries) = std::fs::read_dir(self.dir_of(id)) else {
            return 0;
        };
        entries
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    /// Removes an image; `false` if there was none. The folder is first renamed away, so readers
    /// never see half of it.
    pub fn delete(&self, id: &ImageId) -> bool {
        let dir = self.dir_of(id);
        let trash = self.images.join(format!("{DEL_PREFIX}{id}"));
        if std::fs::rename(&dir, &trash).is_err() {
            return false;
        }
        let _ = std::fs::remove_dir_all(&trash);
        true
    }

    /// The ids of all complete images, oldest first.
    pub fn list(&self) -> Vec<(ImageId, u64)> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.images) else {
            return out;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(ImageId::parse) else {
                continue;
            };
            let created = self.meta(&id).map(|m| m.created_unix).unwrap_or(0);
            out.push((id, created));
        }
        out.sort_by_key(|&(id, t)| (t, id.0));
        out
    }

    /// Applies the retention policy; returns how many images were removed.
    pub fn enforce_retention(&self) -> usize {
        let Retention {
            max_images,
            max_age,
            max_bytes,
        } = self.retention;
        if max_images.is_none() && max_age.is_none() && max_bytes.is_none() {
            return 0;
        }
        let list = self.list();
        let now = now_unix();
        let excess = max_images.map_or(0, |m| list.len().saturating_sub(m));
        let sizes: Vec<u64> = match max_bytes {
            Some(_) => list.iter().map(|(id, _)| self.image_bytes(id)).collect(),
            None => Vec::new(),
        };
        let mut total: u64 = sizes.iter().sum();
        let mut removed = 0;
        for (i, (id, created)) in list.iter().enumerate() {
            let too_old = max_age.is_some_and(|age| now.saturating_sub(*created) > age.as_secs());
            let over_bytes = max_bytes.is_some_and(|m| total > m);
            if (i < excess || too_old || over_bytes) && self.delete(id) {
                removed += 1;
                total = total.saturating_sub(sizes.get(i).copied().unwrap_or(0));
            }
        }
        removed
    }
}

/// Seconds since the Unix epoch, for [`ImageMeta::created_unix`].
pub fn timestamp() -> u64 {
    now_unix()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_strict() {
        let id = ImageId::random();
        assert_eq!(id.as_str().len(), 32);
        assert_eq!(ImageId::parse(id.as_str()), Some(id));
        for bad in [
            "",
            "../../../../etc/passwd",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcd/.",
            "..%2F..%2F..%2F..%2Fetc%2Fpasswd0",
            "/tmp/0123456789abcdef0123456789ab",
        ] {
            assert_eq!(ImageId::parse(bad), None, "{bad}");
        }
    }
}
