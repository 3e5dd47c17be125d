"""Pre-train the tiny ViT of `blip2_vicuna_instruct`'s `tiny` model type on the synthetic world's images and write it
to `lavis_ib/assets/tiny_vit/` (`vit.safetensors`, LAVIS `visual_encoder.*` names without the prefix).

InstructBLIP's ViT is EVA-CLIP, frozen: it arrives already able to see. A frozen *random* ViT of the tiny size (two
64-wide blocks over 4 × 4 patches) keeps the colours but barely the shapes, and the Q-Former cannot learn them behind
it. This gives the tiny ViT what EVA-CLIP brings, at the scale of the synthetic world: every patch token is trained
to name what lies under it — the shape and colour of the thing covering the patch centre (or none) and, on the
bottom row, the word written there (or none) — through linear heads that are thrown away afterwards. Images go
through the model type's own evaluation processor, as instruction tuning feeds them. Scenes are drawn fresh from the
world's distribution with their own seed: no image of a split `build_world` writes is used.

Deterministic: fixed seeds and one CPU thread. `pretraining.json` beside the weights records the settings, the loss
curve and the per-patch accuracy on fresh scenes; `--check` verifies that a written directory came from this tool's
settings.

Run: `python tools/make_tiny_vit.py [--out DIR]` (about a minute on one core), `python tools/make_tiny_vit.py --check`.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import ImageFont
from safetensors.torch import save_file

import make_tiny_lm  # tools/make_tiny_lm.py: the same model type, schedule and scene sampling
import lavis_ib.processors  # noqa: F401  (registers the image processors)
from lavis_ib.datasets import synthetic
from lavis_ib.models.vision import build_eva_vit
from lavis_ib.common.registry import registry

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "lavis_ib" / "assets" / "tiny_vit"
WEIGHTS_FILE = "vit.safetensors"
RECORD_FILE = "pretraining.json"
SHAPES = ("none",) + synthetic.SHAPES
COLOURS = ("none",) + tuple(synthetic.COLOURS)
WORDS = ("none",) + synthetic.WORDS
CHECK_STEPS = 8  # steps `--check` re-runs and compares with the recorded losses
COVER = synthetic.RADIUS + 2  # a thing covers a patch whose centre lies within this many pixels of its own (x and y)


@dataclass(frozen=True)
class Settings:
    """Everything the checkpoint depends on besides the code and the library versions."""

    seed: int = 0
    scenes: int = 12000
    steps: int = 1500
    batch_size: int = 64
    lr: float = 2e-3
    warmup_steps: int = 100
    min_lr: float = 5e-5
    weight_decay: float = 0.05
    eval_scenes: int = 1000  # fresh scenes (another seed) for the per-patch accuracy
    log_every: int = 100


def patch_labels(scene: synthetic.Scene, grid: int) -> torch.Tensor:
    """`[grid * grid, 3]` class ids (shape, colour, word) of each patch, row-major, in the scene's own pixels."""
    cell = synthetic.SIDE / grid
    labels = torch.zeros(grid * grid, 3, dtype=torch.long)
    for row in range(grid):
        for col in range(grid):
            cx, cy = (col + 0.5) * cell, (row + 0.5) * cell
            for thing in scene.things:
                if abs(thing.x - cx) <= COVER and abs(thing.y - cy) <= COVER:
                    labels[row * grid + col, :2] = torch.tensor([SHAPES.index(thing.shape),
                                                                 COLOURS.index(thing.colour)])
            if scene.word and row == grid - 1:
                labels[row * grid + col, 2] = WORDS.index(scene.word)
    return labels


def rendered_set(n: int, seed: int, image_size: int, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` fresh scenes as processed images `[n, 3, S, S]` and their patch labels `[n, grid²,  3]`."""
    scenes = make_tiny_lm.draw_scenes(n, seed)
    process = registry.get_processor_class("blip_image_eval")(image_size=image_size)
    font = ImageFont.load_default(size=12)
    images = torch.stack([process(synthetic.render_scene(scene, font)) for scene in scenes])
    return images, torch.stack([patch_labels(scene, grid) for scene in scenes])


class PatchProbe(torch.nn.Module):
    """The ViT and the linear heads that read each patch token (thrown away after pre-training)."""

    def __init__(self, vit, width: int):
        super().__init__()
        self.vit = vit
        self.heads = torch.nn.ModuleList(torch.nn.Linear(width, len(c)) for c in (SHAPES, COLOURS, WORDS))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        tokens = self.vit.forward_features(images)[:, 1:]  # drop CLS
        return [head(tokens) for head in self.heads]


def loss_of(probe: PatchProbe, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return sum(F.cross_entropy(logits.flatten(0, 1), labels[..., k].flatten())
               for k, logits in enumerate(probe(images)))


@torch.no_grad()
def accuracy(probe: PatchProbe, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """Per-patch accuracy (percent) of each head, over the patches where the answer is not `none` and over all."""
    probe.eval()
    out = {}
    for name, logits, k in zip(("shape", "colour", "word"), probe(images), range(3)):
        right = logits.argmax(-1) == labels[..., k]
        present = labels[..., k] != 0
        out[name] = round(100 * right[present].float().mean().item(), 1)
        out[f"{name}_all_patches"] = round(100 * right.float().mean().item(), 1)
    return out


def train(s: Settings, cfg, steps: int | None = None, log=print) -> tuple[PatchProbe, dict]:
    """AdamW on the patch labels of `s.scenes` fresh scenes for the model config `cfg`'s ViT; the probe, the
    per-step losses and a logged curve."""
    torch.set_num_threads(1)
    grid = cfg.image_size // cfg.vision.patch_size
    start = time.perf_counter()
    images, labels = rendered_set(s.scenes, s.seed, cfg.image_size, grid)
    test_images, test_labels = rendered_set(s.eval_scenes, s.seed + 1, cfg.image_size, grid)
    log(f"rendered {s.scenes:,} + {s.eval_scenes:,} scenes ({grid}x{grid} patches) in {time.perf_counter() - start:.0f} s")
    torch.manual_seed(s.seed)
    probe = PatchProbe(build_eva_vit(cfg.vision, cfg.image_size), cfg.vision.width)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    generator = torch.Generator().manual_seed(s.seed)
    schedule = make_tiny_lm.Settings(steps=s.steps, lr=s.lr, warmup_steps=s.warmup_steps, min_lr=s.min_lr)
    losses, curve, order = [], [], torch.empty(0, dtype=torch.long)
    for step in range(steps or s.steps):
        if len(order) < s.batch_size:
            order = torch.randperm(s.scenes, generator=generator)
        batch, order = order[: s.batch_size], order[s.batch_size :]
        for group in optimizer.param_groups:
            group["lr"] = make_tiny_lm.lr_at(step, schedule)
        probe.train()
        loss = loss_of(probe, images[batch], labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % s.log_every == 0:
            point = {"step": step + 1, "loss": round(sum(losses[-s.log_every :]) / s.log_every, 4),
                     "seconds": round(time.perf_counter() - start, 1),
                     **accuracy(probe, test_images, test_labels)}
            curve.append(point)
            log("  ".join(f"{k} {v}" for k, v in point.items()))
    return probe, {"losses": losses, "curve": curve, "patch_accuracy": accuracy(probe, test_images, test_labels)}


def make(out: Path, s: Settings = Settings(), log=print) -> dict:
    """Pre-train the ViT with settings `s` and write it (weights, `pretraining.json`) to `out`."""
    cfg = make_tiny_lm.model_config()
    probe, history = train(s, cfg, log=log)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in probe.vit.state_dict().items()}, str(out / WEIGHTS_FILE))
    record = {"tool": "tools/make_tiny_vit.py", "settings": asdict(s), "model_type": make_tiny_lm.MODEL_TYPE,
              "vision": asdict(cfg.vision), "image_size": cfg.image_size, "versions": {"torch": torch.__version__},
              "first_losses": history["losses"][:CHECK_STEPS], "curve": history["curve"],
              "patch_accuracy": history["patch_accuracy"]}
    (out / RECORD_FILE).write_text(json.dumps(record, indent=1) + "\n")
    log(f"patch accuracy on fresh scenes: {record['patch_accuracy']}\nwrote {out}")
    return record


def check(directory: Path, s: Settings = Settings(), steps: int = CHECK_STEPS) -> list[str]:
    """Problems that show `directory` was not made by this tool's settings: recorded settings or ViT config that
    differ, or the first `steps` training losses, re-run here, that differ from the recorded ones. [] when it was."""
    record = json.loads((directory / RECORD_FILE).read_text())
    cfg = make_tiny_lm.model_config()
    problems = []
    if record["settings"] != asdict(s):
        problems.append(f"{directory / RECORD_FILE}: settings {record['settings']} differ from the tool's {asdict(s)}")
    if record["vision"] != asdict(cfg.vision) or record["image_size"] != cfg.image_size:
        problems.append(f"ViT {record['vision']} at {record['image_size']} px differs from model type "
                        f"{make_tiny_lm.MODEL_TYPE!r}'s {asdict(cfg.vision)} at {cfg.image_size} px")
    _, history = train(s, cfg, steps=steps, log=lambda _: None)
    return problems + make_tiny_lm.loss_mismatch(history["losses"], record, steps)


def main(argv: list[str] | None = None) -> int:
    return make_tiny_lm.tool_main(make, check, DEFAULT_OUT, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
