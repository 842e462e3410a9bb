//! A copy of something read from the store, shared by the requests that
//! want it while nothing changed: the status page, the list of open
//! incidents.
//!
//! "Nothing changed" is told by a count of changes ([`super::changes`]): a
//! write on this replica, or one another replica made that this one heard of
//! (PostgreSQL), makes the next request read again; with no count to trust
//! (`None`), every request reads. A copy older than its `max_age`, by
//! Klaxon's clock, is read again anyway. One reader at a time
//! refreshes it; the others wait for that reading rather than all going to
//! the database at once.

use std::sync::Arc;
use std::time::Duration;

use crate::time::Millis;

/// See the module's documentation.
#[derive(Debug)]
pub struct ReadCache<T> {
    max_age: Duration,
    last: tokio::sync::Mutex<Option<Copy<T>>>,
}

#[derive(Debug)]
struct Copy<T> {
    commits: u64,
    read_at: Millis,
    value: Arc<T>,
}

impl<T> ReadCache<T> {
    /// A cache whose copies serve for at most `max_age`; zero: no copy is
    /// kept, every call reads (and none waits for another).
    pub fn new(max_age: Duration) -> Self {
        ReadCache {
            max_age,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The value for `commits` (the count of changes, loaded before calling;
    /// `None`: changes may go uncounted) at `now`: the copy if still good,
    /// else what `read` gives (kept for the next ones).
    pub async fn get<F, E>(&self, commits: Option<u64>, now: Millis, read: F) -> Result<Arc<T>, E>
    where
        F: std::future::Future<Output = Result<T, E>>,
    {
        let Some(commits) = commits.filter(|_| !self.max_age.is_zero()) else {
            return Ok(Arc::new(read.await?));
        };
        let mut last = self.last.lock().await;
        if let Some(c) = last.as_ref()
            && c.commits == commits
            && now.0 >= c.read_at.0
            && now.0 - c.read_at.0 < self.max_age.as_millis() as i64
        {
            return Ok(c.value.clone());
        }
        let value = Arc::new(read.await?);
        *last = Some(Copy {
            commits,
            read_at: now,
            value: value.clone(),
        });
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_copy_is_read_again_after_a_write_or_once_it_is_too_old() {
        let cache = ReadCache::new(Duration::from_secs(5));
        let reads = AtomicUsize::new(0);
        let counted = &reads;
        let read = move |n: u32| async move {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(n)
        };
        let t0 = Millis(1_000_000);
        let a = cache.get(Some(7), t0, read(1)).await.expect("read");
        let b = cache
            .get(Some(7), Millis(t0.0 + 4_999), read(2))
            .await
            .expect("read");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        // A write on this replica: read again.
        let c = cache
            .get(Some(8), Millis(t0.0 + 1), read(3))
            .await
            .expect("read");
        assert_eq!((*c, reads.load(Ordering::SeqCst)), (3, 2));
        // Five seconds old: read again (what other replicas wrote shows).
        let d = cache
            .get(Some(8), Millis(t0.0 + 5_001), read(4))
            .await
            .expect("read");
        assert_eq!((*d, reads.load(Ordering::SeqCst)), (4, 3));
        // A clock moved backwards never keeps a copy read "in the future".
        let e = cache
            .get(Some(8), Millis(t0.0), read(5))
            .await
            .expect("read");
        assert_eq!((*e, reads.load(Ordering::SeqCst)), (5, 4));
        // Changes may go unheard: every call reads, and none is kept.
        let f = cache.get(None, Millis(t0.0), read(6)).await.expect("read");
        let g = cache
            .get(Some(8), Millis(t0.0), read(7))
            .await
            .expect("read");
        assert_eq!((*f, *g, reads.load(Ordering::SeqCst)), (6, 5, 5));
        let h = cache.get(None, Millis(t0.0), read(8)).await.expect("read");
        assert_eq!((*h, reads.load(Ordering::SeqCst)), (8, 6));
    }
}
