//! DDColor (scripts/reference/ddcolor.py): reduced-width copies of the ConvNeXt-T and ConvNeXt-L
//! models with random weights, saved in the published layouts (`{'params': ...}` and a raw state
//! dict, spectral norm as `weight_orig`/`weight_u`/`weight_v`), imported and run on the engine
//! against PyTorch's outputs; bad checkpoints refused before anything is written.

use std::path::Path;

use burn::prelude::Device;
use colorize_import::{ImportError, Kind, check_kind, import, import_tensors, read_checkpoint};
use colorize_models::{Colorizer, InputKind, ModelError, Weights};

use super::{
    assert_nothing_written, import_spectral_fixture, max_abs, max_diff, models_fixture, nhwc,
};

/// The reference input's batch, height and width (non-square on purpose).
const B: usize = 2;
const H: usize = 96;
const W: usize = 128;

/// Imports `folder`'s checkpoint and runs the engine graph on the reference's normalised input:
/// the output within 1e-4 of PyTorch's largest value, every intermediate stage agreeing too
/// (checked through the output only: a stage that differed would move it).
fn check(folder: &str, kind: Kind) {
    let (_, _tmp, c) = import_spectral_fixture(folder, kind);
    // DDColor's own size: a 512 square whatever the photo's shape.
    assert_eq!(c.network_size(1000, 300), (512, 512));
    let r = Weights::open(&models_fixture(folder, "reference.safetensors")).unwrap();
    // The checkpoint's mean/std buffers became the input normalisation: x_norm = (x − mean)/std.
    let InputKind::GrayRgb { mean, std } = c.config().io.input else {
        panic!("DDColor takes gray RGB");
    };
    let x = r.tensor("input", &[B, 3, H, W]).unwrap();
    let x_norm = r.tensor("x_norm", &[B, 3, H, W]).unwrap();
    for (i, (&v, &want)) in x.iter().zip(x_norm).enumerate() {
        let k = (i / (H * W)) % 3;
        assert!(((v - mean[k]) / std[k] - want).abs() < 1e-5);
    }
    let graph = c.graph().unwrap();
    let want = nhwc(r.tensor("output", &[B, 2, H, W]).unwrap(), B, 2, H, W);
    let got = graph.run(&nhwc(x_norm, B, 3, H, W), B, H, W).unwrap();
    let scale = max_abs(&want);
    let rel = max_diff(&got, &want) / scale;
    eprintln!("{folder}: relative error {rel:.2e} (output's largest |ab| {scale:.2})");
    assert!(scale > 5.0, "the fixture's ab is too flat to test anything");
    assert!(rel < 1e-4, "{folder}: relative error {rel}");
}

#[test]
fn ddcolor_tiny_imports_and_matches_pytorch() {
    check("ddcolor-tiny", Kind::DdcolorTiny);
}

#[test]
fn ddcolor_large_imports_and_matches_pytorch() {
    check("ddcolor-large", Kind::DdcolorLarge);
}

/// The error's text, after checking nothing was written.
fn refused(e: ImportError, dir: &Path) -> String {
    assert_nothing_written(dir);
    e.to_string()
}

#[test]
fn a_missing_or_mis_shaped_tensor_names_the_key_and_both_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let full = read_checkpoint(&models_fixture("ddcolor-tiny", "checkpoint.pth")).unwrap();
    let key = "decoder.color_decoder.transformer_ffn_layers.4.linear2.weight";
    let mut missing = full.clone();
    missing.tensors.remove(key).unwrap();
    let e = import_tensors(&missing, Kind::DdcolorTiny, &dir, false).unwrap_err();
    assert!(
        matches!(&e, ImportError::Model(ModelError::MissingWeight { key: k, .. }) if k == key),
        "{e}"
    );
    assert!(refused(e, &dir).contains(key));
    // A tensor of another width: the error gives the key, the file's shape and the expected one.
    let key = "encoder.arch.stages.1.2.pwconv1.weight";
    let mut wrong = full.clone();
    let t = wrong.tensors.get_mut(key).unwrap();
    let (rows, cols) = (t.shape[0], t.shape[1]);
    t.shape = vec![rows, cols + 1];
    t.values.resize(rows * (cols + 1), 0.0);
    let e = import_tensors(&wrong, Kind::DdcolorTiny, &dir, false).unwrap_err();
    let text = refused(e, &dir);
    assert!(
        text.contains(key)
            && text.contains(&format!("[{rows}, {}]", cols + 1))
            && text.contains(&format!("[{rows}, {cols}]")),
        "{text}"
    );
    // The large kind on the tiny checkpoint: its 10th block of stage 3 is missing.
    let e = import_tensors(&full, Kind::DdcolorLarge, &dir, false).unwrap_err();
    let text = refused(e, &dir);
    assert!(text.contains("encoder.arch.stages.2.9."), "{text}");
}

#[test]
fn other_checkpoints_truncated_and_foreign_files_are_refused_as_ddcolor() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    // DeOldify's and Zhang's checkpoints, asked for as DDColor: refused by key, before any work.
    for (folder, looks_like) in [("deoldify-wide", "deoldify-stable"), ("eccv16", "eccv16")] {
        let path = models_fixture(folder, "checkpoint.pth");
        let e = import(&path, Some(Kind::DdcolorLarge), &dir, false).unwrap_err();
        assert!(matches!(e, ImportError::WrongKind { .. }), "{e}");
        let text = refused(e, &dir);
        assert!(
            text.contains("not a ddcolor-large checkpoint")
                && text.contains("encoder.arch.downsample_layers.0.0.weight")
                && text.contains(looks_like),
            "{text}"
        );
    }
    // And a DDColor checkpoint asked for as DeOldify.
    let tiny = read_checkpoint(&models_fixture("ddcolor-tiny", "checkpoint.pth")).unwrap();
    let e = check_kind(&tiny, Kind::DeoldifyStable).unwrap_err();
    assert!(e.to_string().contains("ddcolor-tiny"), "{e}");
    // A truncated checkpoint and a file that is not one.
    let bytes = std::fs::read(models_fixture("ddcolor-tiny", "checkpoint.pth")).unwrap();
    let cut = tmp.path().join("cut.pth");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = import(&cut, Some(Kind::DdcolorTiny), &dir, false).unwrap_err();
    assert!(matches!(e, ImportError::NotACheckpoint { .. }), "{e}");
    assert!(refused(e, &dir).contains("cut.pth"));
    let text = tmp.path().join("notes.pth");
    std::fs::write(&text, "DDColor weights, coming soon\n").unwrap();
    let e = import(&text, Some(Kind::DdcolorTiny), &dir, false).unwrap_err();
    assert!(matches!(e, ImportError::NotACheckpoint { .. }), "{e}");
    refused(e, &dir);
}

/// DDColor's photo pipeline (`ColorizationPipeline.process`) against the authors' arithmetic run
/// with the real OpenCV and PyTorch (scripts/reference/ddcolor.py --pipeline) on the tiny
/// fixture network at 64x64: a gray historical photo and a colour one, not square. The
/// network's ab agrees within 1e-4 of its scale; the photo within 1 level per channel, as an
/// f32 result 1e-5 from PyTorch's can round to the other side of a level.
#[test]
fn ddcolor_pipeline_gives_the_reference_photo() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny");
    import(
        &models_fixture("ddcolor-tiny", "checkpoint.pth"),
        None,
        &dir,
        false,
    )
    .unwrap();
    let c = Colorizer::load(&dir, &Device::flex())
        .unwrap()
        .with_render_size(64);
    let r = Weights::open(&models_fixture("ddcolor-pipeline", "pipeline.safetensors")).unwrap();
    for name in ["photo", "colour"] {
        let open = |file: &str| image::open(models_fixture("ddcolor-pipeline", file)).unwrap();
        let photo = open(&format!("{name}.png"));
        let want = open(&format!("{name}.out.png")).into_rgb8();
        let (w, h) = (photo.width() as usize, photo.height() as usize);
        let got = colorize_models::pipelines::ddcolor(&c, &photo.to_rgb8()).unwrap();
        // The full-size L the photo keeps.
        let rgb: Vec<f32> = photo
            .to_rgb8()
            .as_raw()
            .iter()
            .map(|&v| v as f32 / 255.0)
            .collect();
        let l = colorize_core::opencv::rgb_to_lab_l(&rgb);
        let want_l = r.tensor(&format!("{name}.orig_l"), &[h, w]).unwrap();
        assert!(max_diff(&l, want_l) < 1e-4, "{name}: L");
        // The whole photo through Colorizer::colorize, as `colorize image` runs it.
        let via_colorize =
            image::DynamicImage::ImageRgb32F(c.colorize(&photo).unwrap()).into_rgb8();
        assert_eq!(
            via_colorize, got,
            "{name}: colorize() runs the ddcolor pipeline"
        );
        let diffs: Vec<u8> = got
            .as_raw()
            .iter()
            .zip(want.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .collect();
        let worst = diffs.iter().copied().max().unwrap();
        let off = diffs.iter().filter(|&&d| d > 0).count();
        eprintln!(
            "{name}: worst {worst} levels, {off} of {} values differ",
            diffs.len()
        );
        assert!(worst <= 1, "{name}: a value differs by {worst} levels");
        assert!(off * 100 <= diffs.len(), "{name}: {off} values differ");
    }
}
