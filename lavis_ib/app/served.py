"""Which model `python run_demo.py` serves, loaded once, right after the page is up.

The page's own imports take no torch and no model package: those come with the model, so the page is there within
seconds and says it is loading.

In order: the model the command line names (`--cfg-path`, or `--arch` / `--model-type` with an optional
`--checkpoint`); else the best checkpoint of the newest `make demo` training job under `output/demo/train/`; else the
demo's model untrained (pre-trained frozen ViT and LLM, random Q-Former) under a banner saying how to train it.
"""

from __future__ import annotations

import argparse
import threading
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from lavis_ib.app.checks import DemoInputError
from lavis_ib.common.config import Config, load_yaml
from lavis_ib.common.errors import UserError

DEMO_MODEL = Path("projects/instructblip/demo_model.yaml")
"""The model `make demo` trains (relative to the repository root, where `make demo` and `run_demo.py` run)."""
DEMO_RUNS = Path("output/demo/train")
UNTRAINED_BANNER = (
    "Untrained model: no `make demo` run was found under {runs}/, so the Q-Former (the part instruction tuning "
    "trains) is random and the answers are noise. Run `make demo` (about 7 minutes on 2 CPU cores), then start "
    "`python run_demo.py` again: it serves the model that run trained."
)


@dataclass
class ServedModel:
    """The model the page answers with, its image processor, and how the page names it."""

    model: object
    vis_processor: object
    identity: str
    banner: str | None = None

    @property
    def image_size(self) -> int:
        return int(self.model.cfg.image_size)


def newest_demo_checkpoint(runs: Path = DEMO_RUNS) -> Path | None:
    """`model.safetensors` of the best checkpoint of the newest `demo_*` job (job ids are timestamps) that has one."""
    from lavis_ib.runners.checkpoints import CheckpointStore  # the runners import torch: not before the page is up

    for job in sorted(runs.glob("demo_*"), reverse=True):
        best = CheckpointStore(job / "checkpoints").best()
        if best is not None:
            return best / "model.safetensors"
    return None


def check_request(args: argparse.Namespace) -> None:
    """The checks on the request that need no model code (the config file is there and is YAML), so that a mistyped
    path fails before the page starts; validating the model section (which imports the models) waits for `load`."""
    if args.cfg_path:
        load_yaml(args.cfg_path)
    elif not args.arch and not DEMO_MODEL.is_file():
        raise UserError(f"{DEMO_MODEL} not found: run `python run_demo.py` from the repository root, or name the "
                        f"model to serve (--cfg-path, or --arch and --model-type)")


def model_request(args: argparse.Namespace, runs: Path = DEMO_RUNS) -> tuple[dict, str | None]:
    """`(model config, banner)`: the config section to build (arch, model_type, options, checkpoint) and the
    banner to show above the page, from the command line or, without one, from `make demo`'s jobs under `runs`."""
    check_request(args)
    if args.cfg_path:
        section = OmegaConf.to_container(Config(args.cfg_path).model_cfg, resolve=True)
    elif args.arch:
        section = {"arch": args.arch, "model_type": args.model_type}
    else:
        section = OmegaConf.to_container(Config(str(DEMO_MODEL)).model_cfg, resolve=True)
        section["checkpoint"] = newest_demo_checkpoint(runs)
        if section["checkpoint"] is None:
            return section, UNTRAINED_BANNER.format(runs=runs)
    if args.checkpoint:
        section["checkpoint"] = args.checkpoint
    return section, None


def describe(model, section: dict, device: str, precision: str | None) -> str:
    """`blip2_vicuna_instruct/tiny · checkpoint … · 1.4 M parameters · cpu, fp32`: what the page shows beside
    every answer."""
    checkpoint = section.get("checkpoint")
    weights = f"checkpoint {checkpoint}" if checkpoint else "no checkpoint (configured weights only)"
    parameters = sum(p.numel() for p in model.parameters())
    dtype = precision or str(model.llm_dtype).removeprefix("torch.")
    return f"{section['arch']}/{section['model_type']} · {weights} · {parameters / 1e6:.2f} M parameters · {device}, {dtype}"


def load_served(args: argparse.Namespace, runs: Path = DEMO_RUNS) -> ServedModel:
    """Build and load the requested model in eval mode on `args.device`, with its evaluation image processor."""
    from lavis_ib.models import load_model_and_preprocess  # torch and the model package, once the request is known

    section, banner = model_request(args, runs)
    options = {k: v for k, v in section.items() if k not in ("arch", "model_type", "checkpoint")}
    checkpoint = section.get("checkpoint")
    model, vis_processors, _ = load_model_and_preprocess(
        section["arch"], section["model_type"], is_eval=True, device=args.device,
        checkpoint=str(checkpoint) if checkpoint else None, precision=args.precision, options=options)
    return ServedModel(model, vis_processors["eval"], describe(model, section, args.device, args.precision), banner)


class ModelSlot:
    """The served model, loaded once the page is up, so the page appears within seconds of the command (the model
    package's imports take longer than the page's): a request made before the model is there waits for it."""

    LOADING = "loading the model…"

    def __init__(self, args: argparse.Namespace, runs: Path = DEMO_RUNS):
        check_request(args)  # a mistyped path fails here, before the page
        self.args, self.runs = args, runs
        self.served: ServedModel | None = None
        self.error: BaseException | None = None
        self.ready = threading.Event()

    def load(self) -> ServedModel:
        """Load the model (in the calling thread); a failure is kept for the requests waiting and raised."""
        try:
            self.served = load_served(self.args, self.runs)
            return self.served
        except BaseException as error:
            self.error = error
            raise
        finally:
            self.ready.set()

    def wait(self) -> ServedModel:
        """The model, once loaded; `DemoInputError` saying why when it could not be."""
        self.ready.wait()
        if self.served is None:
            raise DemoInputError(f"The model could not be loaded: {self.error}")
        return self.served

    @property
    def identity(self) -> str:
        return self.served.identity if self.served is not None else self.LOADING

    @property
    def banner(self) -> str | None:
        """The warning above the page (an untrained model), known once the model is loaded."""
        return self.served.banner if self.served is not None else None
