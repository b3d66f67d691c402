"""Write a JSON log with mmcv 1.x's OWN runner (run as a script, mmcv 1.7.0 on sys.path).

    python tests/mmcv_runner_log.py REFERENCE_DIR WORK_DIR [--epochs 3] [--samples 30]
        [--batch 2] [--interval 4] [--lr 0.075]

An ``mmcv.runner.EpochBasedRunner`` trains a tiny linear model with the hooks MMAction2 0.x's
``train_model`` registers for the ACRN config: ``lr_config`` (CosineAnnealing, by_epoch=False,
min_lr=0, linear warm-up by epoch: 2 epochs from 0.1x), ``optimizer_config`` (grad_clip
max_norm=40, norm_type=2), ``log_config`` (TextLoggerHook) and mmcv's ``EvalHook`` after every
epoch (``evaluation = dict(interval=1)``, ``save_best='auto'`` as MMAction2 0.x sets it) on a
toy dataset whose ``evaluate`` returns ``mAP@0.5IOU``. The train step reports the loss and the
six recall/precision keys of MMAction2's ``BBoxHeadAVA``. Nothing here writes the log: mmcv's
TextLoggerHook writes ``WORK_DIR/<timestamp>.log.json`` (and the text ``.log``, through
``mmcv.utils.get_logger``). Prints the path of the JSON log.
"""

from __future__ import annotations

import argparse
import sys


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("reference_dir")
    ap.add_argument("work_dir")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--interval", type=int, default=4)
    ap.add_argument("--lr", type=float, default=0.075)
    args = ap.parse_args()
    sys.path.insert(0, args.reference_dir)

    import os
    import time

    import torch
    from mmcv.runner import EpochBasedRunner, EvalHook
    from mmcv.utils import get_logger
    from torch import nn
    from torch.utils.data import DataLoader, Dataset

    torch.manual_seed(0)

    class Toy(Dataset):
        def __init__(self, n):
            self.x = torch.randn(n, 6)
            self.y = self.x @ torch.randn(6, 3)

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return {"x": self.x[i], "y": self.y[i]}

        def evaluate(self, results, logger=None):
            err = float(torch.cat(results).pow(2).mean())
            return {"mAP@0.5IOU": 1.0 / (1.0 + err)}

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, x, y, return_loss=True):
            return self.fc(x) - y

        def train_step(self, data, optimizer):
            err = self(**data)
            loss = err.pow(2).mean()
            hit = (err.abs() < 0.5).float()
            log_vars = {"loss_action_cls": float(loss)}
            for k in ("0.5", "top3", "top5"):
                key = f"thr={k}" if k == "0.5" else k
                log_vars[f"recall@{key}"] = float(hit.mean())
                log_vars[f"prec@{key}"] = float(hit[:, :2].mean())
            log_vars["loss"] = float(loss)
            return {"loss": loss, "log_vars": log_vars, "num_samples": len(data["x"])}

    def test_fn(model, loader):
        model.eval()
        with torch.no_grad():
            return [model(**b) for b in loader]

    os.makedirs(args.work_dir, exist_ok=True)
    timestamp = time.strftime("%Y%m%d_%H%M%S", time.localtime())
    logger = get_logger("mmaction", log_file=os.path.join(args.work_dir, f"{timestamp}.log"))
    model = Tiny()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-5)
    meta = {"env_info": "tiny mmcv runner (tests/mmcv_runner_log.py)", "seed": 0}
    meta["config_name"] = "tiny_acrn_schedule.py"
    runner = EpochBasedRunner(
        model,
        optimizer=optimizer,
        work_dir=args.work_dir,
        logger=logger,
        meta=meta,
        max_epochs=args.epochs,
    )
    runner.timestamp = timestamp
    runner.register_training_hooks(
        lr_config=dict(
            policy="CosineAnnealing",
            by_epoch=False,
            min_lr=0,
            warmup="linear",
            warmup_by_epoch=True,
            warmup_iters=2,
            warmup_ratio=0.1,
        ),
        optimizer_config=dict(grad_clip=dict(max_norm=40, norm_type=2)),
        checkpoint_config=None,
        log_config=dict(interval=args.interval, hooks=[dict(type="TextLoggerHook")]),
    )
    train = DataLoader(Toy(args.samples), batch_size=args.batch, shuffle=True)
    val = DataLoader(Toy(7), batch_size=1)
    runner.register_hook(
        EvalHook(val, interval=1, save_best="auto", test_fn=test_fn), priority="LOW"
    )
    runner.run([train], [("train", 1)])
    print(os.path.join(args.work_dir, f"{timestamp}.log.json"))


if __name__ == "__main__":
    main()
