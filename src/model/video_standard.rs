//! The released video ResNets by name (`--arch r3d_18`), as the weight shapes their libraries
//! create: torchvision's `r3d_18`, `mc3_18`, `r2plus1d_18` (`models/video/resnet.py`) and
//! pytorchvideo's `slow_r50`, `c2d_r50`, `i3d_r50` (`models/resnet.py`, the hub's settings).
//! The architecture then follows from those shapes by detection's own rules
//! ([`super::video::from_shapes`]), so a named model and a checkpoint of it are the same
//! [`VideoArch`]. Pure data; synthetic weights for them are in [`super::synthetic`].

use super::video::{from_shapes, VideoArch};

/// The names [`standard_video`] knows.
pub const STANDARD_VIDEO: [&str; 6] = [
    "r3d_18",
    "mc3_18",
    "r2plus1d_18",
    "slow_r50",
    "c2d_r50",
    "i3d_r50",
];

/// A released video ResNet with a `classes`-way head (400: Kinetics), or `None` for a name
/// it does not know.
pub fn standard_video(name: &str, classes: usize) -> Option<VideoArch> {
    let shapes = match name {
        "r3d_18" | "mc3_18" | "r2plus1d_18" => torchvision_shapes(name, classes),
        "slow_r50" | "c2d_r50" | "i3d_r50" => pytorchvideo_shapes(name, classes),
        _ => return None,
    };
    from_shapes(&shapes).ok()
}

type Shapes = Vec<(String, Vec<usize>)>;

fn conv(out: &mut Shapes, name: String, shape: [usize; 5]) {
    out.push((format!("{name}.weight"), shape.to_vec()));
}

/// torchvision: BasicBlocks [2, 2, 2, 2] of planes 64·[1, 2, 4, 8]; mc3 keeps 3×3×3 only in
/// its stem and layer1; R(2+1)D splits each conv through `midplanes` channels.
fn torchvision_shapes(name: &str, classes: usize) -> Shapes {
    let mut out = Vec::new();
    if name == "r2plus1d_18" {
        conv(&mut out, "stem.0".into(), [45, 3, 1, 7, 7]);
        conv(&mut out, "stem.3".into(), [64, 45, 3, 1, 1]);
    } else {
        conv(&mut out, "stem.0".into(), [64, 3, 3, 7, 7]);
    }
    let mut inplanes = 64;
    for (i, planes) in [64, 128, 256, 512].into_iter().enumerate() {
        let kt = if name == "mc3_18" && i > 0 { 1 } else { 3 };
        for b in 0..2 {
            let p = format!("layer{}.{b}", i + 1);
            // torchvision's BasicBlock: one midplanes for both convs, from the block's input.
            let mid = (inplanes * planes * 27) / (inplanes * 9 + 3 * planes);
            for (k, cin) in [(1, inplanes), (2, planes)] {
                if name == "r2plus1d_18" {
                    conv(&mut out, format!("{p}.conv{k}.0.0"), [mid, cin, 1, 3, 3]);
                    conv(&mut out, format!("{p}.conv{k}.0.3"), [planes, mid, 3, 1, 1]);
                } else {
                    conv(&mut out, format!("{p}.conv{k}.0"), [planes, cin, kt, 3, 3]);
                }
            }
            if b == 0 && i > 0 {
                conv(
                    &mut out,
                    format!("{p}.downsample.0"),
                    [planes, inplanes, 1, 1, 1],
                );
            }
            inplanes = planes;
        }
    }
    out.push(("fc.weight".into(), vec![classes, 512]));
    out
}

/// pytorchvideo: bottlenecks [3, 4, 6, 3], inner widths 64·[1, 2, 4, 8], outputs ×4; the
/// stem and `conv_a`'s temporal kernels per model, c2d/i3d's pool as the parameter-free
/// `blocks.2`.
fn pytorchvideo_shapes(name: &str, classes: usize) -> Shapes {
    let stem_t = if name == "i3d_r50" { 5 } else { 1 };
    // Temporal kernel of `conv_a` for block `b` of stage `s`, cycling through each stage's list.
    let conv_a_t = |s: usize, b: usize| -> usize {
        let pattern: &[usize] = match (name, s) {
            ("slow_r50", 2 | 3) => &[3],
            ("i3d_r50", 0) => &[3],
            ("i3d_r50", 1 | 2) => &[3, 1],
            ("i3d_r50", 3) => &[1, 3],
            _ => &[1],
        };
        pattern[b % pattern.len()]
    };
    let mut out = Vec::new();
    conv(&mut out, "blocks.0.conv".into(), [64, 3, stem_t, 7, 7]);
    let pooled = name != "slow_r50";
    let (mut index, mut cin) = (1, 64);
    for (s, depth) in [3, 4, 6, 3].into_iter().enumerate() {
        let (inner, width) = (64 << s, 256 << s);
        for b in 0..depth {
            let p = format!("blocks.{index}.res_blocks.{b}");
            let kt = conv_a_t(s, b);
            conv(
                &mut out,
                format!("{p}.branch2.conv_a"),
                [inner, cin, kt, 1, 1],
            );
            conv(
                &mut out,
                format!("{p}.branch2.conv_b"),
                [inner, inner, 1, 3, 3],
            );
            conv(
                &mut out,
                format!("{p}.branch2.conv_c"),
                [width, inner, 1, 1, 1],
            );
            if b == 0 {
                conv(&mut out, format!("{p}.branch1_conv"), [width, cin, 1, 1, 1]);
            }
            cin = width;
        }
        // c2d/i3d: `blocks.2` is the temporal max pool after stage 1.
        index += if s == 0 && pooled { 2 } else { 1 };
    }
    out.push((format!("blocks.{index}.proj.weight"), vec![classes, 2048]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::video::VideoFamily;

    #[test]
    fn every_standard_model_is_detected_as_itself() {
        let families = [
            VideoFamily::R3d,
            VideoFamily::Mc3,
            VideoFamily::R2Plus1d,
            VideoFamily::Slow,
            VideoFamily::C2d,
            VideoFamily::I3d,
        ];
        for (name, family) in STANDARD_VIDEO.iter().zip(families) {
            let arch = standard_video(name, 400).unwrap();
            assert_eq!(arch.name(), *name);
            assert_eq!((arch.family, arch.outputs()), (family, 400), "{name}");
        }
        assert!(standard_video("r3d_34", 400).is_none());
    }

    #[test]
    fn r2plus1d_18_has_the_released_mid_channels() {
        let arch = standard_video("r2plus1d_18", 400).unwrap();
        // (inplanes·planes·27) // (inplanes·9 + 3·planes) per block, 45 in the stem.
        let text = arch.describe();
        assert!(
            text.contains("mid-channels 45, 144, 230, 288, 460, 576, 921, 1152"),
            "{text}"
        );
    }

    #[test]
    fn synthetic_weights_of_a_standard_model_detect_as_it() {
        let arch = standard_video("r2plus1d_18", 400).unwrap();
        let weights = crate::model::synthetic::synthetic_video_weights(&arch, 3).unwrap();
        assert_eq!(crate::model::video::detect_video(&weights).unwrap(), arch);
    }
}
