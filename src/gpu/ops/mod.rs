//! One home per op family: each file owns its kernels' specs (file, entry point, bindings),
//! its uniform struct, its configuration and pipeline constants, and the arithmetic of its
//! dispatches, next to its shader in `shaders/`.
//!
//! [`of`] is the one place a graph op maps to a GPU op. Adding an op means: its shader, its
//! file here (a [`NodeOp`]), one arm in [`of`], its CPU reference and its tests.

pub mod conv;
pub mod fold_bn;
pub mod linear;
pub mod node_op;
pub mod pool;
pub mod se;

use crate::gpu::kernels::{KernelSpec, UniformLayout};
use crate::graph::{Graph, Op};
use conv::steps::ConvNode;
use fold_bn::FoldSource;
use linear::Linear;
pub use node_op::NodeOp;
use pool::Pool;
use se::SqueezeExciteNode;

/// The GPU op of a graph op.
pub fn of(op: &Op) -> Box<dyn NodeOp + '_> {
    match op {
        Op::Conv(c) => Box::new(ConvNode(c)),
        &Op::MaxPool {
            kernel,
            stride,
            pad,
            temporal,
        } => Box::new(Pool::Max {
            kernel,
            stride,
            pad,
            temporal,
        }),
        Op::AvgPool {
            kernel,
            stride,
            pad,
            pre_act,
            ..
        } => Box::new(Pool::Avg {
            kernel: *kernel,
            stride: *stride,
            pad: *pad,
            pre_act: pre_act.is_some(),
        }),
        Op::GlobalAvgPool { pre_act, window } => Box::new(Pool::GlobalAvg {
            pre_act: pre_act.is_some(),
            window: *window,
        }),
        Op::SqueezeExcite(se) => Box::new(SqueezeExciteNode(se)),
        Op::Linear {
            weight,
            bias,
            in_features,
            out_features,
        } => Box::new(Linear {
            weight,
            bias,
            in_features: *in_features,
            out_features: *out_features,
        }),
    }
}

/// Every prepared layer of `graph` (named as [`NodeOp::folds`] names them), with the tensors
/// it is folded from.
pub fn folds(graph: &Graph) -> Vec<(String, FoldSource)> {
    graph
        .nodes
        .iter()
        .flat_map(|node| of(&node.op).folds(&node.name))
        .collect()
}

/// Every kernel, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kernel {
    ConvTiled,
    ConvRegisters,
    ConvReduce,
    ConvGemm,
    ConvGemmTiled,
    FoldBn,
    MaxPool,
    AvgPool,
    GlobalAvgPool,
    Linear,
    SqueezeExcite,
    SeApply,
    WinogradWeights,
    WinogradInput,
    WinogradGemm,
    WinogradOutput,
}

impl Kernel {
    pub const ALL: [Kernel; 16] = [
        Kernel::ConvTiled,
        Kernel::ConvRegisters,
        Kernel::ConvReduce,
        Kernel::ConvGemm,
        Kernel::ConvGemmTiled,
        Kernel::FoldBn,
        Kernel::MaxPool,
        Kernel::AvgPool,
        Kernel::GlobalAvgPool,
        Kernel::Linear,
        Kernel::SqueezeExcite,
        Kernel::SeApply,
        Kernel::WinogradWeights,
        Kernel::WinogradInput,
        Kernel::WinogradGemm,
        Kernel::WinogradOutput,
    ];

    /// The kernel whose spec has this name.
    pub fn named(name: &str) -> Option<Kernel> {
        Kernel::ALL.into_iter().find(|k| k.spec().name == name)
    }

    /// Its spec, declared by its op.
    pub fn spec(self) -> KernelSpec {
        match self {
            Kernel::ConvTiled => conv::TILED,
            Kernel::ConvRegisters => conv::REGISTERS,
            Kernel::ConvReduce => conv::SPLIT_K_SUM,
            Kernel::ConvGemm => conv::gemm::GEMM,
            Kernel::ConvGemmTiled => conv::gemm::GEMM_TILED,
            Kernel::FoldBn => fold_bn::FOLD_BN,
            Kernel::MaxPool => pool::MAX_POOL,
            Kernel::AvgPool => pool::AVG_POOL,
            Kernel::GlobalAvgPool => pool::GLOBAL_AVG_POOL,
            Kernel::Linear => linear::LINEAR,
            Kernel::SqueezeExcite => se::SQUEEZE_EXCITE,
            Kernel::SeApply => se::SE_APPLY,
            Kernel::WinogradWeights => conv::winograd::WEIGHT_TRANSFORM,
            Kernel::WinogradInput => conv::winograd::INPUT_TRANSFORM,
            Kernel::WinogradGemm => conv::winograd::GEMM,
            Kernel::WinogradOutput => conv::winograd::OUTPUT_TRANSFORM,
        }
    }

    pub fn file(self) -> &'static str {
        self.spec().file
    }

    pub fn entry(self) -> &'static str {
        self.spec().entry
    }

    pub fn bindings(self) -> &'static [crate::gpu::kernels::Binding] {
        self.spec().bindings
    }

    pub fn source(self) -> &'static str {
        self.spec().source()
    }
}

impl From<Kernel> for KernelSpec {
    fn from(kernel: Kernel) -> Self {
        kernel.spec()
    }
}

/// The specs of every kernel, for [`crate::gpu::kernels::Kernels::new`].
pub fn all_kernels() -> Vec<KernelSpec> {
    Kernel::ALL.map(Kernel::spec).to_vec()
}

/// Every uniform struct with where its fields sit, for the reflection test.
pub const UNIFORMS: [UniformLayout; 7] = [
    conv::CONV_UNIFORM,
    conv::gemm::GEMM_UNIFORM,
    pool::POOL_UNIFORM,
    linear::LINEAR_UNIFORM,
    fold_bn::FOLD_UNIFORM,
    se::SE_UNIFORM,
    conv::winograd::WINOGRAD_UNIFORM,
];
