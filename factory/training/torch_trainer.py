"""The one training loop for every torch model (``conf/trainer/default.yaml``).

Models are plain ``nn.Module`` s that map a batch to logits; this loop owns everything else:
AdamW, the configured scheduler, class- and sample-weighted cross-entropy (the adapter's
per-sample weights already carry the class weights), gradient clipping, early stopping on a
validation metric with best-checkpoint restore, mixed precision and device placement when a
GPU is present, deterministic seeding, a progress bar, and a per-epoch history.

Inputs are the adapters' lazy inputs: anything with ``len()``, ``y``, ``weight`` and
``batch(positions) -> np.ndarray`` (a tabular input is wrapped the same way).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from tqdm.auto import tqdm

from factory.adapters.base import batches, gather
from factory.errors import FactoryError
from factory.threads import resolve_threads

log = logging.getLogger(__name__)
MONITORS = {"val_loss": "min", "val_f1_macro": "max", "val_accuracy": "max"}


def resolve_device(device: str = "auto") -> torch.device:
    """``auto``: cuda if available, else mps, else cpu; otherwise the named device."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise FactoryError(f"`trainer.device={device}` is not a torch device: {exc}") from exc


class TorchTrainer:
    """Shared loop (see module docstring).

    Parameters
    ----------
    max_epochs: upper bound on epochs (early stopping usually ends sooner); each torch model's
        YAML sets its own default as ``trainer.max_epochs``.
    scheduler: a ``_partial_`` LR scheduler taking the optimizer (stepped once per epoch;
        ``ReduceLROnPlateau`` gets the monitored value), or None.
    monitor: ``val_loss`` (weighted cross-entropy), ``val_f1_macro`` or ``val_accuracy``.
    patience: epochs without improvement before stopping; ``min_delta`` the improvement.
    grad_clip: max global gradient norm (None: no clipping).
    device: ``auto`` | ``cpu`` | ``cuda`` | ``mps``; ``amp``: mixed precision on CUDA.
    progress: show a progress bar per epoch; ``eval_batch_size`` for validation/prediction.
    num_threads: CPU threads for torch (-1: the cores this process may use).
    """

    def __init__(self, max_epochs: int = 6, scheduler: Callable | None = None,
                 monitor: str = "val_loss", patience: int = 3, min_delta: float = 1e-4,
                 grad_clip: float | None = 1.0,
                 device: str = "auto", amp: bool = True, progress: bool = True,
                 eval_batch_size: int = 1024, num_threads: int | None = -1) -> None:
        if monitor not in MONITORS:
            raise FactoryError(f"`trainer.monitor` must be one of {sorted(MONITORS)}, "
                               f"got {monitor!r}")
        if patience < 1:
            raise FactoryError(f"`trainer.patience` must be >= 1, got {patience}")
        if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
            raise FactoryError(f"`trainer.max_epochs` must be an int >= 1, got {max_epochs!r} "
                               f"(try `trainer.max_epochs=1` for a quick run)")
        self.max_epochs = max_epochs
        self.scheduler = scheduler
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.grad_clip = grad_clip
        self.device = device
        self.amp = amp
        self.progress = progress
        self.eval_batch_size = eval_batch_size
        self.num_threads = num_threads

    def get_params(self, deep: bool = False) -> dict:
        return {k: getattr(self, k) for k in ("max_epochs", "scheduler", "monitor", "patience",
                                              "min_delta", "grad_clip", "device", "amp",
                                              "progress", "eval_batch_size", "num_threads")}

    def _autocast(self, device: torch.device):
        enabled = self.amp and device.type == "cuda"
        dtype = torch.bfloat16 if enabled and torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled)

    @torch.no_grad()
    def predict_logits(self, module: torch.nn.Module, x) -> np.ndarray:
        """Logits for every sample of ``x`` (eval mode, batched)."""
        device = next(module.parameters()).device
        module.eval()
        out = []
        for pos in batches(x, self.eval_batch_size):
            xb = torch.from_numpy(gather(x, pos)).to(device)
            with self._autocast(device):
                out.append(module(xb).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 3), np.float32)

    def evaluate(self, module: torch.nn.Module, x) -> dict:
        logits = self.predict_logits(module, x)
        y = torch.from_numpy(np.asarray(x.y, np.int64))
        w = torch.from_numpy(np.asarray(x.weight, np.float64)).float()
        ce = F.cross_entropy(torch.from_numpy(logits), y, reduction="none")
        pred = logits.argmax(axis=1)
        return {"val_loss": float((ce * w).sum() / w.sum().clamp_min(1e-12)),
                "val_f1_macro": float(f1_score(x.y, pred, average="macro", labels=[0, 1, 2],
                                               zero_division=0)),
                "val_accuracy": float((pred == x.y).mean())}

    def fit(self, module: torch.nn.Module, train, val, *, batch_size: int, lr: float,
            weight_decay: float, seed: int) -> list[dict]:
        """Train ``module`` in place (ending on its best epoch); return the epoch history."""
        if len(train) == 0 or len(val) == 0:
            raise FactoryError(f"torch training needs train and val samples, got "
                               f"{len(train)} / {len(val)} (check adapter.seq_len / data size)")
        device = resolve_device(self.device)
        torch.set_num_threads(resolve_threads(self.num_threads))
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        module.to(device)
        opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
        sched = self.scheduler(opt) if self.scheduler is not None else None
        plateau = isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
        fp16 = self.amp and device.type == "cuda" and not torch.cuda.is_bf16_supported()
        scaler = torch.amp.GradScaler("cuda", enabled=fp16)
        y_all = torch.from_numpy(np.asarray(train.y, np.int64))
        w_all = torch.from_numpy(np.asarray(train.weight, np.float32))
        sign = 1.0 if MONITORS[self.monitor] == "min" else -1.0
        best, best_state, stale, history = np.inf, None, 0, []
        bar = tqdm(range(self.max_epochs), desc=type(module).__name__, unit="epoch",
                   disable=not self.progress, leave=False)
        for epoch in bar:
            t0, total, seen = time.perf_counter(), 0.0, 0
            module.train()
            for pos in batches(train, batch_size, rng.permutation(len(train))):
                xb = torch.from_numpy(gather(train, pos)).to(device, non_blocking=True)
                yb, wb = y_all[pos].to(device), w_all[pos].to(device)
                with self._autocast(device):
                    logits = module(xb)
                ce = F.cross_entropy(logits.float(), yb, reduction="none")
                loss = (ce * wb).sum() / wb.sum().clamp_min(1e-12)
                if not torch.isfinite(loss):
                    raise FactoryError(f"{type(module).__name__}: non-finite loss at epoch "
                                       f"{epoch + 1}; lower model.lr or raise trainer.grad_clip")
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if self.grad_clip is not None:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(module.parameters(), self.grad_clip)
                scaler.step(opt)
                scaler.update()
                total, seen = total + loss.item() * len(pos), seen + len(pos)
            metrics = self.evaluate(module, val)
            value = metrics[self.monitor]
            lr_now = opt.param_groups[0]["lr"]
            if sched is not None:
                sched.step(value) if plateau else sched.step()
            improved = sign * value < best - self.min_delta
            if improved:
                best, stale = sign * value, 0
                best_state = copy.deepcopy(module.state_dict())
            else:
                stale += 1
            history.append({"epoch": epoch + 1, "train_loss": total / max(seen, 1), **metrics,
                            "lr": lr_now, "seconds": time.perf_counter() - t0,
                            "best": bool(improved)})
            bar.set_postfix(loss=f"{total / max(seen, 1):.4f}",
                            **{self.monitor: f"{value:.4f}"})
            log.info("epoch %d/%d train_loss=%.4f val_loss=%.4f val_f1=%.4f (%.1fs)%s",
                     epoch + 1, self.max_epochs, history[-1]["train_loss"], metrics["val_loss"],
                     metrics["val_f1_macro"], history[-1]["seconds"], " *" if improved else "")
            if stale >= self.patience:
                log.info("early stop after epoch %d (best %s=%.4f)", epoch + 1, self.monitor,
                         sign * best)
                break
        if best_state is not None:
            module.load_state_dict(best_state)
        module.eval()
        return history
