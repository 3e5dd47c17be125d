"""A deterministic synthetic world of coloured shapes, rendered words and moving-shape videos, with its tasks.

`generate_world(root)` draws the media and writes `world.json`, the world's "original annotation file"; the
`synthetic_*` converters below turn it into records exactly as real datasets are converted, and `build_world()` does
both and converts every task into the cache, ready for `load_dataset`. Tasks mirror the paper's split: held-in
captioning, VQA, question generation and OCR-VQA (train/val scenes); held-out counting (a held-in category),
true/false spatial statements and multiple choice (visual reasoning) and video QA (test scenes only).
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lavis_ib.common.paths import cache_root
from lavis_ib.common.registry import registry
from lavis_ib.datasets.converters.base import Artifact, Skip, find_source, load_json, register_converter
from lavis_ib.datasets.converters.vqa import as_question_generation

SIDE = 64
COLOURS = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220),
    "yellow": (230, 200, 40), "purple": (140, 60, 180), "orange": (240, 140, 30),
}
SHAPES = ("circle", "square", "triangle")
WORDS = ("STOP", "OPEN", "EXIT", "SALE", "CAFE", "TAXI", "BANK", "HOTEL")
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
COLUMNS = (12, 32, 52)  # x centres: objects never share a column, so left/right statements are unambiguous
RADIUS = 8
SPLIT_SHARES = (("train", 0.7), ("val", 0.1), ("test", 0.2))
HELD_IN = ("synthetic_caption", "synthetic_vqa", "synthetic_vqg", "synthetic_ocrvqa")
HELD_OUT = ("synthetic_count", "synthetic_spatial", "synthetic_choice", "synthetic_video_qa")
WORLD_FILE = "world.json"


@dataclass
class Thing:
    shape: str
    colour: str
    x: int
    y: int


@dataclass
class Scene:
    id: int
    file: str
    split: str
    things: list[Thing]
    word: str | None = None


@dataclass
class Clip:
    id: int
    file: str
    shape: str
    colour: str
    direction: str
    frames: int = 8


def _split_of(fraction: float) -> str:
    total = 0.0
    for split, share in SPLIT_SHARES:
        total += share
        if fraction < total:
            return split
    return SPLIT_SHARES[-1][0]


def _draw_thing(draw: ImageDraw.ImageDraw, thing: Thing) -> None:
    colour, x, y, r = COLOURS[thing.colour], thing.x, thing.y, RADIUS
    if thing.shape == "circle":
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    elif thing.shape == "square":
        draw.rectangle((x - r, y - r, x + r, y + r), fill=colour)
    else:
        draw.polygon(((x, y - r), (x + r, y + r), (x - r, y + r)), fill=colour)


def render_scene(scene: Scene, font: ImageFont.ImageFont) -> Image.Image:
    """The scene's image: shapes on a light background, the word (if any) along the bottom."""
    image = Image.new("RGB", (SIDE, SIDE), (235, 235, 228))
    draw = ImageDraw.Draw(image)
    for thing in scene.things:
        _draw_thing(draw, thing)
    if scene.word:
        draw.text((SIDE // 2, SIDE - 8), scene.word, fill=(10, 10, 10), font=font, anchor="mm")
    return image


def clip_thing(clip: Clip, t: int) -> Thing:
    """The clip's shape where frame `t` draws it: 5 pixels a frame along its direction, centred on the frame."""
    dx, dy = DIRECTIONS[clip.direction]
    step = (t - (clip.frames - 1) / 2) * 5
    return Thing(clip.shape, clip.colour, int(SIDE / 2 + dx * step), int(SIDE / 2 + dy * step))


def render_clip(clip: Clip) -> np.ndarray:
    """Frames `[T, 64, 64, 3]` of one shape moving across the frame in the clip's direction."""
    frames = []
    for t in range(clip.frames):
        image = Image.new("RGB", (SIDE, SIDE), (235, 235, 228))
        _draw_thing(ImageDraw.Draw(image), clip_thing(clip, t))
        frames.append(np.asarray(image))
    return np.stack(frames)


def random_scene(rng: random.Random, index: int, n_images: int) -> Scene:
    """Scene `index` of a world of `n_images`, drawn from `rng` (its split follows `index / n_images`); also the
    scene distribution of the tiny LM's text pre-training (`tools/make_tiny_lm.py`)."""
    count = rng.choice((1, 2, 2, 3, 3))
    columns = sorted(rng.sample(COLUMNS, count))
    shapes, colours = rng.sample(SHAPES, count), rng.sample(list(COLOURS), count)
    things = [Thing(s, c, x, rng.randint(12, 40)) for s, c, x in zip(shapes, colours, columns)]
    word = rng.choice(WORDS) if rng.random() < 0.5 else None
    return Scene(index, f"images/{index:06d}.png", _split_of(index / n_images), things, word)


def random_clip(rng: random.Random, index: int) -> Clip:
    """Clip `index`, drawn from `rng`; also the clip distribution of the tiny LM's text pre-training."""
    return Clip(index, f"videos/{index:06d}.mp4", rng.choice(SHAPES), rng.choice(list(COLOURS)),
                rng.choice(list(DIRECTIONS)))


def generate_world(root: str | Path, n_images: int = 600, n_videos: int = 48, seed: int = 0) -> Path:
    """Draw the world's images and videos under `root` and write `root/world.json`; returns its path."""
    from lavis_ib.common.media import encode_video  # torch-backed; the converters registered here must not need it

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    font = ImageFont.load_default(size=12)
    scenes = [random_scene(rng, i, n_images) for i in range(n_images)]
    for scene in scenes:
        render_scene(scene, font).save(root / scene.file)
    clips = [random_clip(rng, i) for i in range(n_videos)]
    for clip in clips:
        encode_video(root / clip.file, render_clip(clip), fps=4)
    world = {"seed": seed, "images": [asdict(s) for s in scenes], "videos": [asdict(c) for c in clips]}
    path = root / WORLD_FILE
    path.write_text(json.dumps(world))
    return path


def _scenes(src: Path, split: str) -> Iterator[Scene]:
    world = load_json(find_source(src, WORLD_FILE))
    for entry in world["images"]:
        scene = Scene(**{**entry, "things": [Thing(**t) for t in entry["things"]]})
        if scene.split == split:
            yield scene


def _describe(thing: Thing) -> str:
    return f"{thing.colour} {thing.shape}"


def where(thing: Thing) -> str:
    """`at the top left`, `at the bottom`, ...: the sixth of the image a thing's centre lies in (three columns, the
    middle one unnamed, and two halves, split where the tiny ViT's patch rows meet), as a caption says where things
    are."""
    row = "top" if thing.y < SIDE / 2 else "bottom"
    column = "left" if thing.x < SIDE / 3 else "right" if thing.x >= 2 * SIDE / 3 else None
    return f"at the {row} {column}" if column else f"at the {row}"


def caption(scene: Scene) -> str:
    """`a red circle at the top left, an orange square at the bottom and a green triangle at the top right with the
    word "STOP".`: the things from left to right, each with where it is."""
    names = [f"{'an' if t.colour[0] in 'aeiou' else 'a'} {_describe(t)} {where(t)}" for t in scene.things]
    text = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return text + (f' with the word "{scene.word}".' if scene.word else ".")


def _base(scene: Scene) -> dict:
    return {"image": scene.file, "image_id": scene.id}


@register_converter("synthetic_caption", ("train", "val"), WORLD_FILE)
def convert_caption(src: Path, split: str):
    for scene in _scenes(src, split):
        text = caption(scene)
        yield {**_base(scene), "text_input": "", "text_output": text, "captions": [text]}


@register_converter("synthetic_vqa", ("train", "val"), WORLD_FILE)
def convert_vqa(src: Path, split: str) -> Iterator[dict]:
    for scene in _scenes(src, split):
        thing = scene.things[scene.id % len(scene.things)]
        if scene.id % 2:
            kind, question, answer = "colour", f"What colour is the {thing.shape}?", thing.colour
        else:
            kind, question, answer = "shape", f"What shape is {thing.colour}?", thing.shape
        yield {**_base(scene), "text_input": question, "text_output": answer, "answers": [answer],
               "question_id": scene.id, "meta": {"question_type": kind}}


@register_converter("synthetic_vqg", ("train", "val"), WORLD_FILE)
def convert_vqg(src: Path, split: str):
    return as_question_generation(convert_vqa(src, split))


@register_converter("synthetic_ocrvqa", ("train", "val"), WORLD_FILE)
def convert_ocrvqa(src: Path, split: str):
    for scene in _scenes(src, split):
        if scene.word:
            answer = scene.word.lower()
            yield {**_base(scene), "text_input": "What word is written in the image?", "text_output": answer,
                   "answers": [answer], "ocr_tokens": [scene.word], "question_id": scene.id}


@register_converter("synthetic_count", ("test",), WORLD_FILE)
def convert_count(src: Path, split: str):
    for scene in _scenes(src, split):
        answer = str(len(scene.things))
        yield {**_base(scene), "text_input": "How many shapes are there?", "text_output": answer, "answers": [answer],
               "question_id": scene.id}


@register_converter("synthetic_spatial", ("test",), WORLD_FILE)
def convert_spatial(src: Path, split: str):
    for scene in _scenes(src, split):
        if len(scene.things) < 2:
            yield Skip("fewer than two shapes")
            continue
        left, right = scene.things[0], scene.things[-1]
        truth = scene.id % 2 == 0
        relation = "left" if truth else "right"
        statement = f"The {_describe(left)} is to the {relation} of the {_describe(right)}."
        yield {**_base(scene), "text_input": statement, "text_output": "true" if truth else "false",
               "label": int(truth), "choices": ["false", "true"], "question_id": scene.id}


@register_converter("synthetic_choice", ("test",), WORLD_FILE)
def convert_choice(src: Path, split: str):
    for scene in _scenes(src, split):
        thing = scene.things[0]
        choices = list(SHAPES)
        random.Random(scene.id).shuffle(choices)
        yield {**_base(scene), "text_input": f"Which shape is {thing.colour}?", "choices": choices,
               "label": choices.index(thing.shape), "text_output": thing.shape, "question_id": scene.id}


@register_converter("synthetic_video_qa", ("test",), WORLD_FILE)
def convert_video_qa(src: Path, split: str):
    world = load_json(find_source(src, WORLD_FILE))
    yield Artifact("answer_list.json", list(DIRECTIONS))
    for entry in world["videos"]:
        clip = Clip(**entry)
        yield {"image": clip.file, "text_input": f"Which direction does the {clip.colour} {clip.shape} move?",
               "text_output": clip.direction, "answers": [clip.direction], "question_id": clip.id}


def build_world(root: str | Path | None = None, seed: int = 0, n_images: int = 600, n_videos: int = 48) -> dict:
    """Generate the world under `<root>/synthetic` (default root: the cache) and convert every task; returns reports.

    The default configs read from the cache root, so `load_dataset("synthetic_vqa")` works after `build_world()`;
    with another `root`, point `LAVIS_IB_CACHE` at it.
    """
    from lavis_ib.datasets.convert import convert

    root = Path(root) if root is not None else cache_root()
    source = root / "synthetic"
    generate_world(source, n_images, n_videos, seed)
    reports = {}
    for name in HELD_IN + HELD_OUT:
        splits = registry.get_converter_class(name).splits
        reports[name] = convert(name, source, root / "datasets" / name, splits, overwrite=True)
    return reports


def main(argv: list[str] | None = None) -> None:
    """`python -m lavis_ib.datasets.synthetic [--root DIR]`: build the world where the synthetic configs read it."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__.split(": ", 1)[1])
    parser.add_argument("--root", help="data root (default: $LAVIS_IB_CACHE, else ~/.cache/lavis_ib)")
    parser.add_argument("--images", type=int, default=600, help="scenes in the world (the training demo uses 5000)")
    args = parser.parse_args(argv)
    reports = build_world(args.root, n_images=args.images)
    total = sum(report.written for split_reports in reports.values() for report in split_reports)
    print(f"synthetic world: {total:,} records of {len(reports)} datasets under {args.root or cache_root()}")

