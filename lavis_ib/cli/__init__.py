"""Entry points shared by `train.py` and `evaluate.py`: argument parsing and config loading."""

from __future__ import annotations

import argparse
import logging

from lavis_ib.common.config import Config
from lavis_ib.common.registry import registry


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cfg-path", required=True, help="project YAML (model / datasets / run sections)")
    parser.add_argument("--options", nargs="+", help="overrides: key=value ... (or key value pairs)")
    return parser.parse_args(argv)


def run(mode: str, argv: list[str] | None = None) -> None:
    """Load and validate the config, then hand it to the registered runner's `mode` ("train" or "evaluate")."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(levelname)s] %(message)s")
    args = parse_args(f"lavis_ib {mode}", argv)
    cfg = Config(args.cfg_path, args.options)
    cfg.pretty_print()
    runner_cls = registry.get_runner_class(cfg.run_cfg.get("runner", "runner_iter"))
    getattr(runner_cls.from_config(cfg), mode)()
