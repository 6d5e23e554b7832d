"""Images per second of the image-folder reader (gccluster.data.folder.read_image_folder):
28 x 28 greyscale PNGs read at 28 (no resize), and 256 x 256 RGB JPEGs resized to 32, on one
thread and on the default thread pool. Scan, decode, convert, resize and stack included;
the files are written first (not timed) into a temporary folder, and the OS file cache is
warm (the second of two passes is timed).

    python benchmarks/folder_reader_speed.py [--n 2000] [--out benchmarks/folder_reader_speed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from gccluster.data.folder import read_image_folder
from gccluster.machine import cpu_name


def write_pngs(folder: Path, n: int, rng: np.random.Generator) -> None:
    for i in range(n):
        # Smooth images (as garments or digits), so PNG compresses them as it would real ones.
        base = rng.integers(0, 256, (7, 7), dtype=np.uint8)
        image = Image.fromarray(base).resize((28, 28), Image.BILINEAR)
        path = folder / f"c{i % 10}" / f"{i:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)


def write_jpegs(folder: Path, n: int, rng: np.random.Generator) -> None:
    for i in range(n):
        base = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((256, 256), Image.BICUBIC)
        path = folder / f"c{i % 10}" / f"{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, quality=90)


def images_per_second(folder: Path, size: int, channels: int, workers: int) -> float:
    read_image_folder(folder, size, channels, 89_478_485, "auto", workers=workers)  # warm the file cache
    start = time.perf_counter()
    out = read_image_folder(folder, size, channels, 89_478_485, "auto", workers=workers)
    elapsed = time.perf_counter() - start
    return len(out.files) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="images of each kind")
    parser.add_argument("--out", type=Path, default=None, help="also write the numbers as JSON")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    pool = min(8, os.cpu_count() or 1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        pngs, jpegs = Path(tmp) / "png28", Path(tmp) / "jpeg256"
        write_pngs(pngs, args.n, rng)
        write_jpegs(jpegs, args.n, rng)
        for name, folder, size, channels in (("28x28 grey PNG -> 28", pngs, 28, 1),
                                             ("256x256 RGB JPEG -> 32", jpegs, 32, 3)):
            for workers in (1, pool):
                rows.append({"files": name, "threads": workers, "n": args.n,
                             "images_per_s": round(images_per_second(folder, size, channels, workers), 1)})
    machine = {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
               "pillow": Image.__version__}
    print(f"folder reader on {machine['cpu']} ({machine['cores']} cores), Pillow {machine['pillow']}")
    print(f"{'files':<24} {'threads':>7} {'images/s':>10}")
    for row in rows:
        print(f"{row['files']:<24} {row['threads']:>7} {row['images_per_s']:>10.1f}")
    if args.out is not None:
        args.out.write_text(json.dumps({"machine": machine, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
