"""Draw the bundled demo image `lavis_ib/assets/images/demo.png` deterministically with PIL (256 x 192 RGB).

Scene (for demo prompts): a light cream background with a grey ground strip along the bottom. Upper left: a red
circle. Lower left, standing on the ground: a green triangle pointing up. Centre, standing on the ground: a blue
square. Right: a red octagonal stop sign with a white border and the white word "STOP", on a grey pole that
stands on the ground. Nothing else is in the picture (three shapes and one sign).

Run: `python tools/make_demo_image.py [output.png]`.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

SIZE = (256, 192)
OUTPUT = Path(__file__).resolve().parents[1] / "lavis_ib" / "assets" / "images" / "demo.png"

BACKGROUND = (245, 240, 225)
GROUND = (170, 170, 165)
RED = (210, 30, 35)
BLUE = (40, 70, 200)
GREEN = (40, 160, 60)
WHITE = (255, 255, 255)
POLE = (120, 120, 125)


def octagon(centre: tuple[float, float], radius: float) -> list[tuple[float, float]]:
    """The corners of a regular octagon with flat top and bottom edges."""
    cx, cy = centre
    return [(cx + radius * math.cos(math.radians(22.5 + 45 * k)), cy + radius * math.sin(math.radians(22.5 + 45 * k)))
            for k in range(8)]


def draw_stop_sign(draw: ImageDraw.ImageDraw, centre: tuple[float, float], radius: float) -> None:
    """A red octagon with a white rim and the centred word STOP, on a pole down to the ground."""
    cx, cy = centre
    draw.rectangle((cx - 4, cy + radius - 4, cx + 4, 176), fill=POLE)
    draw.polygon(octagon(centre, radius), fill=WHITE)
    draw.polygon(octagon(centre, radius - 4), fill=RED)
    font = ImageFont.load_default(size=17)
    draw.text(centre, "STOP", fill=WHITE, font=font, anchor="mm")


def make_demo_image() -> Image.Image:
    """The demo scene described in the module docstring."""
    image = Image.new("RGB", SIZE, BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 176, SIZE[0], SIZE[1]), fill=GROUND)
    draw.ellipse((20, 20, 76, 76), fill=RED)
    draw.polygon([(16, 176), (80, 176), (48, 116)], fill=GREEN)
    draw.rectangle((100, 120, 156, 176), fill=BLUE)
    draw_stop_sign(draw, (204, 62), 36)
    return image


def main(argv: list[str]) -> None:
    """Write the demo image to the path given, or to the bundled asset location."""
    output = Path(argv[1]) if len(argv) > 1 else OUTPUT
    output.parent.mkdir(parents=True, exist_ok=True)
    make_demo_image().save(output, format="PNG", optimize=True)
    print(f"wrote {output} ({output.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv)
