//! End-to-end checks of the video pipeline on short clips built from real photos
//! (`../shared/data/val/kodak`): a pan and zoom over one photo, a cut, a pan over another, and a
//! generated audio tone, encoded by FFmpeg at 30000/1001 frames per second.
//!
//! They need `ffmpeg` and `ffprobe` on PATH (`.ci/run` installs them). Without them the tests
//! are skipped with a message, except under CI (the `CI` variable set), where they fail.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;

use burn::prelude::Device;
use colorize_models::Colorizer;
use colorize_video::ffmpeg::{FrameReader, stream_hash};
use colorize_video::{
    EncodeOptions, Rational, TemporalOptions, VideoError, VideoOptions, colorize_video,
    evaluate_video, probe,
};
use image::RgbImage;

const W: u32 = 320;
const H: u32 = 240;
/// Frames per shot; the cut is at frame `SHOT`.
const SHOT: u32 = 24;

fn have_ffmpeg() -> bool {
    let ok = ["ffmpeg", "ffprobe"].iter().all(|t| {
        Command::new(t)
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    });
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "ffmpeg/ffprobe missing under CI (apt install ffmpeg)"
        );
        eprintln!("skipped: ffmpeg/ffprobe not on PATH");
    }
    ok
}

fn photo(name: &str) -> RgbImage {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/val/kodak");
    image::open(root.join(name))
        .unwrap_or_else(|e| panic!("{name}: {e} (../shared/data beside the clone?)"))
        .to_rgb8()
}

/// A `W x H` view of `src`: the window at (x0, y0) of width `ww` (height by aspect), bilinear.
fn view(src: &RgbImage, x0: f32, y0: f32, ww: f32) -> Vec<u8> {
    let scale = ww / W as f32;
    let mut out = Vec::with_capacity((W * H * 3) as usize);
    for y in 0..H {
        for x in 0..W {
            let sx = (x0 + (x as f32 + 0.5) * scale - 0.5).clamp(0.0, src.width() as f32 - 1.001);
            let sy = (y0 + (y as f32 + 0.5) * scale - 0.5).clamp(0.0, src.height() as f32 - 1.001);
            let (ix, iy) = (sx as u32, sy as u32);
            let (fx, fy) = (sx - ix as f32, sy - iy as f32);
            for c in 0..3 {
                let p = |xx, yy| src.get_pixel(xx, yy).0[c] as f32;
                let v = p(ix, iy) * (1.0 - fx) * (1.0 - fy)
                    + p(ix + 1, iy) * fx * (1.0 - fy)
                    + p(ix, iy + 1) * (1.0 - fx) * fy
                    + p(ix + 1, iy + 1) * fx * fy;
                out.push((v + 0.5) as u8);
            }
        }
    }
    out
}

/// Writes the test clip (colour frames, H.264 near-lossless, AAC tone) and returns its path.
fn make_clip(dir: &Path, name: &str) -> PathBuf {
    let a = photo("kodim05.png");
    let b = photo("kodim23.png");
    let path = dir.join(name);
    let seconds = (2 * SHOT) as f64 * 1001.0 / 30000.0;
    let mut child = Command::new("ffmpeg")
        .args([
            "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
        ])
        .args([
            "-s",
            &format!("{W}x{H}"),
            "-framerate",
            "30000/1001",
            "-i",
            "-",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency=440:duration={seconds}"),
        ])
        .args(["-c:v", "libx264", "-crf", "10", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-b:a", "64k"])
        .arg(&path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("ffmpeg starts");
    let stdin = child.stdin.as_mut().unwrap();
    for i in 0..SHOT {
        // Pan right and zoom in over photo A.
        let t = i as f32;
        stdin
            .write_all(&view(&a, 100.0 + 4.0 * t, 80.0 + 1.5 * t, 480.0 - 3.0 * t))
            .unwrap();
    }
    for i in 0..SHOT {
        // Pan down-left over photo B.
        let t = i as f32;
        stdin
            .write_all(&view(&b, 300.0 - 3.0 * t, 60.0 + 2.0 * t, 400.0))
            .unwrap();
    }
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    path
}

fn bundled() -> Colorizer {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/stable");
    Colorizer::load(&dir, &Device::flex()).unwrap()
}

fn frames_of(path: &Path) -> Vec<Vec<u8>> {
    let info = probe(path).unwrap();
    let mut r = FrameReader::open(path, &info).unwrap();
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while r.read_frame(&mut buf).unwrap() {
        out.push(buf.clone());
    }
    out
}

fn run(c: &Colorizer, input: &Path, out: &Path, temporal: Option<TemporalOptions>) {
    let options = VideoOptions {
        temporal,
        // CRF 0: lossless H.264, so decoded frames compare with what was rendered.
        encode: EncodeOptions {
            crf: 0,
            preset: "ultrafast".into(),
        },
        ..VideoOptions::default()
    };
    let report = colorize_video(
        c,
        input,
        out,
        &options,
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(report.frames, 2 * SHOT as u64);
    assert_eq!(report.cuts, [0, SHOT as u64], "scene cuts");
}

#[test]
fn video_keeps_rate_frames_size_and_audio_and_resets_at_the_cut() {
    if !have_ffmpeg() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let clip = make_clip(tmp.path(), "clip.mp4");
    let before = std::fs::read(&clip).unwrap();
    let c = bundled();
    let flow = tmp.path().join("flow.mp4");
    let off = tmp.path().join("off.mkv");
    run(&c, &clip, &flow, Some(TemporalOptions::default()));
    run(&c, &clip, &off, None);
    assert_eq!(std::fs::read(&clip).unwrap(), before, "input untouched");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&flow).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o044,
            0o044,
            "an ordinary readable file, not 0600: {mode:o}"
        );
    }

    let info_in = probe(&clip).unwrap();
    for out in [&flow, &off] {
        let info = probe(out).unwrap();
        assert_eq!((info.width, info.height), (W, H));
        assert_eq!(
            info.frame_rate,
            Rational {
                num: 30000,
                den: 1001
            }
        );
        assert_eq!(info.codec, "h264");
        assert_eq!(info.audio_streams, 1);
        let audio = stream_hash(out, "a").unwrap();
        assert!(audio.is_some());
        assert_eq!(
            audio,
            stream_hash(&clip, "a").unwrap(),
            "audio copied bit for bit"
        );
        assert_eq!(frames_of(out).len(), 2 * SHOT as usize);
    }
    assert_eq!(info_in.frame_rate.to_string(), "30000/1001");

    // The first frame after the cut is the per-frame result (within 1 level), and frames
    // inside a scene are not (the temporal blend did something).
    let (f, o) = (frames_of(&flow), frames_of(&off));
    let worst = |x: &[u8], y: &[u8]| x.iter().zip(y).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert!(
        worst(&f[SHOT as usize], &o[SHOT as usize]) <= 1,
        "first frame after the cut"
    );
    assert!(worst(&f[0], &o[0]) <= 1, "first frame");
    assert!(
        worst(&f[SHOT as usize + 5], &o[SHOT as usize + 5]) > 1,
        "no blending happened"
    );
    // No partial or temporary files are left beside the outputs.
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".part")), "{names:?}");
}

#[test]
fn temporal_consistency_cuts_flicker_and_keeps_colour() {
    if !have_ffmpeg() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let clip = make_clip(tmp.path(), "clip.mp4");
    let c = bundled();
    let r = evaluate_video(&c, &clip, TemporalOptions::default(), None, &mut |_| {}).unwrap();
    eprintln!("{r:#?}");
    assert_eq!(r.frames, 2 * SHOT as u64);
    assert_eq!(r.cuts, [0, SHOT as u64]);
    let ratio = r.temporal.warping_error / r.per_frame.warping_error;
    assert!(
        ratio <= 0.6,
        "warping error {} vs per frame {} ({ratio:.2})",
        r.temporal.warping_error,
        r.per_frame.warping_error
    );
    assert!(r.temporal.cdc <= r.per_frame.cdc, "CDC {:?}", r);
    assert!(
        r.temporal.colourfulness >= 0.9 * r.per_frame.colourfulness,
        "colourfulness {} vs {}",
        r.temporal.colourfulness,
        r.per_frame.colourfulness
    );
    // PSNR against the colour original stays where per-frame colourisation is (within 0.5 dB).
    assert!(r.temporal.psnr > r.per_frame.psnr - 0.5, "{r:?}");
}

#[test]
fn bad_inputs_fail_cleanly_and_leave_nothing_behind() {
    if !have_ffmpeg() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let c = bundled();
    let out = tmp.path().join("out.mp4");
    let go = |input: &Path, out: &Path| {
        colorize_video(
            &c,
            input,
            out,
            &VideoOptions::default(),
            &AtomicBool::new(false),
            &mut |_| {},
        )
    };
    // Not a video at all.
    let text = tmp.path().join("notes.mp4");
    std::fs::write(&text, "not a video").unwrap();
    assert!(matches!(go(&text, &out), Err(VideoError::Probe { .. })));
    // Audio only.
    let audio = tmp.path().join("tone.m4a");
    let st = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=duration=0.5",
        ])
        .arg(&audio)
        .status()
        .unwrap();
    assert!(st.success());
    let e = go(&audio, &out).unwrap_err();
    assert!(matches!(e, VideoError::NoVideoStream { .. }), "{e}");
    assert!(e.to_string().contains("tone.m4a"), "{e}");
    // Missing input.
    assert!(matches!(
        go(&tmp.path().join("nope.mp4"), &out),
        Err(VideoError::Io { .. })
    ));
    // Output = input.
    let clip = make_clip(tmp.path(), "clip.mp4");
    let before = std::fs::read(&clip).unwrap();
    assert!(matches!(
        go(&clip, &clip),
        Err(VideoError::OutputIsInput { .. })
    ));
    assert!(matches!(
        go(&clip, &tmp.path().join(".").join("clip.mp4")),
        Err(VideoError::OutputIsInput { .. })
    ));
    // A truncated file (the first half of the clip).
    let cut = tmp.path().join("truncated.mp4");
    std::fs::write(&cut, &before[..before.len() / 2]).unwrap();
    let e = go(&cut, &out).unwrap_err();
    assert!(
        matches!(e, VideoError::Probe { .. } | VideoError::Decode { .. }),
        "{e}"
    );
    // Interrupted: the flag is set before the first batch.
    let e = colorize_video(
        &c,
        &clip,
        &out,
        &VideoOptions::default(),
        &AtomicBool::new(true),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(e, VideoError::Interrupted));
    // An existing output is kept without --overwrite.
    std::fs::write(&out, "keep me").unwrap();
    assert!(matches!(
        go(&clip, &out),
        Err(VideoError::OutputExists { .. })
    ));
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    std::fs::remove_file(&out).unwrap();
    assert_eq!(std::fs::read(&clip).unwrap(), before, "input untouched");
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".colorize-video-") || n == "out.mp4")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
