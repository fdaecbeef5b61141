//! Scratch timing of one training step's parts (not a benchmark of record).
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use colorize_models::unet_resnet::UnetResnetConfig;
use std::time::Instant;

fn main() {
    let dev = Device::flex();
    let ad = dev.clone().autodiff();
    let args: Vec<String> = std::env::args().collect();
    let bs: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(16);
    let sz: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(128);
    let model = UnetResnetConfig::light().init(&ad);
    let mut optim = AdamWConfig::new().init();
    let mut model = model;
    for i in 0..4 {
        let x = Tensor::<4>::random([bs, 1, sz, sz], burn::tensor::Distribution::Default, &ad);
        let y = Tensor::<4>::random([bs, 2, sz, sz], burn::tensor::Distribution::Default, &ad);
        let t = Instant::now();
        let pred = model.forward(x.clone());
        let loss = (pred - y).abs().mean();
        let lv: f32 = loss.clone().into_scalar();
        let t_f = t.elapsed().as_secs_f64();
        let g = loss.backward();
        let t_b = t.elapsed().as_secs_f64();
        let grads = GradientsParams::from_grads(g, &model);
        model = optim.step(1e-3, model, grads);
        let t_o = t.elapsed().as_secs_f64();
        let v = model.valid();
        let t0 = Instant::now();
        let xi = Tensor::<4>::random([bs, 1, sz, sz], burn::tensor::Distribution::Default, &dev);
        let o: Vec<f32> = v.forward(xi).into_data().try_to_vec().unwrap();
        let t_inf = t0.elapsed().as_secs_f64();
        println!(
            "{i}: loss {lv:.3} fwd {:.2}s bwd {:.2}s opt {:.2}s -> {:.1} img/s; inference fwd {:.2}s ({})",
            t_f,
            t_b - t_f,
            t_o - t_b,
            bs as f64 / t_o,
            t_inf,
            o.len()
        );
    }
}
