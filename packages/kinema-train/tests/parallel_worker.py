"""Run under torchrun (2 ranks, gloo): each parallel layout against one process on the same global batch.

For each case the worker builds the single-process reference (a Trainer without process groups,
fed the whole global batch) and the parallel Trainer (fed this rank's share), computes the loss
and the gradients of step 0, and writes the largest differences to OUT/<case>.rank<r>.json.
"""

import dataclasses
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))

from tiny import tiny_config  # noqa: E402

from kinema.core import AttentionBackend, KinemaError, get_registry  # noqa: E402
from kinema.dit.attention import ResolvedBackendMixin, math_attention  # noqa: E402
from kinema.train.distributed import ParallelContext, init_parallel  # noqa: E402
from kinema.train.parallelize import sync_gradients  # noqa: E402
from kinema.train.sequence_parallel import apply_sequence_parallel  # noqa: E402
from kinema.train.tensor_parallel import (  # noqa: E402
    apply_tensor_parallel,
    dense_state_dict,
    local_from_dense,
    to_dense,
)
from kinema.train.trainer import Trainer  # noqa: E402

LAYOUTS = {"dp": (1, 1), "tp": (2, 1), "sp": (2, 1)}


def perturbed_weights(cfg, out_dir: str, name: str) -> str:
    """A fresh model predicts zero (zero-initialised output and temporal projections), which would leave
    most gradients zero; start both runs from the same randomly perturbed weights instead."""
    from safetensors.torch import save_file

    from kinema.train.components import build_model

    torch.manual_seed(0)
    model = build_model(cfg.model)
    generator = torch.Generator().manual_seed(1)
    state = {k: v + 0.05 * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    path = os.path.join(out_dir, f"{name}.rank{os.environ['RANK']}.safetensors")
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    return path


def run_case(out_dir: str, model: str, layout: str) -> None:
    tp, sp = {"dp": (1, 1), "tp": (2, 1), "sp": (1, 2), "dp_zero": (1, 1), "fsdp": (1, 1)}[layout]
    # fp32, no dropout of any kind, the Open-Sora 1.1 masking on: every code path of a real step
    extra = {"mask_ratios": {"mask_no": 0.5, "mask_image_head": 0.25, "mask_quarter_tail": 0.25}}
    cfg = tiny_config(os.path.join(out_dir, f"ckpt-{model}-{layout}"), model, data=extra,
                      optim={"shard_optimizer": layout == "dp_zero", "ema_decay": 0.0})
    cfg.model.pretrained = perturbed_weights(cfg, out_dir, f"{model}-{layout}")
    ref = Trainer(cfg, ctx=ParallelContext())
    ref_batch = next(iter(ref.data))[1]
    ref_loss = ref.loss(ref_batch, step=0)
    ref_loss.backward()

    cfg.parallel.tensor, cfg.parallel.sequence = tp, sp
    cfg.parallel.data = "fsdp" if layout == "fsdp" else "ddp"
    par = Trainer(cfg, ctx=init_parallel(tp, sp))
    batch = next(iter(par.data))[1]
    loss = par.loss(batch, step=0)
    loss.backward()
    sync_gradients(par.params, par.ctx)
    global_loss = par._mean_over_data(loss.detach())
    grads = to_dense(par.model, {n: p.grad for n, p in par.model.named_parameters() if p.grad is not None})
    ref_grads = {n: p.grad for n, p in ref.model.named_parameters() if p.grad is not None}
    result = {
        "loss": global_loss, "ref_loss": ref_loss.item(),
        "max_grad_err": max((grads[n] - g).abs().max().item() for n, g in ref_grads.items()),
        "max_grad": max(g.abs().max().item() for g in ref_grads.values()),
        "grad_names_match": sorted(grads) == sorted(ref_grads),
        "zero_grads": [n for n, g in ref_grads.items() if not g.abs().max() > 0],
        "local_batch": batch["video"].shape[0], "global_batch": ref_batch["video"].shape[0],
        "data_parallel": type(par.train_model).__name__,
    }
    if layout in ("tp", "sp"):
        result.update(layout_checks(cfg, ref.model, par))
    if layout in ("dp_zero", "fsdp"):  # the sharded AdamW step must land on the same weights
        ref.optimizer.step()
        par.optimizer.step()
        weights = to_dense(par.model, dict(par.model.named_parameters()))
        result["max_weight_err"] = max((weights[n] - p).abs().max().item() for n, p in ref.model.named_parameters())
    with open(os.path.join(out_dir, f"{model}-{layout}.rank{par.ctx.rank}.json"), "w") as f:
        json.dump(result, f)


def layout_checks(cfg, ref_model, par) -> dict:
    """The sharded model keeps the dense state-dict keys; to_dense gives back the dense weights and
    local_from_dense this rank's shards; SP refuses a backend without context-parallel support."""
    ref_state, state = ref_model.state_dict(), par.model.state_dict()
    dense = dense_state_dict(par.model)
    local = local_from_dense(par.model, dense)
    checks = {
        "state_keys_match": list(state) == list(ref_state),
        "dense_weight_err": max((dense[k] - v).abs().max().item() for k, v in ref_state.items()),
        "local_roundtrip_err": max((local[k] - v).abs().max().item() for k, v in state.items()),
    }
    if cfg.parallel.tensor > 1:
        checks["indivisible_heads_error"] = indivisible_heads_error(cfg, par)
    if cfg.parallel.sequence > 1:
        checks["temporal_attention"] = sorted({type(b.attn_temp).__name__ for b in par.model.blocks})
        checks["sp_refusals"] = sp_refusals(cfg, par)
    return checks


def indivisible_heads_error(cfg, par):
    """The message of applying TP to a one-head model (None if it was accepted)."""
    from kinema.train.components import build_model

    model = build_model(dataclasses.replace(cfg.model, pretrained=None, kwargs={**cfg.model.kwargs, "num_heads": 1}))
    try:
        apply_tensor_parallel(model, par.ctx.tp_group)
    except ValueError as err:
        return str(err)
    return None


def sp_refusals(cfg, par) -> dict:
    """SP with a backend that lacks context-parallel support: switching a sequence-parallel model to it,
    and applying SP to a model using it. Messages are None where nothing was refused."""
    from kinema.train.components import build_model

    name = "no-context-parallel"
    registry = get_registry("attention_backend")
    if name not in registry:  # one registration per process; the worker runs several cases
        registry.add(name, AttentionBackend(name, math_attention, supports_context_parallel=False))
    out = {"switch": None, "apply": None}
    try:
        par.model.use_attention_backend(name)
    except KinemaError as err:
        out["switch"] = str(err)
    out["switch_left_model_unchanged"] = par.model.config.attention == "sdpa" and all(
        m.backend == "sdpa" for m in par.model.modules() if isinstance(m, ResolvedBackendMixin))
    model = build_model(cfg.model)
    model.use_attention_backend(name)  # fine on one device
    try:
        apply_sequence_parallel(model, par.ctx.cp_group)
    except KinemaError as err:
        out["apply"] = str(err)
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    out = sys.argv[1]
    for case in sys.argv[2:]:
        model, layout = case.split(":")
        run_case(out, model, layout)
    torch.distributed.destroy_process_group()
