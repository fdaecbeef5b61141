#!/usr/bin/env python3
"""Real OpenCV / PyTorch / numpy outputs for the image operations of DDColor's photo pipeline; writes the
fixture that crates/core/tests/opencv.rs checks `colorize_core::opencv` against.

The operations (../shared/reference/ddcolor.md section 4):
    cv2.cvtColor(float32, COLOR_RGB2Lab)   the 33^3-LUT, 4-bit trilinear RGB -> Lab of OpenCV's float path
    cv2.cvtColor(float32, COLOR_Lab2RGB)   OpenCV's float Lab -> RGB (clipped, spline-tabulated gamma)
    cv2.resize(float32, INTER_LINEAR)      half-pixel bilinear, no antialiasing
    torch.nn.functional.interpolate(mode="nearest")  PyTorch's legacy nearest (f32 scale in/out)
    np.round(x * 255).astype(np.uint8)     numpy round-half-even to 8 bits

Usage (two interpreters, because the pinned OpenCV wheel needs numpy < 2 and torch is elsewhere;
CI never runs this):
    python3 -m venv /tmp/cvenv
    /tmp/cvenv/bin/pip install 'numpy<2' opencv-python-headless==4.7.0.72
    /tmp/cvenv/bin/python scripts/reference/opencv_ops.py opencv crates/core/tests/fixtures/opencv
    <python with torch and numpy> scripts/reference/opencv_ops.py torch crates/core/tests/fixtures/opencv

Writes into the folder little-endian float32 `.bin` files (row-major, interleaved channels; shapes in
shapes.json, which the tests do not parse: they know the shapes and check the file lengths):
    rgb_in / rgb_lab          [N, 3]   RGB in 0..1 (256 greys k/255, the 33^3 LUT grid subsampled,
                                       random 8-bit colours, random float colours, a few outside
                                       0..1) and cv2 RGB2Lab of it, as one row
    lab_in / lab_rgb          [M, 3]   random Lab (L -5..105, a/b -130..130), greys L 0..100, L near
                                       the threshold 8; and cv2 Lab2RGB of it, as one row (M % 8 == 0)
    lab_img_in / lab_img_rgb  [5, 13, 3]  a Lab image whose rows have 13 % 8 = 5 tail pixels
    resize_src                [23, 37, 3]  random float image (height 23, width 37)
    resize_WxH                [H, W, 3]  cv2.resize(src, (W, H), INTER_LINEAR) for 64x64, 16x11,
                                       80x40, and 20x11 from resize_src2 [22, 40, 3] (exact halving)
    resize1_src / resize1_64x64  [23, 37] / [64, 64]  one channel
    lut_grid_fnv1a64.txt      FNV-1a 64 (hex) of cv2 RGB2Lab's integer codes on the whole 33^3 table grid
    round_in / round_out      [K]      x in 0..1 (with exact halves (k + 0.5) / 255) and
                                       np.round(x * 255).astype(np.uint8) (stored as float32)
  torch mode:
    nearest_src               [23, 37]  random plane
    nearest_WxH               [H, W]    F.interpolate(src[None, None], size=(H, W)) (mode "nearest")
                                        for 64x64, 16x11, 80x40, 74x46, 37x23, 1000x3 from
                                        nearest_src2 [2, 512]
"""
import json
import os
import sys

import numpy as np


def save(folder, shapes, name, arr):
    arr = np.ascontiguousarray(arr, dtype="<f4")
    arr.tofile(os.path.join(folder, name + ".bin"))
    shapes[name] = list(arr.shape)


def opencv_mode(folder, shapes):
    import cv2

    shapes["_opencv_version"] = cv2.__version__
    shapes["_numpy_version"] = np.__version__
    rng = np.random.default_rng(18)
    greys = np.repeat((np.arange(256) / 255.0).astype(np.float32)[:, None], 3, 1)
    grid = np.stack(np.meshgrid(*[np.arange(0, 33, 4)] * 3, indexing="ij"), -1).reshape(-1, 3) / 32.0
    cols8 = rng.integers(0, 256, (2048, 3)) / 255.0
    colsf = rng.random((2048, 3))
    outside = rng.uniform(-0.5, 1.5, (16, 3))
    rgb = np.concatenate([greys, grid, cols8, colsf, outside]).astype(np.float32)
    save(folder, shapes, "rgb_in", rgb)
    save(folder, shapes, "rgb_lab", cv2.cvtColor(rgb[None], cv2.COLOR_RGB2Lab)[0])
    # The whole 33^3 table grid (r, g, b) / 32, r slowest: interpolation weights there are 0, so the
    # output is OpenCV's table entry. Too big to store; the FNV-1a 64 hash of its integer codes
    # round(16384 L / 100), round(64 (a + 128)), round(64 (b + 128)) (each as u16 LE) is enough.
    g33 = (np.stack(np.meshgrid(*[np.arange(33)] * 3, indexing="ij"), -1).reshape(-1, 3) / 32.0)
    lab33 = cv2.cvtColor(g33.astype(np.float32)[None], cv2.COLOR_RGB2Lab)[0].astype(np.float64)
    codes = np.rint(np.stack([lab33[:, 0] * 16384 / 100, (lab33[:, 1] + 128) * 64,
                              (lab33[:, 2] + 128) * 64], 1)).astype("<u2")
    h = 0xCBF29CE484222325
    for byte in codes.tobytes():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    with open(os.path.join(folder, "lut_grid_fnv1a64.txt"), "w") as f:
        f.write(f"{h:016x}\n")
    # BGR2Lab is RGB2Lab with the channels reversed (what the pipeline calls on BGR images).
    assert np.array_equal(cv2.cvtColor(rgb[None, :, ::-1].copy(), cv2.COLOR_BGR2Lab),
                          cv2.cvtColor(rgb[None], cv2.COLOR_RGB2Lab))

    n = 2048
    lab = np.stack([rng.uniform(-5, 105, n), rng.uniform(-130, 130, n), rng.uniform(-130, 130, n)], 1)
    grey_l = np.stack([np.linspace(0, 100, 101), np.zeros(101), np.zeros(101)], 1)
    near8 = np.stack([np.linspace(7.99, 8.01, 19), rng.uniform(-20, 20, 19), rng.uniform(-20, 20, 19)], 1)
    lab = np.concatenate([lab, grey_l, near8]).astype(np.float32)
    lab = lab[: len(lab) // 8 * 8]
    save(folder, shapes, "lab_in", lab)
    save(folder, shapes, "lab_rgb", cv2.cvtColor(lab[None], cv2.COLOR_Lab2RGB)[0])
    img = np.stack([rng.uniform(0, 100, (5, 13)), rng.uniform(-60, 60, (5, 13)),
                    rng.uniform(-60, 60, (5, 13))], -1).astype(np.float32)
    save(folder, shapes, "lab_img_in", img)
    save(folder, shapes, "lab_img_rgb", cv2.cvtColor(img, cv2.COLOR_Lab2RGB))

    src = rng.random((23, 37, 3), dtype=np.float32)
    save(folder, shapes, "resize_src", src)
    for w, h in [(64, 64), (16, 11), (80, 40)]:
        save(folder, shapes, f"resize_{w}x{h}", cv2.resize(src, (w, h), interpolation=cv2.INTER_LINEAR))
    src2 = rng.random((22, 40, 3), dtype=np.float32)
    save(folder, shapes, "resize_src2", src2)
    save(folder, shapes, "resize_20x11", cv2.resize(src2, (20, 11), interpolation=cv2.INTER_LINEAR))
    src1 = rng.random((23, 37), dtype=np.float32)
    save(folder, shapes, "resize1_src", src1)
    save(folder, shapes, "resize1_64x64", cv2.resize(src1, (64, 64), interpolation=cv2.INTER_LINEAR))

    x = np.concatenate([rng.random(1000, dtype=np.float32),
                        ((np.arange(255) + 0.5) / 255).astype(np.float32),
                        np.arange(256, dtype=np.float32) / np.float32(255)])
    save(folder, shapes, "round_in", x)
    save(folder, shapes, "round_out", np.round(x * 255).astype(np.uint8).astype(np.float32))


def torch_mode(folder, shapes):
    import torch
    import torch.nn.functional as F

    shapes["_torch_version"] = torch.__version__
    rng = np.random.default_rng(19)
    src = rng.random((23, 37), dtype=np.float32)
    save(folder, shapes, "nearest_src", src)
    t = torch.from_numpy(src)[None, None]
    for w, h in [(64, 64), (16, 11), (80, 40), (74, 46), (37, 23)]:
        save(folder, shapes, f"nearest_{w}x{h}", F.interpolate(t, size=(h, w))[0, 0].numpy())
    src2 = rng.random((2, 512), dtype=np.float32)
    save(folder, shapes, "nearest_src2", src2)
    t2 = torch.from_numpy(src2)[None, None]
    save(folder, shapes, "nearest_1000x3", F.interpolate(t2, size=(3, 1000))[0, 0].numpy())


def main():
    mode, folder = sys.argv[1], sys.argv[2]
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "shapes.json")
    shapes = json.load(open(path)) if os.path.exists(path) else {}
    {"opencv": opencv_mode, "torch": torch_mode}[mode](folder, shapes)
    with open(path, "w") as f:
        json.dump(dict(sorted(shapes.items())), f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
