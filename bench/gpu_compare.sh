#!/usr/bin/env bash
# On the GPU machine (repository root, .gpukit/ present): ours and PyTorch fp32 (TF32 off)
# on the same card in one run, ResNet-18/50/152 at batch 1, 32, 128, 224×224; then a
# per-layer profile of ResNet-50 at batch 128 and the cold start without a tuning cache.
# Results land in $OUT (or the current folder): gpu.txt, torch.txt, ours.txt, profile50.json.
set -u
out=${OUT:-.}
ours='for a in resnet18 resnet50 resnet152; do .gpukit/resnet bench --arch $a --batch 1,32,128 --iters 30 --json; done'
bash .gpukit/run.sh "resnet18 resnet50 resnet152 --modes fp32 --batches 1,32,128" "$ours"
.gpukit/resnet profile --arch resnet50 --batch 128 --iters 5 --json > "$out/profile50.json" 2>&1
( time .gpukit/resnet bench --arch resnet50 --batch 1 --iters 1 ) > "$out/cold.txt" 2>&1
cat "$out/cold.txt"
