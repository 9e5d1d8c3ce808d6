//! A detected video ResNet ([`VideoArch`]) as a [`Graph`]: the same ops as the image
//! networks, each conv and pool with its temporal window. Nodes are named by the file's module
//! paths; ReLU placement follows [`VideoArch`]'s rules (every stem conv and every branch conv
//! but a block's last; a block's last conv adds the shortcut, then applies ReLU).

use super::video::{Conv3d, Pool3d, VideoArch};
use crate::error::{Error, Result};
use crate::graph::{Conv, Graph, HeadWindow, Op, ValueId, Window};

/// Builds the inference graph of `arch`; the stem reads the user's NCTHW clips directly.
/// Refuses spatial windows that differ between H and W, which no recognised model has.
pub fn build_video_graph(arch: &VideoArch) -> Result<Graph> {
    let mut g = Graph::default();
    g.input = g.new_value();
    g.input_channels = 3;
    let mut x = g.input;
    for (i, c) in arch.stem.iter().enumerate() {
        x = push_conv(&mut g, c, true, vec![x], i == 0)?;
    }
    if let Some(pool) = arch.stem_pool {
        x = push_pool(&mut g, "stem.pool", pool, x)?;
    }
    for (s, stage) in arch.stages.iter().enumerate() {
        for block in &stage.blocks {
            let shortcut = match &block.shortcut {
                Some(c) => push_conv(&mut g, c, false, vec![x], false)?,
                None => x,
            };
            let last = block.branch.len() - 1;
            for (i, c) in block.branch.iter().enumerate() {
                let inputs = if i == last {
                    vec![x, shortcut]
                } else {
                    vec![x]
                };
                x = push_conv(&mut g, c, true, inputs, false)?;
            }
        }
        if let Some(pool) = stage.pool_after {
            x = push_pool(&mut g, &format!("stage{}.pool", s + 1), pool, x)?;
        }
    }
    let window = match arch.head_pool {
        Some(k) => HeadWindow::MeanOfWindows(k),
        None => HeadWindow::Whole,
    };
    g.features = g.push(
        "avgpool",
        Op::GlobalAvgPool {
            window,
            pre_act: None,
        },
        vec![x],
    );
    g.output = match &arch.head {
        Some(head) => {
            let linear = Op::Linear {
                weight: head.weight.clone(),
                bias: head.bias.clone(),
                in_features: arch.features(),
                out_features: head.classes,
            };
            let name = head.weight.trim_end_matches(".weight").to_string();
            g.push(name, linear, vec![g.features])
        }
        None => g.features,
    };
    Ok(g)
}

/// The spatial (H = W) part and the temporal window of a `(T, H, W)` window, or an error
/// naming `what` when H and W differ.
fn split_axes(
    what: &str,
    kernel: [usize; 3],
    stride: [usize; 3],
    pad: [usize; 3],
) -> Result<([usize; 3], Window)> {
    let square = |a: [usize; 3]| a[1] == a[2];
    if !(square(kernel) && square(stride) && square(pad)) {
        return Err(Error::NotResnet(format!(
            "{what}: kernel {kernel:?}, stride {stride:?}, padding {pad:?} (T, H, W) differ \
             between H and W; only square spatial windows are supported"
        )));
    }
    let temporal = Window {
        kernel: kernel[0],
        stride: stride[0],
        pad: pad[0],
    };
    Ok(([kernel[1], stride[1], pad[1]], temporal))
}

fn push_conv(
    g: &mut Graph,
    c: &Conv3d,
    relu: bool,
    inputs: Vec<ValueId>,
    input_nchw: bool,
) -> Result<ValueId> {
    let name = c.weight.trim_end_matches(".weight").to_string();
    let ([kernel, stride, pad], temporal) = split_axes(&name, c.kernel, c.stride, c.pad)?;
    let conv = Conv {
        weight: c.weight.clone(),
        bn: c.bn.clone(),
        in_channels: c.in_channels,
        out_channels: c.out_channels,
        groups: 1,
        kernel,
        stride,
        pad,
        temporal,
        relu,
        input_nchw,
        pre_act: None,
    };
    Ok(g.push(name, Op::Conv(conv), inputs))
}

fn push_pool(g: &mut Graph, name: &str, p: Pool3d, x: ValueId) -> Result<ValueId> {
    let ([kernel, stride, pad], temporal) = split_axes(name, p.kernel, p.stride, p.pad)?;
    let pool = Op::MaxPool {
        kernel,
        stride,
        pad,
        temporal,
    };
    Ok(g.push(name, pool, vec![x]))
}
