#!/usr/bin/env python3
"""Times the imported networks in PyTorch and in colorize's engine, in one run, alternating.

Builds Zhang et al.'s eccv16 and DeOldify's Artistic generator at their published widths with
random weights (the modules of scripts/reference/eccv16.py and deoldify.py, written from
../shared/reference/), saves each as the published file layout (torch.save of the state dict),
imports it with `colorize import`, then for each round times the network alone at its default
size in PyTorch (eval, no_grad, float32, torch.set_num_threads = --threads) and with
`colorize bench --network-only` (the native engine, same thread count), and prints the medians
and the ratio engine / PyTorch (below 1: the engine is faster).

Usage (PyTorch, numpy and safetensors from pip; CI never runs this):
    cargo build --release
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
    r = json.loads(out)["network"][0]
    return r["median_ms"], r["min_ms"]


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
        nets.append((name, net, size, model, x))

    rows = {n[0]: ([], []) for n in nets}
    for r in range(args.rounds):
        for name, net, size, model, x in nets:
            t = torch_ms(net, x, args.iterations)
            e = engine_ms(args.colorize, model, size, args.iterations, args.threads)
            rows[name][0].append(t)
            rows[name][1].append(e)
            print(f"round {r}: {name} {size}x{size}: PyTorch {t[0]:.0f} ms, engine {e[0]:.0f} ms",
                  file=sys.stderr)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.rounds} rounds of "
          f"{args.iterations} runs")
    print("| network | size | PyTorch median ms | engine median ms | engine / PyTorch | best: PyTorch | best: engine |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, _, size, _, _ in nets:
        t, e = rows[name]
        tm = statistics.median(v[0] for v in t)
        em = statistics.median(v[0] for v in e)
        tb = min(v[1] for v in t)
        eb = min(v[1] for v in e)
        print(f"| {name} | {size}x{size} | {tm:.0f} | {em:.0f} | {em / tm:.2f} | {tb:.0f} | {eb:.0f} |")


if __name__ == "__main__":
    main()
