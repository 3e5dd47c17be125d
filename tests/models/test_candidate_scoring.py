"""Ranking on a shared prefix equals full-sequence scoring (LAVIS's method, written here as the reference).

The library runs `[Q | prompt]` once per sample and scores the candidates on its cache (decoder-only: prefix trees
packed into one row per chunk; T5: decoder batches after the start position). The reference below scores every
candidate as its own full sequence with a full-vocabulary log-softmax at every position.
"""

from __future__ import annotations

import pytest
import torch

from lavis_ib import load_model
from lavis_ib.models.inference import candidate_scoring
from lavis_ib.models.inference.candidate_scoring import PackedCandidates, plan_chunks, trie_chunks
from lavis_ib.models.text.batching import IGNORE, pad_rows

ARCHS = {"vicuna": "blip2_vicuna_instruct", "t5": "blip2_t5_instruct", "opt": "blip2_opt"}
# 1 to ~12 tokens; several share leading tokens ("a cat ...", "the red ...", "two blue squares ...")
CANDIDATES = ["a", "no", "yes", "a cat", "a cat sat", "a cat sat down", "a dog", "the red square", "the red circle",
              "blue", "two blue squares", "two blue squares and a red one"]
PROMPTS = ["what is it?", "Describe the picture in detail, with the colours of every shape and where they are."]
ATOL = 1e-4


@pytest.fixture(scope="module", params=sorted(ARCHS))
def model(request):
    torch.manual_seed(0)
    return load_model(ARCHS[request.param], "tiny", is_eval=True)


def images(model, count: int) -> torch.Tensor:
    return torch.randn(count, 3, model.cfg.image_size, model.cfg.image_size, generator=torch.Generator().manual_seed(2))


@torch.no_grad()
def full_sequence_scores(model, visual: torch.Tensor, prompt: str, candidates: list[str]):
    """The reference: each candidate as one whole right-padded row, log-softmax over the vocabulary everywhere.

    Decoder-only: `[Q | prompt | candidate]` (candidate tokenised alone, BOS dropped). T5: encoder `[Q | prompt]`,
    decoder teacher-forced on the candidate with `</s>`. Returns `(sums[C], num_tokens[C])`.
    """
    count = len(candidates)
    if hasattr(model, "encoder_inputs"):  # T5
        embeds, mask = model.encoder_inputs(visual, [prompt])
        labels = model.target_labels(candidates, None)
        logprobs = model.decoder_logprobs(embeds.expand(count, -1, -1), mask.expand(count, -1), labels)
    else:
        prompt_ids = model.text.ids([prompt], "left", None)[0]
        answers = [ids[1:] for ids in model.text.ids(candidates, "right", None)]
        rows = pad_rows([prompt_ids + a for a in answers], [[IGNORE] * len(prompt_ids) + a for a in answers],
                        model.tokenizer.pad_token_id)
        embeds, mask = model.with_visual_prefix(visual.expand(count, -1, -1), rows["input_ids"], rows["attention_mask"])
        logprobs = model.run_llm(embeds, mask)[:, visual.shape[1] - 1 : -1].log_softmax(-1)
        labels = rows["labels"]
    supervised = labels != IGNORE
    picked = logprobs.gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
    return (picked * supervised).sum(dim=1), supervised.sum(dim=1)


def reference(model, samples: dict, per_sample: list[list[str]]):
    with torch.no_grad():
        visual = model.query_features(samples["image"], samples["prompt"])
    return [full_sequence_scores(model, visual[b : b + 1], samples["prompt"][b], c) for b, c in enumerate(per_sample)]


def ranks(scores: torch.Tensor) -> list[int]:
    return torch.argsort(scores, descending=True, stable=True).tolist()


def test_scores_and_ranks_equal_full_sequence_scoring(model):
    """Batch of 2, per-sample candidate lists of different sizes, candidates of 1 to ~12 tokens."""
    per_sample = [CANDIDATES, CANDIDATES[3:10][::-1]]
    samples = {"image": images(model, 2), "prompt": PROMPTS}
    got = model.score_candidates(samples, per_sample)
    for b, (sums, counts) in enumerate(reference(model, samples, per_sample)):
        assert got.num_tokens[b].tolist() == counts.tolist()
        assert (got.sum[b] - sums).abs().max().item() <= ATOL, b
        assert (got.mean[b] - sums / counts).abs().max().item() <= ATOL, b
        assert ranks(got.sum[b]) == ranks(sums)
    assert max(c.max().item() for c in got.num_tokens) >= 8 and min(c.min().item() for c in got.num_tokens) <= 2
    ranked = model.predict_class(samples, per_sample)
    assert [r.tolist() for r in ranked] == [ranks(s) for s in got.sum]


def test_video_scores_equal_full_sequence_scoring(model):
    """Video `[B, 3, T, H, W]`: the prefix holds T x Q visual tokens."""
    size = model.cfg.image_size
    video = torch.randn(1, 3, 3, size, size, generator=torch.Generator().manual_seed(4))
    samples = {"image": video, "prompt": PROMPTS[:1]}
    got = model.score_candidates(samples, CANDIDATES)
    (sums, _), = reference(model, samples, [CANDIDATES])
    assert (got.sum[0] - sums).abs().max().item() <= ATOL
    assert ranks(got.sum[0]) == ranks(sums)


def test_scores_do_not_depend_on_segments_or_chunk_size(model, monkeypatch):
    samples = {"image": images(model, 2), "prompt": PROMPTS}
    one = model.score_candidates(samples, CANDIDATES, n_segments=1).stacked()
    three = model.score_candidates(samples, CANDIDATES, n_segments=3).stacked()
    monkeypatch.setattr(candidate_scoring, "LOGITS_ELEMENTS", 3 * model.llm.config.get_text_config().vocab_size)
    tiny_chunks = model.score_candidates(samples, CANDIDATES).stacked()  # at most 3 tokens per LLM call
    assert (one - three).abs().max().item() <= ATOL  # fp32 rounding of sums of ~250
    assert (one - tiny_chunks).abs().max().item() <= ATOL
    assert [ranks(r) for r in one] == [ranks(r) for r in three] == [ranks(r) for r in tiny_chunks]


def test_prefix_runs_once_per_sample_and_calls_stay_within_budget(model, monkeypatch):
    """One prefix call per sample (decoder-only: `[Q | prompt]`; T5: the decoder start after the encoder), then
    calls on its cache holding at most the budget's candidate tokens."""
    budget = 16
    monkeypatch.setattr(candidate_scoring, "LOGITS_ELEMENTS", budget * model.llm.config.get_text_config().vocab_size)
    calls = []  # (on a cache?, batch x tokens) of each LLM call; inputs: decoder-only embeddings, T5 decoder ids
    record = lambda module, args, kwargs: calls.append((  # noqa: E731
        kwargs.get("past_key_values") is not None, kwargs.get("inputs_embeds", kwargs.get("decoder_input_ids")).shape))
    handle = model.llm.register_forward_pre_hook(record, with_kwargs=True)
    try:
        model.score_candidates({"image": images(model, 2), "prompt": PROMPTS}, CANDIDATES)
    finally:
        handle.remove()
    prefixes = [shape for cached, shape in calls if not cached]
    on_cache = [shape for cached, shape in calls if cached]
    assert len(prefixes) == 2 and all(shape[0] == 1 for shape in prefixes)
    assert len(on_cache) >= 4 and all(shape[0] * shape[1] <= budget for shape in on_cache)


def test_candidates_sharing_leading_tokens_share_trie_nodes():
    token_ids = [[5, 6, 7], [5, 6, 8], [5, 9], [4], [5, 6, 7, 1]]
    packed = PackedCandidates.build(token_ids, [0, 1, 2, 3, 4])
    # inputs (every token but the last): 5-6 | 5-6 | 5 | - | 5-6-7 -> nodes 5, 6, 7
    assert packed.tokens.tolist() == [5, 6, 7]
    assert packed.depth.tolist() == [0, 1, 2]
    assert packed.parent.tolist() == [-1, 0, 1]
    assert packed.source.tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 0, 0, 1, 2, 3]
    assert packed.target.tolist() == [5, 6, 7, 5, 6, 8, 5, 9, 4, 5, 6, 7, 1]
    mask = packed.attention_mask(prefix_length=2)[0, 0]
    assert mask.tolist() == [[True, True, True, False, False],
                             [True, True, True, True, False],
                             [True, True, True, True, True]]
    assert packed.position_ids(prefix_length=2).tolist() == [[2, 3, 4]]


def test_tree_mask_keeps_branches_apart():
    packed = PackedCandidates.build([[1, 2, 3], [1, 4, 5], [6, 7]], [0, 1, 2])
    assert packed.tokens.tolist() == [1, 2, 4, 6]
    tree = packed.attention_mask(prefix_length=0)[0, 0].int().tolist()
    assert tree == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 1]]


def test_chunk_planning():
    assert plan_chunks([0, 1, 2, 3], [2, 2, 2, 9], budget=4) == [[0, 1], [2], [3]]
    assert plan_chunks([0, 1, 2, 3], [1, 1, 1, 1], budget=10, n_segments=3) == [[0, 1], [2, 3]]
    assert plan_chunks([0, 1, 2, 3], [1, 2, 2, 3], budget=6, padded=True) == [[0, 1, 2], [3]]  # 3 x 2, then 3
    token_ids = [[3, 1], [1, 2, 3], [1, 2, 4], [2]]
    chunks = trie_chunks(token_ids, budget=2)
    assert chunks == [[1, 2, 3], [0]]  # lexicographic; [1,2,3] and [1,2,4] share their 2 input nodes, [2] has none
    assert sorted(sum(chunks, [])) == [0, 1, 2, 3]
