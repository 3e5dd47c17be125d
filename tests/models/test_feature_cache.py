"""The frozen-ViT feature cache: same predictions with it as without, repeats skip the ViT, keys change with the
pixels, and it stays out of training. Model tests run on the tiny random Vicuna and T5 models."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from PIL import Image

from lavis_ib import load_model
from lavis_ib.cli import run as cli_run
from lavis_ib.common.registry import registry
from lavis_ib.datasets.builders.dataset import ItemMaker
from lavis_ib.datasets.records import read_jsonl, write_jsonl
from lavis_ib.models.inference.feature_cache import FeatureCache, frame_keys
from tests.tasks.fixtures import write_eval_fixture

ARCHS = ("blip2_vicuna_instruct", "blip2_t5_instruct")
PROMPTS = ["What is shown?", "Which colour is the large square on the left?", "Where?", "Is it red?"]
ORDER = [0, 1, 0, 0]  # sample i shows image ORDER[i]: image 0 three times
CANDIDATES = [["red", "a blue square", "no"], ["yes", "two", "a dog on a mat"], ["green", "no"], ["yes", "no", "x"]]


# ----------------------------------------------------------------------------------------------------- the LRU


def counting_encoder(calls: list[int]):
    def encode(images: torch.Tensor) -> torch.Tensor:
        calls.append(images.shape[0])
        return images * 2
    return encode


def test_repeats_are_hits_and_each_distinct_miss_is_encoded_once():
    cache, calls = FeatureCache(4), []
    images = torch.arange(3.0).repeat_interleave(2).reshape(3, 2)
    out = cache.encode(["a", "b", "a"], images[[0, 1, 0]], counting_encoder(calls))
    assert torch.equal(out, images[[0, 1, 0]] * 2)
    assert calls == [2] and (cache.hits, cache.misses) == (1, 2)
    cache.encode(["b", "c"], images[[1, 2]], counting_encoder(calls))
    assert calls == [2, 1] and (cache.hits, cache.misses) == (2, 3) and len(cache) == 3
    assert "2 hits (40%), 3 misses, 3/4 images stored" == str(cache)


def test_least_recently_used_is_evicted_and_entries_are_copies():
    cache, calls = FeatureCache(2), []
    batch = torch.randn(3, 5)
    cache.encode(["a", "b"], batch[:2], counting_encoder(calls))
    cache.encode(["a"], batch[:1], counting_encoder(calls))  # a is now the most recent
    cache.encode(["c"], batch[2:], counting_encoder(calls))  # evicts b
    assert list(cache.entries) == ["a", "c"]
    assert all(entry.untyped_storage().nbytes() == entry.numel() * entry.element_size()
               for entry in cache.entries.values())  # not views keeping whole batches alive
    cache.reset_counts()
    assert (cache.hits, cache.misses, len(cache)) == (0, 0, 2)
    with pytest.raises(ValueError, match="2 keys for a batch of 1"):
        cache.encode(["a", "b"], batch[:1], counting_encoder(calls))
    with pytest.raises(ValueError, match="≥ 1"):
        FeatureCache(0)


def test_frame_keys_follow_the_vit_order_and_need_every_key():
    assert frame_keys(["a", "b"]) == ["a", "b"]
    assert frame_keys(["a", "b"], 2) == ["a#frame 0", "a#frame 1", "b#frame 0", "b#frame 1"]
    assert frame_keys(["a", None]) is None and frame_keys(None) is None and frame_keys(["a", ""]) is None


# ----------------------------------------------------------------------------------------------------- the models


@pytest.fixture(scope="module", params=ARCHS)
def model(request):
    torch.manual_seed(0)
    return load_model(request.param, "tiny", is_eval=True)


def batch_of(model, frames: int | None = None, seed: int = 1) -> dict:
    size = model.cfg.image_size
    shape = (2, 3, size, size) if frames is None else (2, 3, frames, size, size)
    images = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    return {"image": images[ORDER], "prompt": PROMPTS, "media_key": [f"img{i}" for i in ORDER]}


def count_vit_images(model, monkeypatch) -> list[int]:
    calls, vit = [], model.visual_encoder.forward_features

    def counted(image):
        calls.append(image.shape[0])
        return vit(image)
    monkeypatch.setattr(model.visual_encoder, "forward_features", counted)
    return calls


def test_generate_and_scores_equal_without_the_cache(model, monkeypatch):
    batch = batch_of(model)
    model.enable_feature_cache(0)
    ids = model.generate_token_ids(batch, num_beams=3, max_length=6)
    scores = model.score_candidates(batch, CANDIDATES).sum
    model.enable_feature_cache(16)
    calls = count_vit_images(model, monkeypatch)
    try:
        assert torch.equal(model.generate_token_ids(batch, num_beams=3, max_length=6), ids)
        assert calls == [2]  # two distinct images: samples 2 and 3 repeat image 0
        assert (model.feature_cache.hits, model.feature_cache.misses) == (2, 2)
        for cached, plain in zip(model.score_candidates(batch, CANDIDATES).sum, scores):
            assert torch.equal(cached, plain)
        assert calls == [2] and model.feature_cache.hits == 6  # every image of the second call was cached
    finally:
        model.enable_feature_cache(0)


def test_precomputed_image_embeddings_replace_the_vit(model):
    batch = batch_of(model)
    with torch.no_grad():
        expected = model.query_features(batch["image"], PROMPTS)
        got = model.query_features(None, PROMPTS, image_embeds=model.encode_image(batch["image"]))
    assert torch.equal(got, expected)


def test_video_frames_are_cached_per_frame(model, monkeypatch):
    frames = 3
    batch = batch_of(model, frames=frames)
    with torch.no_grad():
        expected = model.query_features(batch["image"], PROMPTS)
        model.enable_feature_cache(64)
        calls = count_vit_images(model, monkeypatch)
        try:
            got = model.query_features(batch["image"], PROMPTS, media_keys=batch["media_key"])
            cache = model.feature_cache
            assert calls == [2 * frames] and (cache.hits, cache.misses) == (2 * frames, 2 * frames)
            assert sorted(cache.entries) == [f"img{i}#frame {t}" for i in (0, 1) for t in range(frames)]
            embeds = model.encode_image(batch["image"][:2].permute(0, 2, 1, 3, 4).flatten(0, 1))
            precomputed = model.query_features(None, PROMPTS[:2], image_embeds=embeds.unflatten(0, (2, frames)))
        finally:
            model.enable_feature_cache(0)
    assert torch.equal(got, expected)
    assert torch.equal(precomputed, expected[:2])


def test_training_mode_a_trainable_vit_or_missing_keys_bypass_the_cache(model):
    batch = batch_of(model)
    model.enable_feature_cache(16)
    try:
        model.train()
        with torch.no_grad():
            model.query_features(batch["image"], PROMPTS, media_keys=batch["media_key"])
        assert len(model.feature_cache) == 0 and model.feature_cache.misses == 0
        model.eval()
        with torch.no_grad():
            model.query_features(batch["image"], PROMPTS, media_keys=["img0", None, "img0", "img0"])
            model.query_features(batch["image"], PROMPTS)
        assert len(model.feature_cache) == 0
    finally:
        model.enable_feature_cache(0)
        model.eval()


def test_an_unfrozen_vit_is_never_cached():
    trainable = load_model("blip2_vicuna_instruct", "tiny", is_eval=True, options={"freeze_vit": False})
    trainable.enable_feature_cache(16)
    assert not trainable.uses_feature_cache()
    batch = batch_of(trainable)
    with torch.no_grad():
        trainable.query_features(batch["image"], PROMPTS, media_keys=batch["media_key"])
    assert len(trainable.feature_cache) == 0


# ----------------------------------------------------------------------------------------------------- media keys


def item_maker(tmp_path: Path, processor: dict, video: bool = False, name: str = "gqa") -> ItemMaker:
    options = {key: value for key, value in processor.items() if key != "name"}
    vis = registry.get_processor_class(processor["name"]).from_config(options)
    return ItemMaker(name=name, media_root=tmp_path, video=video, vis_processor=vis, text_processor=lambda t: t,
                     templates=None, ocr_prefix=False, random_answer=False, strict=True)


def test_media_key_is_the_image_identity(tmp_path):
    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (20, 16), (200, 30, 30)).save(tmp_path / name)
    make = item_maker(tmp_path, {"name": "blip_image_eval", "image_size": 28})
    first, second = (make({"image": "a.jpg", "text_input": q, "text_output": "red"}, i) for i, q in
                     enumerate(["What colour?", "Is it red?"]))
    assert first["media_key"] == second["media_key"]
    other = make({"image": "b.jpg", "text_input": "What colour?", "text_output": "red"}, 2)
    assert other["media_key"] != first["media_key"]
    assert str(tmp_path) not in first["media_key"]  # relative to the media root
    record = {"image": "a.jpg", "text_input": "q", "text_output": "a"}
    settings = [{"name": "blip_image_eval", "image_size": 56}, {"name": "clip_image_eval", "image_size": 28},
                {"name": "blip_image_eval", "image_size": 28, "mean": [0.5, 0.5, 0.5]}]
    keys = {item_maker(tmp_path, s)(record, 0)["media_key"] for s in settings}
    assert len(keys) == 3 and first["media_key"] not in keys
    assert item_maker(tmp_path, settings[0], name="vqav2")(record, 0)["media_key"] != \
        item_maker(tmp_path, settings[0])(record, 0)["media_key"]


def test_media_key_of_a_clip_names_its_bounds_frames_and_normalisation(tmp_path):
    make = item_maker(tmp_path, {"name": "video_eval", "image_size": 28, "n_frms": 4}, video=True)
    clip = {"image": "v.mp4", "start": 1.0, "end": 3.0}
    keys = {
        make.media_key(clip), make.media_key({**clip, "end": 4.0}), make.media_key({"image": "v.mp4"}),
        item_maker(tmp_path, {"name": "video_eval", "image_size": 28, "n_frms": 8}, video=True).media_key(clip),
        item_maker(tmp_path, {"name": "video_eval", "image_size": 28, "n_frms": 4, "std": [1, 1, 1]},
                   video=True).media_key(clip),
    }
    assert len(keys) == 5
    assert make.media_key({"image": ["f0.jpg", "f1.jpg"]}) != make.media_key({"image": ["f0.jpg", "f2.jpg"]})


# ----------------------------------------------------------------------------------------------------- evaluation


def repeated_image_fixture(root: Path, n: int, distinct: int) -> list[dict]:
    """GQA test-dev records whose questions share `distinct` images (record i shows image i % distinct)."""
    path = write_eval_fixture(root, "gqa", n=n)
    records = list(read_jsonl(path))
    records = [{**record, "image": records[i % distinct]["image"]} for i, record in enumerate(records)]
    write_jsonl(records, path, overwrite=True)
    return records


def evaluate_gqa(tmp_path: Path, data_root: Path, job: str, cache_size: int | None) -> Path:
    extra = "" if cache_size is None else f", feature_cache_size: {cache_size}"
    config = tmp_path / f"{job}.yaml"
    config.write_text("model: {arch: blip2_vicuna_instruct, model_type: tiny}\n"
                      f"datasets:\n  gqa: {{data_root: '{data_root}'}}\n"
                      f"run: {{output_dir: '{tmp_path / 'out'}', job_id: {job}, batch_size_eval: 3, "
                      f"num_workers: 0{extra}}}\n", encoding="utf-8")
    cli_run("evaluate", ["--cfg-path", str(config)])
    return tmp_path / "out" / job / "gqa" / "testdev" / "predictions.jsonl"


def test_evaluation_predictions_equal_with_and_without_the_cache(tmp_path, caplog):
    records = repeated_image_fixture(tmp_path / "data", n=8, distinct=3)
    assert len({r["image"] for r in records}) == 3
    plain = evaluate_gqa(tmp_path, tmp_path / "data", "cache_off", 0)
    with caplog.at_level(logging.INFO, logger="lavis_ib.runners.evaluator"):
        cached = evaluate_gqa(tmp_path, tmp_path / "data", "cache_on", None)
    rows = [[json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] for path in (plain, cached)]
    assert len(rows[0]) == 8 and rows[0] == rows[1]
    logged = [r.getMessage() for r in caplog.records if "feature cache" in r.getMessage()]
    assert logged == ["gqa/testdev: feature cache (rank 0): 5 hits (62%), 3 misses, 3/2,048 images stored"]
