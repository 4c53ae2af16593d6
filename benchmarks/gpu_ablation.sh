#!/usr/bin/env bash
# The ablation (the paper's Table 1 rows, docs/design.md; 3 seeds, label fractions 25/50 %) on one GPU.
#
#   bash benchmarks/gpu_ablation.sh [OUT]        # OUT default runs/gpu; logs and tables land there
#
# The same rows as the CPU run (`tailteacher ablate bench --seeds 3`, the bench preset with a
# quarter of its labels, D127), with 16 labeled (+16 unlabeled) images per step instead of 8 (+4)
# and half the steps (teacher 300, student and control 240): the teachers see the same images.
# Not run in this regime (no GPU has been lent since D127). The old regime's probe on an H200
# (benchmarks/gpu_probe.sh, docs/results.md): a teacher step of 16 images 0.235 s alone on the
# GPU, val evaluation 5 s. Six processes (seed × part) share the one GPU.
# Python packages missing on the machine are installed from ./.whl (benchmarks/gpu_env.sh).
set -euo pipefail
OUT=${1:-runs/gpu}
mkdir -p "$OUT"
. benchmarks/gpu_env.sh
export OMP_NUM_THREADS=2
PY=python3
start=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
$PY -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/device.txt"

[ -f runs/data/bench_f25/unlabeled_truth.json ] || $PY -m tailteacher synth --preset bench --seed 0 --labeled-fraction 0.25 --out runs/data/bench_f25 --overwrite
echo "data ready after $(( $(date +%s) - start )) s"

GPU=(--set train.device=cuda --set train.deterministic=false --set data.workers=3
     --set data.batch_size=16 --set student.unlabeled_batch_size=16
     --set train.max_steps=300 --set train.warmup_steps=25 --set student.max_steps=240 --set student.warmup_steps=10
     --set run.run_dir="$OUT/ablation")
# Smoke: two steps of a teacher on the GPU; stops here, cheaply, if a CUDA path is broken.
$PY -m tailteacher train-teacher bench "${GPU[@]}" --set targets.kind=onehot --set train.max_steps=2 \
    --set train.warmup_steps=1 --set run.run_dir="$OUT/smoke" \
    > "$OUT/smoke.log" 2>&1 || { tail -30 "$OUT/smoke.log"; exit 1; }
echo "smoke ok after $(( $(date +%s) - start )) s"

# Six processes on the one GPU: each seed's Table 1 rows and its Fig. 2 fractions (independent).
# BUDGET seconds for them (default 1800): a process still running then is stopped, and the tables
# hold the rows that finished (rerunning this script resumes the rest).
for seed in 0 1 2; do
  for part in full fractions; do
    timeout "${BUDGET:-1800}" $PY -m tailteacher ablate bench --seeds 3 --only-seed "$seed" --part "$part" \
        "${GPU[@]}" > "$OUT/seed$seed.$part.log" 2>&1 &
  done
done
fail=0
for job in $(jobs -p); do wait "$job" || fail=1; done
echo "seeds done after $(( $(date +%s) - start )) s (fail=$fail)"
cat "$OUT"/seed*.log | tr '\r' '\n' | grep -E "^\[|Error|error|Traceback" > "$OUT/stages.txt" || true
$PY -m tailteacher ablate bench --seeds 3 --collect "${GPU[@]}" > "$OUT/aggregate.log" 2>&1 || tail -20 "$OUT/aggregate.log"
cp "$OUT/ablation/ablation.md" "$OUT/ablation/ablation.json" "$OUT/" 2>/dev/null || true
cat "$OUT/ablation.md" 2>/dev/null || true
echo "total $(( $(date +%s) - start )) s"
