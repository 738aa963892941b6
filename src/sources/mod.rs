//! (filled in by the sources work; see the contract in the helper's brief)
