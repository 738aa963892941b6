//! The kickstart subset the installer carries out, parsed into a [`Plan`]. Every line is
//! either understood or an error naming its line number: a command the installer cannot do
//! must stop the installation, never be skipped (an unattended install that silently drops
//! `part` or `user` leaves a machine nobody asked for).

use std::fmt;

/// What the kickstart asks for.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub ostree: Option<OstreeSetup>,
    /// `zerombr`: an unreadable or foreign partition table may be overwritten.
    pub zerombr: bool,
    /// `clearpart --all`: existing partitions may be removed.
    pub clear_all: bool,
    /// `clearpart --drives=` / `ignoredisk --only-use=`: the disks that may be used.
    pub drives: Vec<String>,
    pub autopart: Option<Autopart>,
    /// `bootloader --append=`: kernel arguments of the installed system.
    pub kernel_args: Vec<String>,
    pub lang: Option<String>,
    pub keymap: Option<String>,
    pub timezone: Option<String>,
    pub finish: Finish,
    pub post: Vec<Post>,
}

#[derive(Debug, PartialEq)]
pub struct OstreeSetup {
    pub osname: String,
    pub url: String,
    pub r#ref: String,
    pub remote: Option<String>,
    pub gpg: bool,
}

#[derive(Debug, PartialEq)]
pub struct Autopart {
    /// The file system of `/` (`/boot` is ext4: GRUB and ostree's menu live there).
    pub fstype: String,
}

#[derive(Debug, Default, PartialEq, Clone, Copy)]
pub enum Finish {
    /// No `reboot`/`poweroff`: leave the machine running (Anaconda waits for a key).
    #[default]
    Stay,
    Reboot,
    Poweroff,
}

#[derive(Debug, PartialEq)]
pub struct Post {
    pub chroot: bool,
    pub erroronfail: bool,
    pub interpreter: String,
    pub log: Option<String>,
    pub body: String,
    pub line: usize,
}

/// A kickstart problem: the line and what is wrong with it.
#[derive(Debug, PartialEq)]
pub struct Error {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.line == 0 {
            write!(f, "kickstart: {}", self.message)
        } else {
            write!(f, "kickstart line {}: {}", self.line, self.message)
        }
    }
}

fn err(line: usize, message: impl Into<String>) -> Error {
    Error { line, message: message.into() }
}

/// Split a line as kickstart (Python's `shlex`) does: blanks separate words, quotes group,
/// a backslash escapes outside single quotes, `#` outside quotes starts a comment.
pub fn split(line: &str, n: usize) -> Result<Vec<String>, Error> {
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if let Some(w) = cur.take() {
                    words.push(w);
                }
            }
            '#' if cur.is_none() => break,
            '\'' => {
                let w = cur.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err(err(n, "unterminated ' quote")),
                    }
                }
            }
            '"' => {
                let w = cur.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err(err(n, "unterminated \" quote")),
                        },
                        Some(c) => w.push(c),
                        None => return Err(err(n, "unterminated \" quote")),
                    }
                }
            }
            '\\' => {
                let w = cur.get_or_insert_with(String::new);
                if let Some(c) = chars.next() {
                    w.push(c);
                }
            }
            c => cur.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(cur);
    Ok(words)
}

/// The options of one command: `--name=value`, `--name value` (for names that take a
/// value) and `--flag`; every option must be known to the command.
struct Args<'a> {
    cmd: &'a str,
    line: usize,
    opts: Vec<(String, Option<String>)>,
    positional: Vec<String>,
}

impl<'a> Args<'a> {
    fn parse(cmd: &'a str, words: &[String], line: usize, valued: &[&str], flags: &[&str]) -> Result<Args<'a>, Error> {
        let mut a = Args { cmd, line, opts: Vec::new(), positional: Vec::new() };
        let mut it = words.iter();
        while let Some(w) = it.next() {
            let Some(opt) = w.strip_prefix("--") else {
                a.positional.push(w.clone());
                continue;
            };
            let (name, value) = match opt.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (opt, None),
            };
            if valued.contains(&name) {
                let value = match value {
                    Some(v) => v,
                    None => it.next().cloned().ok_or_else(|| err(line, format!("{cmd} --{name} needs a value")))?,
                };
                a.opts.push((name.to_owned(), Some(value)));
            } else if flags.contains(&name) && value.is_none() {
                a.opts.push((name.to_owned(), None));
            } else {
                return Err(err(line, format!("{cmd}: the option --{name} is not supported by this installer")));
            }
        }
        Ok(a)
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.opts.iter().rev().find(|(n, _)| n == name).and_then(|(_, v)| v.as_deref())
    }

    fn flag(&self, name: &str) -> bool {
        self.opts.iter().any(|(n, _)| n == name)
    }

    fn required(&self, name: &str) -> Result<String, Error> {
        self.value(name).map(str::to_owned).ok_or_else(|| err(self.line, format!("{} needs --{name}", self.cmd)))
    }

    fn no_positional(&self) -> Result<(), Error> {
        match self.positional.first() {
            Some(p) => Err(err(self.line, format!("{}: unexpected argument '{p}'", self.cmd))),
            None => Ok(()),
        }
    }

    fn one_positional(&self) -> Result<String, Error> {
        match self.positional.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(err(self.line, format!("{} takes one argument", self.cmd))),
        }
    }
}

/// Parse a whole kickstart file.
pub fn parse(text: &str) -> Result<Plan, Error> {
    let mut plan = Plan::default();
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let mut finish_line = 0;
    while let Some((n, line)) = lines.next() {
        let words = split(line, n)?;
        let Some((cmd, rest)) = words.split_first() else { continue };
        match cmd.as_str() {
            "ostreesetup" => {
                let a = Args::parse(cmd, rest, n, &["osname", "url", "ref", "remote"], &["nogpg"])?;
                a.no_positional()?;
                if plan.ostree.is_some() {
                    return Err(err(n, "ostreesetup is given twice"));
                }
                if !a.flag("nogpg") {
                    // pull-local from the medium would skip the check a GPG remote promises
                    return Err(err(
                        n,
                        "ostreesetup without --nogpg: GPG verification is not supported by this installer",
                    ));
                }
                plan.ostree = Some(OstreeSetup {
                    osname: a.required("osname")?,
                    url: a.required("url")?,
                    r#ref: a.required("ref")?,
                    remote: a.value("remote").map(str::to_owned),
                    gpg: !a.flag("nogpg"),
                });
            }
            "zerombr" => {
                Args::parse(cmd, rest, n, &[], &[])?.no_positional()?;
                plan.zerombr = true;
            }
            "clearpart" => {
                let a = Args::parse(cmd, rest, n, &["drives"], &["all", "initlabel", "none"])?;
                a.no_positional()?;
                if a.flag("all") {
                    plan.clear_all = true;
                }
                if let Some(d) = a.value("drives") {
                    plan.drives = drive_list(d);
                }
            }
            "ignoredisk" => {
                let a = Args::parse(cmd, rest, n, &["only-use"], &[])?;
                a.no_positional()?;
                plan.drives = drive_list(&a.required("only-use")?);
            }
            "autopart" => {
                let a = Args::parse(cmd, rest, n, &["type", "fstype"], &["nohome", "noswap", "noboot", "nolvm"])?;
                a.no_positional()?;
                match a.value("type") {
                    None | Some("plain") => {}
                    Some(t) => {
                        return Err(err(
                            n,
                            format!("autopart --type={t} is not supported by this installer (only plain partitions)"),
                        ))
                    }
                }
                if a.flag("noboot") {
                    return Err(err(n, "autopart --noboot is not supported: the layout has a /boot partition"));
                }
                let fstype = a.value("fstype").unwrap_or("ext4").to_owned();
                if !["ext4", "xfs"].contains(&fstype.as_str()) {
                    return Err(err(n, format!("autopart --fstype={fstype} is not supported (ext4 or xfs)")));
                }
                plan.autopart = Some(Autopart { fstype });
            }
            "reboot" | "poweroff" | "shutdown" | "halt" => {
                Args::parse(cmd, rest, n, &[], &["eject", "kexec"])?.no_positional()?;
                if finish_line != 0 {
                    return Err(err(n, format!("a second reboot/poweroff (the first is on line {finish_line})")));
                }
                finish_line = n;
                plan.finish = if cmd == "reboot" { Finish::Reboot } else { Finish::Poweroff };
            }
            "bootloader" => {
                let a = Args::parse(cmd, rest, n, &["append", "location", "timeout"], &[])?;
                a.no_positional()?;
                if let Some(loc) = a.value("location").filter(|l| *l != "mbr") {
                    return Err(err(n, format!("bootloader --location={loc} is not supported (mbr)")));
                }
                if let Some(append) = a.value("append") {
                    plan.kernel_args.extend(append.split_whitespace().map(str::to_owned));
                }
            }
            "text" | "cmdline" => Args::parse(cmd, rest, n, &[], &["non-interactive"])?.no_positional()?,
            "lang" => plan.lang = Some(Args::parse(cmd, rest, n, &["addsupport"], &[])?.one_positional()?),
            "keyboard" => {
                let a = Args::parse(cmd, rest, n, &["vckeymap", "xlayouts"], &[])?;
                let keymap = match a.value("vckeymap") {
                    Some(k) => k.to_owned(),
                    None => a.one_positional()?,
                };
                plan.keymap = Some(keymap);
            }
            "timezone" => {
                let a = Args::parse(cmd, rest, n, &[], &["utc", "isUtc"])?;
                plan.timezone = Some(a.one_positional()?);
            }
            "%post" => {
                let a = Args::parse(cmd, rest, n, &["interpreter", "log"], &["nochroot", "erroronfail"])?;
                a.no_positional()?;
                let mut body = String::new();
                loop {
                    match lines.next() {
                        Some((_, l)) if l.trim() == "%end" => break,
                        Some((_, l)) => {
                            body.push_str(l);
                            body.push('\n');
                        }
                        None => return Err(err(n, "%post has no %end")),
                    }
                }
                plan.post.push(Post {
                    chroot: !a.flag("nochroot"),
                    erroronfail: a.flag("erroronfail"),
                    interpreter: a.value("interpreter").unwrap_or("/bin/sh").to_owned(),
                    log: a.value("log").map(str::to_owned),
                    body,
                    line: n,
                });
            }
            other => {
                return Err(err(n, format!("unknown or unsupported command '{other}'")));
            }
        }
    }
    let Some(_) = plan.ostree else {
        return Err(err(0, "no ostreesetup: this installer installs OSTree commits only"));
    };
    if plan.autopart.is_none() {
        return Err(err(0, "no autopart: this installer lays out the disk with autopart only"));
    }
    Ok(plan)
}

fn drive_list(value: &str) -> Vec<String> {
    value.split(',').map(|d| d.trim().trim_start_matches("/dev/").to_owned()).filter(|d| !d.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KS: &str = "\
# written by org.osbuild.kickstart
ostreesetup --osname=debian --url=file:///run/install/repo/ostree/repo --ref=osbuild-rs/x86_64/iot --remote=osbuild-rs --nogpg
zerombr
clearpart --all --initlabel
autopart --type=plain --nohome
bootloader --append='rw console=ttyS0,115200'
lang en_US.UTF-8
keyboard --vckeymap=us
timezone Etc/UTC --utc
reboot
%post --erroronfail
ostree remote delete osbuild-rs
echo \"done\" # still the script's
%end
";

    #[test]
    fn parses_what_the_kickstart_stage_writes() {
        let p = parse(KS).unwrap();
        assert_eq!(
            p.ostree,
            Some(OstreeSetup {
                osname: "debian".into(),
                url: "file:///run/install/repo/ostree/repo".into(),
                r#ref: "osbuild-rs/x86_64/iot".into(),
                remote: Some("osbuild-rs".into()),
                gpg: false,
            })
        );
        assert!(p.zerombr && p.clear_all);
        assert_eq!(p.autopart, Some(Autopart { fstype: "ext4".into() }));
        assert_eq!(p.kernel_args, ["rw", "console=ttyS0,115200"]);
        assert_eq!(
            (p.lang.as_deref(), p.keymap.as_deref(), p.timezone.as_deref()),
            (Some("en_US.UTF-8"), Some("us"), Some("Etc/UTC"))
        );
        assert_eq!(p.finish, Finish::Reboot);
        assert_eq!(p.post.len(), 1);
        assert!(p.post[0].chroot && p.post[0].erroronfail);
        assert_eq!(p.post[0].body, "ostree remote delete osbuild-rs\necho \"done\" # still the script's\n");
    }

    #[test]
    fn unknown_commands_and_options_are_errors_with_their_line() {
        let e = parse(&format!("{KS}firewall --enabled\n")).unwrap_err();
        assert_eq!(e.line, 15);
        assert_eq!(e.to_string(), "kickstart line 15: unknown or unsupported command 'firewall'");
        let e = parse(&KS.replace("autopart --type=plain", "autopart --type=lvm")).unwrap_err();
        assert!(e.to_string().starts_with("kickstart line 5: autopart --type=lvm is not supported"), "{e}");
        let e = parse(&KS.replace("zerombr", "zerombr --force")).unwrap_err();
        assert_eq!(e.to_string(), "kickstart line 3: zerombr: the option --force is not supported by this installer");
        let e = parse(&KS.replace("--ref=osbuild-rs/x86_64/iot ", "")).unwrap_err();
        assert_eq!(e.to_string(), "kickstart line 2: ostreesetup needs --ref");
        let e = parse(&KS.replace("%end\n", "")).unwrap_err();
        assert_eq!(e.to_string(), "kickstart line 11: %post has no %end");
        let e = parse("autopart\n").unwrap_err();
        assert!(e.to_string().contains("no ostreesetup"), "{e}");
        let e = parse(&KS.replace(" --nogpg", "")).unwrap_err();
        assert!(e.to_string().starts_with("kickstart line 2: ostreesetup without --nogpg"), "{e}");
        let e = parse(&KS.replace("reboot", "reboot\npoweroff")).unwrap_err();
        assert!(e.to_string().contains("first is on line 10"), "{e}");
    }

    #[test]
    fn splits_like_shlex() {
        let w = |s: &str| split(s, 1).unwrap();
        assert_eq!(w(r#"a 'b c'  "d \"e\"" f\ g # h"#), ["a", "b c", "d \"e\"", "f g"]);
        assert_eq!(w("x=a#b"), ["x=a#b"]);
        assert!(split("a 'b", 3).unwrap_err().to_string().contains("line 3"));
    }
}
