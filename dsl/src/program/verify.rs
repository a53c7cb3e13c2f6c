//! The program verifier: every tensor is written before it is read, a
//! tensor a step writes is no other argument of that step, tensors and
//! parameters exist, and every tensor argument has the length its kernel
//! expects. All of it is read off the steps' arguments, so every kernel is
//! checked the same way. Passes run it after themselves in debug builds; a
//! failure is a compiler bug.

use super::{Access, Program, Step, TensorId};
use std::collections::HashSet;

pub fn verify(p: &Program) -> Result<(), String> {
    let tensor_ok = |t: TensorId| t.0 < p.tensors.len();
    for t in p.inputs.iter().map(|i| i.tensor).chain([p.output, p.train_output]) {
        if !tensor_ok(t) {
            return Err(format!("tensor {} does not exist", t.0));
        }
    }
    let mut written: HashSet<TensorId> = p.inputs.iter().map(|i| i.tensor).collect();
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
    check_steps(p, &p.backward, &mut written, "backward")
}

fn check_steps(
    p: &Program,
    steps: &[Step],
    written: &mut HashSet<TensorId>,
    pass: &str,
) -> Result<(), String> {
    for (i, s) in steps.iter().enumerate() {
        let at = || format!("{pass} step {i} (`{}`)", s.kernel);
        let tensors = s.tensors();
        for (t, _) in &tensors {
            if t.0 >= p.tensors.len() {
                return Err(format!("{} uses tensor {} which does not exist", at(), t.0));
            }
        }
        for q in s.param_reads().into_iter().chain(s.grads()) {
            if q.0 >= p.params.len() {
                return Err(format!("{} uses parameter {} which does not exist", at(), q.0));
            }
        }
        for (t, access) in &tensors {
            if *access != Access::Write && !written.contains(t) {
                return Err(format!("{} reads `{}` before it is written", at(), p.tensor(*t).name));
            }
        }
        let reads: Vec<TensorId> =
            tensors.iter().filter(|(_, a)| *a == Access::Read).map(|(t, _)| *t).collect();
        if tensors.iter().any(|(t, a)| *a == Access::Write && reads.contains(t)) {
            return Err(format!(
                "{} reads and writes one tensor outside an in-place argument",
                at()
            ));
        }
        check_lengths(p, s).map_err(|e| format!("{}: {e}", at()))?;
        written.extend(s.writes());
    }
    Ok(())
}

/// Every tensor argument's expected length against the tensor's.
fn check_lengths(p: &Program, s: &Step) -> Result<(), String> {
    for (t, _, expected) in s.tensor_lengths() {
        let found = p.tensor(t).per_sample();
        if expected.is_some_and(|e| e != found) {
            return Err(format!(
                "`{}` has {found} elements per sample, the kernel expects {}",
                p.tensor(t).name,
                expected.unwrap_or(found)
            ));
        }
    }
    Ok(())
}
