-- The case list (issue 18 §3): each user's saved views (a name and the list's query
-- string, only known filter keys), and an index to sort the list by due date.
-- Keep in step with ../postgres/0030_case_list.sql.
CREATE TABLE saved_views (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    name       TEXT    NOT NULL,
    query      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (user_id, name)
);
CREATE INDEX cases_due_sort ON cases(due_on, id);
