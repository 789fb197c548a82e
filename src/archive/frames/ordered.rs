//! A few threads, each with its own state, that take jobs and give their results back in
//! the order the jobs were given: the compressing threads of [`FrameEncoder`] and the
//! decompressing threads of [`decode`].
//!
//! Invariant: dropping the pool waits for the jobs in flight, so that their buffers are
//! dropped (and the encoder's zeroed) before the caller goes on.
//!
//! [`FrameEncoder`]: super::FrameEncoder
//! [`decode`]: super::decode()

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

/// Work handed to a few threads, each with its own state; results come back in the order the
/// work was given.
///
/// Dropping it waits for the work in flight (so that its buffers are dropped, and zeroed, before
/// the caller goes on) and joins the threads.
pub(super) struct Ordered<J, T> {
    jobs: Option<mpsc::Sender<(J, mpsc::SyncSender<io::Result<T>>)>>,
    pending: VecDeque<mpsc::Receiver<io::Result<T>>>,
    workers: Vec<JoinHandle<()>>,
}

impl<J: Send + 'static, T: Send + 'static> Ordered<J, T> {
    pub(super) fn new<S: Send + 'static>(
        threads: usize,
        state: impl Fn() -> S,
        work: fn(&mut S, J) -> io::Result<T>,
    ) -> Self {
        let (jobs, queue) = mpsc::channel::<(J, mpsc::SyncSender<io::Result<T>>)>();
        let queue = Arc::new(Mutex::new(queue));
        let workers = (0..threads.max(1))
            .map(|_| {
                let queue = Arc::clone(&queue);
                let mut state = state();
                std::thread::spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let next = queue
                            .lock()
                            .map_err(|_| ())
                            .and_then(|q| q.recv().map_err(|_| ()));
                        let Ok((job, done)) = next else { return };
                        let _ = done.send(work(&mut state, job));
                    }
                })
            })
            .collect();
        Ordered {
            jobs: Some(jobs),
            pending: VecDeque::new(),
            workers,
        }
    }

    /// Jobs given and not yet taken back.
    pub(super) fn len(&self) -> usize {
        self.pending.len()
    }

    pub(super) fn submit(&mut self, job: J) {
        let (done, result) = mpsc::sync_channel(1);
        let jobs = self.jobs.as_ref().expect("jobs are closed only on drop");
        // The workers stop only when `jobs` is dropped; one that panicked drops `done`,
        // which `next` reports.
        let _ = jobs.send((job, done));
        self.pending.push_back(result);
    }

    /// The oldest job's result, waiting for it; `None` with no job in flight.
    pub(super) fn next(&mut self) -> Option<io::Result<T>> {
        let result = self.pending.pop_front()?;
        Some(
            result
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("a zstd worker thread failed"))),
        )
    }

    /// The oldest job's result if it is ready.
    pub(super) fn ready(&mut self) -> Option<io::Result<T>> {
        match self.pending.front()?.try_recv() {
            Err(mpsc::TryRecvError::Empty) => None,
            Ok(result) => {
                self.pending.pop_front();
                Some(result)
            }
            Err(mpsc::TryRecvError::Disconnected) => self.next(),
        }
    }
}

impl<J, T> Drop for Ordered<J, T> {
    fn drop(&mut self) {
        self.jobs = None;
        for result in self.pending.drain(..) {
            let _ = result.recv();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}
