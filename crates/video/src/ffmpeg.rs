//! FFmpeg in and out, driven as subprocesses over raw-video pipes (nothing linked, nothing
//! downloaded): `ffprobe` reads the stream facts, one `ffmpeg` decodes the first video stream to
//! 8-bit RGB frames on its stdout, another encodes our frames from its stdin and copies the
//! input's audio and subtitle streams into the output.
//!
//! The frame rate is kept as ffprobe's rational (`30000/1001`, never a rounded float: DeOldify
//! issues #88 and #113), decoding passes frames through without dropping or duplicating any
//! (`-fps_mode passthrough`), and the output is written to a temporary file beside the target
//! and renamed into place only when FFmpeg has finished without error.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread::JoinHandle;

use serde::Deserialize;

use crate::error::VideoError;

/// A frame rate as a fraction of frames per second (`30000/1001` for NTSC's 29.97).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rational {
    /// Numerator, frames.
    pub num: u64,
    /// Denominator, seconds; never 0.
    pub den: u64,
}

impl Rational {
    /// Parses ffprobe's `"30000/1001"` (or a plain integer). `None` for a zero or malformed value.
    pub fn parse(text: &str) -> Option<Self> {
        let (num, den) = text.split_once('/').unwrap_or((text, "1"));
        let (num, den) = (num.trim().parse().ok()?, den.trim().parse().ok()?);
        (num > 0 && den > 0).then_some(Self { num, den })
    }

    /// The rate as a float (for display and time estimates only).
    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

impl std::fmt::Display for Rational {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// What ffprobe says about a video file.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// Frame width in pixels, after the container's rotation is applied (FFmpeg auto-rotates).
    pub width: u32,
    /// Frame height in pixels, after rotation.
    pub height: u32,
    /// The first video stream's frame rate (`r_frame_rate`), exact.
    pub frame_rate: Rational,
    /// The number of frames when the container states it (`nb_frames`), else `None`.
    pub frames: Option<u64>,
    /// Duration in seconds when known.
    pub duration_s: Option<f64>,
    /// The video codec's short name (`h264`, `mpeg4`, ...).
    pub codec: String,
    /// Number of audio streams.
    pub audio_streams: usize,
    /// Number of subtitle streams.
    pub subtitle_streams: usize,
}

impl VideoInfo {
    /// The expected number of frames: `frames`, else duration x rate (rounded), else `None`.
    pub fn frame_estimate(&self) -> Option<u64> {
        self.frames.or_else(|| {
            self.duration_s
                .map(|d| (d * self.frame_rate.as_f64()).round() as u64)
        })
    }
}

#[derive(Deserialize)]
struct ProbeOutput {
    #[serde(default)]
    streams: Vec<ProbeStream>,
    format: Option<ProbeFormat>,
}

#[derive(Deserialize)]
struct ProbeStream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    r_frame_rate: Option<String>,
    avg_frame_rate: Option<String>,
    nb_frames: Option<String>,
    duration: Option<String>,
    #[serde(default)]
    side_data_list: Vec<serde_json::Value>,
    #[serde(default)]
    tags: std::collections::HashMap<String, String>,
}

#[derive(Deserialize)]
struct ProbeFormat {
    duration: Option<String>,
}

/// Runs `tool -version` to check it exists.
///
/// # Errors
/// [`VideoError::ToolMissing`] when it cannot be started.
pub fn check_tool(tool: &'static str) -> Result<(), VideoError> {
    match Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => Ok(()),
        Err(_) => Err(VideoError::ToolMissing { tool }),
    }
}

fn spawn_error(tool: &'static str, e: std::io::Error, path: &Path) -> VideoError {
    if e.kind() == std::io::ErrorKind::NotFound {
        VideoError::ToolMissing { tool }
    } else {
        VideoError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    }
}

/// FFmpeg's most telling line for a failed encode: a stream the container cannot hold gets a
/// hint (Matroska holds any codec), anything else the last line.
fn encode_message(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    match text
        .lines()
        .find(|l| l.contains("not currently supported in container"))
    {
        Some(line) => {
            let line = line.split("] ").last().unwrap_or(line).trim();
            format!("{line}; write a .mkv instead, which holds any codec")
        }
        None => last_line(stderr),
    }
}

fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("no message")
        .to_string()
}

/// Reads the facts of `path`'s first video stream with ffprobe.
///
/// # Errors
/// [`VideoError::ToolMissing`] without ffprobe, [`VideoError::Io`] for a missing input,
/// [`VideoError::Probe`] when ffprobe cannot read it, [`VideoError::NoVideoStream`] when it has
/// no video stream (or only an attached picture).
pub fn probe(path: &Path) -> Result<VideoInfo, VideoError> {
    std::fs::metadata(path).map_err(|source| VideoError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_streams",
            "-show_format",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error("ffprobe", e, path))?;
    if !out.status.success() {
        return Err(VideoError::Probe {
            path: path.to_path_buf(),
            message: last_line(&out.stderr),
        });
    }
    let parsed: ProbeOutput =
        serde_json::from_slice(&out.stdout).map_err(|e| VideoError::Probe {
            path: path.to_path_buf(),
            message: format!("unreadable ffprobe output: {e}"),
        })?;
    let kind = |s: &ProbeStream, k: &str| s.codec_type.as_deref() == Some(k);
    // Cover art (mjpeg/png attached pictures) is a "video" stream with a 90000/1 rate; skip it.
    let video = parsed
        .streams
        .iter()
        .find(|s| {
            kind(s, "video")
                && !matches!(s.codec_name.as_deref(), Some("mjpeg" | "png"))
                && s.width.is_some()
        })
        .ok_or_else(|| VideoError::NoVideoStream {
            path: path.to_path_buf(),
        })?;
    let frame_rate = video
        .r_frame_rate
        .as_deref()
        .and_then(Rational::parse)
        .or_else(|| video.avg_frame_rate.as_deref().and_then(Rational::parse))
        .ok_or_else(|| VideoError::Probe {
            path: path.to_path_buf(),
            message: "the video stream has no frame rate".into(),
        })?;
    let (mut width, mut height) = (video.width.unwrap_or(0), video.height.unwrap_or(0));
    if width == 0 || height == 0 {
        return Err(VideoError::Probe {
            path: path.to_path_buf(),
            message: "the video stream has no frame size".into(),
        });
    }
    let rotation = video
        .side_data_list
        .iter()
        .find_map(|d| d.get("rotation").and_then(serde_json::Value::as_i64))
        .or_else(|| video.tags.get("rotate").and_then(|r| r.parse().ok()))
        .unwrap_or(0);
    if rotation.rem_euclid(180) == 90 {
        std::mem::swap(&mut width, &mut height);
    }
    let duration_s = video
        .duration
        .as_deref()
        .or(parsed.format.as_ref().and_then(|f| f.duration.as_deref()))
        .and_then(|d| d.parse().ok());
    Ok(VideoInfo {
        width,
        height,
        frame_rate,
        frames: video.nb_frames.as_deref().and_then(|n| n.parse().ok()),
        duration_s,
        codec: video.codec_name.clone().unwrap_or_default(),
        audio_streams: parsed.streams.iter().filter(|s| kind(s, "audio")).count(),
        subtitle_streams: parsed
            .streams
            .iter()
            .filter(|s| kind(s, "subtitle"))
            .count(),
    })
}

/// Puts FFmpeg in a process group of its own, so a Ctrl+C at the terminal reaches colorize
/// alone, which then stops FFmpeg and removes the partial output itself.
fn own_group(cmd: &mut Command) -> &mut Command {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    cmd
}

/// Collects a child's stderr on a thread (so a chatty FFmpeg never blocks on a full pipe).
fn drain_stderr(child: &mut Child) -> Option<JoinHandle<Vec<u8>>> {
    let mut stderr = child.stderr.take()?;
    Some(std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    }))
}

/// What a [`drain_stderr`] thread collected (empty if there was none).
fn collected(stderr: &mut Option<JoinHandle<Vec<u8>>>) -> Vec<u8> {
    stderr
        .take()
        .and_then(|h| h.join().ok())
        .unwrap_or_default()
}

/// Decodes a video's first video stream into 8-bit RGB frames, in order, none dropped or
/// repeated.
pub struct FrameReader {
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    path: PathBuf,
    frame_bytes: usize,
}

impl FrameReader {
    /// Starts `ffmpeg` decoding `path` (whose facts are `info`).
    ///
    /// # Errors
    /// [`VideoError::ToolMissing`] without ffmpeg, [`VideoError::Io`] when it cannot start.
    pub fn open(path: &Path, info: &VideoInfo) -> Result<Self, VideoError> {
        let mut child = own_group(&mut Command::new("ffmpeg"))
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(path)
            .args([
                "-map",
                "0:v:0",
                "-fps_mode",
                "passthrough",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
                "-",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| spawn_error("ffmpeg", e, path))?;
        let stderr = drain_stderr(&mut child);
        let stdout = BufReader::with_capacity(1 << 20, child.stdout.take().expect("piped"));
        Ok(Self {
            child,
            stdout,
            stderr,
            path: path.to_path_buf(),
            frame_bytes: info.width as usize * info.height as usize * 3,
        })
    }

    /// Reads the next frame into `rgb` (`width * height * 3` bytes, row-major RGB). Returns
    /// `false` at the end of the stream.
    ///
    /// # Errors
    /// [`VideoError::Decode`] when FFmpeg fails or stops inside a frame (a truncated file that
    /// FFmpeg reports as an error).
    pub fn read_frame(&mut self, rgb: &mut Vec<u8>) -> Result<bool, VideoError> {
        rgb.resize(self.frame_bytes, 0);
        let mut filled = 0;
        while filled < self.frame_bytes {
            match self.stdout.read(&mut rgb[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(VideoError::Decode {
                        path: self.path.clone(),
                        message: e.to_string(),
                    });
                }
            }
        }
        if filled == self.frame_bytes {
            return Ok(true);
        }
        self.finish()?;
        if filled > 0 {
            return Err(VideoError::Decode {
                path: self.path.clone(),
                message: format!("the stream ended inside a frame ({filled} bytes)"),
            });
        }
        Ok(false)
    }

    /// Waits for FFmpeg and reports its failure, if any.
    fn finish(&mut self) -> Result<(), VideoError> {
        let status = self.child.wait().map_err(|source| VideoError::Io {
            path: self.path.clone(),
            source,
        })?;
        if !status.success() {
            return Err(VideoError::Decode {
                path: self.path.clone(),
                message: last_line(&collected(&mut self.stderr)),
            });
        }
        Ok(())
    }
}

impl Drop for FrameReader {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How the output video is encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeOptions {
    /// libx264's constant rate factor, 0..=51 (lower: better and larger; 17 is visually
    /// lossless, DeOldify's choice; 18 is the default here).
    pub crf: u8,
    /// libx264's preset (`ultrafast` ... `veryslow`; default `medium`, FFmpeg's own).
    pub preset: String,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            crf: 18,
            preset: "medium".into(),
        }
    }
}

/// Encodes RGB frames into H.264 and copies `input`'s audio and subtitle streams, into a
/// temporary file beside the output that [`FrameWriter::finish`] renames into place. Dropped
/// without `finish` (an error, Ctrl+C), it stops FFmpeg and removes the temporary file.
pub struct FrameWriter {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    temp: PathBuf,
    out: PathBuf,
    frame_bytes: usize,
}

/// The container FFmpeg should write for `out`'s extension (`mp4` for unknown ones).
fn container(out: &Path) -> &'static str {
    match out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("mkv") => "matroska",
        Some("mov") => "mov",
        Some("webm") => "webm",
        _ => "mp4",
    }
}

impl FrameWriter {
    /// Starts `ffmpeg` writing `out` (through a temporary file in its folder): our frames
    /// (`info.width x info.height`, at `info.frame_rate` exactly) as H.264 (`yuv420p`, or
    /// `yuv444p` when a side is odd), and every audio and subtitle stream of `input` copied
    /// (subtitles become `mov_text` in MP4 and MOV, the only text format those hold).
    ///
    /// # Errors
    /// [`VideoError::Options`] for a CRF above 51 or a WebM output (H.264 does not go in WebM),
    /// [`VideoError::Io`] when the temporary file cannot be created, [`VideoError::ToolMissing`]
    /// without ffmpeg.
    pub fn create(
        input: &Path,
        out: &Path,
        info: &VideoInfo,
        options: &EncodeOptions,
    ) -> Result<Self, VideoError> {
        if options.crf > 51 {
            return Err(VideoError::Options(format!(
                "--crf {}: must be 0..=51",
                options.crf
            )));
        }
        let format = container(out);
        if format == "webm" {
            return Err(VideoError::Options(format!(
                "{}: WebM cannot hold H.264; use .mp4, .mkv or .mov",
                out.display()
            )));
        }
        let dir = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let file = tempfile::Builder::new()
            .prefix(".colorize-video-")
            .suffix(".part")
            .tempfile_in(&dir)
            .map_err(|source| VideoError::Io {
                path: out.to_path_buf(),
                source,
            })?;
        // tempfile creates files readable by the owner only; the output is an ordinary file
        // (0644 before the umask), as `colorize image` writes.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(|source| VideoError::Io {
                    path: out.to_path_buf(),
                    source,
                })?;
        }
        let temp = file.into_temp_path().keep().map_err(|e| VideoError::Io {
            path: out.to_path_buf(),
            source: e.error,
        })?;
        let pix_fmt = if info.width.is_multiple_of(2) && info.height.is_multiple_of(2) {
            "yuv420p"
        } else {
            "yuv444p"
        };
        let subtitle_codec = if matches!(format, "mp4" | "mov") {
            "mov_text"
        } else {
            "copy"
        };
        let mut cmd = Command::new("ffmpeg");
        cmd.args([
            "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
        ])
        .args(["-s", &format!("{}x{}", info.width, info.height)])
        .args(["-framerate", &info.frame_rate.to_string(), "-i", "-", "-i"])
        .arg(input)
        .args(["-map", "0:v:0", "-map", "1:a?", "-map", "1:s?"])
        .args(["-map_metadata", "1", "-c:v", "libx264"])
        .args(["-crf", &options.crf.to_string(), "-preset", &options.preset])
        .args(["-pix_fmt", pix_fmt, "-c:a", "copy", "-c:s", subtitle_codec])
        .args(["-f", format]);
        if format == "mp4" {
            cmd.args(["-movflags", "+faststart"]);
        }
        let spawned = own_group(&mut cmd)
            .arg(&temp)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                return Err(spawn_error("ffmpeg", e, out));
            }
        };
        let stderr = drain_stderr(&mut child);
        let stdin = child.stdin.take();
        Ok(Self {
            child: Some(child),
            stdin,
            stderr,
            temp,
            out: out.to_path_buf(),
            frame_bytes: info.width as usize * info.height as usize * 3,
        })
    }

    /// Writes one frame (`width * height * 3` bytes, row-major RGB).
    ///
    /// # Errors
    /// [`VideoError::Encode`] when FFmpeg has stopped (its own message: disk full, bad stream).
    pub fn write_frame(&mut self, rgb: &[u8]) -> Result<(), VideoError> {
        assert_eq!(rgb.len(), self.frame_bytes, "frame size");
        let stdin = self.stdin.as_mut().expect("open until finish");
        if stdin.write_all(rgb).is_err() {
            // FFmpeg closed its input: it failed; its stderr says why.
            return Err(self.wait_error());
        }
        Ok(())
    }

    fn wait_error(&mut self) -> VideoError {
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        self.encode_error()
    }

    /// The failed encode's error, from FFmpeg's stderr (the temporary file goes with `drop`).
    fn encode_error(&mut self) -> VideoError {
        VideoError::Encode {
            path: self.out.clone(),
            message: encode_message(&collected(&mut self.stderr)),
        }
    }

    /// Closes the stream, waits for FFmpeg and renames the temporary file onto the output.
    ///
    /// # Errors
    /// [`VideoError::Encode`] when FFmpeg failed (the temporary file is removed),
    /// [`VideoError::Io`] when the rename fails.
    pub fn finish(mut self) -> Result<(), VideoError> {
        self.stdin = None; // EOF for FFmpeg
        let mut child = self.child.take().expect("finish once");
        let status = child.wait().map_err(|source| VideoError::Io {
            path: self.out.clone(),
            source,
        })?;
        if !status.success() {
            return Err(self.encode_error());
        }
        // On failure, `drop` removes the temporary file.
        std::fs::rename(&self.temp, &self.out).map_err(|source| VideoError::Io {
            path: self.out.clone(),
            source,
        })
    }
}

impl Drop for FrameWriter {
    fn drop(&mut self) {
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.temp);
    }
}

/// The MD5 of `path`'s streams of one kind (`"a"` audio, `"s"` subtitles), packet by packet,
/// with FFmpeg's `streamhash` muxer: equal hashes mean the streams were copied bit for bit.
/// `None` when the file has no such stream.
///
/// # Errors
/// [`VideoError::ToolMissing`] without ffmpeg, [`VideoError::Decode`] when FFmpeg fails.
pub fn stream_hash(path: &Path, kind: &str) -> Result<Option<String>, VideoError> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args([
            "-map",
            &format!("0:{kind}?"),
            "-c",
            "copy",
            "-f",
            "streamhash",
        ])
        .args(["-hash", "md5", "-"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error("ffmpeg", e, path))?;
    if !out.status.success() {
        return Err(VideoError::Decode {
            path: path.to_path_buf(),
            message: last_line(&out.stderr),
        });
    }
    let text: Vec<String> = BufReader::new(&out.stdout[..])
        .lines()
        .map_while(Result::ok)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_once(',').map_or(l.clone(), |(_, h)| h.to_string()))
        .collect();
    Ok((!text.is_empty()).then(|| text.join(";")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rationals_parse_exactly() {
        assert_eq!(
            Rational::parse("30000/1001"),
            Some(Rational {
                num: 30000,
                den: 1001
            })
        );
        assert_eq!(Rational::parse("25"), Some(Rational { num: 25, den: 1 }));
        assert_eq!(Rational::parse("0/0"), None);
        assert_eq!(Rational::parse("x/2"), None);
        assert_eq!(
            Rational::parse("30000/1001").unwrap().to_string(),
            "30000/1001"
        );
    }

    #[test]
    fn container_refusals_get_a_hint() {
        let stderr =
            b"[mp4 @ 0x55f0] Could not find tag for codec pcm_s16le in stream #1, codec not \
currently supported in container\nCould not write header for output file #0\n";
        assert_eq!(
            encode_message(stderr),
            "Could not find tag for codec pcm_s16le in stream #1, codec not currently supported \
in container; write a .mkv instead, which holds any codec"
        );
        assert_eq!(
            encode_message(b"a\nNo space left on device\n"),
            "No space left on device"
        );
    }

    #[test]
    fn containers_follow_the_extension() {
        assert_eq!(container(Path::new("a.MKV")), "matroska");
        assert_eq!(container(Path::new("a.mp4")), "mp4");
        assert_eq!(container(Path::new("a")), "mp4");
        assert_eq!(container(Path::new("a.mov")), "mov");
    }
}
