//! One plaintext file through enseal and the real sops, both ways: the check behind the
//! real-world corpus (tests/corpus/) and the generated documents. It returns every
//! disagreement it finds as a sentence instead of stopping at the first, so one run over
//! hundreds of files shows the whole picture.
//!
//! For a plaintext `P` encrypted to test key `a`:
//! 1. enseal encrypts `P` to `E`, and `enseal decrypt E` is `P` byte for byte;
//! 2. `E` has `P`'s layout except the value text: its lines (without the metadata) are `P`'s
//!    lines in order, an encrypted value or comment keeping everything before it;
//! 3. for each sops release: sops encrypts `P` to `S`; sops decrypts `E` to the same data as it
//!    decrypts `S` to (YAML: in both the 1.2 and the 1.1 reading), leaving no `ENC[` behind
//!    (a comment it could not place). `S`, not `P`, is the reference because sops re-types some
//!    values itself (`2024-01-01` comes back as a timestamp, `017` as 15);
//! 4. enseal decrypts `S` to the same data as sops does, without `ENC[` left; and `E` and `S`
//!    encrypt the same number of values of each type.

use std::path::Path;

use crate::cli::Sandbox;
use crate::data::{enc_type_counts_as, parse, yaml11, Data};
use crate::peers::{self, SopsRelease};

/// The formats enseal and sops share a store for, as named by `--input-type`.
pub fn extension(format: &str) -> &'static str {
    match format {
        "yaml" => "yaml",
        "json" => "json",
        "dotenv" => "env",
        "ini" => "ini",
        other => panic!("no text format {other}"),
    }
}

/// A sandbox holding test identity `a`, the one every check encrypts to.
pub fn sandbox() -> Sandbox {
    let mut sb = Sandbox::new();
    sb.use_identities(&["a"]);
    sb
}

/// What [`check`] found: disagreements (test failures), and notes on files a sops release
/// cannot handle itself (it refuses the plaintext, or cannot read the file it wrote), where
/// only enseal's own checks apply.
#[derive(Default, Debug)]
pub struct Report {
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn merge(&mut self, other: Report) {
        self.problems.extend(other.problems);
        self.notes.extend(other.notes);
    }
}

struct Named<'a> {
    name: &'a str,
    report: &'a mut Report,
}

impl Named<'_> {
    fn problem(&mut self, what: String) {
        self.report.problems.push(format!("{}: {what}", self.name));
    }
    fn note(&mut self, what: String) {
        self.report.notes.push(format!("{}: {what}", self.name));
    }
}

/// Runs every check on `plain` (called `name` in messages) with each release in `releases`,
/// passing `flags` (a crypt rule, say) to both tools' `encrypt`.
pub fn check(
    sb: &Sandbox,
    name: &str,
    format: &str,
    plain: &[u8],
    flags: &[&str],
    releases: &[SopsRelease],
) -> Report {
    let mut report = Report::default();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut r = Named {
            name,
            report: &mut report,
        };
        check_inner(sb, format, plain, flags, releases, &mut r)
    }));
    if let Err(panic) = result {
        let text = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into());
        report
            .problems
            .push(format!("{name}: {}", first_lines(&text, 12)));
    }
    report
}

fn check_inner(
    sb: &Sandbox,
    format: &str,
    plain: &[u8],
    flags: &[&str],
    releases: &[SopsRelease],
    r: &mut Named<'_>,
) {
    let ext = extension(format);
    let types = ["--input-type", format, "--output-type", format];
    let plain_file = format!("plain.{ext}");
    sb.write(&plain_file, plain);
    let recipient = peers::recipient("a");
    let mut encrypt = vec!["encrypt"];
    encrypt.extend(types);
    encrypt.extend(["--age", recipient.as_str()]);
    encrypt.extend(flags);
    encrypt.push(&plain_file);
    let mut decrypt = vec!["decrypt"];
    decrypt.extend(types);

    // 1. enseal's own round trip.
    let out = sb.enseal(&encrypt);
    if !out.success() {
        let why = first_lines(&out.stderr_str(), 3);
        let sops_accepts: Vec<&str> = releases
            .iter()
            .filter(|rel| sb.sops_of(**rel, &encrypt).success())
            .map(|rel| rel.name())
            .collect();
        if sops_accepts.is_empty() {
            r.note(format!("refused by enseal and sops alike: {why}"));
        } else {
            r.problem(format!(
                "enseal encrypt failed ({:?}) where sops {} accepts the file: {why}",
                out.code,
                sops_accepts.join(", ")
            ));
        }
        return;
    }
    let enc_file = format!("enseal.enc.{ext}");
    let e = out.stdout.clone();
    sb.write(&enc_file, &e);
    let out = sb.enseal(with_file(&decrypt, &enc_file));
    if !out.success() {
        r.problem(format!(
            "enseal cannot decrypt its own file ({:?}): {}",
            out.code,
            first_lines(&out.stderr_str(), 3)
        ));
    } else if out.stdout != plain {
        if format == "yaml" && only_uncarried_aliases_written_out(plain, &out.stdout, &e) {
            r.note(format!(
                "aliases come back written out where no encrypted value carries their name: {}",
                first_difference(plain, &out.stdout)
            ));
        } else {
            r.problem(format!(
                "enseal decrypt(enseal encrypt(f)) != f: {}",
                first_difference(plain, &out.stdout)
            ));
        }
    }

    // 2. the encrypted file keeps the layout.
    if let Some(why) = layout_difference(format, plain, &e) {
        r.problem(format!("enseal's encrypted file changes the layout: {why}"));
    }

    // YAML 1.1 readings are compared at the end, all read by one Python process: (what, the
    // file read, the file it must read like).
    let mut yaml11_pairs: Vec<(String, String, String)> = Vec::new();
    for &release in releases {
        let rel = release.name();
        // 3. sops' own file is the reference: sops itself re-types some values on the way
        // (`2024-01-01` comes back as a timestamp, `on` as "on").
        let out = sb.sops_of(release, &encrypt);
        if !out.success() {
            r.note(format!(
                "sops {rel} refuses to encrypt the file ({:?}): {}",
                out.code,
                first_lines(&out.stderr_str(), 2)
            ));
            continue;
        }
        let s_file = format!("sops{rel}.enc.{ext}");
        sb.write(&s_file, &out.stdout);
        let s = out.stdout;
        let by_sops = sb.sops_of(release, with_file(&decrypt, &s_file));
        if !by_sops.success() {
            r.note(format!(
                "sops {rel} cannot decrypt the file it wrote ({:?}): {}",
                by_sops.code,
                first_lines(&by_sops.stderr_str(), 2)
            ));
            continue;
        }
        let sops_dec = format!("sops{rel}-of-sops.{ext}");
        sb.write(&sops_dec, &by_sops.stdout);
        let sops_data =
            match std::panic::catch_unwind(|| parse(format, &by_sops.stdout, "sops decrypt")) {
                Ok(data) => data,
                Err(_) => {
                    // No reference: go-yaml's emitter writes some foot comments where they break
                    // the text (`# c` then `{}` at column 0 for an empty mapping), so sops' own
                    // round trip of the plaintext is not YAML; or it has two `<<` merge keys in
                    // a mapping, which the test reader refuses as duplicate keys. enseal must
                    // still read sops' file.
                    r.note(format!(
                        "sops {rel}'s decryption of its own file does not read as {format}: {}",
                        first_difference(plain, &by_sops.stdout)
                    ));
                    let by_enseal = sb.enseal(with_file(&decrypt, &s_file));
                    if !by_enseal.success() {
                        r.problem(format!(
                            "enseal cannot decrypt sops {rel}'s file ({:?}): {}",
                            by_enseal.code,
                            first_lines(&by_enseal.stderr_str(), 3)
                        ));
                    } else if has_enc(&by_enseal.stdout) && !has_enc(&by_sops.stdout) {
                        r.problem(format!(
                            "enseal leaves ENC[...] in its decryption of sops {rel}'s file: {}",
                            line_with_enc(&by_enseal.stdout)
                        ));
                    }
                    continue;
                }
            };

        // sops reads enseal's file.
        let out = sb.sops_of(release, with_file(&decrypt, &enc_file));
        if !out.success() {
            r.problem(format!(
                "sops {rel} cannot decrypt enseal's file ({:?}): {}",
                out.code,
                first_lines(&out.stderr_str(), 3)
            ));
        } else {
            let dec = format!("sops{rel}-of-enseal.{ext}");
            sb.write(&dec, &out.stdout);
            let what = format!(
                "sops {rel} decrypts enseal's file to other data than it decrypts its own file to"
            );
            if compare(format, &out.stdout, &sops_data, &what, r) {
                yaml11_pairs.push((what, dec, sops_dec.clone()));
            }
            if has_enc(&out.stdout) && !has_enc(plain) {
                r.problem(format!(
                    "sops {rel} leaves ENC[...] in its decryption of enseal's file: {}",
                    line_with_enc(&out.stdout)
                ));
            }
        }

        // 4. enseal reads sops' file, and both encrypt the same values.
        let counts = |bytes: &[u8]| enc_type_counts_as(bytes, format, release);
        let (mut ce, mut cs) = (counts(&e), counts(&s));
        let (comments_e, comments_s) = (
            ce.remove("comment").unwrap_or(0),
            cs.remove("comment").unwrap_or(0),
        );
        if ce != cs || comments_e < comments_s {
            r.problem(format!(
                "enseal and sops {rel} encrypt different values: {:?} vs {:?}",
                counts(&e),
                counts(&s)
            ));
        } else if comments_e > comments_s {
            // go-yaml and ini.v1 drop some comments (after a block scalar, after a file's last
            // key); enseal keeps and encrypts them, and sops reading enseal's file drops them
            // again (no ENC[...] is left: checked above).
            r.note(format!(
                "enseal encrypts {} comments sops {rel} drops",
                comments_e - comments_s
            ));
        }
        let by_enseal = sb.enseal(with_file(&decrypt, &s_file));
        if !by_enseal.success() {
            r.problem(format!(
                "enseal cannot decrypt sops {rel}'s file ({:?}): {}",
                by_enseal.code,
                first_lines(&by_enseal.stderr_str(), 3)
            ));
            continue;
        }
        let enseal_dec = format!("enseal-of-sops{rel}.{ext}");
        sb.write(&enseal_dec, &by_enseal.stdout);
        let what = format!("enseal decrypts sops {rel}'s file to other data than sops does");
        if compare(format, &by_enseal.stdout, &sops_data, &what, r) {
            yaml11_pairs.push((what, enseal_dec, sops_dec));
        }
        if has_enc(&by_enseal.stdout) && !has_enc(&by_sops.stdout) {
            r.problem(format!(
                "enseal leaves ENC[...] in its decryption of sops {rel}'s file: {}",
                line_with_enc(&by_enseal.stdout)
            ));
        }
    }

    if format == "yaml" && !yaml11_pairs.is_empty() {
        let mut names: Vec<&str> = Vec::new();
        for (_, a, b) in &yaml11_pairs {
            for f in [a, b] {
                if !names.contains(&f.as_str()) {
                    names.push(f);
                }
            }
        }
        let paths: Vec<std::path::PathBuf> = names.iter().map(|n| sb.file(n)).collect();
        let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
        let readings = yaml11(&refs);
        let reading = |f: &str| &readings[names.iter().position(|n| *n == f).unwrap()];
        for (what, got, want) in &yaml11_pairs {
            if reading(got) != reading(want) {
                r.problem(format!(
                    "{what} (YAML 1.1 reading): {}",
                    data_difference(reading(want), reading(got))
                ));
            }
        }
    }
}

fn with_file<'a>(args: &[&'a str], file: &'a str) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.push(file);
    all
}

/// Compares `got` with the expected data (YAML: its 1.2 reading); true when they agree.
fn compare(format: &str, got: &[u8], want: &Data, what: &str, r: &mut Named<'_>) -> bool {
    let data = parse(format, got, what);
    if &data != want {
        let reading = if format == "yaml" {
            " (YAML 1.2 reading)"
        } else {
            ""
        };
        r.problem(format!("{what}{reading}: {}", data_difference(want, &data)));
        return false;
    }
    true
}

/// Where two data trees first differ, as `path: want != got`.
pub fn data_difference(want: &Data, got: &Data) -> String {
    fn walk(path: &str, want: &Data, got: &Data) -> Option<String> {
        match (want, got) {
            (Data::Map(a), Data::Map(b)) => {
                for (i, ((ka, va), (kb, vb))) in a.iter().zip(b).enumerate() {
                    if ka != kb {
                        return Some(format!("{path}: key #{i} is {kb:?}, want {ka:?}"));
                    }
                    if let Some(d) = walk(&format!("{path}.{ka}"), va, vb) {
                        return Some(d);
                    }
                }
                (a.len() != b.len()).then(|| format!("{path}: {} keys, want {}", b.len(), a.len()))
            }
            (Data::List(a), Data::List(b)) => {
                for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                    if let Some(d) = walk(&format!("{path}[{i}]"), va, vb) {
                        return Some(d);
                    }
                }
                (a.len() != b.len()).then(|| format!("{path}: {} items, want {}", b.len(), a.len()))
            }
            (a, b) if a == b => None,
            (a, b) => Some(format!("{path}: {} != want {}", short(b), short(a))),
        }
    }
    walk("", want, got).unwrap_or_else(|| "equal".into())
}

fn short(d: &Data) -> String {
    let text = format!("{d:?}");
    if text.len() > 120 {
        format!("{}...", &text[..text.floor_char_boundary(120)])
    } else {
        text
    }
}

fn has_enc(bytes: &[u8]) -> bool {
    bytes.windows(4).any(|w| w == b"ENC[")
}

fn line_with_enc(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().find(|l| l.contains("ENC[")).unwrap_or("");
    line.chars().take(100).collect()
}

fn first_lines(text: &str, n: usize) -> String {
    text.lines().take(n).collect::<Vec<_>>().join(" | ")
}

/// The first line where two texts differ, both versions shown.
pub fn first_difference(want: &[u8], got: &[u8]) -> String {
    let (want, got) = (String::from_utf8_lossy(want), String::from_utf8_lossy(got));
    let (w, g): (Vec<&str>, Vec<&str>) = (want.split('\n').collect(), got.split('\n').collect());
    for i in 0..w.len().max(g.len()) {
        let (a, b) = (w.get(i), g.get(i));
        if a != b {
            return format!(
                "line {}: want {:?}, got {:?}",
                i + 1,
                a.map(|s| s.chars().take(100).collect::<String>()),
                b.map(|s| s.chars().take(100).collect::<String>())
            );
        }
    }
    "no line differs".into()
}

/// `None` when the encrypted file, without its metadata, is the plaintext with only value
/// (and comment) text replaced: each of its lines is a line of the plaintext, in order, or
/// begins like one and goes on with `ENC[` (a multi-line value becomes one line). YAML: an
/// alias the writer wrote out counts as its plaintext line (see [`aliases_put_back`]).
pub fn layout_difference(format: &str, plain: &[u8], encrypted: &[u8]) -> Option<String> {
    let plain = String::from_utf8_lossy(plain);
    let encrypted = String::from_utf8_lossy(encrypted);
    let mut body: Vec<&str> = without_metadata(format, &encrypted);
    if format == "yaml" {
        let plain_lines: Vec<&str> = plain.split('\n').collect();
        body = aliases_put_back(&plain_lines, &body);
    }
    let mut lines = plain.split('\n').map(|l| l.trim_end_matches('\r'));
    let mut at = 0usize;
    for (n, line) in body.iter().enumerate() {
        let line = line.trim_end_matches('\r');
        // JSON: the member before the metadata gains a comma.
        let line = if format == "json" {
            line.trim_end_matches(',')
        } else {
            line
        };
        let skeleton = line
            .find("ENC[")
            .map(|i| line[..i].trim_end_matches(['"', '\'']));
        let found = lines.by_ref().any(|p| {
            at += 1;
            match skeleton {
                Some(prefix) => p.starts_with(prefix),
                None if format == "json" => p.trim_end_matches(',') == line,
                None => p == line,
            }
        });
        if !found {
            return Some(format!(
                "line {} of the encrypted file ({:?}) does not follow line {} of the plaintext",
                n + 1,
                line.chars().take(100).collect::<String>(),
                at
            ));
        }
    }
    None
}

/// The encrypted file's lines without the metadata sops and enseal add.
fn without_metadata<'a>(format: &str, text: &'a str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut in_meta = false;
    for line in text.split('\n') {
        match format {
            "yaml" => {
                if line.starts_with("sops:") {
                    in_meta = true;
                } else if line.starts_with("---") || line.starts_with("...") {
                    in_meta = false;
                }
                // A metadata block ends at the next document or at a line at column 0.
                if in_meta && !line.starts_with("sops:") && !line.starts_with([' ', '\t']) {
                    in_meta = !line.trim().is_empty() && line.starts_with("sops");
                }
            }
            "ini" => {
                if line.trim() == "[sops]" {
                    in_meta = true;
                } else if line.trim_start().starts_with('[') {
                    in_meta = false;
                }
            }
            "dotenv" => in_meta = line.starts_with("sops_"),
            // JSON: the metadata is the last member, cut below from its start to the end.
            _ => {}
        }
        if !in_meta {
            out.push(line);
        }
    }
    if format == "json" {
        // The metadata runs to the end but for the closing brace of the root object.
        if let Some(pos) = text.find("\"sops\": {") {
            let line_start = text[..pos].rfind('\n').map_or(0, |p| p + 1);
            out = text[..line_start].split('\n').collect();
        }
    }
    // The blank line a writer may put before the metadata is not the plaintext's.
    while out.last().is_some_and(|l| l.trim().is_empty()) {
        out.pop();
    }
    out
}

/// An alias's text in a plaintext line: `(prefix, name)` for `prefix *name` with nothing but a
/// comment after it (`key: *a`, `- *a`, `<<: *a`).
fn alias_in(line: &str) -> Option<(&str, &str)> {
    let line = line.trim_end_matches('\r');
    let code = match line.find(" #") {
        Some(h) => &line[..h],
        None => line,
    }
    .trim_end();
    // `<<: [*a, *b]`: a merge key's flow sequence of aliases, written out in flow.
    if let Some(open) = code.find(" [*") {
        if code.ends_with(']') {
            return Some((&code[..open], &code[open + 1..]));
        }
    }
    let star = code.rfind(" *")?;
    let name = &code[star + 2..];
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| !c.is_whitespace() && !",[]{}".contains(c));
    ok.then_some((&code[..star], name))
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// A line without its comment (` #...`) and trailing blanks.
fn code_of(line: &str) -> &str {
    let line = line.trim_end_matches('\r');
    let code = if line.trim_start().starts_with('#') {
        ""
    } else {
        line.find(" #").map_or(line, |h| &line[..h])
    };
    code.trim_end()
}

/// Whether `line` starts a plaintext alias `prefix *name` written out: the prefix alone (a
/// collection follows on deeper lines), or followed by a value in the clear (a scalar, or
/// the first entry of a mapping after a sequence's `-`).
fn writes_out(line: &str, alias_line: &str, prefix: &str, deeper: bool) -> bool {
    let code = code_of(line);
    // A comment after the alias stays on its line.
    let commented = |l: &str| code_of(l).len() < l.trim_end().len();
    if commented(line) != commented(alias_line) {
        return false;
    }
    if code == prefix.trim_end() {
        return deeper;
    }
    let flow = alias_line.contains(" [*");
    code.strip_prefix(prefix).is_some_and(|rest| {
        rest.starts_with(' ') && (!rest.contains("ENC[") || (flow && rest.starts_with(" [")))
    })
}

fn deeper_than(line: &str, next: Option<&&str>) -> bool {
    next.is_some_and(|n| !n.trim().is_empty() && indent_of(n) > indent_of(line))
}

/// The lines of `e` with each alias the writer wrote out (its copy's lines) put back as the
/// plaintext's alias line: an alias to a collection or merge key is always written out in the
/// encrypted file (sops has no aliases in its tree and could not decrypt an alias to encrypted
/// values under the alias's path), one in a clear region when its anchor is encrypted.
fn aliases_put_back<'a>(plain: &[&'a str], e: &[&'a str]) -> Vec<&'a str> {
    let aliases: Vec<(usize, &str)> = plain
        .iter()
        .enumerate()
        .filter_map(|(n, l)| alias_in(l).map(|(prefix, _)| (n, prefix)))
        .collect();
    let mut out = Vec::with_capacity(e.len());
    // The plaintext line the last line matched, to take the next of equal aliases.
    let mut cursor = 0;
    let mut i = 0;
    while i < e.len() {
        let line = e[i].trim_end_matches('\r');
        i += 1;
        if let Some(n) = (cursor..plain.len()).find(|&n| plain[n].trim_end_matches('\r') == line) {
            cursor = n + 1;
            out.push(e[i - 1]);
            continue;
        }
        let deeper = deeper_than(line, e.get(i));
        let fits = |&&(n, prefix): &&(usize, &str)| writes_out(line, plain[n], prefix, deeper);
        let alias = aliases
            .iter()
            .filter(|(n, _)| *n >= cursor)
            .find(fits)
            .or_else(|| aliases.iter().find(fits));
        match alias {
            Some(&(n, _)) => {
                cursor = n + 1;
                out.push(plain[n]);
                while deeper_than(line, e.get(i)) {
                    i += 1;
                }
            }
            None => out.push(e[i - 1]),
        }
    }
    out
}

/// Whether `got`, enseal's decryption of its own file `e`, differs from `plain` only by aliases
/// written out where nothing in the encrypted file carries the alias's name: in a clear region
/// (no value of the copy is encrypted: the copy is there in the clear, line for line), or a
/// copy holding no value to encrypt (only comments, empty collections, nulls). Their data are
/// the same. An alias whose copy has an encrypted value must come back (the value's layout
/// carries it), so it is not accepted here.
pub fn only_uncarried_aliases_written_out(plain: &[u8], got: &[u8], e: &[u8]) -> bool {
    let (p, g, e) = (
        String::from_utf8_lossy(plain),
        String::from_utf8_lossy(got),
        String::from_utf8_lossy(e),
    );
    let p: Vec<&str> = p.split('\n').collect();
    let g: Vec<&str> = g.split('\n').collect();
    let e: Vec<&str> = e.split('\n').collect();
    let (mut i, mut j) = (0, 0);
    let mut written_out = 0;
    while i < p.len() || j < g.len() {
        if i < p.len() && j < g.len() && p[i] == g[j] {
            i += 1;
            j += 1;
            continue;
        }
        let Some((prefix, _)) = p.get(i).and_then(|l| alias_in(l)) else {
            return false;
        };
        if !g
            .get(j)
            .is_some_and(|l| writes_out(l, p[i], prefix, deeper_than(l, g.get(j + 1))))
        {
            return false;
        }
        let at = indent_of(p[i]);
        let start = j;
        j += 1;
        while g
            .get(j)
            .is_some_and(|l| !l.trim().is_empty() && indent_of(l) > at && Some(l) != p.get(i + 1))
        {
            j += 1;
        }
        // The copy is in the encrypted file as it came back, but for its comments.
        let copy = &g[start..j];
        let same = |d: &str, c: &str| {
            let (d, c) = (d.trim_end_matches('\r'), c.trim_end_matches('\r'));
            d == c
                || c.find("#ENC[")
                    .is_some_and(|h| d.len() > h && d[..h] == c[..h] && d[h..].starts_with('#'))
        };
        let in_e = (0..e.len().saturating_sub(copy.len() - 1))
            .any(|k| copy.iter().zip(&e[k..]).all(|(d, c)| same(d, c)));
        if !in_e {
            return false;
        }
        written_out += 1;
        i += 1;
    }
    written_out > 0 && parse("yaml", plain, "plaintext") == parse("yaml", got, "enseal decrypt")
}
