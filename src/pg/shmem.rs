//! Structs in PostgreSQL's main shared memory segment, each with one LWLock,
//! for the parts of omendb that need state across backends. Only when
//! omendb is preloaded: the space is requested in `shmem_request_hook` and
//! found or created in `shmem_startup_hook` (both installed by hooks.rs),
//! in the postmaster, whose children inherit the pointers.
//!
//! A shared struct is plain data (`#[repr(C)]`, valid when zeroed, no
//! pointers): every process maps the segment, none owns what is in it.
//! Closures given to [`Shared::write`] / [`Shared::read`] must not raise
//! an ERROR (abort would release the lock, but leave the struct half
//! changed); they copy data in or out and return.

use pgrx::pg_sys;
use std::ffi::CStr;
use std::sync::atomic::{AtomicPtr, Ordering};

pub struct Shared<T: 'static> {
    name: &'static CStr,
    data: AtomicPtr<T>,
    lock: AtomicPtr<pg_sys::LWLock>,
}

// SAFETY: the pointers name shared memory guarded by the LWLock; the
// statics holding them are written once, in the postmaster.
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    /// `name` names both the shared memory (pg_shmem_allocations) and the
    /// LWLock tranche (pg_stat_activity's wait_event while waiting on it).
    pub const fn new(name: &'static CStr) -> Shared<T> {
        Shared {
            name,
            data: AtomicPtr::new(std::ptr::null_mut()),
            lock: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// In `shmem_request_hook`.
    pub fn request(&self) {
        // SAFETY: called from shmem_request_hook, where requests are allowed.
        unsafe {
            pg_sys::RequestAddinShmemSpace(std::mem::size_of::<T>());
            pg_sys::RequestNamedLWLockTranche(self.name.as_ptr(), 1);
        }
    }

    /// In `shmem_startup_hook`: find the struct or create it zeroed.
    pub fn attach(&self) {
        let size = std::mem::size_of::<T>();
        let (p, lock) = init_struct(self.name, size, |p, found| {
            if !found {
                // SAFETY: the space is ours to lay out, under the init lock.
                unsafe { std::ptr::write_bytes(p, 0, size) };
            }
            // SAFETY: the tranche was requested with the space.
            unsafe { &raw mut (*pg_sys::GetNamedLWLockTranche(self.name.as_ptr())).lock }
        });
        self.data.store(p as *mut T, Ordering::Release);
        self.lock.store(lock, Ordering::Release);
    }

    /// Whether the struct exists (omendb preloaded).
    pub fn available(&self) -> bool {
        !self.data.load(Ordering::Acquire).is_null()
    }

    /// Run `f` on the struct under the exclusive lock; None when absent.
    pub fn write<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        self.locked(pg_sys::LWLockMode::LW_EXCLUSIVE, |p| {
            // SAFETY: the exclusive lock is held.
            f(unsafe { &mut *p })
        })
    }

    /// Run `f` on the struct under the shared lock; None when absent.
    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        self.locked(pg_sys::LWLockMode::LW_SHARED, |p| {
            // SAFETY: the shared lock is held; writers wait for it.
            f(unsafe { &*p })
        })
    }

    fn locked<R>(&self, mode: pg_sys::LWLockMode::Type, f: impl FnOnce(*mut T) -> R) -> Option<R> {
        let p = self.data.load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        let lock = self.lock.load(Ordering::Acquire);
        // SAFETY: the tranche's lock, attached with the struct.
        unsafe { pg_sys::LWLockAcquire(lock, mode) };
        let r = f(p);
        // SAFETY: acquired above.
        unsafe { pg_sys::LWLockRelease(lock) };
        Some(r)
    }
}

/// In `shmem_startup_hook`: find or create `size` bytes named `name` in the
/// main segment and run `init(pointer, found)` under AddinShmemInitLock, as
/// PostgreSQL's own modules attach (the first process to get there lays the
/// space out; after a crash restart that is the postmaster again).
pub fn init_struct<R>(
    name: &CStr,
    size: usize,
    init: impl FnOnce(*mut u8, bool) -> R,
) -> (*mut u8, R) {
    // SAFETY: called from shmem_startup_hook; the lock is PostgreSQL's
    // AddinShmemInitLock (MainLWLockArray[21]).
    unsafe {
        let init_lock = &raw mut (*pg_sys::MainLWLockArray.add(21)).lock;
        pg_sys::LWLockAcquire(init_lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
        let mut found = false;
        let p = pg_sys::ShmemInitStruct(name.as_ptr(), size, &mut found) as *mut u8;
        let r = init(p, found);
        pg_sys::LWLockRelease(init_lock);
        (p, r)
    }
}
