"""MSVD-QA and MSRVTT-QA (xudejing/video-question-answering): open-ended video QA, one answer per question.

Originals: `{train,val,test}_qa.json`, lists of `{"answer", "id", "question", "video_id"(int)}` (MSRVTT-QA adds
`"category_id"`); MSVD-QA also needs `youtube_mapping.txt`, one `<youtube clip name> vid<N>` line per video.
LAVIS's `qa_{train,val,test}.json` (lists of `{"question", "answer", "video", "question_id"}`) are read when the
originals are absent.

Record: `image` = `YouTubeClips/<clip>.avi` (MSVD; a `video_id` missing from the mapping is skipped) or
`video<video_id>.mp4` (MSRVTT), `text_input` = question, `text_output` = answer, `answers` = [answer],
`question_id` = `id`, `meta` = {video_id[, category_id]}.

Every split also yields `answer_list.json`, the candidates of vocabulary ranking: the answers of LAVIS's
`train_ans2label.json` in label order when that file is in the folder, otherwise the train split's distinct answers,
most frequent first (ties: first seen), capped at `ANSWER_LIST_SIZE` (MSRVTT: 1,500, the size of LAVIS's list).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterator

from lavis_ib.datasets.converters.base import (
    Artifact,
    Skip,
    SourceError,
    field,
    find_source,
    has_source,
    integer_id,
    load_json,
    register_converter,
    text,
)
from lavis_ib.datasets.encoding import read_utf8

SPLITS = ("test", "train", "val")
MAPPING = "youtube_mapping.txt"
ANS2LABEL = "train_ans2label.json"
ANSWER_LIST = "answer_list.json"
ANSWER_LIST_SIZE: dict[str, int | None] = {"msvd_qa": None, "msrvtt_qa": 1500}  # None: every distinct train answer


def original_name(split: str) -> str:
    return f"{split}_qa.json"


def lavis_name(split: str) -> str:
    return f"qa_{split}.json"


def read_youtube_mapping(path: Path) -> dict[int, str]:
    """`{N: clip name}` from `youtube_mapping.txt` lines `<clip name> vid<N>`; a malformed line is named."""
    mapping = {}
    for number, line in enumerate(read_utf8(path).split("\n"), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].startswith("vid") or not parts[1][3:].isdigit():
            raise SourceError(f"{path}:{number}: expected '<youtube clip name> vid<N>', got {line.strip()!r}")
        mapping[int(parts[1][3:])] = parts[0]
    return mapping


def _msvd_video(mapping: dict[int, str], video_id: int) -> str | None:
    clip = mapping.get(int(video_id))
    return f"YouTubeClips/{clip}.avi" if clip is not None else None


def _msrvtt_video(video_id: int) -> str:
    return f"video{int(video_id)}.mp4"


def _from_originals(name: str, src: Path, split: str) -> Iterator[dict | Skip]:
    path = find_source(src, original_name(split))
    mapping = read_youtube_mapping(find_source(src, MAPPING)) if name == "msvd_qa" else None
    for n, entry in enumerate(load_json(path)):
        where = f"{path}: [{n}]"
        video_id = integer_id(entry, "video_id", where)
        video = _msvd_video(mapping, video_id) if mapping is not None else _msrvtt_video(video_id)
        if video is None:
            yield Skip(f"video id not in {MAPPING}")
            continue
        answer = str(field(entry, "answer", where))
        meta = {"video_id": video_id}
        if name == "msrvtt_qa":
            meta["category_id"] = field(entry, "category_id", where)
        yield {
            "image": video,
            "text_input": text(entry, "question", where),
            "text_output": answer,
            "answers": [answer],
            "question_id": field(entry, "id", where),
            "meta": meta,
        }


def _lavis_video(name: str, video: str) -> str:
    """LAVIS's `video` file name placed in this project's layout (MSVD clips live under `YouTubeClips/`)."""
    return f"YouTubeClips/{video}" if name == "msvd_qa" and "/" not in video else video


def _from_lavis(name: str, path: Path) -> Iterator[dict]:
    for n, entry in enumerate(load_json(path)):
        where = f"{path}: [{n}]"
        answer = str(field(entry, "answer", where))
        yield {
            "image": _lavis_video(name, field(entry, "video", where)),
            "text_input": text(entry, "question", where),
            "text_output": answer,
            "answers": [answer],
            "question_id": field(entry, "question_id", where),
        }


def rank_answers(answers: list[str], size: int | None) -> list[str]:
    """Distinct `answers`, most frequent first (ties keep first-seen order), at most `size` of them."""
    ranked = [answer for answer, _ in Counter(answers).most_common()]  # most_common is stable for equal counts
    return ranked if size is None else ranked[:size]


def answer_list(name: str, src: Path) -> list[str]:
    """The ranking candidates: LAVIS's `train_ans2label.json` in label order, else built from the train split."""
    if has_source(src, ANS2LABEL):
        path = src / ANS2LABEL
        ans2label = load_json(path)
        if not isinstance(ans2label, dict):
            raise SourceError(f"{path}: expected an object mapping answer → label id, got {type(ans2label).__name__}")
        return sorted(ans2label, key=lambda answer: ans2label[answer])
    path = find_source(src, ANS2LABEL, original_name("train"), lavis_name("train"))
    answers = [str(field(entry, "answer", f"{path}: [{n}]")) for n, entry in enumerate(load_json(path))]
    return rank_answers(answers, ANSWER_LIST_SIZE[name])


def read_video_qa(name: str, src: Path, split: str) -> Iterator[dict | Skip | Artifact]:
    """Records of `split` (originals, or LAVIS's JSON when only that is present), and the answer list."""
    path = find_source(src, original_name(split), lavis_name(split))  # before any side file is written
    yield Artifact(ANSWER_LIST, answer_list(name, src))
    if path.name == lavis_name(split):
        yield from _from_lavis(name, path)
    else:
        yield from _from_originals(name, src, split)


@register_converter("msvd_qa", SPLITS, "<split>_qa.json + youtube_mapping.txt (or LAVIS qa_<split>.json); "
                    "answer list from train_ans2label.json or train_qa.json")
def convert_msvd_qa(src: Path, split: str):
    return read_video_qa("msvd_qa", src, split)


@register_converter("msrvtt_qa", SPLITS, "<split>_qa.json (or LAVIS qa_<split>.json); "
                    "answer list from train_ans2label.json or train_qa.json")
def convert_msrvtt_qa(src: Path, split: str):
    return read_video_qa("msrvtt_qa", src, split)
