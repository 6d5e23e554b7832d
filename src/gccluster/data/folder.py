"""`data.dataset: image_folder`: a user's own folder of images, read into the uniform format.

What is read: every regular file under `data.local_dir` whose name ends in .png, .jpg,
.jpeg or .webp (any case), found by a recursive walk that follows symbolic links (a link to
a folder it is in is a loop: reported, not entered), in sorted order of the path relative
to the folder, so the same folder gives the same arrays on every machine.

Each image is decoded by Pillow, turned upright by its EXIF orientation, converted to
`data.channels` (1: Pillow's "L" luma, 3: "RGB"; transparent pixels are composited on
white, 16-bit greyscale is scaled to 8 bits) and brought to `data.image_size`: its centre
square is cropped, then resized with torchvision's antialiased bilinear resize (the
function the built-in datasets are resized with, so a square PNG read here equals the same
image read by a built-in reader). JPEGs much larger than the size are decoded at a reduced
scale first (`Image.draft`, JPEG's own DCT scaling, to no less than twice the size): faster,
and the same file always gives the same pixels, but not those of a full decode.

Labels: when every image sits below a first-level subfolder and there are at least two
of them, the subfolder names are the classes (torchvision's ImageFolder layout), read for
evaluation only; otherwise the folder is unlabelled (`data.folder_labels` forces either).

Files that cannot be used are skipped and listed by reason in the data stage's summary
and `meta.json` (`skipped`): unreadable (or not a regular file), not an image, corrupt or
truncated, larger than `data.max_image_pixels`, symbolic link loops, a second path to a
file already read. A folder with no usable image stops with one line.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gccluster.errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")

SKIP_REASONS = {
    "unreadable": "could not be opened",
    "not_an_image": "not an image Pillow can decode",
    "corrupt": "corrupt or truncated",
    "too_large": "more pixels than data.max_image_pixels",
    "symlink_loop": "a symbolic link back to a folder it is in (a loop)",
    "duplicate": "another path (through a symbolic link) to an image already read",
}


@dataclass
class FolderScan:
    """Image files under a folder (paths relative to it, sorted) and what the walk skipped."""

    root: Path
    files: list[str]
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, path: str) -> None:
        self.skipped.setdefault(reason, []).append(path)


def scan_image_folder(root: str | Path) -> FolderScan:
    """Every regular file with an image extension under `root`, recursively, following
    symbolic links. A folder whose real path is one of its own ancestors' is a loop: reported,
    not entered. A file reached by two paths (a link to a folder read elsewhere) is read once,
    under its path without links when it has one (its class subfolder is then the real one)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"data.local_dir = {str(root)!r}: folder does not exist")
    scan = FolderScan(root, [])
    real_root = os.path.realpath(root)

    def unreadable(err: OSError) -> None:
        scan.skip("unreadable", _relative(err.filename, root) + "/")

    found: dict[str, list[str]] = {}  # real path -> the paths it was reached by
    for folder, subfolders, names in os.walk(root, followlinks=True, onerror=unreadable):
        relative = _relative(folder, root)
        ancestors = [root / Path(*Path(relative).parts[:i]) for i in range(len(Path(relative).parts))]
        real = os.path.realpath(folder)
        if relative != "." and real in {os.path.realpath(a) for a in ancestors}:
            scan.skip("symlink_loop", relative + "/")
            subfolders[:] = []
            continue
        subfolders.sort()
        for name in sorted(names):
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            path = os.path.join(folder, name)
            try:
                regular = stat.S_ISREG(os.stat(path).st_mode)
            except OSError:  # a broken link
                regular = False
            if not regular:
                scan.skip("unreadable", _relative(path, root))
                continue
            found.setdefault(os.path.realpath(path), []).append(_relative(path, root))
    for real, paths in found.items():
        canonical = os.path.relpath(real, real_root).replace(os.sep, "/")
        keep = canonical if canonical in paths else min(paths)
        scan.files.append(keep)
        for other in sorted(set(paths) - {keep}):
            scan.skip("duplicate", other)
    scan.files.sort()
    for paths in scan.skipped.values():
        paths.sort()
    return scan


def _relative(path: str, root: Path) -> str:
    relative = Path(path).relative_to(root).as_posix()
    return "." if relative == "." else relative


class SkippedImage(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def decode_image(path: Path, size: int, channels: int, max_pixels: int) -> np.ndarray:
    """One file -> uint8 (size, size, channels), or `SkippedImage` saying why not."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Our own limit (max_pixels) decides; Pillow's bomb warning would only repeat it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise SkippedImage("too_large")
                if image.format == "JPEG":
                    image.draft("L" if channels == 1 else "RGB", (2 * size, 2 * size))
                image.load()
                array = _to_channels(ImageOps.exif_transpose(image), channels)
    except SkippedImage:
        raise
    except Image.DecompressionBombError:
        raise SkippedImage("too_large") from None
    except UnidentifiedImageError:
        raise SkippedImage("not_an_image") from None
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise SkippedImage("unreadable") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError):
        raise SkippedImage("corrupt") from None  # Pillow's decoders raise all of these on bad data
    return square_resize(array, size)


def _to_channels(image, channels: int) -> np.ndarray:
    if image.mode.startswith("I;16") or image.mode == "I":
        wide = np.asarray(image, dtype=np.int64)
        grey = (np.clip(wide, 0, 65535) >> 8).astype(np.uint8)
        array = grey[..., None] if channels == 1 else np.repeat(grey[..., None], 3, axis=2)
        return np.ascontiguousarray(array)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        from PIL import Image

        # Transparent pixels hold arbitrary colours: show them as white, as a viewer would.
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    converted = image.convert("L" if channels == 1 else "RGB")
    array = np.array(converted, dtype=np.uint8)  # a writable copy (torch warns on read-only arrays)
    return np.ascontiguousarray(array[..., None] if channels == 1 else array)


def square_resize(array: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W, C) -> (size, size, C): the centre square (side min(H, W)), then
    torchvision's antialiased bilinear resize to `size` (the resize of the built-in
    datasets). Cropping first keeps memory bounded for any aspect ratio. A size x size
    input is returned unchanged."""
    import torch
    from torchvision.transforms.v2 import functional as TF

    height, width = array.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    array = array[top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(array)
    tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
    tensor = TF.resize(tensor, [size, size], antialias=True)
    return tensor.permute(1, 2, 0).contiguous().numpy()


def folder_labels(files: list[str], mode: str) -> tuple[np.ndarray | None, list[str]]:
    """(labels, class names) from first-level subfolders, or (None, []) for an unlabelled
    folder. `mode`: auto (subfolders when every file has one and there are at least two),
    subfolders (required), none (never)."""
    if mode == "none":
        return None, []
    tops = [path.split("/", 1)[0] if "/" in path else None for path in files]
    at_root = [path for path, top in zip(files, tops) if top is None]
    names = sorted({top for top in tops if top is not None})
    if at_root or len(names) < 2:
        if mode == "subfolders":
            why = f"{at_root[0]!r} is not in a subfolder" if at_root else f"only {len(names)} subfolder(s)"
            raise UserError(
                f"data.folder_labels = subfolders needs one subfolder per class (at least two) holding every "
                f"image; {why} (allowed: move the images, or folder_labels: auto or none)"
            )
        return None, []
    index = {name: k for k, name in enumerate(names)}
    return np.array([index[top] for top in tops], dtype=np.int64), names


@dataclass(frozen=True)
class FolderImages:
    images: np.ndarray  # uint8 (N, size, size, channels), in `files` order
    files: list[str]
    labels: np.ndarray | None
    class_names: list[str]
    skipped: dict[str, list[str]]


def read_image_folder(root: str | Path, size: int, channels: int, max_pixels: int, labels_mode: str,
                      workers: int = 1) -> FolderImages:
    """Scan, decode and label a folder (see the module docstring). `workers` > 1 decodes on
    that many threads; on a 2-core AMD EPYC they did not pay (benchmarks/folder_reader_speed.py:
    28 px PNGs 8,786/s on one thread, 3,334/s on two; 256 px JPEGs to 32 px 1,849/s and
    2,079/s), so the data stage uses one."""
    scan = scan_image_folder(root)
    if not scan.files:
        raise UserError(
            f"data.local_dir = {str(root)!r}: no images (looked for {', '.join(IMAGE_EXTENSIONS)} files, "
            "recursively)"
        )
    decoded = _decode_all(scan.root, scan.files, size, channels, max_pixels, workers)
    kept, images = [], []
    for path, result in zip(scan.files, decoded):
        if isinstance(result, str):
            scan.skip(result, path)
        else:
            kept.append(path)
            images.append(result)
    if not kept:
        reasons = ", ".join(f"{len(v)} {SKIP_REASONS[k]}" for k, v in scan.skipped.items())
        raise UserError(f"data.local_dir = {str(root)!r}: none of its {len(scan.files)} image files is usable ({reasons})")
    labels, names = folder_labels(kept, labels_mode)
    return FolderImages(np.stack(images), kept, labels, names, scan.skipped)


def _decode_all(root: Path, files: list[str], size: int, channels: int, max_pixels: int,
                workers: int) -> Iterable[np.ndarray | str]:
    def one(path: str) -> np.ndarray | str:
        try:
            return decode_image(root / path, size, channels, max_pixels)
        except SkippedImage as skipped:
            return skipped.reason

    if workers <= 1:
        return [one(path) for path in files]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, files, chunksize=64))


def split_indices(n: int, labels: np.ndarray | None, test_fraction: float, seed: int,
                  protocol: str) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices into the sorted files, each in sorted order. `train+test`: every
    image in both. `train`: a random split of `test_fraction` with `seed`, stratified by
    class when the folder has labels (as the digits split)."""
    everything = np.arange(n)
    if protocol == "train+test":
        return everything, everything
    from sklearn.model_selection import train_test_split

    if labels is not None:
        counts = np.bincount(labels)
        if counts.min() < 2:
            raise UserError(
                f"data.protocol = train with data.test_fraction = {test_fraction}: class {int(counts.argmin())} "
                f"has {int(counts.min())} image(s); a stratified split needs at least 2 per class "
                "(allowed: add images, or data.protocol: train+test)"
            )
    try:
        train, test = train_test_split(everything, test_size=test_fraction, stratify=labels, random_state=seed)
    except ValueError as err:
        raise UserError(
            f"data.test_fraction = {test_fraction} cannot split {n} image(s) ({err}); allowed: more images, "
            "another test_fraction, or data.protocol: train+test"
        ) from None
    return np.sort(train), np.sort(test)


def skipped_summary(skipped: dict[str, list[str]], shown: int = 5) -> list[str]:
    """Lines for the data stage's summary: how many files were skipped, why, and which."""
    total = sum(len(files) for files in skipped.values())
    if not total:
        return []
    lines = [f"skipped {total} file(s) (listed in data/prepared/meta.json, 'skipped'):"]
    for reason, files in skipped.items():
        names = ", ".join(files[:shown]) + (f", ... ({len(files) - shown} more)" if len(files) > shown else "")
        lines.append(f"  {len(files)} {SKIP_REASONS[reason]}: {names}")
    return lines
