"""The demo never presents an untrained model's image-independent ranking as an answer, and its training stage runs
end to end: curve, best checkpoint, held-out table, each number beside chance."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lavis_ib import load_model_and_preprocess
from lavis_ib.common.media import open_image
from lavis_ib.demo import DEMO_IMAGE, HELD_OUT_CHANCE, main, show_candidate_scores, validation_curve

REPO_ROOT = Path(__file__).resolve().parents[1]

CHOICES = ["a red circle", "a blue square", "a green triangle"]


def test_untrained_ranking_is_shown_as_scores_with_chance(capsys):
    torch.manual_seed(0)
    model, vis, _ = load_model_and_preprocess("blip2_vicuna_instruct", "tiny", is_eval=True)
    image = vis["eval"](open_image(DEMO_IMAGE)).unsqueeze(0)
    prompt = "What shape is next to the stop sign?"
    show_candidate_scores(model, image, prompt, CHOICES)
    out = capsys.readouterr().out
    assert "answer    : none" in out and "chance is 1/3 (33 %)" in out
    scores = model.score_candidates({"image": image, "prompt": prompt}, CHOICES).sum[0]
    blank = model.score_candidates({"image": torch.zeros_like(image), "prompt": prompt}, CHOICES).sum[0]
    for choice, score, blank_score in zip(CHOICES, scores.tolist(), blank.tolist()):
        assert f"  {choice:18s} {score:9.2f} | {blank_score:9.2f}" in out


def test_demo_trains_then_evaluates_the_held_out_tasks_beside_chance(tmp_path, capsys, monkeypatch):
    """`make demo`'s path on a small world and a few steps: torchrun training, the validation curve, the best
    checkpoint evaluated on the held-out tasks, every accuracy beside its chance level."""
    monkeypatch.chdir(REPO_ROOT)  # the demo's configs are repository paths, as `make demo` runs them
    output = tmp_path / "out"
    main(["--images", "60", "--videos", "8", "--nproc", "1", "--output", str(output), "--train-options",
          "run.max_iters=4", "run.val_freq=2", "run.save_freq=2", "run.val_limit=4", "run.warmup_steps=1", "run.tensorboard=false"])
    out = capsys.readouterr().out
    (job,) = (output / "train").iterdir()
    curve = validation_curve(job)
    assert [point["step"] for point in curve] == [2, 4]
    assert "| step | VQA colour % (chance 16.7) | VQA shape % (chance 33.3) | caption CIDEr |" in out
    for point in curve:
        assert f"| {point['step']} | {point['colour']:.1f} | {point['shape']:.1f} | {point['cider']:.1f} |" in out
    best = (job / "checkpoints" / "best").read_text().strip()
    assert f"model.checkpoint={job / 'checkpoints' / best / 'model.safetensors'}" in out
    rows = json.loads((output / "eval" / job.name / "results.json").read_text())["rows"]  # one eval job per run
    assert [row["dataset"] for row in rows] == list(HELD_OUT_CHANCE)
    met = 0
    for row, chance, goal in zip(rows, ("33.3", "50.0", "33.3", "25.0"), (48.3, 65.0, 48.3, 40.0)):
        verdict = "met" if row["ours"] >= goal else "missed"
        met += verdict == "met"
        assert f"| {row['dataset']} | {row['metric']} | {row['ours']:.1f} | {chance} | {goal:.1f} {verdict} |" in out
    assert f"zero-shot goal met on {met} of 4 held-out tasks" in out
    checkpoint = job / "checkpoints" / best / "model.safetensors"
    assert ("try the trained model on a page: python run_demo.py --cfg-path projects/instructblip/demo_model.yaml "
            f"--checkpoint {checkpoint}") in out  # a run outside output/demo names its checkpoint
