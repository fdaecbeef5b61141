#!/usr/bin/env python3
"""PyTorch reference for Zhang et al.'s eccv16 network: writes the parity fixture that
crates/models/tests/eccv16.rs checks the engine against.

Written from ../shared/reference/zhang.md section 4 (the official `ECCVGenerator`,
github.com/richzhang/colorization colorizers/eccv16.py): the same modules, indices and keys,
with the widths reduced so the fixture stays small (the layout, dilations, strides, the
transposed convolution, the 313-bin softmax, model_out and the x4 upsampling are the release's).

Usage (PyTorch and safetensors from pip; CI never runs this):
    python3 scripts/reference/eccv16.py crates/models/tests/fixtures/eccv16

Writes into the folder:
    model.safetensors      random weights (batch-norm statistics random too; model_out holds the
                           313 bin centres of ../shared/reference/pts_in_hull.csv / 110), official keys
    checkpoint.pth         the same state dict as torch.save writes it (zip format, raw state dict,
                           num_batches_tracked included), the layout of the release file
    checkpoint-legacy.pth  the same wrapped as {'model': ...}, in the legacy (pre-1.6) format
    config.json            the model folder's config (arch eccv16 + its I/O contract)
    reference.safetensors  input_l [2, 1, 32, 40] (L in 0..100) and output_ab [2, 2, 32, 40]
                           (ab in CIELAB units), the forward pass of this script's network
"""
import json
import os
import sys

import torch
import torch.nn as nn
from safetensors.torch import save_file

WIDTHS = [8, 16, 24, 32, 32, 32, 32]  # release: 64, 128, 256, 512, 512, 512, 512
DECODER = 16  # release: 256
BINS = 313


def block(cin, cout, convs, strided, dilation):
    layers = []
    for i in range(convs):
        layers += [
            nn.Conv2d(cin if i == 0 else cout, cout, 3, stride=2 if i == strided else 1,
                      padding=dilation, dilation=dilation, bias=True),
            nn.ReLU(True),
        ]
    layers.append(nn.BatchNorm2d(cout))
    return nn.Sequential(*layers)


class ECCVGenerator(nn.Module):
    def __init__(self):
        super().__init__()
        spec = [(2, 1, 1), (2, 1, 1), (3, 2, 1), (3, None, 1), (3, None, 2), (3, None, 2),
                (3, None, 1)]
        cin = 1
        for n, (convs, strided, dilation) in enumerate(spec):
            setattr(self, f"model{n + 1}", block(cin, WIDTHS[n], convs, strided, dilation))
            cin = WIDTHS[n]
        self.model8 = nn.Sequential(
            nn.ConvTranspose2d(cin, DECODER, 4, stride=2, padding=1, bias=True), nn.ReLU(True),
            nn.Conv2d(DECODER, DECODER, 3, padding=1, bias=True), nn.ReLU(True),
            nn.Conv2d(DECODER, DECODER, 3, padding=1, bias=True), nn.ReLU(True),
            nn.Conv2d(DECODER, BINS, 1, bias=True),
        )
        self.softmax = nn.Softmax(dim=1)
        self.model_out = nn.Conv2d(BINS, 2, 1, bias=False)
        self.upsample4 = nn.Upsample(scale_factor=4, mode="bilinear")

    def forward(self, l):
        x = (l - 50.0) / 100.0  # BaseColor.normalize_l
        for n in range(1, 8):
            x = getattr(self, f"model{n}")(x)
        x = self.model8(x)
        ab = self.model_out(self.softmax(x))
        return self.upsample4(ab) * 110.0  # BaseColor.unnormalize_ab


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(16)
    net = ECCVGenerator()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(0.0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
            if isinstance(m, nn.Conv2d) and m.out_channels == BINS:
                m.weight.mul_(4.0)  # spread the logits so the softmax is not flat
        # model_out as the demo's decoding: the 313 bin centres (pts_in_hull^T), in ab/110 units,
        # so the fixture's ab spans the real range.
        here = os.path.dirname(os.path.abspath(__file__))
        csv = os.path.join(here, "../../../shared/reference/pts_in_hull.csv")
        rows = [line.split(",") for line in open(csv).read().split()[1:]]
        bins = torch.tensor([[float(a), float(b)] for _, a, b in rows])  # [313, 2]
        net.model_out.weight.copy_((bins.t() / 110.0).reshape(2, BINS, 1, 1))
    net.eval()
    h, w = 32, 40
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                            torch.arange(w, dtype=torch.float32), indexing="ij")
    l0 = 50 + 45 * torch.sin(xx / 5.0) * torch.cos(yy / 7.0)
    l1 = (xx * 2.5 + yy * 0.5).clamp(0, 100)
    input_l = torch.stack([l0, l1]).unsqueeze(1).contiguous()  # [2, 1, h, w]
    with torch.no_grad():
        output_ab = net(input_l).contiguous()
    state = {k: v.contiguous() for k, v in net.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    save_file(state, os.path.join(out, "model.safetensors"))
    # The published layout: a raw state dict in PyTorch's zip format (as the release file), and
    # the same wrapped as {'model': ...} in the legacy (pre-1.6) format, for the importer.
    torch.save(net.state_dict(), os.path.join(out, "checkpoint.pth"))
    torch.save({"model": net.state_dict()}, os.path.join(out, "checkpoint-legacy.pth"),
               _use_new_zipfile_serialization=False)
    save_file({"input_l": input_l, "output_ab": output_ab},
              os.path.join(out, "reference.safetensors"))
    config = {
        "network": {"arch": "eccv16", "widths": WIDTHS, "decoder_width": DECODER, "bins": BINS},
        "io": {
            "input": {"kind": "lightness", "offset": 50.0, "scale": 100.0},
            "output": {"kind": "ab", "scale": 110.0},
            "size": {"kind": "square", "multiple": 8},
        },
        "render_size": 256,
        "saturation": 1.0,
        "description": "eccv16 layout with reduced widths and random weights (parity fixture)",
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(f"torch {torch.__version__}: output_ab {tuple(output_ab.shape)}, "
          f"|ab| max {output_ab.abs().max():.3f}, mean {output_ab.abs().mean():.3f}")


if __name__ == "__main__":
    main()
