//! Inference fusion: a conv whose output only a batch norm reads becomes
//! one `conv2d_bn_forward_infer` step. At inference a batch norm is an
//! affine map per channel (its running statistics), so the runtime folds it
//! into the conv's weights and bias once, keeps them in the conv's cache,
//! and the batch norm's pass over the conv's output disappears; its
//! activation moves into the conv's epilogue. Training keeps both steps,
//! since it normalises by the batch's own statistics.

use crate::program::{Arg, Geometry, Program, Step, TensorId};

pub fn fold_batch_norm(mut p: Program) -> Program {
    let mut i = 0;
    while i < p.infer_forward.len() {
        if let Some((fused, norm)) = fold_at(&p, i) {
            p.infer_forward.remove(norm);
            p.infer_forward[i] = fused;
        }
        i += 1;
    }
    p
}

/// The fused step for the conv at `i` and the index of the batch norm it
/// absorbs, if the conv's output goes to that batch norm alone.
fn fold_at(p: &Program, i: usize) -> Option<(Step, usize)> {
    let conv = &p.infer_forward[i];
    let [shape, x, w, bias, Arg::Act(act), Arg::Out(t, _), Arg::Cache] = conv.args.as_slice()
    else {
        return None;
    };
    if conv.kernel != "conv2d_forward_cached" || !act.is_identity() || *t == p.output {
        return None;
    }
    let readers: Vec<usize> = (i + 1..p.infer_forward.len())
        .filter(|&k| p.infer_forward[k].reads().contains(t))
        .collect();
    let &[k] = readers.as_slice() else { return None };
    let norm = &p.infer_forward[k];
    let [bn, norm_act, Arg::In(input, _), gamma, beta, mean, var, y] = norm.args.as_slice() else {
        return None;
    };
    if norm.kernel != "batch_norm_forward_infer" || input != t {
        return None;
    }
    // Its channels must be the conv's: a reshape between them (an alias of
    // the same tensor) may make every value a channel of its own.
    let (Arg::Shape(Geometry::Conv { o, .. }), Arg::Shape(Geometry::BatchNorm { c, .. })) =
        (shape, bn)
    else {
        return None;
    };
    if o != c {
        return None;
    }
    // Nothing between them may write what the fused step reads earlier
    // (the conv's input) or read what it now writes later.
    let y_tensor = written(y)?;
    let between = &p.infer_forward[i + 1..k];
    let x_tensor = read(x)?;
    if between.iter().any(|s| s.writes().contains(&x_tensor) || s.reads().contains(&y_tensor)) {
        return None;
    }
    let args = vec![
        shape.clone(),
        x.clone(),
        w.clone(),
        bias.clone(),
        bn.clone(),
        gamma.clone(),
        beta.clone(),
        mean.clone(),
        var.clone(),
        norm_act.clone(),
        y.clone(),
        Arg::Cache,
    ];
    Some((Step::new(conv.node, "conv2d_bn_forward_infer", args), k))
}

fn read(a: &Arg) -> Option<TensorId> {
    if let Arg::In(t, _) = a {
        Some(*t)
    } else {
        None
    }
}

fn written(a: &Arg) -> Option<TensorId> {
    if let Arg::Out(t, _) = a {
        Some(*t)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use crate::program::{lower, passes};

    fn infer_kernels(src: &str) -> Vec<&'static str> {
        let checked = crate::check_source("t.net", src).expect("valid");
        let p = passes::run(lower(&checked.graphs[0]));
        p.infer_forward.iter().map(|s| s.kernel).collect()
    }

    #[test]
    fn a_conv_read_only_by_a_batch_norm_takes_it_in() {
        let kernels = infer_kernels(
            "network N {
                input x: [3, 8, 8]
                x -> conv2d(4, kernel: 3, bias: false) -> batch_norm -> relu
                  -> conv2d(4, kernel: 1) -> batch_norm as y
                loss mse(y)
            }",
        );
        assert_eq!(kernels, ["conv2d_bn_forward_infer", "conv2d_bn_forward_infer"]);
    }

    #[test]
    fn a_batch_norm_over_a_reshaped_conv_output_is_not_folded() {
        let kernels = infer_kernels(
            "network N {
                input x: [2, 4, 4]
                y = x -> conv2d(3, kernel: 3) -> reshape([12]) -> batch_norm
                loss mse(y)
            }",
        );
        assert!(kernels.contains(&"batch_norm_forward_infer"), "{kernels:?}");
    }

    #[test]
    fn a_conv_output_read_elsewhere_keeps_its_batch_norm() {
        let kernels = infer_kernels(
            "network N {
                input x: [4, 8, 8]
                c = x -> conv2d(4, kernel: 3, pad: 1)
                y = add(c -> batch_norm, c)
                loss mse(y)
            }",
        );
        assert!(kernels.contains(&"batch_norm_forward_infer"), "{kernels:?}");
        assert!(!kernels.contains(&"conv2d_bn_forward_infer"), "{kernels:?}");
    }
}
