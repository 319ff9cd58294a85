//! Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software
//! Network Load Balancer", NSDI 2016), computed in user space.
//!
//! [`build`] produces the lookup table ("ring") of `M` slots that the XDP program
//! indexes with `flow_hash % M`; each slot holds the value of one backend. Properties:
//!
//! - **Consistent**: every backend has a fixed preference order over the slots (its
//!   permutation), derived only from its identity. Adding or removing one backend moves
//!   roughly `1/N` of the slots, so most established flows keep their backend.
//! - **Deterministic**: the table depends only on the *set* of backends (identity,
//!   weight, value), not on input order, so every node builds the same table.
//! - **Weighted**: a backend's share of slots is proportional to its weight (the
//!   scheme of Katran's weighted Maglev). Weight 0 gives no slots: no new flows.
//!
//! `M` must be prime (so every permutation visits every slot) and should be well above
//! `100 × N` for good balance and small disruption; [`TABLE_SIZES`] lists the choices.

use lb_common::NO_BACKEND;

pub use lb_common::maglev::{DEFAULT_TABLE_SIZE, TABLE_SIZES};

/// One backend as Maglev sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaglevBackend<'a> {
    /// Stable identity of the backend (e.g. b"10.0.0.1:80"): the permutation is derived
    /// from it alone, so every node builds the same table for the same backend set.
    pub identity: &'a [u8],
    /// What the slot stores (the node-local backend id).
    pub value: u32,
    /// Relative weight; 0 = the backend gets no slots (no new flows).
    pub weight: u32,
}

/// Why a table could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MaglevError {
    /// `size` is not one of [`TABLE_SIZES`].
    #[error(
        "unsupported Maglev table size {size}: choose one of {:?} (primes; pick one \
         above 100 × the number of backends)",
        TABLE_SIZES
    )]
    UnsupportedTableSize { size: u32 },

    /// At least as many backends with weight > 0 as slots.
    #[error(
        "{backends} backends with weight > 0 do not fit a Maglev table of {size} slots: \
         the table size must exceed the backend count (ideally by 100×); choose a larger \
         table size or fewer backends"
    )]
    TooManyBackends { backends: usize, size: u32 },

    /// Two backends share an identity, so they would share a permutation.
    #[error(
        "backend identity {identity:?} appears more than once: each backend needs a \
         distinct identity (e.g. its address:port)"
    )]
    DuplicateIdentity { identity: String },

    /// A backend with weight > 0 uses [`NO_BACKEND`] as its value.
    #[error(
        "backend {identity:?} has value {NO_BACKEND}, which is reserved to mean \
         \"no backend\": give it another value"
    )]
    ReservedValue { identity: String },
}

// The two permutation hashes: FNV-1a 64-bit with a seeded offset basis, followed by
// murmur3's fmix64 finalizer so every output bit depends on every input bit (plain
// FNV-1a mixes its last bytes poorly, and identities often differ only there).
//
// These must never change: the table is a pure function of them, so a different hash
// (or seed) gives every backend a new permutation and moves nearly every flow, and
// nodes running different versions would disagree on the table.
const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const SEED_OFFSET: u64 = 0x0000_0000_0000_0000;
const SEED_SKIP: u64 = 0x9e37_79b9_7f4a_7c15;

fn hash(seed: u64, data: &[u8]) -> u64 {
    let mut h = FNV_OFFSET_BASIS ^ seed;
    for &byte in data {
        h ^= u64::from(byte);
        h = h.wrapping_mul(FNV_PRIME);
    }
    fmix64(h)
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// Marks a slot not yet claimed while filling (slots hold indexes into `cursors`).
const EMPTY: u32 = u32::MAX;

/// Fill state of one backend with weight > 0.
struct Cursor {
    /// Next slot of the backend's permutation to try.
    pos: u32,
    /// Step through the permutation; in 1..M, so coprime with the prime M.
    skip: u32,
    /// `M - skip`: stepping is `pos - back` when that does not underflow, else
    /// `pos + skip`, i.e. `(pos + skip) % M` without a division.
    back: u32,
    weight: u64,
    /// Weight accumulated towards the next claim (Katran's weighted Maglev).
    acc: u64,
    value: u32,
}

/// Builds the table. Every slot holds the `value` of a backend with weight > 0, or
/// NO_BACKEND everywhere when there is none.
///
/// Cost is about `M·ln M` probes (~1 ms for 1000 backends at M = 65537) plus one pass
/// over the backends per round; rounds grow with max weight / mean weight, so very
/// skewed weights are slower (one backend at 100× the others: a few ms).
pub fn build(backends: &[MaglevBackend<'_>], size: u32) -> Result<Vec<u32>, MaglevError> {
    if !TABLE_SIZES.contains(&size) {
        return Err(MaglevError::UnsupportedTableSize { size });
    }
    let identity = |b: &MaglevBackend<'_>| String::from_utf8_lossy(b.identity).into_owned();

    // Sort by identity so the fill order, and thus the table, ignores input order.
    let mut sorted: Vec<&MaglevBackend<'_>> = backends.iter().collect();
    sorted.sort_unstable_by(|a, b| a.identity.cmp(b.identity));
    if let Some(pair) = sorted.windows(2).find(|p| p[0].identity == p[1].identity) {
        return Err(MaglevError::DuplicateIdentity {
            identity: identity(pair[0]),
        });
    }
    sorted.retain(|b| b.weight > 0);
    if let Some(b) = sorted.iter().find(|b| b.value == NO_BACKEND) {
        return Err(MaglevError::ReservedValue {
            identity: identity(b),
        });
    }
    if sorted.is_empty() {
        return Ok(vec![NO_BACKEND; size as usize]);
    }
    if sorted.len() >= size as usize {
        return Err(MaglevError::TooManyBackends {
            backends: sorted.len(),
            size,
        });
    }

    let m = u64::from(size);
    let mut cursors: Vec<Cursor> = sorted
        .iter()
        .map(|b| {
            // Both results are < m <= u32::MAX, so the casts are lossless.
            let skip = (hash(SEED_SKIP, b.identity) % (m - 1) + 1) as u32;
            Cursor {
                pos: (hash(SEED_OFFSET, b.identity) % m) as u32,
                skip,
                back: size - skip,
                weight: u64::from(b.weight),
                acc: 0,
                value: b.value,
            }
        })
        .collect();
    let max_weight = cursors.iter().map(|c| c.weight).max().unwrap_or(1);

    // Round-robin fill: each round every backend adds its weight; one that reaches the
    // max weight claims its next preferred empty slot. The heaviest backend claims every
    // round and M > N, so the loop ends; each claim finds an empty slot because the
    // table is not full and the permutation (M prime) visits every slot.
    let mut slots = vec![EMPTY; size as usize];
    let mut filled = 0u32;
    'fill: loop {
        for (i, c) in cursors.iter_mut().enumerate() {
            c.acc += c.weight;
            if c.acc < max_weight {
                continue;
            }
            c.acc -= max_weight;
            let (skip, back) = (c.skip, c.back);
            // Incremental `(pos + skip) % M`, written so the step is one compare and
            // select: this walk is the hot loop and its latency bounds the build time.
            let step = |pos: u32| if pos >= back { pos - back } else { pos + skip };
            let mut pos = c.pos;
            while slots[pos as usize] != EMPTY {
                pos = step(pos);
            }
            slots[pos as usize] = i as u32;
            c.pos = step(pos);
            filled += 1;
            if filled == size {
                break 'fill;
            }
        }
    }

    // Translate backend indexes into the values the data plane expects, in place.
    for slot in &mut slots {
        *slot = cursors[*slot as usize].value;
    }
    Ok(slots)
}

/// Slots whose value differs between two tables of the same size: (index, new value).
///
/// If the sizes differ, the whole ring must be rewritten, so every slot of `new` is
/// reported.
pub fn changed_slots<'a>(old: &'a [u32], new: &'a [u32]) -> impl Iterator<Item = (u32, u32)> + 'a {
    let same_size = old.len() == new.len();
    new.iter().enumerate().filter_map(move |(i, &value)| {
        // Tables have at most 131071 slots, so the index fits in u32.
        (!same_size || old.get(i) != Some(&value)).then_some((i as u32, value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Identities like "10.0.1.7:80"; owned so backends can borrow them.
    fn identities(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("10.0.{}.{}:80", i / 256, i % 256).into_bytes())
            .collect()
    }

    /// Backend i gets value i and weight `weights[i]`.
    fn backends<'a>(ids: &'a [Vec<u8>], weights: &[u32]) -> Vec<MaglevBackend<'a>> {
        ids.iter()
            .zip(weights)
            .enumerate()
            .map(|(i, (id, &weight))| MaglevBackend {
                identity: id,
                value: i as u32,
                weight,
            })
            .collect()
    }

    /// Number of slots per value `0..n`.
    fn counts(table: &[u32], n: usize) -> Vec<usize> {
        let mut counts = vec![0; n];
        for &v in table {
            counts[v as usize] += 1;
        }
        counts
    }

    /// Asserts |share_i - weight_i / sum(weights)| <= 1% of the table for every backend.
    fn assert_balanced(weights: &[u32], size: u32) {
        let ids = identities(weights.len());
        let table = build(&backends(&ids, weights), size).unwrap();
        assert_eq!(table.len(), size as usize);
        let total: u32 = weights.iter().sum();
        for (i, &count) in counts(&table, weights.len()).iter().enumerate() {
            let share = count as f64 / f64::from(size);
            let want = f64::from(weights[i]) / f64::from(total);
            assert!(
                (share - want).abs() <= 0.01,
                "backend {i} of {} at M={size}: share {share:.4}, want {want:.4}",
                weights.len()
            );
        }
    }

    #[test]
    fn balance_equal_weights() {
        for (n, size) in [
            (2, 251),
            (5, 65537),
            (10, 4093),
            (100, 16381),
            (100, 131071),
        ] {
            assert!(size as usize > 100 * n);
            assert_balanced(&vec![1; n], size);
        }
    }

    #[test]
    fn balance_unequal_weights() {
        assert_balanced(&[1, 2, 3, 4], 509);
        assert_balanced(&[1, 2, 3, 4], 65537);
        let weights: Vec<u32> = (1..=50).collect();
        assert_balanced(&weights, 8191);
        assert_balanced(&[100, 1, 7, 1000, 33], 65537);
    }

    #[test]
    fn weights_zero_and_proportional() {
        let ids = identities(3);
        let table = build(&backends(&ids, &[1, 0, 3]), 65537).unwrap();
        let c = counts(&table, 3);
        assert_eq!(c[1], 0, "weight 0 backend must get no slots");
        let share0 = c[0] as f64 / 65537.0;
        assert!((share0 - 0.25).abs() <= 0.01, "1:3 split gave {share0:.4}");
        // Scaling every weight leaves the table unchanged.
        assert_eq!(table, build(&backends(&ids, &[7, 0, 21]), 65537).unwrap());
        // Extreme ratios still work and terminate.
        let table = build(&backends(&ids, &[1, u32::MAX, u32::MAX]), 251).unwrap();
        assert!(counts(&table, 3)[0] <= 1);
    }

    /// Asserts that going from `old` to `new` moved at most (1/n + 1%) of the table,
    /// not counting slots that belonged to `removed` in `old`.
    fn assert_little_moved(old: &[u32], new: &[u32], removed: u32, n: usize, what: &str) {
        let limit = (1.0 / n as f64 + 0.01) * old.len() as f64;
        let moved = changed_slots(old, new)
            .filter(|&(i, _)| old[i as usize] != removed)
            .count();
        assert!(
            moved as f64 <= limit,
            "{what}: {moved} slots moved (limit {limit:.0})"
        );
    }

    #[test]
    fn minimal_disruption_on_remove_and_add() {
        let size = 65537;
        for n in [5usize, 10, 50] {
            assert!(size as usize > 100 * n);
            let ids = identities(n + 1);
            let all = backends(&ids, &vec![1; n + 1]);
            let full = build(&all[..n], size).unwrap();

            for removed in [0, n / 2, n - 1] {
                let mut rest = all[..n].to_vec();
                rest.remove(removed);
                let smaller = build(&rest, size).unwrap();
                assert!(!smaller.contains(&(removed as u32)));
                let what = format!("removing backend {removed} of {n}");
                assert_little_moved(&full, &smaller, removed as u32, n, &what);
            }

            // Adding: the new backend's own slots count as moved too.
            let larger = build(&all, size).unwrap();
            let what = format!("adding a backend to {n}");
            assert_little_moved(&full, &larger, NO_BACKEND, n, &what);
        }
    }

    #[test]
    fn independent_of_input_order() {
        let ids = identities(20);
        let weights: Vec<u32> = (0..20).map(|i| i % 4).collect();
        let forward = backends(&ids, &weights);
        let table = build(&forward, 4093).unwrap();
        assert_eq!(table, build(&forward, 4093).unwrap());

        let mut reversed = forward.clone();
        reversed.reverse();
        assert_eq!(table, build(&reversed, 4093).unwrap());
        let mut rotated = forward.clone();
        rotated.rotate_left(7);
        assert_eq!(table, build(&rotated, 4093).unwrap());
        let mut interleaved: Vec<_> = forward.iter().step_by(2).copied().collect();
        interleaved.extend(forward.iter().skip(1).step_by(2).copied());
        assert_eq!(table, build(&interleaved, 4093).unwrap());
    }

    /// Nodes number backends differently; they must still pick the same backend per slot.
    #[test]
    fn same_backend_per_slot_whatever_the_values() {
        let ids = identities(30);
        let weights: Vec<u32> = (0..30).map(|i| 1 + i % 3).collect();
        let node_a = backends(&ids, &weights);
        let mut node_b = node_a.clone();
        for b in &mut node_b {
            b.value = 1000 - b.value; // reverses the value order
        }
        let table_a = build(&node_a, 8191).unwrap();
        let table_b = build(&node_b, 8191).unwrap();
        let translated: Vec<u32> = table_b.iter().map(|v| 1000 - v).collect();
        assert_eq!(table_a, translated);
    }

    /// Recorded once; a failure means the hash or fill changed, which would move every
    /// flow on upgrade. Only update these deliberately.
    #[test]
    fn golden_table() {
        assert_eq!(hash(SEED_OFFSET, b"10.0.0.1:80"), 6834485282503893322);
        assert_eq!(hash(SEED_SKIP, b"10.0.0.1:80"), 9047656869223457273);
        let ids: Vec<&[u8]> = vec![b"10.0.0.1:80", b"10.0.0.2:80", b"10.0.0.3:80"];
        let input: Vec<MaglevBackend<'_>> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| MaglevBackend {
                identity: id,
                value: 10 + i as u32,
                weight: 1 + i as u32,
            })
            .collect();
        let table = build(&input, 251).unwrap();
        assert_eq!(
            &table[..16],
            &[12, 11, 10, 11, 10, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 12]
        );
        assert_eq!(&table[244..], &[11, 12, 12, 12, 12, 12, 12]);
        assert_eq!(counts(&table, 13)[10..], [42, 84, 125]);
        // Fingerprint of the whole table, checked against an independent implementation.
        let bytes: Vec<u8> = table.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(hash(0, &bytes), 1198004997104824417);
    }

    #[test]
    fn errors() {
        let ids = identities(300);
        let one = backends(&ids[..1], &[1]);
        for size in [0, 1, 250, 256, 65536, u32::MAX] {
            let err = build(&one, size).unwrap_err();
            assert_eq!(err, MaglevError::UnsupportedTableSize { size });
            assert!(err.to_string().contains("65537"), "{err}");
        }

        let mut dup = backends(&ids[..3], &[1, 1, 1]);
        dup[2].identity = dup[0].identity;
        dup[2].weight = 0; // duplicates are wrong even when one is drained
        assert_eq!(
            build(&dup, 251),
            Err(MaglevError::DuplicateIdentity {
                identity: "10.0.0.0:80".into()
            })
        );

        // N >= M is refused; weight-0 backends do not count.
        let many = backends(&ids[..251], &[1; 251]);
        assert_eq!(
            build(&many, 251),
            Err(MaglevError::TooManyBackends {
                backends: 251,
                size: 251
            })
        );
        let mut drained = many.clone();
        drained[0].weight = 0;
        let table = build(&drained, 251).unwrap();
        assert!(table.iter().all(|&v| v != 0 && v < 251));

        let mut reserved = backends(&ids[..2], &[1, 1]);
        reserved[1].value = NO_BACKEND;
        assert!(matches!(
            build(&reserved, 251),
            Err(MaglevError::ReservedValue { .. })
        ));
        reserved[1].weight = 0; // never stored, so allowed
        assert_eq!(build(&reserved, 251).unwrap(), vec![0; 251]);
    }

    #[test]
    fn no_live_backend_means_no_backend_everywhere() {
        assert_eq!(build(&[], 251).unwrap(), vec![NO_BACKEND; 251]);
        let ids = identities(3);
        let table = build(&backends(&ids, &[0, 0, 0]), 65537).unwrap();
        assert_eq!(table, vec![NO_BACKEND; 65537]);
    }

    #[test]
    fn changed_slots_reports_exactly_the_differences() {
        let old = [1, 2, 3, 4, 5];
        let new = [1, 9, 3, 4, 7];
        assert_eq!(
            changed_slots(&old, &new).collect::<Vec<_>>(),
            vec![(1, 9), (4, 7)]
        );
        assert_eq!(changed_slots(&old, &old).count(), 0);
        // Different sizes: the whole new table is reported.
        assert_eq!(changed_slots(&old[..2], &new[..3]).count(), 3);

        let ids = identities(11);
        let a = build(&backends(&ids[..10], &[1; 10]), 4093).unwrap();
        let b = build(&backends(&ids, &[1; 11]), 4093).unwrap();
        let want: Vec<(u32, u32)> = (0..a.len())
            .filter(|&i| a[i] != b[i])
            .map(|i| (i as u32, b[i]))
            .collect();
        assert!(!want.is_empty());
        assert_eq!(changed_slots(&a, &b).collect::<Vec<_>>(), want);
    }

    /// One node's view of a service as the data plane keeps it: node-local backend ids
    /// allocated in the order backends arrived, and a ring updated only by the slots
    /// [`changed_slots`] reports (what `program.rs` writes to the map).
    struct Node {
        ids: crate::dataplane::alloc::IdPool,
        /// identity -> (id, weight), in arrival order (the order `build` is given).
        members: Vec<(Vec<u8>, u32, u32)>,
        ring: Vec<u32>,
    }

    impl Node {
        const SIZE: u32 = 1021;

        fn new() -> Node {
            Node {
                ids: crate::dataplane::alloc::IdPool::new(64),
                members: Vec::new(),
                ring: Vec::new(),
            }
        }

        /// Adds a backend, or changes its weight if present.
        fn set(&mut self, identity: &[u8], weight: u32) {
            match self.members.iter_mut().find(|m| m.0 == identity) {
                Some(m) => m.2 = weight,
                None => {
                    let id = self.ids.allocate().unwrap();
                    self.members.push((identity.to_vec(), id, weight));
                }
            }
            self.rebuild();
        }

        fn remove(&mut self, identity: &[u8]) {
            if let Some(i) = self.members.iter().position(|m| m.0 == identity) {
                let (_, id, _) = self.members.remove(i);
                self.rebuild();
                // Freed only after the ring stopped pointing at it, as program.rs does.
                self.ids.release(id);
            }
        }

        fn table(&self) -> Vec<u32> {
            let backends: Vec<MaglevBackend<'_>> = self
                .members
                .iter()
                .map(|(identity, value, weight)| MaglevBackend {
                    identity,
                    value: *value,
                    weight: *weight,
                })
                .collect();
            build(&backends, Self::SIZE).unwrap()
        }

        fn rebuild(&mut self) {
            let new = self.table();
            if self.ring.len() != new.len() {
                self.ring = vec![NO_BACKEND; new.len()];
            }
            let writes: Vec<(u32, u32)> = changed_slots(&self.ring, &new).collect();
            for (index, value) in writes {
                self.ring[index as usize] = value;
            }
        }

        /// The ring with each node-local id replaced by the backend's identity: what a
        /// flow hashing to a slot gets, comparable across nodes.
        fn by_identity(&self) -> Vec<Vec<u8>> {
            self.ring
                .iter()
                .map(|&v| {
                    self.members
                        .iter()
                        .find(|m| m.1 == v)
                        .map_or_else(Vec::new, |m| m.0.clone())
                })
                .collect()
        }
    }

    /// ECMP moves flows between nodes: every node must map every slot to the same backend
    /// whatever order backends were added in and whatever happened before.
    #[test]
    fn nodes_with_different_histories_build_identical_tables() {
        let ids = identities(12);
        let target: Vec<(usize, u32)> = vec![(0, 1), (2, 3), (3, 1), (5, 2), (7, 1), (9, 1)];

        // Node A: the target set in order.
        let mut a = Node::new();
        for &(i, w) in &target {
            a.set(&ids[i], w);
        }

        // Node B: reverse order, extra backends added and removed, weights changed and
        // drained to 0 on the way.
        let mut b = Node::new();
        for &(i, w) in target.iter().rev() {
            b.set(&ids[i], w + 4);
        }
        b.set(&ids[11], 1);
        b.set(&ids[4], 2);
        b.remove(&ids[5]);
        b.set(&ids[2], 0);
        b.remove(&ids[11]);
        b.set(&ids[5], 2);
        b.remove(&ids[4]);
        for &(i, w) in &target {
            b.set(&ids[i], w);
        }

        // Nodes C..: pseudo-random histories (a fixed LCG), then converge on the target.
        let mut nodes = vec![a, b];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % n
        };
        for _ in 0..8 {
            let mut node = Node::new();
            for _ in 0..40 {
                let i = next(12) as usize;
                match next(3) {
                    0 => node.remove(&ids[i]),
                    _ => node.set(&ids[i], next(5) as u32),
                }
            }
            for (i, id) in ids.iter().enumerate() {
                match target.iter().find(|t| t.0 == i) {
                    Some(&(_, w)) => node.set(id, w),
                    None => node.remove(id),
                }
            }
            nodes.push(node);
        }

        // The histories did number backends differently (else the test proves little).
        let id_of = |node: &Node, identity: &[u8]| {
            node.members.iter().find(|m| m.0 == identity).map(|m| m.1)
        };
        assert!(nodes
            .iter()
            .any(|node| ids.iter().any(|i| id_of(node, i) != id_of(&nodes[0], i))));
        let reference = nodes[0].by_identity();
        assert!(
            reference.iter().all(|id| !id.is_empty()),
            "every slot has a backend"
        );
        for (n, node) in nodes.iter().enumerate() {
            // The incrementally written ring is exactly a fresh build on that node...
            assert_eq!(
                node.ring,
                node.table(),
                "node {n}: ring differs from a fresh build"
            );
            // ...and slot for slot the same backends as every other node.
            assert!(
                node.by_identity() == reference,
                "node {n} maps slots to other backends"
            );
            // Numbered alike (here: by identity), the tables are bit-identical.
            let canonical = |node: &Node| -> Vec<u32> {
                let by_id = node.by_identity();
                by_id
                    .iter()
                    .map(|id| ids.iter().position(|i| i == id).unwrap() as u32)
                    .collect()
            };
            assert_eq!(
                canonical(node),
                canonical(&nodes[0]),
                "node {n}: not bit-identical"
            );
        }
    }

    /// Timing probe, not a check: `cargo test --release -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn build_time_1000_backends() {
        let ids = identities(1000);
        let input = backends(&ids, &[1; 1000]);
        let runs = 200;
        let mut best = std::time::Duration::MAX;
        let start = std::time::Instant::now();
        for _ in 0..runs {
            let one = std::time::Instant::now();
            let table = build(std::hint::black_box(&input), DEFAULT_TABLE_SIZE);
            std::hint::black_box(table.unwrap());
            best = best.min(one.elapsed());
        }
        let mean = start.elapsed() / runs;
        println!("1000 backends, M={DEFAULT_TABLE_SIZE}: mean {mean:?}, best {best:?}");
    }
}
