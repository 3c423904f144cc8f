#!/usr/bin/env python3
"""Makes the test fixtures that need PyTorch, so that CI never needs it.

    python3 Tools/make_fixtures.py --bossnas PATH                 # rewrite the committed fixtures
    python3 Tools/make_fixtures.py --bossnas PATH --full-checkpoints DIR
                                  # also write full-size checkpoints in the authors' layout, inputs and the authors'
                                  # logits at the published sizes (large: not committed); Tools/check_checkpoints.py
                                  # then compares `bossnet classify` with them

PATH is a checkout of the authors' repository, changlin31/BossNAS, at its latest commit (bb8b26a, "fix code mismatch
with old checkpoints & support EMA"): the reference logits come from their own model code (retraining_hytra/
boss_models.py), imported from there, never from a re-implementation. Nothing of theirs is copied here. Needs
torch 2.x, timm 0.9.x (their code imports timm.models.layers and timm.models.resnet.drop_blocks), numpy and pillow:

    pip install torch "timm==0.9.16" numpy pillow

Writes (every file byte for byte the same on every run):

Tests/CheckpointTests/Fixtures/
    tensors.pth        {'model': {...}, 'model_ema': {'module.'...}, 'epoch', 'args' (argparse.Namespace), 'optimizer'}:
                       float32, float16, bfloat16, float64 and int64 tensors; non-contiguous views (a transpose, a
                       strided slice with a storage offset); two tensors sharing one storage; a 0-d tensor
    bare.pth           a bare state dict (an OrderedDict of tensors)
    state_dict.pth     {'state_dict': {...}}
    legacy.pth         {'state_dict': {...}} in the legacy (pre-1.6) format, its tensors views of one storage
    tensors.json       the expected names, shapes and values of each of the above
Tests/ImagesTests/Fixtures/
    gradient.png, gray16.png, palette.png, interlaced.png, rgba.png   small PNGs of several kinds
    png_expected.json  each PNG's RGB bytes as PIL's convert('RGB') gives them
    gradient_64.npy    gradient.png through the evaluation transform at 64 (PIL bicubic resize, center crop, normalise)
    baseline_420.jpg, baseline_422.jpg, baseline_444.jpg, progressive.jpg, odd_17x9.jpg, gray.jpg, cmyk.jpg
                       JPEGs as PIL writes them (chroma subsampling 4:2:0, 4:2:2, 4:4:4; progressive; an odd size;
                       grayscale; Adobe CMYK), and truncated.jpg (the first half of one)
    jpeg_expected.json each JPEG's RGB bytes as PIL's Image.open(f).convert('RGB') gives them, with PIL's versions
    float64.npy, float16.npy, big_endian_f4.npy, fortran_f4.npy, big_endian_fortran_f8.npy
                       arrays as NumPy writes them, each with NAME.expected.npy: astype(float32) in C order
    nan.npy            a float32 array with a NaN at [1, 2]
Tests/ModelsTests/Fixtures/
    input_64.npy       the first calibration image of SyntheticWeights (the smooth one), [1, 3, 64, 64]
    MODEL_logits_64.npy      the authors' MODEL (bossnet_T0, bossnet_T0_nose, bossnet_T1) in float64 under the
                             calibrated synthetic weights, for input_64.npy
    MODEL_png_logits_64.npy  the same for gradient.png through the evaluation transform at 64
    attention_spread.json    per ResAtt layer, the mean over softmax rows of the attention logits' standard deviation
Tests/EvaluationTests/Fixtures/
    set/               a labelled set in the ImageFolder layout: 3 classes, PNGs and JPEGs, a JPEG named .png, a
                       corrupt JPEG and a text file
    labels.txt         'relative/path class_index' labels chosen so that top-1 and top-5 are neither 0 nor 1
    expected.json      the authors' BossNet-T0's top-5 for every image at 64x64 (calibrated synthetic weights), and
                       the top-1 and top-5 accuracies under the folder labels and under labels.txt
Tests/PublishedWeightsTests/Fixtures/
    BossNet-T0-80_8.pth          a stand-in for the published checkpoint that binds strictly to bossnet_T0: every
                                 tensor a strided view into a few 32 KB storages (kilobytes, not 150 MB)
    published_T0_logits_64.npy   the authors' bossnet_T0 under those weights for input_64.npy

The synthetic weights follow the formula documented on SyntheticWeights in Sources/Models/Parameters.swift,
calibrated the same way: each BatchNorm's statistics scale with the mean square of what reaches it when the
calibration batch (the smooth image and a photo-like one) runs through the model, earlier BatchNorms already
calibrated.
"""
import argparse
import collections
import io
import json
import math
import pathlib
import pickle
import pickletools
import sys
import warnings

import numpy as np
import PIL
import PIL.features
import torch
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ["bossnet_T0", "bossnet_T0_nose", "bossnet_T1"]
# Every ResAtt layer's attention must be at least this peaked (mean row standard deviation of its logits) under the
# synthetic weights, or an attention defect could hide behind near-uniform attention.
MINIMUM_SPREAD = 2.0


# ----------------------------------------------------------------------------------------------- synthetic weights
def fnv1a(text):
    h = 2166136261
    for b in text.encode("utf-8"):
        h ^= b
        h = (h * 16777619) & 0xFFFFFFFF
    return h


def uniform(name, count):
    """SplitMix64's finaliser of (fnv1a(name) << 32) + k + golden, as doubles in [-1, 1)."""
    k = np.arange(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (np.uint64(fnv1a(name)) << np.uint64(32)) + k + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return 2 * ((z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53) - 1


def synthetic(name, shape, m=1.0):
    """The value of parameter `name` (float32), as SyntheticWeights computes it; m is its BatchNorm's scale."""
    count = int(np.prod(shape)) if len(shape) else 1
    u = uniform(name, count)
    if name.endswith("running_mean"):
        v = (0.1 * math.sqrt(m)) * u
    elif name.endswith("running_var"):
        v = m + (0.5 * m) * (u * u)
    elif name.endswith("weight") and len(shape) == 1:
        f = 0.1 if name.endswith("bn3.weight") else 0.05 if name.endswith("net.5.weight") else 1.0
        v = f + (0.25 * f) * u
    elif name.endswith("weight"):
        fan = int(np.prod(shape[1:]))
        gain = 12.0 if name.endswith("to_qkv.weight") else 1.0 if len(shape) == 2 else 2.0
        v = math.sqrt(3 * gain / max(fan, 1)) * u
    else:
        v = 0.1 * u
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def calibration_image(size=64):
    """SyntheticWeights.calibrationImage: 1.5 sin(0.001 k) + 0.5 cos(0.0137 k) over the flat index k."""
    k = np.arange(3 * size * size, dtype=np.float64)
    return (np.sin(k * 0.001) * 1.5 + np.cos(k * 0.0137) * 0.5).astype(np.float32).reshape(1, 3, size, size)


def photo_like_image(size=64):
    """SyntheticWeights.photoLikeImage: regions, a disc's edge and fine texture, the same picture at every size."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    u, v = x * (224 / size), y * (224 / size)
    red = np.sin(u / 23) * np.cos(v / 31) + 0.35 * np.sin((u + 2 * v) / 5)
    green = np.sin((u - v) / 41) + 0.25 * np.cos(u * v / 900)
    blue = np.where((u - 112) * (u - 112) + (v - 112) * (v - 112) < 75 * 75, 1.2, -0.8) + 0.3 * np.sin(v / 3)
    return (1.2 * np.stack([red, green, blue])).astype(np.float32).reshape(1, 3, size, size)


def calibration_images(size=64):
    """SyntheticWeights.calibrationImages: the smooth image, then the photo-like one."""
    return np.concatenate([calibration_image(size), photo_like_image(size)])


def authors_model(bossnas, name, **options):
    """The authors' own model, from their checkout's retraining_hytra/boss_models.py (`options` as their main.py
    passes them to create_model, e.g. drop_path_rate)."""
    folder = str(pathlib.Path(bossnas).resolve() / "retraining_hytra")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import boss_models
    return getattr(boss_models, name)(**options).eval()


def calibrated(model, images):
    """Loads the synthetic weights into `model` (float64 afterwards), each BatchNorm calibrated in turn on `images`
    (the calibration batch: the mean square over all of it)."""
    state = {name: synthetic(name, tuple(t.shape)) if t.is_floating_point() else t
             for name, t in model.state_dict().items()}
    model.load_state_dict(state)
    model.double()
    names = {module: name for name, module in model.named_modules()}

    def calibrate(module, inputs):
        m = float(inputs[0].pow(2).mean())
        m = m if m > 0 and math.isfinite(m) else 1.0
        prefix = names[module]
        for buffer in ("running_mean", "running_var"):
            value = synthetic(f"{prefix}.{buffer}", tuple(getattr(module, buffer).shape), m)
            getattr(module, buffer).copy_(value.double())

    hooks = [module.register_forward_pre_hook(calibrate) for module in model.modules()
             if isinstance(module, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        model(torch.from_numpy(np.asarray(images, dtype=np.float64)))
    for hook in hooks:
        hook.remove()
    return model


def attention_spreads(model, x):
    """For each attention module, the mean over softmax rows of the standard deviation of its logits."""
    spreads = collections.OrderedDict()

    def measure(name):
        def hook(module, inputs, output):
            b, _, h, w = inputs[0].shape
            q, k, _ = module.to_qkv(inputs[0]).view(b, 3 * module.heads, module.dim_head, h * w).chunk(3, dim=1)
            logits = q.transpose(-2, -1) @ k * module.scale
            spreads[name] = float(logits.std(-1, correction=0).mean())
        return hook

    hooks = [module.register_forward_hook(measure(name)) for name, module in model.named_modules()
             if type(module).__name__ == "Attention"]
    with torch.no_grad():
        model(torch.from_numpy(np.asarray(x, dtype=np.float64)))
    for hook in hooks:
        hook.remove()
    return spreads


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
    flat = torch.linspace(-1, 1, 16)  # one storage, so that the legacy file has one storage key
    save_legacy({"state_dict": collections.OrderedDict([("conv.weight", flat[:12].view(2, 2, 3)), ("bias", flat[12:])])},
                folder / "legacy.pth")

    def describe(sd):
        return [{"name": k, "shape": list(v.shape), "values": v.double().flatten().tolist()} for k, v in sd.items()]
    (folder / "tensors.json").write_text(json.dumps({
        "model": describe(model), "model_ema": describe({k[len("module."):]: v for k, v in ema.items()}),
    }, indent=1))


def published_fixtures(folder, models_fixtures, bossnas):
    """A stand-in for the published BossNet-T0 checkpoint, small enough to commit, that binds strictly to the model:
    the authors' state-dict names and shapes, each tensor a strided view into one of a few small storages (torch.save
    keeps views as views), so the file is kilobytes where the real one is 150 MB. The download tests serve it from a
    loopback HTTP server under the published name; its logits are the authors' model's under these weights."""
    folder.mkdir(parents=True, exist_ok=True)
    model = authors_model(bossnas, "bossnet_T0")
    size = 8192
    amplitudes = [1.0, 0.3, 0.1, 0.03, 0.01]
    signed = {a: torch.from_numpy((a * uniform(f"published {a}", size)).astype(np.float32)) for a in amplitudes}
    positive = torch.from_numpy((1 + 0.25 * uniform("published positive", size)).astype(np.float32))
    state = collections.OrderedDict()
    for name, tensor in model.state_dict().items():
        shape = tuple(tensor.shape)
        if not tensor.is_floating_point():
            state[name] = tensor.clone()
            continue
        if name.endswith("running_var") or (name.endswith("weight") and len(shape) == 1):
            storage = positive
        elif name == "fc.weight":
            storage = signed[1.0]  # spreads the logits apart
        elif name.endswith("weight") and len(shape) > 1:
            fan = int(np.prod(shape[1:]))
            storage = signed[min(amplitudes, key=lambda a: abs(math.log(a / math.sqrt(6 / fan))))]
        else:
            storage = signed[0.1]
        strides = (1, 3, 5, 7)[:len(shape)]
        assert sum((n - 1) * s for n, s in zip(shape, strides)) < size, name
        state[name] = storage.as_strided(shape, strides)
    torch.save({"model": state, "epoch": 299}, folder / "BossNet-T0-80_8.pth")
    reference = authors_model(bossnas, "bossnet_T0")
    reference.load_state_dict(state)
    reference.double()
    with torch.no_grad():
        logits = reference(torch.from_numpy(np.load(models_fixtures / "input_64.npy").astype(np.float64))).numpy()
    assert np.isfinite(logits).all() and logits.std() > 0.1, logits.std()
    np.save(folder / "published_T0_logits_64.npy", logits.astype(np.float32))


def save_legacy(obj, path):
    """torch.save in the legacy (pre-1.6) format, with its storage keys made deterministic. That format names each
    storage by its memory address (str(storage._cdata)), so two runs write different bytes; each key is replaced by
    its rank among the keys, zero-padded to the same length, which keeps every pickle length. The storages' data
    follow in the order of their addresses, which varies from run to run: only an object with a single storage comes
    out the same every time."""
    buffer = io.BytesIO()
    torch.save(obj, buffer, _use_new_zipfile_serialization=False)
    data = buffer.getvalue()
    stream = io.BytesIO(data)
    for _ in range(4):  # skip the magic number, protocol version, system info and the object without running them
        for _ in pickletools.genops(stream):
            pass
    keys = pickle.load(stream)
    width = len(keys[0])
    assert len(keys) == 1, "only an object whose tensors share one storage is written the same on every run"
    assert all(len(key) == width and key.isdigit() for key in keys), "legacy storage keys are not addresses of one length"
    for rank, key in enumerate(keys):
        data = data.replace(key.encode(), str(rank).zfill(width).encode())
    path.write_bytes(data)


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


def npy_fixtures(folder):
    """.npy files as NumPy writes them in other dtypes, byte orders and layouts, each with what astype(float32) in C
    order gives (NAME.expected.npy, little-endian float32)."""
    folder.mkdir(parents=True, exist_ok=True)
    base = (np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 7 - 1.3) * np.array([1, 1e-3, 1e3])[None, :, None]
    half = np.array([0.5, -1.25, 3.0e-5, 65504.0, 6e-8, -0.0, np.inf, -np.inf, 1 / 3], dtype=np.float16)
    arrays = {
        "float64.npy": base,
        "float16.npy": half,
        "big_endian_f4.npy": base.astype(">f4"),
        "fortran_f4.npy": np.asfortranarray(base.astype(np.float32)),
        "big_endian_fortran_f8.npy": np.asfortranarray(base.astype(">f8")).transpose(1, 0, 2).copy(order="F"),
    }
    for name, array in arrays.items():
        np.save(folder / name, array)
        np.save(folder / (name[:-4] + ".expected.npy"), np.ascontiguousarray(np.load(folder / name).astype("<f4")))
    nan = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    nan[1, 2] = np.nan
    np.save(folder / "nan.npy", nan)


def jpeg_fixtures(folder):
    """JPEGs of every kind PIL writes, and the RGB that PIL's Image.open(f).convert("RGB") decodes from each."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = photo(67, 45)
    rgb.save(folder / "baseline_420.jpg", quality=90, subsampling=2)
    rgb.save(folder / "baseline_422.jpg", quality=85, subsampling=1)
    rgb.save(folder / "baseline_444.jpg", quality=95, subsampling=0)
    rgb.save(folder / "progressive.jpg", quality=80, progressive=True)
    photo(17, 9).save(folder / "odd_17x9.jpg", quality=90, subsampling=2)
    rgb.convert("L").save(folder / "gray.jpg", quality=90)
    rgb.convert("CMYK").save(folder / "cmyk.jpg", quality=90)  # PIL writes Adobe's inverted CMYK
    data = (folder / "baseline_420.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    expected = {"pil": PIL.__version__, "libjpeg_turbo": PIL.features.version("jpg")}
    for name in ["baseline_420.jpg", "baseline_422.jpg", "baseline_444.jpg", "progressive.jpg", "odd_17x9.jpg",
                 "gray.jpg", "cmyk.jpg"]:
        image = Image.open(folder / name).convert("RGB")
        expected[name] = {"width": image.size[0], "height": image.size[1], "rgb": np.asarray(image).flatten().tolist()}
    (folder / "jpeg_expected.json").write_text(json.dumps(expected))


def golden_fixtures(folder, images, bossnas):
    folder.mkdir(parents=True, exist_ok=True)
    x = calibration_image()
    np.save(folder / "input_64.npy", x)
    png = np.load(images / "gradient_64.npy")[None]
    spreads = {}
    for name in MODELS:
        model = calibrated(authors_model(bossnas, name), calibration_images())
        with torch.no_grad():
            for suffix, data in (("logits_64", x), ("png_logits_64", png)):
                logits = model(torch.from_numpy(data.astype(np.float64))).numpy()
                np.save(folder / f"{name}_{suffix}.npy", logits.astype(np.float32))
        spreads[name] = attention_spreads(model, x)
        weakest = min(spreads[name].values())
        assert weakest >= MINIMUM_SPREAD, f"{name}: an attention layer's logit spread is only {weakest:.2f}"
    (folder / "attention_spread.json").write_text(json.dumps(
        {name: {layer: round(value, 4) for layer, value in layers.items()} for name, layers in spreads.items()}, indent=1)
        + "\n")


def evaluation_fixtures(folder, bossnas):
    """A small labelled set in the ImageFolder layout (PNG and JPEG, a JPEG named .png, a corrupt JPEG, a file that
    is not an image), a labels file that makes the accuracies non-trivial, and what the authors' BossNet-T0 (under
    the calibrated synthetic weights, in float64, at 64x64 through PIL's preprocessing) predicts for it."""
    root = folder / "set"
    if root.exists():
        for path in sorted(root.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    files = {}
    for c, name in enumerate(["cat", "dog", "fish"]):
        (root / name).mkdir(parents=True)
        for i in range(4):
            image = photo(70 + 13 * i + 7 * c, 60 + 11 * ((i + c) % 3))
            path = f"{name}/{name}_{i}.{'png' if (i + c) % 2 == 0 else 'jpg'}"
            if path.endswith(".png"):
                image.save(root / path)
            else:
                image.save(root / path, quality=88)
            files[path] = c
    photo(90, 75).save(root / "fish/actually_a_jpeg.png", format="JPEG", quality=90)
    files["fish/actually_a_jpeg.png"] = 2
    data = (root / "dog/dog_0.jpg").read_bytes()
    (root / "dog/broken.jpg").write_bytes(data[: len(data) // 3])
    files["dog/broken.jpg"] = 1
    (root / "fish/README.txt").write_text("not an image: ImageFolder skips it\n")

    model = calibrated(authors_model(bossnas, "bossnet_T0"), calibration_images())
    predictions = {}
    for path in sorted(files):
        if path == "dog/broken.jpg":
            continue
        x = evaluation_tensor(Image.open(root / path).convert("RGB"), 64)[None].astype(np.float64)
        with torch.no_grad():
            logits = model(torch.from_numpy(x))[0]
        order = torch.argsort(logits, descending=True)
        predictions[path] = order[:5].tolist()
        files[path] = (files[path], order.tolist())

    def accuracy(labels):
        top1 = sum(predictions[p][0] == labels[p] for p in predictions) / len(predictions)
        top5 = sum(labels[p] in predictions[p] for p in predictions) / len(predictions)
        return {"images": len(predictions), "top1": top1, "top5": top5, "errors": ["dog/broken.jpg"]}

    folder_labels = {p: (v[0] if isinstance(v, tuple) else v) for p, v in files.items()}
    # Labels that give non-trivial accuracies: the best class, the third best, or the 500th, in turn.
    designed = {}
    for k, path in enumerate(sorted(predictions)):
        ranking = files[path][1]
        designed[path] = ranking[[0, 2, 499][k % 3]]
    designed["dog/broken.jpg"] = 7
    (folder / "labels.txt").write_text("".join(f"{p} {designed[p]}\n" for p in sorted(designed)))
    (folder / "expected.json").write_text(json.dumps({
        "model": "bossnet_T0", "input_size": 64, "imagefolder": accuracy(folder_labels), "labels": accuracy(designed),
        "top5": predictions}, indent=1, sort_keys=True) + "\n")


# The published input sizes of each model, for the full-size check.
FULL_SIZES = {"bossnet_T0": [224, 288], "bossnet_T0_nose": [224], "bossnet_T1": [224, 256]}


def photo(width, height):
    """A deterministic RGB image with smooth regions, edges and texture, as a photograph has."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 128 + 90 * np.sin(x / 23.0) * np.cos(y / 31.0) + 30 * np.sin((x + 2 * y) / 5.0)
    g = 128 + 100 * np.sin((x - y) / 41.0) + 20 * np.cos(x * y / 900.0)
    b = np.where((x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(width, height) / 3) ** 2, 200.0, 60.0) + 25 * np.sin(y / 3.0)
    return Image.fromarray(np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8), "RGB")


def full_checkpoints(folder, bossnas):
    """Full-size checkpoints in the authors' layout ('model' and a different 'model_ema'), each calibrated at 224 on
    the preprocessed photo, and the authors' float64 logits at the published sizes for an .npy and a PNG input."""
    folder.mkdir(parents=True, exist_ok=True)
    photo(347, 291).save(folder / "photo.png")
    expected = {}
    for name, sizes in FULL_SIZES.items():
        calibration = evaluation_tensor(Image.open(folder / "photo.png").convert("RGB"), 224)[None]
        model = calibrated(authors_model(bossnas, name), calibration).float()
        state = model.state_dict()
        ema = collections.OrderedDict()
        for key, value in state.items():
            if value.is_floating_point():
                value = value * torch.from_numpy((1 + 0.05 * uniform(key + ".ema", value.numel())).astype(np.float32)).reshape(value.shape)
            ema[key] = value
        torch.save({"model": state, "model_ema": ema, "epoch": 299}, folder / f"{name}.pth")
        spreads = {}
        for which, weights in (("model", state), ("model_ema", ema)):
            reference = authors_model(bossnas, name)
            reference.load_state_dict(weights)
            reference.double()
            for size in sizes:
                npy = f"input_{size}.npy"
                if not (folder / npy).exists():
                    k = np.arange(3 * size * size, dtype=np.float64).reshape(3, size, size)
                    np.save(folder / npy, (np.sin(k * 0.00071) * 1.3 + np.cos(k * 0.0191) * 0.4).astype(np.float32))
                inputs = {npy: np.load(folder / npy)[None],
                          "photo.png": evaluation_tensor(Image.open(folder / "photo.png").convert("RGB"), size)[None]}
                for label, data in inputs.items():
                    with torch.no_grad():
                        logits = reference(torch.from_numpy(data.astype(np.float64))).numpy()[0]
                    expected[f"{name} {which} {size} {label}"] = logits.tolist()
                spreads[f"{which} {size}"] = min(attention_spreads(reference, inputs["photo.png"]).values())
        print(f"{name}: weakest attention logit spread per case {spreads}")
    (folder / "expected.json").write_text(json.dumps(expected))
    print(f"wrote {folder}: checkpoints, inputs and expected.json; check them with Tools/check_checkpoints.py {folder}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bossnas", type=pathlib.Path, required=True,
                        help="a checkout of changlin31/BossNAS (its latest commit)")
    parser.add_argument("--full-checkpoints", type=pathlib.Path, help="also write full-size checkpoints here")
    args = parser.parse_args()
    if not (args.bossnas / "retraining_hytra" / "boss_models.py").exists():
        parser.error(f"{args.bossnas} is not a checkout of changlin31/BossNAS (no retraining_hytra/boss_models.py)")
    torch.manual_seed(0)
    checkpoint_fixtures(ROOT / "Tests/CheckpointTests/Fixtures")
    png_fixtures(ROOT / "Tests/ImagesTests/Fixtures")
    jpeg_fixtures(ROOT / "Tests/ImagesTests/Fixtures")
    npy_fixtures(ROOT / "Tests/ImagesTests/Fixtures")
    golden_fixtures(ROOT / "Tests/ModelsTests/Fixtures", ROOT / "Tests/ImagesTests/Fixtures", args.bossnas)
    evaluation_fixtures(ROOT / "Tests/EvaluationTests/Fixtures", args.bossnas)
    published_fixtures(ROOT / "Tests/PublishedWeightsTests/Fixtures", ROOT / "Tests/ModelsTests/Fixtures", args.bossnas)
    if args.full_checkpoints:
        full_checkpoints(args.full_checkpoints, args.bossnas)
