#!/bin/sh
# Runs the differential test over many random networks: ROUNDS builds of
# COUNT networks each (one crate build a round), from seed FIRST, and each
# round's test binary again with every GEMM kernel this machine has and
# with Winograd off.
#   tests/differential.sh [ROUNDS=10] [COUNT=60] [FIRST=100000]
set -e
rounds=${1:-10} count=${2:-60} first=${3:-100000}
cd "$(dirname "$0")/.."
i=0
while [ "$i" -lt "$rounds" ]; do
    seed=$((first + i * count))
    echo "== seeds $seed..$((seed + count - 1))"
    export NETC_DIFF_SEED=$seed NETC_DIFF_COUNT=$count
    cargo test -q -p netc-tests --test differential
    for kernel in generic avx2 avx512 avx512_12x32 avx512_8x32; do
        NETC_GEMM_KERNEL=$kernel cargo test -q -p netc-tests --test differential
    done
    NETC_WINOGRAD=off cargo test -q -p netc-tests --test differential
    i=$((i + 1))
done
