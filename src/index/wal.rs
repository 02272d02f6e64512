//! A WAL resource manager of our own for alex pages: VACUUM's changes, and
//! in-place inserts.
//!
//! An in-place insert is logged as the entry and its page (an `alex::PageOp`,
//! 15 bytes) and replayed by running the core's same `PageOp::apply` on the
//! page as it was: shorter records and a shorter exclusive lock than
//! GenericXLog's copy, delta and copy-back of the whole page. The removal of
//! entries whose rows are dead to all (cleanup.rs) is such an op too, with
//! its snapshot conflict horizon. Every other change (splits, retrains,
//! builds) stays GenericXLog.
//!
//! GenericXLog redo takes a plain exclusive lock on each page. VACUUM's
//! changes (entries removed, entries moved left by a merge) must instead wait
//! on a hot standby, as on the primary, until no scan holds a pin on the page
//! they leave (storage.rs, nbtree's interlock): otherwise an index-only scan
//! on the standby could return an entry whose heap tuple was since removed.
//! So when omendb is preloaded, VACUUM logs its groups as one record of full
//! page images whose redo takes a cleanup lock on the first page (the one a
//! scan may be reading), and the standby may offer index-only scans.
//!
//! A server replaying such a record must have omendb in
//! `shared_preload_libraries` too (PostgreSQL refuses to replay a record of an
//! unknown resource manager), which is why the metapage says whether an
//! index's VACUUM records are of this kind (`FLAG_CLEANUP_REDO`).

use pgrx::pg_sys;
use pgrx::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

/// Our resource manager id (custom ids are 128–255; 128 is for experiments).
pub const RMGR_ID: u8 = 203;
/// Record: full page images.
const INFO_VACUUM: u8 = 0x10;
/// Record: one page, changed by the `alex::PageOp` in its block data: an
/// insert, or a removal of dead entries (its conflict horizon in the main data).
const INFO_OP_INSERT: u8 = 0x40;
const INFO_OP_REMOVE: u8 = 0x80;
/// With `INFO_VACUUM`: redo takes a cleanup lock on block 0 (a data page
/// entries leave), as the primary did.
const INFO_CLEANUP_FIRST: u8 = 0x20;
/// Metapage flag (alex core metapage flags are the core's; this one is the
/// binding's): every entry removal in this index is logged by this resource
/// manager, so a standby running it may serve index-only scans.
pub const FLAG_CLEANUP_REDO: u32 = alex::meta::META_BINDING_FLAGS;

static REGISTERED: AtomicBool = AtomicBool::new(false);

/// Whether this process can write and replay our records.
pub fn available() -> bool {
    REGISTERED.load(Ordering::Relaxed)
}

/// Register the resource manager (from `_PG_init`, only while preloading).
pub fn init() {
    // SAFETY: a flag PostgreSQL sets while loading shared_preload_libraries.
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    let rmgr = Box::leak(Box::new(pg_sys::RmgrData {
        rm_name: c"omendb_alex".as_ptr(),
        rm_redo: Some(redo),
        rm_desc: Some(desc),
        rm_identify: Some(identify),
        rm_startup: None,
        rm_cleanup: None,
        rm_mask: Some(mask),
        rm_decode: None,
    }));
    // SAFETY: called from _PG_init during preloading, with a static table.
    unsafe { pg_sys::RegisterCustomRmgr(RMGR_ID, rmgr) };
    REGISTERED.store(true, Ordering::Relaxed);
}

/// Log `buffers` (exclusively locked, already changed and marked dirty; the
/// first one cleanup-locked if `cleanup_first`) as one record; returns its
/// LSN for the pages.
///
/// # Safety
/// Inside a critical section, with every buffer locked as described.
pub unsafe fn log_images(buffers: &[pg_sys::Buffer], cleanup_first: bool) -> pg_sys::XLogRecPtr {
    pg_sys::XLogBeginInsert();
    for (i, &b) in buffers.iter().enumerate() {
        pg_sys::XLogRegisterBuffer(
            i as u8,
            b,
            (pg_sys::REGBUF_FORCE_IMAGE | pg_sys::REGBUF_STANDARD) as u8,
        );
    }
    let info = INFO_VACUUM | if cleanup_first { INFO_CLEANUP_FIRST } else { 0 };
    pg_sys::XLogInsert(RMGR_ID, info)
}

/// Log `op`, just applied to the exclusively locked, dirtied page in `buffer`;
/// returns the record's LSN for the page.
///
/// # Safety
/// Inside a critical section, with `buffer` locked as described.
pub unsafe fn log_op(buffer: pg_sys::Buffer, op: &alex::PageOp) -> pg_sys::XLogRecPtr {
    let bytes = op.encode();
    let len = bytes.len();
    // A removal's conflict horizon also goes in the main data, which a record
    // keeps even when its block data gives way to a full-page image.
    let conflict = op.conflict().map(u32::to_le_bytes);
    pg_sys::XLogBeginInsert();
    if let Some(c) = &conflict {
        pg_sys::XLogRegisterData(c.as_ptr() as *mut std::ffi::c_char, c.len() as i32);
    }
    pg_sys::XLogRegisterBuffer(0, buffer, pg_sys::REGBUF_STANDARD as u8);
    pg_sys::XLogRegisterBufData(0, bytes.as_ptr() as *mut std::ffi::c_char, len as i32);
    let info = match op {
        alex::PageOp::Insert { .. } => INFO_OP_INSERT,
        alex::PageOp::Remove { .. } => INFO_OP_REMOVE,
    };
    pg_sys::XLogInsert(RMGR_ID, info)
}

#[pg_guard]
unsafe extern "C-unwind" fn redo(record: *mut pg_sys::XLogReaderState) {
    let decoded = (*record).record;
    let info = (*decoded).header.xl_info & !(pg_sys::XLR_INFO_MASK as u8);
    if info == INFO_OP_INSERT || info == INFO_OP_REMOVE {
        return redo_op(record, info == INFO_OP_REMOVE);
    }
    if info & !INFO_CLEANUP_FIRST != INFO_VACUUM {
        error!("omendb_alex redo: unknown record type {info:#x}");
    }
    // Apply every page before releasing any (as generic_redo does): readers
    // on the standby must see a merge whole or not at all.
    let mut held = Vec::with_capacity(pg_sys::XLR_MAX_BLOCK_ID as usize + 1);
    for id in 0..=(*decoded).max_block_id {
        let mut buf: pg_sys::Buffer = 0;
        let cleanup = id == 0 && info & INFO_CLEANUP_FIRST != 0;
        let action = pg_sys::XLogReadBufferForRedoExtended(
            record,
            id as u8,
            pg_sys::ReadBufferMode::RBM_NORMAL,
            cleanup,
            &mut buf,
        );
        if buf != 0 {
            held.push(buf);
        }
        if action != pg_sys::XLogRedoAction::BLK_RESTORED {
            error!("omendb_alex redo: block {id} of a page-image record was not restored");
        }
    }
    for buf in held {
        pg_sys::UnlockReleaseBuffer(buf);
    }
}

/// Redo of a page-op record: the op again, on the page as the primary had it
/// before (or nothing, if the page's image already includes it).
unsafe fn redo_op(record: *mut pg_sys::XLogReaderState, removes: bool) {
    // Removed entries' rows may still be visible to a standby query's
    // snapshot: cancel such queries first (nbtree's deletion records do too).
    let decoded = (*record).record;
    if (*decoded).main_data_len >= 4
        && pg_sys::standbyState >= pg_sys::HotStandbyState::STANDBY_SNAPSHOT_PENDING
    {
        let main = std::slice::from_raw_parts((*decoded).main_data as *const u8, 4);
        let horizon = pg_sys::TransactionId::from_inner(u32::from_le_bytes([
            main[0], main[1], main[2], main[3],
        ]));
        if horizon != pg_sys::InvalidTransactionId {
            let mut node: pg_sys::RelFileNode = std::mem::zeroed();
            pg_sys::XLogRecGetBlockTag(
                record,
                0,
                &mut node,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
            pg_sys::ResolveRecoveryConflictWithSnapshot(horizon, node);
        }
    }
    // Removals wait, as on the primary, for standby scans still returning
    // entries they copied from the page (the pin interlock; see storage.rs).
    let mut buf: pg_sys::Buffer = 0;
    let action = pg_sys::XLogReadBufferForRedoExtended(
        record,
        0,
        pg_sys::ReadBufferMode::RBM_NORMAL,
        removes,
        &mut buf,
    );
    if action == pg_sys::XLogRedoAction::BLK_NEEDS_REDO {
        let mut len: pg_sys::Size = 0;
        let data = pg_sys::XLogRecGetBlockData(record, 0, &mut len);
        let blk = pg_sys::BufferGetBlockNumber(buf);
        let bytes = if data.is_null() {
            &[][..]
        } else {
            std::slice::from_raw_parts(data as *const u8, len)
        };
        let page = &mut *(pg_sys::BufferGetPage(buf) as *mut alex::page::Page);
        let applied = alex::PageOp::decode(bytes, blk).and_then(|op| op.apply(page, blk));
        if let Err(e) = applied {
            error!("omendb_alex redo: {e}");
        }
        super::storage::set_page_lsn(page, (*record).EndRecPtr);
        pg_sys::MarkBufferDirty(buf);
    }
    if buf != 0 {
        pg_sys::UnlockReleaseBuffer(buf);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn desc(buf: pg_sys::StringInfo, record: *mut pg_sys::XLogReaderState) {
    let decoded = (*record).record;
    let info = (*decoded).header.xl_info & !(pg_sys::XLR_INFO_MASK as u8);
    let text = if info == INFO_OP_INSERT || info == INFO_OP_REMOVE {
        let mut len: pg_sys::Size = 0;
        let data = pg_sys::XLogRecGetBlockData(record, 0, &mut len);
        let op = (!data.is_null())
            .then(|| alex::PageOp::decode(std::slice::from_raw_parts(data as *const u8, len), 0))
            .and_then(Result::ok);
        match op {
            Some(op) => format!("alex {op:?}\0"),
            None => "alex page op (data not in this record)\0".to_string(),
        }
    } else {
        let n = (*decoded).max_block_id + 1;
        format!("alex vacuum: {n} page images, cleanup lock on the first\0")
    };
    pg_sys::appendStringInfoString(buf, text.as_ptr() as *const std::ffi::c_char);
}

#[pg_guard]
unsafe extern "C-unwind" fn identify(info: u8) -> *const std::ffi::c_char {
    match info & !(pg_sys::XLR_INFO_MASK as u8) & !INFO_CLEANUP_FIRST {
        INFO_VACUUM => c"ALEX_VACUUM".as_ptr(),
        INFO_OP_INSERT => c"ALEX_INSERT".as_ptr(),
        INFO_OP_REMOVE => c"ALEX_REMOVE_DEAD".as_ptr(),
        _ => std::ptr::null(),
    }
}

/// For `wal_consistency_checking`: what may legitimately differ between a
/// replayed page and the primary's image (LSN, checksum, the unused hole).
#[pg_guard]
unsafe extern "C-unwind" fn mask(page: *mut std::ffi::c_char, _blkno: pg_sys::BlockNumber) {
    let p = std::slice::from_raw_parts_mut(page as *mut u8, pg_sys::BLCKSZ as usize);
    p[0..8].fill(0); // pd_lsn
    p[8..10].fill(0); // pd_checksum
    let lower = u16::from_ne_bytes([p[12], p[13]]) as usize;
    let upper = u16::from_ne_bytes([p[14], p[15]]) as usize;
    if 24 <= lower && lower <= upper && upper <= p.len() {
        p[lower..upper].fill(0);
    }
}
