"""Captioning converters (COCO Caption, Web CapFilt, TextCaps, NoCaps, Flickr30K) from original-format fixtures."""

from __future__ import annotations

import pytest

from lavis_ib.datasets.converters.base import SourceError
from lavis_ib.datasets.converters.captions import capfilt_image
from lavis_ib.datasets.templates import CAPTION, render
from tests.datasets.converters.helpers import Fixture, load_converted, run, write_json

# ------------------------------------------------------------------------------------------------------- fixtures


def sentences(*raws):
    return [{"raw": raw, "tokens": raw.lower().split(), "imgid": 0, "sentid": i} for i, raw in enumerate(raws)]


def write_karpathy_coco(src):
    """Train, restval (merged into train), val with a caption padded by spaces, test, and a train image with none."""
    return write_json(src / "dataset_coco.json", {"dataset": "coco", "images": [
        {"filepath": "train2014", "filename": "COCO_train2014_000000000009.jpg", "split": "train", "cocoid": 9,
         "imgid": 0, "sentences": sentences("A dog.", "Two dogs play.")},
        {"filepath": "val2014", "filename": "COCO_val2014_000000000042.jpg", "split": "restval", "cocoid": 42,
         "imgid": 1, "sentences": sentences("A bus on a road.")},
        {"filepath": "val2014", "filename": "COCO_val2014_000000000073.jpg", "split": "val", "cocoid": 73,
         "imgid": 2, "sentences": sentences("A cat on a mat.  ", "A sleeping cat.")},
        {"filepath": "val2014", "filename": "COCO_val2014_000000000074.jpg", "split": "test", "cocoid": 74,
         "imgid": 3, "sentences": sentences("A red car.", "", "A parked car.")},
        {"filepath": "train2014", "filename": "COCO_train2014_000000000010.jpg", "split": "train", "cocoid": 10,
         "imgid": 4, "sentences": sentences("   ")},
    ]})


def write_karpathy_flickr(src):
    return write_json(src / "dataset_flickr30k.json", {"dataset": "flickr30k", "images": [
        {"filename": "1000092795.jpg", "imgid": 0, "split": "train", "sentences": sentences("Two men.")},
        {"filename": "1007129816.jpg", "imgid": 1, "split": "test",
         "sentences": sentences(*(f"A man with a hat {i}." for i in range(5)))},
        {"filename": "1009434119.jpg", "imgid": 2, "split": "val", "sentences": sentences("A dog runs.")},
    ]})


def write_textcaps(src, ocr=True):
    """Train (one entry without caption), val (entries per caption, one image), test; one image lacks Rosetta OCR."""
    common = {"image_classes": ["Poster"], "image_width": 1024, "image_height": 768, "flickr_original_url": "",
              "flickr_300k_url": ""}
    write_json(src / "TextCaps_0.1_train.json", {"dataset_type": "train", "dataset_name": "textcaps", "data": [
        {**common, "image_id": "011e7e629fb9ae7b", "image_name": "011e7e629fb9ae7b",
         "image_path": "train/011e7e629fb9ae7b.jpg", "caption_id": 1, "caption_str": "A sign reads STOP.",
         "caption_tokens": ["a", "sign"], "reference_strs": ["A sign reads STOP.", "Red sign."],
         "reference_tokens": [], "set_name": "train"},
        {**common, "image_id": "011e7e629fb9ae7b", "image_name": "011e7e629fb9ae7b",
         "image_path": "train/011e7e629fb9ae7b.jpg", "caption_id": 2, "caption_str": "Red sign.",
         "reference_strs": ["A sign reads STOP.", "Red sign."], "set_name": "train"},
        {**common, "image_id": "00c359f294f7dcd9", "image_name": "00c359f294f7dcd9",
         "image_path": "train/00c359f294f7dcd9.jpg", "caption_id": 3, "caption_str": "A bottle of coca cola.",
         "reference_strs": ["A bottle of coca cola."], "set_name": "train"},
        {**common, "image_id": "00c359f294f7dcd9", "image_name": "00c359f294f7dcd9", "caption_id": 4,
         "set_name": "train"},
    ]})
    write_json(src / "TextCaps_0.1_val.json", {"data": [
        {**common, "image_id": "0a0bc91825468c45", "image_name": "0a0bc91825468c45", "caption_id": 10 + i,
         "caption_str": ref, "reference_strs": ["A book titled X.", "Cover of X."], "set_name": "val"}
        for i, ref in enumerate(["A book titled X.", "Cover of X."])
    ]})
    write_json(src / "TextCaps_0.1_test.json", {"data": [
        {**common, "image_id": "f9c5e4fbf6e0d2a1", "image_name": "f9c5e4fbf6e0d2a1", "set_name": "test"},
    ]})
    if ocr:
        write_json(src / "TextVQA_Rosetta_OCR_v0.2_train.json", {"data": [
            {"image_id": "011e7e629fb9ae7b", "ocr_tokens": ["STOP", "ALL", "WAY"],
             "ocr_info": [{"word": "STOP", "bounding_box": {}}]},
        ]})
        write_json(src / "TextVQA_Rosetta_OCR_v0.2_val.json", {"data": [
            {"image_id": "0a0bc91825468c45", "ocr_tokens": ["X"], "ocr_info": []},
        ]})
        write_json(src / "TextVQA_Rosetta_OCR_v0.2_test.json", {"data": [
            {"image_id": "f9c5e4fbf6e0d2a1", "ocr_tokens": ["exit"], "ocr_info": []},
        ]})


def write_nocaps(src):
    """Two val images (in- and out-domain, 10 and 2 captions) plus one without any caption; test has no captions."""
    images = [
        {"id": 0, "file_name": "0013ea2087020901.jpg", "coco_url": "https://x/0013ea2087020901.jpg",
         "open_images_id": "0013ea2087020901", "domain": "in-domain", "height": 768, "width": 1024},
        {"id": 1, "file_name": "0023a3a5a1a9f5b2.jpg", "coco_url": "", "open_images_id": "0023a3a5a1a9f5b2",
         "domain": "out-domain", "height": 768, "width": 1024},
        {"id": 2, "file_name": "00fe3a2bd5a3e7f1.jpg", "coco_url": "", "open_images_id": "00fe3a2bd5a3e7f1",
         "domain": "near-domain", "height": 768, "width": 1024},
    ]
    annotations = [{"image_id": 0, "id": i, "caption": f"A kitchen {i}."} for i in range(10)]
    annotations += [{"image_id": 1, "id": 10, "caption": "A jellyfish."}, {"image_id": 1, "id": 11, "caption": "Sea."}]
    write_json(src / "nocaps_val_4500_captions.json", {"licenses": [], "info": {}, "images": images,
                                                        "annotations": annotations})
    write_json(src / "nocaps_test_image_info.json", {"licenses": [], "info": {}, "images": [
        {"id": 4500, "file_name": "0003d84e0165d630.jpg", "open_images_id": "0003d84e0165d630",
         "domain": "near-domain"}]})


# ------------------------------------------------------------------------------------------------------- COCO Caption


def test_coco_train_merges_restval_one_record_per_caption(tmp_path):
    write_karpathy_coco(tmp_path)
    records, report = run("coco_caption", tmp_path, tmp_path / "out", "train")
    assert report.written == 3 and report.skipped == {"empty caption": 1}
    assert records[0] == {"image": "train2014/COCO_train2014_000000000009.jpg", "image_id": 9,
                          "meta": {"split": "train"}, "text_input": "", "text_output": "A dog."}
    assert records[1]["text_output"] == "Two dogs play."
    assert records[2] == {"image": "val2014/COCO_val2014_000000000042.jpg", "image_id": 42,
                          "meta": {"split": "restval"}, "text_input": "", "text_output": "A bus on a road."}


def test_coco_val_and_test_one_record_per_image_with_all_captions(tmp_path):
    write_karpathy_coco(tmp_path)
    val, report = run("coco_caption", tmp_path, tmp_path / "out", "val")
    assert report.written == 1 and not report.skipped
    assert val == [{"image": "val2014/COCO_val2014_000000000073.jpg", "image_id": 73, "text_input": "",
                    "text_output": "A cat on a mat.", "captions": ["A cat on a mat.", "A sleeping cat."]}]
    test, _ = run("coco_caption", tmp_path, tmp_path / "out", "test")
    assert test[0]["captions"] == ["A red car.", "A parked car."] and test[0]["image_id"] == 74


def test_coco_lavis_files_when_karpathy_json_is_absent(tmp_path):
    write_json(tmp_path / "coco_karpathy_train.json", [{"caption": "A man riding a wave.", "image_id": "coco_522418",
                                                         "image": "val2014/COCO_val2014_000000522418.jpg"}])
    write_json(tmp_path / "coco_karpathy_test.json", [
        {"image": "val2014/COCO_val2014_000000391895.jpg", "caption": ["A man.", "A bike."]}])
    train, _ = run("coco_caption", tmp_path, tmp_path / "out", "train")
    assert train == [{"image": "val2014/COCO_val2014_000000522418.jpg", "image_id": 522418, "text_input": "",
                      "text_output": "A man riding a wave."}]
    test, _ = run("coco_caption", tmp_path, tmp_path / "out", "test")
    assert test == [{"image": "val2014/COCO_val2014_000000391895.jpg", "image_id": 391895, "text_input": "",
                     "text_output": "A man.", "captions": ["A man.", "A bike."]}]


def test_coco_malformed_entry_names_file_and_entry(tmp_path):
    write_json(tmp_path / "dataset_coco.json", {"images": [{"split": "val", "sentences": [{"tokens": []}]}]})
    with pytest.raises(SourceError, match=r"dataset_coco.json: images\[0\].sentences\[0\]: missing key 'raw'"):
        run("coco_caption", tmp_path, tmp_path / "out", "val")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="dataset_coco.json.*coco_karpathy_train.json"):
        run("coco_caption", tmp_path / "empty", tmp_path / "out", "train")


def test_coco_train_loads_with_a_caption_template(tmp_path, monkeypatch):
    write_karpathy_coco(tmp_path / "src")
    media = ["train2014/COCO_train2014_000000000009.jpg", "val2014/COCO_val2014_000000000042.jpg"]
    items = load_converted("coco_caption", tmp_path / "src", tmp_path, monkeypatch, "train", media=media)
    assert items[0]["image"].shape == (3, 16, 16) and items[0]["text_output"] == "A dog."
    assert all(item["text_input"] in {render(t, {}) for t in CAPTION} for item in items)


# ------------------------------------------------------------------------------------------------------- Flickr30K


def test_flickr30k_test_one_record_per_image_with_numeric_image_id(tmp_path):
    write_karpathy_flickr(tmp_path)
    records, report = run("flickr30k", tmp_path, tmp_path / "out", "test")
    assert report.written == 1 and not report.skipped
    assert records == [{"image": "flickr30k-images/1007129816.jpg", "image_id": 1007129816, "text_input": "",
                        "text_output": "A man with a hat 0.", "captions": [f"A man with a hat {i}." for i in range(5)]}]
    train, _ = run("flickr30k", tmp_path, tmp_path / "out", "train")
    assert train == [{"image": "flickr30k-images/1000092795.jpg", "image_id": 1000092795, "text_input": "",
                      "text_output": "Two men."}]


def test_flickr30k_lavis_test_file(tmp_path):
    write_json(tmp_path / "flickr30k_test.json", [{"image": "flickr30k-images/1007129816.jpg", "caption": ["a", "b"]}])
    records, _ = run("flickr30k", tmp_path, tmp_path / "out", "test")
    assert records[0]["image_id"] == 1007129816 and records[0]["captions"] == ["a", "b"]


def test_flickr30k_test_loads_with_the_zero_shot_prompt(tmp_path, monkeypatch):
    write_karpathy_flickr(tmp_path / "src")
    items = load_converted("flickr30k", tmp_path / "src", tmp_path, monkeypatch, "test",
                           media=["flickr30k-images/1007129816.jpg"])
    assert items[0]["image"].shape == (3, 16, 16)
    assert items[0]["text_input"] == "A short image description:" and len(items[0]["captions"]) == 5


# ------------------------------------------------------------------------------------------------------- NoCaps


def test_nocaps_val_one_record_per_image_with_domain(tmp_path):
    write_nocaps(tmp_path)
    records, report = run("nocaps", tmp_path, tmp_path / "out", "val")
    assert report.written == 2 and report.skipped == {"image without captions": 1}
    assert records[0] == {"image": "val/0013ea2087020901.jpg", "image_id": 0, "text_input": "",
                          "text_output": "A kitchen 0.", "captions": [f"A kitchen {i}." for i in range(10)],
                          "meta": {"domain": "in-domain", "open_images_id": "0013ea2087020901"}}
    assert records[1]["captions"] == ["A jellyfish.", "Sea."] and records[1]["meta"]["domain"] == "out-domain"


def test_nocaps_test_has_images_without_captions_and_lavis_fallback(tmp_path):
    write_nocaps(tmp_path / "orig")
    records, _ = run("nocaps", tmp_path / "orig", tmp_path / "out", "test")
    assert records == [{"image": "test/0003d84e0165d630.jpg", "image_id": 4500, "text_input": "", "text_output": "",
                        "meta": {"domain": "near-domain", "open_images_id": "0003d84e0165d630"}}]
    write_json(tmp_path / "lavis" / "nocaps_val.json", [{"image": "val/0013ea2087020901.jpg", "img_id": 0}])
    lavis, _ = run("nocaps", tmp_path / "lavis", tmp_path / "out", "val")
    assert lavis == [{"image": "val/0013ea2087020901.jpg", "text_input": "", "text_output": "", "image_id": 0}]


def test_nocaps_val_loads_with_the_zero_shot_prompt(tmp_path, monkeypatch):
    write_nocaps(tmp_path / "src")
    items = load_converted("nocaps", tmp_path / "src", tmp_path, monkeypatch, "val",
                           media=["val/0013ea2087020901.jpg", "val/0023a3a5a1a9f5b2.jpg"])
    assert [item["image"].shape for item in items] == [(3, 16, 16)] * 2
    assert items[0]["text_input"] == "A short image description:" and len(items[0]["captions"]) == 10


# ------------------------------------------------------------------------------------------------------- TextCaps


def test_textcaps_train_one_record_per_caption_with_ocr(tmp_path):
    write_textcaps(tmp_path)
    records, report = run("textcaps", tmp_path, tmp_path / "out", "train")
    assert report.written == 3 and report.skipped == {"entry without caption": 1}
    assert records[0] == {"image": "train_images/011e7e629fb9ae7b.jpg", "image_id": "011e7e629fb9ae7b",
                          "ocr_tokens": ["STOP", "ALL", "WAY"], "text_input": "", "text_output": "A sign reads STOP."}
    assert records[1]["text_output"] == "Red sign."
    assert records[2]["image_id"] == "00c359f294f7dcd9" and records[2]["ocr_tokens"] == []  # image lacking OCR


def test_textcaps_val_one_record_per_image_and_test_without_captions(tmp_path):
    write_textcaps(tmp_path)
    val, report = run("textcaps", tmp_path, tmp_path / "out", "val")
    assert report.written == 1 and not report.skipped
    assert val == [{"image": "train_images/0a0bc91825468c45.jpg", "image_id": "0a0bc91825468c45", "ocr_tokens": ["X"],
                    "text_input": "", "text_output": "A book titled X.",
                    "captions": ["A book titled X.", "Cover of X."]}]
    test, _ = run("textcaps", tmp_path, tmp_path / "out", "test")
    assert test == [{"image": "test_images/f9c5e4fbf6e0d2a1.jpg", "image_id": "f9c5e4fbf6e0d2a1",
                     "ocr_tokens": ["exit"], "text_input": "", "text_output": ""}]


def test_textcaps_without_rosetta_files_keeps_empty_ocr(tmp_path):
    write_textcaps(tmp_path, ocr=False)
    records, _ = run("textcaps", tmp_path, tmp_path / "out", "train")
    assert [r["ocr_tokens"] for r in records] == [[], [], []]


def test_textcaps_train_loads_with_ocr_prefix_and_a_caption_template(tmp_path, monkeypatch):
    write_textcaps(tmp_path / "src")
    items = load_converted("textcaps", tmp_path / "src", tmp_path, monkeypatch, "train",
                           media=["train_images/011e7e629fb9ae7b.jpg", "train_images/00c359f294f7dcd9.jpg"])
    assert items[0]["image"].shape == (3, 16, 16)
    prefix = "OCR tokens: STOP, ALL, WAY. "
    assert items[0]["text_input"].startswith(prefix)
    assert items[0]["text_input"][len(prefix):] in {render(t, {}) for t in CAPTION}
    assert items[2]["text_input"].startswith("OCR tokens: . ")


# ------------------------------------------------------------------------------------------------------- Web CapFilt


def write_capfilt(src):
    """Five rows: row 2 has no url and row 3 an empty caption; both still take their img2dataset index."""
    return write_json(src / "ccs_synthetic_filtered_large.json", [
        {"url": "http://a/0.jpg", "caption": "a dog in the snow"},
        {"url": "http://a/1.jpg", "caption": "a red car "},
        {"url": "", "caption": "orphan caption"},
        {"url": "http://a/3.jpg", "caption": " "},
        {"url": "http://a/4.jpg", "caption": "a bowl of soup"},
    ])


def test_capfilt_image_follows_img2dataset_default_layout():
    assert capfilt_image(0) == "00000/000000000.jpg"
    assert capfilt_image(9_999) == "00000/000009999.jpg"
    assert capfilt_image(13_873_135) == "01387/013873135.jpg"


def test_capfilt_one_record_per_pair_with_url_in_meta(tmp_path):
    write_capfilt(tmp_path)
    records, report = run("capfilt14m", tmp_path, tmp_path / "out", "train")
    assert report.written == 3 and report.skipped == {"entry without url": 1, "empty caption": 1}
    assert records[0] == {"image": "00000/000000000.jpg", "text_input": "", "text_output": "a dog in the snow",
                          "meta": {"url": "http://a/0.jpg"}}
    assert records[1]["text_output"] == "a red car"
    assert records[2]["image"] == "00000/000000004.jpg" and records[2]["meta"] == {"url": "http://a/4.jpg"}


def test_capfilt_lavis_annotation(tmp_path):
    write_json(tmp_path / "annotation.json", [{"image": "cc12m/00001234.jpg", "caption": "a cat"}])
    records, _ = run("capfilt14m", tmp_path, tmp_path / "out", "train")
    assert records == [{"image": "cc12m/00001234.jpg", "image_id": 1234, "text_input": "", "text_output": "a cat"}]


def test_capfilt_train_loads_with_a_caption_template(tmp_path, monkeypatch):
    write_capfilt(tmp_path / "src")
    items = load_converted("capfilt14m", tmp_path / "src", tmp_path, monkeypatch, "train",
                           media=["00000/000000000.jpg", "00000/000000001.jpg", "00000/000000004.jpg"])
    assert items[0]["image"].shape == (3, 16, 16) and items[0]["meta"] == {"url": "http://a/0.jpg"}
    assert items[0]["text_input"] in {render(t, {}) for t in CAPTION}


def test_capfilt_webdataset_shards_load_as_a_shard_dataset(tmp_path, monkeypatch):
    from lavis_ib import load_dataset, registry
    from lavis_ib.datasets.builders.dataset import ShardDataset
    from lavis_ib.datasets.convert import convert
    from tests.datasets.converters.helpers import TINY_PROCESSORS, make_media

    cache = tmp_path / "cache"
    monkeypatch.setenv("LAVIS_IB_CACHE", str(cache))
    write_capfilt(tmp_path / "src")
    (report,) = convert("capfilt14m", tmp_path / "src", fmt="wds", per_shard=2, splits=["train"])
    assert report.written == 3 and [p.name for p in report.paths] == ["train-000000.tar", "train-000001.tar"]
    builder = registry.get_builder_class("capfilt14m")
    block = builder.default_config("wds", vis_processor=TINY_PROCESSORS["images"])
    dataset = load_dataset("capfilt14m", block, splits=["train"])["train"]
    assert isinstance(dataset, ShardDataset) and len(dataset.shards) == 2
    make_media(dataset.make_item.media_root, ["00000/000000000.jpg", "00000/000000001.jpg", "00000/000000004.jpg"])
    items = list(dataset)
    assert [item["text_output"] for item in items] == ["a dog in the snow", "a red car", "a bowl of soup"]
    assert all(item["image"].shape == (3, 16, 16) for item in items)
    assert items[2]["meta"] == {"url": "http://a/4.jpg"}
    assert all(item["text_input"] in {render(t, {}) for t in CAPTION} for item in items)


CATALOGUE = {
    "coco_caption": Fixture(write_karpathy_coco, "train", 3),
    "flickr30k": Fixture(write_karpathy_flickr, "test", 1),
    "textcaps": Fixture(write_textcaps, "train", 3),
    "nocaps": Fixture(write_nocaps, "val", 2),
    "capfilt14m": Fixture(write_capfilt, "train", 3),
}
