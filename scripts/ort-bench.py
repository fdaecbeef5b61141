#!/usr/bin/env python3
"""ONNX Runtime baseline for colorize's network: times the U-Net over a ResNet encoder
(`crates/models/src/unet_resnet.rs`) in ONNX Runtime on the CPU, with the very weights the Rust
engine loads, and prints the Rust engine's numbers (measured in the same run) beside it.

Set-up (Python 3.11; only numpy, onnx, onnxruntime and safetensors, pinned in
scripts/requirements-bench.txt):

    python3 -m venv /tmp/ort && /tmp/ort/bin/pip install -r scripts/requirements-bench.txt

Why no PyTorch: nothing is exported from a training framework. The script reads a colorize model
directory (`config.json` + `model.safetensors`, the same files `--model DIR` takes) with the
safetensors package and writes the forward pass of `UnetResnet::forward` as an ONNX graph (opset
17) node by node with `onnx.helper`, the weights becoming the graph's initialisers. BatchNorm is
left as BatchNormalization nodes (epsilon 1e-5, inference form); ONNX Runtime folds them into the
convolutions itself (graph optimisation level ORT_ENABLE_ALL), as it would for an exported model.
`--verify-numpy` checks the graph against an independent, naive numpy implementation of the same
network (float64 im2col): the tanh output must agree within 1e-4 (scaled up by |pre-tanh|/10 when
the logits exceed 10, float32 sums being relative) and the pre-tanh values within 1e-5 relative.
Random deep models (resnet34, light) grow their activations through the residual sums, so most of
their tanh outputs saturate at +-1: fine for timing, weak for a parity check (use tiny for that).

Usage (from the repository root):

    # a model directory with random weights (Kaiming-scaled convolutions, random BN statistics)
    /tmp/ort/bin/python scripts/ort-bench.py --make-model /tmp/r34 --preset resnet34 --seed 1

    # ONNX Runtime alone: median ms, GFLOP/s and peak RSS per network input size
    /tmp/ort/bin/python scripts/ort-bench.py --model /tmp/r34 --ort-only

    # ONNX Runtime and the Rust engines, alternately, in one table (ratio engine/ORT)
    /tmp/ort/bin/python scripts/ort-bench.py --model /tmp/r34 --threads 2 --iterations 10 \\
        --colorize target/release/colorize

    # correctness: ONNX graph vs a pure-numpy reference (tiny model, 64x64)
    /tmp/ort/bin/python scripts/ort-bench.py --model /tmp/tiny --verify-numpy --size 64x64

    # ORT's output on a fixed ramp input, for comparison with the Rust output
    /tmp/ort/bin/python scripts/ort-bench.py --model /tmp/tiny --check --size 256x256 \\
        --check-out /tmp/tiny-ort.npy

Presets (`--make-model ... --preset`) are exactly `UnetResnetConfig::resnet34()`, `light()` and
`tiny()`. Sizes are WIDTHxHEIGHT of the network input (the render size, not a photo size); use
multiples of 32 so that every skip connection is exactly aligned.

The Rust side is run as
`colorize bench --threads T --model DIR --engine all --network-only --network-size WxH ...
--iterations N --json` (`--engine native` with `--no-burn`) and its stdout is read as one JSON
object `{"threads": T, "network": [{"engine": "native"|"burn", "width": W, "height": H,
"median_ms": X, "min_ms": Y}]}`.
`--colorize PATH` names the binary (a command line such as "cargo run --release --" also works);
the default is target/release/colorize when it exists, otherwise `cargo run --release --`.
Each round runs ONNX Runtime over every size, then the Rust command, so both are measured on the
same machine state; `--rounds N` repeats that and reports each side's median over the rounds and
the best single run of all rounds (on a shared VM the medians carry other tenants' load).

GFLOP counts 2 x multiply-accumulates of every convolution (the 1x1 shortcuts and the head
included); BN, ReLU, pooling, resizing and tanh are not counted.

The check input (`--check`) is the deterministic ramp
`l[y, x] = 2 * (x + y) / (W + H - 2) - 1` of shape [1, 1, H, W] (already normalised, -1..1),
unless `--check-input FILE.npy` gives one; `--check-out` gets ORT's [1, 2, H, W] float32 output
(and `<stem>.input.npy` beside it gets the input).
Imported networks (`--imported`, needs PyTorch as well: `pip install torch onnxscript`): builds the
published colourisers at their published widths with random weights from the modules in
scripts/reference/ (written from ../shared/reference/), saves each in the published file layout
(torch.save of the state dict), imports it with `colorize import`, exports the same module to ONNX
(torch.onnx.export, opset 17), and per round times the network alone at its default size in
PyTorch (eval, no_grad, float32, torch.set_num_threads = --threads), in ONNX Runtime (a process of
its own; peak memory from its VmHWM) and with `colorize bench --model DIR --network-only` (the
native engine, its own VmHWM), alternating, then prints medians and ratios (below 1: the engine is
faster):

    /tmp/torchenv/bin/python scripts/ort-bench.py --colorize target/release/colorize \
        --imported eccv16,siggraph17,deoldify-artistic,deoldify-stable --rounds 2 --iterations 3

DeOldify's spectral-norm vectors get one power iteration first, as a trained checkpoint's have.
deoldify-video has deoldify-stable's network (only the default render size differs: 336).
"""


from __future__ import annotations

import argparse
import json
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OPSET = 17
BN_EPS = 1e-5

# Exactly UnetResnetConfig::resnet34() / light() / tiny() of crates/models/src/unet_resnet.rs.
PRESETS = {
    "resnet34": {
        "stem_width": 64,
        "widths": [64, 128, 256, 512],
        "depths": [3, 4, 6, 3],
        "decoder_widths": [256, 128, 64, 64, 32],
        "upsample": "nearest",
    },
    "light": {
        "stem_width": 32,
        "widths": [32, 64, 128, 256],
        "depths": [2, 2, 2, 2],
        "decoder_widths": [128, 64, 32, 32, 16],
        "upsample": "nearest",
    },
    "tiny": {
        "stem_width": 8,
        "widths": [8, 16, 32, 64],
        "depths": [1, 1, 1, 1],
        "decoder_widths": [32, 16, 8, 8, 8],
        "upsample": "nearest",
    },
}

BN_PARAMS = ("gamma", "beta", "running_mean", "running_var")


# ---------------------------------------------------------------------------------------------
# Architecture: the blocks of the network and the weights the Rust loader expects
# ---------------------------------------------------------------------------------------------


def blocks(net: dict):
    """Yields (prefix, in_ch, out_ch, stride, has_downsample) for every BasicBlock, in order."""
    cin = net["stem_width"]
    for s, (width, depth) in enumerate(zip(net["widths"], net["depths"])):
        stride = 1 if s == 0 else 2
        for i in range(depth):
            b_in, b_stride = (cin, stride) if i == 0 else (width, 1)
            yield f"layer{s + 1}.{i}", b_in, width, b_stride, (b_stride != 1 or b_in != width)
        cin = width


def decoder_inputs(net: dict):
    """Input channels of the five decoder convolutions (up-sampled features + skip)."""
    w1, w2, w3, w4 = net["widths"]
    d4, d3, d2, d1, _ = net["decoder_widths"]
    return [w4 + w3, d4 + w2, d3 + w1, d2 + net["stem_width"], d1 + 1]


def expected_shapes(net: dict) -> dict:
    """Every tensor of model.safetensors (key -> shape), in a fixed order, as the Rust loader
    (burn module paths of UnetResnet) expects them."""
    shapes = {}

    def bn(prefix, c):
        for p in BN_PARAMS:
            shapes[f"{prefix}.{p}"] = [c]

    stem = net["stem_width"]
    shapes["conv1.weight"] = [stem, 1, 7, 7]
    bn("bn1", stem)
    for prefix, cin, cout, _stride, down in blocks(net):
        shapes[f"{prefix}.conv1.weight"] = [cout, cin, 3, 3]
        bn(f"{prefix}.bn1", cout)
        shapes[f"{prefix}.conv2.weight"] = [cout, cout, 3, 3]
        bn(f"{prefix}.bn2", cout)
        if down:
            shapes[f"{prefix}.downsample.conv.weight"] = [cout, cin, 1, 1]
            bn(f"{prefix}.downsample.bn", cout)
    for i, (cin, cout) in enumerate(zip(decoder_inputs(net), net["decoder_widths"])):
        shapes[f"decoder.{i}.conv.weight"] = [cout, cin, 3, 3]
        bn(f"decoder.{i}.bn", cout)
    shapes["head.weight"] = [2, net["decoder_widths"][4], 1, 1]
    shapes["head.bias"] = [2]
    return shapes


def make_model(out_dir: Path, preset: str, seed: int) -> None:
    """Writes a model directory with random float32 weights: convolutions N(0, 2/fan_in)
    (Kaiming), BN gamma ~ U(0.5, 1.5), beta ~ N(0, 0.1), running_mean ~ N(0, 0.1),
    running_var ~ U(0.5, 1.5), head bias ~ N(0, 0.1)."""
    from safetensors.numpy import save_file

    net = PRESETS[preset]
    rng = np.random.default_rng(seed)
    tensors = {}
    for key, shape in expected_shapes(net).items():
        leaf = key.rsplit(".", 1)[1]
        if leaf == "weight":
            fan_in = int(np.prod(shape[1:]))
            t = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        elif leaf in ("gamma", "running_var"):
            t = rng.uniform(0.5, 1.5, shape)
        else:  # beta, running_mean, bias
            t = rng.normal(0.0, 0.1, shape)
        tensors[key] = np.ascontiguousarray(t, dtype=np.float32)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "network": {"arch": "unet_resnet", **net},
        "render_size": 256,
        "saturation": 1.0,
        "description": f"random weights (preset {preset}, seed {seed}) for scripts/ort-bench.py; "
        "speed benchmarks only, not a colouriser",
    }
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "safetensors"})
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    n = sum(t.size for t in tensors.values())
    print(f"wrote {out_dir}: preset {preset}, seed {seed}, {len(tensors)} tensors, "
          f"{n / 1e6:.2f} M parameters")


def load_model(model_dir: Path):
    """Reads config.json and model.safetensors, checking every tensor as the Rust loader does
    (a missing, extra or mis-shaped tensor is an error naming the key)."""
    from safetensors.numpy import load_file

    config = json.loads((model_dir / "config.json").read_text())
    net = config["network"]
    if net.get("arch") != "unet_resnet":
        sys.exit(f"error: {model_dir}/config.json: arch {net.get('arch')!r} is not unet_resnet")
    if net.get("upsample", "nearest") != "nearest":
        sys.exit(f"error: {model_dir}/config.json: upsample {net['upsample']!r}: only 'nearest' "
                 "is built by this script")
    weights = load_file(str(model_dir / "model.safetensors"))
    expected = expected_shapes(net)
    for key, shape in expected.items():
        if key not in weights:
            sys.exit(f"error: {model_dir}/model.safetensors: missing tensor {key}")
        if list(weights[key].shape) != shape:
            sys.exit(f"error: {model_dir}/model.safetensors: {key} has shape "
                     f"{list(weights[key].shape)}, expected {shape}")
    extra = sorted(set(weights) - set(expected))
    if extra:
        sys.exit(f"error: {model_dir}/model.safetensors: unexpected tensor {extra[0]}")
    weights = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
    return net, weights


# ---------------------------------------------------------------------------------------------
# The ONNX graph of UnetResnet::forward
# ---------------------------------------------------------------------------------------------


def conv_out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


class GraphBuilder:
    """Appends ONNX nodes while tracking static shapes [C, H, W] (batch 1) and conv FLOPs."""

    def __init__(self, weights: dict):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.weights = weights
        self.nodes, self.inits, self.used = [], [], set()
        self.flops = 0

    def init(self, name: str, array: np.ndarray) -> str:
        if name not in self.used:
            self.inits.append(self.numpy_helper.from_array(array, name))
            self.used.add(name)
        return name

    def node(self, op: str, inputs: list, out: str, **attrs) -> str:
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x, shape, key, stride, pad, bias_key=None):
        w = self.weights[key]
        cout, cin, kh, kw = w.shape
        c, h, wd = shape
        assert c == cin, (key, shape, w.shape)
        ho, wo = conv_out(h, kh, stride, pad), conv_out(wd, kw, stride, pad)
        self.flops += 2 * cout * ho * wo * cin * kh * kw
        inputs = [x, self.init(key, w)]
        if bias_key:
            inputs.append(self.init(bias_key, self.weights[bias_key]))
        out = self.node("Conv", inputs, key.rsplit(".", 1)[0], kernel_shape=[kh, kw],
                        strides=[stride, stride], pads=[pad] * 4)
        return out, [cout, ho, wo]

    def bn(self, x, prefix):
        ins = [x] + [self.init(f"{prefix}.{p}", self.weights[f"{prefix}.{p}"]) for p in BN_PARAMS]
        return self.node("BatchNormalization", ins, prefix, epsilon=BN_EPS)

    def relu(self, x):
        return self.node("Relu", [x], x + "/relu")


def build_graph(net: dict, weights: dict, height: int, width: int, pre_tanh_output=False):
    """The ONNX model of UnetResnet::forward for one static input size [1, 1, height, width].

    Returns (onnx.ModelProto, GFLOP). With `pre_tanh_output` the head's output before tanh is a
    second graph output (`pre_tanh`), for the numpy check."""
    import onnx
    from onnx import TensorProto, helper

    g = GraphBuilder(weights)
    x0, s0 = "l", [1, height, width]
    # Stem: 7x7/2 conv, BN, ReLU (= x1, a skip), 3x3/2 max-pool.
    x, s = g.conv(x0, s0, "conv1.weight", 2, 3)
    x1, s1 = g.relu(g.bn(x, "bn1")), s
    x = g.node("MaxPool", [x1], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)
    s = [s1[0], conv_out(s1[1], 3, 2, 1), conv_out(s1[2], 3, 2, 1)]
    # Encoder: four stages of basic blocks; the outputs of stages 1-3 are skips.
    stage_out = []
    current_stage = "layer1"
    for prefix, _cin, _cout, stride, down in blocks(net):
        if not prefix.startswith(current_stage + "."):
            stage_out.append((x, s))
            current_stage = prefix.split(".")[0]
        if down:
            ident, _ = g.conv(x, s, f"{prefix}.downsample.conv.weight", stride, 0)
            ident = g.bn(ident, f"{prefix}.downsample.bn")
        else:
            ident = x
        y, sy = g.conv(x, s, f"{prefix}.conv1.weight", stride, 1)
        y = g.relu(g.bn(y, f"{prefix}.bn1"))
        y, sy = g.conv(y, sy, f"{prefix}.conv2.weight", 1, 1)
        y = g.bn(y, f"{prefix}.bn2")
        y = g.node("Add", [y, ident], f"{prefix}/add")
        x, s = g.relu(y), sy
    (x2, s2), (x3, s3), (x4, s4) = stage_out
    # Decoder: nearest x2 to the skip's size, concat [up, skip], 3x3 conv, BN, ReLU.
    y, sy = x, s
    for i, (skip, ss) in enumerate([(x4, s4), (x3, s3), (x2, s2), (x1, s1), (x0, s0)]):
        sizes = g.init(f"decoder.{i}/sizes", np.array([1, sy[0], ss[1], ss[2]], dtype=np.int64))
        up = g.node("Resize", [y, "", "", sizes], f"decoder.{i}/up", mode="nearest",
                    coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        cat = g.node("Concat", [up, skip], f"decoder.{i}/cat", axis=1)
        y, sy = g.conv(cat, [sy[0] + ss[0], ss[1], ss[2]], f"decoder.{i}.conv.weight", 1, 1)
        y = g.relu(g.bn(y, f"decoder.{i}.bn"))
    # Head: 1x1 conv with bias, tanh.
    logits, sh = g.conv(y, sy, "head.weight", 1, 0, bias_key="head.bias")
    g.node("Tanh", [logits], "ab")

    outputs = [helper.make_tensor_value_info("ab", TensorProto.FLOAT, [1, 2, sh[1], sh[2]])]
    if pre_tanh_output:
        outputs.append(helper.make_tensor_value_info(logits, TensorProto.FLOAT,
                                                     [1, 2, sh[1], sh[2]]))
    graph = helper.make_graph(
        g.nodes, "colorize_unet_resnet",
        [helper.make_tensor_value_info("l", TensorProto.FLOAT, [1, 1, height, width])],
        outputs, initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="colorize scripts/ort-bench.py")
    model.ir_version = 8  # opset 17's IR version; accepted by every ORT >= 1.13
    onnx.checker.check_model(model)
    assert g.used == set(weights) | {f"decoder.{i}/sizes" for i in range(5)}, "unused weights"
    return model, g.flops / 1e9


def make_session(model, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


# ---------------------------------------------------------------------------------------------
# Pure-numpy reference (float64, naive im2col), independent of the ONNX graph
# ---------------------------------------------------------------------------------------------


def np_conv(x, w, stride, pad, bias=None):
    """x [C, H, W], w [O, C, kh, kw] -> [O, Ho, Wo] by im2col."""
    from numpy.lib.stride_tricks import sliding_window_view

    _, kh, kw = w.shape[1:]
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    cols = sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]  # C,Ho,Wo,kh,kw
    c, ho, wo = cols.shape[:3]
    cols = cols.transpose(1, 2, 0, 3, 4).reshape(ho * wo, c * kh * kw)
    y = (cols @ w.reshape(w.shape[0], -1).T).T.reshape(w.shape[0], ho, wo)
    return y if bias is None else y + bias[:, None, None]


def np_maxpool(x, k=3, stride=2, pad=1):
    from numpy.lib.stride_tricks import sliding_window_view

    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
    return sliding_window_view(xp, (k, k), axis=(1, 2))[:, ::stride, ::stride].max(axis=(3, 4))


def np_nearest(x, h, w):
    """Nearest enlargement to [h, w], source index floor(i * in / out)."""
    _, hi, wi = x.shape
    return x[:, (np.arange(h) * hi) // h][:, :, (np.arange(w) * wi) // w]


def numpy_forward(net, weights, l):
    """UnetResnet::forward in float64 numpy; l [H, W] -> (ab [2, H, W], pre-tanh [2, H, W])."""
    W = {k: v.astype(np.float64) for k, v in weights.items()}

    def bn(x, p):
        scale = W[f"{p}.gamma"] / np.sqrt(W[f"{p}.running_var"] + BN_EPS)
        return (x - W[f"{p}.running_mean"][:, None, None]) * scale[:, None, None] \
            + W[f"{p}.beta"][:, None, None]

    def relu(x):
        return np.maximum(x, 0.0)

    x0 = l[None].astype(np.float64)
    x1 = relu(bn(np_conv(x0, W["conv1.weight"], 2, 3), "bn1"))
    x = np_maxpool(x1)
    outs = []
    for s in range(4):
        for i in range(net["depths"][s]):
            p = f"layer{s + 1}.{i}"
            stride = 2 if (s > 0 and i == 0) else 1
            if f"{p}.downsample.conv.weight" in W:
                ident = bn(np_conv(x, W[f"{p}.downsample.conv.weight"], stride, 0),
                           f"{p}.downsample.bn")
            else:
                ident = x
            y = relu(bn(np_conv(x, W[f"{p}.conv1.weight"], stride, 1), f"{p}.bn1"))
            y = bn(np_conv(y, W[f"{p}.conv2.weight"], 1, 1), f"{p}.bn2")
            x = relu(y + ident)
        outs.append(x)
    x2, x3, x4, x5 = outs
    y = x5
    for i, skip in enumerate([x4, x3, x2, x1, x0]):
        cat = np.concatenate([np_nearest(y, *skip.shape[1:]), skip], axis=0)
        y = relu(bn(np_conv(cat, W[f"decoder.{i}.conv.weight"], 1, 1), f"decoder.{i}.bn"))
    logits = np_conv(y, W["head.weight"], 1, 0, W["head.bias"])
    return np.tanh(logits), logits


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


def parse_size(text: str):
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not WIDTHxHEIGHT") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"size {text!r} must be positive")
    return w, h


def ramp_input(w: int, h: int) -> np.ndarray:
    """The deterministic check input: l[y, x] = 2 (x + y) / (W + H - 2) - 1, shape [1, 1, H, W]."""
    yy, xx = np.mgrid[0:h, 0:w]
    return (2.0 * (xx + yy) / max(w + h - 2, 1) - 1.0).astype(np.float32)[None, None]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def time_ort(net, weights, sizes, threads, iterations):
    """Times ORT per size: {(w, h): {"ms", "gflop", "rss_mib", "shape_ok"}}."""
    results = {}
    for w, h in sizes:
        model, gflop = build_graph(net, weights, h, w)
        sess = make_session(model, threads)
        x = ramp_input(w, h)
        out = sess.run(None, {"l": x})[0]  # warm-up
        times = []
        for _ in range(iterations):
            t = time.perf_counter()
            out = sess.run(None, {"l": x})[0]
            times.append((time.perf_counter() - t) * 1e3)
        ok = out.shape == (1, 2, h, w) and bool(np.isfinite(out).all())
        results[(w, h)] = {"ms": statistics.median(times), "min_ms": min(times), "gflop": gflop,
                           "rss_mib": peak_rss_mib(), "output_ok": ok}
        del sess, model
    return results


def colorize_command(arg: str | None) -> list:
    if arg:
        return shlex.split(arg)
    binary = REPO / "target" / "release" / "colorize"
    if binary.exists():
        return [str(binary)]
    return ["cargo", "run", "--release", "--"]


def run_rust(cmd_prefix, model_dir, sizes, threads, iterations, burn=True):
    """Runs `colorize bench --threads T ... --json`; returns {(engine, w, h): median_ms}, with the
    native engine under the key "engine"."""
    bench = ["bench", "--threads", str(threads), "--model", str(model_dir),
             "--engine", "all" if burn else "native", "--network-only"]
    for w, h in sizes:
        bench += ["--network-size", f"{w}x{h}"]
    bench += ["--iterations", str(iterations), "--json"]
    cmd = cmd_prefix + bench
    print("+ " + shlex.join(cmd), file=sys.stderr)
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        sys.exit(f"error: the Rust bench exited with status {proc.returncode}")
    doc = None
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError:
        for line in reversed(proc.stdout.splitlines()):  # tolerate log lines before the JSON
            if line.strip().startswith("{"):
                doc = json.loads(line)
                break
    if not isinstance(doc, dict) or "network" not in doc:
        sys.stderr.write(proc.stdout + proc.stderr)
        sys.exit("error: the Rust bench printed no JSON object with a 'network' list")
    if doc.get("threads") not in (None, threads):
        print(f"warning: the Rust bench reports {doc['threads']} threads, not {threads}",
              file=sys.stderr)
    name = {"native": "engine"}
    out = {}
    for e in doc["network"]:
        key = (name.get(e["engine"], e["engine"]), int(e["width"]), int(e["height"]))
        out[key] = float(e["median_ms"])
        if "min_ms" in e:
            out[("min",) + key] = float(e["min_ms"])
    return out


def fmt_ms(ms, gflop):
    if ms is None:
        return "-"
    return f"{ms:9.{2 if ms < 10 else 1}f} ({gflop / (ms / 1e3):5.1f})"


# ---------------------------------------------------------------------------------------------
# Imported networks (--imported): PyTorch, ONNX Runtime and the engine on the same random weights.

IMPORTED = ("eccv16", "siggraph17", "deoldify-artistic", "deoldify-stable", "deoldify-video")


def load_reference(name):
    import importlib.util
    here = Path(__file__).resolve().parent / "reference" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, here)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def imported_network(kind):
    """(module in eval mode, default size, input channels) of `kind` at its published widths."""
    import torch
    if kind == "eccv16":
        m = load_reference("eccv16")
        m.WIDTHS = [64, 128, 256, 512, 512, 512, 512]
        m.DECODER = 256
        return m.ECCVGenerator().eval(), 256, 1
    if kind == "siggraph17":
        m = load_reference("siggraph17")
        return m.SIGGRAPHGenerator(m.FULL).eval(), 256, 4
    m = load_reference("deoldify")
    if kind == "deoldify-artistic":
        net, size = m.DynamicUnetDeep(m.FULL_WIDTHS), 560
    else:
        net = m.DynamicUnetWide(m.FULL_WIDE_WIDTHS, m.FULL_WIDE_DEPTHS, m.FULL_WIDE_NF)
        size = 336 if kind == "deoldify-video" else 560
    with torch.no_grad():  # one power iteration, so spectral norm's u and v fit the weights
        net.train()
        net(torch.rand(1, 3, 64, 64))
    return net.eval(), size, 3


def torch_ms(net, x, iterations):
    import torch
    with torch.no_grad():
        net(*x)  # warm-up
        times = []
        for _ in range(iterations):
            t = time.perf_counter()
            net(*x)
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), min(times)


ORT_CHILD = """
import json, statistics, sys, time
import numpy as np, onnxruntime as ort
path, iterations, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
o = ort.SessionOptions()
o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
o.intra_op_num_threads = threads
s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
feed = {i.name: np.random.rand(*i.shape).astype(np.float32) for i in s.get_inputs()}
s.run(None, feed)
t = []
for _ in range(iterations):
    a = time.perf_counter(); s.run(None, feed); t.append((time.perf_counter() - a) * 1e3)
# VmHWM belongs to this process's own address space (ru_maxrss would carry the parent's peak
# across fork and exec).
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1]
print(json.dumps([statistics.median(t), min(t), int(hwm) / 1024]))
"""


def ort_child_ms(onnx_path, iterations, threads):
    out = subprocess.run([sys.executable, "-c", ORT_CHILD, str(onnx_path), str(iterations),
                          str(threads)], check=True, capture_output=True, text=True).stdout
    return tuple(json.loads(out))


def engine_ms(colorize, model, size, iterations, threads):
    out = subprocess.run(
        colorize + ["bench", "--model", str(model), "--network-only", "--batch", "0", "--json",
                    "--iterations", str(iterations), "--network-size", f"{size}x{size}",
                    "--threads", str(threads)],
        check=True, capture_output=True, text=True).stdout
    report = json.loads(out)
    r = report["network"][0]
    return r["median_ms"], r["min_ms"], report.get("peak_rss_mib")


def imported_main(kinds, colorize, threads, iterations, rounds) -> int:
    import tempfile

    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="ort-bench-imported-"))
    nets = []
    for kind in kinds:
        net, size, cin = imported_network(kind)
        ckpt = work / f"{kind}.pth"
        torch.save(net.state_dict(), ckpt)
        model = work / kind
        subprocess.run(colorize + ["import", str(ckpt), "--kind", kind, "--out", str(model)],
                       check=True)
        if cin == 4:  # siggraph17: L, then ab hints and their mask (automatic mode: none)
            x = (torch.rand(1, 1, size, size) * 100.0, torch.zeros(1, 2, size, size),
                 torch.zeros(1, 1, size, size))
        else:
            x = (torch.rand(1, cin, size, size) * (100.0 if cin == 1 else 1.0),)
        onnx_path = work / f"{kind}.onnx"
        torch.onnx.export(net, x, str(onnx_path), opset_version=17, dynamo=False)
        nets.append((kind, net, size, model, x, onnx_path))

    rows = {n[0]: ([], [], []) for n in nets}
    for r in range(rounds):
        for kind, net, size, model, x, onnx_path in nets:
            t = torch_ms(net, x, iterations)
            o = ort_child_ms(onnx_path, iterations, threads)
            e = engine_ms(colorize, model, size, iterations, threads)
            for col, v in zip(rows[kind], (t, e, o)):
                col.append(v)
            print(f"round {r}: {kind} {size}x{size}: PyTorch {t[0]:.0f} ms, ORT {o[0]:.0f} ms "
                  f"({o[2]:.0f} MiB), engine {e[0]:.0f} ms ({e[2]:.0f} MiB)", file=sys.stderr)
    print(f"torch {torch.__version__}, {threads} threads, {rounds} rounds of {iterations} runs")
    print("| network | size | PyTorch ms | ONNX Runtime ms | engine ms | engine / ORT | "
          "engine / PyTorch | best: ORT / engine | peak MiB: ORT / engine |")
    print("|---|---|---:|---:|---:|---:|---:|---|---|")
    for kind, _, size, _, _, _ in nets:
        t, e, o = rows[kind]
        tm = statistics.median(v[0] for v in t)
        em = statistics.median(v[0] for v in e)
        om = statistics.median(v[0] for v in o)
        ob, eb = min(v[1] for v in o), min(v[1] for v in e)
        orss, erss = max(v[2] for v in o), max(v[2] or 0 for v in e)
        print(f"| {kind} | {size}x{size} | {tm:.0f} | {om:.0f} | {em:.0f} | {em / om:.2f} | "
              f"{em / tm:.2f} | {ob:.0f} / {eb:.0f} | {orss:.0f} / {erss:.0f} |")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description="Time colorize's U-Net in ONNX Runtime (CPU) beside the Rust engines.",
        epilog="See the module docstring (head of this file) for set-up and examples.")
    ap.add_argument("--make-model", type=Path, metavar="DIR",
                    help="write a model directory with random weights and exit")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="resnet34")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", type=Path, metavar="DIR", help="model directory to run")
    ap.add_argument("--size", type=parse_size, action="append", metavar="WxH",
                    help="network input size (repeatable; default 256x256 and 1024x768)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=10, help="timed runs after one warm-up")
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternate ORT and Rust this many times (median over rounds)")
    ap.add_argument("--ort-only", action="store_true", help="do not run the Rust bench")
    ap.add_argument("--no-burn", action="store_true",
                    help="time only the native engine on the Rust side (burn is slow at 1024x768)")
    ap.add_argument("--colorize", metavar="PATH",
                    help="the colorize binary or a command line (default: target/release/"
                    "colorize if present, else 'cargo run --release --')")
    ap.add_argument("--json-out", type=Path, metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--save-onnx", type=Path, metavar="FILE",
                    help="write the ONNX graph of the first size and exit")
    ap.add_argument("--check", action="store_true",
                    help="run ORT once on the ramp input of the first size; save to --check-out")
    ap.add_argument("--check-out", type=Path, metavar="FILE.npy")
    ap.add_argument("--check-input", type=Path, metavar="FILE.npy",
                    help="L input for --check ([H, W] or [1, 1, H, W], normalised) instead of "
                    "the ramp")
    ap.add_argument("--verify-numpy", action="store_true",
                    help="compare ORT with a pure-numpy reference at the first size (default "
                    "64x64) and exit")
    ap.add_argument("--imported", metavar="KIND,...",
                    help="time these imported networks instead (" + ", ".join(IMPORTED) +
                    "; needs PyTorch)")
    args = ap.parse_args(argv)

    if args.imported:
        kinds = args.imported.split(",")
        for k in kinds:
            if k not in IMPORTED:
                ap.error(f"--imported: unknown network {k!r} (known: {', '.join(IMPORTED)})")
        return imported_main(kinds, colorize_command(args.colorize), args.threads,
                             args.iterations, args.rounds)
    if args.make_model:
        make_model(args.make_model, args.preset, args.seed)
        return 0
    if not args.model:
        ap.error("--model DIR is required (or --make-model DIR)")
    net, weights = load_model(args.model)

    import onnxruntime as ort

    if args.verify_numpy:
        w, h = (args.size or [(64, 64)])[0]
        model, _ = build_graph(net, weights, h, w, pre_tanh_output=True)
        rng = np.random.default_rng(123)
        x = rng.uniform(-1, 1, (1, 1, h, w)).astype(np.float32)
        ab, logits = make_session(model, args.threads).run(None, {"l": x})
        ref_ab, ref_logits = numpy_forward(net, weights, x[0, 0])
        d_ab = float(np.abs(ab[0] - ref_ab).max())
        rel = float(np.abs(logits[0] - ref_logits).max() / np.abs(ref_logits).max())
        sat = float((np.abs(ref_ab) > 0.999).mean())
        # float32 sums carry a relative error: scale the tanh tolerance by the logits' size
        # (random deep models reach |pre-tanh| in the hundreds; tiny stays near 1-10).
        tol = 1e-4 * max(1.0, float(np.abs(ref_logits).max()) / 10.0)
        ok = ab.shape == (1, 2, h, w) and d_ab < tol and rel < 1e-5
        print(f"verify-numpy {w}x{h}: output {list(ab.shape)}, max |ORT - numpy| {d_ab:.2e} "
              f"(tanh output, tolerance {tol:.1e}), max rel. error of pre-tanh {rel:.2e}, "
              f"|pre-tanh| max {np.abs(ref_logits).max():.3g}, {100 * sat:.1f} % saturated: "
              f"{'OK' if ok else 'FAIL'}")
        return 0 if ok else 1

    sizes = args.size or [(256, 256), (1024, 768)]
    if args.save_onnx:
        import onnx

        w, h = sizes[0]
        onnx.save(build_graph(net, weights, h, w)[0], str(args.save_onnx))
        print(f"wrote {args.save_onnx} ({w}x{h})")
        return 0

    if args.check:
        if args.check_input:
            x = np.load(args.check_input).astype(np.float32)
            x = x.reshape(1, 1, *x.shape[-2:])
        else:
            x = ramp_input(*sizes[0])
        h, w = x.shape[2:]
        model, _ = build_graph(net, weights, h, w)
        ab = make_session(model, args.threads).run(None, {"l": x})[0]
        print(f"check {w}x{h}: output {list(ab.shape)}, finite {bool(np.isfinite(ab).all())}, "
              f"min {ab.min():.4f}, max {ab.max():.4f}, mean {ab.mean():.4f}")
        if args.check_out:
            np.save(args.check_out, ab)
            inp = args.check_out.with_name(args.check_out.stem + ".input.npy")
            np.save(inp, x)
            print(f"wrote {args.check_out} and {inp}")
        return 0

    print(f"onnxruntime {ort.__version__}, model {args.model}, threads {args.threads}, "
          f"{args.iterations} timed runs after one warm-up (median)", flush=True)
    rust_cmd = None if args.ort_only else colorize_command(args.colorize)
    ort_rounds, rust_rounds = [], []
    for r in range(max(args.rounds, 1)):
        res = time_ort(net, weights, sizes, args.threads, args.iterations)
        ort_rounds.append(res)
        for (w, h), v in res.items():
            print(f"  round {r + 1} ORT {w}x{h}: {v['ms']:.1f} ms, peak RSS {v['rss_mib']:.0f} MiB"
                  + ("" if v["output_ok"] else "  (OUTPUT NOT FINITE OR MIS-SHAPED)"), flush=True)
        if rust_cmd:
            rust_rounds.append(run_rust(rust_cmd, args.model, sizes, args.threads,
                                        args.iterations, burn=not args.no_burn))

    def med(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    rows = []
    for w, h in sizes:
        gflop = ort_rounds[0][(w, h)]["gflop"]
        row = {"width": w, "height": h, "gflop": gflop,
               "ort_ms": med([r[(w, h)]["ms"] for r in ort_rounds]),
               "ort_peak_rss_mib": ort_rounds[-1][(w, h)]["rss_mib"],
               "ort_output_ok": all(r[(w, h)]["output_ok"] for r in ort_rounds)}
        for engine in ("engine", "burn"):
            row[f"{engine}_ms"] = med([r.get((engine, w, h)) for r in rust_rounds])
            mins = [r.get(("min", engine, w, h)) for r in rust_rounds]
            mins = [m for m in mins if m is not None]
            row[f"{engine}_min_ms"] = min(mins) if mins else None
        row["ort_min_ms"] = min(r[(w, h)]["min_ms"] for r in ort_rounds)
        rows.append(row)

    print()
    if args.ort_only:
        print(f"{'network size':<13} {'GFLOP':>7} {'ORT ms (GFLOP/s)':>18} {'peak RSS MiB':>13}")
        for r in rows:
            print(f"{str(r['width']) + 'x' + str(r['height']):<13} {r['gflop']:7.2f} "
                  f"{fmt_ms(r['ort_ms'], r['gflop']):>18} {r['ort_peak_rss_mib']:13.0f}")
    else:
        print(f"{'network size':<13} {'GFLOP':>7} {'ORT ms (GFLOP/s)':>18} "
              f"{'engine ms (GFLOP/s)':>20} {'engine/ORT':>10} {'burn ms (GFLOP/s)':>18} "
              f"{'burn/ORT':>9}")
        for r in rows:
            ratio = {e: (f"{r[f'{e}_ms'] / r['ort_ms']:.2f}" if r[f"{e}_ms"] else "-")
                     for e in ("engine", "burn")}
            print(f"{str(r['width']) + 'x' + str(r['height']):<13} {r['gflop']:7.2f} "
                  f"{fmt_ms(r['ort_ms'], r['gflop']):>18} "
                  f"{fmt_ms(r['engine_ms'], r['gflop']):>20} {ratio['engine']:>10} "
                  f"{fmt_ms(r['burn_ms'], r['gflop']):>18} {ratio['burn']:>9}")
        print("\nbest single run of all rounds (the machine's capability when nothing else runs;"
              " on a shared VM the medians above include other tenants' load):")
        print(f"{'network size':<13} {'ORT best ms':>12} {'engine best ms':>15} {'engine/ORT':>10} "
              f"{'burn best ms':>13} {'burn/ORT':>9}")
        for r in rows:
            ratio = {e: (f"{r[f'{e}_min_ms'] / r['ort_min_ms']:.2f}" if r[f"{e}_min_ms"] else "-")
                     for e in ("engine", "burn")}
            print(f"{str(r['width']) + 'x' + str(r['height']):<13} {r['ort_min_ms']:12.1f} "
                  f"{(r['engine_min_ms'] or float('nan')):15.1f} {ratio['engine']:>10} "
                  f"{(r['burn_min_ms'] or float('nan')):13.1f} {ratio['burn']:>9}")
        print(f"ORT peak RSS: {max(r['ort_peak_rss_mib'] for r in rows):.0f} MiB")
    if args.json_out:
        args.json_out.write_text(json.dumps(
            {"onnxruntime": ort.__version__, "threads": args.threads,
             "iterations": args.iterations, "rounds": args.rounds,
             "model": str(args.model), "network": rows}, indent=2) + "\n")
    return 0 if all(r["ort_output_ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
