//! Building blocks shared by several networks.

pub mod resnet;
