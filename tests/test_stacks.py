"""The training stacks users train with: a few steps of ReWA through each, on CPU.

Each test skips with the reason when its package is not installed (the ``stacks`` extra
installs them; timm is not in it: its torchvision dependency replaces torch 2.13's CPU build).
"""

from __future__ import annotations

import warnings

import pytest
import torch

import rewa

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
