"""Write a synthetic dataset in Carvana's Kaggle layout, for offline demos and fast tests.

Each car is a body, a cabin and two wheels in a colour of its own, drawn in 16 views that
shift, stretch and mirror it over a noisy floor-and-wall background; the mask is the union of
the shapes. Images are JPEG and masks single-frame palette GIFs with values {0, 1}, as Kaggle
ships them::

    python -m data.synthetic_carvana ./Dataset/SyntheticCarvana --cars 12

:func:`write_seg_folder` writes pairs in Kaggle's layout (these, or the real ones) out in the
``images/`` + ``masks/`` layout of ``--data_type SegFolder``, binary or with two classes.
"""

import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from data.carvana import IMAGE_DIR, MASK_DIR, MASK_SUFFIX, find_pairs
from utils.cli import ArgumentParser, positive_int, run_main
from utils.errors import UsageError

VIEWS = 16


def draw_view(
    size: tuple[int, int], colour: tuple[int, int, int], rng: random.Random
) -> tuple[Image.Image, Image.Image]:
    """One RGB image of a car and its {0,1} palette mask."""
    width, height = size
    floor = int(height * rng.uniform(0.6, 0.75))
    pixels = np.empty((height, width, 3), dtype=np.float32)
    pixels[:floor] = rng.uniform(150, 220)
    pixels[floor:] = rng.uniform(60, 120)
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0, 12, pixels.shape)
    image = Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))

    length = width * rng.uniform(0.5, 0.75)
    body_h = height * rng.uniform(0.16, 0.24)
    left = rng.uniform(0.05, 0.95) * (width - length)
    bottom = floor + height * rng.uniform(-0.05, 0.05)
    body = (left, bottom - body_h, left + length, bottom)
    cabin_left = left + length * rng.uniform(0.2, 0.35)
    cabin_right = left + length * rng.uniform(0.6, 0.75)
    cabin_top = body[1] - body_h * rng.uniform(0.6, 0.9)
    cabin = [
        (cabin_left, body[1]),
        (cabin_left + length * 0.08, cabin_top),
        (cabin_right - length * 0.05, cabin_top),
        (cabin_right + length * 0.05, body[1]),
    ]
    radius = body_h * 0.45
    wheels = [(left + length * f, bottom) for f in (0.2, 0.8)]

    mask = Image.new("P", size, 0)
    mask.putpalette([0, 0, 0, 255, 255, 255])
    for canvas, fill, wheel_fill in (
        (ImageDraw.Draw(image), colour, (20, 20, 20)),
        (ImageDraw.Draw(mask), 1, 1),
    ):
        canvas.rounded_rectangle(body, radius=body_h * 0.3, fill=fill)
        canvas.polygon(cabin, fill=fill)
        for x, y in wheels:
            canvas.ellipse((x - radius, y - radius, x + radius, y + radius), fill=wheel_fill)
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        mask = mask.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image, mask


def write_synthetic_carvana(
    root: str | Path, cars: int = 12, size: tuple[int, int] = (256, 170), seed: int = 0
) -> list[str]:
    """Write ``cars`` x 16 image/mask pairs under ``root``; return their ids."""
    root = Path(root)
    (root / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    (root / MASK_DIR).mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    ids = []
    for _ in range(cars):
        car = f"{rng.getrandbits(48):012x}"
        colour = (rng.randrange(30, 256), rng.randrange(30, 256), rng.randrange(30, 256))
        for view in range(1, VIEWS + 1):
            image, mask = draw_view(size, colour, rng)
            name = f"{car}_{view:02d}"
            image.save(root / IMAGE_DIR / f"{name}.jpg", quality=90)
            mask.save(root / MASK_DIR / f"{name}{MASK_SUFFIX}")
            ids.append(name)
    return ids


def write_seg_folder(carvana: Path, out: Path, halves: bool = False) -> int:
    """Write the pairs of ``carvana`` (Kaggle's layout) as ``out/images/<id>.png`` and
    ``out/masks/<id>_mask.png``, pixel for pixel; return how many.

    Masks are 0/255 PNGs; with ``halves`` they are index PNGs of three classes instead: the
    background 0, the car's upper half 1 (roof and windows) and its lower half 2 (doors and
    wheels), cut at the middle row of the car. Classes told apart by what they look like, which
    flips and small rotations keep, unlike a left and a right half.
    """
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    pairs = find_pairs(carvana)
    for pair in pairs:
        Image.open(pair.image).convert("RGB").save(out / "images" / f"{pair.id}.png")
        car = np.array(Image.open(pair.mask)) > 0
        if halves:
            labels = car.astype(np.uint8)
            rows = np.flatnonzero(car.any(axis=1))
            if len(rows):
                labels[(rows[0] + rows[-1] + 1) // 2 :] *= 2
        else:
            labels = car.astype(np.uint8) * 255
        Image.fromarray(labels).save(out / "masks" / f"{pair.id}_mask.png")
    return len(pairs)


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(description="Write a synthetic Carvana-style dataset.")
    parser.add_argument("root", help="new or empty output folder (gets train/ and train_masks/)")
    parser.add_argument("--cars", type=positive_int, default=12, help="cars, 16 views each")
    parser.add_argument("--width", type=positive_int, default=256, help="image width in pixels")
    parser.add_argument("--height", type=positive_int, default=170, help="image height in pixels")
    parser.add_argument("--seed", type=int, default=0, help="seed of shapes, colours and noise")
    args = parser.parse_args(argv)
    root = Path(args.root)
    if any((root / IMAGE_DIR).glob("*.jpg")):
        raise UsageError(
            f"{root}: already holds images in {IMAGE_DIR}/; expected a new or empty folder, so "
            "that no dataset is mixed with synthetic cars"
        )
    try:
        ids = write_synthetic_carvana(root, args.cars, (args.width, args.height), args.seed)
    except OSError as err:
        raise UsageError(
            f"{root}: cannot write there ({err.strerror}: {err.filename}); expected a writable "
            "directory"
        ) from None
    print(f"wrote {len(ids)} pairs of {args.cars} cars to {root}")


if __name__ == "__main__":
    run_main(main)
