//! One writable destination: the rules that keep an old or rival primary from announcing a
//! service prefix beside the newest one (docs/safety.md). `marks` reads and writes the large
//! communities that carry a route's term; `guard` is the pure per-service rule machine;
//! `store` persists what the rules remember.

pub mod guard;
pub mod marks;
pub mod store;

pub use guard::{Guard, Hold, OnConflict, OnRestart, OwnTerm, Policy, Sighting, Verdict};
pub use marks::Claim;
