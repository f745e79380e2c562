#!/usr/bin/env bash
# Reproduces docs/results.md: trains the segmenter, CRN, pix2pix and pix2pixHD quickstarts on the
# built-in synthetic scenes and compares the three generators on the same validation examples.
# Usage: bash scripts/compare_quickstarts.sh [RUNS_DIR]   (default runs/)
# FID/KID need Inception weights: INCEPTION=keras (downloads once) or
# INCEPTION=/path/classify_image_graph_def.pb; the default, none, skips them (offline machines).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs}
inception=${INCEPTION:-none}
time_it() { local start=$SECONDS; "$@"; echo "wall time: $((SECONDS - start)) s  ($*)"; }

time_it python -m tfsynth.train --flagfile=configs/segmenter_quickstart.flags --model_dir="$runs/segmenter_quickstart"
time_it python -m tfsynth.train --flagfile=configs/quickstart.flags --model_dir="$runs/quickstart"
time_it python -m tfsynth.train --flagfile=configs/pix2pix_quickstart.flags --model_dir="$runs/pix2pix_quickstart"
time_it python -m tfsynth.train --flagfile=configs/pix2pixhd_quickstart.flags --model_dir="$runs/pix2pixhd_quickstart"
# The CRN quickstart's data (64x128) is the common ground; pix2pix is fed its own 128x128 squares;
# pix2pixHD gets the instance maps and draws each instance's style from the example's index.
time_it python -m tfsynth.evaluate \
  --saved_model="crn:$runs/quickstart/export/1,pix2pix:$runs/pix2pix_quickstart/export/1,pix2pixhd:$runs/pix2pixhd_quickstart/export/1" \
  --eval_data=synthetic:64x128:400 --split=val \
  --segmenter="$runs/segmenter_quickstart/export/1" \
  --inception="$inception" --vgg_weights=auto --out="$runs/compare_quickstarts"
