//! `colorize video` and `colorize eval-video` end to end: a short clip made by FFmpeg from a real
//! photo (zoom and pan), with an audio tone and SubRip subtitles in Matroska.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{colorize, shared_data};

fn have_ffmpeg() -> bool {
    let ok = Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "ffmpeg missing under CI");
        eprintln!("skipped: ffmpeg not on PATH");
    }
    ok
}

/// 40 frames at 25 fps of a zoom over kodim23, a 440 Hz tone and two subtitles, in Matroska.
fn clip(dir: &Path) -> PathBuf {
    let srt = dir.join("subs.srt");
    std::fs::write(
        &srt,
        "1\n00:00:00,000 --> 00:00:00,800\nFirst line\n\n2\n00:00:00,800 --> 00:00:01,500\nSecond line\n",
    )
    .unwrap();
    let out = dir.join("clip.mkv");
    let photo = shared_data().join("val/kodak/kodim23.png");
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-loop", "1", "-framerate", "25", "-i"])
        .arg(&photo)
        .args(["-f", "lavfi", "-i", "sine=frequency=440:duration=1.6", "-i"])
        .arg(&srt)
        .args([
            "-filter_complex",
            "[0:v]zoompan=z='1.2+0.002*on':x='iw/4+2*on':y='ih/5':d=1:s=256x176:fps=25,format=gray[v]",
            "-map",
            "[v]",
            "-map",
            "1:a",
            "-map",
            "2:s",
            "-frames:v",
            "40",
            "-c:v",
            "libx264",
            "-crf",
            "18",
            "-c:a",
            "aac",
            "-c:s",
            "srt",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    out
}

fn stream_md5(path: &Path, kind: &str) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args([
            "-map",
            &format!("0:{kind}"),
            "-c",
            "copy",
            "-f",
            "streamhash",
        ])
        .args(["-hash", "md5", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn probe_count(path: &Path, kind: &str) -> usize {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            kind,
            "-show_entries",
            "stream=index",
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn video_copies_audio_and_subtitles_and_eval_video_reports_both_ways() {
    if !have_ffmpeg() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let input = clip(tmp.path());
    let mkv = tmp.path().join("colour.mkv");
    colorize()
        .arg("video")
        .arg(&input)
        .arg("--out")
        .arg(&mkv)
        .assert()
        .success()
        .stderr(predicates::str::contains("40 frames (256x176, 25/1 fps)"));
    assert_eq!(stream_md5(&mkv, "a"), stream_md5(&input, "a"), "audio");
    assert_eq!(stream_md5(&mkv, "s"), stream_md5(&input, "s"), "subtitles");
    // In MP4 the subtitles become mov_text (the only text format MP4 holds); audio is copied.
    let mp4 = tmp.path().join("colour.mp4");
    colorize()
        .args(["video", "--temporal", "off", "--keyframe-interval", "1"])
        .arg(&input)
        .arg("--out")
        .arg(&mp4)
        .assert()
        .success();
    assert_eq!(probe_count(&mp4, "s"), 1);
    assert_eq!(stream_md5(&mp4, "a"), stream_md5(&input, "a"), "audio");
    // Again without --overwrite: refused, the output kept.
    let before = std::fs::read(&mp4).unwrap();
    colorize()
        .arg("video")
        .arg(&input)
        .arg("--out")
        .arg(&mp4)
        .assert()
        .failure()
        .stderr(predicates::str::contains("--overwrite"));
    assert_eq!(std::fs::read(&mp4).unwrap(), before);

    let out = colorize()
        .args(["eval-video", "--json"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["frames"], 40);
    let we = |k: &str| r[k]["warping_error"].as_f64().unwrap();
    assert!(we("temporal") < we("per_frame"), "{r}");
    assert!(
        r["temporal"]["colourfulness"].as_f64().unwrap() > 1.0,
        "{r}"
    );
}

#[test]
fn video_errors_are_one_line_and_name_the_cause() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.mp4");
    std::fs::write(&input, "not a video").unwrap();
    let out = tmp.path().join("out.mp4");
    // No FFmpeg on PATH: how to install it.
    let empty = tmp.path().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    colorize()
        .env("PATH", &empty)
        .arg("video")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(3)
        .stderr(predicates::str::contains(
            "ffmpeg was not found on PATH: install FFmpeg",
        ));
    // A bad strength is refused before any work.
    colorize()
        .args(["video", "--strength", "2"])
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "--strength must be between 0 and 0.95",
        ));
    if have_ffmpeg() {
        // Not a video: the input is named.
        let assert = colorize()
            .arg("video")
            .arg(&input)
            .arg("--out")
            .arg(&out)
            .assert()
            .code(3);
        let err = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
        assert!(err.contains("in.mp4: cannot read as a video"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert!(!out.exists());
}

/// Ctrl+C (SIGINT to colorize) stops the run: a one-line error, no output and no temporary file.
#[cfg(unix)]
#[test]
fn interrupt_removes_the_partial_output() {
    if !have_ffmpeg() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("long.mp4");
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=640x360:rate=25,format=gray")
        .args([
            "-frames:v",
            "1500",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .arg(&input)
        .status()
        .unwrap();
    assert!(st.success());
    let out = tmp.path().join("out.mp4");
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("colorize"))
        .arg("video")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until FFmpeg has started writing the temporary file, then interrupt.
    let started = std::time::Instant::now();
    let part = || {
        std::fs::read_dir(tmp.path())
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".part"))
    };
    while !part() && started.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(!out.exists(), "partial output left");
    assert!(!part(), "temporary file left");
}
