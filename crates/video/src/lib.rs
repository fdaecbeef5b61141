//! Black-and-white films to colour, with less flicker than colourising frame by frame.
//!
//! [`colorize_video`] streams a video through FFmpeg ([`ffmpeg`]): frames are decoded, made
//! CIELAB L, scored for scene cuts ([`scene`], a port of FFmpeg's `scdet`), colourised in
//! batches by any [`colorize_models::Colorizer`], blended with the colour carried along the
//! optical flow from the previous frame ([`temporal`], [`flow`]: DIS, Kroeger et al. 2016), and
//! encoded as H.264 with the input's audio and subtitles copied. [`evaluate_video`] measures the
//! flicker ([`metrics`]: Lai et al.'s warping error, Liu et al.'s CDC) of both ways on a colour
//! video.

pub mod error;
pub mod ffmpeg;
pub mod flow;
pub mod metrics;
pub mod pipeline;
pub mod scene;
pub mod temporal;

pub use error::VideoError;
pub use ffmpeg::{EncodeOptions, Rational, VideoInfo, probe};
pub use pipeline::{
    EvalReport, ModeScores, VideoOptions, VideoReport, colorize_video, eval_size, evaluate_video,
};
pub use temporal::{FrameRole, TemporalOptions, TemporalSmoother};
