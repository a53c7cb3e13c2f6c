#!/bin/sh
# The differential test over many random networks: ROUNDS builds of COUNT
# networks each (one crate build a round), from seed FIRST; each round's
# test binary runs again on one thread and on two, with every GEMM kernel
# of this machine forced, and with Winograd off. Each network that fails
# is shrunk (examples/shrink.rs) under the settings it failed with, into
# random/regressions/seed_<SEED>.net; the script ends with the count of
# networks checked and the seeds that failed.
#   tests/differential.sh [ROUNDS=10] [COUNT=200] [FIRST=100000]
rounds=${1:-10} count=${2:-200} first=${3:-100000}
cd "$(dirname "$0")/.."
log=$(mktemp)
failed=""
i=0
while [ "$i" -lt "$rounds" ]; do
    seed=$((first + i * count))
    echo "== seeds $seed..$((seed + count - 1))"
    export NETC_DIFF_SEED=$seed NETC_DIFF_COUNT=$count
    for settings in RAYON_NUM_THREADS=1 RAYON_NUM_THREADS=2 \
        NETC_GEMM_KERNEL=generic NETC_GEMM_KERNEL=avx2 NETC_GEMM_KERNEL=avx512 \
        NETC_GEMM_KERNEL=avx512_12x32 NETC_GEMM_KERNEL=avx512_8x32 NETC_WINOGRAD=off; do
        if ! env "$settings" cargo test -q -p netc-tests --test differential >"$log" 2>&1; then
            if ! grep -q "^test result" "$log"; then
                cat "$log"
                exit 1
            fi
            for s in $(sed -n 's/^---- r\([0-9]*\) stdout ----$/\1/p' "$log"); do
                echo "seed $s fails under $settings"
                case " $failed " in *" $s "*) continue ;; esac
                failed="$failed $s"
                env "$settings" NETC_DIFF_SEED= NETC_DIFF_COUNT= \
                    cargo run -q -p netc-tests --example shrink -- "$s" || true
            done
        fi
    done
    i=$((i + 1))
done
rm -f "$log"
echo "checked $((rounds * count)) networks from seed $first, each under 8 settings"
if [ -n "$failed" ]; then
    echo "failed:$failed (shrunk into tests/random/regressions/)"
    exit 1
fi
