//! The binaries' command lines, in the library so the man pages and completions are generated
//! from the very definitions the binaries parse.

pub mod ctl;
pub mod daemon;
