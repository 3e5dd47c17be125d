"""Tiny evaluation datasets in the converted record format, for the evaluation (task) tests.

`write_eval_fixture(data_root, dataset)` writes `n` records of one dataset split exactly as its converter
(`lavis_ib/datasets/converters/`) writes them — same fields, types, id conventions and media paths — to where the
dataset's default config reads them under `data_root`, together with the media the records point to (32×32 images,
8-frame 32×32 MPEG-4 videos) and, where the config names one, the answer list. Everything is deterministic: record
`i` is a pure function of (dataset, split, i, num_options); no randomness is used.

Ground truths are chosen to exercise the metrics: VQA-style records mix answer patterns (all ten identical, a
majority with a minority, "two" / "2", trailing punctuation and case, an exact tie, all different), binary tasks mix
both classes, NoCaps uses all three domains, VisDial moves the ground truth through the options.

Deliberate simplifications (each record is still exactly what the converter writes for such an entry):
* one media file per record (so `corrupt=k` breaks exactly the first k records); real VQA-style sets share images;
* VisDial: record `i` is round `i % 4 + 1` of its own dialog (history = the earlier rounds of that dialog), i.e. a
  subset of a real conversion, which would also write every other round of the same dialog; `answer_options` has
  `num_options` entries instead of 100;
* caption `train` splits (not used for evaluation) write one caption record per image.

Datasets sharing a media root (COCO images: coco_caption, vqav2, okvqa, aokvqa; textvqa/images: textvqa, textcaps)
use disjoint ids, so their fixtures can live under one data root (for n below several hundred).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

from lavis_ib.common.registry import registry
from lavis_ib.datasets.converters.base import coco_2014_image, coco_2017_image, most_common
from lavis_ib.datasets.converters.video_qa import rank_answers
from lavis_ib.datasets.records import validate_record, write_jsonl

FIXTURE_SPLITS: dict[str, str] = {
    "nocaps": "val",
    "flickr30k": "test",
    "coco_caption": "test",
    "textcaps": "val",
    "gqa": "testdev",
    "vsr": "test",
    "iconqa": "test",
    "textvqa": "val",
    "visdial": "val",
    "hateful_memes": "dev_seen",
    "vizwiz": "val",  # "test" too: records without answers, as the real test split
    "scienceqa": "test",
    "msvd_qa": "test",
    "msrvtt_qa": "test",
    "ivqa": "test",
    "okvqa": "val",
    "aokvqa": "val",
    "vqav2": "val",
}

IMAGE_SIZE = 32
VIDEO_FRAMES = 8
VIDEO_FPS = 8  # 8 frames: a one-second video
GARBAGE = b"\x00\xffthis is not an image or a video\x00\xff" * 8

# Splits whose converter writes no ground truth (the originals ship none).
NO_ANSWERS = {("vizwiz", "test"), ("textvqa", "test"), ("textcaps", "test"), ("nocaps", "test"), ("aokvqa", "test")}

# ----------------------------------------------------------------------------------------------------- helpers

COLOURS = [
    ("red", (220, 30, 30)), ("green", (30, 170, 60)), ("blue", (30, 60, 220)), ("yellow", (240, 220, 40)),
    ("purple", (140, 40, 170)), ("orange", (250, 140, 20)), ("white", (245, 245, 245)), ("black", (15, 15, 15)),
]


def colour_name(i: int) -> str:
    return COLOURS[i % len(COLOURS)][0]


def _digest(*parts: Any) -> str:
    return hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()


def hex_id(*parts: Any, length: int = 16) -> str:
    """A deterministic hex id (TextVQA / Open Images style)."""
    return _digest(*parts)[:length]


_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_YOUTUBE = _ALNUM + "-_"


def text_id(alphabet: str, length: int, *parts: Any) -> str:
    """A deterministic id over `alphabet` (A-OKVQA question ids, YouTube ids)."""
    number = int(_digest(*parts), 16)
    chars = []
    for _ in range(length):
        number, rest = divmod(number, len(alphabet))
        chars.append(alphabet[rest])
    return "".join(chars)


# (question, 10 answers, answer_type, question_type): the VQA answer patterns, cycled over records.
VQA_PATTERNS = [
    ("How many dogs are there?", ["two"] * 6 + ["2"] * 3 + ["three"], "number", "how many"),
    ("Is the light on?", ["yes"] * 10, "yes/no", "is the"),
    ("What color is the bus?", ["red."] * 4 + ["red"] * 3 + ["Red"] * 2 + ["dark red"], "other", "what color is the"),
    ("What animal is this?", ["a dog"] * 5 + ["dog"] * 5, "other", "what animal is"),  # a tie: the first given wins
    ("Is it raining?", ["no"] * 9 + ["yes"], "yes/no", "is it"),
    ("What sport is being played?", ["tennis", "tennis racket", "racket", "tennis", "racquet", "tennis",
                                     "playing tennis", "tennis", "tennis", "ball"], "other", "what sport is"),
    ("What time is it?", ["10:30"] * 4 + ["10:35"] * 2 + ["morning"] * 2 + ["10:30 am", "ten thirty"], "other",
     "what time"),
    ("What is the man holding?", ["umbrella", "an umbrella", "kite", "bag", "phone", "cup", "frisbee", "racket",
                                  "hat", "book"], "other", "what is the man"),  # all different
]

VIZWIZ_PATTERNS = [
    ("What is this?", ["coffee"] * 6 + ["coffee beans"] * 2 + ["unanswerable", "bag of coffee"], "other", 1),
    ("Can you tell me what color this shirt is?", ["unanswerable"] * 8 + ["blue", "dark blue"], "unanswerable", 0),
    ("How many pills are in my hand?", ["two"] * 5 + ["2"] * 4 + ["unanswerable"], "number", 1),
    ("Is this a can of soup?", ["yes"] * 10, "yes/no", 1),
    ("What does this say?", ["exit."] * 4 + ["exit"] * 4 + ["Exit", "exit sign"], "other", 1),
    ("What is the expiration date?", ["unsuitable"] * 5 + ["unanswerable"] * 5, "unanswerable", 0),  # a tie
    ("What kind of cereal is this?", ["cheerios", "honey nut cheerios", "cereal", "cheerios", "corn flakes",
                                      "unanswerable", "cheerios", "oat", "cheerios box", "general mills"], "other", 1),
]


def vqa_pattern(i: int) -> tuple:
    return VQA_PATTERNS[i % len(VQA_PATTERNS)]


# ----------------------------------------------------------------------------------------------------- captions

CAPTION_FORMS = (
    "A small square on a {c} background.",
    "a {c} picture with a square",
    "There is a square in a {c} image",
    "A {c} background with one square drawn on it.",
    "a picture of a square on {c}.",
    "The background is {c}.",
    "A square of the opposite colour on a plain {c} background.",
    "Close-up of a {c} surface with a square",
    "a simple square shape on {c}",
    "An image showing a square against {c}.",
)


def captions_of(i: int, count: int) -> list[str]:
    """References that describe what `_pixels(i)` draws: a square on a background of record i's colour."""
    return [CAPTION_FORMS[(k + i) % len(CAPTION_FORMS)].format(c=colour_name(i)) for k in range(count)]


def caption_record(base: dict, captions: list[str], split: str, has_captions: bool = True) -> dict:
    """`captions.caption_records`: eval splits one record per image with all references; train one per caption."""
    if not has_captions:
        return {**base, "text_input": "", "text_output": ""}
    if split == "train":
        return {**base, "text_input": "", "text_output": captions[0]}
    return {**base, "text_input": "", "text_output": captions[0], "captions": captions}


NOCAPS_DOMAINS = ("in-domain", "near-domain", "out-domain")


def nocaps(i: int, split: str, **_) -> dict:
    open_images_id = hex_id("nocaps", split, i)
    base = {"image": f"{split}/{open_images_id}.jpg", "image_id": i,
            "meta": {"domain": NOCAPS_DOMAINS[i % 3], "open_images_id": open_images_id}}
    return caption_record(base, captions_of(i, 10), split, ("nocaps", split) not in NO_ANSWERS)


def flickr30k(i: int, split: str, **_) -> dict:
    image_id = 1000092795 + 7919 * i
    base = {"image": f"flickr30k-images/{image_id}.jpg", "image_id": image_id}
    return caption_record(base, captions_of(i, 5), split)


def coco_caption(i: int, split: str, **_) -> dict:
    image_id = 391895 + 1013 * i
    folder = "train" if split == "train" and i % 2 == 0 else "val"  # Karpathy train = train2014 + restval (val2014)
    base = {"image": coco_2014_image(folder, image_id), "image_id": image_id}
    if split == "train":
        base["meta"] = {"split": "train" if folder == "train" else "restval"}
    return caption_record(base, captions_of(i, 5), split)


OCR_TOKENS = [["STOP"], ["Coca", "Cola", "Classic"], [], ["HOTEL", "2015", "open"], ["nokia"], ["5%", "SALE"],
              ["EXIT", "->"]]


def textcaps(i: int, split: str, **_) -> dict:
    image_id = hex_id("textcaps-image", split, i)  # not textvqa's ids: both read the media root textvqa/images
    folder = "test_images" if split == "test" else "train_images"
    base = {"image": f"{folder}/{image_id}.jpg", "image_id": image_id, "ocr_tokens": OCR_TOKENS[i % len(OCR_TOKENS)]}
    return caption_record(base, captions_of(i, 5), split, ("textcaps", split) not in NO_ANSWERS)


# ----------------------------------------------------------------------------------------------------- VQA style


def coco_vqa_record(i: int, split: str, image_id: int, question_id: int, question_type: str | None = None) -> dict:
    """A VQAv2 / OK-VQA record (same converter): COCO-2014 image, 10 answers, the most common as target."""
    question, answers, answer_type, pattern_type = vqa_pattern(i)
    return {
        "image": coco_2014_image(split, image_id),
        "text_input": question,
        "text_output": most_common(answers),  # VQAv2's multiple_choice_answer
        "question_id": question_id,
        "image_id": image_id,
        "answers": list(answers),
        "meta": {"question_type": question_type or pattern_type,
                 "answer_type": answer_type if question_type is None else "other"},
    }


def vqav2(i: int, split: str, **_) -> dict:
    image_id = 262148 + 37 * i
    return coco_vqa_record(i, split, image_id, image_id * 1000)


def okvqa(i: int, split: str, **_) -> dict:
    image_id = 297147 + 41 * i
    return coco_vqa_record(i, split, image_id, image_id * 10 + 5, ("one", "two", "three", "four", "five")[i % 5])


# (question, 10 direct answers, 4 choices, correct choice index, rationale)
AOKVQA_QA = [
    ("What is the man by the bags awaiting?", ["ride"] * 4 + ["cab"] * 3 + ["taxi"] * 2 + ["bus"],
     ["skateboarder", "train", "delivery", "cab"], 3, "He has bags and is standing at the curb waiting for a cab."),
    ("How many wheels does the vehicle have?", ["two"] * 6 + ["2"] * 4, ["one", "two", "three", "four"], 1,
     "It is a bicycle, which has two wheels."),
    ("What season is it?", ["winter"] * 10, ["winter", "summer", "spring", "fall"], 0,
     "There is snow on the ground."),
    ("What is the dog about to catch?", ["frisbee."] * 3 + ["frisbee"] * 3 + ["Frisbee"] * 2 + ["disc", "toy"],
     ["ball", "stick", "frisbee", "bone"], 2, "A flying disc is right above the dog."),
    ("Why is the man wearing a helmet?", ["safety"] * 5 + ["protection"] * 5,  # a tie: the first given wins
     ["fashion", "safety", "rain", "cold"], 1, "Helmets protect the head when riding."),
    ("What kind of food is on the plate?", ["pizza", "italian", "pizza pie", "flatbread", "pizza", "cheese",
                                            "fast food", "dinner", "junk food", "pepperoni"],
     ["pasta", "pizza", "salad", "soup"], 1, "The round flat food with cheese is a pizza."),
]


def aokvqa(i: int, split: str, **_) -> dict:
    question, answers, choices, label, rationale = AOKVQA_QA[i % len(AOKVQA_QA)]
    image_id = 461751 + 53 * i
    has_answers = ("aokvqa", split) not in NO_ANSWERS
    record = {
        "image": coco_2017_image(split, image_id),
        "text_input": question,
        "text_output": most_common(answers) if has_answers else "",
        "question_id": text_id(_ALNUM, 22, "aokvqa", split, i),
        "image_id": image_id,
        "choices": list(choices),
    }
    if has_answers:  # the test file has neither direct_answers nor correct_choice_idx
        record["answers"] = list(answers)
        record["label"] = label
    record["meta"] = {"difficult_direct_answer": i % 3 == 2}
    if has_answers:  # rationales are annotations: the test file has none
        record["meta"]["rationales"] = [rationale, f"The answer is {choices[label]}.", f"It shows {choices[label]}."]
    return record


GQA_QA = [
    ("Is the sky blue?", "yes", "Yes, the sky is blue.", "verify", "attr", "verifyAttr"),
    ("Is there a cat on the table?", "no", "No, there is a dog on the table.", "verify", "rel", "existRelS"),
    ("Which side is the car on?", "left", "The car is on the left of the image.", "query", "rel", "positionQuery"),
    ("What color is the shirt?", "white", "The shirt is white.", "query", "attr", "colorQuery"),
    ("Who is wearing the hat?", "man", "The man is wearing the hat.", "query", "rel", "relS"),
    ("What is the piece of furniture to the left of the lamp?", "table", "The piece of furniture is a table.",
     "query", "rel", "relS"),
    ("Are the glasses and the plate the same color?", "no", "No, the glasses are black and the plate is white.",
     "compare", "attr", "sameColor"),
]


def gqa(i: int, split: str, **_) -> dict:
    question, answer, full, structural, semantic, detailed = GQA_QA[i % len(GQA_QA)]
    image_id = f"n{161313 + 101 * i}"
    return {
        "image": f"{image_id}.jpg",
        "text_input": question,
        "text_output": answer,
        "answers": [answer],
        "question_id": str(20968379 + 13 * i),
        "image_id": image_id,
        "meta": {"fullAnswer": full, "types": {"structural": structural, "semantic": semantic,
                                                "detailed": detailed}},
    }


TEXTVQA_QA = [
    ("What does the sign say?", ["stop"] * 8 + ["stop sign", "halt"]),
    ("What brand is the drink?", ["coca cola"] * 5 + ["coca-cola"] * 3 + ["coke"] * 2),
    ("What is written on the wall?", ["unanswerable"] * 6 + ["graffiti"] * 2 + ["art", "nothing"]),
    ("What year is shown?", ["2015"] * 10),
    ("What brand is this phone?", ["nokia"] * 5 + ["NOKIA"] * 3 + ["nokia."] * 2),
    ("How much is the discount?", ["5%"] * 4 + ["five percent"] * 3 + ["5"] * 3),
    ("Which way is the exit?", ["right"] * 5 + ["exit"] * 5),  # a tie
]


IMAGE_CLASSES = [("Traffic sign", "Street sign"), ("Bottle",), ("Building",), ("Poster",), ("Mobile phone",),
                 ("Shop",), ("Sign",)]


def textvqa(i: int, split: str, **_) -> dict:
    question, answers = TEXTVQA_QA[i % len(TEXTVQA_QA)]
    image_id = hex_id("textvqa-image", split, i)
    has_answers = ("textvqa", split) not in NO_ANSWERS
    record = {
        "image": f"{'test_images' if split == 'test' else 'train_images'}/{image_id}.jpg",
        "text_input": question,
        "text_output": most_common(answers) if has_answers else "",
        "question_id": 34602 + i,
        "image_id": image_id,
        "ocr_tokens": OCR_TOKENS[i % len(OCR_TOKENS)],
    }
    if has_answers:
        record["answers"] = list(answers)
    record["meta"] = {"image_classes": list(IMAGE_CLASSES[i % len(IMAGE_CLASSES)])}
    return record


def vizwiz(i: int, split: str, **_) -> dict:
    question, answers, answer_type, answerable = VIZWIZ_PATTERNS[i % len(VIZWIZ_PATTERNS)]
    image = f"VizWiz_{split}_{i:08d}.jpg"
    has_answers = ("vizwiz", split) not in NO_ANSWERS
    record = {
        "image": f"{split}/{image}",
        "text_input": question,
        "text_output": most_common(answers) if has_answers else "",
        "question_id": Path(image).stem,
        "image_id": image,
    }
    if has_answers:  # the test annotations carry only image and question
        record["answers"] = list(answers)
        record["meta"] = {"answer_type": answer_type, "answerable": answerable}
    return record


# ----------------------------------------------------------------------------------------------------- choices


VSR_STATEMENTS = [
    ("The cat is left of the dog.", "left of", 1),
    ("The umbrella is under the bench.", "under", 0),
    ("The cup is on top of the laptop.", "on top of", 0),
    ("The person is touching the horse.", "touching", 1),
    ("The car is behind the bicycle.", "behind", 1),
    ("The teddy bear is at the right side of the bed.", "at the right side of", 0),
]


def vsr(i: int, split: str, **_) -> dict:
    statement, relation, label = VSR_STATEMENTS[i % len(VSR_STATEMENTS)]
    return {
        "image": f"{50403 + 89 * i:012d}.jpg",
        "text_input": statement,
        "text_output": ["false", "true"][label],
        "choices": ["false", "true"],
        "label": label,
        "meta": {"relation": relation},
    }


ICONQA_QA = [
    ("How many shapes are there?", ["2", "3", "4"], 1),
    ("What time is shown? Answer by typing a time word, not a number.", ["half past", "quarter to"], 0),
    ("Which shape is this?", ["circle", "triangle", "square", "rectangle", "hexagon"], 3),
    ("Is the number of squares even or odd?", ["even", "odd"], 1),
    ("What fraction of the shapes are blue?", ["1/2", "1/3", "2/3", "3/4"], 2),
    ("Which is the tallest?", ["first", "second", "third"], 0),
]


def iconqa(i: int, split: str, **_) -> dict:
    question, choices, label = ICONQA_QA[i % len(ICONQA_QA)]
    pid = str(2064 + 3 * i)
    return {
        "image": f"iconqa_data/iconqa/{split}/choose_txt/{pid}/image.png",
        "text_input": question,
        "choices": list(choices),
        "label": label,
        "text_output": choices[label],
        "question_id": pid,
    }


SCIENCEQA_QA = [
    ("Which of these states is farthest north?", "", ["West Virginia", "Louisiana", "Arizona", "Oklahoma"], 0,
     ("social science", "grade2", "geography", "Geography", "Read a map: cardinal directions")),
    ("Which animal's feet are also adapted for swimming?",
     "Ducks live near water. The feet of the duck are adapted for swimming.", ["sea otter", "tokay gecko"], 0,
     ("natural science", "grade4", "biology", "Adaptations", "Animal adaptations: feet")),
    ("What is the capital of Oregon?", "", ["Salem", "Portland", "Eugene", "Boise"], 0,
     ("social science", "grade3", "geography", "State capitals", "Identify state capitals")),
    ("Which solution has a higher concentration of purple particles?",
     "The diagram below is a model of two solutions. Each purple ball represents one particle of solute.",
     ["Solution A", "Solution B", "neither; their concentrations are the same"], 1,
     ("natural science", "grade5", "chemistry", "Solutions", "Compare concentrations of solutions")),
    ("Which type of force from the baby's hand opens the cabinet door?",
     "A baby wants to know what is inside of a cabinet. Her hand applies a force to the door.", ["pull", "push"], 0,
     ("natural science", "grade3", "physics", "Force and motion", "Identify pushes and pulls")),
]


def scienceqa(i: int, split: str, **_) -> dict:
    question, hint, choices, label, (subject, grade, topic, category, skill) = SCIENCEQA_QA[i % len(SCIENCEQA_QA)]
    pid = str(5 + 7 * i)
    folder = "val" if split == "minival" else split
    return {
        "image": f"images/{folder}/{pid}/image.png",
        "text_input": question,
        "context": hint,
        "choices": list(choices),
        "label": label,
        "text_output": choices[label],
        "question_id": pid,
        "meta": {"subject": subject, "grade": grade, "topic": topic, "category": category, "skill": skill},
    }


MEMES = [
    ("its their character not their color that matters", 0),
    ("don't be afraid to love again everyone is not like your ex", 1),
    ("putting bows on your pet", 1),
    ("i love everything and everybody! except for squirrels", 0),
    ("when you're the only one who understood the joke", 0),
    ("look! it says 2 + 2 = 5...", 1),
]


def hateful_memes(i: int, split: str, **_) -> dict:
    text, label = MEMES[i % len(MEMES)]
    meme_id = 1235 + 4021 * i
    return {
        "image": f"img/{meme_id:05d}.png",
        "text_input": text,
        "text_output": ["no", "yes"][label],
        "choices": ["no", "yes"],
        "question_id": meme_id,
        "label": label,
    }


VISDIAL_TURNS = [
    ("is the photo in color", "yes"),
    ("how many people are there", "2"),
    ("what color is the bus", "red and white"),
    ("can you see the sky", "no"),
    ("is it daytime", "i think so"),
    ("are there any animals", "1 dog"),
    ("what is the weather like", "sunny"),
]
VISDIAL_CAPTIONS = ["a red bus parked on the side of a street", "two people standing next to a dog",
                    "a kitchen with a white refrigerator", "a man riding a bike down a road"]
OPTION_POOL = ("yes", "no", "2", "1", "3", "red", "white", "i can't tell", "maybe", "not sure", "sunny", "cloudy",
               "outside", "on the left", "a few", "none", "i think so", "1 dog", "red and white", "blue",
               "daytime", "yes it is", "no it isn't", "i don't think so")


def answer_options(answer: str, gt_index: int, num_options: int) -> list[str]:
    """`num_options` distinct short strings with `answer` at `gt_index`."""
    distractors = [o for o in OPTION_POOL if o != answer]
    distractors += [f"option {k}" for k in range(max(0, num_options - len(distractors)))]
    options = distractors[:num_options - 1]
    options.insert(gt_index, answer)
    return options


def visdial(i: int, split: str, num_options: int = 12, **_) -> dict:
    round_number = i % 4 + 1
    image_id = 185565 + 11 * i
    turns = [VISDIAL_TURNS[(i + k) % len(VISDIAL_TURNS)] for k in range(round_number)]
    question, answer = turns[-1]
    gt_index = (3 * i + 1) % num_options
    folder = f"VisualDialog_{split}2018"
    return {
        "image": f"{folder}/{folder}_{image_id:012d}.jpg",
        "text_input": question,
        "text_output": answer,
        "question_id": f"{image_id}_{round_number}",
        "image_id": image_id,
        "context": VISDIAL_CAPTIONS[i % len(VISDIAL_CAPTIONS)],
        "answer_options": answer_options(answer, gt_index, num_options),
        "gt_index": gt_index,
        "meta": {"round": round_number},
        "history": [list(turn) for turn in turns[:-1]],
    }


# ----------------------------------------------------------------------------------------------------- video

VIDEO_QA = [
    ("What is the man doing?", "dance"),
    ("How many dogs play?", "two"),
    ("What runs across the road?", "cat"),
    ("Who is playing the guitar?", "man"),
    ("What is a woman doing?", "cook"),
    ("Who is talking?", "man"),  # a repeated answer: ranked first in the answer list
    ("What is the girl riding?", "horse"),
]
ANSWER_LIST_EXTRAS = ["woman", "play", "run", "dog", "ball", "car", "sing", "three", "2"]


def msvd_qa(i: int, split: str, **_) -> dict:
    question, answer = VIDEO_QA[i % len(VIDEO_QA)]
    clip = f"{text_id(_YOUTUBE, 11, 'msvd', split, i)}_{5 * i}_{5 * i + 10}"
    video_id = 1201 + i
    return {
        "image": f"YouTubeClips/{clip}.avi",
        "text_input": question,
        "text_output": answer,
        "answers": [answer],
        "question_id": 30933 + i,
        "meta": {"video_id": video_id},
    }


def msrvtt_qa(i: int, split: str, **_) -> dict:
    question, answer = VIDEO_QA[(i + 3) % len(VIDEO_QA)]
    video_id = 7010 + i
    return {
        "image": f"video{video_id}.mp4",
        "text_input": question,
        "text_output": answer,
        "answers": [answer],
        "question_id": 158581 + i,
        "meta": {"video_id": video_id, "category_id": (3 * i) % 20},
    }


IVQA_QA = [
    ("What is the person cutting?", ["onion", "onion", "onions", "onion", "garlic"]),
    ("What animal is shown?", ["dog", "puppy", "dog", "dog"]),  # one of five blank
    ("What is in the bowl?", ["soup", "water", "broth"]),  # all different, two blank
    ("How many eggs are used?", ["two", "2", "two", "two", "2"]),
    ("What tool is used?", ["knife", "knife", "knife", "knife", "knife"]),
    ("What is being made?", ["cake.", "cake", "Cake", "bread", "cake"]),
]
IVQA_CLIPS = [(0, 1), (0.25, 0.75), None, (0, 0.5)]  # seconds; None: start/end blank (the whole video)


def ivqa(i: int, split: str, **_) -> dict:
    question, answers = IVQA_QA[i % len(IVQA_QA)]
    video_id = text_id(_YOUTUBE, 11, "ivqa", split, i)
    record = {
        "image": f"{video_id}.mp4",
        "text_input": question,
        "text_output": most_common(answers),
        "answers": list(answers),
        "question_id": i,  # the 0-based data-row index
        "meta": {"video_id": video_id},
    }
    clip = IVQA_CLIPS[i % len(IVQA_CLIPS)]
    if clip is not None:
        record["start"], record["end"] = clip
    return record


RECORD_MAKERS: dict[str, Callable[..., dict]] = {
    "nocaps": nocaps, "flickr30k": flickr30k, "coco_caption": coco_caption, "textcaps": textcaps, "gqa": gqa,
    "vsr": vsr, "iconqa": iconqa, "textvqa": textvqa, "visdial": visdial, "hateful_memes": hateful_memes,
    "vizwiz": vizwiz, "scienceqa": scienceqa, "msvd_qa": msvd_qa, "msrvtt_qa": msrvtt_qa, "ivqa": ivqa,
    "okvqa": okvqa, "aokvqa": aokvqa, "vqav2": vqav2,
}
assert set(RECORD_MAKERS) == set(FIXTURE_SPLITS)


# ----------------------------------------------------------------------------------------------------- media


def _pixels(i: int):
    """A 32×32 RGB array: record i's background colour with a contrasting square whose place and size vary."""
    import numpy as np

    array = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    array[:] = COLOURS[i % len(COLOURS)][1]
    size = 6 + 2 * ((i // len(COLOURS)) % 6)
    top, left = (5 * i) % (IMAGE_SIZE - size), (11 * i) % (IMAGE_SIZE - size)
    array[top:top + size, left:left + size] = [255 - c for c in COLOURS[i % len(COLOURS)][1]]
    return array


def write_image(path: Path, i: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_pixels(i)).save(path, format="PNG" if path.suffix.lower() == ".png" else "JPEG", quality=95)


def write_video(path: Path, i: int) -> None:
    """An 8-frame 32×32 MPEG-4 video (container from the suffix: .mp4, .avi) whose square moves right."""
    import numpy as np

    from lavis_ib.common.media import encode_video

    frames = np.stack([np.roll(_pixels(i), 3 * t, axis=1) for t in range(VIDEO_FRAMES)])
    path.parent.mkdir(parents=True, exist_ok=True)
    encode_video(path, frames, fps=VIDEO_FPS)


# ----------------------------------------------------------------------------------------------------- API


def _resolve(storage: str, data_root: Path) -> Path:
    path = Path(storage).expanduser()
    return path if path.is_absolute() else data_root / path


def write_eval_fixture(data_root: Path, dataset: str, split: str | None = None, n: int = 6,
                       corrupt: int = 0, num_options: int = 12) -> Path:
    """Write `n` records of `dataset`/`split` (default FIXTURE_SPLITS[dataset]) under `data_root`, where the
    dataset's default config reads them, plus their media; returns the records file path.

    `corrupt=k`: the media files of the first k records hold garbage bytes (unreadable), the records are valid.
    `num_options`: VisDial's number of answer options per round (100 in the real data). Where the config names an
    answer list (MSVD-QA, MSRVTT-QA) it is written too: every record's answer, plus a few others.
    """
    if dataset not in RECORD_MAKERS:
        raise KeyError(f"no eval fixture for dataset {dataset!r}; known: {', '.join(sorted(RECORD_MAKERS))}")
    split = split or FIXTURE_SPLITS[dataset]
    if n < 1 or not 0 <= corrupt <= n:
        raise ValueError(f"need n ≥ 1 and 0 ≤ corrupt ≤ n, got n={n}, corrupt={corrupt}")
    if num_options < 1:
        raise ValueError(f"num_options must be ≥ 1, got {num_options}")
    data_root = Path(data_root)
    config = registry.get_builder_class(dataset).default_config()
    info = config.build_info
    if split not in info.annotations:
        raise KeyError(f"{dataset} has no configured split {split!r}; configured: {', '.join(info.annotations)}")
    entry = info.annotations[split]
    records_path = _resolve(entry if isinstance(entry, str) else entry.storage, data_root)
    video = config.get("data_type", "images") == "videos"
    media_root = _resolve((info.videos if video else info.images).storage, data_root)

    records = [RECORD_MAKERS[dataset](i, split, num_options=num_options) for i in range(n)]
    for i, record in enumerate(records):
        validate_record(record, f"{dataset} {split} fixture record {i}")
        for relative in record["image"] if isinstance(record["image"], list) else [record["image"]]:
            path = media_root / relative
            if i < corrupt:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(GARBAGE)
            elif video:
                write_video(path, i)
            else:
                write_image(path, i)
    write_jsonl(records, records_path, overwrite=True)

    if info.get("answer_list") is not None:
        answers = [answer for record in records for answer in record.get("answers", [])]
        ranked = rank_answers(answers, None)
        answer_list = ranked + [a for a in ANSWER_LIST_EXTRAS if a not in ranked]
        path = _resolve(info.answer_list.storage, data_root)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(answer_list, ensure_ascii=False), encoding="utf-8")
    return records_path
