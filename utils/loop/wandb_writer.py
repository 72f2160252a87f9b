"""Optional Weights & Biases logging (``--wandb True``): the scalars and images a run writes
to TensorBoard, also sent to a W&B run.

``wandb`` is imported only when asked (``pip install wandb``; it is not a requirement), and it
never stops a run: ``WANDB_MODE=offline`` keeps everything in ``<run_dir>/wandb`` for a later
``wandb sync``, starting it or logging in gives up after ``TIMEOUT_S``, and the first error
from W&B is logged once as a warning, after which only TensorBoard is written. A resumed run
continues the same W&B run (its id follows from the run dir).
"""

import hashlib
import logging
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import Tensor
from torch.utils.tensorboard import SummaryWriter

from utils.errors import UsageError

log = logging.getLogger(__name__)
TIMEOUT_S = 30  # to start the W&B run, and to wait for a login prompt's answer


def import_wandb() -> ModuleType:
    """The ``wandb`` package; a UsageError saying how to get it when it is missing."""
    try:
        import wandb
    except ImportError:
        raise UsageError(
            "--wandb True: the wandb package is not installed; pip install wandb (set "
            "WANDB_MODE=offline to log without an account), or leave --wandb False"
        ) from None
    return wandb


class WandbWriter(SummaryWriter):
    """A SummaryWriter that also sends its scalars and images to a W&B run."""

    def __init__(self, log_dir: Path, purge_step: int | None, options: dict[str, Any]) -> None:
        """TensorBoard in ``log_dir`` (the run dir); the W&B run is named after it, in the
        project ``options["proj_name"]``, with every option as its config."""
        super().__init__(log_dir, purge_step=purge_step)
        self.wandb = import_wandb()
        self.run: Any = None
        run_id = hashlib.sha1(str(Path(log_dir).resolve()).encode()).hexdigest()[:16]
        try:
            self.run = self.wandb.init(
                project=options["proj_name"],
                name=Path(log_dir).name,
                id=run_id,
                resume="allow",
                dir=log_dir,
                config=options,
                settings=self.wandb.Settings(init_timeout=TIMEOUT_S, login_timeout=TIMEOUT_S),
            )
        except Exception as err:  # W&B's own errors have no common base
            self.give_up(err)

    def add_scalar(
        self, tag: str, scalar_value: Any, global_step: int | None = None, *args: Any, **kwargs: Any
    ) -> None:
        super().add_scalar(tag, scalar_value, global_step, *args, **kwargs)
        self.send(lambda: {tag: float(scalar_value)}, global_step)

    def add_images(
        self,
        tag: str,
        img_tensor: Tensor,
        global_step: int | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """A batch ``[N, C, H, W]`` of images in [0, 1], as TensorBoard's default takes."""
        super().add_images(tag, img_tensor, global_step, *args, **kwargs)
        self.send(lambda: {tag: [self.wandb.Image(image) for image in img_tensor]}, global_step)

    def close(self) -> None:
        super().close()
        if self.run is not None:
            try:
                self.run.finish()
            except Exception as err:
                self.give_up(err)
            self.run = None

    def send(self, data: Any, step: int | None) -> None:
        """Log ``data()`` to the W&B run at ``step``, unless W&B has failed before."""
        if self.run is None:
            return
        try:
            self.run.log(data(), step=step)
        except Exception as err:
            self.give_up(err)

    def give_up(self, err: Exception) -> None:
        """Warn once and stop sending to W&B; TensorBoard goes on."""
        log.warning(
            "W&B logging stops here (%s: %s); TensorBoard goes on",
            type(err).__name__,
            " ".join(str(err).split()),
        )
        self.run = None
