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
