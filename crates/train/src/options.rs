//! What a training run does: the architecture (`--arch`), its size (`--preset`), the loss
//! (`--loss`), the schedule (`--schedule`), progressive resizing (`--sizes`) and the GAN settings,
//! as [`TrainOptions`], checked before any work.

use std::path::PathBuf;

use colorize_models::fusion::FusionConfig;
use colorize_models::plain_cnn::PlainCnnConfig;
use colorize_models::resnet18_regressor::Resnet18RegressorConfig;
use colorize_models::unet_resnet::{OutputActivation, UnetResnetConfig};
use colorize_models::{ModelIo, NetworkConfig, OutputKind};
use serde::{Deserialize, Serialize};

use crate::ab_bins::{TEMPERATURE, gamut_bins};
use crate::critics::CriticKind;
use crate::error::TrainError;
use crate::losses::GanLoss;

fn parse_name<T: Copy>(kind: &str, name: &str, table: &[(&str, T)]) -> Result<T, TrainError> {
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
            TrainError::Option(format!(
                "unknown {kind} `{name}`: expected one of {}",
                names.join(", ")
            ))
        })
}

/// The generator architectures `colorize train --arch` builds (each in its own file of
/// `colorize-models`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// `plain-cnn`: conv encoder + transposed-conv decoder ([`colorize_models::plain_cnn`]); MSE.
    PlainCnn,
    /// `resnet18-regressor`: ResNet-18 encoder + upsampling head
    /// ([`colorize_models::resnet18_regressor`]); MSE.
    Resnet18Regressor,
    /// `unet-resnet34`: the U-Net over a ResNet encoder ([`colorize_models::unet_resnet`]), with
    /// optional self-attention and spectral normalisation; L1.
    UnetResnet34,
    /// `fusion`: Deep Koalarization's encoder + global-feature fusion + decoder
    /// ([`colorize_models::fusion`]); MSE as in the paper.
    Fusion,
}

impl Arch {
    /// Every architecture with its `--arch` name.
    pub const ALL: [(&'static str, Arch); 4] = [
        ("plain-cnn", Arch::PlainCnn),
        ("resnet18-regressor", Arch::Resnet18Regressor),
        ("unet-resnet34", Arch::UnetResnet34),
        ("fusion", Arch::Fusion),
    ];

    /// The architecture called `name`.
    ///
    /// # Errors
    /// [`TrainError::Option`] naming the valid names.
    pub fn parse(name: &str) -> Result<Self, TrainError> {
        parse_name("architecture", name, &Self::ALL)
    }

    /// The `--arch` name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, a)| *a == self)
            .expect("listed")
            .0
    }

    /// The loss of the architecture's own recipe: MSE for the plain CNN, the ResNet-18 regressor
    /// and Deep Koalarization (their papers' choice), L1 for the U-Net (pix2pix, DeOldify).
    pub fn default_loss(self) -> Loss {
        match self {
            Self::UnetResnet34 => Loss::L1,
            _ => Loss::Mse,
        }
    }

    /// The smallest training crop side the architecture takes, in pixels (its total stride).
    pub fn min_size(self) -> usize {
        match self {
            Self::PlainCnn => 16,
            _ => 32,
        }
    }
}

/// The network size of every architecture (`--preset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// The papers' widths (for the U-Net: the full ResNet-34 encoder, about 24 M parameters).
    #[serde(alias = "full")]
    Resnet34,
    /// About 1-4 M parameters: trains at tens of photos per second on 2 CPU cores.
    Light,
    /// A tiny network for tests.
    Tiny,
}

/// The training loss of the generator (`--loss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    /// Mean absolute error on ab ([`crate::losses::l1_ab`]).
    L1,
    /// Mean squared error on ab ([`crate::losses::mse_ab`]).
    Mse,
    /// Classification over 313 ab bins with class rebalancing, decoded by the annealed mean
    /// ([`crate::ab_bins`]).
    AbBins,
}

impl Loss {
    /// Every loss with its `--loss` name.
    pub const ALL: [(&'static str, Loss); 3] = [
        ("l1", Loss::L1),
        ("mse", Loss::Mse),
        ("ab-bins", Loss::AbBins),
    ];

    /// The loss called `name`.
    ///
    /// # Errors
    /// [`TrainError::Option`] naming the valid names.
    pub fn parse(name: &str) -> Result<Self, TrainError> {
        parse_name("loss", name, &Self::ALL)
    }
}

/// The training schedule (`--schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// The generator alone, on its reconstruction loss, for `--epochs`.
    Regression,
    /// pix2pix (Isola et al. 2017, arXiv:1611.07004): generator and PatchGAN critic together from
    /// the start, non-saturating GAN loss plus 100 × L1, Adam β1 = 0.5, for `--epochs`.
    Pix2pix,
    /// DeOldify's NoGAN: the generator pretrained on its loss for `--epochs` (or loaded with
    /// `--generator`), the critic pretrained on generated vs real photos (`--critic-steps`), then a
    /// short GAN phase (`--gan-steps`) validated and snapshotted every `--gan-round-steps`, the best
    /// snapshot exported.
    Nogan,
}

impl Schedule {
    /// Every schedule with its `--schedule` name.
    pub const ALL: [(&'static str, Schedule); 3] = [
        ("regression", Schedule::Regression),
        ("pix2pix", Schedule::Pix2pix),
        ("nogan", Schedule::Nogan),
    ];

    /// The schedule called `name`.
    ///
    /// # Errors
    /// [`TrainError::Option`] naming the valid names.
    pub fn parse(name: &str) -> Result<Self, TrainError> {
        parse_name("schedule", name, &Self::ALL)
    }

    /// The critic the schedule's paper uses: PatchGAN for pix2pix, DeOldify's for NoGAN.
    pub fn default_critic(self) -> CriticKind {
        match self {
            Self::Nogan => CriticKind::Deoldify,
            _ => CriticKind::Patchgan,
        }
    }

    /// The GAN loss of the schedule's paper: non-saturating for pix2pix, hinge for NoGAN.
    pub fn default_gan_loss(self) -> GanLoss {
        match self {
            Self::Nogan => GanLoss::Hinge,
            _ => GanLoss::NonSaturating,
        }
    }
}

/// Options of a training run (the flags of `colorize train`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Folder tree of colour photos.
    pub data: PathBuf,
    /// Validation folder; without it 10 % of `data` is held out.
    pub val: Option<PathBuf>,
    /// Run directory.
    pub out: PathBuf,
    /// Generator architecture.
    pub arch: Arch,
    /// Network size.
    pub preset: Preset,
    /// U-Net only: SAGAN self-attention in the decoder.
    pub self_attention: bool,
    /// U-Net only: spectral normalisation of the decoder's convolutions.
    pub spectral_norm: bool,
    /// Fusion only: a safetensors file of torchvision ResNet-18 weights for the global-feature
    /// backbone (otherwise it trains from scratch with the rest).
    pub backbone: Option<PathBuf>,
    /// The generator's loss; `None` = the architecture's own ([`Arch::default_loss`]).
    pub loss: Option<Loss>,
    /// The schedule.
    pub schedule: Schedule,
    /// Epochs: of the whole run (regression, pix2pix) or of the generator pretraining (NoGAN).
    pub epochs: usize,
    /// Photos per step.
    pub batch_size: usize,
    /// Side of the square training crops, in pixels (the last size with progressive resizing).
    pub crop_size: usize,
    /// Progressive resizing: crop sides in order, each for an equal share of the epochs; empty
    /// = `[crop_size]`.
    pub sizes: Vec<usize>,
    /// Shorter side the photos are resized to before cropping, in pixels.
    pub load_size: usize,
    /// Smallest crop side as a fraction of the shorter side (random-resized-crop scale).
    pub min_crop_fraction: f64,
    /// Render size used for validation and stored in the exported `config.json`.
    pub render_size: u32,
    /// Peak learning rate of the generator.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Fraction of all steps spent in linear warm-up.
    pub warmup_fraction: f64,
    /// Seed for initialisation, shuffling and crops.
    pub seed: u64,
    /// At most this many validation photos per epoch (evenly spaced); `None` = all.
    pub val_limit: Option<usize>,
    /// Stop (after validating and checkpointing) once this many minutes of training have passed,
    /// counted over resumed sessions too.
    pub max_minutes: Option<f64>,
    /// Continue from `out/checkpoint` if it exists.
    pub resume: bool,
    /// GAN schedules: the critic; `None` = the schedule's ([`Schedule::default_critic`]).
    pub critic: Option<CriticKind>,
    /// GAN schedules: the critic's first-layer width (64 in the papers).
    pub critic_width: usize,
    /// GAN schedules: the adversarial loss; `None` = the schedule's.
    pub gan_loss: Option<GanLoss>,
    /// GAN schedules: the critic's learning rate; `None` = 4 × the generator's (the two
    /// time-scale update rule, Heusel et al. 2017, with SAGAN's ratio).
    pub critic_lr: Option<f64>,
    /// GAN schedules: weight of the reconstruction loss beside the adversarial term (pix2pix: 100).
    pub recon_weight: f64,
    /// NoGAN: start from this trained model directory instead of pretraining the generator.
    pub generator: Option<PathBuf>,
    /// NoGAN: critic pretraining steps; `None` = one epoch's worth.
    pub critic_steps: Option<usize>,
    /// NoGAN: GAN-phase steps; `None` = one epoch's worth.
    pub gan_steps: Option<usize>,
    /// NoGAN: validate and snapshot every this many GAN steps; `None` = a quarter of the phase.
    pub gan_round_steps: Option<usize>,
    /// Export the best validation PSNR among rounds whose colourfulness reaches this (any round
    /// when none does).
    pub min_colourfulness: f64,
}

impl TrainOptions {
    /// Defaults for `data` and `out`: the light U-Net, regression on L1, 10 epochs, batch 16,
    /// 128-pixel crops of photos loaded at shorter side 160, AdamW at 2e-3 with 3 % warm-up,
    /// seed 42; for GAN schedules a width-64 critic at 4 × the learning rate and L1 weight 100.
    pub fn new(data: PathBuf, out: PathBuf) -> Self {
        Self {
            data,
            val: None,
            out,
            arch: Arch::UnetResnet34,
            preset: Preset::Light,
            self_attention: false,
            spectral_norm: false,
            backbone: None,
            loss: None,
            schedule: Schedule::Regression,
            epochs: 10,
            batch_size: 16,
            crop_size: 128,
            sizes: Vec::new(),
            load_size: 160,
            min_crop_fraction: 0.7,
            render_size: 160,
            learning_rate: 2e-3,
            weight_decay: 1e-4,
            warmup_fraction: 0.03,
            seed: 42,
            val_limit: None,
            max_minutes: None,
            resume: false,
            critic: None,
            critic_width: 64,
            gan_loss: None,
            critic_lr: None,
            recon_weight: 100.0,
            generator: None,
            critic_steps: None,
            gan_steps: None,
            gan_round_steps: None,
            min_colourfulness: 0.0,
        }
    }

    /// The loss in effect.
    pub fn loss(&self) -> Loss {
        self.loss.unwrap_or(self.arch.default_loss())
    }

    /// The crop sides in effect, in order (progressive resizing).
    pub fn sizes(&self) -> Vec<usize> {
        if self.sizes.is_empty() {
            vec![self.crop_size]
        } else {
            self.sizes.clone()
        }
    }

    /// The critic in effect.
    pub fn critic(&self) -> CriticKind {
        self.critic.unwrap_or(self.schedule.default_critic())
    }

    /// The GAN loss in effect.
    pub fn gan_loss(&self) -> GanLoss {
        self.gan_loss.unwrap_or(self.schedule.default_gan_loss())
    }

    /// The critic's learning rate in effect.
    pub fn critic_lr(&self) -> f64 {
        self.critic_lr.unwrap_or(4.0 * self.learning_rate)
    }

    /// Checks the options before any work.
    ///
    /// # Errors
    /// [`TrainError::Option`] naming the flag.
    pub fn check(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Option(m));
        if self.epochs == 0 {
            return bad("--epochs must be at least 1".into());
        }
        if self.batch_size == 0 {
            return bad("--batch-size must be at least 1".into());
        }
        let sizes = self.sizes();
        let min = self.arch.min_size();
        if let Some(&s) = sizes.iter().find(|&&s| s < min) {
            return bad(format!(
                "size {s}: `{}` needs training crops of at least {min} pixels",
                self.arch.name()
            ));
        }
        if self.schedule != Schedule::Regression {
            // The DeOldify critic halves four times and ends in an unpadded 4x4 convolution.
            let critic_min = match self.critic() {
                CriticKind::Deoldify => 64,
                CriticKind::Patchgan => 32,
            };
            if let Some(&s) = sizes.iter().find(|&&s| s < critic_min) {
                return bad(format!(
                    "size {s}: the {} critic needs crops of at least {critic_min} pixels",
                    self.critic().name()
                ));
            }
        }
        if let Some(&s) = sizes.iter().find(|&&s| s > self.load_size) {
            return bad(format!(
                "size {s} is larger than --load-size {}",
                self.load_size
            ));
        }
        let epoch_phase = !(self.schedule == Schedule::Nogan && self.generator.is_some());
        if epoch_phase && sizes.len() > self.epochs {
            return bad(format!(
                "--sizes has {} sizes but --epochs is {}: each size needs an epoch",
                sizes.len(),
                self.epochs
            ));
        }
        if !(0.05..=1.0).contains(&self.min_crop_fraction) {
            return bad("--min-crop-fraction must be in 0.05..=1".into());
        }
        for (flag, v) in [
            ("--lr", self.learning_rate),
            ("--critic-lr", self.critic_lr()),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("{flag} must be positive"));
            }
        }
        if !(self.recon_weight.is_finite() && self.recon_weight >= 0.0) {
            return bad("--recon-weight must be 0 or more".into());
        }
        if self.critic_width == 0 {
            return bad("--critic-width must be at least 1".into());
        }
        if (self.self_attention || self.spectral_norm) && self.arch != Arch::UnetResnet34 {
            return bad(
                "--self-attention and --spectral-norm apply to --arch unet-resnet34".into(),
            );
        }
        if self.backbone.is_some() && self.arch != Arch::Fusion {
            return bad("--backbone applies to --arch fusion".into());
        }
        if self.loss() == Loss::AbBins && self.schedule != Schedule::Regression {
            return bad(
                "--loss ab-bins trains with --schedule regression (the critics judge ab, not bins)"
                    .into(),
            );
        }
        if self.generator.is_some() && self.schedule != Schedule::Nogan {
            return bad("--generator applies to --schedule nogan".into());
        }
        for (flag, v) in [
            ("--critic-steps", self.critic_steps),
            ("--gan-steps", self.gan_steps),
            ("--gan-round-steps", self.gan_round_steps),
        ] {
            if v == Some(0) {
                return bad(format!("{flag} must be at least 1"));
            }
        }
        Ok(())
    }

    /// The model contract of the generator: `(L − 50)/50` in; `ab/110` out for L1 and MSE, 313
    /// ab-bin logits decoded by the annealed mean (T = 0.38) for [`Loss::AbBins`].
    pub fn model_io(&self) -> ModelIo {
        match self.loss() {
            Loss::AbBins => ModelIo {
                output: OutputKind::AbBins {
                    bins: gamut_bins(),
                    temperature: TEMPERATURE,
                },
                ..ModelIo::default()
            },
            _ => ModelIo::default(),
        }
    }

    /// The generator's network config for the architecture, preset and loss.
    pub fn network(&self) -> NetworkConfig {
        let (out, act) = match self.loss() {
            Loss::AbBins => (gamut_bins().len(), OutputActivation::None),
            _ => (2, OutputActivation::Tanh),
        };
        let p = self.preset;
        match self.arch {
            Arch::UnetResnet34 => {
                let mut c = match p {
                    Preset::Resnet34 => UnetResnetConfig::resnet34(),
                    Preset::Light => UnetResnetConfig::light(),
                    Preset::Tiny => UnetResnetConfig::tiny(),
                };
                c.out_channels = out;
                c.output_activation = act;
                c.self_attention = self.self_attention;
                c.spectral_norm = self.spectral_norm;
                NetworkConfig::UnetResnet(c)
            }
            Arch::PlainCnn => {
                let mut c = match p {
                    Preset::Resnet34 => PlainCnnConfig::full(),
                    Preset::Light => PlainCnnConfig::light(),
                    Preset::Tiny => PlainCnnConfig::tiny(),
                };
                c.out_channels = out;
                c.output_activation = act;
                NetworkConfig::PlainCnn(c)
            }
            Arch::Resnet18Regressor => {
                let mut c = match p {
                    Preset::Resnet34 => Resnet18RegressorConfig::full(),
                    Preset::Light => Resnet18RegressorConfig::light(),
                    Preset::Tiny => Resnet18RegressorConfig::tiny(),
                };
                c.out_channels = out;
                c.output_activation = act;
                NetworkConfig::Resnet18Regressor(c)
            }
            Arch::Fusion => {
                let mut c = match p {
                    Preset::Resnet34 => FusionConfig::full(),
                    Preset::Light => FusionConfig::light(),
                    Preset::Tiny => FusionConfig::tiny(),
                };
                c.out_channels = out;
                c.output_activation = act;
                NetworkConfig::Fusion(c)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> TrainOptions {
        TrainOptions::new("d".into(), "o".into())
    }

    #[test]
    fn names_parse_and_unknown_ones_list_the_valid_names() {
        for (name, arch) in Arch::ALL {
            assert_eq!(Arch::parse(name).unwrap(), arch);
            assert_eq!(arch.name(), name);
        }
        let e = Arch::parse("vgg").unwrap_err().to_string();
        assert!(
            e.contains("`vgg`") && e.contains("plain-cnn, resnet18-regressor"),
            "{e}"
        );
        let e = Schedule::parse("cyclegan").unwrap_err().to_string();
        assert!(e.contains("regression, pix2pix, nogan"), "{e}");
        assert_eq!(Loss::parse("ab-bins").unwrap(), Loss::AbBins);
        assert!(Loss::parse("l2").is_err());
    }

    #[test]
    fn bad_combinations_are_refused_before_any_work() {
        let mut o = opts();
        o.sizes = vec![16, 128];
        let e = o.check().unwrap_err().to_string();
        assert!(e.contains("size 16") && e.contains("at least 32"), "{e}");
        let mut o = opts();
        o.sizes = vec![64, 96, 128];
        o.epochs = 2;
        assert!(
            o.check()
                .unwrap_err()
                .to_string()
                .contains("each size needs an epoch")
        );
        let mut o = opts();
        o.loss = Some(Loss::AbBins);
        o.schedule = Schedule::Pix2pix;
        assert!(o.check().is_err());
        let mut o = opts();
        o.arch = Arch::PlainCnn;
        o.self_attention = true;
        assert!(o.check().is_err());
        let mut o = opts();
        o.crop_size = 200;
        assert!(o.check().unwrap_err().to_string().contains("--load-size"));
        assert!(opts().check().is_ok());
    }

    #[test]
    fn ab_bins_change_the_head_and_the_contract() {
        let mut o = opts();
        o.loss = Some(Loss::AbBins);
        assert_eq!(o.network().channels(), (1, 313));
        assert!(matches!(o.model_io().output, OutputKind::AbBins { .. }));
        o.loss = None;
        assert_eq!(o.network().channels(), (1, 2));
        assert_eq!(o.model_io(), ModelIo::default());
    }
}
