#!/usr/bin/env bash
# Starts a throw-away one-node Slurm cluster (slurmctld and slurmd on localhost, munged as
# the munge user) for the Slurm executor's tests, installing Debian's slurm-wlm and munge
# first when the machine lacks them. Its configuration lives in a private folder
# (${KATIB_SLURM_DIR:-/tmp/katib-slurm}); the node has this machine's CPUs and memory and
# one GPU gres on a fake device file, so --gres=gpu:N is scheduled without a GPU; up to
# four jobs share a core (the tests' trials mostly sleep), memory is never shared.
# Prints the slurm.conf path on its last line (export it as SLURM_CONF).
# Stop it with: .ci/slurm.sh stop
set -euo pipefail
dir=${KATIB_SLURM_DIR:-/tmp/katib-slurm}
stop() {
  for name in slurmd slurmctld munged; do
    if [ -f "$dir/$name.pid" ]; then kill "$(cat "$dir/$name.pid")" 2>/dev/null || true; fi
  done
  for name in slurmd slurmctld munged; do  # they exit within a second; slurmd's jobs end with it
    for _ in $(seq 50); do
      [ -f "$dir/$name.pid" ] && kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null || break
      sleep 0.1
    done
  done
}
if [ "${1:-}" = stop ]; then
  stop
  exit 0
fi
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  packages="slurmctld slurmd slurm-client munge"
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $packages >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends $packages >/dev/null; }
fi
export SLURM_CONF=$dir/slurm.conf
if [ -f "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null &&
   sinfo -h -o %T 2>/dev/null | grep -qx idle; then
  echo "$SLURM_CONF"  # already running
  exit 0
fi
stop
rm -rf "$dir"
mkdir -p "$dir/spool/ctld" "$dir/spool/d" "$dir/munge" "$dir/dev"
chmod 755 "$dir"

# munge: a key of our own, its socket in our folder, run as the munge user.
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 700 "$dir/munge"; chmod 400 "$dir/munge/munge.key"
chown -R munge:munge "$dir/munge"
socket=$dir/munge/munge.socket
runuser -u munge -- munged --key-file="$dir/munge/munge.key" --socket="$socket" \
  --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/seed" --force
cp "$dir/munge/munged.pid" "$dir/munged.pid"

cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))  # MB, less a margin for slurmd
host=$(hostname -s)
# The fake GPU: slurmd wants a character device; a copy of /dev/null's is one, and no
# trial opens it (scheduling only). Where mknod is not allowed, /dev/null itself.
gpu=$dir/dev/nvidia0
mknod "$gpu" c 1 3 2>/dev/null || gpu=/dev/null
cat >"$dir/gres.conf" <<EOF
NodeName=$host Name=gpu File=$gpu
EOF
cat >"$SLURM_CONF" <<EOF
ClusterName=katib
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
SlurmctldPort=${KATIB_SLURMCTLD_PORT:-56817}
SlurmdPort=${KATIB_SLURMD_PORT:-56818}
StateSaveLocation=$dir/spool/ctld
SlurmdSpoolDir=$dir/spool/d
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
GresTypes=gpu
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SchedulerParameters=sched_interval=1,bf_interval=1
SchedulerType=sched/backfill
MinJobAge=600
KillWait=2
InactiveLimit=0
Waittime=0
SlurmctldTimeout=120
SlurmdTimeout=300
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
slurmctld -i -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 300); do
  if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
    echo "$SLURM_CONF"
    exit 0
  fi
  sleep 0.1
done
echo "Slurm did not come up; its logs:" >&2
tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" "$dir/munge/munged.log" >&2 || true
exit 1
