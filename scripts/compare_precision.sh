#!/usr/bin/env bash
# What bfloat16 costs in quality (docs/performance.md): trains the CRN, pix2pix and pix2pixHD
# quickstarts in float32 and in bfloat16, from the same seed on the same scenes, and scores the
# six exports on the same held-out scenes as scripts/compare_quickstarts.sh does.
# Usage: bash scripts/compare_precision.sh [RUNS_DIR]   (default runs/precision)
# The segmentation scores need the segmenter quickstart's export in runs/segmenter_quickstart
# (scripts/compare_quickstarts.sh trains it); without it they are left out.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs/precision}
time_it() { local start=$SECONDS; "$@"; echo "wall time: $((SECONDS - start)) s  ($*)"; }

models=()
for precision in none bfloat16; do
  for config in quickstart pix2pix_quickstart pix2pixhd_quickstart; do
    run="$runs/$config-$precision"
    [ -d "$run/export/1" ] || time_it python -m tfsynth.train --flagfile="configs/$config.flags" \
      --model_dir="$run" --mixed_precision="$precision"
    name=${config%_quickstart}; [ "$name" = quickstart ] && name=crn
    models+=("$name-${precision/none/float32}:$run/export/1")
  done
done
segmenter=()
[ -d runs/segmenter_quickstart/export/1 ] && segmenter=(--segmenter=runs/segmenter_quickstart/export/1)
time_it python -m tfsynth.evaluate --saved_model="$(IFS=,; echo "${models[*]}")" \
  --eval_data=synthetic:64x128:400 --split=val "${segmenter[@]}" --inception=none --vgg_weights=auto \
  --out="$runs/compare"
