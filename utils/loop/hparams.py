"""A run's options as TensorBoard hparams, so that TensorBoard's HParams tab compares runs."""

from typing import Any

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams


def hparam_value(value: Any) -> bool | int | float | str:
    """An option as a value the HParams tab shows: numbers, booleans and text as they are,
    anything else (None) as its text."""
    return value if isinstance(value, bool | int | float | str) else str(value)


def write_hparams(writer: SummaryWriter, options: dict[str, Any], metric_tags: list[str]) -> None:
    """Record ``options`` and the scalar tags to compare them by in the run's own event file.

    The tab shows, for each run, the last value of each tag the run logged; unlike
    ``SummaryWriter.add_hparams``, nothing goes to a separate run directory.
    """
    hparam_dict = {key: hparam_value(value) for key, value in sorted(options.items())}
    experiment, session_start, _ = hparams(hparam_dict, dict.fromkeys(metric_tags, 0.0))
    writer.file_writer.add_summary(experiment)
    writer.file_writer.add_summary(session_start)
