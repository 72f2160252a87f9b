"""Distributed data parallel runs launched by torchrun: the process group and who does what.

``torchrun --nproc_per_node=N script.py ...`` starts N copies of a script with ``RANK``,
``LOCAL_RANK`` and ``WORLD_SIZE`` in their environment. Each joins one process group (nccl on
GPUs, gloo on CPUs), trains on its shard of the data, and only rank 0 writes files.
"""

import contextlib
import os
import pickle
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

# Imported before any process group exists, on purpose: this module binds the default group
# as a default argument of its functions when first imported (DDP imports it through
# torch._dynamo). Imported later, it keeps the group alive until interpreter shutdown, where
# gloo's worker threads may still be releasing the last collective's tensors, which aborts
# the process ("terminate called without an active exception").
import torch.distributed.nn.functional
from torch.nn.parallel import DistributedDataParallel

from utils.errors import UsageError


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run; the defaults describe a single-process run."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the run dir, logs, TensorBoard and checkpoints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(gpu_devices: str) -> tuple[DistInfo, torch.device | None]:
    """Join torchrun's process group; ``(DistInfo(), None)`` when not launched by torchrun.

    Each process takes the GPU of its ``LOCAL_RANK`` unless ``--gpu_devices cpu`` or there is
    no GPU, in which case every process runs on the CPU with the gloo backend.
    """
    if not launched_by_torchrun():
        return DistInfo(), None
    info = DistInfo(
        rank=int(os.environ["RANK"]),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        world_size=int(os.environ["WORLD_SIZE"]),
    )
    if torch.cuda.is_available() and gpu_devices.strip().lower() != "cpu":
        if info.local_rank >= torch.cuda.device_count():
            raise UsageError(
                f"LOCAL_RANK {info.local_rank}: this node has {torch.cuda.device_count()} GPUs; "
                "expected --nproc_per_node <= the number of GPUs"
            )
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return info, device


def settled(*tensors: torch.Tensor, timeout: float = 10.0) -> None:
    """Wait, with the GIL released, until gloo's worker threads have let go of ``tensors``
    after a collective on them.

    A collective returns when it completes; the worker thread that ran it drops its own
    references a moment later. Were Python done with a tensor by then, that thread would
    free the tensor's Python object, for which it takes the GIL. Before torch 2.8 the process
    group's destructor holds the GIL while it joins those threads, so a tensor freed that
    late hangs a run at its very end, forever (seen on torch 2.6: the main thread in
    ``destroy_process_group``, a gloo thread waiting for the GIL to free a tensor). Waiting
    here, microseconds as a rule, leaves every tensor to the thread that made it. NCCL's
    tensors live on GPUs and its threads keep them longer, so only CPU tensors are waited for.
    """
    deadline = time.monotonic() + timeout
    while any(t.device.type == "cpu" and t._use_count() > 1 for t in tensors):
        if time.monotonic() > deadline:
            return
        time.sleep(1e-4)


def collective_device() -> torch.device:
    """Where the default group's collectives take their tensors: this process's GPU under
    NCCL, the CPU under gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_object(value: Any, info: DistInfo) -> Any:
    """Rank 0's ``value`` on every rank (e.g. the run dir it created), pickled.

    Written out rather than ``dist.broadcast_object_list``, whose tensors this module could
    not wait for (:func:`settled`); the same for :func:`gather_to_main`.
    """
    if not info.enabled:
        return value
    device = collective_device()
    payload = pickle.dumps(value) if info.is_main else b""
    size = torch.tensor([len(payload)], device=device)
    dist.broadcast(size, src=0)
    settled(size)
    if info.is_main:
        data = torch.frombuffer(bytearray(payload), dtype=torch.uint8).to(device)
    else:
        data = torch.empty(int(size.item()), dtype=torch.uint8, device=device)
    dist.broadcast(data, src=0)
    settled(data)
    return value if info.is_main else pickle.loads(data.cpu().numpy().tobytes())


def gather_to_main(value: Any, info: DistInfo) -> list[Any] | None:
    """Every rank's ``value`` in rank order on rank 0, None on the others; all ranks call it."""
    if not info.enabled:
        return [value]
    device = collective_device()
    payload = torch.frombuffer(bytearray(pickle.dumps(value)), dtype=torch.uint8)
    sizes = torch.zeros(info.world_size, dtype=torch.long, device=device)
    sizes[info.rank] = len(payload)
    dist.all_reduce(sizes)
    settled(sizes)
    sizes_read = sizes.tolist()
    padded = torch.zeros(max(sizes_read), dtype=torch.uint8, device=device)
    padded[: len(payload)] = payload.to(device)
    slots = [torch.empty_like(padded) for _ in sizes_read] if info.is_main else None
    dist.gather(padded, slots, dst=0)
    settled(padded, *(slots or []))
    if slots is None:
        return None
    return [
        pickle.loads(slot[:n].cpu().numpy().tobytes())
        for slot, n in zip(slots, sizes_read, strict=True)
    ]


def sum_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed element-wise over every rank, in place; returned for convenience."""
    dist.all_reduce(tensor)
    settled(tensor)
    return tensor


def max_over_ranks(values: list[int], info: DistInfo, device: torch.device) -> list[int]:
    """The element-wise maximum of ``values`` over every rank, in one all-reduce."""
    if not info.enabled:
        return values
    tensor = torch.tensor(values, dtype=torch.long, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    settled(tensor)
    return tensor.tolist()


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank if ``flag`` is True on any rank; waits for all of them."""
    return bool(max_over_ranks([int(flag)], info, device)[0])


def all_ranks(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank only if ``flag`` is True on every rank."""
    return not any_rank(not flag, info, device)


def leave_process_group(wait_for_all: bool) -> None:
    """Destroy the process group at the end of a run; drop DDP wrappers before calling this.

    Destroying the last reference stops gloo's worker threads while Python is still alive.
    When every rank ends at the same point (a finished run, an agreed stop or error) they
    wait for each other first: destroy_process_group should be called by all ranks together
    (NCCL's teardown is collective), and rank 0 may still be writing its last checkpoint,
    which torchrun would cut short by stopping it as soon as another rank exits. After a
    failure on one rank the others may never arrive, so ``wait_for_all=False`` skips the
    wait.
    """
    if not dist.is_initialized():
        return
    if wait_for_all:
        dist.barrier()
    dist.destroy_process_group()


NO_CONTEXT = contextlib.nullcontext()  # reusable: one no-op context, not a new one a step


def gradients_synced(model: torch.nn.Module, ends_cycle: bool) -> contextlib.AbstractContextManager:
    """Under DDP, gradients are averaged across ranks only in the batch that ends an
    accumulation cycle; the others run forward and backward inside ``no_sync()`` (the forward
    too, or DDP all-reduces in that batch's backward all the same)."""
    if ends_cycle or not isinstance(model, DistributedDataParallel):
        return NO_CONTEXT
    return model.no_sync()
