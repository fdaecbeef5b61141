use crate::{colorize, shared_data};

/// The bundled model against the gray baseline on two held-out sets (the acceptance
/// check): PSNR not below the gray input's, mean colourfulness at least 15.
#[test]
fn bundled_model_beats_gray_on_bsds500_and_intel() {
    for set in ["bsds500", "intel"] {
        let out = colorize()
            .args(["eval", "--json", "--data"])
            .arg(shared_data().join("val").join(set))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let model_psnr = v["model"]["psnr"].as_f64().unwrap();
        let gray_psnr = v["gray"]["psnr"].as_f64().unwrap();
        let cf = v["model"]["colourfulness"].as_f64().unwrap();
        assert!(v["images"].as_u64().unwrap() >= 64, "{v}");
        assert_eq!(v["gray"]["colourfulness"].as_f64().unwrap(), 0.0);
        assert!(
            model_psnr >= gray_psnr,
            "{set}: PSNR {model_psnr:.2} below gray {gray_psnr:.2}"
        );
        assert!(cf >= 15.0, "{set}: colourfulness {cf:.1}");
        assert!(v["model"]["ssim"].as_f64().unwrap() > 0.8, "{v}");
    }
}
