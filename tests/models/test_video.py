"""Video input `[B, 3, T, H, W]`: frames go through ViT + Q-Former independently and their query outputs are
concatenated frame after frame (LAVIS), checked against transformers' `InstructBlipVideoForConditionalGeneration`
(whose pixel_values are `[B, T, 3, H, W]`), plus the training / inference entry points on tiny models.
"""

from __future__ import annotations

import pytest
import torch

from lavis_ib import load_model, load_model_and_preprocess
from tests.models import hf_oracle

ATOL = 1e-4
FRAMES = 3
PROMPTS = ["What happens in this video?", "Describe every moving shape and its colour in great detail."]


@pytest.fixture(scope="module")
def video_pair(tmp_path_factory):
    directory = tmp_path_factory.mktemp("video")
    hf_model, tokenizer = hf_oracle.build("video", directory)
    ours, _, _ = load_model_and_preprocess("blip2_vicuna_instruct", "tiny", is_eval=True, checkpoint=str(directory))
    size = hf_oracle.IMAGE_SIZE
    hf_video = torch.randn(len(PROMPTS), FRAMES, 3, size, size, generator=torch.Generator().manual_seed(3))
    ours_video = hf_video.permute(0, 2, 1, 3, 4).contiguous()  # ours: [B, 3, T, H, W]
    return hf_model, tokenizer, ours, hf_video, ours_video


def hf_video_inputs(ours, tokenizer, hf_model, index, prompt, hf_video):
    """`<video>` placeholder ×(T*Q) followed by the prompt's tokens (BOS first), as HF's forward expects."""
    placeholder = hf_model.config.video_token_index
    ids = torch.tensor([[placeholder] * (FRAMES * hf_oracle.NUM_QUERIES) + tokenizer(prompt)["input_ids"]])
    q_ids, q_mask = ours.qformer_inputs([prompt])
    return {"pixel_values": hf_video[index : index + 1], "input_ids": ids, "attention_mask": torch.ones_like(ids),
            "qformer_input_ids": q_ids, "qformer_attention_mask": q_mask}


def test_video_loads_with_hf_video_token(video_pair):
    hf_model, _, ours, _, _ = video_pair
    assert ours.cfg.hf_video_token_index == hf_model.config.video_token_index
    assert ours.cfg.num_query_token == hf_oracle.NUM_QUERIES


def test_query_features_equal_hf_video_features(video_pair):
    hf_model, _, ours, hf_video, ours_video = video_pair
    q_ids, q_mask = ours.qformer_inputs(PROMPTS)
    with torch.no_grad():
        expected = hf_model.get_video_features(hf_video, qformer_input_ids=q_ids, qformer_attention_mask=q_mask,
                                               return_dict=True).pooler_output
        got = ours.query_features(ours_video, PROMPTS)
    assert got.shape == (len(PROMPTS), FRAMES * hf_oracle.NUM_QUERIES, expected.shape[-1])
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= ATOL
    # frame after frame: slice t of the concatenation is that frame's own (image) query output
    with torch.no_grad():
        for t in range(FRAMES):
            frame = ours.query_features(ours_video[:, :, t], PROMPTS)
            block = got[:, t * hf_oracle.NUM_QUERIES : (t + 1) * hf_oracle.NUM_QUERIES]
            assert (frame - block).abs().max().item() <= ATOL


def test_placeholder_count_is_frames_times_queries(video_pair):
    """HF scatters its `[1, T*Q, D]` video features into the placeholders, so the prompt needs exactly T*Q of them:
    with only Q (one frame's worth) HF silently uses the first frame, and its logits no longer match ours."""
    hf_model, tokenizer, ours, hf_video, ours_video = video_pair
    inputs = hf_video_inputs(ours, tokenizer, hf_model, 0, PROMPTS[0], hf_video)
    assert (inputs["input_ids"] == hf_model.config.video_token_index).sum().item() == FRAMES * hf_oracle.NUM_QUERIES
    ids = inputs["input_ids"][:, (FRAMES - 1) * hf_oracle.NUM_QUERIES :]
    with torch.no_grad():
        short = hf_model(**{**inputs, "input_ids": ids, "attention_mask": torch.ones_like(ids)}).logits[0]
        embeds, mask = ours.generation_inputs(ours.query_features(ours_video[:1], PROMPTS[:1]), PROMPTS[:1])
        got = ours.run_llm(embeds, mask)[0]
    assert got.shape[0] == short.shape[0] + (FRAMES - 1) * hf_oracle.NUM_QUERIES
    assert (got[-ids.shape[1] :] - short).abs().max().item() > ATOL


def test_llm_logits_equal_hf_forward(video_pair):
    hf_model, tokenizer, ours, hf_video, ours_video = video_pair
    with torch.no_grad():
        visual = ours.query_features(ours_video, PROMPTS)
        embeds, mask = ours.generation_inputs(visual, PROMPTS)
        batched = ours.run_llm(embeds, mask)
        for i, prompt in enumerate(PROMPTS):
            inputs = hf_video_inputs(ours, tokenizer, hf_model, i, prompt, hf_video)
            expected = hf_model(**inputs).logits[0]
            single_embeds, single_mask = ours.generation_inputs(visual[i : i + 1], [prompt])
            got = ours.run_llm(single_embeds, single_mask)[0]
            assert got.shape == expected.shape
            assert (got - expected).abs().max().item() <= ATOL, f"sample {i}"
            row = batched[i][mask[i].bool()]
            assert (row - expected).abs().max().item() <= ATOL, f"batched sample {i}"


def test_greedy_generation_equals_hf_generate(video_pair):
    hf_model, tokenizer, ours, hf_video, ours_video = video_pair
    settings = dict(num_beams=1, max_length=6, min_length=1, repetition_penalty=1.0, length_penalty=1.0,
                    length_semantics="new_tokens")
    for i, prompt in enumerate(PROMPTS):
        inputs = hf_video_inputs(ours, tokenizer, hf_model, i, prompt, hf_video)
        expected = hf_model.generate(**inputs, num_beams=1, max_new_tokens=6, min_new_tokens=1, do_sample=False,
                                     eos_token_id=ours.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        expected = expected[:, inputs["input_ids"].shape[1] :]
        got = ours.generate_token_ids({"image": ours_video[i : i + 1], "prompt": prompt}, **settings)
        assert got[0].tolist() == expected[0].tolist(), f"sample {i}"


# ----- the entry points on the tiny models ----------------------------------------------------------------------
@pytest.fixture(scope="module", params=["blip2_vicuna_instruct", "blip2_t5_instruct"])
def tiny(request):
    torch.manual_seed(0)
    model = load_model(request.param, "tiny")
    size = model.cfg.image_size
    video = torch.randn(2, 3, 2, size, size, generator=torch.Generator().manual_seed(5))
    return model, video


def test_video_forward_trains_qformer(tiny):
    model, video = tiny
    model.train()
    try:
        model.zero_grad(set_to_none=True)
        loss = model({"image": video, "text_input": ["what moves?", "describe the clip"],
                      "text_output": ["a ball", "two squares swap places"]})["loss"]
        assert torch.isfinite(loss)
        loss.backward()
        grads = [p.grad for n, p in model.named_parameters() if n.startswith("Qformer.") and p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads)
        assert model.query_tokens.grad is not None and model.query_tokens.grad.abs().sum() > 0
        assert all(p.grad is None for p in model.llm.parameters())
        assert all(p.grad is None for p in model.visual_encoder.parameters())
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


def test_video_generate_and_answers(tiny):
    """Video visual tokens are the frames' query tokens concatenated in frame order, and every text entry point
    conditions on them: generate == predict_answers == decoded ids, and swapping frames changes the scores."""
    model, video = tiny
    prompts = ["what moves?", "describe the clip"]
    with torch.no_grad():
        visual = model.query_features(video, prompts)
        per_frame = torch.cat([model.query_features(video[:, :, t], prompts) for t in range(video.shape[2])], dim=1)
    assert visual.shape == (2, video.shape[2] * model.cfg.num_query_token, per_frame.shape[-1])
    assert (visual - per_frame).abs().max().item() <= 1e-5
    settings = dict(num_beams=2, max_length=3, min_length=1, length_penalty=model.ANSWER_LENGTH_PENALTY)
    ids = model.generate_token_ids({"image": video, "prompt": prompts}, **settings)
    texts = model.generate({"image": video, "prompt": prompts}, **settings)
    assert texts == model.decode(ids)
    answers = model.predict_answers({"image": video, "text_input": prompts}, num_beams=2, max_len=3)
    assert answers == texts
    candidates = ["a ball", "two squares"]
    scores = model.score_candidates({"image": video, "prompt": prompts}, candidates).stacked()
    swapped = model.score_candidates({"image": video.flip(2), "prompt": prompts}, candidates).stacked()
    assert (scores - swapped).abs().max().item() > 1e-4


def test_video_predict_class(tiny):
    model, video = tiny
    candidates = ["a ball", "two squares", "nothing"]
    ranks = model.predict_class({"image": video, "prompt": ["what moves?", "what is shown?"]}, candidates)
    assert ranks.shape == (2, 3)
    assert all(sorted(r.tolist()) == [0, 1, 2] for r in ranks)
    scores = model.score_candidates({"image": video, "prompt": ["what moves?", "what is shown?"]}, candidates)
    assert all(torch.isfinite(s).all() for s in scores.sum)
    assert ranks.tolist() == [torch.argsort(s, descending=True, stable=True).tolist() for s in scores.sum]
