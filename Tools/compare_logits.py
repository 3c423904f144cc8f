#!/usr/bin/env python3
"""Compares two float32 logits files row by row, as `bossnet classify --logits` writes them ([inputs, classes]).

    Tools/compare_logits.py ACTUAL.npy REFERENCE.npy [--tolerance T] [--json]

Prints each row's relative L2 distance from the reference, ||a - r|| / ||r||, and exits 1 when any row is further
than the tolerance (1e-4 by default, the engine's whole-network tolerance), 2 when the files cannot be compared.
Plain Python (no NumPy), so that CI and a bare GPU machine can run it.
"""
import argparse
import ast
import json
import math
import struct
import sys


def load(path):
    """The shape and values of a little-endian float32 C-order .npy file (version 1, 2 or 3)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        raise ValueError(f"{path}: not a .npy file")
    major = data[6]
    size_bytes = 2 if major == 1 else 4
    (length,) = struct.unpack("<H" if major == 1 else "<I", data[8 : 8 + size_bytes])
    start = 8 + size_bytes
    header = ast.literal_eval(data[start : start + length].decode("latin1"))
    if header["descr"] != "<f4" or header["fortran_order"]:
        raise ValueError(f"{path}: {header['descr']}, fortran_order {header['fortran_order']}; expected <f4, C order")
    shape = tuple(header["shape"])
    body = data[start + length :]
    count = math.prod(shape)
    if len(body) != 4 * count:
        raise ValueError(f"{path}: {len(body)} bytes of data for shape {shape}")
    return shape, struct.unpack(f"<{count}f", body)


def distances(actual, reference, columns):
    rows = []
    for r in range(len(reference) // columns):
        a, b = actual[r * columns : (r + 1) * columns], reference[r * columns : (r + 1) * columns]
        difference = sum((x - y) ** 2 for x, y in zip(a, b))
        norm = sum(y * y for y in b)
        rows.append(math.sqrt(difference / norm) if norm > 0 else math.sqrt(difference))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("actual")
    parser.add_argument("reference")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        (shape, actual), (reference_shape, reference) = load(args.actual), load(args.reference)
    except (OSError, ValueError, KeyError, SyntaxError) as error:
        print(f"compare_logits: {error}", file=sys.stderr)
        return 2
    if shape != reference_shape or len(shape) != 2:
        print(f"compare_logits: shapes {shape} and {reference_shape}; expected the same [inputs, classes]", file=sys.stderr)
        return 2
    rows = distances(actual, reference, shape[1])
    failing = [r for r, d in enumerate(rows) if not d <= args.tolerance]
    if args.json:
        print(json.dumps({"relative_l2": rows, "tolerance": args.tolerance, "failing_rows": failing}))
    else:
        for r, d in enumerate(rows):
            print(f"row {r}: relative L2 {d:.2e}{'' if d <= args.tolerance else '  FAIL'}")
        print(f"{len(rows) - len(failing)} of {len(rows)} rows within {args.tolerance:g} (worst {max(rows):.2e})")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
