//! `--engine`, `--isa` and `colorize bench` from the command line.

use crate::{colorize, shared_data, worst_difference};

/// The same photo through the native engine and through burn: equal up to 8-bit rounding.
#[test]
fn native_and_burn_engines_give_the_same_photo() {
    let dir = tempfile::tempdir().unwrap();
    let input = shared_data().join("historical/1864UnionSoldier.jpg");
    for engine in ["native", "burn"] {
        colorize()
            .args(["image", "--format", "png", "--engine", engine, "--out"])
            .arg(dir.path().join(engine))
            .arg(&input)
            .assert()
            .success();
    }
    let open = |e: &str| {
        image::open(dir.path().join(e).join("1864UnionSoldier.png"))
            .unwrap()
            .into_rgb8()
    };
    let (a, b) = (open("native"), open("burn"));
    let worst = worst_difference(&a, &b);
    assert!(worst <= 1, "native and burn differ by {worst} levels");
    // The photo got colour (not just the gray input back).
    assert!(a.pixels().any(|p| p[0].abs_diff(p[2]) > 8));
}

#[test]
fn bench_compares_engines_in_one_json_report() {
    let out = colorize()
        .args([
            "bench",
            "--engine",
            "all",
            "--network-only",
            "--network-size",
            "64x96",
            "--iterations",
            "1",
            "--json",
        ])
        .args(["--isa", "portable"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["isa"], "portable");
    let network = report["network"].as_array().unwrap();
    let engines: Vec<&str> = network
        .iter()
        .map(|r| r["engine"].as_str().unwrap())
        .collect();
    assert_eq!(engines, ["native", "burn"]);
    for r in network {
        assert_eq!(
            (r["width"].as_u64(), r["height"].as_u64()),
            (Some(64), Some(96))
        );
        assert!(
            r["median_ms"].as_f64().unwrap() > 0.0 && r["gflops_per_s"].as_f64().unwrap() > 0.0
        );
    }
}

#[test]
fn engine_all_is_refused_outside_bench_and_bad_sizes_are_usage_errors() {
    let input = shared_data().join("historical/1864UnionSoldier.jpg");
    let dir = tempfile::tempdir().unwrap();
    let out = colorize()
        .args(["image", "--engine", "all", "--out"])
        .arg(dir.path())
        .arg(&input)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--engine all is only for `colorize bench`")
    );
    colorize()
        .args(["bench", "--network-size", "64by64"])
        .assert()
        .code(2);
    colorize()
        .args(["bench", "--network-size", "0x64"])
        .assert()
        .code(2);
}
