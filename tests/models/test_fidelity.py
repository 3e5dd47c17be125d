"""Fidelity against transformers (the oracle): same random weights, same inputs → same numbers and tokens.

Each HF model is built randomly, saved with `save_pretrained`, and loaded through our public API from that
directory. Prompts differ in length so batches carry padding; batched results must equal per-sample ones.
"""

from __future__ import annotations

import pytest
import torch

from lavis_ib import load_model_and_preprocess
from tests.models import hf_oracle

ATOL = 1e-4
PROMPTS = ["What is shown?", "Describe the colours of every shape in this picture in detail.",
           "Where is it?", "Is there a red circle to the left of the blue square here?"]
CANDIDATES = ["red", "a blue square", "green triangle", "no"]
ARCH = {"vicuna": "blip2_vicuna_instruct", "t5": "blip2_t5_instruct", "opt": "blip2_opt"}


@pytest.fixture(scope="module", params=["vicuna", "t5", "opt"])
def pair(request, tmp_path_factory):
    """(kind, HF model, HF tokenizer, our model loaded from the saved HF directory, images)."""
    directory = tmp_path_factory.mktemp(request.param)
    hf_model, tokenizer = hf_oracle.build(request.param, directory)
    ours, vis, _ = load_model_and_preprocess(ARCH[request.param], "tiny", is_eval=True, checkpoint=str(directory))
    images = torch.randn(len(PROMPTS), 3, hf_oracle.IMAGE_SIZE, hf_oracle.IMAGE_SIZE, generator=torch.Generator().manual_seed(1))
    return request.param, hf_model, tokenizer, ours, images


def hf_inputs(kind, ours, tokenizer, index, prompt, images):
    """HF model inputs for one sample: `<image>`×Q then the prompt's tokens (as transformers' processor builds)."""
    image_ids = [tokenizer.convert_tokens_to_ids("<image>")] * hf_oracle.NUM_QUERIES
    ids = torch.tensor([image_ids + tokenizer(prompt)["input_ids"]])
    inputs = {"pixel_values": images[index : index + 1], "input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if kind != "opt":
        q_ids, q_mask = ours.qformer_inputs([prompt])
        inputs.update(qformer_input_ids=q_ids, qformer_attention_mask=q_mask)
    return inputs


def test_vision_features_equal(pair):
    kind, hf_model, _, ours, images = pair
    with torch.no_grad():
        expected = hf_model.vision_model(pixel_values=images).last_hidden_state
        got = ours.encode_image(images)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= ATOL


def test_qformer_outputs_equal(pair):
    kind, hf_model, _, ours, images = pair
    with torch.no_grad():
        embeds = hf_model.vision_model(pixel_values=images).last_hidden_state
        queries = hf_model.query_tokens.expand(len(images), -1, -1)
        if kind == "opt":
            expected = hf_model.qformer(query_embeds=queries, encoder_hidden_states=embeds).last_hidden_state
            got = ours.Qformer(queries, embeds)
        else:
            ids, mask = ours.qformer_inputs(PROMPTS)
            full_mask = torch.cat([torch.ones(len(images), hf_oracle.NUM_QUERIES, dtype=mask.dtype), mask], dim=1)
            expected = hf_model.qformer(input_ids=ids, attention_mask=full_mask, query_embeds=queries,
                                        encoder_hidden_states=embeds).last_hidden_state
            got = ours.Qformer(queries, embeds, ids, mask)
    real = torch.cat([torch.ones(len(images), hf_oracle.NUM_QUERIES), mask], 1).bool() if kind != "opt" else None
    diff = (got - expected).abs()
    assert (diff[real] if real is not None else diff).max().item() <= ATOL


def test_llm_logits_equal_per_sample_and_batched(pair):
    """Our batched LLM input (left padding) gives each sample the logits HF gives it alone."""
    kind, hf_model, tokenizer, ours, images = pair
    with torch.no_grad():
        visual = ours.query_features(images, PROMPTS)
        for i, prompt in enumerate(PROMPTS):
            inputs = hf_inputs(kind, ours, tokenizer, i, prompt, images)
            if kind == "t5":
                decoder = torch.tensor([[0, 5, 17, 42]])
                expected = hf_model(**inputs, decoder_input_ids=decoder).logits[0]
                embeds, mask = ours.encoder_inputs(visual[i : i + 1], [prompt])
                got = ours.llm(inputs_embeds=embeds, attention_mask=mask, decoder_input_ids=decoder).logits[0]
            else:
                expected = hf_model(**inputs).logits[0]
                embeds, mask = ours.generation_inputs(visual, PROMPTS)
                got = ours.run_llm(embeds, mask)[i][mask[i].bool()]
            assert got.shape == expected.shape
            assert (got - expected).abs().max().item() <= ATOL, f"sample {i}"


@pytest.mark.parametrize("num_beams", [1, 5])
def test_generation_token_ids_equal(pair, num_beams):
    kind, hf_model, tokenizer, ours, images = pair
    settings = dict(num_beams=num_beams, max_length=8, min_length=1, repetition_penalty=1.0, length_penalty=1.0,
                    length_semantics="new_tokens")
    batched = ours.generate_token_ids({"image": images, "prompt": PROMPTS}, **settings)
    for i, prompt in enumerate(PROMPTS):
        inputs = hf_inputs(kind, ours, tokenizer, i, prompt, images)
        eos = ours.eos_token_id if kind != "t5" else tokenizer.eos_token_id
        expected = hf_model.generate(**inputs, num_beams=num_beams, max_new_tokens=8, min_new_tokens=1,
                                     do_sample=False, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
        if kind != "t5":
            expected = expected[:, inputs["input_ids"].shape[1] :]
        single = ours.generate_token_ids({"image": images[i : i + 1], "prompt": prompt}, **settings)
        assert single[0].tolist() == expected[0].tolist(), f"sample {i}"
        row = batched[i][: single.shape[1]]
        assert row.tolist() == single[0].tolist(), f"batched sample {i} differs from its single run"
        assert (batched[i][single.shape[1] :] == tokenizer.pad_token_id).all()


def test_score_candidates_equal_hf_logprob_sums(pair):
    kind, hf_model, tokenizer, ours, images = pair
    scores = ours.score_candidates({"image": images[:2], "prompt": PROMPTS[:2]}, CANDIDATES, n_segments=2)
    for i in range(2):
        for c, candidate in enumerate(CANDIDATES):
            inputs = hf_inputs(kind, ours, tokenizer, i, PROMPTS[i], images)
            with torch.no_grad():
                if kind == "t5":
                    labels = torch.tensor([tokenizer(candidate)["input_ids"]])
                    logits = hf_model(**inputs, labels=labels).logits[0]
                    target = labels[0]
                else:
                    target = torch.tensor(tokenizer(candidate)["input_ids"][1:])
                    ids = torch.cat([inputs["input_ids"][0], target])[None]
                    logits = hf_model(**{**inputs, "input_ids": ids, "attention_mask": torch.ones_like(ids)}).logits[0]
                    logits = logits[-len(target) - 1 : -1]
            expected = logits.log_softmax(-1).gather(-1, target[:, None]).sum().item()
            assert abs(scores.sum[i][c].item() - expected) <= 1e-3, (i, candidate)
            assert scores.num_tokens[i][c].item() == len(target)
    ranks = ours.predict_class({"image": images[:2], "prompt": PROMPTS[:2]}, CANDIDATES)
    assert ranks.tolist() == [torch.argsort(s, descending=True, stable=True).tolist() for s in scores.sum]


def test_export_round_trip_loads_in_transformers(pair, tmp_path):
    """`export_hf` writes a directory transformers loads, reproducing our logits on the original vocabulary."""
    kind, hf_model, tokenizer, ours, images = pair
    ours.export_hf(tmp_path)
    reloaded = type(hf_model).from_pretrained(tmp_path).eval()
    inputs = hf_inputs(kind, ours, tokenizer, 1, PROMPTS[1], images)
    extra = {"decoder_input_ids": torch.tensor([[0, 3, 9]])} if kind == "t5" else {}
    with torch.no_grad():
        expected = hf_model(**inputs, **extra).logits
        got = reloaded(**inputs, **extra).logits[..., : expected.shape[-1]]
    assert (got - expected).abs().max().item() <= ATOL


def test_training_loss_equals_hf_loss_on_equivalent_labels(pair):
    """`forward`'s loss equals transformers' own loss for the same batch laid out with HF's `<image>` tokens."""
    kind, hf_model, tokenizer, ours, images = pair
    targets = ["a red circle", "two blue squares and a green triangle", "left", "yes"]
    samples = {"image": images, "text_input": PROMPTS, "text_output": targets}
    with torch.no_grad():
        got = ours(samples)["loss"]
    image_ids = [tokenizer.convert_tokens_to_ids("<image>")] * hf_oracle.NUM_QUERIES
    pad = tokenizer.pad_token_id
    rows, labels, decoder_labels = [], [], []
    for prompt, target in zip(PROMPTS, targets):
        prompt_ids = tokenizer(prompt)["input_ids"]
        if kind == "t5":
            rows.append(image_ids + prompt_ids)
            labels.append([-100] * len(rows[-1]))
            decoder_labels.append(tokenizer(target)["input_ids"])
        else:
            suffix = "\n" if kind == "opt" else "</s>"
            answer = tokenizer(target + suffix)["input_ids"][1:]
            rows.append(image_ids + prompt_ids + answer)
            labels.append([-100] * (len(image_ids) + len(prompt_ids)) + answer)
    width = max(map(len, rows))
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    inputs = {"pixel_values": images, "input_ids": ids, "attention_mask": mask}
    if kind != "opt":
        q_ids, q_mask = ours.qformer_inputs(PROMPTS)
        inputs.update(qformer_input_ids=q_ids, qformer_attention_mask=q_mask)
    if kind == "t5":
        dec_width = max(map(len, decoder_labels))
        hf_labels = torch.tensor([d + [-100] * (dec_width - len(d)) for d in decoder_labels])
    else:
        hf_labels = torch.tensor([lab + [-100] * (width - len(lab)) for lab in labels])
    with torch.no_grad():
        expected = hf_model(**inputs, labels=hf_labels).loss
    assert abs(got.item() - expected.item()) <= ATOL, (got.item(), expected.item())
