//! `.npy` reader: arbitrary bytes must give an array or an error, never a panic, and whatever
//! parses must survive a write/read round trip unchanged.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use resnet_wgpu::npy;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.npy");
    if let Ok(a) = npy::from_bytes(data, path) {
        assert_eq!(a.data.len(), a.shape.iter().product::<usize>());
        let bytes = npy::to_bytes(&a.shape, &a.data).expect("a parsed array serialises");
        let back = npy::from_bytes(&bytes, path).expect("our own output parses");
        assert_eq!(back.shape, a.shape);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back.data), bits(&a.data));
    }
});
