#!/usr/bin/env python3
"""PyTorch baseline for colorize's network on a GPU (docs/PERFORMANCE.md, GPU section).

Builds in PyTorch exactly the network colorize trains and runs, the U-Net over a ResNet encoder of
`crates/models/src/unet_resnet.rs` (stem and basic blocks: `crates/models/src/blocks/resnet.rs`),
and measures:
- `--infer`: inference latency; eval mode, `torch.no_grad()`, float32, `cudnn.benchmark = True`;
  per `--size` (square) and `--batch`: `--warmup` runs, then the median of `--iterations` runs,
  each between two `torch.cuda.synchronize()`; median ms per batch and per image.
- `--train`: training throughput in photos/s; train mode (BN batch statistics), Adam (lr 1e-3),
  L1 loss against a random target in [-1, 1] of shape [batch, 2, size, size], input random in
  [-1, 1] of shape [batch, 1, size, size], `--train-batch` photos a step, `--steps` steps timed
  after `--warmup` steps, synchronised at the end. The data is made on the device once, so this
  measures the network and the optimiser only (no decoding, augmentation or host-to-device copy).
- `--verify`: the PyTorch forward against the float64 numpy reference of scripts/ort-bench.py
  (`numpy_forward`, imported from that file) on a random [2, 1, 37, 50] input, on `--device`;
  fails (exit 1) when the max relative error (max |torch - numpy| / max |numpy|) of the pre-tanh
  or the tanh output exceeds 1e-4. Without `--model` it checks a tiny random model directory
  written by ort-bench's `make_model`. It also prints the parameter count of every preset.
With none of the three, `--infer --train`. TF32 is off (`torch.backends.cudnn.allow_tf32 = False`,
`torch.backends.cuda.matmul.allow_tf32 = False`) unless `--tf32`: true float32, as colorize runs.

The network (`--model DIR`: a colorize model directory, `config.json` + `model.safetensors`;
`--preset light|resnet34|tiny`: `UnetResnetConfig::light()` etc. with PyTorch's default random
init): stem 7x7/2 conv (padding 3, no bias), BN, ReLU (= skip x1), 3x3/2 max-pool (padding 1);
four stages of torchvision BasicBlocks (3x3 convs with padding 1 and no bias, the first block of
stages 2-4 with stride 2; a 1x1 conv + BN shortcut, keys `downsample.conv` / `downsample.bn`, where
width or stride changes); five decoder levels that enlarge to the skip's size (nearest, or
bilinear with align_corners=False, as config.json's `upsample` says), concatenate [enlarged,
skip] (skips: layer3, layer2, layer1, stem, the input itself), then 3x3 conv (no bias) + BN + ReLU;
a 1x1 head conv with bias and tanh (`output_activation`). BN epsilon 1e-5, momentum 0.1. Every
skip is ceil(n/2) of the next size up, so PyTorch's nearest index floor(i * in / out) is the
Rust one (`crates/engine/src/ops/resize.rs`) at any input size. `self_attention` and
`spectral_norm` (DeOldify's GAN options) are not built: every preset has them off, and a
config.json with either on is refused. Parameter counts
(trainable, BN running statistics excluded): light 3.40 M, resnet34 23.69 M (docs/MODELS.md).
The safetensors keys are the module's names, except that batch norms are stored as burn's `gamma`
/ `beta` (PyTorch's `weight` / `bias` are read too); every tensor must be used and fit.

Set-up (Python 3.11; torch, numpy, safetensors pinned in scripts/requirements-torch.txt):

    python3 -m venv /tmp/torch && /tmp/torch/bin/pip install -r scripts/requirements-torch.txt

(PyPI's Linux torch wheel is the CUDA build and brings CUDA's libraries; on a machine whose
python3 already has torch, numpy and safetensors, as a CUDA image's does, use that python3: the
script needs nothing newer than torch 2.0.)

Usage (from the repository root):

    /tmp/torch/bin/python scripts/gpu-bench-torch.py --verify                  # tiny random model
    /tmp/torch/bin/python scripts/gpu-bench-torch.py --verify --model models/stable
    /tmp/torch/bin/python scripts/gpu-bench-torch.py --model models/stable --infer --size 128 256
    /tmp/torch/bin/python scripts/gpu-bench-torch.py --preset resnet34 --infer --train --json
    /tmp/torch/bin/python scripts/gpu-bench-torch.py --preset light --train --size 128 \\
        --train-batch 32 --steps 50

scripts/gpu-bench.sh calls this script beside `colorize bench --device gpu` and
`colorize train --device gpu`, on the same model and sizes.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
BN_EPS = 1e-5
VERIFY_SHAPE = (2, 1, 37, 50)
VERIFY_TOLERANCE = 1e-4
BURN_BN_NAMES = {"gamma": "weight", "beta": "bias"}  # burn's batch-norm names -> PyTorch's


def ort_bench():
    """scripts/ort-bench.py as a module (its PRESETS, make_model, load_model, numpy_forward)."""
    spec = importlib.util.spec_from_file_location("ort_bench", HERE / "ort-bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ConvBn(nn.Module):
    """Convolution without bias, then batch norm (keys `conv.weight`, `bn.*`)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x):
        return self.bn(self.conv(x))


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.downsample = ConvBn(cin, cout, 1, stride, 0) if stride != 1 or cin != cout else None

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + identity)


class UnetResnet(nn.Module):
    """UnetResnet of crates/models/src/unet_resnet.rs, from config.json's `network` object."""

    def __init__(self, net: dict):
        super().__init__()
        for option in ("self_attention", "spectral_norm"):
            if net.get(option):
                sys.exit(f"error: {option} is not built by this script")
        stem, widths, depths = net["stem_width"], net["widths"], net["depths"]
        in_ch, out_ch = net.get("in_channels", 1), net.get("out_channels", 2)
        self.upsample = net.get("upsample", "nearest")
        self.activation = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "none": lambda y: y}[
            net.get("output_activation", "tanh")]
        self.conv1 = nn.Conv2d(in_ch, stem, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem, eps=BN_EPS)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = stem
        for s, (width, depth) in enumerate(zip(widths, depths)):
            stride = 1 if s == 0 else 2
            blocks = [BasicBlock(cin if i == 0 else width, width, stride if i == 0 else 1)
                      for i in range(depth)]
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
            cin = width
        w1, w2, w3, w4 = widths
        d4, d3, d2, d1, d0 = net["decoder_widths"]
        ins = [w4 + w3, d4 + w2, d3 + w1, d2 + stem, d1 + in_ch]
        self.decoder = nn.ModuleList(
            ConvBn(i, o, 3, 1, 1) for i, o in zip(ins, net["decoder_widths"]))
        self.head = nn.Conv2d(d0, out_ch, 1)

    def logits(self, x0):
        """The head's output before the output activation: [batch, out, H, W]."""
        x1 = F.relu(self.bn1(self.conv1(x0)))
        x2 = self.layer1(self.maxpool(x1))
        x3 = self.layer2(x2)
        x4 = self.layer3(x3)
        y = self.layer4(x4)
        for block, skip in zip(self.decoder, (x4, x3, x2, x1, x0)):
            corners = None if self.upsample == "nearest" else False
            up = F.interpolate(y, size=skip.shape[-2:], mode=self.upsample, align_corners=corners)
            y = F.relu(block(torch.cat([up, skip], 1)))
        return self.head(y)

    def forward(self, x0):
        return self.activation(self.logits(x0))


def load_model(model_dir: Path) -> UnetResnet:
    """The network of a colorize model directory, every tensor of model.safetensors used."""
    from safetensors.torch import load_file

    net = json.loads((model_dir / "config.json").read_text())["network"]
    if net.get("arch") != "unet_resnet":
        sys.exit(f"error: {model_dir}/config.json: arch {net.get('arch')!r} is not unet_resnet")
    model = UnetResnet(net)
    expected = {k: v for k, v in model.state_dict().items()
                if not k.endswith("num_batches_tracked")}
    path = model_dir / "model.safetensors"
    state, source = {}, {}
    for key, tensor in load_file(str(path)).items():
        prefix, _, leaf = key.rpartition(".")
        name = f"{prefix}.{BURN_BN_NAMES.get(leaf, leaf)}"
        if name not in expected:
            sys.exit(f"error: {path}: unexpected tensor {key}")
        if name in state:
            sys.exit(f"error: {path}: {source[name]} and {key} are the same tensor")
        source[name] = key
        if tensor.shape != expected[name].shape:
            sys.exit(f"error: {path}: {key} has shape {list(tensor.shape)}, the network of "
                     f"config.json expects {list(expected[name].shape)}")
        state[name] = tensor.float()
    missing = sorted(set(expected) - set(state))
    if missing:
        prefix, _, leaf = missing[0].rpartition(".")
        burn = {v: k for k, v in BURN_BN_NAMES.items()}.get(leaf)
        also = f" (or {prefix}.{burn})" if burn and f"{prefix}.running_var" in expected else ""
        sys.exit(f"error: {path}: missing tensor {missing[0]}{also}")
    model.load_state_dict(state, strict=False)  # only num_batches_tracked is left out
    return model


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with open("/proc/cpuinfo") as f:
        return next((line.split(":", 1)[1].strip() for line in f
                     if line.startswith("model name")), "cpu")


def peak_mib(device: torch.device):
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def verify(model_dir: Path | None, seed: int, device: torch.device, log) -> dict:
    """Max relative error of the PyTorch forward against ort-bench.py's numpy reference."""
    ob = ort_bench()
    with tempfile.TemporaryDirectory(prefix="gpu-bench-torch-") as tmp:
        if model_dir is None:
            model_dir = Path(tmp) / "tiny"
            with contextlib.redirect_stdout(sys.stderr):  # keep --json's stdout one object
                ob.make_model(model_dir, "tiny", seed)
        net, weights = ob.load_model(model_dir)
        model = load_model(model_dir).to(device).eval()
    x = np.random.default_rng(seed).uniform(-1, 1, VERIFY_SHAPE).astype(np.float32)
    with torch.no_grad():
        logits = model.logits(torch.from_numpy(x).to(device))
        out = model.activation(logits)
    refs = [ob.numpy_forward(net, weights, x[n, 0]) for n in range(x.shape[0])]
    errors = {}
    for name, got, ref in (("pre_tanh", logits, np.stack([r[1] for r in refs])),
                           ("output", out, np.stack([r[0] for r in refs]))):
        errors[name] = float(np.abs(got.double().cpu().numpy() - ref).max() / np.abs(ref).max())
    ok = tuple(out.shape) == (VERIFY_SHAPE[0], 2, *VERIFY_SHAPE[2:]) and \
        max(errors.values()) <= VERIFY_TOLERANCE
    counts = {p: parameters(UnetResnet(ob.PRESETS[p])) for p in ob.PRESETS}
    log(f"verify {model_dir} on {device.type}, input {list(VERIFY_SHAPE)}: max relative error "
        f"pre-tanh {errors['pre_tanh']:.2e}, output {errors['output']:.2e} (tolerance "
        f"{VERIFY_TOLERANCE:.0e}): {'OK' if ok else 'FAIL'}")
    log("parameters per preset: " + ", ".join(f"{p} {n / 1e6:.2f} M" for p, n in counts.items()))
    return {"model": str(model_dir), "input": list(VERIFY_SHAPE), "max_rel_error": errors,
            "ok": ok, "preset_parameters": counts}


def bench_infer(model, device, in_ch, size, batch, iterations, warmup) -> dict:
    """Median latency of one forward pass (eval, no_grad) on a [batch, in, size, size] input."""
    model.eval()
    x = torch.rand(batch, in_ch, size, size, device=device) * 2 - 1
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        for _ in range(iterations):
            sync(device)
            t = time.perf_counter()
            model(x)
            sync(device)
            times.append((time.perf_counter() - t) * 1e3)
    ms = statistics.median(times)
    return {"size": size, "batch": batch, "iterations": iterations, "warmup": warmup,
            "ms_per_batch": ms, "min_ms": min(times), "ms_per_image": ms / batch,
            "peak_mib": peak_mib(device)}


def bench_train(model, device, in_ch, out_ch, size, batch, steps, warmup) -> dict:
    """Photos/s of Adam steps on an L1 loss, data already on the device."""
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch, in_ch, size, size, device=device) * 2 - 1
    target = torch.rand(batch, out_ch, size, size, device=device) * 2 - 1
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step():
        optimiser.zero_grad(set_to_none=True)
        loss = F.l1_loss(model(x), target)
        loss.backward()
        optimiser.step()
        return loss

    for _ in range(warmup):
        step()
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        loss = step()
    sync(device)
    elapsed = time.perf_counter() - t
    return {"size": size, "batch": batch, "steps": steps, "warmup": warmup,
            "photos_per_s": steps * batch / elapsed, "ms_per_step": elapsed * 1e3 / steps,
            "final_loss": loss.item(), "peak_mib": peak_mib(device),
            "data": "random tensors made on the device once: network + optimiser only"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description="PyTorch baseline of colorize's U-Net: inference latency, training "
        "throughput, and a parity check against scripts/ort-bench.py's numpy reference.",
        epilog="See the module docstring (head of this file) for set-up and examples.")
    net_group = ap.add_mutually_exclusive_group()
    net_group.add_argument("--model", type=Path, metavar="DIR", help="colorize model directory")
    net_group.add_argument("--preset", choices=("light", "resnet34", "tiny"),
                           help="random weights of a preset (default light; tiny for --verify)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verify", action="store_true", help="compare with the numpy reference")
    ap.add_argument("--infer", action="store_true", help="time inference")
    ap.add_argument("--train", action="store_true", help="time training steps")
    ap.add_argument("--device", choices=("cuda", "cpu"),
                    default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 (off: true float32)")
    ap.add_argument("--size", type=int, nargs="+", default=[128, 256], help="square input sizes")
    ap.add_argument("--batch", type=int, nargs="+", default=[1], help="inference batch sizes")
    ap.add_argument("--iterations", type=int, default=50, help="timed inference runs")
    ap.add_argument("--train-batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=30, help="timed training steps")
    ap.add_argument("--warmup", type=int, default=5, help="untimed runs or steps first")
    ap.add_argument("--json", action="store_true", help="print one JSON object (log to stderr)")
    args = ap.parse_args(argv)
    if not (args.verify or args.infer or args.train):
        args.infer = args.train = True

    def log(line):
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    report = {"torch": torch.__version__, "device": args.device,
              "device_name": device_name(device), "threads": torch.get_num_threads(),
              "tf32": args.tf32, "cudnn_benchmark": True}
    log(f"torch {torch.__version__} on {report['device_name']} ({args.device}, "
        f"{report['threads']} CPU threads, TF32 {'on' if args.tf32 else 'off'})")
    ok = True
    if args.verify:
        report["verify"] = verify(args.model, args.seed, device, log)
        ok = report["verify"]["ok"]

    if args.infer or args.train:
        if args.model:
            model, report["model"] = load_model(args.model), str(args.model)
        else:
            preset = args.preset or "light"
            model, report["preset"] = UnetResnet(ort_bench().PRESETS[preset]), preset
        model.to(device)
        in_ch, out_ch = model.conv1.in_channels, model.head.out_channels
        report["parameters"] = parameters(model)
        log(f"network {report.get('model') or 'preset ' + report['preset']}: "
            f"{report['parameters'] / 1e6:.2f} M parameters (BN running statistics excluded)")
        if args.infer:
            report["infer"] = []
            for size in args.size:
                for batch in args.batch:
                    r = bench_infer(model, device, in_ch, size, batch, args.iterations,
                                    args.warmup)
                    report["infer"].append(r)
                    log(f"infer {size}x{size} batch {batch}: {r['ms_per_batch']:.2f} ms per batch, "
                        f"{r['ms_per_image']:.2f} ms per image (median of {args.iterations} "
                        f"after {args.warmup} warm-up runs)")
        if args.train:
            report["train"] = []
            for size in args.size:
                r = bench_train(model, device, in_ch, out_ch, size, args.train_batch, args.steps,
                                args.warmup)
                report["train"].append(r)
                log(f"train {size}x{size} batch {args.train_batch}: {r['photos_per_s']:.1f} "
                    f"photos/s ({r['ms_per_step']:.1f} ms per Adam step, {args.steps} steps after "
                    f"{args.warmup} warm-up; data already on the device: network + optimiser "
                    "only)")
    if args.json:
        print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
