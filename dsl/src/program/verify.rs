//! The program verifier: every tensor is written before it is read, a step
//! never reads what it writes (except the in-place kinds), tensors and
//! parameters exist, and shapes agree. Passes run it after themselves in
//! debug builds; a failure is a compiler bug.

use super::{Program, Step, StepKind, TensorId};
use std::collections::HashSet;

pub fn verify(p: &Program) -> Result<(), String> {
    let tensor_ok = |t: TensorId| t.0 < p.tensors.len();
    let mut written: HashSet<TensorId> = [p.input].into_iter().collect();
    check_steps(p, &p.infer_forward, &mut written.clone(), "inference")?;
    check_steps(p, &p.train_forward, &mut written, "training forward")?;
    if let Some(loss) = &p.loss {
        if !written.contains(&loss.input) {
            return Err(format!(
                "the loss reads `{}` before it is written",
                p.tensor(loss.input).name
            ));
        }
        written.insert(loss.grad);
    }
    check_steps(p, &p.backward, &mut written, "backward")?;
    for t in [p.input, p.output, p.train_output] {
        if !tensor_ok(t) {
            return Err(format!("tensor {} does not exist", t.0));
        }
    }
    Ok(())
}

fn check_steps(
    p: &Program,
    steps: &[Step],
    written: &mut HashSet<TensorId>,
    pass: &str,
) -> Result<(), String> {
    for (i, s) in steps.iter().enumerate() {
        let (reads, writes) = (s.kind.reads(), s.kind.writes());
        for t in reads.iter().chain(&writes) {
            if t.0 >= p.tensors.len() {
                return Err(format!("{pass} step {i} uses tensor {} which does not exist", t.0));
            }
        }
        for t in &reads {
            if !written.contains(t) {
                return Err(format!(
                    "{pass} step {i} ({:?}) reads `{}` before it is written",
                    s.kind,
                    p.tensor(*t).name
                ));
            }
        }
        if !s.kind.is_in_place() && writes.iter().any(|w| reads.contains(w)) {
            return Err(format!("{pass} step {i} reads and writes the same tensor: {:?}", s.kind));
        }
        check_shapes(p, &s.kind).map_err(|e| format!("{pass} step {i}: {e}"))?;
        written.extend(writes);
    }
    Ok(())
}

fn check_shapes(p: &Program, k: &StepKind) -> Result<(), String> {
    let len = |t: TensorId| p.tensor(t).per_sample();
    let same = |a: TensorId, b: TensorId| {
        if len(a) == len(b) {
            Ok(())
        } else {
            Err(format!(
                "`{}` has {} elements per sample, `{}` {}",
                p.tensor(a).name,
                len(a),
                p.tensor(b).name,
                len(b)
            ))
        }
    };
    match k {
        StepKind::Activation { x, y, .. }
        | StepKind::Copy { x, y }
        | StepKind::Dropout { x, y, .. } => same(*x, *y),
        StepKind::Add { a, b, y, .. } => same(*a, *b).and(same(*a, *y)),
        StepKind::AddAssign { acc, x } => same(*acc, *x),
        StepKind::Dense { x, y, input, output, .. } => {
            if len(*x) == *input && len(*y) == *output {
                Ok(())
            } else {
                Err(format!(
                    "dense {input}->{output} on `{}` and `{}`",
                    p.tensor(*x).name,
                    p.tensor(*y).name
                ))
            }
        }
        StepKind::Conv { x, win, .. }
        | StepKind::MaxPool { x, win, .. }
        | StepKind::MaxPoolInfer { x, win, .. }
        | StepKind::AvgPool { x, win, .. } => {
            if len(*x) == win.c * win.h * win.w {
                Ok(())
            } else {
                Err(format!(
                    "window input `{}` is not {}x{}x{}",
                    p.tensor(*x).name,
                    win.c,
                    win.h,
                    win.w
                ))
            }
        }
        _ => Ok(()),
    }
}
