"""The training step: the loss computed at supervised positions only equals the full-vocabulary loss, ours and
transformers' InstructBLIP give the same loss and gradients on the same weights, the frozen ViT and LLM stay out of
autograd, and fused AdamW updates the trainable parameters exactly as the plain loop does.

The models are `hf_oracle`'s tiny random transformers models (dropout 0), loaded through our public API.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lavis_ib import load_model
from lavis_ib.models.text.batching import IGNORE
from tests.models import hf_oracle

ARCH = {"vicuna": "blip2_vicuna_instruct", "t5": "blip2_t5_instruct", "opt": "blip2_opt"}
PROMPTS = ["What is shown?", "Describe the colours of every shape in this picture in detail.",
           "Where is it?", "Is there a red circle to the left of the blue square here?"]
TARGETS = ["a red circle", "two blue squares and a green triangle", "left", "yes"]


@pytest.fixture(scope="module", params=["vicuna", "t5", "opt"])
def pair(request, tmp_path_factory):
    """(kind, HF model, HF tokenizer, ours loaded from the saved HF directory in train mode, samples)."""
    directory = tmp_path_factory.mktemp(request.param)
    hf_model, tokenizer = hf_oracle.build(request.param, directory)
    ours = load_model(ARCH[request.param], "tiny", is_eval=False, checkpoint=str(directory)).train()
    images = torch.randn(len(PROMPTS), 3, hf_oracle.IMAGE_SIZE, hf_oracle.IMAGE_SIZE,
                         generator=torch.Generator().manual_seed(1))
    return request.param, hf_model, tokenizer, ours, {"image": images, "text_input": PROMPTS, "text_output": TARGETS}


def full_vocabulary_loss(model, samples) -> torch.Tensor:
    """The loss as computed before the supervised-only head: logits and log-softmax at every position."""
    image = model.input_image(samples)
    instructions = model.training_instructions(samples, image.shape[0])
    visual = model.query_features(image, instructions)
    if model.cfg.arch == "blip2_t5_instruct":
        tokens = model.text.training(instructions, samples["text_output"])
        embeds, mask = model.encoder_inputs(visual, tokens)
        logprobs = model.decoder_logprobs(embeds, mask, tokens["labels"])
        return F.nll_loss(logprobs.flatten(0, 1), tokens["labels"].flatten(), ignore_index=IGNORE)
    ids, labels, mask = model.training_tokens(samples, instructions)
    embeds, full_mask = model.with_visual_prefix(visual, ids, mask)
    labels = torch.cat([labels.new_full(visual.shape[:2], IGNORE), labels], dim=1)
    logits = model.run_llm(embeds, full_mask)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=IGNORE)


def hf_batch(kind, ours, tokenizer, samples) -> dict:
    """transformers' inputs and labels for the same batch: `<image>`×Q, instruction, target (+ suffix), pads."""
    image_ids = [tokenizer.convert_tokens_to_ids("<image>")] * hf_oracle.NUM_QUERIES
    rows, labels, decoder_labels = [], [], []
    for prompt, target in zip(samples["text_input"], samples["text_output"]):
        prompt_ids = tokenizer(prompt)["input_ids"]
        if kind == "t5":
            rows.append(image_ids + prompt_ids)
            decoder_labels.append(tokenizer(target)["input_ids"])
        else:
            answer = tokenizer(target + ("\n" if kind == "opt" else "</s>"))["input_ids"][1:]
            rows.append(image_ids + prompt_ids + answer)
            labels.append([IGNORE] * (len(image_ids) + len(prompt_ids)) + answer)
    width = max(map(len, rows))
    pad = lambda row, value, size=width: row + [value] * (size - len(row))  # noqa: E731
    ids = torch.tensor([pad(r, tokenizer.pad_token_id) for r in rows])
    inputs = {"pixel_values": samples["image"], "input_ids": ids,
              "attention_mask": torch.tensor([pad([1] * len(r), 0) for r in rows])}
    if kind != "opt":
        inputs["qformer_input_ids"], inputs["qformer_attention_mask"] = ours.qformer_inputs(samples["text_input"])
    if kind == "t5":
        size = max(map(len, decoder_labels))
        inputs["labels"] = torch.tensor([pad(d, IGNORE, size) for d in decoder_labels])
    else:
        inputs["labels"] = torch.tensor([pad(lab, IGNORE) for lab in labels])
    return inputs


def test_supervised_only_loss_equals_full_vocabulary_loss(pair):
    _, _, _, ours, samples = pair
    with torch.no_grad():
        got, expected = ours(samples)["loss"], full_vocabulary_loss(ours, samples)
    assert abs(got.item() - expected.item()) <= 1e-6 * max(1.0, abs(expected.item())), (got.item(), expected.item())


def test_lm_head_runs_only_at_supervised_positions(pair):
    """Decoder-only LLMs: the head sees one row per supervised token (T5's forward has no such option)."""
    kind, _, _, ours, samples = pair
    if kind == "t5":
        pytest.skip("T5ForConditionalGeneration has no logits_to_keep: its head runs at every decoder position")
    seen = []
    handle = ours.llm.get_output_embeddings().register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    try:
        with torch.no_grad():
            ours(samples)
    finally:
        handle.remove()
    _, labels, _ = ours.training_tokens(samples)
    assert seen == [((labels != IGNORE).sum().item(), ours.llm.config.hidden_size)]


def test_loss_and_gradients_equal_transformers(pair):
    """One backward on each side: same loss, same gradients of the query tokens, projection and a Q-Former weight."""
    kind, hf_model, tokenizer, ours, samples = pair
    inputs = hf_batch(kind, ours, tokenizer, samples)
    hf_model.zero_grad(set_to_none=True)
    ours.zero_grad(set_to_none=True)
    expected = hf_model(**inputs).loss
    expected.backward()
    got = ours(samples)["loss"]
    got.backward()
    assert abs(got.item() - expected.item()) <= 1e-5 * abs(expected.item()), (got.item(), expected.item())
    pairs = [(ours.query_tokens, hf_model.query_tokens), (ours.proj.weight, hf_model.language_projection.weight),
             (ours.Qformer.bert.encoder.layer[0].crossattention.self.key.weight,
              hf_model.qformer.encoder.layer[0].crossattention.attention.key.weight)]
    for mine, theirs in pairs:
        scale = theirs.grad.abs().max().item()
        assert scale > 0
        assert (mine.grad - theirs.grad).abs().max().item() <= 1e-4 * scale


def test_frozen_vit_and_llm_stay_out_of_autograd(pair):
    """No graph through the frozen ViT (its output needs no grad; `ln_vision` trains from there), no weight
    gradients in the ViT or LLM, and gradients in every trainable part."""
    _, _, _, ours, samples = pair
    vit_outputs = []
    handle = ours.ln_vision.register_forward_pre_hook(lambda m, i: vit_outputs.append(i[0]))  # the ViT's output
    try:
        ours.zero_grad(set_to_none=True)
        ours(samples)["loss"].backward()
    finally:
        handle.remove()
    assert vit_outputs and all(not o.requires_grad and o.grad_fn is None for o in vit_outputs)
    assert all(p.grad is None for p in ours.visual_encoder.parameters())
    assert all(p.grad is None for p in ours.llm.parameters())
    assert ours.ln_vision.weight.grad is not None and ours.query_tokens.grad is not None
    assert ours.proj.weight.grad.abs().sum() > 0


def test_fused_adamw_step_equals_the_plain_loop(pair):
    """The optimizer lever changes no number: from the same gradients, fused AdamW and the for-loop one move the
    trainable parameters alike (to fp32 rounding; later steps then differ only as far as those roundings carry)."""
    _, _, _, ours, samples = pair
    ours.zero_grad(set_to_none=True)
    ours(samples)["loss"].backward()
    start = {n: (p.detach().clone(), p.grad.clone()) for n, p in ours.named_parameters() if p.requires_grad}
    results = []
    for options in ({"fused": True}, {"foreach": False}, None):
        with torch.no_grad():  # each run starts from the same weights and gradients; the last pass restores them
            for name, param in ours.named_parameters():
                if name in start:
                    param.copy_(start[name][0])
                    param.grad = start[name][1].clone()
        if options is None:
            break
        torch.optim.AdamW(ours.optimizer_param_groups(0.05), lr=1e-3, **options).step()
        results.append({n: p.detach().clone() for n, p in ours.named_parameters() if n in start})
    moved = max((results[0][n] - start[n][0]).abs().max().item() for n in start)
    differ = max((results[0][n] - results[1][n]).abs().max().item() for n in start)
    assert moved > 1e-4 and differ <= 1e-6, (moved, differ)
