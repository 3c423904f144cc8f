#!/usr/bin/env python3
"""Checks `bossnet classify --weights` against the authors' own model on full-size checkpoints.

    python3 Tools/make_fixtures.py --bossnas PATH --full-checkpoints DIR   # checkpoints, inputs, expected logits
    swift build -c release
    python3 Tools/check_checkpoints.py DIR [--bossnet .build/release/bossnet] [--cpu]

For every model and published input size (T0 at 224 and 288, T0 w/o SE at 224, T1 at 224 and 256), with and without
--ema, from an .npy input and from a PNG: runs `bossnet classify --model M --weights DIR/M.pth --input-size S
--logits OUT.npy` and compares the logits with the authors' float64 ones (relative L2). Prints one line per case and a
JSON summary; exits 1 if any case is over the tolerance. Needs only numpy.
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

TOLERANCE = 1e-4
SIZES = {"bossnet_T0": [224, 288], "bossnet_T0_nose": [224], "bossnet_T1": [224, 256]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=pathlib.Path)
    parser.add_argument("--bossnet", default=".build/release/bossnet")
    parser.add_argument("--cpu", action="store_true", help="run the CPU reference instead of the device")
    args = parser.parse_args()
    expected = json.loads((args.folder / "expected.json").read_text())
    results, failed = [], 0
    with tempfile.TemporaryDirectory() as scratch:
        for model, sizes in SIZES.items():
            for ema in (False, True):
                for size in sizes:
                    inputs = [f"input_{size}.npy", "photo.png"]
                    out = pathlib.Path(scratch) / "logits.npy"
                    command = [args.bossnet, "classify", "--model", model, "--weights", str(args.folder / f"{model}.pth"),
                               "--input-size", str(size), "--logits", str(out)] + (["--ema"] if ema else []) \
                        + (["--cpu"] if args.cpu else []) + [str(args.folder / name) for name in inputs]
                    run = subprocess.run(command, capture_output=True, text=True)
                    if run.returncode != 0:
                        print(" ".join(command), run.stderr, file=sys.stderr)
                        failed += 1
                        continue
                    logits = np.load(out).astype(np.float64)
                    for row, name in enumerate(inputs):
                        reference = np.array(expected[f"{model} {'model_ema' if ema else 'model'} {size} {name}"])
                        error = float(np.linalg.norm(logits[row] - reference) / np.linalg.norm(reference))
                        ok = error <= TOLERANCE
                        failed += not ok
                        results.append({"model": model, "ema": ema, "input_size": size, "input": name,
                                        "relative_l2": error, "pass": ok})
                        print(f"{model:16} {'ema' if ema else '   '} {size} {name:16} relative L2 {error:.2e} "
                              f"{'ok' if ok else 'FAIL'}", flush=True)
    print(json.dumps({"tolerance": TOLERANCE, "cases": results, "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
