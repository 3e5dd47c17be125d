"""Ranking many candidates after one shared prefix: chunk planning and the packed prefix-tree layout.

Full-sequence scoring (LAVIS) runs `[Q | prompt | candidate]` once per candidate and takes a full-vocabulary
log-softmax at every position. Here the prefix runs once and its KV cache is kept; the candidates follow in chunks.
For a decoder-only LLM, a chunk's candidates are merged into a prefix tree (trie) and laid out as ONE packed row after
the prefix: each node is a distinct leading-token path, attends to the prefix and to its own ancestors only (a tree
attention mask), and sits at the position it has in the full sequence — so every hidden state is that of the full
sequence, computed once for all candidates sharing it. A candidate's last token is never an input (nothing is
predicted from it), so one-token candidates cost nothing beyond the prefix's last position. Log-probabilities are
taken only for the candidate tokens: logit minus logsumexp, at the positions that predict them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

MAX_CHUNK_TOKENS = 512  # packed tokens per LLM call: beyond this, the masked-out attention costs more than it saves
LOGITS_ELEMENTS = 2**25  # bound on a chunk's `tokens x vocabulary` logits (128 MB in fp32)


@dataclass
class CandidateScores:
    """Per-candidate log-likelihoods of each sample: the sum over candidate tokens and the per-token mean."""

    sum: list[torch.Tensor]
    mean: list[torch.Tensor]
    num_tokens: list[torch.Tensor]

    def stacked(self, which: str = "sum") -> torch.Tensor:
        """`[B, C]` when every sample has the same number of candidates."""
        return torch.stack(getattr(self, which))


def chunk_token_budget(vocab_size: int) -> int:
    """Tokens one chunk may hold: `MAX_CHUNK_TOKENS`, fewer when its logits would exceed `LOGITS_ELEMENTS`."""
    return max(1, min(MAX_CHUNK_TOKENS, LOGITS_ELEMENTS // vocab_size))


def plan_chunks(order: Sequence[int], costs: Sequence[int], budget: int, n_segments: int = 1,
                padded: bool = False) -> list[list[int]]:
    """Split `order` (item indices) into contiguous chunks costing at most `budget` (an item costlier than that
    goes alone), after first cutting it into `n_segments` equal parts. A chunk costs the sum of its `costs` (aligned
    with `order`), or, `padded`, its size times its largest cost (rows padded to the longest; costs ascending)."""
    size = -(-len(order) // max(1, n_segments)) if order else 1
    chunks = []
    for start in range(0, len(order), size):
        chunk, total = [], 0
        for item, cost in zip(order[start : start + size], costs[start : start + size]):
            grown = (len(chunk) + 1) * cost if padded else total + cost
            if chunk and grown > budget:
                chunks.append(chunk)
                chunk, grown = [], cost
            chunk.append(item)
            total = grown
        chunks.append(chunk)
    return chunks


def trie_chunks(token_ids: Sequence[Sequence[int]], budget: int, n_segments: int = 1) -> list[list[int]]:
    """Candidate indices in lexicographic token order (so shared leading tokens meet in one chunk), chunked by the
    trie nodes each candidate adds after its predecessor: its input tokens (all but the last) minus those it shares.
    (A chunk's first candidate may count a few shared nodes as free: the budget holds to within one candidate.)"""
    order = sorted(range(len(token_ids)), key=lambda i: list(token_ids[i]))
    costs, previous = [], []
    for i in order:
        inputs = list(token_ids[i][:-1])
        costs.append(len(inputs) - common_prefix_length(inputs, previous))
        previous = inputs
    return plan_chunks(order, costs, budget, n_segments)


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    return next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


@dataclass
class PackedCandidates:
    """A chunk of candidates as a trie packed after the prefix.

    Nodes (the packed row): `tokens[N]`, `depth[N]` (0 right after the prefix), `parent[N]` (-1: the prefix).
    Scored tokens, flattened over candidates: `source[T]`, the state that predicts the token (0: the prefix's last
    position, k + 1: node k), `target[T]` its id, `owner[T]` its candidate (position in the chunk).
    """

    tokens: torch.Tensor
    depth: torch.Tensor
    parent: torch.Tensor
    source: torch.Tensor
    target: torch.Tensor
    owner: torch.Tensor

    @classmethod
    def build(cls, token_ids: Sequence[Sequence[int]], candidates: list[int]) -> "PackedCandidates":
        """Merge the `candidates` (indices into `token_ids`) into one trie of their input tokens."""
        nodes: dict[tuple[int, int], int] = {}
        tokens, depth, parent, source, target, owner = [], [], [], [], [], []
        for c, index in enumerate(candidates):
            state = -1
            for j, token in enumerate(token_ids[index]):
                source.append(state + 1)
                target.append(token)
                owner.append(c)
                key = (state, token)
                if j + 1 < len(token_ids[index]):  # the last token predicts nothing: never an input
                    if key not in nodes:
                        nodes[key] = len(tokens)
                        tokens.append(token)
                        depth.append(j)
                        parent.append(state)
                    state = nodes[key]
        as_long = lambda values: torch.tensor(values, dtype=torch.long)  # noqa: E731
        return cls(*map(as_long, (tokens, depth, parent, source, target, owner)))

    @property
    def num_nodes(self) -> int:
        return self.tokens.numel()

    def position_ids(self, prefix_length: int) -> torch.Tensor:
        """`[1, N]`: each node's position in the full `[prefix | candidate]` sequence."""
        return (prefix_length + self.depth)[None]

    def attention_mask(self, prefix_length: int) -> torch.Tensor:
        """`[1, 1, N, prefix + N]` boolean (True: attend): the whole prefix, then each node's ancestors and itself."""
        count = self.num_nodes
        rows = torch.arange(count)
        parent = torch.cat([self.parent.masked_fill(self.parent < 0, count), torch.tensor([count])])  # -1: a sink
        tree = torch.zeros(count, count + 1, dtype=torch.bool)
        current = rows
        for _ in range(int(self.depth.max()) + 1):  # a node at depth d has d ancestors
            tree[rows, current] = True
            current = parent[current]
        prefix = torch.ones(count, prefix_length, dtype=torch.bool)
        return torch.cat([prefix, tree[:, :count]], dim=1)[None, None]

    def log_likelihoods(self, first: torch.Tensor, node_logits: torch.Tensor, size: int):
        """Per candidate: the summed log-probabilities of its tokens and their count, from the prefix's last logits
        `first [V]` and the nodes' `node_logits [N, V]`."""
        states = torch.cat([first[None].float(), node_logits.float()])
        picked = token_logprobs(states, self.source.to(states.device), self.target.to(states.device))
        owner = self.owner.to(states.device)
        sums = torch.zeros(size, device=states.device).index_add_(0, owner, picked)
        return sums, torch.bincount(owner, minlength=size)


def token_logprobs(logits: torch.Tensor, rows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """`log_softmax(logits[rows])[targets]`, with the logsumexp taken once per distinct row that is used."""
    used, where = torch.unique(rows, return_inverse=True)
    normaliser = logits[used].logsumexp(dim=-1)
    return logits[rows, targets] - normaliser[where]
