//! What a browser sees: the pages at JupyterHub's URLs (home, spawn with its profile form, spawn-pending,
//! not-running, token, admin), rendered from overridable templates, and the redirects every page shares. Pages act
//! through the spawn service and the REST API's own scope checks; they never call an API handler.

pub(crate) mod browser;
pub(crate) mod profile_form;
pub(crate) mod redirects;
pub(crate) mod render;
pub(crate) mod templates;

pub(crate) use browser::routes;
