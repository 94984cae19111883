//! Threads of their own for argon2id, at a lower scheduling priority than the rest of the
//! server: a flood of password logins then takes the CPU the other requests leave, instead
//! of starving the second step (which needs little CPU, but needs it now). Alone, a
//! password check still gets whole cores: priority only matters when there is competition.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use super::Error;

/// How much lower than the server's the threads' priority is (`nice`; 10 gives them about a
/// tenth of a core's time against a busy thread of normal priority).
const NICENESS: libc::c_int = 10;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of low-priority threads that run password work, one job each at a time.
/// They end when this is dropped.
pub struct PasswordThreads {
    jobs: mpsc::Sender<Job>,
}

impl PasswordThreads {
    pub fn start(count: usize) -> std::io::Result<PasswordThreads> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..count {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("twofold-argon2-{n}"))
                .spawn(move || {
                    lower_own_priority();
                    loop {
                        let job = match receiver.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        let Ok(job) = job else { return };
                        // A panicking job drops its answer (the caller gets an error); the
                        // thread lives on.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })?;
        }
        Ok(PasswordThreads { jobs: sender })
    }

    /// Runs `work` on one of the threads and waits for its result.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
        let (answer, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = answer.send(work());
        });
        self.jobs
            .send(job)
            .map_err(|_| Error::Internal("the password threads have stopped".into()))?;
        result
            .await
            .map_err(|_| Error::Internal("a password check failed on its thread".into()))
    }
}

/// Lowers the calling thread's priority (on Linux `nice` is per thread); where that is not
/// allowed, the thread keeps the normal priority.
fn lower_own_priority() {
    // SAFETY: setpriority only reads its integer arguments; `who = 0` names the calling
    // thread.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICENESS) };
    if result != 0 {
        tracing::debug!("password threads keep the normal priority: setpriority failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_a_lower_priority_thread_and_a_panic_costs_no_thread() {
        let threads = PasswordThreads::start(1).unwrap();
        // SAFETY: getpriority only reads its integer arguments.
        let niceness = threads
            .run(|| unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) })
            .await
            .unwrap();
        // SAFETY: as above.
        let ours = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        assert_eq!(niceness, (ours + NICENESS).min(19));
        assert!(threads.run(|| -> u8 { panic!("in a job") }).await.is_err());
        assert_eq!(threads.run(|| 7).await.unwrap(), 7);
    }
}
