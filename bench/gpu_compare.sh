#!/usr/bin/env bash
# On the GPU machine (repository root, .gpukit/ present): ours and PyTorch fp32 (TF32 off)
# on the same card in one run, ResNet-18/50/152 at batch 1, 32, 128, 224×224, with the
# heuristic kernels (no tuning cache); then `resnet tune` for ResNet-50 at batch 1 and 128
# and the same benchmark with the tuned choices; a per-layer profile of ResNet-50 at
# batch 128 (tuned) and the cold start without any cache.
# Results land in $OUT (or the current folder): gpu.txt, torch.txt, ours.txt, tune*.txt,
# tuned50.json, profile50.json, cold.txt.
set -u
out=${OUT:-.}
cache="$out/cache"
ours='for a in resnet18 resnet50 resnet152; do .gpukit/resnet bench --no-cache --arch $a --batch 1,32,128 --iters 30 --json; done'
bash .gpukit/run.sh "resnet18 resnet50 resnet152 --modes fp32 --batches 1,32,128" "$ours"
for b in 1 128; do
  .gpukit/resnet tune --cache-dir "$cache" --arch resnet50 --batch $b > "$out/tune50_b$b.txt" 2>&1
  tail -3 "$out/tune50_b$b.txt"
done
.gpukit/resnet bench --cache-dir "$cache" --arch resnet50 --batch 1,128 --iters 30 --json > "$out/tuned50.json" 2>&1
cat "$out/tuned50.json"
.gpukit/resnet profile --cache-dir "$cache" --arch resnet50 --batch 128 --iters 5 --json > "$out/profile50.json" 2>&1
( time .gpukit/resnet bench --no-cache --arch resnet50 --batch 1 --iters 1 ) > "$out/cold.txt" 2>&1
cat "$out/cold.txt"
