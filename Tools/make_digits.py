#!/usr/bin/env python3
"""Writes scikit-learn's handwritten digits (1,797 images of 8x8 pixels, 10 classes, shipped inside scikit-learn) as
an ImageFolder: OUT/train/<digit>/*.png and OUT/val/<digit>/*.png, RGB, upscaled to --size pixels with PIL's bicubic
filter, dark ink on white. Every fifth image of each class (in scikit-learn's order) goes to val/: 1,433 train and 364
val images. The same files feed `bossnet train` and Tools/train_pytorch.py, so both train on identical pixels.

    pip install scikit-learn pillow
    python3 Tools/make_digits.py --output digits
"""
import argparse
import os

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="the folder to write train/ and val/ into")
    parser.add_argument("--size", type=int, default=32, help="the side of the written images (default 32)")
    args = parser.parse_args()
    if args.size < 8:
        parser.error("--size must be at least 8")

    digits = load_digits()
    seen = {label: 0 for label in range(10)}
    counts = {"train": 0, "val": 0}
    for index, (image, label) in enumerate(zip(digits.images, digits.target)):
        split = "val" if seen[label] % 5 == 0 else "train"
        seen[label] += 1
        folder = os.path.join(args.output, split, str(label))
        os.makedirs(folder, exist_ok=True)
        ink = np.rint(255 - image * (255 / 16)).astype(np.uint8)
        picture = Image.fromarray(ink, mode="L").resize((args.size, args.size), Image.BICUBIC).convert("RGB")
        picture.save(os.path.join(folder, f"digit_{index:04d}.png"))
        counts[split] += 1
    print(f"wrote {counts['train']} train and {counts['val']} val images of {args.size}x{args.size} to {args.output}")


if __name__ == "__main__":
    main()
