"""Per-step lr schedules (LAVIS's names, per-group `lr_scale` applied) and the AdamW optimizer the runner builds."""

from __future__ import annotations

import math

import pytest
import torch

from lavis_ib.common.registry import UnknownNameError, registry
from lavis_ib.common.run_schema import RunConfig
from lavis_ib.common.schema import ConfigError
from lavis_ib.models import load_model
from lavis_ib.runners import optim
from lavis_ib.runners.optim import (ScheduleMismatchError, build_optimizer, build_scheduler, optimizer_from_run,
                                    param_group_summary, scheduler_from_run)

ARCH = "blip2_vicuna_instruct"


def one_group_optimizer(lr_scales=(1.0,)):
    groups = [{"name": f"g{i}", "params": [torch.nn.Parameter(torch.zeros(2))], "weight_decay": 0.0,
               "lr_scale": scale} for i, scale in enumerate(lr_scales)]
    return build_optimizer(groups, init_lr=1.0, weight_decay=0.05)


def schedule(name="linear_warmup_cosine_lr", optimizer=None, **settings):
    return build_scheduler(name, optimizer or one_group_optimizer(), **settings)


def test_the_three_lavis_names_are_registered():
    assert registry.list_lr_schedulers() == ["constant_lr", "linear_warmup_cosine_lr", "linear_warmup_step_lr"]
    assert registry.get_lr_scheduler_class("linear_warmup_cosine_lr") is optim.LinearWarmupCosineLR


def test_cosine_warms_up_linearly_then_reaches_min_lr_at_max_iters():
    s = schedule(max_iters=110, init_lr=1e-4, min_lr=1e-6, warmup_lr=1e-7, warmup_steps=10)
    assert s.lr_at(0) == pytest.approx(1e-7)
    assert s.lr_at(5) == pytest.approx(1e-7 + (1e-4 - 1e-7) * 0.5)
    assert s.lr_at(10) == pytest.approx(1e-4)
    assert s.lr_at(60) == pytest.approx((1e-4 + 1e-6) / 2)  # midpoint of the cosine
    assert s.lr_at(110) == pytest.approx(1e-6)
    assert s.lr_at(500) == pytest.approx(1e-6)  # past the end: stays at min_lr
    lrs = [s.lr_at(k) for k in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_the_papers_recipe():
    """InstructBLIP: warm-up 1e-8 → 1e-5 over 1,000 steps, then cosine to 0 at 60,000."""
    s = schedule(max_iters=60000, init_lr=1e-5, min_lr=0.0, warmup_lr=1e-8, warmup_steps=1000)
    assert s.lr_at(0) == pytest.approx(1e-8, rel=1e-12)
    assert s.lr_at(500) == pytest.approx(5.005e-6, rel=1e-12)  # 1e-8 + (1e-5 - 1e-8) / 2
    assert s.lr_at(1000) == pytest.approx(1e-5, rel=1e-12)
    assert s.lr_at(30500) == pytest.approx(5e-6, rel=1e-12)
    assert s.lr_at(60000) == pytest.approx(0.0, abs=1e-20)


def test_warmup_lr_minus_one_means_init_lr_as_in_lavis():
    s = schedule(max_iters=100, init_lr=3e-5, warmup_lr=-1.0, warmup_steps=10)
    assert [s.lr_at(k) for k in (0, 5, 10)] == [3e-5, 3e-5, 3e-5]


def test_step_lr_decays_every_decay_steps_and_never_below_min_lr():
    s = schedule("linear_warmup_step_lr", max_iters=1000, init_lr=1e-4, min_lr=2e-5, warmup_lr=0.0,
                 warmup_steps=100, decay_rate=0.5, decay_steps=50)
    assert s.lr_at(0) == 0.0
    assert s.lr_at(50) == pytest.approx(5e-5)
    assert [s.lr_at(k) for k in (100, 149, 150, 199, 200)] == pytest.approx([1e-4, 1e-4, 5e-5, 5e-5, 2.5e-5])
    assert s.lr_at(250) == pytest.approx(2e-5)  # 1.25e-5 clipped to min_lr
    default = schedule("linear_warmup_step_lr", max_iters=1100, init_lr=1.0, warmup_steps=100, decay_rate=0.9)
    assert default.decay_steps == 100  # a tenth of the post-warm-up steps
    assert default.lr_at(1099) == pytest.approx(0.9 ** 9)


def test_constant_lr_warms_up_then_holds():
    s = schedule("constant_lr", max_iters=50, init_lr=2e-5, warmup_lr=0.0, warmup_steps=4)
    assert [s.lr_at(k) for k in (0, 2, 4, 49)] == pytest.approx([0.0, 1e-5, 2e-5, 2e-5])


def test_step_writes_the_scaled_lr_into_every_group_and_returns_the_base_lr():
    """Unlike LAVIS, a group's lr_scale (layer-wise decay) multiplies the scheduled lr."""
    optimizer = one_group_optimizer(lr_scales=(1.0, 0.5, 0.9 ** 3))
    s = build_scheduler("linear_warmup_cosine_lr", optimizer, max_iters=100, init_lr=1e-4, warmup_steps=0)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1e-4, 5e-5, 0.729e-4])  # step 0 at build
    assert s.step(50) == pytest.approx(5e-5)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([5e-5, 2.5e-5, 0.729 * 5e-5])


def test_schedules_are_stateless_and_reject_a_changed_schedule_on_resume():
    settings = dict(max_iters=100, init_lr=1e-4, warmup_steps=10, warmup_lr=1e-8)
    first, resumed = schedule(**settings), schedule(**settings)
    first.step(70)
    resumed.load_state_dict(first.state_dict())
    assert resumed.lr_at(70) == first.lr_at(70)
    assert first.state_dict() == {"name": "linear_warmup_cosine_lr", "max_iters": 100, "init_lr": 1e-4,
                                  "min_lr": 0.0, "warmup_lr": 1e-8, "warmup_steps": 10, "decay_rate": None,
                                  "decay_steps": None}
    with pytest.raises(ScheduleMismatchError, match=r"max_iters \(run.max_iters\): checkpoint 100, this run 200"):
        schedule(**{**settings, "max_iters": 200}).load_state_dict(first.state_dict())
    with pytest.raises(ScheduleMismatchError, match="lr_sched"):
        schedule("constant_lr", **settings).load_state_dict(first.state_dict())


@pytest.mark.parametrize("name, settings, message", [
    ("linear_warmup_cosine_lr", dict(max_iters=0, init_lr=1e-5), r"max_iters \(run.max_iters\) must be an integer"),
    ("linear_warmup_cosine_lr", dict(max_iters=10, init_lr=1e-5, warmup_steps=10), "must be below"),
    ("constant_lr", dict(max_iters=10, init_lr=1e-5, warmup_steps=11), "would never end"),
    ("linear_warmup_step_lr", dict(max_iters=10, init_lr=1e-5), r"decay_rate \(run.lr_decay_rate\) is required"),
    ("linear_warmup_step_lr", dict(max_iters=10, init_lr=1e-5, decay_rate=1.5), r"in \(0, 1\], got 1.5"),
    ("linear_warmup_step_lr", dict(max_iters=10, init_lr=1e-5, decay_rate=0.9, decay_steps=0), "decay_steps"),
    ("constant_lr", dict(max_iters=10, init_lr=-1e-5), r"init_lr \(run.init_lr\) must be ≥ 0, got -1e-05"),
    ("constant_lr", dict(max_iters=10, init_lr=1e-5, min_lr=1e-4), "is above"),
    ("constant_lr", dict(max_iters=10, init_lr="1e-5"), "must be a number, got '1e-5'"),
])
def test_bad_settings_are_errors_naming_the_setting_and_value(name, settings, message):
    with pytest.raises(ValueError, match=message):
        schedule(name, **settings)


def test_unknown_schedule_names_and_settings():
    with pytest.raises(UnknownNameError, match="did you mean 'linear_warmup_cosine_lr'"):
        schedule("linear_warmup_cosin_lr", max_iters=10, init_lr=1e-5)
    with pytest.raises(ConfigError, match="lr schedule 'linear_warmup_cosine_lr': unknown key 'warmup_step'; "
                                          "did you mean 'warmup_steps'"):
        schedule(max_iters=10, init_lr=1e-5, warmup_step=3)


def test_scheduler_and_optimizer_from_the_run_section():
    run = RunConfig(lr_sched="linear_warmup_step_lr", init_lr=1e-4, min_lr=1e-6, warmup_lr=1e-8, warmup_steps=10,
                    lr_decay_rate=0.5, decay_steps=20, max_iters=2e2, weight_decay=0.02, beta1=0.8, beta2=0.99)
    param = torch.nn.Parameter(torch.zeros(3))
    optimizer = optimizer_from_run([{"name": "decay", "params": [param], "lr_scale": 1.0}], run)
    s = scheduler_from_run(optimizer, run)
    assert (s.max_iters, s.decay_rate, s.decay_steps) == (200, 0.5, 20)
    assert s.lr_at(30) == pytest.approx(5e-5)
    group = optimizer.param_groups[0]
    assert (group["weight_decay"], group["betas"]) == (0.02, (0.8, 0.99))
    with pytest.raises(ValueError, match="run.max_iters is required"):
        scheduler_from_run(optimizer, RunConfig())
    with pytest.raises(ValueError, match="whole number"):
        scheduler_from_run(optimizer, RunConfig(max_iters=10.5))


def test_adamw_is_fused_on_cpu_keeps_group_keys_and_applies_the_scaled_lr():
    param = torch.nn.Parameter(torch.ones(4))
    optimizer = build_optimizer([{"name": "vit_layer_0_decay", "params": [param], "weight_decay": 0.0,
                                  "lr_scale": 0.5}], init_lr=0.1, weight_decay=0.05)
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["fused"] is True
    group = optimizer.param_groups[0]
    assert (group["name"], group["lr_scale"], group["weight_decay"], group["fused"]) == ("vit_layer_0_decay", 0.5,
                                                                                          0.0, True)
    build_scheduler("constant_lr", optimizer, max_iters=10, init_lr=0.1)
    param.grad = torch.ones(4)
    optimizer.step()  # Adam's first step moves each weight by the lr (×sign of the gradient)
    assert torch.allclose(param.detach(), torch.full((4,), 1 - 0.05), atol=1e-6)
    assert optim.fused_supported("cuda") and not optim.fused_supported("meta")
    with pytest.raises(ValueError, match="no parameters"):
        build_optimizer([], init_lr=0.1, weight_decay=0.0)


def by_param(model, groups):
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: g for g in groups for p in g["params"]}


def test_tiny_models_groups_follow_lavis_rules():
    model = load_model(ARCH, "tiny")
    groups = by_param(model, model.optimizer_param_groups(weight_decay=0.05, lr_layer_decay=0.9))
    assert {g["name"] for g in groups.values()} == {"decay", "no_decay"}
    for name, group in groups.items():
        param = model.get_parameter(name)
        no_decay = param.ndim == 1 or name.endswith(".bias")
        assert group["weight_decay"] == (0.0 if no_decay else 0.05), name
        assert group["lr_scale"] == 1.0
    assert model.query_tokens.ndim == 3 and groups["query_tokens"]["weight_decay"] == 0.05


def test_unfrozen_vit_gets_per_layer_groups_whose_scale_the_schedule_applies():
    model = load_model(ARCH, "tiny", options={"freeze_vit": False})
    depth = model.cfg.vision.depth
    raw = model.optimizer_param_groups(weight_decay=0.05, lr_layer_decay=0.9)
    groups = by_param(model, raw)
    assert groups["visual_encoder.pos_embed"]["name"] == "vit_layer_0_decay"
    assert groups["visual_encoder.blocks.0.norm1.weight"]["name"] == "vit_layer_1_no_decay"
    for name, group in groups.items():
        if name.startswith("visual_encoder."):
            layer = int(group["name"].split("_")[2])
            assert group["lr_scale"] == pytest.approx(0.9 ** (depth + 1 - layer)), name
    optimizer = build_optimizer(raw, init_lr=1e-5, weight_decay=0.05)
    build_scheduler("constant_lr", optimizer, max_iters=10, init_lr=1e-5).step(3)
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs["vit_layer_0_decay"] == pytest.approx(1e-5 * 0.9 ** (depth + 1))
    assert lrs["decay"] == pytest.approx(1e-5)
    assert math.isclose(lrs[f"vit_layer_{depth}_decay"], 1e-5 * 0.9)


def test_param_group_summary_table():
    a, b = torch.nn.Parameter(torch.zeros(3, 4)), torch.nn.Parameter(torch.zeros(5))
    text = param_group_summary([{"name": "decay", "params": [a], "weight_decay": 0.05, "lr_scale": 1.0},
                                {"name": "vit_layer_0_no_decay", "params": [b, b], "weight_decay": 0.0,
                                 "lr_scale": 0.729}])
    lines = text.splitlines()
    assert lines[0].split() == ["group", "tensors", "params", "weight_decay", "lr_scale"]
    assert lines[2].split() == ["decay", "1", "12", "0.05", "1"]
    assert lines[3].split() == ["vit_layer_0_no_decay", "2", "10", "0", "0.729"]
    assert lines[4].split() == ["total", "3", "22"]
