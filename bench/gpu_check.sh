#!/usr/bin/env bash
# The GPU check of the learner, one script under 8 minutes, for the minutes a GPU is lent:
#
#     bash bench/gpu_check.sh            # prints one JSON line per figure, then a summary line
#
# On CUDA, reference sizes (12x41 model batch of 128x64 images, AC 512 from 20x41): the throughput
# benchmark eager with bf16 AMP (the default), then with the filter loop compiled (DeviceConfig.compile:
# torch.compile, CUDA graphs), then fp32 (TF32) for comparison, the CUDA unit test of the agent and
# a check that the compiled filter gives the eager losses. The goal is 100 combined model+AC steps/s on one H100 (the reference code managed 4-5 on V100s).
# Without a GPU it runs the same commands on the CPU at small sizes and one step each: a check that
# the script works, not a figure. PYTHON picks the interpreter (default python3), OUT where the JSON
# files go (default /tmp/gpu_check). Needs torch, numpy and pyyaml (no MuJoCo).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
if "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    DEV=cuda; ARGS=(--size reference --steps 20 --warmup 3); T=85; TC=170  # worst case 7.7 min in all
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader || true
else
    DEV=cpu; ARGS=(--size small --steps 1 --warmup 0 --threads 1); T=300; TC=300
    echo "no CUDA device: CPU fallback at small sizes (checks the script, measures nothing)" >&2
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

run() {  # name timeout args...
    local name=$1 limit=$2; shift 2
    if timeout "$limit" "$PY" bench/learner_throughput.py --device "$DEV" "${ARGS[@]}" "$@" >"$OUT/$name.json"; then
        cat "$OUT/$name.json"
    else
        echo "{\"bench\": \"learner_throughput\", \"variant\": \"$name\", \"failed\": \"exit $? (timeout $limit s?)\"}" \
            | tee "$OUT/$name.json"
    fi
}
run amp_bf16 "$T"
run amp_bf16_compiled "$TC" --compile
run fp32_tf32 $((T - 10)) --bf16 off
if [ "$DEV" = cuda ]; then
    timeout 40 "$PY" -m pytest -q -p no:cacheprovider tests/test_core_agent.py -k cuda 2>&1 | tail -3
    # the compiled filter (CUDA graphs) gives the eager losses on the same batch and seed
    timeout 90 "$PY" - <<'PYEOF' | tee "$OUT/compiled_numerics.json"
import json, numpy as np, torch
from bench.learner_throughput import synthetic_batch
from meld_core.algo.agent import MeldAgent
from meld_core.config import DeviceConfig, ModelConfig, SACConfig
model = ModelConfig(image_shape=(64, 32, 3), latent1_size=8, latent2_size=4, base_depth=4, hidden_size=32)
batch = synthetic_batch(np.random.default_rng(0), 3, 14, (64, 32, 3), 3, 7)
losses = {}
for compiled in (False, True):
    agent = MeldAgent(model, SACConfig(batch_size=64), 3, DeviceConfig(device="cuda", compile=compiled), seed=0)
    steps = [(agent.update_model(batch)["model_loss"], agent.update_actor_critic(batch)["critic_loss"])
             for _ in range(3)]
    losses[compiled] = steps
ok = bool(np.allclose(losses[False], losses[True], rtol=2e-2))
print(json.dumps({"bench": "gpu_check", "compiled_matches_eager": ok, "eager": losses[False],
                  "compiled": losses[True]}))
PYEOF
fi
"$PY" - "$OUT" "$DEV" <<'EOF'
import json, pathlib, sys
out, dev = pathlib.Path(sys.argv[1]), sys.argv[2]
keys = ("combined_steps_per_s", "model_step_s", "ac_step_s", "model_peak_fraction", "ac_peak_fraction",
        "peak_bf16_tflops", "first_steps_s", "device_name", "precision", "failed")
line = {"bench": "gpu_check", "device": dev}
for name in ("amp_bf16", "amp_bf16_compiled", "fp32_tf32"):
    try:
        r = json.loads((out / f"{name}.json").read_text())
    except (OSError, ValueError):
        r = {"failed": "no output"}
    line[name] = {k: r[k] for k in keys if k in r}
print(json.dumps(line))
EOF
