//! The transform host against real WebAssembly components (the guests in
//! `tests/guests/`, built for wasm32-wasip2 by `tests/guests/build.sh` on first use).

mod common;
mod containment;
mod load;
mod reload;
mod transform;
