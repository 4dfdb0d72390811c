#!/usr/bin/env bash
# A one-node Slurm cluster on localhost for trying and testing slurm/ (Debian 12, Slurm 22.05, as root, no systemd).
#
#   tools/slurm/local-cluster.sh start    # install slurmctld slurmd slurm-client munge if missing, start the daemons
#   tools/slurm/local-cluster.sh status   # the daemons and the node
#   tools/slurm/local-cluster.sh stop     # cancel the jobs, stop the daemons that `start` started (by PID)
#
# Everything (slurm.conf, logs, state, spool, PID files) lives under $CTM_SLURM_DIR (default /tmp/ctm-slurm);
# slurmctld listens on $CTM_SLURM_PORT (default 6817) and slurmd on the port after it.
# The client commands find the cluster with `export SLURM_CONF=$CTM_SLURM_DIR/slurm.conf`; `start` also links
# /etc/slurm/slurm.conf to it when that file does not exist (and `stop` removes the link).
# Job states: `scontrol show job ID` (jobs are kept for a day) or `sacct -c` (the job-completion log);
# there is no accounting database.
set -euo pipefail
DIR=${CTM_SLURM_DIR:-/tmp/ctm-slurm}
PORT=${CTM_SLURM_PORT:-6817}
CONF=$DIR/slurm.conf
PIDS=$DIR/run/started  # "name pid" of each daemon this script started
export SLURM_CONF=$CONF

say() { echo "local-cluster: $*" >&2; }
die() { say "error: $*"; exit 1; }

install_packages() {
  local pkgs=(slurmctld slurmd slurm-client munge) p missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  say "installing ${missing[*]}"
  local apt=(apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}")
  export DEBIAN_FRONTEND=noninteractive
  "${apt[@]}" >"$DIR/log/apt.log" 2>&1 || { apt-get -o DPkg::Lock::Timeout=600 update -q >>"$DIR/log/apt.log" 2>&1 &&
    "${apt[@]}" >>"$DIR/log/apt.log" 2>&1; } || die "apt-get failed, see $DIR/log/apt.log"
}

# The node as slurmd sees it (CPUs, sockets, cores, RealMemory), renamed localhost so nothing depends on the host name.
node_line() {
  slurmd -C | sed -n 's/^NodeName=[^ ]* /NodeName=localhost NodeAddr=127.0.0.1 /p' | sed 's/$/ State=UNKNOWN/'
}

write_conf() {
  local node
  node=$(node_line)
  [ -n "$node" ] || die "slurmd -C did not describe this machine"
  cat >"$CONF" <<EOF
# Written by tools/slurm/local-cluster.sh: a one-node cluster on localhost.
ClusterName=ctmlocal
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# A requeued job waits for the credential lifetime before it starts again: 120 s by default, 10 s here.
AuthInfo=cred_expire=10
# Debian's Open MPI starts under srun with PMIx (pmi2 and none do not work).
MpiDefault=pmix
# No systemd and no cgroup delegation here: track processes by parent, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# Schedule every 2 s (default 60 s, backfill 30 s), so that a requeued job or a dependant starts at once.
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# A job whose dependency failed is cancelled, and one asking for more than the node has is refused at
# submission, instead of both pending forever.
DependencyParameters=kill_invalid_depend
EnforcePartLimits=ALL
# No accounting database: finished jobs stay in scontrol for a day, and sacct -c reads the completion log.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
MinJobAge=86400
KillWait=30
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
$node
PartitionName=local Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

# Wait up to $1 seconds for the command after it to succeed.
wait_for() {
  local seconds=$1; shift
  for _ in $(seq $((seconds * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

munge_works() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

# munged refuses to run as root and wants /run/munge owned by its own user.
start_munge() {
  if munge_works; then say "munged already running; using it"; return; fi
  [ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key && chown munge:munge /etc/munge/munge.key; }
  install -d -o munge -g munge -m 0755 /run/munge
  runuser -u munge -- munged
  wait_for 10 munge_works || die "munged did not start (see /var/log/munge/munged.log)"
  echo "munged $(cat /run/munge/munged.pid)" >>"$PIDS"
}

start_daemon() {  # start_daemon NAME PIDFILE COMMAND...
  local name=$1 pidfile=$2; shift 2
  rm -f "$pidfile"
  "$@" || die "$name did not start (see $DIR/log/$name.log)"
  wait_for 10 test -s "$pidfile" || die "$name wrote no PID file (see $DIR/log/$name.log)"
  echo "$name $(cat "$pidfile")" >>"$PIDS"
}

node_idle() { [ "$(sinfo -h -n localhost -o %T 2>/dev/null)" = idle ]; }

start() {
  [ "$(id -u)" = 0 ] || die "run as root"
  mkdir -p "$DIR"/{log,run,state,spool}
  if [ -s "$PIDS" ]; then
    if scontrol ping 2>/dev/null | grep -q UP; then say "already running ($CONF)"; return; fi
    stop  # what a failed start left running
  fi
  : >"$PIDS"
  install_packages
  write_conf
  start_munge
  start_daemon slurmctld "$DIR/run/slurmctld.pid" slurmctld -f "$CONF"
  start_daemon slurmd "$DIR/run/slurmd.pid" slurmd -f "$CONF" -N localhost
  if [ ! -e /etc/slurm/slurm.conf ]; then  # (-e is false for a link left dangling by a killed test: replace it)
    mkdir -p /etc/slurm && ln -sfn "$CONF" /etc/slurm/slurm.conf && echo "link /etc/slurm/slurm.conf" >>"$PIDS"
  fi
  wait_for 30 node_idle || { sinfo -N -l >&2 || true; die "the node did not become idle (see $DIR/log/)"; }
  say "up: $(sinfo -h -o '%P %D node, %c CPUs, %m MB, %T')"
  echo "export SLURM_CONF=$CONF"
}

# Kill one daemon we started, if that PID is still the same program.
stop_pid() {
  local name=$1 pid=$2
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 0
  kill -TERM "$pid"
  wait_for 15 bash -c "! kill -0 $pid" || kill -KILL "$pid" 2>/dev/null || true
}

stop() {
  [ -s "$PIDS" ] || { say "nothing started from $DIR"; return 0; }
  if scontrol ping 2>/dev/null | grep -q UP; then
    local jobs
    jobs=$(squeue -h -o %i)
    if [ -n "$jobs" ]; then
      say "cancelling jobs $(echo $jobs)"
      scancel $jobs || true
      wait_for 60 bash -c '[ -z "$(squeue -h -o %i)" ]' || say "jobs still running: $(squeue -h -o %i | tr '\n' ' ')"
    fi
  fi
  # In reverse order of start: the link, slurmd, slurmctld, munged.
  tac "$PIDS" | while read -r name pid; do
    if [ "$name" = link ]; then
      [ "$(readlink "$pid")" = "$CONF" ] && rm -f "$pid"
    else
      stop_pid "$name" "$pid"
    fi
  done
  : >"$PIDS"
  say "stopped (state and logs kept in $DIR)"
}

status() {
  [ -s "$PIDS" ] && while read -r name pid; do
    [ "$name" = link ] && { echo "$pid -> $(readlink "$pid")"; continue; }
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then echo "$name: running (PID $pid)"; else echo "$name: not running"; fi
  done <"$PIDS"
  scontrol ping 2>/dev/null || { echo "no slurmctld answers for $CONF"; return 1; }
  sinfo -N -h -o "%N %T, %c CPUs, %m MB"
  echo "export SLURM_CONF=$CONF"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status   (state under \$CTM_SLURM_DIR, default /tmp/ctm-slurm)" >&2; exit 2 ;;
esac
