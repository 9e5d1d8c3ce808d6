//! The kernel author's tools end to end: `resnet profile`, `bench` and `tune` with their
//! JSON outputs, and a tuning cache written by `tune` steering a later `profile`.

use crate::common;

use std::process::{Command, Output};

use serde_json::Value;

fn resnet(args: &[&str]) -> Output {
    common::isolate_caches(&mut Command::new(env!("CARGO_BIN_EXE_resnet")))
        .args(args)
        .output()
        .expect("run resnet")
}

fn json(o: &Output, what: &str) -> Value {
    assert!(
        o.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{what}: not JSON: {e}"))
}

const NET: [&str; 4] = ["--arch", "resnet18", "--size", "32x32"];

#[test]
fn profile_json_and_chart() {
    if common::gpu(false).is_none() {
        return;
    }
    let dir = common::scratch("tools-profile");
    let chart = dir.join("layers.svg");
    let mut args = vec!["profile", "--no-cache", "--iters", "2", "--json", "--chart"];
    let chart_arg = chart.to_str().unwrap();
    args.push(chart_arg);
    args.extend(NET);
    let p = json(&resnet(&args), "profile");
    assert!(p["adapter"].as_str().is_some_and(|a| !a.is_empty()));
    let layers = p["layers"].as_array().unwrap();
    // ResNet-18: 20 convs, max pool, global pool, head; on a CPU adapter its 13 stride-1
    // 3×3 convs after the stem run Winograd, whose transforms are two dispatches more each.
    let winograd = layers
        .iter()
        .filter(|l| l["kernel"] == "WinogradGemm")
        .count();
    assert!(winograd == 0 || winograd == 13, "{layers:?}");
    assert_eq!(layers.len(), 23 + 2 * winograd, "{layers:?}");
    let mut total = 0.0;
    for l in layers {
        for key in ["name", "kernel", "config"] {
            assert!(l[key].as_str().is_some_and(|s| !s.is_empty()), "{l}");
        }
        let ms = l["gpu_ms"].as_f64().unwrap();
        assert!(ms.is_finite() && ms >= 0.0, "{l}");
        assert!(l["gflop"].as_f64().unwrap() >= 0.0);
        total += ms;
    }
    let reported = p["total_gpu_ms"].as_f64().unwrap();
    assert!(
        (reported - total).abs() <= 1e-6 * total.max(1.0),
        "{reported} vs {total}"
    );
    assert!(total > 0.0);
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg") && svg.matches("<rect").count() == layers.len());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_json_per_batch() {
    if common::gpu(false).is_none() {
        return;
    }
    let mut args = vec![
        "bench",
        "--no-cache",
        "--batch",
        "1,2",
        "--iters",
        "2",
        "--json",
    ];
    args.extend(NET);
    let b = json(&resnet(&args), "bench");
    let rows = b["results"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (row, n) in rows.iter().zip([1.0, 2.0]) {
        assert_eq!(row["batch"].as_f64(), Some(n));
        let ms = row["ms"].as_f64().unwrap();
        let ips = row["images_per_second"].as_f64().unwrap();
        assert!(ms > 0.0 && (ips - n * 1e3 / ms).abs() < 1e-6 * ips, "{row}");
        assert!(row["cold_ms"].as_f64().unwrap() > 0.0);
        assert!(
            row["peak_gpu_bytes"].as_u64().unwrap() > 11_000_000 * 4,
            "{row}"
        );
    }
}

#[test]
fn tune_writes_a_cache_that_profile_then_uses() {
    if common::gpu(false).is_none() {
        return;
    }
    let dir = common::scratch("tools-tune");
    let cache = dir.to_str().unwrap();
    let mut args = vec!["tune", "--cache-dir", cache, "--json"];
    args.extend(NET);
    let t = json(&resnet(&args), "tune");
    let shapes = t["shapes"].as_array().unwrap();
    // ResNet-18 at 32×32: stem, then per stage a 3×3 (and, from stage 2, a strided 3×3 and
    // a 1×1 projection): 1 + 1 + 3·3 = 11 distinct conv shapes.
    assert_eq!(shapes.len(), 11, "{shapes:?}");
    for s in shapes {
        assert!(s["best_ms"].as_f64().unwrap() <= s["default_ms"].as_f64().unwrap() * 1.0001);
        assert!(s["verify_error"].as_f64().unwrap() <= 1e-4, "{s}");
    }
    assert!(t["network_error"].as_f64().unwrap() <= 1e-4);
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tune.json")).unwrap()).unwrap();
    let adapters = file["adapters"].as_object().unwrap();
    assert_eq!(adapters.len(), 1);
    let tuned = adapters.values().next().unwrap().as_object().unwrap();
    assert_eq!(tuned.len(), 11);

    // Every conv of a later profile runs the configuration tuned for its shape.
    let mut args = vec!["profile", "--cache-dir", cache, "--iters", "1", "--json"];
    args.extend(NET);
    let p = json(&resnet(&args), "profile");
    let describe: Vec<String> = shapes.iter().map(|s| describe(&s["best"])).collect();
    for l in p["layers"].as_array().unwrap() {
        let conv = ["ConvTiled", "ConvRegisters", "WinogradGemm"];
        if conv.iter().any(|k| l["kernel"] == *k) {
            let config = l["config"].as_str().unwrap();
            assert!(
                describe.iter().any(|d| config.ends_with(d.as_str())),
                "{config} is none of the tuned {describe:?}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `ConvConfig::describe` of a serialised configuration.
fn describe(c: &Value) -> String {
    let t = &c["tiles"];
    let (m, n, k) = (&t["tile_m"], &t["tile_n"], &t["tile_k"]);
    let mut s = match c["algo"].as_str().unwrap() {
        "tiled" => format!("tiled {m}x{n}x{k}"),
        "winograd2x2" => format!("winograd F(2x2,3x3) {m}x{n}"),
        "winograd4x4" => format!("winograd F(4x4,3x3) {m}x{n}"),
        _ => format!("registers {m}x{n}"),
    };
    if c["split_k"].as_u64().unwrap() > 1 {
        s += &format!(" split-K {}", c["split_k"]);
    }
    s
}

/// `tune` checks the network at the requested size before it builds or allocates anything
/// for it, as `bench` and `profile` do: a size beyond the shape rules (more than 2³⁶ values
/// in a layer) or beyond the adapter's limits is one `error:` line saying which (exit 2),
/// never an abort on a host allocation of gigabytes (30000×30000 would seed a 10 GB stem
/// input) or a GPU out-of-memory.
#[test]
fn tune_refuses_sizes_beyond_the_adapter_before_allocating() {
    if common::gpu(false).is_none() {
        return;
    }
    let dir = common::scratch("tools-tune-limits");
    let cache = dir.to_str().unwrap();
    for (size, why) in [
        ("100000x100000", "is too large"),
        ("30000x30000", "over the adapter limit"),
    ] {
        let args = [
            "tune",
            "--cache-dir",
            cache,
            "--arch",
            "resnet18",
            "--size",
            size,
        ];
        let o = resnet(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{size}: {err}");
        assert!(err.contains("error:") && err.contains(why), "{size}: {err}");
        assert!(
            !dir.join("tune.json").exists(),
            "{size}: a cache was written"
        );
    }
}
