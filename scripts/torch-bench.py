#!/usr/bin/env python3
"""Times the imported networks in PyTorch, ONNX Runtime and colorize's engine, in one run.

Builds Zhang et al.'s eccv16 and DeOldify's Artistic generator at their published widths with
random weights (the modules of scripts/reference/eccv16.py and deoldify.py, written from
../shared/reference/), saves each as the published file layout (torch.save of the state dict),
imports it with `colorize import`, then for each round times the network alone at its default
size in PyTorch (eval, no_grad, float32, torch.set_num_threads = --threads), in ONNX Runtime
(the same module exported with torch.onnx.export, graph optimisation level ALL, intra-op threads
= --threads; peak resident memory of a separate process) and with `colorize bench --network-only`
(the native engine, same thread count; its peak resident memory), alternating, and prints the
medians and the ratios (below 1: the engine is faster).

Usage (PyTorch, numpy and safetensors from pip; CI never runs this):
    cargo build --release
    /tmp/torchenv/bin/pip install onnx onnxruntime onnxscript
    /tmp/torchenv/bin/python scripts/torch-bench.py --colorize target/release/colorize
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, "reference", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def torch_ms(net, x, iterations):
    with torch.no_grad():
        net(x)  # warm-up
        times = []
        for _ in range(iterations):
            t = time.perf_counter()
            net(x)
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), min(times)


def engine_ms(colorize, model, size, iterations, threads):
    out = subprocess.run(
        [colorize, "bench", "--model", model, "--network-only", "--batch", "0", "--json",
         "--iterations", str(iterations), "--network-size", f"{size}x{size}",
         "--threads", str(threads)],
        check=True, capture_output=True, text=True).stdout
    report = json.loads(out)
    r = report["network"][0]
    return r["median_ms"], r["min_ms"], report.get("peak_rss_mib")


ORT_CHILD = """
import json, statistics, sys, time
import numpy as np, onnxruntime as ort
path, size, cin, iterations, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
o = ort.SessionOptions()
o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
o.intra_op_num_threads = threads
s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
x = np.random.rand(1, cin, size, size).astype(np.float32)
name = s.get_inputs()[0].name
s.run(None, {name: x})
t = []
for _ in range(iterations):
    a = time.perf_counter(); s.run(None, {name: x}); t.append((time.perf_counter() - a) * 1e3)
# VmHWM belongs to this process's own address space (ru_maxrss would carry the parent's peak
# across fork and exec).
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1]
print(json.dumps([statistics.median(t), min(t), int(hwm) / 1024]))
"""


def ort_ms(onnx_path, size, cin, iterations, threads):
    out = subprocess.run([sys.executable, "-c", ORT_CHILD, onnx_path, str(size), str(cin),
                          str(iterations), str(threads)], check=True, capture_output=True,
                         text=True).stdout
    return tuple(json.loads(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--colorize", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    work = tempfile.mkdtemp(prefix="torch-bench-")

    eccv16 = load("eccv16")
    eccv16.WIDTHS = [64, 128, 256, 512, 512, 512, 512]
    eccv16.DECODER = 256
    e_net = eccv16.ECCVGenerator().eval()
    deoldify = load("deoldify")
    d_net = deoldify.DynamicUnetDeep(deoldify.FULL_WIDTHS)
    with torch.no_grad():  # one power iteration, so spectral norm's u and v fit the weights
        d_net.train()
        d_net(torch.rand(1, 3, 64, 64))
    d_net.eval()
    nets = []
    for name, net, size, cin in [("eccv16", e_net, 256, 1), ("deoldify-artistic", d_net, 560, 3)]:
        ckpt = os.path.join(work, f"{name}.pth")
        torch.save(net.state_dict(), ckpt)
        model = os.path.join(work, name)
        subprocess.run([args.colorize, "import", ckpt, "--out", model], check=True)
        x = torch.rand(1, cin, size, size) * (100.0 if cin == 1 else 1.0)
        onnx_path = os.path.join(work, f"{name}.onnx")
        torch.onnx.export(net, (x,), onnx_path, opset_version=17, dynamo=False)
        nets.append((name, net, size, model, x, onnx_path, cin))

    rows = {n[0]: ([], [], []) for n in nets}
    for r in range(args.rounds):
        for name, net, size, model, x, onnx_path, cin in nets:
            t = torch_ms(net, x, args.iterations)
            o = ort_ms(onnx_path, size, cin, args.iterations, args.threads)
            e = engine_ms(args.colorize, model, size, args.iterations, args.threads)
            rows[name][0].append(t)
            rows[name][1].append(e)
            rows[name][2].append(o)
            print(f"round {r}: {name} {size}x{size}: PyTorch {t[0]:.0f} ms, ORT {o[0]:.0f} ms "
                  f"({o[2]:.0f} MiB), engine {e[0]:.0f} ms ({e[2]:.0f} MiB)", file=sys.stderr)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.rounds} rounds of "
          f"{args.iterations} runs")
    print("| network | size | PyTorch ms | ONNX Runtime ms | engine ms | engine / ORT | engine / PyTorch | best: ORT / engine | peak MiB: ORT / engine |")
    print("|---|---|---:|---:|---:|---:|---:|---|---|")
    for name, _, size, _, _, _, _ in nets:
        t, e, o = rows[name]
        tm = statistics.median(v[0] for v in t)
        em = statistics.median(v[0] for v in e)
        om = statistics.median(v[0] for v in o)
        ob, eb = min(v[1] for v in o), min(v[1] for v in e)
        orss, erss = max(v[2] for v in o), max(v[2] or 0 for v in e)
        print(f"| {name} | {size}x{size} | {tm:.0f} | {om:.0f} | {em:.0f} | {em / om:.2f} | "
              f"{em / tm:.2f} | {ob:.0f} / {eb:.0f} | {orss:.0f} / {erss:.0f} |")


if __name__ == "__main__":
    main()
