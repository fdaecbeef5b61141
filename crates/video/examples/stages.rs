//! Times the per-frame pixel stages of `colorize video` at 854x480 (no network, no FFmpeg):
//! `cargo run --release -p colorize-video --example stages`.
use std::time::Instant;

use colorize_core::LabImage;
use colorize_core::lab::lightness_of;
use colorize_core::resize::resize_plane;
use image::{DynamicImage, RgbImage};

fn main() {
    let (w, h, nw, nh) = (854usize, 480usize, 224usize, 128usize);
    let rgb = RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let v = ((x * 7 + y * 3) % 256) as u8;
        image::Rgb([v, v, v])
    });
    let img = DynamicImage::ImageRgb8(rgb);
    let time = |name: &str, f: &mut dyn FnMut()| {
        f();
        let t = Instant::now();
        for _ in 0..50 {
            f();
        }
        println!("{name}: {:.2} ms", t.elapsed().as_secs_f64() * 1e3 / 50.0);
    };
    let (_, _, l) = lightness_of(&img);
    time("lightness_of (gray rgb8)", &mut || {
        std::hint::black_box(lightness_of(&img));
    });
    time("resize L to network size", &mut || {
        std::hint::black_box(resize_plane(&l, w, h, nw, nh));
    });
    let a = vec![10.0f32; nw * nh];
    let b = vec![-5.0f32; nw * nh];
    time("join (ab resize x2)", &mut || {
        std::hint::black_box(LabImage::join(w, h, l.clone(), nw, nh, &a, &b));
    });
    let lab = LabImage::join(w, h, l.clone(), nw, nh, &a, &b);
    time("to_rgb32f", &mut || {
        std::hint::black_box(lab.to_rgb32f());
    });
    time("to_rgb8", &mut || {
        std::hint::black_box(lab.to_rgb8());
    });
}
