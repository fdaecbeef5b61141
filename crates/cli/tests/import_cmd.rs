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
    let model = dir.path().join("artistic");
    colorize()
        .args(["import", "--kind", "deoldify-artistic", "--out"])
        .arg(&model)
        .arg(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../models/tests/fixtures/deoldify/checkpoint.pth"),
        )
        .assert()
        .success()
        .stderr(predicate::str::contains("imported deoldify-artistic"));
    let input = shared_data().join("historical/1916Sweeden.jpg");
    let out = dir.path().join("out");
    colorize()
        .args(["image", "--render-size", "96", "--format", "png", "--model"])
        .arg(&model)
        .arg("--out")
        .arg(&out)
        .arg(&input)
        .assert()
        .success();
    let original = image::open(&input).unwrap();
    let photo = image::open(out.join("1916Sweeden.png")).unwrap();
    assert_eq!(photo.width(), original.width());
    assert_eq!(photo.height(), original.height());
}
