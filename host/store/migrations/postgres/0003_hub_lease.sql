-- The one hub that acts on this database (spawns, supervision, culling, route checks): a starting hub takes the row
-- when it is free, expired or already its own, renews it while it runs, and deletes it when it stops, so during a
-- rolling update the new hub acts as soon as the old one has let go.

CREATE TABLE hub_lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
