//! Allocation of map indexes: service and backend ids, and regions of the shared Maglev
//! slot array. Pure bookkeeping, mirrored from (and adoptable back from) the maps.

use std::collections::BTreeSet;

/// Ids `0..capacity`, lowest free first (keeps arrays dense and dumps readable).
#[derive(Debug, Clone)]
pub struct IdPool {
    capacity: u32,
    used: BTreeSet<u32>,
}

impl IdPool {
    pub fn new(capacity: u32) -> Self {
        Self {
            capacity,
            used: BTreeSet::new(),
        }
    }

    pub fn allocate(&mut self) -> Option<u32> {
        let id = (0..self.capacity).find(|id| !self.used.contains(id))?;
        self.used.insert(id);
        Some(id)
    }

    /// Marks an id found in the maps after a restart as taken.
    pub fn reserve(&mut self, id: u32) -> bool {
        id < self.capacity && self.used.insert(id)
    }

    pub fn release(&mut self, id: u32) {
        self.used.remove(&id);
    }

    pub fn in_use(&self) -> usize {
        self.used.len()
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }
}

/// First-fit allocator of contiguous slot ranges in `lb_maglev`.
#[derive(Debug, Clone)]
pub struct RingAllocator {
    capacity: u32,
    /// offset -> size of every allocated region.
    regions: std::collections::BTreeMap<u32, u32>,
}

impl RingAllocator {
    pub fn new(capacity: u32) -> Self {
        Self {
            capacity,
            regions: Default::default(),
        }
    }

    pub fn allocate(&mut self, size: u32) -> Option<u32> {
        let mut start = 0u32;
        for (&offset, &len) in &self.regions {
            if offset - start >= size {
                break;
            }
            start = offset + len;
        }
        if self.capacity.checked_sub(start)? < size {
            return None;
        }
        self.regions.insert(start, size);
        Some(start)
    }

    /// Marks a region found in the maps after a restart as taken; false if it overlaps
    /// another or lies outside the array.
    pub fn reserve(&mut self, offset: u32, size: u32) -> bool {
        let end = match offset.checked_add(size) {
            Some(end) if end <= self.capacity => end,
            _ => return false,
        };
        let overlaps = self
            .regions
            .iter()
            .any(|(&o, &l)| o < end && offset < o + l);
        if overlaps {
            return false;
        }
        self.regions.insert(offset, size);
        true
    }

    pub fn release(&mut self, offset: u32) {
        self.regions.remove(&offset);
    }

    pub fn used(&self) -> u32 {
        self.regions.values().sum()
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_lowest_free_and_bounded() {
        let mut pool = IdPool::new(3);
        assert_eq!(pool.allocate(), Some(0));
        assert_eq!(pool.allocate(), Some(1));
        pool.release(0);
        assert_eq!(pool.allocate(), Some(0));
        assert_eq!(pool.allocate(), Some(2));
        assert_eq!(pool.allocate(), None);
        assert!(!pool.reserve(1), "already used");
        assert!(!pool.reserve(7), "out of range");
        assert_eq!(pool.in_use(), 3);
    }

    #[test]
    fn rings_first_fit_and_reuse_holes() {
        let mut rings = RingAllocator::new(1000);
        assert_eq!(rings.allocate(251), Some(0));
        assert_eq!(rings.allocate(509), Some(251));
        assert_eq!(rings.allocate(251), None, "only 240 left");
        rings.release(0);
        assert_eq!(rings.allocate(251), Some(0));
        rings.release(251);
        assert_eq!(rings.allocate(100), Some(251));
        assert_eq!(rings.used(), 351);
    }

    #[test]
    fn reserve_rejects_overlap_and_overflow() {
        let mut rings = RingAllocator::new(1000);
        assert!(rings.reserve(100, 251));
        assert!(!rings.reserve(300, 100));
        assert!(!rings.reserve(900, 251));
        assert!(rings.reserve(351, 251));
        assert_eq!(rings.allocate(100), Some(0));
        assert_eq!(rings.allocate(100), Some(602));
    }
}
