//! Image-quality metrics on 8-bit sRGB images (values `0..=255`):
//! PSNR, SSIM (Wang et al. 2004) and colourfulness (Hasler & Süsstrunk 2003).

use image::RgbImage;

/// PSNR in dB between two RGB images of the same size, over all three channels, peak 255.
///
/// Identical images give `f64::INFINITY`; [`psnr_capped`] caps that for averaging.
///
/// # Panics
/// If the sizes differ.
pub fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(
        a.dimensions(),
        b.dimensions(),
        "PSNR needs images of one size"
    );
    let se: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            d * d
        })
        .sum();
    let mse = se / a.as_raw().len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// [`psnr`] capped at 100 dB, so that a mean over a data set stays finite when one image is
/// reproduced exactly (a photo that was gray to begin with).
pub fn psnr_capped(a: &RgbImage, b: &RgbImage) -> f64 {
    psnr(a, b).min(100.0)
}

/// Normalised 1-D Gaussian, 11 taps, sigma 1.5 (Wang et al. 2004).
fn gaussian_kernel() -> [f32; 11] {
    let mut k = [0.0f32; 11];
    for (i, v) in k.iter_mut().enumerate() {
        let x = i as f32 - 5.0;
        *v = (-(x * x) / (2.0 * 1.5 * 1.5)).exp();
    }
    let s: f32 = k.iter().sum();
    k.map(|v| v / s)
}

/// Separable blur with edge replication: works for any image size, including 1xN strips.
fn blur(src: &[f32], w: usize, h: usize, k: &[f32; 11]) -> Vec<f32> {
    let r = 5i64;
    let mut tmp = vec![0.0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut s = 0.0;
            for (i, kv) in k.iter().enumerate() {
                let xx = (x as i64 + i as i64 - r).clamp(0, w as i64 - 1) as usize;
                s += kv * src[y * w + xx];
            }
            tmp[y * w + x] = s;
        }
    }
    let mut out = vec![0.0f32; w * h];
    for y in 0..h {
        for (i, kv) in k.iter().enumerate() {
            let yy = (y as i64 + i as i64 - r).clamp(0, h as i64 - 1) as usize;
            for x in 0..w {
                out[y * w + x] += kv * tmp[yy * w + x];
            }
        }
    }
    out
}

/// Mean SSIM between two RGB images of the same size (Wang, Bovik, Sheikh & Simoncelli 2004):
/// Gaussian window (11 taps, sigma 1.5), `K1 = 0.01`, `K2 = 0.03`, dynamic range 255, computed per
/// channel with replicated edges and averaged over all pixels and the three channels. 1.0 means
/// identical.
///
/// # Panics
/// If the sizes differ.
pub fn ssim(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(
        a.dimensions(),
        b.dimensions(),
        "SSIM needs images of one size"
    );
    let (w, h) = (a.width() as usize, a.height() as usize);
    let k = gaussian_kernel();
    let c1 = (0.01f32 * 255.0).powi(2);
    let c2 = (0.03f32 * 255.0).powi(2);
    let mut total = 0.0f64;
    for ch in 0..3 {
        let x: Vec<f32> = a
            .as_raw()
            .iter()
            .skip(ch)
            .step_by(3)
            .map(|&v| v as f32)
            .collect();
        let y: Vec<f32> = b
            .as_raw()
            .iter()
            .skip(ch)
            .step_by(3)
            .map(|&v| v as f32)
            .collect();
        let xx: Vec<f32> = x.iter().map(|v| v * v).collect();
        let yy: Vec<f32> = y.iter().map(|v| v * v).collect();
        let xy: Vec<f32> = x.iter().zip(&y).map(|(p, q)| p * q).collect();
        let (mx, my) = (blur(&x, w, h, &k), blur(&y, w, h, &k));
        let (sxx, syy, sxy) = (
            blur(&xx, w, h, &k),
            blur(&yy, w, h, &k),
            blur(&xy, w, h, &k),
        );
        let mut s = 0.0f64;
        for i in 0..w * h {
            let (mx, my) = (mx[i], my[i]);
            let vx = sxx[i] - mx * mx;
            let vy = syy[i] - my * my;
            let cxy = sxy[i] - mx * my;
            let num = (2.0 * mx * my + c1) * (2.0 * cxy + c2);
            let den = (mx * mx + my * my + c1) * (vx + vy + c2);
            s += (num / den) as f64;
        }
        total += s / (w * h) as f64;
    }
    total / 3.0
}

/// Colourfulness M of an RGB image (Hasler & Süsstrunk 2003, "Measuring colourfulness in natural
/// images"): with `rg = R − G` and `yb = (R + G)/2 − B` on the 0–255 scale,
/// `M = sqrt(σ_rg² + σ_yb²) + 0.3 · sqrt(μ_rg² + μ_yb²)`. 0 for a gray image; natural photos
/// score about 30–45.
pub fn colourfulness(img: &RgbImage) -> f64 {
    let n = (img.width() as usize * img.height() as usize) as f64;
    let (mut srg, mut syb, mut srg2, mut syb2) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for px in img.as_raw().chunks_exact(3) {
        let (r, g, b) = (px[0] as f64, px[1] as f64, px[2] as f64);
        let rg = r - g;
        let yb = 0.5 * (r + g) - b;
        srg += rg;
        syb += yb;
        srg2 += rg * rg;
        syb2 += yb * yb;
    }
    let (mrg, myb) = (srg / n, syb / n);
    let vrg = (srg2 / n - mrg * mrg).max(0.0);
    let vyb = (syb2 / n - myb * myb).max(0.0);
    (vrg + vyb).sqrt() + 0.3 * (mrg * mrg + myb * myb).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)))
    }

    #[test]
    fn psnr_hand_computed() {
        let a = img(4, 4, |_, _| [100, 100, 100]);
        let b = img(4, 4, |_, _| [110, 100, 100]);
        // MSE = 100 / 3 over all channels.
        let want = 10.0 * (255.0f64.powi(2) / (100.0 / 3.0)).log10();
        assert!((psnr(&a, &b) - want).abs() < 1e-9);
        assert!(psnr(&a, &a).is_infinite());
        assert_eq!(psnr_capped(&a, &a), 100.0);
    }

    #[test]
    fn ssim_identity_and_degradation() {
        let a = img(32, 24, |x, y| {
            [
                (x * 7 % 256) as u8,
                (y * 9 % 256) as u8,
                ((x + y) * 3) as u8,
            ]
        });
        assert!((ssim(&a, &a) - 1.0).abs() < 1e-6);
        let noisy = img(32, 24, |x, y| {
            let p = a.get_pixel(x, y).0;
            let n = if (x + y) % 2 == 0 { 20 } else { 0 };
            [p[0].saturating_add(n), p[1].saturating_sub(n), p[2]]
        });
        let s = ssim(&a, &noisy);
        assert!(s < 0.95 && s > 0.0, "{s}");
        // Works on a 1-pixel strip.
        let strip = img(1, 17, |_, y| [y as u8 * 10, 0, 0]);
        assert!((ssim(&strip, &strip) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn colourfulness_hand_computed() {
        assert_eq!(colourfulness(&img(8, 8, |_, _| [77, 77, 77])), 0.0);
        // Uniform red (255, 0, 0): rg = 255, yb = 127.5, no spread: M = 0.3 * |(255, 127.5)|.
        let m = colourfulness(&img(8, 8, |_, _| [255, 0, 0]));
        let want = 0.3 * (255.0f64.powi(2) + 127.5f64.powi(2)).sqrt();
        assert!((m - want).abs() < 1e-9);
        // Half red, half green: rg = ±255 -> sigma_rg = 255; yb = 127.5 both -> mean yb 127.5.
        let m = colourfulness(&img(
            8,
            8,
            |x, _| if x < 4 { [255, 0, 0] } else { [0, 255, 0] },
        ));
        let want = 255.0 + 0.3 * 127.5;
        assert!((m - want).abs() < 1e-6, "{m}");
    }
}
