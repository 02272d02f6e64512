//! The core's `PageStore` over PostgreSQL shared buffers.
//!
//! Reads pin and share-lock one buffer at a time. A write group is one
//! GenericXLog record: each page is exclusively locked and registered, and the
//! group either finishes (one WAL record, all pages changed) or aborts (no
//! page changed). [`XLogGroup`] is an RAII guard: if Rust unwinds through it
//! (a panic, or a PostgreSQL ERROR turned into one by pgrx) it aborts the
//! record and releases the buffers, so no half-written page escapes.
//!
//! VACUUM interlock (nbtree's): a scan keeps a pin on the data page whose
//! entries it is returning, from the read that copied them until its next
//! read; VACUUM deletes entries from a data page only under a cleanup lock,
//! which waits for such pins. So an entry a scan has copied cannot be removed
//! (and its heap line pointer reused) before the scan has returned it. A scan
//! drops its pin before it waits for any other lock, so the two cannot
//! deadlock.

use alex::page::{Kind, Page, PAGE_SIZE, SPECIAL_OFF};
use alex::{Error, PageStore, Result, WriteGroup, GROUP_LIMIT};
use pgrx::pg_sys;
use std::cell::Cell;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    /// Keep a pin on the last data page read (index scans).
    Scan,
    /// Take cleanup locks on data pages it modifies (VACUUM).
    Vacuum,
}

pub struct PgStore {
    rel: pg_sys::Relation,
    mode: Mode,
    held: Cell<Option<pg_sys::Buffer>>,
}

impl PgStore {
    pub fn new(rel: pg_sys::Relation) -> PgStore {
        PgStore {
            rel,
            mode: Mode::Plain,
            held: Cell::new(None),
        }
    }

    pub fn for_scan(rel: pg_sys::Relation) -> PgStore {
        PgStore {
            mode: Mode::Scan,
            ..PgStore::new(rel)
        }
    }

    pub fn for_vacuum(rel: pg_sys::Relation) -> PgStore {
        PgStore {
            mode: Mode::Vacuum,
            ..PgStore::new(rel)
        }
    }

    /// Drop the scan's pin. Called when the scan ends normally; after an
    /// ERROR the resource owner releases it instead.
    pub fn release_pin(&self) {
        if let Some(b) = self.held.take() {
            // SAFETY: we pinned `b` in `read` and have not released it.
            unsafe { pg_sys::ReleaseBuffer(b) };
        }
    }
}

/// Pages never change kind once written, so the kind byte may be read from a
/// pinned buffer without its content lock.
fn is_data_page(page: *const Page) -> bool {
    // SAFETY: a pinned buffer's page is BLCKSZ bytes.
    unsafe { (*page)[SPECIAL_OFF] == Kind::Data as u8 }
}

/// A pinned, locked buffer, unlocked and released on drop.
struct LockedBuffer(pg_sys::Buffer);

impl Drop for LockedBuffer {
    fn drop(&mut self) {
        // SAFETY: we hold a pin and a content lock on this buffer.
        unsafe { pg_sys::UnlockReleaseBuffer(self.0) };
    }
}

fn page_of(buf: pg_sys::Buffer) -> *mut Page {
    // SAFETY: a pinned buffer's page is BLCKSZ bytes that live while pinned.
    unsafe { pg_sys::BufferGetPage(buf) as *mut Page }
}

const _: () = assert!(PAGE_SIZE == pg_sys::BLCKSZ as usize);

impl PageStore for PgStore {
    fn nblocks(&self) -> u32 {
        // SAFETY: `rel` is open for the duration of the operation.
        unsafe {
            pg_sys::RelationGetNumberOfBlocksInFork(self.rel, pg_sys::ForkNumber::MAIN_FORKNUM)
        }
    }

    fn read(&self, blk: u32, f: &mut dyn FnMut(&Page)) -> Result<()> {
        let nblocks = self.nblocks();
        if blk >= nblocks {
            return Err(Error::NoSuchBlock { blk, nblocks });
        }
        // Never wait for a lock while holding the scan's pin (see module docs).
        self.release_pin();
        // SAFETY: blk exists; the guard releases the pin and lock.
        let buf = unsafe {
            let b = pg_sys::ReadBuffer(self.rel, blk);
            pg_sys::LockBuffer(b, pg_sys::BUFFER_LOCK_SHARE as i32);
            LockedBuffer(b)
        };
        let page = page_of(buf.0);
        // SAFETY: share-locked page; `f` only reads it.
        f(unsafe { &*page });
        if self.mode == Mode::Scan && is_data_page(page) {
            // Keep the pin, drop the lock: the entries just copied stay safe
            // from VACUUM until the scan reads its next page.
            let b = buf.0;
            std::mem::forget(buf);
            // SAFETY: we hold the share lock taken above.
            unsafe { pg_sys::LockBuffer(b, pg_sys::BUFFER_LOCK_UNLOCK as i32) };
            self.held.set(Some(b));
        }
        Ok(())
    }

    fn atomic(&mut self, f: &mut dyn FnMut(&mut dyn WriteGroup) -> Result<()>) -> Result<()> {
        self.release_pin();
        let mut group = XLogGroup::start(self.rel, self.mode == Mode::Vacuum);
        let result = f(&mut group);
        match result {
            Ok(()) => {
                group.finish();
                Ok(())
            }
            Err(e) => Err(e), // dropping `group` aborts the record
        }
    }
}

/// One GenericXLog record in progress.
struct XLogGroup {
    rel: pg_sys::Relation,
    /// Lock data pages with cleanup locks (VACUUM).
    cleanup: bool,
    state: *mut pg_sys::GenericXLogState,
    /// (block, buffer guard, registered image). Guards drop after the record
    /// is finished or aborted, as GenericXLog requires.
    pages: Vec<(u32, LockedBuffer, *mut Page)>,
}

impl XLogGroup {
    fn start(rel: pg_sys::Relation, cleanup: bool) -> XLogGroup {
        // SAFETY: starting a record on an open relation.
        let state = unsafe { pg_sys::GenericXLogStart(rel) };
        XLogGroup {
            rel,
            cleanup,
            state,
            pages: Vec::with_capacity(GROUP_LIMIT),
        }
    }

    fn register(&mut self, blk: u32, buf: LockedBuffer, flags: i32) -> *mut Page {
        // SAFETY: the buffer is pinned and exclusively locked; state is live.
        let image =
            unsafe { pg_sys::GenericXLogRegisterBuffer(self.state, buf.0, flags) as *mut Page };
        self.pages.push((blk, buf, image));
        image
    }

    fn finish(mut self) {
        // SAFETY: every registered buffer is still locked (guards are alive).
        unsafe { pg_sys::GenericXLogFinish(self.state) };
        self.state = std::ptr::null_mut();
        // `self` drops here: buffers are unlocked after the record is written.
    }

    fn check_room(&self, blk: u32) -> Result<()> {
        if self.pages.len() >= GROUP_LIMIT {
            return Err(Error::GroupTooLarge {
                blk,
                wanted: self.pages.len() + 1,
                limit: GROUP_LIMIT,
            });
        }
        Ok(())
    }
}

impl Drop for XLogGroup {
    fn drop(&mut self) {
        if !self.state.is_null() {
            // SAFETY: an unfinished record; aborting discards its page images.
            unsafe { pg_sys::GenericXLogAbort(self.state) };
        }
        // Release buffers in reverse order of locking.
        while self.pages.pop().is_some() {}
    }
}

impl WriteGroup for XLogGroup {
    fn modify(&mut self, blk: u32) -> Result<&mut Page> {
        if let Some(i) = self.pages.iter().position(|(b, _, _)| *b == blk) {
            // SAFETY: the image lives until the record is finished or aborted.
            return Ok(unsafe { &mut *self.pages[i].2 });
        }
        self.check_room(blk)?;
        let nblocks = PgStore::new(self.rel).nblocks();
        if blk >= nblocks {
            return Err(Error::NoSuchBlock { blk, nblocks });
        }
        // SAFETY: blk exists; lock order is the core's (child before parent,
        // left before right), which keeps backends from deadlocking.
        let buf = unsafe {
            let b = pg_sys::ReadBuffer(self.rel, blk);
            if self.cleanup && is_data_page(page_of(b)) {
                pg_sys::LockBufferForCleanup(b);
            } else {
                pg_sys::LockBuffer(b, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
            }
            LockedBuffer(b)
        };
        // SAFETY: the registered image is valid until finish/abort.
        Ok(unsafe { &mut *self.register(blk, buf, 0) })
    }

    fn allocate(&mut self) -> Result<u32> {
        self.check_room(u32::MAX)?;
        // SAFETY: extending under the relation extension lock, as nbtree does;
        // the new page is registered with a full image, so redo recreates it.
        let (blk, buf) = unsafe {
            pg_sys::LockRelationForExtension(self.rel, pg_sys::ExclusiveLock as i32);
            let b = pg_sys::ReadBufferExtended(
                self.rel,
                pg_sys::ForkNumber::MAIN_FORKNUM,
                pg_sys::InvalidBlockNumber, // P_NEW
                pg_sys::ReadBufferMode::RBM_NORMAL,
                std::ptr::null_mut(),
            );
            pg_sys::LockBuffer(b, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
            pg_sys::UnlockRelationForExtension(self.rel, pg_sys::ExclusiveLock as i32);
            (pg_sys::BufferGetBlockNumber(b), LockedBuffer(b))
        };
        let image = self.register(blk, buf, pg_sys::GENERIC_XLOG_FULL_IMAGE as i32);
        // SAFETY: the image is ours until finish/abort.
        unsafe { (*image).fill(0) };
        Ok(blk)
    }
}

/// Write `pages` as blocks 0.. of `fork` of an empty relation, without WAL,
/// then WAL-log them all (build and init fork): cheaper than one GenericXLog
/// record per page, and what nbtree's sorted build does.
pub fn write_new_relation(
    rel: pg_sys::Relation,
    fork: pg_sys::ForkNumber::Type,
    pages: &[&Page],
    wal: bool,
    mut progress: impl FnMut(usize),
) {
    for (i, page) in pages.iter().enumerate() {
        // SAFETY: extending a relation nobody else can see yet (being built)
        // or an init fork; the buffer is exclusively locked while we copy.
        unsafe {
            let b = pg_sys::ReadBufferExtended(
                rel,
                fork,
                pg_sys::InvalidBlockNumber,
                pg_sys::ReadBufferMode::RBM_NORMAL,
                std::ptr::null_mut(),
            );
            pg_sys::LockBuffer(b, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
            std::ptr::copy_nonoverlapping(page.as_ptr(), page_of(b) as *mut u8, PAGE_SIZE);
            pg_sys::MarkBufferDirty(b);
            pg_sys::UnlockReleaseBuffer(b);
        }
        progress(i + 1);
    }
    if wal && !pages.is_empty() {
        // SAFETY: the blocks exist; page_std: our pages keep PostgreSQL's
        // header so the hole between pd_lower and pd_upper is skipped.
        unsafe { pg_sys::log_newpage_range(rel, fork, 0, pages.len() as u32, true) };
    }
}
