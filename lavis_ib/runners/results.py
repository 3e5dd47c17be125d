"""The results table of an evaluation job: one row per dataset split, our number beside the paper's Table 1.

Every row carries the metric and the protocol that produced it (mode, prompt template, decoding or candidates), so
a number is never read without the settings behind it. A metric undefined on the records in scope (ROC-AUC of one
class, no record scored) shows as "undefined", its reason listed under the table. Written as `results.json` and
`results.md` in the job folder.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Optional

from omegaconf import OmegaConf

from lavis_ib.common.paths import configs_root

PAPER_TABLE = configs_root / "paper" / "table1.yaml"


@functools.lru_cache(maxsize=1)
def paper_table() -> dict:
    return OmegaConf.to_container(OmegaConf.load(PAPER_TABLE), resolve=True)


def paper_number(arch: str, model_type: str, dataset: str) -> tuple[Optional[float], Optional[dict]]:
    """The paper's Table 1 value for this model and dataset and the column's `{metric, split}`, or Nones."""
    table = paper_table()
    column = table["datasets"].get(dataset)
    value = table["models"].get(f"{arch}/{model_type}", {}).get(dataset)
    return (value, column) if column is not None else (None, None)


def describe_protocol(summary: dict) -> str:
    """One line: `generate (beams 5, max 10, min 1, lp 0.0)` or `rank choices (sum)`, then the prompt template."""
    if summary["mode"] == "generate":
        d = summary["decoding"]
        how = (f"generate (beams {d['num_beams']}, max {d['max_length']}, min {d['min_length']}, "
               f"lp {d['length_penalty']}, rp {d['repetition_penalty']})")
    else:
        how = f"rank {summary['candidates']} ({summary['normalize']})"
        if summary.get("verbalizers"):
            how += " " + " vs ".join("{" + ", ".join(words) + "}" for words in summary["verbalizers"])
    templates = summary.get("prompt_templates")
    prompt = " | ".join(templates) if templates else "verbatim"
    return f"{how}; prompt {prompt!r}".replace("\n", "\\n")


@dataclass
class ResultRow:
    dataset: str
    split: str
    metric: str
    ours: Optional[float]
    paper: Optional[float]
    paper_split: Optional[str]
    protocol: str
    num_scored: int
    num_skipped: int
    undefined: Optional[str] = None  # why `ours` is None: the metric has no value on the records in scope

    @property
    def difference(self) -> Optional[float]:
        if self.ours is None or self.paper is None or self.paper_split != self.split:
            return None  # another split's number is shown for reference, not subtracted
        return self.ours - self.paper

    def to_dict(self) -> dict:
        return {**asdict(self), "difference": self.difference}


def result_row(metrics_file: dict, arch: str, model_type: str) -> ResultRow:
    """A table row from one split's `metrics.json` content."""
    dataset, split = metrics_file["dataset"], metrics_file["split"]
    paper, column = paper_number(arch, model_type, dataset)
    comparable = column is not None and column["metric"] == metrics_file["report"]
    return ResultRow(
        dataset=dataset, split=split, metric=metrics_file["report"], ours=metrics_file.get("agg_metrics"),
        paper=paper if comparable else None, paper_split=column["split"] if comparable and paper is not None else None,
        protocol=describe_protocol(metrics_file["protocol"]), num_scored=metrics_file["num_scored"],
        num_skipped=metrics_file["num_skipped"], undefined=(metrics_file.get("undefined") or {}).get(
            metrics_file["report"]),
    )


def _number(value: Optional[float], signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def render_markdown(rows: list[ResultRow], title: str) -> str:
    """The results table as Markdown, with the paper's split named where it differs from ours."""
    lines = [f"# {title}", "",
             "| dataset | split | metric | ours | paper (Table 1) | Δ | samples | skipped | protocol |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        paper = _number(row.paper)
        if row.paper is not None and row.paper_split != row.split:
            paper += f" ({row.paper_split})"
        ours = "undefined" if row.undefined is not None else _number(row.ours)
        lines.append(f"| {row.dataset} | {row.split} | {row.metric} | {ours} | {paper} | "
                     f"{_number(row.difference, signed=True)} | {row.num_scored:,} | {row.num_skipped:,} | "
                     f"{row.protocol.replace('|', '/')} |")
    undefined = [row for row in rows if row.undefined is not None]
    if undefined:
        lines += ["", "Undefined on the records in scope:"]
        lines += [f"- {row.dataset} {row.split} {row.metric}: {row.undefined}" for row in undefined]
    return "\n".join(lines) + "\n"
