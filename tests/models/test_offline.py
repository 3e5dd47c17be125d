"""Issue 10 case 11: a hub id that cannot be fetched fails within seconds naming the config key, the id and how to
use a local directory; local-looking paths never go to the hub; hub snapshots are read from lavis_ib's cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from lavis_ib.common.io import HubUnavailableError, WeightNotFoundError
from lavis_ib.models.text.tokenizers import load_qformer_tokenizer, tiny_tokenizer_dir

SCRIPT = """
import json, sys, time
from lavis_ib import load_model
for name, model_type, overrides in json.loads(sys.argv[1]):
    start = time.monotonic()
    try:
        load_model(name, model_type, **overrides)
        outcome = "loaded"
    except Exception as error:
        outcome = f"{type(error).__name__} {error}"
    print(json.dumps([outcome, time.monotonic() - start]), flush=True)
"""
NO_HUB = {"offline": {"HF_HUB_OFFLINE": "1"}, "unreachable": {"HF_ENDPOINT": "http://127.0.0.1:9"}}
TINY_BERT = {"qformer_tokenizer": str(tiny_tokenizer_dir("bert"))}
CALLS = [
    ("blip2_vicuna_instruct", "vicuna7b", {}),  # qformer_tokenizer: bert-base-uncased (LAVIS: ~5 min of retries)
    ("blip2_t5_instruct", "flant5xl", TINY_BERT),  # t5_model: google/flan-t5-xl (transformers' generic error before)
    ("blip2_vicuna_instruct", "vicuna7b", TINY_BERT),  # llm_model: ./llm/vicuna-7b, a local path
]


@pytest.fixture(scope="module", params=list(NO_HUB))
def outcomes(request, tmp_path_factory):
    """(hub mode, cache dir, [(error line, seconds)] per CALLS entry) from one fresh interpreter with empty caches."""
    tmp_path = tmp_path_factory.mktemp(request.param)
    env = {key: value for key, value in os.environ.items() if key not in ("HF_HUB_OFFLINE", "HF_ENDPOINT")}
    env.update(LAVIS_IB_CACHE=str(tmp_path / "cache"), HF_HOME=str(tmp_path / "hf_home"), **NO_HUB[request.param])
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(CALLS)], env=env, capture_output=True, text=True,
                          timeout=120)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("[")]
    assert len(lines) == len(CALLS), done.stderr[-2000:]
    return request.param, tmp_path / "cache", lines


def test_hub_id_without_hub_names_key_id_and_remedy_within_seconds(outcomes):
    hub, cache, lines = outcomes
    line, seconds = lines[0]
    assert seconds < 30
    assert line.startswith("HubUnavailableError model.qformer_tokenizer: 'bert-base-uncased' is a Hugging Face hub id")
    assert ("HF_HUB_OFFLINE is set" if hub == "offline" else "the hub at http://127.0.0.1:9 cannot be reached") in line
    assert "set model.qformer_tokenizer to that directory" in line
    assert hub != "offline" or f"{cache / 'huggingface'} holds no copy" in line


@pytest.mark.parametrize("index, start, fragment", [
    (1, "HubUnavailableError model.t5_model: 'google/flan-t5-xl' is a Hugging Face hub id",
     "options={'t5_model': 'DIR'} or --options model.t5_model=DIR"),
    (2, "WeightNotFoundError model.llm_model: no directory at './llm/vicuna-7b'", "never looked up on the hub"),
])
def test_llm_location_without_hub_names_the_llm_key(outcomes, index, start, fragment):
    """A hub id for the LLM fails like the Q-Former's; a local-looking LLM path fails at once, without the hub."""
    line, seconds = outcomes[2][index]
    assert seconds < 30 and line.startswith(start) and fragment in line


def test_hub_snapshot_is_read_from_the_configured_cache(tmp_path, monkeypatch):
    """A snapshot under `$LAVIS_IB_CACHE/huggingface` (the hub cache layout) serves a hub id with the hub off."""
    repo = tmp_path / "cache" / "huggingface" / "models--org--tiny-bert"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_tokenizer_dir("bert"), snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("LAVIS_IB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer = load_qformer_tokenizer("org/tiny-bert", allow_download=True)
    assert len(tokenizer) == 1001
    with pytest.raises(HubUnavailableError, match=r"^model.qformer_tokenizer: 'org/other' is a Hugging Face hub id"):
        load_qformer_tokenizer("org/other", allow_download=True)
    with pytest.raises(WeightNotFoundError, match="nothing is downloaded"):
        load_qformer_tokenizer("org/tiny-bert")
