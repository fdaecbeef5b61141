//! The video flow: decode → L at full size → L at the network size → scene cut and role →
//! network (batched) → temporal blend → ab at full size joined with the full-size L → encode.
//!
//! Three threads: FFmpeg's frames are read ahead on one, encoded frames are written on another,
//! and the colourisation runs between them. The channels between are bounded (a fixed
//! look-ahead of `2 * batch` frames each way), so memory does not grow with the film's length.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

use colorize_core::lab::lightness_of;
use colorize_core::metrics::{colourfulness, psnr};
use colorize_core::resize::resize_plane;
use colorize_models::{AbPlanes, Colorizer};
use image::{DynamicImage, RgbImage};
use rayon::prelude::*;

use crate::error::VideoError;
use crate::ffmpeg::{EncodeOptions, FrameReader, FrameWriter, VideoInfo, probe};
use crate::flow::FlowParams;
use crate::metrics::{Cdc, WarpingError};
use crate::temporal::{FrameRole, TemporalOptions, TemporalSmoother};

/// How [`colorize_video`] runs.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoOptions {
    /// Temporal consistency, or `None` for frame-by-frame colourisation (`--temporal off`).
    pub temporal: Option<TemporalOptions>,
    /// The output's encoding.
    pub encode: EncodeOptions,
    /// Frames per network call (default 4; 1 disables batching).
    pub batch: usize,
    /// Replace an existing output.
    pub overwrite: bool,
}

impl Default for VideoOptions {
    fn default() -> Self {
        Self {
            temporal: Some(TemporalOptions::default()),
            encode: EncodeOptions::default(),
            batch: 4,
            overwrite: false,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct VideoReport {
    /// The input's facts.
    pub info: VideoInfo,
    /// Frames written (equal to the frames decoded).
    pub frames: u64,
    /// Frames the network ran on (fewer than `frames` with a key-frame interval above 1).
    pub network_frames: u64,
    /// The frames (0-based) that started a scene, the first included.
    pub cuts: Vec<u64>,
    /// Share of pixels whose carried colour was trusted, over blended frames.
    pub trusted_share: Option<f64>,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// A decoded frame: its RGB bytes, full-size L, and L at the network size.
struct Frame {
    rgb: Vec<u8>,
    l: Vec<f32>,
    small: Vec<f32>,
}

fn frame_of(rgb: Vec<u8>, w: usize, h: usize, nw: usize, nh: usize) -> Frame {
    let image =
        DynamicImage::ImageRgb8(RgbImage::from_raw(w as u32, h as u32, rgb).expect("sized"));
    let (_, _, l) = lightness_of(&image);
    let small = resize_plane(&l, w, h, nw, nh);
    let DynamicImage::ImageRgb8(rgb) = image else {
        unreachable!()
    };
    Frame {
        rgb: rgb.into_raw(),
        l,
        small,
    }
}

/// The full-size colour frame, 8-bit RGB, from the frame's L and ab at the network size.
fn render(
    c: &Colorizer,
    w: usize,
    h: usize,
    l: Vec<f32>,
    ab: &AbPlanes,
) -> Result<Vec<u8>, VideoError> {
    Ok(c.join(w, h, l, ab)?.to_rgb8().into_raw())
}

/// Starts the reading thread: frames in order, then `None`-terminated by closing the channel;
/// an error is sent as the last item.
fn spawn_reader(
    mut reader: FrameReader,
    depth: usize,
) -> (
    Receiver<Result<Vec<u8>, VideoError>>,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = sync_channel(depth);
    let handle = std::thread::spawn(move || {
        loop {
            let mut buf = Vec::new();
            match reader.read_frame(&mut buf) {
                Ok(true) => {
                    if tx.send(Ok(buf)).is_err() {
                        return; // the consumer stopped; dropping the reader stops FFmpeg
                    }
                }
                Ok(false) => return,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    (rx, handle)
}

type WriterThread = std::thread::JoinHandle<Result<FrameWriter, VideoError>>;

fn spawn_writer(mut writer: FrameWriter, depth: usize) -> (SyncSender<Vec<u8>>, WriterThread) {
    let (tx, rx) = sync_channel::<Vec<u8>>(depth);
    let handle = std::thread::spawn(move || {
        for frame in rx {
            writer.write_frame(&frame)?;
        }
        Ok(writer)
    });
    (tx, handle)
}

/// Checks the output path before any work: not the input, not existing unless `overwrite`.
fn check_output(input: &Path, output: &Path, overwrite: bool) -> Result<(), VideoError> {
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let canonical_out = output
        .file_name()
        .and_then(|name| Some(dir.canonicalize().ok()?.join(name)));
    let canonical_in = input.canonicalize().ok();
    if output == input || (canonical_in.is_some() && canonical_in == canonical_out) {
        return Err(VideoError::OutputIsInput {
            path: output.to_path_buf(),
        });
    }
    if output.exists() && !overwrite {
        return Err(VideoError::OutputExists {
            path: output.to_path_buf(),
        });
    }
    if !dir.is_dir() {
        return Err(VideoError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder"),
        });
    }
    Ok(())
}

/// Reads up to `n` frames from `rx`; fewer at the end of the stream.
fn next_chunk(
    rx: &Receiver<Result<Vec<u8>, VideoError>>,
    n: usize,
) -> Result<Vec<Vec<u8>>, VideoError> {
    let mut chunk = Vec::with_capacity(n);
    while chunk.len() < n {
        match rx.recv() {
            Ok(frame) => chunk.push(frame?),
            Err(_) => break,
        }
    }
    Ok(chunk)
}

/// Colourises the video `input` into `output`, keeping the exact frame rate, the frame count,
/// the size, and the audio and subtitle streams (copied). `progress` is called with the number
/// of frames written so far after each batch; `stop` (set by a Ctrl+C handler) ends the run.
///
/// Nothing is written at `output` unless the whole run succeeds: FFmpeg writes a temporary file
/// beside it, renamed at the end, and removed on any error. The input is only read.
///
/// # Errors
/// [`VideoError::OutputIsInput`] / [`VideoError::OutputExists`] before any work, then as
/// [`probe`], [`FrameReader::read_frame`], [`FrameWriter::write_frame`] and
/// [`FrameWriter::finish`], [`VideoError::Model`] from the network, and
/// [`VideoError::Interrupted`] when `stop` is set.
pub fn colorize_video(
    c: &Colorizer,
    input: &Path,
    output: &Path,
    options: &VideoOptions,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(u64),
) -> Result<VideoReport, VideoError> {
    let started = Instant::now();
    check_output(input, output, options.overwrite)?;
    let info = probe(input)?;
    let (w, h) = (info.width as usize, info.height as usize);
    let (nw, nh) = c.network_size(w, h);
    let batch = options.batch.max(1);
    let reader = FrameReader::open(input, &info)?;
    let writer = FrameWriter::create(input, output, &info, &options.encode)?;
    let (frames_rx, reader_thread) = spawn_reader(reader, 2 * batch);
    let (out_tx, writer_thread) = spawn_writer(writer, 2 * batch);
    let mut smoother = TemporalSmoother::new(options.temporal);
    let (mut frames, mut network_frames) = (0u64, 0u64);
    let mut last_small: Option<Vec<f32>> = None;
    let run = (|| -> Result<(), VideoError> {
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(VideoError::Interrupted);
            }
            let chunk = next_chunk(&frames_rx, batch)?;
            if chunk.is_empty() {
                return Ok(());
            }
            let decoded: Vec<Frame> = chunk
                .into_par_iter()
                .map(|rgb| frame_of(rgb, w, h, nw, nh))
                .collect();
            let roles: Vec<FrameRole> = decoded.iter().map(|f| smoother.begin(&f.small)).collect();
            let inputs: Vec<_> = decoded
                .iter()
                .zip(&roles)
                .filter(|(_, r)| r.needs_prediction())
                .map(|(f, _)| c.prepare_resized(nw, nh, &f.small))
                .collect();
            network_frames += inputs.len() as u64;
            // The motion between frames depends on L alone: it runs beside the network.
            let previous = |i: usize| match i {
                0 => last_small.as_deref(),
                _ => Some(&decoded[i - 1].small[..]),
            };
            let (predictions, motions) = rayon::join(
                || c.predict(&inputs),
                || {
                    (0..decoded.len())
                        .into_par_iter()
                        .map(|i| match (roles[i], previous(i)) {
                            (FrameRole::SceneStart, _) | (_, None) => None,
                            (_, Some(p)) => smoother.motion(p, &decoded[i].small, nw, nh),
                        })
                        .collect::<Vec<_>>()
                },
            );
            let mut predictions = predictions?.into_iter();
            last_small = decoded.last().map(|f| f.small.clone());
            for ((f, role), motion) in decoded.into_iter().zip(roles).zip(motions) {
                let fresh = role
                    .needs_prediction()
                    .then(|| predictions.next().expect("one each"));
                let ab = smoother.finish(&f.small, role, fresh, motion);
                let rgb = render(c, w, h, f.l, &ab)?;
                if out_tx.send(rgb).is_err() {
                    return Ok(()); // the writer failed; its error is reported below
                }
                frames += 1;
            }
            progress(frames);
        }
    })();
    drop(out_tx);
    drop(frames_rx);
    let _ = reader_thread.join();
    let written = writer_thread
        .join()
        .expect("the writer thread does not panic");
    if stop.load(Ordering::Relaxed) {
        // Whatever else failed on the way out, the cause was the stop (the writer, dropped,
        // removes the partial output).
        return Err(VideoError::Interrupted);
    }
    run?;
    let writer = written?;
    // FFmpeg can end a damaged file early without an error; an output shorter than the input
    // says it has is not a success.
    if let Some(expected) = info.frames
        && frames < expected
    {
        drop(writer);
        return Err(VideoError::Decode {
            path: input.to_path_buf(),
            message: format!("the video ended after {frames} of its {expected} frames"),
        });
    }
    writer.finish()?;
    Ok(VideoReport {
        info,
        frames,
        network_frames,
        cuts: smoother.cuts().to_vec(),
        trusted_share: smoother.trusted_share(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The numbers of one way of colourising, from [`evaluate_video`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ModeScores {
    /// Lai et al.'s warping error on ab / 128 ([`crate::metrics`]); lower is steadier.
    pub warping_error: f64,
    /// Liu et al.'s colour distribution consistency ([`crate::metrics`]); lower is steadier.
    pub cdc: f64,
    /// Mean colourfulness of the output frames (Hasler and Süsstrunk 2003; real photos ~35-45).
    pub colourfulness: f64,
    /// Mean PSNR of the output frames against the colour original, dB.
    pub psnr: f64,
}

/// What [`evaluate_video`] measured, frame by frame against temporal.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EvalReport {
    /// Frames evaluated.
    pub frames: u64,
    /// Frames that started a scene.
    pub cuts: Vec<u64>,
    /// Width and height the warping error was measured at.
    pub eval_size: (usize, usize),
    /// `--temporal off`: every frame on its own.
    pub per_frame: ModeScores,
    /// With temporal consistency.
    pub temporal: ModeScores,
    /// The colour original's own colourfulness (the target).
    pub original_colourfulness: f64,
}

struct ModeAccumulator {
    warping: WarpingError,
    cdc: Cdc,
    colourfulness: f64,
    psnr: f64,
}

impl ModeAccumulator {
    fn new(ew: usize, eh: usize, params: FlowParams) -> Self {
        Self {
            warping: WarpingError::new(ew, eh, params),
            cdc: Cdc::default(),
            colourfulness: 0.0,
            psnr: 0.0,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        c: &Colorizer,
        (w, h): (usize, usize),
        (ew, eh): (usize, usize),
        l: &[f32],
        original: &RgbImage,
        eval_l: &[f32],
        ab: &AbPlanes,
        cut: bool,
    ) -> Result<(), VideoError> {
        let rgb = render(c, w, h, l.to_vec(), ab)?;
        self.cdc.push(&rgb);
        let out = RgbImage::from_raw(w as u32, h as u32, rgb).expect("sized");
        self.colourfulness += colourfulness(&out);
        self.psnr += psnr(&out, original);
        let a = resize_plane(&ab.a, ab.width, ab.height, ew, eh);
        let b = resize_plane(&ab.b, ab.width, ab.height, ew, eh);
        self.warping.push(eval_l, &a, &b, cut);
        Ok(())
    }

    fn scores(&self, frames: u64) -> ModeScores {
        let n = frames.max(1) as f64;
        ModeScores {
            warping_error: self.warping.value().unwrap_or(0.0),
            cdc: self.cdc.value().unwrap_or(0.0),
            colourfulness: self.colourfulness / n,
            psnr: self.psnr / n,
        }
    }
}

/// The size the warping error is measured at: the frame, shrunk to at most `max_width` wide
/// (aspect kept, at least 1 pixel).
pub fn eval_size(w: usize, h: usize, max_width: usize) -> (usize, usize) {
    if w <= max_width {
        return (w, h);
    }
    let eh = ((h as f64 * max_width as f64 / w as f64).round() as usize).max(1);
    (max_width, eh)
}

/// Evaluates temporal consistency on a colour video: each frame is made gray (its CIELAB L),
/// colourised frame by frame and with `temporal`, and both outputs are scored
/// ([`ModeScores`]). The network runs once per frame; both ways share its prediction, so the
/// comparison isolates the temporal step. The warping error is measured at
/// [`eval_size`]`(w, h, 480)` with flow on the gray input; colourfulness and PSNR at full size.
/// `max_frames` stops early.
///
/// # Errors
/// As [`colorize_video`] (no output is written).
pub fn evaluate_video(
    c: &Colorizer,
    input: &Path,
    temporal: TemporalOptions,
    max_frames: Option<u64>,
    progress: &mut dyn FnMut(u64),
) -> Result<EvalReport, VideoError> {
    let info = probe(input)?;
    let (w, h) = (info.width as usize, info.height as usize);
    let (nw, nh) = c.network_size(w, h);
    let (ew, eh) = eval_size(w, h, 480);
    let reader = FrameReader::open(input, &info)?;
    let (frames_rx, reader_thread) = spawn_reader(reader, 8);
    let mut off = TemporalSmoother::new(None);
    let mut on = TemporalSmoother::new(Some(TemporalOptions {
        keyframe_interval: 1,
        ..temporal
    }));
    let params = FlowParams::default();
    let mut acc_off = ModeAccumulator::new(ew, eh, params);
    let mut acc_on = ModeAccumulator::new(ew, eh, params);
    let mut original_colourfulness = 0.0;
    let mut frames = 0u64;
    let limit = max_frames.unwrap_or(u64::MAX);
    let run = (|| -> Result<(), VideoError> {
        while frames < limit {
            let want = (limit - frames).min(4) as usize;
            let chunk = next_chunk(&frames_rx, want)?;
            if chunk.is_empty() {
                return Ok(());
            }
            let decoded: Vec<Frame> = chunk
                .into_par_iter()
                .map(|rgb| frame_of(rgb, w, h, nw, nh))
                .collect();
            let inputs: Vec<_> = decoded
                .iter()
                .map(|f| c.prepare_resized(nw, nh, &f.small))
                .collect();
            let predictions = c.predict(&inputs)?;
            for (f, fresh) in decoded.into_iter().zip(predictions) {
                let role_off = off.begin(&f.small);
                let role_on = on.begin(&f.small);
                let cut = role_off == FrameRole::SceneStart;
                let ab_on = on.finish(&f.small, role_on, Some(fresh.clone()), None);
                let ab_off = off.finish(&f.small, role_off, Some(fresh), None);
                let eval_l = resize_plane(&f.l, w, h, ew, eh);
                let original = RgbImage::from_raw(w as u32, h as u32, f.rgb).expect("sized");
                acc_off.push(c, (w, h), (ew, eh), &f.l, &original, &eval_l, &ab_off, cut)?;
                acc_on.push(c, (w, h), (ew, eh), &f.l, &original, &eval_l, &ab_on, cut)?;
                original_colourfulness += colourfulness(&original);
                frames += 1;
            }
            progress(frames);
        }
        Ok(())
    })();
    drop(frames_rx);
    let _ = reader_thread.join();
    run?;
    Ok(EvalReport {
        frames,
        cuts: off.cuts().to_vec(),
        eval_size: (ew, eh),
        per_frame: acc_off.scores(frames),
        temporal: acc_on.scores(frames),
        original_colourfulness: original_colourfulness / frames.max(1) as f64,
    })
}
