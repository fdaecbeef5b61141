//! `colorize import` from the command line: a PyTorch checkpoint becomes a model folder that
//! `colorize image --model` runs; a bad file is one line on stderr and exit code 3.

use std::path::PathBuf;

use predicates::prelude::*;

use crate::{colorize, shared_data};

fn checkpoint() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/eccv16/checkpoint.pth")
}

#[test]
fn imported_eccv16_folder_colourises_a_photo() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("eccv16");
    colorize()
        .args(["import", "--out"])
        .arg(&model)
        .arg(checkpoint())
        .assert()
        .success()
        .stderr(predicate::str::contains("imported eccv16 (75 tensors"));
    let input = shared_data().join("historical/1864UnionSoldier.jpg");
    let out = dir.path().join("out");
    colorize()
        .args(["image", "--format", "png", "--model"])
        .arg(&model)
        .arg("--out")
        .arg(&out)
        .arg(&input)
        .assert()
        .success();
    let photo = image::open(out.join("1864UnionSoldier.png")).unwrap();
    let original = image::open(&input).unwrap();
    assert_eq!(
        (photo.width(), photo.height()),
        (original.width(), original.height())
    );
    // A second import into the same folder is refused without --overwrite.
    colorize()
        .args(["import", "--out"])
        .arg(&model)
        .arg(checkpoint())
        .assert()
        .code(3)
        .stderr(predicate::str::contains("--overwrite"));
    // burn cannot run eccv16: a clear error, not a panic.
    colorize()
        .args(["image", "--engine", "burn", "--model"])
        .arg(&model)
        .arg("--out")
        .arg(dir.path().join("burn"))
        .arg(&input)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("native engine only"));
}

#[test]
fn a_photo_is_not_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    let assert = colorize()
        .args(["import", "--out"])
        .arg(&model)
        .arg(shared_data().join("historical/1864UnionSoldier.jpg"))
        .assert()
        .code(3);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("not a readable PyTorch checkpoint"),
        "{stderr}"
    );
    assert!(!model.exists());
}

#[test]
fn imported_deoldify_folder_colourises_a_photo_at_a_render_size() {
    let dir = tempfile::tempdir().unwrap();
    let (_, photo) = import_and_colourise(dir.path(), "deoldify-artistic", "deoldify", "96");
    let original = image::open(shared_data().join("historical/1916Sweeden.jpg")).unwrap();
    assert_eq!(photo.width(), original.width());
    assert_eq!(photo.height(), original.height());
}

/// Imports the fixture checkpoint `models/tests/fixtures/{folder}/checkpoint.pth` as `kind` into
/// `dir/model` and colourises `historical/1916Sweeden.jpg` with it at `render_size` into
/// `dir/out`: the model folder and the photo.
fn import_and_colourise(
    dir: &std::path::Path,
    kind: &str,
    folder: &str,
    render_size: &str,
) -> (PathBuf, image::RgbImage) {
    let model = dir.join("model");
    colorize()
        .args(["import", "--kind", kind, "--out"])
        .arg(&model)
        .arg(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../models/tests/fixtures")
                .join(folder)
                .join("checkpoint.pth"),
        )
        .assert()
        .success()
        .stderr(predicate::str::contains(format!("imported {kind}")));
    let out = dir.join("out");
    colorize()
        .args([
            "image",
            "--render-size",
            render_size,
            "--format",
            "png",
            "--model",
        ])
        .arg(&model)
        .arg("--out")
        .arg(&out)
        .arg(shared_data().join("historical/1916Sweeden.jpg"))
        .assert()
        .success();
    let photo = image::open(out.join("1916Sweeden.png"))
        .unwrap()
        .into_rgb8();
    (model, photo)
}

#[test]
fn hints_file_colours_a_siggraph17_photo_and_is_refused_by_other_models() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("sig");
    colorize()
        .args(["import", "--out"])
        .arg(&model)
        .arg(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../models/tests/fixtures/siggraph17/checkpoint.pth"),
        )
        .assert()
        .success();
    let hints = dir.path().join("hints.json");
    std::fs::write(
        &hints,
        r##"[{"x": 320, "y": 200, "color": "#2060e0", "radius": 40}]"##,
    )
    .unwrap();
    let input = shared_data().join("historical/1864UnionSoldier.jpg");
    let run = |name: &str, with_hints: bool| {
        let mut cmd = colorize();
        cmd.args(["image", "--format", "png", "--model"])
            .arg(&model)
            .arg("--out")
            .arg(dir.path().join(name))
            .arg(&input);
        if with_hints {
            cmd.arg("--hints").arg(&hints);
        }
        cmd.assert().success();
        image::open(dir.path().join(name).join("1864UnionSoldier.png"))
            .unwrap()
            .into_rgb8()
    };
    let (plain, hinted) = (run("plain", false), run("hinted", true));
    // The hint reached the network: the photo changed around it. (Which way the colour moves
    // is up to trained weights; these are random. The hinted values are checked against PyTorch
    // in colorize-import's tests.)
    let changed = (160..240)
        .flat_map(|y| (280..360).map(move |x| (x, y)))
        .filter(|&(x, y)| plain.get_pixel(x, y) != hinted.get_pixel(x, y))
        .count();
    assert!(
        changed > 100,
        "only {changed} pixels changed around the hint"
    );
    // The bundled model takes no hints: one line, exit 3, nothing written.
    let out = dir.path().join("bundled");
    let assert = colorize()
        .args(["image", "--hints"])
        .arg(&hints)
        .arg("--out")
        .arg(&out)
        .arg(&input)
        .assert()
        .code(3);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(stderr.contains("does not take colour hints"), "{stderr}");
    assert!(!out.join("1864UnionSoldier.jpg").exists());
    // A malformed hints file names the file and the problem.
    std::fs::write(&hints, r#"[{"x": 1, "y": 2, "color": "blue"}]"#).unwrap();
    colorize()
        .args(["image", "--model"])
        .arg(&model)
        .arg("--hints")
        .arg(&hints)
        .arg("--out")
        .arg(&out)
        .arg(&input)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("hints.json: hint 0: color"));
}

#[test]
fn render_factor_is_deoldify_s_render_size_in_units_of_16() {
    let dir = tempfile::tempdir().unwrap();
    let input = shared_data().join("historical/1864UnionSoldier.jpg");
    let run = |name: &str, flag: &str, value: &str| {
        colorize()
            .args(["image", "--format", "png", flag, value, "--out"])
            .arg(dir.path().join(name))
            .arg(&input)
            .assert()
            .success();
        std::fs::read(dir.path().join(name).join("1864UnionSoldier.png")).unwrap()
    };
    let factor = run("factor", "--render-factor", "4");
    assert_eq!(factor, run("size", "--render-size", "64"));
    assert_ne!(factor, run("default", "--render-size", "128"));
    colorize()
        .args([
            "image",
            "--render-factor",
            "4",
            "--render-size",
            "64",
            "--out",
            "x",
            "y.jpg",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be used with"));
}

/// DDColor (the reduced tiny fixture of scripts/reference/ddcolor.py): imported with `--kind`,
/// run by `colorize image --model` through DDColor's own pipeline at a render size, which keeps
/// the photo's size; a render size the network cannot take, and a `--kind` the checkpoint is
/// not, are one line on stderr before any work, with nothing written.
#[test]
fn imported_ddcolor_folder_colourises_a_photo_and_refuses_what_it_cannot_take() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    let (model, photo) = import_and_colourise(dir.path(), "ddcolor-tiny", "ddcolor-tiny", "64");
    let input = shared_data().join("historical/1916Sweeden.jpg");
    let original = image::open(&input).unwrap();
    assert_eq!(photo.dimensions(), (original.width(), original.height()));
    // Random weights, but colour all the same: the pipeline joined the network's ab.
    assert!(
        photo.pixels().any(|p| p.0[0].abs_diff(p.0[2]) > 8),
        "the photo stayed gray"
    );
    let refused = |args: &[&str], out: &std::path::Path, message: &str| {
        let assert = colorize().args(args).arg(out).arg(&input).assert().code(3);
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(message), "{stderr}");
        assert!(!out.exists(), "{} was written", out.display());
    };
    let model_arg = model.to_str().unwrap();
    refused(
        &[
            "image",
            "--render-size",
            "100",
            "--model",
            model_arg,
            "--out",
        ],
        &dir.path().join("odd"),
        "render size 100: this DDColor model takes a square whose side is a multiple of 32 (try 96 or 128",
    );
    let other = dir.path().join("other");
    let assert = colorize()
        .args(["import", "--kind", "ddcolor-large", "--out"])
        .arg(&other)
        .arg(fixtures.join("deoldify/checkpoint.pth"))
        .assert()
        .code(3);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("not a ddcolor-large checkpoint") && stderr.contains("deoldify-artistic"),
        "{stderr}"
    );
    assert!(!other.exists());
}
