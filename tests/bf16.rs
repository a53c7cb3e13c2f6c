//! Zoo models compiled with `precision bf16` against the same models in
//! f32, from the same weights and inputs. The f32 models are held to the
//! f64 interpreter elsewhere (`oracle.rs`); here each bf16 model must give
//! their outputs, loss and gradients to within what rounding the operands
//! of every conv and dense product to bf16 (8 significant bits, a relative
//! error up to 2⁻⁹ an operand) can explain over the model's depth:
//! - outputs within 5% of the largest output, and the loss within 2%;
//! - each gradient tensor pointing the way f32's does, and of its size, to
//!   within four times how far the f32 model's own gradient moves when its
//!   weights and inputs are rounded to bf16 once (plus 1% of direction and
//!   10% of size). Deep in a fresh ResNet-20 at batch 4 that rounding alone
//!   turns the gradients by a cosine of 0.93–0.97: the batch norms' backward
//!   subtracts nearly equal terms, so no fixed bound fits every layer;
//! - and not bit-identical to f32, which would mean no bf16 product ran;
//!   except ResNet-20, all of whose products are too small for bf16 to pay
//!   and stay f32, to the bit.
//!
//! A wrong layout, a transposed operand or a missed scale would break the
//! directions by far more than those bounds.

use netc::runtime::bf16::quantize;
use netc_tests::batch;
use netc_tests::nets::{self, bf16};

/// The largest difference between `a` and `b` over the largest of `b`.
fn relative_gap(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// Cosine and norm ratio of `a` against `b`, in f64.
fn direction_and_size(a: &[f32], b: &[f32]) -> (f64, f64) {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum();
    let norm = |v: &[f32]| v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    let (na, nb) = (norm(a), norm(b));
    (dot / (na * nb).max(1e-30), na / nb.max(1e-30))
}

/// `v` rounded to bf16.
fn rounded(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| quantize(x)).collect()
}

/// Runs inference, a training forward and a backward pass of the bf16
/// model `$bf16` and the f32 model `$f32` (both seeded alike) on `$n`
/// samples, and holds the first to the second.
macro_rules! compare {
    ($name:expr, $bf16:ty, $f32:ty, $n:expr) => {{
        compare!($name, $bf16, $f32, $n, true)
    }};
    ($name:expr, $bf16:ty, $f32:ty, $n:expr, $rounds:expr) => {{
        let n: usize = $n;
        let mut low = <$bf16>::with_capacity(7, n);
        let mut full = <$f32>::with_capacity(7, n);
        let x: Vec<f32> = batch::<1>(n * <$f32>::INPUT_LEN, 11).into_iter().map(|[v]| v).collect();
        // The f32 model with its weights and inputs rounded to bf16 once:
        // how far that alone moves each gradient.
        let mut once = <$f32>::with_capacity(7, n);
        once.params_mut().visit_mut(|_, _, v| v.copy_from_slice(&rounded(v)));
        once.forward_train_flat(&rounded(&x)).expect("f32 forward_train");
        let labels: Vec<u32> = (0..n as u32).map(|i| (i * 3) % <$f32>::OUTPUT_LEN as u32).collect();

        let mut out_low = vec![0.0f32; n * <$f32>::OUTPUT_LEN];
        let mut out_full = out_low.clone();
        low.forward_flat(&x, &mut out_low).expect("bf16 forward");
        full.forward_flat(&x, &mut out_full).expect("f32 forward");
        let gap = relative_gap(&out_low, &out_full);
        assert!(gap <= 5e-2, "{}: inference {gap} of the largest output apart", $name);
        // Whether some product ran in bf16, as the model's shapes say.
        assert_eq!(out_low != out_full, $rounds, "{}: bf16 inference differs from f32's", $name);

        let train_low = low.forward_train_flat(&x).expect("bf16 forward_train").to_vec();
        let train_full = full.forward_train_flat(&x).expect("f32 forward_train").to_vec();
        let gap = relative_gap(&train_low, &train_full);
        assert!(gap <= 5e-2, "{}: training forward {gap} of the largest output apart", $name);
        let (loss_low, loss_full) =
            (low.backward(&labels).unwrap(), full.backward(&labels).unwrap());
        once.backward(&labels).expect("f32 backward");
        assert!(
            (loss_low - loss_full).abs() <= 2e-2 * loss_full.abs().max(1.0),
            "{}: loss {loss_low} in bf16, {loss_full} in f32",
            $name
        );

        let (mut grads_full, mut grads_once) = (Vec::new(), Vec::new());
        full.grads().expect("f32 gradients").visit(|name, _, g| {
            grads_full.push((name.to_string(), g.to_vec()));
        });
        once.grads().expect("f32 gradients").visit(|_, _, g| grads_once.push(g.to_vec()));
        let mut checked = 0;
        low.grads().expect("bf16 gradients").visit(|name, _, g| {
            let k = grads_full.iter().position(|(n, _)| n == name).expect("same tensors");
            let want = &grads_full[k].1;
            if name.contains("running_") || want.iter().all(|&v| v == 0.0) {
                return;
            }
            let (cosine, ratio) = direction_and_size(g, want);
            let (cosine_once, ratio_once) = direction_and_size(&grads_once[k], want);
            assert!(
                1.0 - cosine <= 4.0 * (1.0 - cosine_once) + 1e-2
                    && (ratio - 1.0).abs() <= 4.0 * (ratio_once - 1.0).abs() + 0.1,
                "{}: gradient of {name}: cosine {cosine}, norm ratio {ratio} \
                 (rounding once: {cosine_once} and {ratio_once})",
                $name
            );
            checked += 1;
        });
        assert!(checked > 0, "{}: no gradient compared", $name);
    }};
}

#[test]
fn bf16_mlp_follows_f32() {
    // 64 samples: the batch from which dense layers go bf16.
    compare!("mlp", bf16::mlp::Mlp, nets::mlp::Mlp, 64);
}

#[test]
fn bf16_lenet5_follows_f32() {
    // Its convs are too small and stay f32; its first dense layers go bf16.
    compare!("lenet5", bf16::lenet5::LeNet5, nets::lenet5::LeNet5, 64);
}

#[test]
fn bf16_resnet20_follows_f32() {
    // Its convs are too small for bf16 to pay, and its dense layer has 10
    // outputs: everything stays f32.
    compare!("resnet20", bf16::resnet20::ResNet20, nets::resnet20::ResNet20, 16, false);
}

#[test]
fn bf16_alexnet_follows_f32() {
    // Its convs go bf16; its dense layers, at 2 samples, stay f32.
    compare!("alexnet", bf16::alexnet::AlexNet, nets::alexnet::AlexNet, 2);
}

/// The code generator decides which convs of a `precision bf16` network go
/// bf16 by the runtime's rule, so that the others keep their f32 steps: the
/// two must agree on every conv of the zoo.
#[test]
fn the_generator_and_the_runtime_agree_on_which_convs_go_bf16() {
    use netc_dsl::program::{Arg, Geometry};
    let (mut bf16, mut f32) = (0, 0);
    for model in ["lenet5", "alexnet", "resnet20", "vgg11", "resnet50", "mobilenet_v2", "googlenet"]
    {
        let path = netc_tests::zoo_path(model);
        let source = std::fs::read_to_string(&path).expect("a zoo model");
        let checked = netc_dsl::check_source(&path.display().to_string(), &source).expect("checks");
        let mut g = checked.graphs.into_iter().next().expect("a network");
        g.precision = netc_dsl::Precision::Bf16;
        let program = netc_dsl::program::lower(&g);
        for step in &program.train_forward {
            let Some(Arg::Shape(Geometry::Conv { win, o, groups })) = step.args.first() else {
                continue;
            };
            let s = netc::runtime::conv::Conv2d {
                n: 1,
                c: win.c,
                h: win.h,
                w: win.w,
                o: *o,
                kh: win.kh,
                kw: win.kw,
                sh: win.sh,
                sw: win.sw,
                ph: win.ph,
                pw: win.pw,
                dh: win.dh,
                dw: win.dw,
                groups: *groups,
            };
            let generated = step.kernel == "conv2d_forward_bf16";
            assert_eq!(generated, s.bf16_pays(), "{model}: {} for {s:?}", step.kernel);
            if generated {
                bf16 += 1;
            } else {
                f32 += 1;
            }
        }
    }
    assert!(bf16 > 10 && f32 > 10, "{bf16} convs in bf16 and {f32} in f32: both sides are tested");
}
