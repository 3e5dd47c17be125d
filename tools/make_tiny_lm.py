"""Pre-train the tiny LLaMA of `blip2_vicuna_instruct` on the synthetic world's text and write it to
`lavis_ib/assets/tiny_lm/` (a transformers `LlamaForCausalLM` directory, safetensors).

A frozen *random* LLM is not a language model, so InstructBLIP's recipe (freeze the LLM, train the Q-Former) cannot
work on one. This gives the tiny LLM what Vicuna brings to the real model, at the scale of the synthetic world: it
reads a scene's caption and answers instructions about it. Each training row is

    caption | </s> instruction | target </s>

with the held-in tasks' records (captioning, VQA, question generation, OCR-VQA) produced by the world's own
converters and rendered through the datasets' own text processors and training templates, and tokenized by the
model's own `TextBatcher`; beside them, the world's general language (`lavis_ib.datasets.synthetic.language`):
counting, true/false statements about left and right, where a shape seen in successive frames goes, questions with
offered options, in phrasings of its own. The caption sits exactly where the model puts its query tokens, so
instruction tuning only has to teach the Q-Former to write a caption-like soft prompt (BLIP-2's stage 2 relies on the
same in-context ability). Scenes are drawn fresh from the world's distribution with their own seed: no image, and no
split of the world `build_world` writes, is used. No held-out task's question, statement or template is seen
(tests/test_tiny_lm_corpus.py); `held_out_in_context` records how the LM answers them from captions alone.

Deterministic: fixed seeds and one CPU thread. `pretraining.json` beside the weights records the settings, the loss
curve and the in-context accuracy; `--check` verifies that a written directory came from this tool's settings.

Run: `python tools/make_tiny_lm.py [--out DIR]` (about 4 minutes on one core), `python tools/make_tiny_lm.py --check`.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

from lavis_ib.common.registry import registry
from lavis_ib.common.media import uniform_indices
from lavis_ib.datasets import synthetic, templates
from lavis_ib.datasets.synthetic import language
from lavis_ib.models.blip2_vicuna_instruct import Blip2VicunaInstruct
from lavis_ib.models.text.batching import IGNORE, DecoderOnlyTextBatcher
from lavis_ib.models.text.tokenizers import load_vicuna_tokenizer

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "lavis_ib" / "assets" / "tiny_lm"
RECORD_FILE = "pretraining.json"
MODEL_TYPE = "tiny"  # the model type whose LLM architecture, tokenizer and text layout the LM is trained for
CHECK_STEPS = 8  # steps `--check` re-runs and compares with the recorded losses


@dataclass(frozen=True)
class Settings:
    """Everything the checkpoint depends on besides the code and the library versions."""

    seed: int = 0
    scenes: int = 12000  # scenes whose records make the corpus (3.5 held-in rows and 3.8 general ones per scene)
    steps: int = 3000
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 100
    min_lr: float = 1e-4
    weight_decay: float = 0.01
    eval_scenes: int = 400  # fresh scenes (another seed) for the in-context accuracy
    log_every: int = 100
    other_weight: float = 0.25  # loss weight of caption and instruction tokens (target tokens: 1)


@dataclass(frozen=True)
class Example:
    """One training row in text form: the caption standing in for the visual tokens, the instruction, the target."""

    dataset: str
    context: str
    instruction: str
    target: str
    choices: tuple[str, ...] = ()  # the candidates a ranked (held-out) question is scored over


def model_config():
    """The parsed default config of the model type the LM is made for (LLM sizes, tokenizer, text lengths)."""
    return Blip2VicunaInstruct.parse_config(Blip2VicunaInstruct.default_config(MODEL_TYPE).model)


def draw_scenes(n: int, seed: int) -> list[synthetic.Scene]:
    """`n` scenes from the world's distribution, all marked `train` so the converters read every one."""
    rng = random.Random(seed)
    return [replace(synthetic.random_scene(rng, i, n), split="train") for i in range(n)]


def shuffled_things(scenes: list[synthetic.Scene], seed: int) -> list[synthetic.Scene]:
    """The scenes with their things in a seeded random order, so the question converters ask about any of them.

    The VQA converter picks the thing `scene.id % len(things)` and the question kind by `scene.id % 2`: on a
    two-thing scene, colour questions would always ask about the second thing and shape questions about the first,
    which a language model learns instead of reading the caption. The caption (context) keeps the world's order.
    """
    rng = random.Random(seed)
    return [replace(scene, things=rng.sample(scene.things, len(scene.things))) for scene in scenes]


def converted(name: str, scenes: list[synthetic.Scene], split: str = "train",
              clips: list[synthetic.Clip] = ()) -> list[dict]:
    """The records the world's converter `name` makes of `scenes` (marked `split`) and `clips`."""
    with tempfile.TemporaryDirectory() as tmp:
        world = {"images": [asdict(replace(scene, split=split)) for scene in scenes],
                 "videos": [asdict(clip) for clip in clips]}
        (Path(tmp) / synthetic.WORLD_FILE).write_text(json.dumps(world))
        return [r for r in registry.get_converter_class(name)(Path(tmp), split) if isinstance(r, dict)]


FOCUSED = ("synthetic_vqa", "synthetic_vqg")
"""Datasets whose rows get the caption of the thing they ask about as context (`focused_caption`)."""


def asked_thing(scene: synthetic.Scene, name: str, record: dict) -> synthetic.Thing:
    """The thing a VQA / VQG record is about: the one whose colour or shape is its answer (unique in a scene)."""
    answer = (record["text_output"] if name == "synthetic_vqa" else record["text_input"]).lower()
    return next(t for t in scene.things if answer in (t.colour, t.shape))


def focused_caption(scene: synthetic.Scene, thing: synthetic.Thing) -> str:
    """`a red circle at the top left.`: the caption of the part of the scene a question concerns.

    The tiny LM cannot pick one thing out of several in its context (2 layers: trained on whole captions, its VQA
    answers stay at the accuracy of choosing a thing at random), so a question's context is the thing it asks about.
    """
    return synthetic.caption(replace(scene, things=[thing], word=None))


def rendered(name: str, scenes: list[synthetic.Scene], split: str, seed: int, focused: bool) -> list[Example]:
    """Dataset `name`'s records of `scenes`, rendered as the dataset renders its `split` (text processor, templates,
    target), beside their context: the scene's caption, or with `focused` (VQA / VQG) the asked thing's caption."""
    by_id = {scene.id: scene for scene in scenes}
    make_item = registry.get_builder_class(name)().item_maker(split)
    questions = scenes if name == "synthetic_caption" else shuffled_things(scenes, seed)
    examples = []
    for index, record in enumerate(converted(name, questions)):
        scene = by_id[record["image_id"]]
        if focused and name in FOCUSED:
            context = focused_caption(scene, asked_thing(scene, name, record))
        else:
            context = synthetic.caption(scene)
        raw = dict(record)
        if raw["text_input"]:
            raw["text_input"] = make_item.text_processor(raw["text_input"])
        instruction = templates.instruction(raw, make_item.templates, seed, index, 0, make_item.ocr_prefix)
        examples.append(Example(name, context, instruction, make_item.target(record, index, 0)))
    return examples


class RowMaker:
    """Token rows `caption | </s> instruction | target </s>` with the model's tokenizer and training layout."""

    def __init__(self, cfg):
        self.tokenizer = load_vicuna_tokenizer(cfg.llm_tokenizer, key="llm_tokenizer")
        self.text = DecoderOnlyTextBatcher(self.tokenizer, None, cfg, Blip2VicunaInstruct.TARGET_SUFFIX)
        # The LM has the tokenizer's 1000 pieces; `[PAD]` (1000) is added by the model (`grow_vocab`), as LAVIS adds
        # it to Vicuna. Here padding is masked, so any in-vocabulary id will do: EOS.
        self.pad_id = self.tokenizer.eos_token_id

    def context_ids(self, contexts: list[str]) -> list[list[int]]:
        """Caption ids without the BOS: the model's visual tokens come before its BOS too."""
        return [ids[1:] for ids in self.text.ids(contexts, "right", None)]

    def rows(self, examples: list[Example]) -> list[tuple[list[int], int]]:
        """`(ids, target start)` per example: every position after the first is a language-model target, and those
        from the target start on (the answer and its `</s>`) are the ones instruction tuning supervises."""
        batch = self.text.training([e.instruction for e in examples], [e.target for e in examples])
        contexts = self.context_ids([e.context for e in examples])
        rows = []
        for context, ids, labels, mask in zip(contexts, batch["input_ids"], batch["labels"], batch["attention_mask"]):
            supervised = int((labels[mask.bool()] != IGNORE).nonzero()[0])
            rows.append((context + ids[mask.bool()].tolist(), len(context) + supervised))
        return rows


def collate(rows: list[tuple[list[int], int]], pad_id: int, other_weight: float):
    """Right-padded `input_ids`, `attention_mask`, next-token `labels` (pads ignored) and per-token loss weights:
    1 on target tokens, `other_weight` on the caption and instruction tokens."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    weights = torch.zeros((len(rows), width))
    for i, (row, start) in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
        weights[i, :start] = other_weight
        weights[i, start : len(row)] = 1.0
    return ids, mask, ids.masked_fill(mask == 0, IGNORE), weights


def batches(lengths: list[int], batch_size: int, generator: torch.Generator, chunk: int = 64) -> list[list[int]]:
    """One epoch of batches of row indices: shuffled, sorted by length within chunks of `chunk` batches (less
    padding), the batches shuffled again."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    out = []
    for begin in range(0, len(lengths) - batch_size + 1, batch_size * chunk):
        part = sorted(order[begin : begin + batch_size * chunk], key=lambda i: lengths[i])
        out += [part[j : j + batch_size] for j in range(0, len(part) - batch_size + 1, batch_size)]
    return [out[int(i)] for i in torch.randperm(len(out), generator=generator)]


def lr_at(step: int, s: Settings) -> float:
    """Linear warm-up to `lr`, then cosine decay to `min_lr` at the last step."""
    if step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    progress = (step - s.warmup_steps) / max(1, s.steps - s.warmup_steps)
    return s.min_lr + 0.5 * (s.lr - s.min_lr) * (1 + math.cos(math.pi * progress))


def build_lm(cfg, seed: int):
    """A freshly initialised LLaMA with the model type's `llm_config` (seeded)."""
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(AutoConfig.for_model(**cfg.llm_config), attn_implementation="sdpa")


def lm_loss(llm, rows: list[tuple[list[int], int]], pad_id: int, other_weight: float) -> torch.Tensor:
    """Weighted mean next-token cross-entropy of a batch of rows (weights from `collate`)."""
    ids, mask, labels, weights = collate(rows, pad_id, other_weight)
    logits = llm(input_ids=ids, attention_mask=mask).logits
    losses = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=IGNORE,
                             reduction="none")
    weights = weights[:, 1:].flatten()
    return (losses * weights).sum() / weights.sum()


def train(llm, rows: list[tuple[list[int], int]], s: Settings, pad_id: int, steps: int | None = None,
          log=print, evaluate=None) -> dict:
    """AdamW over length-bucketed shuffled batches of `rows`; returns the per-step losses and a windowed curve
    (with `evaluate(llm)`'s numbers at each logging step, when given)."""
    optimizer = torch.optim.AdamW(llm.parameters(), lr=s.lr, weight_decay=s.weight_decay, betas=(0.9, 0.98))
    generator = torch.Generator().manual_seed(s.seed)
    lengths = [len(ids) for ids, _ in rows]
    epoch: list[list[int]] = []
    losses, curve, start = [], [], time.perf_counter()
    for step in range(steps or s.steps):
        if not epoch:
            epoch = batches(lengths, s.batch_size, generator)
        batch = [rows[i] for i in epoch.pop()]
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, s)
        llm.train()
        loss = lm_loss(llm, batch, pad_id, s.other_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(llm.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % s.log_every == 0:
            window = losses[-s.log_every :]
            point = {"step": step + 1, "loss": round(sum(window) / len(window), 4),
                     "seconds": round(time.perf_counter() - start, 1)}
            if evaluate is not None:
                llm.eval()
                point["accuracy"] = evaluate(llm)
            curve.append(point)
            log("  ".join(f"{k} {v}" for k, v in point.items()))
    llm.eval()
    return {"losses": losses, "curve": curve}


@torch.no_grad()
def in_context_accuracy(llm, maker: RowMaker, examples: list[Example], max_new_tokens: int = 6,
                        normalise=None) -> dict:
    """Greedy answers (exact match) of `[caption | </s> instruction]` prompts, per question kind; with `normalise`,
    an answer is lower-cased, its final full stop dropped and `normalise` applied before it is compared."""
    prompts = [maker.context_ids([e.context])[0] + maker.text.ids([e.instruction], "left", None)[0]
               for e in examples]
    width = max(len(p) for p in prompts)
    pad = maker.pad_id
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = (torch.arange(width)[None] >= torch.tensor([width - len(p) for p in prompts])[:, None]).long()
    out = llm.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                       eos_token_id=maker.tokenizer.eos_token_id, pad_token_id=pad)
    answers = [normalise(a.strip().rstrip(".").lower()) if normalise is not None else a.strip()
               for a in maker.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)]
    scores: dict[str, list[bool]] = {}
    for example, answer in zip(examples, answers):
        scores.setdefault(question_kind(example), []).append(answer == example.target)
    return {kind: round(100 * sum(v) / len(v), 1) for kind, v in sorted(scores.items())}


@torch.no_grad()
def ranked_accuracy(llm, maker: RowMaker, examples: list[Example]) -> dict:
    """Accuracy of ranking each example's `choices` by summed log-likelihood after `[caption | </s> instruction]`
    (the held-out ranking protocol), per dataset."""
    scores: dict[str, list[bool]] = {}
    for example in examples:
        prefix = maker.context_ids([example.context])[0] + maker.text.ids([example.instruction], "left", None)[0]
        answers = [ids[1:] for ids in maker.text.ids(list(example.choices), "right", None)]
        rows = [prefix + answer for answer in answers]
        width = max(len(row) for row in rows)
        ids = torch.tensor([row + [maker.pad_id] * (width - len(row)) for row in rows])
        logp = llm(input_ids=ids).logits.log_softmax(-1)
        sums = [sum(logp[i, len(prefix) + j - 1, token].item() for j, token in enumerate(answer))
                for i, answer in enumerate(answers)]
        best = example.choices[max(range(len(sums)), key=sums.__getitem__)]
        scores.setdefault(example.dataset, []).append(best == example.target)
    return {kind: round(100 * sum(v) / len(v), 1) for kind, v in sorted(scores.items())}


def zero_shot_accuracy(llm, maker: RowMaker, examples: list[Example]) -> dict:
    """The held-out tasks' accuracy from text, each by its protocol: ranking where it ranks, else greedy answers
    compared after the verbalizers' mapping (`yes` counts as `true`)."""
    verbal = {"yes": "true", "no": "false"}
    generated = [e for e in examples if not e.choices]
    for_generation = [replace(e, target=e.target.lower()) for e in generated]
    accuracy = ranked_accuracy(llm, maker, [e for e in examples if e.choices])
    accuracy.update(in_context_accuracy(llm, maker, for_generation, normalise=lambda a: verbal.get(a, a)))
    return dict(sorted(accuracy.items()))


def question_kind(example: Example) -> str:
    """`colour` / `shape` for synthetic_vqa questions, else the dataset name."""
    if example.dataset == "synthetic_vqa":
        return "colour" if example.target in synthetic.COLOURS else "shape"
    return example.dataset


def eval_examples(s: Settings, focused: bool = True) -> list[Example]:
    """Held-in VQA and OCR questions on fresh scenes (another seed), with the datasets' *evaluation* templates."""
    scenes = draw_scenes(s.eval_scenes, s.seed + 1)
    return [e for name in ("synthetic_vqa", "synthetic_ocrvqa")
            for e in rendered(name, scenes, "val", s.seed + 1, focused)]


def held_out_examples(s: Settings) -> list[Example]:
    """The held-out tasks' questions on fresh scenes and clips (another seed), as their zero-shot evaluation renders
    them, each after the caption of its scene, or of its clip's frames as the video processor samples them: what
    the LM answers from text alone (never trained on; a measurement of the general language's transfer)."""
    rng = random.Random(s.seed + 3)
    scenes = draw_scenes(s.eval_scenes, s.seed + 3)
    clips = [synthetic.random_clip(rng, i) for i in range(s.eval_scenes)]
    by_id, clip_by_id = {scene.id: scene for scene in scenes}, {clip.id: clip for clip in clips}
    examples = []
    for name in synthetic.HELD_OUT:
        builder = registry.get_builder_class(name)()
        make_item = builder.item_maker("test")
        for index, record in enumerate(converted(name, scenes, "test", clips)):
            if "image_id" in record:
                context = synthetic.caption(by_id[record["image_id"]])
            else:
                clip = clip_by_id[record["question_id"]]
                frames = uniform_indices(clip.frames, builder.config.vis_processor["eval"]["n_frms"])
                context = " ".join(synthetic.caption(synthetic.Scene(clip.id, "", "test", [synthetic.clip_thing(
                    clip, t)])) for t in frames)
            raw = {**record, "text_input": make_item.text_processor(record["text_input"])}
            instruction = templates.instruction(raw, make_item.templates, s.seed + 3, index, 0, make_item.ocr_prefix)
            protocol = builder.config.eval
            choices = () if protocol.mode != "rank" else record["choices"] if protocol.candidates == "choices" \
                else list(synthetic.DIRECTIONS)  # the answer list the video converter writes
            examples.append(Example(name, context, instruction, record["text_output"], tuple(choices)))
    return examples


def general_examples(scenes: list[synthetic.Scene], seed: int) -> list[Example]:
    """The world's general language (`synthetic.language`) about `scenes`, as training rows."""
    return [Example(f"general_{p.kind}", p.context, p.text, p.answer) for p in language.passages(scenes, seed)]


def corpus_examples(s: Settings) -> list[Example]:
    """The corpus as text: the held-in tasks' rows and the general language, about the same fresh scenes."""
    scenes = draw_scenes(s.scenes, s.seed)
    held_in = [e for name in synthetic.HELD_IN for e in rendered(name, scenes, "train", s.seed, focused=True)]
    return held_in + general_examples(scenes, s.seed + 2)


def corpus(s: Settings, maker: RowMaker) -> tuple[list[tuple[list[int], int]], dict]:
    """The token rows and a summary (counts per dataset, row lengths)."""
    examples = corpus_examples(s)
    rows = maker.rows(examples)
    counts: dict[str, int] = {}
    for example in examples:
        counts[example.dataset] = counts.get(example.dataset, 0) + 1
    lengths = sorted(len(ids) for ids, _ in rows)
    summary = {"rows": len(rows), "per_dataset": counts, "tokens": sum(lengths),
               "row_length": {"median": lengths[len(lengths) // 2], "max": lengths[-1]}}
    return rows, summary


def make(out: Path, s: Settings = Settings(), log=print) -> dict:
    """Pre-train the LM with settings `s` and write it (weights, config, `pretraining.json`) to `out`."""
    torch.set_num_threads(1)
    cfg = model_config()
    maker = RowMaker(cfg)
    rows, summary = corpus(s, maker)
    log(f"corpus: {summary['rows']:,} rows, {summary['tokens']:,} tokens {summary['per_dataset']}")
    llm = build_lm(cfg, s.seed)
    log(f"model: LlamaForCausalLM, {sum(p.numel() for p in llm.parameters()):,} parameters")
    history = train(llm, rows, s, maker.pad_id, log=log)
    accuracy = in_context_accuracy(llm, maker, eval_examples(s))
    log(f"in-context accuracy (greedy, exact match, evaluation templates): {accuracy}")
    held_out = zero_shot_accuracy(llm, maker, held_out_examples(s))
    log(f"held-out tasks from text alone (greedy, exact match, zero-shot prompts): {held_out}")
    out.mkdir(parents=True, exist_ok=True)
    llm.save_pretrained(out)
    record = {
        "tool": "tools/make_tiny_lm.py", "settings": asdict(s), "model_type": MODEL_TYPE,
        "llm_config": dict(cfg.llm_config), "versions": {"torch": torch.__version__,
                                                         "transformers": transformers.__version__},
        "corpus": summary, "first_losses": history["losses"][:CHECK_STEPS], "curve": history["curve"],
        "in_context_accuracy": accuracy, "held_out_in_context": held_out,
    }
    (out / RECORD_FILE).write_text(json.dumps(record, indent=1) + "\n")
    log(f"wrote {out}")
    return record


def check(directory: Path, s: Settings = Settings(), steps: int = CHECK_STEPS) -> list[str]:
    """Problems that show `directory` was not made by this tool's settings: recorded settings or LLM config that
    differ, or the first `steps` training losses, re-run here, that differ from the recorded ones. [] when it was."""
    record = json.loads((directory / RECORD_FILE).read_text())
    problems = []
    if record["settings"] != asdict(s):
        problems.append(f"{directory / RECORD_FILE}: settings {record['settings']} differ from the tool's {asdict(s)}")
    cfg = model_config()
    if record["llm_config"] != dict(cfg.llm_config):
        problems.append(f"llm_config {record['llm_config']} differs from model type {MODEL_TYPE!r}'s {cfg.llm_config}")
    torch.set_num_threads(1)
    maker = RowMaker(cfg)
    rows, _ = corpus(s, maker)
    losses = train(build_lm(cfg, s.seed), rows, s, maker.pad_id, steps=steps, log=lambda _: None)
    return problems + loss_mismatch(losses["losses"], record, steps)


def loss_mismatch(losses: list[float], record: dict, steps: int) -> list[str]:
    """A problem when the re-run first `steps` losses differ (beyond 1e-4) from those `record` holds."""
    expected = record["first_losses"][:steps]
    if any(abs(a - b) > 1e-4 for a, b in zip(losses, expected)):
        return [f"the first {steps} losses {losses} differ from the recorded {expected}"]
    return []


def tool_main(make_fn, check_fn, default_out: Path, doc: str, argv: list[str] | None) -> int:
    """The command line both asset tools share: write to `--out`, or `--check` that it came from the settings."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, default=default_out, help=f"output directory (default {default_out})")
    parser.add_argument("--check", action="store_true", help="verify --out was made by this tool's settings")
    args = parser.parse_args(argv)
    if args.check:
        problems = check_fn(args.out)
        print("\n".join(problems) or f"{args.out}: made by this tool's settings")
        return 1 if problems else 0
    make_fn(args.out)
    return 0


def main(argv: list[str] | None = None) -> int:
    return tool_main(make, check, DEFAULT_OUT, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
