"""`JsonlRecords` read by forked DataLoader workers after the parent has read it: every worker must read its own
records (a handle inherited through fork shares one file offset, and concurrent reads then mix records)."""

from __future__ import annotations

import json

import torch
from torch.utils.data import DataLoader

from lavis_ib.datasets.records import JsonlRecords


def test_forked_workers_read_the_records_they_index(tmp_path):
    path = tmp_path / "records.jsonl"
    rows = [{"image": f"{i}.png", "text_input": "q" * (i % 97), "text_output": str(i)} for i in range(20000)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    records = JsonlRecords(path)
    assert records[0]["text_output"] == "0"  # the parent opens its handle before the workers fork
    loader = DataLoader(records, batch_size=5, num_workers=2, collate_fn=lambda batch: [r["text_output"] for r in
                                                                                         batch],
                        multiprocessing_context="fork", generator=torch.Generator().manual_seed(0), shuffle=True)
    read = [int(value) for batch in loader for value in batch]
    assert sorted(read) == list(range(20000))
