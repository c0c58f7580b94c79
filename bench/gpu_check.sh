#!/usr/bin/env bash
# The whole GPU check as one command, everything written into OUT_DIR (bench/README.md):
#
#   bash bench/gpu_check.sh OUT_DIR            # on a GPU machine: meant to fit in 10 minutes
#   bash bench/gpu_check.sh --dry-run OUT_DIR  # the same steps at toy sizes on the CPU
#
# Steps: (a) the device and versions, failing unless JAX runs on the GPU; (b) the parity
# tests at JAX_DEFAULT_MATMUL_PRECISION=highest; (c) a trainer smoke run with the seeds
# vmapped and looped, compared; (d) the throughput grid, one call per network and group of
# modes (each merges into the results file, so a timeout loses one call at most): first the
# modes that dispatch every step and JAX's fused steps, then (e) the faithful Part III run
# (4 epochs) end to end in both frameworks, then (f) the compiled and CUDA-graphed PyTorch
# modes at batch 32 and 64 (a torch.compile build each, the slowest part). Every step gets
# what is left of GPU_CHECK_SECONDS (default 480) and is skipped, and says so, when too
# little is.
# Writes: environment.json, gpu_check.log, steps.tsv, smoke.json and the bench's
# <device>-<date>.json/.md (the tables). Needs python3 with jax, torch, flax, optax, orbax,
# ml_collections (or its wheel in .whl/) and MNIST in $JAXDIGITS_DATA_DIR (or data/mnist).
set -uo pipefail

dry=0
if [[ "${1:-}" == "--dry-run" ]]; then
  dry=1
  shift
fi
if [[ $# -ne 1 ]]; then
  echo "usage: bash bench/gpu_check.sh [--dry-run] OUT_DIR" >&2
  exit 2
fi
mkdir -p "$1" || exit 1
out=$(cd "$1" && pwd) # before the cd below: OUT_DIR is relative to where it was called
py=${PYTHON:-python3}
[[ $py == */* ]] && py=$(cd "$(dirname "$py")" && pwd)/$(basename "$py")
cd "$(dirname "$0")/.." || exit 1
budget=${GPU_CHECK_SECONDS:-$((dry ? 178 : 480))}
log=$out/gpu_check.log
: >"$log"
printf 'step\texit\tseconds\n' >"$out/steps.tsv"

# Run from the checkout, without installing it; ml_collections from a wheel in .whl/ if the
# Python has none.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ! "$py" -c "import ml_collections" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --target /tmp/gpu_check_site .whl/*.whl || exit 1
  export PYTHONPATH="$PYTHONPATH:/tmp/gpu_check_site"
fi
if [[ -z "${JAXDIGITS_DATA_DIR:-}" ]]; then
  for d in data/mnist ../shared/data/mnist; do
    [[ -d $d ]] && export JAXDIGITS_DATA_DIR=$PWD/$d && break
  done
fi
export XLA_PYTHON_CLIENT_PREALLOCATE=false # JAX and torch share the GPU
((dry)) && export JAX_PLATFORMS=cpu       # a dry run is the CPU's, on any machine
# Compiled programs outside OUT_DIR, which should hold the results only.
if [[ -z "${JAXDIGITS_COMPILATION_CACHE:-}${JAX_COMPILATION_CACHE_DIR:-}" ]]; then
  export JAXDIGITS_COMPILATION_CACHE=/tmp/jaxdigits_gpu_check_cache
fi

start=$SECONDS
# step NAME MIN_SECONDS COMMAND...: runs COMMAND with what is left of the budget.
step() {
  local name=$1 least=$2
  shift 2
  local left=$((budget - (SECONDS - start))) t0=$SECONDS rc
  if ((left < least)); then
    echo "== $name: skipped, ${left} s of the budget left (needs ${least})" | tee -a "$log"
    printf '%s\tskipped\t0\n' "$name" >>"$out/steps.tsv"
    return 0
  fi
  echo "== $name (at most ${left} s)" | tee -a "$log"
  timeout --kill-after=10 "$left" "$@" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$log"
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >>"$out/steps.tsv"
  return "$rc"
}

# (a) Fail loudly unless the device is the one the files will be named after.
flag=()
((dry)) && flag=(--dry-run)
step environment 5 "$py" bench/gpu_check.py env "$out/environment.json" ${flag[@]+"${flag[@]}"} ||
  exit 1
nvidia-smi >>"$log" 2>&1 || true

# (b) Parity with PyTorch, float32 matmuls at full precision on both sides.
parity=(tests/test_five_conv.py tests/test_digitsum_models.py tests/test_layers.py tests/test_dropout.py)
((dry)) && parity=(tests/test_layers.py) # the wiring: the suite runs the rest on the CPU
JAX_DEFAULT_MATMUL_PRECISION=highest step parity 30 \
  "$py" -m pytest -q -p no:cacheprovider -o addopts= "${parity[@]}"  # one process on the GPU

# (c) The trainer: seeds vmapped (the accelerator default) and looped agree.
toy=()
((dry)) && toy=(--toy)
step smoke 20 "$py" bench/gpu_check.py smoke "$out/smoke.json" ${toy[@]+"${toy[@]}"}

# (d) Throughput, a network at a time: all batches and precisions, the modes that dispatch
# every step and JAX's fused steps.
bench=("$py" bench/throughput.py --out "$out" --end-to-end none)
if ((dry)); then
  # Toy sizes, a toy VGG head; bf16 on the first network only (each precision compiles its
  # own programs).
  bench+=(--batch-sizes 2 --precisions f32 --steps 1 --repeats 1 --vgg-head 32,8)
  nets=(sum_cnn_regressor five_conv sum_cnn_classifier vgg_regressor)
  first_precisions=(--precisions f32,bf16)
  compiled=(sum_cnn_regressor)
  compiled_args=(--precisions f32) # one torch.compile build: slow on a CPU (docs/speed.md)
else
  bench+=(--batch-sizes 32,64,256 --precisions f32,bf16)
  nets=(five_conv sum_cnn_regressor sum_cnn_classifier vgg_regressor)
  compiled=("${nets[@]}")
  compiled_args=(--batch-sizes 32,64) # the batches of the targets
  first_precisions=()
fi
for net in "${nets[@]}"; do
  step "throughput-$net" 30 "${bench[@]}" --networks "$net" \
    --jax-modes step,fused --torch-modes eager,eager_cl ${first_precisions[@]+"${first_precisions[@]}"}
  first_precisions=()
done

# (e) The faithful Part III end to end: JAX's trainer against the original's recipe.
e2e=("$py" bench/throughput.py --out "$out" --networks none --end-to-end-runs part3)
if ((dry)); then
  e2e+=(--end-to-end toy)
else
  e2e+=(--end-to-end full)
fi
step end-to-end 20 "${e2e[@]}"

# (f) The compiled and CUDA-graphed PyTorch modes against JAX's fused steps: a
# torch.compile build per network, batch, precision and mode.
for net in "${compiled[@]}"; do
  step "compiled-$net" 45 "${bench[@]}" --networks "$net" \
    --jax-modes fused --torch-modes compile,compile_graphs ${compiled_args[@]+"${compiled_args[@]}"}
done

echo "== done in $((SECONDS - start)) s; files in $out:" | tee -a "$log"
ls "$out" | tee -a "$log"
# Exit non-zero if any step failed (a skipped step is not a failure), or awk itself did.
awk -F'\t' 'NR > 1 && $2 != "0" && $2 != "skipped" { bad = 1 } END { exit bad }' \
  "$out/steps.tsv"
