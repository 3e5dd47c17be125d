"""Entry points shared by `train.py` and `evaluate.py`: argument parsing, config loading, and clean errors.

A bad invocation (unreadable or invalid config, unknown component name) prints one line naming the problem and exits
with status 2, like argparse does for bad arguments, instead of a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys

from lavis_ib.common.config import Config
from lavis_ib.common.registry import registry
from lavis_ib.common.schema import ConfigError

USAGE_ERROR = 2


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cfg-path", required=True, help="project YAML (model / datasets / run sections)")
    parser.add_argument("--options", nargs="+", help="overrides: key=value ... (or key value pairs)")
    return parser.parse_args(argv)


def load_runner(mode: str, argv: list[str] | None = None):
    """The configured runner, built from the validated config; raises on any invalid input."""
    args = parse_args(f"lavis_ib {mode}", argv)
    cfg = Config(args.cfg_path, args.options)
    cfg.pretty_print()
    return registry.get_runner_class(cfg.run.runner).from_config(cfg)


def run(mode: str, argv: list[str] | None = None) -> None:
    """Load and validate the config, then hand it to the registered runner's `mode` ("train" or "evaluate")."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(levelname)s] %(message)s")
    try:
        runner = load_runner(mode, argv)
    except (ConfigError, FileNotFoundError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"{mode}: error: {message}", file=sys.stderr)
        raise SystemExit(USAGE_ERROR) from None
    getattr(runner, mode)()
