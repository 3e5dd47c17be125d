"""The demo never presents an untrained model's image-independent ranking as an answer."""

from __future__ import annotations

import torch

from lavis_ib import load_model_and_preprocess
from lavis_ib.common.media import open_image
from lavis_ib.demo import DEMO_IMAGE, show_candidate_scores

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
