"""Issue 20, data from object stores: a shard set read over HTTP (a local server on 127.0.0.1), `file://` or a `pipe:`
command gives exactly the records and items of its local copy, training on it exactly the losses and weights, and
evaluating it exactly the predictions and metrics of the same records as JSON lines;
a dropped connection is tried again a bounded number of times; each rank fetches only its own shards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from lavis_ib.common.registry import registry
from lavis_ib.common.remote import RemoteReadError, Retry
from lavis_ib.datasets import load_dataset
from lavis_ib.datasets.locations import ShardURL
from lavis_ib.datasets.records import ShardSetError, iter_shards, load_shard_set
from tests.datasets.shard_server import ShardServer
from tests.datasets.test_loading import TRAIN_16, shards_root

RECORDS, PER_SHARD = 11, 3  # shards of 3, 3, 3 and 2 records
SHARDS = [f"train-{n:06d}.tar" for n in range(4)]
MANIFEST = "train.manifest.json"
QUICK = {"backoff_s": 0.01}  # the tests' pause between tries (the default is 0.5 s, doubling)


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    """11 captioned images as a shard set under `root/datasets/capfilt14m` (the images stay local)."""
    return shards_root(tmp_path, monkeypatch, count=RECORDS, per_shard=PER_SHARD)


@pytest.fixture
def server(root):
    with ShardServer(root / "datasets/capfilt14m") as server:
        yield server


def capfilt(root: Path, storage: str | None = None, split: str = "train", entry: dict | None = None, **kwargs):
    """capfilt14m's shard set as split `split`, read from `storage` (default: the local copy) with the split's
    other keys `entry`."""
    entry = {"storage": storage or str(root / "datasets/capfilt14m/train-*.tar"), **QUICK, **(entry or {})}
    block = registry.get_builder_class("capfilt14m").default_config(
        "wds", vis_processor=TRAIN_16, build_info={"annotations": {split: entry}})
    return load_dataset("capfilt14m", block, splits=[split], data_root=str(root), **kwargs)[split]


def items(dataset) -> list[tuple]:
    """Every item of an iterated dataset, as comparable values (the image as a tuple of its pixels)."""
    return [(item["instance_id"], item["text_input"], item["text_output"], item.get("media_key"),
             tuple(item["image"].flatten().tolist())) for item in dataset]


def remote_locations(root: Path, server: ShardServer) -> dict[str, str]:
    folder = root / "datasets/capfilt14m"
    return {"http": f"{server.url}/train-*.tar", "file": f"file://{folder}/train-*.tar",
            "pipe": f"pipe:cat '{folder}/train-*.tar'"}


def test_a_remote_set_yields_exactly_the_records_and_items_of_its_local_copy(root, server):
    """Training (random draws) and evaluation (deterministic processor, media keys) items alike, iterated or served
    through `get` for the mixture, from HTTP, file:// and pipe:."""
    local = {split: capfilt(root, split=split) for split in ("train", "val")}
    expected = {split: items(dataset) for split, dataset in local.items()}
    assert len(expected["train"]) == RECORDS and all(key is not None for *_, key, _ in expected["val"][:1])
    for scheme, storage in remote_locations(root, server).items():
        for split in ("train", "val"):
            remote = capfilt(root, storage, split=split)
            assert isinstance(remote.shards[0], ShardURL) and len(remote) == RECORDS, scheme
            assert remote.shard_records == local[split].shard_records == [3, 3, 3, 2]
            assert items(remote) == expected[split], (scheme, split)
        index = 2 * (1 << 32) + 1  # shard 2, position 1, drawn in epoch 3
        assert remote.get(index, 3)["text_output"] == local["val"].get(index, 3)["text_output"] == "caption 7"
    records = list(iter_shards(load_shard_set(f"{server.url}/train-*.tar").paths))
    assert [r["text_output"] for r in records] == [f"caption {i}" for i in range(RECORDS)]


def test_a_dropped_connection_is_tried_again_and_then_named_with_the_tries(root, server):
    url = f"{server.url}/train-*.tar"
    server.drops = {MANIFEST: 1, SHARDS[1]: 2}  # halfway through the body, after its Content-Length
    assert [item[2] for item in items(capfilt(root, url))] == [f"caption {i}" for i in range(RECORDS)]
    assert server.gets[MANIFEST] == 2  # the builder's one read, dropped once and tried again
    assert server.gets[SHARDS[1]] == 3  # dropped twice, then read whole
    assert server.drops == {MANIFEST: 0, SHARDS[1]: 0}

    server.drops[SHARDS[2]] = float("inf")
    server.reset()
    shards = load_shard_set(ShardURL.parse(url, Retry(tries=4, backoff_s=0.01))).paths
    with pytest.raises(RemoteReadError) as error:
        list(iter_shards(shards))
    assert str(error.value).startswith(f"{server.url}/{SHARDS[2]}: could not be read in 4 tries (last error: "
                                       f"ClientPayloadError")
    assert server.gets[SHARDS[2]] == 4

    (root / f"datasets/capfilt14m/{SHARDS[3]}").unlink()  # a 404 is no dropped connection: named at once
    with pytest.raises(ShardSetError, match=rf"missing shard {SHARDS[3]} \(nothing at {server.url}/{SHARDS[3]}\)"):
        list(iter_shards(shards[3:]))
    assert server.gets[SHARDS[3]] == 1


def test_remote_sets_without_a_manifest_or_with_a_failing_command_are_named(root, server):
    (root / f"datasets/capfilt14m/{MANIFEST}").unlink()
    with pytest.raises(ShardSetError) as error:
        capfilt(root, f"{server.url}/train-*.tar")
    assert str(error.value) == (f"{server.url}: shard set 'train' has no manifest {MANIFEST} at {server.url}/"
                                f"{MANIFEST}: it was not published by a finished conversion, or the location is wrong "
                                f"(a remote set is found through its manifest, never by listing)")
    with pytest.raises(RemoteReadError, match=rf"^pipe:cat '{root}/datasets/capfilt14m/{MANIFEST}': could not be "
                                              rf"read in 2 tries \(last error: PipeCommandError: command .* exited "
                                              rf"with status 1: cat: .*No such file"):
        load_shard_set(ShardURL.parse(f"pipe:cat '{root}/datasets/capfilt14m/train-*.tar'", Retry(2, 0.01)))
    with pytest.raises(ValueError, match=r"a pipe: command must name its shard file"):
        capfilt(root, "pipe:aws s3 cp s3://bucket/shards -")
    with pytest.raises(ValueError, match=r"build_info.annotations.train.tries must be an integer ≥ 1, got 0"):
        capfilt(root, f"{server.url}/train-*.tar", entry={"tries": 0})


def test_each_rank_fetches_only_its_own_shards_and_their_bytes_once(root, server):
    """World size 2: rank 0 reads shards 0 and 2, rank 1 shards 1 and 3, each shard's bytes once (plus the
    manifest), also with two DataLoader workers; the set is never downloaded whole."""
    folder = root / "datasets/capfilt14m"
    size = {name: (folder / name).stat().st_size for name in [*SHARDS, MANIFEST]}
    for rank, mine in ((0, SHARDS[0::2]), (1, SHARDS[1::2])):
        for workers in (0, 2):
            server.reset()
            dataset = capfilt(root, f"{server.url}/train-*.tar", rank=rank, world_size=2)
            loader = DataLoader(dataset, batch_size=1, num_workers=workers, collate_fn=dataset.collator)
            texts = sorted(text for batch in loader for text in batch["text_output"])
            own = [number * PER_SHARD + p for number in range(rank, 4, 2) for p in range(3 if number < 3 else 2)]
            assert texts == sorted(f"caption {i}" for i in own)
            assert set(server.sent) == {MANIFEST, *mine}, (rank, workers)
            assert {name: server.sent[name] for name in mine} == {name: size[name] for name in mine}
            assert server.sent[MANIFEST] == size[MANIFEST]  # read once, by build_split, for its ShardDataset too
            assert sum(server.sent[name] for name in mine) < sum(size[name] for name in SHARDS)


# ---------------------------------------------------------------------------------------------------------------
# Training on a served set


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from tests.runners.train_fixtures import build_small_world

    return build_small_world(tmp_path_factory.mktemp("cache"))


def test_training_on_a_served_set_equals_training_on_its_local_copy(world, tmp_path, monkeypatch):
    """One process, synthetic_caption's train split as 11 shards: the same losses and trainable weights, bitwise."""
    from lavis_ib.cli import load_runner
    from tests.runners.train_fixtures import caption_shards, train_losses, write_train_config

    monkeypatch.setenv("LAVIS_IB_CACHE", str(world))
    torch.set_num_threads(1)
    local = caption_shards(world, tmp_path / "shards")
    results = {}
    with ShardServer(tmp_path / "shards") as server:
        served = json.loads(json.dumps(local).replace(str(tmp_path / "shards"), server.url))
        for name, block in (("local", local), ("served", served)):
            config = write_train_config(tmp_path / f"{name}.yaml", tmp_path / "out", max_iters=4, save_freq=4,
                                        datasets={"synthetic_caption": block})
            summary = load_runner("train", ["--cfg-path", str(config), "--options", f"run.job_id={name}"]).train()
            job = Path(summary["job_dir"])
            results[name] = (train_losses(job), load_file(job / "checkpoints/step_4/model.safetensors"))
        fetched = set(server.sent) - {"train.manifest.json"}  # the shards the run drew from, each read whole
        assert server.gets["train.manifest.json"] == 1 and fetched <= {f"train-{n:06d}.tar" for n in range(11)}
        assert fetched and all(server.sent[name] == (tmp_path / "shards" / name).stat().st_size for name in fetched)
    (losses, weights), (served_losses, served_weights) = results["local"], results["served"]
    assert sorted(losses) == [1, 2, 3, 4] and served_losses == losses
    assert weights.keys() == served_weights.keys() and len(weights) > 20
    assert all(torch.equal(weights[key], served_weights[key]) for key in weights)


def test_evaluating_a_served_set_equals_evaluating_its_json_lines(world, tmp_path, monkeypatch):
    """synthetic_vqa's val split (the first 6 records) evaluated from its JSON lines and from the same records as
    shards served over HTTP: the same predictions, in the same order, and the same metrics."""
    from lavis_ib.common.config import Config
    from lavis_ib.datasets.records import read_jsonl, write_shards
    from lavis_ib.runners.evaluator import Evaluator
    from tests.runners.train_fixtures import write_train_config

    monkeypatch.setenv("LAVIS_IB_CACHE", str(world))
    torch.set_num_threads(1)
    write_shards(read_jsonl(world / "datasets/synthetic_vqa/val.jsonl")[:6], tmp_path / "shards" / "val", per_shard=4)
    results = {}
    with ShardServer(tmp_path / "shards") as server:
        served = {"build_info": {"annotations": {"val": {"storage": f"{server.url}/val-*.tar", **QUICK}}}}
        for name, block in (("local", {}), ("served", served)):
            config = write_train_config(tmp_path / f"{name}.yaml", tmp_path / "out", datasets={"synthetic_vqa": block})
            (summary,) = Evaluator(Config(config, [f"run.job_id={name}"]), limit=6).evaluate()
            predictions = (tmp_path / "out" / name / "synthetic_vqa" / "val" / "predictions.jsonl").read_text()
            results[name] = (summary["metrics"], summary["num_scored"], predictions.splitlines())
        assert set(server.sent) == {"val.manifest.json", "val-000000.tar", "val-000001.tar"}
    assert results["served"] == results["local"] and results["local"][1] == 6 and len(results["local"][2]) == 6
