#!/usr/bin/env python3
"""Runs the authors' own training script, retraining_hytra/main.py of a BossNAS checkout, unchanged, on a CPU-only
torch 2.x, with the timm they pin (0.3.2) from a private directory.

    python3 Tools/run_authors_main.py --bossnas BOSSNAS --timm TIMM [--fix-ema-save] [main.py's arguments...]

    e.g. python3 Tools/run_authors_main.py --bossnas /tmp/bossnas --timm /tmp/timm032 --device cpu \\
             --model bossnet_T0 --data-set IMNET --data-path /tmp/digits --input-size 32 --batch-size 32 \\
             --epochs 2 --num_workers 0 --no-pin-mem --output_dir OUT [--resume CHECKPOINT.pth]

BOSSNAS is a checkout of changlin31/BossNAS; TIMM is a directory holding the `timm` package of pytorch-image-models
v0.3.2 (`git --git-dir=MIRROR --work-tree=TIMM checkout 6504a428 -- timm`; 6504a428 is "Version 0.3.2"). Both go
first on sys.path, so a timm installed globally is neither used nor touched. All other arguments go to main.py as
they are (main.py appends "-MODEL-YYYYmmdd-HHMMSS" to --output_dir). Nothing of theirs is copied or edited; only
these shims are installed before main.py runs:

  * torch._six: gone since torch 2.0; timm 0.3.2 imports container_abcs from it (also string_classes, int_classes).
  * torchvision, only where it cannot be imported (PyPI's CUDA build does not load on a CPU-only torch): minimal
    stand-ins, done as torchvision does them with PIL and torch, for what datasets.py and timm 0.3.2 use:
    datasets.ImageFolder, datasets.folder.default_loader, transforms.Compose, RandomCrop (zero padding),
    RandomHorizontalFlip, RandomVerticalFlip, Resize, CenterCrop, ToTensor, Normalize, functional.resized_crop.
    The rest (ColorJitter, used only with --aa '', and CIFAR100) is absent.
  * torch.cuda.synchronize: engine.train_one_epoch calls it every step; a no-op when torch has no CUDA.
  * timm.data.mixup.mixup_target: its device defaults to 'cuda' and Mixup.__call__ passes none, so the default
    mixup/cutmix fail without CUDA; here it defaults to the targets' device.
  * PIL.ImageOps.posterize: newer Pillow refuses bits=0, which RandAugment's PosterizeIncreasing gives at full
    magnitude ('inc1' with 'mstd0.5', their default --aa); bits=0 gives the black image Pillow used to give.
  * numpy.bool: removed in numpy 1.24; timm 0.3.2's Mixup uses it with --mixup-mode elem or pair.

--fix-ema-save (off by default) mends a bug of theirs, not of the environment: since BossNAS commit bb8b26a
("support EMA") model_ema is their own utils.ModelEma, which timm's get_state_dict (any version) does not unwrap, so
main.py dies with "AttributeError: 'ModelEma' object has no attribute 'state_dict'" when it saves the checkpoint after
the first epoch's training. With the flag, get_state_dict of an object with `.ema` gives `.ema.state_dict()`, which
is what their ModelEma._load_checkpoint reads back (as DeiT with timm's ModelEma stored it).

Not shimmed: torch.load's default weights_only=True (torch >= 2.6) refuses a checkpoint whose `args` is an
argparse.Namespace, as main.py itself writes them; TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 loads it the old way. Without
RANK/WORLD_SIZE or SLURM_PROCID, utils.init_distributed_mode runs one process. Their datasets.py gives --data-set
IMNET 1000 classes whatever the folder holds, so --resume needs a checkpoint with a 1000-way head there. Needs torch,
numpy and pillow.
"""
import argparse
import collections.abc
import os
import runpy
import sys
import types

import numpy as np
import torch
from PIL import Image, ImageOps


def stand_in_torchvision():
    def module(name, **members):
        m = sys.modules[name] = types.ModuleType(name)
        m.__dict__.update(members)
        return m

    def crop(img, i, j, h, w): return img.crop((j, i, j + w, i + h))

    def resized_crop(img, i, j, h, w, size, interpolation=Image.BILINEAR):
        size = (size, size) if isinstance(size, int) else size
        return crop(img, i, j, h, w).resize((size[1], size[0]), interpolation)

    class Compose:
        def __init__(self, transforms): self.transforms = list(transforms)
        def __call__(self, x):
            for t in self.transforms: x = t(x)
            return x

    def RandomCrop(size, padding=0):
        def t(img):
            img = ImageOps.expand(img, border=padding, fill=0) if padding else img
            i, j = (int(torch.randint(0, n - size + 1, (1,))) for n in reversed(img.size))
            return crop(img, i, j, size, size)
        return t

    def flip(method): return lambda p=0.5: lambda img: img.transpose(method) if torch.rand(1) < p else img

    def Resize(size, interpolation=Image.BILINEAR):  # an int sets the shorter side, as in torchvision
        def t(img):
            w, h = img.size
            if not isinstance(size, int): return img.resize((size[1], size[0]), interpolation)
            return img.resize((size, size * h // w) if w <= h else (size * w // h, size), interpolation)
        return t

    def CenterCrop(size):
        return lambda img: crop(img, round((img.size[1] - size) / 2), round((img.size[0] - size) / 2), size, size)

    def ToTensor(): return lambda img: torch.from_numpy(np.array(img, np.float32) / 255).permute(2, 0, 1).contiguous()

    def Normalize(mean, std):
        mean, std = torch.as_tensor(mean).view(-1, 1, 1), torch.as_tensor(std).view(-1, 1, 1)
        return lambda t: (t - mean) / std

    def default_loader(path):
        with open(path, "rb") as f: return Image.open(f).convert("RGB")

    class ImageFolder(torch.utils.data.Dataset):
        def __init__(self, root, transform=None, target_transform=None, loader=default_loader):
            self.classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
            self.samples = [(os.path.join(d, f), self.class_to_idx[c]) for c in self.classes
                            for d, _, fs in sorted(os.walk(os.path.join(root, c))) for f in sorted(fs)]
            self.imgs, self.targets = self.samples, [s[1] for s in self.samples]
            self.root, self.transform, self.target_transform, self.loader = root, transform, target_transform, loader
        def __len__(self): return len(self.samples)
        def __getitem__(self, index):
            path, target = self.samples[index]
            sample = self.loader(path)
            sample = self.transform(sample) if self.transform else sample
            return sample, self.target_transform(target) if self.target_transform else target

    functional = module("torchvision.transforms.functional", crop=crop, resized_crop=resized_crop)
    transforms = module("torchvision.transforms", functional=functional, Compose=Compose, RandomCrop=RandomCrop,
                        RandomHorizontalFlip=flip(Image.FLIP_LEFT_RIGHT),
                        RandomVerticalFlip=flip(Image.FLIP_TOP_BOTTOM),
                        Resize=Resize, CenterCrop=CenterCrop, ToTensor=ToTensor, Normalize=Normalize)
    folder = module("torchvision.datasets.folder", ImageFolder=ImageFolder, default_loader=default_loader)
    datasets = module("torchvision.datasets", folder=folder, ImageFolder=ImageFolder)
    module("torchvision", __version__="stand-in", transforms=transforms, datasets=datasets)


def install_shims(bossnas, timm_dir, fix_ema_save=False):
    """Puts BOSSNAS/retraining_hytra and TIMM first on sys.path, installs the shims; returns main.py's path."""
    hytra = os.path.join(os.path.abspath(bossnas), "retraining_hytra")
    sys.path[:0] = [hytra, os.path.abspath(timm_dir)]
    torch._six = sys.modules["torch._six"] = types.ModuleType("torch._six")
    torch._six.container_abcs, torch._six.string_classes, torch._six.int_classes = collections.abc, str, int
    try:
        import torchvision  # noqa: F401
    except Exception as error:  # ImportError, or a CUDA build failing to register its ops
        for name in [n for n in sys.modules if n.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        print(f"run_authors_main: torchvision unusable ({type(error).__name__}); using the stand-in")
        stand_in_torchvision()
    if not torch.cuda.is_available():
        torch.cuda.synchronize = lambda device=None: None
    if not hasattr(np, "bool"):
        np.bool = bool
    pil_posterize = ImageOps.posterize
    ImageOps.posterize = lambda image, bits: \
        image.point([0] * 256 * len(image.getbands())) if bits == 0 else pil_posterize(image, bits)
    import timm
    import timm.data.mixup as mixup
    cuda_mixup_target = mixup.mixup_target
    mixup.mixup_target = lambda target, num_classes, lam=1., smoothing=0., device=None: \
        cuda_mixup_target(target, num_classes, lam, smoothing, device or target.device)
    print(f"run_authors_main: timm {timm.__version__} from {os.path.dirname(timm.__file__)}")
    if fix_ema_save:
        import timm.utils
        timm_get_state_dict = timm.utils.get_state_dict
        timm.utils.get_state_dict = lambda model, *a, **k: \
            model.ema.state_dict() if hasattr(model, "ema") else timm_get_state_dict(model, *a, **k)
    return os.path.join(hytra, "main.py")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--bossnas", required=True, help="a checkout of changlin31/BossNAS")
    parser.add_argument("--timm", required=True, help="a directory holding timm 0.3.2's `timm` package")
    parser.add_argument("--fix-ema-save", action="store_true", help="mend their checkpoint saving (see above)")
    options, rest = parser.parse_known_args()
    sys.argv = [install_shims(options.bossnas, options.timm, options.fix_ema_save)] + rest
    runpy.run_path(sys.argv[0], run_name="__main__")
