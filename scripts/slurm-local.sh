#!/usr/bin/env bash
# A single-node SLURM cluster on localhost, for the SLURM tests and for trying the profile on one machine.
#
#   scripts/slurm-local.sh install   # apt: slurmctld, slurmd, slurm-client, munge (needs root)
#   scripts/slurm-local.sh start     # write /etc/slurm/slurm.conf, start munged, slurmctld, slurmd
#   scripts/slurm-local.sh status    # sinfo
#   scripts/slurm-local.sh stop      # stop exactly the daemons `start` started (by pid), remove what it wrote
#
# Everything but /etc/slurm/slurm.conf lives in $ZOOPROBE_SLURM_STATE (default /tmp/zooprobe-slurm):
# state, spool, logs, pid files and munged's socket. slurm.conf must sit in its default place so that
# srun inside a job finds it; `start` refuses to overwrite one it did not write. Needs root.
set -euo pipefail

STATE="${ZOOPROBE_SLURM_STATE:-/tmp/zooprobe-slurm}"
PARTITION="${ZOOPROBE_SLURM_PARTITION:-debug}"
CONF=/etc/slurm/slurm.conf
HERE="$(cd "$(dirname "$0")" && pwd)"
PACKAGES=(slurmctld slurmd slurm-client munge)
MARK="# written by zooprobe scripts/slurm-local.sh"

die() { echo "slurm-local.sh: $*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "needs root (it writes $CONF and starts daemons)"; }

need_binaries() {
  local missing=()
  for tool in munged slurmctld slurmd sinfo sbatch squeue scontrol; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
  done
  [ ${#missing[@]} = 0 ] || die "missing ${missing[*]}; install with: $0 install"
}

# A pid from a pid file, if that process is alive and is the named program.
live_pid() {
  local file="$1" name="$2" pid
  [ -s "$file" ] || return 1
  pid="$(cat "$file")"
  [ -d "/proc/$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] && echo "$pid"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

install() {
  need_root
  command -v apt-get >/dev/null || die "apt-get not found; install ${PACKAGES[*]} with your package manager"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${PACKAGES[@]}" \
    || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${PACKAGES[@]}"; }
}

start() {
  need_root
  need_binaries
  if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script; is a real cluster configured here? Not touching it."
  fi
  if [ -e "$STATE/started" ]; then die "already started (state in $STATE); run: $0 stop"; fi
  [ -r /etc/munge/munge.key ] || die "/etc/munge/munge.key is missing; reinstall munge ($0 install)"
  mkdir -p "$STATE/slurmctld" "$STATE/slurmd" "$STATE/munge"
  # munged runs as user munge and wants its socket folder traversable by all, writable by none else.
  chown munge:munge "$STATE/munge" && chmod 711 "$STATE/munge"

  local host cpus mem_mb
  host="$(hostname -s)"
  cpus="$(nproc)"
  # A little under the physical memory: slurmd refuses a node that has less than RealMemory.
  mem_mb="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"
  mkdir -p "$(dirname "$CONF")"
  { echo "$MARK"; sed -e "s|@HOST@|$host|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEM_MB@|$mem_mb|g" \
      -e "s|@STATE@|$STATE|g" -e "s|@PARTITION@|$PARTITION|g" \
      -e "s|@CTLD_PORT@|$(free_port)|g" -e "s|@SLURMD_PORT@|$(free_port)|g" "$HERE/slurm-local.conf.in"; } > "$CONF.tmp"
  mv "$CONF.tmp" "$CONF"
  touch "$STATE/started"
  # A start that fails half-way ends what it started and removes what it wrote.
  trap 'echo "slurm-local.sh: start failed; cleaning up" >&2; stop >&2' ERR

  runuser -u munge -- /usr/sbin/munged --socket="$STATE/munge/munge.socket.2" \
    --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/munge/munged.log" --seed-file="$STATE/munge/munged.seed"
  /usr/sbin/slurmctld
  /usr/sbin/slurmd
  # Wait for the daemons' pid files, then for the node to take jobs.
  for _ in $(seq 1 60); do
    live_pid "$STATE/slurmctld.pid" slurmctld >/dev/null && live_pid "$STATE/slurmd.pid" slurmd >/dev/null \
      && [ "$(sinfo -h -n "$host" -o %t 2>/dev/null)" = idle ] && break
    sleep 0.5
  done
  if [ "$(sinfo -h -n "$host" -o %t 2>/dev/null)" != idle ]; then
    scontrol update nodename="$host" state=resume 2>/dev/null || true
    sleep 1
  fi
  local node_state
  node_state="$(sinfo -h -n "$host" -o %t 2>/dev/null || true)"
  if [ "$node_state" != idle ]; then
    tail -n 20 "$STATE"/*.log >&2 || true
    stop >&2
    die "node $host is '${node_state:-unknown}', not idle; the daemons' logs are above"
  fi
  trap - ERR
  echo "SLURM up: node $host ($cpus CPUs, $mem_mb MB), partition $PARTITION; state in $STATE"
  echo "munged $(cat "$STATE/munge/munged.pid") slurmctld $(cat "$STATE/slurmctld.pid") slurmd $(cat "$STATE/slurmd.pid")"
}

stop() {
  need_root
  local pids=() pid
  for entry in "slurmd.pid slurmd" "slurmctld.pid slurmctld" "munge/munged.pid munged"; do
    set -- $entry
    if pid="$(live_pid "$STATE/$1" "$2")"; then kill "$pid" && pids+=("$pid"); fi
  done
  for _ in $(seq 1 40); do
    local alive=0
    for pid in "${pids[@]}"; do [ -d "/proc/$pid" ] && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.25
  done
  for pid in "${pids[@]}"; do [ -d "/proc/$pid" ] && kill -9 "$pid" 2>/dev/null || true; done
  if [ -e "$CONF" ] && grep -qF "$MARK" "$CONF"; then rm -f "$CONF"; fi
  rm -rf "$STATE"
  echo "SLURM stopped${pids[*]:+: ended ${pids[*]}}"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) sinfo ;;
  *) echo "usage: $0 install|start|status|stop" >&2; exit 2 ;;
esac
