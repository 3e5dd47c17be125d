"""Entry points shared by `train.py` and `evaluate.py`: argument parsing, config loading, and clean errors.

A bad invocation (unreadable or invalid config, unknown component name, malformed ground truth) prints one line
naming the problem and exits with status 2, like argparse does for bad arguments, instead of a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys

from lavis_ib.common.config import Config
from lavis_ib.common.errors import UserError
from lavis_ib.common.registry import registry

USER_ERRORS = (UserError, FileNotFoundError)
"""What a bad config, bad data, a wrong weights file or checkpoint raises (`UserError`), and a file that is not
there: reported as one line. Anything else is a bug and keeps its traceback."""

USAGE_ERROR = 2
RUN_FAILED = 1


def user_message(error: BaseException) -> str:
    """The error's message as one line. An error raised in a DataLoader worker reaches the rank with the worker's
    traceback text in its message (torch's re-raise); the user's message is that traceback's last line."""
    text = str(error)
    if "\nOriginal Traceback" in text:
        last = text.rstrip().splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return text


def parse_args(mode: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=f"lavis_ib {mode}")
    parser.add_argument("--cfg-path", required=True, help="project YAML (model / datasets / run sections)")
    parser.add_argument("--options", nargs="+", help="overrides: key=value ... (or key value pairs)")
    if mode == "evaluate":
        parser.add_argument("--datasets", type=lambda text: [n for n in text.split(",") if n],
                            help="comma-separated subset of the config's datasets, e.g. gqa,vsr")
        parser.add_argument("--limit", type=int, help="evaluate only the first N records of each split (smoke run)")
        parser.add_argument("--valid", action="store_true", help="also evaluate the configured run.valid_splits")
    return parser.parse_args(argv)


def load_runner(mode: str, argv: list[str] | None = None):
    """The configured runner (training) or the evaluator, built from the validated config; raises on bad input."""
    args = parse_args(mode, argv)
    cfg = Config(args.cfg_path, args.options)
    if mode == "evaluate":  # the evaluator writes the merged config into its job folder instead
        from lavis_ib.runners import Evaluator  # torch and the tasks, only once the config is valid

        return Evaluator.from_config(cfg, datasets=args.datasets, limit=args.limit, include_valid=args.valid)
    from lavis_ib.common.dist import parse_dist_env  # torch, only once the config is valid

    layout = parse_dist_env()
    if layout is None or layout.rank == 0:  # the process group does not exist yet: read the launcher's rank
        cfg.pretty_print()
    return registry.get_runner_class(cfg.run.runner).from_config(cfg)


def run(mode: str, argv: list[str] | None = None):
    """Load and validate the config, then run the runner's `mode` ("train" or "evaluate")."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(levelname)s] %(message)s")
    try:
        runner = load_runner(mode, argv)
        return getattr(runner, mode)()
    except USER_ERRORS as error:
        print(f"{mode}: error: {user_message(error)}", file=sys.stderr)
        raise SystemExit(USAGE_ERROR) from None
    except RuntimeError as error:
        from lavis_ib.runners import TrainingDiverged  # a diverged run is reported, not a traceback

        if not isinstance(error, TrainingDiverged):
            raise
        print(f"{mode}: error: {error}", file=sys.stderr)
        raise SystemExit(RUN_FAILED) from None
