"""The pathway language: YAML file -> schema check (with line numbers) -> typed model -> meaning checks.

Everything ``carepath validate`` runs lives here, in the order it runs: :mod:`.source` (YAML to values, read by
:mod:`.yaml_builder`, plus a separate position map, :mod:`.positions`), :mod:`.schema` (JSON Schema),
:mod:`.model` (pydantic ``*Spec`` classes, written with :mod:`.fields`), :mod:`.semantics` (what a schema cannot
say), orchestrated by :mod:`.loader`. :mod:`.builtins` holds what every pathway understands undeclared (the handoff
step kinds, the built-in events), once. Pure: imports no Prefect and no database, reads no clock; it may import
:mod:`engine.errors` only.
"""
