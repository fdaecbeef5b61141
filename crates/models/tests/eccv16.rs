//! Zhang et al.'s eccv16 on the engine against the PyTorch reference
//! (`scripts/reference/eccv16.py`, written from `../shared/reference/zhang.md`): the official
//! layout with reduced widths and random weights, its outputs for two fixed L planes.

use std::path::PathBuf;

use burn::prelude::Device;
use colorize_models::{Colorizer, EngineKind, Isa, ModelConfig, Weights};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eccv16")
}

/// `[2, 1, 32, 40]` L and `[2, 2, 32, 40]` ab (NCHW) from the reference run.
fn reference() -> (Vec<f32>, Vec<f32>) {
    let r = Weights::open(&fixture().join("reference.safetensors")).unwrap();
    (
        r.tensor("input_l", &[2, 1, 32, 40]).unwrap().to_vec(),
        r.tensor("output_ab", &[2, 2, 32, 40]).unwrap().to_vec(),
    )
}

fn max_rel(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let diff = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    diff / want.iter().fold(1e-6f32, |m, v| m.max(v.abs()))
}

#[test]
fn eccv16_graph_matches_the_pytorch_reference_on_every_kernel_family() {
    let dir = fixture();
    let config =
        ModelConfig::from_json(&std::fs::read(dir.join("config.json")).unwrap(), &dir).unwrap();
    let (l, want) = reference();
    let (h, w) = (32, 40);
    let x = config.io.encode_input(&l); // (L − 50)/100; one channel, so NCHW is NHWC
    for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
        let weights = Weights::open(&dir.join("model.safetensors")).unwrap();
        let graph = config.network.graph(&weights, isa).unwrap();
        let y = graph.run(&x, 2, h, w).unwrap(); // [2, h, w, 2], ab/110
        // NHWC ab/110 → NCHW ab.
        let mut got = vec![0f32; want.len()];
        for b in 0..2 {
            for p in 0..h * w {
                for c in 0..2 {
                    got[(b * 2 + c) * h * w + p] = y[(b * h * w + p) * 2 + c] * 110.0;
                }
            }
        }
        let rel = max_rel(&got, &want);
        assert!(rel < 1e-4, "{isa}: relative error {rel}");
    }
}

#[test]
fn eccv16_model_folder_runs_through_the_staged_pipeline() {
    let c = Colorizer::load(&fixture(), &Device::flex()).unwrap();
    let (l, want) = reference();
    let (h, w) = (32, 40);
    let inputs: Vec<_> = l
        .chunks_exact(h * w)
        .map(|plane| c.prepare_resized(w, h, plane))
        .collect();
    let out = c.predict(&inputs).unwrap();
    for (b, ab) in out.iter().enumerate() {
        assert_eq!((ab.width, ab.height), (w, h));
        let a_want = &want[(b * 2) * h * w..(b * 2 + 1) * h * w];
        let b_want = &want[(b * 2 + 1) * h * w..(b * 2 + 2) * h * w];
        assert!(max_rel(&ab.a, a_want) < 1e-4 && max_rel(&ab.b, b_want) < 1e-4);
    }
    // There is no burn module for eccv16: asking for burn's forward is a clear error.
    let burn = c.clone().with_engine(EngineKind::Burn);
    let e = burn.predict(&inputs[..1]).unwrap_err().to_string();
    assert!(e.contains("eccv16") && e.contains("native"), "{e}");
    // The default render size is a 256 square, as the reference demo's.
    assert_eq!(c.network_size(1024, 300), (256, 256));
}
