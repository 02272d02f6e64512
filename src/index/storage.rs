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
use alex::{Applied, ApplyLock, Error, PageOp, PageStore, Result, WriteGroup, GROUP_LIMIT};
use pgrx::pg_sys;
use std::cell::Cell;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    /// Keep a pin on the last data page read (index scans).
    Scan,
    /// Take a cleanup lock on the first data page of each group (VACUUM).
    Vacuum,
}

pub struct PgStore {
    rel: pg_sys::Relation,
    mode: Mode,
    held: Cell<Option<pg_sys::Buffer>>,
    /// A block count seen earlier (an index never shrinks while open): a
    /// block below it needs no `lseek` to be known to exist.
    known_blocks: Cell<u32>,
}

impl PgStore {
    pub fn new(rel: pg_sys::Relation) -> PgStore {
        PgStore {
            rel,
            mode: Mode::Plain,
            held: Cell::new(None),
            known_blocks: Cell::new(0),
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

    /// `Err(NoSuchBlock)` unless `blk` exists.
    fn check_block(&self, blk: u32) -> Result<()> {
        if blk < self.known_blocks.get() {
            return Ok(());
        }
        let nblocks = self.nblocks();
        self.known_blocks.set(nblocks);
        if blk >= nblocks {
            return Err(Error::NoSuchBlock { blk, nblocks });
        }
        Ok(())
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

/// The page kind byte. `read` looks at it under the content lock; `modify`
/// without it, to choose a cleanup lock: a block merged away and reused as a
/// model page in between only gets a stronger lock than it needs, and the
/// core re-checks what it locked.
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
        self.check_block(blk)?;
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

    /// One data page changed by a [`PageOp`]: when omendb's resource manager is
    /// registered, the page is changed in the buffer and the op itself is the WAL record
    /// (wal.rs), so the exclusive lock is held only for the change, not for GenericXLog's
    /// copy, delta and copy-back of the page. Ops that remove entries take a cleanup lock,
    /// and only if no scan holds a pin on the page (the VACUUM interlock above: a scan may
    /// still be returning entries it copied from it); otherwise the page is skipped.
    fn apply(
        &mut self,
        blk: u32,
        lock: ApplyLock,
        decide: &mut dyn FnMut(&Page) -> Result<Option<PageOp>>,
    ) -> Result<Applied> {
        if self.mode == Mode::Vacuum || !super::wal::available() {
            return alex::store::apply_in_group(self, blk, decide);
        }
        self.release_pin();
        self.check_block(blk)?;
        // SAFETY: blk exists; the guard releases the pin and lock.
        let buf = unsafe {
            let b = pg_sys::ReadBuffer(self.rel, blk);
            match lock {
                ApplyLock::Exclusive => pg_sys::LockBuffer(b, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32),
                ApplyLock::CleanupIfFree => {
                    if !pg_sys::ConditionalLockBufferForCleanup(b) {
                        pg_sys::ReleaseBuffer(b);
                        return Ok(Applied::Busy);
                    }
                }
            }
            LockedBuffer(b)
        };
        let page = page_of(buf.0);
        // SAFETY: exclusively locked; `decide` only reads.
        let Some(op) = decide(unsafe { &*page })? else {
            return Ok(Applied::Unchanged);
        };
        let wal = relation_needs_wal(self.rel);
        // From here the lock is released by hand: nothing may unwind past the change.
        let b = buf.0;
        std::mem::forget(buf);
        // SAFETY: as nbtree's inserts: in a critical section, change the locked page,
        // mark it dirty, log, stamp the LSN. `decide` looked at this locked page, so the
        // op applies; if it did not (or panicked), PANIC at once with the page still
        // locked, never letting a half-changed page out.
        unsafe {
            pg_sys::CritSectionCount += 1;
            let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                op.apply(&mut *page, blk)
            }));
            match applied {
                Ok(Ok(())) => {}
                Ok(Err(e)) => crate::pg::report::panic_now(&format!(
                    "alex index \"{}\": {e}",
                    super::relation_name(self.rel)
                )),
                Err(_) => crate::pg::report::panic_now(&format!(
                    "alex index \"{}\": a page operation on block {blk} panicked",
                    super::relation_name(self.rel)
                )),
            }
            pg_sys::MarkBufferDirty(b);
            if wal {
                let lsn = super::wal::log_op(b, &op);
                set_page_lsn(&mut *page, lsn);
            }
            pg_sys::CritSectionCount -= 1;
            pg_sys::UnlockReleaseBuffer(b);
        }
        Ok(Applied::Yes)
    }

    fn atomic(&mut self, f: &mut dyn FnMut(&mut dyn WriteGroup) -> Result<()>) -> Result<()> {
        self.release_pin();
        let vacuum = self.mode == Mode::Vacuum;
        let mut group = XLogGroup::start(self.rel, vacuum, vacuum && super::wal::available());
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

/// How a group is WAL-logged.
enum Log {
    /// A GenericXLog record (page deltas; redo takes exclusive locks).
    Generic(*mut pg_sys::GenericXLogState),
    /// Our resource manager's record of full page images, whose redo takes
    /// a cleanup lock on the first page (VACUUM; see wal.rs). The pages are
    /// edited in private copies and installed at finish.
    Images(Vec<Box<Page>>),
    /// Finished or aborted.
    Done,
}

/// One atomic group in progress: one WAL record.
struct XLogGroup {
    rel: pg_sys::Relation,
    /// Lock the group's first page with a cleanup lock if it is a data page
    /// (VACUUM): the page entries are removed from (`delete_many`) or moved
    /// off (`merge_pages`, which locks that page first). Later pages get plain
    /// exclusive locks: waiting for pins while holding a lock could deadlock
    /// with a scan whose backend waits for that lock.
    cleanup: bool,
    log: Log,
    /// (block, buffer guard, registered image). Guards drop after the record
    /// is finished or aborted, as GenericXLog requires.
    pages: Vec<(u32, LockedBuffer, *mut Page)>,
}

impl XLogGroup {
    fn start(rel: pg_sys::Relation, cleanup: bool, images: bool) -> XLogGroup {
        let log = if images {
            Log::Images(Vec::with_capacity(GROUP_LIMIT))
        } else {
            // SAFETY: starting a record on an open relation.
            Log::Generic(unsafe { pg_sys::GenericXLogStart(rel) })
        };
        XLogGroup {
            rel,
            cleanup,
            log,
            pages: Vec::with_capacity(GROUP_LIMIT),
        }
    }

    fn register(&mut self, blk: u32, buf: LockedBuffer, flags: i32) -> *mut Page {
        let image = match &mut self.log {
            // SAFETY: the buffer is pinned and exclusively locked; state is live.
            Log::Generic(state) => unsafe {
                pg_sys::GenericXLogRegisterBuffer(*state, buf.0, flags) as *mut Page
            },
            Log::Images(copies) => {
                let mut copy = Box::new([0u8; PAGE_SIZE]);
                // SAFETY: the locked buffer's page is BLCKSZ bytes.
                copy.copy_from_slice(unsafe { &*page_of(buf.0) });
                copies.push(copy);
                &mut **copies.last_mut().expect("just pushed") as *mut Page
            }
            Log::Done => unreachable!("register after finish"),
        };
        self.pages.push((blk, buf, image));
        image
    }

    fn finish(mut self) {
        match std::mem::replace(&mut self.log, Log::Done) {
            // SAFETY: every registered buffer is still locked (guards are alive).
            Log::Generic(state) => unsafe {
                pg_sys::GenericXLogFinish(state);
            },
            // SAFETY: as GenericXLogFinish does: in a critical section, install
            // the images, mark dirty, log, stamp the LSN; buffers stay locked.
            Log::Images(copies) => unsafe {
                let bufs: Vec<pg_sys::Buffer> = self.pages.iter().map(|p| p.1 .0).collect();
                let cleanup_first =
                    self.cleanup && bufs.first().is_some_and(|&b| is_data_page(page_of(b)));
                let wal = relation_needs_wal(self.rel);
                // Released by hand below: an ERROR in the critical section must find
                // the pages still locked (it becomes a PANIC).
                for (_, guard, _) in self.pages.drain(..) {
                    std::mem::forget(guard);
                }
                pg_sys::CritSectionCount += 1;
                for (&b, copy) in bufs.iter().zip(&copies) {
                    (*page_of(b)).copy_from_slice(&copy[..]);
                    pg_sys::MarkBufferDirty(b);
                }
                if wal {
                    let lsn = super::wal::log_images(&bufs, cleanup_first);
                    for &b in &bufs {
                        set_page_lsn(&mut *page_of(b), lsn);
                    }
                }
                pg_sys::CritSectionCount -= 1;
                for &b in bufs.iter().rev() {
                    pg_sys::UnlockReleaseBuffer(b);
                }
            },
            Log::Done => {}
        }
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

/// PageSetLSN (a static inline function PostgreSQL 15 does not export):
/// pd_lsn is {xlogid, xrecoff}, two native-endian u32s at the page start.
pub(super) fn set_page_lsn(page: &mut Page, lsn: pg_sys::XLogRecPtr) {
    page[0..4].copy_from_slice(&((lsn >> 32) as u32).to_ne_bytes());
    page[4..8].copy_from_slice(&(lsn as u32).to_ne_bytes());
}

/// PostgreSQL's RelationNeedsWAL: permanent, and not skipping WAL under
/// `wal_level = minimal` for a relation file created in this transaction.
pub fn relation_needs_wal(rel: pg_sys::Relation) -> bool {
    // SAFETY: fields of an open relation; wal_level is a plain GUC.
    unsafe {
        (*(*rel).rd_rel).relpersistence == pg_sys::RELPERSISTENCE_PERMANENT as std::ffi::c_char
            && (pg_sys::wal_level >= pg_sys::WalLevel::WAL_LEVEL_REPLICA as i32
                || ((*rel).rd_createSubid == 0 && (*rel).rd_firstRelfilenodeSubid == 0))
    }
}

impl Drop for XLogGroup {
    fn drop(&mut self) {
        if let Log::Generic(state) = std::mem::replace(&mut self.log, Log::Done) {
            // SAFETY: an unfinished record; aborting discards its page images.
            unsafe { pg_sys::GenericXLogAbort(state) };
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
        // SAFETY: blk exists; lock order is the core's (data page, then parent,
        // then metapage; only VACUUM's merges take two data pages, right then
        // left), which keeps backends from deadlocking.
        let buf = unsafe {
            let b = pg_sys::ReadBuffer(self.rel, blk);
            if self.cleanup && self.pages.is_empty() && is_data_page(page_of(b)) {
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
        if let Some((blk, buf)) = reuse_free_page(self.rel, &self.pages) {
            return Ok(self.register_new(blk, buf));
        }
        // SAFETY: extending under the relation extension lock, as nbtree does:
        // the buffer is locked before the extension lock is released, so
        // VACUUM (which looks at all-zero pages under that lock) never takes
        // a page being added for a free one.
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
        Ok(self.register_new(blk, buf))
    }
}

impl XLogGroup {
    /// Register a page the group allocated, with a full image so redo recreates it.
    fn register_new(&mut self, blk: u32, buf: LockedBuffer) -> u32 {
        let image = self.register(blk, buf, pg_sys::GENERIC_XLOG_FULL_IMAGE as i32);
        // SAFETY: the image is ours until finish/abort.
        unsafe { (*image).fill(0) };
        blk
    }
}

/// A block from the free space map that is still free, exclusively locked.
/// The map is only a hint (not crash-safe, and VACUUM may record a page that
/// is reused before the next lookup), so each candidate is checked under its
/// lock; a candidate someone else holds is skipped, never waited for (this
/// group already holds other pages).
fn reuse_free_page(
    rel: pg_sys::Relation,
    held: &[(u32, LockedBuffer, *mut Page)],
) -> Option<(u32, LockedBuffer)> {
    loop {
        // SAFETY: `rel` is an open index; the FSM lookup takes its own locks.
        let blk = unsafe { pg_sys::GetFreeIndexPage(rel) };
        if blk == pg_sys::InvalidBlockNumber {
            return None;
        }
        if blk == 0 || held.iter().any(|(b, _, _)| *b == blk) {
            continue;
        }
        // SAFETY: the block exists (the map never names blocks past the end
        // for long, and ReadBuffer errors cleanly if it does not).
        unsafe {
            if blk >= PgStore::new(rel).nblocks() {
                continue;
            }
            let b = pg_sys::ReadBuffer(rel, blk);
            if pg_sys::ConditionalLockBuffer(b) {
                let buf = LockedBuffer(b);
                if alex::data_node::is_unused_page(&*page_of(b)) {
                    return Some((blk, buf));
                }
            } else {
                pg_sys::ReleaseBuffer(b);
            }
        }
    }
}

/// Record every free page of the index in the free space map (VACUUM).
/// Returns how many there are. All-zero pages are judged under the relation
/// extension lock and a conditional buffer lock: an extending backend locks
/// its new page before it releases the extension lock, so a zero page seen
/// then is not one being added.
pub fn record_free_pages(rel: pg_sys::Relation) -> u32 {
    let mut free = 0;
    let nblocks = PgStore::new(rel).nblocks();
    for blk in 1..nblocks {
        if blk % 256 == 0 {
            pgrx::check_for_interrupts!();
            // SAFETY: called from VACUUM.
            unsafe { pg_sys::vacuum_delay_point() };
        }
        let (deleted, zero) = match store_read(rel, blk, |p| {
            (
                alex::data_node::is_deleted_page(p),
                alex::data_node::is_zero_page(p),
            )
        }) {
            Some(v) => v,
            None => continue,
        };
        // SAFETY: the extension lock is held only around a conditional lock.
        let zero_and_idle = zero
            && unsafe {
                pg_sys::LockRelationForExtension(rel, pg_sys::ExclusiveLock as i32);
                let b = pg_sys::ReadBuffer(rel, blk);
                let idle = pg_sys::ConditionalLockBuffer(b);
                let still_zero = idle && alex::data_node::is_zero_page(&*page_of(b));
                if idle {
                    pg_sys::LockBuffer(b, pg_sys::BUFFER_LOCK_UNLOCK as i32);
                }
                pg_sys::ReleaseBuffer(b);
                pg_sys::UnlockRelationForExtension(rel, pg_sys::ExclusiveLock as i32);
                still_zero
            };
        if deleted || zero_and_idle {
            // SAFETY: recording a block of an open index in its FSM.
            unsafe { pg_sys::RecordFreeIndexPage(rel, blk) };
            free += 1;
        }
    }
    // SAFETY: as above; makes the recorded pages findable by GetFreeIndexPage.
    unsafe { pg_sys::IndexFreeSpaceMapVacuum(rel) };
    free
}

/// Read block `blk` under a share lock through `f`.
fn store_read<R>(rel: pg_sys::Relation, blk: u32, f: impl FnOnce(&Page) -> R) -> Option<R> {
    let mut f = Some(f);
    let mut out = None;
    PgStore::new(rel)
        .read(blk, &mut |p| out = f.take().map(|f| f(p)))
        .ok()?;
    out
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
