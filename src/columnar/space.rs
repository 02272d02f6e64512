//! Free space of an omen_columnar table's file.
//!
//! A page belongs to someone when a catalog row names it: a segment whose
//! inserter did not abort (a Parquet segment's extent, a write-store
//! segment's chain), a free extent in `omendb.columnar_free` that no
//! committed transaction took, the metapage and the write-store tail. Every
//! other page is *unowned*: written by a transaction that aborted or crashed
//! (a COPY, an INSERT … SELECT, a compaction) or released for truncation.
//! Writers hold [`ChangeLock`] shared from the moment they take pages until
//! their catalog row is in, so under the exclusive lock the catalog names
//! every page in use.
//!
//! - A free extent is *reusable* once no snapshot can read what it held:
//!   its row is committed and no catalog row of a segment it held is left
//!   (those rows carry the freeing transaction as xmax). Compaction and
//!   writers looking for free pages prune those rows as soon as no
//!   snapshot needs them ([`prune_replaced`]).
//! - Compaction ([`tidy`]) records unowned pages inside the file as free,
//!   merges adjacent reusable extents, and drops the rows of reusable
//!   extents at the end of the file (except in the tidy before a rewrite,
//!   which may write there), so that
//! - VACUUM ([`truncate_tail`]) can give the unowned tail back to the
//!   operating system, under the AccessExclusiveLock heap's VACUUM takes for
//!   the same purpose (never waited for), which standbys replay before the
//!   truncation.
//!
//! [`ChangeLock`]: super::storage::ChangeLock

use super::catalog::{self, Entry, FreeExtent, Kind, State};
use super::storage;
use pgrx::pg_sys;
use std::collections::HashSet;

/// The transactions whose replaced segments' catalog rows are still there:
/// extents they freed are not reusable yet.
fn replacers(entries: &[Entry]) -> HashSet<pg_sys::TransactionId> {
    entries.iter().filter_map(|e| e.xmax).collect()
}

fn is_reusable(x: &FreeExtent, replacers: &HashSet<pg_sys::TransactionId>) -> bool {
    x.state == State::Live && !replacers.contains(&x.freed_by)
}

/// `entries` (the segment rows of `storage_id`) without the rows of
/// replaced segments that no snapshot needs any more: they are pruned now,
/// as a read prunes a full heap page, so the extents they gate are
/// reusable at once rather than after autovacuum. The prune record makes a
/// standby cancel (or wait for) snapshots that could still read them.
pub fn prune_replaced(storage_id: u64, entries: Vec<Entry>) -> Vec<Entry> {
    let dead: Vec<_> = entries
        .iter()
        .filter(|e| e.state == State::Dead)
        .map(|e| e.tid)
        .collect();
    if dead.is_empty() {
        return entries;
    }
    catalog::prune_segment_rows(&dead);
    catalog::segment_entries(storage_id)
}

/// Record `blocks` as free extents (runs of adjacent blocks); returns how many.
pub fn release(storage_id: u64, mut blocks: Vec<u32>) -> usize {
    blocks.sort_unstable();
    blocks.dedup();
    for (first, count) in runs(&blocks) {
        catalog::insert_free(storage_id, first, count);
    }
    blocks.len()
}

/// Runs of adjacent block numbers in sorted `blocks`, as (first, count).
fn runs(blocks: &[u32]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &b in blocks {
        match out.last_mut() {
            Some((first, count)) if *first + *count == b => *count += 1,
            _ => out.push((b, 1)),
        }
    }
    out
}

/// Take `n` contiguous free blocks of `storage_id` for a segment this
/// transaction writes, if a reusable extent is large enough. The smallest
/// such extent is used; the rest of it stays free. The caller holds
/// [`storage::ChangeLock`] shared until the segment's catalog row is in.
pub fn take_free(storage_id: u64, n: u32) -> Option<u32> {
    let mut extents: Vec<FreeExtent> =
        catalog::free_extents(storage_id, &raw mut pg_sys::SnapshotAnyData)
            .into_iter()
            .filter(|x| x.state == State::Live && x.block_count >= n)
            .collect();
    if extents.is_empty() {
        return None;
    }
    let mut entries = catalog::segment_entries(storage_id);
    let mut gates = replacers(&entries);
    // Extents freed by a compaction that has committed since become
    // reusable once its replaced rows are pruned: try that first.
    if extents.iter().any(|x| gates.contains(&x.freed_by)) {
        entries = prune_replaced(storage_id, entries);
        gates = replacers(&entries);
    }
    extents.retain(|x| is_reusable(x, &gates));
    extents.sort_by_key(|x| x.block_count);
    for x in extents {
        if catalog::claim_free(x.tid) {
            if x.block_count > n {
                catalog::insert_free(storage_id, x.first_block + n, x.block_count - n);
            }
            return Some(x.first_block);
        }
    }
    None
}

/// Which pages of a file of `nblocks` pages someone owns; free extents count
/// only if `free_owns` says so.
fn owned(
    rel: pg_sys::Relation,
    entries: &[Entry],
    free: &[FreeExtent],
    free_owns: impl Fn(&FreeExtent) -> bool,
    ws_tail: Option<u32>,
    nblocks: u32,
) -> Vec<bool> {
    let mut own = vec![false; nblocks as usize];
    let mut mark = |first: u32, count: u32| {
        let lo = (first as usize).min(own.len());
        let hi = (first as usize + count as usize).min(own.len());
        own[lo..hi].iter_mut().for_each(|o| *o = true);
    };
    mark(0, 1);
    if let Some(t) = ws_tail.filter(|t| *t != pg_sys::InvalidBlockNumber) {
        mark(t, 1);
    }
    for e in entries.iter().filter(|e| e.inserted) {
        let s = &e.segment;
        match s.kind {
            // Deleted ones too: an old snapshot may still read them (their
            // pages are in a free extent as well, not reusable yet).
            Kind::Parquet => mark(s.first_block, s.block_count),
            Kind::WriteStore if e.state != State::Dead => {
                for b in storage::write_store_blocks(rel, s.first_block, s.block_count) {
                    mark(b, 1);
                }
            }
            // Replaced ones too: their pages are in a free extent not yet
            // reusable, or were kept for a neighbour that was still being
            // written then (and may since have rolled back).
            Kind::WriteStore => {
                for b in storage::replaced_write_store_blocks(rel, s.first_block, s.block_count) {
                    mark(b, 1);
                }
            }
            Kind::Reserved => {}
        }
    }
    for x in free.iter().filter(|x| free_owns(x)) {
        mark(x.first_block, x.block_count);
    }
    own
}

/// What [`tidy`] changed, in pages.
#[derive(Default, Debug)]
pub struct Tidied {
    /// Unowned pages inside the file, now free extents.
    pub reclaimed: u32,
    /// Reusable pages at the end of the file, left for VACUUM to truncate.
    pub tail: u32,
}

/// A run of adjacent pages that are unowned or in reusable extents, and
/// what to do with it.
struct Run<'a> {
    first: u32,
    count: u32,
    /// The reusable extents inside it.
    rows: Vec<&'a FreeExtent>,
    /// It ends at the end of the file and [`Tail::Release`] was asked:
    /// its rows go, VACUUM truncates it.
    at_end: bool,
}

/// What [`tidy`] does with reusable pages at the end of the file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// List them as one free extent: a rewrite follows that may use them
    /// (else it would extend the file past them).
    Keep,
    /// Unlist them, for VACUUM to truncate.
    Release,
}

/// The runs [`tidy`] would change: not those one extent already lists, nor,
/// with [`Tail::Release`], unlisted ones at the end of the file.
fn plan<'a>(
    rel: pg_sys::Relation,
    entries: &[Entry],
    free: &'a [FreeExtent],
    ws_tail: Option<u32>,
    tail: Tail,
) -> Vec<Run<'a>> {
    let nblocks = storage::nblocks(rel);
    if nblocks <= 1 {
        return Vec::new();
    }
    let replacers = replacers(entries);
    // Reusable extents are candidates with the unowned pages: both may be
    // merged, and both may be released at the end of the file.
    let own = owned(
        rel,
        entries,
        free,
        |x| x.state != State::Dead && !is_reusable(x, &replacers),
        ws_tail,
        nblocks,
    );
    let candidates: Vec<u32> = (1..nblocks).filter(|b| !own[*b as usize]).collect();
    let reusable: Vec<&FreeExtent> = free.iter().filter(|x| is_reusable(x, &replacers)).collect();
    runs(&candidates)
        .into_iter()
        .map(|(first, count)| Run {
            first,
            count,
            rows: reusable
                .iter()
                .filter(|x| x.first_block >= first && x.first_block < first + count)
                .copied()
                .collect(),
            at_end: tail == Tail::Release && first + count == nblocks,
        })
        .filter(|r| {
            let listed: u32 = r.rows.iter().map(|x| x.block_count).sum();
            if r.at_end {
                !r.rows.is_empty()
            } else {
                !(r.rows.len() == 1 && listed == r.count)
            }
        })
        .collect()
}

/// Bring the free list up to date (see the module comment). The caller is
/// a compaction: it holds ShareUpdateExclusiveLock and `storage::ChangeLock`
/// exclusively, and `entries` are the table's segment rows read under them.
pub fn tidy(
    rel: pg_sys::Relation,
    storage_id: u64,
    entries: &[Entry],
    ws_tail: Option<u32>,
    tail: Tail,
) -> Tidied {
    let free = catalog::free_extents(storage_id, &raw mut pg_sys::SnapshotAnyData);
    let runs = plan(rel, entries, &free, ws_tail, tail);
    if runs.is_empty() {
        return Tidied::default();
    }
    // The rows go in with a transaction id of their own: a compaction's
    // xid gates the extents it freed (see `is_reusable`), and these hold
    // nothing any snapshot can read.
    let done = crate::pg::in_subtransaction(|| apply(storage_id, runs));
    // The rows are visible to (and can be taken by) this transaction's
    // later commands: the rewrite that follows a tidy.
    // SAFETY: between commands of this transaction.
    unsafe { pg_sys::CommandCounterIncrement() };
    done
}

fn apply(storage_id: u64, runs: Vec<Run>) -> Tidied {
    let mut done = Tidied::default();
    for run in runs {
        // Take the run's rows; if one cannot be taken (never expected
        // under our locks), put back what we took and leave the run.
        let mut taken: Vec<&FreeExtent> = Vec::new();
        let all = run.rows.iter().all(|x| {
            let ok = catalog::claim_free(x.tid);
            if ok {
                taken.push(x);
            }
            ok
        });
        if !all {
            for x in taken {
                catalog::insert_free(storage_id, x.first_block, x.block_count);
            }
            continue;
        }
        if run.at_end {
            done.tail += run.count;
        } else {
            let listed: u32 = run.rows.iter().map(|x| x.block_count).sum();
            done.reclaimed += run.count.saturating_sub(listed);
            catalog::insert_free(storage_id, run.first, run.count);
        }
    }
    done
}

/// Whether [`tidy`] has work (a hint, read without the locks it takes).
pub fn untidy(
    rel: pg_sys::Relation,
    storage_id: u64,
    entries: &[Entry],
    ws_tail: Option<u32>,
) -> bool {
    let free = catalog::free_extents(storage_id, &raw mut pg_sys::SnapshotAnyData);
    !plan(rel, entries, &free, ws_tail, Tail::Release).is_empty()
}

/// VACUUM: truncate the unowned pages at the end of the file, if no other
/// transaction holds a lock on the table (heap's VACUUM truncates under the
/// same condition). Returns the pages given back.
pub fn truncate_tail(rel: pg_sys::Relation) -> u32 {
    // A look without the lock first (concurrent writers only add pages, and
    // compaction waits for our lock), so that a VACUUM with nothing to give
    // back takes no AccessExclusiveLock, which a standby would replay.
    if owned_prefix(rel).is_none_or(|(keep, n)| keep >= n) {
        return 0;
    }
    // SAFETY: a conditional lock on an open relation, released below.
    if !unsafe { pg_sys::ConditionalLockRelation(rel, pg_sys::AccessExclusiveLock as i32) } {
        return 0;
    }
    // Nobody else has the table open now: no writer between taking pages
    // and recording them, no reader.
    let mut given = 0;
    if let Some((keep, nblocks)) = owned_prefix(rel).filter(|(keep, n)| keep < n) {
        // SAFETY: we hold AccessExclusiveLock; RelationTruncate WAL-logs the
        // truncation and drops the pages' buffers.
        unsafe { pg_sys::RelationTruncate(rel, keep) };
        given = nblocks - keep;
    }
    // SAFETY: taken above; released now, as heap's VACUUM does.
    unsafe { pg_sys::UnlockRelation(rel, pg_sys::AccessExclusiveLock as i32) };
    given
}

/// (pages up to the last owned one, pages in the file), if the table has
/// a metapage.
fn owned_prefix(rel: pg_sys::Relation) -> Option<(u32, u32)> {
    let nblocks = storage::nblocks(rel);
    let meta = storage::meta(rel)?;
    let entries = catalog::segment_entries(meta.storage_id);
    let free = catalog::free_extents(meta.storage_id, &raw mut pg_sys::SnapshotAnyData);
    let own = owned(
        rel,
        &entries,
        &free,
        |x| x.state != State::Dead,
        Some(meta.ws_tail),
        nblocks,
    );
    let keep = own.iter().rposition(|o| *o).map_or(1, |i| i as u32 + 1);
    Some((keep, nblocks))
}

#[cfg(test)]
mod tests {
    use super::runs;

    #[test]
    fn runs_of_blocks() {
        assert_eq!(runs(&[]), vec![]);
        assert_eq!(runs(&[3]), vec![(3, 1)]);
        assert_eq!(runs(&[1, 2, 3, 7, 8, 10]), vec![(1, 3), (7, 2), (10, 1)]);
    }
}
