-- PostgreSQL's 0020 makes replicas hear each other's changes to incidents.
-- SQLite has one process, which counts its own: nothing to do here (the
-- numbers of the two back ends' migrations stay in step).
SELECT 1;
