"""The training stacks users train with: a few steps of ReWA through each, on CPU.

Each test skips with the reason when its package is not installed (the ``stacks`` extra
installs them; timm is not in it: its torchvision dependency replaces torch 2.13's CPU build).
"""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch

import rewa
from rewa.param_groups import split_parameters
from rewa.recipe import GRAD_CLIP_NORM

warnings.simplefilter("ignore", rewa.SparsityConfigWarning)


def test_lightning_configure_optimizers():
    lightning = pytest.importorskip("lightning", reason="PyTorch Lightning is not installed (pip install rewa[stacks])")

    class Module(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(8, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x), y)

        def configure_optimizers(self):
            opt = rewa.ReWA(rewa.param_groups(self.net), lr=0.05, K=3, M=2, momentum=0.9)
            return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=2)}

    torch.manual_seed(0)
    x = torch.randn(64, 8)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x[:, :1] * 2), batch_size=16)
    module = Module()
    before = module.net.weight.detach().clone()
    trainer = lightning.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, data)
    opt = trainer.optimizers[0]
    assert isinstance(opt, rewa.ReWA)
    assert opt.state[module.net.weight]["step"] == 8
    assert not torch.equal(module.net.weight, before)
    # the weights are the power map of the optimizer's latent
    torch.testing.assert_close(
        module.net.weight.detach(), rewa.functional.power_map(opt.state[module.net.weight]["y"], 3)
    )


def test_hugging_face_trainer_optimizer_cls_and_kwargs(tmp_path):
    transformers = pytest.importorskip(
        "transformers", reason="transformers is not installed (pip install rewa[stacks])"
    )
    pytest.importorskip("accelerate", reason="accelerate (the Trainer needs it) is not installed")

    class Regressor(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(8, 1)

        def forward(self, x, labels=None):
            out = self.net(x)
            return {"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}

    class Data(torch.utils.data.Dataset):
        def __init__(self):
            torch.manual_seed(0)
            self.x = torch.randn(32, 8)

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return {"x": self.x[i], "labels": self.x[i, :1] * 2}

    torch.manual_seed(0)
    model = Regressor()
    before = model.net.weight.detach().clone()
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=4,
        per_device_train_batch_size=8,
        learning_rate=0.05,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        logging_strategy="no",
        lr_scheduler_type="constant",
    )
    # The Trainer builds the optimizer itself from the class and kwargs (FSDP-safe: after wrapping).
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=Data(),
        optimizer_cls_and_kwargs=(rewa.ReWA, dict(lr=0.05, K=3, M=2, momentum=0.9)),
    )
    trainer.train()
    assert isinstance(
        trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer, rewa.ReWA
    )
    assert not torch.equal(model.net.weight, before)


# -- the recipe in each stack: a sparse network -----------------------------------------------
# A problem where 18 of 20 input features are noise: 640 samples, batches of 32 (20 steps per
# epoch), 30 epochs. The recipe's decay drives the unused weights towards 0 (measured in the plain
# loop below: 30.6x compression at |w| <= 1e-2, 98% training accuracy). On this problem the
# result depends on the data order: over 12 shuffles, 5 ended under 90% training accuracy
# (weights of |x| > 1000 on the two useful features). So each stack is checked to train exactly
# as the plain loop does on the batches it drew, and the plain loop to give a sparse network.
EPOCHS, BATCH, THRESHOLD = 30, 32, 1e-2


def _problem():
    x = torch.randn(640, 20, generator=torch.Generator().manual_seed(0))
    return x, (x[:, 0] - x[:, 1] > 0).long()


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))


def _assert_sparse_and_accurate(net, optimizer, x, y):
    sparse, dense = optimizer.param_groups
    assert sparse["K"] == 9 and sparse["weight_decay"] > 0 and all(p.ndim == 2 for p in sparse["params"])
    assert dense["K"] == 1 and dense["weight_decay"] == 0 and all(p.ndim == 1 for p in dense["params"])
    net = copy.deepcopy(net).cpu()
    assert rewa.sparsity_report(net, THRESHOLD).compression >= 8  # measured: 30.6x
    with torch.no_grad():
        for _, p in split_parameters(net)[0]:
            p.mul_(p.abs() > THRESHOLD)
        accuracy = (net(x).argmax(1) == y).float().mean().item()
    assert accuracy >= 0.95  # the pruned network still solves the problem


def _replay(batches, *, scheduler_per="epoch", clip_in_group_order=False):
    """The plain loop of the recipe over ``batches`` (the batches a stack drew, in order).
    ``clip_in_group_order``: the norm summed over the optimizer's groups, as Lightning does (the
    same clip up to rounding, and rounding grows over 600 steps)."""
    model = _net()
    r = rewa.recipe(model, epochs=EPOCHS, steps_per_epoch=len(batches) // EPOCHS, scheduler_per=scheduler_per)
    clipped = [p for g in r.optimizer.param_groups for p in g["params"]] if clip_in_group_order else model.parameters()
    clipped = list(clipped)
    for i, (xb, yb) in enumerate(batches):
        r.optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
        torch.nn.utils.clip_grad_norm_(clipped, r.clip_grad_norm)
        r.optimizer.step()
        if scheduler_per == "step" or (i + 1) % (len(batches) // EPOCHS) == 0:
            r.scheduler.step()
    return model


def _assert_same_weights(trained, replayed):
    for (name, a), b in zip(trained.named_parameters(), replayed.parameters()):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-6, msg=name)


def test_recipe_in_a_plain_torch_loop_gives_a_sparse_network():
    x, y = _problem()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    model = _net()
    r = rewa.recipe(model, epochs=EPOCHS, steps_per_epoch=len(loader))
    for _ in range(EPOCHS):
        for xb, yb in loader:
            r.optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), r.clip_grad_norm)
            r.optimizer.step()
        r.scheduler.step()
    _assert_sparse_and_accurate(model, r.optimizer, x, y)


def test_recipe_in_lightning_trains_as_the_plain_loop():
    lightning = pytest.importorskip("lightning", reason="PyTorch Lightning is not installed (pip install rewa[stacks])")

    class Module(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _net()

        def training_step(self, batch, batch_idx):
            x, y = batch
            drawn.append((x.clone(), y.clone()))
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            steps = self.trainer.estimated_stepping_batches // self.trainer.max_epochs
            self.recipe = rewa.recipe(self.net, epochs=self.trainer.max_epochs, steps_per_epoch=steps)
            return self.recipe.lightning()

    drawn: list = []
    x, y = _problem()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH, shuffle=True)
    module = Module()
    trainer = lightning.Trainer(
        max_epochs=EPOCHS,
        gradient_clip_val=GRAD_CLIP_NORM,
        gradient_clip_algorithm="norm",
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    torch.manual_seed(0)
    trainer.fit(module, loader)
    (config,) = trainer.lr_scheduler_configs
    assert config.interval == "epoch" and config.scheduler is module.recipe.scheduler
    assert trainer.optimizers[0] is module.recipe.optimizer
    assert module.recipe.optimizer.state[module.net[0].weight]["step"] == EPOCHS * len(loader)
    _assert_same_weights(module.net, _replay(drawn, clip_in_group_order=True))


def test_recipe_in_the_hugging_face_trainer_trains_as_the_plain_loop(tmp_path):
    transformers = pytest.importorskip(
        "transformers", reason="transformers is not installed (pip install rewa[stacks])"
    )
    pytest.importorskip("accelerate", reason="accelerate (the Trainer needs it) is not installed")
    x, y = _problem()

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _net()

        def forward(self, x, labels=None):
            if self.training:
                drawn.append((x.clone(), labels.clone()))
            logits = self.net(x)
            return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return {"x": x[i], "labels": y[i]}

    drawn: list = []
    model = Classifier()
    # the Trainer steps the scheduler after every optimizer step: the recipe's per-step cosine
    r = rewa.recipe(model, epochs=EPOCHS, steps_per_epoch=math.ceil(len(x) / BATCH), scheduler_per="step")
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        num_train_epochs=EPOCHS,
        per_device_train_batch_size=BATCH,
        max_grad_norm=r.clip_grad_norm,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        seed=0,
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=Data(), optimizers=(r.optimizer, r.scheduler))
    trainer.train()
    assert r.optimizer.state[model.net[0].weight]["step"] == EPOCHS * math.ceil(len(x) / BATCH)
    assert r.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-3)  # the cosine ran to its end
    _assert_same_weights(model.net, _replay(drawn, scheduler_per="step"))
