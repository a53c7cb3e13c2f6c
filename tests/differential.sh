#!/bin/sh
# The differential test over many random networks: ROUNDS builds of COUNT
# networks each (one crate build a round), from seed FIRST; each round's
# test binary runs again on one thread and on two, with every GEMM kernel
# of this machine forced, and with Winograd off.
#   tests/differential.sh [ROUNDS=10] [COUNT=200] [FIRST=100000]
set -e
rounds=${1:-10} count=${2:-200} first=${3:-100000}
cd "$(dirname "$0")/.."
i=0
while [ "$i" -lt "$rounds" ]; do
    seed=$((first + i * count))
    echo "== seeds $seed..$((seed + count - 1))"
    export NETC_DIFF_SEED=$seed NETC_DIFF_COUNT=$count
    run() { env "$@" cargo test -q -p netc-tests --test differential; }
    run RAYON_NUM_THREADS=1
    run RAYON_NUM_THREADS=2
    for kernel in generic avx2 avx512 avx512_12x32 avx512_8x32; do
        run NETC_GEMM_KERNEL=$kernel
    done
    run NETC_WINOGRAD=off
    i=$((i + 1))
done
