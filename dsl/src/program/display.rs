//! A readable listing of a program's steps, for `netc emit --program` and
//! for debugging passes.

use super::{Program, Step, TensorId};
use std::fmt::{self, Write as _};

impl Program {
    fn list(&self, out: &mut String, title: &str, steps: &[Step]) -> fmt::Result {
        writeln!(out, "{title}:")?;
        for s in steps {
            let names = |ts: Vec<TensorId>| {
                ts.iter().map(|t| self.tensor(*t).name.clone()).collect::<Vec<_>>().join(", ")
            };
            writeln!(out, "  {:<32} {} <- {}", s.kernel, names(s.writes()), names(s.reads()))?;
        }
        Ok(())
    }

    /// The steps of every pass, one per line: `kernel  writes <- reads`.
    pub fn listing(&self) -> String {
        let mut out = String::new();
        let _ = self.list(&mut out, "inference", &self.infer_forward);
        let _ = self.list(&mut out, "training forward", &self.train_forward);
        if let Some(loss) = &self.loss {
            let _ = writeln!(
                out,
                "loss {}: {} <- {}",
                loss.kind,
                self.tensor(loss.grad).name,
                self.tensor(loss.input).name
            );
        }
        let _ = self.list(&mut out, "backward", &self.backward);
        out
    }
}
