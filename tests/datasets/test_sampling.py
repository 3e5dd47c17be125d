"""Balanced sampling: sqrt-size ratios with multipliers, empirical ratios, resume, and per-rank streams."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from lavis_ib.datasets.sampling import BalancedSampler, MixtureDataset, balanced_mixture, balanced_ratios

# Training-sample counts of the 13 held-in datasets (reference/paper_and_datasets.md §3.1).
HELD_IN = {
    "coco_caption": 566_747, "capfilt14m": 13_873_136, "textcaps": 109_765, "vqav2": 443_757, "okvqa": 9_009,
    "aokvqa": 17_056, "ocrvqa": 801_579, "vqav2_qg": 443_757, "okvqa_qg": 9_009, "aokvqa_qg": 17_056,
    "llava150k_conversation": 56_681, "llava150k_reasoning": 76_643, "llava150k_detail": 23_240,
}


def draws(sampler: BalancedSampler, n: int) -> list[tuple[int, int, int]]:
    return list(itertools.islice(iter(sampler), n))


def test_ratios_are_proportional_to_sqrt_size_times_multiplier():
    ratios = balanced_ratios({"a": 100, "b": 400, "c": 900}, {"c": 0.5})
    weights = np.array([10, 20, 15]) / 45
    assert np.allclose(list(ratios.values()), weights)
    assert math.isclose(balanced_ratios(HELD_IN)["capfilt14m"], 0.457, abs_tol=0.001)  # the paper-table figure


def test_multiplier_for_an_unknown_dataset_names_the_closest():
    with pytest.raises(KeyError, match="did you mean 'okvqa'"):
        balanced_ratios(HELD_IN, {"ok_vqa": 2.0})


def test_empirical_ratios_within_one_point_over_100k_draws():
    ratios = balanced_ratios(HELD_IN, {"okvqa": 2.0, "aokvqa": 0.5})
    sampler = BalancedSampler(list(HELD_IN.values()), list(ratios.values()), seed=3)
    counts = np.bincount([d for d, _, _ in draws(sampler, 100_000)], minlength=len(HELD_IN)) / 100_000
    assert np.abs(counts - np.array(list(ratios.values()))).max() < 0.01


def test_resume_continues_the_identical_stream():
    sampler = BalancedSampler([50, 30, 7], [0.5, 0.3, 0.2], seed=11, rank=1, world_size=2)
    stream = draws(sampler, 1_000)
    resumed = BalancedSampler([50, 30, 7], [0.5, 0.3, 0.2], seed=11, rank=1, world_size=2)
    resumed.load_state_dict(sampler.state_dict(consumed=600))
    assert draws(resumed, 400) == stream[600:]
    older = {k: v for k, v in sampler.state_dict(consumed=600).items() if k != "layouts"}  # before shard layouts
    resumed.load_state_dict(older)
    assert draws(resumed, 400) == stream[600:]


def test_resume_with_a_different_mixture_is_refused():
    state = BalancedSampler([50, 30], [0.5, 0.5], seed=1).state_dict()
    with pytest.raises(ValueError, match="ratios differ"):
        BalancedSampler([50, 30], [0.7, 0.3], seed=1).load_state_dict(state)


def test_ranks_draw_different_streams_of_disjoint_samples():
    sizes = [40, 40]
    streams = [draws(BalancedSampler(sizes, [0.5, 0.5], seed=5, rank=r, world_size=2), 30) for r in (0, 1)]
    assert [d for d, _, _ in streams[0]] != [d for d, _, _ in streams[1]]
    seen = [{(d, i) for d, i, e in stream if e == 0} for stream in streams]
    assert not seen[0] & seen[1]


def test_each_dataset_is_a_permutation_per_epoch():
    sampler = BalancedSampler([5, 1000], [0.5, 0.5], seed=2)
    small = [(i, e) for d, i, e in draws(sampler, 200) if d == 0]
    first_epochs = [sorted(i for i, e in small if e == epoch) for epoch in range(3)]
    assert first_epochs == [list(range(5))] * 3


class Numbers:
    """A stand-in dataset of `n` items naming their dataset, with an optional configured `sample_ratio`."""

    def __init__(self, name, n, sample_ratio=None):
        self.name, self.n = name, n
        if sample_ratio is not None:
            self.sample_ratio = sample_ratio

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"dataset": self.name, "index": i}


def test_mixture_dataset_serves_items_of_each_dataset():
    mixture, sampler = balanced_mixture({"a": Numbers("a", 4), "b": Numbers("b", 9)}, seed=0)
    assert isinstance(mixture, MixtureDataset)
    items = [mixture[key] for key in draws(sampler, 50)]
    assert {item["dataset"] for item in items} == {"a", "b"}
    assert all(item["index"] < (4 if item["dataset"] == "a" else 9) for item in items)


def test_mixture_multipliers_are_each_datasets_configured_sample_ratio():
    """sqrt(4) × 2 : sqrt(9) × 1 = 4 : 3; a dataset without `sample_ratio` counts 1; there is no second source."""
    _, sampler = balanced_mixture({"a": Numbers("a", 4, sample_ratio=2.0), "b": Numbers("b", 9)}, seed=0)
    assert np.allclose(sampler.probabilities, [4 / 7, 3 / 7])
    _, muted = balanced_mixture({"a": Numbers("a", 4, sample_ratio=0.0), "b": Numbers("b", 9)}, seed=0)
    assert muted.probabilities.tolist() == [0.0, 1.0] and {d for d, _, _ in draws(muted, 200)} == {1}
    with pytest.raises(TypeError):
        balanced_mixture({"a": Numbers("a", 4)}, {"a": 2.0})
