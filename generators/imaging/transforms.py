"""Small seeded changes that turn an image into a test view of the same picture."""

from __future__ import annotations

import random
from typing import Any

from PIL import Image, ImageEnhance, ImageOps

MAX_ROTATION_DEGREES = 10.0
CROP_RANGE = (0.90, 0.97)
CONTRAST_RANGE = (0.8, 1.2)


def test_transform(
    image: Image.Image, rng: random.Random, allow_flip: bool
) -> tuple[Image.Image, dict[str, Any]]:
    """Rotate, crop, change contrast and maybe mirror `image`, driven only by `rng`.

    The steps run in this order. The image turns by up to 10 degrees either way
    about its center, with black corners. A crop keeps 90-97% of each side at a
    random offset. Pillow's ImageEnhance.Contrast applies a factor of 0.8-1.2.
    When `allow_flip` is True, a horizontal flip follows with probability 1/2.
    Flips swap left and right, so callers pass False when laterality matters.
    Every call draws six numbers from `rng`, whatever `allow_flip` is, so later
    draws do not depend on it. The returned dict
    `{rotation, crop, contrast, flipped}` gives the exact values applied, already
    rounded to 0.1 degree, 0.001 and 0.01.
    """
    rotation = round(rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES), 1)
    crop = round(rng.uniform(*CROP_RANGE), 3)
    offset_x = rng.random()
    offset_y = rng.random()
    contrast = round(rng.uniform(*CONTRAST_RANGE), 2)
    flip_draw = rng.random()
    flipped = allow_flip and flip_draw < 0.5

    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    fill = 0 if image.mode == "L" else (0, 0, 0)
    result = image.rotate(rotation, resample=Image.Resampling.BICUBIC, fillcolor=fill)

    width, height = result.size
    crop_width = max(1, round(width * crop))
    crop_height = max(1, round(height * crop))
    left = round((width - crop_width) * offset_x)
    top = round((height - crop_height) * offset_y)
    result = result.crop((left, top, left + crop_width, top + crop_height))

    result = ImageEnhance.Contrast(result).enhance(contrast)
    if flipped:
        result = ImageOps.mirror(result)

    description = {"rotation": rotation, "crop": crop, "contrast": contrast, "flipped": flipped}
    return result, description


# The name starts with "test_", so pytest would collect it from any test module
# that imports it by name.
test_transform.__test__ = False  # type: ignore[attr-defined]
