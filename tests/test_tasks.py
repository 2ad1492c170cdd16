"""The training stages: what trains in stage 2, frozen BN statistics, optimisers, checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")

import lightning as L  # noqa: E402

from ornet.config.schema import RunConfig, StageConfig, to_dict  # noqa: E402
from ornet.data.datamodule import WSOLDataModule  # noqa: E402
from ornet.errors import ConfigError  # noqa: E402
from ornet.methods.base import build_optimizer, build_scheduler  # noqa: E402
from ornet.training.pipeline import STAGES, build_task  # noqa: E402


def tiny_config(root: Path, **stage_overrides) -> RunConfig:
    cfg = RunConfig()
    cfg.data.root = str(root)
    cfg.data.resize, cfg.data.crop = 40, 32
    cfg.data.batch_size, cfg.data.eval_batch_size, cfg.data.num_workers = 4, 8, 0
    cfg.data.val_per_class = 1
    cfg.model.backbone, cfg.model.evaluator, cfg.model.generator_width = "resnet18", "resnet18", 8
    cfg.trainer.accelerator, cfg.trainer.devices, cfg.trainer.progress = "cpu", 1, False
    cfg.trainer.snapshot_images = 0
    for k, v in stage_overrides.items():
        setattr(cfg.refine, k, v)
    return cfg


def _fit_one_step(task, dm, callbacks=()):
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=1, limit_val_batches=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=list(callbacks))
    trainer.fit(task, datamodule=dm)
    return trainer


class GradRecorder(L.Callback):
    def __init__(self):
        self.with_grad: set[str] = set()

    def on_after_backward(self, trainer, module):
        self.with_grad = {n for n, p in module.named_parameters() if p.grad is not None}


@pytest.fixture
def datamodule(cub_tree):
    cfg = tiny_config(cub_tree)
    return cfg, WSOLDataModule(cfg.data)


def test_stage2_trains_exactly_the_refined_parameters(datamodule):
    cfg, dm = datamodule
    task = build_task(cfg, "refine", dm.num_classes, dm.classes)
    refine_ids = {id(p) for p in task.model.generator.refine_parameters()}
    names = {n for n, p in task.named_parameters() if id(p) in refine_ids}
    assert names and all(n.startswith(("model.generator.up2", "model.generator.up3", "model.generator.out_"))
                         for n in names)
    before = {n: p.detach().clone() for n, p in task.named_parameters()}
    rec = GradRecorder()
    _fit_one_step(task, dm, [rec])
    assert rec.with_grad == names  # exactly METHOD.md's stage-2 parameters receive gradients
    after = dict(task.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n].detach())}
    assert changed and changed <= names
    assert not any(after[n].requires_grad for n in before if n not in names)


def test_stage2_decoder_scope_trains_every_up_block(datamodule):
    cfg, dm = datamodule
    cfg.method.refine_scope = "decoder"
    task = build_task(cfg, "refine", dm.num_classes, dm.classes)
    names = {n for n, p in task.named_parameters() if p.requires_grad}
    assert any(n.startswith("model.generator.up1.") for n in names)
    assert all(n.startswith(("model.generator.up1", "model.generator.up2", "model.generator.up3",
                             "model.generator.out_")) for n in names)
    rec = GradRecorder()
    _fit_one_step(task, dm, [rec])
    assert rec.with_grad == names
    assert task.model.generator.up1.training and not task.model.generator.down1.training
    assert sum(len(ps) for ps, _ in task.param_groups()) == len(names)


@pytest.mark.parametrize("weight", [0.0, 2.5])
def test_stage2_background_loss_is_added_with_its_weight(datamodule, monkeypatch, weight):
    from ornet.methods.ornet.losses import background_loss

    cfg, dm = datamodule
    cfg.method.background_weight = weight
    task = build_task(cfg, "refine", dm.num_classes, dm.classes)
    task.eval()  # deterministic: BN running statistics, no erasing
    seen = {}
    monkeypatch.setattr(task, "log_common", lambda split, loss, logits, labels, extra: seen.update(loss=loss, **extra))
    batch = next(iter(dm.loader("val")))
    loss = task._step(batch, "train")
    m = cfg.method
    base = seen["loss_eval"] + m.area_weight * seen["loss_area"] + m.entropy_weight * seen["loss_entropy"]
    if weight == 0:
        assert "loss_background" not in seen
        assert float(loss) == pytest.approx(float(base), rel=1e-6)
        return
    with torch.no_grad():
        p_a = task.model.maps(batch.images).p_a
        expected = background_loss(task.model.evaluate_masked(batch.images, 1 - p_a, m.mask_upsample), batch.labels)
    assert float(seen["loss_background"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(loss) == pytest.approx(float(base + weight * expected), rel=1e-5)
    loss.backward()  # through the complement: the refined generator layers get its gradient
    assert task.model.generator.out_conv.weight.grad is not None


def test_stage2_head_lr_mult_scales_only_the_output_conv_and_its_bn(datamodule):
    cfg, dm = datamodule
    cfg.refine.lr, cfg.refine.head_lr_mult = 1e-3, 10.0
    task = build_task(cfg, "refine", dm.num_classes, dm.classes)
    groups = task.param_groups()
    g = task.model.generator
    head = {id(p) for p in [*g.out_conv.parameters(), *g.out_bn.parameters()]}
    assert [m for _, m in groups] == [1.0, 10.0]
    assert {id(p) for p in groups[1][0]} == head
    assert not head & {id(p) for p in groups[0][0]}
    # together, exactly the refined parameters
    assert {id(p) for ps, _ in groups for p in ps} == {id(p) for p in g.refine_parameters()}
    opt = build_optimizer(cfg.refine, groups)
    assert [grp["lr"] for grp in opt.param_groups] == pytest.approx([1e-3, 1e-2])


def test_stage2_frozen_batchnorm_statistics_do_not_drift(datamodule):
    cfg, dm = datamodule
    task = build_task(cfg, "refine", dm.num_classes, dm.classes)
    refined = {id(m) for mod in task.model.generator.refine_modules() for m in mod.modules()}
    frozen_bn = {n: (m.running_mean.clone(), m.running_var.clone())
                 for n, m in task.named_modules()
                 if isinstance(m, torch.nn.BatchNorm2d) and id(m) not in refined}
    refined_bn = {n: m.running_mean.clone() for n, m in task.named_modules()
                  if isinstance(m, torch.nn.BatchNorm2d) and id(m) in refined}
    assert frozen_bn and refined_bn

    class ModeCheck(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            assert not module.model.stem.training and not module.model.evaluator.training
            assert not module.model.generator.down1.training and not module.model.generator.up1.training
            assert all(m.training for m in module.model.generator.refine_modules())

    _fit_one_step(task, dm, [ModeCheck()])
    modules = dict(task.named_modules())
    for n, (mean, var) in frozen_bn.items():
        assert torch.equal(modules[n].running_mean, mean), n
        assert torch.equal(modules[n].running_var, var), n
    assert any(not torch.equal(modules[n].running_mean, mean) for n, mean in refined_bn.items())


def test_train_mode_switch_keeps_frozen_parts_in_eval(datamodule):
    cfg, dm = datamodule
    task = build_task(cfg, "refine", dm.num_classes, dm.classes)
    task.train()
    assert task.training and task.eraser.training
    assert not task.model.evaluator.training and not task.model.stem.training
    task.eval()
    assert not any(m.training for m in task.modules())


def test_stage1_freezes_the_evaluator_only(datamodule):
    cfg, dm = datamodule
    task = build_task(cfg, "coarse", dm.num_classes, dm.classes)
    rec = GradRecorder()
    _fit_one_step(task, dm, [rec])
    assert rec.with_grad and not any(n.startswith("model.evaluator.") for n in rec.with_grad)
    assert any(n.startswith("model.generator.") for n in rec.with_grad)
    assert any(n.startswith("model.stem.") for n in rec.with_grad)
    assert any(n.startswith("model.rest_head.") for n in rec.with_grad)


@pytest.mark.parametrize("stage", ["evaluator", "coarse", "refine", "cam"])
def test_every_stage_logs_loss_and_accuracy(datamodule, stage):
    cfg, dm = datamodule
    task = build_task(cfg, stage, dm.num_classes, dm.classes)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=1, limit_val_batches=1,
                        num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1)
    trainer.fit(task, datamodule=dm)
    logged = trainer.callback_metrics
    for key in ("train/loss", "train/acc", "val/loss", "val/acc"):
        assert key in logged, (stage, sorted(logged))
    if stage != "evaluator":  # stages with maps validate localization on the held-out split
        for key in ("val/gt_known_loc", "val/max_box_acc_v2"):
            assert 0.0 <= float(logged[key]) <= 100.0


def test_stage_registry_lists_known_stages():
    from ornet.errors import OrnetError

    with pytest.raises(OrnetError, match="evaluator"):
        STAGES.get("nope")


def test_hyper_parameters_are_plain_and_checkpoint_loads_weights_only(datamodule, tmp_path):
    cfg, dm = datamodule
    task = build_task(cfg, "evaluator", dm.num_classes, dm.classes)
    trainer = _fit_one_step(task, dm)
    path = tmp_path / "e.ckpt"
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["cfg"] == to_dict(cfg)
    assert ckpt["hyper_parameters"]["classes"] == dm.classes


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("scheduler", ["cosine", "cosine_step", "none"])
def test_optimisers_and_schedules(optimizer, scheduler):
    net = torch.nn.Linear(3, 2)
    head = torch.nn.Linear(2, 2)
    st = StageConfig(epochs=4, lr=0.1, optimizer=optimizer, scheduler=scheduler, head_lr_mult=10.0)
    opt = build_optimizer(st, [(list(net.parameters()), 1.0), (list(head.parameters()), st.head_lr_mult)])
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 1.0])
    sched = build_scheduler(st, opt, total_steps=20)
    if scheduler == "none":
        assert sched is None
        return
    assert sched["interval"] == ("step" if scheduler == "cosine_step" else "epoch")
    for _ in range(sched["scheduler"].T_max):
        opt.step()
        sched["scheduler"].step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)


def test_a_stage_without_trainable_parameters_is_an_error():
    p = torch.nn.Parameter(torch.zeros(1), requires_grad=False)
    with pytest.raises(ConfigError, match="no trainable"):
        build_optimizer(StageConfig(), [([p], 1.0)])
