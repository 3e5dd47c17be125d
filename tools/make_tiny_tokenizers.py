"""Build the tiny tokenizer assets in `lavis_ib/assets/tokenizers/` (LLaMA, T5, OPT, BERT) in their real file formats.

The assets stand in for the multi-GB hub tokenizers in tests. Everything is deterministic (fixed corpus, fixed seeds,
single-threaded sentencepiece), so running `python tools/make_tiny_tokenizers.py` twice gives byte-identical files.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "lavis_ib" / "assets" / "tokenizers"

SEED = 1234
LLAMA_VOCAB_SIZE = 1000
T5_VOCAB_SIZE = 1000
T5_EXTRA_IDS = 100
OPT_VOCAB_SIZE = 1000
BERT_VOCAB_SIZE = 1000

COLOURS = [
    "red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "white", "grey", "golden", "silver",
    "violet", "turquoise", "beige", "crimson", "navy", "maroon", "olive", "teal", "ivory", "lavender", "scarlet",
]
SHAPES = [
    "circle", "square", "triangle", "rectangle", "star", "heart", "diamond", "oval", "cube", "sphere", "cone",
    "cylinder", "pyramid", "hexagon", "pentagon", "octagon", "crescent", "spiral", "arrow", "cross", "ring", "prism",
]
OBJECTS = [
    "cat", "dog", "horse", "bird", "car", "bus", "train", "boat", "plane", "bicycle", "man", "woman", "child", "girl",
    "boy", "table", "chair", "bench", "umbrella", "kite", "pizza", "cake", "banana", "apple", "sandwich", "laptop",
    "phone", "clock", "vase", "book", "bottle", "cup", "bowl", "giraffe", "elephant", "zebra", "sheep", "cow", "bear",
    "motorcycle", "truck", "airplane", "skateboard", "surfboard", "frisbee", "tennis racket", "baseball bat", "ball",
    "teddy bear", "toothbrush", "scissors", "refrigerator", "oven", "microwave", "toaster", "sink", "keyboard",
    "mouse", "remote", "television", "couch", "bed", "toilet", "potted plant", "donut", "hot dog", "carrot",
    "broccoli", "orange", "knife", "spoon", "fork", "wine glass", "handbag", "backpack", "suitcase", "tie", "skis",
    "snowboard", "traffic light", "fire hydrant", "stop sign", "parking meter", "lamp", "mirror", "curtain", "pillow",
    "basket", "guitar", "piano", "violin", "camera", "helmet", "jacket", "sweater", "shoe", "hat", "glasses",
    "flower", "tree", "bush", "fence", "bridge", "tower", "castle", "church", "lighthouse", "statue", "fountain",
    "squirrel", "rabbit", "duck", "goose", "swan", "pigeon", "parrot", "penguin", "dolphin", "whale", "turtle",
    "butterfly", "monkey", "lion", "tiger", "wolf", "fox", "deer", "camel", "kangaroo", "koala", "panda", "owl",
]
PLACES = [
    "street", "kitchen", "beach", "field", "park", "room", "table", "river", "forest", "city", "road", "garden",
    "mountain", "snow", "grass", "water", "sky", "station", "market", "window", "airport", "harbour", "desert",
    "village", "playground", "stadium", "library", "museum", "restaurant", "office", "classroom", "bathroom",
    "bedroom", "living room", "balcony", "rooftop", "sidewalk", "highway", "lake", "ocean", "island", "valley",
    "meadow", "farm", "barn", "zoo", "court", "track", "shelf", "counter", "floor", "wall", "doorway", "porch",
]
VERBS = [
    "sitting on", "standing near", "running across", "lying in", "flying over", "walking along", "parked beside",
    "playing in", "looking at", "eating", "holding", "riding", "carrying", "jumping over", "climbing", "crossing",
    "swimming in", "sleeping on", "waiting at", "leaning against", "hanging from", "floating on", "driving down",
    "throwing", "catching", "kicking", "pulling", "pushing", "watching", "painting", "reading", "cooking",
    "cutting", "drinking from", "wearing", "chasing", "following", "approaching", "leaving", "entering",
]
ADJECTIVES = [
    "small", "large", "old", "young", "happy", "tall", "short", "wooden", "bright", "dark", "shiny", "empty",
    "crowded", "quiet", "busy", "colourful", "striped", "spotted", "fluffy", "wet", "dry", "dirty", "clean",
    "broken", "new", "ancient", "modern", "tiny", "huge", "narrow", "wide", "heavy", "light", "soft", "hard",
    "smiling", "curious", "sleepy", "hungry", "fresh", "frozen", "sunny", "cloudy", "rainy", "foggy", "beautiful",
]
ADVERBS = ["quickly", "slowly", "carefully", "happily", "quietly", "together", "outside", "inside", "nearby", "there"]
NUMBERS = [
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen",
    "fifteen", "twenty", "thirty", "forty", "fifty", "hundred", "several", "many", "few", "no", "some",
]
EXTRA_WORDS = {
    "materials": [
        "metal", "plastic", "glass", "paper", "cotton", "leather", "stone", "brick", "concrete", "ceramic", "marble",
        "rubber", "velvet", "bamboo", "copper", "steel", "wool", "silk", "cardboard", "porcelain",
    ],
    "foods": [
        "bread", "cheese", "butter", "noodles", "rice", "soup", "salad", "cookie", "muffin", "pancake", "waffle",
        "strawberry", "blueberry", "lemon", "grapes", "watermelon", "pineapple", "tomato", "potato", "onion", "pepper",
        "mushroom", "chicken", "sausage", "burger", "omelette", "yogurt", "chocolate", "coffee", "juice", "milk",
    ],
    "people": [
        "teacher", "doctor", "farmer", "chef", "pilot", "soldier", "police officer", "firefighter", "student",
        "tourist", "athlete", "player", "referee", "photographer", "musician", "dancer", "painter", "baker",
        "grandmother", "grandfather", "family", "crowd", "couple", "toddler", "teenager", "skier", "surfer",
    ],
    "weather": [
        "sunshine", "thunderstorm", "lightning", "rainbow", "breeze", "blizzard", "drizzle", "sunset", "sunrise",
        "twilight", "shadow", "reflection", "horizon", "moonlight", "puddle", "icicle",
    ],
    "actions": [
        "smiles", "laughs", "waves", "jumps", "dances", "sings", "writes", "draws", "builds", "repairs", "cleans",
        "washes", "folds", "opens", "closes", "lifts", "drops", "points", "shows", "hides", "finds", "counts",
        "sorts", "arranges", "compares", "measures", "balances", "stacks", "spins", "rolls", "bounces", "slides",
    ],
    "positions": [
        "left", "right", "top", "bottom", "middle", "center", "corner", "edge", "front", "back", "behind", "between",
        "beneath", "underneath", "beside", "around", "through", "towards", "across", "against", "among", "within",
    ],
    "ordinals": [
        "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth", "last",
        "final", "previous", "next", "another", "each", "every", "both", "either", "neither",
    ],
    "sports": [
        "football", "basketball", "volleyball", "baseball", "tennis", "golf", "hockey", "cricket", "rugby", "skiing",
        "surfing", "sailing", "rowing", "cycling", "boxing", "wrestling", "gymnastics", "marathon", "archery",
        "fencing", "badminton", "bowling", "karate", "climbing",
    ],
    "household": [
        "blanket", "cushion", "carpet", "drawer", "cupboard", "wardrobe", "dishwasher", "kettle", "teapot", "saucepan",
        "frying pan", "cutting board", "napkin", "towel", "bucket", "broom", "ladder", "hammer", "screwdriver",
        "envelope", "notebook", "pencil", "crayon", "calendar", "candle", "lantern", "doorbell", "staircase",
    ],
    "nature": [
        "volcano", "glacier", "waterfall", "canyon", "cliff", "pebble", "boulder", "seashell", "coral", "seaweed",
        "pinecone", "acorn", "leaf", "branch", "trunk", "blossom", "daisy", "tulip", "sunflower", "cactus", "fern",
        "moss", "mushroom", "meadow", "pond", "stream", "wave", "tide", "dune", "orchard",
    ],
    "feelings": [
        "excited", "nervous", "proud", "surprised", "confused", "relaxed", "bored", "grateful", "cheerful", "gloomy",
        "anxious", "calm", "delighted", "furious", "jealous", "lonely", "peaceful", "thoughtful", "worried",
    ],
    "past": [
        "arrived", "borrowed", "celebrated", "discovered", "explored", "gathered", "imagined", "invented", "noticed",
        "organized", "photographed", "practised", "recognized", "remembered", "scattered", "travelled", "visited",
        "wandered", "whispered", "yelled", "decorated", "delivered", "escaped", "finished", "hurried", "knocked",
    ],
    "vehicles": [
        "tram", "subway", "taxi", "van", "tractor", "scooter", "helicopter", "sailboat", "canoe", "kayak", "yacht",
        "ferry", "ambulance", "fire engine", "bulldozer", "wagon", "carriage", "rocket", "submarine", "jeep",
    ],
    "scenes": [
        "birthday party", "wedding", "picnic", "parade", "concert", "festival", "exhibition", "competition",
        "ceremony", "graduation", "holiday", "vacation", "journey", "adventure", "celebration", "performance",
        "rehearsal", "tournament", "carnival", "auction", "breakfast", "lunch", "dinner", "meeting", "lecture",
        "interview", "experiment", "workshop", "barbecue", "fireworks", "sleepover", "expedition",
    ],
    "wildlife": [
        "hedgehog", "raccoon", "beaver", "otter", "badger", "moose", "buffalo", "rhinoceros", "hippopotamus",
        "crocodile", "alligator", "flamingo", "peacock", "ostrich", "seagull", "sparrow", "woodpecker", "hummingbird",
        "jellyfish", "octopus", "lobster", "starfish", "caterpillar", "ladybug", "dragonfly", "grasshopper",
        "chameleon", "lizard", "tortoise", "salamander",
    ],
}
EXTRA_TEMPLATES = [
    "The {food} {action} {position} the {person} {weather}.",
    "Look at the {weather}: the {food} is made of {material}, and it {action} {position} the {person}.",
    "Is the {weather} {position} the {food} or {person} it?",
    "Count the {ordinal} {food}s {position} the {person} and write the number.",
    "During {sport}, a {feeling} {person} {action} near the {item} by the {nature}.",
    "The {person} keeps a {item} made of {material} for {sport} practice.",
    "Why does the {person} feel {feeling} after {sport}?",
    "After the {weather}, the {adjective} {person} {action} with a {item}.",
    "Yesterday the {person} {past} the {nature} by {vehicle}.",
    "A {vehicle} {past} {position} the {item} before the {weather}.",
    "Everyone {past} the {scene}, although the {person} was {feeling}.",
    "This {scene} happened {position} the {nature}, with a {vehicle} and {ordinal} {food}.",
    "Can you spot the {animal} hiding {position} the {nature}? It looks {feeling}.",
]
EXTRA_SLOTS = {
    "food": "foods",
    "action": "actions",
    "position": "positions",
    "person": "people",
    "weather": "weather",
    "material": "materials",
    "ordinal": "ordinals",
    "nature": "nature",
    "sport": "sports",
    "item": "household",
    "feeling": "feelings",
    "past": "past",
    "vehicle": "vehicles",
    "scene": "scenes",
    "animal": "wildlife",
}


QUESTIONS = [
    "What colour is the {o}?",
    "How many {o}s are in the picture?",
    "Is there a {c} {o} in the image?",
    "Where is the {o}?",
    "What is the {o} doing?",
    "Which shape is {c}?",
    "Question: what is on the {p}? Answer:",
    "Can you count the {s}s?",
    "Why is the {o} {v} the {p}?",
    "Who is {v} the {o2}?",
    "When was this photo taken?",
    "What time does the clock show?",
    "Does the {o} look {a}?",
    "Are there more {c} {s}s than {c2} {s2}s?",
    "What kind of {o} is shown here?",
    "Based on the image, respond to this question with a short answer: {q}",
]
CAPTIONS = [
    "A {a} {c} {o} {v} the {p}.",
    "There are {n} {c} {s}s on the {p}.",
    "The {o} is {v} a {a} {o2}.",
    "A photo of {n} {o}s in a {a} {p}.",
    "Write a short description for the image.",
    "Describe the image in detail.",
    "An image of a {c} {s} next to a {s2}.",
    "Two people are {v} the {p} at {t} o'clock.",
    "A {a} {o} {d} {v} a {c} {o2}.",
    "In this picture, {n} {a} {o}s are {v} the {p} {d}.",
    "The {c} {s} is above the {c2} {s2}, and the {o} is below them.",
    "Someone is {v} a {o} while a {o2} waits {d}.",
    "A close-up view of a {c} {o} on a {a} {p}.",
    "It was {a} and {a2} near the {p}, so the {o} stayed {d}.",
]
ANSWERS = ["yes", "no", "{n}", "{c}", "on the {p}", "it is {c}", "a {s}", "{t} items", "the {o}", "{a}", "{t}"]


def build_corpus(num_sentences: int = 600, seed: int = SEED) -> list[str]:
    """Deterministic English corpus of captions, questions and answers (colours, shapes, counting)."""
    rng = random.Random(seed)
    lines: list[str] = []
    for i in range(num_sentences):
        slots = {
            "c": rng.choice(COLOURS),
            "s": rng.choice(SHAPES),
            "s2": rng.choice(SHAPES),
            "o": rng.choice(OBJECTS),
            "o2": rng.choice(OBJECTS),
            "p": rng.choice(PLACES),
            "v": rng.choice(VERBS),
            "a": rng.choice(ADJECTIVES),
            "a2": rng.choice(ADJECTIVES),
            "c2": rng.choice(COLOURS),
            "d": rng.choice(ADVERBS),
            "q": rng.choice(["how many?", "what colour?", "where?", "which one?"]),
            "n": rng.choice(NUMBERS),
            "t": str(rng.randint(0, 99)),
        }
        caption, question, answer = (rng.choice(group).format(**slots) for group in (CAPTIONS, QUESTIONS, ANSWERS))
        lines.append((caption, f"{question} {answer}", f"{caption} {question} Short answer: {answer}")[i % 3])
    for _ in range(num_sentences):
        picks = {slot: rng.choice(EXTRA_WORDS[group]) for slot, group in EXTRA_SLOTS.items()}
        picks["adjective"] = rng.choice(ADJECTIVES)
        lines.append(rng.choice(EXTRA_TEMPLATES).format(**picks))
    for word_list in (COLOURS, SHAPES, OBJECTS, PLACES, VERBS, ADJECTIVES, ADVERBS, NUMBERS, *EXTRA_WORDS.values()):
        lines.append(", ".join(word_list).capitalize() + ".")
    lines.append("Hello world! Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 2024; symbols: ( ) [ ] - + = / % & @ # * \" '")
    return lines


def _train_sentencepiece(corpus: list[str], **options: object) -> bytes:
    """Train a sentencepiece model in memory, single-threaded and seeded, and return the serialized proto."""
    import sentencepiece as spm

    spm.set_random_generator_seed(SEED)
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=buffer, num_threads=1, minloglevel=2, **options
    )
    return buffer.getvalue()


def _clean_config(directory: Path, **updates: object) -> None:
    """Drop load-time, machine-specific keys from a saved `tokenizer_config.json` and merge in `updates`."""
    config_path = directory / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    for key in ("name_or_path", "is_local", "local_files_only"):
        config.pop(key, None)
    config.update(updates)
    _write_json(config_path, config)


def _write_json(path: Path, data: dict) -> None:
    """Write JSON the way `save_pretrained` does (sorted keys, indent 2, trailing newline)."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def make_llama(out_dir: Path, corpus: list[str]) -> None:
    """LLaMA-style byte-fallback BPE sentencepiece model (`<unk>`=0, `<s>`=1, `</s>`=2, no pad), saved via HF."""
    from transformers import LlamaTokenizer

    model = _train_sentencepiece(
        corpus,
        model_type="bpe",
        vocab_size=LLAMA_VOCAB_SIZE,
        byte_fallback=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        character_coverage=0.99995,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        unk_surface=" \u2047 ",
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / "tokenizer.model"
        model_path.write_bytes(model)
        tokenizer = LlamaTokenizer.from_pretrained(tmp, add_bos_token=True, add_eos_token=False)
        tokenizer.save_pretrained(str(out_dir))
    (out_dir / "tokenizer.model").write_bytes(model)
    _clean_config(out_dir, add_bos_token=True, add_eos_token=False, model_max_length=2048)


def make_t5(out_dir: Path, corpus: list[str]) -> None:
    """T5-style unigram sentencepiece model (`<pad>`=0, `</s>`=1, `<unk>`=2, no bos) plus extra_ids, saved via HF."""
    from transformers import T5Tokenizer

    model = _train_sentencepiece(
        corpus,
        model_type="unigram",
        vocab_size=T5_VOCAB_SIZE,
        character_coverage=1.0,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        pad_piece="<pad>",
        eos_piece="</s>",
        unk_piece="<unk>",
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / "spiece.model"
        model_path.write_bytes(model)
        tokenizer = T5Tokenizer.from_pretrained(tmp, extra_ids=T5_EXTRA_IDS)
        tokenizer.save_pretrained(str(out_dir))
    (out_dir / "spiece.model").write_bytes(model)
    _clean_config(out_dir, model_max_length=512)


def make_opt(out_dir: Path, corpus: list[str]) -> None:
    """GPT-2 byte-level BPE (`vocab.json` + `merges.txt`) with OPT's special tokens and BOS convention."""
    from tokenizers import ByteLevelBPETokenizer

    tokenizer = ByteLevelBPETokenizer(add_prefix_space=False)
    tokenizer.train_from_iterator(
        corpus,
        vocab_size=OPT_VOCAB_SIZE,
        min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        show_progress=False,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.model.save(str(out_dir))
    # The keys of facebook/opt-* (which also maps unk_token to "</s>"); add_bos_token makes it prepend "</s>".
    special = {"bos_token": "</s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "</s>"}
    config = {
        "add_bos_token": True,
        "add_prefix_space": False,
        "errors": "replace",
        "model_max_length": 1000000000000000019884624838656,
        "tokenizer_class": "GPT2Tokenizer",
        **special,
    }
    _write_json(out_dir / "tokenizer_config.json", config)
    _write_json(out_dir / "special_tokens_map.json", special)


def make_bert(out_dir: Path, corpus: list[str]) -> None:
    """Uncased BERT WordPiece `vocab.txt` (`[PAD]`=0, `[UNK]`, `[CLS]`, `[SEP]`, `[MASK]`), without `[DEC]`."""
    from tokenizers import BertWordPieceTokenizer

    tokenizer = BertWordPieceTokenizer(lowercase=True, clean_text=True, handle_chinese_chars=True, strip_accents=None)
    # The trainer inserts unseen "##x" continuation pieces in hash-map order, which makes tie-breaks (and so the
    # vocabulary) vary between runs; seeding every "##x" up front in sorted order makes training deterministic.
    alphabet = sorted({ch for line in corpus for ch in tokenizer.normalize(line) if not ch.isspace()})
    tokenizer.train_from_iterator(
        corpus,
        vocab_size=BERT_VOCAB_SIZE,
        min_frequency=1,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *(f"##{ch}" for ch in alphabet)],
        limit_alphabet=1000,
        wordpieces_prefix="##",
        show_progress=False,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_model(str(out_dir))
    _write_json(
        out_dir / "tokenizer_config.json",
        {"do_lower_case": True, "model_max_length": 512, "tokenizer_class": "BertTokenizer"},
    )


def main(out_root: Path | str = DEFAULT_OUT) -> Path:
    """Write all four tiny tokenizers under `out_root` (replacing existing subdirectories) and return `out_root`."""
    out_root = Path(out_root)
    corpus = build_corpus()
    builders = {"llama": make_llama, "t5": make_t5, "opt": make_opt, "bert": make_bert}
    for name, build in builders.items():
        target = out_root / name
        if target.exists():
            shutil.rmtree(target)
        build(target, corpus)
    return out_root


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output root (default: the package assets)")
    main(parser.parse_args().out)
