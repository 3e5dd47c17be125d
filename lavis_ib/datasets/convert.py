"""`python -m lavis_ib.datasets.convert NAME --src DIR [--out DIR] [--split ...]`: original files → records.

Writes `<out>/<split>.jsonl` (or webdataset shards `<out>/<split>-NNNNNN.tar` with `--format wds`), shows a
progress bar, prints how many records each split wrote and how many entries it skipped and why, and refuses to
replace a finished output unless `--overwrite` is given. `--out` defaults to where the dataset's default config
reads from: `<cache root>/datasets/<NAME>`. Everything is written to a staging folder inside `--out` and moved into
place only when every split converted, so a failed conversion leaves `--out` as it was.
Installed as the console script `lavis-ib-convert-data`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from tqdm import tqdm

from lavis_ib.common.paths import cache_root
from lavis_ib.datasets.converters import Artifact, Skip, get_converter, list_converters
from lavis_ib.datasets.records import (
    MANIFEST_SUFFIX, OutputExistsError, manifest_path, shard_files, shard_name, write_jsonl, write_shards,
)

FORMATS = ("jsonl", "wds")


@dataclass
class SplitReport:
    """What converting one split produced: records written, entries skipped by reason, and the files."""

    split: str
    written: int = 0
    skipped: Counter = field(default_factory=Counter)
    paths: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.split}: {self.written:,} records written, {sum(self.skipped.values()):,} skipped"
        reasons = "".join(f"\n    {count:,} × {reason}" for reason, count in self.skipped.most_common())
        return text + reasons


def default_output(name: str) -> Path:
    """Where the default dataset configs look for converted records of `name`."""
    return cache_root() / "datasets" / name


def output_path(out: Path, split: str, fmt: str) -> Path:
    """The file that marks split `split` as converted: the JSON-lines file, or the first shard."""
    return out / f"{split}.jsonl" if fmt == "jsonl" else shard_name(out / split, 0)


def _records(
    entries: Iterable, report: SplitReport, stage: Path, out: Path, overwrite: bool, progress: bool,
    artifacts: set[str],
) -> Iterator[dict]:
    """The records among `entries`, counting `Skip`s and staging `Artifact`s, behind a progress bar.

    `artifacts` holds the side files this run already staged; another split may stage them again (same content).
    """
    # Shown after a second (a conversion that fails at once prints only its error) and erased on failure, so the
    # bar appears once: finished, or not at all.
    bar = tqdm(entries, desc=f"{report.split}", unit=" entries", disable=not progress, mininterval=1.0, delay=1.0)
    try:
        for entry in bar:
            if isinstance(entry, Skip):
                report.skipped[entry.reason] += 1
            elif isinstance(entry, Artifact):
                stage_artifact(entry, stage, out, overwrite or entry.filename in artifacts)
                artifacts.add(entry.filename)
                report.paths.append(out / entry.filename)
            else:
                yield entry
    except BaseException:
        bar.leave = False
        raise
    finally:
        bar.close()


def stage_artifact(artifact: Artifact, stage: Path, out: Path, overwrite: bool) -> None:
    """Stage a converter's side file (JSON) for `out`; an identical file already in `out` is kept, a different one
    is replaced only with `overwrite`."""
    final, text = out / artifact.filename, json.dumps(artifact.content, ensure_ascii=False)
    if final.exists() and final.read_text(encoding="utf-8") == text:
        return
    if final.exists() and not overwrite:
        raise OutputExistsError(f"{final} already exists; pass --overwrite to replace it")
    (stage / artifact.filename).parent.mkdir(parents=True, exist_ok=True)
    (stage / artifact.filename).write_text(text, encoding="utf-8")


@contextmanager
def staged_output(out: Path) -> Iterator[Path]:
    """A fresh staging folder inside `out`: its files replace those in `out` when the block succeeds; on any error
    it is removed, with the folders this created for `out`, so `out` is left exactly as it was."""
    created = [folder for folder in (out, *out.parents) if not folder.exists()]  # innermost first
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".converting-", dir=out))
    try:
        yield stage
        publish(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for folder in created:
            if folder.exists() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    shutil.rmtree(stage, ignore_errors=True)


def publish(stage: Path, out: Path) -> None:
    """Move the staged files into `out`, each staged shard set as a whole: the old set's manifest goes first (so
    readers refuse the set while it changes), then the new shards, then the old set's other shards, manifest last."""
    files = sorted(p for p in stage.rglob("*") if p.is_file())
    manifests = [p for p in files if p.name.endswith(MANIFEST_SUFFIX)]
    for manifest in manifests:
        (out / manifest.relative_to(stage)).unlink(missing_ok=True)
    for path in [p for p in files if p not in manifests]:
        _move(path, out / path.relative_to(stage))
    for manifest in manifests:
        target = out / manifest.relative_to(stage)
        listed = {entry["name"] for entry in json.loads(manifest.read_text(encoding="utf-8"))["shards"]}
        for stale in shard_files(target.with_name(target.name[: -len(MANIFEST_SUFFIX)])):
            if stale.name not in listed:
                stale.unlink()
        _move(manifest, target)


def _move(path: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)


def convert(
    name: str,
    src: str | Path,
    out: str | Path | None = None,
    splits: Sequence[str] | None = None,
    fmt: str = "jsonl",
    overwrite: bool = False,
    progress: bool = False,
    per_shard: int = 10_000,
) -> list[SplitReport]:
    """Convert the given splits (default: the converter's first split) of dataset `name`; one report per split.

    Nothing is written to `out` unless every split converts.
    """
    converter = get_converter(name)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if Path(src).is_file():
        raise FileNotFoundError(f"{name}: --src {src} is a file; pass the folder that holds it (the dataset's folder "
                                f"as distributed, expected: {converter.sources})")
    if not Path(src).is_dir():
        raise FileNotFoundError(f"{name}: --src {src} is not a folder (expected: {converter.sources})")
    out = Path(out) if out is not None else default_output(name)
    splits = list(splits or converter.splits[:1])
    for split in splits:
        if split not in converter.splits:
            raise ValueError(f"{name}: unknown split {split!r}; this converter knows {', '.join(converter.splits)}")
        existing = [p for p in (output_path(out, split, fmt), manifest_path(out / split)) if p.exists()]
        if existing and not overwrite:
            raise OutputExistsError(f"{existing[0]} already exists; pass --overwrite to replace it")
    reports, artifacts = [], set()
    with staged_output(out) as stage:
        for split in splits:
            report = SplitReport(split)
            records = _records(converter(src, split), report, stage, out, overwrite, progress, artifacts)
            if fmt == "jsonl":
                report.written = write_jsonl(records, output_path(stage, split, fmt))
                report.paths.insert(0, output_path(out, split, fmt))
            else:
                shards = write_shards(_count(records, report), stage / split, per_shard=per_shard)
                report.paths[:0] = [out / path.name for path in shards]
            reports.append(report)
    return reports


def _count(records: Iterable[dict], report: SplitReport) -> Iterator[dict]:
    for record in records:
        report.written += 1
        yield record


def _describe_paths(paths: list[Path]) -> str:
    shards = [p for p in paths if p.suffix == ".tar"]
    others = [str(p) for p in paths if p.suffix != ".tar"]
    described = [f"{len(shards)} shards in {shards[0].parent}"] if shards else []
    return ", ".join(described + others) or "nothing written"


CONSOLE_SCRIPT = "lavis-ib-convert-data"


def _program_name() -> str:
    """How the user ran us, for the usage line: the console script's name, else the `python -m` form."""
    invoked = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return CONSOLE_SCRIPT if invoked == CONSOLE_SCRIPT else "python -m lavis_ib.datasets.convert"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=_program_name(), description=__doc__.split("\n")[0])
    parser.add_argument("name", help=f"dataset name, one of: {', '.join(list_converters())}")
    parser.add_argument("--src", required=True, help="the dataset's folder as its authors distribute it")
    parser.add_argument("--out", help="output folder (default: <cache root>/datasets/NAME)")
    parser.add_argument("--split", nargs="+", help="splits to convert (default: the first the converter knows)")
    parser.add_argument("--format", choices=FORMATS, default="jsonl", help="JSON lines or webdataset tar shards")
    parser.add_argument("--per-shard", type=int, default=10_000, help="records per shard with --format wds")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI: exit status 0 on success, 2 on a usage or input error (message on stderr, nothing written)."""
    args = parse_args(argv)
    try:
        reports = convert(
            args.name, args.src, args.out, args.split, args.format, args.overwrite, progress=True,
            per_shard=args.per_shard,
        )
    except (KeyError, ValueError, FileNotFoundError, OutputExistsError) as error:
        print(f"error: {error.args[0] if error.args else error}", file=sys.stderr)
        return 2
    for report in reports:
        print(report.summary())
        print(f"    → {_describe_paths(report.paths)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
