#!/usr/bin/env bash
# A short GPU measurement to size benchmarks/gpu_ablation.sh: mask pasting ours vs torchvision,
# then one bench teacher (onehot, 100 steps of 16 images) alone on the GPU: seconds per step and
# seconds to evaluate val (320 images). ~3 min including data generation.
set -euo pipefail
. benchmarks/gpu_env.sh
export OMP_NUM_THREADS=4
nvidia-smi --query-gpu=name --format=csv,noheader
python3 benchmarks/bench_paste.py --device cuda
python3 -m tailteacher synth --preset bench --seed 0 --labeled-fraction 0.25 --out runs/data/bench_f25 --overwrite > /dev/null
R=runs/probe
python3 -m tailteacher train-teacher bench --set train.device=cuda --set train.deterministic=false \
  --set data.workers=6 --set data.batch_size=16 --set targets.kind=onehot --set train.max_steps=100 \
  --set train.log_every=10 --set run.run_dir=$R > $R.log 2>&1 || { tail -30 $R.log; exit 1; }
python3 - <<'PY'
import json, os
r = "runs/probe"
steps = [json.loads(l) for l in open(f"{r}/metrics.jsonl")]
tps = [s["time_per_step"] for s in steps[2:]]
ev = os.path.getmtime(f"{r}/teacher.json") - os.path.getmtime(f"{r}/model_final.safetensors")
m = json.load(open(f"{r}/teacher.json"))
print(f"teacher alone on the GPU, batch 16: {sum(tps)/len(tps):.3f} s/step (steps 30-100), "
      f"data_time {steps[-1]['data_time']:.3f} s; val evaluation (320 images) {ev:.1f} s; "
      f"total {m['seconds']} s; AP {100*m['metrics']['AP']:.1f} APr {100*m['metrics']['APr']:.1f}")
PY
