-- The hub's state. Timestamps are microseconds since the Unix epoch (UTC); scope lists are space-separated;
-- JSON values are opaque text. Tokens, secrets and codes are stored as JupyterHub's prefix + salted hash.
-- Ids never repeat (AUTOINCREMENT here, identity columns in PostgreSQL), so a deleted token's id "a7" cannot
-- come to name another token.

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    admin BOOLEAN NOT NULL DEFAULT FALSE,
    created BIGINT NOT NULL,
    last_activity BIGINT
);

CREATE TABLE groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    properties TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE user_groups (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, group_id)
);
CREATE INDEX user_groups_group ON user_groups (group_id);

CREATE TABLE services (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    admin BOOLEAN NOT NULL DEFAULT FALSE,
    created BIGINT NOT NULL
);

CREATE TABLE roles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    scopes TEXT NOT NULL
);

CREATE TABLE user_roles (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
);

CREATE TABLE group_roles (
    group_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    role_id INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, role_id)
);

CREATE TABLE service_roles (
    service_id INTEGER NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    role_id INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    PRIMARY KEY (service_id, role_id)
);

CREATE TABLE oauth_clients (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    secret_hash TEXT,
    redirect_uri TEXT NOT NULL,
    allowed_scopes TEXT NOT NULL
);

-- Tokens the hub issues to itself belong to this client, as in JupyterHub.
INSERT INTO oauth_clients (client_id, description, redirect_uri, allowed_scopes)
VALUES ('jupyterhub', 'JupyterHub', '', '');

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER REFERENCES users (id) ON DELETE CASCADE,
    service_id INTEGER REFERENCES services (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    prefix TEXT NOT NULL,
    hashed TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    note TEXT NOT NULL,
    session_id TEXT,
    created BIGINT NOT NULL,
    expires_at BIGINT,
    last_activity BIGINT,
    CHECK ((user_id IS NULL) <> (service_id IS NULL))
);
CREATE INDEX api_tokens_prefix ON api_tokens (prefix);
CREATE INDEX api_tokens_session ON api_tokens (session_id);
CREATE INDEX api_tokens_user ON api_tokens (user_id);
CREATE INDEX api_tokens_service ON api_tokens (service_id);

CREATE TABLE oauth_codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    prefix TEXT NOT NULL,
    hashed TEXT NOT NULL UNIQUE,
    redirect_uri TEXT NOT NULL,
    session_id TEXT,
    scopes TEXT NOT NULL,
    code_challenge TEXT,
    code_challenge_method TEXT,
    expires_at BIGINT NOT NULL
);
CREATE INDEX oauth_codes_prefix ON oauth_codes (prefix);

CREATE TABLE servers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('requested', 'starting', 'running', 'stopping', 'stopped', 'failed')),
    url TEXT,
    spawner_state TEXT NOT NULL,
    object_names TEXT NOT NULL,
    user_options TEXT NOT NULL,
    failure TEXT,
    started BIGINT,
    last_activity BIGINT,
    UNIQUE (user_id, name)
);
CREATE INDEX servers_state ON servers (state);
