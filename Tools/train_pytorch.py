#!/usr/bin/env python3
"""Trains the authors' own model under the recipe `bossnet train` follows, in PyTorch on the CPU, so that both learning
curves can be compared on the same files.

    python3 Tools/train_pytorch.py --bossnas PATH --timm TIMM --data-path digits --output_dir OUT \\
        [--model bossnet_T0] [--input-size 32] [--batch-size 32] [--epochs 8] [--seed 0] [--lr 5e-4]
        [--warmup-epochs 5] [--same-order-every-epoch]

It runs the authors' retraining code where it can: their model (retraining_hytra/boss_models.py, their
initialisation, --drop-path 0.1 by default), their RASampler, their engine.train_one_epoch and evaluate, timm's
LabelSmoothingCrossEntropy (0.1), AdamW over timm's two parameter groups, and timm 0.3's cosine scheduler (TIMM: a
checkout of pytorch-image-models at v0.3.3) with their defaults (lr 5e-4 scaled by batch / 512, warmup 5 epochs from
1e-6, minimum 1e-5), stepped after each epoch. The settings are those of issue 26's digits run: no RandAugment, colour
jitter, mixup, cutmix, random erasing or EMA. Their transforms at 32 px and below (RandomCrop with padding 4 and a
horizontal flip; ToTensor and Normalize) are written out here with torch, as torchvision would do them, so that
torchvision is not needed. Writes OUT/log.txt with one JSON line per epoch under their keys. Needs torch, timm 0.9,
numpy and pillow.
"""
import argparse
import json
import math
import pathlib
import sys
import time
import warnings

import numpy as np
import torch
from PIL import Image

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


class Folder(torch.utils.data.Dataset):
    """torchvision's ImageFolder over PNG/JPEG files, with the authors' 32 px transforms."""

    def __init__(self, root, train, size):
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        self.samples = [(path, label) for label, name in enumerate(classes)
                        for path in sorted((root / name).iterdir()) if path.suffix.lower() in (".png", ".jpg", ".jpeg")]
        self.train, self.size = train, size

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, label = self.samples[index]
        image = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
        if self.train:  # RandomCrop(size, padding=4), RandomHorizontalFlip()
            image = torch.nn.functional.pad(image, (4, 4, 4, 4))
            top = int(torch.randint(0, image.shape[1] - self.size + 1, size=(1,)))
            left = int(torch.randint(0, image.shape[2] - self.size + 1, size=(1,)))
            image = image[:, top:top + self.size, left:left + self.size]
            if torch.rand(1) < 0.5:
                image = image.flip(-1)
        return (image - MEAN) / STD, label


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bossnas", type=pathlib.Path, required=True)
    parser.add_argument("--timm", type=pathlib.Path, required=True)
    parser.add_argument("--data-path", type=pathlib.Path, required=True)
    parser.add_argument("--output_dir", type=pathlib.Path, required=True)
    parser.add_argument("--model", default="bossnet_T0")
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=5e-4, help="scaled by batch / 512, as theirs")
    parser.add_argument("--warmup-epochs", type=int, default=5)
    parser.add_argument("--same-order-every-epoch", action="store_true",
                        help="never call the sampler's set_epoch, as main.py launched without torch.distributed")
    args = parser.parse_args()
    if args.input_size > 32:
        parser.error("this script writes out the authors' transforms at 32 px and below only")
    tools = pathlib.Path(__file__).resolve().parent
    sys.path.insert(0, str(tools))
    import make_training_fixtures
    make_training_fixtures.stand_in_torchvision()
    import make_fixtures
    sys.path.insert(0, str(args.bossnas / "retraining_hytra"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import engine
        from samplers import RASampler
    from timm.loss import LabelSmoothingCrossEntropy
    from timm.utils import NativeScaler
    torch.cuda.synchronize = lambda *a, **k: None  # their train_one_epoch syncs CUDA; this runs on the CPU
    warnings.filterwarnings("ignore")

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    train = Folder(args.data_path / "train", True, args.input_size)
    val = Folder(args.data_path / "val", False, args.input_size)
    classes = len({label for _, label in train.samples})
    sampler = RASampler(train, num_replicas=1, rank=0, shuffle=True)
    loader = torch.utils.data.DataLoader(train, sampler=sampler, batch_size=args.batch_size, drop_last=True)
    val_loader = torch.utils.data.DataLoader(val, batch_size=int(1.5 * args.batch_size), shuffle=False)
    model = make_fixtures.authors_model(args.bossnas, args.model, num_classes=classes, drop_path_rate=0.1)
    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lr = args.lr * args.batch_size / 512
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1 or n.endswith(".bias")]
    decay = [p for n, p in model.named_parameters() if not (p.ndim <= 1 or n.endswith(".bias"))]
    optimizer = torch.optim.AdamW([{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": 0.05}],
                                  lr=lr, eps=1e-8)
    schedules = make_training_fixtures.timm03_scheduler(args.timm)
    scheduler, _ = schedules.create_scheduler(argparse.Namespace(
        sched="cosine", epochs=args.epochs, lr_noise=None, lr_noise_pct=0.67, lr_noise_std=1.0, seed=args.seed,
        warmup_lr=1e-6, min_lr=1e-5, decay_epochs=30, warmup_epochs=args.warmup_epochs, cooldown_epochs=10, patience_epochs=10,
        decay_rate=0.1), optimizer)
    criterion = LabelSmoothingCrossEntropy(smoothing=0.1)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    log = args.output_dir / "log.txt"
    log.write_text("")
    for epoch in range(args.epochs):
        # As main.py does when launched distributed (their README's torch.distributed.launch, one process or
        # more): each epoch its own shuffle. Launched plainly, main.py never calls set_epoch, and RASampler then
        # repeats epoch 0's order, which keeps the same floor(n / 256) * 256 / 3 images every epoch.
        if not args.same_order_every_epoch:
            sampler.set_epoch(epoch)
        started = time.time()
        stats = engine.train_one_epoch(model, criterion, loader, optimizer, torch.device("cpu"), epoch,
                                       NativeScaler(), None, None, None)
        seconds = time.time() - started
        scheduler.step(epoch)
        test = engine.evaluate(val_loader, model, torch.device("cpu"))
        record = {**{f"train_{k}": v for k, v in stats.items()}, **{f"test_{k}": v for k, v in test.items()},
                  "epoch": epoch, "n_parameters": parameters, "epoch_seconds": seconds}
        with log.open("a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"epoch {epoch}: train loss {stats['loss']:.4f}, val top-1 {test['acc1']:.2f}% ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
