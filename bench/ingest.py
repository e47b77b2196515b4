"""Metric ingestion: intermediate values from running trials into SQLite, ours against
Optuna's ``Trial.report`` on the same data, in one run.

    python bench/ingest.py [--trials 20] [--steps 500] [--chunk 50]

The data: ``--trials`` trials run at once, each reporting ``--steps`` values of one metric
(``loss``), ``--chunk`` lines between two reads of the controller. Three ways:

(a) ours, the controller's path: each trial's log file grows by ``--chunk`` lines
    (``epoch=… loss=…``, written before the clock starts for that read); the StdOut collector
    tails and parses each log, and the step's samples of every trial go into SQLite in one
    ``Store.write_trials`` transaction, as the controller does each tick;
(b) ours, the store alone: the same samples, already parsed, in the same transactions;
(c) Optuna: ``trial.report(value, step)`` for each value, into an ``RDBStorage`` on SQLite
    (Optuna writes each report in a transaction of its own).

Prints a table of points per second; the figures in docs/benchmarks.md come from it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _value(trial: int, step: int) -> float:
    return 1.0 / (step + 1) + trial * 1e-3


def ours(trials: int, steps: int, chunk: int, folder: Path, parse: bool) -> float:
    """Seconds spent reading and storing every point (writing the logs is the trials' work)."""
    from katib.store import ObservationRow, Store, TrialRecord
    from trials import Collector

    store = Store(str(folder / "katib.db"))
    rec = store.create_experiment("default", "ingest", {"spec": {}}, {}, str(folder))
    records = store.add_trials([TrialRecord(id=0, experiment_id=rec.id, name=f"ingest-{i}", state="Running",
                                            assignments=[]) for i in range(trials)])
    logs = [folder / f"trial-{i}.log" for i in range(trials)]
    collectors = [Collector(kind="StdOut", names={"loss"}, output=log) for log in logs]
    spent = 0.0
    for start in range(0, steps, chunk):
        now = time.time()
        batches = [[(f"epoch={s} loss={_value(i, s):.6f}\n") for s in range(start, min(steps, start + chunk))]
                   for i in range(trials)]
        if parse:
            for log, lines in zip(logs, batches, strict=True):
                with log.open("a") as f:
                    f.writelines(lines)
        began = time.perf_counter()
        samples: list[tuple[int, ObservationRow]] = []
        for t, collector, lines in zip(records, collectors, batches, strict=True):
            if parse:
                samples += [(t.id, ObservationRow(*x)) for x in collector.collect()]
            else:
                samples += [(t.id, ObservationRow(now, "loss", line.split("loss=")[1].strip())) for line in lines]
        store.write_trials(samples=samples)
        spent += time.perf_counter() - began
    stored = sum(len(store.observations(t.id, "loss")) for t in records)
    store.close()
    if stored != trials * steps:
        raise SystemExit(f"ours stored {stored} points, not {trials * steps}")
    return spent


def optuna_reports(trials: int, steps: int, chunk: int, folder: Path) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = optuna.storages.RDBStorage(f"sqlite:///{folder / 'optuna.db'}")
    study = optuna.create_study(study_name="ingest", storage=storage)
    running = [study.ask() for _ in range(trials)]
    began = time.perf_counter()
    for start in range(0, steps, chunk):  # the same interleaving: a chunk of each trial in turn
        for i, trial in enumerate(running):
            for s in range(start, min(steps, start + chunk)):
                trial.report(_value(i, s), s)
    spent = time.perf_counter() - began
    stored = sum(len(t.intermediate_values) for t in study.get_trials(deepcopy=False))
    if stored != trials * steps:
        raise SystemExit(f"Optuna stored {stored} points, not {trials * steps}")
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--chunk", type=int, default=50)
    args = parser.parse_args()
    points = args.trials * args.steps
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, run in (
            ("katib: collector + store (the controller's path)", lambda d: ours(args.trials, args.steps, args.chunk, d, True)),
            ("katib: store only", lambda d: ours(args.trials, args.steps, args.chunk, d, False)),
            ("Optuna: trial.report on RDBStorage (SQLite)", lambda d: optuna_reports(args.trials, args.steps, args.chunk, d)),
        ):
            folder = Path(tmp) / str(len(rows))
            folder.mkdir()
            spent = run(folder)
            rows.append((label, spent))
    print(f"{args.trials} trials × {args.steps} values of one metric = {points} points, "
          f"{args.chunk} values per trial between two reads\n")
    print("| ingestion into SQLite | seconds | points/s |")
    print("|---|---|---|")
    for label, spent in rows:
        print(f"| {label} | {spent:.2f} | {points / spent:,.0f} |")


if __name__ == "__main__":
    main()
