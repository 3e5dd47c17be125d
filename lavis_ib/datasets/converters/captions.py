"""Captioning datasets: COCO Caption, Web CapFilt (14M), TextCaps, NoCaps and Flickr30K.

Originals read (exact names) and the record mapping:
* COCO Caption: Karpathy `dataset_coco.json` (`images[{filepath, filename, split, cocoid, sentences[{raw}]}]`);
  train = Karpathy train + restval, one record per caption; val/test one record per image with `captions`.
  LAVIS `coco_karpathy_{train,val,test}.json` when the original is absent.
* Flickr30K: Karpathy `dataset_flickr30k.json` (`images[{filename, imgid, split, sentences[{raw}]}]`); same
  mapping, image `flickr30k-images/<filename>`, image_id the number in the file name. LAVIS `flickr30k_<split>.json`.
* Web CapFilt: BLIP's `ccs_synthetic_filtered_large.json` (`[{url, caption}]`), one record per pair; the image path
  is img2dataset's default `files` layout for row i (see `capfilt_image`), the url kept in `meta`. LAVIS
  `annotation.json` (`[{image, caption}]`) when the original is absent.
* TextCaps: `TextCaps_0.1_{train,val,test}.json` (`{"data": [{image_id, caption_str, reference_strs, ...}]}`) with
  OCR tokens from Rosetta `TextVQA_Rosetta_OCR_v0.2_{train,val,test}.json`; train one record per caption, val one
  per image with `captions` = reference_strs, test one per image without captions.
* NoCaps: `nocaps_val_4500_captions.json` (COCO format), one record per image with its 10 `captions`, `meta.domain`;
  test `nocaps_test_image_info.json` (images only). LAVIS `nocaps_{val,test}.json` (`[{image, img_id}]`).

Every caption record has `text_input` "" (captions are un-templated); `text_output` is the caption (per-caption
records) or the first reference (per-image records), "" where a split has no captions.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator

from lavis_ib.datasets.converters.base import (
    Skip,
    SourceError,
    field,
    find_source,
    has_source,
    lavis_copy,
    load_json,
    read_rosetta_ocr,
    register_converter,
    section,
    text,
)

CAPFILT_PER_SHARD = 10_000  # img2dataset's default number_sample_per_shard
CAPFILT_SHARD_DIGITS = 5  # img2dataset's default oom_shard_count
ROSETTA = "TextVQA_Rosetta_OCR_v0.2_{}.json"
# TextCaps train/val images are TextVQA train_images (Rosetta train + val files); test images are test_images.
ROSETTA_SPLITS = {"train": ("train", "val"), "val": ("train", "val"), "test": ("test",)}
TEXTCAPS_FOLDER = {"train": "train_images", "val": "train_images", "test": "test_images"}

RecordStream = Iterator["dict | Skip"]


def numeric_id(name: str) -> int | str:
    """The trailing number of a file name or id (`COCO_val2014_000000522418.jpg`, `coco_522418` → 522418)."""
    match = re.search(r"(\d+)$", Path(str(name)).stem)
    return int(match.group(1)) if match else str(name)


def clean(caption: Any, where: str) -> str:
    """A caption string with surrounding whitespace removed (Karpathy `raw` strings can end in spaces)."""
    if not isinstance(caption, str):
        raise SourceError(f"{where}: expected a caption string, got {type(caption).__name__} {caption!r:.80}")
    return caption.strip()


def caption_records(base: dict, captions: list[str], per_caption: bool) -> RecordStream:
    """One record per caption (training), or one per image with all non-empty `captions` (evaluation)."""
    if per_caption:
        for caption in captions:
            yield {**base, "text_input": "", "text_output": caption} if caption else Skip("empty caption")
        return
    kept = [c for c in captions if c]
    if kept:
        yield {**base, "text_input": "", "text_output": kept[0], "captions": kept}
    else:
        yield Skip("image without captions")


def read_karpathy(
    path: Path, splits: tuple[str, ...], per_caption: bool, image: Callable[[dict, str], str],
    image_id: Callable[[dict, str], int | str],
) -> RecordStream:
    """Records of the Karpathy-split images in `splits` (`meta.split` keeps the Karpathy split of origin)."""
    for n, entry in enumerate(section(load_json(path), "images", path)):
        where = f"{path}: images[{n}]"
        split = field(entry, "split", where)
        if split not in splits:
            continue
        sentences = field(entry, "sentences", where)
        captions = [clean(field(s, "raw", f"{where}.sentences[{k}]"), where) for k, s in enumerate(sentences)]
        base = {"image": image(entry, where), "image_id": image_id(entry, where)}
        if len(splits) > 1:
            base["meta"] = {"split": split}
        yield from caption_records(base, captions, per_caption)


def read_lavis_captions(path: Path) -> RecordStream:
    """LAVIS caption JSON: `[{image, caption: str}]` (one record per caption) or `caption: [str]` (per image)."""
    entries = load_json(path)
    if not isinstance(entries, list):
        raise SourceError(f"{path}: expected a JSON list of {{image, caption}} entries, got {type(entries).__name__}")
    for n, entry in enumerate(entries):
        where = f"{path}: [{n}]"
        image = field(entry, "image", where)
        caption = field(entry, "caption", where)
        base = {"image": image, "image_id": numeric_id(entry.get("image_id") or image)}
        if isinstance(caption, list):
            yield from caption_records(base, [clean(c, where) for c in caption], per_caption=False)
        else:
            yield from caption_records(base, [clean(caption, where)], per_caption=True)


# ---------------------------------------------------------------------------------------------------- COCO, Flickr


KARPATHY_SPLITS = {"train": ("train", "restval"), "val": ("val",), "test": ("test",)}


@register_converter("coco_caption", ("train", "val", "test"),
                    "Karpathy dataset_coco.json (or LAVIS coco_karpathy_<split>.json)")
def convert_coco_caption(src: Path, split: str) -> RecordStream:
    lavis = f"coco_karpathy_{split}.json"
    if copy := lavis_copy(src, lavis, "dataset_coco.json"):
        return read_lavis_captions(copy)
    return read_karpathy(
        find_source(src, "dataset_coco.json", lavis), KARPATHY_SPLITS[split], per_caption=split == "train",
        image=lambda e, w: f"{field(e, 'filepath', w)}/{field(e, 'filename', w)}",
        image_id=lambda e, w: field(e, "cocoid", w),
    )


@register_converter("flickr30k", ("test", "val", "train"),
                    "Karpathy dataset_flickr30k.json (or LAVIS flickr30k_<split>.json)")
def convert_flickr30k(src: Path, split: str) -> RecordStream:
    lavis = f"flickr30k_{split}.json"
    if copy := lavis_copy(src, lavis, "dataset_flickr30k.json"):
        return read_lavis_captions(copy)
    return read_karpathy(
        find_source(src, "dataset_flickr30k.json", lavis), (split,), per_caption=split == "train",
        image=lambda e, w: f"flickr30k-images/{field(e, 'filename', w)}",
        image_id=lambda e, w: numeric_id(field(e, "filename", w)),
    )


# ---------------------------------------------------------------------------------------------------- Web CapFilt


def capfilt_image(row: int) -> str:
    """img2dataset's `files` output path of input row `row` with default settings: `00012/000120034.jpg`."""
    shard, index = divmod(row, CAPFILT_PER_SHARD)
    return f"{shard:0{CAPFILT_SHARD_DIGITS}d}/{shard:0{CAPFILT_SHARD_DIGITS}d}{index:04d}.jpg"


def _capfilt_original(path: Path) -> RecordStream:
    entries = load_json(path)
    if not isinstance(entries, list):
        raise SourceError(f"{path}: expected a JSON list of {{url, caption}} entries, got {type(entries).__name__}")
    for row, entry in enumerate(entries):  # the row number fixes the image path, skipped rows included
        where = f"{path}: [{row}]"
        url, caption = field(entry, "url", where), clean(text(entry, "caption", where), where)
        if not url:
            yield Skip("entry without url")
        elif not caption:
            yield Skip("empty caption")
        else:
            yield {"image": capfilt_image(row), "text_input": "", "text_output": caption, "meta": {"url": url}}


@register_converter("capfilt14m", ("train",),
                    "BLIP ccs_synthetic_filtered_large.json + img2dataset images (or LAVIS annotation.json)")
def convert_capfilt14m(src: Path, split: str) -> RecordStream:
    original = "ccs_synthetic_filtered_large.json"
    if copy := lavis_copy(src, "annotation.json", original):
        return read_lavis_captions(copy)
    return _capfilt_original(find_source(src, original, "annotation.json"))


# ---------------------------------------------------------------------------------------------------- TextCaps


def rosetta_tokens(src: Path, split: str) -> dict[str, list[str]]:
    """image_id → Rosetta OCR tokens, from the Rosetta files of the TextVQA splits holding `split`'s images."""
    tokens: dict[str, list[str]] = {}
    for rosetta_split in ROSETTA_SPLITS[split]:
        name = ROSETTA.format(rosetta_split)
        if not has_source(src, name):
            continue
        tokens.update(read_rosetta_ocr(src / name))
    return tokens


@register_converter("textcaps", ("train", "val", "test"),
                    "TextCaps_0.1_<split>.json + TextVQA_Rosetta_OCR_v0.2_<split>.json (OCR, when present)")
def convert_textcaps(src: Path, split: str) -> RecordStream:
    path = find_source(src, f"TextCaps_0.1_{split}.json")
    entries = section(load_json(path), "data", path)
    ocr = rosetta_tokens(src, split)
    seen: set[str] = set()
    for n, entry in enumerate(entries):
        where = f"{path}: data[{n}]"
        image_id = field(entry, "image_id", where)
        base = {"image": f"{TEXTCAPS_FOLDER[split]}/{image_id}.jpg", "image_id": image_id,
                "ocr_tokens": ocr.get(image_id, [])}
        if split == "train":
            caption = entry.get("caption_str")
            if caption is None:
                yield Skip("entry without caption")
            else:
                yield from caption_records(base, [clean(caption, where)], per_caption=True)
            continue
        if image_id in seen:  # val/test list one entry per caption; keep one record per image
            continue
        seen.add(image_id)
        if split == "test":
            yield {**base, "text_input": "", "text_output": ""}
        else:
            references = [clean(r, where) for r in field(entry, "reference_strs", where)]
            yield from caption_records(base, references, per_caption=False)


# ---------------------------------------------------------------------------------------------------- NoCaps


NOCAPS_FILES = {"val": "nocaps_val_4500_captions.json", "test": "nocaps_test_image_info.json"}


def _nocaps_original(path: Path, split: str) -> RecordStream:
    document = load_json(path)
    captions: dict[int, list[str]] = defaultdict(list)
    if split == "val":
        for n, annotation in enumerate(section(document, "annotations", path)):
            where = f"{path}: annotations[{n}]"
            captions[field(annotation, "image_id", where)].append(clean(text(annotation, "caption", where), where))
    for n, image in enumerate(section(document, "images", path)):
        where = f"{path}: images[{n}]"
        meta = {key: image[key] for key in ("domain", "open_images_id") if key in image}
        base = {"image": f"{split}/{field(image, 'file_name', where)}", "image_id": field(image, "id", where)}
        if meta:
            base["meta"] = meta
        if split == "test":
            yield {**base, "text_input": "", "text_output": ""}
        else:
            yield from caption_records(base, captions.get(base["image_id"], []), per_caption=False)


def _nocaps_lavis(path: Path) -> RecordStream:
    for n, entry in enumerate(load_json(path)):
        where = f"{path}: [{n}]"
        yield {"image": field(entry, "image", where), "text_input": "", "text_output": "",
               "image_id": field(entry, "img_id", where)}


@register_converter("nocaps", ("val", "test"),
                    "nocaps_val_4500_captions.json / nocaps_test_image_info.json (or LAVIS nocaps_<split>.json)")
def convert_nocaps(src: Path, split: str) -> RecordStream:
    lavis = f"nocaps_{split}.json"
    if copy := lavis_copy(src, lavis, NOCAPS_FILES[split]):
        return _nocaps_lavis(copy)
    return _nocaps_original(find_source(src, NOCAPS_FILES[split], lavis), split)
