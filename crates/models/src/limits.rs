//! Limits on what a model folder may ask for, checked before anything is allocated.
//!
//! A model folder is untrusted input: `config.json` chooses channel widths, depths and sizes that
//! become allocations (burn's fresh network, the engine's buffers), and `model.safetensors`
//! states its own header length, dtypes, shapes and offsets. [`check_network`] and
//! [`crate::model_dir::ModelConfig::from_json`] refuse configs past these bounds with
//! [`crate::ModelError::Limit`] naming the file and field; [`crate::weights::check_safetensors`]
//! refuses a weights file whose header does not describe its own bytes.
//!
//! The bounds are far above every network colorize ships or imports (the largest, DeOldify
//! Stable, has about 72 M parameters and 2048-channel layers; the largest render size the CLI
//! accepts is 4096).

use crate::deoldify::DeoldifyConfig;
use crate::eccv16::Eccv16Config;
use crate::fusion::FusionConfig;
use crate::network::NetworkConfig;
use crate::plain_cnn::PlainCnnConfig;
use crate::resnet18_regressor::Resnet18RegressorConfig;
use crate::unet_resnet::UnetResnetConfig;

/// Most channels of any layer in `config.json` (widths, `in_channels`, `out_channels`, bins).
pub const MAX_CHANNELS: usize = 8192;
/// Most blocks in one stage (`depths`, `bottleneck_depth`; DeOldify Stable's deepest: 23).
pub const MAX_DEPTH: usize = 64;
/// Most entries in a list of layers (`encoder_widths`, `decoder_widths`, `encoder`).
pub const MAX_LAYERS: usize = 32;
/// Most parameters a config may describe (about 4 GiB of f32), estimated from the config before
/// the network is built ([`parameter_estimate`]).
pub const MAX_PARAMETERS: u64 = 1 << 30;
/// Largest render size, in pixels (the CLI's `--render-size` bound).
pub const MAX_RENDER_SIZE: u32 = 4096;
/// Largest side of a fixed network size (`io.size` `fixed`) and largest size multiple, in
/// pixels: four times [`MAX_RENDER_SIZE`], the longest side the `multiple_of` rule can give.
pub const MAX_NETWORK_SIDE: usize = 4 * MAX_RENDER_SIZE as usize;
/// Largest safetensors header, in bytes (the `safetensors` crate's own bound).
pub const MAX_SAFETENSORS_HEADER: u64 = 100_000_000;

/// A config value past its bound: `(field, message)`, the message one line.
pub type LimitError = (String, String);

fn channels(field: impl Into<String>, value: usize) -> Result<(), LimitError> {
    if (1..=MAX_CHANNELS).contains(&value) {
        Ok(())
    } else {
        Err((
            field.into(),
            format!("{value} channels is outside 1..={MAX_CHANNELS}"),
        ))
    }
}

fn all_channels(field: &str, values: &[usize]) -> Result<(), LimitError> {
    values
        .iter()
        .enumerate()
        .try_for_each(|(i, &v)| channels(format!("{field}[{i}]"), v))
}

fn depth(field: impl Into<String>, value: usize, min: usize) -> Result<(), LimitError> {
    if (min..=MAX_DEPTH).contains(&value) {
        Ok(())
    } else {
        Err((
            field.into(),
            format!("{value} blocks is outside {min}..={MAX_DEPTH}"),
        ))
    }
}

fn all_depths(field: &str, values: &[usize], min: usize) -> Result<(), LimitError> {
    values
        .iter()
        .enumerate()
        .try_for_each(|(i, &v)| depth(format!("{field}[{i}]"), v, min))
}

fn layers(field: &str, len: usize, min: usize) -> Result<(), LimitError> {
    if (min..=MAX_LAYERS).contains(&len) {
        Ok(())
    } else {
        Err((
            field.to_string(),
            format!("{len} layers is outside {min}..={MAX_LAYERS}"),
        ))
    }
}

/// Checks every width, depth and list length of `network` against the bounds above, then its
/// [`parameter_estimate`] against [`MAX_PARAMETERS`]. Field names are as in `config.json`,
/// under `network` (`network.widths[2]`).
///
/// # Errors
/// `(field, one-line message)` for the first value out of bounds.
pub fn check_network(network: &NetworkConfig) -> Result<(), LimitError> {
    let f = |name: &str| format!("network.{name}");
    match network {
        NetworkConfig::UnetResnet(c) => {
            channels(f("stem_width"), c.stem_width)?;
            all_channels(&f("widths"), &c.widths)?;
            // A stage without blocks would hand the next stage the wrong channel count.
            all_depths(&f("depths"), &c.depths, 1)?;
            all_channels(&f("decoder_widths"), &c.decoder_widths)?;
            channels(f("in_channels"), c.in_channels)?;
            channels(f("out_channels"), c.out_channels)?;
        }
        NetworkConfig::PlainCnn(c) => {
            layers(&f("encoder_widths"), c.encoder_widths.len(), 0)?;
            all_channels(&f("encoder_widths"), &c.encoder_widths)?;
            depth(f("bottleneck_depth"), c.bottleneck_depth, 0)?;
            layers(&f("decoder_widths"), c.decoder_widths.len(), 0)?;
            all_channels(&f("decoder_widths"), &c.decoder_widths)?;
            channels(f("in_channels"), c.in_channels)?;
            channels(f("out_channels"), c.out_channels)?;
        }
        NetworkConfig::Resnet18Regressor(c) => {
            channels(f("stem_width"), c.stem_width)?;
            layers(&f("widths"), c.widths.len(), 0)?;
            all_channels(&f("widths"), &c.widths)?;
            layers(&f("depths"), c.depths.len(), 0)?;
            all_depths(&f("depths"), &c.depths, 0)?;
            layers(&f("decoder_widths"), c.decoder_widths.len(), 0)?;
            all_channels(&f("decoder_widths"), &c.decoder_widths)?;
            channels(f("in_channels"), c.in_channels)?;
            channels(f("out_channels"), c.out_channels)?;
            c.validate().map_err(|m| (f("widths"), m))?;
        }
        NetworkConfig::Fusion(c) => {
            layers(&f("encoder"), c.encoder.len(), 0)?;
            for (i, &[width, _]) in c.encoder.iter().enumerate() {
                channels(format!("network.encoder[{i}][0]"), width)?;
            }
            channels(f("backbone_in_channels"), c.backbone_in_channels)?;
            channels(f("backbone_stem_width"), c.backbone_stem_width)?;
            all_channels(&f("backbone_widths"), &c.backbone_widths)?;
            all_depths(&f("backbone_depths"), &c.backbone_depths, 0)?;
            channels(f("global_dim"), c.global_dim)?;
            channels(f("fusion_width"), c.fusion_width)?;
            layers(&f("decoder_widths"), c.decoder_widths.len(), 0)?;
            all_channels(&f("decoder_widths"), &c.decoder_widths)?;
            channels(f("in_channels"), c.in_channels)?;
            channels(f("out_channels"), c.out_channels)?;
            c.validate().map_err(|m| (f("encoder"), m))?;
        }
        NetworkConfig::Eccv16(c) => {
            all_channels(&f("widths"), &c.widths)?;
            channels(f("decoder_width"), c.decoder_width)?;
            channels(f("bins"), c.bins)?;
        }
        NetworkConfig::Deoldify(c) => all_depths(&f("depths"), &c.depths, 0)?,
        NetworkConfig::Ddcolor(c) => {
            all_depths(&f("depths"), &c.depths, 0)?;
            layers(&f("decoder_layers"), c.decoder_layers, 0)?;
            channels(f("heads"), c.heads)?;
        }
        NetworkConfig::Siggraph17(_) => {}
    }
    let params = parameter_estimate(network);
    if params > MAX_PARAMETERS {
        return Err((
            "network".into(),
            format!(
                "the widths and depths describe about {params} parameters, more than {MAX_PARAMETERS}"
            ),
        ));
    }
    Ok(())
}

/// Weights of a `k x k` convolution (and its bias or batch norm).
fn conv(cin: usize, cout: usize, k: usize) -> u64 {
    let (cin, cout, k) = (cin as u64, cout as u64, k as u64);
    cin.saturating_mul(cout)
        .saturating_mul(k * k)
        .saturating_add(4 * cout)
}

/// A ResNet basic block: two 3x3 convolutions and a 1x1 shortcut when the width changes.
fn basic_block(cin: usize, cout: usize) -> u64 {
    let shortcut = if cin != cout { conv(cin, cout, 1) } else { 0 };
    conv(cin, cout, 3)
        .saturating_add(conv(cout, cout, 3))
        .saturating_add(shortcut)
}

/// A ResNet stage of `depth` basic blocks (its first block has a strided shortcut; counted as
/// one whether or not the width changes).
fn stage(cin: usize, cout: usize, depth: usize) -> u64 {
    if depth == 0 {
        return 0;
    }
    basic_block(cin, cout)
        .saturating_add(conv(cin, cout, 1))
        .saturating_add(basic_block(cout, cout).saturating_mul(depth as u64 - 1))
}

/// A chain of `k x k` layers from `cin` through `widths`; returns the count and the last width.
fn chain(mut cin: usize, widths: &[usize], k: usize) -> (u64, usize) {
    let mut n = 0u64;
    for &w in widths {
        n = n.saturating_add(conv(cin, w, k));
        cin = w;
    }
    (n, cin)
}

/// About how many parameters `network` has, from its config alone (saturating, so any config
/// gives a number): convolution and linear weights plus four values per output channel for
/// biases and batch norms. Architectures whose widths come from the weights file (DeOldify,
/// DDColor, siggraph17) count 0: their file's size bounds them.
pub fn parameter_estimate(network: &NetworkConfig) -> u64 {
    match network {
        NetworkConfig::UnetResnet(c) => unet_resnet(c),
        NetworkConfig::PlainCnn(c) => plain_cnn(c),
        NetworkConfig::Resnet18Regressor(c) => resnet18_regressor(c),
        NetworkConfig::Fusion(c) => fusion(c),
        NetworkConfig::Eccv16(c) => eccv16(c),
        NetworkConfig::Deoldify(DeoldifyConfig { .. })
        | NetworkConfig::Ddcolor(_)
        | NetworkConfig::Siggraph17(_) => 0,
    }
}

fn unet_resnet(c: &UnetResnetConfig) -> u64 {
    let [w1, w2, w3, w4] = c.widths;
    let [d4, d3, d2, d1, d0] = c.decoder_widths;
    let mut n = conv(c.in_channels, c.stem_width, 7);
    for (cin, cout, depth) in [
        (c.stem_width, w1, c.depths[0]),
        (w1, w2, c.depths[1]),
        (w2, w3, c.depths[2]),
        (w3, w4, c.depths[3]),
    ] {
        n = n.saturating_add(stage(cin, cout, depth));
    }
    for (cin, cout) in [
        (w4.saturating_add(w3), d4),
        (d4.saturating_add(w2), d3),
        (d3.saturating_add(w1), d2),
        (d2.saturating_add(c.stem_width), d1),
        (d1.saturating_add(c.in_channels), d0),
    ] {
        n = n.saturating_add(conv(cin, cout, 3));
    }
    if c.self_attention {
        n = n.saturating_add(conv(d3, d3, 1).saturating_mul(3));
    }
    n.saturating_add(conv(d0, c.out_channels, 1))
}

fn plain_cnn(c: &PlainCnnConfig) -> u64 {
    let (enc, bottom) = chain(c.in_channels, &c.encoder_widths, 3);
    let mid = conv(bottom, bottom, 3).saturating_mul(c.bottleneck_depth as u64);
    let (dec, last) = chain(bottom, &c.decoder_widths, 4);
    enc.saturating_add(mid)
        .saturating_add(dec)
        .saturating_add(conv(last, c.out_channels, 3))
}

fn resnet18_regressor(c: &Resnet18RegressorConfig) -> u64 {
    let mut n = conv(c.in_channels, c.stem_width, 7);
    let mut cin = c.stem_width;
    for (&w, &d) in c.widths.iter().zip(&c.depths) {
        n = n.saturating_add(stage(cin, w, d));
        cin = w;
    }
    let (dec, last) = chain(cin, &c.decoder_widths, 3);
    n.saturating_add(dec)
        .saturating_add(conv(last, c.out_channels, 3))
}

fn fusion(c: &FusionConfig) -> u64 {
    let widths: Vec<usize> = c.encoder.iter().map(|&[w, _]| w).collect();
    let (mut n, enc) = chain(c.in_channels, &widths, 3);
    n = n.saturating_add(conv(c.backbone_in_channels, c.backbone_stem_width, 7));
    let mut cin = c.backbone_stem_width;
    for (&w, &d) in c.backbone_widths.iter().zip(&c.backbone_depths) {
        n = n.saturating_add(stage(cin, w, d));
        cin = w;
    }
    n = n.saturating_add(conv(cin, c.global_dim, 1));
    n = n.saturating_add(conv(enc.saturating_add(c.global_dim), c.fusion_width, 1));
    let (dec, last) = chain(c.fusion_width, &c.decoder_widths, 3);
    n.saturating_add(dec)
        .saturating_add(conv(last, c.out_channels, 3))
}

fn eccv16(c: &Eccv16Config) -> u64 {
    const CONVS: [usize; 7] = [2, 2, 3, 3, 3, 3, 3];
    let mut n = 0u64;
    let mut cin = 1;
    for (&w, &convs) in c.widths.iter().zip(&CONVS) {
        n = n.saturating_add(conv(cin, w, 3));
        n = n.saturating_add(conv(w, w, 3).saturating_mul(convs as u64 - 1));
        cin = w;
    }
    let d = c.decoder_width;
    n.saturating_add(conv(cin, d, 4))
        .saturating_add(conv(d, d, 3).saturating_mul(2))
        .saturating_add(conv(d, c.bins, 1))
        .saturating_add(conv(c.bins, 2, 1))
}
