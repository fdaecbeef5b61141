use std::path::Path;

use burn::prelude::*;
use colorize_core::CoreError;
use colorize_core::files::find_images;
use colorize_models::Colorizer;
use colorize_train::data::split_files;
use colorize_train::{Preset, TrainError, TrainEvent, TrainOptions, TrainSummary, train};
use image::{Rgb, RgbImage};

/// Writes `n` generated photos whose colour follows from their lightness pattern: a bright sky
/// (blue) above a darker textured field (green), the horizon at a random height. A network can learn
/// this mapping from L alone, so the loss must fall.
pub fn make_dataset(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    for i in 0..n {
        let horizon = 16 + (i * 7) % 32;
        let img = RgbImage::from_fn(64, 64, |x, y| {
            if (y as usize) < horizon {
                let v = 200 - y as u8;
                Rgb([v / 2, v - 20, v])
            } else {
                let t = ((x * 13 + y * 7 + i as u32 * 5) % 40) as u8;
                Rgb([40 + t, 120 + t, 30 + t / 2])
            }
        });
        // Half in a sub-folder: the data set is a folder tree.
        let p = if i % 2 == 0 {
            dir.join(format!("p{i}.png"))
        } else {
            dir.join(format!("sub/p{i}.jpg"))
        };
        img.save(p).unwrap();
    }
    std::fs::write(dir.join("README.txt"), "not an image").unwrap();
}

/// Trains and collects the events it reported.
fn train_collecting(o: &TrainOptions) -> (TrainSummary, Vec<TrainEvent>) {
    let mut events = Vec::new();
    let summary = train(o, &Device::flex(), &mut |e| events.push(e.clone())).unwrap();
    (summary, events)
}

/// Short names of the events, steps folded into one `Step xN` entry per run of steps.
fn outline(events: &[TrainEvent]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in events {
        let name = format!("{e:?}");
        let name = name.split([' ', '{']).next().unwrap().to_string();
        match out.last_mut() {
            Some(last) if name == "Step" && last.starts_with("Step") => {
                let k: usize = last.trim_start_matches("Step x").parse().unwrap();
                *last = format!("Step x{}", k + 1);
            }
            _ if name == "Step" => out.push("Step x1".into()),
            _ => out.push(name),
        }
    }
    out
}

/// Trains without looking at the events.
pub fn train_quietly(o: &TrainOptions) -> Result<TrainSummary, TrainError> {
    train(o, &Device::flex(), &mut |_| {})
}

pub fn options(data: &Path, out: &Path, epochs: usize) -> TrainOptions {
    let mut o = TrainOptions::new(data.to_path_buf(), out.to_path_buf());
    o.preset = Preset::Tiny;
    o.epochs = epochs;
    o.batch_size = 8;
    o.crop_size = 32;
    o.load_size = 48;
    o.render_size = 64;
    o.learning_rate = 5e-3;
    o
}

#[test]
fn training_lowers_the_loss_and_exports_a_model() {
    let _rng = crate::flex_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_dataset(&data, 40);
    let out = tmp.path().join("run");
    let (summary, events) = train_collecting(&options(&data, &out, 6));
    // 36 training photos in batches of 8: 4 steps per epoch, each epoch validated and checkpointed.
    let o = outline(&events);
    assert_eq!(o[0], "Started", "{o:?}");
    let epochs: Vec<&[String]> = o[1..].split(|n| n == "Checkpointed").collect();
    assert_eq!(epochs.len(), 7, "6 epochs and the empty tail: {o:?}");
    for e in &epochs[..6] {
        assert_eq!(e[..3], ["Step x4", "Validating", "Validated"], "{o:?}");
    }
    let exported: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Exported { epoch, .. } => Some(*epoch),
            _ => None,
        })
        .collect();
    assert_eq!(exported.last(), Some(&summary.best_epoch));
    let validated_losses: Vec<f64> = events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Validated { train_loss, .. } => Some(*train_loss),
            _ => None,
        })
        .collect();
    assert_eq!(validated_losses, summary.epoch_losses);
    assert_eq!(summary.train_images, 36, "90/10 split of 40");
    assert_eq!(summary.val_images, 4);
    let first = summary.epoch_losses[0];
    let last = *summary.epoch_losses.last().unwrap();
    assert!(
        last < 0.6 * first,
        "loss went {first} -> {last}: {:?}",
        summary.epoch_losses
    );
    // metrics.csv: header + one row per epoch with finite validation numbers.
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("epoch,step,seconds,train_loss"));
    assert_eq!(rows.len(), 7);
    for r in &rows[1..] {
        let psnr: f64 = r.split(',').nth(5).unwrap().parse().unwrap();
        assert!(psnr.is_finite() && psnr > 5.0, "{r}");
    }
    // The exported model loads and colourises.
    let c = Colorizer::load(&out, &Device::flex()).unwrap();
    assert_eq!(c.render_size(), 64);
    let (a, b) = c.predict_ab(&vec![80.0; 64 * 64], 64, 64).unwrap();
    assert!(a.iter().chain(&b).all(|v| v.is_finite()));
}

#[test]
fn resume_continues_after_the_last_checkpoint() {
    let _rng = crate::flex_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_dataset(&data, 20);
    let out = tmp.path().join("run");
    let mut o = options(&data, &out, 2);
    let s1 = train_quietly(&o).unwrap();
    assert_eq!(s1.epoch_losses.len(), 2);
    assert!(out.join("checkpoint/optimizer.bpk").is_file());
    o.epochs = 3;
    o.resume = true;
    let (s2, events) = train_collecting(&o);
    assert_eq!(s2.epoch_losses.len(), 1, "only epoch 3 runs");
    assert!(
        matches!(
            events[0],
            TrainEvent::Resumed {
                epoch: 2,
                step: 4,
                ..
            }
        ),
        "{:?}",
        events[0]
    );
    assert!(
        matches!(
            events[1],
            TrainEvent::Started {
                first_epoch: 3,
                epochs: 3,
                steps_per_epoch: 2,
                ..
            }
        ),
        "{:?}",
        events[1]
    );
    assert!(matches!(
        events.last(),
        Some(TrainEvent::Checkpointed {
            epoch: 3,
            step: 6,
            ..
        })
    ));
    assert_eq!(s2.last_epoch, 3);
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let epochs: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(epochs, ["1", "2", "3"]);
    // Resumed training keeps learning from where it was, not from scratch.
    assert!(
        s2.epoch_losses[0] < s1.epoch_losses[0],
        "{:?} then {:?}",
        s1.epoch_losses,
        s2.epoch_losses
    );
}

#[test]
fn bad_data_folders_are_clear_errors() {
    let _rng = crate::flex_rng();
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), "x").unwrap();
    let e = train_quietly(&options(&empty, &tmp.path().join("run"), 1)).unwrap_err();
    assert!(
        matches!(e, TrainError::Core(CoreError::NoImages { .. }))
            && e.to_string().contains("empty"),
        "{e}"
    );
    let e = train_quietly(&options(
        &tmp.path().join("missing"),
        &tmp.path().join("run"),
        1,
    ))
    .unwrap_err();
    assert!(
        matches!(e, TrainError::Core(CoreError::NotAFolder { .. }))
            && e.to_string().contains("missing"),
        "{e}"
    );
    assert!(find_images(&empty).is_err());
    let one = vec![tmp.path().join("a.png")];
    assert!(matches!(
        split_files(one, 1, tmp.path()),
        Err(TrainError::TooFewImages { found: 1, .. })
    ));
    let mut o = options(&empty, &tmp.path().join("run"), 1);
    o.batch_size = 0;
    assert!(matches!(train_quietly(&o), Err(TrainError::Option(_))));
}

#[test]
fn time_budget_stops_cleanly_with_a_checkpoint() {
    let _rng = crate::flex_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_dataset(&data, 40);
    let out = tmp.path().join("run");
    let mut o = options(&data, &out, 50);
    o.max_minutes = Some(0.0001); // stops after the first step
    let (s, events) = train_collecting(&o);
    assert_eq!(s.last_epoch, 1);
    assert_eq!(
        events.last(),
        Some(&TrainEvent::StoppedEarly {
            epoch: 1,
            within_epoch: true
        })
    );
    assert_eq!(s.epoch_losses.len(), 1);
    assert!(out.join("checkpoint/state.json").is_file() && out.join("model.safetensors").is_file());
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("checkpoint/state.json")).unwrap()).unwrap();
    assert_eq!(state["step"], 1, "{state}");
}

#[test]
fn a_round_that_diverges_on_its_last_step_exports_nothing() {
    let _rng = crate::flex_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_dataset(&data, 10);
    let out = tmp.path().join("run");
    let mut o = options(&data, &out, 1);
    // 9 training photos in batches of 8: one step per epoch. Its loss is computed before the
    // update that blows the weights up, so only the round-end check can see the divergence.
    o.learning_rate = 1e30;
    let e = train_quietly(&o).unwrap_err();
    assert!(
        matches!(
            &e,
            TrainError::Diverged {
                epoch: 1,
                step: 1,
                ..
            }
        ),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains("round 1") && !msg.contains('\n'), "{msg}");
    // Nothing of the diverged round: no exported model, no checkpoint, no metrics row.
    assert!(!out.join("model.safetensors").exists() && !out.join("config.json").exists());
    assert!(!out.join("checkpoint").exists());
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap_or_default();
    assert!(csv.lines().count() <= 1, "{csv}");
}

/// The epochs of `metrics.csv`'s rows, in order.
fn metric_epochs(out: &Path) -> Vec<String> {
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert!(csv.ends_with('\n'), "no row cut short: {csv:?}");
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect()
}

#[test]
fn a_crash_mid_checkpoint_resumes_from_the_last_complete_one() {
    let _rng = crate::flex_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_dataset(&data, 20);
    let out = tmp.path().join("run");
    let mut o = options(&data, &out, 2);
    train_quietly(&o).unwrap();
    // A `kill -9` during epoch 3's checkpoint: its row is in metrics.csv, the staging folder
    // holds half a weights file and a state claiming epoch 3, and epoch 4's row was cut short
    // (as a crash in the middle of a write would leave it).
    let row3 = std::fs::read_to_string(out.join("metrics.csv"))
        .unwrap()
        .lines()
        .nth(2)
        .unwrap()
        .replacen("2,", "3,", 1);
    let mut csv = std::fs::OpenOptions::new()
        .append(true)
        .open(out.join("metrics.csv"))
        .unwrap();
    std::io::Write::write_all(&mut csv, format!("{row3}\n4,8,1").as_bytes()).unwrap();
    let staging = out.join("checkpoint.partial");
    std::fs::create_dir_all(&staging).unwrap();
    let weights = std::fs::read(out.join("checkpoint/model.safetensors")).unwrap();
    std::fs::write(
        staging.join("model.safetensors"),
        &weights[..weights.len() / 2],
    )
    .unwrap();
    std::fs::write(staging.join("state.json"), br#"{"epoch": 3, "step": 6}"#).unwrap();

    o.epochs = 3;
    o.resume = true;
    let (s, events) = train_collecting(&o);
    assert!(
        matches!(
            events[0],
            TrainEvent::Resumed {
                epoch: 2,
                step: 4,
                ..
            }
        ),
        "resumed from the last complete checkpoint: {:?}",
        events[0]
    );
    assert_eq!(s.epoch_losses.len(), 1, "epoch 3 runs again");
    assert!(!staging.exists(), "the stale staging folder is gone");
    assert_eq!(metric_epochs(&out), ["1", "2", "3"], "each epoch once");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("checkpoint/state.json")).unwrap()).unwrap();
    assert_eq!(
        (state["epoch"].as_u64(), state["step"].as_u64()),
        (Some(3), Some(6))
    );
}

#[test]
fn metrics_csv_has_each_epoch_once_after_an_interrupted_epoch() {
    let _rng = crate::flex_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_dataset(&data, 20);
    let out = tmp.path().join("run");
    let mut o = options(&data, &out, 1);
    train_quietly(&o).unwrap();
    // A session that validated epoch 2 and wrote its row, then died before its checkpoint.
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let row2 = csv.lines().nth(1).unwrap().replacen("1,", "2,", 1);
    std::fs::write(out.join("metrics.csv"), format!("{csv}{row2}\n")).unwrap();
    o.epochs = 3;
    o.resume = true;
    train_quietly(&o).unwrap();
    assert_eq!(metric_epochs(&out), ["1", "2", "3"]);
    // A fresh run (no --resume) into the same folder starts its metrics over.
    o.resume = false;
    o.epochs = 1;
    train_quietly(&o).unwrap();
    assert_eq!(metric_epochs(&out), ["1"]);
}

#[test]
fn a_crash_between_checkpoint_and_export_exports_again_on_resume() {
    let _rng = crate::flex_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_dataset(&data, 20);
    let out = tmp.path().join("run");
    let mut o = options(&data, &out, 1);
    train_quietly(&o).unwrap();
    // Epoch 1 is the best and is in the checkpoint; a crash before its export would leave an
    // older exported model: stand one in from another seed.
    let mut other = options(&data, &tmp.path().join("other"), 1);
    other.seed = 99;
    train_quietly(&other).unwrap();
    std::fs::copy(
        tmp.path().join("other/model.safetensors"),
        out.join("model.safetensors"),
    )
    .unwrap();
    let tensors = |p: &Path| {
        let w = colorize_models::Weights::open(p).unwrap();
        w.tensors()
            .into_iter()
            .map(|(k, t)| (k.to_string(), t.values.clone()))
            .collect::<Vec<_>>()
    };
    let checkpoint = tensors(&out.join("checkpoint/model.safetensors"));
    assert_ne!(tensors(&out.join("model.safetensors")), checkpoint);
    o.resume = true;
    train_quietly(&o).unwrap();
    assert_eq!(
        tensors(&out.join("model.safetensors")),
        checkpoint,
        "the exported model is the checkpoint's best round"
    );
}
