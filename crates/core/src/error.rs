//! The error type of colorize-core: every variant about a file carries its path.

use std::path::PathBuf;

/// Errors from decoding, encoding and checking images.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// The file is empty (0 bytes).
    #[error("{path}: empty file (0 bytes)")]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// The file is not an image in a supported format, or it is corrupt or truncated.
    #[error("{path}: cannot decode image: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        source: image::ImageError,
    },
    /// The image has more pixels than the decode limit allows (a guard against decompression bombs).
    #[error(
        "{path}: image is {width}x{height} = {} pixels, over the limit of {max_pixels} pixels",
        (*width as u64) * (*height as u64)
    )]
    LimitsExceeded {
        /// The file.
        path: PathBuf,
        /// Width in pixels, as the header declares it.
        width: u32,
        /// Height in pixels, as the header declares it.
        height: u32,
        /// The limit in force.
        max_pixels: u64,
    },
    /// The image has a zero width or height.
    #[error("{path}: image has no pixels ({width}x{height})")]
    NoPixels {
        /// The file.
        path: PathBuf,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// The output format cannot be chosen or is not supported.
    #[error("{path}: unsupported output format '{format}' (use jpg, png, webp, tiff, bmp or gif)")]
    UnsupportedFormat {
        /// The output file.
        path: PathBuf,
        /// The extension or name given.
        format: String,
    },
    /// Encoding the output failed.
    #[error("{path}: cannot encode image: {source}")]
    Encode {
        /// The output file.
        path: PathBuf,
        /// The encoder's error.
        source: image::ImageError,
    },
    /// The output exists and overwriting was not allowed.
    #[error("{path}: output already exists (pass --overwrite to replace it)")]
    OutputExists {
        /// The output file.
        path: PathBuf,
    },
    /// A path that should be a folder is not one (or does not exist).
    #[error("{path}: not a folder")]
    NotAFolder {
        /// The path given.
        path: PathBuf,
    },
    /// A folder holds no image file (by extension, see [`crate::files::IMAGE_EXTENSIONS`]).
    #[error("{path}: no image files found (looked for jpg, jpeg, png, webp, tif, tiff, bmp, gif)")]
    NoImages {
        /// The folder.
        path: PathBuf,
    },
    /// A folder or entry met while looking for images could not be read (no permission, a
    /// symbolic-link loop, a dangling link).
    #[error("{path}: {message}")]
    Walk {
        /// The entry that could not be read.
        path: PathBuf,
        /// What went wrong, one line.
        message: String,
    },
}
