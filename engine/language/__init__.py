"""The pathway language: YAML file -> schema check (with line numbers) -> typed model -> meaning checks.

Everything ``carepath validate`` runs lives here, in the order it runs: :mod:`.source` (YAML to values plus a
separate position map), :mod:`.schema` (JSON Schema), :mod:`.model` (pydantic ``*Spec`` classes), :mod:`.semantics`
(what a schema cannot say), orchestrated by :mod:`.loader`. Pure: imports no Prefect and no database, reads no
clock; it may import :mod:`engine.errors` only.
"""
