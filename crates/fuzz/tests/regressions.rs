//! Every input under `regressions/<target>/` replays without a crash: the crashes fuzzing found,
//! kept so they stay fixed.

use crate::{regressions_dir, run};

/// Regression inputs replayed by their own named tests below (and so skipped by the sweep).
const PENDING: &[&str] = &[
    "model-dir/safetensors-header-length-wraps",
    "model-dir/zero-decoder-width",
    "model-dir/bottleneck-depth-2e20",
    "model-dir/huge-encoder-width",
    "model-dir/unet-decoder-width-u64max",
    "model-dir/huge-bottleneck-depth",
    "model-dir/bottleneck-depth-u64max",
    "model-dir/unet-huge-depth",
    "model-dir/unet-depth-u64max",
    "model-dir/io-size-multiple-huge",
    "model-dir/io-size-multiple-huge-zhang",
    "model-dir/io-size-multiple-overflow",
];

fn replay(target: &str, path: &std::path::Path) {
    let p = path.display().to_string();
    let r = run(&[target, "--replay", &p]);
    assert_eq!(r.summary["distinct_crashes"], 0, "{p}:\n{}", r.output);
    assert_eq!(r.code, Some(0), "{p}:\n{}", r.output);
}

fn entries(target: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(regressions_dir(target))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        !name.starts_with('.') && !name.ends_with(".txt") && !name.ends_with(".md")
    });
    v.sort();
    v
}

#[test]
fn every_regression_input_replays_clean() {
    for target in colorize_fuzz_targets() {
        for p in entries(target) {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if PENDING.contains(&format!("{target}/{name}").as_str()) {
                continue;
            }
            replay(target, &p);
        }
    }
}

fn colorize_fuzz_targets() -> [&'static str; 3] {
    ["decode", "model-dir", "multipart"]
}

/// One named regression input of `target`, replayed on its own.
fn replay_pending(target: &str, name: &str) {
    replay(target, &regressions_dir(target).join(name));
}

macro_rules! pending {
    ($($test:ident => $name:literal: $what:literal;)*) => {$(
        #[doc = $what]
        #[test]
        fn $test() {
            replay_pending("model-dir", $name);
        }
    )*};
}

pending! {
    model_dir_safetensors_header_length_wraps => "safetensors-header-length-wraps":
        "A safetensors header length near 2^64: `8 + n` wraps in `load_weights` (burn's loader), slice panic.";
    model_dir_zero_decoder_width => "zero-decoder-width":
        "A width of 0 in config.json reaches burn's BatchNorm, which panics (num_features > 0).";
    model_dir_huge_encoder_width => "huge-encoder-width":
        "An encoder width of 2^31: burn's network allocates its weights before any check (abort).";
    model_dir_unet_decoder_width_u64max => "unet-decoder-width-u64max":
        "A U-Net decoder width of 2^64 - 1: capacity overflow while burn allocates the tensor.";
    model_dir_huge_bottleneck_depth => "huge-bottleneck-depth":
        "A plain CNN bottleneck depth of 2^31: layers allocated before any check (abort).";
    model_dir_bottleneck_depth_2e20 => "bottleneck-depth-2e20":
        "A bottleneck depth of 2^20: a million small layers exhaust memory in burn's init (abort).";
    model_dir_bottleneck_depth_u64max => "bottleneck-depth-u64max":
        "A bottleneck depth of 2^64 - 1: capacity overflow in PlainCnnConfig::init.";
    model_dir_unet_huge_depth => "unet-huge-depth":
        "A U-Net stage depth of 2^32: blocks allocated before any check (abort).";
    model_dir_unet_depth_u64max => "unet-depth-u64max":
        "A U-Net stage depth of 2^64 - 1: capacity overflow in UnetResnetConfig::init.";
    model_dir_io_size_multiple_huge => "io-size-multiple-huge":
        "io.size.multiple = 2^31 passes validation; colourising a photo then resizes to a multiple of it (abort).";
    model_dir_io_size_multiple_huge_zhang => "io-size-multiple-huge-zhang":
        "io.size.multiple = 2^20 with the zhang pipeline: pillow_resize to a huge size (abort).";
    model_dir_io_size_multiple_overflow => "io-size-multiple-overflow":
        "io.size.multiple = 2^64 - 1: the network size overflows, capacity overflow in resize_plane.";
}
