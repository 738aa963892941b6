//! (filled in by the engine work; see the contract in the helper's brief)
