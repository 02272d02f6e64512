//! # Concurrency and crash-safety protocol
//!
//! The index is written for PostgreSQL's model: many backends, page-level locks, a WAL in
//! which one record (GenericXLog) may cover at most 4 pages. The in-memory store is
//! single-threaded, but the code paths below are the ones a multi-backend binding runs.
//!
//! ## Invariants that make it work
//! * **Pages never move or change kind, and never merge.** A split keeps the left half in the
//!   original block and puts the right half in a new block; a split-down builds a *new* model
//!   page. So any block number a reader learned earlier still names a page covering some
//!   key range that is never *left* of where it used to be (Lehman–Yao).
//! * Every data page carries `[low, high)` as (key, tid) items and a right-link to the page
//!   holding `high`. Model nodes route a key to the *head* of a run of data pages; the
//!   pages after the head up to the next head are reachable only by right-links (a run of
//!   one duplicated key, or a split the parent does not know about yet).
//!
//! ## Readers (Lehman–Yao move-right)
//! A reader holds one share lock at a time. It descends model pages by arithmetic, reads the
//! data page, and if the wanted item is `>= high` it releases the page and follows the
//! right-link, repeating until `low <= item < high` (see `search::find_leaf`). A split
//! that happened after the reader read the parent but before it read the data page moved
//! the upper half to a right sibling reachable by exactly this rule. Forward scans save the
//! right-link they saw when they copied a page's entries, so entries moved right by a later
//! split are not returned twice (nbtree's approach); backward scans re-descend with the low
//! key of the page just returned and move right to the page holding its predecessor.
//!
//! ## Writers: splits as sequences of atomic groups
//! Every group touches at most [`crate::GROUP_LIMIT`] pages and leaves a valid index:
//! 1. **Group 1** rewrites the full page `D` with its lower half (`high` = split key, right-link
//!    = new page `D'`), writes `D'` with the upper half (old `high`, old right-link), bumps
//!    the metapage counters and sets `F_INCOMPLETE` on `D`. For a split-down the new model
//!    page `M` (children `D`, `D'`) is written in the same group, not yet linked. After this
//!    group the parent still routes `D'`'s keys to `D`, and readers move right: valid.
//! 2. **Group 2** re-points the parent (the run of duplicated slots from the recorded slot on,
//!    or the whole run to `M`; the metapage root for a root split) and clears the flag.
//!
//! If the process dies between the groups (or a binding's transaction aborts), the flag
//! stays set and the next writer that lands on `D` finishes group 2 before doing anything
//! else (nbtree's incomplete-split handling); `verify` accepts and counts such pages.
//! Splits of runs of a single duplicated key need no group 2 at all: the parent cannot
//! separate equal keys, so the new page stays reachable only by right-link.
//!
//! A writer plans from a shared-lock read, then re-reads inside its group (exclusive locks)
//! and, if the page no longer covers the item or was split meanwhile, aborts the group
//! (`Error::Retry`) and starts over — never holding more than one group's locks.
//! Lock order inside a group is child before parent, left before right (nbtree's order).
