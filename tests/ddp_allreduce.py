"""The toy task under torchrun, counting the gradient all-reduces that DDP makes.

A comm hook wraps DDP's own all-reduce and counts its calls; after training each rank prints
the count beside its optimizer steps, for the DDP tests of gradient accumulation.
"""

import os

from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

from tests.toy_task import ToyTrainer, build_toy_parser


class CountingTrainer(ToyTrainer):
    def wrap_model(self, model: nn.Module) -> nn.Module:
        ddp = super().wrap_model(model)
        self.allreduces = 0

        def counting(state, bucket):
            self.allreduces += 1
            return allreduce_hook(state, bucket)

        ddp.register_comm_hook(None, counting)
        return ddp


if __name__ == "__main__":
    trainer = CountingTrainer(build_toy_parser().parse_args())
    trainer.train()
    steps = trainer.scheduler.last_epoch
    print(f"rank {os.environ['RANK']}: {trainer.allreduces} all-reduces in {steps} steps")
