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

/// A small colour data set: sky above a textured field, horizon moving with `i`.
fn photos(dir: &std::path::Path, n: u32, size: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let img = RgbImage::from_fn(size, size, |x, y| {
            if y < size / 3 + i {
                Rgb([90, 140, 220])
            } else {
                Rgb([40 + (x % 7) as u8 * 5, 130, 40])
            }
        });
        img.save(dir.join(format!("p{i}.png"))).unwrap();
    }
}

#[test]
fn every_schedule_on_the_command_line_gives_a_model_image_and_eval_accept() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photos(&data, 8, 64);
    for (arch, schedule) in [
        ("fusion", "pix2pix"),
        ("plain-cnn", "nogan"),
        ("resnet18-regressor", "regression"),
    ] {
        let run = tmp.path().join(format!("{arch}-{schedule}"));
        let out = colorize()
            .args([
                "train",
                "--arch",
                arch,
                "--schedule",
                schedule,
                "--epochs",
                "1",
            ])
            .args([
                "--preset",
                "tiny",
                "--batch-size",
                "4",
                "--critic-width",
                "8",
            ])
            .args([
                "--image-size",
                "64",
                "--load-size",
                "64",
                "--render-size",
                "64",
            ])
            .args(["--critic-steps", "1", "--gan-steps", "2", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&run)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{arch} {schedule}: {stderr}");
        if schedule != "regression" {
            assert!(stderr.contains("phase adversarial"), "{stderr}");
        }
        let config = std::fs::read_to_string(run.join("config.json")).unwrap();
        let tag = arch.replace('-', "_");
        assert!(config.contains(&format!("\"arch\": \"{tag}\"")), "{config}");

        let colorized = tmp.path().join(format!("out-{arch}"));
        let out = colorize()
            .arg("image")
            .arg(data.join("p0.png"))
            .arg("--model")
            .arg(&run)
            .arg("--out")
            .arg(&colorized)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let written: Vec<_> = std::fs::read_dir(&colorized).unwrap().collect();
        assert_eq!(written.len(), 1);
        let img = image::open(written[0].as_ref().unwrap().path()).unwrap();
        assert_eq!((img.width(), img.height()), (64, 64));

        let out = colorize()
            .args(["eval", "--data"])
            .arg(&data)
            .arg("--model")
            .arg(&run)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("model"), "{stdout}");
    }
}

#[test]
fn unknown_names_and_sizes_a_network_cannot_take_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photos(&data, 4, 48);
    let run = |extra: &[&str]| {
        let out = colorize()
            .arg("train")
            .args(extra)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(tmp.path().join("run"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = run(&["--arch", "vgg16"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("unknown architecture `vgg16`") && err.contains("fusion"),
        "{err}"
    );
    let (code, err) = run(&["--schedule", "cyclegan"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("regression, pix2pix, nogan"), "{err}");
    let (code, err) = run(&[
        "--schedule",
        "nogan",
        "--image-size",
        "32",
        "--load-size",
        "48",
    ]);
    assert_eq!(code, Some(3), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("size 32: the deoldify critic needs crops of at least 64"),
        "{err}"
    );
    assert!(!tmp.path().join("run/metrics.csv").exists());
}
