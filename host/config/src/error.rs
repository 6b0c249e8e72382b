//! One problem found in a config file, with where it is and what is wrong.

use std::fmt;

/// A problem in the config, located by file, line, column and dotted key path.
///
/// `Display` gives one line in the compiler's style, e.g.
/// `wasmhub.yaml:12:5: hub.config.Authenticator.admin_user: unknown key; did you mean admin_users?`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file as it was named to the loader.
    pub file: String,
    /// Where the problem is, 1-based; `None` for problems that have no place in the file (I/O, environment).
    pub position: Option<Position>,
    /// Dotted key path with list indices, e.g. `singleuser.profileList[1].kubespawner_override.cpu_limit`; empty
    /// for the document itself.
    pub path: String,
    /// What is wrong.
    pub kind: ErrorKind,
}

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// What is wrong with a value or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Io(String),
    /// The text is not valid YAML.
    #[error("YAML syntax error: {0}")]
    Syntax(String),
    /// A key that the schema does not know, with the nearest known key if one is close.
    #[error("unknown key{}", suggestion(.nearest))]
    UnknownKey { nearest: Option<String> },
    /// A mapping key that is not a string.
    #[error("keys must be strings, found {found}")]
    NonStringKey { found: String },
    /// A value of the wrong YAML type.
    #[error("expected {expected}, found {found}")]
    WrongType { expected: String, found: String },
    /// A value of the right type that is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// A setting that wasmhub recognises but will not honour, with what to do instead.
    #[error("{0}")]
    Unsupported(String),
}

fn suggestion(nearest: &Option<String>) -> String {
    match nearest {
        Some(key) => format!("; did you mean {key}?"),
        None => String::new(),
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(Position { line, column }) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.kind)
    }
}
