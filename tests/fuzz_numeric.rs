//! Property tests over the numbers the host takes from a manifest, the command line and the
//! environment: source epochs, timeouts, size limits and stage `mode` options. Whatever the
//! number (negative, fractional, exponent, beyond 64 bits), parsing never panics and never
//! wraps: a value is either refused with an error or kept exactly.

use std::ffi::OsString;
use std::time::{Duration, Instant};

use clap::Parser;
use osbuild_rs::cli::{self, parse_size, parse_stage_timeout, CacheSize};
use osbuild_rs::sources::FetchOptions;
use osbuild_rs::{manifest, schema, stages};
use proptest::prelude::*;
use serde_json::Value;

/// A JSON number literal: small and huge integers of either sign, fractions, exponents.
fn number_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i128>().prop_map(|n| n.to_string()),
        (0u32..=u32::MAX).prop_map(|n| n.to_string()),
        // Around the edges that matter: 2^31, 2^32, 2^63, 2^64.
        prop_oneof![Just(1i128 << 31), Just(1i128 << 32), Just(1i128 << 63), Just(1i128 << 64)]
            .prop_flat_map(|edge| (-2i128..=2).prop_map(move |d| (edge + d).to_string())),
        "-?[1-9][0-9]{19,40}",
        (any::<i32>(), 0u32..1000).prop_map(|(i, f)| format!("{i}.{f}")),
        (any::<i16>(), any::<i16>()).prop_map(|(m, e)| format!("{m}e{e}")),
        Just("1e23".to_string()),
        Just("-0".to_string()),
        Just("0.0".to_string()),
    ]
}

/// The value of an integer literal, if it is one (no fraction, no exponent).
fn integer(literal: &str) -> Option<i128> {
    literal.parse::<i128>().ok()
}

fn manifest_with_epoch(literal: &str) -> Value {
    let text = format!(
        r#"{{"version": "2", "pipelines": [{{"name": "tree", "source-epoch": {literal}, "stages": [{{"type": "org.osbuild.noop"}}]}}]}}"#
    );
    serde_json::from_str(&text).expect("a valid JSON document")
}

fn manifest_with_mkdir_mode(literal: &str) -> Value {
    let text = format!(
        r#"{{"version": "2", "pipelines": [{{"name": "tree", "stages": [{{"type": "org.osbuild.mkdir", "options": {{"paths": [{{"path": "/d", "mode": {literal}}}]}}}}]}}]}}"#
    );
    serde_json::from_str(&text).expect("a valid JSON document")
}

fn env_of(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<OsString> {
    move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.into())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512),
        .. ProptestConfig::default()
    })]

    /// The loader keeps exactly the epochs from 0 to i64::MAX and refuses every other number,
    /// naming the path; what the engine reads back is the number written.
    #[test]
    fn source_epochs_are_kept_exactly_or_refused(literal in number_literal()) {
        let doc = manifest_with_epoch(&literal);
        let _ = schema::validate(&doc);
        let loaded = manifest::load(&doc);
        match integer(&literal).filter(|&n| (0..=i64::MAX as i128).contains(&n)) {
            Some(n) => {
                let m = loaded.unwrap_or_else(|e| panic!("{literal} refused: {e}"));
                let stage = &m.pipelines[0].stages[0];
                prop_assert_eq!(stage.source_epoch.as_ref().and_then(Value::as_i64), Some(n as i64));
            }
            None => {
                let e = loaded.expect_err("out of range, fractional or exponent epochs are refused");
                prop_assert_eq!(e.path().to_string(), "pipelines[0].source-epoch");
            }
        }
    }

    /// Different epochs never give the same stage id (no wrap-around into another value).
    #[test]
    fn different_epochs_give_different_ids(a in 0i64..=i64::MAX, b in 0i64..=i64::MAX) {
        prop_assume!(a != b);
        let id = |n: i64| manifest::load(&manifest_with_epoch(&n.to_string())).unwrap().pipelines[0].stages[0].id.clone();
        prop_assert_ne!(id(a), id(b));
    }

    /// `--stage-timeout` takes whole seconds up to 2^32-1; any accepted value can be added to
    /// the clock; everything else is an error, never a panic.
    #[test]
    fn stage_timeouts_fit_the_clock(text in prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        "[0-9]{1,40}",
        "-?[0-9]{0,5}(\\.[0-9]{1,3})?",
        ".{0,12}",
    ]) {
        match parse_stage_timeout(&text) {
            Ok(secs) => {
                prop_assert!(secs <= cli::MAX_STAGE_TIMEOUT);
                prop_assert_eq!(Some(secs), text.trim().parse::<u64>().ok());
                prop_assert!(Instant::now().checked_add(Duration::from_secs(secs)).is_some());
            }
            Err(_) => prop_assert!(text.trim().parse::<u64>().map_or(true, |n| n > cli::MAX_STAGE_TIMEOUT)),
        }
        let via_clap = cli::Args::try_parse_from(["osbuild", &format!("--stage-timeout={text}"), "m.json"]);
        prop_assert_eq!(via_clap.is_ok(), parse_stage_timeout(&text).is_ok());
    }

    /// Download bounds from the environment: whole seconds from 1 to a week, kept exactly.
    #[test]
    fn download_settings_are_kept_exactly_or_refused(text in prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        "[0-9]{1,25}",
        ".{0,10}",
    ]) {
        for name in ["OSBUILD_RS_DOWNLOAD_TIMEOUT", "OSBUILD_RS_DOWNLOAD_STALL_TIME"] {
            let opts = FetchOptions::from_env(env_of(vec![(name, text.clone())]));
            match text.trim().parse::<u64>().ok().filter(|n| (1..=604_800).contains(n)) {
                Some(n) => {
                    let opts = opts.unwrap();
                    let got = if name.ends_with("TIMEOUT") { opts.timeout } else { opts.stall_time };
                    prop_assert_eq!(got, Duration::from_secs(n));
                }
                // An empty value means unset.
                None if text.is_empty() => prop_assert!(opts.is_ok()),
                None => prop_assert!(opts.is_err()),
            }
        }
    }

    /// Whatever durations a library caller puts in `FetchOptions`, deadlines and the curl
    /// configuration come out without a panic in clock arithmetic.
    #[test]
    fn any_download_bounds_give_a_deadline_and_a_config(secs in any::<u64>(), nanos in 0u32..1_000_000_000,
                                                         stall in any::<u64>(), parallel in any::<usize>()) {
        let opts = FetchOptions {
            timeout: Duration::new(secs, nanos),
            stall_time: Duration::from_secs(stall),
            connect_timeout: Duration::new(secs, nanos),
            parallel,
            ..FetchOptions::builtin()
        };
        let deadline = opts.deadline();
        prop_assert!(deadline >= Instant::now() - Duration::from_secs(1));
        let t = osbuild_rs::sources::curl::Transfer {
            index: 0,
            url: "http://127.0.0.1/x".into(),
            checksum: osbuild_rs::sources::checksum::Checksum::parse(&format!("sha256:{}", "0".repeat(64))).unwrap(),
            insecure: false,
            tls: None,
        };
        let config = osbuild_rs::sources::curl::curl_config(
            &[(&t, std::path::Path::new("/o"))],
            &opts,
            None,
            osbuild_rs::sources::curl::CurlMode::Parallel,
        );
        prop_assert!(config.contains("max-time = ") && config.contains("speed-time = "), "{}", config);
    }

    /// `--cache-max-size`: the number times its unit, exactly, or an error when it overflows.
    #[test]
    fn cache_sizes_never_wrap(n in prop_oneof![any::<u64>().prop_map(|n| n.to_string()), "[0-9]{1,30}"],
                              unit in prop_oneof![Just(""), Just("kB"), Just(" KiB"), Just("MB"), Just("GiB"), Just(" TiB")]) {
        let mult: u128 = match unit.trim() {
            "" => 1, "kB" => 1000, "KiB" => 1 << 10, "MB" => 1_000_000, "GiB" => 1 << 30, _ => 1 << 40,
        };
        let expected = n.parse::<u128>().ok().and_then(|n| n.checked_mul(mult)).filter(|&b| b <= u64::MAX as u128);
        match parse_size(&format!("{n}{unit}")) {
            Ok(CacheSize::Bytes(b)) => prop_assert_eq!(Some(b as u128), expected),
            Ok(CacheSize::Unlimited) => prop_assert!(false, "a number is not unlimited"),
            Err(_) => prop_assert_eq!(expected, None),
        }
    }

    /// A stage `mode` option as the loader and the stage's typed options see it: the manifest
    /// keeps the number exactly (ids and `--inspect` show what was written), and the stage takes
    /// it only as an integer mode that fits, never wrapped into another mode.
    #[test]
    fn modes_are_kept_exactly_or_refused(literal in number_literal()) {
        let doc = manifest_with_mkdir_mode(&literal);
        let _ = schema::validate(&doc);
        let m = manifest::load(&doc).expect("the loader does not judge stage options");
        let options = &m.pipelines[0].stages[0].options;
        let described = manifest::describe(&m);
        for kept in [&options["paths"][0]["mode"], &described["pipelines"][0]["stages"][0]["options"]["paths"][0]["mode"]] {
            if integer(&literal).is_some() {
                prop_assert_eq!(kept.to_string(), literal.clone());
            } else {
                // Fractions and exponents: the same number, perhaps spelt `1e+5` for `1e5`.
                prop_assert_eq!(kept.to_string().parse::<f64>().ok(), literal.parse::<f64>().ok());
            }
        }
        let mkdir = stages::find("org.osbuild.mkdir").expect("mkdir is built in");
        let accepted = mkdir.check_options(options).is_ok();
        let fits = integer(&literal).is_some_and(|n| (0..=u32::MAX as i128).contains(&n));
        // Taken only when it fits (never wrapped); refusing `-0` is fine.
        prop_assert!(!accepted || fits, "mode {} taken", literal);
        prop_assert!(accepted || !fits || literal.starts_with('-'), "mode {} refused", literal);
    }

    /// Two modes that differ by a multiple of 2^32 (which a wrapping conversion would merge)
    /// give different stage ids, and the larger one is refused by the stage.
    #[test]
    fn modes_never_alias_across_2_pow_32(mode in 0u32..=0o7777, k in 1u64..1000) {
        let high = mode as u64 + (k << 32);
        let load = |lit: String| manifest::load(&manifest_with_mkdir_mode(&lit)).unwrap();
        let (a, b) = (load(mode.to_string()), load(high.to_string()));
        prop_assert_ne!(&a.pipelines[0].stages[0].id, &b.pipelines[0].stages[0].id);
        let mkdir = stages::find("org.osbuild.mkdir").unwrap();
        prop_assert!(mkdir.check_options(&a.pipelines[0].stages[0].options).is_ok());
        prop_assert!(mkdir.check_options(&b.pipelines[0].stages[0].options).is_err());
    }
}

#[test]
fn the_edges_are_where_they_should_be() {
    assert!(manifest::load(&manifest_with_epoch("9223372036854775807")).is_ok());
    assert!(manifest::load(&manifest_with_epoch("9223372036854775808")).is_err());
    assert!(manifest::load(&manifest_with_epoch("0")).is_ok());
    assert!(manifest::load(&manifest_with_epoch("-1")).is_err());
    assert_eq!(parse_stage_timeout("4294967295"), Ok(4_294_967_295));
    assert!(parse_stage_timeout("4294967296").is_err());
    assert!(parse_stage_timeout("18446744073709551615").is_err());
}
