-- Browser logins to the hub. The `jupyterhub-hub-login` cookie holds a generated token, stored here as its prefix
-- and salted hash like every other token; `session_id` is the browser's `jupyterhub-session-id`, which OAuth tokens
-- issued to the same browser carry too, so logout can end both.

CREATE TABLE login_sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    prefix TEXT NOT NULL,
    hashed TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL,
    created BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX login_sessions_prefix ON login_sessions (prefix);
CREATE INDEX login_sessions_session ON login_sessions (session_id);
