"""Process entry points for Prefect: ``python -m flows.serve`` serves every pathway's deployments against a Prefect
server you run yourself (``carepath up`` does the same with a local server).

The flows themselves are thin wrappers around :mod:`engine.app`, in :mod:`engine.orchestration.flows`; nothing in
``engine/`` imports this package.
"""
