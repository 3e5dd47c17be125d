"""Issue 10 cases 8, 12, 13 and 16: a wrong media root stops a run, config typos and types are errors, encodings and
bad source entries are named, and the balanced mixture has a length."""

from __future__ import annotations

import codecs
import json

import pytest
from torch.utils.data import DataLoader

from lavis_ib import load_dataset, registry
from lavis_ib.common.schema import ConfigError
from lavis_ib.datasets.builders import UnreadableDatasetError
from lavis_ib.datasets.convert import main
from lavis_ib.datasets.encoding import EncodingError
from lavis_ib.datasets.records import JsonlRecords, write_jsonl
from lavis_ib.datasets.sampling import balanced_mixture
from tests.datasets.converters.helpers import write_json
from tests.datasets.test_loading import TRAIN_16, root, vqa_records, vqav2  # noqa: F401  (root is a fixture)


def write_val(root, count: int = 20) -> None:
    write_jsonl(vqa_records([f"train2014/img{i % 8}.png" for i in range(count)]), root / "datasets/vqav2/val.jsonl")


@pytest.mark.parametrize("split", ["train", "val"])
def test_a_media_root_without_images_stops_after_max_consecutive_skips(root, split, tmp_path):
    write_val(root)
    block = registry.get_builder_class("vqav2").default_config(vis_processor=TRAIN_16)
    dataset = load_dataset("vqav2", block, vis_path=str(tmp_path / "wrong"), splits=[split], data_root=str(root))[split]
    with pytest.raises(UnreadableDatasetError) as error:
        list(DataLoader(dataset, batch_size=4, collate_fn=dataset.collator))
    message = str(error.value)
    assert "(max_consecutive_skips: 8); first missing path: " + str(tmp_path / "wrong/train2014/img") in message
    assert f"check the media root {tmp_path / 'wrong'} (which does not exist)" in message


def test_max_consecutive_skips_is_a_dataset_config_key(root):
    write_val(root)
    for i in (0, 1, 2):
        (root / f"coco/images/train2014/img{i}.png").unlink()
    block = registry.get_builder_class("vqav2").default_config(vis_processor=TRAIN_16, max_consecutive_skips=3)
    val = load_dataset("vqav2", block, splits=["val"], data_root=str(root))["val"]
    with pytest.raises(UnreadableDatasetError, match=r"vqav2: record 0 is unreadable .*2 records tried after it "
                                                     r"\(max_consecutive_skips: 3\); first missing path: .*img0.png"):
        [val[i] for i in range(3)]
    assert load_dataset("vqav2", block.copy(), splits=["val"], data_root=str(root))["val"][3]["question_id"] == 3


def test_an_empty_records_file_in_a_mixture_names_the_dataset_and_file(root):
    (root / "datasets/okvqa").mkdir(parents=True)
    (root / "datasets/okvqa/train.jsonl").write_text("")
    block = registry.get_builder_class("okvqa").default_config(vis_processor=TRAIN_16)
    okvqa = load_dataset("okvqa", block, splits=["train"], data_root=str(root))["train"]
    datasets = {"vqav2": vqav2(root), "okvqa": okvqa}
    with pytest.raises(ValueError, match=f"okvqa: no records in {root / 'datasets/okvqa/train.jsonl'}; an empty "
                                         f"dataset cannot take part in a mixture"):
        balanced_mixture(datasets)


def test_a_typo_under_build_info_is_an_error_with_the_closest_key(root):
    block = {"build_info": {"annotations": {"train": {"storag": "datasets/vqav2/other.jsonl"}}}}
    with pytest.raises(ConfigError, match=r"^datasets.vqav2: unknown key 'build_info.annotations.train.storag'; "
                                          r"did you mean 'build_info.annotations.train.storage'\?"):
        load_dataset("vqav2", block, data_root=str(root))


def test_strict_as_a_string_is_a_type_error_naming_the_key(root):
    with pytest.raises(ConfigError, match=r"^datasets.vqav2: 'datasets.vqav2.strict' must be bool, got 'no'$"):
        load_dataset("vqav2", {"strict": "no"}, data_root=str(root))


def test_the_documented_yaml_template_override_works_through_load_dataset(root, tmp_path):
    project = tmp_path / "project.yaml"
    project.write_text("datasets:\n  vqav2:\n    instruction:\n"
                       '      train: ["<Image>Question: {Question} Answer briefly:"]\n'
                       "    vis_processor: {train: {name: blip2_image_train, image_size: 16}}\n")
    train = load_dataset("vqav2", str(project), splits=["train"], data_root=str(root))["train"]
    assert train[0]["text_input"] == "Question: question 0? Answer briefly:"  # the paper's <Image> marker dropped
    assert len(train) == 8  # everything else from the default config


@pytest.mark.parametrize("encoding, found", [("latin-1", "an 8-bit encoding such as Latin-1"),
                                             ("utf-16", "UTF-16 LE (byte-order mark)")])
def test_an_annotation_file_in_another_encoding_is_named_with_offset(tmp_path, capsys, encoding, found):
    path = tmp_path / "src/v2_OpenEnded_mscoco_train2014_questions.json"
    path.parent.mkdir(parents=True)
    text = '{"questions": [{"question": "Où?"}]}\n'
    path.write_bytes(text.encode(encoding))
    offset = 0 if encoding == "utf-16" else text.index("ù")  # UTF-16: its byte-order mark is the first bad byte
    assert main(["vqav2", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {path}:1: not UTF-8 at byte offset {offset} ")
    assert f"it looks like {found}" in error
    assert not (tmp_path / "out").exists()


def test_a_records_line_that_is_not_utf8_names_file_line_and_offset(tmp_path):
    path = tmp_path / "train.jsonl"
    good = json.dumps({"image": "a.jpg", "text_input": "", "text_output": "ZZ"}) + "\n"
    path.write_bytes(good.encode() + good.replace("ZZ", "café").encode("latin-1"))
    offset = len(good) + good.index("ZZ") + 3
    with pytest.raises(EncodingError, match=rf"^{path}:2: not UTF-8 at byte offset {offset} \(bytes e9 22 7d 0a\); "
                                            r"it looks like an 8-bit encoding"):
        JsonlRecords(path)
    path.write_bytes(codecs.BOM_UTF16_LE + good.encode("utf-16-le"))
    with pytest.raises(EncodingError, match=rf"^{path}:1: not UTF-8 at byte offset 0 .*UTF-16 LE \(byte-order mark\)"):
        JsonlRecords(path)


def test_src_that_is_a_file_is_named(tmp_path, capsys):
    src = write_json(tmp_path / "v2_OpenEnded_mscoco_train2014_questions.json", {"questions": []})
    assert main(["vqav2", "--src", str(src), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith(f"error: vqav2: --src {src} is a file; pass the folder that holds it")


@pytest.mark.parametrize("entry, message", [
    ({"image_id": 9, "question": 7, "question_id": 1}, "'question' must be a string, got int 7"),
    ({"image_id": "nine", "question": "Why?", "question_id": 1},
     "'image_id' must be a number (an integer or a string of digits), got 'nine'"),
])
def test_a_bad_source_entry_is_named_against_the_source_file(tmp_path, capsys, entry, message):
    path = write_json(tmp_path / "src/v2_OpenEnded_mscoco_test2015_questions.json", {"questions": [entry]})
    assert main(["vqav2", "--src", str(tmp_path / "src"), "--split", "test", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"error: {path}: questions[0]: {message}\n"
    assert not (tmp_path / "out").exists()


def test_the_mixture_has_a_length_its_loop_ends_and_passes_continue_the_stream(root):
    mixture, sampler = balanced_mixture({"vqav2": vqav2(root)}, seed=0)
    loader = DataLoader(mixture, batch_size=4, sampler=sampler, collate_fn=mixture.collator)
    assert len(sampler) == 8 and len(loader) == 2
    first, second = [[key for key in sampler] for _ in range(2)]
    assert len(first) == len(second) == 8 and first != second  # the next pass continues, never repeats
    _, resumed = balanced_mixture({"vqav2": vqav2(root)}, seed=0)
    resumed.load_state_dict(sampler.state_dict(consumed=11))
    assert list(resumed) == second[3:]  # a resumed pass ends where the interrupted one would have
    assert [len(b["image"]) for b in loader] == [4, 4]
    assert "vqav2" in mixture.ratio_table() and "100.00%" in mixture.ratio_table()
    _, infinite = balanced_mixture({"vqav2": vqav2(root)}, num_samples=None)
    with pytest.raises(TypeError, match="infinite BalancedSampler has no length"):
        len(infinite)
