//! Source-tag patterns: how a rule's `source_tag` is parsed and matched.
//!
//! A Sparkplug metric's identity is `(group, edge_node, device, metric)`; its **source tag** is
//! `group/edge_node/device/metric`, with an empty device for node-level metrics
//! (`group/edge_node//metric`). A rule's `source_tag` may start with `/` (the seed's
//! `/Devices/Line1/M1/ProdCount` is group `Devices`, edge node `Line1`, device `M1`, metric
//! `ProdCount`). The first three `/` separate group, edge node and device; everything after the
//! third belongs to the metric name, which may itself contain `/` (`G/N/D/Folder/Tag`).
//!
//! In each part, `*` matches any run of characters (possibly empty) and `{name}` captures a
//! non-empty run; neither crosses a `/`. Matching is case-sensitive.

use std::fmt;

/// One element of a field pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    Lit(String),
    Star,
    /// Index into [`SourcePattern::captures`].
    Cap(usize),
}

/// A pattern for one of the four identity fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldPattern {
    pub toks: Vec<Tok>,
}

impl FieldPattern {
    /// The field's text when it has no wildcard.
    pub fn literal(&self) -> Option<&str> {
        match self.toks.as_slice() {
            [] => Some(""),
            [Tok::Lit(s)] => Some(s),
            _ => None,
        }
    }

    fn literal_len(&self) -> usize {
        self.toks
            .iter()
            .map(|t| {
                if let Tok::Lit(s) = t {
                    s.chars().count()
                } else {
                    0
                }
            })
            .sum()
    }

    /// Match `text`, writing captures (byte ranges into `text`) into `caps`.
    pub fn matches<'t>(&self, text: &'t str, caps: &mut [&'t str]) -> bool {
        match_toks(&self.toks, text, caps)
    }
}

fn match_toks<'t>(toks: &[Tok], text: &'t str, caps: &mut [&'t str]) -> bool {
    match toks.split_first() {
        None => text.is_empty(),
        Some((Tok::Lit(l), rest)) => text
            .strip_prefix(l.as_str())
            .is_some_and(|t| match_toks(rest, t, caps)),
        Some((wild, rest)) => {
            let min = usize::from(matches!(wild, Tok::Cap(_)));
            // The wildcard may not cross a '/'; try the shortest run first (lazy captures).
            let limit = text.find('/').unwrap_or(text.len());
            let mut end = min;
            while end <= limit {
                if text.is_char_boundary(end) && match_toks(rest, &text[end..], caps) {
                    if let Tok::Cap(i) = wild
                        && let Some(slot) = caps.get_mut(*i)
                    {
                        *slot = &text[..end];
                    }
                    return true;
                }
                end += 1;
            }
            false
        }
    }
}

/// A parsed `source_tag`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourcePattern {
    pub group: FieldPattern,
    pub edge_node: FieldPattern,
    /// Empty literal for node-level metrics.
    pub device: FieldPattern,
    pub metric: FieldPattern,
    /// Capture names in order of appearance.
    pub captures: Vec<String>,
}

impl fmt::Display for SourcePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = |p: &FieldPattern| {
            p.toks
                .iter()
                .map(|t| match t {
                    Tok::Lit(s) => s.clone(),
                    Tok::Star => "*".into(),
                    Tok::Cap(i) => format!("{{{}}}", self.captures[*i]),
                })
                .collect::<String>()
        };
        write!(
            f,
            "{}/{}/{}/{}",
            field(&self.group),
            field(&self.edge_node),
            field(&self.device),
            field(&self.metric)
        )
    }
}

impl SourcePattern {
    /// Parse a `source_tag`. Errors are sentences for the plant engineer.
    pub fn parse(tag: &str) -> Result<SourcePattern, String> {
        let body = tag.strip_prefix('/').unwrap_or(tag);
        let parts: Vec<&str> = body.splitn(4, '/').collect();
        if parts.len() < 4 {
            return Err(format!(
                "`{tag}` must have the form group/edge_node/device/metric (use an empty device, \
                 `group/edge_node//metric`, for node-level metrics)"
            ));
        }
        let mut captures = Vec::new();
        let mut fields = Vec::with_capacity(4);
        for (i, part) in parts.iter().enumerate() {
            let what = ["group", "edge node", "device", "metric"][i];
            let fp = parse_field(part, &mut captures)
                .map_err(|e| format!("in the {what} part `{part}`: {e}"))?;
            fields.push(fp);
        }
        let pat = SourcePattern {
            metric: fields.pop().unwrap_or(FieldPattern { toks: Vec::new() }),
            device: fields.pop().unwrap_or(FieldPattern { toks: Vec::new() }),
            edge_node: fields.pop().unwrap_or(FieldPattern { toks: Vec::new() }),
            group: fields.pop().unwrap_or(FieldPattern { toks: Vec::new() }),
            captures,
        };
        pat.check_can_match(tag)?;
        Ok(pat)
    }

    fn check_can_match(&self, tag: &str) -> Result<(), String> {
        for (p, what) in [
            (&self.group, "group"),
            (&self.edge_node, "edge node"),
            (&self.device, "device"),
        ] {
            for t in &p.toks {
                if let Tok::Lit(s) = t
                    && let Some(c) = s.chars().find(|c| matches!(c, '+' | '#'))
                {
                    return Err(format!(
                        "`{tag}` can never match: a Sparkplug {what} ID cannot contain `{c}`"
                    ));
                }
            }
        }
        for (p, what) in [
            (&self.group, "group"),
            (&self.edge_node, "edge node"),
            (&self.metric, "metric"),
        ] {
            if p.toks.is_empty() {
                return Err(format!("`{tag}` can never match: the {what} part is empty"));
            }
        }
        if let Some(Tok::Lit(s)) = self.metric.toks.first()
            && s.starts_with('/')
        {
            return Err(format!(
                "`{tag}` can never match: a metric name part is empty (`//`)"
            ));
        }
        Ok(())
    }

    /// True when no part has a wildcard.
    pub fn is_exact(&self) -> bool {
        [&self.group, &self.edge_node, &self.device, &self.metric]
            .iter()
            .all(|p| p.literal().is_some())
    }

    /// The number of literal characters: among matching patterns, the highest wins.
    pub fn specificity(&self) -> usize {
        self.group.literal_len()
            + self.edge_node.literal_len()
            + self.device.literal_len()
            + self.metric.literal_len()
    }

    /// Match an identity; on success `caps[i]` holds capture `i`.
    pub fn matches<'t>(&self, id: &SourceId<'t>, caps: &mut [&'t str]) -> bool {
        let device = id.device.unwrap_or("");
        // An empty device (node-level metric) is only matched by an empty device part.
        if id.device.is_none() != self.device.toks.is_empty() {
            return false;
        }
        self.group.matches(id.group, caps)
            && self.edge_node.matches(id.edge_node, caps)
            && self.device.matches(device, caps)
            && self.metric.matches(id.metric, caps)
    }

    /// Whether some identity matches both patterns.
    pub fn overlaps(&self, other: &SourcePattern) -> bool {
        self.device.toks.is_empty() == other.device.toks.is_empty()
            && fields_overlap(&self.group, &other.group)
            && fields_overlap(&self.edge_node, &other.edge_node)
            && fields_overlap(&self.device, &other.device)
            && fields_overlap(&self.metric, &other.metric)
    }
}

/// The identity of one Sparkplug metric, borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourceId<'a> {
    pub group: &'a str,
    pub edge_node: &'a str,
    pub device: Option<&'a str>,
    pub metric: &'a str,
}

impl fmt::Display for SourceId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.group,
            self.edge_node,
            self.device.unwrap_or(""),
            self.metric
        )
    }
}

fn parse_field(part: &str, captures: &mut Vec<String>) -> Result<FieldPattern, String> {
    let mut toks: Vec<Tok> = Vec::new();
    let mut lit = String::new();
    let mut chars = part.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' | '{' => {
                if !lit.is_empty() {
                    toks.push(Tok::Lit(std::mem::take(&mut lit)));
                }
                let tok = if c == '*' {
                    Tok::Star
                } else {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(ch) => name.push(ch),
                            None => return Err(format!("`{{{name}` is not closed with `}}`")),
                        }
                    }
                    let valid = name
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !valid {
                        return Err(format!(
                            "`{{{name}}}` is not a valid capture name (letters, digits and `_`, starting with a letter)"
                        ));
                    }
                    if captures.contains(&name) {
                        return Err(format!("the capture `{{{name}}}` is used twice"));
                    }
                    captures.push(name);
                    Tok::Cap(captures.len() - 1)
                };
                if matches!(toks.last(), Some(Tok::Star | Tok::Cap(_))) {
                    return Err(
                        "two wildcards side by side are ambiguous; put literal text between them"
                            .into(),
                    );
                }
                toks.push(tok);
            }
            '}' => return Err("`}` without a matching `{`".into()),
            _ => lit.push(c),
        }
    }
    if !lit.is_empty() {
        toks.push(Tok::Lit(lit));
    }
    Ok(FieldPattern { toks })
}

/// Character-level items for the overlap test.
#[derive(Clone, Copy)]
enum Item {
    Char(char),
    /// Exactly one character other than '/'.
    Any,
    /// Zero or more characters other than '/'.
    Star,
}

fn items(p: &FieldPattern) -> Vec<Item> {
    let mut v = Vec::new();
    for t in &p.toks {
        match t {
            Tok::Lit(s) => v.extend(s.chars().map(Item::Char)),
            Tok::Star => v.push(Item::Star),
            Tok::Cap(_) => v.extend([Item::Any, Item::Star]),
        }
    }
    v
}

/// Whether two field patterns accept a common string: reachability over pairs of positions.
fn fields_overlap(a: &FieldPattern, b: &FieldPattern) -> bool {
    if let (Some(x), Some(y)) = (a.literal(), b.literal()) {
        return x == y;
    }
    let (a, b) = (items(a), items(b));
    let w = b.len() + 1;
    let mut seen = vec![false; (a.len() + 1) * w];
    let mut stack = vec![(0usize, 0usize)];
    while let Some((i, j)) = stack.pop() {
        if std::mem::replace(&mut seen[i * w + j], true) {
            continue;
        }
        if i == a.len() && j == b.len() {
            return true;
        }
        let mut push = |i: usize, j: usize| {
            if !seen[i * w + j] {
                stack.push((i, j));
            }
        };
        if let Some(Item::Star) = a.get(i) {
            push(i + 1, j);
        }
        if let Some(Item::Star) = b.get(j) {
            push(i, j + 1);
        }
        if let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
            let common = match (x, y) {
                (Item::Char(c), Item::Char(d)) => c == d,
                (Item::Char(c), _) | (_, Item::Char(c)) => *c != '/',
                _ => true,
            };
            let ni = if matches!(x, Item::Star) { i } else { i + 1 };
            let nj = if matches!(y, Item::Star) { j } else { j + 1 };
            if common && (ni, nj) != (i, j) {
                push(ni, nj);
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id<'a>(g: &'a str, n: &'a str, d: Option<&'a str>, m: &'a str) -> SourceId<'a> {
        SourceId {
            group: g,
            edge_node: n,
            device: d,
            metric: m,
        }
    }

    #[test]
    fn seed_path_is_group_node_device_metric() {
        let p = SourcePattern::parse("/Devices/Line1/M1/ProdCount").unwrap();
        assert!(p.is_exact());
        assert!(p.matches(&id("Devices", "Line1", Some("M1"), "ProdCount"), &mut []));
        assert_eq!(
            p,
            SourcePattern::parse("Devices/Line1/M1/ProdCount").unwrap()
        );
        assert_eq!(p.to_string(), "Devices/Line1/M1/ProdCount");
    }

    #[test]
    fn metric_names_may_contain_slashes_and_node_metrics_have_an_empty_device() {
        let p = SourcePattern::parse("G/N/D/Folder/Sub/Tag").unwrap();
        assert!(p.matches(&id("G", "N", Some("D"), "Folder/Sub/Tag"), &mut []));
        let n = SourcePattern::parse("G/N//Node Control/Rebirth").unwrap();
        assert!(n.matches(&id("G", "N", None, "Node Control/Rebirth"), &mut []));
        assert!(!n.matches(&id("G", "N", Some("D"), "Node Control/Rebirth"), &mut []));
        let any_dev = SourcePattern::parse("G/N/*/Temp").unwrap();
        assert!(!any_dev.matches(&id("G", "N", None, "Temp"), &mut []));
    }

    #[test]
    fn captures() {
        let p = SourcePattern::parse("Plant/{line}/{machine}/Count_{kind}").unwrap();
        assert_eq!(p.captures, ["line", "machine", "kind"]);
        let mut caps = [""; 3];
        assert!(p.matches(&id("Plant", "L1", Some("M7"), "Count_good"), &mut caps));
        assert_eq!(caps, ["L1", "M7", "good"]);
        // captures are non-empty and do not cross '/'
        assert!(!p.matches(&id("Plant", "L1", Some("M7"), "Count_"), &mut caps));
        let q = SourcePattern::parse("P/L/M/{x}").unwrap();
        assert!(!q.matches(&id("P", "L", Some("M"), "a/b"), &mut [""]));
        // `*` may be empty; case-sensitive
        let s = SourcePattern::parse("P/L/M/Temp*").unwrap();
        assert!(s.matches(&id("P", "L", Some("M"), "Temp"), &mut []));
        assert!(!s.matches(&id("P", "L", Some("M"), "temp1"), &mut []));
    }

    #[test]
    fn lazy_capture_backtracks() {
        let p = SourcePattern::parse("G/N/D/{a}_x_{b}").unwrap();
        let mut caps = [""; 2];
        assert!(p.matches(&id("G", "N", Some("D"), "p_q_x_r"), &mut caps));
        assert_eq!(caps, ["p_q", "r"]);
    }

    #[test]
    fn malformed_and_impossible_patterns() {
        for (tag, needle) in [
            ("G/N/M", "must have the form"),
            ("G/N/D/{m", "not closed"),
            ("G/N/D/m}", "without a matching"),
            ("G/N/D/{a}{b}", "side by side"),
            ("G/N/D/*{b}", "side by side"),
            ("G/{a}/D/{a}", "used twice"),
            ("G/N/D/{9x}", "not a valid capture"),
            ("G+/N/D/m", "cannot contain `+`"),
            ("G/N#/D/m", "cannot contain `#`"),
            ("/G//D/m", "edge node part is empty"),
            ("G/N/D/", "metric part is empty"),
            ("G/N/D//x", "metric name part is empty"),
        ] {
            let e = SourcePattern::parse(tag).unwrap_err();
            assert!(e.contains(needle), "{tag}: {e}");
        }
    }

    #[test]
    fn specificity_and_overlap() {
        let a = SourcePattern::parse("P/{line}/{m}/Count").unwrap();
        let b = SourcePattern::parse("P/L1/{m}/Count").unwrap();
        let c = SourcePattern::parse("P/{line}/M1/Count").unwrap();
        let d = SourcePattern::parse("P/{line}/{m}/Temp").unwrap();
        assert!(b.specificity() > a.specificity());
        assert_eq!(b.specificity(), c.specificity());
        assert!(a.overlaps(&b) && b.overlaps(&c));
        assert!(!a.overlaps(&d));
        let e = SourcePattern::parse("P/L*/{m}/Count").unwrap();
        let f = SourcePattern::parse("P/*2/{m}/Count").unwrap();
        assert!(e.overlaps(&f)); // "L2"
        let g = SourcePattern::parse("P/L*/{m}/Count").unwrap();
        let h = SourcePattern::parse("P/X*/{m}/Count").unwrap();
        assert!(!g.overlaps(&h));
        // captures need a character, stars do not
        let i = SourcePattern::parse("P/L/M/T{x}").unwrap();
        let j = SourcePattern::parse("P/L/M/T").unwrap();
        assert!(!i.overlaps(&j));
        let k = SourcePattern::parse("P/L/M/T*").unwrap();
        assert!(k.overlaps(&j));
    }
}
