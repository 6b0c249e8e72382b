//! The schema walk: turns a position-marked YAML tree into typed config, collecting every error on the way.
//!
//! Each config type implements [`FromYaml`]. Sections are declared once with [`section!`], which writes the
//! struct, its defaults, its walk and its documentation rows from the same list of fields; closed sets of
//! strings are declared with [`yaml_enum!`]. A value that fails to convert keeps its default and the walk goes
//! on, so one run reports every problem in the file.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use saphyr::{MarkedYaml, Scalar, YamlData};

use crate::error::{ConfigError, ErrorKind, Position};
use crate::suggest::nearest;

/// State of one walk: the file name for errors, the errors so far, and where each visited key path starts.
pub(crate) struct Ctx {
    pub(crate) file: String,
    pub(crate) errors: Vec<ConfigError>,
    /// Position of every value that was visited, for checks that run after the walk.
    pub(crate) positions: HashMap<String, Position>,
}

impl Ctx {
    pub(crate) fn new(file: &str) -> Self {
        Ctx { file: file.to_owned(), errors: Vec::new(), positions: HashMap::new() }
    }

    pub(crate) fn error_at(&mut self, node: &MarkedYaml<'_>, path: &str, kind: ErrorKind) {
        let position = Some(position_of(node));
        self.errors.push(ConfigError { file: self.file.clone(), position, path: path.to_owned(), kind });
    }

    /// An error for a key path, placed at that key's value, or at its nearest ancestor in the file when the
    /// key itself is not there (a missing required key).
    pub(crate) fn error_for(&mut self, path: &str, kind: ErrorKind) {
        let mut lookup = path;
        let position = loop {
            if let Some(position) = self.positions.get(lookup) {
                break Some(*position);
            }
            match lookup.rfind(['.', '[']) {
                Some(end) => lookup = &lookup[..end],
                None => break None,
            }
        };
        self.errors.push(ConfigError { file: self.file.clone(), position, path: path.to_owned(), kind });
    }

    fn wrong_type(&mut self, node: &MarkedYaml<'_>, path: &str, expected: impl Into<String>) {
        let kind = ErrorKind::WrongType { expected: expected.into(), found: describe(node).to_owned() };
        self.error_at(node, path, kind);
    }
}

pub(crate) fn position_of(node: &MarkedYaml<'_>) -> Position {
    Position { line: node.span.start.line(), column: node.span.start.col() + 1 }
}

/// The YAML type of a node, as named in errors.
fn describe(node: &MarkedYaml<'_>) -> &'static str {
    match &node.data {
        YamlData::Value(Scalar::Null) => "null",
        YamlData::Value(Scalar::Boolean(_)) => "a boolean",
        YamlData::Value(Scalar::Integer(_)) => "an integer",
        YamlData::Value(Scalar::FloatingPoint(_)) => "a number",
        YamlData::Value(Scalar::String(_)) | YamlData::Representation(..) => "a string",
        YamlData::Sequence(_) => "a list",
        YamlData::Mapping(_) => "a mapping",
        YamlData::Tagged(_, inner) => describe(inner),
        YamlData::Alias(_) | YamlData::BadValue => "an unreadable value",
    }
}

/// Looks through explicit tags (`!!str x`) to the node they wrap.
fn untagged<'a, 'input>(node: &'a MarkedYaml<'input>) -> &'a MarkedYaml<'input> {
    match &node.data {
        YamlData::Tagged(_, inner) => untagged(inner),
        _ => node,
    }
}

fn scalar<'a>(node: &'a MarkedYaml<'_>) -> Option<&'a Scalar<'a>> {
    match &untagged(node).data {
        YamlData::Value(value) => Some(value),
        _ => None,
    }
}

pub(crate) fn is_null(node: &MarkedYaml<'_>) -> bool {
    matches!(scalar(node), Some(Scalar::Null))
}

pub(crate) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") }
}

/// One row of the generated reference: a key with its type, default and doc.
#[derive(Debug, Clone)]
pub(crate) struct DocEntry {
    pub(crate) key: String,
    pub(crate) ty: String,
    pub(crate) default: String,
    pub(crate) doc: String,
}

/// A config type that can be read from a marked YAML node.
pub(crate) trait FromYaml: Sized {
    /// The type as written in errors and in the reference docs.
    fn type_name() -> String;

    /// Converts `node`, or records errors in `ctx` and returns `None` (the caller then keeps the default).
    fn from_yaml(node: &MarkedYaml<'_>, path: &str, ctx: &mut Ctx) -> Option<Self>;

    /// The value as YAML text, for the default column of the docs.
    fn render(&self) -> String;

    /// Adds documentation rows for the keys below this type (sections and lists of sections only).
    fn document(_prefix: &str, _out: &mut Vec<DocEntry>) {}

    /// This type as JSON Schema (draft 7), for the Helm chart's `values.schema.json`; any value by default.
    fn json_schema() -> serde_json::Value {
        serde_json::json!({})
    }
}

/// Entries of a mapping, or `None` after a type error; a null section is an empty one (z2jh writes
/// `extraVolumes: null` and the like).
pub(crate) fn mapping_entries<'a, 'input>(
    node: &'a MarkedYaml<'input>,
    path: &str,
    ctx: &mut Ctx,
) -> Option<Vec<(&'a MarkedYaml<'input>, &'a MarkedYaml<'input>)>> {
    match &untagged(node).data {
        YamlData::Mapping(mapping) => Some(mapping.iter().collect()),
        YamlData::Value(Scalar::Null) => Some(Vec::new()),
        _ => {
            ctx.wrong_type(node, path, "a mapping");
            None
        }
    }
}

/// A mapping key as a string; other keys are an error.
pub(crate) fn key_str<'a>(key: &'a MarkedYaml<'_>, path: &str, ctx: &mut Ctx) -> Option<&'a str> {
    match scalar(key) {
        Some(Scalar::String(text)) => Some(text.as_ref()),
        _ => {
            let kind = ErrorKind::NonStringKey { found: describe(key).to_owned() };
            ctx.error_at(key, path, kind);
            None
        }
    }
}

pub(crate) fn unknown_key(key_node: &MarkedYaml<'_>, path: &str, key: &str, known: &[&str], ctx: &mut Ctx) {
    let kind = ErrorKind::UnknownKey { nearest: nearest(key, known.iter().copied()).map(str::to_owned) };
    ctx.error_at(key_node, path, kind);
}

/// Declares a config section once: the struct with its field docs, its defaults, its YAML keys, the walk that
/// reads it and the rows of the generated reference.
///
/// ```ignore
/// section! {
///     /// The section's doc.
///     pub struct Cull {
///         /// A field's doc, also the reference text.
///         timeout("timeout"): u64 = 3600,
///     }
/// }
/// ```
/// Write `pub struct Name [standalone] {` to keep its keys out of every place that embeds it; the reference
/// then documents it once under its own heading.
macro_rules! section {
    (
        $(#[doc = $sdoc:literal])*
        pub struct $name:ident $([$standalone:ident])? {
            $(
                $(#[doc = $fdoc:literal])*
                $field:ident($key:literal): $ty:ty = $default:expr,
            )*
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $( $(#[doc = $fdoc])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $( $field: $default, )* }
            }
        }

        impl $name {
            /// The YAML keys of this section, in declaration order.
            #[allow(dead_code)]
            pub(crate) const KEYS: &'static [&'static str] = &[$($key),*];

            /// The reference rows of this section's keys under `prefix`.
            #[allow(dead_code)]
            pub(crate) fn document_keys(prefix: &str, out: &mut Vec<$crate::schema::DocEntry>) {
                let defaults = Self::default();
                $(
                    let key = $crate::schema::join(prefix, $key);
                    let doc_lines: &[&str] = &[$($fdoc),*];
                    out.push($crate::schema::DocEntry {
                        key: key.clone(),
                        ty: <$ty as $crate::schema::FromYaml>::type_name(),
                        default: $crate::schema::FromYaml::render(&defaults.$field),
                        doc: doc_lines.iter().map(|line| line.trim()).collect::<Vec<_>>().join(" "),
                    });
                    <$ty as $crate::schema::FromYaml>::document(&key, out);
                )*
            }
        }

        impl $crate::schema::FromYaml for $name {
            fn type_name() -> String {
                "mapping".to_owned()
            }

            fn from_yaml(node: &saphyr::MarkedYaml<'_>, path: &str, ctx: &mut $crate::schema::Ctx) -> Option<Self> {
                let entries = $crate::schema::mapping_entries(node, path, ctx)?;
                let mut value = Self::default();
                for (key_node, value_node) in entries {
                    let Some(key) = $crate::schema::key_str(key_node, path, ctx) else { continue };
                    let child = $crate::schema::join(path, key);
                    ctx.positions.insert(child.clone(), $crate::schema::position_of(value_node));
                    match key {
                        $(
                            $key => {
                                if let Some(parsed) = <$ty as $crate::schema::FromYaml>::from_yaml(value_node, &child, ctx) {
                                    value.$field = parsed;
                                }
                            }
                        )*
                        _ => $crate::schema::unknown_key(key_node, &child, key, Self::KEYS, ctx),
                    }
                }
                Some(value)
            }

            fn render(&self) -> String {
                String::new()
            }

            fn document(prefix: &str, out: &mut Vec<$crate::schema::DocEntry>) {
                $crate::schema::section!(@document $($standalone)? prefix, out);
            }

            /// Every key with its type and reference text; other keys are left to the chart's key check, which
            /// names the nearest one as `wasmhub config check` does. A null section is an empty one.
            fn json_schema() -> serde_json::Value {
                let mut properties = serde_json::Map::new();
                $(
                    let mut property = <$ty as $crate::schema::FromYaml>::json_schema();
                    let doc_lines: &[&str] = &[$($fdoc),*];
                    if let Some(object) = property.as_object_mut() {
                        let doc = doc_lines.iter().map(|line| line.trim()).collect::<Vec<_>>().join(" ");
                        object.insert("description".to_owned(), serde_json::Value::String(doc));
                    }
                    properties.insert($key.to_owned(), property);
                )*
                serde_json::json!({ "type": ["object", "null"], "properties": properties })
            }
        }
    };
    (@document standalone $prefix:ident, $out:ident) => {
        let _ = ($prefix, $out);
    };
    (@document $prefix:ident, $out:ident) => {
        Self::document_keys($prefix, $out);
    };
}
pub(crate) use section;

/// Declares a closed set of strings as an enum; each variant lists its spelling and any accepted aliases.
macro_rules! yaml_enum {
    (
        $(#[doc = $edoc:literal])*
        pub enum $name:ident {
            $( $(#[doc = $vdoc:literal])* $variant:ident = $text:literal $(| $alias:literal)*, )*
        }
    ) => {
        $(#[doc = $edoc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $( $(#[doc = $vdoc])* $variant, )*
        }

        impl $name {
            /// The spelling used in the config file.
            pub fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $text, )* }
            }
        }

        impl $crate::schema::FromYaml for $name {
            fn type_name() -> String {
                [$(concat!("`", $text, "`")),*].join(" | ")
            }

            fn from_yaml(node: &saphyr::MarkedYaml<'_>, path: &str, ctx: &mut $crate::schema::Ctx) -> Option<Self> {
                let text = <String as $crate::schema::FromYaml>::from_yaml(node, path, ctx)?;
                match text.as_str() {
                    $( $text $(| $alias)* => Some(Self::$variant), )*
                    _ => {
                        let known = [$($text),*];
                        let mut message = format!("expected one of {}, found `{text}`", known.join(", "));
                        if let Some(near) = $crate::suggest::nearest(&text, known.iter().copied()) {
                            message.push_str(&format!("; did you mean {near}?"));
                        }
                        ctx.error_at(node, path, $crate::error::ErrorKind::Invalid(message));
                        None
                    }
                }
            }

            fn render(&self) -> String {
                self.as_str().to_owned()
            }

            fn json_schema() -> serde_json::Value {
                serde_json::json!({ "enum": [$($text, $($alias,)*)*] })
            }
        }
    };
}
pub(crate) use yaml_enum;

// === impl FromYaml for plain types ===

impl FromYaml for bool {
    fn type_name() -> String {
        "boolean".to_owned()
    }
    fn from_yaml(node: &MarkedYaml<'_>, path: &str, ctx: &mut Ctx) -> Option<Self> {
        match scalar(node) {
            Some(Scalar::Boolean(value)) => Some(*value),
            _ => {
                ctx.wrong_type(node, path, "a boolean (true or false)");
                None
            }
        }
    }
    fn render(&self) -> String {
        self.to_string()
    }
    fn json_schema() -> serde_json::Value {
        serde_json::json!({ "type": "boolean" })
    }
}

macro_rules! integer {
    ($($ty:ty),*) => {$(
        impl FromYaml for $ty {
            fn type_name() -> String {
                if <$ty>::MIN == 0 { "non-negative integer".to_owned() } else { "integer".to_owned() }
            }
            fn from_yaml(node: &MarkedYaml<'_>, path: &str, ctx: &mut Ctx) -> Option<Self> {
                match scalar(node) {
                    Some(Scalar::Integer(value)) => match <$ty>::try_from(*value) {
                        Ok(value) => Some(value),
                        Err(_) => {
                            let message = if *value < 0 {
                                format!("{value} is negative; expected a {}", Self::type_name())
                            } else {
                                format!("{value} is too large (at most {})", <$ty>::MAX)
                            };
                            ctx.error_at(node, path, ErrorKind::Invalid(message));
                            None
                        }
                    },
                    _ => {
                        ctx.wrong_type(node, path, format!("a {}", Self::type_name()));
                        None
                    }
                }
            }
            fn render(&self) -> String {
                self.to_string()
            }
            fn json_schema() -> serde_json::Value {
                serde_json::json!({ "type": "integer", "minimum": <$ty>::MIN, "maximum": <$ty>::MAX })
            }
        }
    )*};
}
integer!(u16, u32, u64, i64);

impl FromYaml for f64 {
    fn type_name() -> String {
        "number".to_owned()
    }
    fn from_yaml(node: &MarkedYaml<'_>, path: &str, ctx: &mut Ctx) -> Option<Self> {
        match scalar(node) {
            Some(Scalar::FloatingPoint(value)) => Some(value.into_inner()),
            Some(Scalar::Integer(value)) => Some(*value as f64),
            _ => {
                ctx.wrong_type(node, path, "a number");
                None
            }
        }
    }
    fn render(&self) -> String {
        self.to_string()
    }
    fn json_schema() -> serde_json::Value {
        serde_json::json!({ "type": "number" })
    }
}

impl FromYaml for String {
    fn type_name() -> String {
        "string".to_owned()
    }
    fn from_yaml(node: &MarkedYaml<'_>, path: &str, ctx: &mut Ctx) -> Option<Self> {
        match scalar(node) {
            Some(Scalar::String(text)) => Some(text.to_string()),
            _ => {
                ctx.wrong_type(node, path, "a string");
                None
            }
        }
    }
    fn render(&self) -> String {
        // Quoted where YAML would read the bare text as something else.
        let ambiguous = matches!(self.as_str(), "" | "true" | "false" | "null" | "~") || self.parse::<f64>().is_ok();
        if ambiguous { format!("{self:?}") } else { self.clone() }
    }
    fn json_schema() -> serde_json::Value {
        serde_json::json!({ "type": "string" })
    }
}

impl FromYaml for PathBuf {
    fn type_name() -> String {
        "path".to_owned()
    }
    fn from_yaml(node: &MarkedYaml<'_>, path: &str, ctx: &mut Ctx) -> Option<Self> {
        String::from_yaml(node, path, ctx).map(PathBuf::from)
    }
    fn render(&self) -> String {
        self.display().to_string()
    }
    fn json_schema() -> serde_json::Value {
        serde_json::json!({ "type": "string" })
    }
}

impl<T: FromYaml> FromYaml for Option<T> {
    fn type_name() -> String {
        T::type_name()
    }
    fn from_yaml(node: &MarkedYaml<'_>, path: &str, ctx: &mut Ctx) -> Option<Self> {
        if is_null(node) { Some(None) } else { T::from_yaml(node, path, ctx).map(Some) }
    }
    fn render(&self) -> String {
        match self {
            Some(value) => value.render(),
            None => "null".to_owned(),
        }
    }
    fn document(prefix: &str, out: &mut Vec<DocEntry>) {
        T::document(prefix, out);
    }
    fn json_schema() -> serde_json::Value {
        nullable(T::json_schema())
    }
}

/// `schema` or null.
fn nullable(mut schema: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let any = schema.as_object().is_some_and(serde_json::Map::is_empty);
    match schema.get_mut("type") {
        Some(Value::String(kind)) => {
            let kind = Value::String(std::mem::take(kind));
            schema["type"] = Value::Array(vec![kind, Value::from("null")]);
            schema
        }
        Some(Value::Array(kinds)) => {
            if !kinds.iter().any(|kind| kind == "null") {
                kinds.push(Value::from("null"));
            }
            schema
        }
        // Any value already includes null; an enum says so explicitly.
        _ if any => schema,
        _ => serde_json::json!({ "anyOf": [schema, { "type": "null" }] }),
    }
}

impl<T: FromYaml> FromYaml for Vec<T> {
    fn type_name() -> String {
        format!("list of {}", T::type_name())
    }
    fn from_yaml(node: &MarkedYaml<'_>, path: &str, ctx: &mut Ctx) -> Option<Self> {
        let items = match &untagged(node).data {
            YamlData::Sequence(items) => items,
            YamlData::Value(Scalar::Null) => return Some(Vec::new()),
            _ => {
                ctx.wrong_type(node, path, format!("a {}", Self::type_name()));
                return None;
            }
        };
        let mut values = Vec::with_capacity(items.len());
        let mut complete = true;
        for (index, item) in items.iter().enumerate() {
            let child = format!("{path}[{index}]");
            ctx.positions.insert(child.clone(), position_of(item));
            match T::from_yaml(item, &child, ctx) {
                Some(value) => values.push(value),
                None => complete = false,
            }
        }
        complete.then_some(values)
    }
    fn render(&self) -> String {
        let items: Vec<String> = self.iter().map(FromYaml::render).collect();
        format!("[{}]", items.join(", "))
    }
    fn document(prefix: &str, out: &mut Vec<DocEntry>) {
        T::document(&format!("{prefix}[]"), out);
    }
    fn json_schema() -> serde_json::Value {
        serde_json::json!({ "type": ["array", "null"], "items": T::json_schema() })
    }
}

impl<T: FromYaml> FromYaml for BTreeMap<String, T> {
    fn type_name() -> String {
        format!("mapping of string to {}", T::type_name())
    }
    fn from_yaml(node: &MarkedYaml<'_>, path: &str, ctx: &mut Ctx) -> Option<Self> {
        OrderedMap::<T>::from_yaml(node, path, ctx).map(|map| map.0.into_iter().collect())
    }
    fn render(&self) -> String {
        let entries: Vec<String> = self.iter().map(|(key, value)| format!("{key}: {}", value.render())).collect();
        format!("{{{}}}", entries.join(", "))
    }
    fn document(prefix: &str, out: &mut Vec<DocEntry>) {
        T::document(&format!("{prefix}.<name>"), out);
    }
    fn json_schema() -> serde_json::Value {
        serde_json::json!({ "type": ["object", "null"], "additionalProperties": T::json_schema() })
    }
}

/// A mapping whose order matters (profile option choices: the first one is the default when none says so).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrderedMap<T>(pub Vec<(String, T)>);

impl<T> OrderedMap<T> {
    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&T> {
        self.0.iter().find(|(name, _)| name == key).map(|(_, value)| value)
    }

    /// The keys in file order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(name, _)| name.as_str())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T: FromYaml> FromYaml for OrderedMap<T> {
    fn type_name() -> String {
        format!("mapping of name to {}", T::type_name())
    }
    fn from_yaml(node: &MarkedYaml<'_>, path: &str, ctx: &mut Ctx) -> Option<Self> {
        let entries = mapping_entries(node, path, ctx)?;
        let mut values = Vec::with_capacity(entries.len());
        let mut complete = true;
        for (key_node, value_node) in entries {
            let Some(key) = key_str(key_node, path, ctx) else {
                complete = false;
                continue;
            };
            let child = join(path, key);
            ctx.positions.insert(child.clone(), position_of(value_node));
            match T::from_yaml(value_node, &child, ctx) {
                Some(value) => values.push((key.to_owned(), value)),
                None => complete = false,
            }
        }
        complete.then_some(OrderedMap(values))
    }
    fn render(&self) -> String {
        let entries: Vec<String> = self.0.iter().map(|(key, value)| format!("{key}: {}", value.render())).collect();
        format!("{{{}}}", entries.join(", "))
    }
    fn document(prefix: &str, out: &mut Vec<DocEntry>) {
        T::document(&format!("{prefix}.<name>"), out);
    }
    fn json_schema() -> serde_json::Value {
        serde_json::json!({ "type": ["object", "null"], "additionalProperties": T::json_schema() })
    }
}

/// Any YAML, kept as JSON: Kubernetes objects (volumes, tolerations, affinities) that are passed on verbatim.
impl FromYaml for serde_json::Value {
    fn type_name() -> String {
        "any (Kubernetes object, passed on as is)".to_owned()
    }
    fn from_yaml(node: &MarkedYaml<'_>, path: &str, ctx: &mut Ctx) -> Option<Self> {
        use serde_json::Value;
        let node = untagged(node);
        Some(match &node.data {
            YamlData::Value(Scalar::Null) => Value::Null,
            YamlData::Value(Scalar::Boolean(value)) => Value::Bool(*value),
            YamlData::Value(Scalar::Integer(value)) => Value::from(*value),
            YamlData::Value(Scalar::FloatingPoint(value)) => Value::from(value.into_inner()),
            YamlData::Value(Scalar::String(text)) => Value::String(text.to_string()),
            YamlData::Sequence(items) => {
                let mut values = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    values.push(Value::from_yaml(item, &format!("{path}[{index}]"), ctx)?);
                }
                Value::Array(values)
            }
            YamlData::Mapping(_) => Value::Object(serde_json::Map::from_yaml(node, path, ctx)?),
            _ => {
                ctx.wrong_type(node, path, "a plain YAML value");
                return None;
            }
        })
    }
    fn render(&self) -> String {
        self.to_string()
    }
}

/// A mapping of any YAML, kept as a JSON object (security contexts, extra pod config).
impl FromYaml for serde_json::Map<String, serde_json::Value> {
    fn type_name() -> String {
        "mapping (Kubernetes fields, passed on as is)".to_owned()
    }
    fn from_yaml(node: &MarkedYaml<'_>, path: &str, ctx: &mut Ctx) -> Option<Self> {
        let entries = mapping_entries(node, path, ctx)?;
        let mut map = serde_json::Map::new();
        for (key_node, value_node) in entries {
            let key = key_str(key_node, path, ctx)?;
            let value = serde_json::Value::from_yaml(value_node, &join(path, key), ctx)?;
            map.insert(key.to_owned(), value);
        }
        Some(map)
    }
    fn render(&self) -> String {
        serde_json::Value::Object(self.clone()).to_string()
    }
    fn json_schema() -> serde_json::Value {
        serde_json::json!({ "type": ["object", "null"] })
    }
}
