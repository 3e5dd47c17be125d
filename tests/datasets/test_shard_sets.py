"""Issue 10 cases 1 and 3: shard sets are published whole with a manifest and readers refuse anything else; a failed
conversion leaves nothing behind and prints no progress bar (test_convert_cli.py)."""

from __future__ import annotations

import json
import shutil

import pytest

from lavis_ib.datasets.convert import convert
from lavis_ib.datasets.records import ShardSetError, iter_shards, load_shard_set, write_shards
from tests.datasets.converters.test_vqa import write_vqav2
from tests.datasets.test_convert_cli import snapshot
from tests.datasets.test_loading import capfilt, shards_root

RECORDS = [{"image": f"img{i}.png", "text_input": "", "text_output": f"caption {i}"} for i in range(6)]


def test_manifest_lists_names_counts_and_checksums(tmp_path):
    paths = write_shards(RECORDS, tmp_path / "train", per_shard=4)
    manifest = json.loads((tmp_path / "train.manifest.json").read_text())
    assert manifest["records"] == 6 and [e["name"] for e in manifest["shards"]] == [p.name for p in paths]
    assert [e["records"] for e in manifest["shards"]] == [4, 2]
    assert all(len(e["sha256"]) == 64 for e in manifest["shards"])
    assert load_shard_set(tmp_path / "train-*.tar").records == 6
    assert [r["text_output"] for r in iter_shards(paths)] == [r["text_output"] for r in RECORDS]


def test_shards_without_a_manifest_are_refused_by_every_reader(tmp_path, monkeypatch):
    """A conversion killed before publishing: complete-looking shards, no manifest."""
    root = shards_root(tmp_path, monkeypatch)
    (root / "datasets/capfilt14m/train.manifest.json").unlink()
    folder = root / "datasets/capfilt14m"
    expected = (f"{folder}: shard set 'train' has no manifest train.manifest.json (3 shard files found): it was not "
                f"published by a finished conversion; convert it again (with --overwrite)")
    for read in (lambda: capfilt(root), lambda: list(iter_shards(sorted(folder.glob("train-*.tar"))))):
        with pytest.raises(ShardSetError) as error:
            read()
        assert str(error.value) == expected
    assert len(list(folder.glob("train-*.tar"))) == 3  # refused, not deleted


def test_stale_missing_and_altered_shards_are_refused_naming_the_shard(tmp_path, monkeypatch):
    root = shards_root(tmp_path, monkeypatch)
    folder = root / "datasets/capfilt14m"
    shutil.copy(folder / "train-000000.tar", folder / "train-000007.tar")
    with pytest.raises(ShardSetError, match=r"does not match train.manifest.json: train-000007.tar is not in the "
                                            r"manifest \(stale"):
        capfilt(root)
    (folder / "train-000007.tar").unlink()
    data = bytearray((folder / "train-000001.tar").read_bytes())
    data[600] ^= 1  # same size, other content
    (folder / "train-000001.tar").write_bytes(bytes(data))
    with pytest.raises(ShardSetError, match=r"shard train-000001.tar does not match its manifest's sha256"):
        list(capfilt(root))
    (folder / "train-000002.tar").unlink()
    with pytest.raises(ShardSetError, match=f"{folder}: shard set 'train' does not match .*missing shard train-000002"):
        capfilt(root)


def test_overwrite_replaces_the_set_whole_and_a_failing_overwrite_keeps_the_old_one(tmp_path):
    write_vqav2(tmp_path / "src")
    out = tmp_path / "out"
    convert("vqav2", tmp_path / "src", out, fmt="wds", per_shard=1)
    before = snapshot(out)
    (tmp_path / "src/v2_mscoco_train2014_annotations.json").write_text("{broken")
    with pytest.raises(ValueError, match="not valid JSON"):
        convert("vqav2", tmp_path / "src", out, fmt="wds", per_shard=2, overwrite=True)
    assert snapshot(out) == before  # nothing lost, nothing mixed
    write_vqav2(tmp_path / "src")
    convert("vqav2", tmp_path / "src", out, fmt="wds", per_shard=2, overwrite=True)
    shard_set = load_shard_set(out / "train-*.tar")
    assert [p.name for p in shard_set.paths] == ["train-000000.tar"] and shard_set.records == 2
    assert [r["question_id"] for r in iter_shards(shard_set.paths)] == [90, 91]

