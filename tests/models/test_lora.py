"""`model.lora`: peft adapters on the frozen LLM. What trains is `requires_grad` (Q-Former + adapters), so
checkpoints, loading and export follow; QLoRA (nf4 + LoRA) trains adapters and Q-Former and leaves the 4-bit
weights bit for bit; mismatched checkpoints and targets are clear errors."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from transformers import InstructBlipForConditionalGeneration

from lavis_ib import load_model
from lavis_ib.common.extras import MissingExtraError
from lavis_ib.common.io import WeightMismatchError
from lavis_ib.common.schema import ConfigError
from tests.models.big_llm import ANSWERS, DEMO_WEIGHTS, PROMPTS, VICUNA, images, load_vicuna

LORA = {"r": 4, "alpha": 8, "dropout": 0.1}


def train_steps(model, steps: int) -> list[float]:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    samples = {"image": images(4), "text_input": PROMPTS * 2, "text_output": ["red", "two", "red", "two"]}
    losses = []
    for _ in range(steps):
        loss = model(samples)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.fixture(scope="module")
def trained_lora():
    """A LoRA model after 4 steps (the adapters' B matrices leave zero) and its trainable state dict."""
    torch.manual_seed(0)
    model = load_vicuna(is_eval=False, lora=LORA).train()
    train_steps(model, 4)
    return model.eval(), model.trainable_state_dict()


def test_adapters_and_the_q_former_are_what_trains(trained_lora):
    model, state = trained_lora
    trainable = model.trainable_names()
    adapters = {name for name in trainable if ".lora_" in name}
    assert len(adapters) == 2 * 2 * 2  # 2 layers × q_proj, v_proj × A, B
    assert all(".self_attn.q_proj." in n or ".self_attn.v_proj." in n for n in adapters)
    assert {n.split(".")[0] for n in trainable - adapters} == {"Qformer", "query_tokens", "llm_proj", "ln_vision"}
    assert not any(p.requires_grad for n, p in model.llm.named_parameters() if ".lora_" not in n)
    assert adapters <= set(state) and all(state[n].abs().sum() > 0 for n in adapters if "lora_B" in n)


def test_a_lora_checkpoint_reloads_to_the_same_outputs(trained_lora, tmp_path):
    model, state = trained_lora
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    torch.manual_seed(9)
    reloaded = load_model(VICUNA, "tiny", is_eval=True, checkpoint=str(path), options={**DEMO_WEIGHTS, "lora": LORA})
    samples = {"image": images(), "prompt": PROMPTS}
    assert torch.equal(reloaded.score_candidates(samples, ANSWERS).stacked(),
                       model.score_candidates(samples, ANSWERS).stacked())
    plain = load_vicuna()
    assert not torch.equal(plain.score_candidates(samples, ANSWERS).stacked(),
                           model.score_candidates(samples, ANSWERS).stacked())


def test_adapter_dropout_follows_train_and_eval_mode(trained_lora):
    model, _ = trained_lora
    dropouts = [m for n, m in model.llm.named_modules() if n.endswith("lora_dropout.default")]
    assert dropouts and not any(d.training for d in dropouts)
    model.train()
    assert all(d.training for d in dropouts) and not model.llm.training
    model.eval()


def test_qlora_trains_adapters_and_q_former_and_leaves_the_4bit_weights(tmp_path):
    model = load_vicuna(is_eval=False, quantization="nf4", lora=LORA).train()
    base = {k: v.clone() for k, v in model.llm.state_dict().items() if ".lora_" not in k}
    adapters_before = {n: p.detach().clone() for n, p in model.named_parameters() if ".lora_" in n}
    queries_before = model.query_tokens.detach().clone()
    losses = train_steps(model, 8)
    assert losses[-1] < 0.7 * losses[0], losses
    after = model.llm.state_dict()
    assert all(torch.equal(base[k], after[k]) for k in base)
    assert sum(not torch.equal(adapters_before[n], p) for n, p in model.named_parameters() if ".lora_" in n) == 8
    assert not torch.equal(queries_before, model.query_tokens)


def test_export_merges_the_adapters_and_transformers_reproduces_the_logits(trained_lora, tmp_path):
    model, _ = trained_lora
    directory = model.export_hf(tmp_path / "hf")
    hf = InstructBlipForConditionalGeneration.from_pretrained(directory).eval()
    assert not any("lora" in k for k in hf.state_dict())
    image, prompt = images(1), PROMPTS[0]
    qformer = model.text.qformer([prompt])
    tokens = model.tokenizer(prompt, return_tensors="pt")
    visual = model.query_features(image, [prompt])
    embeds, mask = model.with_visual_prefix(visual, tokens["input_ids"], tokens["attention_mask"])
    ours = model.run_llm(embeds, mask)[:, -1]
    image_token = hf.config.image_token_index
    ids = torch.cat([torch.full((1, model.cfg.num_query_token), image_token), tokens["input_ids"]], dim=1)
    theirs = hf(pixel_values=image, qformer_input_ids=qformer["input_ids"],
                qformer_attention_mask=qformer["attention_mask"], input_ids=ids,
                attention_mask=torch.ones_like(ids)).logits[:, -1, : ours.shape[-1]]
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()
    assert ".lora_A.default.weight" in " ".join(model.state_dict())  # the live model keeps its adapters


def test_a_lora_checkpoint_into_a_model_without_lora_names_the_setting(trained_lora, tmp_path):
    _, state = trained_lora
    path = tmp_path / "lora.safetensors"
    save_file(state, str(path))
    with pytest.raises(WeightMismatchError, match=r"holds LoRA adapters \(rank 4 on q_proj, v_proj\); configure the "
                                                  r"model with model.lora: \{r: 4, target_modules: \[q_proj, v_proj\]"):
        load_model(VICUNA, "tiny", checkpoint=str(path), options=DEMO_WEIGHTS)
    with pytest.raises(WeightMismatchError, match=r"rank 4, but model.lora.r is 8; set model.lora.r: 4"):
        load_model(VICUNA, "tiny", checkpoint=str(path), options={**DEMO_WEIGHTS, "lora": {"r": 8}})


def test_a_checkpoint_without_adapters_as_model_checkpoint_of_a_lora_model_says_use_pretrained(tmp_path):
    plain = load_vicuna()
    path = tmp_path / "qformer.safetensors"
    save_file(plain.trainable_state_dict(), str(path))
    with pytest.raises(WeightMismatchError, match=r"holds no LoRA adapters, but model.lora is set .*model.pretrained"):
        load_model(VICUNA, "tiny", checkpoint=str(path), options={**DEMO_WEIGHTS, "lora": LORA})
    started = load_model(VICUNA, "tiny", options={**DEMO_WEIGHTS, "lora": LORA, "load_pretrained": True,
                                                  "pretrained": str(path)})
    assert torch.equal(started.query_tokens, plain.query_tokens) and started.has_adapters


def test_unknown_target_module_lists_the_candidates_before_any_weight_is_read(monkeypatch):
    from transformers import AutoModelForCausalLM

    def no_weights(*args, **kwargs):
        raise AssertionError("weights were read before the LoRA targets were checked")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_weights)
    with pytest.raises(ConfigError, match=r"model.lora.target_modules: 'query' names no linear layer of the LLM "
                                          r"\(LlamaForCausalLM\); candidates: down_proj, gate_proj, k_proj, lm_head, "
                                          r"o_proj, q_proj, up_proj, v_proj"):
        load_vicuna(lora={"target_modules": ["q_proj", "query"]})


@pytest.mark.parametrize("bad, message", [({"r": 0}, "model.lora.r must be a positive integer"),
                                          ({"dropout": 1.0}, r"model.lora.dropout must be in \[0, 1\)"),
                                          ({"rank": 4}, r"unknown key 'model.lora.rank' \(valid keys: alpha, dropout, r, target_modules\)")])
def test_bad_lora_settings_are_config_errors(bad, message):
    with pytest.raises(ConfigError, match=message):
        load_vicuna(lora=bad)


def test_missing_peft_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a))
    with pytest.raises(MissingExtraError, match=r"model.lora needs the 'peft' package.*pip install -e \.\[lora\]"):
        load_vicuna(lora=LORA)


def test_t5_adapters_go_on_its_attention_query_and_value():
    model = load_model("blip2_t5_instruct", "tiny", options={"lora": LORA})
    adapted = {n.rsplit(".", 4)[-4] for n in model.trainable_names() if ".lora_A." in n}
    assert adapted == {"q", "v"}
