//! `colorize train` (default `train` feature): the log lines it writes without a terminal, the run
//! directory, and one-line errors.

use image::{Rgb, RgbImage};

use crate::colorize;

#[test]
fn train_logs_epochs_and_exports_a_model() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for i in 0..10u32 {
        let img = RgbImage::from_fn(48, 48, |x, y| {
            if y < 16 + i {
                Rgb([90, 140, 220])
            } else {
                Rgb([40 + (x % 7) as u8 * 5, 130, 40])
            }
        });
        img.save(data.join(format!("p{i}.png"))).unwrap();
    }
    let run = tmp.path().join("run");
    let out = colorize()
        .args([
            "train",
            "--preset",
            "tiny",
            "--epochs",
            "2",
            "--batch-size",
            "4",
        ])
        .args([
            "--image-size",
            "32",
            "--load-size",
            "48",
            "--render-size",
            "64",
            "--data",
        ])
        .arg(&data)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // Not a terminal: no bar, plain lines (fewer than 50 steps, so no step lines).
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(lines[0].starts_with("epoch 1: train loss "), "{stderr}");
    assert!(lines[0].contains("val PSNR"), "{stderr}");
    assert!(lines[1].starts_with("epoch 2: train loss "), "{stderr}");
    assert!(lines[2].starts_with("trained 2 epochs in "), "{stderr}");
    assert!(
        !stderr.contains('\r') && !stderr.contains('\x1b'),
        "{stderr:?}"
    );
    for f in [
        "train.json",
        "metrics.csv",
        "config.json",
        "model.safetensors",
    ] {
        assert!(run.join(f).is_file(), "{f}");
    }
    assert!(run.join("checkpoint/state.json").is_file());
}

#[test]
fn train_on_a_missing_folder_is_a_one_line_fatal_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = colorize()
        .args(["train", "--data"])
        .arg(tmp.path().join("nowhere"))
        .arg("--out")
        .arg(tmp.path().join("run"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("nowhere: not a folder"), "{stderr}");
}
