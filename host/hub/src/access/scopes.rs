//! JupyterHub's scope evaluation: roles and metascopes expanded into a set of scopes with filters, token scopes
//! intersected with their owner's, and the check every route makes (`scopes.py needs_scope`).
//!
//! `wasmhub_model::scopes` is the vocabulary; this module is the evaluation, because it needs the owner of a token
//! and group memberships, which only the hub knows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use wasmhub_model::scopes::implied_scopes;
use wasmhub_model::{Scope, ScopeFilter};

/// The scopes `self` stands for, each filtered to the user (`scopes._expand_self_scope`).
const SELF_SCOPES: &[&str] = &[
    "read:users",
    "read:users:name",
    "read:users:groups",
    "users:shares",
    "read:users:shares",
    "read:shares",
    "users:activity",
    "read:users:activity",
    "servers",
    "delete:servers",
    "read:servers",
    "tokens",
    "read:tokens",
    "access:servers",
];

/// A resolved filter: bare `!user`/`!server`/`!service` never survive expansion.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Filter {
    User(String),
    Server { user: String, server: String },
    Group(String),
    Service(String),
}

/// How far one scope name reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Grant {
    All,
    Only(BTreeSet<Filter>),
}

/// Who a token or a role set belongs to, for resolving `self`, `inherit` and bare filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    User(String),
    Service(String),
}

/// An expanded scope set: every implied scope is present with its filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ScopeSet(BTreeMap<String, Grant>);

/// What a request is about, for matching filters. A group matches `!group=` filters on its own name, a service
/// `!service=` filters.
#[derive(Debug, Clone)]
pub(crate) enum Resource<'a> {
    User { name: &'a str, groups: &'a [String] },
    Server { user: &'a str, server: &'a str, groups: &'a [String] },
    Group { name: &'a str },
    Service { name: &'a str },
}

/// Why a check failed; the edge turns these into JupyterHub's 403 and 404.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Denial {
    /// None of the scopes is held at all.
    NotHeld,
    /// A scope is held, but its filters exclude this resource (or it does not exist).
    Filtered,
}

impl ScopeSet {
    /// Expands raw scope strings (as in roles and tokens). `inherit` takes `inherited`, the owner's own set.
    pub(crate) fn expand(raw: &[String], owner: &Owner, inherited: Option<&ScopeSet>) -> ScopeSet {
        let mut set = ScopeSet::default();
        for text in raw {
            let Ok(scope) = Scope::parse(text) else {
                tracing::warn!(scope = %text, "ignoring a malformed scope");
                continue;
            };
            let filter = match resolve_filter(scope.filter.as_ref(), owner) {
                Ok(filter) => filter,
                // A bare filter that names nothing here (e.g. `!server` on a user's own role) grants nothing.
                Err(()) => continue,
            };
            match scope.name.as_str() {
                "self" => {
                    if let Owner::User(user) = owner {
                        for name in SELF_SCOPES {
                            set.add_implied(name, Some(Filter::User(user.clone())));
                        }
                    }
                }
                "inherit" => {
                    if let Some(inherited) = inherited {
                        set.union(inherited);
                    }
                }
                "(no_scope)" | "identify" => {}
                name => set.add_implied(name, filter),
            }
        }
        set
    }

    /// The identify scopes every token of `user` holds (`get_scopes_for`).
    pub(crate) fn add_identify(&mut self, owner: &Owner) {
        match owner {
            Owner::User(user) => {
                self.add("read:users:name", Some(Filter::User(user.clone())));
                self.add("read:users:groups", Some(Filter::User(user.clone())));
            }
            Owner::Service(service) => self.add("read:services:name", Some(Filter::Service(service.clone()))),
        }
    }

    fn add_implied(&mut self, name: &str, filter: Option<Filter>) {
        let mut pending = vec![name.to_owned()];
        let mut seen = BTreeSet::new();
        while let Some(current) = pending.pop() {
            if !seen.insert(current.clone()) {
                continue;
            }
            // Under a server filter, the user-level read scopes apply to the server's owner.
            let scope_filter = match &filter {
                Some(Filter::Server { user, .. }) if current.starts_with("read:users") => {
                    Some(Filter::User(user.clone()))
                }
                other => other.clone(),
            };
            self.add(&current, scope_filter);
            pending.extend(implied_scopes(&current).iter().map(|implied| implied.to_string()));
        }
    }

    fn add(&mut self, name: &str, filter: Option<Filter>) {
        let grant = self.0.entry(name.to_owned()).or_insert_with(|| Grant::Only(BTreeSet::new()));
        match (grant, filter) {
            (Grant::All, _) => {}
            (grant, None) => *grant = Grant::All,
            (Grant::Only(filters), Some(filter)) => {
                filters.insert(filter);
            }
        }
    }

    fn union(&mut self, other: &ScopeSet) {
        for (name, grant) in &other.0 {
            match grant {
                Grant::All => self.add(name, None),
                Grant::Only(filters) => {
                    for filter in filters {
                        self.add(name, Some(filter.clone()));
                    }
                }
            }
        }
    }

    /// JupyterHub's `_intersect_expanded_scopes`: what both sets allow. `groups_of` gives the groups of users named
    /// in filters, so that `user=alice` is covered by `group=staff` when alice is in staff.
    pub(crate) fn intersect(&self, other: &ScopeSet, groups_of: &HashMap<String, Vec<String>>) -> ScopeSet {
        let mut result = ScopeSet::default();
        for (name, left) in &self.0 {
            let Some(right) = other.0.get(name) else { continue };
            let grant = match (left, right) {
                (Grant::All, grant) | (grant, Grant::All) => grant.clone(),
                (Grant::Only(left), Grant::Only(right)) => {
                    let mut kept: BTreeSet<Filter> =
                        left.iter().filter(|filter| covered(filter, right, groups_of)).cloned().collect();
                    kept.extend(right.iter().filter(|filter| covered(filter, left, groups_of)).cloned());
                    if kept.is_empty() {
                        continue;
                    }
                    Grant::Only(kept)
                }
            };
            result.0.insert(name.clone(), grant);
        }
        result
    }

    /// Users named in `user=` and `server=` filters, whose groups [`ScopeSet::intersect`] may need.
    pub(crate) fn named_users(&self) -> BTreeSet<String> {
        let mut users = BTreeSet::new();
        for grant in self.0.values() {
            if let Grant::Only(filters) = grant {
                for filter in filters {
                    match filter {
                        Filter::User(user) | Filter::Server { user, .. } => {
                            users.insert(user.clone());
                        }
                        Filter::Group(_) | Filter::Service(_) => {}
                    }
                }
            }
        }
        users
    }

    pub(crate) fn has_group_filters(&self) -> bool {
        self.0.values().any(|grant| match grant {
            Grant::All => false,
            Grant::Only(filters) => filters.iter().any(|filter| matches!(filter, Filter::Group(_))),
        })
    }

    /// Whether `name` is held without a filter.
    pub(crate) fn has_unfiltered(&self, name: &str) -> bool {
        matches!(self.0.get(name), Some(Grant::All))
    }

    /// Whether `name` is held for `resource`.
    pub(crate) fn allows(&self, name: &str, resource: &Resource<'_>) -> bool {
        match self.0.get(name) {
            None => false,
            Some(Grant::All) => true,
            Some(Grant::Only(filters)) => filters.iter().any(|filter| matches_resource(filter, resource)),
        }
    }

    /// `needs_scope`: any one of `names` for `resource`.
    pub(crate) fn check(&self, names: &[&str], resource: &Resource<'_>) -> Result<(), Denial> {
        if names.iter().any(|name| self.allows(name, resource)) {
            return Ok(());
        }
        if names.iter().any(|name| self.0.contains_key(*name)) { Err(Denial::Filtered) } else { Err(Denial::NotHeld) }
    }

    /// Whether any of `names` is held at all (for list endpoints, which filter their items afterwards).
    pub(crate) fn holds_any(&self, names: &[&str]) -> bool {
        names.iter().any(|name| self.0.contains_key(*name))
    }

    /// Whether every scope of `requested` is within `self` (for tokens asking for scopes).
    pub(crate) fn covers(&self, requested: &ScopeSet, groups_of: &HashMap<String, Vec<String>>) -> Result<(), String> {
        for (name, grant) in &requested.0 {
            let fine = match (self.0.get(name), grant) {
                (None, _) => false,
                (Some(Grant::All), _) => true,
                (Some(Grant::Only(_)), Grant::All) => false,
                (Some(Grant::Only(held)), Grant::Only(wanted)) => {
                    wanted.iter().all(|filter| covered(filter, held, groups_of))
                }
            };
            if !fine {
                return Err(name.clone());
            }
        }
        Ok(())
    }

    /// The set as sorted scope strings, as JupyterHub lists a token's scopes.
    pub(crate) fn to_strings(&self) -> Vec<String> {
        let mut strings = Vec::new();
        for (name, grant) in &self.0 {
            match grant {
                Grant::All => strings.push(name.clone()),
                Grant::Only(filters) => {
                    for filter in filters {
                        strings.push(format!("{name}!{}", filter_text(filter)));
                    }
                }
            }
        }
        strings.sort();
        strings
    }
}

fn filter_text(filter: &Filter) -> String {
    match filter {
        Filter::User(user) => format!("user={user}"),
        Filter::Server { user, server } => format!("server={user}/{server}"),
        Filter::Group(group) => format!("group={group}"),
        Filter::Service(service) => format!("service={service}"),
    }
}

fn resolve_filter(filter: Option<&ScopeFilter>, owner: &Owner) -> Result<Option<Filter>, ()> {
    Ok(Some(match filter {
        None => return Ok(None),
        Some(ScopeFilter::User(user)) => Filter::User(user.clone()),
        Some(ScopeFilter::Server { user, server }) => Filter::Server { user: user.clone(), server: server.clone() },
        Some(ScopeFilter::Group(group)) => Filter::Group(group.clone()),
        Some(ScopeFilter::Service(service)) => Filter::Service(service.clone()),
        Some(ScopeFilter::OwnUser) => match owner {
            Owner::User(user) => Filter::User(user.clone()),
            Owner::Service(_) => return Err(()),
        },
        Some(ScopeFilter::OwnService) => match owner {
            Owner::Service(service) => Filter::Service(service.clone()),
            Owner::User(_) => return Err(()),
        },
        // The hub writes server tokens with the server already named; a bare `!server` left here names nothing.
        Some(ScopeFilter::OwnServer) => return Err(()),
    }))
}

fn in_group(user: &str, group: &str, groups_of: &HashMap<String, Vec<String>>) -> bool {
    groups_of.get(user).is_some_and(|groups| groups.iter().any(|name| name == group))
}

fn covered(filter: &Filter, by: &BTreeSet<Filter>, groups_of: &HashMap<String, Vec<String>>) -> bool {
    if by.contains(filter) {
        return true;
    }
    match filter {
        Filter::Server { user, .. } => {
            by.contains(&Filter::User(user.clone()))
                || by.iter().any(|other| matches!(other, Filter::Group(group) if in_group(user, group, groups_of)))
        }
        Filter::User(user) => {
            by.iter().any(|other| matches!(other, Filter::Group(group) if in_group(user, group, groups_of)))
        }
        Filter::Group(_) | Filter::Service(_) => false,
    }
}

fn matches_resource(filter: &Filter, resource: &Resource<'_>) -> bool {
    match (filter, resource) {
        (Filter::User(user), Resource::User { name, .. }) => user == name,
        (Filter::User(user), Resource::Server { user: owner, .. }) => user == owner,
        (Filter::Server { user, server }, Resource::Server { user: owner, server: name, .. }) => {
            user == owner && server == name
        }
        (Filter::Group(group), Resource::User { groups, .. } | Resource::Server { groups, .. }) => {
            groups.iter().any(|name| name == group)
        }
        (Filter::Group(group), Resource::Group { name }) => group == name,
        (Filter::Service(service), Resource::Service { name }) => service == name,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|text| text.to_string()).collect()
    }

    fn alice() -> Owner {
        Owner::User("alice".into())
    }

    #[test]
    fn self_expands_to_the_users_own_scopes() {
        let set = ScopeSet::expand(&strings(&["self"]), &alice(), None);
        let own = Resource::User { name: "alice", groups: &[] };
        let other = Resource::User { name: "bob", groups: &[] };
        assert!(set.allows("read:users", &own));
        assert!(set.allows("read:users:activity", &own));
        assert_eq!(set.check(&["read:users"], &other), Err(Denial::Filtered));
        assert_eq!(set.check(&["admin:users"], &own), Err(Denial::NotHeld));
        assert!(set.allows("servers", &Resource::Server { user: "alice", server: "gpu", groups: &[] }));
    }

    #[test]
    fn implied_scopes_keep_their_filter_and_server_filters_reach_the_owner() {
        let set = ScopeSet::expand(&strings(&["read:servers!server=bob/gpu", "users!group=staff"]), &alice(), None);
        assert!(set.allows("read:users:name", &Resource::User { name: "bob", groups: &[] }));
        assert!(set.allows("read:servers", &Resource::Server { user: "bob", server: "gpu", groups: &[] }));
        assert!(!set.allows("read:servers", &Resource::Server { user: "bob", server: "", groups: &[] }));
        let staff = ["staff".to_string()];
        assert!(set.allows("users:activity", &Resource::User { name: "carol", groups: &staff }));
        assert!(!set.allows("users:activity", &Resource::User { name: "carol", groups: &[] }));
    }

    #[test]
    fn inherit_and_intersection_never_widen_a_token() {
        let owner = ScopeSet::expand(&strings(&["self", "read:users!group=staff"]), &alice(), None);
        let inherited = ScopeSet::expand(&strings(&["inherit"]), &alice(), Some(&owner));
        assert_eq!(inherited, owner);
        let asked = ScopeSet::expand(
            &strings(&["admin:users", "read:users!user=carol", "read:users!user=dan"]),
            &alice(),
            None,
        );
        let groups = HashMap::from([("carol".to_string(), vec!["staff".to_string()])]);
        let token = asked.intersect(&owner, &groups);
        assert!(!token.holds_any(&["admin:users", "delete:users"]));
        // `admin:users` implied unfiltered `read:users`; the intersection cuts it back to the owner's filters.
        let staff = ["staff".to_string()];
        assert!(token.allows("read:users", &Resource::User { name: "carol", groups: &staff }));
        assert!(!token.allows("read:users", &Resource::User { name: "dan", groups: &[] }));
        let narrow = ScopeSet::expand(&strings(&["read:users!user=carol", "read:users!user=dan"]), &alice(), None);
        let narrow = narrow.intersect(&owner, &groups);
        assert!(narrow.allows("read:users", &Resource::User { name: "carol", groups: &[] }));
        assert!(!narrow.allows("read:users", &Resource::User { name: "dan", groups: &[] }));
        assert!(owner.covers(&asked, &groups).is_err());
    }

    #[test]
    fn bare_filters_resolve_to_the_owner() {
        let set = ScopeSet::expand(&strings(&["users:activity!user", "access:servers!server"]), &alice(), None);
        assert_eq!(set.to_strings(), vec!["read:users:activity!user=alice", "users:activity!user=alice"]);
    }
}
