//! (filled in by the monitor work; see the contract in the helper's brief)
