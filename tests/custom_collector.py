"""A stand-in for Katib's custom metrics collector image (its example's args: ``-m METRICS
-s DB_MANAGER -path FILE``, or ``-f FILE`` and ``$KATIB_DB_MANAGER_ADDRESS``; the trial from
``$TrialNamePrefix``, the pod's name, or ``$KATIB_TRIAL_NAME``): it waits
until the training has written every metric to FILE as ``name=value`` lines, then sends
them with the DBManager's ``ReportObservationLog`` and exits, as Katib's collectors do."""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-m", dest="metrics", required=True)
    parser.add_argument("-s", dest="db_manager", default=os.environ.get("KATIB_DB_MANAGER_ADDRESS"))
    parser.add_argument("-path", "-f", dest="path", required=True)
    args = parser.parse_args()
    import grpc

    from suggestion.grpc import api_pb2, api_pb2_grpc

    names = args.metrics.split(";")
    deadline = time.monotonic() + 30
    found: dict[str, str] = {}
    while set(found) != set(names):
        if time.monotonic() > deadline:
            print(f"no {set(names) - set(found)} in {args.path}", file=sys.stderr)
            return 1
        time.sleep(0.02)
        if os.path.exists(args.path):
            lines = Path(args.path).read_text().splitlines()
            found = {k: v for k, _, v in (line.partition("=") for line in lines) if k in names}
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    logs = [api_pb2.MetricLog(time_stamp=now, metric=api_pb2.Metric(name=k, value=v)) for k, v in found.items()]
    with grpc.insecure_channel(args.db_manager) as channel:
        api_pb2_grpc.DBManagerStub(channel).ReportObservationLog(api_pb2.ReportObservationLogRequest(
            trial_name=os.environ.get("TrialNamePrefix") or os.environ["KATIB_TRIAL_NAME"], observation_log=api_pb2.ObservationLog(metric_logs=logs)),
            timeout=10)
    print(f"reported {found} to {args.db_manager}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
