//! wasmhub's domain vocabulary, shared by the store, the hub and the spawners.
//!
//! Everything here is pure: no IO, no async, no serde, no clock and no random source. Functions that need
//! randomness (new tokens, salts) take the random bytes as arguments, so the caller owns the entropy and tests
//! are deterministic. JSON belongs to the hub, persistence to the store.

pub mod names;
pub mod scopes;
pub mod spawn_state;
pub mod token;

pub use names::{GroupName, NameError, RoleName, ServerName, ServiceName, UserName};
pub use scopes::{DefaultRole, Scope, ScopeError, ScopeFilter};
pub use spawn_state::{IllegalTransition, SpawnState};
pub use token::{PlainToken, TokenError, TokenHash, TokenId, TokenKind};
