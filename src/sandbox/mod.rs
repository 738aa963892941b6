//! (filled in by the sandbox work; see the contract in the helper's brief)
