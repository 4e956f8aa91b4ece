#!/usr/bin/env bash
# Every figure of the learner-speed note (issue 18), on one quiet machine, one JSON line each:
#
#     MUJOCO_GL=egl bash bench/speed_suite.sh                 # ~55 min on 2 cores
#     MUJOCO_GL=egl bash bench/speed_suite.sh --learning      # + point_nav small learning, both modes (~75 min more)
#     MUJOCO_GL=egl bash bench/speed_suite.sh --quick         # a few minutes: checks the suite, measures nothing
#
# Run it when nothing else runs (load average near 0: every line records it). Figures:
#   1 learner_throughput  reference model and AC steps, bf16 (the default where the CPU has it) and fp32,
#                         FLOPs, the bf16 and fp32 matmul peaks of the same run, the fraction reached;
#                         `--baseline`: the code before the speed work (torch's conv layers, default malloc)
#   2 control_latency     act() at the reference size, back to back, bf16 and fp32 encoder, 1 thread
#   3 control_latency     30 min at the control rate on a simulated WidowX, a reference-size learner beside
#                         it as async mode places it: act() p99, overruns, learner rate with / without actor
#   4 async_speed         the widowx `small` preset (as defined now) in alternate and async mode: train-phase
#                         env steps per hour, same gradient steps per env step, and the ratio
#   5 learn (--learning)  point_nav `small`, meld_dense, same env-step budget in both modes (learning curves)
# Results go to $OUT (default runs/speed_suite/<date>) as *.json, and to stdout.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export MUJOCO_GL=${MUJOCO_GL:-egl}
PY=${PYTHON:-python3}
QUICK=0; LEARNING=0
for arg in "$@"; do
    case $arg in
        --quick) QUICK=1 ;;
        --learning) LEARNING=1 ;;
        *) echo "unknown argument $arg (use --quick, --learning)" >&2; exit 2 ;;
    esac
done
OUT=${OUT:-runs/speed_suite/$(date +%Y%m%d_%H%M%S)}
mkdir -p "$OUT"
"$PY" - <<'EOF' | tee "$OUT/machine.json"
import json, os, platform, torch
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
print(json.dumps({"machine": cpu, "cores": len(os.sched_getaffinity(0)), "torch": torch.__version__,
                  "capability": torch.backends.cpu.get_cpu_capability(),
                  "bf16_flags": [f for f in flags if "bf16" in f or f.startswith("amx")],
                  "load_avg": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version()}))
EOF

step() {  # name command...
    local name=$1; shift
    echo "== $name: $*" >&2
    if "$@" >"$OUT/$name.json"; then tail -n 1 "$OUT/$name.json"; else echo "{\"suite_step\": \"$name\", \"failed\": $?}"; fi
}

if [ $QUICK = 1 ]; then
    STEPS=(--steps 1 --warmup 0); SIZE=small; MIN=0.3; ALONE=20; ITERS=2; PRESET=point_nav:smoke; CALLS=50
else
    STEPS=(--steps 5 --warmup 2); SIZE=reference; MIN=30; ALONE=180; ITERS=20; PRESET=widowx_insertion:small
    CALLS=500
fi

# 1. the step against the peak (2 threads: the whole machine), new code and the code before
step throughput_bf16 "$PY" bench/learner_throughput.py --device cpu --size $SIZE "${STEPS[@]}"
step throughput_fp32 "$PY" bench/learner_throughput.py --device cpu --size $SIZE "${STEPS[@]}" --bf16 off
step throughput_bf16_before "$PY" bench/learner_throughput.py --device cpu --size $SIZE "${STEPS[@]}" --baseline
step throughput_1thread "$PY" bench/learner_throughput.py --device cpu --size $SIZE "${STEPS[@]}" --threads 1
# 2. act() alone, batch 1, one thread
step act_bf16 "$PY" bench/control_latency.py --size $SIZE --calls $CALLS --threads 1 --act-bf16 on
step act_fp32 "$PY" bench/control_latency.py --size $SIZE --calls $CALLS --threads 1 --act-bf16 off
# 3. the actor at the control rate with a learner beside it (async placement), 30 minutes
if [ $QUICK = 1 ]; then
    step actor_with_learner "$PY" bench/control_latency.py --size $SIZE --with-learner --learner-size small \
        --learner-alone-s $ALONE
else
    step actor_with_learner "$PY" bench/control_latency.py --paced --minutes $MIN --with-learner \
        --learner-size reference --learner-alone-s $ALONE
fi
# 4. alternate vs async, same preset, same gradient steps per env step
step async_speed "$PY" bench/async_speed.py --preset $PRESET --iterations $ITERS
# 5. learning, both modes, same env-step budget
if [ $LEARNING = 1 ]; then
    if [ $QUICK = 1 ]; then LEARN=(--preset smoke --env-steps 120 --eval-every 2); else LEARN=(--preset small --env-steps 8000); fi
    step learn_alternate "$PY" bench/learn.py --env point_nav --variants meld_dense "${LEARN[@]}" \
        --out "$OUT/learn_alternate" --no-meta-test
    step learn_async "$PY" bench/learn.py --env point_nav --variants meld_dense "${LEARN[@]}" \
        --set train.mode=async --out "$OUT/learn_async" --no-meta-test
fi
"$PY" -c "import json, os; print(json.dumps({'suite': 'done', 'load_avg': [round(x, 2) for x in os.getloadavg()]}))"
