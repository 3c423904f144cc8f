#!/usr/bin/env python3
"""Checks a `bossnet train` checkpoint.pth with PyTorch itself, as the authors' main.py would use it.

    python3 Tools/check_training_checkpoint.py OUT/checkpoint.pth [--bossnas PATH] [--timm PATH]
        [--input X.npy --logits L.npy]

1. torch.load(..., weights_only=True) reads it, and it holds exactly their keys: model, optimizer, lr_scheduler,
   epoch, model_ema, args (a plain dict).
2. The optimizer's state loads into torch.optim.AdamW (or SGD with Nesterov momentum) over parameters of the state
   dict's shapes, grouped as timm's create_optimizer groups them (no weight decay on 1-d parameters and biases), and
   one step runs on it.
3. With --bossnas (a checkout of changlin31/BossNAS) and a published model name in args: model and model_ema load
   strictly into the authors' own model with args' classes; with --input and --logits, that model in eval mode on
   the input gives the logits (`bossnet classify --logits` on the same checkpoint) within 1e-4 relative L2.
4. With --timm (a checkout of pytorch-image-models at v0.3.3): lr_scheduler loads into the authors' scheduler
   (timm 0.3's create_scheduler from args), which gives the next epoch the rate the optimizer holds.
5. With --same-as OTHER.pth (say, the checkpoint of the same run not interrupted): model, model_ema, the optimizer's
   state and the scheduler's hold exactly OTHER's values, bit for bit, at the same epoch.
Prints what it checked; exits 1 on the first failure. Needs torch and numpy.
"""
import argparse
import math
import pathlib
import sys
import types

import numpy as np
import torch

KEYS = {"model", "optimizer", "lr_scheduler", "epoch", "model_ema", "args"}


def fail(message):
    print(f"FAILED: {message}")
    sys.exit(1)


def trainable(state):
    return [(name, t) for name, t in state.items()
            if not name.endswith(("running_mean", "running_var", "num_batches_tracked"))]


def optimizer_check(checkpoint):
    args = checkpoint["args"]
    params = [(name, torch.nn.Parameter(t.clone().float())) for name, t in trainable(checkpoint["model"])]
    no_decay = [p for name, p in params if p.ndim <= 1 or name.endswith(".bias")]
    decay = [p for name, p in params if not (p.ndim <= 1 or name.endswith(".bias"))]
    groups = [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": args["weight_decay"]}]
    if args["opt"] == "sgd":
        optimizer = torch.optim.SGD(groups, lr=args["lr"], momentum=args["momentum"], nesterov=True)
    else:
        optimizer = torch.optim.AdamW(groups, lr=args["lr"], eps=args["opt_eps"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    for _, p in params:
        state = optimizer.state[p]
        for buffer in ("exp_avg", "exp_avg_sq", "momentum_buffer"):
            if buffer in state and state[buffer].shape != p.shape:
                fail(f"optimizer state {buffer} has shape {tuple(state[buffer].shape)}, its parameter {tuple(p.shape)}")
        p.grad = torch.zeros_like(p)
    optimizer.step()
    print(f"optimizer: {args['opt']} state of {len(optimizer.state)} parameters in {len(params)} loads into torch "
          f"(lr {optimizer.param_groups[0]['lr']:.3g}) and steps")
    return optimizer


def model_check(checkpoint, bossnas, input_path, logits_path):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    import make_training_fixtures
    make_training_fixtures.stand_in_torchvision()  # timm imports torchvision; the authors' model does not need it
    import make_fixtures
    args = checkpoint["args"]
    for key in ("model", "model_ema"):
        if checkpoint[key] is None:
            continue
        model = make_fixtures.authors_model(bossnas, args["model"], num_classes=args["nb_classes"])
        model.load_state_dict(checkpoint[key], strict=True)
        print(f"{key}: loads strictly into the authors' {args['model']} ({args['nb_classes']} classes)")
        if key == "model" and input_path:
            with torch.no_grad():
                ours = torch.from_numpy(np.load(logits_path)).double()
                theirs = model.double()(torch.from_numpy(np.load(input_path)).double())
            error = float((ours - theirs).norm() / theirs.norm())
            if not error <= 1e-4:
                fail(f"classify's logits differ from the authors' model's by {error:.2e} (relative L2)")
            print(f"logits: classify's within {error:.2e} of the authors' model's")


def scheduler_check(checkpoint, optimizer, timm):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    import make_training_fixtures
    scheduler_module = make_training_fixtures.timm03_scheduler(timm)
    a = checkpoint["args"]
    namespace = types.SimpleNamespace(
        sched=a["sched"], epochs=a["epochs"], lr_noise=None, lr_noise_pct=0.67, lr_noise_std=1.0, seed=a["seed"],
        warmup_lr=a["warmup_lr"], min_lr=a["min_lr"], decay_epochs=30, warmup_epochs=a["warmup_epochs"],
        cooldown_epochs=a["cooldown_epochs"], patience_epochs=10, decay_rate=0.1)
    # A fresh optimizer at args' rate, as main.py creates the scheduler over it before --resume loads anything.
    fresh_optimizer = torch.optim.SGD([{"params": [p]} for g in optimizer.param_groups for p in g["params"][:1]],
                                      lr=a["lr"])
    scheduler, _ = scheduler_module.create_scheduler(namespace, fresh_optimizer)
    fresh = dict(scheduler.state_dict())
    scheduler.load_state_dict(checkpoint["lr_scheduler"])
    if set(fresh) != set(checkpoint["lr_scheduler"]):
        fail(f"lr_scheduler's keys differ from timm 0.3's: {sorted(set(fresh) ^ set(checkpoint['lr_scheduler']))}")
    for key, value in fresh.items():
        if value != checkpoint["lr_scheduler"][key] and not (isinstance(value, list) and np.allclose(value, checkpoint["lr_scheduler"][key])):
            fail(f"lr_scheduler's {key} is {checkpoint['lr_scheduler'][key]!r}; timm 0.3 makes {value!r}")
    epoch = checkpoint["epoch"]
    expected = scheduler.get_epoch_values(epoch)[0]
    held = checkpoint["optimizer"]["param_groups"][0]["lr"]
    if not math.isclose(expected, held, rel_tol=1e-9):
        fail(f"the optimizer holds lr {held} for epoch {epoch + 1}; the scheduler's step({epoch}) sets {expected}")
    print(f"lr_scheduler: timm 0.3's state; epoch {epoch + 1} trains at {held:.4g} as its step({epoch}) sets")


def equal(a, b, where):
    """Whether two values torch.load gave are the same bits: tensors, lists, dicts and plain values."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        same = isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
        if not same:
            fail(f"{where} differs")
    elif isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            fail(f"{where} has keys {list(a)[:8]}..., the other {list(b)[:8]}...")
        for key in a:
            equal(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            fail(f"{where} has {len(a)} entries, the other {len(b)}")
        for index, (x, y) in enumerate(zip(a, b)):
            equal(x, y, f"{where}[{index}]")
    elif a != b:
        fail(f"{where} is {a!r}, the other {b!r}")


def same_check(path, other_path):
    # Read afresh: torch's optimizer shares (and steps) the state tensors the optimizer check loaded.
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    other = torch.load(other_path, map_location="cpu", weights_only=True)
    for key in ("epoch", "model", "model_ema", "optimizer", "lr_scheduler"):
        equal(checkpoint[key], other[key], key)
    print(f"same as {other_path}: model, model_ema, optimizer and lr_scheduler equal bit for bit at epoch "
          f"{checkpoint['epoch']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=pathlib.Path)
    parser.add_argument("--bossnas", type=pathlib.Path)
    parser.add_argument("--timm", type=pathlib.Path)
    parser.add_argument("--input", type=pathlib.Path)
    parser.add_argument("--logits", type=pathlib.Path)
    parser.add_argument("--same-as", type=pathlib.Path)
    options = parser.parse_args()
    checkpoint = torch.load(options.checkpoint, map_location="cpu", weights_only=True)
    if set(checkpoint) != KEYS:
        fail(f"the checkpoint's keys are {sorted(checkpoint)}; the authors' are {sorted(KEYS)}")
    if not isinstance(checkpoint["args"], dict) or not isinstance(checkpoint["epoch"], int):
        fail("args must be a plain dict and epoch an int")
    print(f"torch.load(weights_only=True): epoch {checkpoint['epoch']}, {len(checkpoint['model'])} model entries, "
          f"model_ema {'present' if checkpoint['model_ema'] is not None else 'None'}")
    optimizer = optimizer_check(checkpoint)
    if options.bossnas:
        model_check(checkpoint, options.bossnas, options.input, options.logits)
    if options.timm:
        scheduler_check(checkpoint, optimizer, options.timm)
    if options.same_as:
        same_check(options.checkpoint, options.same_as)
    print("ok")


if __name__ == "__main__":
    main()
