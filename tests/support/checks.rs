//! Soft assertions for interop tests: one lab run checks many attributes on several routers,
//! and a mismatch on one should not hide the others. Each failed check is recorded with its
//! source line; [`Checks::finish`] panics listing all of them.

use std::fmt::{Debug, Display};
use std::panic::Location;

#[derive(Default)]
pub struct Checks {
    failures: Vec<String>,
    passed: usize,
    finished: bool,
}

impl Checks {
    pub fn new() -> Checks {
        Checks::default()
    }

    /// Records a failure unless `ok`.
    #[track_caller]
    pub fn check(&mut self, ok: bool, what: impl Display) {
        if ok {
            self.passed += 1;
        } else {
            let at = Location::caller();
            self.failures
                .push(format!("{}:{}: {what}", at.file(), at.line()));
        }
    }

    /// Records a failure unless `got == want`.
    #[track_caller]
    pub fn eq<T: PartialEq + Debug>(&mut self, what: impl Display, got: T, want: T) {
        let ok = got == want;
        self.check(ok, format_args!("{what}: got {got:?}, want {want:?}"));
    }

    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    /// Panics listing every failed check; returns how many passed.
    #[track_caller]
    pub fn finish(mut self) -> usize {
        self.finished = true;
        if !self.failures.is_empty() {
            panic!(
                "{} of {} checks failed:\n  {}",
                self.failures.len(),
                self.failures.len() + self.passed,
                self.failures.join("\n  ")
            );
        }
        self.passed
    }
}

impl Drop for Checks {
    fn drop(&mut self) {
        // A test that panicked before `finish` still reports what it had found.
        if !self.finished && !self.failures.is_empty() {
            eprintln!(
                "checks failed before the test stopped:\n  {}",
                self.failures.join("\n  ")
            );
        }
    }
}
