//! `--device`: the bundled examples on the GPU (Vulkan; lavapipe in CI) against the CPU engine,
//! and the one-line errors when there is no GPU support, no Vulkan driver, or an engine that
//! cannot run on the GPU.

use std::path::Path;

use crate::colorize;
#[cfg(feature = "gpu")]
use crate::worst_difference;

/// The examples folder of the repository.
fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// The last stderr line of a failed run, checked to be the only `error:` line.
fn one_error_line(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    errors[0].to_string()
}

#[test]
fn native_engine_on_the_gpu_is_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let assert = colorize()
        .args(["image", "--device", "gpu", "--engine", "native", "--out"])
        .arg(&out)
        .arg(examples())
        .assert()
        .code(3);
    let line = one_error_line(assert.get_output());
    assert!(line.contains("--engine native runs on the CPU"), "{line}");
    assert!(!out.exists(), "nothing may be written");
}

#[test]
fn gpu_without_a_vulkan_driver_is_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    // The Vulkan loader reads its driver list from these; a missing file leaves it with none.
    let none = tmp.path().join("no-driver.json");
    let assert = colorize()
        .args(["image", "--device", "gpu", "--out"])
        .arg(&out)
        .arg(examples())
        .env("VK_ICD_FILENAMES", &none)
        .env("VK_DRIVER_FILES", &none)
        .assert()
        .code(3);
    let line = one_error_line(assert.get_output());
    if cfg!(feature = "gpu") {
        assert!(line.contains("no GPU found through Vulkan"), "{line}");
    } else {
        assert!(line.contains("built without GPU support"), "{line}");
        assert!(line.contains("--features gpu"), "{line}");
    }
    assert!(!out.exists(), "nothing may be written");
}

/// Decodes a PNG as 8-bit RGB.
#[cfg(feature = "gpu")]
fn rgb(p: &Path) -> image::RgbImage {
    image::open(p).unwrap().to_rgb8()
}

#[cfg(feature = "gpu")]
#[test]
fn examples_on_the_gpu_are_within_two_levels_of_the_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |device: &str| {
        let out = tmp.path().join(device);
        let output = colorize()
            .args(["image", "--format", "png", "--device", device, "--out"])
            .arg(&out)
            .arg(examples())
            .output()
            .unwrap();
        (out, output)
    };
    let (gpu_out, output) = run("gpu");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    if !output.status.success()
        && stderr.contains("no GPU found")
        && std::env::var_os("CI").is_none()
    {
        eprintln!("skipped (CI not set): {stderr}");
        return;
    }
    assert!(output.status.success(), "{stderr}");
    let (cpu_out, output) = run("cpu");
    assert!(output.status.success());
    let mut n = 0;
    for entry in std::fs::read_dir(&cpu_out).unwrap() {
        let cpu_png = entry.unwrap().path();
        let gpu_png = gpu_out.join(cpu_png.file_name().unwrap());
        let worst = worst_difference(&rgb(&cpu_png), &rgb(&gpu_png));
        eprintln!("{}: worst difference {worst} levels", cpu_png.display());
        assert!(worst <= 2, "{}: {worst} levels", cpu_png.display());
        n += 1;
    }
    assert_eq!(n, 3, "the three examples");
}
