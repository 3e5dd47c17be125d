"""The demo page's answers, computed by the model's own `generate` and `score_candidates`.

Generation is streamed token by token where one token is chosen per step (greedy search, sampling): a forward
pre-hook on the LLM sees each token `generate` feeds back into it, while `generate` itself runs unchanged in a worker
thread, so the streamed text ends exactly as `generate` returns it. Ranking turns the summed log-likelihoods of the
candidates into probabilities normalised over them (a softmax), best first.
"""

from __future__ import annotations

import queue
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch

from lavis_ib.app.checks import Decoding


@contextmanager
def fed_back_tokens(llm: torch.nn.Module) -> Iterator[queue.Queue]:
    """A queue receiving, at every decoding step, the token ids `generate` feeds back into `llm` (one per output).

    The prefill runs on input embeddings (the visual prefix and the prompt); every later step calls the LLM with the
    previous step's tokens as `input_ids`, which is what the hook reports. The last token chosen is never fed back:
    the caller takes the final text from `generate`'s result.
    """
    tokens: queue.Queue = queue.Queue()

    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids")
        if ids is not None and ids.shape[-1] > 0:
            tokens.put(ids[:, -1].tolist())

    handle = llm.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield tokens
    finally:
        handle.remove()


def stream_answers(model, image: torch.Tensor, instruction: str, decoding: Decoding) -> Iterator[list[str]]:
    """The answers to `instruction` about `image` (`[1, 3, H, W]`), yielded as they grow; the last item yielded is
    `model.generate`'s result. Beam search (whose beams reorder) yields only that."""
    samples = {"image": image, "prompt": instruction}
    if not decoding.streams:
        yield model.generate(samples, **decoding.generate_args())
        return
    result: dict = {}

    def run():
        try:
            result["answers"] = model.generate(samples, **decoding.generate_args())
        except BaseException as error:  # handed to the page's thread, which raises it
            result["error"] = error

    with fed_back_tokens(model.llm) as tokens:
        worker = threading.Thread(target=run, name="demo-generate", daemon=True)
        worker.start()
        so_far: list[list[int]] = [[] for _ in range(decoding.num_outputs)]
        while worker.is_alive() or not tokens.empty():
            try:
                step = tokens.get(timeout=0.05)
            except queue.Empty:
                continue
            for ids, token in zip(so_far, step):
                ids.append(token)
            yield model.decode(torch.tensor(so_far))
        worker.join()
    if "error" in result:
        raise result["error"]
    yield result["answers"]


@dataclass(frozen=True)
class RankedCandidate:
    """One candidate answer: its summed log-likelihood, its token count and its probability among the candidates."""

    text: str
    log_likelihood: float
    num_tokens: int
    probability: float


def rank_candidates(model, image: torch.Tensor, instruction: str, candidates: list[str]) -> list[RankedCandidate]:
    """`candidates` scored by `model.score_candidates` after `instruction` about `image`, most probable first."""
    scores = model.score_candidates({"image": image, "prompt": instruction}, candidates)
    sums, counts = scores.sum[0].float(), scores.num_tokens[0]
    probabilities = torch.softmax(sums, dim=0)
    ranked = [RankedCandidate(text, float(s), int(n), float(p))
              for text, s, n, p in zip(candidates, sums.tolist(), counts.tolist(), probabilities.tolist())]
    return sorted(ranked, key=lambda c: -c.log_likelihood)
