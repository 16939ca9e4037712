"""The layout of a training run directory, so train, resume, infer and people agree on it.

::

    RUN_DIR/
      config.json                   everything needed to repeat or resume the run
      metrics.jsonl                 one JSON object per epoch (epoch 0: before training)
      curves.png                    loss and validation PSNR per epoch
      epochs/epoch-003.npz          weights after epoch 3 (denoisekit.weights format)
      epochs/epoch-003.adam.npz     the optimiser state that goes with them
      best.npz                      the weights with the best validation PSNR

Every file is written under a temporary name and renamed into place. An epoch counts as
complete when its weights file exists; its optimiser state is written first. A new run that
stops before its first trained epoch is saved is removed again (``discard``): it holds
nothing a rerun would not make, and its name would refuse the corrected command.
"""

from __future__ import annotations

import json
import re
import time
from contextlib import contextmanager
from itertools import takewhile
from pathlib import Path
from typing import Any, Iterator

from denoisekit.errors import DenoiseKitError
from denoisekit.io.atomic import replacing

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CURVES = "curves.png"
BEST = "best.npz"
EPOCHS = "epochs"
_EPOCH_RE = re.compile(r"^epoch-(\d+)\.npz$")


def default_run_dir(model: str, backprop: str, root: str | Path = "runs") -> Path:
    """``runs/<YYYYmmdd-HHMMSS>-<model>-<backprop>``, never an existing directory."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{stamp}-{model}-{backprop}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def _write_atomic(path: Path, text: str) -> None:
    with replacing(path) as temp:
        temp.write_text(text)


class RunDir:
    """Reads and writes one run directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._made: list[Path] = []  # directories create() made, deepest first

    # creation ---------------------------------------------------------------------------
    def check_new(self) -> None:
        """Refuse a directory that already holds anything (callers check before costly work)."""
        if not self.path.exists() or (self.path.is_dir() and not any(self.path.iterdir())):
            return
        if not self.path.is_dir():  # --resume would fail on it: not a run
            raise DenoiseKitError(f"{self.path} is a file, not a run directory: choose another -o")
        if not (self.path / CONFIG).is_file():
            raise DenoiseKitError(f"{self.path} already exists and holds no training run (no {CONFIG}): "
                                  "choose another -o")
        raise DenoiseKitError(
            f"run directory {self.path} already exists; use --resume {self.path} to continue it "
            "or choose another -o"
        )

    def create(self, config: dict[str, Any]) -> None:
        """Start a new run."""
        self.check_new()
        self._made = list(takewhile(lambda p: not p.exists(), [self.path, *self.path.parents]))
        (self.path / EPOCHS).mkdir(parents=True, exist_ok=True)
        self.write_config(config)

    def discard(self) -> None:
        """Undo ``create`` of a run with no trained epoch. Only the files this layout names
        go, and only directories left empty: someone's file put there meanwhile stays."""
        files = [self.path / name for name in (CONFIG, METRICS, CURVES, BEST)]
        for path in files + sorted((self.path / EPOCHS).glob("epoch-*.npz")):
            path.unlink(missing_ok=True)
        for directory in [self.path / EPOCHS, *self._made]:
            try:
                directory.rmdir()
            except OSError:  # not empty (or gone): leave it, and its parents
                break

    @contextmanager
    def discarded_unless_trained(self, new: bool = True) -> Iterator[None]:
        """Discard a ``new`` run when the block fails or is interrupted before an epoch after
        epoch 0 (the untrained start) is complete; a run with a trained epoch stays resumable."""
        try:
            yield
        except BaseException:
            if new and not any(e > 0 for e in self.complete_epochs()):
                self.discard()
            raise

    def write_config(self, config: dict[str, Any]) -> None:
        _write_atomic(self.path / CONFIG, json.dumps(config, indent=2, default=str) + "\n")

    def read_config(self) -> dict[str, Any]:
        path = self.path / CONFIG
        if not self.path.exists():
            raise DenoiseKitError(f"{self.path} does not exist")
        if not path.is_file():
            raise DenoiseKitError(f"{self.path} is not a training run (no {CONFIG})")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DenoiseKitError(f"{path} is not valid JSON ({exc})") from None

    # epochs -----------------------------------------------------------------------------
    def epoch_weights(self, epoch: int) -> Path:
        return self.path / EPOCHS / f"epoch-{epoch:03d}.npz"

    def epoch_optimizer(self, epoch: int) -> Path:
        return self.path / EPOCHS / f"epoch-{epoch:03d}.adam.npz"

    def complete_epochs(self) -> list[int]:
        """Epochs whose weights and optimiser state are both on disk, ascending."""
        found = []
        for p in (self.path / EPOCHS).glob("epoch-*.npz"):
            m = _EPOCH_RE.match(p.name)
            if m and self.epoch_optimizer(int(m.group(1))).is_file():
                found.append(int(m.group(1)))
        return sorted(found)

    def save_epoch(self, epoch: int, model: Any, optimizer: Any, **extra: Any) -> Path:
        from denoisekit.weights import save_weights

        optimizer.save(self.epoch_optimizer(epoch))
        return save_weights(self.epoch_weights(epoch), model, epoch=epoch, **extra)

    def save_best(self, model: Any, **extra: Any) -> Path:
        from denoisekit.weights import save_weights

        return save_weights(self.path / BEST, model, **extra)

    def drop_epochs_after(self, epoch: int) -> None:
        """Forget epochs beyond the one a resume restarts from (they will be redone)."""
        for e in self.complete_epochs():
            if e > epoch:
                self.epoch_weights(e).unlink(missing_ok=True)
                self.epoch_optimizer(e).unlink(missing_ok=True)

    # metrics ----------------------------------------------------------------------------
    def read_metrics(self) -> list[dict[str, Any]]:
        path = self.path / METRICS
        if not path.is_file():
            return []
        rows = []
        for line in path.read_text().splitlines():
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # a line cut short by an interruption: what follows is not trusted
        return rows

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r, default=_json_default) + "\n" for r in rows)
        _write_atomic(self.path / METRICS, text)

    def write_curves(self, rows: list[dict[str, Any]]) -> Path:
        """Training loss, validation loss and validation PSNR against epoch."""
        # A bare Figure draws with Agg without touching pyplot: calling matplotlib.use() here
        # would switch the backend of a notebook or script that calls train().
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        epochs = [r["epoch"] for r in rows]
        fig = Figure(figsize=(9, 3.5))
        ax1, ax2 = fig.subplots(1, 2)
        trained = [r for r in rows if r.get("loss") is not None]
        ax1.plot([r["epoch"] for r in trained], [r["loss"] for r in trained], "o-", label="train")
        ax1.plot(epochs, [r.get("val_loss") for r in rows], "s-", label="validation")
        ax1.set_xlabel("epoch")
        ax1.set_ylabel("loss (model units)")
        ax1.set_yscale("log")
        ax1.legend()
        ax2.plot(epochs, [r.get("val_psnr") for r in rows], "o-", label="denoised")
        if rows and rows[0].get("noisy_psnr") is not None:
            ax2.axhline(rows[0]["noisy_psnr"], color="grey", ls="--", label="noisy input")
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("validation PSNR (dB, HU -1000..1000)")
        ax2.legend()
        for ax in (ax1, ax2):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.tight_layout()
        path = self.path / CURVES
        with replacing(path) as temp:
            fig.savefig(temp, dpi=80)
        return path


def _json_default(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
