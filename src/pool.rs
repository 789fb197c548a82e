//! The worker pool: a function run over a slice of items by a bounded number of scoped
//! threads, with the results in the items' order.
//!
//! `scan` (files), `verify --all` (snapshots) and the resolver (store requests) all have this
//! shape: a known list of independent jobs, a cap on how many run at once (a core count, a
//! memory bound, a store's patience), and a caller that wants one result per job, in order.
//!
//! Invariants: at most `workers` jobs run at once (and never more threads than jobs); each
//! item is taken exactly once, in order, by whichever worker is free (so a slow job does not
//! hold up the others' queue); the result at index `i` is the one for `items[i]`. A panic in
//! a job is carried to the caller when the scope ends, as `std::thread::scope` does. With one
//! worker the jobs run on the caller's thread.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The cores available to this process (1 when that cannot be known).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `job` over `items` on up to `workers` threads; the results are in the items' order.
pub fn map<T, R, F>(items: &[T], workers: usize, job: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    map_with(items, workers, || (), |(), item| job(item))
}

/// [`map`] with a state per worker, made by `init` on the worker's thread and handed to each
/// of its jobs (a random generator, a reusable buffer).
pub fn map_with<T, R, S, I, F>(items: &[T], workers: usize, init: I, job: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    I: Fn() -> S + Sync,
    F: Fn(&mut S, &T) -> R + Sync,
{
    let workers = workers.clamp(1, items.len().max(1));
    if workers == 1 {
        let mut state = init();
        return items.iter().map(|item| job(&mut state, item)).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut state = init();
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else {
                return done;
            };
            done.push((i, job(&mut state, item)));
        }
    };
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..workers).map(|_| scope.spawn(work)).collect();
        for thread in threads {
            // A worker that panicked: re-raise its panic here, with its own message.
            let done = thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            for (i, result) in done {
                slots[i] = Some(result);
            }
        }
    });
    slots
        .into_iter()
        .map(|r| r.expect("every item was taken by a worker"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    #[test]
    fn results_follow_the_items_order_whatever_order_jobs_finish_in() {
        let items: Vec<u64> = (0..40).collect();
        // Early items sleep longest, so they finish last.
        let out = map(&items, 4, |&i| {
            std::thread::sleep(Duration::from_millis(40 - i));
            i * 10
        });
        assert_eq!(out, items.iter().map(|i| i * 10).collect::<Vec<_>>());
    }

    #[test]
    fn no_more_than_workers_jobs_run_at_once_and_all_of_them_do() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let items: Vec<usize> = (0..24).collect();
        let out = map(&items, 3, |&i| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            running.fetch_sub(1, Ordering::SeqCst);
            i
        });
        assert_eq!(out, items);
        assert_eq!(peak.load(Ordering::SeqCst), 3, "the bound is used and kept");
    }

    #[test]
    fn each_worker_gets_its_own_state_and_one_worker_runs_on_the_caller() {
        let inits = Mutex::new(Vec::new());
        let items: Vec<usize> = (0..50).collect();
        let out = map_with(
            &items,
            5,
            || {
                inits.lock().unwrap().push(std::thread::current().id());
                0usize
            },
            |count, &i| {
                *count += 1;
                (i, *count)
            },
        );
        let made = inits.lock().unwrap().clone();
        assert_eq!(made.len(), 5, "one state per worker");
        assert!(!made.contains(&std::thread::current().id()));
        assert_eq!(out.iter().map(|(i, _)| *i).collect::<Vec<_>>(), items);
        // A state lives for its worker's jobs, not one job: at most one first job per worker.
        let firsts = out.iter().filter(|(_, count)| *count == 1).count();
        assert!((1..=5).contains(&firsts), "{firsts} states started");

        let caller = std::thread::current().id();
        let ran_on = map(&[1, 2, 3], 1, |_| std::thread::current().id());
        assert!(ran_on.iter().all(|id| *id == caller));
        assert!(map(&[] as &[u8], 0, |_| 0).is_empty());
    }

    #[test]
    #[should_panic(expected = "job 7 failed")]
    fn a_panicking_job_panics_the_caller_with_its_message() {
        let items: Vec<usize> = (0..10).collect();
        map(&items, 3, |&i| {
            if i == 7 {
                panic!("job 7 failed");
            }
        });
    }
}
