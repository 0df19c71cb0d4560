#!/usr/bin/env bash
# Start the Ray cluster that grpo_fast.py attaches to, on several nodes (or on one node whose CPU count
# is below grpo_fast's demand of 10 CPUs per learner GPU). Run it on every node, head first:
#
#   scripts/ray_cluster.sh head                 # on node 0 (MAIN_ADDR)
#   scripts/ray_cluster.sh worker MAIN_ADDR     # on every other node
#   scripts/ray_cluster.sh stop                 # on every node, after the run
#
# then, on the head node only: NUM_NODES=<n> ./experiment_rlvr_llama8b.sh
#
# --num-cpus is a logical count: Ray's placement groups only book it, so it may exceed the real cores.
# It uses Ray from open-instruct's environment (make setup-gpu), the version grpo_fast was locked with.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
source scripts/launcher_common.sh
load_exports python -m sft_vs_rlvr.launch.open_instruct export                    # OPEN_INSTRUCT_BIN
load_exports python -m sft_vs_rlvr.launch.plan export --profile "${PROFILE:-llama8b}" # NUM_GPUS, RLVR_LEARNERS_PER_NODE
cpus="$(python -m sft_vs_rlvr.launch.preflight ray-cpus --profile "${PROFILE:-llama8b}")"   # 10 per learner GPU + engines + 3
port="${RAY_PORT:-6379}"

case "${1:-}" in
  head)   "$OPEN_INSTRUCT_BIN/ray" start --head --port "$port" --num-gpus "$NUM_GPUS" --num-cpus "$cpus" ;;
  worker) [[ -n "${2:-}" ]] || die "worker needs the head node's address: scripts/ray_cluster.sh worker MAIN_ADDR"
          "$OPEN_INSTRUCT_BIN/ray" start --address "$2:$port" --num-gpus "$NUM_GPUS" --num-cpus "$cpus" ;;
  stop)   "$OPEN_INSTRUCT_BIN/ray" stop ;;
  *)      die "usage: scripts/ray_cluster.sh head | worker MAIN_ADDR | stop" ;;
esac
