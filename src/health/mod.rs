//! MySQL health checking: the probe (I/O), the pure rise/fall checker, and the task that runs
//! them on a timer and reports transitions.
