"""A stand-in for Katib's metrics-collector sidecar images (``file-metrics-collector``,
``tfevent-metrics-collector``) for the Kubernetes emulator's kubelet: it takes Katib's args
(``-t TRIAL -m METRICS -o-type TYPE -s-db DB_MANAGER -path PATH [-f FILTERS] [-format F]``),
waits as Katib's collectors do (``pns.go``) for the training process, the one whose command
line writes the completed marker ``echo completed > DIR``, to end and for ``DIR/<its
pid>.pid`` to say ``completed``, then parses PATH (File: TEXT or JSON; TensorFlowEvent: the
event files under the folder) and sends the values with the DBManager's
``ReportObservationLog`` over gRPC. A training process that ended without the marker fails
it, as Katib's does ("training container is failed")."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _marked(directory: str) -> set[int]:
    """The processes whose command line writes the completed marker into ``directory``."""
    marker, found = f"echo completed > {directory}", set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline:
                found.add(int(entry.name))
    return found


def wait_for_training(directory: str, timeout: float = 30, grace: float = 1) -> str | None:
    """None once the training ended completed, else why not. Its container starts before
    this one: unseen after ``grace`` seconds, with no marker, it ended without one (Katib's
    collector fails at once when it finds no main process)."""
    seen: set[int] = set()
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        alive = _marked(directory)
        seen |= alive
        if not alive:
            marks = [Path(directory, f"{pid}.pid") for pid in seen] or list(Path(directory).glob("[0-9]*.pid"))
            done = [m for m in marks if m.exists() and m.read_text().strip() == "completed"]
            if done:
                return None
            if seen or time.monotonic() - started > grace:
                return f"training container is failed: no completed marker in {directory}"
        time.sleep(0.02)
    return f"no training process marks {directory} within {timeout:g}s"


def main() -> int:
    parser = argparse.ArgumentParser()
    for flag in ("-t", "-m", "-o-type", "-s-db", "-path"):
        parser.add_argument(flag, required=True)
    for flag in ("-f", "-format", "-w", "-p", "-timeout", "-s-earlystop"):
        parser.add_argument(flag)
    parser.add_argument("-stop-rule", action="append")
    args = vars(parser.parse_args())
    path, names = args["path"], args["m"].split(";")
    is_file = args["format"] is not None  # Katib gives File's collector -format, TensorFlowEvent's none
    why = wait_for_training(os.path.dirname(path) if is_file else path.rstrip("/"))
    if why:
        print(why, file=sys.stderr)
        return 1
    from trials._collector import DEFAULT_FILTER, parse_katib_json, parse_text

    if not is_file:
        from trials._tfevent import TFEventReader

        samples = TFEventReader(Path(path), names).read()
    elif args["format"] == "JSON":
        samples = parse_katib_json(Path(path).read_text().splitlines(), set(names))
    else:
        filters = [re.compile(f) for f in (args["f"].split(";") if args["f"] else [DEFAULT_FILTER])]
        samples = parse_text(Path(path).read_text().splitlines(), set(names), filters, now=time.time())
    import grpc

    from suggestion.grpc import api_pb2, api_pb2_grpc

    def stamp(ts: float) -> str:
        return datetime.fromtimestamp(ts if ts > 0 else time.time(), UTC).isoformat().replace("+00:00", "Z")

    logs = [api_pb2.MetricLog(time_stamp=stamp(s.time), metric=api_pb2.Metric(name=s.metric, value=s.value))
            for s in samples]
    with grpc.insecure_channel(args["s_db"]) as channel:
        api_pb2_grpc.DBManagerStub(channel).ReportObservationLog(api_pb2.ReportObservationLogRequest(
            trial_name=args["t"], observation_log=api_pb2.ObservationLog(metric_logs=logs)), timeout=10)
    print(f"reported {len(logs)} values of trial {args['t']} to {args['s_db']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
