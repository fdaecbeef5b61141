//! JSON-aware mutations (for `config.json`, the safetensors header and hint lists): numbers set
//! to 0, negative, huge or fractional values, values of the wrong type, keys dropped, renamed or
//! added, arrays emptied, grown or shrunk, strings swapped for other names the formats know.

use serde_json::{Map, Value, json};

use crate::rng::Rng;

/// Names the model formats use, so that a mutated tag is often a valid but different one.
const VOCABULARY: [&str; 36] = [
    "unet_resnet",
    "plain_cnn",
    "eccv16",
    "deoldify",
    "siggraph17",
    "resnet18_regressor",
    "fusion",
    "lightness",
    "lightness_with_hints",
    "gray_rgb",
    "ab",
    "rgb",
    "ab_bins",
    "multiple_of",
    "square",
    "fixed",
    "zhang",
    "colorize",
    "nearest",
    "bilinear",
    "pixel_shuffle",
    "tanh",
    "none",
    "F32",
    "F16",
    "BF16",
    "F64",
    "I64",
    "U8",
    "BOOL",
    "F8_E4M3",
    "",
    "__metadata__",
    "weight",
    "encoder.0.conv.weight",
    "\u{0}\u{ffff}",
];

/// Every JSON pointer (RFC 6901) into `v`, the root included.
pub fn pointers(v: &Value) -> Vec<String> {
    fn walk(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    walk(
                        x,
                        format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                        out,
                    );
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
        out.push(at);
    }
    let mut out = Vec::new();
    walk(v, String::new(), &mut out);
    out
}

/// A number likely to break size arithmetic or validation.
pub fn interesting_number(rng: &mut Rng, current: Option<f64>) -> Value {
    let c = current.unwrap_or(1.0);
    match rng.below(16) {
        0 => json!(0),
        1 => json!(-1),
        2 => json!(1),
        3 => json!(u64::MAX),
        4 => json!(i64::MIN),
        5 => json!(1u64 << 32),
        6 => json!(1u64 << 31),
        7 => json!(1_000_000_000_000u64),
        8 => json!(1e308),
        9 => json!(-1e308),
        10 => json!(0.5),
        11 => json!(1e-45),
        12 => json!(c * 2.0),
        13 => json!(c + 1.0),
        14 => json!(-c),
        _ => json!(*rng.pick(&[65_536u64, 100_000, 1 << 20, 1 << 24, 3, 7, 1023])),
    }
}

/// A value of some other type than `v`.
fn other_type(rng: &mut Rng) -> Value {
    match rng.below(7) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(*rng.pick(&VOCABULARY)),
        3 => json!([]),
        4 => json!({}),
        5 => json!([1, 2]),
        _ => json!("1"),
    }
}

/// One structural mutation of `v`.
pub fn mutate_value(rng: &mut Rng, v: &mut Value) {
    let ptrs = pointers(v);
    let ptr = rng.pick(&ptrs).clone();
    let parent_ptr = ptr.rfind('/').map(|i| ptr[..i].to_string());
    let key = ptr
        .rsplit('/')
        .next()
        .unwrap_or("")
        .replace("~1", "/")
        .replace("~0", "~");
    let Some(target) = v.pointer_mut(&ptr) else {
        return;
    };
    match rng.below(10) {
        // Numbers: interesting values.
        0..=3 => {
            let cur = target.as_f64();
            if cur.is_some() || rng.one_in(3) {
                *target = interesting_number(rng, cur);
            } else if let Value::String(s) = target {
                *s = (*rng.pick(&VOCABULARY)).to_string();
            } else if let Value::Array(a) = target {
                match rng.below(4) {
                    0 => a.clear(),
                    1 => {
                        if let Some(x) = a.first().cloned() {
                            let n = if rng.one_in(4) { 1000 } else { 1 };
                            a.extend(std::iter::repeat_n(x, n));
                        }
                    }
                    2 => {
                        a.pop();
                    }
                    _ => a.push(interesting_number(rng, None)),
                }
            } else {
                *target = other_type(rng);
            }
        }
        // The wrong type.
        4 => *target = other_type(rng),
        // Strings from the vocabulary (a different arch, kind or dtype).
        5 => *target = json!(*rng.pick(&VOCABULARY)),
        // Drop this key (or array element).
        6 | 7 => {
            if let Some(parent) = parent_ptr.and_then(|p| v.pointer_mut(&p)) {
                match parent {
                    Value::Object(m) => {
                        m.remove(&key);
                    }
                    Value::Array(a) => {
                        if let Ok(i) = key.parse::<usize>()
                            && i < a.len()
                        {
                            a.remove(i);
                        }
                    }
                    _ => {}
                }
            }
        }
        // Rename a key, or add an unknown one.
        8 => {
            if let Some(Value::Object(m)) = parent_ptr.and_then(|p| v.pointer_mut(&p)) {
                if let Some(x) = m.remove(&key) {
                    let new_key = if rng.one_in(2) {
                        (*rng.pick(&VOCABULARY)).to_string()
                    } else {
                        format!("{key}_")
                    };
                    m.insert(new_key, x);
                }
            } else if let Value::Object(m) = v {
                m.insert(
                    (*rng.pick(&VOCABULARY)).to_string(),
                    interesting_number(rng, None),
                );
            }
        }
        // Nesting.
        _ => {
            let inner = target.take();
            *target = if rng.one_in(2) {
                json!([inner])
            } else {
                let mut m = Map::new();
                m.insert(key, inner);
                Value::Object(m)
            };
        }
    }
}

/// `n` structural mutations, then maybe a textual one; returns the JSON text.
pub fn mutate_json_text(rng: &mut Rng, v: &Value, pretty: bool) -> Vec<u8> {
    let mut v = v.clone();
    let n = match rng.below(4) {
        0..=1 => 1,
        2 => 2,
        _ => rng.range(3, 6),
    };
    for _ in 0..n {
        mutate_value(rng, &mut v);
    }
    let mut text = if pretty {
        serde_json::to_vec_pretty(&v)
    } else {
        serde_json::to_vec(&v)
    }
    .unwrap_or_default();
    if rng.one_in(6) {
        crate::mutate::mutate_bytes(rng, &mut text, b"{\"a\": [1e999, -0, \"\\ud800\"]}");
    }
    text
}
