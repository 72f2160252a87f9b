"""The toy task under torchrun, then the names of the threads this process still runs.

A process group that outlives training keeps gloo's worker threads until interpreter
shutdown, where releasing the last collective's tensors can abort the process. The DDP tests
run this module and check that no gloo thread is left once ``train()`` returns.
"""

import os
from pathlib import Path

from tests.toy_task import main

if __name__ == "__main__":
    main()
    names = sorted(comm.read_text().strip() for comm in Path("/proc/self/task").glob("*/comm"))
    # One write() of the whole line: both ranks share one stdout, and print() may write the
    # text and its newline apart, so that the other rank's line lands between them.
    line = f"rank {os.environ['RANK']} threads after train: {' '.join(names)}\n"
    os.write(1, line.encode())
