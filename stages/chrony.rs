//! `org.osbuild.chrony`: configure time sources in `/etc/chrony.conf`, editing it in place.
//!
//! Upstream's rules, reproduced exactly: the file is split at `\n`; every line starting
//! with `server `, `pool ` or `peer ` is dropped; then new lines are put at the top, each
//! group before the previous one — `timeservers` (`server <name> iburst`), then `servers`,
//! then `leapsectz` (which first drops every line starting with `leapsectz `; an empty zone
//! only drops them), then `refclocks`. So the file starts with the refclocks, then
//! leapsectz, servers and timeservers. The lines are joined with `\n` again (a final
//! newline stays as it was). The file must exist; its mode is kept. Like Python's text
//! mode, `\r\n` and `\r` line ends are read as `\n`.

use super::pwquality_conf::universal_newlines;
use super::pyfmt::py_number;
use super::util::{tree_path, write_file};
use super::{StageError, StageResult};
use crate::util::yes;
use crate::Stage;
use crate::StageArgs;
use serde::Deserialize;
use std::os::unix::fs::PermissionsExt;

#[derive(Debug, Deserialize)]
#[serde(try_from = "Raw")]
pub struct Options {
    pub timeservers: Vec<String>,
    pub servers: Vec<Server>,
    pub leapsectz: Option<String>,
    pub refclocks: Vec<Refclock>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    timeservers: Option<Vec<String>>,
    servers: Option<Vec<Server>>,
    leapsectz: Option<String>,
    refclocks: Option<Vec<Refclock>>,
}

impl TryFrom<Raw> for Options {
    type Error = String;
    fn try_from(r: Raw) -> Result<Self, String> {
        if r.timeservers.is_none() && r.servers.is_none() && r.leapsectz.is_none() && r.refclocks.is_none() {
            return Err("at least one of timeservers, servers, leapsectz or refclocks is needed".into());
        }
        for s in r.servers.iter().flatten() {
            for (what, v) in [("minpoll", s.minpoll), ("maxpoll", s.maxpoll)] {
                if v.is_some_and(|v| !(-6..=24).contains(&v)) {
                    return Err(format!("server {}: {what} must be between -6 and 24", s.hostname));
                }
            }
        }
        for c in r.refclocks.iter().flatten() {
            c.driver.check()?;
        }
        Ok(Options {
            timeservers: r.timeservers.unwrap_or_default(),
            servers: r.servers.unwrap_or_default(),
            leapsectz: r.leapsectz,
            refclocks: r.refclocks.unwrap_or_default(),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub hostname: String,
    pub minpoll: Option<i64>,
    pub maxpoll: Option<i64>,
    #[serde(default = "yes")]
    pub iburst: bool,
    #[serde(default)]
    pub prefer: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refclock {
    pub driver: Driver,
    pub poll: Option<i64>,
    pub dpoll: Option<i64>,
    pub offset: Option<serde_json::Number>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "name", deny_unknown_fields)]
pub enum Driver {
    #[serde(rename = "PPS")]
    Pps {
        device: String,
        #[serde(default)]
        clear: bool,
    },
    #[serde(rename = "SHM")]
    Shm { segment: i64, perm: Option<String> },
    #[serde(rename = "SOCK")]
    Sock { path: String },
    #[serde(rename = "PHC")]
    Phc {
        path: String,
        #[serde(default)]
        nocrossts: bool,
        #[serde(default)]
        extpps: bool,
        pin: Option<i64>,
        channel: Option<i64>,
        #[serde(default)]
        clear: bool,
    },
}

/// Upstream's pattern for device and socket paths: absolute, not starting with `/..`, no
/// `/../` inside.
fn path_ok(p: &str) -> bool {
    p.len() > 1 && p.starts_with('/') && !p.starts_with("/..") && !p.contains("/../") && !p.contains('\n')
}

impl Driver {
    fn check(&self) -> Result<(), String> {
        match self {
            Driver::Pps { device: p, .. } | Driver::Sock { path: p } | Driver::Phc { path: p, .. } if !path_ok(p) => {
                Err(format!("refclock path {p:?} must be absolute and must not contain '/../'"))
            }
            Driver::Shm { perm: Some(perm), .. }
                if perm.len() != 4 || !perm.bytes().all(|b| (b'0'..=b'7').contains(&b)) =>
            {
                Err(format!("refclock perm {perm:?} must be four octal digits"))
            }
            _ => Ok(()),
        }
    }

    fn render(&self) -> String {
        let (mut line, opts) = match self {
            Driver::Pps { device, clear } => {
                (format!("PPS {device}"), if *clear { vec!["clear".into()] } else { vec![] })
            }
            Driver::Shm { segment, perm } => {
                (format!("SHM {segment}"), perm.iter().map(|p| format!("perm={p}")).collect())
            }
            Driver::Sock { path } => (format!("SOCK {path}"), vec![]),
            Driver::Phc { path, nocrossts, extpps, pin, channel, clear } => {
                let mut o: Vec<String> = vec![];
                if *nocrossts {
                    o.push("nocrossts".into());
                }
                if *extpps {
                    o.push("extpps".into());
                }
                o.extend(pin.map(|p| format!("pin={p}")));
                o.extend(channel.map(|c| format!("channel={c}")));
                if *clear {
                    o.push("clear".into());
                }
                (format!("PHC {path}"), o)
            }
        };
        if !opts.is_empty() {
            line.push(':');
            line.push_str(&opts.join(","));
        }
        line
    }
}

fn server_line(s: &Server) -> String {
    let mut line = format!("server {}", s.hostname);
    if s.prefer {
        line.push_str(" prefer");
    }
    if s.iburst {
        line.push_str(" iburst");
    }
    if let Some(v) = s.minpoll {
        line.push_str(&format!(" minpoll {v}"));
    }
    if let Some(v) = s.maxpoll {
        line.push_str(&format!(" maxpoll {v}"));
    }
    line
}

fn refclock_line(r: &Refclock) -> String {
    let mut line = format!("refclock {}", r.driver.render());
    let mut general = vec![];
    general.extend(r.poll.map(|p| format!("poll {p}")));
    general.extend(r.dpoll.map(|p| format!("dpoll {p}")));
    general.extend(r.offset.as_ref().map(|o| format!("offset {}", py_number(o))));
    if !general.is_empty() {
        line.push(' ');
        line.push_str(&general.join(" "));
    }
    line
}

fn prepend(lines: &mut Vec<String>, new: Vec<String>) {
    lines.splice(0..0, new);
}

fn edit(text: &str, o: &Options) -> String {
    let mut lines: Vec<String> = text
        .split('\n')
        .filter(|l| !(l.starts_with("server ") || l.starts_with("pool ") || l.starts_with("peer ")))
        .map(str::to_owned)
        .collect();
    prepend(&mut lines, o.timeservers.iter().map(|t| format!("server {t} iburst")).collect());
    prepend(&mut lines, o.servers.iter().map(server_line).collect());
    if let Some(tz) = &o.leapsectz {
        lines.retain(|l| !l.starts_with("leapsectz "));
        if !tz.is_empty() {
            prepend(&mut lines, vec![format!("leapsectz {tz}")]);
        }
    }
    prepend(&mut lines, o.refclocks.iter().map(refclock_line).collect());
    lines.join("\n")
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Chrony;

impl Stage for Chrony {
    const NAME: &'static str = "org.osbuild.chrony";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let path = tree_path(args, "/etc/chrony.conf", true)?;
        let bytes = std::fs::read(&path).map_err(StageError::io("cannot read", &path))?;
        let text =
            String::from_utf8(bytes).map_err(|_| StageError::Invalid("/etc/chrony.conf is not valid UTF-8".into()))?;
        let mode =
            std::fs::metadata(&path).map_err(StageError::io("cannot stat", &path))?.permissions().mode() & 0o7777;
        write_file(&path, edit(&universal_newlines(&text), &options).as_bytes(), mode)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::{json, Value};

    fn opts(v: Value) -> Options {
        serde_json::from_value(v).unwrap()
    }

    const STOCK: &str = "# Use public servers\npool 2.fedora.pool.ntp.org iburst\n server indented\nserverx\n\
                         driftfile /var/lib/chrony/drift\nleapsectz right/UTC\n";

    #[test]
    fn order_of_new_lines() {
        let o = opts(json!({
            "timeservers": ["a", "b"],
            "servers": [{"hostname": "c", "prefer": true, "minpoll": 0, "maxpoll": 10}, {"hostname": "d", "iburst": false}],
            "leapsectz": "",
            "refclocks": [{"driver": {"name": "SHM", "segment": 0}, "offset": 0.5},
                          {"driver": {"name": "PHC", "path": "/dev/ptp0", "pin": 0, "clear": true}, "poll": 3}],
        }));
        assert_eq!(
            edit(STOCK, &o),
            "refclock SHM 0 offset 0.5\nrefclock PHC /dev/ptp0:pin=0,clear poll 3\n\
             server c prefer iburst minpoll 0 maxpoll 10\nserver d\nserver a iburst\nserver b iburst\n\
             # Use public servers\n server indented\nserverx\ndriftfile /var/lib/chrony/drift\n"
        );
        let o = opts(json!({"leapsectz": "right/UTC"}));
        assert_eq!(edit("x\nleapsectz a\nleapsectz b", &o), "leapsectz right/UTC\nx");
    }

    #[test]
    fn runs_on_the_tree() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        let p = t.path().join("etc/chrony.conf");
        std::fs::write(&p, STOCK).unwrap();
        Chrony::execute(&args(t.path(), json!({"timeservers": ["ntp.example.com"]}))).unwrap();
        assert!(std::fs::read_to_string(&p).unwrap().starts_with("server ntp.example.com iburst\n# Use public"));
    }

    #[test]
    fn bad_options() {
        let t = tempfile::tempdir().unwrap();
        let e = |o: Value| crate::error_chain(&Chrony::execute(&args(t.path(), o)).unwrap_err());
        assert!(e(json!({})).contains("at least one of"));
        assert!(e(json!({"servers": [{"hostname": "x", "minpoll": 30}]})).contains("minpoll must be between"));
        assert!(e(json!({"refclocks": [{"driver": {"name": "GPS"}}]})).contains("unknown variant `GPS`"));
        assert!(e(json!({"refclocks": [{"driver": {"name": "SOCK", "path": "/a/../b"}}]})).contains("must not contain"));
        assert!(e(json!({"refclocks": [{"driver": {"name": "SHM", "segment": 1, "perm": "644"}}]})).contains("octal"));
        assert!(e(json!({"timeservers": ["x"]})).starts_with("cannot read"));
    }
}
