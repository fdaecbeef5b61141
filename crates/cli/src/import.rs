//! `colorize import`: a published colouriser's PyTorch checkpoint → a model folder.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, ValueEnum};
use colorize_import::Kind;

/// `--kind` values.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindArg {
    /// Zhang et al. 2016, `colorization_release_v2` (eccv16).
    Eccv16,
    /// Zhang et al. 2017, siggraph17 (automatic mode: no hints yet).
    Siggraph17,
    /// DeOldify's Artistic generator, `ColorizeArtistic_gen.pth`.
    DeoldifyArtistic,
    /// DeOldify's Stable generator, `ColorizeStable_gen.pth`.
    DeoldifyStable,
    /// DeOldify's Video generator, `ColorizeVideo_gen.pth` (Stable's layout; render factor 21).
    DeoldifyVideo,
    /// DDColor with the ConvNeXt-L encoder (`ddcolor_paper`, `ddcolor_modelscope`,
    /// `ddcolor_artistic`: `pytorch_model.bin` or `.pth`).
    DdcolorLarge,
    /// DDColor with the ConvNeXt-T encoder (`ddcolor_paper_tiny`).
    DdcolorTiny,
}

impl From<KindArg> for Kind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Eccv16 => Kind::Eccv16,
            KindArg::Siggraph17 => Kind::Siggraph17,
            KindArg::DeoldifyArtistic => Kind::DeoldifyArtistic,
            KindArg::DeoldifyStable => Kind::DeoldifyStable,
            KindArg::DeoldifyVideo => Kind::DeoldifyVideo,
            KindArg::DdcolorLarge => Kind::DdcolorLarge,
            KindArg::DdcolorTiny => Kind::DdcolorTiny,
        }
    }
}

/// `colorize import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The checkpoint (`.pth`/`.pt`; zip or legacy format, raw state dict or `{'model': ...}`,
    /// `{'state_dict': ...}`, `{'params': ...}`).
    #[arg(value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// Which network it is (default: detected from its keys and shapes).
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// The model folder to write (`config.json` + `model.safetensors`); `--model DIR` takes it.
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace a model already in the folder.
    #[arg(long)]
    pub overwrite: bool,
}

/// Runs `colorize import`.
pub fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    if args.out.is_file() {
        bail!("{}: is a file, not a folder", args.out.display());
    }
    let report = colorize_import::import(
        &args.checkpoint,
        args.kind.map(Into::into),
        &args.out,
        args.overwrite,
    )?;
    eprintln!(
        "imported {} ({} tensors, {:.1} M parameters, sha256 {}) into {}",
        report.kind,
        report.tensors,
        report.parameters as f64 / 1e6,
        report.sha256,
        report.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
