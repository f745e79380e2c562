#!/usr/bin/env bash
# What bfloat16 costs in quality (docs/performance.md): trains quickstarts in float32 and in
# bfloat16, from the same seed on the same scenes, and scores each pair on the same held-out scenes:
#   - CRN, pix2pix, pix2pixHD and CycleGAN (labels -> photos): one tfsynth.evaluate call, as
#     scripts/compare_quickstarts.sh does (segmentation scores, PSNR and SSIM);
#   - super-resolution x4: PSNR and SSIM against the photos, and the bicubic baseline;
#   - the segmenter: each precision's segmenter scores the real photos (the oracle row).
# Style transfer and FastGAN have no reference to score against offline (FID needs Inception
# weights), so they are not compared.
# Usage: [SEEDS="0 1 2"] [QUICKSTARTS="quickstart segmenter_quickstart"] \
#          bash scripts/compare_precision.sh [RUNS_DIR]   (default runs/precision; seed 0; all six)
# One run per quickstart, precision and seed; a run already exported is not trained again. Seeds
# other than 0 go to CONFIG-seedN-PRECISION, since one run says little where seeds differ more
# than precisions do.
# The generators' segmentation scores need the segmenter quickstart's export in
# runs/segmenter_quickstart (scripts/compare_quickstarts.sh trains it); without it they are left out.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs/precision}
seeds=${SEEDS:-0}
quickstarts=${QUICKSTARTS:-quickstart pix2pix_quickstart pix2pixhd_quickstart cyclegan_quickstart \
super_resolution_quickstart segmenter_quickstart}
time_it() { local start=$SECONDS; "$@"; echo "wall time: $((SECONDS - start)) s  ($*)"; }

# run_dir CONFIG PRECISION SEED, and the model's name in the reports (crn-float32-seed1).
run_dir() { local seed=""; [ "$3" = 0 ] || seed="-seed$3"; echo "$runs/$1$seed-$2"; }
label() {
  local name=${1%_quickstart} seed=""; [ "$name" = quickstart ] && name=crn; [ "$3" = 0 ] || seed="-seed$3"
  echo "$name-${2/none/float32}$seed"
}
# train CONFIG PRECISION SEED: trains configs/CONFIG.flags unless its run is exported.
train() {
  local run; run=$(run_dir "$@")
  [ -d "$run/export/1" ] || time_it python -m tfsynth.train --flagfile="configs/$1.flags" \
    --model_dir="$run" --mixed_precision="$2" --seed="$3"
}

generators=() upscalers=() segmenters=()
for seed in $seeds; do
  for precision in none bfloat16; do
    for config in $quickstarts; do
      train "$config" "$precision" "$seed"
      entry="$(label "$config" "$precision" "$seed"):$(run_dir "$config" "$precision" "$seed")/export/1"
      case $config in
        super_resolution_quickstart) upscalers+=("$entry") ;;
        segmenter_quickstart) segmenters+=("$entry") ;;
        *) generators+=("$entry") ;;
      esac
    done
  done
done

# Reports of other seeds go beside those of seed 0, not over them.
suffix=""; [ "$seeds" = 0 ] || suffix="-seeds${seeds// /-}"
judge=()
[ -d runs/segmenter_quickstart/export/1 ] && judge=(--segmenter=runs/segmenter_quickstart/export/1)
[ ${#generators[@]} = 0 ] || time_it python -m tfsynth.evaluate --saved_model="$(IFS=,; echo "${generators[*]}")" \
  --eval_data=synthetic:64x128:400 --split=val "${judge[@]}" --inception=none --vgg_weights=auto \
  --out="$runs/compare$suffix"
[ ${#upscalers[@]} = 0 ] || time_it python -m tfsynth.evaluate --saved_model="$(IFS=,; echo "${upscalers[*]}")" \
  --eval_data=synthetic:128x128:400 --split=val --input_size=label --inception=none --out="$runs/compare_sr$suffix"
[ ${#segmenters[@]} = 0 ] || train pix2pix_quickstart none 0
for entry in ${segmenters[@]+"${segmenters[@]}"}; do
  # Any generator will do: the segmenter's own score is the oracle row, on the real photos.
  time_it python -m tfsynth.evaluate --saved_model="$runs/pix2pix_quickstart-none/export/1" \
    --eval_data=synthetic:64x128:400 --split=val --segmenter="${entry#*:}" \
    --inception=none --vgg_weights=auto --out="$runs/compare_${entry%%:*}"
done
