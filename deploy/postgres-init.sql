-- The Prefect server's database, beside Carepath's own (POSTGRES_DB) on the same PostgreSQL: run once, when the
-- volume is first created. At a hospital's scale give each its own server (see deploy/README.md).
CREATE DATABASE prefect;
