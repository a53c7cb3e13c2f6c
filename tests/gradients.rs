//! Whole-network gradients of generated code against central finite
//! differences of its own loss: a network of smooth ops covering every
//! backward rule (groups, dilation, residuals, concat, batch norm, LRN,
//! average pooling, dense, sigmoid, tanh), a max-pooling network and an MSE
//! regression network; and LeNet-5's fused ReLU masks against the same
//! network without the fusion. (Finite differences in f32 cannot check
//! LeNet-5 itself: its ReLU and max-pool kinks and f32 rounding of the loss
//! swamp the small gradients of its first layers.)

use netc_tests::batch;

use netc_tests::nets::regression;
use netc_tests::nets::smooth;

/// Checks `coords` coordinates of every gradient tensor; `loss` recomputes
/// the loss (and gradients) at the current parameters.
///
/// A coordinate where the loss has a kink within `eps` (a ReLU crossing
/// zero, a max-pool window changing its winner) has no derivative to
/// compare: its one-sided slopes disagree, and it is skipped. Smooth
/// coordinates must agree with the analytic gradient; at least half of the
/// coordinates must be smooth, so the check cannot pass vacuously.
fn check(
    grads: Vec<(String, Vec<f32>)>,
    mut nudge: impl FnMut(&str, usize, f32),
    mut loss: impl FnMut() -> f32,
    eps: f32,
    coords: usize,
) {
    let mut failures = Vec::new();
    let (mut checked, mut kinks) = (0, 0);
    for (name, grad) in &grads {
        for k in 0..coords.min(grad.len()) {
            let i = (k * 7919 + 3) % grad.len();
            let centre = loss();
            nudge(name, i, eps);
            let plus = loss();
            nudge(name, i, -2.0 * eps);
            let minus = loss();
            nudge(name, i, eps);
            let (right, left) = ((plus - centre) / eps, (centre - minus) / eps);
            if (right - left).abs() > 0.1 * right.abs().max(left.abs()) + 2e-3 {
                kinks += 1;
                continue;
            }
            checked += 1;
            let numeric = (plus - minus) / (2.0 * eps);
            // f32 rounding of the loss, divided by 2·eps, bounds how close
            // a central difference can get.
            let tol = 2e-2 * numeric.abs().max(grad[i].abs()) + 2e-4;
            if (numeric - grad[i]).abs() > tol {
                failures.push(format!("{name}[{i}]: numeric {numeric}, analytic {}", grad[i]));
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    assert!(checked >= kinks, "only {checked} smooth coordinates against {kinks} kinks");
}

/// Checks every gradient of a fresh `$model` at inputs `$x` and `$targets`
/// (labels or regression targets) against central differences of its own
/// loss; batch-norm running statistics are buffers and are skipped.
macro_rules! check_model {
    ($model:expr, $x:expr, $targets:expr, $eps:expr, $coords:expr) => {{
        let mut model = $model;
        model.forward_train($x).expect("forward");
        model.backward($targets).expect("backward");
        let mut grads = Vec::new();
        model.grads().expect("gradients after a backward pass").visit(|name, _, g| {
            if !name.contains("running") {
                grads.push((name.to_string(), g.to_vec()));
            }
        });
        let model = std::cell::RefCell::new(model);
        check(
            grads,
            |name, i, delta| {
                model.borrow_mut().params_mut().visit_mut(|n, _, v| {
                    if n == name {
                        v[i] += delta;
                    }
                })
            },
            || {
                let mut m = model.borrow_mut();
                m.forward_train($x).expect("forward");
                m.backward($targets).expect("backward")
            },
            $eps,
            $coords,
        );
    }};
}

#[test]
fn smooth_network_gradients_match_finite_differences() {
    check_model!(smooth::Smooth::with_capacity(5, 3), &batch::<324>(3, 17), &[2u32, 0, 1], 1e-2, 6);
}

#[test]
fn regression_network_gradients_match_finite_differences() {
    let targets = [[0.5f32, -1.0], [1.0, 0.0], [-0.5, 0.25], [0.0, 2.0]];
    check_model!(
        regression::Regression::with_capacity(2, 4),
        &batch::<48>(4, 23),
        &targets,
        1e-3,
        8
    );
}

use netc_tests::nets::lenet5;
use netc_tests::nets::pooling;

#[test]
fn max_pool_network_gradients_match_finite_differences() {
    check_model!(
        pooling::Pooling::with_capacity(5, 3),
        &batch::<32>(3, 17),
        &[2u32, 0, 1],
        1e-2,
        6
    );
}

use netc_tests::nets::lenet5_leaky;

/// Differential test of the ReLU-mask fusion: LeNet-5 with `relu` (whose
/// backward is fused into the next layer's backward GEMM) and with
/// `leaky_relu(0.0)` (the same function, backward as a separate step) give
/// the same gradients from the same weights.
#[test]
fn fused_relu_masks_give_the_unfused_gradients() {
    use lenet5::LeNet5;
    use lenet5_leaky::LeNet5Leaky;
    let mut fused = LeNet5::with_capacity(3, 8);
    let mut plain = LeNet5Leaky::with_capacity(99, 8);
    let mut weights = Vec::new();
    fused.params().visit(|_, _, v| weights.push(v.to_vec()));
    let mut k = 0;
    plain.params_mut().visit_mut(|_, _, v| {
        v.copy_from_slice(&weights[k]);
        k += 1;
    });
    let x = batch::<784>(8, 4);
    let labels = [0u32, 1, 2, 3, 4, 5, 6, 7];
    fused.forward_train(&x).expect("forward");
    plain.forward_train(&x).expect("forward");
    let (a, b) =
        (fused.backward(&labels).expect("backward"), plain.backward(&labels).expect("backward"));
    assert_eq!(a, b, "same loss");
    let mut ga = Vec::new();
    fused
        .grads()
        .expect("gradients after a backward pass")
        .visit(|n, _, g| ga.push((n.to_string(), g.to_vec())));
    let mut gb = Vec::new();
    plain
        .grads()
        .expect("gradients after a backward pass")
        .visit(|n, _, g| gb.push((n.to_string(), g.to_vec())));
    for ((name, x), (_, y)) in ga.iter().zip(&gb) {
        for (i, (p, q)) in x.iter().zip(y).enumerate() {
            assert!((p - q).abs() <= 1e-6 * (1.0 + p.abs()), "{name}[{i}]: fused {p}, unfused {q}");
        }
    }
}
