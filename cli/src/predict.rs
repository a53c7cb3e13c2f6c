//! `netc predict`: classifies one image with a saved checkpoint.

use crate::evaluate::argmax;
use crate::image::{read_image, resize};
use crate::network::{choose, Chosen};
use crate::{fail, netfile, Network};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    /// A PGM (P2 or P5) or PNG image, any size: it is converted to
    /// grayscale and resized to the network's input. Digits are light on
    /// dark, as MNIST.
    image: PathBuf,
    /// A `.net` file (built once, cached) instead of a zoo model.
    #[arg(long)]
    file: Option<PathBuf>,
    #[arg(long, default_value = "lenet5")]
    model: String,
    /// The checkpoint; default `runs/<model>/model.safetensors`.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
}

pub fn predict(args: &PredictArgs, built: Option<Network>) -> ExitCode {
    let network = match choose(built, args.file.as_deref(), &args.model, None) {
        Ok(Chosen::Built(n)) => n,
        Ok(Chosen::File(file, precision)) => return netfile::run(&file, precision),
        Err(e) => return fail(e),
    };
    let result = (|| -> Result<(), String> {
        let name = network.name;
        let mut model = (network.factory)(0, 1);
        let side = match model.input_shape() {
            [1, h, w] if h == w => *h,
            [n] if (*n as f64).sqrt().fract() == 0.0 => (*n as f64).sqrt() as usize,
            other => {
                return Err(format!(
                    "`netc predict` classifies grayscale square images; `{name}` takes {other:?}"
                ))
            }
        };
        let checkpoint = args
            .checkpoint
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(name).join("model.safetensors"));
        model.load(&checkpoint).map_err(|e| e.to_string())?;
        let (w, h, pixels) = read_image(&args.image)?;
        let x = resize(w, h, &pixels, side);
        let mut logits = vec![0.0f32; model.output_len()];
        model.predict(&x, &mut logits).map_err(|e| e.to_string())?;
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f32 = exp.iter().sum();
        let best = argmax(&logits);
        println!("{}: class {best} (probability {:.3})", args.image.display(), exp[best] / sum);
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}
