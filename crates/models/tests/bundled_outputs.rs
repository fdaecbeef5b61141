//! The bundled model's colours, photo by photo, against outputs stored from an earlier `main`.
//!
//! `fixtures/bundled-outputs.json` holds, for every photo of `examples/` and of
//! `../shared/data/historical`, the 8-bit sRGB output of `Colorizer::colorize` with the bundled
//! model at its defaults (render size and saturation from `models/stable/config.json`), sampled on
//! a 24 x 24 grid of pixels, plus the mean of each channel over the whole photo. It was written by
//! this test (`COLORIZE_WRITE_FIXTURE=1`) on the commit before the model contract (`ModelIo`), the
//! engine graphs built from named weights and the staged pipeline; refactoring the pipeline must
//! not move any sampled value by more than 1 level, nor any channel mean by more than 0.5.
//! Rewrite it only when the bundled model itself changes.

use std::path::{Path, PathBuf};

use colorize_core::io::{DecodeLimits, decode_image};
use colorize_models::Colorizer;
use image::DynamicImage;
use serde_json::{Value, json};

use crate::shared_data;

/// Samples per side of the grid.
const GRID: u32 = 24;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bundled-outputs.json")
}

/// Every photo of `dir` (jpg/png/...), sorted by name.
fn photos(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        })
        .collect();
    files.sort();
    files
}

/// The 8-bit output of the bundled model for `path`: grid samples (RGB, row-major) and the mean
/// of each channel.
fn output_of(colorizer: &Colorizer, path: &Path) -> (u32, u32, Vec<u8>, [f64; 3]) {
    let decoded = decode_image(path, &DecodeLimits::default()).unwrap();
    let rgb = colorizer.colorize(&decoded.image).unwrap();
    let out = DynamicImage::ImageRgb32F(rgb).into_rgb8();
    let (w, h) = out.dimensions();
    let mut grid = Vec::with_capacity((GRID * GRID * 3) as usize);
    for gy in 0..GRID {
        for gx in 0..GRID {
            let x = (2 * gx + 1) * w / (2 * GRID);
            let y = (2 * gy + 1) * h / (2 * GRID);
            grid.extend_from_slice(&out.get_pixel(x, y).0);
        }
    }
    let mut sum = [0f64; 3];
    for p in out.pixels() {
        for (s, v) in sum.iter_mut().zip(p.0) {
            *s += v as f64;
        }
    }
    let n = (w as f64) * (h as f64);
    (w, h, grid, sum.map(|s| s / n))
}

fn bundled() -> Colorizer {
    let dir = repo().join("models/stable");
    Colorizer::load(&dir, &burn::prelude::Device::flex()).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn all_photos() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for (set, dir) in [
        ("examples", repo().join("examples")),
        ("historical", shared_data().join("historical")),
    ] {
        for p in photos(&dir) {
            let name = format!("{set}/{}", p.file_name().unwrap().to_string_lossy());
            out.push((name, p));
        }
    }
    out
}

#[test]
fn bundled_model_outputs_match_the_stored_fixture() {
    let colorizer = bundled();
    let photos = all_photos();
    if std::env::var_os("COLORIZE_WRITE_FIXTURE").is_some() {
        let entries: Vec<Value> = photos
            .iter()
            .map(|(name, p)| {
                let (w, h, grid, mean) = output_of(&colorizer, p);
                json!({"photo": name, "width": w, "height": h, "mean": mean, "grid": hex(&grid)})
            })
            .collect();
        let doc = json!({
            "grid": GRID,
            "render_size": colorizer.render_size(),
            "saturation": colorizer.saturation(),
            "photos": entries,
        });
        let path = fixture_path();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        return;
    }
    let doc: Value =
        serde_json::from_slice(&std::fs::read(fixture_path()).expect("fixture")).unwrap();
    assert_eq!(doc["grid"], GRID);
    let stored = doc["photos"].as_array().unwrap();
    assert_eq!(
        stored.len(),
        photos.len(),
        "the fixture and the photo folders list different photos"
    );
    assert!(stored.len() >= 50, "only {} photos", stored.len());
    for ((name, path), want) in photos.iter().zip(stored) {
        assert_eq!(want["photo"].as_str().unwrap(), name);
        let (w, h, grid, mean) = output_of(&colorizer, path);
        assert_eq!(
            (w as u64, h as u64),
            (
                want["width"].as_u64().unwrap(),
                want["height"].as_u64().unwrap()
            )
        );
        let want_grid = unhex(want["grid"].as_str().unwrap());
        let worst = grid
            .iter()
            .zip(&want_grid)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(
            worst <= 1,
            "{name}: a sampled value moved by {worst} levels"
        );
        for c in 0..3 {
            let m = want["mean"][c].as_f64().unwrap();
            assert!(
                (mean[c] - m).abs() <= 0.5,
                "{name}: channel {c} mean {} against {m}",
                mean[c]
            );
        }
    }
}
