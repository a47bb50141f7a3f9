//! The simulated world (tests).
