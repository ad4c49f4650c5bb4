//! The per-instance resource limiter: memory, table, instance and memory counts.
//!
//! Growth beyond a limit is refused (the guest sees `memory.grow` fail, as on a full
//! machine) rather than trapped, and the refusal is remembered so that the trap that
//! usually follows (a Rust guest aborts on allocation failure) is reported as
//! [`TrapKind::OutOfMemory`](crate::TrapKind::OutOfMemory).

use crate::config::Limits;

/// A growth the limiter refused during the current call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A linear memory would have grown to `desired` bytes.
    Memory {
        /// Requested size in bytes.
        desired: usize,
    },
    /// A table would have grown to `desired` elements.
    Table {
        /// Requested number of elements.
        desired: usize,
    },
}

/// `wasmtime::ResourceLimiter` enforcing [`Limits`] on one store.
#[derive(Debug)]
pub(crate) struct GuestLimiter {
    memory_bytes: usize,
    table_elements: usize,
    memories: usize,
    tables: usize,
    instances: usize,
    refused: Option<Refused>,
}

impl GuestLimiter {
    pub(crate) fn new(limits: &Limits) -> Self {
        GuestLimiter {
            memory_bytes: limits.memory_bytes,
            table_elements: limits.table_elements,
            memories: limits.memories as usize,
            tables: limits.tables as usize,
            instances: limits.instances as usize,
            refused: None,
        }
    }

    /// The first growth refused since the last [`GuestLimiter::reset`].
    pub(crate) fn refused(&self) -> Option<Refused> {
        self.refused
    }

    /// Forget refusals (called at the start of each call).
    pub(crate) fn reset(&mut self) {
        self.refused = None;
    }

    fn refuse(&mut self, what: Refused) -> wasmtime::Result<bool> {
        self.refused.get_or_insert(what);
        Ok(false)
    }
}

impl wasmtime::ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            return self.refuse(Refused::Memory { desired });
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            return self.refuse(Refused::Table { desired });
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.memories
    }
}
