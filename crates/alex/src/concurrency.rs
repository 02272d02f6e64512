//! # Concurrency and crash-safety protocol
//!
//! The index is written for PostgreSQL's model: many backends, each with its own `Alex` value
//! over the same pages, page-level locks, and a WAL in which one record (GenericXLog) may
//! cover at most 4 pages. `tests/common` has a thread-safe store with exactly these semantics
//! (page read locks for `read`, page write locks held to the end of a group, all-or-nothing
//! install), and `tests/concurrent.rs` runs 4 writers/readers over it.
//!
//! ## Invariants that make it work
//! * **Model pages never move, change kind or go away.** A split keeps the left half in the
//!   original block and puts the right half in a new block; a split-down builds a *new* model
//!   page; a root grow builds a new root above the old one. Data pages go away only by a
//!   VACUUM merge (`merge.rs`), which marks the page deleted; its block may later be reused
//!   as any page. So a route learned earlier (cached root and model levels, `cache.rs`)
//!   ends at or left of the right data page — or at a block that is deleted, reused, or no
//!   longer a data page, which a reader recognises (`search::live_data`, a low key above
//!   its item) and answers by descending again from the metapage root (`Error::Moved`).
//!   Live data pages always partition the key space, so a live page covering the item is
//!   the right page however it was reached.
//! * A live page's low key never changes; its high key decreases with splits and increases
//!   only when it absorbs its right sibling in a merge. Writers re-check low, high,
//!   right-link and count (and entries) under the lock, so a changed page aborts the group.
//! * Every data page carries `[low, high)` as (key, tid) items and a right-link to the page
//!   holding `high`. Model nodes route a key to the *head* of a run of data pages; the
//!   pages after the head up to the next head are reachable only by right-links (a run of
//!   one duplicated key, or a split the parent does not know about yet).
//!
//! ## Readers (Lehman–Yao move-right)
//! A reader holds one share lock at a time. It descends model pages by arithmetic and reads
//! the data page; if the wanted item is `>= high` it follows the right-link, until
//! `low <= item < high`. Whatever it then does with the page (search, collect duplicates,
//! note the right-link to continue at) happens **inside that same read** (`search::at_leaf`):
//! a header decoded in one read is never applied to the bytes of another, because a split in
//! between may have rewritten the page. Forward scans continue at the right-link they saw
//! when they copied a page's entries, so entries moved right by a later split are neither
//! lost nor returned twice (nbtree's approach); backward scans re-descend with the low key of
//! the page just returned and move right, in the same read that collects, to the page
//! holding its predecessor.
//!
//! ## Writers: plan from reads, decide inside the group
//! A writer plans from share-locked reads, then opens a group, `modify`s (exclusively locks)
//! the pages and re-decides from what it finds there. If the plan went stale it aborts the
//! group with `Error::Retry` — before allocating anything — and starts over from the root.
//! It never holds more than one group's locks.
//! * In-place insert / delete: the page must still cover the item and not be flagged; the
//!   gap search, density limit and key-width checks run on the locked page.
//! * Rebuild (wider keys): entries are re-read from the locked page.
//! * Split group 1 (`split::split_write`): the page must hold exactly the entries the split
//!   was planned from, with the same range and right-link. It then rewrites the page with
//!   its lower half (`high` = split key, right-link = new page, `F_INCOMPLETE`), writes the
//!   new right page, for a split-down or root grow also the new (unlinked) model page, and
//!   bumps the metapage. After this group the parent still routes the right half's keys to
//!   the page, and readers move right: valid.
//! * Split group 2 (`split::try_finish_split`): locks the flagged page; if the flag is
//!   already clear, another writer finished the split and this one does nothing. Otherwise
//!   it locks the parent found by a fresh descent, re-decodes it, re-locates the run of
//!   slots that point at the page, checks that the recorded slot is inside that run and
//!   starts at the split key (sideways), or that the pending model's domain equals the run's
//!   range (down), or that the new root's first child is the current root (grow); then it
//!   re-points the slots (or the metapage root) and clears the flag. A parent that no longer
//!   routes to the page aborts with `Retry`; a run that contradicts the flag is corruption.
//!
//! If the process dies between the groups (or a transaction aborts), the flag stays set and
//! the next writer that lands on the page finishes group 2 before doing anything else
//! (nbtree's incomplete-split handling); `verify` accepts and counts such pages. Splits of
//! runs of one duplicated key need no group 2: the new page stays reachable by right-link.
//!
//! ## Lock order (no deadlocks between writers)
//! Within a group: the data page first, then pages it allocates (unreachable by anyone
//! else, or deleted pages taken with a conditional lock), then its parent model page, then
//! the metapage — always last. The only group that locks two existing data pages is a
//! merge (right page, then left page, then parent, then metapage), and only VACUUM merges
//! (one per index at a time), so the waits-for graph goes data page → data page → model
//! page → metapage without a cycle. Readers never wait while holding a lock. The
//! `SharedStore` test panics if a lock wait exceeds 20 s.
