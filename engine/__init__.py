"""Carepath: care pathways that follow every handoff through.

The packages, in pipeline order (each may import only those above it, and :mod:`engine.errors`/:mod:`engine.clock`):

- :mod:`engine.language`: YAML file -> schema check -> typed model -> meaning checks (pure);
- :mod:`engine.plan`: the compiled plan and its renderings (pure);
- :mod:`engine.episode`: episode rules over a plan, and the standards' rules they apply (pure);
- :mod:`engine.store`: the only code that speaks SQL (records, queries, migrations, the state mapper);
- :mod:`engine.notify`: the roster and escalation delivery (apprise);
- :mod:`engine.app`: the use cases every face calls, and the ports they act through;
- :mod:`engine.orchestration`: Prefect (the ports' implementations, deployments, the local server);
- :mod:`engine.cli`: the ``carepath`` command.

``flows/`` holds the Prefect flows: thin wrappers around :mod:`engine.app`. ``tests/test_architecture.py`` checks
these rules by walking the imports.
"""
