#!/usr/bin/env python3
"""PyTorch reference for DDColor (Kang et al., "DDColor: Towards Photo-Realistic Image Colorization via
Dual Decoders", ICCV 2023): the ConvNeXt encoder, the pixel decoder, the multi-scale colour decoder and
the refine head; writes the parity fixtures that the DDColor importer and engine are checked against,
and the photo-pipeline fixture.

Written from ../shared/reference/ddcolor.md sections 2-5 (the inference-time architecture of
github.com/piddnad/DDColor at 2adb63f, `ddcolor/model.py` and `basicsr/archs/ddcolor_arch*`, and the
OpenCV pipeline of `ddcolor/pipeline.py`) and ../shared/reference/ddcolor-tiny.keys.txt /
ddcolor-large.keys.txt (the state-dict keys and shapes of the published ConvNeXt-T and ConvNeXt-L
checkpoints). The modules here are written from those notes, not taken from DDColor, but use the same
module paths so that the state-dict keys are the published ones: `encoder.arch` (ConvNeXt:
`downsample_layers`, `stages`, `norm0..3`, the unused `norm`), `decoder.layers.{0,1,2}` (UnetBlockWide:
`shuf.conv.{0,1}`, `bn`, `conv.{0,2}`), `decoder.last_shuf`, `decoder.color_decoder` (Mask2Former-style
decoder: `query_feat`, `query_embed`, `level_embed`, `input_proj`, `transformer_{self,cross}_attention_
layers` with nn.MultiheadAttention, `transformer_ffn_layers`, `decoder_norm`, `color_embed`),
`refine_net.0.0`, and the top-level buffers `mean`/`std`. Every decoder conv and the refine conv carry
torch.nn.utils.spectral_norm, so the state dict holds `weight_orig`/`weight_u`/`weight_v`.

Every size is a parameter (DDColorConfig): ConvNeXt depths and dims, nf (pixel-decoder width: blocks 0
and 1 output nf, block 2 and last_shuf nf/2), colour-decoder hidden width, heads (8 in every published
model), FFN width, num_queries, dec_layers, colour-embedding width (= nf/2, the channels of out3; the
published 256 equals hidden there). config_from_state_dict() reads them all back from a state dict.

Usage (PyTorch, numpy, safetensors and opencv-python-headless from pip; CI never runs this):
    /tmp/torchenv/bin/python scripts/reference/ddcolor.py --check-full-layout tiny
    /tmp/torchenv/bin/python scripts/reference/ddcolor.py --check-full-layout large
        builds the published sizes on the meta device (tiny: ConvNeXt-T depths 3,3,9,3 dims
        96,192,384,768; large: ConvNeXt-L 3,3,27,3 / 192,384,768,1536; nf 512, hidden 256, FFN 2048,
        100 queries, 9 layers, 8 heads) and compares state_dict() keys (order-insensitive), shapes and
        dtypes with ddcolor-{tiny,large}.keys.txt; exits 1 on a mismatch.
    /tmp/torchenv/bin/python scripts/reference/ddcolor.py --fixture tiny crates/models/tests/fixtures/ddcolor-tiny
        depths 3,3,9,3 (the published ConvNeXt-T depths), dims 16,32,48,64, nf 64, hidden 64, FFN 128,
        12 queries, 9 layers, 8 heads (head dim 8), colour embed 32; seed 2023;
        checkpoint.pth = {"params": state_dict} (the BasicSR release layout of DDColor-models/*.pth)
    /tmp/torchenv/bin/python scripts/reference/ddcolor.py --fixture large crates/models/tests/fixtures/ddcolor-large
        depths 3,3,27,3 (the published ConvNeXt-L depths), dims 8,16,24,32, nf 32, hidden 32, FFN 64,
        10 queries, 9 layers, 8 heads (head dim 4), colour embed 16; seed 1923;
        checkpoint.pth = the raw state dict (the Hugging Face pytorch_model.bin layout)
    /tmp/torchenv/bin/python scripts/reference/ddcolor.py --pipeline crates/models/tests/fixtures/ddcolor-pipeline
        DDColor's photo pipeline (section 4) at S = 64 with the tiny fixture's network, loaded from
        crates/models/tests/fixtures/ddcolor-tiny/checkpoint.pth (--checkpoint to change; the sizes are
        read off the state dict). Inputs: photo.png, 150x100 8-bit grey (a 3:2 crop of
        shared/data/historical/NewspaperCivilWar1863.jpg, INTER_AREA), colour.png, 120x90 8-bit RGB (a
        4:3 crop of shared/data/val/kodak/kodim23.png, INTER_AREA); writes those two, photo.out.png and
        colour.out.png (RGB PNG results) and pipeline.safetensors ({name}.orig_l [h, w], {name}.gray
        [S, S, 3] RGB network input, {name}.ab [2, S, S], {name}.ab_up [2, h, w]; float32). The
        folder's README.md (written by hand) gives the photos' provenance and licence.
All runs use 2 CPU threads and torch.use_deterministic_algorithms(True); the files are byte-for-byte
reproducible with the same PyTorch / OpenCV build (checked by running twice).

Random weights of the two network fixtures (perturb()): PyTorch's default init, then
BN weight U(0.5, 1.5), bias U(-0.2, 0.2); LayerNorm (ConvNeXt channels-first and -last, the colour
decoder's post-norms, decoder_norm and the unused encoder.arch.norm) weight U(0.7, 1.3), bias
U(-0.1, 0.1); ConvNeXt layer scale gamma U(0.3, 1.0) (not the 1e-6 init); the MultiheadAttention
in_proj_bias / out_proj.bias (zero at init) U(-0.1, 0.1), and the query rows in_proj_weight[:hidden]
x3 in cross-attention and x2 in self-attention (at the xavier init every softmax is near-uniform:
normalised entropy 0.97-0.99 over the keys; now 0.6-0.9, with at most a few % of rows at max p > 0.99);
spectral-norm weight_u / weight_v from 30
power iterations on weight_orig (the module is then used in eval mode: no power iteration, sigma =
u . (W v) from the stored vectors); BN running statistics calibrated on a separate grey calibration
image (running_mean = channel mean + U(-0.3, 0.3) * s, running_var = U(0.5, 2.0) * s^2, s^2 = the
layer's mean channel variance; BNs set in forward order); finally color_embed.layers.2 (weight and
bias; not spectral-normed) scaled so that the output ab on the fixture input has a spatial std of 12
on average over (image, a/b channel); the overall std is then 33.7 (tiny) and 12.2 (large), as the
two channels' means differ.
The fixture folder holds:
    checkpoint.pth         torch.save of the state dict in the published layout (weight_orig/_u/_v,
                           num_batches_tracked); tiny wrapped as {"params": sd}, large raw
    reference.safetensors  float32, NCHW as PyTorch gives them, batch 2 included:
        input                  [2, 3, 96, 128]  0..1 RGB, two different grey-ish images (R ~ G ~ B)
        x_norm                 [2, 3, 96, 128]  (input - mean) / std
        f0..f3                 [2, C_i, H/4.., W/4..]  the norm{i} outputs (feature taps)
        out0, out1, out2       [2, nf, H/16, W/16], [2, nf, H/8, W/8], [2, nf/2, H/4, W/4]
        out3                   [2, nf/2, H, W]  last_shuf output (pixel-decoder output)
        queries_after_layer_i  [2, Q, hidden]  i = 0..8, after the FFN (+ post-norm) of decoder layer i
        color_embed            [2, Q, nf/2]  color_embed(decoder_norm(queries))
        q_maps                 [2, Q, H, W]  einsum("bqc,bchw->bqhw", color_embed, out3)
        output                 [2, 2, H, W]  refine_net(cat(q_maps, x_norm)): predicted ab, Lab units
(--omit NAME,... leaves tensors out of reference.safetensors; the committed fixtures omit out3,q_maps,
the two full-size ones, to keep them small.)
The script also checks that checkpoint.pth reloads into a fresh model with identical outputs, prints
how far each float32 tap is from the same model run in float64 (a guide for the engine's tolerance),
and prints attention statistics (mean max probability, share of rows with max > 0.99, normalised
entropy) to show the softmaxes are not saturated.
"""
import argparse
import math
import os
import sys
from collections import OrderedDict
from dataclasses import dataclass, asdict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
KEYS_TXT = {
    "tiny": os.path.join(REPO, "..", "shared", "reference", "ddcolor-tiny.keys.txt"),
    "large": os.path.join(REPO, "..", "shared", "reference", "ddcolor-large.keys.txt"),
}
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

sn = nn.utils.spectral_norm


@dataclass
class DDColorConfig:
    depths: tuple = (3, 3, 9, 3)
    dims: tuple = (96, 192, 384, 768)
    nf: int = 512              # pixel-decoder width; block 2 and last_shuf use nf // 2
    hidden: int = 256          # colour-decoder width
    nheads: int = 8
    ffn: int = 2048
    num_queries: int = 100
    dec_layers: int = 9
    embed_dim: int = None      # colour-embedding width = channels of out3 = nf // 2
    num_scales: int = 3
    num_output_channels: int = 2

    def __post_init__(self):
        if self.embed_dim is None:
            self.embed_dim = self.nf // 2
        self.depths = tuple(self.depths)
        self.dims = tuple(self.dims)


FULL = {
    "tiny": DDColorConfig(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768)),
    "large": DDColorConfig(depths=(3, 3, 27, 3), dims=(192, 384, 768, 1536)),
}
FIXTURE = {
    "tiny": dict(cfg=DDColorConfig(depths=(3, 3, 9, 3), dims=(16, 32, 48, 64), nf=64, hidden=64, ffn=128,
                                   num_queries=12), seed=2023, wrap_params=True),
    "large": dict(cfg=DDColorConfig(depths=(3, 3, 27, 3), dims=(8, 16, 24, 32), nf=32, hidden=32, ffn=64,
                                    num_queries=10), seed=1923, wrap_params=False),
}
OUT_STD_TARGET = 12.0   # mean over (image, a/b channel) of the output's spatial std
Q_SCALE_CROSS, Q_SCALE_SELF = 3.0, 2.0  # query-projection gain, so the softmaxes are not near-uniform
FIXTURE_H, FIXTURE_W = 96, 128
PIPELINE_S = 64


# ----------------------------------------------------------------------------------------------------
# Encoder: ConvNeXt (encoder.arch)


class LayerNorm(nn.Module):
    """ConvNeXt LayerNorm, eps 1e-6. channels_last: F.layer_norm over the last dim; channels_first:
    per pixel over C, biased variance, (x - u) / sqrt(var + eps) * w[c] + b[c]."""

    def __init__(self, c, eps=1e-6, data_format="channels_last"):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps
        self.data_format = data_format
        self.c = c

    def forward(self, x):
        if self.data_format == "channels_last":
            return F.layer_norm(x, (self.c,), self.weight, self.bias, self.eps)
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class Block(nn.Module):
    """ConvNeXt block: dwconv 7x7 -> NHWC -> LN -> Linear(C, 4C) -> GELU (erf) -> Linear(4C, C) ->
    gamma * -> NCHW -> + residual (drop path is the identity)."""

    def __init__(self, dim, layer_scale_init_value=1e-6):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim))

    def forward(self, x):
        t = self.dwconv(x).permute(0, 2, 3, 1)
        t = self.pwconv2(self.act(self.pwconv1(self.norm(t))))
        t = self.gamma * t
        return x + t.permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    def __init__(self, depths, dims):
        super().__init__()
        self.downsample_layers = nn.ModuleList()
        self.downsample_layers.append(nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4),
                                                    LayerNorm(dims[0], 1e-6, "channels_first")))
        for i in range(1, 4):
            self.downsample_layers.append(nn.Sequential(LayerNorm(dims[i - 1], 1e-6, "channels_first"),
                                                        nn.Conv2d(dims[i - 1], dims[i], 2, stride=2)))
        self.stages = nn.ModuleList(nn.Sequential(*[Block(dims[i]) for _ in range(depths[i])])
                                    for i in range(4))
        for i in range(4):
            self.add_module(f"norm{i}", LayerNorm(dims[i], 1e-6, "channels_first"))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)  # applied to a global pool upstream; unused here

    def forward(self, x):
        feats = []
        for i in range(4):
            x = self.stages[i](self.downsample_layers[i](x))
            feats.append(getattr(self, f"norm{i}")(x))  # tap; the main path goes on un-normalised
        return feats


class Encoder(nn.Module):
    def __init__(self, depths, dims):
        super().__init__()
        self.arch = ConvNeXt(depths, dims)

    def forward(self, x):
        return self.arch(x)


# ----------------------------------------------------------------------------------------------------
# Pixel decoder (decoder.layers, decoder.last_shuf)


def sn_conv(ni, no, ks, bias):
    return sn(nn.Conv2d(ni, no, ks, padding=(ks - 1) // 2, bias=bias))


class CustomPixelShuffle_ICNR(nn.Module):
    """conv1x1 (SN; bias only without BN) [-> BN] -> ReLU -> PixelShuffle(scale) -> blur
    (ReplicationPad2d((1, 0, 1, 0)) + AvgPool2d(2, stride 1)). Keys conv.0.*, conv.1.* (BN)."""

    def __init__(self, ni, nf, scale, extra_bn):
        super().__init__()
        layers = [sn_conv(ni, nf * scale * scale, 1, bias=not extra_bn)]
        if extra_bn:
            layers.append(nn.BatchNorm2d(nf * scale * scale))
        self.conv = nn.Sequential(*layers)
        self.shuf = nn.PixelShuffle(scale)
        self.pad = nn.ReplicationPad2d((1, 0, 1, 0))
        self.blur = nn.AvgPool2d(2, stride=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.shuf(self.relu(self.conv(x)))
        return self.blur(self.pad(x))


class UnetBlockWide(nn.Module):
    """shuf(up_in) ; bn(skip) ; relu(cat) ; conv3x3 (SN, no bias) -> ReLU -> BN."""

    def __init__(self, up_in_c, x_in_c, n_out):
        super().__init__()
        self.shuf = CustomPixelShuffle_ICNR(up_in_c, n_out, 2, extra_bn=True)
        self.bn = nn.BatchNorm2d(x_in_c)
        self.relu = nn.ReLU()
        self.conv = nn.Sequential(sn_conv(n_out + x_in_c, n_out, 3, bias=False), nn.ReLU(),
                                  nn.BatchNorm2d(n_out))

    def forward(self, up_in, s):
        up = self.shuf(up_in)
        if up.shape[-2:] != s.shape[-2:]:  # never for H, W multiples of 32
            up = F.interpolate(up, s.shape[-2:], mode="nearest")
        return self.conv(self.relu(torch.cat([up, self.bn(s)], dim=1)))


# ----------------------------------------------------------------------------------------------------
# Colour decoder (decoder.color_decoder)


class PositionEmbeddingSine(nn.Module):
    """DETR sine encoding, normalize=True, scale 2 pi, temperature 10000; y half first, sin/cos
    interleaved. num_pos_feats = hidden / 2."""

    def __init__(self, num_pos_feats, temperature=10000):
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.scale = 2 * math.pi

    def forward(self, x):
        b, _, h, w = x.shape
        not_mask = torch.ones((b, h, w), dtype=torch.float32, device=x.device)
        y_embed = not_mask.cumsum(1, dtype=torch.float32)
        x_embed = not_mask.cumsum(2, dtype=torch.float32)
        eps = 1e-6
        y_embed = y_embed / (y_embed[:, -1:, :] + eps) * self.scale
        x_embed = x_embed / (x_embed[:, :, -1:] + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=x.device)
        dim_t = self.temperature ** (2 * (dim_t // 2) / self.num_pos_feats)
        pos_x = x_embed[:, :, :, None] / dim_t
        pos_y = y_embed[:, :, :, None] / dim_t
        pos_x = torch.stack((pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()), dim=4).flatten(3)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2).to(x.dtype)


def _attn_stats(mha, q, k, v, log):
    """Per-head attention probabilities [B, heads, Lq, Lk] of this call, summarised into log."""
    if log is None:
        return
    _, p = mha(q, k, v, need_weights=True, average_attn_weights=False)
    mx = p.amax(-1)
    ent = -(p.clamp_min(1e-30).log() * p).sum(-1) / math.log(p.shape[-1]) if p.shape[-1] > 1 else mx * 0
    log.append(dict(keys=p.shape[-1], mean_max=mx.mean().item(), frac_max_gt_099=(mx > 0.99).float().mean().item(),
                    mean_norm_entropy=ent.mean().item()))


class SelfAttentionLayer(nn.Module):
    def __init__(self, d, nhead):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, nhead, dropout=0.0)
        self.norm = nn.LayerNorm(d)
        self.attn_log = None

    def forward(self, tgt, query_pos):  # post-norm
        q = k = tgt + query_pos
        _attn_stats(self.self_attn, q, k, tgt, self.attn_log)
        tgt2 = self.self_attn(q, k, value=tgt)[0]  # need_weights defaults to True, as upstream
        return self.norm(tgt + tgt2)


class CrossAttentionLayer(nn.Module):
    def __init__(self, d, nhead):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d, nhead, dropout=0.0)
        self.norm = nn.LayerNorm(d)
        self.attn_log = None

    def forward(self, tgt, memory, pos, query_pos):
        q, k = tgt + query_pos, memory + pos
        _attn_stats(self.multihead_attn, q, k, memory, self.attn_log)
        tgt2 = self.multihead_attn(query=q, key=k, value=memory)[0]
        return self.norm(tgt + tgt2)


class FFNLayer(nn.Module):
    def __init__(self, d, dff):
        super().__init__()
        self.linear1 = nn.Linear(d, dff)
        self.linear2 = nn.Linear(dff, d)
        self.norm = nn.LayerNorm(d)

    def forward(self, tgt):
        return self.norm(tgt + self.linear2(F.relu(self.linear1(tgt))))


class MLP(nn.Module):
    def __init__(self, din, dh, dout, n):
        super().__init__()
        dims_in = [din] + [dh] * (n - 1)
        dims_out = [dh] * (n - 1) + [dout]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims_in, dims_out))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class MultiScaleColorDecoder(nn.Module):
    def __init__(self, in_channels, cfg):
        super().__init__()
        d = cfg.hidden
        self.pe_layer = PositionEmbeddingSine(d // 2)
        self.num_layers = cfg.dec_layers
        self.num_feature_levels = cfg.num_scales
        self.query_feat = nn.Embedding(cfg.num_queries, d)
        self.query_embed = nn.Embedding(cfg.num_queries, d)
        self.level_embed = nn.Embedding(cfg.num_scales, d)
        self.input_proj = nn.ModuleList(nn.Conv2d(c, d, 1) for c in in_channels)
        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(d, cfg.nheads) for _ in range(cfg.dec_layers))
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(d, cfg.nheads) for _ in range(cfg.dec_layers))
        self.transformer_ffn_layers = nn.ModuleList(FFNLayer(d, cfg.ffn) for _ in range(cfg.dec_layers))
        self.decoder_norm = nn.LayerNorm(d)
        self.color_embed = MLP(d, d, cfg.embed_dim, 3)

    def forward(self, x, img_features, taps=None):
        src, pos = [], []
        for i in range(self.num_feature_levels):
            pos.append(self.pe_layer(x[i]).flatten(2).permute(2, 0, 1))                  # [HW, B, d]
            s = self.input_proj[i](x[i]).flatten(2) + self.level_embed.weight[i][None, :, None]
            src.append(s.permute(2, 0, 1))                                                  # [HW, B, d]
        bs = src[0].shape[1]
        query_embed = self.query_embed.weight.unsqueeze(1).repeat(1, bs, 1)                 # [Q, B, d]
        output = self.query_feat.weight.unsqueeze(1).repeat(1, bs, 1)
        for i in range(self.num_layers):
            lvl = i % self.num_feature_levels
            output = self.transformer_cross_attention_layers[i](output, src[lvl], pos[lvl], query_embed)
            output = self.transformer_self_attention_layers[i](output, query_embed)
            output = self.transformer_ffn_layers[i](output)
            if taps is not None:
                taps[f"queries_after_layer_{i}"] = output.transpose(0, 1)
        dec = self.decoder_norm(output).transpose(0, 1)                                     # [B, Q, d]
        color_embed = self.color_embed(dec)                                                 # [B, Q, E]
        if taps is not None:
            taps["color_embed"] = color_embed
        return torch.einsum("bqc,bchw->bqhw", color_embed, img_features)


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c0, c1, c2, c3 = cfg.dims
        nf = cfg.nf
        self.layers = nn.ModuleList([UnetBlockWide(c3, c2, nf), UnetBlockWide(nf, c1, nf),
                                     UnetBlockWide(nf, c0, nf // 2)])
        self.last_shuf = CustomPixelShuffle_ICNR(nf // 2, nf // 2, 4, extra_bn=False)
        self.color_decoder = MultiScaleColorDecoder([nf, nf, nf // 2], cfg)

    def forward(self, feats, taps=None):
        f0, f1, f2, f3 = feats
        out0 = self.layers[0](f3, f2)
        out1 = self.layers[1](out0, f1)
        out2 = self.layers[2](out1, f0)
        out3 = self.last_shuf(out2)
        if taps is not None:
            taps.update(out0=out0, out1=out1, out2=out2, out3=out3)
        return self.color_decoder([out0, out1, out2], out3, taps)


class DDColor(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))
        self.encoder = Encoder(cfg.depths, cfg.dims)
        self.decoder = Decoder(cfg)
        self.refine_net = nn.Sequential(nn.Sequential(
            sn_conv(cfg.num_queries + 3, cfg.num_output_channels, 1, bias=True)))

    def forward(self, x, taps=None):
        if x.shape[1] == 3:
            x = (x - self.mean) / self.std
        feats = self.encoder(x)
        if taps is not None:
            taps["x_norm"] = x
            for i, f in enumerate(feats):
                taps[f"f{i}"] = f
        q = self.decoder(feats, taps)
        if taps is not None:
            taps["q_maps"] = q
        return self.refine_net(torch.cat([q, x], dim=1))  # do_normalize=False: ab in Lab units


def config_from_state_dict(sd):
    """Every DDColorConfig size read off a (published-layout) state dict."""
    depths = tuple(1 + max(int(k.split(".")[4]) for k in sd if k.startswith(f"encoder.arch.stages.{i}."))
                   for i in range(4))
    dims = tuple(sd[f"encoder.arch.norm{i}.weight"].shape[0] for i in range(4))
    nq, hidden = sd["decoder.color_decoder.query_feat.weight"].shape
    return DDColorConfig(
        depths=depths, dims=dims, nf=sd["decoder.layers.0.conv.0.weight_orig"].shape[0], hidden=hidden,
        ffn=sd["decoder.color_decoder.transformer_ffn_layers.0.linear1.weight"].shape[0], num_queries=nq,
        dec_layers=1 + max(int(k.split(".")[3]) for k in sd
                           if k.startswith("decoder.color_decoder.transformer_ffn_layers.")),
        embed_dim=sd["decoder.color_decoder.color_embed.layers.2.weight"].shape[0],
        num_scales=sd["decoder.color_decoder.level_embed.weight"].shape[0],
        num_output_channels=sd["refine_net.0.0.bias"].shape[0])


def load_checkpoint(path):
    """torch.load + strip a top-level {"params": ...} wrapper (both published layouts)."""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(ck, dict) and "params" in ck:
        ck = ck["params"]
    return ck


def model_from_checkpoint(path):
    sd = load_checkpoint(path)
    m = DDColor(config_from_state_dict(sd))
    m.load_state_dict(sd)
    return m.eval()


# ----------------------------------------------------------------------------------------------------
# Layout check


def read_keys_txt(path):
    out = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        k, shape, dtype, _kind = line.rstrip("\n").split("\t")
        out[k] = (list(eval(shape)), dtype)
    return out


def check_full_layout(variant):
    with torch.device("meta"):
        m = DDColor(FULL[variant])
    sd = m.state_dict()
    got = {k: (list(v.shape), str(v.dtype).replace("torch.", "")) for k, v in sd.items()}
    want = read_keys_txt(KEYS_TXT[variant])
    ok = True
    for k in sorted(set(want) - set(got)):
        print(f"missing: {k} {want[k]}")
        ok = False
    for k in sorted(set(got) - set(want)):
        print(f"unexpected: {k} {got[k]}")
        ok = False
    for k in sorted(set(got) & set(want)):
        if got[k] != want[k]:
            print(f"mismatch: {k} got {got[k]} want {want[k]}")
            ok = False
    same_order = list(got) == [k for k in want]
    n_par = sum(p.numel() for p in m.parameters())
    print(f"{variant}: {len(got)} entries (keys.txt {len(want)}), {n_par:,} parameters, "
          f"order {'identical' if same_order else 'differs'}: {'OK' if ok else 'MISMATCH'}")
    return ok


# ----------------------------------------------------------------------------------------------------
# Random weights


def power_iterate(model, n=30):
    """weight_u / weight_v from n power iterations on weight_orig (PyTorch's update rule)."""
    with torch.no_grad():
        for mod in model.modules():
            if hasattr(mod, "weight_orig"):
                w = mod.weight_orig.reshape(mod.weight_orig.shape[0], -1)
                u, v = mod.weight_u, mod.weight_v
                for _ in range(n):
                    v.copy_(F.normalize(w.t() @ u, dim=0, eps=1e-12))
                    u.copy_(F.normalize(w @ v, dim=0, eps=1e-12))


def calibrate_bn(model, x, gen):
    """Running statistics on the scale of each BN's own input (BNs set in forward order, eval mode):
    running_mean = mu_c + U(-0.3, 0.3) * s, running_var = U(0.5, 2.0) * s^2, s^2 = mean channel variance."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            seen = {}
            h = bn.register_forward_pre_hook(lambda mod, a: seen.setdefault("x", a[0]))
            model(x)
            h.remove()
            mu = seen["x"].mean((0, 2, 3))
            s2 = seen["x"].var((0, 2, 3), correction=0).mean()
            bn.running_mean.copy_(mu + (torch.rand(mu.shape, generator=gen) * 0.6 - 0.3) * s2.sqrt())
            bn.running_var.copy_((torch.rand(mu.shape, generator=gen) * 1.5 + 0.5) * s2)


def uniform_(t, lo, hi, gen):
    with torch.no_grad():
        t.copy_(torch.rand(t.shape, generator=gen) * (hi - lo) + lo)


def perturb(model, gen, calib_x, scale_x, target_std=OUT_STD_TARGET, log=print):
    """Move everything away from its init (see the module docstring); model in eval mode on return."""
    model.eval()
    for name, mod in model.named_modules():
        if isinstance(mod, nn.BatchNorm2d):
            uniform_(mod.weight, 0.5, 1.5, gen)
            uniform_(mod.bias, -0.2, 0.2, gen)
        elif isinstance(mod, (LayerNorm, nn.LayerNorm)):
            uniform_(mod.weight, 0.7, 1.3, gen)
            uniform_(mod.bias, -0.1, 0.1, gen)
        elif isinstance(mod, Block):
            uniform_(mod.gamma, 0.3, 1.0, gen)
        elif isinstance(mod, nn.MultiheadAttention):
            uniform_(mod.in_proj_bias, -0.1, 0.1, gen)
            uniform_(mod.out_proj.bias, -0.1, 0.1, gen)
        if isinstance(mod, (CrossAttentionLayer, SelfAttentionLayer)):
            mha = mod.multihead_attn if isinstance(mod, CrossAttentionLayer) else mod.self_attn
            d = mha.embed_dim
            with torch.no_grad():
                mha.in_proj_weight[:d].mul_(Q_SCALE_CROSS if isinstance(mod, CrossAttentionLayer) else Q_SCALE_SELF)
    power_iterate(model, 30)
    calibrate_bn(model, calib_x, gen)
    lin = model.decoder.color_decoder.color_embed.layers[2]
    with torch.no_grad():
        for _ in range(3):
            s = model(scale_x).flatten(2).std(2).mean().item()
            k = target_std / s
            lin.weight.mul_(k)
            lin.bias.mul_(k)
        o = model(scale_x)
        log(f"  color_embed.layers.2 scaled: output std {o.std().item():.3f}, mean spatial std per image "
            f"and channel {o.flatten(2).std(2).mean().item():.3f}")
    return model


def build_random(cfg, seed, calib_x, scale_x, log=print):
    torch.manual_seed(seed)
    model = DDColor(cfg)
    gen = torch.Generator().manual_seed(seed + 1)
    return perturb(model, gen, calib_x, scale_x, log=log)


# ----------------------------------------------------------------------------------------------------
# Inputs


def fixture_input(h=FIXTURE_H, w=FIXTURE_W):
    """[2, 3, h, w] float32 in 0..1: two different grey-ish images (R ~ G ~ B, differences <= ~0.03)."""
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    g0 = 0.5 + 0.3 * np.sin(xx / 7.0) * np.cos(yy / 11.0) + 0.15 * (xx - w / 2) / w
    r = np.hypot(xx - w * 0.35, yy - h * 0.6)
    g1 = 0.2 + 0.6 * (xx + yy) / (h + w) + 0.15 * np.sin(r / 4.0) + 0.1 * ((xx // 16 + yy // 16) % 2)
    rng = np.random.default_rng(7)
    imgs = []
    for g in (g0, g1):
        c = np.stack([g + 0.015 * np.sin(yy / 5.0), g, g - 0.015 * np.cos(xx / 9.0)])
        c = c + rng.uniform(-0.005, 0.005, size=c.shape)
        imgs.append(np.clip(c, 0.0, 1.0))
    return torch.from_numpy(np.stack(imgs).astype(np.float32))


def calibration_input(h, w, seed=99):
    """A smooth random grey image (batch 2), used only to set BN running statistics."""
    g = torch.Generator().manual_seed(seed)
    z = torch.rand((2, 1, max(h // 8, 1), max(w // 8, 1)), generator=g)
    z = F.interpolate(z, size=(h, w), mode="bilinear", align_corners=False)
    z = z + 0.05 * torch.rand((2, 1, h, w), generator=g)
    return z.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


# ----------------------------------------------------------------------------------------------------
# Fixtures


def setup_torch():
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)


def run_taps(model, x):
    taps = OrderedDict()
    with torch.no_grad():
        out = model(x, taps)
    taps["output"] = out
    return taps


def attention_report(model, x):
    cd = model.decoder.color_decoder
    logs = []
    for i in range(cd.num_layers):
        for kind, layer in (("cross", cd.transformer_cross_attention_layers[i]),
                            ("self", cd.transformer_self_attention_layers[i])):
            layer.attn_log = []
            logs.append((i, kind, layer.attn_log))
    with torch.no_grad():
        model(x)
    worst = 0.0
    for i, kind, lg in logs:
        st = lg[0]
        worst = max(worst, st["frac_max_gt_099"])
        print(f"  attn layer {i} {kind:5s} keys {st['keys']:4d}: mean max p {st['mean_max']:.3f}, "
              f"rows max>0.99 {100 * st['frac_max_gt_099']:.1f}%, norm. entropy {st['mean_norm_entropy']:.3f}")
    for i in range(cd.num_layers):
        cd.transformer_cross_attention_layers[i].attn_log = None
        cd.transformer_self_attention_layers[i].attn_log = None
    return worst


def write_fixture(variant, outdir, omit=()):
    from safetensors.torch import save_file
    spec = FIXTURE[variant]
    cfg = spec["cfg"]
    os.makedirs(outdir, exist_ok=True)
    x = fixture_input()
    calib = calibration_input(FIXTURE_H, FIXTURE_W)
    print(f"{variant} fixture: {asdict(cfg)}, seed {spec['seed']}")
    model = build_random(cfg, spec["seed"], calib, x)
    sd = model.state_dict()
    ck = {"params": sd} if spec["wrap_params"] else sd
    ck_path = os.path.join(outdir, "checkpoint.pth")
    torch.save(ck, ck_path)

    taps = run_taps(model, x)
    tensors = OrderedDict(input=x)
    order = ["x_norm", "f0", "f1", "f2", "f3", "out0", "out1", "out2", "out3"] + \
            [f"queries_after_layer_{i}" for i in range(cfg.dec_layers)] + ["color_embed", "q_maps", "output"]
    for k in order:
        tensors[k] = taps[k].detach().float().contiguous()
    save_file(OrderedDict((k, v) for k, v in tensors.items() if k not in omit),
              os.path.join(outdir, "reference.safetensors"))
    os.chmod(os.path.join(outdir, "reference.safetensors"), 0o644)

    out = taps["output"]
    print(f"  output: shape {list(out.shape)}, mean {out.mean():.4f}, std {out.std():.4f}, "
          f"min {out.min():.3f}, max {out.max():.3f}; per image std "
          f"{[round(v, 3) for v in out.flatten(1).std(1).tolist()]}; a/b std "
          f"{[round(v, 3) for v in out.transpose(0, 1).flatten(1).std(1).tolist()]}")
    print(f"  image difference: output max |ab0 - ab1| {(out[0] - out[1]).abs().max():.3f}")
    for k in order:
        t = tensors[k]
        print(f"  {k:24s} {str(list(t.shape)):22s} std {t.std():.4g}  max|.| {t.abs().max():.4g}")

    # reload check
    m2 = model_from_checkpoint(ck_path)
    with torch.no_grad():
        same = torch.equal(m2(x), out)
    print(f"  checkpoint reload gives identical output: {same}")
    if not same:
        sys.exit(1)
    # float64 distance
    m64 = model_from_checkpoint(ck_path).double()
    t64 = run_taps(m64, x.double())
    for k in ("f3", "out0", "out2", "out3", f"queries_after_layer_{cfg.dec_layers - 1}", "color_embed", "q_maps",
              "output"):
        d = (tensors[k].double() - t64[k]).abs().max().item()
        print(f"  f32 vs f64 {k:24s} max abs {d:.3g} (rel to max|.| {d / t64[k].abs().max().item():.3g})")
    worst = attention_report(model, x)
    print(f"  worst share of saturated attention rows: {100 * worst:.1f}%")
    for f in sorted(os.listdir(outdir)):
        print(f"  wrote {os.path.join(outdir, f)} ({os.path.getsize(os.path.join(outdir, f)):,} bytes)")
    return model


# ----------------------------------------------------------------------------------------------------
# Photo pipeline (section 4)

PHOTO_SRC = "NewspaperCivilWar1863.jpg"  # ../shared/data/historical/, 564x403, public domain (1863)
COLOUR_SRC = "kodim23.png"               # ../shared/data/val/kodak/, 768x512, Kodak suite
DATA = os.path.join(REPO, "..", "shared", "data")


def make_pipeline_inputs():
    """photo: rows 14..389 (564x376, 3:2) of PHOTO_SRC, cv2.INTER_AREA to 150x100, BGR2GRAY (the file is
    already grey: B = G = R); colour: columns 43..725 (683x512, 4:3) of COLOUR_SRC, INTER_AREA to 120x90."""
    import cv2
    src = cv2.imread(os.path.join(DATA, "historical", PHOTO_SRC), cv2.IMREAD_COLOR)
    assert src.shape == (403, 564, 3), src.shape
    grey = cv2.cvtColor(cv2.resize(src[14:390, 0:564], (150, 100), interpolation=cv2.INTER_AREA),
                        cv2.COLOR_BGR2GRAY)
    kod = cv2.imread(os.path.join(DATA, "val", "kodak", COLOUR_SRC), cv2.IMREAD_COLOR)
    assert kod.shape == (512, 768, 3), kod.shape
    colour = cv2.resize(kod[:, 43:726], (120, 90), interpolation=cv2.INTER_AREA)
    return grey, colour


def pipeline_process(model, bgr_u8, s):
    """ColorizationPipeline.process at input size s (section 4): returns the BGR uint8 result and the
    intermediates orig_l [h, w], gray [s, s, 3] (RGB network input), ab [2, s, s], ab_up [2, h, w]."""
    import cv2
    h, w = bgr_u8.shape[:2]
    img = (bgr_u8 / 255.0).astype(np.float32)
    orig_l = cv2.cvtColor(img, cv2.COLOR_BGR2Lab)[:, :, :1]
    small = cv2.resize(img, (s, s))  # INTER_LINEAR
    ls = cv2.cvtColor(small, cv2.COLOR_BGR2Lab)[:, :, :1]
    gray_lab = np.concatenate((ls, np.zeros_like(ls), np.zeros_like(ls)), axis=-1)
    gray_rgb = cv2.cvtColor(gray_lab, cv2.COLOR_LAB2RGB)
    t = torch.from_numpy(gray_rgb.transpose((2, 0, 1))).float().unsqueeze(0)
    with torch.inference_mode():
        ab = model(t)
        ab_up = F.interpolate(ab, size=(h, w))  # mode 'nearest'
    ab_up_np = ab_up[0].float().numpy().transpose(1, 2, 0)
    lab = np.concatenate((orig_l, ab_up_np), axis=-1)
    out_bgr = cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)
    out_u8 = (out_bgr * 255.0).round().astype(np.uint8)
    return out_u8, dict(orig_l=orig_l[:, :, 0].copy(), gray=gray_rgb.copy(), ab=ab[0].clone(),
                        ab_up=ab_up[0].clone())


def write_pipeline(outdir, checkpoint):
    import cv2
    from safetensors.torch import save_file
    os.makedirs(outdir, exist_ok=True)
    model = model_from_checkpoint(checkpoint)
    print(f"pipeline: network {asdict(model.cfg)} from {checkpoint}, S = {PIPELINE_S}")
    grey, colour = make_pipeline_inputs()
    cv2.imwrite(os.path.join(outdir, "photo.png"), grey)      # 8-bit grey PNG
    cv2.imwrite(os.path.join(outdir, "colour.png"), colour)   # 8-bit RGB PNG (cv2 writes BGR data as RGB)
    tensors = OrderedDict()
    for name in ("photo", "colour"):
        bgr = cv2.imread(os.path.join(outdir, f"{name}.png"), cv2.IMREAD_COLOR)  # as cv2.imread in the CLI
        out_u8, inter = pipeline_process(model, bgr, PIPELINE_S)
        cv2.imwrite(os.path.join(outdir, f"{name}.out.png"), out_u8)
        for k, v in inter.items():
            tensors[f"{name}.{k}"] = torch.as_tensor(v).float().contiguous()
        ab = inter["ab"]
        lab_out = cv2.cvtColor(out_u8.astype(np.float32) / 255.0, cv2.COLOR_BGR2Lab)
        print(f"  {name}: {bgr.shape[1]}x{bgr.shape[0]}, ab mean {ab.mean():.3f} std {ab.std():.3f}; output chroma "
              f"mean {np.hypot(lab_out[..., 1], lab_out[..., 2]).mean():.2f}, output-L vs input-L max diff "
              f"{np.abs(lab_out[..., 0] - inter['orig_l']).max():.3f}")
    save_file(tensors, os.path.join(outdir, "pipeline.safetensors"))
    os.chmod(os.path.join(outdir, "pipeline.safetensors"), 0o644)
    for f in sorted(os.listdir(outdir)):
        print(f"  wrote {os.path.join(outdir, f)} ({os.path.getsize(os.path.join(outdir, f)):,} bytes)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", help="output folder (--fixture, --pipeline)")
    ap.add_argument("--check-full-layout", choices=("tiny", "large"))
    ap.add_argument("--fixture", choices=("tiny", "large"))
    ap.add_argument("--pipeline", action="store_true")
    ap.add_argument("--omit", default="", help="--fixture: comma-separated tensors to leave out of "
                    "reference.safetensors (e.g. out3,x_norm to save space); none by default")
    ap.add_argument("--checkpoint", default=os.path.join(REPO, "crates/models/tests/fixtures/ddcolor-tiny/checkpoint.pth"))
    a = ap.parse_args()
    setup_torch()
    if a.check_full_layout:
        sys.exit(0 if check_full_layout(a.check_full_layout) else 1)
    if not a.out:
        ap.error("an output folder is needed")
    if a.fixture:
        write_fixture(a.fixture, a.out, tuple(t for t in a.omit.split(",") if t))
    elif a.pipeline:
        write_pipeline(a.out, a.checkpoint)
    else:
        ap.error("one of --check-full-layout, --fixture, --pipeline")


if __name__ == "__main__":
    main()
