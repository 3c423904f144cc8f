#!/usr/bin/env python3
"""Writes a labelled image set in the ImageFolder layout for measuring `bossnet eval`: ImageNet-like JPEGs.

    python3 Tools/make_image_set.py DIR [--images 64] [--classes 4] [--seed 0]

Each image is 500x375 (ImageNet's most common size), quality 90, 4:2:0, with smooth regions, edges and noise, so
decoding and resizing cost what they cost on photographs. Needs numpy and pillow.
"""
import argparse
import pathlib

import numpy as np
from PIL import Image


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=pathlib.Path)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    y, x = np.mgrid[0:375, 0:500].astype(np.float64)
    for index in range(args.images):
        folder = args.folder / f"class_{index % args.classes:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        fx, fy, phase = rng.uniform(5, 60, 3), rng.uniform(5, 60, 3), rng.uniform(0, 6.3, 3)
        channels = [128 + 80 * np.sin(x / fx[c] + phase[c]) * np.cos(y / fy[c]) + rng.normal(0, 12, x.shape) for c in range(3)]
        image = np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8)
        Image.fromarray(image, "RGB").save(folder / f"image_{index:05d}.jpg", quality=90)
    print(f"wrote {args.images} images in {args.classes} classes to {args.folder}")


if __name__ == "__main__":
    main()
