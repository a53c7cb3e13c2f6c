//! The GEMM against the naive reference: every compiled microkernel, odd and
//! prime sizes from 0 to 3·mr, strided and transposed operands, alpha, beta
//! (0 with NaN-filled C must not read C), every epilogue, and the threaded
//! path. Kernels this CPU lacks are skipped with a logged line.

use netc_runtime::gemm::{
    kernel, sgemm, sgemm_prepacked, sgemm_with, Activation, Bias, Epilogue, Kernel, MatMut, MatRef,
    PackedA, Par,
};
use netc_runtime::reference;
use proptest::prelude::*;

/// A deterministic pseudo-random fill in [-1, 1).
fn fill(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Storage for a `rows x cols` matrix with the given layout and padding.
fn layout(rows: usize, cols: usize, col_major: bool, pad: usize) -> (usize, usize, usize) {
    if col_major {
        let ld = rows + pad;
        (1, ld, ld * cols.max(1))
    } else {
        let ld = cols + pad;
        (ld, 1, ld * rows.max(1))
    }
}

#[derive(Debug, Clone)]
struct Case {
    m: usize,
    n: usize,
    k: usize,
    a_col: bool,
    b_col: bool,
    c_col: bool,
    pad: usize,
    alpha: f32,
    beta: f32,
    bias: u8,
    act: u8,
    mask: bool,
    seed: u64,
}

/// Runs `case` with `kernel`, or through [`sgemm`]'s own choice of kernel
/// and orientation when `kernel` is `None`.
fn run_case(kernel: Option<&Kernel>, case: &Case, par: Par) -> Result<(), String> {
    let name = kernel.map_or("auto", |k| k.name);
    let Case { m, n, k, pad, alpha, beta, seed, .. } = *case;
    let (ars, acs, alen) = layout(m, k, case.a_col, pad);
    let (brs, bcs, blen) = layout(k, n, case.b_col, pad);
    let (crs, ccs, clen) = layout(m, n, case.c_col, pad);
    let a_data = fill(alen, seed);
    let b_data = fill(blen, seed + 1);
    let bias_data = fill(m.max(n), seed + 2);
    let mask_data = fill(m * n, seed + 3);
    let a = MatRef { data: &a_data, rs: ars, cs: acs };
    let b = MatRef { data: &b_data, rs: brs, cs: bcs };
    let bias = match case.bias {
        0 => Bias::None,
        1 => Bias::PerRow(&bias_data[..m]),
        _ => Bias::PerCol(&bias_data[..n]),
    };
    let activation = match case.act {
        0 => Activation::Identity,
        1 => Activation::Relu,
        2 => Activation::LeakyRelu(0.1),
        3 => Activation::Sigmoid,
        _ => Activation::Tanh,
    };
    let relu_mask = case.mask.then(|| MatRef::row_major(&mask_data, n));
    let epi = Epilogue { bias, activation, relu_mask, sgd: None };

    // beta = 0 must not read C: fill it with NaN so any read shows.
    let old = if beta == 0.0 { vec![f32::NAN; clen] } else { fill(clen, seed + 4) };
    let mut c_data = old.clone();
    let mut expected: Vec<f32> = (0..m * n).map(|x| old[(x / n) * crs + (x % n) * ccs]).collect();
    reference::gemm(m, n, k, alpha, &a, &b, beta, &mut expected, &epi);
    let c = MatMut { data: &mut c_data, rs: crs, cs: ccs };
    match kernel {
        Some(kernel) => sgemm_with(kernel, m, n, k, alpha, a, b, beta, c, &epi, par),
        None => sgemm(m, n, k, alpha, a, b, beta, c, &epi, par),
    }
    .map_err(|e| e.to_string())?;
    for i in 0..m {
        for j in 0..n {
            let got = c_data[i * crs + j * ccs];
            let want = expected[i * n + j];
            let tol = 1e-5 * (k as f32 + 1.0) * (1.0 + want.abs());
            // Written so that a NaN result fails too.
            let close = (got - want).abs() <= tol;
            if !close {
                return Err(format!("{name}: C[{i}][{j}] = {got}, expected {want} in {case:?}"));
            }
        }
    }
    // Padding between rows or columns of C is not C: it must be untouched.
    let mut inside = vec![false; clen];
    for i in 0..m {
        for j in 0..n {
            inside[i * crs + j * ccs] = true;
        }
    }
    for (x, (&after, &before)) in c_data.iter().zip(&old).enumerate() {
        if !inside[x] && after.to_bits() != before.to_bits() {
            return Err(format!("{name}: wrote outside C at {x} in {case:?}"));
        }
    }
    Ok(())
}

fn supported_kernels() -> Vec<&'static Kernel> {
    kernel::compiled()
        .iter()
        .filter(|k| {
            let ok = k.is_supported();
            if !ok {
                eprintln!("skipping the `{}` microkernel: this CPU does not support it", k.name);
            }
            ok
        })
        .collect()
}

fn case_strategy(max_dim: usize) -> impl Strategy<Value = Case> {
    (
        (0..max_dim, 0..max_dim, 0..max_dim),
        (any::<bool>(), any::<bool>(), any::<bool>(), 0usize..3),
        (
            prop_oneof![Just(1.0f32), Just(-0.5), Just(0.0), -2.0f32..2.0],
            prop_oneof![Just(0.0f32), Just(1.0), -1.5f32..1.5],
        ),
        (0u8..3, 0u8..5, any::<bool>(), any::<u64>()),
    )
        .prop_map(
            |((m, n, k), (a_col, b_col, c_col, pad), (alpha, beta), (bias, act, mask, seed))| {
                Case { m, n, k, a_col, b_col, c_col, pad, alpha, beta, bias, act, mask, seed }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Sizes 0..3·mr (up to 3·8 = 24 rows, 3·48 = 144 columns) for every kernel.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn small_sizes_match_reference(case in case_strategy(150)) {
        for kernel in supported_kernels() {
            let mut case = case.clone();
            case.m %= 3 * kernel.mr + 1;
            case.n %= 3 * kernel.nr + 1;
            case.k %= 3 * kernel.mr + 1;
            run_case(Some(kernel), &case, Par::Seq).map_err(TestCaseError::fail)?;
        }
    }

    /// The public entry point, which may pick a kernel and transpose the
    /// problem (narrow C), on one thread and on the pool.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn automatic_choice_matches_reference(case in case_strategy(70)) {
        run_case(None, &case, Par::Seq).map_err(TestCaseError::fail)?;
        run_case(None, &case, Par::Rayon).map_err(TestCaseError::fail)?;
    }
}

/// Sizes that cross the kc, mc and nc block boundaries, prime and odd, on one
/// thread and on the rayon pool.
#[test]
#[cfg_attr(miri, ignore)]
fn blocked_sizes_match_reference_on_every_path() {
    for kernel in supported_kernels() {
        let b = kernel.blocking;
        let sizes = [(b.mc + 3, 67, b.kc + 5), (97, b.nc + 7, 2 * b.kc + 1), (131, 257, 389)];
        for (t, &(m, n, k)) in sizes.iter().enumerate() {
            for par in [Par::Seq, Par::Rayon] {
                let case = Case {
                    m,
                    n,
                    k,
                    a_col: t == 1,
                    b_col: t == 2,
                    c_col: false,
                    pad: t,
                    alpha: 0.75,
                    beta: if t == 0 { 0.0 } else { 0.5 },
                    bias: t as u8,
                    act: 1,
                    mask: t == 2,
                    seed: t as u64,
                };
                run_case(Some(kernel), &case, par).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
}

/// The generic path on tiny sizes: the test Miri runs
/// (`cargo +nightly miri test -p netc-runtime --test gemm miri`).
#[test]
fn miri_generic_small() {
    let kernel = kernel::by_name("generic").expect("always compiled");
    for (m, n, k) in [(1, 1, 1), (5, 9, 3), (4, 8, 2), (0, 3, 2), (3, 0, 2), (2, 3, 0)] {
        let case = Case {
            m,
            n,
            k,
            a_col: m % 2 == 0,
            b_col: n % 2 == 0,
            c_col: k % 2 == 0,
            pad: 1,
            alpha: 1.5,
            beta: 0.0,
            bias: 1,
            act: 2,
            mask: true,
            seed: 9,
        };
        run_case(Some(kernel), &case, Par::Seq).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn bad_views_are_errors_not_panics() {
    let kernel = kernel::selected();
    let a = vec![0.0; 6];
    let b = vec![0.0; 6];
    let mut c = vec![0.0; 3];
    let err = sgemm_with(
        kernel,
        2,
        2,
        3,
        1.0,
        MatRef::row_major(&a, 3),
        MatRef::row_major(&b, 2),
        0.0,
        MatMut::row_major(&mut c, 2),
        &Epilogue::NONE,
        Par::Seq,
    )
    .unwrap_err();
    assert_eq!(err.operand, "C");
    let mut c = vec![0.0; 4];
    let err = sgemm_with(
        kernel,
        2,
        2,
        3,
        1.0,
        MatRef::row_major(&a, 3),
        MatRef::row_major(&b, 2),
        0.0,
        MatMut { data: &mut c, rs: 0, cs: 1 },
        &Epilogue::NONE,
        Par::Seq,
    )
    .unwrap_err();
    assert!(err.reason.contains("overlap"), "{err}");
}

/// A narrow C (10 columns, as a classifier's logits) takes the transposed
/// path; with a bias per column and a ReLU mask it must still be exact.
#[test]
#[cfg_attr(miri, ignore)]
fn narrow_outputs_take_the_transposed_path_correctly() {
    for (m, n, k) in [(128, 10, 256), (300, 3, 77), (2, 200, 31)] {
        let case = Case {
            m,
            n,
            k,
            a_col: false,
            b_col: false,
            c_col: false,
            pad: 0,
            alpha: 1.0,
            beta: 0.0,
            bias: 2,
            act: 1,
            mask: true,
            seed: 5,
        };
        run_case(None, &case, Par::Seq).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Pools of 3 and 4 threads split C into odd grids (3x1, 1x3, 2x2) with
/// uneven blocks; every element must still be computed once and exactly.
#[test]
#[cfg_attr(miri, ignore)]
fn odd_thread_counts_split_c_exactly() {
    for threads in [3, 4] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
        for (t, (m, n, k)) in [(101, 37, 1300), (7, 500, 1200), (333, 333, 100), (50, 49, 2000)]
            .into_iter()
            .enumerate()
        {
            let case = Case {
                m,
                n,
                k,
                a_col: t % 2 == 1,
                b_col: t == 2,
                c_col: t == 3,
                pad: t,
                alpha: 1.25,
                beta: if t == 1 { 0.0 } else { -0.5 },
                bias: (t % 3) as u8,
                act: (t % 5) as u8,
                mask: t == 0,
                seed: 40 + t as u64,
            };
            pool.install(|| run_case(None, &case, Par::Rayon))
                .unwrap_or_else(|e| panic!("{threads} threads: {e}"));
        }
    }
}

/// A matrix packed once ([`PackedA`]) gives what packing it on every call
/// gives, bit for bit (the same kernel sums in the same order): on every
/// supported kernel family, rows off the panel height, k over three kc
/// blocks, with and without threads (whose row split must find its panels),
/// reused for a second product, and repacked for another shape.
#[test]
fn prepacked_a_matches_packing_per_call() {
    for kernel in supported_kernels() {
        let kc = kernel.blocking.kc;
        // The last is tall and narrow: the threads split its rows.
        let shapes = [
            (kernel.mr * 3 + 1, 37, 3 * kc + 5),
            (5, 130, 17),
            (kernel.mr * 9 + 7, 64, kc),
            (kernel.mr * 40 + 3, 5, kc + 1),
        ];
        let mut packed = PackedA::new();
        for (i, &(m, n, k)) in shapes.iter().enumerate() {
            let a = fill(m * k, 10 + i as u64);
            packed.pack(kernel, m, k, MatRef::row_major(&a, k)).unwrap();
            assert_eq!(packed.packed_as().map(|(m, k, _)| (m, k)), Some((m, k)));
            for (round, par) in [Par::Seq, Par::Rayon].into_iter().enumerate() {
                let b = fill(k * n, 20 + (i * 2 + round) as u64);
                let bias = fill(m, 30);
                let epi = Epilogue {
                    bias: Bias::PerRow(&bias),
                    activation: Activation::Relu,
                    relu_mask: None,
                    sgd: None,
                };
                let mut want = vec![0.0f32; m * n];
                sgemm_with(
                    kernel,
                    m,
                    n,
                    k,
                    1.0,
                    MatRef::row_major(&a, k),
                    MatRef::row_major(&b, n),
                    0.0,
                    MatMut::row_major(&mut want, n),
                    &epi,
                    par,
                )
                .unwrap();
                let mut got = vec![f32::NAN; m * n];
                sgemm_prepacked(
                    &packed,
                    n,
                    &MatRef::row_major(&b, n),
                    0.0,
                    MatMut::row_major(&mut got, n),
                    &epi,
                    par,
                )
                .unwrap();
                let first_diff = got.iter().zip(&want).position(|(g, w)| g != w);
                assert_eq!(first_diff, None, "{} {m}x{n}x{k} {par:?}", kernel.name);
            }
        }
    }
    let mut c = vec![0.0f32; 4];
    let err = sgemm_prepacked(
        &PackedA::new(),
        2,
        &MatRef::row_major(&[0.0; 4], 2),
        0.0,
        MatMut::row_major(&mut c, 2),
        &Epilogue::default(),
        Par::Seq,
    );
    assert_eq!(err.unwrap_err().operand, "A");
}
