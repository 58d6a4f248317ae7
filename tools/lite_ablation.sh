#!/bin/sh
# The video-stage variants of the README's "Reproducing the paper" table, each from the finished
# image stage (runs/lite-bold, the decoder the video stage starts from) with
# tools/lite_finetune.toml's data, steps and seed; only the loss changes.
# Run from the repository root. Two at a time fit a 2-core CPU (one thread each).
set -e
run() { OMP_NUM_THREADS=1 vstpipe finetune --config tools/lite_finetune.toml "$@"; }
case "$1" in
  paper)     run --out runs/lite-paper --affinity-layer -1 --eps 0.1 --lambda-affinity 10000 ;;
  affinity)  run --out runs/lite-affinity --lambda-temporal 0 ;;
  temporal)  run --out runs/lite-temporal --lambda-affinity 0 ;;
  plain)     run --out runs/lite-plain --lambda-affinity 0 --lambda-temporal 0 ;;
  *) echo "usage: tools/lite_ablation.sh paper|affinity|temporal|plain" >&2; exit 2 ;;
esac
