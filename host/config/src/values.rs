//! Value types with JupyterHub's spelling rules: byte sizes like `2G` and commands given as a string or a list.

use saphyr::{MarkedYaml, Scalar, YamlData};

use crate::error::ErrorKind;
use crate::schema::{Ctx, FromYaml};

/// A number of bytes, written as JupyterHub's `ByteSpecification` (`512M`, `2G`, `1.5T`, or an integer);
/// the suffixes are powers of 1024. Kubernetes' `Ki`/`Mi`/`Gi`/`Ti` are accepted with the same meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// Parses `text` the way JupyterHub does; `None` if it is not a byte size.
    pub fn parse(text: &str) -> Option<ByteSize> {
        let text = text.trim();
        let digits_end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
        let (number, suffix) = text.split_at(digits_end);
        let multiplier: u64 = match suffix {
            "" => 1,
            "K" | "Ki" => 1 << 10,
            "M" | "Mi" => 1 << 20,
            "G" | "Gi" => 1 << 30,
            "T" | "Ti" => 1 << 40,
            _ => return None,
        };
        let number: f64 = number.parse().ok()?;
        let bytes = number * multiplier as f64;
        (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(ByteSize(bytes as u64))
    }
}

impl FromYaml for ByteSize {
    fn type_name() -> String {
        "byte size (`512M`, `2G`, or bytes)".to_owned()
    }
    fn from_yaml(node: &MarkedYaml<'_>, path: &str, ctx: &mut Ctx) -> Option<Self> {
        let parsed = match &node.data {
            YamlData::Value(Scalar::Integer(value)) => u64::try_from(*value).ok().map(ByteSize),
            YamlData::Value(Scalar::String(text)) => ByteSize::parse(text),
            _ => None,
        };
        if parsed.is_none() {
            let message = "expected a byte size: a number with an optional K, M, G or T suffix (powers of 1024)";
            ctx.error_at(node, path, ErrorKind::Invalid(message.to_owned()));
        }
        parsed
    }
    fn render(&self) -> String {
        let units = [(1u64 << 40, "T"), (1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")];
        for (size, suffix) in units {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return format!("{}{suffix}", self.0 / size);
            }
        }
        self.0.to_string()
    }
    fn json_schema() -> serde_json::Value {
        serde_json::json!({ "type": ["string", "integer"] })
    }
}

/// A command line: `jupyterhub-singleuser` or `["jupyterhub-singleuser", "--allow-root"]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Command(pub Vec<String>);

impl Command {
    pub fn new(args: &[&str]) -> Command {
        Command(args.iter().map(|arg| (*arg).to_owned()).collect())
    }

    pub fn args(&self) -> &[String] {
        &self.0
    }
}

impl FromYaml for Command {
    fn type_name() -> String {
        "command (string or list of strings)".to_owned()
    }
    fn from_yaml(node: &MarkedYaml<'_>, path: &str, ctx: &mut Ctx) -> Option<Self> {
        match &node.data {
            YamlData::Value(Scalar::String(text)) => Some(Command(vec![text.to_string()])),
            YamlData::Sequence(_) => Vec::<String>::from_yaml(node, path, ctx).map(Command),
            _ => {
                let kind = ErrorKind::Invalid("expected a command: a string or a list of strings".to_owned());
                ctx.error_at(node, path, kind);
                None
            }
        }
    }
    fn render(&self) -> String {
        self.0.render()
    }
    fn json_schema() -> serde_json::Value {
        serde_json::json!({ "type": ["string", "array"], "items": { "type": "string" } })
    }
}

#[cfg(test)]
mod tests {
    use super::ByteSize;

    #[test]
    fn byte_sizes_use_powers_of_1024() {
        assert_eq!(ByteSize::parse("1G"), Some(ByteSize(1 << 30)));
        assert_eq!(ByteSize::parse("256M"), Some(ByteSize(256 << 20)));
        assert_eq!(ByteSize::parse("1.5G"), Some(ByteSize(3 << 29)));
        assert_eq!(ByteSize::parse("2Gi"), Some(ByteSize(2 << 30)));
        assert_eq!(ByteSize::parse("1024"), Some(ByteSize(1024)));
        assert_eq!(ByteSize::parse("2GB"), None);
        assert_eq!(ByteSize::parse("lots"), None);
    }
}

/// A value the Helm chart reads and the hub does not (e.g. `hub.resources`, `prePuller`), kept so that a
/// site's existing z2jh values load; it is not checked beyond being YAML.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChartOnly(pub Option<serde_json::Value>);

impl FromYaml for ChartOnly {
    fn type_name() -> String {
        "any (read by the Helm chart only)".to_owned()
    }
    fn from_yaml(node: &MarkedYaml<'_>, path: &str, ctx: &mut Ctx) -> Option<Self> {
        serde_json::Value::from_yaml(node, path, ctx).map(|value| ChartOnly(Some(value)))
    }
    fn render(&self) -> String {
        "—".to_owned()
    }
}

/// Why Python code is refused, here and by the chart (`deploy/helm/wasmhub/templates/_keys.tpl` says the same).
pub(crate) const PYTHON_CODE_REFUSED: &str = "wasmhub does not run Python configuration; express this as a policy \
                                              plugin (wasmhub.policies.dir) or as settings in this file";

/// Python code, which z2jh runs inside JupyterHub's config file; wasmhub refuses it with a pointer to policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PythonCode;

impl FromYaml for PythonCode {
    fn type_name() -> String {
        "not supported".to_owned()
    }
    fn from_yaml(node: &MarkedYaml<'_>, path: &str, ctx: &mut Ctx) -> Option<Self> {
        let empty = match &node.data {
            YamlData::Value(Scalar::Null) => true,
            YamlData::Mapping(mapping) => mapping.is_empty(),
            _ => false,
        };
        if !empty {
            let message = PYTHON_CODE_REFUSED;
            ctx.error_at(node, path, ErrorKind::Unsupported(message.to_owned()));
        }
        Some(PythonCode)
    }
    fn render(&self) -> String {
        "{}".to_owned()
    }
    /// Any shape: the chart refuses Python code itself, with the same pointer to policies as `wasmhub config check`.
    fn json_schema() -> serde_json::Value {
        serde_json::json!({})
    }
}
