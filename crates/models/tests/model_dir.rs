use burn::prelude::*;
use colorize_models::model_dir::{CONFIG_FILE, WEIGHTS_FILE};
use colorize_models::unet_resnet::UnetResnetConfig;
use colorize_models::{Colorizer, ModelError, save_model_dir};

use crate::{config, tiny_colorizer};

fn probe_l() -> Vec<f32> {
    (0..64 * 48).map(|i| ((i * 37) % 101) as f32).collect()
}

#[test]
fn safetensors_save_load_round_trip_gives_the_same_output() {
    let dir = tempfile::tempdir().unwrap();
    let original = tiny_colorizer(7);
    save_model_dir(dir.path(), original.config(), &original.network().unwrap()).unwrap();
    assert!(dir.path().join(CONFIG_FILE).is_file() && dir.path().join(WEIGHTS_FILE).is_file());
    let loaded = Colorizer::load(dir.path(), &Device::flex()).unwrap();
    assert_eq!(loaded.config(), original.config());
    let (a1, b1) = original.predict_ab(&probe_l(), 64, 48).unwrap();
    let (a2, b2) = loaded.predict_ab(&probe_l(), 64, 48).unwrap();
    assert_eq!(a1, a2);
    assert_eq!(b1, b2);
    // A differently seeded network really differs, so the equality above is meaningful.
    let (a3, _) = tiny_colorizer(8).predict_ab(&probe_l(), 64, 48).unwrap();
    assert_ne!(a1, a3);
    // The file carries torchvision's `state_dict` keys.
    let bytes = std::fs::read(dir.path().join(WEIGHTS_FILE)).unwrap();
    let text = String::from_utf8_lossy(&bytes[..4096.min(bytes.len())]);
    assert!(
        text.contains("layer1.0.conv1.weight") && text.contains("bn1.running_var"),
        "{text}"
    );
    // PyTorch's names for batch norm (burn's `gamma`/`beta` are renamed on the way out), so the
    // same file loads in PyTorch and in the engine's graph builders.
    assert!(
        text.contains("\"layer1.0.bn1.weight\"") && !text.contains("gamma"),
        "{text}"
    );
}

#[test]
fn mismatched_weights_name_the_tensor_and_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = tiny_colorizer(1);
    save_model_dir(dir.path(), tiny.config(), &tiny.network().unwrap()).unwrap();
    // Claim the light architecture for tiny weights.
    let light = config(UnetResnetConfig::light());
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        serde_json::to_vec(&light).unwrap(),
    )
    .unwrap();
    let e = Colorizer::load(dir.path(), &Device::flex()).unwrap_err();
    match &e {
        ModelError::WeightShape {
            key,
            expected,
            found,
            ..
        } => {
            assert!(!key.is_empty());
            assert_ne!(expected, found);
        }
        other => panic!("expected a shape error, got {other}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("model.safetensors") && msg.contains("shape"),
        "{msg}"
    );

    // Same widths, one block more per stage: tensors missing from the file.
    let mut deeper = UnetResnetConfig::tiny();
    deeper.depths = [2, 1, 1, 1];
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        serde_json::to_vec(&config(deeper)).unwrap(),
    )
    .unwrap();
    let e = Colorizer::load(dir.path(), &Device::flex()).unwrap_err();
    assert!(
        matches!(&e, ModelError::MissingWeight { key, .. } if key.starts_with("layer1.1.")),
        "{e}"
    );
}

#[test]
fn bad_model_directories_are_clear_errors() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    // Missing directory.
    let e = Colorizer::load(&dir.path().join("nope"), &device).unwrap_err();
    assert!(
        matches!(e, ModelError::Io { .. }) && e.to_string().contains("config.json"),
        "{e}"
    );
    // Bad JSON, unknown arch.
    std::fs::write(dir.path().join(CONFIG_FILE), b"{ not json").unwrap();
    std::fs::write(dir.path().join(WEIGHTS_FILE), b"").unwrap();
    assert!(matches!(
        Colorizer::load(dir.path(), &device),
        Err(ModelError::Config { .. })
    ));
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        br#"{"network": {"arch": "vgg"}, "render_size": 128}"#,
    )
    .unwrap();
    let e = Colorizer::load(dir.path(), &device).unwrap_err();
    assert!(e.to_string().contains("vgg"), "{e}");
    // Good config, corrupt weights.
    let cfg = config(UnetResnetConfig::tiny());
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        serde_json::to_vec(&cfg).unwrap(),
    )
    .unwrap();
    for junk in [
        &b""[..],
        b"0123456789abcdef",
        b"\x10\0\0\0\0\0\0\0{\"a\": 1, \"b\"}",
    ] {
        std::fs::write(dir.path().join(WEIGHTS_FILE), junk).unwrap();
        let e = Colorizer::load(dir.path(), &device).unwrap_err();
        assert!(matches!(e, ModelError::Weights { .. }), "{e}");
        assert!(!e.to_string().contains('\n'));
    }
}
