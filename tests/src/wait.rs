//! Bounded waits: poll for a state until a deadline, never sleep a fixed time instead.

use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// Longest any single process the kit runs may take before the test calls it hung. Not a
/// performance threshold: a command that is merely slow passes.
pub const HANG_GUARD: Duration = Duration::from_secs(120);

/// Calls `check` every `every` until it returns `Some`, for at most `timeout` (it is called
/// at least once, and once more after the deadline has passed). `None` means it never held;
/// the caller panics with what it saw.
pub fn poll<T>(
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let past = Instant::now() >= deadline;
        if let Some(v) = check() {
            return Some(v);
        }
        if past {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// [`poll`] for async checks, sleeping on the tokio timer between them.
pub async fn poll_async<T>(
    timeout: Duration,
    every: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let past = Instant::now() >= deadline;
        if let Some(v) = check().await {
            return Some(v);
        }
        if past {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// SIGKILL and reap, ignoring errors (the process may be gone already): for drops.
pub(crate) fn kill_quietly(child: Option<Child>) {
    if let Some(mut c) = child {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Waits for a child's output with [`HANG_GUARD`]; kills it (by its id) if the guard passes.
pub fn output_guarded(child: Child, what: &str) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(HANG_GUARD) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{what} hung (killed after {HANG_GUARD:?})");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_returns_the_first_value_and_gives_up_after_the_deadline() {
        let mut calls = 0;
        let got = poll(Duration::from_secs(5), Duration::from_millis(1), || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(got, Some(3));
        let start = Instant::now();
        let mut calls = 0;
        let never: Option<()> = poll(Duration::from_millis(50), Duration::from_millis(5), || {
            calls += 1;
            None
        });
        assert_eq!(never, None);
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert!(calls >= 2, "checked once more at the deadline: {calls}");
    }
}
