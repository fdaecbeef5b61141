//! colorize-import against checkpoints written by `torch.save` (scripts/reference/eccv16.py): the
//! zip and legacy formats, a raw and a wrapped state dict, the imported folder's outputs against
//! PyTorch's, kind detection, and bad files that must fail without writing anything.

mod ddcolor;

use std::path::{Path, PathBuf};

use burn::prelude::Device;
use colorize_import::{ImportError, Kind, detect, import, import_tensors, read_checkpoint};
use colorize_models::{Colorizer, ModelError, Weights, pipelines};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models/tests/fixtures/eccv16")
        .join(name)
}

/// The reference run's `[2, 1, 32, 40]` L and `[2, 2, 32, 40]` ab.
fn reference() -> (Vec<f32>, Vec<f32>) {
    let r = Weights::open(&fixture("reference.safetensors")).unwrap();
    (
        r.tensor("input_l", &[2, 1, 32, 40]).unwrap().to_vec(),
        r.tensor("output_ab", &[2, 2, 32, 40]).unwrap().to_vec(),
    )
}

/// The largest absolute value.
fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

/// The largest absolute difference between two equally long slices.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

/// Predicted ab planes against the reference's `[batch, 2, h, w]` values, within 1e-4 of the
/// reference's largest value.
fn assert_ab_close(got: &[colorize_models::AbPlanes], want: &[f32], what: &str) {
    let scale = max_abs(want);
    let planes = got.iter().flat_map(|ab| [&ab.a, &ab.b]);
    let mut start = 0;
    for plane in planes {
        let rel = max_diff(plane, &want[start..start + plane.len()]) / scale;
        assert!(rel < 1e-4, "{what}: relative error {rel}");
        start += plane.len();
    }
    assert_eq!(start, want.len(), "{what}: fewer planes than the reference");
}

/// Imports `checkpoint` into a fresh folder and checks the folder reproduces PyTorch's output.
fn check_import(checkpoint: &str, sha256: &str) {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("eccv16");
    let report = import(&fixture(checkpoint), None, &dir, false).unwrap();
    assert_eq!(report.kind, Kind::Eccv16);
    assert_eq!(report.sha256, sha256);
    // 7 blocks of convs (2+2+3·5 = 19 weights and biases) and their batch norms (4 tensors
    // each), model8's 4 convolutions, model_out: 38 + 28 + 8 + 1.
    assert_eq!(report.tensors, 75);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["imported_from"]["sha256"], sha256);
    assert_eq!(config["imported_from"]["kind"], "eccv16");
    assert_eq!(config["network"]["arch"], "eccv16");
    let c = Colorizer::load(&dir, &Device::flex()).unwrap();
    let (l, want) = reference();
    let (h, w) = (32, 40);
    let inputs: Vec<_> = l
        .chunks_exact(h * w)
        .map(|p| c.prepare_resized(w, h, p))
        .collect();
    assert_ab_close(&c.predict(&inputs).unwrap(), &want, checkpoint);
}

#[test]
fn zip_checkpoint_with_a_raw_state_dict_imports_and_matches_pytorch() {
    // `sha256sum` of the fixture.
    check_import(
        "checkpoint.pth",
        "5de1a906d45b92597954f4fb291bd9d89adcec13faccdc105477979e9a0169b6",
    );
}

#[test]
fn legacy_checkpoint_wrapped_in_model_imports_and_matches_pytorch() {
    check_import(
        "checkpoint-legacy.pth",
        "d2f696e3c2400334590e2f93d85e77fcfb4dfa2d92244db9bcd09359f66d01a2",
    );
}

fn assert_nothing_written(dir: &Path) {
    assert!(
        !dir.exists() || std::fs::read_dir(dir).unwrap().next().is_none(),
        "{} was written to",
        dir.display()
    );
}

#[test]
fn missing_and_mis_shaped_tensors_name_the_key_and_write_nothing() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("m");
    let full = read_checkpoint(&fixture("checkpoint.pth")).unwrap();
    assert_eq!(detect(&full).unwrap(), Kind::Eccv16);

    let mut missing = full.clone();
    missing.tensors.remove("model5.2.bias");
    let e = import_tensors(&missing, Kind::Eccv16, &dir, false).unwrap_err();
    assert!(
        matches!(&e, ImportError::Model(ModelError::MissingWeight { key, .. }) if key == "model5.2.bias"),
        "{e}"
    );
    assert_nothing_written(&dir);

    let mut wrong = full.clone();
    let t = wrong.tensors.get_mut("model3.4.weight").unwrap();
    t.shape = vec![t.shape[0], t.shape[1], 1, 9];
    let e = import_tensors(&wrong, Kind::Eccv16, &dir, false).unwrap_err();
    assert!(e.to_string().contains("model3.4.weight"), "{e}");
    assert_nothing_written(&dir);

    let mut extra = full.clone();
    extra.tensors.insert(
        "model9.0.weight".into(),
        full.tensors["model1.0.bias"].clone(),
    );
    let e = import_tensors(&extra, Kind::Eccv16, &dir, false).unwrap_err();
    assert!(e.to_string().contains("model9.0.weight"), "{e}");
    assert_nothing_written(&dir);

    // An existing model is not replaced without `overwrite`.
    import_tensors(&full, Kind::Eccv16, &dir, false).unwrap();
    let e = import_tensors(&full, Kind::Eccv16, &dir, false).unwrap_err();
    assert!(matches!(e, ImportError::OutputExists { .. }), "{e}");
    import_tensors(&full, Kind::Eccv16, &dir, true).unwrap();
}

#[test]
fn truncated_and_foreign_files_are_refused_without_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let bytes = std::fs::read(fixture("checkpoint.pth")).unwrap();
    let truncated = tmp.path().join("truncated.pth");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let e = import(&truncated, None, &dir, false).unwrap_err();
    assert!(
        matches!(
            e,
            ImportError::NotACheckpoint { .. } | ImportError::Tensor { .. }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("truncated.pth"), "{e}");
    assert_nothing_written(&dir);

    let jpeg = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/migrant_mother.jpg");
    let e = import(&jpeg, None, &dir, false).unwrap_err();
    assert!(matches!(e, ImportError::NotACheckpoint { .. }), "{e}");
    assert_nothing_written(&dir);

    let e = import(&tmp.path().join("absent.pth"), None, &dir, false).unwrap_err();
    assert!(matches!(e, ImportError::Read { .. }), "{e}");

    // A safetensors file is not a PyTorch checkpoint either.
    let e = import(&fixture("model.safetensors"), None, &dir, false).unwrap_err();
    assert!(matches!(e, ImportError::NotACheckpoint { .. }), "{e}");
    assert_nothing_written(&dir);
}

#[test]
fn other_networks_are_recognised_and_refused_by_key() {
    let full = read_checkpoint(&fixture("checkpoint.pth")).unwrap();
    // A DeOldify file whose decoder keys are neither Deep nor Wide.
    let deo = read_checkpoint(&models_fixture("deoldify", "checkpoint.pth")).unwrap();
    let mut odd = deo.clone();
    odd.tensors.retain(|k, _| !k.starts_with("layers.4."));
    let e = detect(&odd).unwrap_err().to_string();
    assert!(e.contains("DeOldify") && e.contains("layers.4.conv"), "{e}");
    // An eccv16 file whose first convolution takes siggraph17's 4 channels but has no
    // siggraph17 decoder: the shape decides, and the error says so.
    let mut half = full.clone();
    let t = half.tensors.get_mut("model1.0.weight").unwrap();
    t.shape[1] = 4;
    t.values = t.values.repeat(4);
    let e = detect(&half).unwrap_err().to_string();
    assert!(e.contains("model1.0.weight"), "{e}");
    // Keys of no known network: the error says which kind came closest and which key decided.
    let mut other = full.clone();
    other.tensors.retain(|k, _| !k.starts_with("model_out"));
    let e = detect(&other).unwrap_err().to_string();
    assert!(
        e.contains("eccv16") && e.contains("model_out.weight"),
        "{e}"
    );
}

/// Checks `folder`'s checkpoint (under the models crate's fixtures) is detected as `kind` and
/// keeps spectral norm's published layout, imports it into a temporary folder and loads it.
fn import_spectral_fixture(
    folder: &str,
    kind: Kind,
) -> (colorize_import::Checkpoint, tempfile::TempDir, Colorizer) {
    let file = models_fixture(folder, "checkpoint.pth");
    let checkpoint = read_checkpoint(&file).unwrap();
    assert_eq!(detect(&checkpoint).unwrap(), kind);
    assert!(
        checkpoint
            .tensors
            .keys()
            .any(|k| k.ends_with("weight_orig")),
        "the fixture keeps spectral norm's published layout"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(folder);
    let report = import(&file, None, &dir, false).unwrap();
    assert_eq!(report.kind, kind);
    let c = Colorizer::load(&dir, &Device::flex()).unwrap();
    (checkpoint, tmp, c)
}

/// A file of `folder` among the models crate's test fixtures.
fn models_fixture(folder: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models/tests/fixtures")
        .join(folder)
        .join(name)
}

/// NCHW → NHWC.
fn nhwc(x: &[f32], b: usize, c: usize, h: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for n in 0..b {
        for k in 0..c {
            for p in 0..h * w {
                out[(n * h * w + p) * c + k] = x[(n * c + k) * h * w + p];
            }
        }
    }
    out
}

/// DeOldify's Artistic generator (reduced widths, random weights, spectral and weight norm as
/// the published file stores them) imported from `torch.save`'s file and run on the engine,
/// against the PyTorch reference (scripts/reference/deoldify.py) at 64x64 (batch 2) and 80x80
/// (80/16 is odd: the decoder's nearest resize to the skip's size).
#[test]
fn deoldify_artistic_imports_folds_and_matches_pytorch() {
    check_deoldify("deoldify", Kind::DeoldifyArtistic);
}

/// The Wide decoder over ResNet-101 bottleneck blocks (DeOldify Stable and Video), reduced.
#[test]
fn deoldify_stable_imports_folds_and_matches_pytorch() {
    check_deoldify("deoldify-wide", Kind::DeoldifyStable);
}

fn check_deoldify(folder: &str, kind: Kind) {
    let deoldify = |name: &str| models_fixture(folder, name);
    let (checkpoint, _tmp, c) = import_spectral_fixture(folder, kind);
    // Folding against the reference script's own folding.
    let folded =
        colorize_import::fold_reparameterisations(&checkpoint.path, &checkpoint.tensors).unwrap();
    let want = Weights::open(&deoldify("folded.safetensors")).unwrap();
    let want = want.tensors();
    assert_eq!(folded.len(), want.len());
    for (key, t) in &folded {
        let w = want
            .get(key.as_str())
            .unwrap_or_else(|| panic!("{key} not in the reference"));
        let rel = max_diff(&t.values, &w.values) / max_abs(&w.values).max(1e-6);
        assert!(rel < 1e-5, "{key}: relative error {rel}");
    }
    assert_eq!(c.network_size(1000, 300), (560, 560));
    let graph = c.graph().unwrap();
    let r = Weights::open(&deoldify("reference.safetensors")).unwrap();
    for (input, output, b, s) in [
        ("input", "output", 2, 64),
        ("input_odd", "output_odd", 1, 80),
    ] {
        let x = r.tensor(input, &[b, 3, s, s]).unwrap();
        let want = nhwc(r.tensor(output, &[b, 3, s, s]).unwrap(), b, 3, s, s);
        let got = graph.run(&nhwc(x, b, 3, s, s), b, s, s).unwrap();
        let rel = max_diff(&got, &want) / max_abs(&want);
        assert!(rel < 1e-4, "{input}: relative error {rel}");
    }
}

/// A checkpoint is data, not code: a pickle that asks for `os.system` (as a malicious model file
/// would) is refused with a clear error, and the command it carries never runs.
#[test]
fn a_pickle_that_asks_for_code_is_refused() {
    let marker = Path::new("/tmp/colorize-pickle-ran");
    let _ = std::fs::remove_file(marker);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/malicious.pth");
    let e = import(&file, None, &dir, false).unwrap_err();
    assert!(matches!(e, ImportError::NotACheckpoint { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("malicious.pth") && text.contains("system"),
        "{text}"
    );
    assert!(!marker.exists(), "the pickle's command ran");
    assert_nothing_written(&dir);
}

/// Zhang et al. 2017's siggraph17 (reduced widths, random weights) in automatic mode: imported and
/// run on the engine against the PyTorch reference (scripts/reference/siggraph17.py).
#[test]
fn siggraph17_imports_and_matches_pytorch() {
    let file = models_fixture("siggraph17", "checkpoint.pth");
    let checkpoint = read_checkpoint(&file).unwrap();
    assert_eq!(detect(&checkpoint).unwrap(), Kind::Siggraph17);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sig");
    import(&file, None, &dir, false).unwrap();
    let c = Colorizer::load(&dir, &Device::flex()).unwrap();
    let r = Weights::open(&models_fixture("siggraph17", "reference.safetensors")).unwrap();
    let (h, w) = (32, 40);
    let l = r.tensor("input_l", &[2, 1, h, w]).unwrap();
    let want = r.tensor("output_ab", &[2, 2, h, w]).unwrap();
    let inputs: Vec<_> = l
        .chunks_exact(h * w)
        .map(|p| c.prepare_resized(w, h, p))
        .collect();
    assert_eq!(inputs[0].values.len(), 4 * h * w);
    assert_ab_close(&c.predict(&inputs).unwrap(), want, "siggraph17");
}

/// A user hint through the public API (`Colorizer::add_hints`) gives PyTorch's output for the
/// same hint: ab (40, -30) on the 3x3 pixels around (21, 11), painted by the reference script as
/// `hint_ab` and `hint_mask`.
#[test]
fn siggraph17_user_hint_matches_pytorch() {
    let file = models_fixture("siggraph17", "checkpoint.pth");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sig");
    import(&file, None, &dir, false).unwrap();
    let c = Colorizer::load(&dir, &Device::flex()).unwrap();
    assert!(c.takes_hints());
    let r = Weights::open(&models_fixture("siggraph17", "reference.safetensors")).unwrap();
    let (h, w) = (32, 40);
    let l = &r.tensor("input_l", &[2, 1, h, w]).unwrap()[..h * w];
    let want = r.tensor("output_hinted", &[1, 2, h, w]).unwrap();
    let mask = r.tensor("hint_mask", &[1, 1, h, w]).unwrap();
    // The hint colour whose CIELAB ab is (40, -30): a violet, given here as its ab directly.
    let hint = colorize_models::Hint {
        x: 21.0,
        y: 11.0,
        ab: [40.0, -30.0],
        radius: 1.0,
    };
    let mut input = c.prepare_resized(w, h, l);
    c.add_hints(&mut input, w, h, std::slice::from_ref(&hint))
        .unwrap();
    assert_eq!(
        &input.values[3 * h * w..],
        mask,
        "the painted mask is the reference's"
    );
    let got = c.predict(std::slice::from_ref(&input)).unwrap().remove(0);
    let without = c.predict_ab(l, w, h).unwrap();
    assert_ab_close(std::slice::from_ref(&got), want, "siggraph17 with a hint");
    // The hint reaches the output (how far it pulls the colour is the trained weights' business;
    // these are random, and the values are PyTorch's, checked above).
    let moved = max_diff(&got.a, &without.0).max(max_diff(&got.b, &without.1));
    assert!(moved > 0.1, "the hint changed ab by at most {moved}");
    // A model without hint input refuses hints.
    let eccv = tmp.path().join("eccv16");
    import(&fixture("checkpoint.pth"), None, &eccv, false).unwrap();
    let e = Colorizer::load(&eccv, &Device::flex()).unwrap();
    let mut x = e.prepare_resized(w, h, l);
    assert!(matches!(
        e.add_hints(&mut x, w, h, &[hint]),
        Err(ModelError::HintsUnsupported)
    ));
}

/// Per-channel differences between two 8-bit RGB images of one size: (worst, how many differ,
/// how many values).
fn level_diffs(got: &image::RgbImage, want: &image::RgbImage) -> (u8, usize, usize) {
    assert_eq!(got.dimensions(), want.dimensions());
    let diffs: Vec<u8> = got
        .as_raw()
        .iter()
        .zip(want.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .collect();
    let worst = diffs.iter().max().copied().unwrap_or(0);
    (worst, diffs.iter().filter(|&&d| d > 0).count(), diffs.len())
}

/// The published pipelines at the photo level: colorize's `zhang` and `deoldify` pipelines
/// against the authors' code run with Pillow, scikit-image, PyTorch and OpenCV
/// (scripts/reference/pipelines.py) on the fixture networks.
///
/// Zhang's pipeline ends in floats, so the photos agree within 1 level per channel. DeOldify's
/// truncates the network's colour to 8 bits half-way, so it is checked stage by stage: the 8-bit
/// network colour within 1 level (an f32 result 1e-5 from PyTorch's can fall on the other side
/// of an integer), the post-processing from the reference's own network colour exactly (it is
/// integer arithmetic), and the whole photo within 1 level wherever the network colours agree.
#[test]
fn published_pipelines_give_the_reference_photo() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures");
    let folder = fixtures.join("pipelines");
    let open = |name: &str| image::open(folder.join(name)).unwrap().into_rgb8();
    let photo = open("photo.png");
    let tmp = tempfile::tempdir().unwrap();
    for (checkpoint, reference, render_size) in [
        ("eccv16/checkpoint.pth", "zhang-eccv16", 256),
        ("siggraph17/checkpoint.pth", "zhang-siggraph17", 256),
        ("deoldify/checkpoint.pth", "deoldify-artistic", 64),
        ("deoldify-wide/checkpoint.pth", "deoldify-stable", 64),
    ] {
        let dir = tmp.path().join(reference);
        import(&fixtures.join(checkpoint), None, &dir, false).unwrap();
        let c = Colorizer::load(&dir, &Device::flex())
            .unwrap()
            .with_render_size(render_size);
        let got = image::DynamicImage::ImageRgb32F(
            c.colorize(&image::DynamicImage::ImageRgb8(photo.clone()))
                .unwrap(),
        )
        .into_rgb8();
        let want = open(&format!("{reference}.png"));
        let (worst, off, n) = level_diffs(&got, &want);
        eprintln!("{reference}: worst {worst} levels, {off} of {n} values differ");
        if !reference.starts_with("deoldify") {
            assert!(worst <= 1, "{reference}: a value differs by {worst} levels");
            continue;
        }
        let want_colour = open(&format!("{reference}-colour.png"));
        let colour = pipelines::deoldify_colour(&c, &photo).unwrap();
        let (worst, off, n) = level_diffs(&colour, &want_colour);
        eprintln!("{reference} network colour: worst {worst} levels, {off} of {n} differ");
        assert!(worst <= 1, "{reference}: network colour differs by {worst}");
        let post = pipelines::deoldify_post_process(&photo, &want_colour);
        let (worst, off, _) = level_diffs(&post, &want);
        assert_eq!(
            (worst, off),
            (0, 0),
            "{reference}: post-processing from the reference's colour"
        );
        // colorize() is exactly these two stages, so the whole photo differs from the
        // reference only where the 8-bit network colours do (OpenCV's YUV → RGB multiplies a
        // chroma level by up to 2.03, so such a value can move 2 levels).
        let post_own = pipelines::deoldify_post_process(&photo, &colour);
        assert_eq!(post_own, got, "{reference}: colorize() is the two stages");
    }
}
