//! Located YAML: a node tree that remembers where every key and value came from, and a serde
//! deserializer over it that **collects** errors instead of stopping at the first one.
//!
//! Why not deserialize straight from the text: serde stops at the first error, so a file with a
//! typo on line 4 and a wrong type on line 40 would need two runs of `check-config`. Here the text
//! is parsed once into a [`Node`] tree (with `granit-parser`, the pure-Rust YAML parser that
//! `serde-saphyr` is built on), then [`decode`] walks it with serde: an unknown key, a wrong
//! type or a bad enum value is recorded as a [`Diagnostic`] with its key path and location, and
//! decoding goes on with a neutral value, so every such error is reported in one run. The tree
//! also answers "where is `processing.tag_mappings[3].target_unit`?" for semantic errors found
//! later ([`Node::locate`]).
//!
//! Pure code: text in, tree and diagnostics out.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use granit_parser::{Event, Parser, ScalarStyle};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};

/// Where a value came from: a place in the file, or an environment variable override.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// 1-based line and column in the YAML file.
    File { line: u32, column: u32 },
    /// Set by an environment variable (its name).
    Env(String),
}

impl Location {
    fn file(line: usize, col0: usize) -> Self {
        Location::File {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(col0 + 1).unwrap_or(u32::MAX),
        }
    }
}

/// One configuration error: where, which key, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Location,
    /// Key path such as `processing.tag_mappings[3].target_unit` (empty for the document root).
    pub path: String,
    pub message: String,
}

impl Diagnostic {
    /// `FILE:LINE:COLUMN: key.path: message`, or `$OEE_VAR: key.path: message` for a value set
    /// from the environment.
    pub fn render(&self, file: &str) -> String {
        let path = if self.path.is_empty() {
            "(document)"
        } else {
            &self.path
        };
        match &self.location {
            Location::File { line, column } => {
                format!("{file}:{line}:{column}: {path}: {}", self.message)
            }
            Location::Env(var) => format!("${var}: {path}: {}", self.message),
        }
    }
}

/// A semantic error found after decoding: a key path and a message; the loader adds the
/// location with [`Node::locate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathError {
    pub path: String,
    pub message: String,
}

impl PathError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        PathError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A YAML node with its location.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub location: Location,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// A scalar's text after escape processing; `plain` is false for quoted and block scalars
    /// (which are always text, never numbers or booleans).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Entries in file order: the key (a scalar, with its own location) and the value.
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub fn empty_map(location: Location) -> Node {
        Node {
            kind: NodeKind::Map(Vec::new()),
            location,
        }
    }

    fn key_text(&self) -> &str {
        match &self.kind {
            NodeKind::Scalar { text, .. } => text,
            _ => "",
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { text, plain: true } if is_null_text(text))
    }

    /// The location of the value at `path` (as produced by the decoder and the validators),
    /// or of its nearest existing ancestor when the key is absent.
    pub fn locate(&self, path: &str) -> Location {
        let mut node = self;
        for seg in split_path(path) {
            let next = match (&node.kind, seg) {
                (NodeKind::Map(entries), Seg::Key(k)) => entries
                    .iter()
                    .find(|(key, _)| key.key_text() == k)
                    .map(|(_, v)| v),
                (NodeKind::Seq(items), Seg::Index(i)) => items.get(i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node.location.clone()
    }

    /// Turn semantic errors into located diagnostics.
    pub fn locate_all(&self, errors: Vec<PathError>) -> Vec<Diagnostic> {
        errors
            .into_iter()
            .map(|e| Diagnostic {
                location: self.locate(&e.path),
                path: e.path,
                message: e.message,
            })
            .collect()
    }

    /// Set the scalar at `path` (key segments only), creating intermediate mappings; used for
    /// environment overrides. Replaces whatever was there. Returns false when an intermediate
    /// node exists and is not a mapping.
    pub fn set_scalar(&mut self, keys: &[&str], text: &str, location: Location) -> bool {
        let Some((first, rest)) = keys.split_first() else {
            *self = Node {
                kind: NodeKind::Scalar {
                    text: text.to_string(),
                    plain: true,
                },
                location,
            };
            return true;
        };
        if self.is_null() {
            self.kind = NodeKind::Map(Vec::new());
        }
        let NodeKind::Map(entries) = &mut self.kind else {
            return false;
        };
        let idx = match entries.iter().position(|(k, _)| k.key_text() == *first) {
            Some(i) => i,
            None => {
                let key = Node {
                    kind: NodeKind::Scalar {
                        text: (*first).to_string(),
                        plain: true,
                    },
                    location: location.clone(),
                };
                entries.push((key, Node::empty_map(location.clone())));
                entries.len() - 1
            }
        };
        entries[idx].1.set_scalar(rest, text, location)
    }
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Split `a.b[3].c["x.y"]` into segments.
fn split_path(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
            continue;
        }
        if let Some(r) = rest.strip_prefix("[\"") {
            let end = r.find("\"]").unwrap_or(r.len());
            out.push(Seg::Key(&r[..end]));
            rest = r.get(end + 2..).unwrap_or("");
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').unwrap_or(r.len());
            if let Ok(i) = r[..end].parse() {
                out.push(Seg::Index(i));
            }
            rest = r.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            out.push(Seg::Key(&rest[..end]));
            rest = &rest[end..];
        }
    }
    out
}

/// Append a mapping key to a path: `a.key`, or `a["key with.dots"]` when needed.
pub fn join_key(path: &str, key: &str) -> String {
    let simple = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), simple) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[\"{key}\"]"),
    }
}

pub fn join_index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn is_null_text(t: &str) -> bool {
    matches!(t, "" | "~" | "null" | "Null" | "NULL")
}

/// Parse YAML text into a located tree. An empty document is an empty mapping. Syntax errors
/// stop parsing (the rest of the file cannot be trusted), so at most one is returned, but
/// duplicate keys are all reported.
pub fn parse(text: &str) -> Result<Node, Vec<Diagnostic>> {
    let mut builder = Builder::default();
    for item in Parser::new_from_str(text) {
        match item {
            Ok((event, span)) => {
                let loc = Location::file(span.start.line(), span.start.col());
                if let Err(d) = builder.event(event, loc) {
                    return Err(vec![d]);
                }
            }
            Err(e) => {
                let m = e.marker();
                return Err(vec![Diagnostic {
                    location: Location::file(m.line(), m.col()),
                    path: String::new(),
                    message: format!("YAML syntax error: {}", e.info()),
                }]);
            }
        }
    }
    let root = builder
        .root
        .unwrap_or_else(|| Node::empty_map(Location::file(1, 0)));
    let mut diags = Vec::new();
    check_duplicates(&root, "", &mut diags);
    if diags.is_empty() {
        Ok(root)
    } else {
        Err(diags)
    }
}

fn check_duplicates(node: &Node, path: &str, diags: &mut Vec<Diagnostic>) {
    match &node.kind {
        NodeKind::Map(entries) => {
            let mut seen: HashMap<&str, &Location> = HashMap::new();
            for (k, v) in entries {
                let kp = join_key(path, k.key_text());
                if let Some(first) = seen.insert(k.key_text(), &k.location) {
                    let at = match first {
                        Location::File { line, .. } => format!(" (first set on line {line})"),
                        Location::Env(_) => String::new(),
                    };
                    diags.push(Diagnostic {
                        location: k.location.clone(),
                        path: kp.clone(),
                        message: format!("duplicate key `{}`{at}", k.key_text()),
                    });
                }
                check_duplicates(v, &kp, diags);
            }
        }
        NodeKind::Seq(items) => {
            for (i, n) in items.iter().enumerate() {
                check_duplicates(n, &join_index(path, i), diags);
            }
        }
        NodeKind::Scalar { .. } => {}
    }
}

enum Frame {
    Seq(Node),
    /// A mapping and, when its last key has been read but not its value, that key.
    Map(Node, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<(Frame, usize)>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    documents: usize,
}

impl Builder {
    fn event(&mut self, event: Event<'_>, loc: Location) -> Result<(), Diagnostic> {
        match event {
            Event::DocumentStart(..) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(Diagnostic {
                        location: loc,
                        path: String::new(),
                        message: "the configuration must be a single YAML document (found a second `---`)"
                            .into(),
                    });
                }
            }
            Event::Scalar(text, style, anchor, _tag) => {
                let node = Node {
                    kind: NodeKind::Scalar {
                        text: text.into_owned(),
                        plain: matches!(style, ScalarStyle::Plain),
                    },
                    location: loc,
                };
                self.push_node(node, anchor)?;
            }
            Event::SequenceStart(_, anchor, _) => {
                self.stack.push((
                    Frame::Seq(Node {
                        kind: NodeKind::Seq(Vec::new()),
                        location: loc,
                    }),
                    anchor,
                ));
            }
            Event::MappingStart(_, anchor, _) => {
                self.stack
                    .push((Frame::Map(Node::empty_map(loc), None), anchor));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((frame, anchor)) = self.stack.pop() {
                    let node = match frame {
                        Frame::Seq(n) | Frame::Map(n, _) => n,
                    };
                    self.push_node(node, anchor)?;
                }
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().ok_or_else(|| Diagnostic {
                    location: loc.clone(),
                    path: String::new(),
                    message: "alias refers to an unknown anchor".into(),
                })?;
                self.push_node(node, 0)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn push_node(&mut self, node: Node, anchor: usize) -> Result<(), Diagnostic> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some((Frame::Seq(seq), _)) => {
                if let NodeKind::Seq(items) = &mut seq.kind {
                    items.push(node);
                }
            }
            Some((Frame::Map(map, pending), _)) => match pending.take() {
                None => {
                    if !matches!(node.kind, NodeKind::Scalar { .. }) {
                        return Err(Diagnostic {
                            location: node.location,
                            path: String::new(),
                            message: "mapping keys must be plain text, not lists or mappings"
                                .into(),
                        });
                    }
                    *pending = Some(node);
                }
                Some(key) => {
                    if let NodeKind::Map(entries) = &mut map.kind {
                        entries.push((key, node));
                    }
                }
            },
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The collecting deserializer.

/// Deserialize `T` from a located tree. Every unknown key, wrong type and bad value is pushed to
/// `diags` with its path and location; decoding continues with a neutral value (0, "", empty),
/// so the result is only meaningful when no diagnostic was added. Returns `None` only when an
/// error could not be recovered from (for example a required field without a default).
pub fn decode<T: DeserializeOwned>(root: &Node, diags: &mut Vec<Diagnostic>) -> Option<T> {
    let sink = RefCell::new(Vec::new());
    let result = T::deserialize(NodeDe {
        node: root,
        path: String::new(),
        sink: &sink,
    });
    let mut collected = sink.into_inner();
    let value = match result {
        Ok(v) => Some(v),
        Err(e) => {
            collected.push(Diagnostic {
                location: e.location.unwrap_or_else(|| root.location.clone()),
                path: e.path.unwrap_or_default(),
                message: e.message,
            });
            None
        }
    };
    sort_diagnostics(&mut collected);
    diags.extend(collected);
    value
}

/// Order diagnostics by position in the file (environment overrides last), stable.
pub fn sort_diagnostics(diags: &mut [Diagnostic]) {
    diags.sort_by_key(|d| match &d.location {
        Location::File { line, column } => (0, *line, *column),
        Location::Env(_) => (1, 0, 0),
    });
}

/// Decoder error: only used for errors serde's generated code raises (we record ours in the
/// sink); carries the innermost path that saw it.
#[derive(Debug)]
pub struct DeError {
    message: String,
    path: Option<String>,
    location: Option<Location>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            path: None,
            location: None,
        }
    }
}

struct NodeDe<'a> {
    node: &'a Node,
    path: String,
    sink: &'a RefCell<Vec<Diagnostic>>,
}

fn describe(node: &Node) -> String {
    match &node.kind {
        NodeKind::Scalar { text, plain: true } if is_null_text(text) => "nothing (null)".into(),
        NodeKind::Scalar { text, plain: true } => format!("`{text}`"),
        NodeKind::Scalar { text, plain: false } => format!("the quoted text \"{text}\""),
        NodeKind::Seq(_) => "a list".into(),
        NodeKind::Map(_) => "a mapping".into(),
    }
}

impl<'a> NodeDe<'a> {
    fn child(&self, node: &'a Node, path: String) -> NodeDe<'a> {
        NodeDe {
            node,
            path,
            sink: self.sink,
        }
    }

    fn report(&self, location: &Location, message: String) {
        self.sink.borrow_mut().push(Diagnostic {
            location: location.clone(),
            path: self.path.clone(),
            message,
        });
    }

    fn mismatch(&self, expected: &str) {
        self.report(
            &self.node.location,
            format!("expected {expected}, found {}", describe(self.node)),
        );
    }

    /// The text of a plain scalar (numbers and booleans must not be quoted).
    fn plain(&self) -> Option<&'a str> {
        match &self.node.kind {
            NodeKind::Scalar { text, plain: true } => Some(text),
            _ => None,
        }
    }

    fn attach(&self, mut e: DeError) -> DeError {
        if e.path.is_none() {
            e.path = Some(self.path.clone());
            e.location = Some(self.node.location.clone());
        }
        e
    }

    fn int<T: TryFrom<i128> + Default>(&self, what: &str) -> T {
        match self
            .plain()
            .and_then(parse_int)
            .and_then(|v| T::try_from(v).ok())
        {
            Some(v) => v,
            None => {
                self.mismatch(what);
                T::default()
            }
        }
    }
}

fn parse_int(t: &str) -> Option<i128> {
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let v = if let Some(h) = digits.strip_prefix("0x") {
        i128::from_str_radix(h, 16).ok()?
    } else if let Some(o) = digits.strip_prefix("0o") {
        i128::from_str_radix(o, 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()?
    } else {
        return None;
    };
    Some(if neg { -v } else { v })
}

fn parse_float(t: &str) -> Option<f64> {
    match t {
        ".inf" | "+.inf" | ".Inf" | "+.Inf" | ".INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    if let Some(i) = parse_int(t) {
        return Some(i as f64);
    }
    // Rust's parser accepts "inf"/"nan"/"infinity", which YAML does not.
    if t.bytes()
        .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E')
    {
        return None;
    }
    t.parse().ok()
}

fn parse_bool(t: &str) -> Option<bool> {
    match t {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

macro_rules! de_int {
    ($method:ident, $visit:ident, $ty:ty, $what:expr) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let v: $ty = self.int($what);
            visitor.$visit(v)
        }
    };
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            NodeKind::Scalar { text, plain: true } => {
                if is_null_text(text) {
                    visitor.visit_unit()
                } else if let Some(b) = parse_bool(text) {
                    visitor.visit_bool(b)
                } else if let Some(i) = parse_int(text).and_then(|i| i64::try_from(i).ok()) {
                    visitor.visit_i64(i)
                } else if let Some(f) = parse_float(text) {
                    visitor.visit_f64(f)
                } else {
                    visitor.visit_str(text)
                }
            }
            NodeKind::Scalar { text, plain: false } => visitor.visit_str(text),
            NodeKind::Seq(_) => self.deserialize_seq(visitor),
            NodeKind::Map(_) => self.deserialize_map(visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.plain().and_then(parse_bool) {
            Some(b) => visitor.visit_bool(b),
            None => {
                self.mismatch("true or false");
                visitor.visit_bool(false)
            }
        }
    }

    de_int!(
        deserialize_i8,
        visit_i8,
        i8,
        "a whole number from -128 to 127"
    );
    de_int!(
        deserialize_i16,
        visit_i16,
        i16,
        "a whole number from -32768 to 32767"
    );
    de_int!(
        deserialize_i32,
        visit_i32,
        i32,
        "a whole number from -2147483648 to 2147483647"
    );
    de_int!(deserialize_i64, visit_i64, i64, "a whole number");
    de_int!(deserialize_u8, visit_u8, u8, "a whole number from 0 to 255");
    de_int!(
        deserialize_u16,
        visit_u16,
        u16,
        "a whole number from 0 to 65535"
    );
    de_int!(
        deserialize_u32,
        visit_u32,
        u32,
        "a whole number from 0 to 4294967295"
    );
    de_int!(
        deserialize_u64,
        visit_u64,
        u64,
        "a whole number of 0 or more"
    );

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.plain().and_then(parse_float) {
            Some(f) => visitor.visit_f64(f),
            None => {
                self.mismatch("a number");
                visitor.visit_f64(0.0)
            }
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            NodeKind::Scalar { text, plain } if !(*plain && is_null_text(text)) => {
                visitor.visit_str(text)
            }
            _ => {
                self.mismatch("a text value");
                visitor.visit_str("")
            }
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if !self.node.is_null() {
            self.mismatch("nothing (null)");
        }
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        static EMPTY: Vec<Node> = Vec::new();
        let items = match &self.node.kind {
            NodeKind::Seq(items) => items,
            _ if self.node.is_null() => &EMPTY,
            _ => {
                self.mismatch("a list");
                &EMPTY
            }
        };
        let access = SeqAccess {
            items: items.iter().enumerate(),
            de: &self,
        };
        visitor.visit_seq(access).map_err(|e| self.attach(e))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.map_with_fields(None, visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.map_with_fields(Some(fields), visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let expected = || variants.join(", ");
        let (name, value): (&str, Option<&Node>) = match &self.node.kind {
            NodeKind::Scalar { text, .. } if !self.node.is_null() => (text, None),
            NodeKind::Map(entries) if entries.len() == 1 => {
                (entries[0].0.key_text(), Some(&entries[0].1))
            }
            _ => {
                self.mismatch(&format!("one of: {}", expected()));
                ("", None)
            }
        };
        let name = if variants.contains(&name) {
            name
        } else {
            if !name.is_empty() {
                self.report(
                    &self.node.location,
                    format!("unknown value `{name}`; expected one of: {}", expected()),
                );
            }
            variants.first().copied().unwrap_or("")
        };
        let access = EnumAccess {
            name,
            value,
            de: &self,
        };
        visitor.visit_enum(access).map_err(|e| self.attach(e))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

impl<'a> NodeDe<'a> {
    fn map_with_fields<'de, V: Visitor<'de>>(
        self,
        fields: Option<&'static [&'static str]>,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        static EMPTY: Vec<(Node, Node)> = Vec::new();
        let entries = match &self.node.kind {
            NodeKind::Map(entries) => entries,
            _ if self.node.is_null() => &EMPTY,
            _ => {
                self.mismatch("a mapping of keys to values");
                &EMPTY
            }
        };
        let mut kept = Vec::with_capacity(entries.len());
        for entry in entries {
            let key = entry.0.key_text();
            match fields {
                Some(fields) if !fields.contains(&key) => {
                    let kp = join_key(&self.path, key);
                    let hint = closest(key, fields)
                        .map(|c| format!("did you mean `{c}`? "))
                        .unwrap_or_default();
                    self.sink.borrow_mut().push(Diagnostic {
                        location: entry.0.location.clone(),
                        path: kp,
                        message: format!(
                            "unknown key `{key}`; {hint}expected one of: {}",
                            fields.join(", ")
                        ),
                    });
                }
                _ => kept.push(entry),
            }
        }
        let access = MapAccess {
            entries: kept.into_iter(),
            pending: None,
            de: &self,
        };
        visitor.visit_map(access).map_err(|e| self.attach(e))
    }
}

/// The candidate with the smallest edit distance, if it is close enough to be a typo.
fn closest<'f>(key: &str, candidates: &[&'f str]) -> Option<&'f str> {
    candidates
        .iter()
        .map(|c| (edit_distance(key, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

struct SeqAccess<'a, 'b, I> {
    items: I,
    de: &'b NodeDe<'a>,
}

impl<'de, 'a, I: Iterator<Item = (usize, &'a Node)>> de::SeqAccess<'de> for SeqAccess<'a, '_, I> {
    type Error = DeError;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            None => Ok(None),
            Some((i, node)) => {
                let child = self.de.child(node, join_index(&self.de.path, i));
                seed.deserialize(child).map(Some)
            }
        }
    }
}

struct MapAccess<'a, 'b, I> {
    entries: I,
    pending: Option<(&'a Node, &'a Node)>,
    de: &'b NodeDe<'a>,
}

impl<'de, 'a, I: Iterator<Item = &'a (Node, Node)>> de::MapAccess<'de> for MapAccess<'a, '_, I> {
    type Error = DeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.entries.next() {
            None => Ok(None),
            Some((key, value)) => {
                self.pending = Some((key, value));
                let child = self.de.child(key, join_key(&self.de.path, key.key_text()));
                seed.deserialize(child).map(Some)
            }
        }
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DeError> {
        match self.pending.take() {
            Some((key, value)) => seed.deserialize(
                self.de
                    .child(value, join_key(&self.de.path, key.key_text())),
            ),
            None => Err(de::Error::custom(
                "internal: value requested before its key",
            )),
        }
    }
}

struct EnumAccess<'a, 'b> {
    name: &'b str,
    value: Option<&'a Node>,
    de: &'b NodeDe<'a>,
}

impl<'de, 'a, 'b> de::EnumAccess<'de> for EnumAccess<'a, 'b> {
    type Error = DeError;
    type Variant = VariantAccess<'a, 'b>;

    fn variant_seed<V: de::DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), DeError> {
        let name: de::value::StrDeserializer<'_, DeError> = self.name.into_deserializer();
        let v = seed.deserialize(name)?;
        Ok((
            v,
            VariantAccess {
                value: self.value,
                de: self.de,
                name: self.name,
            },
        ))
    }
}

struct VariantAccess<'a, 'b> {
    value: Option<&'a Node>,
    name: &'b str,
    de: &'b NodeDe<'a>,
}

impl<'a> VariantAccess<'a, '_> {
    fn inner(&self) -> NodeDe<'a> {
        static NULL: Node = Node {
            kind: NodeKind::Scalar {
                text: String::new(),
                plain: true,
            },
            location: Location::File { line: 0, column: 0 },
        };
        match self.value {
            Some(v) => self.de.child(v, join_key(&self.de.path, self.name)),
            None => NodeDe {
                node: &NULL,
                path: self.de.path.clone(),
                sink: self.de.sink,
            },
        }
    }
}

impl<'de> de::VariantAccess<'de> for VariantAccess<'_, '_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        if let Some(v) = self.value
            && !v.is_null()
        {
            self.de
                .report(&v.location, format!("`{}` takes no value", self.name));
        }
        Ok(())
    }

    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, DeError> {
        seed.deserialize(self.inner())
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(self.inner(), visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.inner().map_with_fields(Some(fields), visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Inner {
        port: u16,
        name: String,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Doc {
        inner: Inner,
        items: Vec<Inner>,
        ratio: f64,
        on: bool,
    }

    fn run(text: &str) -> (Option<Doc>, Vec<String>) {
        let root = parse(text).map_err(|d| d.iter().map(|d| d.render("f")).collect::<Vec<_>>());
        let root = match root {
            Ok(r) => r,
            Err(e) => return (None, e),
        };
        let mut diags = Vec::new();
        let doc = decode::<Doc>(&root, &mut diags);
        (doc, diags.iter().map(|d| d.render("f")).collect())
    }

    #[test]
    fn collects_every_error_with_its_location() {
        let (_, errs) = run(
            "inner:\n  port: 99999\n  nmae: x\nitems:\n  - port: abc\n  - name: [1]\nratio: \"1.5\"\non: yes\n",
        );
        assert_eq!(
            errs,
            vec![
                "f:2:9: inner.port: expected a whole number from 0 to 65535, found `99999`",
                "f:3:3: inner.nmae: unknown key `nmae`; did you mean `name`? expected one of: port, name",
                "f:5:11: items[0].port: expected a whole number from 0 to 65535, found `abc`",
                "f:6:11: items[1].name: expected a text value, found a list",
                "f:7:8: ratio: expected a number, found the quoted text \"1.5\"",
                "f:8:5: on: expected true or false, found `yes`",
            ]
        );
    }

    #[test]
    fn plain_numbers_are_text_when_text_is_wanted() {
        let (doc, errs) = run("inner:\n  name: 0012\n  port: 0x10\n");
        assert!(errs.is_empty(), "{errs:?}");
        let doc = doc.unwrap();
        assert_eq!(doc.inner.name, "0012");
        assert_eq!(doc.inner.port, 16);
    }

    #[test]
    fn syntax_error_has_a_location() {
        let (_, errs) = run("inner:\n  port: [1, 2\nitems: x\n");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("f:3:"), "{errs:?}");
        assert!(errs[0].contains("YAML syntax error"), "{errs:?}");
    }

    #[test]
    fn duplicate_keys_are_reported() {
        let (_, errs) = run("ratio: 1\non: true\nratio: 2\n");
        assert_eq!(
            errs,
            vec!["f:3:1: ratio: duplicate key `ratio` (first set on line 1)"]
        );
    }

    #[test]
    fn anchors_and_empty_documents() {
        let (doc, errs) = run("inner: &i\n  port: 7\nitems: [*i, *i]\n");
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(doc.unwrap().items.len(), 2);
        let (doc, errs) = run("");
        assert!(errs.is_empty());
        assert_eq!(doc.unwrap().inner.port, 0);
    }

    #[test]
    fn locate_falls_back_to_the_nearest_ancestor() {
        let root = parse("a:\n  b:\n    - x: 1\n    - y: 2\n").unwrap();
        assert_eq!(
            root.locate("a.b[1].y"),
            Location::File {
                line: 4,
                column: 10
            }
        );
        assert_eq!(
            root.locate("a.b[1].missing"),
            Location::File { line: 4, column: 7 }
        );
        assert_eq!(
            root.locate("a.nothing.deeper"),
            Location::File { line: 2, column: 3 }
        );
    }

    #[test]
    fn set_scalar_creates_and_replaces() {
        let mut root = parse("inner:\n  port: 1\n").unwrap();
        assert!(root.set_scalar(
            &["inner", "port"],
            "2",
            Location::Env("OEE_INNER__PORT".into())
        ));
        assert!(root.set_scalar(
            &["inner", "name"],
            "n",
            Location::Env("OEE_INNER__NAME".into())
        ));
        let mut diags = Vec::new();
        let doc: Doc = decode(&root, &mut diags).unwrap();
        assert_eq!((doc.inner.port, doc.inner.name.as_str()), (2, "n"));
        assert!(!root.set_scalar(&["inner", "port", "x"], "n", Location::Env("E".into())));
    }

    #[test]
    fn path_quoting() {
        assert_eq!(join_key("a", "SITE01-LINE1-M1"), "a.SITE01-LINE1-M1");
        assert_eq!(join_key("a", "x.y"), "a[\"x.y\"]");
        let root = parse("a:\n  \"x.y\": 1\n").unwrap();
        assert_eq!(
            root.locate("a[\"x.y\"]"),
            Location::File {
                line: 2,
                column: 10
            }
        );
    }
}
