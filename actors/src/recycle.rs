//! Per-thread free lists for the vectors that travel in actor messages between a connection's
//! actors, which all live on one shard thread: the reader's frame batches (`Incoming`) and the
//! Pipe's write batches (`Write`). The receiver hands an emptied vector back here and the
//! sender takes it for its next batch, instead of one malloc and one free per batch. (A frame
//! batch of eight messages is about 1.7 KB, past the allocator's per-thread cache.)

use std::cell::RefCell;
use std::thread::LocalKey;

use bytes::Bytes;

use crate::msgs::InFrame;

/// Vectors kept per thread and kind: enough for the batches a shard has in flight at once.
const MAX_KEPT: usize = 64;

/// Larger vectors are freed rather than kept (a rare huge batch should not stay resident), so
/// a thread keeps at most `MAX_KEPT` × 16 KiB per kind.
const MAX_KEPT_BYTES: usize = 16 * 1024;

/// One thread's spare vectors of one element type.
pub(crate) struct FreeList<T> {
    free: RefCell<Vec<Vec<T>>>,
}

impl<T> FreeList<T> {
    const fn new() -> Self {
        FreeList {
            free: RefCell::new(Vec::new()),
        }
    }

    fn take(&self, capacity: usize) -> Vec<T> {
        let mut v = self.free.borrow_mut().pop().unwrap_or_default();
        v.reserve(capacity);
        v
    }

    fn give(&self, mut v: Vec<T>) {
        if v.capacity() == 0 || v.capacity() * std::mem::size_of::<T>() > MAX_KEPT_BYTES {
            return;
        }
        v.clear();
        let mut free = self.free.borrow_mut();
        if free.len() < MAX_KEPT {
            free.push(v);
        }
    }
}

thread_local! {
    static FRAME_BATCHES: FreeList<InFrame> = const { FreeList::new() };
    static WRITE_BATCHES: FreeList<Bytes> = const { FreeList::new() };
}

/// An element type whose vectors are recycled, and its thread's free list.
pub(crate) trait Recycled: Sized + 'static {
    /// The free list of this thread for vectors of `Self`.
    fn free_list() -> &'static LocalKey<FreeList<Self>>;
}

impl Recycled for InFrame {
    fn free_list() -> &'static LocalKey<FreeList<Self>> {
        &FRAME_BATCHES
    }
}

impl Recycled for Bytes {
    fn free_list() -> &'static LocalKey<FreeList<Self>> {
        &WRITE_BATCHES
    }
}

/// An empty batch with room for `capacity` elements, recycled when one is free.
pub(crate) fn batch<T: Recycled>(capacity: usize) -> Vec<T> {
    T::free_list()
        .try_with(|f| f.take(capacity))
        .unwrap_or_else(|_| Vec::with_capacity(capacity))
}

/// Gives a handled batch back (its elements are dropped).
pub(crate) fn recycle<T: Recycled>(v: Vec<T>) {
    // A thread being torn down has no free list left: the vector is simply freed.
    let _ = T::free_list().try_with(|f| f.give(v));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_back_vector_is_taken_again_empty() {
        let mut v = batch::<Bytes>(8);
        v.push(Bytes::from_static(b"x"));
        let at = v.as_ptr();
        recycle(v);
        let again = batch::<Bytes>(4);
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), at);
    }

    #[test]
    fn huge_vectors_are_not_kept() {
        let v: Vec<Bytes> = Vec::with_capacity(MAX_KEPT_BYTES / std::mem::size_of::<Bytes>() + 1);
        recycle(v);
        assert_eq!(WRITE_BATCHES.with(|f| f.free.borrow().len()), 0);
    }
}
