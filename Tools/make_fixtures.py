#!/usr/bin/env python3
"""Makes the test fixtures that need PyTorch, so that CI never needs it.

    python3 Tools/make_fixtures.py                      # rewrite the committed fixtures
    python3 Tools/make_fixtures.py --full-checkpoint DIR  # also write a full-size BossNet-T0 .pth and its logits at
                                                          # 224 for an .npy input (large: not committed)

Needs torch, numpy and pillow (pip install torch numpy pillow). Writes:

Tests/CheckpointTests/Fixtures/
    tensors.pth        {'model': {...}, 'model_ema': {'module.'...}, 'epoch', 'args' (argparse.Namespace), 'optimizer'}:
                       float32, float16, bfloat16, float64 and int64 tensors; non-contiguous views (a transpose, a
                       strided slice with a storage offset); two tensors sharing one storage; a 0-d tensor
    bare.pth           a bare state dict (an OrderedDict of tensors)
    state_dict.pth     {'state_dict': {...}}
    legacy.pth         the same, saved in the legacy (pre-1.6) format
    tensors.json       the expected names, shapes and values of each of the above
Tests/ImagesTests/Fixtures/
    gradient.png, gray16.png, palette.png, interlaced.png, rgba.png   small PNGs of several kinds
    png_expected.json  each PNG's RGB bytes as PIL's convert('RGB') gives them
    gradient_64.npy    gradient.png through the evaluation transform at 64 (PIL bicubic resize, center crop, normalise)
Tests/ModelsTests/Fixtures/
    input_64.npy       a deterministic [1, 3, 64, 64] input
    t0_logits_64.npy   BossNet-T0's logits for it under the synthetic weights, by the reference model below
    t0_png_logits_64.npy  BossNet-T0's logits for gradient.png through the evaluation transform at 64

The reference model is written from shared/BOSSNET.md and the authors' module code (names match their checkpoints);
its attention aggregates as the authors' `v @ attn` does. The synthetic weights follow the formula documented on
SyntheticWeights in Sources/Models/Parameters.swift.
"""
import argparse
import collections
import json
import math
import pathlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------------------- synthetic weights
def fnv1a(text):
    h = 2166136261
    for b in text.encode("utf-8"):
        h ^= b
        h = (h * 16777619) & 0xFFFFFFFF
    return h


def synthetic(name, shape):
    h = fnv1a(name)
    phase = (h % 6283) / 1000.0
    freq = 0.1 + ((h >> 13) % 997) / 1000.0
    count = int(np.prod(shape)) if len(shape) else 1
    u = np.sin(freq * np.arange(count, dtype=np.float64) + phase)
    if name.endswith("running_mean"):
        v = 0.1 * u
    elif name.endswith("running_var"):
        v = 1 + 0.5 * u * u
    elif name.endswith("weight") and len(shape) == 1:
        v = 1 + 0.25 * u
    elif name.endswith("weight"):
        v = u * math.sqrt(3.0 / int(np.prod(shape[1:])))
    else:
        v = 0.1 * u
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


# ------------------------------------------------------------------------------------------------ reference model
class PEG(nn.Module):
    def __init__(self, dim, stride):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, stride, 1, groups=dim)

    def forward(self, x):
        return self.conv(x)


class SE(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // 16, 1)
        self.fc2 = nn.Conv2d(channels // 16, channels, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


def shortcut(inplanes, out, stride):
    if stride == 1 and inplanes == out:
        return nn.Identity()
    pool = nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False) if stride == 2 else nn.Identity()
    return nn.Sequential(pool, nn.Conv2d(inplanes, out, 1, bias=False), nn.BatchNorm2d(out))


class ResConv(nn.Module):
    def __init__(self, inplanes, planes, stride, act, se):
        super().__init__()
        out = planes * 4
        self.downsample = shortcut(inplanes, out, stride)
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.peg = PEG(planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.se = SE(out) if se else None
        self.act = act

    def forward(self, x):
        r = self.downsample(x)
        x = self.act(self.bn1(self.peg(self.conv1(x))))
        x = self.act(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x))
        if self.se is not None:
            x = self.se(x)
        return self.act(x + r)


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.to_qkv = nn.Conv2d(dim, heads * 64 * 3, 1, bias=False)

    def forward(self, x):
        b, _, h, w = x.shape
        q, k, v = self.to_qkv(x).reshape(b, 3 * self.heads, 64, h * w).chunk(3, dim=1)
        attn = ((q * 0.125).transpose(-2, -1) @ k).softmax(dim=-1)  # [b, heads, i, j], softmax over keys j
        return (v @ attn).reshape(b, -1, h, w)  # the authors' aggregation: out[:, j] = sum_i v[:, i] attn[i, j]


class ResAtt(nn.Module):
    def __init__(self, inplanes, out, heads, stride, act):
        super().__init__()
        dim = heads * 64
        self.shortcut = shortcut(inplanes, out, stride)
        self.proj = nn.Sequential(nn.Conv2d(inplanes, dim, 1, bias=False), PEG(dim, stride), nn.BatchNorm2d(dim))
        self.net = nn.Sequential(act, Attention(dim, heads), nn.BatchNorm2d(dim), act,
                                 nn.Conv2d(dim, out, 1, bias=False), nn.BatchNorm2d(out))
        self.act = act

    def forward(self, x):
        return self.act(self.net(self.proj(x)) + self.shortcut(x))


class BossNet(nn.Module):
    def __init__(self, encoding, act, se, last_stride):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.act = act
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for index, blocks in enumerate(encoding):
            planes, heads = [64, 128, 256, 512][index], [1, 2, 4, 8][index]
            stride = last_stride if index == 3 else (1 if index == 0 else 2)
            layers = []
            for position, kind in enumerate(blocks):
                s = stride if position == 0 else 1
                layers.append(ResConv(inplanes, planes, s, act, se) if kind == 1
                              else ResAtt(inplanes, planes * 4, heads, s, act))
                inplanes = planes * 4
            setattr(self, f"layer{index + 1}", nn.Sequential(*layers))
        self.fc = nn.Linear(2048, 1000)

    def forward(self, x):
        x = self.maxpool(self.act(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean((2, 3)))


ENCODING = [[1], [1], [1, 1, 1, 0, 1], [0, 0, 0, 1, 0, 0, 0, 0, 0]]


def bossnet_t0():
    model = BossNet(ENCODING, nn.SiLU(), True, 2)
    state = {name: synthetic(name, tuple(t.shape)) if t.is_floating_point() else t
             for name, t in model.state_dict().items()}
    model.load_state_dict(state)
    return model.eval()


# ----------------------------------------------------------------------------------------------------- preprocessing
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def evaluation_tensor(image, size):
    """DeiT's eval transform with PIL: Resize(int(256/224*size), BICUBIC), CenterCrop(size), ToTensor, Normalize."""
    target = int(256 / 224 * size)
    w, h = image.size
    if w <= h:
        new = (target, int(target * h / w))
    else:
        new = (int(target * w / h), target)
    if new != (w, h):
        image = image.resize(new, Image.BICUBIC)
    w, h = image.size
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    image = image.crop((left, top, left + size, top + size))
    array = np.asarray(image, dtype=np.float32) / 255.0
    array = (array - MEAN) / STD
    return array.transpose(2, 0, 1).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------- fixtures
def checkpoint_fixtures(folder):
    folder.mkdir(parents=True, exist_ok=True)
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 7 - 1
    shared = torch.linspace(-2, 2, 10)
    model = collections.OrderedDict([
        ("conv.weight", torch.linspace(-1, 1, 2 * 3 * 3 * 3).reshape(2, 3, 3, 3)),
        ("half", torch.tensor([0.5, -1.25, 3.0e-5, 65504.0], dtype=torch.float16)),
        ("bf16", torch.tensor([1.0, -2.5, 0.0078125], dtype=torch.bfloat16)),
        ("double", torch.tensor([[1.0 / 3, -2.0]], dtype=torch.float64)),
        ("bn.num_batches_tracked", torch.tensor(12345, dtype=torch.int64)),
        ("transposed", base.t()),
        ("strided", base[1:, ::2]),
        ("shared_a", shared[2:6]),
        ("shared_b", shared[5:]),
        ("scalar", torch.tensor(2.75)),
    ])
    ema = collections.OrderedDict((f"module.{k}", v * 0.5 if v.is_floating_point() else v) for k, v in model.items())
    namespace = argparse.Namespace(lr=0.1, model="bossnet_T0")
    torch.save({"model": model, "model_ema": ema, "epoch": 299, "args": namespace,
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]}}, folder / "tensors.pth")
    torch.save(model, folder / "bare.pth")
    torch.save({"state_dict": model}, folder / "state_dict.pth")
    torch.save({"state_dict": model}, folder / "legacy.pth", _use_new_zipfile_serialization=False)

    def describe(sd):
        return [{"name": k, "shape": list(v.shape), "values": v.double().flatten().tolist()} for k, v in sd.items()]
    (folder / "tensors.json").write_text(json.dumps({
        "model": describe(model), "model_ema": describe({k[len("module."):]: v for k, v in ema.items()}),
    }, indent=1))


def png_fixtures(folder):
    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:70, 0:83]
    rgb = np.stack([(x * 3) % 256, (y * 5 + x) % 256, (255 - x * 2 - y) % 256], -1).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(folder / "gradient.png")
    gray16 = ((y * 937 + x * 311) % 65536).astype(np.uint16)[:20, :17]
    Image.fromarray(gray16).save(folder / "gray16.png")  # mode I;16
    palette = Image.fromarray(rgb[:15, :19]).convert("P", palette=Image.ADAPTIVE, colors=16)
    palette.save(folder / "palette.png")
    Image.fromarray(rgb[:33, :31]).save(folder / "interlaced.png", interlace=1)
    rgba = np.concatenate([rgb[:9, :11], ((y[:9, :11] * 29) % 256).astype(np.uint8)[..., None]], -1)
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    expected = {}
    for name in ["gradient.png", "palette.png", "interlaced.png", "rgba.png"]:
        image = Image.open(folder / name).convert("RGB")
        expected[name] = {"width": image.size[0], "height": image.size[1], "rgb": np.asarray(image).flatten().tolist()}
    # 16-bit gray: the decoder keeps the high byte (PIL's own conversion of I;16 to RGB clips instead).
    expected["gray16.png"] = {"width": 17, "height": 20, "rgb": np.repeat((gray16 >> 8).astype(np.uint8)[..., None], 3, -1).flatten().tolist()}
    (folder / "png_expected.json").write_text(json.dumps(expected))
    np.save(folder / "gradient_64.npy", evaluation_tensor(Image.open(folder / "gradient.png").convert("RGB"), 64))


def golden_fixtures(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    model = bossnet_t0()
    grid = np.arange(3 * 64 * 64, dtype=np.float64).reshape(1, 3, 64, 64)
    x = (np.sin(grid * 0.001) * 1.5 + np.cos(grid * 0.0137) * 0.5).astype(np.float32)
    np.save(folder / "input_64.npy", x)
    with torch.no_grad():
        np.save(folder / "t0_logits_64.npy", model(torch.from_numpy(x)).numpy().astype(np.float32))
        png = np.load(images / "gradient_64.npy")[None]
        np.save(folder / "t0_png_logits_64.npy", model(torch.from_numpy(png)).numpy().astype(np.float32))


def full_checkpoint(folder):
    folder.mkdir(parents=True, exist_ok=True)
    model = bossnet_t0()
    torch.save({"model": model.state_dict(), "epoch": 0}, folder / "bossnet_T0_synthetic.pth")
    grid = np.arange(3 * 224 * 224, dtype=np.float64).reshape(3, 224, 224)
    x = (np.sin(grid * 0.0003) * 1.5).astype(np.float32)
    np.save(folder / "input_224.npy", x)
    with torch.no_grad():
        np.save(folder / "t0_logits_224.npy", model(torch.from_numpy(x)[None]).numpy().astype(np.float32))
    print(f"wrote {folder}/bossnet_T0_synthetic.pth, input_224.npy and t0_logits_224.npy")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full-checkpoint", type=pathlib.Path, help="also write a full-size T0 checkpoint here")
    args = parser.parse_args()
    torch.manual_seed(0)
    checkpoint_fixtures(ROOT / "Tests/CheckpointTests/Fixtures")
    png_fixtures(ROOT / "Tests/ImagesTests/Fixtures")
    golden_fixtures(ROOT / "Tests/ModelsTests/Fixtures", ROOT / "Tests/ImagesTests/Fixtures")
    if args.full_checkpoint:
        full_checkpoint(args.full_checkpoint)
