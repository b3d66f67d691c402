#!/usr/bin/env bash
# The GPU checks the issues ask for, in one go, where a GPU is lent:
#   bash scripts/gpu_checks.sh            # logs under results/gpu_checks (or $OUT)
#   ONLY="pytest smoke" bash scripts/gpu_checks.sh   # a subset (gpu versions pytest bench_loader
#                                                  # bench_model bench_train bench_train_nvjpeg smoke)
# nvJPEG device-decode tests, the loader benchmark with the GPU decode, the model benchmark at
# full size (fp32/bf16 x channels_last_3d, vs MMAction2 0.24.1) and the training benchmark at
# full size (fp32/bf16; CPU-decoding workers and the nvJPEG decode).
set -uo pipefail
out=${OUT:-results/gpu_checks}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
want() { [[ -z ${ONLY:-} || " $ONLY " == *" $1 "* ]]; }  # ONLY="bench_loader smoke": a subset
run() {  # name, command...: log to $out/name.txt, keep going on failure
    local name=$1
    shift
    want "$name" || return 0
    echo "== $name: $*"
    "$@" 2>&1 | tee "$out/$name.txt"
    echo "== $name: exit ${PIPESTATUS[0]}"
}
run gpu nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
run versions python3 -c "import sys, torch, torchvision; print(sys.version, torch.__version__, torchvision.__version__)"
run pytest python3 -m pytest -q -p no:cacheprovider tests/test_data_device.py
run bench_loader python3 scripts/bench_loader.py --device cuda --rounds ${ROUNDS:-2} --clips ${CLIPS:-120}
run bench_model python3 scripts/bench_model.py --device cuda --ref-version 0.24.1
run bench_train python3 scripts/bench_train.py --device cuda --iters 20
run bench_train_nvjpeg python3 scripts/bench_train.py --device cuda --iters 20 --decoder nvjpeg

# the training and inference entry points on the GPU (torchrun, NCCL), full-size model, bf16 +
# channels_last_3d + the nvJPEG decode, on the loader benchmark's frames: 2 epochs of one
# iteration; the last checkpoint is then removed and the same command resumes from the first;
# then inference and both metric modes (a smoke run: the mAP means nothing)
want smoke || exit 0
ONLY=""
smoke=${SMOKE_DIR:-$out/smoke}
rm -rf "$smoke" && mkdir -p "$smoke"
python3 - "$smoke" <<'PY'
import sys
sys.path.insert(0, "scripts")  # the benchmark package scripts/bench
from bench.train import bench_experiment
from acrn.experiment import write_experiment
exp = bench_experiment()
d = exp.data
d.val_annotations, d.val_proposals = d.train_annotations, d.train_proposals
d.label_file = "tests/data/ava-reference/ava_action_list_v2.1_for_activitynet_2018.pbtxt"
d.decoder = "nvjpeg"
t = exp.train
t.epochs, t.warmup_epochs, t.checkpoint_every, t.log_every = 2, 1, 1, 1
t.bf16 = t.channels_last_3d = True
write_experiment(exp, sys.argv[1] + "/exp.yaml")
PY
train=(python3 -m acrn.launch -m acrn.train --config "$smoke/exp.yaml" --workdir "$smoke/work")
run train_gpu "${train[@]}"
rm -f "$smoke"/work/iter_00000002.pth "$smoke"/work/epoch_2.pth "$smoke"/work/final.json
run train_gpu_resume "${train[@]}"
run infer_gpu python3 -m acrn.launch -m acrn.infer --config "$smoke/exp.yaml" \
    --checkpoint "$smoke/work/epoch_2.pth" --out "$smoke/det.csv" --metrics-out "$smoke/metrics.json"
