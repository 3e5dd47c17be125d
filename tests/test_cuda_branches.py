"""Every CUDA-only branch of the library, executed on CPU: the decision each makes for a CUDA device (dtype, autocast,
scaler, backend, device placement, pinned memory, DDP device ids, RNG state, peak memory), with CUDA's own calls
replaced by recorders where the branch makes one. Each test's docstring names the branch (file:function) it covers;
bench/README.md ("gpu_check.py") lists them. What only a GPU can show is left to `bench/gpu_check.py`."""

from __future__ import annotations

import contextlib
import logging
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from lavis_ib.common import dist as D
from lavis_ib.common.precision import autocast, run_precision
from lavis_ib.common.registry import registry
from lavis_ib.common.schema import ConfigError
from lavis_ib.models.precision import PrecisionPolicy, compute_in, full_precision
from lavis_ib.runners import checkpoints, optim, runner_iter
from lavis_ib.runners.evaluator import Evaluator
from lavis_ib.runners.runner_iter import RunnerIter

CUDA = torch.device("cuda", 1)
LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS",
               "SLURM_LOCALID", "SLURM_NODELIST", "SLURM_JOB_NODELIST")


# torch warns that CUDA is unavailable when an autocast names it (and disables it): the branch is what is tested
pytestmark = pytest.mark.filterwarnings("ignore:CUDA is not available or torch_xla is imported:UserWarning")


# ----- common/dist.py ----------------------------------------------------------------------------------------
def test_resolve_device_gives_each_local_rank_its_gpu():
    """common/dist.py:resolve_device — cuda (configured or, unset, present) at the local rank's index."""
    assert D.resolve_device("cuda", 1, 2) == CUDA
    assert D.resolve_device("cuda:0", 1, 2) == CUDA  # the rank's own GPU, whatever index the config names
    assert D.resolve_device(None, 1, 4) == CUDA
    assert D.resolve_device(None, 0, 0) == torch.device("cpu")
    with pytest.raises(ValueError, match="local rank 2 has no GPU"):
        D.resolve_device("cuda", 2, 2)


def test_choose_backend_is_nccl_for_cuda():
    """common/dist.py:choose_backend — nccl for any CUDA device, gloo otherwise."""
    assert [D.choose_backend(d) for d in ("cuda", CUDA, "cuda:0", "cpu")] == ["nccl", "nccl", "nccl", "gloo"]


def test_init_distributed_on_gpus_sets_the_device_and_joins_an_nccl_group(monkeypatch):
    """common/dist.py:init_distributed — the nccl branch: `torch.cuda.set_device(cuda:<local rank>)`, then
    `init_process_group(backend="nccl", device_id=cuda:<local rank>)` with the launcher's rank and world size."""
    for name in LAUNCH_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in dict(RANK="3", WORLD_SIZE="4", LOCAL_RANK="1", MASTER_ADDR="10.0.0.1",
                            MASTER_PORT="29501").items():
        monkeypatch.setenv(name, value)
    calls = {}
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.setdefault("set_device", device))
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda **kwargs: calls.setdefault("init", kwargs))
    info = D.init_distributed({"device": "cuda"})
    assert info == D.DistInfo(rank=3, world_size=4, local_rank=1, distributed=True, backend="nccl", device=CUDA)
    assert calls["set_device"] == CUDA
    init = calls["init"]
    assert (init["backend"], init["rank"], init["world_size"], init["device_id"]) == ("nccl", 3, 4, CUDA)
    assert init["init_method"] == "env://" and init["timeout"] == D.PROCESS_GROUP_TIMEOUT


def test_barrier_under_nccl_names_the_current_gpu(monkeypatch):
    """common/dist.py:barrier — under nccl the barrier is given the current device (`device_ids=[current]`)."""
    seen = []
    monkeypatch.setattr(D, "is_dist_avail_and_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_backend", lambda *args: "nccl")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    monkeypatch.setattr(torch.distributed, "barrier", lambda **kwargs: seen.append(kwargs))
    D.barrier()
    monkeypatch.setattr(torch.distributed, "get_backend", lambda *args: "gloo")
    D.barrier()
    assert seen == [{"device_ids": [1]}, {}]


# ----- models/precision.py and the model's use of it ---------------------------------------------------------
@pytest.mark.parametrize("arch, model_type, vit, llm", [
    ("blip2_vicuna_instruct", "vicuna7b", torch.float16, torch.float16),
    ("blip2_t5_instruct", "flant5xl", torch.float16, torch.bfloat16),
    ("blip2_opt", "pretrain_opt2.7b", torch.float16, torch.float16),
])
def test_the_per_part_dtype_policy_on_cuda(arch, model_type, vit, llm):
    """models/precision.py:PrecisionPolicy.resolve — on CUDA the ViT takes `vit_precision` and the LLM
    `llm_precision` (fp16 Vicuna/OPT, bf16 Flan-T5); a named precision applies to both; CPU stays fp32."""
    model_cls = registry.get_model_class(arch)
    cfg = model_cls.parse_config(model_cls.default_config(model_type).model)
    assert PrecisionPolicy.resolve(cfg, CUDA) == PrecisionPolicy(vit=vit, llm=llm)
    assert PrecisionPolicy.resolve(cfg, "cuda", "bf16") == PrecisionPolicy(torch.bfloat16, torch.bfloat16)
    assert PrecisionPolicy.resolve(cfg, "cpu") == PrecisionPolicy()


def test_compute_in_opens_a_cuda_autocast_in_the_weights_dtype():
    """models/precision.py:compute_in — on a CUDA device and a half dtype, `torch.autocast("cuda", dtype)`; fp32,
    or an autocast the caller already opened on CUDA, gives no new one."""
    context = compute_in(torch.float16, CUDA)
    assert isinstance(context, torch.autocast) and (context.device, context.fast_dtype) == ("cuda", torch.float16)
    assert compute_in(torch.bfloat16, CUDA).fast_dtype == torch.bfloat16
    assert isinstance(compute_in(torch.float32, CUDA), contextlib.nullcontext)
    torch.set_autocast_enabled("cuda", True)  # as inside the caller's `torch.autocast("cuda")`
    try:
        assert isinstance(compute_in(torch.float16, CUDA), contextlib.nullcontext)
    finally:
        torch.set_autocast_enabled("cuda", False)


def test_full_precision_switches_off_an_active_cuda_autocast():
    """models/precision.py:full_precision — inside a CUDA autocast, `torch.autocast("cuda", enabled=False)` for the
    fp32 parts (ln_vision, Q-Former); nothing to switch off otherwise."""
    assert isinstance(full_precision(CUDA), contextlib.nullcontext)
    torch.set_autocast_enabled("cuda", True)
    try:
        context = full_precision(CUDA)
    finally:
        torch.set_autocast_enabled("cuda", False)
    assert isinstance(context, torch.autocast) and context.device == "cuda" and not context._enabled


def test_a_model_built_for_cuda_stores_and_computes_each_part_as_on_a_gpu():
    """models/base.py:BaseModel.from_config(device="cuda") with models/blip2.py:Blip2Base.apply_precision,
    vit_compute and llm_compute — the CUDA policy built and run on CPU (fp16 under CPU autocast): ViT Linear/Conv
    and the LLM in fp16, `ln_vision`, the Q-Former and the projection in fp32; training, generation and scoring run,
    and gradients reach the fp32 trainable parts only."""
    torch.manual_seed(0)
    model_cls = registry.get_model_class("blip2_vicuna_instruct")
    model = model_cls.from_config(model_cls.default_config("tiny").model, device="cuda").apply_precision()
    assert model.precision == PrecisionPolicy(torch.float16, torch.float16) and model.device.type == "cpu"
    vit_linear = model.visual_encoder.blocks[0].mlp.fc1
    assert vit_linear.weight.dtype == torch.float16 and model.visual_encoder.patch_embed.proj.weight.dtype == \
        torch.float16
    assert all(p.dtype == torch.float16 for p in model.llm.parameters())
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 for p in trainable)
    assert model.ln_vision.weight.dtype == torch.float32

    image = torch.randn(2, 3, model.cfg.image_size, model.cfg.image_size)
    seen = {}

    def record(key):
        def hook(module, args, out):
            seen.setdefault(key, (out[0] if isinstance(out, tuple) else getattr(out, "last_hidden_state", out)).dtype)
        return hook

    probes = {"vit": vit_linear, "ln_vision": model.ln_vision, "qformer": model.Qformer,
              "llm": next(m for m in model.llm.modules() if isinstance(m, nn.Linear))}
    hooks = [module.register_forward_hook(record(key)) for key, module in probes.items()]
    loss = model({"image": image, "text_input": ["What is it?", "Colour?"], "text_output": ["a ball", "red"]})["loss"]
    for hook in hooks:
        hook.remove()
    assert seen == {"vit": torch.float16, "ln_vision": torch.float32, "qformer": torch.float32, "llm": torch.float16}
    assert torch.isfinite(loss) and loss.dtype == torch.float32
    loss.backward()
    assert all(p.grad is None for p in model.llm.parameters()) and model.query_tokens.grad is not None
    model.eval()
    answers = model.generate({"image": image, "prompt": ["What?", "Where is it?"]}, num_beams=2, max_length=4)
    assert len(answers) == 2
    scores = model.score_candidates({"image": image[:1], "prompt": ["Is it red?"]}, ["yes", "no"])
    assert torch.isfinite(scores.sum[0]).all()


# ----- runners -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bf16_supported, expected", [(True, "bf16"), (False, "fp16")])
def test_the_run_precision_defaults_to_bf16_on_cuda(monkeypatch, bf16_supported, expected):
    """common/precision.py:run_precision — unset: bf16 on CUDA (fp16 on a GPU without bf16), fp32 elsewhere; a
    configured one is kept, an unknown one refused."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16_supported)
    assert run_precision(None, CUDA) == expected
    assert run_precision(None, torch.device("cpu")) == "fp32"
    assert run_precision("fp16", CUDA) == "fp16" and run_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ConfigError, match="run.precision: precision must be one of fp32, fp16, bf16, got 'fp17'"):
        run_precision("fp17", CUDA)


@pytest.mark.parametrize("precision, enabled", [("fp16", True), ("bf16", False), ("fp32", False)])
def test_the_grad_scaler_is_enabled_for_fp16_only(monkeypatch, precision, enabled):
    """runners/optim.py:grad_scaler (what runners/runner_iter.py:RunnerIter.setup uses) — a CUDA scaler,
    enabled for fp16 alone (torch disables a CUDA scaler where there is no GPU: it is told there is one)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    scaler = optim.grad_scaler(precision, CUDA)
    assert scaler._device == "cuda" and scaler.is_enabled() is enabled


@pytest.mark.parametrize("precision, dtype", [("fp16", torch.float16), ("bf16", torch.bfloat16), ("fp32", None)])
def test_the_run_autocast_on_cuda(precision, dtype):
    """common/precision.py:autocast (what both runners' forward passes go under) — `torch.autocast("cuda",
    fp16 | bf16)` for the run's precision, none for fp32."""
    context = autocast(precision, CUDA)
    if dtype is None:
        assert isinstance(context, contextlib.nullcontext)
    else:
        assert isinstance(context, torch.autocast) and (context.device, context.fast_dtype) == ("cuda", dtype)


@pytest.mark.parametrize("precision, dtype", [("fp16", torch.float16), ("bf16", torch.bfloat16), (None, torch.bfloat16)])
def test_the_evaluation_autocast_on_cuda(monkeypatch, precision, dtype):
    """runners/evaluator.py:Evaluator.autocast — the precision `evaluate()` decides on CUDA (`run_precision`:
    fp16 / bf16 as set, unset the one training takes, bf16) opens a CUDA autocast in that dtype, so validation and
    evaluate.py compute alike."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    fake = SimpleNamespace(precision=run_precision(precision, CUDA), info=SimpleNamespace(device=CUDA))
    context = Evaluator.autocast(fake)
    assert isinstance(context, torch.autocast) and (context.device, context.fast_dtype) == ("cuda", dtype)


def test_peak_memory_on_cuda_is_the_allocators_peak(monkeypatch):
    """runners/runner_iter.py:peak_memory_mb — on CUDA `torch.cuda.max_memory_allocated(device)` in MiB."""
    asked = []
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device: asked.append(device) or 3 * 2**20)
    assert runner_iter.peak_memory_mb(CUDA) == 3.0 and asked == [CUDA]
    assert runner_iter.peak_memory_mb(torch.device("cpu")) > 0 and asked == [CUDA]


@pytest.mark.parametrize("device, pinned", [(CUDA, True), (torch.device("cpu"), False)])
def test_the_training_loader_pins_memory_on_cuda(device, pinned):
    """runners/runner_iter.py:RunnerIter.build_loader — `pin_memory` on CUDA (host→GPU copies from pinned pages)."""
    fake = SimpleNamespace(run=SimpleNamespace(batch_size_train=2, num_workers=0, seed=0),
                           info=SimpleNamespace(device=device))
    model = SimpleNamespace(collator=lambda mode: list)
    loader = RunnerIter.build_loader(fake, list(range(4)), None, model)
    assert loader.pin_memory is pinned


class RecordingDDP(nn.Module):
    """Stands in for DistributedDataParallel (which needs a process group): records its arguments."""

    ignored: list = []

    def __init__(self, module, **kwargs):
        super().__init__()
        self.module, self.kwargs = module, kwargs

    @staticmethod
    def _set_params_and_buffers_to_ignore_for_model(module, names):
        RecordingDDP.ignored = list(names)


@pytest.mark.parametrize("device, device_ids", [(CUDA, [1]), (torch.device("cpu"), None)])
def test_ddp_on_cuda_gets_the_ranks_gpu_and_ignores_the_frozen_parts(monkeypatch, device, device_ids):
    """runners/runner_iter.py:RunnerIter.wrap — DDP with `device_ids=[<the rank's GPU>]` on CUDA (None on CPU),
    buffers not broadcast, every frozen parameter kept out of its buckets."""
    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", RecordingDDP)
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    model[0].requires_grad_(False)
    fake = SimpleNamespace(info=SimpleNamespace(distributed=True, device=device, world_size=2),
                           run=SimpleNamespace(fsdp=False))
    engine = RunnerIter.wrap(fake, model)
    assert isinstance(engine, RecordingDDP) and engine.module is model
    assert engine.kwargs == {"device_ids": device_ids, "broadcast_buffers": False}
    assert RecordingDDP.ignored == ["0.weight", "0.bias"]


def test_fused_adamw_is_chosen_for_cuda():
    """runners/optim.py:fused_supported and build_optimizer — CUDA has a fused AdamW kernel, so a CUDA run's
    optimizer is fused (not foreach)."""
    assert optim.fused_supported("cuda") and optim.fused_supported(CUDA)
    param = nn.Parameter(torch.zeros(2))
    optimizer = optim.build_optimizer([{"params": [param]}], 1e-3, 0.05, device=CUDA)
    assert optimizer.defaults["fused"] is True and optimizer.defaults["foreach"] is None


def test_the_cuda_generator_is_saved_and_restored_with_cuda(monkeypatch, caplog):
    """runners/checkpoints.py:rng_state and set_rng_state — with CUDA the current GPU's generator state is saved
    under "cuda" and restored; a state saved without CUDA leaves CUDA's as it is, with a warning."""
    restored = []
    state = torch.arange(16, dtype=torch.uint8)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda: state)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda value: restored.append(value))
    saved = checkpoints.rng_state()
    assert saved["cuda"] is state
    checkpoints.set_rng_state(saved)
    assert len(restored) == 1 and torch.equal(restored[0], state)
    del saved["cuda"]
    with caplog.at_level(logging.WARNING):
        checkpoints.set_rng_state(saved)
    assert len(restored) == 1 and "no CUDA generator state" in caplog.text
