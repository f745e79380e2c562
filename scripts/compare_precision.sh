#!/usr/bin/env bash
# What bfloat16 costs in quality (docs/performance.md): trains quickstarts in float32 and in
# bfloat16, from the same seed on the same scenes, and scores each pair on the same held-out scenes:
#   - CRN, pix2pix, pix2pixHD and CycleGAN (labels -> photos): one tfsynth.evaluate call, as
#     scripts/compare_quickstarts.sh does (segmentation scores, PSNR and SSIM);
#   - super-resolution x4: PSNR and SSIM against the photos, and the bicubic baseline;
#   - the segmenter: each precision's segmenter scores the real photos (the oracle row).
# Style transfer and FastGAN have no reference to score against offline (FID needs Inception
# weights), so they are not compared.
# Usage: bash scripts/compare_precision.sh [RUNS_DIR]   (default runs/precision)
# The generators' segmentation scores need the segmenter quickstart's export in
# runs/segmenter_quickstart (scripts/compare_quickstarts.sh trains it); without it they are left out.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs/precision}
time_it() { local start=$SECONDS; "$@"; echo "wall time: $((SECONDS - start)) s  ($*)"; }

# train CONFIG PRECISION: trains configs/CONFIG.flags into $runs/CONFIG-PRECISION unless exported.
train() {
  local run="$runs/$1-$2"
  [ -d "$run/export/1" ] || time_it python -m tfsynth.train --flagfile="configs/$1.flags" \
    --model_dir="$run" --mixed_precision="$2"
}
label() { local name=${1%_quickstart}; [ "$name" = quickstart ] && name=crn; echo "$name-${2/none/float32}"; }

generators=() upscalers=()
for precision in none bfloat16; do
  for config in quickstart pix2pix_quickstart pix2pixhd_quickstart cyclegan_quickstart; do
    train "$config" "$precision"
    generators+=("$(label "$config" "$precision"):$runs/$config-$precision/export/1")
  done
  train super_resolution_quickstart "$precision"
  upscalers+=("$(label super_resolution_quickstart "$precision"):$runs/super_resolution_quickstart-$precision/export/1")
  train segmenter_quickstart "$precision"
done

segmenter=()
[ -d runs/segmenter_quickstart/export/1 ] && segmenter=(--segmenter=runs/segmenter_quickstart/export/1)
time_it python -m tfsynth.evaluate --saved_model="$(IFS=,; echo "${generators[*]}")" \
  --eval_data=synthetic:64x128:400 --split=val "${segmenter[@]}" --inception=none --vgg_weights=auto \
  --out="$runs/compare"
time_it python -m tfsynth.evaluate --saved_model="$(IFS=,; echo "${upscalers[*]}")" \
  --eval_data=synthetic:128x128:400 --split=val --input_size=label --inception=none --out="$runs/compare_sr"
for precision in none bfloat16; do
  # Any generator will do: the segmenter's own score is the oracle row (the real photos).
  time_it python -m tfsynth.evaluate --saved_model="$runs/pix2pix_quickstart-$precision/export/1" \
    --eval_data=synthetic:64x128:400 --split=val --segmenter="$runs/segmenter_quickstart-$precision/export/1" \
    --inception=none --vgg_weights=auto --out="$runs/compare_segmenter-$precision"
done
