"""Which model `python run_demo.py` serves, and the answers the page gets from it: `generate`'s tokens streamed as
they are chosen, candidates ranked with probabilities normalised over them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lavis_ib.app import main, parse_args
from lavis_ib.app.answers import fed_back_tokens, rank_candidates, stream_answers
from lavis_ib.app.checks import check_decoding
from lavis_ib.app.served import UNTRAINED_BANNER, model_request, newest_demo_checkpoint
from lavis_ib.models import load_model

REPO_ROOT = Path(__file__).resolve().parents[2]  # the demo's model config is a repository path


def job(runs, name: str, best: int | None, steps=(5,)):
    """A training job folder as the runner leaves it: complete `step_<N>` checkpoints and, if given, `best`."""
    checkpoints = runs / name / "checkpoints"
    for step in steps:
        (checkpoints / f"step_{step}").mkdir(parents=True)
        for file in ("model.safetensors", "train_state.pt"):
            (checkpoints / f"step_{step}" / file).write_bytes(b"x")
    if best is not None:
        (checkpoints / "best").write_text(f"step_{best}\n")
    return checkpoints


def test_with_no_options_it_serves_the_newest_demo_runs_best_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    runs = tmp_path / "runs"
    section, banner = model_request(parse_args([]), runs)
    assert section["checkpoint"] is None and banner == UNTRAINED_BANNER.format(runs=runs)
    assert "Run `make demo`" in banner and section["num_query_token"] == 32  # the demo's model, untrained
    older = job(runs, "demo_20260101_000000", best=5)
    job(runs, "demo_20260102_000000", best=None)  # newer, but interrupted before any best checkpoint
    assert newest_demo_checkpoint(runs) == older / "step_5" / "model.safetensors"
    newest = job(runs, "demo_20260103_000000", best=20, steps=(10, 20))
    section, banner = model_request(parse_args([]), runs)
    assert banner is None and section["checkpoint"] == newest / "step_20" / "model.safetensors"


def test_a_bad_request_is_one_line_and_exit_status_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for argv, expected in ((["--cfg-path", "nowhere.yaml"], "config file not found: nowhere.yaml"),
                           ([], "projects/instructblip/demo_model.yaml not found: run `python run_demo.py` from the "
                                "repository root")):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        assert capsys.readouterr().err.startswith(f"run_demo: error: {expected}")


def test_options_name_the_model(tmp_path):
    section, banner = model_request(parse_args(["--arch", "blip2_opt", "--model-type", "tiny", "--checkpoint", "w"]))
    assert section == {"arch": "blip2_opt", "model_type": "tiny", "checkpoint": "w"} and banner is None
    for bad in (["--arch", "blip2_opt"], ["--checkpoint", "w"], ["--cfg-path", "x.yaml", "--arch", "a",
                                                                 "--model-type", "b"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
    args = parse_args([])
    assert (args.host, args.port, args.device) == ("127.0.0.1", 7860, "cpu")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return load_model("blip2_vicuna_instruct", "tiny", is_eval=True)


DECODING = dict(num_beams=1, max_length=8, min_length=8, temperature=1.0, top_p=0.9, length_penalty=1.0,
                repetition_penalty=1.0, num_outputs=1)


@pytest.mark.parametrize("sampling, outputs", [(False, 1), (True, 3)])
def test_streamed_tokens_are_generates_tokens_and_the_stream_ends_with_its_answer(model, sampling, outputs):
    decoding = check_decoding(sampling, **{**DECODING, "num_outputs": outputs})
    image, prompt = torch.rand(1, 3, 56, 56), "Describe the image."
    samples = {"image": image, "prompt": prompt}
    torch.manual_seed(1)
    with fed_back_tokens(model.llm) as tokens:
        ids = model.generate_token_ids(samples, **decoding.generate_args())
    fed = torch.tensor([tokens.get_nowait() for _ in range(tokens.qsize())]).T
    assert ids.shape == (outputs, 8) and torch.equal(fed, ids[:, :-1])  # every token but the last is fed back
    torch.manual_seed(1)
    stream = list(stream_answers(model, image, prompt, decoding))
    assert len(stream) == 8 and stream[-1] == model.decode(ids)  # 7 fed-back steps, then generate's own answer
    assert all(len(step) == outputs for step in stream)


def test_beam_search_is_answered_whole(model):
    decoding = check_decoding(False, **{**DECODING, "num_beams": 3})
    samples = {"image": torch.rand(1, 3, 56, 56), "prompt": "Describe the image."}
    assert list(stream_answers(model, samples["image"], samples["prompt"], decoding)) == [
        model.generate(samples, **decoding.generate_args())]


def test_ranking_gives_probabilities_normalised_over_the_candidates(model):
    image, prompt, candidates = torch.rand(1, 3, 56, 56), "Which shape is red?", ["circle", "square", "a triangle"]
    ranked = rank_candidates(model, image, prompt, candidates)
    sums = model.score_candidates({"image": image, "prompt": prompt}, candidates).sum[0]
    expected = torch.softmax(sums, 0)
    assert [c.text for c in ranked] == [candidates[i] for i in sums.argsort(descending=True)]
    for candidate in ranked:
        index = candidates.index(candidate.text)
        assert candidate.log_likelihood == pytest.approx(float(sums[index]), abs=1e-5)
        assert candidate.probability == pytest.approx(float(expected[index]), abs=1e-6)
    assert sum(c.probability for c in ranked) == pytest.approx(1.0, abs=1e-6)
    assert [c.num_tokens for c in ranked if c.text == "a triangle"] != [1]


def test_the_untrained_banner_shows_once_the_model_is_known_and_the_refresh_then_stops(tmp_path, monkeypatch, model):
    pytest.importorskip("gradio", reason="the demo page needs gradio: pip install -e .[demo]")
    from lavis_ib.app.examples import Gallery
    from lavis_ib.app.page import DemoPage
    from lavis_ib.app.served import ModelSlot, ServedModel

    monkeypatch.chdir(REPO_ROOT)
    slot = ModelSlot(parse_args([]), runs=tmp_path / "runs")
    page = DemoPage(slot, Gallery(tmp_path / "gallery"))
    identity, banner, timer = page.identity()
    assert identity == f"Model: `{ModelSlot.LOADING}`" and not banner.visible and timer.active  # still loading
    slot.served = ServedModel(model, None, "blip2_vicuna_instruct/tiny · no checkpoint",
                              UNTRAINED_BANNER.format(runs=slot.runs))
    slot.ready.set()
    identity, banner, timer = page.identity()
    assert identity == "Model: `blip2_vicuna_instruct/tiny · no checkpoint`" and not timer.active
    assert banner.visible and banner.value == f"**{UNTRAINED_BANNER.format(runs=slot.runs)}**"
