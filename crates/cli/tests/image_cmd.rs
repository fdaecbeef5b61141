use std::path::Path;

use image::GenericImageView;

use crate::{colorize, shared_data};

const SPACED: &str = "Broadway at the United States Hotel Saratoga Springs, N.Y. ca 1900-1915.jpg";

fn dims(p: &Path) -> (u32, u32) {
    image::ImageReader::open(p)
        .unwrap()
        .with_guessed_format()
        .unwrap()
        .decode()
        .unwrap()
        .dimensions()
}

fn setup(dir: &Path) {
    let hist = shared_data().join("historical");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::copy(hist.join(SPACED), dir.join(SPACED)).unwrap();
    std::fs::copy(
        hist.join("1864UnionSoldier.jpg"),
        dir.join("1864UnionSoldier.jpg"),
    )
    .unwrap();
    std::fs::copy(
        hist.join("migrant_mother.jpg"),
        dir.join("sub/migrant_mother.jpg"),
    )
    .unwrap();
    std::fs::write(
        dir.join("broken.jpg"),
        b"\xFF\xD8\xFF\xE0 this is not really a jpeg",
    )
    .unwrap();
    std::fs::write(dir.join("empty.png"), b"").unwrap();
    std::fs::write(dir.join("notes.txt"), b"ignored: not an image extension").unwrap();
}

#[test]
fn folder_with_bad_files_colourises_the_rest_and_reports_each_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let out = tmp.path().join("out");
    setup(&input);
    let assert = colorize()
        .arg("image")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("error: ") && l.contains("broken.jpg")),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("error: ") && l.contains("empty.png")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    for name in [SPACED, "1864UnionSoldier.jpg", "sub/migrant_mother.jpg"] {
        let o = out.join(name);
        assert!(o.is_file(), "missing {name}: {stderr}");
        assert_eq!(dims(&o), dims(&input.join(name)), "{name}");
        // It is a colour photo now: some pixels have clearly different R, G and B.
        let rgb = image::open(&o).unwrap().to_rgb8();
        let coloured = rgb.pixels().filter(|p| p.0[0].abs_diff(p.0[2]) > 8).count();
        assert!(coloured > 0, "{name} came out gray");
    }
    let mut written: Vec<_> = walkdir(&out);
    written.sort();
    assert_eq!(
        written.len(),
        3,
        "only the good photos, no temp files: {written:?}"
    );

    // Again without --overwrite: refused, outputs untouched.
    let before = std::fs::read(out.join(SPACED)).unwrap();
    let assert = colorize()
        .arg("image")
        .arg(input.join(SPACED))
        .arg("--out")
        .arg(&out)
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(
        stderr.contains("already exists") && stderr.contains("--overwrite"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(out.join(SPACED)).unwrap(), before);
    // With --overwrite and another render size: replaced, exit 0.
    colorize()
        .arg("image")
        .arg(input.join(SPACED))
        .args(["--overwrite", "--render-size", "64", "--out"])
        .arg(&out)
        .assert()
        .code(0);
    assert_ne!(std::fs::read(out.join(SPACED)).unwrap(), before);
}

fn walkdir(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(walkdir(&p));
        } else {
            v.push(p.display().to_string());
        }
    }
    v
}

#[test]
fn globs_formats_and_inputs_are_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    setup(&input);
    let out = tmp.path().join("png out");
    let pattern = format!("{}/*.jpg", input.display());
    colorize()
        .args(["image", &pattern, "--format", "png", "--out"])
        .arg(&out)
        .assert()
        .code(1);
    assert!(out.join("1864UnionSoldier.png").is_file());
    assert!(out.join(SPACED.replace(".jpg", ".png")).is_file());
    assert!(
        !out.join("migrant_mother.png").exists(),
        "the glob is not recursive"
    );

    // Writing next to the input with the same name is refused; the input is untouched.
    let original = std::fs::read(input.join("1864UnionSoldier.jpg")).unwrap();
    let assert = colorize()
        .arg("image")
        .arg(input.join("1864UnionSoldier.jpg"))
        .args(["--overwrite", "--out"])
        .arg(&input)
        .assert()
        .code(3);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(stderr.contains("would replace the input"), "{stderr}");
    assert_eq!(
        std::fs::read(input.join("1864UnionSoldier.jpg")).unwrap(),
        original
    );
}

#[test]
fn bad_flags_and_missing_things_have_documented_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    colorize().arg("image").assert().code(2);
    colorize()
        .args(["image", "x.jpg", "--out", "o", "--render-size", "0"])
        .assert()
        .code(2);
    colorize().arg("frobnicate").assert().code(2);
    colorize()
        .arg("--help")
        .assert()
        .code(0)
        .stdout(predicates::str::contains("Exit codes"));
    // A missing input: reported, nothing to do -> fatal.
    let assert = colorize()
        .args(["image", "no/such/photo.jpg", "--out"])
        .arg(tmp.path())
        .assert()
        .code(3);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(stderr.contains("no/such/photo.jpg"), "{stderr}");
    // A missing model directory: one line naming it.
    let photo = shared_data().join("historical/1864UnionSoldier.jpg");
    let assert = colorize()
        .arg("image")
        .arg(&photo)
        .args(["--model", "no/such/model", "--out"])
        .arg(tmp.path())
        .assert()
        .code(3);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no/such/model"), "{stderr}");
    assert!(stderr.contains("the bundled models are stable"), "{stderr}");
    // Over the pixel limit.
    let assert = colorize()
        .arg("image")
        .arg(&photo)
        .args(["--max-pixels", "1000", "--out"])
        .arg(tmp.path())
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(stderr.contains("over the limit of 1000 pixels"), "{stderr}");
}

#[test]
fn all_historical_photos_come_out_at_their_own_size() {
    let tmp = tempfile::tempdir().unwrap();
    let hist = shared_data().join("historical");
    colorize()
        .arg("image")
        .arg(&hist)
        .arg("--out")
        .arg(tmp.path())
        .assert()
        .code(0);
    let mut n = 0;
    for e in std::fs::read_dir(&hist).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|e| e == "jpg" || e == "png") {
            let o = tmp.path().join(p.file_name().unwrap());
            assert_eq!(dims(&o), dims(&p), "{}", p.display());
            n += 1;
        }
    }
    assert_eq!(n, 49);
}

#[test]
fn bundled_models_are_chosen_by_name() {
    // `stable` and `default` are the same weights; `artistic` is another network's colours.
    let tmp = tempfile::tempdir().unwrap();
    let photo = shared_data().join("historical/1864UnionSoldier.jpg");
    let mut outputs = Vec::new();
    for name in ["stable", "default", "artistic"] {
        let out = tmp.path().join(name);
        colorize()
            .arg("image")
            .arg(&photo)
            .args(["--format", "png", "--model", name, "--out"])
            .arg(&out)
            .assert()
            .code(0);
        outputs.push(std::fs::read(out.join("1864UnionSoldier.png")).unwrap());
    }
    assert_eq!(outputs[0], outputs[1], "default is stable");
    assert_ne!(outputs[0], outputs[2], "artistic differs from stable");
}

/// Peak memory budget of `colorize image` (issue 17), as `FIXED + bytes per pixel · pixels`:
/// the process itself (binary, bundled model, the network at the default render size: about
/// 110 MiB measured) plus, per pixel, the decoded photo (1 byte for 8-bit gray, 2 for 16-bit
/// gray), the output pixels (3 bytes, 6 for 16-bit PNG) and 2 bytes of slack. Before the banded
/// pipeline an 8-bit gray JPEG took about 25.6 bytes per pixel (f32 L, a, b planes and an f32 RGB
/// image at once) and a 16-bit gray PNG about 32; docs/PERFORMANCE.md has the 100-megapixel
/// figures.
const FIXED_MIB: f64 = 192.0;
const BYTES_PER_PIXEL_8BIT_GRAY: f64 = 6.0;
const BYTES_PER_PIXEL_16BIT_GRAY: f64 = 10.0;

/// The process's peak resident memory that `colorize image --verbose` prints, in MiB.
fn peak_mib(stderr: &str) -> f64 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("peak resident memory: "))
        .unwrap_or_else(|| panic!("no peak memory line: {stderr}"));
    line["peak resident memory: ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// A `w x h` gray photo: a real black-and-white photo tiled (real texture for the decoder and the
/// network, no time spent resizing).
fn big_gray(w: u32, h: u32) -> image::GrayImage {
    let src = image::open(shared_data().join("historical/1864UnionSoldier.jpg"))
        .unwrap()
        .to_luma8();
    let (sw, sh) = src.dimensions();
    image::GrayImage::from_fn(w, h, |x, y| *src.get_pixel(x % sw, y % sh))
}

#[test]
fn large_photos_stay_within_the_memory_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let gray = big_gray(6000, 5000); // 30 megapixels
    let jpg = tmp.path().join("big.jpg");
    image::DynamicImage::ImageLuma8(gray.clone())
        .save(&jpg)
        .unwrap();
    // 16-bit gray PNG, 20 megapixels: the high-bit-depth path (16-bit output).
    let gray16 = image::ImageBuffer::from_fn(5000, 4000, |x, y| {
        image::Luma([gray.get_pixel(x, y).0[0] as u16 * 257 + (x % 7) as u16])
    });
    drop(gray);
    let png = tmp.path().join("big16.png");
    image::DynamicImage::ImageLuma16(gray16).save(&png).unwrap();

    for (input, pixels, per_pixel, sixteen) in [
        (&jpg, 30e6, BYTES_PER_PIXEL_8BIT_GRAY, false),
        (&png, 20e6, BYTES_PER_PIXEL_16BIT_GRAY, true),
    ] {
        let assert = colorize()
            .arg("image")
            .arg(input)
            .arg("--out")
            .arg(&out)
            .arg("--verbose")
            .assert()
            .code(0);
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
        let peak = peak_mib(&stderr);
        let budget = FIXED_MIB + per_pixel * pixels / (1024.0 * 1024.0);
        assert!(
            peak <= budget,
            "{}: peak {peak:.0} MiB, budget {budget:.0} MiB ({per_pixel} bytes per pixel)",
            input.display()
        );
        let o = out.join(input.file_name().unwrap());
        let decoded = image::open(&o).unwrap();
        assert_eq!(decoded.dimensions(), dims(input));
        assert_eq!(
            matches!(decoded, image::DynamicImage::ImageRgb16(_)),
            sixteen,
            "{}: {:?}",
            o.display(),
            decoded.color()
        );
    }
}

fn stderr_of(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stderr).to_string()
}

/// The `error: ` line of `stderr` that mentions `what`.
fn error_line<'a>(stderr: &'a str, what: &str) -> &'a str {
    stderr
        .lines()
        .find(|l| l.starts_with("error: ") && l.contains(what))
        .unwrap_or_else(|| panic!("no error line about {what}: {stderr}"))
}

#[test]
fn outputs_never_replace_another_input_and_shared_names_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("photos");
    std::fs::create_dir_all(&dir).unwrap();
    let soldier = shared_data().join("historical/1864UnionSoldier.jpg");
    // x.jpg and x.png are different photos; with --format png, x.jpg's output is x.png.
    std::fs::copy(&soldier, dir.join("x.jpg")).unwrap();
    let small = image::open(&soldier).unwrap().thumbnail(64, 64).to_luma8();
    small.save(dir.join("x.png")).unwrap();
    // y.jpg and y.jpeg both become y.png.
    std::fs::copy(&soldier, dir.join("y.jpg")).unwrap();
    std::fs::copy(&soldier, dir.join("y.jpeg")).unwrap();
    let x_png = std::fs::read(dir.join("x.png")).unwrap();
    let assert = colorize()
        .arg("image")
        .arg(&dir)
        .args([
            "--format",
            "png",
            "--overwrite",
            "--render-size",
            "64",
            "--out",
        ])
        .arg(&dir)
        .assert()
        .code(1);
    let stderr = stderr_of(&assert);
    assert_eq!(
        std::fs::read(dir.join("x.png")).unwrap(),
        x_png,
        "the input x.png was replaced: {stderr}"
    );
    let about = |name: &str| format!("error: {}: ", dir.join(name).display());
    let line = error_line(&stderr, &about("x.jpg"));
    assert!(
        line.contains("would replace another input") && line.contains("x.png"),
        "{line}"
    );
    assert!(error_line(&stderr, &about("x.png")).contains("would replace the input"));
    // y.jpeg sorts before y.jpg: it is written, y.jpg is reported naming it.
    let line = error_line(&stderr, &about("y.jpg"));
    assert!(
        line.contains("y.jpeg also writes") && line.contains("y.png"),
        "{line}"
    );
    assert!(dir.join("y.png").is_file(), "{stderr}");
    assert!(stderr.contains("colourised 1 of 4 images"), "{stderr}");
}

#[test]
fn an_output_folder_inside_the_input_folder_is_not_walked_again() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    std::fs::copy(
        shared_data().join("historical/1864UnionSoldier.jpg"),
        photos.join("soldier.jpg"),
    )
    .unwrap();
    let out = photos.join("colorized");
    for _ in 0..2 {
        let assert = colorize()
            .arg("image")
            .arg(&photos)
            .args(["--overwrite", "--render-size", "64", "--out"])
            .arg(&out)
            .assert()
            .code(0);
        let stderr = stderr_of(&assert);
        assert!(stderr.contains("colourised 1 of 1 images"), "{stderr}");
    }
    assert!(out.join("soldier.jpg").is_file());
    assert!(
        !out.join("colorized").exists(),
        "outputs were colourised again"
    );
}

#[cfg(unix)]
#[test]
fn folders_that_cannot_be_read_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(photos.join("sub")).unwrap();
    std::fs::copy(
        shared_data().join("historical/1864UnionSoldier.jpg"),
        photos.join("soldier.jpg"),
    )
    .unwrap();
    // A symbolic link back to the top: a loop, which blocks the walk for root too.
    std::os::unix::fs::symlink(&photos, photos.join("sub/loop")).unwrap();
    // A folder without permissions; root reads it anyway, so that case is checked only as a user.
    use std::os::unix::fs::PermissionsExt;
    let locked = photos.join("locked");
    std::fs::create_dir_all(&locked).unwrap();
    std::fs::write(locked.join("hidden.jpg"), b"x").unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let root_reads_anyway = std::fs::read_dir(&locked).is_ok();
    let out = tmp.path().join("out");
    let assert = colorize()
        .arg("image")
        .arg(&photos)
        .args(["--render-size", "64", "--out"])
        .arg(&out)
        .assert()
        .code(1);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stderr = stderr_of(&assert);
    assert!(
        error_line(&stderr, "sub/loop").contains("loops back"),
        "{stderr}"
    );
    if root_reads_anyway {
        eprintln!(
            "skipping the unreadable-folder case: running as root, chmod 000 does not block reading"
        );
    } else {
        assert!(
            error_line(&stderr, "locked").contains("Permission denied"),
            "{stderr}"
        );
    }
    assert!(out.join("soldier.jpg").is_file(), "{stderr}");
    for l in stderr.lines() {
        assert!(!l.contains("panicked"), "{stderr}");
    }
}

#[cfg(unix)]
#[test]
fn ctrl_c_leaves_no_temporary_files() {
    use std::time::{Duration, Instant};
    // On disk (not a tmpfs), so that writing each large output takes a while.
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let big = image::open(shared_data().join("historical/1864UnionSoldier.jpg"))
        .unwrap()
        .resize_exact(4000, 3000, image::imageops::FilterType::Triangle)
        .to_luma8();
    big.save(input.join("p0.png")).unwrap();
    for i in 1..6 {
        std::fs::copy(input.join("p0.png"), input.join(format!("p{i}.png"))).unwrap();
    }
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let temp_files = || -> Vec<String> {
        std::fs::read_dir(&out)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
            .filter(|n| n.starts_with(".colorize-"))
            .collect()
    };
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("colorize"))
        .arg("image")
        .arg(&input)
        .args(["--render-size", "64", "--out"])
        .arg(&out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until an output is being written (its temporary file exists), then press Ctrl+C.
    let started = Instant::now();
    while temp_files().is_empty() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before a temporary file was seen"
        );
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no output written"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(temp_files(), Vec::<String>::new(), "{stderr}");
    // What was written is complete.
    for e in std::fs::read_dir(&out).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(dims(&p), (4000, 3000), "{}", p.display());
    }
}
