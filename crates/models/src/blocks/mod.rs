//! Building blocks shared by several networks.

pub mod fastai;
pub mod resnet;
pub mod self_attention;
pub mod spectral_norm;
