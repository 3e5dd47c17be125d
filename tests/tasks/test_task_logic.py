"""Evaluation task logic with a fake model: decoding resolution, answer mapping, candidate ranking, metrics,
result rows and submission formats; the resumable prediction store; the results table beside the paper's Table 1.

Every expected value is computed by hand (or by an independent reference: `math`, sklearn, the metric functions
called directly), never by the code under test.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from lavis_ib.common.registry import registry
from lavis_ib.common.schema import ConfigError
from lavis_ib.datasets.builders.schema import Decoding, EvalProtocol
from lavis_ib.metrics import (Undefined, aokvqa_accuracy, caption_metrics, exact_match, ivqa_accuracy,
                              ranking_metrics, vqa_accuracy)
from lavis_ib.models.blip2 import Blip2Base
from lavis_ib.models.inference.candidate_scoring import CandidateScores
from lavis_ib.runners.predictions import PredictionStore
from lavis_ib.runners.results import render_markdown, result_row
from lavis_ib.tasks.dialog import option_ranks


# ----------------------------------------------------------------------------------------------------- fakes


class FakeModel:
    """What the tasks use of a model: generation defaults, `generate` and `score_candidates`, with preset outputs."""

    GENERATE_DEFAULTS = dict(Blip2Base.GENERATE_DEFAULTS)
    ANSWER_LENGTH_PENALTY = 0.0

    def __init__(self, outputs=(), sums=(), means=None, answer_length_penalty=None, length_semantics="lavis"):
        self.outputs = list(outputs)
        self.sums = [torch.tensor(s, dtype=torch.float32) for s in sums]
        self.means = [torch.tensor(m, dtype=torch.float32) for m in means] if means is not None else self.sums
        if answer_length_penalty is not None:
            self.ANSWER_LENGTH_PENALTY = answer_length_penalty
        self.cfg = SimpleNamespace(length_semantics=length_semantics)
        self.generate_calls: list[dict] = []
        self.score_calls: list[tuple] = []

    def generate(self, batch, **kwargs) -> list[str]:
        self.generate_calls.append(kwargs)
        return self.outputs[:len(batch["instance_id"])]

    def score_candidates(self, batch, candidates, n_segments) -> CandidateScores:
        self.score_calls.append(([list(c) for c in candidates], n_segments))
        assert len(candidates) == len(batch["instance_id"])
        for cands, scores in zip(candidates, self.sums):
            assert len(cands) == len(scores), (cands, scores)
        return CandidateScores(sum=self.sums, mean=self.means,
                               num_tokens=[torch.ones(len(s), dtype=torch.long) for s in self.sums])


def make_task(task: str, dataset: str = "ds", split: str = "test", answer_list=None, **protocol):
    return registry.get_task_class(task)(EvalProtocol(task=task, **protocol), dataset, split, answer_list=answer_list)


def make_batch(n: int, **fields) -> dict:
    batch = {"instance_id": list(range(n)), "instruction": [f"prompt {i}" for i in range(n)]}
    for key, values in fields.items():
        assert len(values) == n, key
        batch[key] = list(values)
    return batch


def lse(*values: float) -> float:
    peak = max(values)
    return peak + math.log(sum(math.exp(v - peak) for v in values))


# ----------------------------------------------------------------------------------------------------- decoding


def resolved(num_beams, max_length, min_length, length_penalty, repetition_penalty=1.5, length_semantics="lavis"):
    return {"num_beams": num_beams, "max_length": max_length, "min_length": min_length,
            "length_penalty": length_penalty, "repetition_penalty": repetition_penalty,
            "length_semantics": length_semantics}


def test_fake_model_defaults_are_the_models():
    assert FakeModel.GENERATE_DEFAULTS["repetition_penalty"] == 1.5
    assert FakeModel.GENERATE_DEFAULTS["max_length"] == 256


@pytest.mark.parametrize("task, extra", [("vqa", {}), ("classification", {"verbalizers": [["no"], ["yes"]]})])
@pytest.mark.parametrize("penalty", [0.0, -1.0])
def test_short_answer_defaults_take_the_models_answer_length_penalty(task, extra, penalty):
    model = FakeModel(answer_length_penalty=penalty)
    assert make_task(task, **extra).decoding(model) == resolved(5, 10, 1, penalty)


def test_captioning_defaults():
    model = FakeModel(answer_length_penalty=-1.0)  # not an answer task: its own penalty 1.0
    assert make_task("captioning").decoding(model) == resolved(5, 80, 10, 1.0)


def test_config_overrides_win_and_none_falls_back():
    model = FakeModel(answer_length_penalty=-1.0, length_semantics="new_tokens")
    decoding = Decoding(num_beams=3, max_len=None, min_len=2, length_penalty=None, repetition_penalty=1.0,
                        length_semantics=None)
    assert make_task("vqa", decoding=decoding).decoding(model) == resolved(3, 10, 2, -1.0, 1.0, "new_tokens")
    full = Decoding(num_beams=1, max_len=30, min_len=8, length_penalty=0.5, repetition_penalty=1.2,
                    length_semantics="lavis")
    assert make_task("captioning", decoding=full).decoding(model) == resolved(1, 30, 8, 0.5, 1.2, "lavis")
    # only the length penalty overridden: the other captioning defaults stay
    assert make_task("captioning", decoding=Decoding(length_penalty=0.0)).decoding(model) == \
        resolved(5, 80, 10, 0.0, 1.5, "new_tokens")


def test_generate_receives_the_resolved_decoding():
    model = FakeModel(outputs=["yes", "no"])
    task = make_task("vqa", metric="exact_match", decoding=Decoding(num_beams=2))
    task.predict(model, make_batch(2, text_output=["yes", "yes"]))
    assert model.generate_calls == [resolved(2, 10, 1, 0.0)]
    assert task.summary(model)["decoding"] == resolved(2, 10, 1, 0.0)


# ----------------------------------------------------------------------------------------------------- classification


VSR = dict(mode="generate", verbalizers=[["false", "no"], ["true", "yes"]])


def test_classification_generate_maps_through_verbalizers():
    model = FakeModel(outputs=["True", "yes.", "false", "maybe"])
    task = make_task("classification", "vsr", **VSR)
    batch = make_batch(4, label=[1, 0, 0, 1], choices=[["false", "true"]] * 4)
    predictions = task.predict(model, batch)
    assert [p["pred"] for p in predictions] == [1, 1, 0, -1]
    assert [p["output"] for p in predictions] == ["True", "yes.", "false", "maybe"]
    assert [p["gt"] for p in predictions] == [1, 0, 0, 1]
    assert [p["id"] for p in predictions] == ["0", "1", "2", "3"]
    assert predictions[0]["prompt"] == "prompt 0"
    metrics = task.compute_metrics(predictions)
    assert metrics["accuracy"] == pytest.approx(2 / 4 * 100)  # samples 0 and 2 right
    assert metrics["num_unmapped"] == 1
    assert model.generate_calls[0]["num_beams"] == 5


def test_classification_generate_without_verbalizers_maps_to_choice_text():
    model = FakeModel(outputs=["Louisiana.", "  sea otter", "a duck"])
    task = make_task("classification", "scienceqa", mode="generate")
    batch = make_batch(3, label=[1, 0, 0], choices=[["West Virginia", "Louisiana", "Arizona"],
                                                     ["sea otter", "tokay gecko"], ["sea otter", "tokay gecko"]])
    assert [p["pred"] for p in task.predict(model, batch)] == [1, 0, -1]


HATEFUL = dict(mode="rank", candidates="verbalizers", verbalizers=[["no", "false"], ["yes", "true"]],
               metric="roc_auc")


def test_verbalizer_ranking_probability_and_roc_auc():
    from sklearn.metrics import roc_auc_score

    # log-likelihoods of [no, false, yes, true] per sample
    lls = [[-1.0, -2.0, -0.5, -3.0], [-0.2, -4.0, -2.5, -2.0], [-3.0, -3.0, -3.0, -3.0], [-2.0, -1.0, -1.5, -0.7],
           [-0.1, -0.3, -5.0, -6.0]]
    labels = [1, 0, 1, 1, 0]
    model = FakeModel(sums=lls)
    task = make_task("classification", "hateful_memes", "dev_seen", **HATEFUL)
    predictions = task.predict(model, make_batch(5, label=labels, question_id=[10, 11, 12, 13, 14]))
    assert model.score_calls[0] == ([["no", "false", "yes", "true"]] * 5, 1)
    expected = []
    for ll in lls:
        negative, positive = lse(ll[0], ll[1]), lse(ll[2], ll[3])
        expected.append(math.exp(positive) / (math.exp(negative) + math.exp(positive)))
    got = [p["probs"][1] for p in predictions]
    assert got == pytest.approx(expected, abs=1e-6)
    assert [p["probs"][0] for p in predictions] == pytest.approx([1 - e for e in expected], abs=1e-6)
    assert [p["pred"] for p in predictions] == [int(e > 0.5) for e in expected]
    assert predictions[0]["scores"] == [-1.0, -2.0, -0.5, -3.0]
    assert predictions[0]["question_id"] == 10
    metrics = task.compute_metrics(predictions)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(labels, expected) * 100)
    assert metrics["accuracy"] == pytest.approx(sum(int(e > 0.5) == y for e, y in zip(expected, labels)) / 5 * 100)
    assert task.lavis_result(predictions)[1] == {"question_id": 11, "pred_ans": predictions[1]["pred"], "gt_ans": 0}
    summary = task.summary(model)
    assert summary["verbalizers"] == [["no", "false"], ["yes", "true"]] and summary["candidates"] == "verbalizers"
    assert "decoding" not in summary


def test_roc_auc_of_one_class_is_undefined_while_accuracy_counts():
    """The first records of a `--limit` run all hateful: ROC-AUC has no value, accuracy still has one."""
    task = make_task("classification", "hateful_memes", "dev_seen", **HATEFUL)
    lls = [[-1.0, -2.0, -0.5, -3.0], [-0.2, -4.0, -2.5, -2.0]]  # P(yes) > 0.5 for the first only
    predictions = task.predict(FakeModel(sums=lls), make_batch(2, label=[1, 1]))
    metrics = task.metrics(predictions)
    assert metrics == {"accuracy": 50.0, "num_unmapped": 0, "roc_auc": Undefined(
        "labels are all 1: ROC-AUC needs at least one positive (1) and one negative (0)")}
    assert task.report_key == "roc_auc"


@pytest.mark.parametrize("task, protocol, keys", [
    ("vqa", {"metric": "exact_match", "group_by": "type"}, {"exact_match"}),
    ("classification", {"mode": "rank", "candidates": "choices"}, {"accuracy"}),
    ("dialog", {"mode": "rank", "candidates": "answer_options"}, {"mrr", "r@1", "r@5", "r@10", "mean_rank"}),
    ("captioning", {"metric_options": {"meteor": False}}, {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L",
                                                           "CIDEr"}),
])
def test_no_scored_prediction_leaves_every_metric_undefined(task, protocol, keys):
    metrics = make_task(task, **protocol).metrics([])
    undefined = {key for key, value in metrics.items() if isinstance(value, Undefined)}
    assert undefined == keys and set(metrics) - keys <= {"num_unmapped"}


def test_roc_auc_needs_two_verbalizer_classes_in_rank_mode():
    with pytest.raises(ConfigError, match="roc_auc"):
        make_task("classification", mode="generate", verbalizers=[["no"], ["yes"]], metric="roc_auc")
    with pytest.raises(ConfigError, match="roc_auc"):
        make_task("classification", mode="rank", candidates="choices", metric="roc_auc")


CHOICES = [["West Virginia", "Louisiana", "Arizona", "Oklahoma"], ["sea otter", "tokay gecko"],
           ["Solution A", "Solution B", "neither"]]


def test_rank_over_choices_with_per_sample_lengths():
    model = FakeModel(sums=[[-4.0, -1.0, -2.0, -9.0], [-0.5, -0.7], [-3.0, -3.0, -1.0]])
    task = make_task("classification", "scienceqa", mode="rank", candidates="choices")
    predictions = task.predict(model, make_batch(3, label=[1, 1, 2], choices=CHOICES, question_id=["5", "12", "19"]))
    assert model.score_calls[0][0] == CHOICES
    assert [p["pred"] for p in predictions] == [1, 0, 2]
    assert [len(p["probs"]) for p in predictions] == [4, 2, 3]
    assert sum(predictions[1]["probs"]) == pytest.approx(1.0)
    assert task.compute_metrics(predictions) == {"accuracy": pytest.approx(200 / 3), "num_unmapped": 0}


def test_rank_over_choice_letters():
    model = FakeModel(sums=[[-4.0, -1.0, -2.0, -9.0], [-0.9, -0.7], [-3.0, -3.0, -1.0]])
    task = make_task("classification", "scienceqa", mode="rank", candidates="choice_letters")
    predictions = task.predict(model, make_batch(3, label=[1, 1, 0], choices=CHOICES))
    assert model.score_calls[0][0] == [["(a)", "(b)", "(c)", "(d)"], ["(a)", "(b)"], ["(a)", "(b)", "(c)"]]
    assert [p["pred"] for p in predictions] == [1, 1, 2]


def test_rank_normalize_mean_uses_the_mean_scores():
    sums, means = [[-6.0, -4.0], [-1.0, -2.0, -3.0]], [[-1.0, -2.0], [-3.0, -0.5, -1.0]]  # sum and mean disagree
    by_sum = make_task("classification", mode="rank", candidates="choices", n_segments=3)
    by_mean = make_task("classification", mode="rank", candidates="choices", normalize="mean")
    batch = make_batch(2, label=[0, 1], choices=[["x", "y"], ["p", "q", "r"]])
    sum_model, mean_model = FakeModel(sums=sums, means=means), FakeModel(sums=sums, means=means)
    assert [p["pred"] for p in by_sum.predict(sum_model, batch)] == [1, 0]
    assert [p["pred"] for p in by_mean.predict(mean_model, batch)] == [0, 1]
    assert sum_model.score_calls[0][1] == 3 and mean_model.score_calls[0][1] == 1  # n_segments passed through
    assert by_mean.summary(mean_model)["normalize"] == "mean"


# ----------------------------------------------------------------------------------------------------- VQA


def test_vqa_rank_over_the_answer_list():
    answers = ["dance", "two", "cat", "man", "cook", "horse"]
    model = FakeModel(sums=[[-5.0, -1.0, -3.0, -0.5, -2.0, -4.0], [-1.0, -2.0, -3.0, -4.0, -5.0, -0.1]])
    task = make_task("vqa", "msvd_qa", answer_list=answers, mode="rank", candidates="answer_list",
                     metric="exact_match")
    predictions = task.predict(model, make_batch(2, text_output=["man", "dance"], question_id=[30933, 30934]))
    assert model.score_calls[0][0] == [answers, answers]
    assert [p["answer"] for p in predictions] == ["man", "horse"]
    assert predictions[0]["top5"] == [["man", -0.5], ["two", -1.0], ["cook", -2.0], ["cat", -3.0], ["horse", -4.0]]
    assert task.compute_metrics(predictions) == {"exact_match": 50.0}
    assert task.summary(model)["num_candidates"] == 6
    assert task.lavis_result(predictions) == [{"question_id": 30933, "answer": "man"},
                                              {"question_id": 30934, "answer": "horse"}]


def test_vqa_rank_needs_an_answer_list():
    with pytest.raises(ConfigError, match="answer list"):
        make_task("vqa", "gqa", mode="rank", candidates="answer_list")


VQA_ANSWERS = [["two"] * 6 + ["2"] * 3 + ["three"], ["yes"] * 10, ["red."] * 4 + ["red"] * 3 + ["Red"] * 2 + ["dark red"],
               ["a dog"] * 5 + ["dog"] * 5, ["tennis", "tennis racket", "racket", "tennis", "racquet", "tennis"]]
VQA_OUTPUTS = ["2", "Yes", "red", "dog", "racket"]


@pytest.mark.parametrize("metric, options, reference", [
    ("vqa_accuracy", {}, lambda p, a: vqa_accuracy(p, a)),
    ("vqa_accuracy", {"variant": "lavis"}, lambda p, a: vqa_accuracy(p, a, variant="lavis")),
    ("aokvqa_accuracy", {}, aokvqa_accuracy),
    ("ivqa_accuracy", {}, ivqa_accuracy),
    ("exact_match", {}, lambda p, a: exact_match(p, [answers[0] for answers in a])),
])
def test_vqa_metrics_equal_the_metric_functions(metric, options, reference):
    model = FakeModel(outputs=VQA_OUTPUTS)
    task = make_task("vqa", metric=metric, metric_options=options)
    batch = make_batch(5, answers=VQA_ANSWERS, text_output=[a[0] for a in VQA_ANSWERS],
                       question_id=[1, 2, 3, 4, 5])
    predictions = task.predict(model, batch)
    assert [p["answer"] for p in predictions] == VQA_OUTPUTS
    assert task.compute_metrics(predictions) == reference(VQA_OUTPUTS, VQA_ANSWERS)


def test_vqa_ground_truth_and_record_checks():
    lists, single = make_task("vqa", "textvqa", "val", metric="vqa_accuracy"), make_task("vqa", "gqa", metric="exact_match")
    assert lists.has_ground_truth({"answers": ["a"]}) and not lists.has_ground_truth({"answers": []})
    assert single.has_ground_truth({"text_output": "a"}) and not single.has_ground_truth({"text_output": ""})
    with pytest.raises(ValueError, match=r"textvqa val record 3 \(question_id 7\): .*'answers'"):
        lists.check_record({"question_id": 7, "text_output": "x"}, 3)
    with pytest.raises(ValueError, match=r"gqa test record 0: .*'text_output'"):
        single.check_record({"answers": ["x"]}, 0)


def test_consensus_metrics_refuse_one_answer_records():
    """vqa_accuracy's leave-one-out gives a one-answer record 0 whatever the prediction: an error, not a silent 0."""
    assert vqa_accuracy(["red"], [["red"]])["vqa_accuracy"] == 0.0
    for metric in ("vqa_accuracy", "aokvqa_accuracy"):
        task = make_task("vqa", "synthetic_vqa", "val", metric=metric)
        task.check_record({"answers": ["red", "red", "blue"]}, 0)
        with pytest.raises(ValueError, match=r"synthetic_vqa val record 2 \(question_id 5\): .*one answer.*exact_match"):
            task.check_record({"question_id": 5, "answers": ["red"]}, 2)
    make_task("vqa", "synthetic_vqa", "val", metric="exact_match").check({"text_output": "red", "answers": ["red"]}, 0)


def test_vqa_group_by_scores_each_group_and_checks_the_record():
    model = FakeModel(outputs=["red", "circle", "blue", "square", "green"])
    task = make_task("vqa", "synthetic_vqa", "val", metric="exact_match", group_by="question_type")
    kinds = ["colour", "shape", "colour", "shape", "colour"]
    truth = ["red", "square", "blue", "square", "red"]
    batch = make_batch(5, text_output=truth, answers=[[t] for t in truth],
                       meta=[{"question_type": kind} for kind in kinds])
    predictions = task.predict(model, batch)
    assert [p["group"] for p in predictions] == kinds
    assert task.metrics(predictions) == {"exact_match": 60.0, "colour/exact_match": pytest.approx(200 / 3),
                                         "shape/exact_match": 50.0}
    assert task.compute_metrics(predictions) == {"exact_match": 60.0}
    with pytest.raises(ValueError, match=r"synthetic_vqa val record 1: .*meta\.question_type"):
        task.check({"text_output": "red", "meta": {}}, 1)


def test_vizwiz_and_vqa_submission_formats():
    model = FakeModel(outputs=["coffee", "unanswerable"])
    vizwiz = make_task("vqa", "vizwiz", "test", metric="vqa_accuracy", submission="vizwiz")
    batch = make_batch(2, question_id=["VizWiz_test_00000000", "VizWiz_test_00000001"],
                       image_id=["VizWiz_test_00000000.jpg", "test/VizWiz_test_00000001.jpg"], answers=[[], []])
    predictions = vizwiz.predict(model, batch)
    assert [p["gt"] for p in predictions] == [None, None]
    assert vizwiz.submission(predictions) == [{"image": "VizWiz_test_00000000.jpg", "answer": "coffee"},
                                              {"image": "VizWiz_test_00000001.jpg", "answer": "unanswerable"}]

    model = FakeModel(outputs=["yes", "2"])
    vqav2 = make_task("vqa", "vqav2", "test", metric="vqa_accuracy", submission="vqa")
    predictions = vqav2.predict(model, make_batch(2, question_id=[262148000, 262185000], image_id=[262148, 262185]))
    assert vqav2.submission(predictions) == [{"question_id": 262148000, "answer": "yes"},
                                             {"question_id": 262185000, "answer": "2"}]
    assert make_task("vqa", metric="vqa_accuracy").submission(predictions) is None


# ----------------------------------------------------------------------------------------------------- dialog


def test_option_ranks_break_ties_by_option_order():
    assert option_ranks(torch.tensor([1.0, 2.0, 2.0, 0.5])) == [3, 1, 2, 4]
    assert option_ranks(torch.tensor([0.0, 0.0, 0.0])) == [1, 2, 3]
    assert option_ranks(torch.tensor([-1.0, -3.0, -1.0, -1.0, 5.0])) == [2, 5, 3, 4, 1]


def test_dialog_ranks_and_metrics_over_three_rounds():
    options = [["yes", "no", "2", "red"], ["no", "yes", "2", "red"], ["2", "1", "3", "red"]]
    scores = [[-1.0, -0.5, -0.5, -3.0],  # ranks [3, 1, 2, 4]: gt 0 → rank 3
              [-2.0, -2.0, -2.0, -2.0],  # all tied: ranks [1, 2, 3, 4]; gt 1 → rank 2
              [-9.0, -1.0, -2.0, -0.1]]  # ranks [4, 2, 3, 1]; gt 3 → rank 1
    model = FakeModel(sums=scores)
    task = make_task("dialog", "visdial", "val", mode="rank", candidates="answer_options")
    batch = make_batch(3, answer_options=options, gt_index=[0, 1, 3], image_id=[185565, 185565, 185576],
                       question_id=["185565_1", "185565_2", "185576_1"], meta=[{"round": 1}, {"round": 2}, {"round": 1}])
    predictions = task.predict(model, batch)
    assert [p["ranks"] for p in predictions] == [[3, 1, 2, 4], [1, 2, 3, 4], [4, 2, 3, 1]]
    assert [p["gt_rank"] for p in predictions] == [3, 2, 1]
    assert [p["answer"] for p in predictions] == ["no", "no", "red"]
    metrics = task.compute_metrics(predictions)
    assert metrics["mrr"] == pytest.approx((1 / 3 + 1 / 2 + 1) / 3 * 100)
    assert metrics["r@1"] == pytest.approx(100 / 3)
    assert metrics["r@5"] == metrics["r@10"] == 100.0
    assert metrics["mean_rank"] == pytest.approx(2.0)
    assert task.report_key == "mrr"
    assert task.lavis_result(predictions) == [
        {"image_id": 185565, "round_id": 1, "ranks": [3, 1, 2, 4]},
        {"image_id": 185565, "round_id": 2, "ranks": [1, 2, 3, 4]},
        {"image_id": 185576, "round_id": 1, "ranks": [4, 2, 3, 1]},
    ]


def test_dialog_metric_options_reach_the_metric():
    task = make_task("dialog", mode="rank", candidates="answer_options", metric_options={"ks": [2]})
    assert task.compute_metrics([{"gt_rank": 1}, {"gt_rank": 3}]) == ranking_metrics([1, 3], ks=[2])


# ----------------------------------------------------------------------------------------------------- captioning


def test_captioning_group_by_and_overall():
    domains = ["in-domain", "near-domain", "out-domain", "in-domain", "near-domain", "out-domain"]
    colours = ["red", "green", "blue", "yellow", "purple", "orange"]
    refs = [[f"a small square on a {c} background", f"a {c} picture with a square", f"the background is {c}"]
            for c in colours]
    outputs = [f"a square on a {c} background" for c in colours[:3]] + ["a cat", "a dog on grass", "a square"]
    model = FakeModel(outputs=outputs)
    task = make_task("captioning", "nocaps", "val", group_by="domain", metric_options={"meteor": False})
    batch = make_batch(6, captions=refs, image_id=list(range(6)), meta=[{"domain": d} for d in domains])
    predictions = task.predict(model, batch)
    assert [p["group"] for p in predictions] == domains
    assert [p["caption"] for p in predictions] == outputs
    assert model.generate_calls == [resolved(5, 80, 10, 1.0)]
    metrics = task.metrics(predictions)
    overall = caption_metrics({str(i): outputs[i] for i in range(6)}, {str(i): refs[i] for i in range(6)},
                              meteor=False)
    assert set(overall) == {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr"}
    for key, value in overall.items():
        assert metrics[key] == pytest.approx(value)
    for domain in ("in-domain", "near-domain", "out-domain"):
        assert {f"{domain}/{key}" for key in overall} <= set(metrics)
    members = [i for i, d in enumerate(domains) if d == "out-domain"]
    out = caption_metrics({str(i): outputs[i] for i in members}, {str(i): refs[i] for i in members}, meteor=False)
    assert metrics["out-domain/CIDEr"] == pytest.approx(out["CIDEr"])
    assert len(metrics) == 4 * len(overall)
    assert task.report_key == "CIDEr"
    assert task.lavis_result(predictions)[2] == {"image_id": 2, "caption": outputs[2]}
    json.dumps(metrics)  # what metrics.json must hold


def test_captioning_group_by_checks_the_record():
    task = make_task("captioning", "nocaps", "val", group_by="domain")
    task.check({"captions": ["a"], "meta": {"domain": "in-domain"}}, 0)
    with pytest.raises(ValueError, match=r"nocaps val record 4 \(image_id 9\): .*meta\.domain"):
        task.check({"captions": ["a"], "image_id": 9}, 4)
    with pytest.raises(ValueError, match="'captions'"):
        task.check({"captions": [], "meta": {"domain": "in-domain"}}, 0)


def test_lavis_result_rows_without_question_ids_use_the_record_id():
    model = FakeModel(outputs=["yes"])
    task = make_task("vqa", metric="exact_match")
    assert task.lavis_result(task.predict(model, make_batch(1, text_output=["yes"]))) == \
        [{"question_id": "0", "answer": "yes"}]


# ----------------------------------------------------------------------------------------------------- predictions


def test_prediction_store_round_trip(tmp_path):
    store = PredictionStore(tmp_path / "split")
    store.append(0, [{"id": "10", "answer": "a"}, {"id": "2", "answer": "b"}])
    store.append(1, [{"id": "0", "answer": "c"}, {"id": "x", "answer": "d"}])
    store.append(0, [])
    done = store.load()
    assert set(done) == {"0", "2", "10", "x"} and done["2"] == {"id": "2", "answer": "b"}
    path = store.finalize(done)
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["0", "2", "10", "x"]
    assert not store.parts.exists()
    assert store.load() == done
    store.append(0, [{"id": "11", "answer": "e"}])  # a resumed run adds to the parts again
    assert set(store.load()) == {"0", "2", "10", "11", "x"}


def test_incomplete_last_line_is_dropped_and_repaired(tmp_path):
    store = PredictionStore(tmp_path)
    store.append(0, [{"id": "0", "answer": "a"}, {"id": "1", "answer": "b"}])
    part = store.part_path(0)
    complete = part.read_bytes()
    part.write_bytes(complete + b'{"id": "2", "ans')
    assert set(store.load(repair=False)) == {"0", "1"}
    assert part.read_bytes() == complete + b'{"id": "2", "ans'  # not repaired
    assert set(store.load()) == {"0", "1"}
    assert part.read_bytes() == complete  # truncated to the last complete line
    store.append(0, [{"id": "2", "answer": "c"}])
    assert store.load()["2"] == {"id": "2", "answer": "c"}


def test_complete_non_json_line_names_file_and_line(tmp_path):
    store = PredictionStore(tmp_path)
    store.append(0, [{"id": "0"}])
    with open(store.part_path(0), "a") as handle:
        handle.write("not json\n")
    with pytest.raises(ValueError, match=rf"{store.part_path(0)}:2: not a JSON"):
        store.load()
    store.part_path(0).write_text('{"id": "0"}\n["a list"]\n')
    with pytest.raises(ValueError, match=r"rank0\.jsonl:2: .*string 'id'"):
        store.load()


def test_duplicate_ids(tmp_path):
    store = PredictionStore(tmp_path)
    store.append(0, [{"id": "0", "answer": "a"}])
    store.append(1, [{"id": "0", "answer": "a"}])  # the same prediction twice is harmless
    assert store.load() == {"0": {"id": "0", "answer": "a"}}
    store.append(1, [{"id": "0", "answer": "b"}])
    with pytest.raises(ValueError, match="'0' was predicted twice"):
        store.load()


def test_check_protocol(tmp_path):
    store = PredictionStore(tmp_path / "gqa" / "testdev")
    protocol = {"dataset": "gqa", "split": "testdev",
                "protocol": {"task": "vqa", "decoding": {"num_beams": 5, "max_length": 10}}}
    store.check_protocol(protocol)
    assert json.loads((store.directory / "protocol.json").read_text()) == protocol
    store.check_protocol(json.loads(json.dumps(protocol)))  # the same protocol: accepted
    changed = json.loads(json.dumps(protocol))
    changed["protocol"]["decoding"]["num_beams"] = 3
    with pytest.raises(ConfigError) as error:
        store.check_protocol(changed)
    assert "protocol.decoding.num_beams: 5 → 3" in str(error.value)
    assert str(store.directory) in str(error.value) and "max_length" not in str(error.value)
    assert json.loads((store.directory / "protocol.json").read_text()) == protocol  # not overwritten


# ----------------------------------------------------------------------------------------------------- results table


def metrics_file(dataset, split, report, value, mode="generate"):
    protocol = {"task": "vqa", "mode": mode, "metric": report, "prompt_templates": ["Q: {Question} A:"]}
    if mode == "generate":
        protocol["decoding"] = resolved(5, 10, 1, 0.0)
    else:
        protocol.update(candidates="choices", normalize="sum")
    return {"dataset": dataset, "split": split, "report": report, "agg_metrics": value, "protocol": protocol,
            "num_scored": 1234, "num_skipped": 2}


def test_result_rows_beside_table1():
    arch, model_type = "blip2_vicuna_instruct", "vicuna7b"
    gqa = result_row(metrics_file("gqa", "testdev", "exact_match", 50.0), arch, model_type)
    assert (gqa.paper, gqa.paper_split) == (49.2, "testdev")
    assert gqa.difference == pytest.approx(0.8)
    vizwiz = result_row(metrics_file("vizwiz", "val", "vqa_accuracy", 30.0), arch, model_type)
    assert (vizwiz.paper, vizwiz.paper_split, vizwiz.difference) == (34.5, "test", None)
    vqav2 = result_row(metrics_file("vqav2", "val", "vqa_accuracy", 60.0), arch, model_type)
    assert (vqav2.paper, vqav2.difference) == (None, None)
    other_metric = result_row(metrics_file("gqa", "testdev", "vqa_accuracy", 50.0), arch, model_type)
    assert other_metric.paper is None  # not the paper's metric: not compared
    ranked = result_row(metrics_file("scienceqa", "test", "accuracy", 61.0, mode="rank"), arch, model_type)
    assert ranked.difference == pytest.approx(0.5)
    table = render_markdown([gqa, vizwiz, vqav2, ranked], "Zero-shot results")
    lines = table.splitlines()
    assert lines[0] == "# Zero-shot results"
    assert lines[2].startswith("| dataset | split | metric | ours | paper (Table 1) | Δ |")
    assert lines[4].startswith("| gqa | testdev | exact_match | 50.0 | 49.2 | +0.8 | 1,234 | 2 | generate (beams 5, "
                               "max 10, min 1, lp 0.0, rp 1.5); prompt 'Q: {Question} A:' |")
    assert lines[5].startswith("| vizwiz | val | vqa_accuracy | 30.0 | 34.5 (test) | – | 1,234 | 2 |")
    assert lines[6].startswith("| vqav2 | val | vqa_accuracy | 60.0 | – | – |")
    assert lines[7].startswith("| scienceqa | test | accuracy | 61.0 | 60.5 | +0.5 |")
    assert "rank choices (sum)" in lines[7]
    assert gqa.to_dict()["difference"] == pytest.approx(0.8)


def test_an_undefined_metric_shows_as_undefined_with_its_reason():
    reason = "labels are all 1: ROC-AUC needs at least one positive (1) and one negative (0)"
    summary = {**metrics_file("hateful_memes", "dev_seen", "roc_auc", None, mode="rank"),
               "metrics": {"accuracy": 50.0, "roc_auc": None}, "undefined": {"roc_auc": reason}}
    row = result_row(summary, "blip2_vicuna_instruct", "vicuna7b")
    assert (row.ours, row.undefined, row.difference) == (None, reason, None)
    assert row.to_dict()["undefined"] == reason
    table = render_markdown([row, result_row(metrics_file("gqa", "testdev", "exact_match", 50.0),
                                             "blip2_vicuna_instruct", "vicuna7b")], "t")
    assert "| hateful_memes | dev_seen | roc_auc | undefined | 59.6 | – |" in table
    assert table.endswith(f"Undefined on the records in scope:\n- hateful_memes dev_seen roc_auc: {reason}\n")
    assert "| gqa | testdev | exact_match | 50.0 |" in table


def test_result_row_without_a_number():
    summary = metrics_file("vizwiz", "test", "vqa_accuracy", None)  # a submission split
    row = result_row(summary, "blip2_vicuna_instruct", "vicuna7b")
    assert row.ours is None and row.difference is None
    assert "| vizwiz | test | vqa_accuracy | – | 34.5 | – |" in render_markdown([row], "t")
