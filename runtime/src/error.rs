//! The runtime's errors: a buffer of the wrong length ([`LenError`]), a
//! convolution that cannot run ([`ConvError`]), and the [`Error`] of a
//! generated model's methods. Kernels check their arguments up front (O(1)),
//! so a wrong buffer or shape is an `Err` naming it, never a panic or an
//! out-of-bounds read.

use crate::conv::{Conv2d, ConvAlgo};
use crate::conv_transpose::ConvTranspose2d;
use crate::optim::OptimizerError;
use std::fmt;

/// A buffer whose length does not match the shape of the op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LenError {
    /// The op, such as `conv2d_forward`.
    pub op: &'static str,
    /// The buffer, such as `weight` or `workspace`.
    pub tensor: &'static str,
    pub expected: usize,
    pub found: usize,
}

impl fmt::Display for LenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: `{}` has {} elements, expected {}",
            self.op, self.tensor, self.found, self.expected
        )
    }
}

impl std::error::Error for LenError {}

/// Checks that `tensor` of `op` holds exactly `expected` elements.
pub fn check_len(
    op: &'static str,
    tensor: &'static str,
    found: usize,
    expected: usize,
) -> Result<(), LenError> {
    if found == expected {
        Ok(())
    } else {
        Err(LenError { op, tensor, expected, found })
    }
}

/// Checks that `tensor` of `op` holds at least `expected` elements (for
/// workspaces, which may be shared and larger than one op needs).
pub fn check_min_len(
    op: &'static str,
    tensor: &'static str,
    found: usize,
    expected: usize,
) -> Result<(), LenError> {
    if found >= expected {
        Ok(())
    } else {
        Err(LenError { op, tensor, expected, found })
    }
}

/// Why a convolution refused its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConvError {
    /// A buffer of the wrong length.
    Len(LenError),
    /// A shape no convolution has ([`Conv2d::is_valid`]).
    InvalidShape { op: &'static str, shape: Box<Conv2d> },
    /// A valid shape that the algorithm asked for cannot compute.
    Unsupported { op: &'static str, algo: ConvAlgo, shape: Box<Conv2d> },
    /// A shape no transposed convolution has ([`ConvTranspose2d::is_valid`]).
    InvalidTranspose { op: &'static str, shape: Box<ConvTranspose2d> },
}

impl ConvError {
    /// [`ConvError::Unsupported`] of `algo` on `shape`.
    pub(crate) fn unsupported(op: &'static str, algo: ConvAlgo, shape: &Conv2d) -> Self {
        ConvError::Unsupported { op, algo, shape: Box::new(*shape) }
    }
}

impl fmt::Display for ConvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConvError::Len(e) => e.fmt(f),
            ConvError::InvalidShape { op, shape } => {
                let why = shape.invalid_reason().unwrap_or("it is valid");
                write!(f, "{op}: invalid shape ({shape}): {why}")
            }
            ConvError::Unsupported { op, algo, shape } => {
                write!(f, "{op}: the {} algorithm cannot compute ({shape})", algo.name())
            }
            ConvError::InvalidTranspose { op, shape } => {
                let why = shape.invalid_reason().unwrap_or("it is valid");
                write!(f, "{op}: invalid shape ({shape}): {why}")
            }
        }
    }
}

impl std::error::Error for ConvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConvError::Len(e) => Some(e),
            _ => None,
        }
    }
}

impl From<LenError> for ConvError {
    fn from(e: LenError) -> Self {
        ConvError::Len(e)
    }
}

/// Any error a generated model's methods return: bad input from the caller
/// (wrong lengths, a batch over capacity, labels out of range) or a weights
/// file that cannot be used. Each names what was wrong.
#[derive(Debug)]
pub enum Error {
    /// A buffer of the wrong length.
    Len(LenError),
    /// An ndarray view whose shape is not `[n, expected...]`.
    Shape {
        tensor: &'static str,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// More samples than the model was built for.
    BatchOverCapacity {
        batch: usize,
        capacity: usize,
    },
    /// A class label outside `0..classes`.
    Label {
        sample: usize,
        label: u64,
        classes: usize,
    },
    /// The model has no loss, so it cannot be trained.
    NoLoss,
    /// `backward` without a `forward_train` of its own: the activations it
    /// needs are gone (consumed by an earlier `backward`, or overwritten by
    /// an inference `forward`, which shares their memory).
    NoForwardTrain,
    /// A convolution that cannot run; its length errors are [`Error::Len`].
    Conv(ConvError),
    /// An optimizer step that cannot run; its length errors are
    /// [`Error::Len`].
    Optimizer(OptimizerError),
    /// A weights file that is missing, unreadable or does not match.
    Weights(String),
    Io(std::io::Error),
    /// A backward pass from an activation's output, given an activation
    /// (GELU, SiLU) whose derivative needs its input.
    NeedsInput {
        op: &'static str,
    },
    /// Batch norm trained on fewer than two values per channel (a batch
    /// of one sample of `[C]` or `[C, 1, 1]`), which have no variance.
    OneValuePerChannel {
        layer: &'static str,
        values: usize,
    },
    /// A region of a model's buffers that does not fit them: the buffers
    /// were made for another model or capacity.
    Arena(crate::arena::ArenaError),
    /// Targets of the wrong kind for the network's loss: class labels for
    /// a loss on values, or values for cross-entropy.
    WrongTargets {
        /// What the loss takes: "class labels" or "target values".
        takes: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Len(e) => e.fmt(f),
            Error::Shape { tensor, expected, found } => {
                let dims: Vec<String> = expected.iter().map(usize::to_string).collect();
                write!(f, "`{tensor}` has shape {found:?}, expected [n, {}]", dims.join(", "))
            }
            Error::BatchOverCapacity { batch, capacity } => {
                write!(f, "batch of {batch} samples is over the model's capacity of {capacity}")
            }
            Error::Label { sample, label, classes } => {
                write!(
                    f,
                    "label {label} of sample {sample} is out of range: there are {classes} classes"
                )
            }
            Error::NoLoss => f.write_str("the network has no loss, so it cannot be trained"),
            Error::NoForwardTrain => f.write_str(
                "backward needs its own forward_train: each forward_train allows one backward, \
                 and an inference forward in between overwrites the activations",
            ),
            Error::Conv(e) => e.fmt(f),
            Error::Optimizer(e) => e.fmt(f),
            Error::Weights(msg) => write!(f, "weights: {msg}"),
            Error::Io(e) => write!(f, "i/o: {e}"),
            Error::NeedsInput { op } => {
                write!(f, "{op}: this activation's derivative needs its input, not its output")
            }
            Error::Arena(e) => e.fmt(f),
            Error::WrongTargets { takes } => write!(f, "the network's loss takes {takes}"),
            Error::OneValuePerChannel { layer, values } => write!(
                f,
                "batch norm `{layer}` is trained on {values} value per channel; it needs at \
                 least 2, so a batch of at least 2 samples"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Len(e) => Some(e),
            Error::Conv(e) => Some(e),
            Error::Optimizer(e) => Some(e),
            Error::Io(e) => Some(e),
            Error::Arena(e) => Some(e),
            _ => None,
        }
    }
}

impl From<LenError> for Error {
    fn from(e: LenError) -> Self {
        Error::Len(e)
    }
}

/// Length errors stay [`Error::Len`], whichever kernel found them.
impl From<ConvError> for Error {
    fn from(e: ConvError) -> Self {
        match e {
            ConvError::Len(e) => Error::Len(e),
            e => Error::Conv(e),
        }
    }
}

/// Length errors stay [`Error::Len`], whichever kernel found them.
impl From<OptimizerError> for Error {
    fn from(e: OptimizerError) -> Self {
        match e {
            OptimizerError::Len(e) => Error::Len(e),
            e => Error::Optimizer(e),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}
