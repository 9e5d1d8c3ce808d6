//! One engine shared by several threads: concurrent inferences (and concurrent plan builds)
//! give exactly the results of the same inferences run one at a time.

use crate::common;

use std::sync::Arc;

use common::{fixture, gpu};
use resnet_wgpu::npy::read_f32;
use resnet_wgpu::reference::relative_error;
use resnet_wgpu::{Engine, Output, WeightsFile};

#[test]
fn one_engine_serves_several_threads_at_once() {
    // Also asserted at compile time in the library; here as the API promise.
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
    let Some(ctx) = gpu(false) else { return };
    let weights = WeightsFile::open(fixture("tiny.safetensors")).unwrap();
    let fixture_input = read_f32(&fixture("tiny.input.npy")).unwrap();
    let fixture_logits = read_f32(&fixture("tiny.logits.npy")).unwrap();
    let [fn_, _, fh, fw] = fixture_input.shape[..] else {
        panic!("fixture shape")
    };
    // Jobs of several sizes and batches, both outputs; sizes repeat, so threads share plans.
    let mut rng = common::Rng::new(3);
    let mut jobs = vec![(fn_, fh, fw, Output::Logits, fixture_input.data.clone())];
    for (n, h, w, out) in [
        (1, 32, 32, Output::Logits),
        (3, 32, 32, Output::Logits),
        (2, 45, 29, Output::Features),
        (1, 64, 64, Output::Logits),
        (3, 32, 32, Output::Features),
        (4, 17, 17, Output::Logits),
    ] {
        jobs.push((n, h, w, out, rng.vec(n * 3 * h * w, -2.0, 2.0)));
    }
    let reference = Engine::load_on(ctx.clone(), &weights).unwrap();
    let expected: Vec<Vec<f32>> = jobs
        .iter()
        .map(|(n, h, w, out, x)| reference.run(x, *n, *h, *w, *out).unwrap())
        .collect();
    assert!(relative_error(&expected[0], &fixture_logits.data) <= 1e-4);

    // A fresh engine, so plans are built while other threads run.
    let engine = Arc::new(Engine::load_on(ctx, &weights).unwrap());
    let threads = 6;
    std::thread::scope(|s| {
        for t in 0..threads {
            let (engine, jobs, expected) = (engine.clone(), &jobs, &expected);
            s.spawn(move || {
                for round in 0..3 {
                    for k in 0..jobs.len() {
                        // Each thread walks the jobs from its own starting point.
                        let j = (k + t + round) % jobs.len();
                        let (n, h, w, out, x) = &jobs[j];
                        let got = engine.run(x, *n, *h, *w, *out).unwrap();
                        let same = got
                            .iter()
                            .map(|v| v.to_bits())
                            .eq(expected[j].iter().map(|v| v.to_bits()));
                        assert!(same, "thread {t}, round {round}, job {j}: results differ");
                    }
                }
            });
        }
    });
}
