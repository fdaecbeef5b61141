#!/usr/bin/env python3
"""PyTorch reference for DeOldify's generators: "Artistic" (DynamicUnetDeep on a ResNet-34 encoder) and
"Stable"/"Video" (DynamicUnetWide on a ResNet-101 encoder); writes the parity fixtures that the DeOldify
importer and engine are checked against.

Written from ../shared/reference/deoldify.md sections 1-6 (the architecture of DeOldify's generators,
taken from github.com/jantic/DeOldify at 5f86c28 and the fastai v1.0.60 copy it vendors) and
../shared/reference/deoldify-artistic.keys.txt / deoldify-stable.keys.txt (the state-dict keys and
shapes of the published ColorizeArtistic_gen.pth / ColorizeStable_gen.pth; ColorizeVideo_gen.pth has
the Stable layout). The modules here are written from those notes, not taken from fastai or DeOldify,
but use the same module paths so that the state-dict keys are the published ones:
torchvision ResNet encoder (`layers.0`), BN + ReLU (`layers.1`, `layers.2`), the middle convs
(`layers.3`), four UNet blocks (`layers.4`..`layers.7`; conv -> ReLU -> BN custom_conv_layers, blurred
pixel-shuffle upsamplers, BN on the skip, self-attention in block 1), the weight-normed
PixelShuffle_ICNR (`layers.8`), the dense merge with the input (`layers.9`), the spectral-normed res
block (`layers.10`), the final 1x1 conv with bias (`layers.11`) and SigmoidRange(-3, 3) (`layers.12`).
Every decoder conv, the self-attention Conv1d's included, carries torch.nn.utils.spectral_norm (dim 0),
so the state dict holds `weight_orig`/`weight_u`/`weight_v`; `layers.8.conv.0` carries
torch.nn.utils.weight_norm (`weight_g`/`weight_v`/`bias`).

--decoder deep (default; Artistic): BasicBlock encoder, --widths = stem, layer1..layer4 widths
(published 64/64/128/256/512), --depths (published and default 3,4,6,3); every decoder width is
derived by the Deep rule of section 4.3 (nf_factor 1.5): UnetBlockDeep, conv1 + conv2 per block.
--decoder wide (Stable/Video): torchvision v1.5 Bottleneck encoder (1x1, 3x3 with the stride, 1x1;
expansion 4; downsample in the first block of every stage), --widths = stem, layer1..layer4 INNER
(bottleneck) widths (published 64/64/128/256/512, stage outputs x4 = 256/512/1024/2048), --depths
(published 3,4,23,3), --nf the Wide decoder width (published 512 * nf_factor 2 = 1024); Wide rule of
section 4.4: n_out = nf for blocks 0-2 and nf // 2 for block 3, the shuffle outputs n_out // 2 and the
single 3x3 conv (`conv`) outputs n_out // 2. With the published widths, depths and nf both builds
reproduce the published layouts exactly (--check-full-layout).

Usage (PyTorch, numpy and safetensors from pip; CI never runs this):
    /tmp/torchenv/bin/python scripts/reference/deoldify.py crates/models/tests/fixtures/deoldify
        the Deep fixture: widths 8,8,16,16,32, depths 3,4,6,3 (the published depths), 1.5 MB; the
        uneven widths exercise the floors of the Deep rule, e.g. attention width 60 // 8 = 7
    /tmp/torchenv/bin/python scripts/reference/deoldify.py --decoder wide crates/models/tests/fixtures/deoldify-wide
        the Wide fixture: stem 8, inner widths 4,8,8,16 (stage outputs 16/32/32/64), depths 2,2,3,2
        (FEWER blocks than the published 3,4,23,3: depth is a parameter, and 2 blocks per stage already
        exercise the downsample block and the identity blocks), nf 64 (decoder 32/32/32/16 channels,
        attention 32 with q/k 4), 1.1 MB
    /tmp/torchenv/bin/python scripts/reference/deoldify.py --check-full-layout [--decoder wide]
        builds the full-width generator and compares its state_dict() keys, order, shapes and dtypes
        with deoldify-artistic.keys.txt (deep) or deoldify-stable.keys.txt (wide); exits 1 on a mismatch.
Options: --widths STEM,W1,W2,W3,W4, --depths D1,D2,D3,D4, --nf N (wide), --bn-stats calibrated|plain;
the defaults are the committed fixtures'. Both fixtures use seed 1935 and 2 CPU threads; the output is
byte-for-byte reproducible with the same PyTorch build.

Both fixtures have random weights:
batch-norm weight U(0.5, 1.5) and bias U(-0.2, 0.2) (0.4x that for the BN right in front of the
self-attention, so its softmax is not saturated); running statistics on each BN's own input scale
(--bn-stats calibrated, the default; see calibrate_bn: running_mean = channel mean + U(-0.3, 0.3) * s,
running_var = U(0.5, 2.0) * s^2, s^2 the layer's mean channel variance on a calibration image), or the
plain ranges running_mean U(-0.3, 0.3), running_var U(0.5, 2.0) with --bn-stats plain (then the deep
path barely reaches the output); every self-attention gamma 0.7; layers.8's weight_g scaled by
U(0.5, 1.5) (at init g = ||v||, which would make the weight-norm fold a no-op); and the spectral-norm
u/v vectors taken after one power iteration (one forward in train mode on a random input), then eval
mode (no power iteration; u, v used as stored, so sigma = u . W v is below the exact norm).
Writes into the folder:
    checkpoint.pth         torch.save(model.state_dict()): zip format, raw state dict in the published
                           layout (weight_orig/weight_u/weight_v, weight_g/weight_v, num_batches_tracked)
    folded.safetensors     the same weights with spectral norm (W = weight_orig / (u . (Wm v)), Wm =
                           weight_orig reshaped to [out, -1]) and weight norm (W = g * v / ||v|| per output
                           channel) folded into plain `<prefix>.weight` (Conv1d weights stay [o, i, 1]);
                           every other tensor copied as is; num_batches_tracked dropped
    reference.safetensors  input      [2, 3, 64, 64]  network input: 8-bit grey images (gradients and
                                                      sinusoids) copied to 3 channels, /255, normalised
                                                      with the ImageNet mean/std
                           output     [2, 3, 64, 64]  generator output (ImageNet-normalised RGB, in (-3, 3))
                           input_odd  [1, 3, 80, 80]  the same for 80x80 (80/16 = 5 is odd: block 0 takes
                                                      the nearest-resize path, 6x6 -> 5x5; checked)
                           output_odd [1, 3, 80, 80]
                           all float32, from model.eval() under torch.no_grad()
The script also checks a second, hand-written functional forward (torch.nn.functional on the folded
plain weights, the formulas of the notes; BasicBlock or Bottleneck, Deep or Wide blocks and the stage
depths all read off the keys) against the module forward on both inputs, that checkpoint.pth reloads
into a fresh model with the same outputs, and prints how far the float32 outputs are from the same
model run in float64 (a guide for the engine's tolerance).
"""
import argparse
import copy
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

warnings.filterwarnings("ignore", category=FutureWarning)  # torch.nn.utils.weight_norm is deprecated

# Deep (Artistic): ResNet-34, widths = stem, layer1..layer4 output widths
FULL_WIDTHS = (64, 64, 128, 256, 512)
REDUCED_WIDTHS = (8, 8, 16, 16, 32)
DEPTHS = (3, 4, 6, 3)
NF_FACTOR = 1.5
# Wide (Stable / Video): ResNet-101 (Bottleneck), widths = stem, layer1..layer4 inner (bottleneck) widths;
# stage outputs are inner * EXPANSION. nf = 512 * nf_factor 2 = 1024 (section 4.4).
FULL_WIDE_WIDTHS = (64, 64, 128, 256, 512)
FULL_WIDE_DEPTHS = (3, 4, 23, 3)
FULL_WIDE_NF = 1024
REDUCED_WIDE_WIDTHS = (8, 4, 8, 8, 16)  # stage outputs 16/32/32/64
REDUCED_WIDE_DEPTHS = (2, 2, 3, 2)
REDUCED_WIDE_NF = 64
EXPANSION = 4
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
HERE = os.path.dirname(os.path.abspath(__file__))
KEYS_TXT = {
    "deep": os.path.join(HERE, "../../../shared/reference/deoldify-artistic.keys.txt"),
    "wide": os.path.join(HERE, "../../../shared/reference/deoldify-stable.keys.txt"),
}

sn = nn.utils.spectral_norm
wn = nn.utils.weight_norm


# ----------------------------------------------------------------------------------------------------
# Modules (same paths as the published state dict)


class BasicBlock(nn.Module):
    """torchvision ResNet BasicBlock: conv1 (stride s), bn1, ReLU, conv2, bn2, + identity/downsample, ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + idt)


class Bottleneck(nn.Module):
    """torchvision ResNet v1.5 Bottleneck: conv1 1x1, bn1, ReLU, conv2 3x3 (stride s), bn2, ReLU,
    conv3 1x1 (width -> width * expansion), bn3, + identity/downsample (1x1 conv stride s + BN), ReLU."""

    def __init__(self, cin, width, stride, expansion=EXPANSION):
        super().__init__()
        cout = width * expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=False)
        self.downsample = None
        if stride != 1 or cin != cout:  # torchvision's rule: the first block of every stage here
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))
        self.out_c = cout

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + idt)


def resnet_encoder(widths, depths=DEPTHS, bottleneck=False, expansion=EXPANSION):
    """torchvision ResNet without avgpool/fc. widths = (stem, w1..w4): BasicBlock output widths, or
    Bottleneck inner widths (outputs w * expansion). Stride 2 in the first block of stages 2..4."""
    stem, stages = widths[0], widths[1:]
    mods = [nn.Conv2d(3, stem, 7, 2, 3, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=False),
            nn.MaxPool2d(3, 2, 1)]
    cin = stem
    for i, (w, d) in enumerate(zip(stages, depths)):
        blocks = []
        for b in range(d):
            stride = 2 if (i > 0 and b == 0) else 1
            if bottleneck:
                blocks.append(Bottleneck(cin, w, stride, expansion))
                cin = w * expansion
            else:
                blocks.append(BasicBlock(cin, w, stride))
                cin = w
        mods.append(nn.Sequential(*blocks))
    enc = nn.Sequential(*mods)
    for m in enc.modules():  # torchvision's init
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return enc


class SelfAttention(nn.Module):
    """fastai v1 SelfAttention: spectral-normed 1x1 Conv1d query/key (C -> C//8) and value (C -> C)."""

    def __init__(self, c):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))
        self.query = sn(nn.Conv1d(c, c // 8, 1, bias=False))
        self.key = sn(nn.Conv1d(c, c // 8, 1, bias=False))
        self.value = sn(nn.Conv1d(c, c, 1, bias=False))

    def forward(self, x):
        size = x.shape
        x = x.reshape(size[0], size[1], -1)
        f, g, h = self.query(x), self.key(x), self.value(x)
        beta = F.softmax(torch.bmm(f.transpose(1, 2), g), dim=1)
        o = self.gamma * torch.bmm(h, beta) + x
        return o.reshape(size).contiguous()


def custom_conv(ci, co, ks=3, use_activ=True, extra_bn=True, self_attention=False):
    """DeOldify custom_conv_layer with norm_type=Spectral: conv (SN; bias only without BN) [-> ReLU]
    [-> BN] [-> SelfAttention]."""
    layers = [sn(nn.Conv2d(ci, co, ks, 1, (ks - 1) // 2, bias=not extra_bn))]
    if use_activ:
        layers.append(nn.ReLU(inplace=False))
    if extra_bn:
        layers.append(nn.BatchNorm2d(co))
    if self_attention:
        layers.append(SelfAttention(co))
    return nn.Sequential(*layers)


class Blur(nn.Module):
    """ReplicationPad2d((1, 0, 1, 0)) then AvgPool2d(2, stride 1): always applied (section 3.3)."""

    def __init__(self):
        super().__init__()
        self.pad = nn.ReplicationPad2d((1, 0, 1, 0))
        self.pool = nn.AvgPool2d(2, stride=1)

    def forward(self, x):
        return self.pool(self.pad(x))


class CustomPixelShuffle_ICNR(nn.Module):
    """conv1x1 (SN, no bias) -> BN -> ReLU -> PixelShuffle(2) -> blur. Keys conv.0.*, conv.1.*."""

    def __init__(self, ni, nf):
        super().__init__()
        self.conv = custom_conv(ni, nf * 4, ks=1, use_activ=False)
        self.shuf = nn.PixelShuffle(2)
        self.blur = Blur()

    def forward(self, x):
        return self.blur(self.shuf(F.relu(self.conv(x))))


class PixelShuffle_ICNR(nn.Module):
    """fastai PixelShuffle_ICNR, NormType.Weight: conv1x1 (WN, bias) -> ReLU -> shuffle -> blur."""

    def __init__(self, ni):
        super().__init__()
        self.conv = nn.Sequential(wn(nn.Conv2d(ni, ni * 4, 1, bias=True)))
        self.shuf = nn.PixelShuffle(2)
        self.blur = Blur()

    def forward(self, x):
        return self.blur(self.shuf(F.relu(self.conv(x))))


def deep_widths(up_in_c, x_in_c, final_div):
    """Section 4.3: shuffle out = up_in//2; ni = up_in//2 + skip; nf = int(ni * 1.5) (blocks 0-2) or
    int((ni//2) * 1.5) (last block)."""
    ni = up_in_c // 2 + x_in_c
    nf = int((ni if final_div else ni // 2) * NF_FACTOR)
    return ni, nf


class UnetBlockDeep(nn.Module):
    def __init__(self, up_in_c, x_in_c, final_div, self_attention):
        super().__init__()
        self.shuf = CustomPixelShuffle_ICNR(up_in_c, up_in_c // 2)
        self.bn = nn.BatchNorm2d(x_in_c)
        ni, nf = deep_widths(up_in_c, x_in_c, final_div)
        self.conv1 = custom_conv(ni, nf)
        self.conv2 = custom_conv(nf, nf, self_attention=self_attention)
        self.out_c = nf

    def forward(self, up_in, s):
        up = self.shuf(up_in)
        if up.shape[-2:] != s.shape[-2:]:
            up = F.interpolate(up, s.shape[-2:], mode="nearest")
        cat = F.relu(torch.cat([up, self.bn(s)], dim=1))
        return self.conv2(self.conv1(cat))


class ResBlock(nn.Module):
    """fastai res_block(ni, norm_type=Spectral): two conv_layers (SN conv with bias, ReLU), residual
    add (MergeLayer(dense=False)); keys layers.0.0.*, layers.1.0.*."""

    def __init__(self, ni):
        super().__init__()
        self.layers = nn.ModuleList([
            nn.Sequential(sn(nn.Conv2d(ni, ni, 3, 1, 1, bias=True)), nn.ReLU(inplace=False)),
            nn.Sequential(sn(nn.Conv2d(ni, ni, 3, 1, 1, bias=True)), nn.ReLU(inplace=False)),
        ])

    def forward(self, x):
        return x + self.layers[1](self.layers[0](x))


class MergeDense(nn.Module):  # layers.9: no parameters
    def forward(self, x, orig):
        return torch.cat([x, orig], dim=1)


class SigmoidRange(nn.Module):  # layers.12
    def forward(self, x):
        return torch.sigmoid(x) * 6.0 - 3.0


class UnetBlockWide(nn.Module):
    """Section 4.2/4.4: up_out = x_out = n_out // 2; shuffle up_in -> up_out; one custom_conv 3x3
    (up_out + skip -> x_out), self-attention on it in block 1. Keys shuf.*, bn.*, conv.{0,2,3}.*."""

    def __init__(self, up_in_c, x_in_c, n_out, self_attention):
        super().__init__()
        up_out = x_out = n_out // 2
        self.shuf = CustomPixelShuffle_ICNR(up_in_c, up_out)
        self.bn = nn.BatchNorm2d(x_in_c)
        self.conv = custom_conv(up_out + x_in_c, x_out, self_attention=self_attention)
        self.out_c = x_out

    def forward(self, up_in, s):
        up = self.shuf(up_in)
        if up.shape[-2:] != s.shape[-2:]:
            up = F.interpolate(up, s.shape[-2:], mode="nearest")
        cat = F.relu(torch.cat([up, self.bn(s)], dim=1))
        return self.conv(cat)


class DynamicUnetBase(nn.Module):
    """Shared tail and forward: layers.8 PixelShuffle_ICNR (WN), .9 dense merge, .10 res block,
    .11 final 1x1 conv (SN, bias), .12 SigmoidRange; skips = stem ReLU, layer1..layer3 outputs."""

    def _tail(self, layers, x_c, n_classes):
        layers.append(PixelShuffle_ICNR(x_c))
        layers.append(MergeDense())
        ni = x_c + 3
        layers.append(ResBlock(ni))
        layers.append(custom_conv(ni, n_classes, ks=1, use_activ=False, extra_bn=False))
        layers.append(SigmoidRange())
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        inp = x
        enc = self.layers[0]
        taps = {}
        h = x
        for i, m in enumerate(enc):
            h = m(h)
            if i in (2, 4, 5, 6):
                taps[i] = h
        h = self.layers[2](self.layers[1](h))
        h = self.layers[3](h)
        for blk, tap in zip(range(4, 8), (6, 5, 4, 2)):
            h = self.layers[blk](h, taps[tap])
        h = self.layers[8](h)
        h = self.layers[9](h, inp)
        h = self.layers[10](h)
        h = self.layers[11](h)
        return self.layers[12](h)


class DynamicUnetWide(DynamicUnetBase):
    """DynamicUnetWide over a ResNet-101-style Bottleneck encoder. widths = (stem, inner1..inner4),
    depths per stage, nf the Wide decoder width (published 512 * nf_factor 2 = 1024): n_out = nf for
    blocks 0-2 and nf // 2 for block 3."""

    def __init__(self, widths=FULL_WIDE_WIDTHS, depths=FULL_WIDE_DEPTHS, nf=FULL_WIDE_NF,
                 expansion=EXPANSION, n_classes=3):
        super().__init__()
        stem = widths[0]
        o1, o2, o3, c4 = (w * expansion for w in widths[1:])
        skips = [o3, o2, o1, stem]  # skip channels for blocks 0..3 (layer3, layer2, layer1, stem ReLU)
        layers = [resnet_encoder(widths, depths, bottleneck=True, expansion=expansion), nn.BatchNorm2d(c4),
                  nn.ReLU(inplace=False), nn.Sequential(custom_conv(c4, c4 * 2), custom_conv(c4 * 2, c4))]
        x_c = c4
        for i, s_c in enumerate(skips):
            blk = UnetBlockWide(x_c, s_c, nf if i != 3 else nf // 2, self_attention=(i == 1))
            layers.append(blk)
            x_c = blk.out_c
        self._tail(layers, x_c, n_classes)


class DynamicUnetDeep(DynamicUnetBase):
    def __init__(self, widths=FULL_WIDTHS, depths=DEPTHS, n_classes=3):
        super().__init__()
        stem, l1, l2, l3, l4 = widths
        skips = [l3, l2, l1, stem]  # skip channels for blocks 0..3 (layer3, layer2, layer1, stem ReLU)
        layers = [resnet_encoder(widths, depths), nn.BatchNorm2d(l4), nn.ReLU(inplace=False),
                  nn.Sequential(custom_conv(l4, l4 * 2), custom_conv(l4 * 2, l4))]
        x_c = l4
        for i, s_c in enumerate(skips):
            blk = UnetBlockDeep(x_c, s_c, final_div=(i != 3), self_attention=(i == 1))
            layers.append(blk)
            x_c = blk.out_c
        self._tail(layers, x_c, n_classes)


# ----------------------------------------------------------------------------------------------------
# Folding (section 5) and an independent functional forward on the plain weights


def fold(state):
    """Spectral norm and weight norm folded into `<prefix>.weight`; num_batches_tracked dropped."""
    out = {}
    for k, v in state.items():
        if k.endswith("num_batches_tracked"):
            continue
        if k.endswith(".weight_orig"):
            p = k[: -len(".weight_orig")]
            w = v.double()
            u, vv = state[p + ".weight_u"].double(), state[p + ".weight_v"].double()
            sigma = torch.dot(u, w.reshape(w.shape[0], -1) @ vv)
            out[p + ".weight"] = (w / sigma).float().contiguous()
        elif k.endswith(".weight_g"):
            p = k[: -len(".weight_g")]
            g, vv = v.double(), state[p + ".weight_v"].double()
            norm = vv.reshape(vv.shape[0], -1).norm(dim=1).reshape(g.shape)
            out[p + ".weight"] = (g * vv / norm).float().contiguous()
        elif k.endswith(".weight_u") or k.endswith(".weight_v"):
            continue  # consumed above
        else:
            out[k] = v.contiguous().clone()
    return out


def f_bn(W, p, x):
    shape = (1, -1, 1, 1)
    return ((x - W[p + ".running_mean"].reshape(shape)) / torch.sqrt(W[p + ".running_var"].reshape(shape) + 1e-5)
            * W[p + ".weight"].reshape(shape) + W[p + ".bias"].reshape(shape))


def f_conv(W, p, x, stride=1):
    w = W[p + ".weight"]
    return F.conv2d(x, w, W.get(p + ".bias"), stride=stride, padding=(w.shape[-1] - 1) // 2)


def f_shuffle(x):  # out[c, 2h+i, 2w+j] = in[c*4 + i*2 + j, h, w]
    b, c4, h, w = x.shape
    return x.reshape(b, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c4 // 4, 2 * h, 2 * w)


def f_blur(x):
    return F.avg_pool2d(F.pad(x, (1, 0, 1, 0), mode="replicate"), 2, stride=1)


def f_nearest(x, size):  # legacy nearest: src = min(floor(dst * in/out), in - 1), per axis
    def idx(n_in, n_out):
        return torch.clamp(torch.floor(torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)).long(),
                           max=n_in - 1)
    x = x.index_select(2, idx(x.shape[2], size[0]))
    return x.index_select(3, idx(x.shape[3], size[1]))


def f_attention(W, p, x):
    b, c, hh, ww = x.shape
    X = x.reshape(b, c, hh * ww)
    f = torch.einsum("oc,bcn->bon", W[p + ".query.weight"][:, :, 0], X)
    g = torch.einsum("oc,bcn->bon", W[p + ".key.weight"][:, :, 0], X)
    h = torch.einsum("oc,bcn->bon", W[p + ".value.weight"][:, :, 0], X)
    S = torch.einsum("bci,bcj->bij", f, g)
    beta = torch.softmax(S, dim=1)  # over i: each column j sums to 1
    o = W[p + ".gamma"] * torch.einsum("bci,bij->bcj", h, beta) + X
    return o.reshape(b, c, hh, ww)


def f_custom(W, p, x):  # conv -> ReLU -> BN [-> attention]
    x = f_bn(W, p + ".2", F.relu(f_conv(W, p + ".0", x)))
    if p + ".3.gamma" in W:
        x = f_attention(W, p + ".3", x)
    return x


def functional_forward(W, x, trace=None):
    """Both variants, told apart by the keys: Bottleneck blocks have conv3, Wide UNet blocks have a
    single `conv`; stage depths are counted from the keys. `trace` (a list) records the block-0
    nearest resize as (from, to) sizes."""
    inp = x
    e = F.relu(f_bn(W, "layers.0.1", F.conv2d(x, W["layers.0.0.weight"], stride=2, padding=3)))
    e0 = e
    e = F.max_pool2d(e, 3, 2, 1)
    feats = []
    for li in range(4, 8):
        b = 0
        while f"layers.0.{li}.{b}.conv1.weight" in W:
            p = f"layers.0.{li}.{b}"
            stride = 2 if (li > 4 and b == 0) else 1
            if p + ".conv3.weight" in W:  # Bottleneck v1.5: 1x1, 3x3 with the stride, 1x1
                y = F.relu(f_bn(W, p + ".bn1", F.conv2d(e, W[p + ".conv1.weight"])))
                y = F.relu(f_bn(W, p + ".bn2", F.conv2d(y, W[p + ".conv2.weight"], stride=stride, padding=1)))
                y = f_bn(W, p + ".bn3", F.conv2d(y, W[p + ".conv3.weight"]))
            else:  # BasicBlock
                y = F.relu(f_bn(W, p + ".bn1", F.conv2d(e, W[p + ".conv1.weight"], stride=stride, padding=1)))
                y = f_bn(W, p + ".bn2", F.conv2d(y, W[p + ".conv2.weight"], padding=1))
            if p + ".downsample.0.weight" in W:
                idt = f_bn(W, p + ".downsample.1", F.conv2d(e, W[p + ".downsample.0.weight"], stride=stride))
            else:
                idt = e
            e = F.relu(y + idt)
            b += 1
        feats.append(e)
    e1, e2, e3, e4 = feats
    h = F.relu(f_bn(W, "layers.1", e4))
    h = f_custom(W, "layers.3.1", f_custom(W, "layers.3.0", h))
    for blk, s in zip(range(4, 8), (e3, e2, e1, e0)):
        p = f"layers.{blk}"
        up = f_bn(W, p + ".shuf.conv.1", f_conv(W, p + ".shuf.conv.0", h))
        up = f_blur(f_shuffle(F.relu(up)))
        if up.shape[-2:] != s.shape[-2:]:
            if trace is not None:
                trace.append((blk, tuple(up.shape[-2:]), tuple(s.shape[-2:])))
            up = f_nearest(up, s.shape[-2:])
        h = F.relu(torch.cat([up, f_bn(W, p + ".bn", s)], dim=1))
        if p + ".conv.0.weight" in W:  # Wide: one conv
            h = f_custom(W, p + ".conv", h)
        else:  # Deep: conv1, conv2
            h = f_custom(W, p + ".conv2", f_custom(W, p + ".conv1", h))
    h = f_blur(f_shuffle(F.relu(f_conv(W, "layers.8.conv.0", h))))
    h = torch.cat([h, inp], dim=1)
    h = h + F.relu(f_conv(W, "layers.10.layers.1.0", F.relu(f_conv(W, "layers.10.layers.0.0", h))))
    return torch.sigmoid(f_conv(W, "layers.11.0", h)) * 6.0 - 3.0


# ----------------------------------------------------------------------------------------------------


def check_full_layout(decoder):
    torch.manual_seed(0)
    if decoder == "wide":
        model = DynamicUnetWide(FULL_WIDE_WIDTHS, FULL_WIDE_DEPTHS, FULL_WIDE_NF)
    else:
        model = DynamicUnetDeep(FULL_WIDTHS)
    got = [(k, "scalar" if v.dim() == 0 else "x".join(str(s) for s in v.shape), str(v.dtype).replace("torch.", ""))
           for k, v in model.state_dict().items()]
    want = [tuple(line.rstrip("\n").split("\t")) for line in open(KEYS_TXT[decoder])
            if line.strip() and not line.startswith("#")]
    gd, wd = {k: (s, d) for k, s, d in got}, {k: (s, d) for k, s, d in want}
    missing = [k for k in wd if k not in gd]
    extra = [k for k in gd if k not in wd]
    shape = [(k, gd[k], wd[k]) for k in wd if k in gd and gd[k] != wd[k]]
    order_same = [k for k, _, _ in got] == [k for k, _, _ in want]
    n_sn = sum(k.endswith(".weight_orig") for k in gd)
    n_params = sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for n, b in model.named_buffers() if n.endswith("weight_u") or n.endswith("weight_v"))
    print(f"full layout ({decoder}, {os.path.basename(KEYS_TXT[decoder])}): {len(got)} keys built, {len(want)} keys listed; missing {len(missing)}, "
          f"extra {len(extra)}, shape/dtype mismatches {len(shape)}; same order: {order_same}; "
          f"{n_sn} spectral-normed tensors; {n_params} floats (params + u/v)")
    for k in missing[:20]:
        print("  missing", k)
    for k in extra[:20]:
        print("  extra  ", k)
    for k, g, w in shape[:20]:
        print("  shape  ", k, g, "listed", w)
    ok = not missing and not extra and not shape
    print(f"full layout check ({decoder}):", "OK" if ok else "FAILED")
    return ok


def calibrate_bn(model, x):
    """Running statistics on the scale of what reaches each BN, as in a trained network: BNs taken in
    forward order (eval mode, upstream BNs already set); with mu_c the per-channel mean of the BN's
    input and s^2 the mean over channels of its per-channel variance, running_mean = mu_c +
    U(-0.3, 0.3) * s and running_var = U(0.5, 2.0) * s^2 (the plain ranges, scaled by the layer's own
    scale; one scale per layer, so sparse ReLU channels are not blown up). Without this the
    spectral-normed decoder shrinks the deep path by ~3x per conv, and the encoder's last stage and the
    middle convs change the output by ~1e-6 only."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            seen = {}
            hook = bn.register_forward_pre_hook(lambda mod, a: seen.setdefault("x", a[0]))
            model(x)
            hook.remove()
            mu = seen["x"].mean((0, 2, 3))
            s2 = seen["x"].var((0, 2, 3), correction=0).mean()
            bn.running_mean.copy_(mu + torch.empty_like(mu).uniform_(-0.3, 0.3) * s2.sqrt())
            bn.running_var.copy_(torch.empty_like(mu).uniform_(0.5, 2.0) * s2)


def grey_to_input(grey):
    """grey: uint8-valued [B, H, W] -> [B, 3, H, W] as DeOldify feeds it (/255, ImageNet normalised)."""
    x = grey.float().div(255.0).unsqueeze(1).expand(-1, 3, -1, -1)
    mean = torch.tensor(MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(STD).reshape(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


def grey_images(n, s):
    yy, xx = torch.meshgrid(torch.arange(s, dtype=torch.float64), torch.arange(s, dtype=torch.float64),
                            indexing="ij")
    imgs = [
        128 + 90 * torch.sin(xx / 4.0) * torch.cos(yy / 6.0) + 30 * (xx - s / 2) / s,
        255 * (xx + yy) / (2 * (s - 1)) + 40 * torch.sin(torch.hypot(xx - s * 0.4, yy - s * 0.6) / 2.5),
    ]
    return torch.stack(imgs[:n]).round().clamp(0, 255).to(torch.uint8)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?")
    ap.add_argument("--check-full-layout", action="store_true")
    ap.add_argument("--decoder", choices=("deep", "wide"), default="deep")
    ap.add_argument("--widths", help="STEM,W1,W2,W3,W4 (deep: stage output widths; wide: inner widths)")
    ap.add_argument("--depths", help="D1,D2,D3,D4 blocks per stage")
    ap.add_argument("--nf", type=int, help="wide only: decoder width nf")
    ap.add_argument("--bn-stats", choices=("calibrated", "plain"), default="calibrated")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.check_full_layout:
        sys.exit(0 if check_full_layout(args.decoder) else 1)
    if not args.out:
        ap.error("an output folder (or --check-full-layout) is required")
    wide = args.decoder == "wide"
    if not wide and args.nf is not None:
        ap.error("--nf applies to --decoder wide only (the Deep widths follow from the encoder)")
    widths = tuple(int(w) for w in args.widths.split(",")) if args.widths else (
        REDUCED_WIDE_WIDTHS if wide else REDUCED_WIDTHS)
    depths = tuple(int(d) for d in args.depths.split(",")) if args.depths else (
        REDUCED_WIDE_DEPTHS if wide else DEPTHS)
    nf = args.nf if args.nf is not None else REDUCED_WIDE_NF
    assert len(widths) == 5 and len(depths) == 4 and min(depths) >= 1
    out = args.out
    os.makedirs(out, exist_ok=True)

    def build():
        return DynamicUnetWide(widths, depths, nf) if wide else DynamicUnetDeep(widths, depths)

    torch.manual_seed(1935)
    model = build()
    # One train-mode forward: one power iteration per spectral norm, so the stored u, v are not the
    # initial random vectors (and sigma = u . W v is an estimate, not the exact spectral norm).
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
            if isinstance(m, SelfAttention):
                m.gamma.fill_(0.7)
            if hasattr(m, "weight_g"):  # g = ||v|| at init, which would make the fold a no-op
                m.weight_g.mul_(torch.empty_like(m.weight_g).uniform_(0.5, 1.5))
        # The BN in front of the self-attention gets 0.4x that weight/bias (U(0.2, 0.6), U(-0.08, 0.08))
        # so that the attention logits stay moderate (std ~1.5-3.5) and the softmax is not saturated.
        for m in model.modules():
            if isinstance(m, nn.Sequential) and len(m) == 4 and isinstance(m[3], SelfAttention):
                m[2].weight.mul_(0.4)
                m[2].bias.mul_(0.4)
    model.eval()
    if args.bn_stats == "calibrated":
        calibrate_bn(model, grey_to_input(grey_images(2, 64).transpose(1, 2).flip(2)))

    inp = grey_to_input(grey_images(2, 64))
    inp_odd = grey_to_input(grey_images(1, 80))
    with torch.no_grad():
        outp = model(inp).contiguous()
        outp_odd = model(inp_odd).contiguous()

    state = model.state_dict()
    ckpt = os.path.join(out, "checkpoint.pth")
    torch.save(state, ckpt)
    folded = fold(state)
    save_file(folded, os.path.join(out, "folded.safetensors"))
    save_file({"input": inp, "output": outp, "input_odd": inp_odd, "output_odd": outp_odd},
              os.path.join(out, "reference.safetensors"))

    # Independent check: the functional forward on the folded weights, read back from the file.
    W = load_file(os.path.join(out, "folded.safetensors"))
    resized = []
    with torch.no_grad():
        d = (functional_forward(W, inp) - outp).abs().max().item()
        d_odd = (functional_forward(W, inp_odd, resized) - outp_odd).abs().max().item()
        # checkpoint.pth reloads into a fresh model with the same outputs
        fresh = build()
        fresh.load_state_dict(torch.load(ckpt, weights_only=True))
        fresh.eval()
        r = max((fresh(inp) - outp).abs().max().item(), (fresh(inp_odd) - outp_odd).abs().max().item())
        # the reference's own float32 error: the same model in float64
        m64 = copy.deepcopy(model).double()
        e64 = max((m64(inp.double()) - outp.double()).abs().max().item(),
                  (m64(inp_odd.double()) - outp_odd.double()).abs().max().item())
    desc = f"decoder {args.decoder}, widths {widths}, depths {depths}" + (f", nf {nf}" if wide else "")
    print(f"torch {torch.__version__}, {desc}, bn stats {args.bn_stats}")
    print(f"80x80 nearest resize (block layer, from, to): {resized}")
    print(f"float64 module vs float32 outputs: max |diff| {e64:.3e}")
    print(f"module vs functional (folded weights): max |diff| {d:.3e} (64x64), {d_odd:.3e} (80x80)")
    print(f"checkpoint.pth reloaded vs original: max |diff| {r:.3e}")
    for name, t in (("output", outp), ("output_odd", outp_odd)):
        print(f"{name} {tuple(t.shape)}: min {t.min():.3f} max {t.max():.3f} mean {t.mean():.3f} "
              f"std {t.std():.3f}; |v| > 2.9: {(t.abs() > 2.9).float().mean():.3%}")
    for f in ("checkpoint.pth", "folded.safetensors", "reference.safetensors"):
        p = os.path.join(out, f)
        os.chmod(p, 0o644)
        print(f"{p}: {os.path.getsize(p)} bytes")
    ok = d < 1e-4 and d_odd < 1e-4 and r == 0.0 and [b for b, _, _ in resized] == [4]
    print("checks:", "OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
