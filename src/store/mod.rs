//! (filled in by the store work; see the contract in the helper's brief)
