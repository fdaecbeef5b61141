use std::path::Path;

use burn::prelude::*;
use colorize_models::model_dir::{CONFIG_FILE, WEIGHTS_FILE};
use colorize_models::unet_resnet::UnetResnetConfig;
use colorize_models::{Colorizer, ModelConfig, ModelError, NetworkConfig, save_model_dir};

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

/// Safetensors bytes with `header` (JSON) as the header and `data` after it.
fn safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

/// Loads `weights` as the tiny network's `model.safetensors` every way a model is loaded (burn's
/// network, the engine's graph, named weights) and returns the errors, each checked to be a
/// one-line [`ModelError::Weights`] naming the file.
fn weights_errors(weights: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(UnetResnetConfig::tiny());
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        serde_json::to_vec(&cfg).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join(WEIGHTS_FILE), weights).unwrap();
    let device = Device::flex();
    let errors = [
        colorize_models::load_model_dir(dir.path(), &device)
            .map(|_| ())
            .unwrap_err(),
        Colorizer::load(dir.path(), &device)
            .map(|_| ())
            .unwrap_err(),
        colorize_models::Weights::from_bytes(weights, &dir.path().join(WEIGHTS_FILE))
            .map(|_| ())
            .unwrap_err(),
    ];
    errors
        .into_iter()
        .map(|e| {
            let msg = e.to_string();
            assert!(matches!(e, ModelError::Weights { .. }), "{msg}");
            assert!(msg.contains(WEIGHTS_FILE) && !msg.contains('\n'), "{msg}");
            msg
        })
        .collect()
}

#[test]
fn lying_safetensors_headers_are_errors_not_panics() {
    // Header lengths near 2^64: `8 + n` wraps with overflow checks off (the old check then
    // sliced `bytes[8..7]` and panicked).
    for n in [u64::MAX, u64::MAX - 7, 1 << 63, 1 << 40] {
        let mut bytes = n.to_le_bytes().to_vec();
        bytes
            .extend_from_slice(b"{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}");
        bytes.extend_from_slice(&[0; 4]);
        for msg in weights_errors(&bytes) {
            assert!(msg.contains("header length"), "{n}: {msg}");
        }
    }
    // Offsets past the end of the data.
    let past = safetensors(
        r#"{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
        &[0; 8],
    );
    for msg in weights_errors(&past) {
        assert!(msg.contains("'x'") && msg.contains("data_offsets"), "{msg}");
    }
    // A shape whose element count overflows (and one whose byte count does).
    for shape in ["[4294967296, 4294967296]", "[4611686018427387904]"] {
        let huge = safetensors(
            &format!(r#"{{"x":{{"dtype":"F32","shape":{shape},"data_offsets":[0,4]}}}}"#),
            &[0; 4],
        );
        for msg in weights_errors(&huge) {
            assert!(msg.contains("too many elements"), "{shape}: {msg}");
        }
    }
    // A dtype safetensors does not know.
    let q4 = safetensors(
        r#"{"x":{"dtype":"Q4","shape":[2],"data_offsets":[0,1]}}"#,
        &[0; 1],
    );
    for msg in weights_errors(&q4) {
        assert!(msg.contains("unknown dtype") && msg.contains("Q4"), "{msg}");
    }
    // Offsets that disagree with the shape.
    let short = safetensors(
        r#"{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
        &[0; 8],
    );
    for msg in weights_errors(&short) {
        assert!(msg.contains("needs 12"), "{msg}");
    }
}

#[test]
fn a_truncated_weights_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = tiny_colorizer(3);
    save_model_dir(dir.path(), tiny.config(), &tiny.network().unwrap()).unwrap();
    let bytes = std::fs::read(dir.path().join(WEIGHTS_FILE)).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    // Cut in the header, just after it, and in the middle of the data.
    for cut in [
        4,
        header / 2,
        header + 8,
        header + 8 + (bytes.len() - header - 8) / 2,
    ] {
        for msg in weights_errors(&bytes[..cut]) {
            assert!(
                msg.contains("header") || msg.contains("truncated") || msg.contains("too short"),
                "cut at {cut}: {msg}"
            );
        }
    }
}

/// `config.json` of the tiny network with `edit` applied to its JSON.
fn edited_config(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v = serde_json::to_value(config(UnetResnetConfig::tiny())).unwrap();
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

/// The [`ModelError::Limit`] that `config.json` content gives, checked to name the file and
/// `field` on one line.
fn limit_error(json: &[u8], field: &str) -> String {
    let started = std::time::Instant::now();
    let e = ModelConfig::from_json(json, Path::new("m/config.json")).unwrap_err();
    assert!(started.elapsed().as_secs_f64() < 1.0, "refused quickly");
    let msg = e.to_string();
    match &e {
        ModelError::Limit { field: f, .. } => assert_eq!(f, field, "{msg}"),
        other => panic!("expected a limit error on {field}, got {other}"),
    }
    assert!(
        msg.starts_with("m/config.json: ") && !msg.contains('\n'),
        "{msg}"
    );
    msg
}

#[test]
fn absurd_configs_are_refused_before_allocating() {
    // 10^9 channels: burn would try to allocate 10^18 weights for the stem alone.
    let huge = edited_config(|v| v["network"]["widths"][2] = 1_000_000_000.into());
    let msg = limit_error(&huge, "network.widths[2]");
    assert!(msg.contains("1000000000") && msg.contains("8192"), "{msg}");
    // Building the network from such a config is refused too, without allocating.
    let mut net = UnetResnetConfig::tiny();
    net.stem_width = 1_000_000_000;
    let e = NetworkConfig::UnetResnet(net)
        .init(&Device::flex())
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(&e, ModelError::Limit { field, .. } if field == "network.stem_width"),
        "{e}"
    );

    // Every width within bounds, but together far too many parameters.
    let wide = edited_config(|v| {
        v["network"]["widths"] = serde_json::json!([8192, 8192, 8192, 8192]);
        v["network"]["depths"] = serde_json::json!([64, 64, 64, 64]);
    });
    let msg = limit_error(&wide, "network");
    assert!(msg.contains("parameters"), "{msg}");
    let deep = edited_config(|v| v["network"]["depths"][0] = 1_000_000.into());
    limit_error(&deep, "network.depths[0]");

    // Render sizes: 0 and 10^6 pixels (a 10^6-pixel-side render is 10^12 pixels of buffers).
    for n in [0u32, 1_000_000] {
        let json = edited_config(|v| v["render_size"] = n.into());
        let msg = limit_error(&json, "render_size");
        assert!(msg.contains("4096"), "{msg}");
    }
    assert!(
        ModelConfig::from_json(
            &edited_config(|v| v["render_size"] = 4096.into()),
            Path::new("m/config.json")
        )
        .is_ok()
    );
    // A fixed network size of 10^9 pixels.
    let fixed = edited_config(|v| {
        v["io"]["size"] = serde_json::json!({"kind": "fixed", "width": 1_000_000_000, "height": 64})
    });
    limit_error(&fixed, "io.size");

    // Other architectures: lists too long, a fusion backbone stage without blocks (whose
    // `init` used to panic), eccv16's bins.
    let mut plain = colorize_models::plain_cnn::PlainCnnConfig::tiny();
    plain.decoder_widths = vec![8; 1000];
    let e = NetworkConfig::PlainCnn(plain)
        .init(&Device::flex())
        .map(|_| ())
        .unwrap_err();
    assert!(e.to_string().contains("network.decoder_widths"), "{e}");
    let mut fusion = colorize_models::fusion::FusionConfig::tiny();
    fusion.backbone_depths[1] = 0;
    let e = NetworkConfig::Fusion(fusion)
        .init(&Device::flex())
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(&e, ModelError::Limit { .. }), "{e}");
    let mut eccv = colorize_models::eccv16::Eccv16Config::release();
    eccv.bins = usize::MAX;
    let e = NetworkConfig::Eccv16(eccv).check_limits().unwrap_err();
    assert!(e.to_string().contains("network.bins"), "{e}");
}

#[test]
fn the_parameter_estimate_is_close_to_the_real_count() {
    use burn::module::Module;
    use colorize_models::fusion::FusionConfig;
    use colorize_models::limits::parameter_estimate;
    use colorize_models::plain_cnn::PlainCnnConfig;
    use colorize_models::resnet18_regressor::Resnet18RegressorConfig;
    let mut attention = UnetResnetConfig::light();
    attention.self_attention = true;
    let configs = [
        NetworkConfig::UnetResnet(UnetResnetConfig::tiny()),
        NetworkConfig::UnetResnet(UnetResnetConfig::light()),
        NetworkConfig::UnetResnet(UnetResnetConfig::resnet34()),
        NetworkConfig::UnetResnet(attention),
        NetworkConfig::PlainCnn(PlainCnnConfig::tiny()),
        NetworkConfig::PlainCnn(PlainCnnConfig::full()),
        NetworkConfig::Resnet18Regressor(Resnet18RegressorConfig::tiny()),
        NetworkConfig::Resnet18Regressor(Resnet18RegressorConfig::full()),
        NetworkConfig::Fusion(FusionConfig::tiny()),
        NetworkConfig::Fusion(FusionConfig::full()),
    ];
    for c in configs {
        let real = match c.init(&Device::flex()).unwrap() {
            colorize_models::Network::UnetResnet(n) => n.num_params(),
            colorize_models::Network::PlainCnn(n) => n.num_params(),
            colorize_models::Network::Resnet18Regressor(n) => n.num_params(),
            colorize_models::Network::Fusion(n) => n.num_params(),
            _ => unreachable!(),
        } as f64;
        let estimate = parameter_estimate(&c) as f64;
        assert!(
            (0.9..=1.3).contains(&(estimate / real)),
            "{}: estimate {estimate}, real {real}",
            c.arch()
        );
    }
}
