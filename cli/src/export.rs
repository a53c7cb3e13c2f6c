//! `netc export model.net [--weights w.safetensors] -o model.onnx`: a
//! network to an ONNX file (opset 17) of its inference forward pass, with
//! its weights, or the weights a generated model's `new(seed)` starts
//! from. `--io FILE` also writes a random input and the network's output
//! on it by netc's f64 interpreter, to compare the export with another
//! runtime. A network that cannot be exported writes nothing.

use crate::fail;
use crate::source::read_checked;
use netc_dsl::export::onnx::{self, ExportError, Weights};
use netc_dsl::interp::{self, Mode};
use netc_dsl::{diag, Graph};
use netc_runtime::init::Start;
use netc_runtime::rng;
use netc_runtime::weights::{self, WeightsFile};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The `.net` file to export.
    file: PathBuf,
    /// The ONNX file to write (default: the input's name with `.onnx`).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// The weights, by `state_dict` name (default: drawn as `new(seed)`).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// The seed of the drawn weights and of `--io`'s input.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The batch of the exported graph, its static leading dim.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// The network to export, when the file has several (default: the first).
    #[arg(long)]
    network: Option<String>,
    /// Also write a random input and netc's output on it (safetensors:
    /// each input under its name, and `output`).
    #[arg(long)]
    io: Option<PathBuf>,
}

pub fn run(args: &Args) -> ExitCode {
    let Some(source) = read_checked(&args.file) else { return ExitCode::FAILURE };
    let graphs = &source.checked.graphs;
    let g = match &args.network {
        Some(name) => graphs.iter().find(|g| &g.name == name),
        None => graphs.first(),
    };
    let Some(g) = g else {
        let names: Vec<&str> = graphs.iter().map(|g| g.name.as_str()).collect();
        return fail(format!("no network to export; the file has: {}", names.join(", ")));
    };
    if args.batch == 0 {
        return fail("`--batch` must be at least 1");
    }
    let weights = match &args.weights {
        Some(path) => match read_weights(g, path) {
            Ok(w) => w,
            Err(e) => return fail(format!("{}: {e}", path.display())),
        },
        None => drawn_weights(g, args.seed),
    };
    let bytes = match onnx::export(g, &weights, args.batch) {
        Ok(b) => b,
        Err(ExportError::Layers(diags)) => {
            eprint!("{}", diag::render_all(&diags, &source.name, &source.text));
            return fail(format!("`{}` cannot be exported to ONNX", g.name));
        }
        Err(e) => return fail(format!("{}: {e}", source.name)),
    };
    let out = args.output.clone().unwrap_or_else(|| args.file.with_extension("onnx"));
    if let Err(e) = std::fs::write(&out, &bytes) {
        return fail(format!("cannot write {}: {e}", out.display()));
    }
    if let Some(path) = &args.io {
        if let Err(e) = write_io(path, g, &weights, args.batch, args.seed) {
            return fail(format!("{}: {e}", path.display()));
        }
    }
    println!(
        "wrote {} (network {}, opset {}, batch {}, {} bytes)",
        out.display(),
        g.name,
        onnx::OPSET,
        args.batch,
        bytes.len()
    );
    ExitCode::SUCCESS
}

/// The tensors of a safetensors file (f32, f16 or bf16) that `g` has
/// parameters of, checked against their shapes; the rest are left out.
fn read_weights(g: &Graph, path: &Path) -> Result<Weights, String> {
    let mut file = WeightsFile::open(path).map_err(|e| e.to_string())?;
    let mut weights = Weights::new();
    for node in &g.nodes {
        for p in g.params_of(node) {
            let name = format!("{}.{}", node.name, p.name);
            let mut values = vec![0f32; p.shape.elements()];
            file.read_into(&name, p.shape.dims(), &mut values).map_err(|e| e.to_string())?;
            weights.insert(name, values);
        }
    }
    Ok(weights)
}

/// The weights a generated model's `new(seed)` starts from: PyTorch's
/// initialisation, one RNG stream per tensor in `state_dict` order.
fn drawn_weights(g: &Graph, seed: u64) -> Weights {
    let mut weights = Weights::new();
    let mut stream = 0u64;
    for node in &g.nodes {
        for p in g.params_of(node) {
            let start = match p.init {
                netc_dsl::ops::Init::UniformFanIn { fan_in } => {
                    Start::Uniform(1.0 / (fan_in.max(1) as f64).sqrt())
                }
                netc_dsl::ops::Init::Ones => Start::Fill(1.0),
                netc_dsl::ops::Init::Zeros => Start::Fill(0.0),
                netc_dsl::ops::Init::Constant(v) => Start::Fill(v as f32),
            };
            let mut values = vec![0f32; p.shape.elements()];
            start.apply(&mut values, seed, stream);
            stream += 1;
            weights.insert(format!("{}.{}", node.name, p.name), values);
        }
    }
    weights
}

/// A standard normal input of `batch` samples and the network's output on
/// it by the f64 interpreter (inference mode), as a safetensors file.
fn write_io(
    path: &Path,
    g: &Graph,
    weights: &Weights,
    batch: usize,
    seed: u64,
) -> Result<(), String> {
    let inputs: Vec<Vec<f32>> = g
        .inputs
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let mut x = vec![0f32; batch * g.node(id).shape.elements()];
            rng::fill_normal(seed, u64::MAX - i as u64, &mut x);
            x
        })
        .collect();
    let wide: Vec<Vec<f64>> =
        inputs.iter().map(|x| x.iter().map(|&v| f64::from(v)).collect()).collect();
    let refs: Vec<&[f64]> = wide.iter().map(Vec::as_slice).collect();
    let interp_weights: interp::Weights = weights
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().map(|&x| f64::from(x)).collect()))
        .collect();
    let outputs =
        interp::run(g, &interp_weights, &refs, batch, Mode::Infer).map_err(|e| e.to_string())?;
    let output: Vec<f32> = interp::output(g, &outputs).iter().map(|&v| v as f32).collect();
    let mut tensors: Vec<(String, Vec<usize>, &[f32])> = Vec::new();
    for (&id, x) in g.inputs.iter().zip(&inputs) {
        let node = g.node(id);
        tensors.push((node.name.clone(), [vec![batch], node.shape.dims().to_vec()].concat(), x));
    }
    let out_shape = [vec![batch], g.node(g.output).shape.dims().to_vec()].concat();
    tensors.push(("output".into(), out_shape, &output));
    weights::save(path, &tensors).map_err(|e| e.to_string())
}
