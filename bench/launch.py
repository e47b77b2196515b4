"""Local executor launches: how long ``LocalExecutor.launch`` holds the controller.

    python bench/launch.py [--trials 40] [--root DIR]

Launches N trials of ``sh -c 'echo loss=1'`` one after another (as the controller does
in a step), then waits for them all; prints the median launch and the launches a second.
``--root`` measures another checkout's ``trials`` package (a ``git archive`` of an older
commit) against this one. The figures in docs/benchmarks.md come from this script.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    args = parser.parse_args()
    sys.path.insert(0, args.root)
    from trials import Inventory, Ledger, LocalExecutor, TrialJob

    ex = LocalExecutor(ledger=Ledger(Inventory(cpus=10**6, memory=0, gpus=[])))
    times, handles = [], []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for i in range(args.trials):
            container = {"name": "main", "image": "x", "command": ["sh", "-c", "echo loss=1"]}
            job = TrialJob(name=f"t-{i}", experiment="e", namespace="default",
                           run_spec={"spec": {"template": {"spec": {"containers": [container]}}}},
                           primary_container="main", workdir=Path(tmp), trial_dir=Path(tmp) / "runs" / f"t-{i}")
            began = time.perf_counter()
            handles.append(ex.launch(job))
            times.append(time.perf_counter() - began)
        launched = time.perf_counter() - start
        for handle in handles:
            while not ex.poll(handle).finished:
                ex.wait(0.5)
        ended = time.perf_counter() - start
    print(f"{args.trials} launches from {args.root}: median {statistics.median(times) * 1000:.1f} ms, "
          f"{args.trials / launched:.0f} launches/s, all ended after {ended:.2f} s")


if __name__ == "__main__":
    main()
