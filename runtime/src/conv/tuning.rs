//! The thresholds by which the convolutions pick an algorithm, and a
//! variant within one, from the shape alone; the measurements behind them
//! are in BENCHMARKS.md.

use std::ops::RangeInclusive;

// Winograd F(4x4, 3x3) (`winograd.rs`) and its 5x5 split (`winograd_split.rs`).

/// Input channels from which the forward pass goes Winograd: with fewer,
/// the transforms cost more than the multiplies they save.
pub(super) const WINOGRAD_MIN_CHANNELS: usize = 8;

/// Channels into which the backward-data pass goes Winograd: with 3, im2col
/// still wins where the forward pass (3 channels in) would not.
pub(super) const WINOGRAD_BACKWARD_DATA_MIN_CHANNELS: usize = 4;

/// Tiles a call needs for Winograd to pay at all: below, most of a 16-lane
/// group is padding, and making the transformed weights `U` costs more
/// than the tiles save.
pub(super) const WINOGRAD_MIN_TILES: usize = 16;

/// Bytes of `U` that stream through the tuple GEMMs nearly for free: as
/// much as stays in L2.
pub(super) const WINOGRAD_CACHED_U_BYTES: usize = 1 << 20;

/// Tiles a call needs to amortise a `U` larger than
/// [`WINOGRAD_CACHED_U_BYTES`], which every call makes and reads from
/// memory.
pub(super) const WINOGRAD_LARGE_U_MIN_TILES: usize = 128;

/// The largest `U` of a Winograd weight gradient: every task sums into its
/// own transformed gradient of that size, which must stay in L2.
pub(super) const WINOGRAD_WEIGHT_GRAD_MAX_U_BYTES: usize = 1 << 20;

/// Input channels from which the forward pass of a 5x5 conv goes by the
/// split Winograd: with fewer, copying the input four times costs more
/// than the multiplies it saves.
pub(super) const SPLIT_MIN_CHANNELS: usize = 32;

// The depthwise convolution (`depthwise.rs`).

/// Output channels per input channel up to which a depthwise conv's
/// forward pass and weight gradient go by its own kernels: with more, each
/// group is a GEMM with enough rows of weights to reuse its im2col columns.
pub(super) const DEPTHWISE_MAX_MULTIPLIER: usize = 4;

/// The same for the backward-data pass, which spreads out and reads the
/// `dy` planes of every output channel of an input channel, where im2col's
/// GEMM sums them in one pass.
pub(super) const DEPTHWISE_BACKWARD_DATA_MAX_MULTIPLIER: usize = 1;

// The direct convolution (`direct.rs`).

/// Output channels up to which the forward pass goes direct: with more,
/// the GEMM's register blocks reuse each input more.
pub(super) const DIRECT_MAX_OUTPUTS: usize = 64;

/// The largest `c·o` of a single sample that goes direct: one sample runs
/// on one thread, where its im2col GEMMs split between the threads and
/// take weights packed once ([`super::ForwardCache`]).
pub(super) const DIRECT_ONE_SAMPLE_MAX_CHANNELS: usize = 128;

/// Channels into which the backward-data pass goes direct: into fewer, and
/// from the GEMM's blocking on, im2col wins.
pub(super) const DIRECT_BACKWARD_DATA_CHANNELS: RangeInclusive<usize> = 4..=64;

/// Taps of the windows whose backward-data pass goes direct whatever the
/// output channels (up to [`DIRECT_MAX_OUTPUTS`]): the direct pass correlates
/// `dy` padded by the window, and wider windows waste more taps on the
/// padding.
pub(super) const DIRECT_BACKWARD_DATA_NARROW_TAPS: usize = 9;

/// Output channels up to which a wider window's backward-data pass still
/// goes direct.
pub(super) const DIRECT_BACKWARD_DATA_WIDE_MAX_OUTPUTS: usize = 16;

/// The largest `c·o` whose weight gradient goes direct: with more channels,
/// the samples' planes no longer fit in L1.
pub(super) const DIRECT_WEIGHT_GRAD_MAX_CHANNELS: usize = 256;

/// Output channels from which the AVX-512 backward-data pass scatters `dy`
/// rather than correlating it padded: each addition into the part planes
/// then follows that many multiply-adds.
pub(super) const SCATTER_MIN_OUTPUTS: usize = 16;

/// Rows and columns by which a window must shrink the plane on each side
/// for the backward-data pass to scatter whatever its channels: then `dy`'s
/// padding would be most of the correlation's work.
pub(super) const SCATTER_MIN_SHRINK: usize = 2;

// Im2col with several samples a GEMM (`im2col_gemm.rs`).

/// Output planes at least this large keep one GEMM per sample, which then
/// has enough columns.
pub(super) const IM2COL_BATCHED_MAX_PLANE: usize = 256;

/// Groups with at least this many output channels keep one GEMM per sample
/// too: their weights fill the GEMM's rows, and the larger side-by-side
/// matrices ran slower.
pub(super) const IM2COL_BATCHED_MAX_GROUP_OUTPUTS: usize = 32;

/// The most floats of im2col columns one GEMM takes (512 KB), so that the
/// matrix is still in L2 when the GEMM packs it.
pub(super) const IM2COL_BATCHED_MAX_COLUMNS: usize = 1 << 17;

// The bf16 passes (`im2col_bf16.rs`).

/// Output channels a group needs for its bf16 GEMMs to pay: fewer leave
/// most rows of the AMX kernel's 32-row blocks empty.
pub(super) const BF16_MIN_GROUP_OUTPUTS: usize = 64;

/// Multiply-adds of one sample's product (per group) from which bf16 pays:
/// below, packing and converting the operands each call costs more than
/// the faster multiplies save, and f32 Winograd beats them.
pub(super) const BF16_MIN_SAMPLE_MACS: usize = 16 << 20;
