"""Bad evaluation input through the entry point (`lavis_ib.cli.run("evaluate", argv)`) on tiny fixtures.

Malformed ground truth, an impossible protocol or a prediction folder from another config must each stop the run
before anything is scored, with exit status 2 and one line `evaluate: error: ...` on stderr that names where the
problem is (dataset, split, record / key) and what was expected — never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lavis_ib.cli import run
from tests.tasks.fixtures import write_eval_fixture

N = 3
PREFIX = "evaluate: error: "


def write_config(tmp_path: Path, dataset: str, eval_block: str = "") -> Path:
    """A project config evaluating `dataset` with the tiny model; `eval_block` is YAML flow text for `eval:`."""
    block = f"data_root: {tmp_path / 'data'}" + (f", eval: {eval_block}" if eval_block else "")
    path = tmp_path / "cfg.yaml"
    path.write_text(
        "model: {arch: blip2_vicuna_instruct, model_type: tiny}\n"
        f"datasets:\n  {dataset}: {{{block}}}\n"
        f"run: {{output_dir: {tmp_path / 'out'}, job_id: J, batch_size_eval: 4, num_workers: 0}}\n",
        encoding="utf-8",
    )
    return path


def fixture(tmp_path: Path, dataset: str, split: str | None = None, edit=None, line: int = 1) -> Path:
    """Write the dataset's fixture (N records, 4 VisDial options); `edit(record)` changes record `line` in place."""
    path = write_eval_fixture(tmp_path / "data", dataset, split, n=N, num_options=4)
    if edit is not None:
        lines = path.read_text(encoding="utf-8").splitlines()
        record = json.loads(lines[line])
        edit(record)
        lines[line] = json.dumps(record)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def evaluate_error(capsys, tmp_path: Path, dataset: str, eval_block: str = "", argv=()) -> str:
    """Run the evaluation expecting a usage error; the one error line's message."""
    cfg = write_config(tmp_path, dataset, eval_block)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run("evaluate", ["--cfg-path", str(cfg), *argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "Traceback" not in err
    assert err.count(PREFIX) == 1, err
    tail = err[err.index(PREFIX):]
    assert tail.endswith("\n") and tail.count("\n") == 1, f"not one final line: {tail!r}"
    return tail[len(PREFIX):].rstrip("\n")


def set_field(key, value):
    return lambda record: record.__setitem__(key, value)


def drop_field(key):
    return lambda record: record.pop(key)


# ----------------------------------------------------------------------------------------------------- ground truth


def test_vqa_answers_missing(tmp_path, capsys):
    fixture(tmp_path, "textvqa", "val", drop_field("answers"))
    message = evaluate_error(capsys, tmp_path, "textvqa")
    assert message.startswith("textvqa val record 1 (question_id 34603")
    assert "vqa_accuracy needs 'answers', a non-empty list of strings; got None" in message


def test_vqa_answers_empty(tmp_path, capsys):
    fixture(tmp_path, "textvqa", "val", set_field("answers", []))
    message = evaluate_error(capsys, tmp_path, "textvqa")
    assert message.startswith("textvqa val record 1 (") and "'answers'" in message and "got []" in message


@pytest.mark.parametrize("answers", [[1, 2], "stop"], ids=["numbers", "string"])
def test_vqa_answers_not_a_list_of_strings(tmp_path, capsys, answers):
    fixture(tmp_path, "textvqa", "val", set_field("answers", answers))
    message = evaluate_error(capsys, tmp_path, "textvqa")
    assert "textvqa/val.jsonl:2" in message and "'answers'" in message


def test_split_partly_without_ground_truth(tmp_path, capsys):
    fixture(tmp_path, "gqa", edit=set_field("text_output", ""), line=2)  # exact_match reads text_output
    message = evaluate_error(capsys, tmp_path, "gqa")
    assert message.startswith("gqa testdev record 2 (question_id '20968405'")
    assert "has no ground truth while the rest of the split has" in message


def test_visdial_round_without_gt_index(tmp_path, capsys):
    fixture(tmp_path, "visdial", edit=drop_field("gt_index"))
    message = evaluate_error(capsys, tmp_path, "visdial")
    assert message.startswith("visdial val record 1 (question_id '185576_2', image_id 185576)")
    assert "'gt_index' must index the 4 answer_options, got None" in message


@pytest.mark.parametrize("gt_index", [4, -1])
def test_visdial_gt_index_out_of_range(tmp_path, capsys, gt_index):
    fixture(tmp_path, "visdial", edit=set_field("gt_index", gt_index))
    message = evaluate_error(capsys, tmp_path, "visdial")
    assert message.startswith("visdial val record 1 (question_id '185576_2'")
    assert f"'gt_index' must index the 4 answer_options, got {gt_index}" in message


def test_visdial_gt_index_not_an_integer(tmp_path, capsys):
    fixture(tmp_path, "visdial", edit=set_field("gt_index", "1"))
    message = evaluate_error(capsys, tmp_path, "visdial")
    assert "visdial/val.jsonl:2" in message and "'gt_index'" in message


@pytest.mark.parametrize("dataset, question_id", [("scienceqa", "'12'"), ("iconqa", "'2067'")])
def test_ranking_record_with_empty_choices(tmp_path, capsys, dataset, question_id):
    fixture(tmp_path, dataset, edit=set_field("choices", []))
    message = evaluate_error(capsys, tmp_path, dataset)
    assert message.startswith(f"{dataset} test record 1 (question_id {question_id})")
    assert "'choices' must be a non-empty list of strings, got []" in message


@pytest.mark.parametrize("dataset, split, where", [("vsr", "test", "vsr test record 1: "),
                                                   ("hateful_memes", "dev_seen", "hateful_memes dev_seen record 1 (")])
def test_classification_label_out_of_range(tmp_path, capsys, dataset, split, where):
    fixture(tmp_path, dataset, edit=set_field("label", 2))
    message = evaluate_error(capsys, tmp_path, dataset)
    assert message.startswith(where)
    assert "'label' must be a class index in [0, 2), got 2" in message


def test_classification_label_out_of_range_for_its_choices(tmp_path, capsys):
    fixture(tmp_path, "iconqa", edit=set_field("label", 2), line=1)  # record 1 has two choices
    message = evaluate_error(capsys, tmp_path, "iconqa")
    assert message.startswith("iconqa test record 1 (") and "[0, 2), got 2" in message


def test_records_file_with_a_non_json_line(tmp_path, capsys):
    path = fixture(tmp_path, "vsr")
    path.write_text(path.read_text(encoding="utf-8") + "{not json\n", encoding="utf-8")
    message = evaluate_error(capsys, tmp_path, "vsr")
    assert f"vsr/test.jsonl:{N + 1}" in message


# ----------------------------------------------------------------------------------------------------- protocol


def test_unknown_task_names_the_closest(tmp_path, capsys):
    fixture(tmp_path, "gqa")
    message = evaluate_error(capsys, tmp_path, "gqa", "{task: vqaa}")
    assert "unknown task 'vqaa'" in message and "did you mean 'vqa'?" in message


def test_unknown_task_names_the_key(tmp_path, capsys):
    fixture(tmp_path, "gqa")
    message = evaluate_error(capsys, tmp_path, "gqa", "{task: vqaa}")
    assert "datasets.gqa.eval.task" in message


@pytest.mark.parametrize("metric", ["vqa_acc", "roc_auc"])
def test_metric_the_task_does_not_accept(tmp_path, capsys, metric):
    fixture(tmp_path, "gqa")
    message = evaluate_error(capsys, tmp_path, "gqa", f"{{metric: {metric}}}")
    assert message.startswith("datasets.gqa.eval.metric: task 'vqa' accepts vqa_accuracy, aokvqa_accuracy, "
                              "exact_match, ivqa_accuracy")
    assert message.endswith(f"got '{metric}'")


def test_rank_mode_without_candidates(tmp_path, capsys):
    fixture(tmp_path, "gqa")
    message = evaluate_error(capsys, tmp_path, "gqa", "{mode: rank}")
    assert message.startswith("datasets.gqa") and "eval.mode 'rank' needs eval.candidates" in message


def test_candidates_the_task_does_not_accept(tmp_path, capsys):
    fixture(tmp_path, "gqa")
    message = evaluate_error(capsys, tmp_path, "gqa", "{mode: rank, candidates: choices}")
    assert message == "datasets.gqa.eval.candidates: task 'vqa' accepts answer_list, got 'choices'"


def test_rank_over_a_missing_answer_list(tmp_path, capsys):
    fixture(tmp_path, "gqa")
    message = evaluate_error(capsys, tmp_path, "gqa", "{mode: rank, candidates: answer_list}")
    assert message.startswith("datasets.gqa.eval: candidates 'answer_list'") and "no answer list" in message


@pytest.mark.parametrize("eval_block, argv, key, hint", [
    ("{candidate: answer_list}", (), "datasets.gqa.eval.candidate", "datasets.gqa.eval.candidates"),
    ("{decoding: {num_beam: 3}}", (), "datasets.gqa.eval.decoding.num_beam", "datasets.gqa.eval.decoding.num_beams"),
    ("", ("--options", "datasets.gqa.eval.candidate=choices"), "datasets.gqa.eval.candidate",
     "datasets.gqa.eval.candidates"),
], ids=["yaml", "decoding", "options"])
def test_typo_in_an_eval_key(tmp_path, capsys, eval_block, argv, key, hint):
    fixture(tmp_path, "gqa")
    message = evaluate_error(capsys, tmp_path, "gqa", eval_block, argv)
    assert f"unknown key '{key}'; did you mean '{hint}'?" in message


def test_unquoted_yaml_verbalizers(tmp_path, capsys):
    fixture(tmp_path, "hateful_memes")
    message = evaluate_error(capsys, tmp_path, "hateful_memes", "{verbalizers: [[no, false], [yes, true]]}")
    assert message.startswith("datasets.hateful_memes") and "eval.verbalizers[0]" in message
    assert "got [False, False]" in message and "quote them" in message


def test_split_without_ground_truth_needs_a_submission_format(tmp_path, capsys):
    fixture(tmp_path, "textvqa", "test")  # as converted: the test split has no answers
    message = evaluate_error(capsys, tmp_path, "textvqa", "{splits: [test]}")
    assert message.startswith("textvqa test: no record has ground truth")
    assert "set datasets.textvqa.eval.submission" in message


@pytest.mark.parametrize("limit", ["0", "-2"])
def test_limit_below_one(tmp_path, capsys, limit):
    fixture(tmp_path, "gqa")
    message = evaluate_error(capsys, tmp_path, "gqa", argv=("--limit", limit))
    assert message == f"--limit must be ≥ 1, got {limit}"


def test_unknown_dataset_selected(tmp_path, capsys):
    fixture(tmp_path, "gqa")
    message = evaluate_error(capsys, tmp_path, "gqa", argv=("--datasets", "gqaa"))
    assert message.startswith("--datasets: 'gqaa' is not in") and "did you mean 'gqa'?" in message


# ----------------------------------------------------------------------------------------------------- resumption


def test_prediction_folder_from_a_different_config(tmp_path, capsys):
    fixture(tmp_path, "gqa")
    fast = "{decoding: {num_beams: 1, max_len: 2}}"  # one short greedy answer: the first run stays quick
    cfg = write_config(tmp_path, "gqa", fast)
    summaries = run("evaluate", ["--cfg-path", str(cfg), "--limit", "1"])
    folder = tmp_path / "out" / "J" / "gqa" / "testdev"
    assert [s["num_scored"] for s in summaries] == [1]
    predictions = (folder / "predictions.jsonl").read_bytes()
    assert json.loads((folder / "protocol.json").read_text())["protocol"]["decoding"]["num_beams"] == 1

    run("evaluate", ["--cfg-path", str(cfg), "--limit", "1"])  # the same config resumes (nothing left to do)
    assert (folder / "predictions.jsonl").read_bytes() == predictions

    message = evaluate_error(capsys, tmp_path, "gqa", fast,
                             ("--limit", "1", "--options", "datasets.gqa.eval.decoding.num_beams=3"))
    assert message.startswith(f"{folder}: these predictions were made with a different configuration")
    assert "protocol.decoding.num_beams: 1 → 3" in message
    assert "use another run.job_id" in message
    assert (folder / "predictions.jsonl").read_bytes() == predictions
    assert json.loads((folder / "protocol.json").read_text())["protocol"]["decoding"]["num_beams"] == 1


def test_submission_format_the_task_does_not_have(tmp_path, capsys):
    path = fixture(tmp_path, "iconqa")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for record in records:
        record.pop("label")  # a split without ground truth, as a test split would be
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    message = evaluate_error(capsys, tmp_path, "iconqa", "{submission: vqa}", ("--limit", "1"))
    assert "datasets.iconqa.eval.submission" in message
