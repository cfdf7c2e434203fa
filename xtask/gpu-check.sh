#!/bin/bash
# The CUDA checks on a GPU machine without a Rust toolchain, from `cargo xtask gpu-bundle`'s
# target/gpu/ (copied there as run.sh). Run from the repository root: bash target/gpu/run.sh
#
# Phases, each with its own time limit; no phase starts past BUDGET seconds (default 470):
#   1. the CUDA halves of the device tests (CUDA against the CPU path); stops here if no GPU is usable
#   2. the conformance suite with a GPU present (`auto` and `cuda` then take the GPU)
#   3. the bench's CUDA cases beside their NumPy baselines
#   4. the bench's cases that run wherever `auto` puts them (the OPE bootstrap, the chunked critic,
#      ope-many's co-moments):
#      on the GPU, then with the GPU hidden (CUDA_VISIBLE_DEVICES=), with the CPU twins of phase 3
#   5. the plugins' whole test suites with a GPU present
# Logs and JSON reports go to $OUT (the device tool's folder), else ./gpu-out.
BUDGET=${BUDGET:-470}
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
ROOT=$PWD
HERE=$(cd "$(dirname "$0")" && pwd)
# the test binaries find the workspace (examples, baselines) where they were built
BUILT_AT=$(cat "$(dirname "$0")/built-at")
if [ "$ROOT" != "$BUILT_AT" ] && [ ! -e "$BUILT_AT" ]; then mkdir -p "$(dirname "$BUILT_AT")" && ln -s "$ROOT" "$BUILT_AT"; fi
Q=$(mktemp -d)
tar -C "$Q" -xJf "$HERE/bundle.tar.xz" || { echo "the bundle did not unpack"; exit 1; }
{
  date -u; nvidia-smi; uname -a; echo "cores: $(nproc)"; free -g | head -2
} > "$OUT/machine.txt" 2>&1
# the driver's libcuda first; NVRTC and cuBLAS from the CUDA toolkit (never its stubs)
found=$(find /usr/local/cuda*/ /usr/local/nvidia /usr/lib/x86_64-linux-gnu \
  \( -name 'libnvrtc.so*' -o -name 'libcublas.so*' -o -name 'libcuda.so*' \) 2>/dev/null)
dirs=$(for f in $found; do dirname "$f"; done | awk '!seen[$0]++' | grep -v -e stubs -e compat | paste -sd:)
export LD_LIBRARY_PATH=/usr/local/nvidia/lib64:$Q/lib:$dirs:${LD_LIBRARY_PATH}
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >> "$OUT/machine.txt"
grep -E "NVIDIA H|NVIDIA A|Driver Version|cores" "$OUT/machine.txt"
export QUIVER_PLUGIN_PATH=$Q/plugins QUIVER_REQUIRE_NVRTC=1 RUST_BACKTRACE=1
cd "$BUILT_AT" || exit 1
left() { [ $SECONDS -lt $((BUDGET - $1)) ]; }
B="$Q/bin/quiver-bench --python python3"

echo "== 1. the CUDA halves of the device tests ($SECONDS s)"
for b in "$Q"/bin/*; do
  case $b in */quiver-bench) continue;; esac
  timeout 120 "$b" --ignored ::cuda --test-threads 4 --nocapture 2>&1 | grep -v "^$" | tee -a "$OUT/cuda.log" \
    | grep -E "test .*cuda|panicked|FAILED|differs" 
done
echo "passed $(grep -c 'cuda \.\.\. ok' "$OUT/cuda.log"), failed $(grep -c 'cuda \.\.\. FAILED' "$OUT/cuda.log") ($SECONDS s)"
if grep -q "no GPU is usable" "$OUT/cuda.log"; then grep -m1 "no GPU is usable" "$OUT/cuda.log"; echo "stopped: no usable GPU"; exit 2; fi

echo "== 2. conformance with a GPU present ($SECONDS s)"
for b in "$Q"/bin/conformance-*; do timeout 120 "$b" > "$OUT/conformance.log" 2>&1; echo "rc=$?"; done

echo "== 3. the bench's CUDA cases beside NumPy ($SECONDS s)"
if left 150; then
  timeout 240 $B --out /tmp/qb-cuda --repeats 3 --only cuda > "$OUT/bench-cuda.log" 2>&1
  echo "rc=$?"; grep -E "^[a-z].* n=|failed|disagree" "$OUT/bench-cuda.log"; cp /tmp/qb-cuda/report.json "$OUT/bench-cuda.json" 2>/dev/null
fi

echo "== 4. where auto puts them: on the GPU, then with the GPU hidden; the CPU twins ($SECONDS s)"
if left 60; then
  timeout 90 $B --out /tmp/qb-auto --repeats 3 --baselines none --only "ope trajectories,critic-chunked DQC,ope-many" > "$OUT/bench-auto-gpu.log" 2>&1
  echo "rc=$?"; grep -E "^[a-z].* n=|failed" "$OUT/bench-auto-gpu.log"; cp /tmp/qb-auto/report.json "$OUT/bench-auto-gpu.json" 2>/dev/null
fi
if left 60; then
  CUDA_VISIBLE_DEVICES= timeout 150 $B --out /tmp/qb-cpu --repeats 3 --baselines none \
    --only "ope trajectories,critic-chunked DQC,ope-many,batch-pi mean cpu,sure-normal cpu,sure-normal xkb-estimated cpu,critic-lstd lstdq cpu,quantile-aggregation gradient medium (Adam),critic-net-fqe 2x256,critic-lowrank" \
    > "$OUT/bench-cpu.log" 2>&1
  echo "rc=$?"; grep -E "^[a-z].* n=|failed" "$OUT/bench-cpu.log"; cp /tmp/qb-cpu/report.json "$OUT/bench-cpu.json" 2>/dev/null
fi

echo "== 5. the plugins' whole suites with a GPU present ($SECONDS s)"
for b in "$Q"/bin/*; do
  case $b in */quiver-bench|*/conformance-*) continue;; esac
  left 40 || { echo "(out of time)"; break; }
  timeout 60 "$b" --test-threads 16 >> "$OUT/suites.log" 2>&1 || echo "$(basename "$b"): rc=$?"
done
grep -E "^test result" "$OUT/suites.log" | awk '{p+=$4; f+=$6} END {print "passed " p ", failed " f}'
echo "done at $SECONDS s"
