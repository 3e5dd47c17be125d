"""One batch contract: a dataset batch's rendered `instruction` is what every model method conditions on, verbatim.

Items are built as the dataset builders yield them (instruction rendered by the templates, raw `context` /
`history` still present) and collated by `model.collator(mode)`, which tokenizes with the model's own tokenizers.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from lavis_ib import load_model

ARCHS = {"vicuna": "blip2_vicuna_instruct", "t5": "blip2_t5_instruct", "opt": "blip2_opt"}
CANDIDATES = ["a cat", "the dog", "no"]


@pytest.fixture(scope="module", params=sorted(ARCHS))
def model(request):
    torch.manual_seed(0)
    return load_model(ARCHS[request.param], "tiny", is_eval=True)


def items(model, count: int = 4) -> list[dict]:
    """Dataset-style items: ScienceQA-like (context rendered into the instruction) and VisDial-like (history)."""
    size = model.cfg.image_size
    generator = torch.Generator().manual_seed(3)
    out = []
    for i in range(count):
        context, history = f"hint number {i}", f"q: is it {i}? a: maybe"
        instruction = (f"Context: {context} Question: what animal is shown {i}? Options: (a) cat (b) dog"
                       if i % 2 == 0 else f"Dialog history: {history}\nQuestion: what colour?")
        out.append({
            "image": torch.randn(3, size, size, generator=generator),
            "text_input": instruction,
            "text_output": ["a cat", "blue and green"][i % 2],
            "context": context if i % 2 == 0 else None,
            "history": history if i % 2 else None,
            "instance_id": str(i),
            "dataset": "toy",
        })
    return out


def test_rendered_batch_is_scored_on_its_instruction_alone(model):
    """The context/history already rendered by the templates is not prefixed a second time."""
    batch = model.collator("score")(items(model))
    assert batch["instruction"] == [item["text_input"] for item in items(model)]
    ours = model.score_candidates(batch, CANDIDATES)
    plain = model.score_candidates({"image": batch["image"], "prompt": batch["instruction"]}, CANDIDATES)
    for got, expected in zip(ours.sum, plain.sum):
        assert torch.equal(got, expected)
    # LAVIS's raw API fields still get LAVIS's prefixes, which change the scores.
    lavis = model.score_candidates({"image": batch["image"], "prompt": batch["instruction"],
                                    "context": batch["context"], "history": batch["history"]}, CANDIDATES)
    assert all((a - b).abs().max() > 1e-4 for a, b in zip(lavis.sum, plain.sum))


def test_collated_tokens_give_the_loss_of_raw_strings(model):
    samples = items(model)
    batch = model.collator("train")(samples)
    assert {"train_tokens", "instruction"} <= set(batch)
    raw = {"image": batch["image"], "text_input": [s["text_input"] for s in samples],
           "text_output": [s["text_output"] for s in samples]}
    with torch.no_grad():
        collated_loss, raw_loss = model(batch)["loss"], model(raw)["loss"]
    assert torch.isfinite(collated_loss)
    assert collated_loss.item() == raw_loss.item()


def test_collator_runs_in_dataloader_workers(model):
    """Tokenizing in two worker processes gives the same batches (and losses) as in the main process."""
    samples = items(model)
    losses = {}
    for workers in (0, 2):
        loader = DataLoader(samples, batch_size=2, num_workers=workers, collate_fn=model.collator("train"))
        with torch.no_grad():
            losses[workers] = [model(batch)["loss"].item() for batch in loader]
    assert len(losses[0]) == 2
    assert losses[0] == losses[2]


def test_generate_from_collated_prompt_tokens_equals_strings(model):
    batch = model.collator("generate")(items(model))
    settings = dict(num_beams=2, max_length=5, min_length=1)
    expected = model.generate_token_ids({"image": batch["image"], "prompt": batch["instruction"]}, **settings)
    assert torch.equal(model.generate_token_ids(batch, **settings), expected)


def test_predict_answers_takes_a_rendered_instruction_as_is(model):
    """A `prompt` template is for LAVIS's raw questions; it does not wrap an already rendered instruction."""
    batch = model.collator("generate")(items(model, 2))
    direct = model.generate({"image": batch["image"], "prompt": batch["instruction"]}, num_beams=1, max_length=4,
                            length_penalty=model.ANSWER_LENGTH_PENALTY)
    answers = model.predict_answers(batch, num_beams=1, max_len=4, prompt="Question: {} Short answer:")
    assert answers == direct


def test_collator_rejects_unknown_mode(model):
    with pytest.raises(ValueError, match="train, generate, score"):
        model.collator("eval")
