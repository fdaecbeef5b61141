#!/usr/bin/env python3
"""Photo-level references for the published pipelines: Zhang et al.'s demo around eccv16 and
DeOldify's ColorizerFilter around the Artistic generator, run with the libraries those projects
use (Pillow, scikit-image, PyTorch's interpolate, OpenCV) on the reduced-width fixture networks.
crates/import/tests checks colorize's `io.pipeline` implementations against the outputs.

Written from ../shared/reference/zhang.md section 3 (colorizers/util.py, demo_release.py) and
../shared/reference/deoldify.md section 2 (deoldify/filters.py), reusing this folder's
eccv16.py and deoldify.py for the networks.

Usage (PyTorch, Pillow, scikit-image, opencv-python-headless from pip; CI never runs this):
    python3 scripts/reference/pipelines.py crates/models/tests/fixtures/pipelines

Writes into the folder:
    photo.png              the input: a 200x150 crop of examples/1864UnionSoldier.jpg, 8-bit RGB
    zhang-eccv16.png       Zhang's demo pipeline (256x256 bicubic, skimage Lab, bilinear ab,
                           lab2rgb, floor(255 x)) with crates/models/tests/fixtures/eccv16
    deoldify-artistic-colour.png, deoldify-stable-colour.png
                           the network's colour inside DeOldify's pipeline (64x64, after the
                           truncation to 8 bits): the test checks the post-processing from it
    deoldify-artistic.png  DeOldify's pipeline at render factor 4 (64x64; bilinear, 601 luma,
                           ImageNet normalisation, truncation, bilinear back, OpenCV YUV
                           luminance transfer) with crates/models/tests/fixtures/deoldify
    zhang-siggraph17.png   Zhang's demo pipeline with crates/models/tests/fixtures/siggraph17
                           (automatic mode: no hints)
    deoldify-stable.png    DeOldify's pipeline at render factor 4 with the Wide fixture
                           (crates/models/tests/fixtures/deoldify-wide)
"""
import importlib.util
import os
import sys

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import color

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.join(HERE, "..", "..")


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def zhang(photo, net):
    img = np.asarray(photo)                                   # util.load_img
    rs = np.asarray(Image.fromarray(img).resize((256, 256), resample=3))
    l_rs = color.rgb2lab(rs)[:, :, 0]
    l_orig = color.rgb2lab(img)[:, :, 0]
    tens_rs = torch.Tensor(l_rs)[None, None]
    tens_orig = torch.Tensor(l_orig)[None, None]
    with torch.no_grad():
        out_ab = net(tens_rs)
    h, w = tens_orig.shape[2:]
    if out_ab.shape[2:] != (h, w):
        out_ab = F.interpolate(out_ab, size=(h, w), mode="bilinear")
    lab = torch.cat((tens_orig, out_ab), dim=1)[0].numpy().transpose((1, 2, 0))
    rgb = color.lab2rgb(lab)
    return np.floor(np.clip(rgb, 0, 1) * 255).astype(np.uint8)   # plt.imsave


def deoldify(photo, net, render_factor, raw_out=None):
    sz = render_factor * 16
    model_image = photo.resize((sz, sz), resample=Image.BILINEAR)
    model_image = model_image.convert("LA").convert("RGB")
    x = torch.from_numpy(np.asarray(model_image).astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    mean = torch.tensor([0.485, 0.456, 0.406])[None, :, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[None, :, None, None]
    with torch.no_grad():
        out = net((x - mean) / std)
    out = (out * std + mean).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    raw = Image.fromarray((out * 255).astype(np.uint8))
    if raw_out:
        raw.save(raw_out)
    raw = raw.resize(photo.size, resample=Image.BILINEAR)
    color_yuv = cv2.cvtColor(np.asarray(raw), cv2.COLOR_RGB2YUV)
    orig_yuv = cv2.cvtColor(np.asarray(photo), cv2.COLOR_RGB2YUV)
    final = np.copy(orig_yuv)
    final[:, :, 1:3] = color_yuv[:, :, 1:3]
    return cv2.cvtColor(final, cv2.COLOR_YUV2RGB)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    photo = Image.open(os.path.join(REPO, "examples", "1864UnionSoldier.jpg")).convert("RGB")
    photo = photo.crop((100, 80, 300, 230))
    photo.save(os.path.join(out, "photo.png"))
    photo = Image.open(os.path.join(out, "photo.png")).convert("RGB")

    eccv16 = load("eccv16")
    e = eccv16.ECCVGenerator()
    e.load_state_dict(torch.load(os.path.join(REPO, "crates/models/tests/fixtures/eccv16/checkpoint.pth")))
    e.eval()
    Image.fromarray(zhang(photo, e)).save(os.path.join(out, "zhang-eccv16.png"))

    deo = load("deoldify")
    d = deo.DynamicUnetDeep(deo.REDUCED_WIDTHS)
    d.load_state_dict(torch.load(os.path.join(REPO, "crates/models/tests/fixtures/deoldify/checkpoint.pth")))
    d.eval()
    Image.fromarray(deoldify(photo, d, 4, os.path.join(out, "deoldify-artistic-colour.png"))).save(
        os.path.join(out, "deoldify-artistic.png"))

    sig = load("siggraph17")
    g = sig.SIGGRAPHGenerator(sig.REDUCED)
    g.load_state_dict(torch.load(os.path.join(REPO, "crates/models/tests/fixtures/siggraph17/checkpoint.pth")))
    g.eval()
    Image.fromarray(zhang(photo, g)).save(os.path.join(out, "zhang-siggraph17.png"))

    wide = deo.DynamicUnetWide(deo.REDUCED_WIDE_WIDTHS, deo.REDUCED_WIDE_DEPTHS, deo.REDUCED_WIDE_NF)
    wide.load_state_dict(torch.load(os.path.join(REPO, "crates/models/tests/fixtures/deoldify-wide/checkpoint.pth")))
    wide.eval()
    Image.fromarray(deoldify(photo, wide, 4, os.path.join(out, "deoldify-stable-colour.png"))).save(
        os.path.join(out, "deoldify-stable.png"))
    for f in ("photo.png", "zhang-eccv16.png", "deoldify-artistic.png", "zhang-siggraph17.png",
              "deoldify-stable.png", "deoldify-artistic-colour.png", "deoldify-stable-colour.png"):
        os.chmod(os.path.join(out, f), 0o644)
    print("written", out)


if __name__ == "__main__":
    main()
