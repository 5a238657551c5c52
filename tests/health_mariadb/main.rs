//! The health probe, tasks and control API against real MariaDB servers (10.11 here), each a
//! private `mariadbd` with a free port and a unix socket in its own temp dir, so these tests
//! run in parallel with anything else. They need root (mariadbd drops to user mysql; some
//! tests run in a private network namespace) and `mariadb-install-db`/`mariadbd`; without
//! them they fail with a message saying so, never pass without testing anything.
//!
//! Tests that need service addresses run on a thread of their own in a private network
//! namespace (`unshare(CLONE_NEWNET)`): its `lo` carries 192.0.2.x, the servers they start
//! live there too, and nothing touches the host's interfaces. The namespace goes away with
//! the thread and its servers.
//!
//! Every server is killed and every temp dir removed by [`Server`]'s `Drop`, on every exit
//! path including a failed assertion.

mod probe;
mod replica;
mod server;
mod services;
mod setup;
