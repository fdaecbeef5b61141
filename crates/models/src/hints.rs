//! User hints for networks that take them (Zhang et al. 2017, siggraph17, arXiv:1705.02999): "this
//! spot is this colour". A hint is a point of the photo, a colour and a radius; the network sees
//! the colour's CIELAB a and b on the hinted pixels and a mask that is 1 there (its
//! [`crate::InputKind::LightnessWithHints`] input, `../shared/reference/zhang.md` §5).
//!
//! Hints come as JSON, from `colorize image --hints FILE.json` or the API's `hints` field:
//!
//! ```json
//! [{"x": 120, "y": 80, "color": "#b03a2e"}, {"x": 40.5, "y": 200, "color": "#3366cc", "radius": 6}]
//! ```
//!
//! `x` and `y` are in pixels of the photo (pixel column `i`, row `j` is the point `(i, j)`;
//! fractions fall between pixels), `color` is sRGB as `#rrggbb`, `radius` is in photo pixels
//! (default 0: the one network pixel under the point). The hinted network pixels are those whose centre
//! lies within `radius` of the point in both directions (a square, as the reference demo paints
//! them).

use colorize_core::color::srgb_to_lab_pixel;
use serde::Deserialize;

use crate::colorizer::NetworkInput;

/// One user hint: a point of the photo, its colour, and a radius.
#[derive(Debug, Clone, PartialEq)]
pub struct Hint {
    /// Column in photo pixels (`0..width`).
    pub x: f32,
    /// Row in photo pixels (`0..height`).
    pub y: f32,
    /// The colour's CIELAB a and b.
    pub ab: [f32; 2],
    /// Half-size of the hinted square, in photo pixels (0: one network pixel).
    pub radius: f32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HintJson {
    x: f32,
    y: f32,
    color: String,
    #[serde(default)]
    radius: f32,
}

/// `#rrggbb` (or `rrggbb`) as sRGB in `0..=1`.
fn parse_hex(color: &str) -> Option<[f32; 3]> {
    let hex = color.strip_prefix('#').unwrap_or(color);
    if hex.len() != 6 || !hex.is_ascii() {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some([
        byte(0)? as f32 / 255.0,
        byte(2)? as f32 / 255.0,
        byte(4)? as f32 / 255.0,
    ])
}

/// Parses a JSON list of hints (`[{"x", "y", "color", "radius"?}, ...]`).
///
/// # Errors
/// A one-line message naming the hint (by index) and the field that is wrong: not a list, a
/// missing or unknown field, a colour that is not `#rrggbb`, a negative or non-finite number.
pub fn parse_hints(json: &[u8]) -> Result<Vec<Hint>, String> {
    let raw: Vec<HintJson> = serde_json::from_slice(json)
        .map_err(|e| format!("hints must be a JSON list of {{x, y, color, radius}}: {e}"))?;
    raw.into_iter()
        .enumerate()
        .map(|(i, h)| {
            let rgb = parse_hex(&h.color)
                .ok_or_else(|| format!("hint {i}: color {:?} is not #rrggbb", h.color))?;
            if !(h.x.is_finite() && h.y.is_finite() && h.x >= 0.0 && h.y >= 0.0) {
                return Err(format!("hint {i}: x and y must be pixel positions (>= 0)"));
            }
            if !(h.radius.is_finite() && (0.0..=4096.0).contains(&h.radius)) {
                return Err(format!(
                    "hint {i}: radius must be between 0 and 4096 pixels"
                ));
            }
            let lab = srgb_to_lab_pixel(rgb);
            Ok(Hint {
                x: h.x,
                y: h.y,
                ab: [lab[1], lab[2]],
                radius: h.radius,
            })
        })
        .collect()
}

/// Paints `hints` into the hint channels of `input` (channels 1-3 of a `[4, height, width]`
/// planar input: `a / ab_scale`, `b / ab_scale`, mask), mapping photo coordinates of a
/// `photo_width x photo_height` photo to the input's size. A hint outside the photo is ignored.
pub(crate) fn paint(
    input: &mut NetworkInput,
    photo_width: usize,
    photo_height: usize,
    hints: &[Hint],
    ab_scale: f32,
) {
    let (w, h) = (input.width, input.height);
    let plane = w * h;
    let sx = w as f32 / photo_width.max(1) as f32;
    let sy = h as f32 / photo_height.max(1) as f32;
    for hint in hints {
        if hint.x >= photo_width as f32 || hint.y >= photo_height as f32 {
            continue;
        }
        // The network pixel under the point, and the radius in network pixels.
        let cx = ((hint.x + 0.5) * sx - 0.5).round();
        let cy = ((hint.y + 0.5) * sy - 0.5).round();
        let (rx, ry) = ((hint.radius * sx).round(), (hint.radius * sy).round());
        let clamp = |v: f32, n: usize| v.clamp(0.0, n as f32 - 1.0) as usize;
        for y in clamp(cy - ry, h)..=clamp(cy + ry, h) {
            for x in clamp(cx - rx, w)..=clamp(cx + rx, w) {
                let p = y * w + x;
                input.values[plane + p] = hint.ab[0] / ab_scale;
                input.values[2 * plane + p] = hint.ab[1] / ab_scale;
                input.values[3 * plane + p] = 1.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_parse_with_lab_colours_and_clear_errors() {
        let h = parse_hints(br##"[{"x": 3, "y": 4.5, "color": "#ff0000", "radius": 2}]"##).unwrap();
        // sRGB red is CIELAB (53.24, 80.09, 67.20).
        assert!((h[0].ab[0] - 80.09).abs() < 0.05 && (h[0].ab[1] - 67.20).abs() < 0.05);
        assert_eq!((h[0].x, h[0].y, h[0].radius), (3.0, 4.5, 2.0));
        let gray = parse_hints(br#"[{"x": 0, "y": 0, "color": "808080"}]"#).unwrap();
        assert!(gray[0].ab[0].abs() < 0.01 && gray[0].ab[1].abs() < 0.01);
        for (bad, what) in [
            (&br#"{"x": 1}"#[..], "JSON list"),
            (br#"[{"x": 1, "y": 2, "color": "red"}]"#, "hint 0: color"),
            (
                br##"[{"x": -1, "y": 2, "color": "#000000"}]"##,
                "hint 0: x and y",
            ),
            (
                br##"[{"x": 1, "y": 2, "color": "#000000", "size": 3}]"##,
                "unknown field",
            ),
        ] {
            let e = parse_hints(bad).unwrap_err();
            assert!(e.contains(what), "{e}");
        }
    }

    #[test]
    fn painting_maps_photo_pixels_to_the_network_size() {
        let mut input = NetworkInput {
            width: 8,
            height: 4,
            values: vec![0.0; 4 * 32],
        };
        let hint = Hint {
            x: 5.0,
            y: 1.0,
            ab: [22.0, -11.0],
            radius: 0.0,
        };
        // A 16x8 photo on an 8x4 input: photo pixel (5, 1) is network pixel (2, 0) after
        // (5.5 · 0.5 − 0.5) = 2.25 and (1.5 · 0.5 − 0.5) = 0.25 are rounded.
        paint(&mut input, 16, 8, &[hint], 110.0);
        let mask = &input.values[3 * 32..];
        assert_eq!(mask.iter().filter(|&&m| m == 1.0).count(), 1);
        assert_eq!(mask[2], 1.0);
        assert_eq!(input.values[32 + 2], 0.2);
        assert_eq!(input.values[64 + 2], -0.1);
    }
}
