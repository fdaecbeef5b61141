#!/usr/bin/env python3
"""PyTorch reference for Zhang et al.'s siggraph17 network (automatic mode): writes the parity
fixture that crates/import/tests checks the importer and the engine against.

Written from ../shared/reference/zhang.md section 5 (the official `SIGGRAPHGenerator`,
github.com/richzhang/colorization colorizers/siggraph17.py): the same modules, indices and keys
(checked against ../shared/reference/siggraph17.keys.txt with --check-full-layout), with reduced
widths so the fixture stays small (the layout, the stride-2 subsampling, the dilations, the three
transposed convolutions with their shortcut convolutions, LeakyReLU(0.2), the unused model_class
head and the tanh regression output are the release's).

Usage (PyTorch and safetensors from pip; CI never runs this):
    python3 scripts/reference/siggraph17.py crates/models/tests/fixtures/siggraph17
    python3 scripts/reference/siggraph17.py --check-full-layout

Writes into the folder:
    checkpoint.pth         torch.save(state_dict()): zip format, raw state dict, official keys
                           (num_batches_tracked included), random weights and batch-norm statistics
    reference.safetensors  input_l [2, 1, 32, 40] (L in 0..100), hints and mask zero (automatic
                           mode), and output_ab [2, 2, 32, 40] (ab in CIELAB units); one user hint
                           on the first plane, hint_ab [1, 2, 32, 40] (ab (40, -30) on rows 10-12,
                           columns 20-22, zero elsewhere), hint_mask [1, 1, 32, 40] (1 there), and
                           output_hinted [1, 2, 32, 40]
"""
import os
import sys

import torch
import torch.nn as nn
from safetensors.torch import save_file

FULL = [64, 128, 256, 512, 512, 512, 512, 256, 128, 128]
REDUCED = [8, 16, 16, 24, 24, 24, 24, 16, 8, 8]  # model1..model7, model8, model9, model10
CLASSES = 529


def convs(cin, cout, n, dilation=1, bn=True):
    layers = []
    for i in range(n):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=dilation,
                             dilation=dilation, bias=True), nn.ReLU(True)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    return nn.Sequential(*layers)


class SIGGRAPHGenerator(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.model1 = convs(4, w[0], 2)
        self.model2 = convs(w[0], w[1], 2)
        self.model3 = convs(w[1], w[2], 3)
        self.model4 = convs(w[2], w[3], 3)
        self.model5 = convs(w[3], w[4], 3, dilation=2)
        self.model6 = convs(w[4], w[5], 3, dilation=2)
        self.model7 = convs(w[5], w[6], 3)
        self.model8up = nn.Sequential(nn.ConvTranspose2d(w[6], w[7], 4, stride=2, padding=1))
        self.model3short8 = nn.Sequential(nn.Conv2d(w[2], w[7], 3, padding=1))
        self.model8 = nn.Sequential(nn.ReLU(True), nn.Conv2d(w[7], w[7], 3, padding=1), nn.ReLU(True),
                                    nn.Conv2d(w[7], w[7], 3, padding=1), nn.ReLU(True),
                                    nn.BatchNorm2d(w[7]))
        self.model9up = nn.Sequential(nn.ConvTranspose2d(w[7], w[8], 4, stride=2, padding=1))
        self.model2short9 = nn.Sequential(nn.Conv2d(w[1], w[8], 3, padding=1))
        self.model9 = nn.Sequential(nn.ReLU(True), nn.Conv2d(w[8], w[8], 3, padding=1), nn.ReLU(True),
                                    nn.BatchNorm2d(w[8]))
        self.model10up = nn.Sequential(nn.ConvTranspose2d(w[8], w[9], 4, stride=2, padding=1))
        self.model1short10 = nn.Sequential(nn.Conv2d(w[0], w[9], 3, padding=1))
        self.model10 = nn.Sequential(nn.ReLU(True), nn.Conv2d(w[9], w[9], 3, padding=1),
                                     nn.LeakyReLU(negative_slope=0.2))
        self.model_class = nn.Sequential(nn.Conv2d(w[7], CLASSES, 1))  # in the state dict, unused
        self.model_out = nn.Sequential(nn.Conv2d(w[9], 2, 1), nn.Tanh())

    def forward(self, l, ab=None, mask=None):
        if ab is None:
            ab = torch.zeros_like(l).repeat(1, 2, 1, 1)
        if mask is None:
            mask = torch.zeros_like(l)
        x = torch.cat([(l - 50.0) / 100.0, ab / 110.0, mask], dim=1)
        c1 = self.model1(x)
        c2 = self.model2(c1[:, :, ::2, ::2])
        c3 = self.model3(c2[:, :, ::2, ::2])
        c4 = self.model4(c3[:, :, ::2, ::2])
        c7 = self.model7(self.model6(self.model5(c4)))
        c8 = self.model8(self.model8up(c7) + self.model3short8(c3))
        c9 = self.model9(self.model9up(c8) + self.model2short9(c2))
        c10 = self.model10(self.model10up(c9) + self.model1short10(c1))
        return self.model_out(c10) * 110.0


def check_full_layout():
    here = os.path.dirname(os.path.abspath(__file__))
    listing = os.path.join(here, "../../../shared/reference/siggraph17.keys.txt")
    want = []
    for line in open(listing):
        parts = line.split()
        if parts and "." in parts[0] and not parts[0].startswith("#"):
            want.append((parts[0], " ".join(parts[1:])))
    got = SIGGRAPHGenerator(FULL).state_dict()
    names = [k for k, _ in want]
    missing = [k for k in names if k not in got]
    extra = [k for k in got if k not in names]
    print(f"listing {len(names)} keys, built {len(got)}; missing {missing[:5]}, extra {extra[:5]}")
    bad = 0
    for k, rest in want:
        listed = rest.split()[0]
        built = "x".join(map(str, got[k].shape)) if k in got else None
        if k in got and built != listed and not (listed == "scalar" and built == ""):
            print(f"shape mismatch {k}: built {built}, listed {listed}")
            bad += 1
    print(f"shape mismatches: {bad}")
    return not missing and not extra and bad == 0


def main():
    if "--check-full-layout" in sys.argv:
        sys.exit(0 if check_full_layout() else 1)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(17)
    net = SIGGRAPHGenerator(REDUCED)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(0.0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
        net.model_out[0].weight.mul_(3.0)  # spread the output over tanh's range
    net.eval()
    h, w = 32, 40
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                            torch.arange(w, dtype=torch.float32), indexing="ij")
    l0 = 50 + 45 * torch.sin(xx / 5.0) * torch.cos(yy / 7.0)
    l1 = (xx * 2.5 + yy * 0.5).clamp(0, 100)
    input_l = torch.stack([l0, l1]).unsqueeze(1).contiguous()
    # One user hint on the first plane: ab (40, -30) on the 3x3 pixels around (x 21, y 11).
    hint_ab = torch.zeros(1, 2, h, w)
    hint_mask = torch.zeros(1, 1, h, w)
    hint_ab[0, 0, 10:13, 20:23] = 40.0
    hint_ab[0, 1, 10:13, 20:23] = -30.0
    hint_mask[0, 0, 10:13, 20:23] = 1.0
    with torch.no_grad():
        output_ab = net(input_l).contiguous()
        output_hinted = net(input_l[:1], hint_ab, hint_mask).contiguous()
    torch.save(net.state_dict(), os.path.join(out, "checkpoint.pth"))
    save_file({"input_l": input_l, "output_ab": output_ab, "hint_ab": hint_ab,
               "hint_mask": hint_mask, "output_hinted": output_hinted},
              os.path.join(out, "reference.safetensors"))
    for f in ("checkpoint.pth", "reference.safetensors"):
        os.chmod(os.path.join(out, f), 0o644)
    print(f"torch {torch.__version__}: output_ab {tuple(output_ab.shape)}, "
          f"|ab| max {output_ab.abs().max():.3f}, mean {output_ab.abs().mean():.3f}")


if __name__ == "__main__":
    main()
