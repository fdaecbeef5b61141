//! Every architecture, loss and schedule: one optimiser step lowers the loss on a fixed batch, one
//! GAN step changes both networks, every schedule trains a model `Colorizer` loads, and a loss
//! that becomes infinite keeps the last good checkpoint.

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use colorize_core::io::DecodeLimits;
use colorize_models::Colorizer;
use colorize_train::ab_bins::{AbBins, ab_bins_loss};
use colorize_train::critics::{CriticConfig, CriticKind};
use colorize_train::data::{LabDataset, make_batch};
use colorize_train::losses::{GanLoss, critic_loss, generator_adversarial_loss, l1_ab, mse_ab};
use colorize_train::{Arch, Loss, Schedule, TrainError, TrainOptions};

use crate::training::{make_dataset, options, train_quietly};

fn dataset(dir: &Path) -> LabDataset {
    make_dataset(dir, 12);
    let files = colorize_core::files::find_images(dir).unwrap();
    LabDataset::load(&files, 48, &DecodeLimits::default())
}

fn loss_of(loss: Loss, pred: Tensor<4>, b: &colorize_train::data::Batch) -> Tensor<1> {
    match loss {
        Loss::L1 => l1_ab(pred, b.ab.clone()),
        Loss::Mse => mse_ab(pred, b.ab.clone()),
        Loss::AbBins => ab_bins_loss(pred, b.bins.as_ref().unwrap()),
    }
}

/// Sums the absolute values of every trained parameter: a cheap fingerprint of a module's weights.
struct Fingerprint(f64);

impl ModuleVisitor for Fingerprint {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // Trained weights only: batch-norm running statistics and spectral-norm u, v are not.
        let v = param.val();
        if v.is_require_grad() {
            self.0 += f64::from(v.abs().sum().into_scalar::<f32>());
        }
    }
}

fn fingerprint<M: Module>(m: &M) -> f64 {
    let mut f = Fingerprint(0.0);
    m.visit(&mut f);
    f.0
}

#[test]
fn one_step_lowers_the_loss_for_every_architecture_and_loss() {
    let _rng = crate::flex_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let device = Device::flex().autodiff();
    for (name, arch) in Arch::ALL {
        for loss in [Loss::L1, Loss::Mse, Loss::AbBins] {
            let mut o = TrainOptions::new("d".into(), "o".into());
            o.arch = arch;
            o.preset = colorize_train::Preset::Tiny;
            o.loss = Some(loss);
            device.seed(7);
            let mut net = o.network().init(&device).unwrap();
            let bins = (loss == Loss::AbBins).then(|| AbBins::from_dataset(&data));
            let b = make_batch(
                &o.model_io(),
                &data,
                &[0, 1, 2, 3],
                32,
                0.8,
                3,
                bins.as_ref(),
                &device,
            )
            .unwrap();
            let mut optim = AdamWConfig::new().init();
            let before = loss_of(loss, net.forward(b.l.clone()), &b);
            let v0 = before.clone().into_scalar::<f32>();
            let grads = GradientsParams::from_grads(before.backward(), &net);
            net = optim.step(1e-3, net, grads);
            let v1 = loss_of(loss, net.forward(b.l.clone()), &b).into_scalar::<f32>();
            assert!(v1 < v0, "{name} {loss:?}: {v0} -> {v1}");
        }
    }
}

#[test]
fn one_gan_step_changes_both_networks() {
    let _rng = crate::flex_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let device = Device::flex().autodiff();
    for kind in [CriticKind::Patchgan, CriticKind::Deoldify] {
        let o = TrainOptions::new("d".into(), "o".into());
        let mut generator = o.network().init(&device).unwrap();
        let mut critic = CriticConfig { kind, width: 16 }.init(&device);
        let b = make_batch(
            &o.model_io(),
            &data,
            &[0, 1, 2, 3],
            64,
            0.8,
            3,
            None,
            &device,
        )
        .unwrap();
        let (g0, c0) = (fingerprint(&generator), fingerprint(&critic));
        let mut g_optim = AdamWConfig::new().with_beta_1(0.5).init();
        let mut c_optim = AdamWConfig::new().with_beta_1(0.5).init();
        // Critic step on real vs generated.
        let fake = generator.forward(b.l.clone()).detach();
        let d = critic_loss(
            GanLoss::Hinge,
            critic.forward(b.l.clone(), b.ab.clone()),
            critic.forward(b.l.clone(), fake),
        );
        let grads = GradientsParams::from_grads(d.backward(), &critic);
        critic = c_optim.step(4e-4, critic, grads).power_iteration();
        let c1 = fingerprint(&critic);
        // Generator step on reconstruction + adversarial; the critic's weights stay as they are.
        let pred = generator.forward(b.l.clone());
        let g = l1_ab(pred.clone(), b.ab.clone()).mul_scalar(100.0)
            + generator_adversarial_loss(GanLoss::Hinge, critic.forward(b.l.clone(), pred));
        let grads = GradientsParams::from_grads(g.backward(), &generator);
        generator = g_optim.step(1e-4, generator, grads);
        assert!((c1 - c0).abs() > 1e-6 * c0, "{kind:?}: critic unchanged");
        let g1 = fingerprint(&generator);
        assert!((g1 - g0).abs() > 1e-6 * g0, "{kind:?}: generator unchanged");
        assert_eq!(
            fingerprint(&critic),
            c1,
            "the generator step leaves the critic alone"
        );
    }
}

#[test]
fn every_architecture_and_schedule_trains_a_loadable_model() {
    let _rng = crate::flex_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_dataset(&data, 12);
    let val = tmp.path().join("val");
    make_dataset(&val, 2);
    let photo = val.join("p0.png");
    // Every architecture with every schedule, and ab-bins on two of them.
    let mut runs: Vec<(Arch, Schedule, Option<Loss>)> = Vec::new();
    for (_, arch) in Arch::ALL {
        for (_, schedule) in Schedule::ALL {
            runs.push((arch, schedule, None));
        }
    }
    runs.push((Arch::UnetResnet34, Schedule::Regression, Some(Loss::AbBins)));
    runs.push((Arch::PlainCnn, Schedule::Regression, Some(Loss::AbBins)));
    for (arch, schedule, loss) in runs {
        let out = tmp
            .path()
            .join(format!("{}-{schedule:?}-{loss:?}", arch.name()));
        let mut o = options(&data, &out, 1);
        o.val = Some(val.clone());
        o.arch = arch;
        o.schedule = schedule;
        o.loss = loss;
        o.critic_width = 8;
        if schedule != Schedule::Regression {
            // The DeOldify critic takes 64-pixel crops at least.
            o.crop_size = 64;
            o.load_size = 64;
        }
        o.critic_steps = Some(2);
        o.gan_steps = Some(2);
        o.gan_round_steps = Some(1);
        let s = train_quietly(&o).unwrap_or_else(|e| panic!("{arch:?} {schedule:?}: {e}"));
        let rounds = if schedule == Schedule::Nogan { 4 } else { 1 };
        assert_eq!(s.last_epoch, rounds, "{arch:?} {schedule:?}");
        let c = Colorizer::load(&out, &Device::flex()).unwrap();
        let img = image::open(&photo).unwrap();
        let rgb = c.colorize(&img).unwrap();
        assert_eq!(rgb.dimensions(), (img.width(), img.height()));
        let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
        assert_eq!(csv.lines().count(), 1 + rounds, "{csv}");
        if schedule == Schedule::Nogan {
            assert!(
                csv.contains(",critic-pretraining,") && csv.contains(",adversarial,"),
                "{csv}"
            );
            assert!(out.join("pretrained/model.safetensors").is_file());
            assert_eq!(std::fs::read_dir(out.join("snapshots")).unwrap().count(), 2);
            assert!(
                s.best_epoch >= 3,
                "NoGAN exports a GAN round, not {}",
                s.best_epoch
            );
        }
    }
}

#[test]
fn progressive_sizes_share_the_epochs() {
    let _rng = crate::flex_rng();
    let o = {
        let mut o = TrainOptions::new("d".into(), "o".into());
        o.sizes = vec![64, 96, 128];
        o.epochs = 6;
        o
    };
    let rounds = colorize_train::trainer::plan(&o, 10);
    let sizes: Vec<usize> = rounds.iter().map(|r| r.size).collect();
    assert_eq!(sizes, [64, 64, 96, 96, 128, 128]);
    // Each size is its own cycle, the peak halving.
    assert_eq!(rounds[0].cycle, (0, 20, 2e-3));
    assert_eq!(rounds[2].cycle, (20, 20, 1e-3));
    assert_eq!(rounds[5].cycle, (40, 20, 5e-4));
    let mut o = o;
    o.schedule = Schedule::Nogan;
    o.generator = Some("g".into());
    o.gan_steps = Some(10);
    o.gan_round_steps = Some(4);
    let rounds = colorize_train::trainer::plan(&o, 10);
    let steps: Vec<usize> = rounds.iter().map(|r| r.steps).collect();
    assert_eq!(
        steps,
        [10, 4, 4, 2],
        "critic pretraining, then GAN rounds of 4"
    );
    assert!(rounds.iter().all(|r| r.size == 128));
}

#[test]
fn a_diverging_loss_keeps_the_last_good_checkpoint() {
    let _rng = crate::flex_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_dataset(&data, 20);
    let out = tmp.path().join("run");
    let mut o = options(&data, &out, 1);
    train_quietly(&o).unwrap();
    let weights = std::fs::read(out.join("model.safetensors")).unwrap();
    let state = std::fs::read(out.join("checkpoint/state.json")).unwrap();
    o.epochs = 2;
    o.resume = true;
    o.learning_rate = 1e30;
    let e = train_quietly(&o).unwrap_err();
    assert!(matches!(e, TrainError::Diverged { .. }), "{e}");
    assert!(e.to_string().contains("NaN or infinite"), "{e}");
    assert_eq!(
        std::fs::read(out.join("model.safetensors")).unwrap(),
        weights
    );
    assert_eq!(
        std::fs::read(out.join("checkpoint/state.json")).unwrap(),
        state
    );
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        2,
        "no row for the diverged epoch: {csv}"
    );
}

#[test]
fn all_gray_training_photos_are_refused() {
    let _rng = crate::flex_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("gray");
    std::fs::create_dir_all(&data).unwrap();
    for i in 0..4u8 {
        image::GrayImage::from_fn(40, 40, |x, y| image::Luma([(x as u8 * 5) ^ (y as u8 + i)]))
            .save(data.join(format!("g{i}.png")))
            .unwrap();
    }
    let e = train_quietly(&options(&data, &tmp.path().join("run"), 1)).unwrap_err();
    assert!(matches!(e, TrainError::AllGray { .. }), "{e}");
    assert!(e.to_string().contains("gray"), "{e}");
}

#[test]
fn critic_pretraining_leaves_the_generator_exactly_as_it_was() {
    let _rng = crate::flex_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_dataset(&data, 12);
    let val = tmp.path().join("val");
    make_dataset(&val, 3);
    let mut o = options(&data, &tmp.path().join("pretrained"), 1);
    o.val = Some(val.clone());
    o.crop_size = 64;
    o.load_size = 64;
    train_quietly(&o).unwrap();
    let psnr_of_row = |csv: &str, row: usize| -> String {
        csv.lines()
            .nth(row)
            .unwrap()
            .split(',')
            .nth(5)
            .unwrap()
            .to_string()
    };
    let before = std::fs::read_to_string(tmp.path().join("pretrained/metrics.csv")).unwrap();
    let mut g = options(&data, &tmp.path().join("gan"), 1);
    g.val = Some(val);
    g.crop_size = 64;
    g.load_size = 64;
    g.schedule = Schedule::Nogan;
    g.generator = Some(tmp.path().join("pretrained"));
    g.critic_width = 8;
    g.critic_steps = Some(4);
    g.gan_steps = Some(1);
    train_quietly(&g).unwrap();
    let after = std::fs::read_to_string(tmp.path().join("gan/metrics.csv")).unwrap();
    assert!(
        after.lines().nth(1).unwrap().contains("critic-pretraining"),
        "{after}"
    );
    assert_eq!(
        psnr_of_row(&after, 1),
        psnr_of_row(&before, 1),
        "{before}\n{after}"
    );
}
