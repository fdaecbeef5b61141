//! Errors of the video pipeline: each names the file or the tool it concerns, in one line.

use std::path::PathBuf;

use colorize_models::ModelError;

/// What can go wrong when probing, decoding, colourising or encoding a video.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// `ffmpeg` or `ffprobe` is not on `PATH`.
    #[error(
        "{tool} was not found on PATH: install FFmpeg (Debian/Ubuntu: `apt install ffmpeg`, \
         macOS: `brew install ffmpeg`, Windows: `winget install ffmpeg`)"
    )]
    ToolMissing {
        /// `ffmpeg` or `ffprobe`.
        tool: &'static str,
    },
    /// The input has no video stream (an audio file, a subtitle file, a photo container).
    #[error("{path}: no video stream")]
    NoVideoStream {
        /// The input.
        path: PathBuf,
    },
    /// ffprobe could not read the input (not a media file, truncated, unreadable).
    #[error("{path}: cannot read as a video: {message}")]
    Probe {
        /// The input.
        path: PathBuf,
        /// ffprobe's own message (last line of its stderr).
        message: String,
    },
    /// FFmpeg failed while decoding the input.
    #[error("{path}: decoding failed: {message}")]
    Decode {
        /// The input.
        path: PathBuf,
        /// FFmpeg's message.
        message: String,
    },
    /// FFmpeg failed while encoding the output (disk full, unsupported stream for the container).
    #[error("{path}: encoding failed: {message}")]
    Encode {
        /// The output.
        path: PathBuf,
        /// FFmpeg's message.
        message: String,
    },
    /// The output path names the input file.
    #[error("{path}: the output would overwrite the input")]
    OutputIsInput {
        /// The path given for both.
        path: PathBuf,
    },
    /// The output exists and overwriting was not asked for.
    #[error("{path}: exists (pass --overwrite to replace it)")]
    OutputExists {
        /// The output.
        path: PathBuf,
    },
    /// The run was stopped (Ctrl+C); the partial output was removed.
    #[error("interrupted; the partial output was removed")]
    Interrupted,
    /// A file-system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A bad option value.
    #[error("{0}")]
    Options(String),
    /// The model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
}
