"""The trainer, its hooks, the schedule and the seeds, on tiny stand-in models (CPU, exact values)."""

import io
import math
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tailteacher.engine import (
    DistInfo,
    EMAHook,
    EvalHook,
    HookBase,
    LoaderSource,
    Trainer,
    WarmupCosine,
    derive_seed,
    dist_info_from_env,
    get_rng_state,
    set_rng_state,
    warmup_cosine_scheduler,
)

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
import engine_toy

# -- schedule -------------------------------------------------------------------------------


def _lrs(steps, **kwargs):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=4e-5)
    sched = warmup_cosine_scheduler(opt, **kwargs)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_then_cosine_from_4e5_at_given_steps():
    lrs = _lrs(111, warmup_steps=10, max_steps=110, warmup_factor=0.001)
    assert lrs[0] == pytest.approx(4e-8, rel=1e-12)  # 4e-5 · 0.001
    assert lrs[5] == pytest.approx(2.002e-5, rel=1e-12)  # 4e-5 · (0.001 + 0.999 · 5/10)
    assert lrs[10] == pytest.approx(4e-5, rel=1e-12)  # the peak, after warm-up
    assert lrs[35] == pytest.approx(2e-5 * (1 + math.sqrt(0.5)), rel=1e-12)  # a quarter of the cosine
    assert lrs[60] == pytest.approx(2e-5, rel=1e-12)  # half-way
    assert lrs[110] == 0.0  # the end
    assert lrs[:11] == sorted(lrs[:11])  # rises through the warm-up
    assert lrs[10:] == sorted(lrs[10:], reverse=True)  # then only falls


def test_schedule_floor_and_no_warmup():
    f = WarmupCosine(warmup_steps=0, max_steps=100, min_factor=0.1)
    assert f(0) == 1.0 and f(100) == pytest.approx(0.1, rel=1e-12) and f(500) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="warmup_steps"):
        WarmupCosine(warmup_steps=11, max_steps=10)


def test_trainer_logs_the_rate_each_step_used():
    trainer, rec = engine_toy.sgd_trainer(batch_size=8, steps=6)
    trainer.scheduler = warmup_cosine_scheduler(trainer.optimizer, warmup_steps=2, max_steps=6)
    trainer.train()
    factor = WarmupCosine(2, 6)
    assert [m["lr"] for m in rec.metrics] == pytest.approx([0.05 * factor(s) for s in range(6)], rel=1e-12)


# -- EMA ------------------------------------------------------------------------------------


def _one_layer():
    model = nn.Sequential(nn.Linear(2, 1), nn.BatchNorm1d(1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 2.0]]))
        model[0].bias.fill_(0.5)
    return model


def test_ema_of_parameters_and_buffers_is_exact_and_copies_integer_buffers():
    model = _one_layer()
    hook = EMAHook(model, momentum=0.75)
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[3.0, -2.0]]))
        model[0].bias.fill_(1.5)
        model[1].running_mean.fill_(4.0)
        model[1].running_var.fill_(2.0)
        model[1].num_batches_tracked.fill_(8)
    hook.update()
    ema = hook.ema
    assert torch.equal(ema[0].weight, torch.tensor([[1.5, 1.0]]))  # 0.75·[1, 2] + 0.25·[3, −2]
    assert torch.equal(ema[0].bias, torch.tensor([0.75]))
    assert torch.equal(ema[1].running_mean, torch.tensor([1.0]))  # a float buffer is averaged
    assert torch.equal(ema[1].running_var, torch.tensor([1.25]))
    # an integer buffer is copied, not averaged (0.75·0 + 0.25·8 would be 2) and not skipped
    assert ema[1].num_batches_tracked.dtype == torch.int64 and int(ema[1].num_batches_tracked) == 8
    hook.update()
    assert torch.equal(ema[0].weight, torch.tensor([[1.875, 0.25]]))  # 0.75·[1.5, 1] + 0.25·[3, −2]
    assert torch.equal(model[0].weight, torch.tensor([[3.0, -2.0]]))  # the source is untouched
    assert not any(p.requires_grad for p in ema.parameters())


def test_ema_state_round_trips_through_weights_only_and_follows_a_target():
    model, target = _one_layer(), _one_layer()
    hook = EMAHook(model, momentum=0.5, target=target)
    assert hook.ema is target
    with torch.no_grad():
        model[0].weight.add_(2.0)
    hook.update()
    buffer = io.BytesIO()
    torch.save(hook.state_dict(), buffer)
    buffer.seek(0)
    fresh = EMAHook(_one_layer(), momentum=0.5)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(fresh.ema[0].weight, torch.tensor([[2.0, 3.0]])) and fresh.updates == 1
    with pytest.raises(ValueError, match="momentum"):
        EMAHook(model, momentum=1.5)


def test_ema_hook_updates_every_n_steps_in_training():
    trainer, _ = engine_toy.sgd_trainer(batch_size=8, steps=6)
    hook = EMAHook(trainer.model, momentum=0.0, every=2)  # momentum 0: the EMA is the last copy
    trainer.hooks.insert(0, hook)
    trainer.train()
    assert hook.updates == 3 and trainer.get_hook("EMAHook") is hook
    with pytest.raises(KeyError, match="no hook named 'EvalHook'"):
        trainer.get_hook("EvalHook")
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(hook.ema.state_dict()[key], value)


# -- the step -------------------------------------------------------------------------------


def _weights(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_gradient_accumulation_equals_the_bigger_batch():
    big, rec_big = engine_toy.sgd_trainer(batch_size=8, steps=10)
    big.train()
    acc, rec_acc = engine_toy.sgd_trainer(batch_size=4, accumulate=2, steps=10)
    acc.train()
    for key, value in _weights(big).items():
        torch.testing.assert_close(_weights(acc)[key], value, rtol=1e-6, atol=1e-6)
    losses = [m["loss_mse"] for m in rec_acc.metrics]
    assert losses == pytest.approx([m["loss_mse"] for m in rec_big.metrics], rel=1e-6)
    assert (acc.epoch, acc.batch_in_epoch) == (1, 4) and (big.epoch, big.batch_in_epoch) == (1, 2)


def test_same_seed_same_weights_other_seed_other_weights():
    runs = []
    for seed in (5, 5, 6):
        trainer, _ = engine_toy.sgd_trainer(batch_size=8, steps=10, seed=seed)
        trainer.train()
        runs.append(_weights(trainer))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_gradient_clipping_bounds_the_first_update():
    trainer, rec = engine_toy.sgd_trainer(batch_size=8, steps=1, grad_clip=0.01)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    delta = torch.cat(
        [(p.detach() - b).flatten() for p, b in zip(trainer.model.parameters(), before, strict=True)]
    )
    assert rec.metrics[0]["grad_norm"] > 0.01  # the norm before clipping is logged
    assert float(delta.norm()) == pytest.approx(0.05 * 0.01, rel=1e-4)  # lr · max_norm


def test_bf16_autocast_runs_on_cpu():
    trainer, rec = engine_toy.sgd_trainer(batch_size=8, steps=2, amp=True)
    trainer.train()
    assert all(math.isfinite(m["total_loss"]) for m in rec.metrics)


def test_losses_are_summed_for_backward_and_logged_apart():
    trainer, rec = engine_toy.sgd_trainer(batch_size=8, steps=2)
    trainer.step_fn = engine_toy.two_loss_step
    trainer.train()
    m = rec.metrics[0]
    assert set(m) >= {"loss_mse", "loss_l1", "total_loss", "lr", "data_time"}
    assert m["total_loss"] == pytest.approx(m["loss_mse"] + m["loss_l1"], rel=1e-6)


def test_a_non_finite_loss_stops_before_the_update():
    trainer, _ = engine_toy.sgd_trainer(batch_size=8, steps=3)
    before = _weights(trainer)
    trainer.step_fn = lambda model, batch: {"loss": model(batch[0]).sum() * float("nan")}
    with pytest.raises(FloatingPointError, match="not finite at step 0"):
        trainer.train()
    assert all(torch.equal(before[k], v) for k, v in _weights(trainer).items())
    assert not trainer.finished


def test_non_finite_steps_are_skipped_and_counted_up_to_the_limit():
    trainer, rec = engine_toy.sgd_trainer(batch_size=8, steps=6)
    trainer.max_nonfinite_in_a_row = 3
    good = trainer.step_fn
    calls = {"n": 0}

    def sometimes_nan(model, batch):
        calls["n"] += 1
        losses = good(model, batch)
        return {k: v * float("nan") for k, v in losses.items()} if calls["n"] in (2, 3) else losses

    trainer.step_fn = sometimes_nan
    trainer.train()
    assert trainer.finished and trainer.step == 6 and trainer.nonfinite_steps == 2
    assert [("nonfinite_skipped" in m) for m in rec.metrics] == [False, True, True, False, False, False]

    trainer, _ = engine_toy.sgd_trainer(batch_size=8, steps=6)
    trainer.max_nonfinite_in_a_row = 2
    before = _weights(trainer)
    trainer.step_fn = lambda model, batch: {"loss": model(batch[0]).sum() * float("nan")}
    with pytest.raises(FloatingPointError, match="2 step\\(s\\) in a row, the limit"):
        trainer.train()
    assert trainer.step == 1 and trainer.nonfinite_steps == 2  # the first was skipped, the second stopped it
    assert all(torch.equal(before[k], v) for k, v in _weights(trainer).items())  # no update from either


@pytest.mark.parametrize(
    ("losses", "match"),
    [({}, "no loss"), ({"loss": torch.ones(2)}, "not a scalar"), ({"loss": 1.0}, "not a scalar")],
)
def test_a_bad_step_fn_result_is_named(losses, match):
    trainer, _ = engine_toy.sgd_trainer(batch_size=8, steps=1)
    trainer.step_fn = lambda model, batch: losses
    with pytest.raises(ValueError, match=match):
        trainer.run_step()


def test_trainer_refuses_bad_arguments():
    model = engine_toy.mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    source = LoaderSource(engine_toy.regression_data(8), batch_size=4, dist=DistInfo())
    kwargs = dict(model=model, step_fn=engine_toy.mse_step, optimizer=opt, data=source, max_steps=1)
    with pytest.raises(ValueError, match="names must be unique"):
        Trainer(**kwargs, hooks=[HookBase(), HookBase()])
    with pytest.raises(ValueError, match="accumulate"):
        Trainer(**kwargs, accumulate=0)
    empty = LoaderSource(engine_toy.regression_data(3), batch_size=4, dist=DistInfo())
    trainer = Trainer(**{**kwargs, "data": empty})
    with pytest.raises(ValueError, match="no batch"):
        trainer.train()


def test_evaluation_does_not_move_the_training_random_streams():
    draws = []
    for with_eval in (False, True):
        trainer, _ = engine_toy.sgd_trainer(batch_size=8, steps=4)
        hook = EvalHook(lambda: {"x": float(torch.rand(()))}, every=1)
        if with_eval:
            trainer.hooks.insert(0, hook)
        trainer.train()
        draws.append((torch.rand(3), np.random.rand(), random.random()))  # noqa: NPY002
        if with_eval:
            assert [h["step"] for h in hook.history] == [1, 2, 3, 4]  # not repeated at the end
    assert torch.equal(draws[0][0], draws[1][0]) and draws[0][1:] == draws[1][1:]


def test_evaluation_only_at_the_end():
    trainer, _ = engine_toy.sgd_trainer(batch_size=8, steps=3)
    hook = EvalHook(lambda: {"x": 1.0}, every=None)
    trainer.hooks.insert(0, hook)
    trainer.train()
    assert hook.history == [{"step": 3, "x": 1.0}]


# -- data, seeds, environment ----------------------------------------------------------------


def test_loader_source_resumes_mid_epoch_and_shards_ranks():
    data = engine_toy.regression_data(20)
    whole = LoaderSource(data, batch_size=2, seed=1, dist=DistInfo())
    epoch = [b[0] for b in whole.batches(3, 0)]
    assert len(epoch) == len(whole) == 10
    later = [b[0] for b in whole.batches(3, 4)]
    assert all(torch.equal(a, b) for a, b in zip(later, epoch[4:], strict=True))
    assert not torch.equal(next(whole.batches(4, 0))[0], epoch[0])  # another epoch, another order
    ranks = [LoaderSource(data, batch_size=2, seed=1, dist=DistInfo(r, 2, r)) for r in (0, 1)]
    shards = [torch.cat([b[0] for b in s.batches(3, 0)]) for s in ranks]
    assert torch.equal(torch.cat(shards).sort(0).values, torch.cat(epoch).sort(0).values)


def test_rng_state_round_trips_through_weights_only():
    random.seed(1), np.random.seed(2), torch.manual_seed(3)  # noqa: NPY002
    random.gauss(0, 1), np.random.normal()  # noqa: NPY002 - cached gaussians are state too
    buffer = io.BytesIO()
    torch.save(get_rng_state(), buffer)
    expected = (random.random(), random.gauss(0, 1), np.random.normal(), torch.rand(4))  # noqa: NPY002
    buffer.seek(0)
    set_rng_state(torch.load(buffer, weights_only=True))
    got = (random.random(), random.gauss(0, 1), np.random.normal(), torch.rand(4))  # noqa: NPY002
    assert got[:3] == expected[:3] and torch.equal(got[3], expected[3])


def test_derived_seeds_do_not_collide_like_sums():
    assert derive_seed(1, 0) != derive_seed(0, 1)
    assert derive_seed(7, 3) == derive_seed(7, 3) < 2**31


def test_dist_info_from_torchrun_environment():
    assert dist_info_from_env({}) == DistInfo(0, 1, 0)
    info = dist_info_from_env({"RANK": "5", "WORLD_SIZE": "16", "LOCAL_RANK": "5"})
    assert info == DistInfo(5, 16, 5) and info.is_distributed and not info.is_main
    with pytest.raises(ValueError, match="RANK"):
        dist_info_from_env({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="WORLD_SIZE: expected an integer"):
        dist_info_from_env({"WORLD_SIZE": "two"})
