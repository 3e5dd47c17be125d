"""Training input layouts and label masks (LAVIS §2.4/2.5) for the tiny Vicuna, T5 and OPT models.

Expected ids are computed here with the model's tokenizer, independently of the model's own layout code.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from lavis_ib import load_model

IGNORE = -100
INSTRUCTIONS = ["What is in the picture? Answer briefly.", "Colour?"]
OUTPUTS = ["a red ball", "blue and a little bit of green in the corner"]


@pytest.fixture(scope="module")
def vicuna():
    torch.manual_seed(0)
    return load_model("blip2_vicuna_instruct", "tiny")


@pytest.fixture(scope="module")
def t5():
    torch.manual_seed(0)
    return load_model("blip2_t5_instruct", "tiny")


@pytest.fixture(scope="module")
def opt():
    torch.manual_seed(0)
    return load_model("blip2_opt", "tiny")


def images(model, batch=2):
    size = model.cfg.image_size
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(7))


@contextlib.contextmanager
def cfg_override(model, **values):
    old = {k: getattr(model.cfg, k) for k in values}
    for k, v in values.items():
        setattr(model.cfg, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(model.cfg, k, v)


def assert_right_padded(ids, labels, mask, rows, row_labels, pad_id):
    """Each batch row is its expected tokens/labels followed by padding (pad id, IGNORE, mask 0) at the right end."""
    width = max(len(r) for r in rows)
    assert ids.shape == labels.shape == mask.shape == (len(rows), width)
    for b, (row, lab) in enumerate(zip(rows, row_labels)):
        pad = width - len(row)
        assert ids[b].tolist() == row + [pad_id] * pad
        assert labels[b].tolist() == lab + [IGNORE] * pad
        assert mask[b].tolist() == [1] * len(row) + [0] * pad


def instruction_layout(tok, answer_of):
    """Expected `[instruction | answer]` rows and labels; `answer_of(output)` gives an answer's supervised ids."""
    rows, row_labels = [], []
    for instruction, output in zip(INSTRUCTIONS, OUTPUTS):
        prompt, answer = tok(instruction).input_ids, answer_of(output)
        rows.append(prompt + answer)
        row_labels.append([IGNORE] * len(prompt) + answer)
    return rows, row_labels


# ----- Vicuna -------------------------------------------------------------------------------------------------
def test_vicuna_tokenizer_conventions(vicuna):
    tok = vicuna.tokenizer
    assert tok.bos_token_id == tok.eos_token_id == 2
    assert tok.pad_token_id == 1000
    assert tok("hi").input_ids[0] == 2


def test_vicuna_worked_example_layout(vicuna):
    tok = vicuna.tokenizer
    ids, labels, mask = vicuna.training_tokens({"text_input": INSTRUCTIONS, "text_output": OUTPUTS})
    assert all(tok(text).input_ids[0] == 2 for text in INSTRUCTIONS + OUTPUTS)
    # target without its BOS, then EOS
    expected_rows, expected_labels = instruction_layout(tok, lambda output: tok(output).input_ids[1:] + [2])
    assert len(expected_rows[0]) != len(expected_rows[1])
    assert_right_padded(ids, labels, mask, expected_rows, expected_labels, tok.pad_token_id)
    for b in range(2):
        n = len(expected_rows[b])
        assert ids[b, n - 1].item() == 2 and labels[b, n - 1].item() == 2  # EOS supervised


def test_vicuna_left_truncation_of_instruction_keeps_the_end(vicuna):
    tok = vicuna.tokenizer
    long_instruction = " ".join(f"word{i}" for i in range(40))
    content = tok(long_instruction, add_special_tokens=False).input_ids
    limit = 12
    assert len(content) + 1 > limit
    with cfg_override(vicuna, max_txt_len=limit):
        ids, labels, mask = vicuna.training_tokens({"text_input": [long_instruction], "text_output": ["yes"]})
    answer = tok("yes").input_ids[1:] + [2]
    expected_prompt = [2] + content[-(limit - 1) :]  # BOS, then the END of the instruction
    assert ids[0].tolist() == expected_prompt + answer
    assert labels[0].tolist() == [IGNORE] * limit + answer


def test_vicuna_right_truncation_of_output(vicuna):
    tok = vicuna.tokenizer
    long_output = " ".join(f"token{i}" for i in range(40))
    content = tok(long_output, add_special_tokens=False).input_ids
    limit = 10
    with cfg_override(vicuna, max_output_txt_len=limit):
        ids, labels, _ = vicuna.training_tokens({"text_input": ["Say it."], "text_output": [long_output]})
    prompt = tok("Say it.").input_ids
    answer = content[: limit - 1]  # the target's BOS counts against the limit and is then dropped; EOS cut off
    assert ids[0].tolist() == prompt + answer
    assert labels[0].tolist() == [IGNORE] * len(prompt) + answer


def manual_decoder_loss(model, samples):
    """Cross-entropy from `run_llm` logits over the supervised positions, computed position by position."""
    visual = model.query_features(samples["image"], samples["text_input"])
    ids, labels, mask = model.training_tokens(samples)
    embeds, full_mask = model.with_visual_prefix(visual, ids, mask)
    logits = model.run_llm(embeds, full_mask)
    q = visual.shape[1]
    terms = []
    for b in range(ids.shape[0]):
        for j in range(ids.shape[1]):
            if labels[b, j].item() != IGNORE:
                terms.append(-logits[b, q + j - 1].log_softmax(-1)[labels[b, j]])
    return torch.stack(terms).mean()


def test_vicuna_loss_equals_manual_cross_entropy(vicuna):
    samples = {"image": images(vicuna), "text_input": INSTRUCTIONS, "text_output": OUTPUTS}
    with torch.no_grad():
        loss = vicuna(samples)["loss"]
        expected = manual_decoder_loss(vicuna, samples)
    assert abs(loss.item() - expected.item()) <= 1e-5


def test_train_mode_and_trainable_parameters(vicuna):
    vicuna.train()
    try:
        assert vicuna.training and vicuna.Qformer.training
        assert all(m.training for m in vicuna.Qformer.modules())
        assert not any(m.training for m in vicuna.visual_encoder.modules())
        assert not any(m.training for m in vicuna.llm_model.modules())
        trainable = [n for n, p in vicuna.named_parameters() if p.requires_grad]
        prefixes = ("Qformer.", "ln_vision.", "llm_proj.")
        assert all(n.startswith(prefixes) or n == "query_tokens" for n in trainable), trainable
        assert "query_tokens" in trainable
        for prefix in prefixes:
            assert any(n.startswith(prefix) for n in trainable), prefix
        assert not any(n.startswith(("visual_encoder.", "llm_model.")) for n in trainable)
        frozen = {n for n, p in vicuna.named_parameters() if not p.requires_grad}
        assert frozen == {n for n, _ in vicuna.named_parameters() if n.startswith(("visual_encoder.", "llm_model."))}
    finally:
        vicuna.eval()
    assert not vicuna.training and not vicuna.Qformer.training


# ----- T5 -----------------------------------------------------------------------------------------------------
def test_t5_labels_and_encoder_layout(t5):
    tok = t5.tokenizer
    labels = t5.target_labels(OUTPUTS, t5.cfg.max_output_txt_len)
    expected = [tok(o).input_ids for o in OUTPUTS]
    assert all(e[-1] == tok.eos_token_id == 1 for e in expected)
    width = max(len(e) for e in expected)
    assert labels.tolist() == [e + [IGNORE] * (width - len(e)) for e in expected]
    with torch.no_grad():
        visual = t5.query_features(images(t5), INSTRUCTIONS)
        embeds, mask = t5.encoder_inputs(visual, INSTRUCTIONS)
        q = visual.shape[1]
        assert torch.equal(embeds[:, :q], visual)
        table = t5.llm.get_input_embeddings()
        for b, instruction in enumerate(INSTRUCTIONS):
            ids = torch.tensor(tok(instruction).input_ids)
            n = len(ids)
            assert torch.equal(embeds[b, q : q + n], table(ids))
            assert mask[b].tolist() == [1] * (q + n) + [0] * (mask.shape[1] - q - n)


def test_t5_loss_equals_manual_cross_entropy(t5):
    tok = t5.tokenizer
    samples = {"image": images(t5), "text_input": INSTRUCTIONS, "text_output": OUTPUTS}
    with torch.no_grad():
        loss = t5(samples)["loss"]
        visual = t5.query_features(samples["image"], INSTRUCTIONS)
        embeds, mask = t5.encoder_inputs(visual, INSTRUCTIONS)
        terms = []
        for b, output in enumerate(OUTPUTS):
            target = torch.tensor([tok(output).input_ids])
            decoder = torch.cat([torch.zeros(1, 1, dtype=torch.long), target[:, :-1]], dim=1)  # start id 0
            logits = t5.llm(inputs_embeds=embeds[b : b + 1], attention_mask=mask[b : b + 1],
                            decoder_input_ids=decoder).logits[0]
            terms.append(F.cross_entropy(logits, target[0], reduction="none"))
        expected = torch.cat(terms).mean()
    assert abs(loss.item() - expected.item()) <= 1e-5


# ----- OPT ----------------------------------------------------------------------------------------------------
def test_opt_captioning_layout(opt):
    tok = opt.tokenizer
    prefix = "a photo of"
    captions = ["a photo of a cat", "a photo of two dogs playing in the park"]
    with cfg_override(opt, prompt=prefix):
        ids, labels, mask = opt.training_tokens({"text_input": captions})
    prompt_len = len(tok(prefix).input_ids)
    rows = [tok(c + "\n").input_ids for c in captions]
    newline = tok("\n", add_special_tokens=False).input_ids[-1]
    for row in rows:
        assert row[0] == tok.bos_token_id and row[-1] == newline == opt.eos_token_id
    row_labels = [[IGNORE] * prompt_len + row[prompt_len:] for row in rows]
    assert_right_padded(ids, labels, mask, rows, row_labels, tok.pad_token_id)


def test_opt_captioning_layout_without_prompt_supervises_bos(opt):
    """LAVIS masks the prompt only when there is one: with `prompt: ""` the BOS label stays supervised."""
    tok = opt.tokenizer
    captions = ["a cat", "two dogs playing"]
    samples = {"image": images(opt), "text_input": captions}
    with cfg_override(opt, prompt=""), torch.no_grad():
        ids, labels, mask = opt.training_tokens(samples)
        loss = opt(samples)["loss"].item()
        visual = opt.query_features(samples["image"], None)
        logits = opt.run_llm(*opt.with_visual_prefix(visual, ids, mask))
    rows = [tok(c + "\n").input_ids for c in captions]
    assert_right_padded(ids, labels, mask, rows, rows, tok.pad_token_id)
    assert labels[:, 0].tolist() == [tok.bos_token_id] * 2
    queries = visual.shape[1]  # the last visual token predicts BOS
    terms = [F.cross_entropy(logits[b, queries - 1 : queries - 1 + len(r)], torch.tensor(r), reduction="sum")
             for b, r in enumerate(rows)]
    assert abs(loss - (sum(terms) / sum(map(len, rows))).item()) <= 1e-5


def test_opt_instruction_layout(opt):
    tok = opt.tokenizer
    ids, labels, mask = opt.training_tokens({"text_input": INSTRUCTIONS, "text_output": OUTPUTS})
    rows, labs = instruction_layout(tok, lambda output: tok(output + "\n").input_ids[1:])
    assert all(row[-1] == opt.eos_token_id for row in rows)
    assert_right_padded(ids, labels, mask, rows, labs, tok.pad_token_id)


def test_opt_loss_equals_manual_cross_entropy(opt):
    samples = {"image": images(opt), "text_input": INSTRUCTIONS, "text_output": OUTPUTS}
    with torch.no_grad():
        loss = opt(samples)["loss"]
        expected = manual_decoder_loss(opt, samples)
    assert abs(loss.item() - expected.item()) <= 1e-5
