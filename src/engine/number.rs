//! Whole numbers from manifest JSON, where upstream's schemas say `number`.

use serde_json::Number;

/// The largest float that is still an exact integer.
const MAX_EXACT_FLOAT: f64 = 9007199254740992.0;

/// `n` as a non-negative whole count: an integer (`2048`) or an integral float up to 2^53
/// (`2048.0`, `1e3`); `None` for anything else (negative, fractional, too large to be exact).
pub fn whole(n: &Number) -> Option<u64> {
    if let Some(v) = n.as_u64() {
        return Some(v);
    }
    n.as_f64().filter(|f| f.fract() == 0.0 && (0.0..=MAX_EXACT_FLOAT).contains(f)).map(|f| f as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers() {
        let n = |s: &str| serde_json::from_str::<Number>(s).unwrap();
        assert_eq!(whole(&n("2048")), Some(2048));
        assert_eq!(whole(&n("2048.0")), Some(2048));
        assert_eq!(whole(&n("1e3")), Some(1000));
        assert_eq!(whole(&n("18446744073709551615")), Some(u64::MAX));
        for bad in ["-1", "1.5", "1e30", "18446744073709551616", "-0.5"] {
            assert_eq!(whole(&n(bad)), None, "{bad}");
        }
    }
}
