//! The WASI 0.2 context a plugin gets, and the linker that offers it: nothing in it.
//!
//! No preopened directories, no environment, no arguments, no network, an empty stdin,
//! stdout/stderr into [`OutputTail`]; the wall clock is fixed at the Unix epoch and
//! randomness is a fixed byte cycle, so a plugin's output depends only on its input and
//! configuration (a retried event transforms to the same events). The monotonic clock is
//! real, starting at 0 for each instance, but waiting on it (`sleep`, `poll` with a
//! timeout) traps: a plugin must not hold a host thread, and a blocked host call would
//! escape both the fuel and the epoch deadline.

use std::time::Duration;

use wasmtime::component::{HasSelf, Linker, Resource};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::{Deterministic, HostWallClock, WasiCtx};

use crate::state::GuestState;
use crate::stdio::OutputTail;

/// The bytes `wasi:random` cycles through (any fixed value; deterministic on purpose).
const RANDOM_BYTES: [u8; 32] = [
    0x3c, 0x9a, 0x51, 0xe7, 0x08, 0xd2, 0x6f, 0xb4, 0x91, 0x2e, 0xc5, 0x73, 0x1a, 0xf8, 0x44, 0xbd,
    0x67, 0x0b, 0xe9, 0x35, 0xa2, 0x5c, 0xd0, 0x1f, 0x86, 0x4b, 0xfe, 0x29, 0x7d, 0xc1, 0x53, 0x98,
];

/// Largest `get-random-bytes` request served (larger ones trap).
const MAX_RANDOM_BYTES: u64 = 1 << 20;

/// The empty WASI context of one plugin instance.
pub(crate) fn context(output: &OutputTail) -> WasiCtx {
    let mut builder = WasiCtx::builder();
    builder
        .stdout(output.clone())
        .stderr(output.clone())
        .wall_clock(EpochWallClock)
        .secure_random(Deterministic::new(RANDOM_BYTES.to_vec()))
        .insecure_random(Deterministic::new(RANDOM_BYTES.to_vec()))
        .insecure_random_seed(0x5eed)
        .max_random_size(MAX_RANDOM_BYTES)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    builder.build()
}

/// Register WASI (sync) with the monotonic clock replaced by [`GuestState`]'s.
///
/// wasmtime-wasi links more than the [allowlist](crate::allowlist) permits (sockets,
/// for one); components importing those are refused before they reach the linker.
pub(crate) fn add_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    linker.allow_shadowing(true);
    monotonic_clock::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |s| s)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// `wasi:clocks/wall-clock` stopped at 1970-01-01T00:00:00Z.
struct EpochWallClock;

impl HostWallClock for EpochWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl monotonic_clock::Host for GuestState {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(u64::try_from(self.started().elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(1)
    }

    fn subscribe_instant(
        &mut self,
        _when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        Err(no_waiting())
    }

    fn subscribe_duration(
        &mut self,
        _when: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        Err(no_waiting())
    }
}

fn no_waiting() -> wasmtime::Error {
    wasmtime::Error::msg(
        "the plugin tried to wait on the clock (sleep or a poll timeout); transform plugins may not wait",
    )
}
