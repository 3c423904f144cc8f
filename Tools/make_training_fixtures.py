#!/usr/bin/env python3
"""Makes the training fixtures from the authors' own model code, so that CI never needs PyTorch.

    python3 Tools/make_training_fixtures.py --bossnas PATH --timm TIMM

PATH is a checkout of changlin31/BossNAS at its latest commit (bb8b26a); the models come from its
retraining_hytra/boss_models.py, as in Tools/make_fixtures.py (whose synthetic weights this reuses). Needs torch 2.x,
timm 0.9.x, numpy and pillow. timm imports torchvision for its data pipeline and FrozenBatchNorm2d, neither of which
these models use; where no torchvision matches the installed torch (a CPU-only torch beside PyPI's torchvision), a
stand-in module is put in its place for the import.

For bossnet_T0, bossnet_T0_nose and bossnet_T1 at 64 px, batch 4, with the uncalibrated synthetic weights
(SyntheticWeights(gains:): BatchNorm gammas near 1, each residual branch's last near 0.1 or 0.05, to_qkv at gain 12,
so that train mode is well conditioned and attention peaked), in model.train() and float64: one forward on
training_input_64.npy, cross-entropy with label smoothing 0.1 against training_labels.npy, one backward. Writes
Tests/ModelsTests/Fixtures/:

    training_input_64.npy     float32 [4, 3, 64, 64], NumPy's default_rng(2025).standard_normal
    training_labels.npy       int64 [4]
    MODEL_training_64.json    the loss; for every trainable parameter its gradient's L2 norm, sum and the values at
                              8 indices; the same for every BatchNorm's running_mean and running_var after the step;
                              and PyTorch float32's own error on the same step (relative L2 over all gradients
                              together, and the worst single parameter's), the yardstick for float32 engines.

    MODEL_droppath_training_64.json
                              the same step for bossnet_T0 and bossnet_T0_nose built with drop_path_rate 0.3 (their
                              main.py's --drop-path), each DropPath module's per-image mask fixed in place of its
                              random draw: image n of the k-th DropPath module (in module order) dropped where
                              (k + n) % 3 == 0, else scaled by 1 / (1 - drop_prob) as timm's drop_path does; the masks
                              and each module's drop_prob under "drop_path".

    bossnet_T0_initialization.json
                              the authors' bossnet_T0 as their main.py creates it to train from scratch (10 classes,
                              their own initialisation and PyTorch's layer defaults, seed 0): every state-dict entry's
                              shape, mean, standard deviation, minimum and maximum, in float64.

    bossnet_T0_data_parallel_64.json
                              PyTorch's own float32 error (against float64) on the mean of T0's gradients over the
                              two halves of that batch, each stepped alone (data parallelism over two replicas).

Tests/KernelsTests/Fixtures/:

    optimizers.json           torch.optim.AdamW (lr 1e-3, weight decay 0.05) and SGD (lr 0.1, momentum 0.9, weight
                              decay 1e-4, plain and Nesterov) over three steps in float64 on five small parameters,
                              grouped as timm's add_weight_decay groups them (no decay on 1-d parameters and biases);
                              torch.nn.utils.clip_grad_norm_ (max norm 1); one model-EMA update (decay 0.99996).
    schedules.json            the authors' learning rate per epoch (--sched cosine with their defaults: warmup 5
                              epochs from 1e-6, minimum 1e-5, the rate scaled by batch / 512, stepped after each epoch
                              as their main.py does) for their ImageNet run, issue 26's digits run and a run without
                              warmup, from timm's scheduler at v0.3.3 (TIMM: a checkout of pytorch-image-models; the
                              authors pin 0.3.2, whose scheduler files are the same).

Tests/ImagesTests/Fixtures/:

    mixup.json                timm's Mixup (mode batch, its mixup.py at v0.3.3) on four 3 x 8 x 8 images with its
                              draws fixed: mixup at lam 0.3, cutmix at lam 0.6 centred at (2, 7); the mixed images,
                              the corrected lam and mixup_target's targets (10 classes, smoothing 0.1, float64).

Tests/TrainingTests/Fixtures/:

    transforms.json           the deterministic parts of the training transform on the photo
                              Tests/EvaluationTests/Fixtures/set/cat/cat_1.jpg (83 x 71, decoded by PIL): torchvision's
                              resized crop at fixed boxes (PIL's crop, then resize to 40 x 40 with BICUBIC), and
                              RandomCrop(32, padding=4) at fixed offsets, flipped and not; the RGB bytes of each.
    randaugment.json          timm 0.3's RandAugment operations (its auto_augment.py, over PIL) at fixed arguments
                              on a 32 x 26 crop of that photo, on a flat 7 x 5 image and a 32 x 16 ramp holding each
                              value twice (histogram operations), bicubic, filled with the
                              ImageNet mean; the bytes base64. And LEVEL_TO_ARG at fixed magnitudes.

Every file is the same on every run.
"""
import argparse
import json
import pathlib
import sys
import types

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "Tests" / "ModelsTests" / "Fixtures"
MODELS = ["bossnet_T0", "bossnet_T0_nose", "bossnet_T1"]
LABELS = [1, 207, 511, 999]
SMOOTHING = 0.1
SAMPLES = 8
DROP_PATH_MODELS = ["bossnet_T0", "bossnet_T0_nose"]
DROP_PATH_RATE = 0.3


def stand_in_torchvision():
    """Puts a module that answers every name in place of torchvision, for timm's imports only."""
    try:
        import torchvision  # noqa: F401
        return
    except Exception:
        pass

    class Anything(type):
        def __getattr__(cls, name):
            return Anything(name, (), {})

    class Module(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return Anything(name, (), {})

    names = ["torchvision", "torchvision.transforms", "torchvision.transforms.functional", "torchvision.ops",
             "torchvision.ops.misc", "torchvision.datasets", "torchvision.models",
             "torchvision.models.feature_extraction"]
    for name in names:
        for key in [k for k in sys.modules if k == name]:
            del sys.modules[key]
        sys.modules[name] = Module(name)
    for name in names[1:]:
        parent, _, child = name.rpartition(".")
        setattr(sys.modules[parent], child, sys.modules[name])


def sample_indices(count):
    """8 indices spread over a tensor of `count` values (Knuth's multiplicative hash of 0..7), the same in Swift."""
    return [(i * 2654435761 + 12345) % count for i in range(SAMPLES)]


def summary(values):
    flat = values.detach().reshape(-1).double()
    indices = sample_indices(flat.numel())
    return {"norm": float(flat.norm()), "sum": float(flat.sum()), "indices": indices,
            "values": [float(flat[i]) for i in indices]}


def fix_drop_paths(model, batch):
    """Replaces each timm DropPath's random draw with a fixed mask (see the module docstring); returns the masks and
    rates by block name."""
    import torch
    from timm.layers import DropPath

    fixed = {}
    modules = [(name, m) for name, m in model.named_modules() if isinstance(m, DropPath)]
    for k, (name, module) in enumerate(modules):
        keep = 1 - module.drop_prob
        scales = [0.0 if (k + n) % 3 == 0 else 1.0 / keep for n in range(batch)]
        mask = torch.tensor(scales, dtype=torch.float64)
        module.forward = lambda x, mask=mask: x * mask.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
        fixed[name.rsplit(".drop_path", 1)[0]] = {"drop_prob": module.drop_prob, "scales": scales}
    return fixed


def training_step(model, images, labels, dtype):
    """One train-mode step in `dtype`: the loss, every trainable parameter's gradient, the running statistics."""
    import torch
    import torch.nn.functional as F

    model = model.to(dtype).train()
    model.zero_grad()
    logits = model(torch.from_numpy(images).to(dtype))
    loss = F.cross_entropy(logits, torch.from_numpy(labels), label_smoothing=SMOOTHING)
    loss.backward()
    gradients = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
    running = {name: b.detach().clone() for name, b in model.named_buffers() if "running_" in name}
    return float(loss.detach()), gradients, running


def fixture(bossnas, name, images, labels, drop_path_rate=0.0):
    import torch
    import make_fixtures

    model = make_fixtures.authors_model(bossnas, name, drop_path_rate=drop_path_rate)
    masks = fix_drop_paths(model, len(labels)) if drop_path_rate > 0 else None
    state = {key: make_fixtures.synthetic(key, tuple(t.shape)) if t.is_floating_point() else t
             for key, t in model.state_dict().items()}
    model.load_state_dict(state)
    loss, gradients, running = training_step(model, images, labels, torch.float64)
    model.load_state_dict(state)
    loss32, gradients32, _ = training_step(model, images, labels, torch.float32)

    def error(a, b):
        return float((a.double() - b).norm() / b.norm()) if float(b.norm()) > 0 else 0.0

    together = torch.cat([g.reshape(-1) for g in gradients.values()])
    together32 = torch.cat([gradients32[k].reshape(-1) for k in gradients])
    worst = max((error(gradients32[k], g), k) for k, g in gradients.items() if float(g.norm()) > 1e-9 * float(together.norm()))
    result = {
        "model": name, "input_size": 64, "batch": len(labels), "labels": labels.tolist(), "smoothing": SMOOTHING,
        "loss": loss,
        "gradients": {k: summary(g) for k, g in gradients.items()},
        "running": {k: summary(b) for k, b in running.items()},
        "torch_float32": {"loss_relative_error": abs(loss32 - loss) / abs(loss),
                          "gradients_relative_l2": error(together32, together),
                          "worst_parameter": worst[1], "worst_parameter_relative_l2": worst[0]},
    }
    if masks is not None:
        result["drop_path"] = {"rate": drop_path_rate, "blocks": masks}
    return result


def data_parallel_fixture(bossnas, images, labels):
    """PyTorch's own float32 error on data parallelism's averaged gradients: T0 stepped on each half of the batch
    (BatchNorm on the half's statistics, as on each GPU under DistributedDataParallel), the two halves' gradients
    averaged, float32 against float64."""
    import torch
    import make_fixtures

    model = make_fixtures.authors_model(bossnas, "bossnet_T0")
    state = {key: make_fixtures.synthetic(key, tuple(t.shape)) if t.is_floating_point() else t
             for key, t in model.state_dict().items()}
    half = len(labels) // 2
    means = {}
    for dtype in (torch.float64, torch.float32):
        steps = []
        for part in (slice(0, half), slice(half, None)):
            model.load_state_dict(state)
            steps.append(training_step(model, images[part], labels[part], dtype)[1])
        means[dtype] = torch.cat([((steps[0][k].double() + steps[1][k].double()) / 2).reshape(-1) for k in steps[0]])
    error = float((means[torch.float32] - means[torch.float64]).norm() / means[torch.float64].norm())
    return {"model": "bossnet_T0", "input_size": 64, "replicas": 2, "batch_per_replica": half,
            "torch_float32": {"gradients_relative_l2": error}}


def optimizer_fixture():
    """Three steps of each optimizer from the same start, the gradients drawn afresh each step."""
    import torch

    rng = np.random.default_rng(7)
    shapes = {"layer.conv.weight": [3, 2, 2, 2], "layer.bn.weight": [5], "layer.bn.bias": [5], "fc.weight": [3, 4],
              "fc.bias": [3]}
    start = {k: rng.standard_normal(v) for k, v in shapes.items()}
    gradients = [{k: rng.standard_normal(v) for k, v in shapes.items()} for _ in range(3)]

    def run(make):
        params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in start.items()}
        decay = [p for k, p in params.items() if not (len(shapes[k]) <= 1 or k.endswith(".bias"))]
        rest = [p for k, p in params.items() if len(shapes[k]) <= 1 or k.endswith(".bias")]
        optimizer = make([{"params": decay}, {"params": rest, "weight_decay": 0.0}])
        for step in gradients:
            for k, p in params.items():
                p.grad = torch.tensor(step[k], dtype=torch.float64)
            optimizer.step()
        return {k: p.detach().reshape(-1).tolist() for k, p in params.items()}

    adamw = run(lambda groups: torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.05, foreach=False))
    sgd = run(lambda groups: torch.optim.SGD(groups, lr=0.1, momentum=0.9, weight_decay=1e-4, foreach=False))
    nesterov = run(lambda groups: torch.optim.SGD(groups, lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True,
                                                  foreach=False))
    clipped = [torch.tensor(gradients[0][k], dtype=torch.float64) for k in shapes]
    for tensor in clipped:
        tensor.requires_grad_(False)
    holders = [torch.zeros_like(t, requires_grad=True) for t in clipped]
    for holder, tensor in zip(holders, clipped):
        holder.grad = tensor.clone()
    norm = float(torch.nn.utils.clip_grad_norm_(holders, max_norm=1.0, foreach=False))
    ema = start["fc.weight"] * 0.99996 + (1 - 0.99996) * gradients[0]["fc.weight"]
    return {
        "shapes": shapes, "start": {k: v.reshape(-1).tolist() for k, v in start.items()},
        "gradients": [{k: v.reshape(-1).tolist() for k, v in g.items()} for g in gradients],
        "adamw": {"lr": 1e-3, "weight_decay": 0.05, "after": adamw},
        "sgd": {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "after": sgd, "nesterov_after": nesterov},
        "clip": {"max_norm": 1.0, "norm": norm, "clipped": {k: h.grad.reshape(-1).tolist() for k, h in zip(shapes, holders)}},
        "ema": {"decay": 0.99996, "average": start["fc.weight"].reshape(-1).tolist(),
                "values": gradients[0]["fc.weight"].reshape(-1).tolist(), "after": ema.reshape(-1).tolist()},
    }


def timm03_scheduler(timm):
    """timm's scheduler package from a checkout at v0.3.3 (`timm`): the authors pin timm 0.3.2, whose cosine_lr.py
    and scheduler.py are those of v0.3.3 (neither changed between them). Loaded by path, beside the installed timm."""
    import importlib.util

    folder = timm / "timm" / "scheduler"
    spec = importlib.util.spec_from_file_location("timm03_scheduler", folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["timm03_scheduler"] = module
    spec.loader.exec_module(module)
    return module


def schedule_fixture(timm):
    """The learning rate of each epoch as the authors' main.py trains it: create_scheduler(args, optimizer) with
    --sched cosine, the rate scaled by batch / 512, then `lr_scheduler.step(epoch)` after each epoch; and the
    scheduler's own value at each epoch through its cooldown (which their loop never reaches)."""
    import torch

    scheduler = timm03_scheduler(timm)
    cases = {
        "imagenet": dict(lr=5e-4, batch=1024, epochs=300, warmup_epochs=5, warmup_lr=1e-6, min_lr=1e-5, cooldown=10),
        "digits": dict(lr=5e-4, batch=32, epochs=8, warmup_epochs=5, warmup_lr=1e-6, min_lr=1e-5, cooldown=10),
        "no_warmup": dict(lr=1e-3, batch=512, epochs=10, warmup_epochs=0, warmup_lr=1e-6, min_lr=1e-5, cooldown=3),
    }
    result = {}
    for name, case in cases.items():
        args = argparse.Namespace(
            sched="cosine", epochs=case["epochs"], min_lr=case["min_lr"], decay_rate=0.1,
            warmup_lr=case["warmup_lr"], warmup_epochs=case["warmup_epochs"], cooldown_epochs=case["cooldown"],
            lr_noise=None, lr_noise_pct=0.67, lr_noise_std=1.0, seed=0)
        lr = case["lr"] * case["batch"] / 512.0
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
        lr_scheduler, total = scheduler.create_scheduler(args, optimizer)
        training = []
        for epoch in range(case["epochs"]):
            training.append(optimizer.param_groups[0]["lr"])
            lr_scheduler.step(epoch)
        values = [lr_scheduler.get_epoch_values(t)[0] for t in range(total + 2)]
        result[name] = dict(case, scaled_lr=lr, total_epochs=total, training=training, values=values)
    return result


def mixup_fixture(timm):
    """timm's Mixup in batch mode (its mixup.py at v0.3.3, loaded by path), its random draws fixed: mixup at lam 0.3,
    and cutmix at lam 0.6 with the box's centre at (2, 7) of 8 x 8 images (clipped by the border, so its lam is
    corrected); the mixed images and the lam each returns, and mixup_target's targets at that lam (float64)."""
    import importlib.util
    import torch

    spec = importlib.util.spec_from_file_location("timm03_mixup", timm / "timm" / "data" / "mixup.py")
    mixup = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mixup)
    images = np.random.default_rng(11).standard_normal((4, 3, 8, 8)).astype(np.float32)
    labels = [1, 5, 0, 9]
    result = {"images": images.reshape(-1).tolist(), "labels": labels, "classes": 10, "smoothing": 0.1}
    real = (np.random.beta, np.random.rand, np.random.randint)
    try:
        np.random.rand = lambda *size: np.zeros(size) if size else 0.0
        for name, alphas, lam, centre in [("mixup", (1.0, 0.0), 0.3, None), ("cutmix", (0.0, 1.0), 0.6, [2, 7])]:
            np.random.beta = lambda a, b, size=None, lam=lam: lam
            centres = list(centre or [])
            np.random.randint = lambda low, high, size=None, centres=centres: centres.pop(0)
            mixer = mixup.Mixup(mixup_alpha=alphas[0], cutmix_alpha=alphas[1], prob=1.0, mode="batch",
                                label_smoothing=0.1, num_classes=10)
            x = torch.from_numpy(images.copy())
            mixed_lam = mixer._mix_batch(x)
            torch.set_default_dtype(torch.float64)
            targets = mixup.mixup_target(torch.tensor(labels), 10, mixed_lam, 0.1, device="cpu")
            torch.set_default_dtype(torch.float32)
            result[name] = {"lam": lam, "centre": centre, "mixed_lam": mixed_lam,
                            "images": x.reshape(-1).tolist(), "targets": targets.reshape(-1).tolist()}
    finally:
        np.random.beta, np.random.rand, np.random.randint = real
    return result


def initialization_fixture(bossnas):
    """The statistics of each state-dict entry of the authors' T0 as created to train (see the module docstring)."""
    import torch
    import make_fixtures
    torch.manual_seed(0)
    model = make_fixtures.authors_model(bossnas, "bossnet_T0", num_classes=10)
    entries = []
    for name, tensor in model.state_dict().items():
        values = tensor.double().flatten()
        entries.append({"name": name, "shape": list(tensor.shape), "mean": float(values.mean()),
                        "std": float(values.std(unbiased=False)), "min": float(values.min()),
                        "max": float(values.max())})
    return {"model": "bossnet_T0", "classes": 10, "entries": entries}


def transforms_fixture():
    """The training transform's deterministic operations on a photo (see the module docstring)."""
    from PIL import Image
    image = Image.open(ROOT / "Tests" / "EvaluationTests" / "Fixtures" / "set" / "cat" / "cat_1.jpg").convert("RGB")
    crops = []
    for top, left, height, width in [(5, 7, 50, 60), (10, 3, 20, 30), (0, 0, 71, 83)]:
        out = image.crop((left, top, left + width, top + height)).resize((40, 40), Image.BICUBIC)
        crops.append({"top": top, "left": left, "height": height, "width": width, "size": 40,
                      "pixels": list(out.tobytes())})
    padded = np.pad(np.asarray(image), ((4, 4), (4, 4), (0, 0)))
    random_crops = []
    for top, left, flip in [(0, 0, False), (43, 55, True), (20, 9, True)]:
        out = padded[top:top + 32, left:left + 32]
        if flip:
            out = out[:, ::-1]
        random_crops.append({"top": top, "left": left, "flip": flip, "pixels": [int(v) for v in out.reshape(-1)]})
    return {"image": "set/cat/cat_1.jpg", "resized_crops": crops, "padded_crops": random_crops}


RANDAUGMENT_CASES = [  # (timm's operation, its argument after LEVEL_TO_ARG and the sign)
    ("AutoContrast", None), ("Equalize", None), ("Invert", None),
    ("Rotate", 27.0), ("Rotate", -13.5), ("Rotate", 0.0),
    ("Posterize", 4), ("Posterize", 2), ("Posterize", 1),  # Pillow 13 refuses 0 bits (older ones gave black)
    ("Solarize", 256), ("Solarize", 128), ("Solarize", 26),
    ("SolarizeAdd", 99), ("SolarizeAdd", 0),
    ("Color", 0.19), ("Color", 1.81), ("Color", 0.6), ("Contrast", 0.19), ("Contrast", 1.81), ("Contrast", 1.4),
    ("Brightness", 0.19), ("Brightness", 1.81), ("Brightness", 0.6), ("Sharpness", 0.19), ("Sharpness", 1.81),
    ("Sharpness", 1.0),
    ("ShearX", 0.27), ("ShearX", -0.27), ("ShearY", 0.135), ("ShearY", -0.27),
    ("TranslateXRel", 0.405), ("TranslateXRel", -0.2), ("TranslateYRel", -0.405), ("TranslateYRel", 0.1),
]


def randaugment_fixture(timm):
    """timm 0.3's RandAugment operations (its own auto_augment.py over PIL) at fixed arguments on a non-square crop
    of the photo, bicubic and filled with the ImageNet mean as the authors' transform makes them; also a flat image
    (the degenerate histograms); and LEVEL_TO_ARG at fixed magnitudes, the sign not drawn."""
    import base64
    import importlib.util
    import random
    from PIL import Image
    spec = importlib.util.spec_from_file_location("timm03_auto_augment", timm / "timm" / "data" / "auto_augment.py")
    aa = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(aa)
    photo = Image.open(ROOT / "Tests" / "EvaluationTests" / "Fixtures" / "set" / "cat" / "cat_1.jpg").convert("RGB")
    # The ramp holds each value twice a channel: equalize's step, (512 - 2) // 255 = 2, is 1 with 256 for 255.
    ramp = np.array([[[(x * 8 + y + 85 * c) % 256 for c in range(3)] for x in range(32)] for y in range(16)])
    images = {"photo": photo.crop((20, 12, 52, 38)), "flat": Image.new("RGB", (7, 5), (90, 160, 30)),
              "ramp": Image.fromarray(ramp.astype(np.uint8), "RGB")}
    kwargs = {"fillcolor": (124, 116, 104), "resample": Image.BICUBIC}
    cases = []
    for image_name, image in images.items():
        for name, argument in RANDAUGMENT_CASES:
            if image_name != "photo" and name not in ("AutoContrast", "Equalize", "Contrast", "Sharpness"):
                continue
            op = aa.NAME_TO_OP[name]
            out = op(image, **dict(kwargs)) if argument is None else op(image, argument, **dict(kwargs))
            cases.append({"image": image_name, "operation": name, "argument": argument,
                          "pixels": base64.b64encode(out.tobytes()).decode()})
    levels = []
    random.random = lambda: 0.0  # _randomly_negate keeps the sign
    for name in aa._RAND_INCREASING_TRANSFORMS + ["Posterize", "Solarize", "Color", "Contrast", "Brightness",
                                                  "Sharpness"]:
        if aa.LEVEL_TO_ARG[name] is None:
            continue
        for level in (0.0, 3.7, 9.0, 9.61, 10.0):
            levels.append({"operation": name, "level": level,
                           "argument": aa.LEVEL_TO_ARG[name](level, {"translate_const": 250})[0]})
    return {"crop": [20, 12, 52, 38], "inputs": {k: base64.b64encode(v.tobytes()).decode() for k, v in images.items()},
            "sizes": {k: list(v.size) for k, v in images.items()}, "cases": cases, "levels": levels}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bossnas", type=pathlib.Path, required=True)
    parser.add_argument("--timm", type=pathlib.Path, required=True,
                        help="a checkout of huggingface/pytorch-image-models at v0.3.3 (for the authors' scheduler)")
    args = parser.parse_args()
    if not (args.bossnas / "retraining_hytra" / "boss_models.py").exists():
        parser.error(f"{args.bossnas} is not a checkout of changlin31/BossNAS (no retraining_hytra/boss_models.py)")
    stand_in_torchvision()
    sys.path.insert(0, str(ROOT / "Tools"))
    import torch
    torch.manual_seed(0)

    images = np.random.default_rng(2025).standard_normal((4, 3, 64, 64)).astype(np.float32)
    labels = np.array(LABELS, dtype=np.int64)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    np.save(FIXTURES / "training_input_64.npy", images)
    np.save(FIXTURES / "training_labels.npy", labels)
    kernels = ROOT / "Tests" / "KernelsTests" / "Fixtures"
    kernels.mkdir(parents=True, exist_ok=True)
    (kernels / "optimizers.json").write_text(json.dumps(optimizer_fixture(), indent=1, sort_keys=True) + "\n")
    (kernels / "schedules.json").write_text(json.dumps(schedule_fixture(args.timm), indent=1, sort_keys=True) + "\n")
    images_fixtures = ROOT / "Tests" / "ImagesTests" / "Fixtures"
    (images_fixtures / "mixup.json").write_text(json.dumps(mixup_fixture(args.timm), indent=1, sort_keys=True) + "\n")
    training = ROOT / "Tests" / "TrainingTests" / "Fixtures"
    training.mkdir(parents=True, exist_ok=True)
    (training / "transforms.json").write_text(json.dumps(transforms_fixture(), sort_keys=True) + "\n")
    (training / "randaugment.json").write_text(json.dumps(randaugment_fixture(args.timm), sort_keys=True) + "\n")
    initialization = json.dumps(initialization_fixture(args.bossnas), indent=1, sort_keys=True)
    (FIXTURES / "bossnet_T0_initialization.json").write_text(initialization + "\n")
    parallel = json.dumps(data_parallel_fixture(args.bossnas, images, labels), indent=1, sort_keys=True)
    (FIXTURES / "bossnet_T0_data_parallel_64.json").write_text(parallel + "\n")
    cases = [(name, 0.0, f"{name}_training_64.json") for name in MODELS]
    cases += [(name, DROP_PATH_RATE, f"{name}_droppath_training_64.json") for name in DROP_PATH_MODELS]
    for name, rate, file in cases:
        result = fixture(args.bossnas, name, images, labels, drop_path_rate=rate)
        (FIXTURES / file).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        t = result["torch_float32"]
        print(f"{name}: loss {result['loss']:.6f}; PyTorch float32 against float64: gradients {t['gradients_relative_l2']:.2e} "
              f"together, worst {t['worst_parameter']} {t['worst_parameter_relative_l2']:.2e}, "
              f"loss {t['loss_relative_error']:.1e}")


if __name__ == "__main__":
    main()
