//! Writes a large grayscale test photo for the memory measurements of docs/PERFORMANCE.md: a real
//! photo enlarged (bilinear) to `WIDTH x HEIGHT`, as a gray JPEG (quality 95) or PNG (8-bit, or
//! 16-bit with `--16`), the format from the output's extension.
//!
//! ```sh
//! target/debug/examples/big_photo examples/1864UnionSoldier.jpg 12000 8334 /tmp/big.jpg
//! target/debug/examples/big_photo examples/1864UnionSoldier.jpg 12000 8334 /tmp/big16.png --16
//! ```
use image::{DynamicImage, imageops::FilterType};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: big_photo SOURCE WIDTH HEIGHT OUT.{{jpg,png}} [--16]");
        std::process::exit(2);
    }
    let (w, h): (u32, u32) = (args[2].parse().unwrap(), args[3].parse().unwrap());
    let sixteen = args.get(5).is_some_and(|a| a == "--16");
    let src = image::open(&args[1]).expect("a readable photo");
    let big = if sixteen {
        DynamicImage::ImageLuma16(src.to_luma16()).resize_exact(w, h, FilterType::Triangle)
    } else {
        DynamicImage::ImageLuma8(src.to_luma8()).resize_exact(w, h, FilterType::Triangle)
    };
    big.save(&args[4]).expect("a writable output");
}
