#!/usr/bin/env python3
"""CPU benchmark of DDColor at the published sizes, ONNX Runtime and PyTorch eager, for the docs.

The network is scripts/reference/ddcolor.py's re-implementation (its state-dict layout is the published
one: --check-full-layout there). Weights are seeded random, perturbed like the parity fixtures
(perturb(): BN/LN affine, ConvNeXt gamma U(0.3, 1.0), spectral-norm u/v from 30 power iterations, BN
running statistics calibrated on a 128x128 grey image, colour embedding scaled); the timings do not
depend on the values, but this keeps the activations in a realistic range.

For each --variant (tiny = ConvNeXt-T, large = ConvNeXt-L; nf 512, hidden 256, FFN 2048, 100 queries,
9 layers) and --size S (input [1, 3, S, S], a grey image as the pipeline feeds it):
  * the spectral norm is folded into plain conv weights (torch.nn.utils.remove_spectral_norm: W =
    weight_orig / (u . W v), as a port would do at load time);
  * ONNX: torch.onnx.export (TorchScript exporter, dynamo=False, opset 17, static shape), then a fresh
    subprocess times onnxruntime.InferenceSession (CPUExecutionProvider, intra_op_num_threads=threads,
    inter_op_num_threads=1, ORT_ENABLE_ALL, sequential execution);
  * PyTorch: a fresh subprocess builds the model on the meta device, loads the folded weights
    (torch.load into memory, load_state_dict(assign=True): no second copy), torch.set_num_threads(threads),
    set_num_interop_threads(1), and times model(x) under torch.inference_mode();
  * each worker: 1 warm-up run, then --runs timed runs (time.perf_counter); median and all values;
    memory from the worker's own process: rss_start_mib (VmRSS after imports), rss_loaded_mib (VmRSS
    after the model / session is loaded, before the first run: the weight memory is the difference),
    peak_rss_mib (resource.getrusage(RUSAGE_SELF).ru_maxrss at the end, nothing subtracted).
One JSON line per (framework, variant, size) on stdout; progress on stderr. The ONNX line also holds the
max |ORT - PyTorch| of the two outputs (same input, same weights).

Usage (PyTorch, onnx, onnxruntime, numpy from pip; CI never runs this):
    /tmp/torchenv/bin/python scripts/ddcolor-bench.py                       # tiny and large, 256 and 512
    /tmp/torchenv/bin/python scripts/ddcolor-bench.py --variant tiny --size 256 --runs 2
    /tmp/torchenv/bin/python scripts/ddcolor-bench.py --variant large --save-checkpoint /tmp/ddcolor-large-random.pth
Options: --threads N (2), --runs N (5), --seed N (0), --workdir DIR (a temporary folder; the ONNX file and
the folded weights go there and are deleted afterwards unless --keep), --frameworks onnxruntime,torch,
--save-checkpoint PATH (torch.save of the raw state dict in the published layout, weight_orig/_u/_v
included, as Hugging Face's pytorch_model.bin: the Rust importer can read the same weights; with both
variants, "{variant}" in PATH is replaced, otherwise "-{variant}" is added before the extension).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def vm_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def time_runs(fn, runs):
    t0 = time.perf_counter()
    fn()
    warm = (time.perf_counter() - t0) * 1e3
    ms = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1e3)
    return warm, ms


# ----------------------------------------------------------------------------------------------------
# Workers (run in their own process; the ORT worker never imports torch)


def worker_ort(a):
    import numpy as np
    import onnxruntime as ort
    rss_start = vm_rss_mib()
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(a.model_file, so, providers=["CPUExecutionProvider"])
    x = np.load(a.input_file)
    name = sess.get_inputs()[0].name
    rss_loaded = vm_rss_mib()
    peak_loaded = peak_rss_mib()
    out = {}

    def run():
        out["y"] = sess.run(None, {name: x})[0]

    warm, ms = time_runs(run, a.runs)
    np.save(a.output_file, out["y"])
    return dict(framework="onnxruntime", version=ort.__version__, warmup_ms=warm, ms=ms, rss_start_mib=rss_start,
                rss_loaded_mib=rss_loaded, peak_rss_loaded_mib=peak_loaded, peak_rss_mib=peak_rss_mib())


def worker_torch(a):
    import numpy as np
    import torch
    rss_start = vm_rss_mib()
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    sys.path.insert(0, os.path.join(HERE, "reference"))
    import ddcolor as D
    cfg = D.DDColorConfig(**json.loads(a.config))
    with torch.device("meta"):
        m = D.DDColor(cfg)
        fold_spectral_norm(m)
    m.load_state_dict(torch.load(a.model_file, weights_only=True), assign=True)
    m.eval()
    x = torch.from_numpy(np.load(a.input_file))
    rss_loaded = vm_rss_mib()
    peak_loaded = peak_rss_mib()
    out = {}

    def run():
        with torch.inference_mode():
            out["y"] = m(x)

    warm, ms = time_runs(run, a.runs)
    np.save(a.output_file, out["y"].numpy())
    return dict(framework="pytorch-eager", version=torch.__version__, warmup_ms=warm, ms=ms, rss_start_mib=rss_start,
                rss_loaded_mib=rss_loaded, peak_rss_loaded_mib=peak_loaded, peak_rss_mib=peak_rss_mib())


def fold_spectral_norm(model):
    """remove_spectral_norm everywhere (W = weight_orig / (u . W v), stored u/v, no power iteration).
    It leaves the SpectralNormLoadStateDictPreHook behind in this PyTorch (the hook is wrapped, so its
    isinstance test misses it), and that hook would demand weight_orig/weight_u on load: drop it too."""
    import torch.nn as nn
    for mod in model.modules():
        if hasattr(mod, "weight_orig"):
            nn.utils.remove_spectral_norm(mod)
            for k, h in list(mod._load_state_dict_pre_hooks.items()):
                if type(getattr(h, "hook", h)).__name__ == "SpectralNormLoadStateDictPreHook":
                    del mod._load_state_dict_pre_hooks[k]


# ----------------------------------------------------------------------------------------------------
# Driver


def bench_input(s):
    """[1, 3, s, s] float32 grey (R = G = B) in 0..1, as the pipeline's Lab2RGB(L, 0, 0) gives."""
    import numpy as np
    yy, xx = np.meshgrid(np.arange(s, dtype=np.float64), np.arange(s, dtype=np.float64), indexing="ij")
    g = 0.5 + 0.3 * np.sin(xx / (s / 18.0)) * np.cos(yy / (s / 12.0)) + 0.15 * (xx - s / 2) / s
    g = np.clip(g, 0, 1).astype(np.float32)
    return np.ascontiguousarray(np.broadcast_to(g, (1, 3, s, s)))


def checkpoint_path(pattern, variant, n_variants):
    if "{variant}" in pattern:
        return pattern.replace("{variant}", variant)
    if n_variants == 1:
        return pattern
    root, ext = os.path.splitext(pattern)
    return f"{root}-{variant}{ext}"


def run_worker(kind, a, model_file, input_file, output_file, cfg_json):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--model-file", model_file,
           "--input-file", input_file, "--output-file", output_file, "--threads", str(a.threads),
           "--runs", str(a.runs), "--config", cfg_json]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise SystemExit(f"{kind} worker failed ({r.returncode})")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", choices=("tiny", "large"), action="append")
    ap.add_argument("--size", type=int, action="append")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frameworks", default="onnxruntime,torch")
    ap.add_argument("--save-checkpoint")
    ap.add_argument("--workdir")
    ap.add_argument("--keep", action="store_true")
    # worker mode
    ap.add_argument("--worker", choices=("ort", "torch"))
    ap.add_argument("--model-file")
    ap.add_argument("--input-file")
    ap.add_argument("--output-file")
    ap.add_argument("--config")
    a = ap.parse_args()

    if a.worker:
        res = worker_ort(a) if a.worker == "ort" else worker_torch(a)
        print(json.dumps(res))
        return

    import tempfile
    import numpy as np
    import torch
    sys.path.insert(0, os.path.join(HERE, "reference"))
    import ddcolor as D
    from dataclasses import asdict

    variants = a.variant or ["tiny", "large"]
    sizes = a.size or [256, 512]
    frameworks = a.frameworks.split(",")
    torch.set_num_threads(a.threads)
    workdir = a.workdir or tempfile.mkdtemp(prefix="ddcolor-bench-")
    os.makedirs(workdir, exist_ok=True)
    log = lambda *s: print(*s, file=sys.stderr, flush=True)
    cpu = "unknown"
    try:
        cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
    except Exception:
        pass
    log(f"cpu: {cpu}; torch {torch.__version__}; threads {a.threads}; runs {a.runs}; workdir {workdir}")

    for variant in variants:
        cfg = D.FULL[variant]
        t0 = time.perf_counter()
        calib = D.calibration_input(128, 128)
        scale_x = torch.from_numpy(bench_input(128))
        model = D.build_random(cfg, a.seed, calib, scale_x, log=log)
        log(f"{variant}: built and perturbed in {time.perf_counter() - t0:.1f} s "
            f"({sum(p.numel() for p in model.parameters()):,} parameters)")
        if a.save_checkpoint:
            p = checkpoint_path(a.save_checkpoint, variant, len(variants))
            torch.save(model.state_dict(), p)
            log(f"{variant}: raw state dict (published layout) saved to {p} ({os.path.getsize(p):,} bytes)")
        fold_spectral_norm(model)
        model.eval()
        folded = os.path.join(workdir, f"ddcolor-{variant}-folded.pt")
        torch.save(model.state_dict(), folded)
        cfg_json = json.dumps(asdict(cfg))
        for s in sizes:
            x = bench_input(s)
            xin = os.path.join(workdir, f"input-{s}.npy")
            np.save(xin, x)
            results = {}
            if "torch" in frameworks:
                out = os.path.join(workdir, f"out-torch-{variant}-{s}.npy")
                results["torch"] = (run_worker("torch", a, folded, xin, out, cfg_json), out)
            if "onnxruntime" in frameworks:
                onnx_path = os.path.join(workdir, f"ddcolor-{variant}-{s}.onnx")
                t0 = time.perf_counter()
                with torch.no_grad():
                    torch.onnx.export(model, (torch.from_numpy(x),), onnx_path, opset_version=17, dynamo=False,
                                      input_names=["input"], output_names=["ab"])
                log(f"{variant} {s}: ONNX export {time.perf_counter() - t0:.1f} s, "
                    f"{os.path.getsize(onnx_path) / 2**20:.1f} MiB")
                out = os.path.join(workdir, f"out-ort-{variant}-{s}.npy")
                results["onnxruntime"] = (run_worker("ort", a, onnx_path, xin, out, cfg_json), out)
                if not a.keep:
                    os.remove(onnx_path)
            for key, (res, out) in results.items():
                line = dict(framework=res["framework"], version=res["version"], variant=variant, size=s,
                            threads=a.threads, ms_median=round(statistics.median(res["ms"]), 2),
                            ms=[round(v, 2) for v in res["ms"]], warmup_ms=round(res["warmup_ms"], 2),
                            rss_start_mib=round(res["rss_start_mib"], 1),
                            rss_loaded_mib=round(res["rss_loaded_mib"], 1),
                            peak_rss_mib=round(res["peak_rss_mib"], 1), cpu=cpu)
                if key == "onnxruntime" and "torch" in results:
                    y_ort, y_pt = np.load(out), np.load(results["torch"][1])
                    line["max_abs_diff_vs_torch"] = float(np.abs(y_ort - y_pt).max())
                    line["output_std"] = float(y_pt.std())
                print(json.dumps(line), flush=True)
        if not a.keep:
            os.remove(folded)
        del model
    if not a.keep and not a.workdir:
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
