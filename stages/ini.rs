//! Round-trip INI editing the way Python's `iniparse` (used by upstream's dnf.config,
//! dnf-automatic.config and rhsm stages) does it, so edited files come out byte for byte
//! as upstream writes them.
//!
//! The behaviour reproduced: unchanged lines are written back verbatim (joined by `\n`; a
//! final newline stays if there was one); option names match case-insensitively, section
//! names exactly; setting an existing option (the last one of that name in the section)
//! rewrites its line as `name<original separator>value`, keeping an inline `;` comment at
//! its column and dropping continuation lines; a new option is appended as `name = value`
//! after the section's last option; a new section is appended after an empty line (plus the
//! empty line standing for the file's final newline, if any) and the file then ends without a
//! newline. Unparsable files are refused, as `iniparse` does.

use super::StageError;

#[derive(Debug)]
enum Top {
    Raw(String),
    Section(Section),
}

#[derive(Debug)]
struct Section {
    name: String,
    header: String,
    body: Vec<Body>,
}

#[derive(Debug)]
enum Body {
    Raw(String),
    Opt(Opt),
}

#[derive(Debug)]
struct Opt {
    /// The whole option line as read, or `None` once changed.
    raw: Option<String>,
    name: String,
    sep: String,
    value: String,
    /// `(separator, text, column)` of an inline comment.
    comment: Option<(char, String, usize)>,
    /// Continuation lines (and comment/empty lines between them) as read.
    rest: Vec<String>,
}

impl Opt {
    fn line(&self) -> String {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        let mut out = format!("{}{}{}", self.name, self.sep, self.value);
        if let Some((csep, text, col)) = &self.comment {
            out.push(' ');
            while out.chars().count() < *col {
                out.push(' ');
            }
            out.push(*csep);
            out.push_str(text);
        }
        out
    }
}

/// A parsed INI file.
#[derive(Debug, Default)]
pub struct Ini {
    items: Vec<Top>,
    /// The file started with a byte-order mark, which is written back.
    bom: bool,
}

enum Line {
    Empty,
    Comment,
    Section(String),
    Opt(Opt),
    Continuation,
}

fn is_py_space(c: char) -> bool {
    c.is_whitespace()
}

fn classify(line: &str) -> Option<Line> {
    let r = line.trim_end_matches(is_py_space);
    if line.trim_matches(is_py_space).is_empty() {
        return Some(Line::Empty);
    }
    if r.starts_with(';') || r.starts_with('#') || r.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("rem")) {
        return Some(Line::Comment);
    }
    if let Some(after) = r.strip_prefix('[') {
        if let Some(close) = after.find(']') {
            let name = &after[..close];
            let tail = after[close + 1..].trim_start_matches(is_py_space);
            if !name.is_empty() && (tail.is_empty() || tail.starts_with(';') || tail.starts_with('#')) {
                return Some(Line::Section(name.to_owned()));
            }
        }
    }
    if let Some(opt) = parse_option(line, r) {
        return Some(Line::Opt(opt));
    }
    if r.starts_with(is_py_space) {
        return Some(Line::Continuation);
    }
    None
}

/// `^(?P<name>[^:=\s[][^:=]*)(?P<sep>[:=]\s*)(?P<value>.*)$` on the right-stripped line.
fn parse_option(raw: &str, r: &str) -> Option<Opt> {
    let first = r.chars().next()?;
    if first == ':' || first == '=' || first == '[' || is_py_space(first) {
        return None;
    }
    let sep_at = r.find([':', '='])?;
    let full_name = &r[..sep_at];
    let after = &r[sep_at + 1..];
    let value_start = after.len() - after.trim_start_matches(is_py_space).len();
    let name = full_name.trim_end_matches(is_py_space);
    let sep = format!("{}{}{}", &full_name[name.len()..], &r[sep_at..sep_at + 1], &after[..value_start]);
    let mut value = after[value_start..].to_owned();
    let mut comment = None;
    if let Some(coff) = value.find(';') {
        if coff > 0 && value[..coff].ends_with(is_py_space) {
            let text = value[coff + 1..].to_owned();
            let col = r[..sep_at + 1 + value_start].chars().count() + value[..coff].chars().count();
            value = value[..coff].trim_end_matches(is_py_space).to_owned();
            comment = Some((';', text, col));
        }
    }
    Some(Opt { raw: Some(raw.to_owned()), name: name.to_owned(), sep, value, comment, rest: Vec::new() })
}

impl Ini {
    /// Parse `text` (what `iniparse` reads); `what` names the file in errors.
    pub fn parse(text: &str, what: &str) -> Result<Ini, StageError> {
        // Python reads text files with universal newlines: `\r\n` and `\r` become `\n`
        let text = &text.replace("\r\n", "\n").replace('\r', "\n");
        let mut ini = Ini { bom: text.starts_with('\u{feff}'), ..Ini::default() };
        let mut pending: Vec<String> = Vec::new();
        let mut bad: Vec<usize> = Vec::new();
        let mut lines: Vec<&str> = text.split('\n').collect();
        // a final newline gives one last empty line, as iniparse's reader does
        if lines.last() == Some(&"") && !text.is_empty() {
            // keep it: it is the empty line standing for the final newline
        } else if text.is_empty() {
            lines.clear();
        }
        let mut in_option = false;
        for (n, line) in lines.iter().enumerate() {
            let line = line.strip_prefix('\u{feff}').filter(|_| n == 0).unwrap_or(line);
            let mut kind = classify(line);
            let has_section = ini.items.iter().any(|t| matches!(t, Top::Section(_)));
            if !has_section && !matches!(kind, Some(Line::Comment | Line::Empty | Line::Section(_))) {
                return Err(StageError::Invalid(format!(
                    "{what}: file contains no section headers (line {}: {line:?})",
                    n + 1
                )));
            }
            if kind.is_none() {
                bad.push(n + 1);
                kind = Some(Line::Comment);
            }
            if matches!(kind, Some(Line::Continuation)) && !in_option {
                bad.push(n + 1);
                kind = Some(Line::Comment);
            }
            match kind.expect("set above") {
                Line::Continuation => {
                    let Some(Top::Section(s)) = ini.items.last_mut() else { unreachable!() };
                    let Some(Body::Opt(o)) = s.body.last_mut() else { unreachable!() };
                    o.rest.append(&mut pending);
                    o.rest.push(line.to_string());
                }
                Line::Opt(o) => {
                    let Some(Top::Section(s)) = ini.items.last_mut() else { unreachable!() };
                    s.body.extend(pending.drain(..).map(Body::Raw));
                    s.body.push(Body::Opt(o));
                    in_option = true;
                }
                Line::Section(name) => {
                    ini.items.extend(pending.drain(..).map(Top::Raw));
                    ini.items.push(Top::Section(Section { name, header: line.to_string(), body: Vec::new() }));
                    in_option = false;
                }
                Line::Empty | Line::Comment => pending.push(line.to_string()),
            }
        }
        ini.items.extend(pending.into_iter().map(Top::Raw));
        if !bad.is_empty() {
            return Err(StageError::Invalid(format!("{what}: cannot parse line(s) {bad:?}")));
        }
        Ok(ini)
    }

    /// The file at `path` (`what` names it in errors); `None` if there is none.
    pub fn read(path: &std::path::Path, what: &str) -> Result<Option<Ini>, StageError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ini::parse(&text, what).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StageError::Io { op: "cannot read", path: path.to_owned(), source: e }),
        }
    }

    /// Set every option of `sections` in order, adding the sections that are missing.
    pub fn merge(&mut self, sections: &[(String, Vec<(String, String)>)]) {
        for (section, values) in sections {
            if !self.has_section(section) {
                self.add_section(section);
            }
            for (key, value) in values {
                self.set(section, key, value);
            }
        }
    }

    pub fn has_section(&self, name: &str) -> bool {
        self.items.iter().any(|t| matches!(t, Top::Section(s) if s.name == name))
    }

    /// `add_section`; the caller checks [`Ini::has_section`] first.
    pub fn add_section(&mut self, name: &str) {
        if !self.items.is_empty() {
            self.items.push(Top::Raw(String::new()));
        }
        self.items.push(Top::Section(Section { name: name.to_owned(), header: format!("[{name}]"), body: Vec::new() }));
    }

    /// `set(section, option, value)`; `false` if there is no such section.
    pub fn set(&mut self, section: &str, option: &str, value: &str) -> bool {
        let key = option.to_lowercase();
        let mut found: Option<&mut Opt> = None;
        let mut last_section: Option<usize> = None;
        for (i, t) in self.items.iter_mut().enumerate() {
            if let Top::Section(s) = t {
                if s.name != section {
                    continue;
                }
                last_section = Some(i);
                for b in s.body.iter_mut() {
                    if let Body::Opt(o) = b {
                        if o.name.to_lowercase() == key {
                            found = Some(o);
                        }
                    }
                }
            }
        }
        let Some(idx) = last_section else { return false };
        let opt = match found {
            Some(o) => o,
            None => {
                let Top::Section(s) = &mut self.items[idx] else { unreachable!() };
                s.body.push(Body::Opt(Opt {
                    raw: None,
                    name: option.to_owned(),
                    sep: " = ".into(),
                    value: String::new(),
                    comment: None,
                    rest: Vec::new(),
                }));
                let Some(Body::Opt(o)) = s.body.last_mut() else { unreachable!() };
                o
            }
        };
        let offset = opt
            .rest
            .iter()
            .find(|l| matches!(classify(l), Some(Line::Continuation)))
            .map(|l| l.len() - l.trim_start_matches(is_py_space).len())
            .unwrap_or(8);
        let mut lines = value.split('\n');
        opt.value = lines.next().unwrap_or("").to_owned();
        opt.raw = None;
        opt.rest = lines
            .map(|l| {
                if l.trim_matches(is_py_space).is_empty() {
                    String::new()
                } else {
                    format!("{}{l}", " ".repeat(offset))
                }
            })
            .collect();
        true
    }

    /// What `iniparse` writes back.
    pub fn render(&self) -> String {
        let mut lines: Vec<String> = Vec::new();
        for t in &self.items {
            match t {
                Top::Raw(l) => lines.push(l.clone()),
                Top::Section(s) => {
                    lines.push(s.header.clone());
                    for b in &s.body {
                        match b {
                            Body::Raw(l) => lines.push(l.clone()),
                            Body::Opt(o) => {
                                lines.push(o.line());
                                lines.extend(o.rest.iter().cloned());
                            }
                        }
                    }
                }
            }
        }
        let text = lines.join("\n");
        if self.bom {
            format!("\u{feff}{text}")
        } else {
            text
        }
    }
}

/// `SafeConfigParser.set`'s check: no `%` may remain once `%(name)s` references are removed.
pub fn check_interpolation(value: &str) -> Result<(), StageError> {
    let mut rest = value;
    while let Some(i) = rest.find('%') {
        let after = &rest[i..];
        let reference = after
            .strip_prefix("%(")
            .and_then(|b| b.find(')').filter(|&c| c > 0 && b[c + 1..].starts_with('s')).map(|c| c + 4));
        match reference {
            Some(len) => rest = &after[len..],
            None => return Err(StageError::Invalid(format!("invalid interpolation syntax in {value:?}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(text: &str, f: impl FnOnce(&mut Ini)) -> String {
        let mut ini = Ini::parse(text, "t").unwrap();
        f(&mut ini);
        ini.render()
    }

    #[test]
    fn unchanged_files_round_trip() {
        for text in ["", "[a]\nx=1\n", "# c\n\n[a]\nx = 1\n  cont\n; c\n\n[b]\ny: 2", "\u{feff}[a]\nx=1\n"] {
            assert_eq!(edit(text, |_| {}), text);
        }
        // read with universal newlines, written with `\n`
        assert_eq!(edit("[a]\r\nx=1\ry=2\r\n", |_| {}), "[a]\nx=1\ny=2\n");
    }

    #[test]
    fn edits_like_iniparse() {
        // expectations produced with python-iniparse 0.5
        let text =
            "[main]\ngpgcheck=1\nINSTALLONLY_LIMIT = 3 ; keep\ncont=a\n  b\n# trailing comment\n\n[other]\nz=1\n";
        let out = edit(text, |ini| {
            assert!(ini.set("main", "installonly_limit", "5"));
            assert!(ini.set("main", "cont", "x"));
            assert!(ini.set("main", "new", "v"));
            assert!(!ini.set("nope", "a", "b"));
            ini.add_section("added");
            ini.set("added", "k", "v");
        });
        assert_eq!(
            out,
            "[main]\ngpgcheck=1\nINSTALLONLY_LIMIT = 5 ; keep\ncont=x\nnew = v\n# trailing comment\n\n[other]\nz=1\n\n\n[added]\nk = v"
        );
        assert_eq!(
            edit("", |ini| {
                ini.add_section("commands");
                ini.set("commands", "apply_updates", "yes");
            }),
            "[commands]\napply_updates = yes"
        );
    }

    #[test]
    fn bad_files_and_values_are_refused() {
        assert!(Ini::parse("x=1\n", "f").unwrap_err().to_string().contains("no section headers"));
        assert!(Ini::parse("[a]\n=x\n", "f").unwrap_err().to_string().contains("cannot parse"));
        assert!(check_interpolation("a%(b)sc").is_ok());
        assert!(check_interpolation("a%%b").is_err());
    }
}
