//! `org.osbuild.buildstamp`: write the installer's `/.buildstamp`, as Python's
//! `configparser` writes it for upstream (keys lower-cased, ` = ` between key and value):
//! product, version, whether final, a build "UUID" of the build minute and the
//! architecture, bug URL and variant, and a `[Compose]` section.
//!
//! Beyond upstream: with a `source-epoch` (`SOURCE_DATE_EPOCH`) the build minute is the
//! epoch's, so two builds give the same file.

use super::configparser::check_basic_interpolation;
use super::fs_image::source_epoch_from_env;
use super::util::{tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;

/// Upstream's schema allows other keys (and ignores them).
#[derive(Debug, Deserialize)]
pub struct Options {
    pub arch: String,
    pub product: String,
    pub version: String,
    pub r#final: bool,
    pub variant: Option<String>,
    pub bugurl: Option<String>,
}

/// The stage itself: its name and options, as the registry lists it.
pub struct Buildstamp;

impl Stage for Buildstamp {
    const NAME: &'static str = "org.osbuild.buildstamp";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let time = match source_epoch_from_env()? {
            Some(epoch) => epoch,
            None => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs(),
        };
        let text = render(&minute_stamp(time), &options)?;
        write_file(&tree_path(args, ".buildstamp", true)?, text.as_bytes(), 0o644)?;
        Ok(None)
    }
}

/// `%Y%m%d%H%M` of `time` (seconds since 1970) in UTC. Upstream takes the local time of
/// the build root, which is UTC unless the build root says otherwise.
fn minute_stamp(time: u64) -> String {
    let (days, secs) = (time / 86_400, time % 86_400);
    // days since 1970-01-01 to a civil date (Howard Hinnant's algorithm)
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}{:02}{:02}", secs / 3600, secs % 3600 / 60)
}

fn render(datestr: &str, o: &Options) -> Result<String, StageError> {
    let mut main: Vec<(&str, String)> = vec![
        ("product", o.product.clone()),
        ("version", o.version.clone()),
        ("isfinal", if o.r#final { "True" } else { "False" }.to_owned()),
        ("uuid", format!("{datestr}.{}", o.arch)),
    ];
    if let Some(bugurl) = o.bugurl.as_ref().filter(|b| !b.is_empty()) {
        main.push(("bugurl", bugurl.clone()));
    }
    if let Some(variant) = o.variant.as_ref().filter(|v| !v.is_empty()) {
        main.push(("variant", variant.clone()));
    }
    let mut out = String::from("[Main]\n");
    for (k, v) in main {
        check_basic_interpolation(&v)?;
        out.push_str(&format!("{k} = {}\n", v.replace('\n', "\n\t")));
    }
    out.push_str("\n[Compose]\nosbuild = devel\n\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    fn options(v: serde_json::Value) -> Options {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn written_as_configparser_writes_it() {
        // upstream's options from its fedora-ostree-bootiso test manifest; the expected text
        // is what Python's configparser wrote for them
        let o = options(json!({"arch": "x86_64", "product": "Fedora-IoT", "version": "43", "variant": "osbuild",
            "final": true, "bugurl": "https://github.com/gicmo/ostree-osbuild-demo/issues"}));
        assert_eq!(
            render("202612070517", &o).unwrap(),
            "[Main]\nproduct = Fedora-IoT\nversion = 43\nisfinal = True\nuuid = 202612070517.x86_64\n\
             bugurl = https://github.com/gicmo/ostree-osbuild-demo/issues\nvariant = osbuild\n\n\
             [Compose]\nosbuild = devel\n\n"
        );
        let o = options(json!({"arch": "aarch64", "product": "a\nb", "version": "1%%", "final": false, "variant": ""}));
        assert_eq!(
            render("1", &o).unwrap(),
            "[Main]\nproduct = a\n\tb\nversion = 1%%\nisfinal = False\nuuid = 1.aarch64\n\n[Compose]\nosbuild = devel\n\n"
        );
        let o = options(json!({"arch": "x", "product": "100%", "version": "1", "final": false}));
        assert!(render("1", &o).unwrap_err().to_string().starts_with("invalid interpolation syntax"));
    }

    #[test]
    fn the_minute_of_the_epoch_or_of_now() {
        assert_eq!(minute_stamp(1_700_000_000), "202311142213");
        assert_eq!(minute_stamp(0), "197001010000");
        assert_eq!(minute_stamp(951_782_400 + 86_399), "200002292359");
        assert_eq!(minute_stamp(4_102_444_800), "210001010000");
        let t = tempfile::tempdir().unwrap();
        Buildstamp::execute(&args(t.path(), json!({"arch": "x86_64", "product": "P", "version": "1", "final": true})))
            .unwrap();
        let text = std::fs::read_to_string(t.path().join(".buildstamp")).unwrap();
        let out = std::process::Command::new("date").args(["-u", "+%Y%m%d%H"]).output().unwrap();
        let hour = String::from_utf8(out.stdout).unwrap();
        let uuid = text.lines().find_map(|l| l.strip_prefix("uuid = ")).unwrap();
        assert_eq!(uuid.len(), "202612070517.x86_64".len());
        assert!(uuid.starts_with(hour.trim()), "{uuid} is not this hour's ({hour})");
    }
}
